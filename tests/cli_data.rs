//! `idmlp data DIR`, run as a user would: the built binary on the MNIST sample, on
//! broken directories, and with `--help`.
#![cfg(feature = "cli")]

use std::fs;
use std::process::{Command, Output};

mod common;

use common::{TempDir, idx_bytes, text};

const MNIST_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-sample");

fn idmlp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idmlp")).args(args).output().expect("run idmlp")
}

#[test]
fn summarises_both_splits_of_the_mnist_sample() {
    let out = idmlp(&["data", MNIST_SAMPLE]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(stdout.contains("train: 8000 items, 28×28 images"), "{stdout}");
    assert!(stdout.contains("t10k: 1000 items, 28×28 images"), "{stdout}");
    assert!(stdout.contains("train-images-idx3-ubyte.gz (gz)"), "{stdout}");
    // A histogram row per class per split, and the counts add up.
    let rows: Vec<(usize, usize)> = stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(rows.len(), 20, "{stdout}");
    assert_eq!(rows[..10].iter().map(|r| r.1).sum::<usize>(), 8000);
    assert_eq!(rows[10..].iter().map(|r| r.1).sum::<usize>(), 1000);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn one_split_only_is_fine_and_raw_is_reported() {
    let dir = TempDir::new("t10k-only");
    fs::write(dir.0.join("t10k-images-idx3-ubyte"), idx_bytes(0x08, &[2, 3, 4], &[0; 24])).unwrap();
    fs::write(dir.0.join("t10k-labels-idx1-ubyte"), idx_bytes(0x08, &[2], &[1, 1])).unwrap();
    let out = idmlp(&["data", dir.str()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(stdout.contains("train: not present"), "{stdout}");
    assert!(stdout.contains("t10k: 2 items, 3×4 images (d = 12)"), "{stdout}");
    assert!(stdout.contains("t10k-images-idx3-ubyte (raw)"), "{stdout}");
}

#[test]
fn bad_directory_fails_naming_the_file() {
    let dir = TempDir::new("bad");
    fs::write(dir.0.join("train-images-idx3-ubyte"), idx_bytes(0x08, &[3, 2, 2], &[0; 12]))
        .unwrap();
    // Truncated labels: the header says 3, the file holds 2.
    fs::write(dir.0.join("train-labels-idx1-ubyte"), idx_bytes(0x08, &[3], &[0, 1])).unwrap();
    let out = idmlp(&["data", dir.str()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("train-labels-idx1-ubyte"), "{stderr}");
    assert!(stderr.contains("truncated"), "{stderr}");
}

#[test]
fn labels_beyond_classes_fail() {
    let out = idmlp(&["data", MNIST_SAMPLE, "--classes", "5"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("train-labels-idx1-ubyte.gz") && stderr.contains("classes (5)"),
        "{stderr}"
    );
}

#[test]
fn empty_or_missing_directory_fails() {
    let dir = TempDir::new("empty");
    let out = idmlp(&["data", dir.str()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no MNIST-format data found"), "{}", text(&out.stderr));

    let missing = dir.path().join("nope");
    let out = idmlp(&["data", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
}

#[test]
fn help_lists_the_commands_and_usage_errors_exit_2() {
    let out = idmlp(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for command in ["data", "train", "eval", "interpret"] {
        assert!(help.contains(command), "help lacks {command}: {help}");
    }
    let out = idmlp(&["data"]);
    assert_eq!(out.status.code(), Some(2), "a usage error is clap's exit code 2");
}
