//! `idmlp eval`: per-layer accuracy of a checkpoint on the test split.

use std::error::Error;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::Args;
use idmlp::checkpoint;
use idmlp::data::{Dataset, Split};
use idmlp::interpret::{Interpreter, evaluate, weight_stats};

use crate::summary::check_compatible;

/// `idmlp eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint written by `idmlp train` (model.idmlp).
    #[arg(long)]
    pub model: PathBuf,
    /// MNIST-format directory holding the t10k split (the train files need not exist).
    #[arg(long)]
    pub data: PathBuf,
    /// Print one JSON object (test_accuracy, layer_accuracy, identity_distance, …) to stdout.
    #[arg(long)]
    pub json: bool,
    /// Evaluation batch size.
    #[arg(long, default_value_t = NonZeroUsize::new(250).unwrap())]
    pub batch: NonZeroUsize,
}

/// `idmlp eval`.
pub fn run(args: &EvalArgs) -> Result<(), Box<dyn Error>> {
    let (mlp, meta) = checkpoint::load(&args.model)?;
    let test = Dataset::load_with_classes(&args.data, Split::Test, meta.arch.classes)?;
    let name = args.data.display().to_string();
    check_compatible(&mlp, &test, &name)?;
    let metrics = evaluate(&mut Interpreter::new(), &mlp.arch, &mlp.params, &test, args.batch);
    let accuracy = metrics.accuracy();
    let stats = weight_stats(&mlp);
    let test_accuracy = accuracy.last().copied().unwrap_or(0.0);
    if args.json {
        let value = serde_json::json!({
            "model": args.model.display().to_string(),
            "data": name,
            "test_samples": test.len(),
            "layers": mlp.arch.layers,
            "width": mlp.arch.width(),
            "classes": mlp.arch.classes,
            "test_accuracy": test_accuracy,
            "layer_accuracy": accuracy,
            "identity_distance": stats.iter().map(|s| s.identity_distance).collect::<Vec<_>>(),
            "class_row_share": stats.iter().map(|s| s.class_row_share).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{}: {} test images, L = {}, D = {}",
        args.model.display(),
        test.len(),
        mlp.arch.layers,
        mlp.arch.width()
    );
    println!("layer  accuracy  ‖W−I‖/‖I‖  class-row share  role");
    for (l, (acc, s)) in accuracy.iter().zip(&stats).enumerate() {
        println!(
            "{:>5}  {:>7.2}%  {:>10.4}  {:>15.2}  {}",
            l + 1,
            100.0 * acc,
            s.identity_distance,
            s.class_row_share,
            s.role().label()
        );
    }
    println!("test accuracy (layer {}): {:.2}%", mlp.arch.layers, 100.0 * test_accuracy);
    Ok(())
}
