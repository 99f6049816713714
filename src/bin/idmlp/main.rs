//! `idmlp`, the command-line tool (feature `cli`).
//!
//! One function per subcommand, each returning `Result<(), Box<dyn Error>>`; `main`
//! prints the error chain on stderr as `error: ...` and exits 1 (clap exits 2 on a
//! usage error). To add a subcommand: a variant in [`Command`], an args struct, a
//! `run_*` function, one match arm in `main`.

use std::error::Error;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use idmlp::data::{Dataset, FileKind, Split, SplitFiles};

mod bench;
mod default_job;
mod eval;
mod interpret;
mod summary;
mod train;

/// Deep identity-initialized MLPs, explained layer by layer (Kubota et al., ICASSP 2021).
///
/// With no command, trains and interprets a model on the embedded MNIST sample and
/// writes idmlp-out/report.html.
#[derive(Debug, Parser)]
#[command(name = "idmlp", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an MNIST-format data directory and summarise each split it holds.
    ///
    /// Looks for train-{images,labels} and t10k-{images,labels} under their standard
    /// names (e.g. train-images-idx3-ubyte, raw or .gz), validates them and prints,
    /// per split found: item count, image size, file encodings, class histogram.
    Data(DataArgs),
    /// Train a model; writes OUT/model.idmlp (every epoch), OUT/metrics.json, OUT/layers.csv.
    Train(train::TrainArgs),
    /// Per-layer accuracy of a trained model on the test (t10k) split.
    Eval(eval::EvalArgs),
    /// Layer-by-layer report of a trained model: report.html with contribution maps,
    /// likelihoods, per-layer accuracy and identity distance.
    Interpret(interpret::InterpretArgs),
    /// Time training steps on random data: ms/step, GFLOP/s, the same step's GEMMs
    /// alone, and heap allocations per step.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Args)]
struct DataArgs {
    /// The data directory.
    dir: PathBuf,
    /// Number of classes; every label must be below it.
    #[arg(long, default_value_t = NonZeroUsize::new(Dataset::DEFAULT_CLASSES).unwrap())]
    classes: NonZeroUsize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => default_job::run(),
        Some(Command::Data(args)) => run_data(&args),
        Some(Command::Train(args)) => train::run(&args),
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Interpret(args)) => interpret::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`idmlp data DIR | head`): nothing left to say.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        // Ctrl-C during training: saved, not failed; 130 is the shell's code for SIGINT.
        Err(e) if e.downcast_ref::<train::Interrupted>().is_some() => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `idmlp data DIR`: summarise every split found; fail if any split is broken or none
/// is present. A broken split does not hide the summary of a good one.
fn run_data(args: &DataArgs) -> Result<(), Box<dyn Error>> {
    let mut out = io::stdout().lock();
    writeln!(out, "data directory: {}", args.dir.display())?;
    let (mut found, mut failed) = (0, 0);
    for split in Split::ALL {
        let loaded = SplitFiles::find(&args.dir, split).and_then(|files| {
            files.map(|files| Dataset::from_paths(&files, args.classes.get())).transpose()
        });
        match loaded {
            Ok(Some(data)) => {
                found += 1;
                print_summary(&mut out, split, &data)?;
            }
            Ok(None) => {
                let names = split.file_names(FileKind::Images);
                writeln!(out, "{split}: not present (no {})", names.join(", "))?;
            }
            Err(e) => {
                failed += 1;
                writeln!(out, "{split}: invalid (see error below)")?;
                out.flush()?;
                eprintln!("error: {}", error_chain(&e));
            }
        }
    }
    match (found, failed) {
        (_, 1..) => Err(format!("{failed} split(s) of {} are invalid", args.dir.display()).into()),
        (0, 0) => Err(format!(
            "{}: no MNIST-format data found (expected files such as \
             train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])",
            args.dir.display()
        )
        .into()),
        _ => Ok(()),
    }
}

/// One split's summary: counts, shape, files, and a class histogram with bars.
fn print_summary(out: &mut impl Write, split: Split, data: &Dataset) -> io::Result<()> {
    writeln!(
        out,
        "{split}: {} items, {}×{} images (d = {}), {} classes",
        data.len(),
        data.rows(),
        data.cols(),
        data.pixels(),
        data.classes()
    )?;
    for (role, file) in [("images", data.images_file()), ("labels", data.labels_file())] {
        writeln!(out, "  {role}  {} ({})", file.path().display(), file.encoding())?;
    }
    const BAR: usize = 40;
    let histogram = data.class_histogram();
    let max = histogram.iter().copied().max().unwrap_or(0).max(1);
    writeln!(out, "  class  count   share")?;
    for (class, &count) in histogram.iter().enumerate() {
        let share = 100.0 * count as f64 / data.len().max(1) as f64;
        let bar = "#".repeat(count * BAR / max);
        writeln!(out, "  {class:>5}  {count:>5}  {share:>5.1}%  {bar}")?;
    }
    Ok(())
}

/// `outer: cause: root cause`, since our errors keep their causes out of `Display`.
fn error_chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
