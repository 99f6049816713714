//! `idmlp interpret`: the layer-by-layer report of a checkpoint on the test split.

use std::error::Error;
use std::path::PathBuf;

use clap::Args;
use idmlp::checkpoint;
use idmlp::data::{Dataset, Split};
use idmlp::report;

use crate::summary;

/// `idmlp interpret` arguments.
#[derive(Debug, Args)]
pub struct InterpretArgs {
    /// Checkpoint written by `idmlp train` (model.idmlp).
    #[arg(long)]
    pub model: PathBuf,
    /// MNIST-format directory holding the t10k split.
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory for report.html and its figures.
    #[arg(long)]
    pub out: PathBuf,
    /// Example images shown layer by layer (one per class first).
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
}

/// `idmlp interpret`.
pub fn run(args: &InterpretArgs) -> Result<(), Box<dyn Error>> {
    let (mlp, meta) = checkpoint::load(&args.model)?;
    let test = Dataset::load_with_classes(&args.data, Split::Test, meta.arch.classes)?;
    let summary = summary::collect(
        &mlp,
        meta.init,
        &test,
        args.samples,
        Vec::new(),
        &args.data.display().to_string(),
    )?;
    let files = report::write_all(&args.out, &summary)?;
    println!("test accuracy (layer {}): {:.2}%", mlp.arch.layers, 100.0 * summary.test_accuracy);
    println!("report: {}", files.report.display());
    Ok(())
}
