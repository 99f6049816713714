//! The minimal embedding build stays small (issue 7): `scripts/embed-size.sh` builds
//! `examples/embed.rs` with no crate features in release mode, strips it, and fails at
//! 600 KB or more. Run here so that the README's test command enforces the budget.
#![cfg(unix)]

use std::process::Command;

#[test]
fn stripped_embed_example_is_under_600_kb() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/embed-size.sh");
    let out = Command::new("bash").arg(script).output().expect("run scripts/embed-size.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "embed-size.sh failed\nstdout: {stdout}\nstderr: {stderr}");
    let bytes: u64 = stdout
        .split_whitespace()
        .zip(stdout.split_whitespace().skip(1))
        .find(|(_, unit)| *unit == "bytes")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in: {stdout}"));
    assert!(bytes < 600 * 1024, "{stdout}");
    eprintln!("{stdout}");
}
