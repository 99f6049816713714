//! Checkpoints: exact round trips (owned and mapped), atomic replacement, and a typed
//! error naming the file for every kind of damage.

mod common;

use common::TempDir;
use idmlp::checkpoint::{
    self, CheckpointError, CompletedEpoch, HEADER_LEN, MappedCheckpoint, Problem, TrainingState,
};
use idmlp::data::StreamState;
use idmlp::mlp::{Architecture, ClassActivation, Init, Mlp};
use idmlp::optim::{Adam, LrSchedule, Optimizer, OptimizerKind};
use idmlp::tape::ReluGradAtZero;
use idmlp::train::EpochProgress;

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

fn training_state(mlp: &Mlp, kind: OptimizerKind) -> TrainingState {
    let mut optimizer = Optimizer::new(kind, mlp.params.len());
    let grads: Vec<f32> = (0..mlp.params.len()).map(|i| (i as f32 * 0.11).cos()).collect();
    let mut params = mlp.params.clone();
    for _ in 0..3 {
        optimizer.step(&mut params, &grads);
    }
    // Momentum and Adam with a schedule, SGD without: both encodings round-trip.
    let schedule = match kind {
        OptimizerKind::Sgd { .. } => LrSchedule::Constant,
        _ => LrSchedule::Cosine { epochs: 10 },
    };
    TrainingState {
        optimizer,
        schedule,
        batch_size: 7,
        stream: StreamState { seed: 11, epoch: 2, cursor: 14 },
        train_samples: 30,
        epoch: EpochProgress { steps: 2, samples: 14, correct: 9, loss_sum: 12.5, seconds: 0.25 },
        history: vec![
            CompletedEpoch {
                train_loss: 2.1,
                train_accuracy: 0.3,
                test_accuracy: Some(0.4),
                seconds: 1.5,
            },
            CompletedEpoch {
                train_loss: 1.1,
                train_accuracy: 0.6,
                test_accuracy: None,
                seconds: 1.0,
            },
        ],
    }
}

#[test]
fn training_state_round_trips_for_every_optimizer() {
    let dir = TempDir::new("state");
    let path = dir.path().join("model.idmlp");
    let mlp = model();
    for kind in [
        OptimizerKind::Sgd { lr: 0.1 },
        OptimizerKind::Momentum { lr: 0.01, mu: 0.9 },
        OptimizerKind::Adam(Adam::default()),
    ] {
        let state = training_state(&mlp, kind);
        checkpoint::save_with_state(&path, &mlp, Init::default(), &state).unwrap();
        let (loaded, meta, loaded_state) = checkpoint::load_with_state(&path).unwrap();
        assert_eq!(meta.arch, mlp.arch);
        assert_eq!(bits(&loaded.params), bits(&mlp.params));
        assert_eq!(loaded_state.as_ref(), Some(&state), "{kind:?}");
        // The weights-only readers see the same weights and skip the state.
        assert_eq!(bits(&checkpoint::load(&path).unwrap().0.params), bits(&mlp.params));
        assert_eq!(bits(MappedCheckpoint::open(&path).unwrap().params()), bits(&mlp.params));
    }
    checkpoint::save(&path, &mlp, Init::default()).unwrap();
    assert_eq!(checkpoint::load_with_state(&path).unwrap().2, None);
}

#[test]
fn version_1_files_still_load_and_keep_their_reserved_bytes_zero() {
    let dir = TempDir::new("v1");
    let path = dir.path().join("model.idmlp");
    let mlp = model();
    checkpoint::save(&path, &mlp, Init::default()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 1; // the version is outside the checksum
    std::fs::write(&path, &bytes).unwrap();
    let (loaded, _, state) = checkpoint::load_with_state(&path).unwrap();
    assert_eq!(bits(&loaded.params), bits(&mlp.params));
    assert_eq!(state, None);
    // Version 1 has no training state: bytes 56..64 are reserved there.
    bytes[56] = 4;
    std::fs::write(&path, &bytes).unwrap();
    let err = checkpoint::load(&path).unwrap_err();
    assert!(matches!(problem(&err), Problem::BadField { field: "reserved 56..64", .. }), "{err}");
}

/// Saves a model with a momentum state, lets `damage` edit the state section (and the
/// header's state length, for truncation), re-signs the file so the checksum holds,
/// and returns the loader's error.
fn damaged_state(name: &str, damage: impl FnOnce(&mut Vec<u8>)) -> (TempDir, CheckpointError) {
    let dir = TempDir::new(name);
    let path = dir.path().join("model.idmlp");
    let mlp = model();
    let state = training_state(&mlp, OptimizerKind::Momentum { lr: 0.01, mu: 0.9 });
    checkpoint::save_with_state(&path, &mlp, Init::default(), &state).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let params_end = HEADER_LEN + 4 * mlp.params.len();
    let mut section = bytes[params_end..].to_vec();
    damage(&mut section);
    let mut file = bytes[..params_end].to_vec();
    file[56..64].copy_from_slice(&(section.len() as u64).to_le_bytes());
    let sum = checkpoint::checksum_parts(&[&bytes[HEADER_LEN..params_end], &section]);
    file[48..56].copy_from_slice(&sum.to_le_bytes());
    file.extend_from_slice(&section);
    std::fs::write(&path, &file).unwrap();
    let err = checkpoint::load_with_state(&path).unwrap_err();
    let mapped_err = MappedCheckpoint::open(&path).unwrap_err();
    assert_eq!(err.to_string(), mapped_err.to_string(), "owned and mapped loads disagree");
    assert!(err.to_string().contains("model.idmlp"), "error does not name the file: {err}");
    (dir, err)
}

#[test]
fn a_lying_training_state_is_refused_with_the_field_named() {
    type Damage = fn(&mut Vec<u8>);
    let cases: [(&str, Damage, &str); 10] = [
        ("tag", |s| s[0] = b'X', "wrong tag"),
        ("optimizer", |s| s[8] = 9, "unknown optimizer"),
        ("schedule", |s| s[9] = 2, "unknown lr schedule"),
        ("reserved", |s| s[11] = 1, "reserved bytes are not zero"),
        // The momentum state is saved with a 10-epoch cosine schedule.
        (
            "cosine 2^32",
            |s| s[120..128].copy_from_slice(&(1u64 << 32).to_le_bytes()),
            "lr schedule length",
        ),
        ("constant 10", |s| s[9] = 0, "lr schedule length is invalid"),
        ("lr", |s| s[12..16].copy_from_slice(&f32::NAN.to_le_bytes()), "learning rate"),
        ("cursor", |s| s[56..64].copy_from_slice(&99u64.to_le_bytes()), "epoch position"),
        // Claims a million completed epochs: refused by length, nothing allocated.
        (
            "history",
            |s| {
                s[48..56].copy_from_slice(&1_000_000u64.to_le_bytes());
                s[112..120].copy_from_slice(&1_000_000u64.to_le_bytes());
            },
            "length disagrees with the number of completed epochs",
        ),
        ("moments", |s| s.truncate(200), "too short for the optimizer's moments"),
    ];
    for (name, damage, expected) in cases {
        let (_, err) = damaged_state(name, damage);
        assert!(matches!(problem(&err), Problem::BadState { .. }), "{name}: {err}");
        assert!(err.to_string().contains(expected), "{name}: {err}");
    }
}
