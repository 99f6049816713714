//! The augmented identity MLP: architecture, flat parameter layout, init, and the
//! forward pass onto a tape (DESIGN.md §1).
//!
//! ```text
//! h_0 = [x, 0_C]                          x: B×d, h_0: B×D
//! a_l = h_{l-1} W_lᵀ + b_l                W_l: D×D, b_l: 1×D
//! h_l = [relu(a_l[.., 0..d]), a_l[.., d..D]]   (ClassActivation::Linear)
//! z   = h_L[.., d..D]                     logits, B×C
//! ```
//!
//! Parameters live in one flat buffer `W_1, b_1, …, W_L, b_L` (each `W` row-major),
//! described by [`Architecture`]; gradients and optimizer moments share the layout.

use std::ops::Range;

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::tape::{Graph, Node, ReluGradAtZero};

/// What the `C` class dims of every hidden layer do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClassActivation {
    /// Linear class dims, relu only on the `d` feature dims (default). A class dim
    /// can never die, and logits stay informative on harder data (DESIGN.md §1).
    #[default]
    Linear,
    /// The paper's literal model: relu on all `D` dims. With relu′(0) = 0 and identity
    /// init it cannot learn at all; on Fashion-MNIST some class logits die for good.
    Relu,
}

/// How the weights start. Biases always start at zero.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Init {
    /// `W_l = scale·I`: the method's init; `scale = 1` makes every layer the identity.
    Identity {
        /// Diagonal value `s`.
        scale: f32,
    },
    /// He (Kaiming) uniform, `U(−√(6/D), √(6/D))`. Random: the per-layer reading of
    /// the method no longer applies.
    He,
    /// Xavier (Glorot) uniform, `U(−√(6/2D), √(6/2D))`. Random, like [`Init::He`].
    Xavier,
}

impl Default for Init {
    fn default() -> Self {
        Init::Identity { scale: 1.0 }
    }
}

impl Init {
    /// Whether the init keeps the layer-wise interpretation meaningful (identity-like).
    pub fn is_identity(&self) -> bool {
        matches!(self, Init::Identity { .. })
    }
}

/// The shape and activation choices of a model; everything but its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Architecture {
    /// `d`: input features (pixels).
    pub inputs: usize,
    /// `C`: classes.
    pub classes: usize,
    /// `L`: hidden layers, each `D×D`.
    pub layers: usize,
    /// Relu on the class dims or not.
    pub class_activation: ClassActivation,
    /// relu′(0), see [`ReluGradAtZero`].
    pub relu_grad_at_zero: ReluGradAtZero,
}

impl Architecture {
    /// Our model (linear class dims, relu′(0) = 1) for `d` inputs, `C` classes, `L` layers.
    pub fn new(inputs: usize, classes: usize, layers: usize) -> Self {
        Architecture {
            inputs,
            classes,
            layers,
            class_activation: ClassActivation::default(),
            relu_grad_at_zero: ReluGradAtZero::default(),
        }
    }

    /// `D = d + C`, the width of every hidden layer.
    pub fn width(&self) -> usize {
        self.inputs + self.classes
    }

    /// Parameters per layer: `D² + D`.
    pub fn layer_len(&self) -> usize {
        let width = self.width();
        width * width + width
    }

    /// Length of the flat parameter buffer: `L·(D² + D)`.
    pub fn param_count(&self) -> usize {
        self.layers * self.layer_len()
    }

    /// Where `W_l` (row-major `D×D`) sits in the flat buffer, `l` in `0..L` (layer `l + 1`).
    pub fn weight_range(&self, l: usize) -> Range<usize> {
        let start = l * self.layer_len();
        start..start + self.width() * self.width()
    }

    /// Where `b_l` (`D`) sits in the flat buffer, `l` in `0..L`.
    pub fn bias_range(&self, l: usize) -> Range<usize> {
        let start = self.weight_range(l).end;
        start..start + self.width()
    }

    /// The columns relu applies to: the feature dims, or all dims for the literal model.
    pub fn relu_cols(&self) -> Range<usize> {
        match self.class_activation {
            ClassActivation::Linear => 0..self.inputs,
            ClassActivation::Relu => 0..self.width(),
        }
    }

    /// The class dims of a hidden layer, `d..D`.
    pub fn class_cols(&self) -> Range<usize> {
        self.inputs..self.width()
    }

    /// Floating-point operations of one training step at batch `B`: forward, input
    /// gradient and weight gradient GEMMs, `2·B·D²` each, minus the first layer's input
    /// gradient, which nothing needs.
    pub fn step_flops(&self, batch: usize) -> u64 {
        let gemm = 2 * batch as u64 * (self.width() as u64).pow(2);
        gemm * (3 * self.layers as u64).saturating_sub(1)
    }

    /// Writes `init` into `params` (length [`Architecture::param_count`]); random inits
    /// draw from Xoshiro256++ seeded with `seed`.
    #[track_caller]
    pub fn init_params(&self, params: &mut [f32], init: Init, seed: u64) {
        assert_eq!(params.len(), self.param_count(), "init_params: buffer length");
        let width = self.width();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        for l in 0..self.layers {
            let w = &mut params[self.weight_range(l)];
            match init {
                Init::Identity { scale } => {
                    w.fill(0.0);
                    w.iter_mut().step_by(width + 1).for_each(|v| *v = scale);
                }
                Init::He | Init::Xavier => {
                    let fan = if init == Init::He { width } else { 2 * width };
                    let bound = (6.0 / fan as f32).sqrt();
                    w.iter_mut().for_each(|v| *v = rng.random_range(-bound..bound));
                }
            }
            params[self.bias_range(l)].fill(0.0);
        }
    }

    /// Builds the forward pass of `x` (`B×d`, a node of `g`) and returns the logits
    /// (`B×C`). `hidden` is cleared and receives `h_0, h_1, …, h_L` (each `B×D`), the
    /// nodes the interpretation reads; its capacity is reused across calls.
    #[track_caller]
    pub fn forward(&self, g: &mut Graph<'_>, x: Node, hidden: &mut Vec<Node>) -> Node {
        assert_eq!(
            x.cols(),
            self.inputs,
            "forward: x has {} columns, the model {} inputs",
            x.cols(),
            self.inputs
        );
        let width = self.width();
        hidden.clear();
        let mut h = g.pad_cols(x, width);
        hidden.push(h);
        for l in 0..self.layers {
            let w = g.param(self.weight_range(l).start, width, width);
            let b = g.param(self.bias_range(l).start, 1, width);
            let a = g.linear(h, w, b);
            h = g.relu(a, self.relu_cols(), self.relu_grad_at_zero);
            hidden.push(h);
        }
        g.select_cols(h, self.class_cols())
    }
}

/// A model: its architecture and its flat parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Shape and activation choices.
    pub arch: Architecture,
    /// `W_1, b_1, …, W_L, b_L`, length [`Architecture::param_count`].
    pub params: Vec<f32>,
}

impl Mlp {
    /// A model initialised with `init` (seeded by `seed` where random).
    pub fn new(arch: Architecture, init: Init, seed: u64) -> Self {
        let mut params = vec![0.0; arch.param_count()];
        arch.init_params(&mut params, init, seed);
        Mlp { arch, params }
    }

    /// `W_l` (row-major `D×D`), `l` in `0..L`.
    pub fn weight(&self, l: usize) -> &[f32] {
        &self.params[self.arch.weight_range(l)]
    }

    /// `b_l`, `l` in `0..L`.
    pub fn bias(&self, l: usize) -> &[f32] {
        &self.params[self.arch.bias_range(l)]
    }
}
