//! `idmlp bench` end to end on a tiny configuration: the JSON report has the promised
//! keys, its numbers are sane, and a steady-state step allocates nothing (while the
//! warm-up does, which shows that the counting allocator is live).
#![cfg(feature = "cli")]

use std::process::{Command, Output};

/// Runs `idmlp bench` with `args`.
fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idmlp")).arg("bench").args(args).output().expect("run idmlp")
}

#[test]
fn bench_json_reports_step_cost_and_zero_allocations() {
    let out = bench(&["--batch", "4", "--layers", "2", "--steps", "3", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    for key in [
        "batch",
        "layers",
        "threads",
        "optimizer",
        "ms_per_step",
        "gflops",
        "gemm_ms",
        "allocs_per_step",
    ] {
        assert!(v.get(key).is_some(), "missing key {key} in {v}");
    }
    assert_eq!(v["batch"], 4);
    assert_eq!(v["layers"], 2);
    assert_eq!(v["threads"], 1);
    assert_eq!(v["optimizer"], "momentum");
    // 6·B·D²·L − 2·B·D² (the first layer needs no input gradient), D = 794.
    assert_eq!(v["step_flops"], 2 * 4 * 794 * 794 * 5);
    for key in ["ms_per_step", "gflops", "gemm_ms"] {
        let x = v[key].as_f64().unwrap();
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    assert_eq!(v["allocs_per_step"].as_f64(), Some(0.0), "a steady-state step allocated");
    assert!(v["allocs_warmup"].as_u64().unwrap() > 0, "the allocation counter saw nothing");
    // One thread: no twin, no speed-up, no second thread to time a round trip to.
    for key in ["thread_speedup", "core_round_trip_ns", "core_round_trip_ns_quartiles"] {
        assert!(v[key].is_null(), "{key} in a one-thread run: {v}");
    }
}

/// `--threads 2 --independent`: both speed-ups and the threads' round trip are reported
/// as positive numbers with their quartiles, and the threads spawned every round (the
/// independent trainers, the round trip's echo) are not counted as the step's
/// allocations. Without `--independent` its fields are null.
#[test]
fn bench_json_reports_thread_and_independent_speedups() {
    let run = |extra: &[&str]| {
        let mut args = vec!["--batch", "16", "--layers", "2", "--steps", "3", "--threads", "2"];
        args.extend_from_slice(extra);
        args.push("--json");
        let out = bench(&args);
        assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("one JSON object")
    };
    let v = run(&["--independent"]);
    assert_eq!(v["threads"], 2);
    for key in ["thread_speedup", "independent_speedup", "one_thread_ms"] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"));
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    // Three rounds: the median lies between the interpolated quartiles.
    for key in ["thread_speedup", "independent_speedup", "core_round_trip_ns"] {
        let q = &v[format!("{key}_quartiles")];
        let (q1, q3) = (q[0].as_f64().unwrap(), q[1].as_f64().unwrap());
        let x = v[key].as_f64().unwrap();
        assert!(0.0 < q1 && q1 <= x && x <= q3 && q3.is_finite(), "{key}: {q1} {x} {q3}");
    }
    assert_eq!(v["allocs_per_step"].as_f64(), Some(0.0), "a steady-state step allocated");
    let plain = run(&[]);
    assert!(plain["independent_speedup"].is_null(), "{plain}");
    assert!(plain["independent_speedup_quartiles"].is_null(), "{plain}");
    assert!(plain["thread_speedup"].as_f64().is_some(), "{plain}");
}

/// `--independent` on one thread has nothing to compare: a clear error, not a silent null.
#[test]
fn bench_independent_needs_two_threads() {
    let out = bench(&["--batch", "4", "--layers", "1", "--steps", "1", "--independent"]);
    assert!(!out.status.success(), "a one-thread --independent run succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--independent") && err.contains("--threads 2"), "stderr: {err}");
}
