//! The reusable training step: a model, its optimizer, and every buffer a step needs,
//! owned in one place so that after the first step nothing is allocated.

use std::time::Instant;

use idmlp_kernels::argmax;

use crate::data::BatchStream;
use crate::mlp::Mlp;
use crate::optim::{Optimizer, OptimizerKind};
use crate::tape::{Node, Tape};

/// What one step measured on its batch (before the update).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Samples whose last-layer prediction matched the label.
    pub correct: usize,
}

/// What one epoch measured, averaged over the samples it trained on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// Mean training loss (each sample weighted once, before its batch's update).
    pub train_loss: f64,
    /// Fraction of training samples the last layer got right (before the update).
    pub train_accuracy: f64,
    /// Samples trained on.
    pub samples: usize,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// A model with its optimizer, gradient buffer and tape.
///
/// ```
/// use idmlp::mlp::{Architecture, Init, Mlp};
/// use idmlp::optim::OptimizerKind;
/// use idmlp::train::Trainer;
///
/// let arch = Architecture::new(4, 2, 3);
/// let mut trainer = Trainer::new(Mlp::new(arch, Init::default(), 0), OptimizerKind::Sgd { lr: 0.1 });
/// let x = [0.0, 1.0, 0.5, 0.2, 1.0, 0.0, 0.3, 0.9];
/// let first = trainer.step(&x, &[1, 0]).loss;
/// for _ in 0..20 {
///     trainer.step(&x, &[1, 0]);
/// }
/// assert!(trainer.step(&x, &[1, 0]).loss < first);
/// ```
#[derive(Debug)]
pub struct Trainer {
    mlp: Mlp,
    optimizer: Optimizer,
    /// Gradient of the loss, the parameter layout: `W_1, b_1, …` (L·(D² + D)).
    grads: Vec<f32>,
    tape: Tape,
    /// `h_0 … h_L` of the last step.
    hidden: Vec<Node>,
}

impl Trainer {
    /// A trainer for `mlp` with a fresh optimizer state.
    pub fn new(mlp: Mlp, kind: OptimizerKind) -> Self {
        let optimizer = Optimizer::new(kind, mlp.params.len());
        Self::with_optimizer(mlp, optimizer)
    }

    /// A trainer resuming with an existing optimizer state.
    #[track_caller]
    pub fn with_optimizer(mlp: Mlp, optimizer: Optimizer) -> Self {
        let grads = vec![0.0; mlp.params.len()];
        let hidden = Vec::with_capacity(mlp.arch.layers + 1);
        Trainer { mlp, optimizer, grads, tape: Tape::new(), hidden }
    }

    /// One SGD-family step on a batch: `x` is `B×d` (row-major, in `[0, 1]`),
    /// `labels` has `B` entries `< C`. Allocates nothing after the first call with
    /// the largest batch.
    #[track_caller]
    pub fn step(&mut self, x: &[f32], labels: &[u32]) -> StepStats {
        let arch = self.mlp.arch;
        let batch = labels.len();
        assert_eq!(
            x.len(),
            batch * arch.inputs,
            "step: x holds {} values for {batch} samples of {}",
            x.len(),
            arch.inputs
        );
        self.grads.fill(0.0);
        let mut g = self.tape.graph(&self.mlp.params);
        let xn = g.input(x, batch, arch.inputs);
        let logits = arch.forward(&mut g, xn, &mut self.hidden);
        let loss = g.softmax_xent(logits, labels);
        g.backward(loss, &mut self.grads);
        let stats = StepStats {
            loss: g.scalar(loss),
            correct: count_correct(g.value(logits), labels, arch.classes),
        };
        self.optimizer.step(&mut self.mlp.params, &self.grads);
        stats
    }

    /// Trains one epoch of `stream` (until it returns `None`), with `x` (`B·d`) and
    /// `y` (`B`) as the reused batch buffers; `on_step` sees every step's stats (for a
    /// progress bar). Allocates nothing per step.
    pub fn train_epoch(
        &mut self,
        stream: &mut BatchStream<'_>,
        x: &mut [f32],
        y: &mut [u32],
        mut on_step: impl FnMut(StepStats),
    ) -> EpochStats {
        let start = Instant::now();
        let d = self.mlp.arch.inputs;
        let (mut loss_sum, mut correct, mut samples) = (0.0f64, 0usize, 0usize);
        while let Some(n) = stream.next_batch(x, y) {
            let stats = self.step(&x[..n * d], &y[..n]);
            loss_sum += f64::from(stats.loss) * n as f64;
            correct += stats.correct;
            samples += n;
            on_step(stats);
        }
        let per_sample = |v: f64| if samples > 0 { v / samples as f64 } else { 0.0 };
        EpochStats {
            train_loss: per_sample(loss_sum),
            train_accuracy: per_sample(correct as f64),
            samples,
            seconds: start.elapsed().as_secs_f64(),
        }
    }

    /// The model being trained.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The optimizer and its state.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// The gradient of the last step (parameter layout).
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// Gives the model and optimizer back.
    pub fn into_parts(self) -> (Mlp, Optimizer) {
        (self.mlp, self.optimizer)
    }
}

/// Rows of `logits` (`B×C`) whose argmax equals the label.
pub(crate) fn count_correct(logits: &[f32], labels: &[u32], classes: usize) -> usize {
    logits.chunks_exact(classes).zip(labels).filter(|(z, y)| argmax(z) == **y as usize).count()
}
