//! Optimizer state over the flat parameter buffer: one update call per step.
//!
//! Moments share the parameter layout (DESIGN.md §3), so every optimizer is one loop
//! over equal-length slices in `idmlp-kernels`. State is allocated once, when the
//! optimizer is created for a parameter count.

use idmlp_kernels as k;

pub use idmlp_kernels::Adam;

/// Which update rule, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum OptimizerKind {
    /// `p ← p − lr·g`.
    Sgd {
        /// Learning rate.
        lr: f32,
    },
    /// `v ← μ·v + g`, `p ← p − lr·v` (PyTorch's heavy-ball form).
    Momentum {
        /// Learning rate.
        lr: f32,
        /// Momentum `μ`.
        mu: f32,
    },
    /// Bias-corrected Adam.
    Adam(Adam),
}

impl Default for OptimizerKind {
    /// Momentum 0.9 with lr 0.01: the setting that kept weights nearest identity in
    /// the reference runs (issue 4).
    fn default() -> Self {
        OptimizerKind::Momentum { lr: 0.01, mu: 0.9 }
    }
}

impl OptimizerKind {
    /// Short name: `sgd`, `momentum` or `adam`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::Momentum { .. } => "momentum",
            OptimizerKind::Adam(_) => "adam",
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            OptimizerKind::Sgd { lr } | OptimizerKind::Momentum { lr, .. } => lr,
            OptimizerKind::Adam(a) => a.lr,
        }
    }
}

/// An optimizer and its state for one flat parameter buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    kind: OptimizerKind,
    /// Momentum: the velocity. Adam: the first moment. SGD: empty.
    first: Vec<f32>,
    /// Adam: the second moment. Otherwise empty.
    second: Vec<f32>,
    /// Steps taken (Adam's `t` after the step).
    steps: u64,
}

impl Optimizer {
    /// State for `len` parameters, zeroed.
    pub fn new(kind: OptimizerKind, len: usize) -> Self {
        let (first, second) = match kind {
            OptimizerKind::Sgd { .. } => (0, 0),
            OptimizerKind::Momentum { .. } => (len, 0),
            OptimizerKind::Adam(_) => (len, len),
        };
        Optimizer { kind, first: vec![0.0; first], second: vec![0.0; second], steps: 0 }
    }

    /// The rule and its hyper-parameters.
    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The moments, in the parameter layout: `(first, second)`. Momentum keeps its
    /// velocity in `first`; Adam uses both; SGD has none (both empty).
    pub fn moments(&self) -> (&[f32], &[f32]) {
        (&self.first, &self.second)
    }

    /// Continues from saved state: `steps` taken and the moments as returned by
    /// [`Optimizer::moments`]. Fails, changing nothing, when a moment's length does
    /// not match this optimizer's.
    pub fn restore(
        &mut self,
        steps: u64,
        first: &[f32],
        second: &[f32],
    ) -> Result<(), StateMismatch> {
        if first.len() != self.first.len() || second.len() != self.second.len() {
            return Err(StateMismatch {
                expected: (self.first.len(), self.second.len()),
                found: (first.len(), second.len()),
            });
        }
        self.first.copy_from_slice(first);
        self.second.copy_from_slice(second);
        self.steps = steps;
        Ok(())
    }

    /// The moments, writable: for decoding a checkpoint straight into them.
    pub(crate) fn moments_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        (&mut self.first, &mut self.second)
    }

    /// Sets the step count (with [`Optimizer::moments_mut`], a restore without copies).
    pub(crate) fn set_steps(&mut self, steps: u64) {
        self.steps = steps;
    }

    /// One update of `params` from `grads` (same layout). Allocates nothing.
    #[track_caller]
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        assert_eq!(params.len(), grads.len(), "Optimizer::step: params and grads differ in length");
        let len = params.len();
        self.begin_update().apply(0..len, params, grads);
    }

    /// Counts one step and hands out its update, to be applied range by range (every
    /// range exactly once): what [`Tape::backward_update`](crate::tape::Tape::backward_update)
    /// takes. Applying it to the whole buffer at once is [`Optimizer::step`].
    pub fn begin_update(&mut self) -> k::Update<'_> {
        self.steps += 1;
        let rule = match self.kind {
            OptimizerKind::Sgd { lr } => k::UpdateRule::Sgd { lr },
            OptimizerKind::Momentum { lr, mu } => k::UpdateRule::Momentum { lr, mu },
            OptimizerKind::Adam(hp) => {
                k::UpdateRule::adam(&hp, u32::try_from(self.steps).unwrap_or(u32::MAX))
            }
        };
        k::Update { rule, first: &mut self.first, second: &mut self.second }
    }
}

/// Saved optimizer state whose moment lengths do not fit the optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateMismatch {
    /// `(first, second)` moment lengths this optimizer has.
    pub expected: (usize, usize),
    /// `(first, second)` lengths offered.
    pub found: (usize, usize),
}

impl std::fmt::Display for StateMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "optimizer state has moments of {} and {} values; this optimizer needs {} and {}",
            self.found.0, self.found.1, self.expected.0, self.expected.1
        )
    }
}

impl std::error::Error for StateMismatch {}
