//! The examples run in CI: `cargo test` builds every example into
//! `target/<profile>/examples/`, and these tests run the built binaries on the MNIST
//! sample (or generated data) and check what they print and how they exit.
//!
//! The embed example reads raw IDX files and a checkpoint; both are made here with
//! the library (the sample is gzip, which the embed example deliberately cannot read).
#![cfg(feature = "cli")]

use std::fs;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use idmlp::data::{BatchStream, Dataset, LastBatch, Split};
use idmlp::interpret::{Interpreter, evaluate};
use idmlp::mlp::{Architecture, Init, Mlp};
use idmlp::optim::OptimizerKind;
use idmlp::train::Trainer;

mod common;

use common::{TempDir, idx_bytes};

const MNIST_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-sample");

/// `target/<profile>/examples/<name>`: the test binary sits in `target/<profile>/deps/`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run the examples through `cargo test --workspace`, which builds them",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(example(name)).args(args).output().expect("run example")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn success(out: &Output) -> String {
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        text(&out.stderr)
    );
    stdout
}

/// The first line of `stdout` starting with `prefix`.
fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

#[test]
fn embed_interprets_mapped_checkpoint_and_raw_idx_without_allocating() {
    let tmp = TempDir::new("embed-example");
    // A small model trained for a few steps on the sample's training split.
    let train = Dataset::load(MNIST_SAMPLE, Split::Train).unwrap();
    let arch = Architecture::new(train.pixels(), train.classes(), 2);
    let mut trainer = Trainer::new(
        Mlp::new(arch, Init::default(), 0),
        OptimizerKind::Momentum { lr: 0.01, mu: 0.9 },
    );
    let batch = NonZeroUsize::new(100).unwrap();
    let mut stream = BatchStream::new(&train, batch, LastBatch::Drop, 0);
    let (mut x, mut y) = (vec![0.0; 100 * arch.inputs], vec![0u32; 100]);
    for _ in 0..30 {
        stream.next_batch(&mut x, &mut y).unwrap();
        trainer.step(&x, &y);
    }
    let model = tmp.path().join("model.idmlp");
    idmlp::checkpoint::save(&model, trainer.mlp(), Init::default()).unwrap();

    // The first 300 test digits as raw IDX files, and the library's own accuracy on them.
    let test = Dataset::load(MNIST_SAMPLE, Split::Test).unwrap();
    let n = 300;
    let (rows, cols) = (test.rows(), test.cols());
    let images = &test.images()[..n * rows * cols];
    let labels = &test.labels()[..n];
    let dims = [n as u32, rows as u32, cols as u32];
    let images_path = tmp.write("t10k-images-idx3-ubyte", &idx_bytes(0x08, &dims, images));
    let labels_path = tmp.write("t10k-labels-idx1-ubyte", &idx_bytes(0x08, &[n as u32], labels));
    let subset = Dataset::from_files(
        idmlp::idx::IdxFile::open(&images_path).unwrap(),
        idmlp::idx::IdxFile::open(&labels_path).unwrap(),
        10,
    )
    .unwrap();
    let metrics = evaluate(
        &mut Interpreter::new(),
        &arch,
        &trainer.mlp().params,
        &subset,
        NonZeroUsize::new(64).unwrap(),
    );
    let expected = 100.0 * metrics.accuracy()[arch.layers - 1];
    assert!(expected > 50.0, "the test model is too weak to mean anything: {expected}%");

    let out = run(
        "embed",
        &[model.to_str().unwrap(), images_path.to_str().unwrap(), labels_path.to_str().unwrap()],
    );
    let stdout = success(&out);
    assert!(stdout.contains("d = 784, C = 10, L = 2"), "{stdout}");
    assert_eq!(
        line(&stdout, "allocations while interpreting"),
        "allocations while interpreting 300 image(s) after setup: 0 (0 bytes)"
    );
    // One image at a time through the mapped checkpoint agrees with batched evaluation
    // (to one image: batch 1 runs matrix-vector kernels that round differently, so a
    // near-tie could flip).
    let printed: f64 = line(&stdout, "last-layer accuracy:")
        .trim_start_matches("last-layer accuracy: ")
        .trim_end_matches("% on 300 images")
        .parse()
        .unwrap();
    assert!((printed - expected).abs() <= 100.0 / 300.0 + 1e-9, "{printed} vs {expected}");
    let accuracy_line = line(&stdout, "accuracy by layer (%):");
    assert_eq!(accuracy_line.split_whitespace().count(), 4 + 2, "{accuracy_line}");
    // The printed map is 28 rows of 28 symbols.
    let map_rows = stdout
        .lines()
        .filter(|l| {
            let t = l.trim();
            t.len() == 28 && t.chars().all(|c| matches!(c, '+' | '-' | '.'))
        })
        .count();
    assert_eq!(map_rows, 28, "{stdout}");

    // Without images it draws its own, and still allocates nothing per image.
    let generated = success(&run("embed", &[model.to_str().unwrap()]));
    assert!(generated.contains("one generated 28×28 stroke"), "{generated}");
    assert!(generated.contains("after setup: 0 (0 bytes)"), "{generated}");

    // Misuse is a clear message and a failure exit, not a panic.
    let usage = run("embed", &[]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(text(&usage.stderr).contains("usage: embed MODEL"));
    let missing = tmp.path().join("no-such-images");
    let missing = run("embed", &[model.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stdout));
    assert!(text(&missing.stderr).starts_with("embed: "), "{}", text(&missing.stderr));
    // Labels that do not match the images are refused before anything runs.
    let short = tmp.write("short-labels", &idx_bytes(0x08, &[3], &[1, 2, 3]));
    let short = run(
        "embed",
        &[model.to_str().unwrap(), images_path.to_str().unwrap(), short.to_str().unwrap()],
    );
    assert!(text(&short.stderr).contains("expected 300 u8 labels"), "{}", text(&short.stderr));
    fs::remove_file(&model).unwrap();
}

#[test]
fn gradcheck_passes_real_checks_and_catches_the_wrong_rule() {
    let stdout = success(&run("gradcheck", &[]));
    // Check 1: all 12 + 3 + 6 elements; check 2: 8 sampled elements of each of 4 tensors.
    assert!(stdout.contains("elements:\n21 checked, 0 failed, 0 unchecked"), "{stdout}");
    assert!(stdout.contains("(seed 42):\n32 checked, 0 failed, 0 unchecked"), "{stdout}");
    assert!(stdout.contains("Yᵀ·X:\n9 checked, 0 failed"), "{stdout}");
    // The transposed rule is right on the diagonal only: 6 of 9 elements fail.
    assert!(stdout.contains("(wrong on purpose):\n9 checked, 6 failed"), "{stdout}");
    assert!(stdout.contains("3b. hand-written dW = Xᵀ·Y (wrong on purpose):"), "{stdout}");
    let wrong = stdout.split("3b.").nth(1).unwrap();
    assert!(wrong.contains("worst: W["), "{wrong}");
    assert!(wrong.contains("  FAIL W["), "{wrong}");
    assert!(wrong.contains("caught: the wrong rule fails the check"), "{wrong}");
    assert!(stdout.trim_end().ends_with("all checks behaved as expected"), "{stdout}");
}

#[test]
fn step_cost_reports_flops_time_and_zero_allocations_on_the_sample() {
    let stdout = success(&run(
        "step_cost",
        &["--data", MNIST_SAMPLE, "--layers", "2", "--batch", "32", "--steps", "3"],
    ));
    let flops = Architecture::new(784, 10, 2).step_flops(32);
    assert!(
        stdout.contains(&format!("one step = {:.3} GFLOP (3L − 1 = 5 GEMMs", flops as f64 / 1e9)),
        "{stdout}"
    );
    for step in 1..=3 {
        assert!(stdout.contains(&format!("step {step:>3}:")), "{stdout}");
    }
    assert!(line(&stdout, "median:").contains("GFLOP/s; loss"), "{stdout}");
    assert_eq!(line(&stdout, "allocations over"), "allocations over 3 timed steps: 0 (0 bytes)");
    // Generated data and Adam work too; a bad flag is an error exit.
    let generated = success(&run(
        "step_cost",
        &["--layers", "1", "--batch", "4", "--steps", "2", "--optimizer", "adam"],
    ));
    assert!(generated.contains("from generated data"), "{generated}");
    assert!(generated.contains("timed steps: 0 (0 bytes)"), "{generated}");
    let bad = run("step_cost", &["--optimizer", "rmsprop"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("unknown optimizer rmsprop"));
}
