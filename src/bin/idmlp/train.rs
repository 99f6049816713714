//! `idmlp train`: train a model on an MNIST-format directory, checkpoint every epoch,
//! and write metrics.

use std::error::Error;
use std::fmt;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, ValueEnum};
use idmlp::checkpoint::{self, CompletedEpoch, TrainingState};
use idmlp::data::{BatchStream, Dataset, LastBatch, Split};
use idmlp::interpret::{Interpreter, evaluate};
use idmlp::mlp::{Architecture, ClassActivation, Init, Mlp};
use idmlp::optim::{Adam, LrSchedule, OptimizerKind};
use idmlp::report::{self, EpochRecord};
use idmlp::tape::ReluGradAtZero;
use idmlp::train::{EpochProgress, Trainer};
use indicatif::{ProgressBar, ProgressStyle};

use crate::summary;

/// Settings of a training run (shared by `idmlp train` and the default job).
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// MNIST-format data directory (needs the train split; the t10k split, if present,
    /// gives the test accuracy of every epoch).
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory: model.idmlp, metrics.json, layers.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run saved in OUT/model.idmlp (epoch, step, optimizer state and batch
    /// order), or start fresh when there is none. The other options must match the
    /// saved run, except --epochs, which may extend a run with a constant lr (under
    /// the cosine schedule the length is part of the run).
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub hyper: Hyper,
}

/// Model and optimizer settings.
#[derive(Debug, Clone, Args)]
pub struct Hyper {
    /// Hidden layers L, each of width D = d + C.
    #[arg(long, default_value_t = 20)]
    pub layers: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = NonZeroUsize::new(100).unwrap())]
    pub batch: NonZeroUsize,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Momentum)]
    pub optimizer: OptimizerArg,
    /// Learning rate [default: 0.01 for sgd and momentum, 0.001 for adam].
    #[arg(long)]
    pub lr: Option<f32>,
    /// How the lr changes over the epochs: cosine anneals it from --lr towards 0 by the
    /// last epoch (stepped once per epoch), constant keeps it.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    pub lr_schedule: ScheduleArg,
    /// Momentum μ (with --optimizer momentum).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Weight init. Only identity keeps the layer-wise reading meaningful.
    #[arg(long, value_enum, default_value_t = InitArg::Identity)]
    pub init: InitArg,
    /// Diagonal s of the identity init (W = s·I).
    #[arg(long, default_value_t = 1.0)]
    pub init_scale: f32,
    /// Class dims: linear (ours) or relu (the paper's literal model).
    #[arg(long, value_enum, default_value_t = ClassActivationArg::Linear)]
    pub class_activation: ClassActivationArg,
    /// relu′(0): 1 treats the kink as identity (default); 0 is the common convention,
    /// under which the literal model cannot learn from identity init.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1), default_value_t = 1)]
    pub relu_grad_at_zero: u8,
    /// Number of classes; every label must be below it.
    #[arg(long, default_value_t = NonZeroUsize::new(Dataset::DEFAULT_CLASSES).unwrap())]
    pub classes: NonZeroUsize,
    /// Seed of the init and of the batch order: the same seed gives the same run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute threads for training (GEMMs and optimizer updates are split between
    /// them). Results are bit-identical for every thread count; 2 pays from batch ≈ 32,
    /// on free cores (with another busy process on one of two cores, 2 threads
    /// measured 0.90–0.99× the speed of 1).
    #[arg(long, default_value_t = NonZeroUsize::new(1).unwrap())]
    pub threads: NonZeroUsize,
}

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// Plain SGD.
    Sgd,
    /// SGD with momentum.
    Momentum,
    /// Adam.
    Adam,
}

/// `--lr-schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// lr·(1 + cos(π·e/E))/2 in epoch e of E (from 0): settles the last epochs.
    Cosine,
    /// The same lr in every epoch.
    Constant,
}

/// `--init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitArg {
    /// W = s·I (the method).
    Identity,
    /// He uniform.
    He,
    /// Xavier uniform.
    Xavier,
}

/// `--class-activation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassActivationArg {
    /// Linear class dims.
    Linear,
    /// Relu on the class dims too.
    Relu,
}

impl Hyper {
    pub fn optimizer(&self) -> OptimizerKind {
        match self.optimizer {
            OptimizerArg::Sgd => OptimizerKind::Sgd { lr: self.lr.unwrap_or(0.01) },
            OptimizerArg::Momentum => {
                OptimizerKind::Momentum { lr: self.lr.unwrap_or(0.01), mu: self.momentum }
            }
            OptimizerArg::Adam => {
                OptimizerKind::Adam(Adam { lr: self.lr.unwrap_or(1e-3), ..Adam::default() })
            }
        }
    }

    pub fn schedule(&self) -> LrSchedule {
        match self.lr_schedule {
            // `validate` keeps epochs within u32.
            ScheduleArg::Cosine => {
                LrSchedule::Cosine { epochs: u32::try_from(self.epochs).unwrap_or(u32::MAX) }
            }
            ScheduleArg::Constant => LrSchedule::Constant,
        }
    }

    pub fn init(&self) -> Init {
        match self.init {
            InitArg::Identity => Init::Identity { scale: self.init_scale },
            InitArg::He => Init::He,
            InitArg::Xavier => Init::Xavier,
        }
    }

    pub fn architecture(&self, inputs: usize) -> Architecture {
        Architecture {
            class_activation: match self.class_activation {
                ClassActivationArg::Linear => ClassActivation::Linear,
                ClassActivationArg::Relu => ClassActivation::Relu,
            },
            relu_grad_at_zero: if self.relu_grad_at_zero == 0 {
                ReluGradAtZero::Zero
            } else {
                ReluGradAtZero::One
            },
            ..Architecture::new(inputs, self.classes.get(), self.layers)
        }
    }

    fn validate(&self) -> Result<(), Box<dyn Error>> {
        if self.layers == 0 {
            return Err("--layers must be at least 1".into());
        }
        if self.epochs > u32::MAX as usize {
            return Err(format!("--epochs must be at most {}", u32::MAX).into());
        }
        let lr = self.optimizer().lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("--lr must be a positive number, got {lr}").into());
        }
        if !self.init_scale.is_finite() {
            return Err("--init-scale must be finite".into());
        }
        Ok(())
    }
}

/// What a finished run produced.
pub struct Trained {
    pub mlp: Mlp,
    pub init: Init,
    pub epochs: Vec<EpochRecord>,
    pub model_path: PathBuf,
}

/// Ctrl-C stopped training after a step; the checkpoint at `path` continues the run.
#[derive(Debug)]
pub struct Interrupted {
    pub path: PathBuf,
    pub epoch: usize,
    pub step: u64,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interrupted after step {} of epoch {}; the run is saved in {} (add --resume to the same command to continue)",
            self.step,
            self.epoch,
            self.path.display()
        )
    }
}

impl Error for Interrupted {}

/// Set by the first Ctrl-C: training stops after the current step and checkpoints.
static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler once per process. A second Ctrl-C quits at once; the
/// atomic checkpoint write means that still leaves the old checkpoint or the new one.
fn catch_ctrl_c() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: finishing this step and saving (Ctrl-C again to quit now)");
        });
        if let Err(e) = installed {
            eprintln!("note: Ctrl-C will not checkpoint ({e})");
        }
    });
}

/// `idmlp train`.
pub fn run(args: &TrainArgs) -> Result<(), Box<dyn Error>> {
    let train = Dataset::load_with_classes(&args.data, Split::Train, args.hyper.classes.get())?;
    let test = load_optional_test(&args.data, args.hyper.classes.get())?;
    // Only here: the default job is short and has no --resume to continue with.
    catch_ctrl_c();
    let trained = train_model(
        &args.hyper,
        &train,
        test.as_ref(),
        &args.out,
        &args.data.display().to_string(),
        args.resume,
    )?;
    let report_data = test.as_ref().unwrap_or(&train);
    let summary = summary::collect(
        &trained.mlp,
        trained.init,
        report_data,
        0,
        trained.epochs,
        &args.data.display().to_string(),
    )?;
    let metrics = args.out.join("metrics.json");
    report::write_metrics(&metrics, &summary)?;
    report::write_layers_csv(args.out.join("layers.csv"), &summary)?;
    eprintln!("model:   {}", trained.model_path.display());
    eprintln!("metrics: {}", metrics.display());
    println!(
        "test accuracy (layer {}): {:.2}%",
        summary.arch.layers,
        100.0 * summary.test_accuracy
    );
    Ok(())
}

/// The t10k split if the directory has one; a broken one is an error, a missing one is not.
pub fn load_optional_test(dir: &Path, classes: usize) -> Result<Option<Dataset>, Box<dyn Error>> {
    match idmlp::data::SplitFiles::find(dir, Split::Test)? {
        Some(files) => Ok(Some(Dataset::from_paths(&files, classes)?)),
        None => Ok(None),
    }
}

/// Trains on `train`, evaluating on `test` after every epoch, and writes
/// `out/model.idmlp` (weights and training state) atomically after every epoch, and
/// after the current step once Ctrl-C was caught (see `catch_ctrl_c`). With `resume`,
/// continues from `out/model.idmlp` when it exists.
pub fn train_model(
    hyper: &Hyper,
    train: &Dataset,
    test: Option<&Dataset>,
    out: &Path,
    data_name: &str,
    resume: bool,
) -> Result<Trained, Box<dyn Error>> {
    hyper.validate()?;
    if train.is_empty() {
        return Err(format!("{data_name}: the train split is empty").into());
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("cannot create output directory {}: {e}", out.display()))?;
    let model_path = out.join("model.idmlp");
    for name in ["model.idmlp", "metrics.json", "layers.csv"] {
        remove_stale_temporaries(out, name);
    }
    let arch = hyper.architecture(train.pixels());
    let init = hyper.init();
    let kind = hyper.optimizer();
    let schedule = hyper.schedule();
    let resumed = if resume { resume_from(&model_path, hyper, train)? } else { None };
    eprintln!(
        "training: L = {}, D = {} ({}×{} + {} classes), {} samples, batch {}, {} lr {} ({schedule}), init {:?}, seed {}, {} thread(s)",
        arch.layers,
        arch.width(),
        train.rows(),
        train.cols(),
        arch.classes,
        train.len(),
        hyper.batch,
        kind.name(),
        kind.lr(),
        init,
        hyper.seed,
        hyper.threads
    );
    let (mut trainer, mut stream, mut progress, mut history) = match resumed {
        Some((mlp, state)) => {
            let stream = BatchStream::resume(train, hyper.batch, LastBatch::Keep, state.stream)?;
            let trainer = Trainer::with_optimizer(mlp, state.optimizer);
            (trainer, stream, state.epoch, state.history)
        }
        None => (
            Trainer::new(Mlp::new(arch, init, hyper.seed), kind),
            BatchStream::new(train, hyper.batch, LastBatch::Keep, hyper.seed),
            EpochProgress::default(),
            Vec::with_capacity(hyper.epochs),
        ),
    };
    if resume && (progress.steps > 0 || !history.is_empty()) && history.len() < hyper.epochs {
        eprintln!(
            "resume: continuing {} at epoch {}, after step {}",
            model_path.display(),
            history.len() + 1,
            progress.steps
        );
    }
    let (mut x, mut y) =
        (vec![0.0; hyper.batch.get() * arch.inputs], vec![0u32; hyper.batch.get()]);
    trainer.set_threads(hyper.threads.get());
    let mut interpreter = Interpreter::new();
    let save = |trainer: &Trainer, stream: &BatchStream, progress, history: &[CompletedEpoch]| {
        let state = TrainingState {
            optimizer: trainer.optimizer().clone(),
            schedule,
            batch_size: u32::try_from(hyper.batch.get()).expect("batch size fits u32"),
            stream: stream.state(),
            train_samples: train.len() as u64,
            epoch: progress,
            history: history.to_vec(),
        };
        checkpoint::save_with_state(&model_path, trainer.mlp(), init, &state)
    };
    for epoch in history.len() + 1..=hyper.epochs {
        let bar = ProgressBar::new(stream.batches_per_epoch() as u64).with_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches, loss {msg} ({elapsed}, eta {eta})",
            )
            .expect("valid progress template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", hyper.epochs));
        trainer.set_lr_scale(schedule.scale(epoch - 1));
        bar.set_position(progress.steps);
        let stats = trainer.train_epoch_until(&mut stream, &mut x, &mut y, &mut progress, |step| {
            bar.set_message(format!("{:.4}", step.loss));
            bar.inc(1);
            if STOP.load(Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        bar.finish_and_clear();
        let stats = match stats {
            Ok(Some(stats)) => stats,
            Ok(None) => {
                save(&trainer, &stream, progress, &history)?;
                return Err(Box::new(Interrupted {
                    path: model_path,
                    epoch,
                    step: progress.steps,
                }));
            }
            Err(diverged) => {
                let kept = if model_path.exists() {
                    format!("the last good checkpoint stays at {}", model_path.display())
                } else {
                    "this run wrote no checkpoint".to_string()
                };
                return Err(format!(
                    "training diverged in epoch {epoch}, {diverged} (try a smaller --lr); {kept}"
                )
                .into());
            }
        };
        let test_accuracy = test.map(|t| {
            let metrics = evaluate(&mut interpreter, &arch, &trainer.mlp().params, t, hyper.batch);
            metrics.accuracy().last().copied().unwrap_or(0.0)
        });
        history.push(CompletedEpoch {
            train_loss: stats.train_loss,
            train_accuracy: stats.train_accuracy,
            test_accuracy,
            seconds: stats.seconds,
        });
        progress = EpochProgress::default();
        save(&trainer, &stream, progress, &history)?;
        eprintln!(
            "epoch {epoch}/{} (lr {:.3e}): loss {:.4}, train {:.2}%{}, {:.1} s",
            hyper.epochs,
            trainer.optimizer().effective_lr(),
            stats.train_loss,
            100.0 * stats.train_accuracy,
            test_accuracy.map(|a| format!(", test {:.2}%", 100.0 * a)).unwrap_or_default(),
            stats.seconds
        );
    }
    let epochs = history
        .iter()
        .enumerate()
        .map(|(i, e)| EpochRecord {
            epoch: i + 1,
            train_loss: e.train_loss,
            train_accuracy: e.train_accuracy,
            test_accuracy: e.test_accuracy,
            seconds: e.seconds,
        })
        .collect();
    let (mlp, _) = trainer.into_parts();
    Ok(Trained { mlp, init, epochs, model_path })
}

/// The model and training state to continue from, or `None` (start fresh) when `path`
/// does not exist. A checkpoint of another run (other architecture, optimizer, batch
/// size, seed or data) is an error listing every difference.
fn resume_from(
    path: &Path,
    hyper: &Hyper,
    train: &Dataset,
) -> Result<Option<(Mlp, TrainingState)>, Box<dyn Error>> {
    if !path.exists() {
        eprintln!("resume: no checkpoint at {}; starting fresh", path.display());
        return Ok(None);
    }
    let (mlp, meta, state) = checkpoint::load_with_state(path)?;
    let Some(state) = state else {
        return Err(format!(
            "cannot resume from {}: it holds weights only, no training state (written by an older idmlp or by the library's checkpoint::save)",
            path.display()
        )
        .into());
    };
    let arch = hyper.architecture(train.pixels());
    let mut differences = Vec::new();
    let mut differ = |what: &str, saved: String, now: String| {
        if saved != now {
            differences.push(format!("{what}: checkpoint {saved}, now {now}"));
        }
    };
    differ("architecture", format!("{:?}", meta.arch), format!("{arch:?}"));
    differ("init", format!("{:?}", meta.init), format!("{:?}", hyper.init()));
    differ(
        "optimizer",
        format!("{:?}", state.optimizer.kind()),
        format!("{:?}", hyper.optimizer()),
    );
    differ("lr schedule", state.schedule.to_string(), hyper.schedule().to_string());
    differ("batch", state.batch_size.to_string(), hyper.batch.to_string());
    differ("seed", state.stream.seed.to_string(), hyper.seed.to_string());
    differ("training samples", state.train_samples.to_string(), train.len().to_string());
    if !differences.is_empty() {
        return Err(format!(
            "cannot resume from {}: it belongs to another run ({})",
            path.display(),
            differences.join("; ")
        )
        .into());
    }
    let done = state.history.len();
    let mid_epoch = state.epoch.steps > 0;
    if done > hyper.epochs || (done == hyper.epochs && mid_epoch) {
        return Err(format!(
            "cannot resume from {}: it is past --epochs {} ({done} epochs done{})",
            path.display(),
            hyper.epochs,
            if mid_epoch { " and part of the next" } else { "" }
        )
        .into());
    }
    if done == hyper.epochs {
        eprintln!("resume: {} already holds all {done} epochs; nothing to train", path.display());
    }
    Ok(Some((mlp, state)))
}

/// Removes temporaries of `name` that a killed run left in `dir` (`.NAME.tmp-*`, see
/// the atomic writer): they are never a checkpoint, only wasted space.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
