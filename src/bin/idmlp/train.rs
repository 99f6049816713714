//! `idmlp train`: train a model on an MNIST-format directory, checkpoint every epoch,
//! and write metrics.

use std::error::Error;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use idmlp::checkpoint;
use idmlp::data::{BatchStream, Dataset, LastBatch, Split};
use idmlp::interpret::{Interpreter, evaluate};
use idmlp::mlp::{Architecture, ClassActivation, Init, Mlp};
use idmlp::optim::{Adam, OptimizerKind};
use idmlp::report::{self, EpochRecord};
use idmlp::tape::ReluGradAtZero;
use idmlp::train::Trainer;
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
    /// Compute threads. Training currently runs on one thread; more are accepted for
    /// forward compatibility and reported as such.
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

/// `idmlp train`.
pub fn run(args: &TrainArgs) -> Result<(), Box<dyn Error>> {
    let train = Dataset::load_with_classes(&args.data, Split::Train, args.hyper.classes.get())?;
    let test = load_optional_test(&args.data, args.hyper.classes.get())?;
    let trained = train_model(
        &args.hyper,
        &train,
        test.as_ref(),
        &args.out,
        &args.data.display().to_string(),
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
/// `out/model.idmlp` atomically after every epoch.
pub fn train_model(
    hyper: &Hyper,
    train: &Dataset,
    test: Option<&Dataset>,
    out: &Path,
    data_name: &str,
) -> Result<Trained, Box<dyn Error>> {
    hyper.validate()?;
    if train.is_empty() {
        return Err(format!("{data_name}: the train split is empty").into());
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("cannot create output directory {}: {e}", out.display()))?;
    if hyper.threads.get() > 1 {
        eprintln!(
            "note: --threads {} accepted; training currently runs on one thread",
            hyper.threads
        );
    }
    let arch = hyper.architecture(train.pixels());
    let init = hyper.init();
    let kind = hyper.optimizer();
    eprintln!(
        "training: L = {}, D = {} ({}×{} + {} classes), {} samples, batch {}, {} lr {}, init {:?}, seed {}",
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
        hyper.seed
    );
    let mut trainer = Trainer::new(Mlp::new(arch, init, hyper.seed), kind);
    let mut stream = BatchStream::new(train, hyper.batch, LastBatch::Keep, hyper.seed);
    let (mut x, mut y) =
        (vec![0.0; hyper.batch.get() * arch.inputs], vec![0u32; hyper.batch.get()]);
    let mut interpreter = Interpreter::new();
    let model_path = out.join("model.idmlp");
    let mut epochs = Vec::with_capacity(hyper.epochs);
    for epoch in 1..=hyper.epochs {
        let bar = ProgressBar::new(stream.batches_per_epoch() as u64).with_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches, loss {msg} ({elapsed}, eta {eta})",
            )
            .expect("valid progress template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", hyper.epochs));
        let stats = trainer.train_epoch(&mut stream, &mut x, &mut y, |step| {
            bar.set_message(format!("{:.4}", step.loss));
            bar.inc(1);
        });
        bar.finish_and_clear();
        let stats = stats.map_err(|diverged| {
            let kept = if epoch > 1 {
                format!(
                    "the last good checkpoint (epoch {}) stays at {}",
                    epoch - 1,
                    model_path.display()
                )
            } else {
                "this run wrote no checkpoint".to_string()
            };
            format!("training diverged in epoch {epoch}, {diverged} (try a smaller --lr); {kept}")
        })?;
        let test_accuracy = test.map(|t| {
            let metrics = evaluate(&mut interpreter, &arch, &trainer.mlp().params, t, hyper.batch);
            metrics.accuracy().last().copied().unwrap_or(0.0)
        });
        checkpoint::save(&model_path, trainer.mlp(), init)?;
        let record = EpochRecord {
            epoch,
            train_loss: stats.train_loss,
            train_accuracy: stats.train_accuracy,
            test_accuracy,
            seconds: stats.seconds,
        };
        eprintln!(
            "epoch {epoch}/{}: loss {:.4}, train {:.2}%{}, {:.1} s",
            hyper.epochs,
            record.train_loss,
            100.0 * record.train_accuracy,
            test_accuracy.map(|a| format!(", test {:.2}%", 100.0 * a)).unwrap_or_default(),
            record.seconds
        );
        epochs.push(record);
    }
    let (mlp, _) = trainer.into_parts();
    Ok(Trained { mlp, init, epochs, model_path })
}
