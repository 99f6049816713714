//! `idmlp` with no arguments: train and interpret on the embedded default data (4,000
//! training and 1,000 test digits of real MNIST, see README), then say where the
//! report is. Sized to finish in well under a minute on two cores.

use std::error::Error;
use std::num::NonZeroUsize;
use std::path::Path;

use clap::Parser;
use idmlp::data::Dataset;
use idmlp::idx::IdxFile;
use idmlp::report;

use crate::summary;
use crate::train::{Hyper, train_model};

/// Where the default job writes, relative to the working directory.
pub const OUT_DIR: &str = "idmlp-out";
/// Epochs of the default job.
const EPOCHS: usize = 3;

const TRAIN_IMAGES: &[u8] = include_bytes!("../../../data/default/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../../data/default/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../../data/default/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../../data/default/t10k-labels-idx1-ubyte.gz");

/// A data set from two embedded gzip IDX files.
fn embedded(images: &[u8], labels: &[u8], name: &str) -> Result<Dataset, Box<dyn Error>> {
    let images = IdxFile::from_gz_reader(format!("embedded/{name}-images"), images)?;
    let labels = IdxFile::from_gz_reader(format!("embedded/{name}-labels"), labels)?;
    Ok(Dataset::from_files(images, labels, Dataset::DEFAULT_CLASSES)?)
}

/// Runs the default job.
pub fn run() -> Result<(), Box<dyn Error>> {
    let train = embedded(TRAIN_IMAGES, TRAIN_LABELS, "train")?;
    let test = embedded(TEST_IMAGES, TEST_LABELS, "t10k")?;
    // The defaults of `idmlp train`, with fewer epochs.
    let mut hyper = DefaultHyper::parse_from(["idmlp"]).hyper;
    hyper.epochs = EPOCHS;
    hyper.threads = NonZeroUsize::new(1).expect("non-zero");
    let out = Path::new(OUT_DIR);
    let data_name = "embedded MNIST sample (4,000 train / 1,000 test)";
    eprintln!(
        "idmlp: no arguments, so training the default model on the {data_name}; `idmlp --help` lists the commands"
    );
    let trained = train_model(&hyper, &train, Some(&test), out, data_name, false)?;
    let summary =
        summary::collect(&trained.mlp, trained.init, &test, 10, trained.epochs, data_name)?;
    let files = report::write_all(out, &summary)?;
    println!(
        "test accuracy (layer {}): {:.2}%",
        summary.arch.layers,
        100.0 * summary.test_accuracy
    );
    println!("model:  {}", trained.model_path.display());
    println!("report: {}", files.report.display());
    Ok(())
}

/// Parses the defaults of [`Hyper`] without repeating them.
#[derive(Parser)]
struct DefaultHyper {
    #[command(flatten)]
    hyper: Hyper,
}
