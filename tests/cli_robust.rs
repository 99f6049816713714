//! Robustness of `idmlp train` and `idmlp eval` (issue 6): Ctrl-C checkpoints and
//! `--resume` continues bit for bit; SIGKILL at random moments never leaves a torn
//! checkpoint; a checkpoint of another run is refused; every hostile IDX fixture of
//! the fuzz corpus is a clear error that leaves `--out` untouched.
#![cfg(feature = "cli")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use idmlp::checkpoint::{self, TrainingState};
use idmlp::idx::IdxFile;
use idmlp::mlp::{Architecture, Init, Mlp};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

mod common;

use common::{TempDir, success, text};

const MNIST_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-sample");
/// Small enough for a debug build (about 3 s an epoch on the Zen 3 host, 0.3–0.4 s on
/// the Zen 5 one), long enough to interrupt: the tests draw their interruption moments
/// as fractions of how long this run takes uninterrupted ([`reference_seconds`]), not
/// in fixed milliseconds, so that a faster machine does not finish before the signal.
const RUN: [&str; 4] = ["--layers", "2", "--epochs", "3"];

fn idmlp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_idmlp"))
}

fn train_args(out: &Path) -> Vec<String> {
    let mut args = vec!["train", "--data", MNIST_SAMPLE, "--out", out.to_str().unwrap()];
    args.extend(RUN);
    args.into_iter().map(String::from).collect()
}

fn spawn(args: &[String]) -> Child {
    idmlp().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("run idmlp")
}

/// A seeded generator whose seed is printed, so a failing schedule can be replayed
/// with `IDMLP_TEST_SEED`.
fn schedule_rng(test: &str) -> Xoshiro256PlusPlus {
    let seed =
        std::env::var("IDMLP_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
        });
    eprintln!("{test}: IDMLP_TEST_SEED={seed}");
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The checkpoint's weights as bits and its training state.
fn saved(path: &Path) -> (Vec<u32>, TrainingState) {
    let (mlp, _, state) = checkpoint::load_with_state(path)
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    let state = state.unwrap_or_else(|| panic!("{} has no training state", path.display()));
    (mlp.params.iter().map(|v| v.to_bits()).collect(), state)
}

/// What must match bit for bit between two runs: weights, optimizer moments and step
/// count, batch order, and every epoch's numbers except its wall time.
fn assert_same_run(a: &(Vec<u32>, TrainingState), b: &(Vec<u32>, TrainingState)) {
    assert!(a.0 == b.0, "weights differ");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (oa, ob) = (&a.1.optimizer, &b.1.optimizer);
    assert_eq!(oa.steps(), ob.steps());
    assert!(bits(oa.moments().0) == bits(ob.moments().0), "optimizer moments differ");
    assert_eq!(a.1.stream, b.1.stream);
    let numbers = |s: &TrainingState| {
        s.history
            .iter()
            .map(|e| (e.train_loss, e.train_accuracy, e.test_accuracy))
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(&a.1), numbers(&b.1));
}

/// The uninterrupted run, trained once per test binary, and its wall time in seconds
/// (from spawn to exit).
fn reference_run() -> &'static ((Vec<u32>, TrainingState), f64) {
    static REFERENCE: OnceLock<((Vec<u32>, TrainingState), f64)> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let tmp = TempDir::new("reference");
        let out = tmp.path().join("run");
        let start = Instant::now();
        success(&idmlp().args(train_args(&out)).output().unwrap());
        let seconds = start.elapsed().as_secs_f64();
        let run = saved(&out.join("model.idmlp"));
        assert_eq!(run.1.history.len(), 3);
        (run, seconds)
    })
}

/// The uninterrupted run's checkpoint.
fn reference() -> &'static (Vec<u32>, TrainingState) {
    &reference_run().0
}

/// How long the uninterrupted run takes on this machine, in seconds.
fn reference_seconds() -> f64 {
    reference_run().1
}

/// A random moment in `from..to` of the uninterrupted run's time.
fn moment(rng: &mut Xoshiro256PlusPlus, from: f64, to: f64) -> Duration {
    Duration::from_secs_f64(reference_seconds() * rng.random_range(from..to))
}

#[test]
fn ctrl_c_checkpoints_and_resume_matches_an_uninterrupted_run_bit_for_bit() {
    let mut rng = schedule_rng("ctrl_c");
    let tmp = TempDir::new("ctrl-c");
    let out = tmp.path().join("run");
    let model = out.join("model.idmlp");
    let args = train_args(&out);

    // Timed first, so that its run does not share the cores with this one.
    let delay = moment(&mut rng, 0.0, 0.4);
    let child = spawn(&args);
    // Interrupt after epoch 1's checkpoint, a random moment later (most likely in
    // epoch 2): at most 0.4 of the whole run's time, while two thirds of its epochs,
    // more than that, are still to come.
    wait_for(&model);
    std::thread::sleep(delay);
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let run = child.wait_with_output().unwrap();
    let err = text(&run.stderr);
    assert_eq!(run.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted after step "), "{err}");
    assert!(err.contains("--resume"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (_, state) = saved(&model);
    // After epoch 1 and before the run's end (on a fast machine, maybe in epoch 3).
    assert!((1..3).contains(&state.history.len()), "{} epochs done", state.history.len());
    assert!(state.epoch.steps > 0, "the checkpoint is mid-epoch");
    assert_eq!(state.epoch.samples, state.stream.cursor);

    let resumed = idmlp().args(&args).arg("--resume").output().unwrap();
    success(&resumed);
    let err = text(&resumed.stderr);
    assert!(err.contains("resume: continuing"), "{err}");
    assert_same_run(&saved(&model), reference());
}

#[test]
fn sigkill_at_random_moments_never_tears_the_checkpoint_and_resume_finishes() {
    let mut rng = schedule_rng("sigkill");
    let tmp = TempDir::new("sigkill");
    let out = tmp.path().join("run");
    let model = out.join("model.idmlp");
    let mut args = train_args(&out);
    args.push("--resume".into());

    let mut last = (0, 0);
    for round in 0..5 {
        // 5–40% of an uninterrupted run (from start-up on): every round makes some
        // progress, and the run rarely finishes before the last.
        let delay = moment(&mut rng, 0.05, 0.4);
        let mut child = spawn(&args);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL: no handler runs
        child.wait().unwrap();
        if model.exists() {
            let (_, state) = saved(&model);
            let position = (state.history.len(), state.epoch.steps);
            assert!(
                position >= last,
                "round {round}: the run went back from {last:?} to {position:?}"
            );
            last = position;
        }
        // The checkpoint, the final outputs once a round has finished the run (later
        // rounds then have nothing to train), and at most temporaries of an unfinished
        // atomic write: nothing else, and never a half-written file under a real name.
        const OUTPUTS: [&str; 3] = ["model.idmlp", "metrics.json", "layers.csv"];
        for entry in fs::read_dir(&out).into_iter().flatten() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let temporary_of = |o: &str| name.starts_with(&format!(".{o}.tmp-"));
            assert!(
                OUTPUTS.contains(&name.as_str()) || OUTPUTS.iter().any(|o| temporary_of(o)),
                "round {round}: unexpected file {name}"
            );
        }
        if out.join("metrics.json").exists() {
            let metrics = fs::read_to_string(out.join("metrics.json")).unwrap();
            assert!(metrics.contains("\"test_accuracy\""), "round {round}: torn metrics.json");
        }
    }
    success(&idmlp().args(&args).output().unwrap());
    assert_same_run(&saved(&model), reference());
    let leftovers: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "stale temporaries were not cleaned: {leftovers:?}");
}

#[test]
fn resume_refuses_another_runs_checkpoint_and_starts_fresh_without_one() {
    let tmp = TempDir::new("resume-mismatch");
    let out = tmp.path().join("run");
    let model = out.join("model.idmlp");
    let base = ["train", "--data", MNIST_SAMPLE, "--out", out.to_str().unwrap(), "--layers", "1"];

    let fresh = idmlp().args(base).args(["--epochs", "1", "--resume"]).output().unwrap();
    success(&fresh);
    assert!(text(&fresh.stderr).contains("starting fresh"), "{}", text(&fresh.stderr));
    let good = fs::read(&model).unwrap();

    let other = idmlp()
        .args(base)
        .args(["--epochs", "2", "--resume", "--batch", "50", "--optimizer", "sgd"])
        .output()
        .unwrap();
    let err = text(&other.stderr);
    assert_eq!(other.status.code(), Some(1), "{err}");
    assert!(err.contains("belongs to another run"), "{err}");
    assert!(err.contains("batch: checkpoint 100, now 50"), "{err}");
    assert!(err.contains("optimizer: checkpoint Momentum"), "{err}");
    // Under the (default) cosine schedule the run's length is part of the run.
    assert!(err.contains("lr schedule: checkpoint cosine over 1 epoch, now cosine over 2 epochs"));
    assert_eq!(fs::read(&model).unwrap(), good, "a refused resume changed the checkpoint");

    // Already complete: nothing to train, outputs rewritten, checkpoint unchanged.
    let done = idmlp().args(base).args(["--epochs", "1", "--resume"]).output().unwrap();
    success(&done);
    assert!(text(&done.stderr).contains("nothing to train"), "{}", text(&done.stderr));
    assert_eq!(fs::read(&model).unwrap(), good);

    // With a constant lr, --epochs may extend a finished run.
    let constant = ["--lr-schedule", "constant"];
    success(&idmlp().args(base).args(["--epochs", "1"]).args(constant).output().unwrap());
    let longer =
        idmlp().args(base).args(["--epochs", "2", "--resume"]).args(constant).output().unwrap();
    success(&longer);
    assert!(text(&longer.stderr).contains("continuing"), "{}", text(&longer.stderr));
    let (_, _, state) = checkpoint::load_with_state(&model).unwrap();
    assert_eq!(state.expect("training state").history.len(), 2);

    // A weights-only checkpoint cannot continue a run.
    checkpoint::save(
        &model,
        &Mlp::new(Architecture::new(784, 10, 1), Init::default(), 0),
        Init::default(),
    )
    .unwrap();
    let weights_only = idmlp().args(base).args(["--epochs", "2", "--resume"]).output().unwrap();
    let err = text(&weights_only.stderr);
    assert_eq!(weights_only.status.code(), Some(1), "{err}");
    assert!(err.contains("weights only"), "{err}");
}

/// Every file of the IDX fuzz corpus that is not valid MNIST data, each with whether
/// it goes under a `.gz` name: the parser-error seeds (`err-*`), the broken gzip
/// streams, valid IDX files of the wrong kind, and two name/content mismatches (gzip
/// under a raw name, raw IDX under a `.gz` name).
fn hostile_fixtures() -> Vec<(PathBuf, bool)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/idx_parse");
    let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
    let mut fixtures: Vec<(PathBuf, bool)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !matches!(name(p).as_str(), "gz-valid" | "gz-multi-member"))
        .map(|p| {
            let gz = name(&p).starts_with("gz-");
            (p, gz)
        })
        .collect();
    fixtures.sort();
    fixtures.push((dir.join("gz-valid"), false));
    fixtures.push((dir.join("valid-u8-images-2x4x4"), true));
    assert!(fixtures.len() >= 22, "only {} fixtures in {}", fixtures.len(), dir.display());
    fixtures
}

/// Copies `fixture` into `data` as the images file of `split` (under a `.gz` name if
/// `gz`), next to the sample's real labels. Returns the images file's path.
fn data_dir_with(data: &Path, split: &str, fixture: &Path, gz: bool) -> PathBuf {
    let _ = fs::remove_dir_all(data);
    fs::create_dir_all(data).unwrap();
    let labels = format!("{split}-labels-idx1-ubyte.gz");
    fs::copy(Path::new(MNIST_SAMPLE).join(&labels), data.join(&labels)).unwrap();
    let images = data.join(format!("{split}-images-idx3-ubyte{}", if gz { ".gz" } else { "" }));
    fs::copy(fixture, &images).unwrap();
    images
}

fn assert_clear_error(run: &Output, images: &Path, what: &str) {
    let err = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{what}: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert!(
        err.contains(images.to_str().unwrap()),
        "{what}: the error does not name the file: {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    // When the file itself is unreadable, the CLI says what the library's typed error says.
    if let Err(e) = IdxFile::open(images) {
        let reason = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
        assert!(err.contains(&reason), "{what}: {err} lacks the reason {reason:?}");
    }
}

#[test]
fn hostile_idx_files_are_clear_errors_that_leave_out_untouched() {
    let tmp = TempDir::new("hostile");
    let data = tmp.path().join("data");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    // A previous run's outputs, which a failed run must not touch.
    let model = out.join("model.idmlp");
    checkpoint::save(
        &model,
        &Mlp::new(Architecture::new(784, 10, 1), Init::default(), 0),
        Init::default(),
    )
    .unwrap();
    fs::write(out.join("metrics.json"), b"{\"previous\": true}").unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();

    for (fixture, gz) in hostile_fixtures() {
        let name = fixture.file_name().unwrap().to_str().unwrap().to_string();
        let name = if gz { format!("{name} as .gz") } else { name };
        let images = data_dir_with(&data, "train", &fixture, gz);
        let run = idmlp()
            .args(["train", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(["--layers", "1", "--epochs", "1"])
            .output()
            .unwrap();
        assert_clear_error(&run, &images, &format!("train {name}"));
        let after: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect();
        assert!(after == before, "train {name}: --out changed");

        let images = data_dir_with(&data, "t10k", &fixture, gz);
        let run = idmlp()
            .args(["eval", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap()])
            .output()
            .unwrap();
        assert_clear_error(&run, &images, &format!("eval {name}"));
    }
}

#[test]
fn two_threads_train_the_same_model_bit_for_bit() {
    let tmp = TempDir::new("threads");
    let weights = |threads: &str| {
        let out = tmp.path().join(format!("t{threads}"));
        let run = idmlp()
            .args(["train", "--data", MNIST_SAMPLE, "--out", out.to_str().unwrap()])
            .args(["--layers", "2", "--epochs", "1", "--threads", threads])
            .output()
            .unwrap();
        success(&run);
        assert!(text(&run.stderr).contains(&format!("{threads} thread(s)")));
        saved(&out.join("model.idmlp"))
    };
    assert_same_run(&weights("2"), &weights("1"));
}
