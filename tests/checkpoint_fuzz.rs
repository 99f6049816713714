//! Replays the committed fuzz corpus and regressions of the `checkpoint_parse` target
//! (fuzz/) through its body, `checkpoint::fuzz_checkpoint_parse`, on stable Rust; and
//! mutates a valid checkpoint at random through the same body.

use std::fs;
use std::path::{Path, PathBuf};

use idmlp::checkpoint::{self, CheckpointError, Problem};
use idmlp::optim::LrSchedule;
use quickcheck::QuickCheck;

fn fuzz_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(sub).join("checkpoint_parse")
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
}

#[test]
fn replay_fuzz_corpus_and_regressions() {
    let mut replayed = 0;
    for sub in ["corpus", "regressions"] {
        let dir = fuzz_dir(sub);
        // regressions/ appears with the first crasher; corpus/ must exist.
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(_) if sub == "regressions" => continue,
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| checkpoint::fuzz_checkpoint_parse(&bytes));
            assert!(outcome.is_ok(), "fuzz input {} panics", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "only {replayed} fuzz inputs found under fuzz/*/checkpoint_parse");
}

#[test]
fn corpus_holds_valid_and_damaged_seeds() {
    let dir = fuzz_dir("corpus");
    let parse = |name| checkpoint::parse(Path::new(name), &read(&dir, name));
    let meta = parse("valid-d2-c2-l1-identity").unwrap();
    assert_eq!((meta.arch.inputs, meta.arch.classes, meta.arch.layers), (2, 2, 1));
    for name in ["err-truncated-payload", "err-bad-magic", "err-lying-l", "err-flipped-payload-bit"]
    {
        assert!(parse(name).is_err(), "{name} parses");
    }
    // Seeds with a training state, one per optimizer, so the fuzzer reaches its decoder.
    for name in ["state-sgd", "state-momentum", "state-adam", "state-cosine"] {
        let (_, _, state) = checkpoint::load_with_state(dir.join(name)).unwrap();
        assert!(state.is_some(), "{name} has no training state");
    }
    let (_, _, cosine) = checkpoint::load_with_state(dir.join("state-cosine")).unwrap();
    assert_eq!(cosine.unwrap().schedule, LrSchedule::Cosine { epochs: 3 });
}

/// Fuzzer finding: He/Xavier headers with a non-zero init scale were accepted, so the
/// header did not round-trip. They are now rejected, naming the field.
#[test]
fn nonzero_scale_without_identity_init_is_rejected() {
    let bytes = read(&fuzz_dir("regressions"), "xavier-nonzero-init-scale");
    match checkpoint::parse(Path::new("x"), &bytes) {
        Err(CheckpointError::Invalid { problem: Problem::BadField { field, .. }, .. }) => {
            assert_eq!(field, "init scale");
        }
        other => panic!("{other:?}"),
    }
}

/// Any bytes overwritten anywhere in a valid checkpoint (weights only, or with an Adam
/// training state) never panic the fuzz body.
#[test]
fn prop_mutated_checkpoint_never_panics() {
    const VALID: &[u8] = include_bytes!("../fuzz/corpus/checkpoint_parse/valid-d1-c2-l2-he-relu");
    const STATEFUL: &[u8] = include_bytes!("../fuzz/corpus/checkpoint_parse/state-adam");
    fn prop(edits: Vec<(u16, u8)>, cut: u16, stateful: bool) -> bool {
        let mut bytes = if stateful { STATEFUL.to_vec() } else { VALID.to_vec() };
        for (at, value) in edits {
            let at = usize::from(at) % bytes.len();
            bytes[at] = value;
        }
        bytes.truncate(bytes.len() - usize::from(cut) % 8);
        checkpoint::fuzz_checkpoint_parse(&bytes);
        true
    }
    QuickCheck::new().tests(2000).quickcheck(prop as fn(Vec<(u16, u8)>, u16, bool) -> bool);
}
