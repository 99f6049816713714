//! Layer-wise interpretation read off a forward tape (DESIGN.md §1, the paper's §3).
//!
//! Because every trained `W_l` stays near identity, hidden layer `l`'s output splits
//! into two readable parts:
//!
//! | name | definition | shape |
//! |---|---|---|
//! | contribution map | `m_l = h_l[0..d] − x` (+ strengthened, − suppressed) | d |
//! | class likelihood | `p_l = softmax(h_l[d..d+C])` | C |
//! | layer prediction | `argmax p_l` | 1 |
//! | class contribution | `W_l[d+c, 0..d] ⊙ h_{l−1}[0..d]` | d per class |
//! | identity distance | `‖W_l − I‖_F / ‖I‖_F` | 1 per layer |
//!
//! Nothing is recomputed: an [`Interpreter`] runs one forward-only pass per batch and
//! hands out [`LayerView`]s that borrow the tape; results go into caller buffers. After
//! the first batch, interpretation allocates nothing.
//!
//! Layers are numbered as in the paper: `1..=L`; layer 0 is the padded input `h_0`.

use std::num::NonZeroUsize;

use idmlp_kernels::{argmax, softmax_rows};

use crate::data::{Dataset, SequentialBatches};
use crate::mlp::{Architecture, Mlp};
use crate::tape::{Node, Tape};

/// Runs forward-only passes and keeps their tape for reading. Reuse one per model.
#[derive(Debug, Default)]
pub struct Interpreter {
    tape: Tape,
    /// `h_0 … h_L` of the last pass.
    hidden: Vec<Node>,
}

impl Interpreter {
    /// An interpreter; buffers grow on the first pass and are kept.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forward pass of `x` (`B×d`, `B = x.len() / d`) through the model `arch` with
    /// flat parameters `params` (owned, as in [`Mlp`], or mapped from a checkpoint);
    /// returns the views.
    #[track_caller]
    pub fn run<'a>(
        &'a mut self,
        arch: &Architecture,
        params: &'a [f32],
        x: &[f32],
    ) -> Interpretation<'a> {
        let arch = *arch;
        assert_eq!(
            params.len(),
            arch.param_count(),
            "interpret: parameter count does not match the architecture"
        );
        assert!(
            arch.inputs > 0 && x.len().is_multiple_of(arch.inputs),
            "interpret: {} values is not a whole number of {}-pixel samples",
            x.len(),
            arch.inputs
        );
        let batch = x.len() / arch.inputs;
        let mut g = self.tape.inference(params);
        let xn = g.input(x, batch, arch.inputs);
        arch.forward(&mut g, xn, &mut self.hidden);
        Interpretation { arch, params, tape: &self.tape, hidden: &self.hidden, batch }
    }

    /// Sizes every buffer for batches of up to `batch` samples of the model `arch`
    /// by running one pass on zeros, so that later [`Interpreter::run`] /
    /// [`Interpreter::read_image`] calls with at most `batch` samples allocate nothing.
    /// Call it once during setup.
    #[track_caller]
    pub fn prepare(&mut self, arch: &Architecture, params: &[f32], batch: usize) {
        let zeros = vec![0.0; batch * arch.inputs];
        self.run(arch, params, &zeros);
    }

    /// Interprets one image `x` (`d` values in `[0, 1]`) and writes every layer's
    /// reading into `out`: one forward pass, no allocation after
    /// [`Interpreter::prepare`] (or a first call). Returns the last layer's prediction.
    ///
    /// ```
    /// use idmlp::interpret::{Interpreter, Readout};
    /// use idmlp::mlp::{Architecture, Init, Mlp};
    ///
    /// let arch = Architecture::new(4, 2, 3); // d = 4 pixels, C = 2 classes, L = 3 layers
    /// let mlp = Mlp::new(arch, Init::default(), 0);
    /// let mut interpreter = Interpreter::new();
    /// interpreter.prepare(&arch, &mlp.params, 1);
    /// let mut out = Readout::new(&arch);
    /// interpreter.read_image(&arch, &mlp.params, &[0.0, 1.0, 0.5, 0.0], &mut out);
    /// // At identity init every layer passes the image through unchanged:
    /// assert!(out.contribution_map(3).iter().all(|&m| m == 0.0));
    /// assert_eq!(out.likelihood(3), [0.5, 0.5]);
    /// ```
    #[track_caller]
    pub fn read_image(
        &mut self,
        arch: &Architecture,
        params: &[f32],
        x: &[f32],
        out: &mut Readout,
    ) -> usize {
        assert_eq!(x.len(), arch.inputs, "read_image: x must hold d = {} values", arch.inputs);
        let view = self.run(arch, params, x);
        view.read_into(0, out);
        out.prediction(arch.layers)
    }
}

/// The per-layer reading of one batch; borrows the interpreter's tape.
#[derive(Clone, Copy, Debug)]
pub struct Interpretation<'a> {
    arch: Architecture,
    params: &'a [f32],
    tape: &'a Tape,
    hidden: &'a [Node],
    batch: usize,
}

impl<'a> Interpretation<'a> {
    /// Samples in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Hidden layers `L`.
    pub fn layers(&self) -> usize {
        self.arch.layers
    }

    /// The view of layer `l` in `1..=L`.
    #[track_caller]
    pub fn layer(&self, l: usize) -> LayerView<'a> {
        let arch = self.arch;
        assert!((1..=arch.layers).contains(&l), "layer {l} is not in 1..={}", arch.layers);
        LayerView {
            arch,
            index: l,
            input: self.tape.value(self.hidden[0]),
            prev: self.tape.value(self.hidden[l - 1]),
            out: self.tape.value(self.hidden[l]),
            weight: &self.params[arch.weight_range(l - 1)],
        }
    }

    /// Writes every layer's reading of sample `s` (likelihood, prediction and
    /// contribution map) into `out`, which must be sized for this model
    /// ([`Readout::new`]). Allocates nothing.
    #[track_caller]
    pub fn read_into(&self, s: usize, out: &mut Readout) {
        let (d, classes, layers) = (self.arch.inputs, self.arch.classes, self.arch.layers);
        assert!(s < self.batch, "read_into: sample {s} of a batch of {}", self.batch);
        assert!(
            out.inputs == d && out.classes == classes && out.layers == layers,
            "read_into: the readout is sized for d = {}, C = {}, L = {}; the model has d = {d}, \
             C = {classes}, L = {layers}",
            out.inputs,
            out.classes,
            out.layers
        );
        for l in 1..=layers {
            let view = self.layer(l);
            view.likelihood(s, &mut out.likelihoods[(l - 1) * classes..l * classes]);
            view.contribution_map(s, &mut out.maps[(l - 1) * d..l * d]);
            out.predictions[l - 1] = view.prediction(s);
        }
    }

    /// Adds this batch's per-layer counts to `metrics`; `labels` has one entry per sample.
    #[track_caller]
    pub fn accumulate(&self, labels: &[u32], metrics: &mut LayerMetrics) {
        assert_eq!(
            labels.len(),
            self.batch,
            "accumulate: {} labels for {} samples",
            labels.len(),
            self.batch
        );
        assert_eq!(
            metrics.correct.len(),
            self.layers(),
            "accumulate: metrics sized for another depth"
        );
        let d = self.arch.inputs;
        for l in 1..=self.layers() {
            let view = self.layer(l);
            let mut change = 0.0f64;
            for (s, &y) in labels.iter().enumerate() {
                metrics.correct[l - 1] += u64::from(view.prediction(s) == y as usize);
                let (now, before) = (&view.h(s)[..d], &view.prev_h(s)[..d]);
                change +=
                    now.iter().zip(before).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>();
            }
            metrics.feature_change[l - 1] += change / d.max(1) as f64;
        }
        metrics.samples += self.batch as u64;
    }
}

/// Layer `l` of one batch: `h_{l−1}`, `h_l`, the input and `W_l`, all borrowed.
#[derive(Clone, Copy, Debug)]
pub struct LayerView<'a> {
    arch: Architecture,
    index: usize,
    /// `h_0`, `B×D`.
    input: &'a [f32],
    /// `h_{l−1}`, `B×D`.
    prev: &'a [f32],
    /// `h_l`, `B×D`.
    out: &'a [f32],
    /// `W_l`, `D×D`.
    weight: &'a [f32],
}

impl<'a> LayerView<'a> {
    /// The layer number `l` (1-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// `h_l` of sample `s` (`D` values: `d` features, then `C` class dims).
    pub fn h(&self, s: usize) -> &'a [f32] {
        let width = self.arch.width();
        &self.out[s * width..(s + 1) * width]
    }

    /// `h_{l−1}` of sample `s`.
    pub fn prev_h(&self, s: usize) -> &'a [f32] {
        let width = self.arch.width();
        &self.prev[s * width..(s + 1) * width]
    }

    /// The input `x` of sample `s` (`d` values).
    pub fn input(&self, s: usize) -> &'a [f32] {
        let width = self.arch.width();
        &self.input[s * width..s * width + self.arch.inputs]
    }

    /// The class dims `h_l[d..D]` of sample `s`: the layer's logits.
    pub fn class_logits(&self, s: usize) -> &'a [f32] {
        &self.h(s)[self.arch.class_cols()]
    }

    /// Writes the contribution map `h_l[0..d] − x` of sample `s` into `out` (`d`).
    #[track_caller]
    pub fn contribution_map(&self, s: usize, out: &mut [f32]) {
        assert_eq!(out.len(), self.arch.inputs, "contribution_map: out must hold d values");
        for ((o, &h), &x) in out.iter_mut().zip(self.h(s)).zip(self.input(s)) {
            *o = h - x;
        }
    }

    /// Writes the class likelihood `softmax(h_l[d..D])` of sample `s` into `out` (`C`).
    #[track_caller]
    pub fn likelihood(&self, s: usize, out: &mut [f32]) {
        let classes = self.arch.classes;
        softmax_rows(out, self.class_logits(s), 1, classes);
    }

    /// The layer's predicted class for sample `s` (argmax of the class dims; softmax
    /// does not change it).
    pub fn prediction(&self, s: usize) -> usize {
        argmax(self.class_logits(s))
    }

    /// Writes the class contribution `W_l[d+c, 0..d] ⊙ h_{l−1}[0..d]` of sample `s`
    /// into `out` (`d`): how much each input neuron pushed class `c` at this layer.
    #[track_caller]
    pub fn class_contribution(&self, s: usize, class: usize, out: &mut [f32]) {
        let (d, width) = (self.arch.inputs, self.arch.width());
        assert!(class < self.arch.classes, "class {class} out of range");
        assert_eq!(out.len(), d, "class_contribution: out must hold d values");
        let row = &self.weight[(d + class) * width..(d + class) * width + d];
        for ((o, &w), &h) in out.iter_mut().zip(row).zip(&self.prev_h(s)[..d]) {
            *o = w * h;
        }
    }
}

/// Caller-owned buffers for the full per-layer reading of one image: every layer's
/// class likelihood (`L×C`), prediction (`L`) and contribution map (`L×d`).
/// Allocated once by [`Readout::new`], then overwritten by
/// [`Interpretation::read_into`] / [`Interpreter::read_image`] without allocating.
///
/// Layers are numbered `1..=L` as everywhere in this module.
#[derive(Clone, Debug, PartialEq)]
pub struct Readout {
    inputs: usize,
    classes: usize,
    layers: usize,
    /// `p_l = softmax(h_l[d..D])`, `L×C`, layer 1 first.
    likelihoods: Vec<f32>,
    /// `argmax p_l`, `L`.
    predictions: Vec<usize>,
    /// `m_l = h_l[0..d] − x`, `L×d`.
    maps: Vec<f32>,
}

impl Readout {
    /// Zeroed buffers for the model `arch`.
    pub fn new(arch: &Architecture) -> Self {
        let (d, classes, layers) = (arch.inputs, arch.classes, arch.layers);
        Readout {
            inputs: d,
            classes,
            layers,
            likelihoods: vec![0.0; layers * classes],
            predictions: vec![0; layers],
            maps: vec![0.0; layers * d],
        }
    }

    /// Hidden layers `L` this readout holds.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Layer `l`'s class likelihood `softmax(h_l[d..D])` (`C` values), `l` in `1..=L`.
    #[track_caller]
    pub fn likelihood(&self, l: usize) -> &[f32] {
        let r = self.layer_index(l);
        &self.likelihoods[r * self.classes..(r + 1) * self.classes]
    }

    /// Layer `l`'s predicted class.
    #[track_caller]
    pub fn prediction(&self, l: usize) -> usize {
        self.predictions[self.layer_index(l)]
    }

    /// Layer `l`'s contribution map `h_l[0..d] − x` (`d` values, row-major image).
    #[track_caller]
    pub fn contribution_map(&self, l: usize) -> &[f32] {
        let r = self.layer_index(l);
        &self.maps[r * self.inputs..(r + 1) * self.inputs]
    }

    /// Every layer's likelihood, `L×C` row-major, layer 1 first.
    pub fn likelihoods(&self) -> &[f32] {
        &self.likelihoods
    }

    /// Every layer's prediction, layer 1 first.
    pub fn predictions(&self) -> &[usize] {
        &self.predictions
    }

    /// Every layer's contribution map, `L×d` row-major, layer 1 first.
    pub fn contribution_maps(&self) -> &[f32] {
        &self.maps
    }

    #[track_caller]
    fn layer_index(&self, l: usize) -> usize {
        assert!((1..=self.layers).contains(&l), "layer {l} is not in 1..={}", self.layers);
        l - 1
    }
}

/// Per-layer counts accumulated over a data set, one forward pass per batch.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LayerMetrics {
    /// Samples layer `l` (index `l − 1`) classified correctly.
    pub correct: Vec<u64>,
    /// Sum over samples of the mean `|h_l[0..d] − h_{l−1}[0..d]|`: how far the layer
    /// moved the features.
    pub feature_change: Vec<f64>,
    /// Samples seen.
    pub samples: u64,
}

impl LayerMetrics {
    /// Zeroed counts for `layers` layers.
    pub fn new(layers: usize) -> Self {
        LayerMetrics { correct: vec![0; layers], feature_change: vec![0.0; layers], samples: 0 }
    }

    /// Accuracy of each layer, layer 1 first (0 when nothing was seen).
    pub fn accuracy(&self) -> Vec<f64> {
        self.correct.iter().map(|&c| c as f64 / self.samples.max(1) as f64).collect()
    }

    /// Mean per-pixel feature change of each layer.
    pub fn mean_feature_change(&self) -> Vec<f64> {
        self.feature_change.iter().map(|&c| c / self.samples.max(1) as f64).collect()
    }
}

/// Where a layer's weights moved away from identity.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct WeightStats {
    /// `‖W − I‖_F / ‖I‖_F`.
    pub identity_distance: f64,
    /// Share of `‖W − I‖²_F` in the class rows `d..D` (all columns).
    pub class_row_share: f64,
    /// Share in the feature block (rows and columns `0..d`).
    pub feature_block_share: f64,
    /// Share in the feature rows' class columns (rows `0..d`, columns `d..D`): how
    /// much class evidence feeds back into the features.
    pub feedback_share: f64,
}

impl WeightStats {
    /// Measures `W` (`D×D`, row-major) of a model with `d` inputs.
    #[track_caller]
    pub fn of(arch: &Architecture, weight: &[f32]) -> Self {
        let (d, width) = (arch.inputs, arch.width());
        assert_eq!(weight.len(), width * width, "WeightStats::of: W must be D×D");
        let (mut class_rows, mut feature_block, mut feedback) = (0.0f64, 0.0f64, 0.0f64);
        for (r, row) in weight.chunks_exact(width.max(1)).enumerate() {
            for (c, &w) in row.iter().enumerate() {
                let delta = f64::from(w) - if r == c { 1.0 } else { 0.0 };
                let sq = delta * delta;
                match (r < d, c < d) {
                    (false, _) => class_rows += sq,
                    (true, true) => feature_block += sq,
                    (true, false) => feedback += sq,
                }
            }
        }
        let total = class_rows + feature_block + feedback;
        let share = |part: f64| if total > 0.0 { part / total } else { 0.0 };
        WeightStats {
            identity_distance: (total / width.max(1) as f64).sqrt(),
            class_row_share: share(class_rows),
            feature_block_share: share(feature_block),
            feedback_share: share(feedback),
        }
    }

    /// What the layer measurably does, judged by where its change sits.
    pub fn role(&self) -> LayerRole {
        if self.identity_distance == 0.0 {
            LayerRole::Identity
        } else if self.class_row_share >= 0.5 {
            LayerRole::ClassEvidence
        } else {
            LayerRole::FeatureReshaping
        }
    }
}

/// The role a layer takes, read off its weights (the paper's claim: layers specialise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerRole {
    /// Still exactly the identity (untrained).
    Identity,
    /// Most of its change sits in the feature block: it reshapes the features.
    FeatureReshaping,
    /// Most of its change sits in the class rows: it adds class evidence.
    ClassEvidence,
}

impl LayerRole {
    /// A short label for reports.
    pub fn label(&self) -> &'static str {
        match self {
            LayerRole::Identity => "identity",
            LayerRole::FeatureReshaping => "reshapes features",
            LayerRole::ClassEvidence => "adds class evidence",
        }
    }
}

/// [`WeightStats`] of every layer of `mlp`, layer 1 first.
pub fn weight_stats(mlp: &Mlp) -> Vec<WeightStats> {
    (0..mlp.arch.layers).map(|l| WeightStats::of(&mlp.arch, mlp.weight(l))).collect()
}

/// Per-layer accuracy (and feature change) of the model over all of `data`, one
/// forward pass per batch of `batch` samples.
#[track_caller]
pub fn evaluate(
    interpreter: &mut Interpreter,
    arch: &Architecture,
    params: &[f32],
    data: &Dataset,
    batch: NonZeroUsize,
) -> LayerMetrics {
    assert_eq!(
        data.pixels(),
        arch.inputs,
        "evaluate: data has {} pixels per image, the model {} inputs",
        data.pixels(),
        arch.inputs
    );
    let mut metrics = LayerMetrics::new(arch.layers);
    let mut batches = SequentialBatches::new(data, batch);
    let (mut x, mut y) = (vec![0.0; batch.get() * arch.inputs], vec![0u32; batch.get()]);
    while let Some(n) = batches.next_batch(&mut x, &mut y) {
        interpreter.run(arch, params, &x[..n * arch.inputs]).accumulate(&y[..n], &mut metrics);
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Init;

    /// A model moved off identity so that layers differ, and two samples.
    fn model() -> (Architecture, Vec<f32>, Vec<f32>) {
        let arch = Architecture::new(6, 3, 3);
        let mut mlp = Mlp::new(arch, Init::default(), 0);
        for (i, p) in mlp.params.iter_mut().enumerate() {
            *p += ((i * 7 % 13) as f32 - 6.0) / 40.0;
        }
        let x = (0..12).map(|i| (i % 5) as f32 / 4.0).collect();
        (arch, mlp.params, x)
    }

    #[test]
    fn read_into_matches_the_layer_views() {
        let (arch, params, x) = model();
        let mut interpreter = Interpreter::new();
        let view = interpreter.run(&arch, &params, &x);
        let mut out = Readout::new(&arch);
        out.maps.fill(f32::NAN); // poison: every element must be written
        out.likelihoods.fill(f32::NAN);
        view.read_into(1, &mut out);
        let (mut map, mut p) = (vec![0.0; 6], vec![0.0; 3]);
        for l in 1..=3 {
            let layer = view.layer(l);
            layer.contribution_map(1, &mut map);
            layer.likelihood(1, &mut p);
            assert_eq!(out.contribution_map(l), map, "layer {l}");
            assert_eq!(out.likelihood(l), p, "layer {l}");
            assert_eq!(out.prediction(l), layer.prediction(1), "layer {l}");
        }
        assert_eq!(out.predictions().len(), 3);
        assert_eq!((out.contribution_maps().len(), out.likelihoods().len()), (18, 9));
    }

    #[test]
    fn read_image_is_sample_zero_of_a_one_image_batch() {
        let (arch, params, x) = model();
        let mut interpreter = Interpreter::new();
        interpreter.prepare(&arch, &params, 1);
        let mut one = Readout::new(&arch);
        let last = interpreter.read_image(&arch, &params, &x[6..], &mut one);
        assert_eq!(last, one.prediction(3));
        let mut batched = Readout::new(&arch);
        interpreter.run(&arch, &params, &x).read_into(1, &mut batched);
        // Batch 1 runs matrix-vector kernels whose summation order differs from the
        // batched GEMM: equal up to f32 rounding, not bit for bit.
        assert_eq!(one.predictions(), batched.predictions());
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() <= 1e-5);
        assert!(close(one.likelihoods(), batched.likelihoods()), "{one:?}\n{batched:?}");
        assert!(
            close(one.contribution_maps(), batched.contribution_maps()),
            "{one:?}\n{batched:?}"
        );
    }

    #[test]
    #[should_panic(expected = "the readout is sized for")]
    fn a_readout_for_another_model_is_refused() {
        let (arch, params, x) = model();
        let mut out = Readout::new(&Architecture::new(6, 3, 2));
        Interpreter::new().run(&arch, &params, &x).read_into(0, &mut out);
    }
}
