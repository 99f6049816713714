//! The reusable training step: a model, its optimizer, and every buffer a step needs,
//! owned in one place so that after the first step nothing is allocated.

use std::ops::ControlFlow;
use std::time::Instant;

use idmlp_kernels::{argmax, gemm_ab, gemm_abt, gemm_atb};

use crate::data::BatchStream;
use crate::mlp::{Architecture, Mlp};
use crate::optim::{Optimizer, OptimizerKind};
use crate::tape::{Node, Tape};

/// What one step measured on its batch (before the update).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct StepStats {
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Samples whose last-layer prediction matched the label.
    pub correct: usize,
}

/// What one epoch measured, averaged over the samples it trained on.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
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

/// Running totals of an epoch in progress, kept across an interruption (see
/// [`Trainer::train_epoch_until`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochProgress {
    /// Steps taken this epoch.
    pub steps: u64,
    /// Samples trained on this epoch.
    pub samples: u64,
    /// Samples the last layer got right (before their batch's update).
    pub correct: u64,
    /// Sum over samples of the loss (each batch's mean loss times its size).
    pub loss_sum: f64,
    /// Wall time spent in the epoch so far.
    pub seconds: f64,
}

impl EpochProgress {
    /// The averages so far.
    pub fn stats(&self) -> EpochStats {
        let per_sample = |v: f64| if self.samples > 0 { v / self.samples as f64 } else { 0.0 };
        EpochStats {
            train_loss: per_sample(self.loss_sum),
            train_accuracy: per_sample(self.correct as f64),
            samples: self.samples as usize,
            seconds: self.seconds,
        }
    }
}

/// Training blew up: where, and what was not finite.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Diverged {
    /// The step of the epoch (1-based) after which it was seen.
    pub step: usize,
    /// What was NaN or infinite.
    pub what: Divergence,
}

/// The non-finite value that stopped training.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Divergence {
    /// The step's loss.
    Loss(f32),
    /// A parameter after the epoch's last update.
    Parameter {
        /// Index in the flat parameter buffer.
        index: usize,
        /// Its value.
        value: f32,
    },
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.what {
            Divergence::Loss(loss) => write!(f, "step {}: the loss is {loss}", self.step),
            Divergence::Parameter { index, value } => {
                write!(f, "after step {}: parameter {index} is {value}", self.step)
            }
        }
    }
}

impl std::error::Error for Diverged {}

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
    ///
    /// On Linux the parameters and the moments (from 4 MiB up) are copied, bit for
    /// bit, into memory advised as transparent huge pages: every step streams them
    /// through the core, and at batch 1 that measured up to 10% faster than on 4 KiB
    /// pages. Where the kernel declines, they stay on ordinary pages.
    #[track_caller]
    pub fn with_optimizer(mut mlp: Mlp, mut optimizer: Optimizer) -> Self {
        crate::hugepages::rehome(&mut mlp.params);
        optimizer.rehome();
        let grads = vec![0.0; mlp.params.len()];
        let hidden = Vec::with_capacity(mlp.arch.layers + 1);
        Trainer { mlp, optimizer, grads, tape: Tape::new(), hidden }
    }

    /// This trainer computing on `threads` threads (see [`Trainer::set_threads`]).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.set_threads(threads);
        self
    }

    /// Computes each step on `threads` threads: the calling thread plus `threads − 1`
    /// workers spawned now, once (not per step), and parked between calls, so steps
    /// still allocate nothing after the first. The GEMMs are split by rows of their
    /// output at multiples of the microkernel height, and the optimizer updates by
    /// ranges: every value is computed exactly as on one thread, so training is
    /// **bit-identical for every thread count**. Worth it from batch ≈ 32 up; at batch
    /// 1 only the forward products are split. `0` and `1` mean one thread.
    pub fn set_threads(&mut self, threads: usize) {
        self.tape.set_threads(threads);
    }

    /// Threads a step computes on.
    pub fn threads(&self) -> usize {
        self.tape.threads()
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
        let mut g = self.tape.graph(&self.mlp.params);
        let xn = g.input(x, batch, arch.inputs);
        let logits = arch.forward(&mut g, xn, &mut self.hidden);
        let loss = g.softmax_xent(logits, labels);
        let stats = StepStats {
            loss: g.scalar(loss),
            correct: count_correct(g.value(logits), labels, arch.classes),
        };
        // Backward overwrites the last step's gradient (no zeroing pass over the L·D²
        // buffer; each weight gradient GEMM writes with β = 0) and updates each layer
        // as soon as its gradient is final, while it is in cache: each stripe of dW_l as
        // the GEMM finishes it, at batch 1 in one sweep over W_l (Tape::backward_update).
        let mut update = self.optimizer.begin_update();
        self.tape.backward_update(loss, &mut self.mlp.params, &mut self.grads, &mut update);
        stats
    }

    /// Trains one epoch of `stream` (until it returns `None`), with `x` (`B·d`) and
    /// `y` (`B`) as the reused batch buffers; `on_step` sees every step's stats (for a
    /// progress bar). Allocates nothing per step.
    ///
    /// Stops at the first step whose loss is NaN or infinite, and after the last step
    /// if any parameter is: a diverged run is reported, never averaged into plausible
    /// numbers. The model is then unusable; keep the last checkpoint instead.
    pub fn train_epoch(
        &mut self,
        stream: &mut BatchStream<'_>,
        x: &mut [f32],
        y: &mut [u32],
        mut on_step: impl FnMut(StepStats),
    ) -> Result<EpochStats, Diverged> {
        let mut progress = EpochProgress::default();
        let finished = self.train_epoch_until(stream, x, y, &mut progress, |stats| {
            on_step(stats);
            ControlFlow::Continue(())
        })?;
        Ok(finished.expect("on_step never breaks"))
    }

    /// [`Trainer::train_epoch`] that can stop between steps and continue later:
    /// `progress` carries the epoch's running totals across calls (start from
    /// `EpochProgress::default()`), and `on_step` returning `Break` stops after the
    /// step it saw, with `Ok(None)`. The stream's [`BatchStream::state`] and
    /// `progress` then say exactly where the epoch stands, so a run saved there and
    /// resumed later ends bit for bit where an uninterrupted one would.
    pub fn train_epoch_until(
        &mut self,
        stream: &mut BatchStream<'_>,
        x: &mut [f32],
        y: &mut [u32],
        progress: &mut EpochProgress,
        mut on_step: impl FnMut(StepStats) -> ControlFlow<()>,
    ) -> Result<Option<EpochStats>, Diverged> {
        let start = Instant::now();
        let seconds_before = progress.seconds;
        let d = self.mlp.arch.inputs;
        while let Some(n) = stream.next_batch(x, y) {
            let stats = self.step(&x[..n * d], &y[..n]);
            progress.steps += 1;
            let step = progress.steps as usize;
            if !stats.loss.is_finite() {
                return Err(Diverged { step, what: Divergence::Loss(stats.loss) });
            }
            progress.loss_sum += f64::from(stats.loss) * n as f64;
            progress.correct += stats.correct as u64;
            progress.samples += n as u64;
            progress.seconds = seconds_before + start.elapsed().as_secs_f64();
            if on_step(stats).is_break() {
                return Ok(None);
            }
        }
        // The last update has not been seen by a loss yet.
        if let Some(index) = self.mlp.params.iter().position(|p| !p.is_finite()) {
            return Err(Diverged {
                step: progress.steps as usize,
                what: Divergence::Parameter { index, value: self.mlp.params[index] },
            });
        }
        progress.seconds = seconds_before + start.elapsed().as_secs_f64();
        Ok(Some(progress.stats()))
    }

    /// The model being trained.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// Scales the lr of the coming steps ([`Optimizer::set_lr_scale`]): what an
    /// [`LrSchedule`](crate::optim::LrSchedule) sets at the start of each epoch.
    pub fn set_lr_scale(&mut self, scale: f32) {
        self.optimizer.set_lr_scale(scale);
    }

    /// The optimizer and its state.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// The gradient of the last step (parameter layout). Up to a batch of
    /// [`KC`](idmlp_kernels::sgemm::KC) (320) the weight gradients are consumed as they
    /// are formed and never stored (see [`Tape::backward_update`]): there only the
    /// bias parts are this step's.
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

/// The `3L − 1` GEMMs of one training step and nothing else, on buffers of the step's
/// sizes: the yardstick a step is measured against ("step ÷ its GEMMs").
///
/// Per layer `l` (`B×D` activations, `D×D` weights): the forward `h_l = h_{l−1}·W_lᵀ`,
/// then in reverse the input gradient `dh_{l−1} = dh_l·W_l` (not for the first layer)
/// and the weight gradient `dW_l = dh_lᵀ·h_{l−1}`. Every product writes with `β = 0`,
/// the cheapest form, so this is a lower bound on the step: no bias, relu, loss,
/// optimizer or gradient zeroing. Each layer has its own `W_l`, `dW_l`, `h_l` and
/// `dh_l`, as in a step, so that the weights stream from memory as they do there
/// (50 MB at L = 20) instead of sitting in cache.
#[derive(Debug)]
#[doc(hidden)]
pub struct StepGemms {
    arch: Architecture,
    batch: usize,
    /// `W_1 … W_L`, `(L, D, D)`: identity, so repeated forward passes keep values finite.
    weights: Vec<f32>,
    /// `dW_1 … dW_L`, `(L, D, D)`.
    dweights: Vec<f32>,
    /// `h_0 … h_L`, `(L + 1, B, D)`.
    hidden: Vec<f32>,
    /// `dh_0 … dh_L`, `(L + 1, B, D)`.
    dhidden: Vec<f32>,
    /// The GEMM packing workspace.
    pack: Vec<f32>,
}

impl StepGemms {
    /// Buffers for the GEMMs of `arch` at batch `batch` (allocated here, once; about
    /// twice the parameter count plus twice the activations). Inputs hold fixed values
    /// in `[0, 1)`.
    pub fn new(arch: Architecture, batch: usize) -> Self {
        let (width, layers) = (arch.width(), arch.layers);
        let mut weights = vec![0.0; layers * width * width];
        for w in weights.chunks_exact_mut((width * width).max(1)) {
            w.iter_mut().step_by(width + 1).for_each(|v| *v = 1.0);
        }
        // The same memory placement as the trainer's weights.
        crate::hugepages::rehome(&mut weights);
        let act = (layers + 1) * batch * width;
        // Deterministic, non-trivial values; identity weights keep them unchanged.
        let ramp = |len: usize| (0..len).map(|i| (i % 97) as f32 / 97.0).collect::<Vec<f32>>();
        StepGemms {
            arch,
            batch,
            weights,
            dweights: vec![0.0; layers * width * width],
            hidden: ramp(act),
            dhidden: ramp(act),
            pack: vec![0.0; idmlp_kernels::sgemm::PACK_LEN],
        }
    }

    /// Floating-point operations of one [`StepGemms::run`]: equal to
    /// [`Architecture::step_flops`].
    pub fn flops(&self) -> u64 {
        self.arch.step_flops(self.batch)
    }

    /// Runs the `3L − 1` products once, in step order. Allocates nothing.
    pub fn run(&mut self) {
        let (b, dd) = (self.batch, self.arch.width());
        let (act, wlen) = (b * dd, dd * dd);
        let pack = &mut self.pack[..];
        for l in 0..self.arch.layers {
            // h_{l+1} = h_l·W_lᵀ (0-based l here).
            let (prev, next) = self.hidden.split_at_mut((l + 1) * act);
            let w = &self.weights[l * wlen..(l + 1) * wlen];
            gemm_abt(b, dd, dd, 1.0, &prev[l * act..], w, 0.0, &mut next[..act], pack);
        }
        for l in (0..self.arch.layers).rev() {
            let (dprev, dnext) = self.dhidden.split_at_mut((l + 1) * act);
            let dout = &dnext[..act];
            if l > 0 {
                let w = &self.weights[l * wlen..(l + 1) * wlen];
                gemm_ab(b, dd, dd, 1.0, dout, w, 0.0, &mut dprev[l * act..], pack);
            }
            let h = &self.hidden[l * act..(l + 1) * act];
            let dw = &mut self.dweights[l * wlen..(l + 1) * wlen];
            gemm_atb(dd, b, dd, 1.0, dout, h, 0.0, dw, pack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Init;

    /// The trainer's fused path (`backward_update`: overwrite gradients, update each
    /// layer as its gradient is final, its weight gradient consumed stripe by stripe,
    /// at batch 1 in one sweep) trains bit for bit like the path it replaced (`fill(0)` +
    /// `backward`, then the optimizer over the whole buffer), for every optimizer and at
    /// batch 7, 1 and 400.
    #[test]
    fn trainer_steps_match_zero_then_accumulate_bit_for_bit() {
        for kind in [
            OptimizerKind::Sgd { lr: 0.05 },
            OptimizerKind::Momentum { lr: 0.05, mu: 0.9 },
            OptimizerKind::Adam(crate::optim::Adam { lr: 0.01, ..Default::default() }),
        ] {
            // 400: past one GEMM k block, where the weight gradient is stored first.
            for batch in [7, 1, 400] {
                trainer_matches_unfused(kind, batch);
            }
        }
    }

    fn trainer_matches_unfused(kind: OptimizerKind, batch: usize) {
        let arch = Architecture::new(12, 4, 3);
        let mlp = Mlp::new(arch, Init::He, 1);
        let x: Vec<f32> = (0..batch * 12).map(|i| (i % 11) as f32 / 11.0).collect();
        let y: Vec<u32> = (0..batch as u32).map(|i| i % 4).collect();

        let mut trainer = Trainer::new(mlp.clone(), kind);
        let (mut params, mut optimizer) = (mlp.params, Optimizer::new(kind, arch.param_count()));
        let (mut tape, mut hidden, mut grads) = (Tape::new(), Vec::new(), vec![0.0; params.len()]);
        for _ in 0..4 {
            trainer.step(&x, &y);
            grads.fill(0.0);
            let mut g = tape.graph(&params);
            let xn = g.input(&x, batch, 12);
            let logits = arch.forward(&mut g, xn, &mut hidden);
            let loss = g.softmax_xent(logits, &y);
            g.backward(loss, &mut grads);
            optimizer.step(&mut params, &grads);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&trainer.mlp().params), bits(&params), "{kind:?} at batch {batch}");
        assert_eq!(trainer.optimizer(), &optimizer, "{kind:?} at batch {batch}");
    }

    /// Two and three threads train bit for bit like one, for every optimizer, at a
    /// batch that splits the GEMMs (B = 24: four microkernel row-tiles, D = 80), at one
    /// that also splits the fused weight-gradient update (B = 48, D = 128), and at
    /// batch 1 on MNIST's width (D = 794: the fused layer is split by columns of W).
    #[test]
    fn threads_train_bit_identically() {
        for kind in [
            OptimizerKind::Sgd { lr: 0.05 },
            OptimizerKind::Momentum { lr: 0.05, mu: 0.9 },
            OptimizerKind::Adam(crate::optim::Adam { lr: 0.01, ..Default::default() }),
        ] {
            for (batch, arch) in [
                (24, Architecture::new(72, 8, 3)),
                (48, Architecture::new(120, 8, 2)),
                (1, Architecture::new(784, 10, 2)),
            ] {
                let d = arch.inputs;
                let x: Vec<f32> = (0..batch * d).map(|i| (i % 13) as f32 / 13.0).collect();
                let y: Vec<u32> = (0..batch as u32).map(|i| i % 8).collect();
                let mlp = Mlp::new(arch, Init::He, 2);
                let run = |threads: usize| {
                    let mut trainer = Trainer::new(mlp.clone(), kind).with_threads(threads);
                    assert_eq!(trainer.threads(), threads);
                    let losses: Vec<u32> =
                        (0..3).map(|_| trainer.step(&x, &y).loss.to_bits()).collect();
                    let params: Vec<u32> =
                        trainer.mlp().params.iter().map(|v| v.to_bits()).collect();
                    (losses, params, trainer.optimizer().clone())
                };
                let one = run(1);
                for threads in [2, 3] {
                    assert!(
                        run(threads) == one,
                        "{kind:?}, batch {batch}: {threads} threads differ from 1"
                    );
                }
            }
        }
    }
}
