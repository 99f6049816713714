//! Checkpoints: exact round trips (owned and mapped), atomic replacement, and a typed
//! error naming the file for every kind of damage.

mod common;

use common::TempDir;
use idmlp::checkpoint::{self, CheckpointError, HEADER_LEN, MappedCheckpoint, Problem};
use idmlp::mlp::{Architecture, ClassActivation, Init, Mlp};
use idmlp::tape::ReluGradAtZero;

fn model() -> Mlp {
    let arch = Architecture {
        class_activation: ClassActivation::Relu,
        relu_grad_at_zero: ReluGradAtZero::Zero,
        ..Architecture::new(5, 3, 2)
    };
    let mut mlp = Mlp::new(arch, Init::Identity { scale: 0.5 }, 0);
    for (i, p) in mlp.params.iter_mut().enumerate() {
        *p += (i as f32 * 0.37).sin() * 1e-3;
    }
    mlp
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn round_trip_is_bit_exact_owned_and_mapped() {
    let dir = TempDir::new("roundtrip");
    let path = dir.path().join("model.idmlp");
    let mlp = model();
    checkpoint::save(&path, &mlp, Init::Identity { scale: 0.5 }).unwrap();
    let (loaded, meta) = checkpoint::load(&path).unwrap();
    assert_eq!(meta.arch, mlp.arch);
    assert_eq!(meta.init, Init::Identity { scale: 0.5 });
    assert_eq!(bits(&loaded.params), bits(&mlp.params));
    let mapped = MappedCheckpoint::open(&path).unwrap();
    assert_eq!(mapped.meta().arch, mlp.arch);
    assert_eq!(bits(mapped.params()), bits(&mlp.params));
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, HEADER_LEN + 4 * mlp.params.len());
}

#[test]
fn save_replaces_atomically_and_leaves_no_temporary_file() {
    let dir = TempDir::new("atomic");
    let path = dir.path().join("model.idmlp");
    let mut mlp = model();
    checkpoint::save(&path, &mlp, Init::default()).unwrap();
    mlp.params[0] = 42.0;
    checkpoint::save(&path, &mlp, Init::default()).unwrap();
    assert_eq!(checkpoint::load(&path).unwrap().0.params[0], 42.0);
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("model.idmlp")]);
}

fn damaged(name: &str, damage: impl FnOnce(&mut Vec<u8>)) -> (TempDir, CheckpointError) {
    let dir = TempDir::new(name);
    let path = dir.path().join("model.idmlp");
    checkpoint::save(&path, &model(), Init::default()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let err = checkpoint::load(&path).unwrap_err();
    let mapped_err = MappedCheckpoint::open(&path).unwrap_err();
    assert_eq!(err.to_string(), mapped_err.to_string(), "owned and mapped loads disagree");
    assert!(err.to_string().contains("model.idmlp"), "error does not name the file: {err}");
    (dir, err)
}

fn problem(err: &CheckpointError) -> &Problem {
    match err {
        CheckpointError::Invalid { problem, .. } => problem,
        other => panic!("expected an invalid-file error, got {other}"),
    }
}

#[test]
fn a_flipped_payload_bit_is_a_checksum_mismatch() {
    let (_, err) = damaged("flip", |b| b[HEADER_LEN + 17] ^= 0x10);
    assert!(matches!(problem(&err), Problem::ChecksumMismatch { .. }), "{err}");
}

#[test]
fn truncation_is_reported_as_such() {
    let (_, err) = damaged("truncated", |b| b.truncate(b.len() - 3));
    assert!(matches!(problem(&err), Problem::LengthMismatch { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    let (_, err) = damaged("short", |b| b.truncate(20));
    assert!(matches!(problem(&err), Problem::TooShort { len: 20 }), "{err}");
    let (_, err) = damaged("empty", Vec::clear);
    assert!(matches!(problem(&err), Problem::TooShort { len: 0 }), "{err}");
}

#[test]
fn trailing_bytes_are_refused() {
    let (_, err) = damaged("trailing", |b| b.extend_from_slice(&[0, 0, 0, 0]));
    assert!(matches!(problem(&err), Problem::LengthMismatch { .. }), "{err}");
}

#[test]
fn header_lies_are_caught_before_any_payload_read() {
    let (_, err) = damaged("magic", |b| b[0] = b'X');
    assert_eq!(problem(&err), &Problem::BadMagic);
    let (_, err) = damaged("version", |b| b[8] = 9);
    assert_eq!(problem(&err), &Problem::UnsupportedVersion { found: 9 });
    // A huge L whose parameter count overflows: an error, never an allocation.
    let (_, err) = damaged("huge", |b| {
        b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        b[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    });
    assert!(matches!(problem(&err), Problem::BadField { field: "L", .. }), "{err}");
    // A consistent-looking header claiming more layers than the file holds.
    let (_, err) = damaged("layers", |b| b[24] = 3);
    assert!(matches!(problem(&err), Problem::ParamCountMismatch { .. }), "{err}");
    let (_, err) = damaged("zero", |b| b[20..24].copy_from_slice(&0u32.to_le_bytes()));
    assert_eq!(problem(&err), &Problem::BadField { field: "C", value: 0 });
    let (_, err) = damaged("activation", |b| b[28] = 7);
    assert!(
        matches!(problem(&err), Problem::BadField { field: "class activation", value: 7 }),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let dir = TempDir::new("missing");
    let path = dir.path().join("nope.idmlp");
    let err = checkpoint::load(&path).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }));
    assert_eq!(err.path(), path);
    assert!(err.to_string().contains("nope.idmlp"));
}
