//! The method end to end through the binary: train → eval → interpret on the MNIST
//! sample, the literal model's stall, the default job with no arguments, and clear
//! errors for damaged checkpoints. Models are kept small (L = 3) except in the
//! default job, which runs exactly as a user's `idmlp` does.
#![cfg(feature = "cli")]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::{TempDir, success, text};

const MNIST_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-sample");

fn idmlp_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idmlp"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run idmlp")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// Every `src="…"` / `href="…"` of the page, which must all be relative files that exist.
fn assert_references_exist(html_path: &Path) {
    let html = fs::read_to_string(html_path).unwrap();
    let dir = html_path.parent().unwrap();
    let mut found = 0;
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = &part[..part.find('"').unwrap()];
            if target.starts_with('#') {
                continue;
            }
            assert!(!target.contains("://"), "network reference {target}");
            assert!(dir.join(target).is_file(), "report.html references missing {target}");
            found += 1;
        }
    }
    assert!(found >= 3, "report.html references only {found} files");
}

fn assert_png_decodes(path: &Path) {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(info.width > 0 && info.height > 0, "{} is empty", path.display());
}

#[test]
fn train_eval_interpret_on_the_mnist_sample() {
    let tmp = TempDir::new("pipeline");
    let dir = tmp.path();
    let out = dir.join("run");
    let run = idmlp_in(
        dir,
        &[
            "train",
            "--data",
            MNIST_SAMPLE,
            "--out",
            out.to_str().unwrap(),
            "--layers",
            "3",
            "--epochs",
            "1",
        ],
    );
    success(&run);
    let metrics = json(&out.join("metrics.json"));
    assert_eq!(metrics["layers"], 3);
    assert_eq!(metrics["width"], 794);
    assert_eq!(metrics["classes"], 10);
    for key in ["layer_accuracy", "identity_distance", "class_row_share"] {
        assert_eq!(metrics[key].as_array().unwrap_or_else(|| panic!("{key}")).len(), 3, "{key}");
    }
    let epochs = metrics["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 1);
    for key in ["epoch", "train_loss", "train_accuracy", "test_accuracy", "seconds"] {
        assert!(!epochs[0][key].is_null(), "epochs[0].{key} missing");
    }
    // One epoch of a 3-layer model on 8,000 digits is far above chance (10%).
    let test_accuracy = metrics["test_accuracy"].as_f64().unwrap();
    assert!(test_accuracy > 0.80, "test accuracy {test_accuracy}");

    let model = out.join("model.idmlp");
    let eval = idmlp_in(
        dir,
        &["eval", "--model", model.to_str().unwrap(), "--data", MNIST_SAMPLE, "--json"],
    );
    success(&eval);
    let value: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(value["layer_accuracy"].as_array().unwrap().len(), 3);
    assert_eq!(value["test_accuracy"].as_f64(), Some(test_accuracy), "eval disagrees with train");

    let report = dir.join("report");
    let interpret = idmlp_in(
        dir,
        &[
            "interpret",
            "--model",
            model.to_str().unwrap(),
            "--data",
            MNIST_SAMPLE,
            "--out",
            report.to_str().unwrap(),
            "--samples",
            "4",
        ],
    );
    success(&interpret);
    for png in ["contributions.png", "likelihood.png"] {
        assert_png_decodes(&report.join(png));
    }
    assert_references_exist(&report.join("report.html"));
    assert_eq!(json(&report.join("metrics.json"))["test_accuracy"].as_f64(), Some(test_accuracy));
    assert_eq!(fs::read_to_string(report.join("layers.csv")).unwrap().lines().count(), 4);
}

#[test]
fn the_literal_model_with_relu_grad_zero_stalls_at_ln_10() {
    let tmp = TempDir::new("literal");
    let dir = tmp.path();
    let out = dir.join("run");
    let args = [
        "--layers",
        "3",
        "--epochs",
        "1",
        "--class-activation",
        "relu",
        "--relu-grad-at-zero",
        "0",
    ];
    let run = idmlp_in(
        dir,
        &[&["train", "--data", MNIST_SAMPLE, "--out", out.to_str().unwrap()], &args[..]].concat(),
    );
    success(&run);
    let metrics = json(&out.join("metrics.json"));
    let loss = metrics["epochs"][0]["train_loss"].as_f64().unwrap();
    assert!((loss - 10f64.ln()).abs() < 1e-5, "loss {loss} moved off ln 10");
    // Nothing moved: every weight is still exactly the identity.
    for d in metrics["identity_distance"].as_array().unwrap() {
        assert_eq!(d.as_f64(), Some(0.0));
    }
}

#[test]
fn a_damaged_checkpoint_is_a_clear_error_not_a_panic() {
    let tmp = TempDir::new("damaged");
    let dir = tmp.path();
    let model = dir.join("model.idmlp");
    fs::write(&model, b"IDMLPCK\0 this is not a checkpoint").unwrap();
    let out = idmlp_in(dir, &["eval", "--model", model.to_str().unwrap(), "--data", MNIST_SAMPLE]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: checkpoint ") && err.contains("model.idmlp"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn no_arguments_runs_the_default_job_and_writes_a_working_report() {
    let tmp = TempDir::new("default");
    let dir = tmp.path();
    let out = idmlp_in(dir, &[]);
    success(&out);
    let report = dir.join("idmlp-out/report.html");
    assert!(text(&out.stdout).contains("idmlp-out/report.html"), "{}", text(&out.stdout));
    for png in ["contributions.png", "likelihood.png"] {
        assert_png_decodes(&dir.join("idmlp-out").join(png));
    }
    assert_references_exist(&report);
    let metrics = json(&dir.join("idmlp-out/metrics.json"));
    assert_eq!(metrics["layer_accuracy"].as_array().unwrap().len(), 20);
    assert!(metrics["test_accuracy"].as_f64().unwrap() > 0.85, "{metrics}");
}

#[test]
fn divergence_stops_training_with_an_error_and_keeps_the_last_good_checkpoint() {
    let tmp = TempDir::new("diverge");
    let dir = tmp.path();
    let out = dir.join("run");
    let out_arg = out.to_str().unwrap();
    let small = ["--layers", "2", "--epochs", "1"];
    success(&idmlp_in(
        dir,
        &[&["train", "--data", MNIST_SAMPLE, "--out", out_arg], &small[..]].concat(),
    ));
    let model = out.join("model.idmlp");
    let good = fs::read(&model).unwrap();

    let run = idmlp_in(
        dir,
        &[&["train", "--data", MNIST_SAMPLE, "--out", out_arg, "--lr", "1e6"], &small[..]].concat(),
    );
    assert_eq!(run.status.code(), Some(1), "stdout: {}", text(&run.stdout));
    let err = text(&run.stderr);
    assert!(err.contains("training diverged in epoch 1, step "), "{err}");
    assert!(err.contains("--lr"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The earlier run's checkpoint is untouched and still loads.
    assert_eq!(fs::read(&model).unwrap(), good, "the good checkpoint was overwritten");
    success(&idmlp_in(dir, &["eval", "--model", model.to_str().unwrap(), "--data", MNIST_SAMPLE]));
}
