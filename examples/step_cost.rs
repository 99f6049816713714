//! # What one training step costs
//!
//! For someone microbenchmarking training: build a model and one reusable
//! [`Trainer`] (model, optimizer state, gradient buffer and tape in one place), feed
//! it your own batches, and read the step's FLOPs ([`Architecture::step_flops`]),
//! its time, and its heap allocations (a counting global allocator).
//!
//! ```text
//! cargo run --release --example step_cost -- [--data DIR] [--layers L] [--batch B]
//!                                            [--steps N] [--optimizer sgd|momentum|adam]
//! ```
//!
//! With `--data DIR` (an MNIST-format directory; `.gz` files need the default `gz`
//! feature) the batches are drawn from its training split by a seeded
//! [`BatchStream`]; without it they are generated (pixels in `[0, 1]`, cycling labels).
//! Defaults: `L = 20`, `B = 100`, 10 timed steps, momentum.
//!
//! The first step sizes every buffer and is not timed. The example then prints, per
//! timed step, the loss, milliseconds and GFLOP/s, then the median, and the
//! allocations counted over all timed steps — 0, or the example fails.

use std::error::Error;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Instant;

use idmlp::data::{BatchStream, Dataset, LastBatch, Split};
use idmlp::mlp::{Architecture, Init, Mlp};
use idmlp::optim::OptimizerKind;
use idmlp::train::Trainer;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

struct Options {
    data: Option<String>,
    layers: usize,
    batch: usize,
    steps: usize,
    optimizer: OptimizerKind,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        data: None,
        layers: 20,
        batch: 100,
        steps: 10,
        optimizer: OptimizerKind::Momentum { lr: 0.01, mu: 0.9 },
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--data" => o.data = Some(value()?),
            "--layers" => o.layers = number(value()?)?,
            "--batch" => o.batch = number(value()?)?,
            "--steps" => o.steps = number(value()?)?,
            "--optimizer" => {
                o.optimizer = match value()?.as_str() {
                    "sgd" => OptimizerKind::Sgd { lr: 0.01 },
                    "momentum" => OptimizerKind::Momentum { lr: 0.01, mu: 0.9 },
                    "adam" => OptimizerKind::Adam(Default::default()),
                    other => return Err(format!("unknown optimizer {other}")),
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.batch == 0 || o.steps == 0 {
        return Err("--batch and --steps must be at least 1".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("step_cost: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn Error>> {
    let o = parse_args()?;
    let data = match &o.data {
        Some(dir) => Some(Dataset::load(dir, Split::Train)?),
        None => None,
    };
    let (d, classes) = data.as_ref().map_or((784, 10), |t| (t.pixels(), t.classes()));

    // ---- setup ----
    let arch = Architecture::new(d, classes, o.layers);
    let mut trainer = Trainer::new(Mlp::new(arch, Init::default(), 0), o.optimizer);
    let mut x = vec![0.0f32; o.batch * d]; // the caller's batch: B×d in [0, 1]
    let mut y = vec![0u32; o.batch]; // B labels < C
    let batch = NonZeroUsize::new(o.batch).expect("checked");
    let mut stream = data.as_ref().map(|t| BatchStream::new(t, batch, LastBatch::Drop, 0));
    // Fills the caller's buffers: from the data set, or generated.
    let mut next_batch = |step: usize, x: &mut [f32], y: &mut [u32]| match &mut stream {
        Some(s) => {
            if s.next_batch(x, y).is_none() {
                s.next_batch(x, y).expect("a new epoch has at least one full batch");
            }
        }
        None => {
            for (i, v) in x.iter_mut().enumerate() {
                *v = ((i * 31 + step * 7) % 256) as f32 / 255.0;
            }
            for (i, l) in y.iter_mut().enumerate() {
                *l = ((i + step) % classes) as u32;
            }
        }
    };
    let flops = arch.step_flops(o.batch);
    println!(
        "model: d = {d}, C = {classes}, D = {}, L = {}, {} parameters; optimizer {}",
        arch.width(),
        arch.layers,
        arch.param_count(),
        o.optimizer.name()
    );
    println!(
        "batch B = {} from {}; one step = {:.3} GFLOP (3L − 1 = {} GEMMs of 2·B·D²)",
        o.batch,
        o.data.as_deref().unwrap_or("generated data"),
        flops as f64 / 1e9,
        (3 * arch.layers).saturating_sub(1)
    );
    next_batch(0, &mut x, &mut y);
    let warm = trainer.step(&x, &y); // sizes the tape and every buffer
    println!("step 0 (setup, not timed): loss {:.4}", warm.loss);

    // ---- timed steps: no allocation from here on ----
    let mut millis = vec![0.0f64; o.steps];
    let mut loss = warm.loss;
    let before = counting_alloc::allocations();
    for (step, ms) in millis.iter_mut().enumerate() {
        next_batch(step + 1, &mut x, &mut y);
        let start = Instant::now();
        loss = trainer.step(&x, &y).loss;
        *ms = start.elapsed().as_secs_f64() * 1e3;
    }
    let after = counting_alloc::allocations();

    for (step, ms) in millis.iter().enumerate() {
        println!("step {:>3}: {ms:>8.2} ms  {:>6.1} GFLOP/s", step + 1, flops as f64 / (ms * 1e6));
    }
    let mut sorted = millis.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "median: {median:.2} ms per step, {:.1} GFLOP/s; loss {:.4} → {loss:.4}",
        flops as f64 / (median * 1e6),
        warm.loss
    );
    let (calls, bytes) = (after.0 - before.0, after.1 - before.1);
    println!("allocations over {} timed steps: {calls} ({bytes} bytes)", o.steps);
    if calls != 0 {
        eprintln!("step_cost: a steady-state step allocated");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
