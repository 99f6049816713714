//! The autodiff tape: one value arena, one gradient arena, a list of op records,
//! and a backward pass that walks the records in reverse through one `match`.
//!
//! A [`Tape`] owns its buffers and is reused step after step: [`Graph`] borrows it
//! together with the flat parameter buffer for one forward (and backward) pass.
//! Parameters are never copied onto the tape: a parameter [`Node`] points into the
//! caller's buffer, and its gradient lands at the same offset of the caller's
//! gradient buffer. After the first step the arenas have reached their high-water
//! mark, and a forward + backward allocates nothing.
//!
//! ```
//! use idmlp::tape::Tape;
//!
//! // loss = mean softmax cross-entropy of x·Wᵀ, W: 2×3 taken from `params`.
//! let params = vec![0.1, 0.2, 0.3, -0.1, 0.0, 0.5];
//! let mut dparams = vec![0.0; params.len()];
//! let mut tape = Tape::new();
//! let mut g = tape.graph(&params);
//! let x = g.input(&[1.0, 2.0, 3.0], 1, 3);
//! let w = g.param(0, 2, 3);
//! let z = g.matmul_t(x, w);
//! let loss = g.softmax_xent(z, &[1]);
//! g.backward(loss, &mut dparams);
//! assert!(g.scalar(loss) > 0.0);
//! assert!(dparams.iter().any(|&v| v != 0.0));
//! ```

use std::ops::Range;

use idmlp_kernels as k;
pub use idmlp_kernels::ReluGradAtZero;

/// Where a node's values live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Src {
    /// In the tape's value arena; its gradient in the tape's gradient arena.
    Arena,
    /// In the caller's parameter buffer; its gradient in the caller's gradient buffer.
    Param,
}

/// A handle to a `rows × cols` row-major matrix on a tape: small and `Copy`.
///
/// A node is valid until the next [`Tape::reset`] (or [`Tape::graph`], which
/// resets); using it afterwards panics instead of reading another step's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    src: Src,
    offset: usize,
    rows: usize,
    cols: usize,
    /// Whether any parameter flows into this node (its gradient is worth computing).
    needs_grad: bool,
    /// The tape generation the node belongs to (parameters: any generation).
    generation: u32,
}

impl Node {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of elements, `rows · cols`.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the node has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the node is a parameter leaf (it points into the caller's buffer).
    pub fn is_param(&self) -> bool {
        self.src == Src::Param
    }

    fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// One recorded operation: its inputs, its output and what backward needs.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `out = x·wᵀ`, `x: B×K`, `w: N×K`, `out: B×N`.
    MatMulT { x: Node, w: Node, out: Node },
    /// `out = a + b` broadcast over rows, `a: B×N`, `b: 1×N`.
    AddBias { a: Node, b: Node, out: Node },
    /// `out = x·wᵀ + b`, the fused linear layer (bias folded into the GEMM).
    Linear { x: Node, w: Node, b: Node, out: Node },
    /// `out = relu(a)` on columns `start..end`, identity elsewhere.
    Relu { a: Node, out: Node, start: usize, end: usize, at_zero: ReluGradAtZero },
    /// `out = [x, 0]`: `x: B×K` padded with zero columns to `B×N`.
    PadCols { x: Node, out: Node },
    /// `out = x[.., start..start + out.cols]`.
    SelectCols { x: Node, start: usize, out: Node },
    /// `out = mean_r −ln softmax(z_r)[y_r]`, a 1×1 node; `probs: B×C` kept for backward,
    /// labels at `labels_offset..+B` of the label arena.
    SoftmaxXent { z: Node, probs: Node, labels_offset: usize, out: Node },
    /// `out = Σ x ⊙ y`, a 1×1 node (`x`, `y` of one shape).
    SumProduct { x: Node, y: Node, out: Node },
}

impl Op {
    /// The op's output.
    fn out(&self) -> Node {
        match *self {
            Op::MatMulT { out, .. }
            | Op::AddBias { out, .. }
            | Op::Linear { out, .. }
            | Op::Relu { out, .. }
            | Op::PadCols { out, .. }
            | Op::SelectCols { out, .. }
            | Op::SoftmaxXent { out, .. }
            | Op::SumProduct { out, .. } => out,
        }
    }

    /// The op's inputs, in argument order (`None` pads the fixed-size array).
    fn inputs(&self) -> [Option<Node>; 3] {
        match *self {
            Op::MatMulT { x, w, .. } => [Some(x), Some(w), None],
            Op::AddBias { a, b, .. } => [Some(a), Some(b), None],
            Op::Linear { x, w, b, .. } => [Some(x), Some(w), Some(b)],
            Op::Relu { a, .. } => [Some(a), None, None],
            Op::PadCols { x, .. } | Op::SelectCols { x, .. } => [Some(x), None, None],
            Op::SoftmaxXent { z, .. } => [Some(z), None, None],
            Op::SumProduct { x, y, .. } => [Some(x), Some(y), None],
        }
    }
}

/// Whether a pass records ops for [`Graph::backward`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Train,
    Inference,
}

/// The arena owner. Create one per model (or per thread) and reuse it.
#[derive(Debug, Default)]
pub struct Tape {
    /// Value arena; `values[..used]` is this pass, the rest is capacity from earlier passes.
    values: Vec<f32>,
    /// Gradient arena, same layout as `values` (sized at backward).
    grads: Vec<f32>,
    /// Elements of `values` in use by this pass.
    used: usize,
    /// Labels copied in by `softmax_xent`, `labels[..labels_used]`.
    labels: Vec<u32>,
    labels_used: usize,
    records: Vec<Op>,
    /// Scratch for [`Graph::backward_into_fresh`]: the parameter ranges the recorded
    /// ops read, `(start, end)`, sorted. Kept so that its capacity is reused.
    param_uses: Vec<(usize, usize)>,
    /// Scratch for backward: the arena ranges the recorded ops read, `(start, end)`,
    /// sorted ([`read_once`]). Kept so that its capacity is reused.
    arena_uses: Vec<(usize, usize)>,
    /// GEMM packing workspace (`idmlp_kernels::sgemm::PACK_LEN` floats once the first
    /// product runs): owned here so that no GEMM allocates.
    pack: Vec<f32>,
    /// Worker threads for the GEMMs and updates ([`Tape::set_threads`]); `None` is one
    /// thread, the caller's.
    pool: Option<k::pool::Pool>,
    mode: Option<Mode>,
    generation: u32,
    /// Length of the parameter buffer of the current pass (checked by
    /// [`Tape::backward_update`], which gets the buffer again, mutably).
    params_len: usize,
}

impl Tape {
    /// An empty tape. Buffers grow on first use and are kept.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs this tape's GEMMs (and [`Tape::backward_update`]'s updates) on `threads`
    /// threads: the caller's plus `threads − 1` workers spawned here, once, and parked
    /// between calls, so a pass still allocates nothing. Each product is split by rows
    /// of its output at multiples of the microkernel height, so every value is computed
    /// exactly as on one thread: results are bit-identical for every thread count.
    /// `threads ≤ 1` drops the workers. Changing the count respawns them.
    pub fn set_threads(&mut self, threads: usize) {
        let want = threads.clamp(1, k::pool::MAX_THREADS);
        if want == self.threads() {
            return;
        }
        self.pool = (want > 1).then(|| k::pool::Pool::new(want));
    }

    /// Threads this tape computes on (1 unless [`Tape::set_threads`] said otherwise).
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, k::pool::Pool::threads)
    }

    /// Forgets every node and record, keeping all capacity.
    pub fn reset(&mut self) {
        self.used = 0;
        self.labels_used = 0;
        self.records.clear();
        self.mode = None;
        self.generation = self.generation.wrapping_add(1);
    }

    /// Starts a recorded pass over `params` (resets the tape): ops are recorded so
    /// that [`Graph::backward`] can run.
    pub fn graph<'t>(&'t mut self, params: &'t [f32]) -> Graph<'t> {
        self.begin(params, Mode::Train)
    }

    /// Starts a forward-only pass over `params` (resets the tape): values are kept on
    /// the tape for reading, nothing is recorded, and backward is refused.
    pub fn inference<'t>(&'t mut self, params: &'t [f32]) -> Graph<'t> {
        self.begin(params, Mode::Inference)
    }

    fn begin<'t>(&'t mut self, params: &'t [f32], mode: Mode) -> Graph<'t> {
        self.reset();
        self.mode = Some(mode);
        self.params_len = params.len();
        Graph { tape: self, params }
    }

    /// The values of an arena node from the last pass (panics for a parameter node,
    /// whose values are in the caller's buffer, or for a node of an earlier pass).
    pub fn value(&self, node: Node) -> &[f32] {
        self.check_arena(node, "value");
        &self.values[node.range()]
    }

    /// The gradient of an arena node after [`Graph::backward`] (zero for nodes no
    /// parameter flows into).
    pub fn grad(&self, node: Node) -> &[f32] {
        self.check_arena(node, "grad");
        assert!(
            self.grads.len() >= node.offset + node.len(),
            "Tape::grad: no backward pass has run on this tape"
        );
        &self.grads[node.range()]
    }

    /// Number of ops recorded for backward in the current pass.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// A 64-bit signature of which side of the relu kink every pre-activation of the
    /// current pass sits on (negative, zero, positive). Two passes with the same
    /// signature went through the same linear piece of every relu; the gradient
    /// checker uses it to tell a point within one step of a kink.
    pub fn kink_signature(&self) -> u64 {
        // FNV-1a over one state byte per relu'd element.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for op in &self.records {
            if let Op::Relu { a, start, end, .. } = *op {
                let vals = &self.values[a.range()];
                for row in vals.chunks_exact(a.cols) {
                    for &v in &row[start..end] {
                        let state = (v > 0.0) as u8 | (((v < 0.0) as u8) << 1);
                        hash = (hash ^ u64::from(state)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
            }
        }
        hash
    }

    /// Back-propagates the last recorded pass from `loss` and applies one optimizer
    /// `update` to `params` (the buffer the pass read, now lent mutably), each
    /// parameter range as soon as its gradient is final: the result is that of
    /// [`Graph::backward_into_fresh`] followed by the update over the whole buffer, bit
    /// for bit, in fewer sweeps over the parameters.
    ///
    /// - A range is updated right after the op that reads it has run its backward
    ///   rule, while the range and its fresh gradient are still in cache, instead of in
    ///   one more pass over every parameter, gradient and moment afterwards.
    /// - A linear layer's weight gradient is never stored: at batch 1 its backward
    ///   (`dx += dy·W`, `dW = dyᵀ·x`) and the update of W are one sweep over W and its
    ///   moments ([`Update::linear_rank1`](k::Update::linear_rank1)); at larger batches
    ///   up to [`KC`](k::sgemm::KC) `dW` is formed a few rows at a time and each stripe
    ///   updates its rows of W while it is in L1
    ///   ([`Update::linear_batch`](k::Update::linear_batch)). Those ranges of
    ///   `dparams` are left as they were; every other range holds this pass's
    ///   gradient on return.
    /// - When two ops read overlapping parameter ranges (a weight used twice), no
    ///   range is final before the end: this falls back to the full backward, then
    ///   the update over the whole buffer.
    ///
    /// Panics if the pass was forward-only, if `params` is not as long as the buffer
    /// the pass read, or if the moments of `update` do not fit it.
    #[track_caller]
    pub fn backward_update(
        &mut self,
        loss: Node,
        params: &mut [f32],
        dparams: &mut [f32],
        update: &mut k::Update<'_>,
    ) {
        assert_eq!(
            params.len(),
            self.params_len,
            "backward_update: params differ in length from the pass's"
        );
        update.check(params.len());
        let fused =
            backward_run(self, loss, &mut *params, dparams, ParamGrads::Overwrite, Some(update));
        if !fused {
            update.apply(0..params.len(), params, dparams);
        }
    }

    #[track_caller]
    fn check_arena(&self, node: Node, what: &str) {
        assert!(
            node.src == Src::Arena,
            "Tape::{what}: a parameter node lives in the caller's buffer"
        );
        assert!(
            node.generation == self.generation,
            "Tape::{what}: node from an earlier pass (the tape was reset since)"
        );
    }

    /// Reserves `rows × cols` elements of the value arena for a new node. Grows the
    /// arena only past its high-water mark; the contents are stale and the op must
    /// overwrite all of them.
    fn alloc(&mut self, rows: usize, cols: usize, needs_grad: bool) -> Node {
        let len = rows.checked_mul(cols).expect("node size overflows usize");
        let offset = self.used;
        self.used = offset.checked_add(len).expect("tape arena overflows usize");
        if self.values.len() < self.used {
            self.values.resize(self.used, 0.0);
        }
        Node { src: Src::Arena, offset, rows, cols, needs_grad, generation: self.generation }
    }

    fn record(&mut self, op: Op) {
        if self.mode == Some(Mode::Train) {
            self.records.push(op);
        }
    }
}

/// One pass over a [`Tape`] with a borrowed parameter buffer: the ops live here.
///
/// Every op overwrites a fresh output node. Shapes are checked when an op is
/// built; a mismatch is a programming error and panics with both shapes.
#[derive(Debug)]
pub struct Graph<'t> {
    tape: &'t mut Tape,
    params: &'t [f32],
}

impl<'t> Graph<'t> {
    /// A constant leaf holding a copy of `data` (`rows × cols`); no gradient flows to it.
    #[track_caller]
    pub fn input(&mut self, data: &[f32], rows: usize, cols: usize) -> Node {
        let out = self.tape.alloc(rows, cols, false);
        assert_eq!(data.len(), out.len(), "input: {rows}×{cols} node from {} values", data.len());
        self.tape.values[out.range()].copy_from_slice(data);
        out
    }

    /// A parameter leaf: `rows × cols` elements of the parameter buffer from `offset`.
    #[track_caller]
    pub fn param(&mut self, offset: usize, rows: usize, cols: usize) -> Node {
        let len = rows.checked_mul(cols).expect("param size overflows usize");
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.params.len()),
            "param: {rows}×{cols} at offset {offset} exceeds the {} parameters",
            self.params.len()
        );
        Node { src: Src::Param, offset, rows, cols, needs_grad: true, generation: 0 }
    }

    /// The values of any node of this pass.
    pub fn value(&self, node: Node) -> &[f32] {
        read(&self.tape.values, self.params, node)
    }

    /// The value of a 1×1 node.
    #[track_caller]
    pub fn scalar(&self, node: Node) -> f32 {
        assert_eq!(node.len(), 1, "scalar: node is {}×{}", node.rows, node.cols);
        self.value(node)[0]
    }

    /// The tape behind this pass (for [`Tape::value`], [`Tape::kink_signature`], …).
    pub fn tape(&self) -> &Tape {
        self.tape
    }

    /// `x·wᵀ` for `x: B×K`, `w: N×K` → `B×N`.
    #[track_caller]
    pub fn matmul_t(&mut self, x: Node, w: Node) -> Node {
        assert_eq!(
            x.cols, w.cols,
            "matmul_t: x is {}×{}, w is {}×{}",
            x.rows, x.cols, w.rows, w.cols
        );
        let out = self.tape.alloc(x.rows, w.rows, x.needs_grad || w.needs_grad);
        let ([xv, wv], ov, mut gemm) = self.operands_and_pack([x, w], out);
        gemm.run(ABT, x.rows, x.cols, w.rows, 1.0, xv, wv, 0.0, ov);
        self.tape.record(Op::MatMulT { x, w, out });
        out
    }

    /// `a + b` with the `1×N` row `b` added to every row of `a: B×N`.
    #[track_caller]
    pub fn add_bias(&mut self, a: Node, b: Node) -> Node {
        assert!(
            b.rows == 1 && b.cols == a.cols,
            "add_bias: a is {}×{}, b is {}×{}",
            a.rows,
            a.cols,
            b.rows,
            b.cols
        );
        let out = self.tape.alloc(a.rows, a.cols, a.needs_grad || b.needs_grad);
        let ([av, bv], ov) = self.operands([a, b], out);
        k::bias_forward(ov, bv, a.rows, a.cols);
        for (o, &v) in ov.iter_mut().zip(av) {
            *o += v;
        }
        self.tape.record(Op::AddBias { a, b, out });
        out
    }

    /// The fused linear layer `x·wᵀ + b` for `x: B×K`, `w: N×K`, `b: 1×N` → `B×N`:
    /// the GEMM adds the bias in its first store ([`k::gemm_abt_bias`]).
    #[track_caller]
    pub fn linear(&mut self, x: Node, w: Node, b: Node) -> Node {
        assert_eq!(
            x.cols, w.cols,
            "linear: x is {}×{}, w is {}×{}",
            x.rows, x.cols, w.rows, w.cols
        );
        assert!(
            b.rows == 1 && b.cols == w.rows,
            "linear: w is {}×{}, b is {}×{}",
            w.rows,
            w.cols,
            b.rows,
            b.cols
        );
        let out = self.tape.alloc(x.rows, w.rows, x.needs_grad || w.needs_grad || b.needs_grad);
        let ([xv, wv, bv], ov, mut gemm) = self.operands_and_pack([x, w, b], out);
        gemm.abt_bias(x.rows, x.cols, w.rows, xv, wv, bv, ov);
        self.tape.record(Op::Linear { x, w, b, out });
        out
    }

    /// Relu on columns `cols` of `a` (the rest pass through), with relu′(0) chosen by
    /// `at_zero`. The pre-activation `a` stays on the tape: backward needs its sign.
    #[track_caller]
    pub fn relu(&mut self, a: Node, cols: Range<usize>, at_zero: ReluGradAtZero) -> Node {
        assert!(
            cols.start <= cols.end && cols.end <= a.cols,
            "relu: columns {cols:?} of a {}-column node",
            a.cols
        );
        let out = self.tape.alloc(a.rows, a.cols, a.needs_grad);
        let ([av], ov, gemm) = self.operands_and_pack([a], out);
        let n = a.cols;
        gemm.rows(ov, a.rows, n, &|r0, h| {
            let rows = rows_in(h.len(), n);
            k::relu_forward(h, &av[r0 * n..][..h.len()], rows, n, cols.clone());
        });
        self.tape.record(Op::Relu { a, out, start: cols.start, end: cols.end, at_zero });
        out
    }

    /// `[x, 0]`: `x: B×K` padded on the right with zero columns to `B×cols`.
    #[track_caller]
    pub fn pad_cols(&mut self, x: Node, cols: usize) -> Node {
        assert!(cols >= x.cols, "pad_cols: cannot pad {} columns to {cols}", x.cols);
        let out = self.tape.alloc(x.rows, cols, x.needs_grad);
        let ([xv], ov) = self.operands([x], out);
        if cols > 0 {
            for (o_row, x_row) in ov.chunks_exact_mut(cols).zip(xv.chunks_exact(x.cols.max(1))) {
                o_row[..x.cols].copy_from_slice(&x_row[..x.cols]);
                o_row[x.cols..].fill(0.0);
            }
        }
        self.tape.record(Op::PadCols { x, out });
        out
    }

    /// Columns `cols` of `x` as a new `B × cols.len()` node (e.g. the class dims).
    #[track_caller]
    pub fn select_cols(&mut self, x: Node, cols: Range<usize>) -> Node {
        assert!(
            cols.start <= cols.end && cols.end <= x.cols,
            "select_cols: columns {cols:?} of a {}-column node",
            x.cols
        );
        let width = cols.len();
        let out = self.tape.alloc(x.rows, width, x.needs_grad);
        let ([xv], ov) = self.operands([x], out);
        if width > 0 {
            for (o_row, x_row) in ov.chunks_exact_mut(width).zip(xv.chunks_exact(x.cols)) {
                o_row.copy_from_slice(&x_row[cols.clone()]);
            }
        }
        self.tape.record(Op::SelectCols { x, start: cols.start, out });
        out
    }

    /// Mean softmax cross-entropy of logits `z: B×C` against `labels` (`B` values,
    /// each `< C`): a 1×1 node. The probabilities are kept on the tape for backward.
    #[track_caller]
    pub fn softmax_xent(&mut self, z: Node, labels: &[u32]) -> Node {
        assert_eq!(
            labels.len(),
            z.rows,
            "softmax_xent: {} labels for {} rows",
            labels.len(),
            z.rows
        );
        let probs = self.tape.alloc(z.rows, z.cols, false);
        let out = self.tape.alloc(1, 1, z.needs_grad);
        let labels_offset = self.tape.labels_used;
        self.tape.labels_used += labels.len();
        if self.tape.labels.len() < self.tape.labels_used {
            self.tape.labels.resize(self.tape.labels_used, 0);
        }
        self.tape.labels[labels_offset..self.tape.labels_used].copy_from_slice(labels);
        let ([zv], pv) = self.operands([z], probs);
        let loss = k::softmax_xent_forward(pv, zv, labels, z.rows, z.cols);
        self.tape.values[out.offset] = loss;
        self.tape.record(Op::SoftmaxXent { z, probs, labels_offset, out });
        out
    }

    /// `Σ x ⊙ y` over two nodes of one shape: a 1×1 node. With a random constant `y`
    /// it turns any node into a scalar for gradient checks.
    #[track_caller]
    pub fn sum_product(&mut self, x: Node, y: Node) -> Node {
        assert!(
            x.rows == y.rows && x.cols == y.cols,
            "sum_product: x is {}×{}, y is {}×{}",
            x.rows,
            x.cols,
            y.rows,
            y.cols
        );
        let out = self.tape.alloc(1, 1, x.needs_grad || y.needs_grad);
        let xv = read(&self.tape.values, self.params, x);
        let yv = read(&self.tape.values, self.params, y);
        let sum: f64 = xv.iter().zip(yv).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        self.tape.values[out.offset] = sum as f32;
        self.tape.record(Op::SumProduct { x, y, out });
        out
    }

    /// Back-propagates from the 1×1 node `loss` (seeded with 1): arena gradients are
    /// overwritten, and parameter gradients are **added** into `dparams`, which has
    /// the parameter buffer's layout (zero it first for a fresh gradient, or use
    /// [`Graph::backward_into_fresh`], which does not need that pass).
    ///
    /// Panics on a forward-only pass ([`Tape::inference`]).
    #[track_caller]
    pub fn backward(&mut self, loss: Node, dparams: &mut [f32]) {
        self.backward_impl(loss, dparams, ParamGrads::Accumulate);
    }

    /// Like [`Graph::backward`], but parameter gradients **overwrite** `dparams`: on
    /// return it holds exactly this pass's gradient (zero where none flows), and what
    /// it held before is never read (it may be NaN).
    ///
    /// Why: the same result as `dparams.fill(0.0)` then [`Graph::backward`], without
    /// that pass over the buffer, and with each weight gradient written by its GEMM
    /// with `β = 0` instead of read back and accumulated (`β = 1`), which is what a
    /// training step wants. That shortcut holds when every parameter element is read
    /// by at most one recorded op; if two ops read overlapping parameter ranges (a
    /// weight used twice), this falls back to zero-then-accumulate. Either way the
    /// result equals the accumulate path up to the sign of zeros.
    ///
    /// Panics on a forward-only pass ([`Tape::inference`]).
    #[track_caller]
    pub fn backward_into_fresh(&mut self, loss: Node, dparams: &mut [f32]) {
        self.backward_impl(loss, dparams, ParamGrads::Overwrite);
    }

    #[track_caller]
    fn backward_impl(&mut self, loss: Node, dparams: &mut [f32], mode: ParamGrads) {
        backward_run(self.tape, loss, self.params, dparams, mode, None);
    }

    /// Borrows the values of `inputs` and the fresh output `out`. Inputs are
    /// parameters or were allocated before `out`, so they never overlap it.
    fn operands<const N: usize>(
        &mut self,
        inputs: [Node; N],
        out: Node,
    ) -> ([&[f32]; N], &mut [f32]) {
        let (views, out, _) = self.operands_and_pack(inputs, out);
        (views, out)
    }

    /// [`Graph::operands`] plus the GEMM packing workspace, for the ops that multiply.
    fn operands_and_pack<const N: usize>(
        &mut self,
        inputs: [Node; N],
        out: Node,
    ) -> ([&[f32]; N], &mut [f32], Gemms<'_>) {
        let Tape { values, pack, pool, .. } = &mut *self.tape;
        let (below, above) = values.split_at_mut(out.offset);
        let below: &[f32] = below;
        let params = self.params;
        let views = inputs.map(|n| read(below, params, n));
        (views, &mut above[..out.len()], Gemms { pack: pack_workspace(pack), pool: pool.as_ref() })
    }
}

/// Read-only or updatable parameters for [`backward_run`].
trait ParamsMut {
    fn shared(&self) -> &[f32];
    /// The buffer for writing, when the caller lent it mutably.
    fn exclusive(&mut self) -> Option<&mut [f32]>;
}

impl ParamsMut for &[f32] {
    fn shared(&self) -> &[f32] {
        self
    }
    fn exclusive(&mut self) -> Option<&mut [f32]> {
        None
    }
}

impl ParamsMut for &mut [f32] {
    fn shared(&self) -> &[f32] {
        self
    }
    fn exclusive(&mut self) -> Option<&mut [f32]> {
        Some(self)
    }
}

/// The backward pass over `tape`'s records. With `update` (and mutable `params`), in
/// the overwrite mode and when parameter reads are disjoint, each op's parameter ranges
/// are updated right after its backward rule (batch-1 linear layers fused with it) and
/// `true` is returned; otherwise nothing is updated and `false` is returned.
#[track_caller]
fn backward_run(
    tape: &mut Tape,
    loss: Node,
    mut params: impl ParamsMut,
    dparams: &mut [f32],
    mode: ParamGrads,
    update: Option<&mut k::Update<'_>>,
) -> bool {
    assert_eq!(
        tape.mode,
        Some(Mode::Train),
        "backward: this pass was forward-only (Tape::inference)"
    );
    assert_eq!(loss.len(), 1, "backward: loss must be 1×1, is {}×{}", loss.rows, loss.cols);
    assert_eq!(
        dparams.len(),
        params.shared().len(),
        "backward: dparams and params differ in length"
    );
    let Tape { values, grads, used, labels, records, param_uses, arena_uses, pack, pool, .. } =
        tape;
    let fresh = match mode {
        ParamGrads::Accumulate => false,
        ParamGrads::Overwrite if loss.src == Src::Param => {
            dparams.fill(0.0);
            false
        }
        ParamGrads::Overwrite => {
            let disjoint = zero_unread_params(records, param_uses, dparams);
            if !disjoint {
                dparams.fill(0.0);
            }
            disjoint
        }
    };
    if grads.len() < *used {
        grads.resize(*used, 0.0);
    }
    if loss.src == Src::Param {
        grads[..*used].fill(0.0);
        dparams[loss.offset] += 1.0;
        return false;
    }
    let mut d = Grads {
        arena: &mut grads[..*used],
        params: dparams,
        gemm: Gemms { pack: pack_workspace(pack), pool: pool.as_ref() },
        fresh_params: fresh,
        single_readers: read_once(records, Src::Arena, arena_uses),
        fresh_input: None,
        zeroed_from: *used,
    };
    d.zero_from(loss.offset);
    d.arena[loss.offset] = 1.0;
    let update = match update {
        Some(u) if fresh && params.exclusive().is_some() => u,
        _ => {
            for op in records.iter().rev() {
                d.zero_for(op);
                backward_op(op, values, params.shared(), labels, &mut d);
            }
            // Nodes below every op's inputs (an unused input) read back as zero too.
            d.zero_from(0);
            return false;
        }
    };
    let Some(params) = params.exclusive() else { unreachable!("checked above") };
    for op in records.iter().rev() {
        d.zero_for(op);
        if !linear_backward_update(op, values, params, &mut d, update) {
            backward_op(op, values, params, labels, &mut d);
            for node in op.inputs().into_iter().flatten() {
                if node.src == Src::Param {
                    d.gemm.update(update, node.range(), params, &d.params[node.range()]);
                }
            }
        }
    }
    d.zero_from(0);
    // Ranges no op reads: their gradient is zero (zeroed above), but the rule still
    // applies (momentum decays, Adam moves).
    let mut next = 0;
    for &(start, end) in param_uses.iter() {
        update.apply(next..start, params, &d.params[next..start]);
        next = end;
    }
    let len = params.len();
    update.apply(next..len, params, &d.params[next..len]);
    true
}

/// The fused path of [`backward_run`] for `x·wᵀ (+ b)` with a parameter `w` and an
/// arena `x`: runs the input gradient, the weight gradient and `w`'s update with `dW`
/// never stored (then `b`'s gradient and update) and returns `true`; returns `false`
/// for every other op, and for batches too large for one GEMM k block.
///
/// - Batch 1: one sweep over `w` and its moments ([`k::Update::linear_rank1`]); with
///   a pool, a worker streams the moments ahead of it ([`k::par::linear_rank1`]).
/// - Larger batches: `dx` by GEMM with the old `w`, then `dW` in stripes of rows, each
///   applied to `w` while it is in L1 ([`k::Update::linear_batch`]).
fn linear_backward_update(
    op: &Op,
    values: &[f32],
    params: &mut [f32],
    d: &mut Grads<'_>,
    update: &mut k::Update<'_>,
) -> bool {
    let (x, w, b, out) = match *op {
        Op::MatMulT { x, w, out } => (x, w, None, out),
        Op::Linear { x, w, b, out } => (x, w, Some(b), out),
        _ => return false,
    };
    if w.src != Src::Param || !w.needs_grad || x.src != Src::Arena || w.is_empty() {
        return false;
    }
    let xv = &values[x.range()];
    if x.rows == 1 {
        let (below, above) = d.arena.split_at_mut(out.offset);
        let dout: &[f32] = &above[..out.len()];
        let dx = if x.needs_grad { Some(&mut below[x.range()]) } else { None };
        match d.gemm.pool {
            Some(pool) => k::par::linear_rank1(pool, update, dx, w.range(), params, dout, xv),
            None => update.linear_rank1(dx, w.range(), params, dout, xv),
        }
    } else {
        if !k::sgemm::stripes_fit(x.rows, w.cols) {
            return false;
        }
        if x.needs_grad {
            let (dx, dout, gemm, beta) = d.split_for_gemm(x, out);
            gemm.run(AB, x.rows, out.cols, x.cols, 1.0, dout, &params[w.range()], beta, dx);
        }
        let dout = &d.arena[out.range()];
        match d.gemm.pool {
            Some(pool) => k::par::linear_batch(pool, update, w.range(), params, x.rows, dout, xv),
            None => update.linear_batch(w.range(), params, x.rows, dout, xv, d.gemm.pack),
        }
    }
    if let Some(b) = b {
        if b.needs_grad {
            let (db, dout) = d.split(b, out);
            k::bias_backward(db, dout, out.rows, out.cols);
        }
        if b.src == Src::Param {
            update.apply(b.range(), params, &d.params[b.range()]);
        }
    }
    true
}

/// How backward combines parameter gradients with what `dparams` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParamGrads {
    /// `dparams += ∂loss/∂params` ([`Graph::backward`]).
    Accumulate,
    /// `dparams = ∂loss/∂params` ([`Graph::backward_into_fresh`]).
    Overwrite,
}

/// For the overwrite path: if the parameter ranges the recorded ops read are pairwise
/// disjoint, zeroes every element of `dparams` outside them and returns `true` (each
/// range then gets exactly one first write from backward); otherwise returns `false`
/// and leaves `dparams` alone. `uses` is scratch whose capacity is kept.
fn zero_unread_params(records: &[Op], uses: &mut Vec<(usize, usize)>, dparams: &mut [f32]) -> bool {
    if !read_once(records, Src::Param, uses) {
        return false;
    }
    let mut next = 0;
    for &(start, end) in uses.iter() {
        dparams[next..start].fill(0.0);
        next = end;
    }
    dparams[next..].fill(0.0);
    true
}

/// Collects into `uses` the non-empty `src` ranges the recorded ops read, `(start,
/// end)`, sorted, and returns whether they are pairwise disjoint: no two ops read
/// overlapping ranges, nor one op the same range twice.
fn read_once(records: &[Op], src: Src, uses: &mut Vec<(usize, usize)>) -> bool {
    uses.clear();
    for op in records {
        for node in op.inputs().into_iter().flatten() {
            if node.src == src && !node.is_empty() {
                uses.push((node.offset, node.offset + node.len()));
            }
        }
    }
    // Unstable sort: in place, no allocation.
    uses.sort_unstable();
    uses.windows(2).all(|w| w[0].1 <= w[1].0)
}

/// The arena input whose gradient `op`'s rule writes whole, and can therefore
/// overwrite when `op` is its only reader: a relu's input, and the input of a
/// product with a parameter weight (and bias) at batch > 1, the op's one arena
/// input in both cases. (Batch 1's fused sweep, [`k::Update::linear_rank1`], and
/// every other rule accumulate.)
fn overwritable_input(op: &Op) -> Option<Node> {
    let input = match *op {
        Op::Relu { a, .. } => a,
        Op::MatMulT { x, w, .. } if w.src == Src::Param && x.rows > 1 => x,
        Op::Linear { x, w, b, .. } if w.src == Src::Param && b.src == Src::Param && x.rows > 1 => x,
        _ => return None,
    };
    (input.src == Src::Arena && input.needs_grad).then_some(input)
}

/// The packing workspace, sized on first use (the only allocation it ever makes).
fn pack_workspace(pack: &mut Vec<f32>) -> &mut [f32] {
    if pack.len() < k::sgemm::PACK_LEN {
        pack.resize(k::sgemm::PACK_LEN, 0.0);
    }
    pack
}

/// The values of `node`, from the arena or the parameter buffer.
fn read<'a>(values: &'a [f32], params: &'a [f32], node: Node) -> &'a [f32] {
    match node.src {
        Src::Arena => &values[node.range()],
        Src::Param => &params[node.range()],
    }
}

/// Where GEMMs (and parameter updates and row-wise kernels) run: on the calling thread
/// with the tape's packing workspace, or split across the tape's pool (bit-identical
/// either way).
struct Gemms<'a> {
    pack: &'a mut [f32],
    pool: Option<&'a k::pool::Pool>,
}

/// A row-wise kernel over a piece of an output: `(first_row, piece)`.
type RowJob<'f> = dyn Fn(usize, &mut [f32]) + Sync + 'f;

/// Runs the row-wise `f` over `out` (`rows` rows of `row` floats): split across `pool`
/// ([`k::par::rows`]) when there is one, else as one call. Each row is computed the
/// same way either way, so the bits do not depend on the thread count.
fn rows_on(pool: Option<&k::pool::Pool>, out: &mut [f32], rows: usize, row: usize, f: &RowJob<'_>) {
    match pool {
        Some(pool) => k::par::rows(pool, out, rows, row, f),
        None => f(0, out),
    }
}

/// Rows in a piece of `len` floats of a `cols`-wide matrix (0 when `cols` is 0).
fn rows_in(len: usize, cols: usize) -> usize {
    len.checked_div(cols).unwrap_or(0)
}

/// A serial GEMM wrapper ([`k::gemm_ab`], …).
type SerialGemm = k::gemm::GemmFn;
/// Its pool twin ([`k::par::gemm_ab`], …): `(pool, m, k, n, α, a, b, β, c)`.
type PooledGemm = fn(&k::pool::Pool, usize, usize, usize, f32, &[f32], &[f32], f32, &mut [f32]);

/// The three products of a linear layer, each as its serial and pooled kernel.
const AB: (SerialGemm, PooledGemm) = (k::gemm_ab, k::par::gemm_ab);
const ABT: (SerialGemm, PooledGemm) = (k::gemm_abt, k::par::gemm_abt);
const ATB: (SerialGemm, PooledGemm) = (k::gemm_atb, k::par::gemm_atb);

#[allow(clippy::too_many_arguments)]
impl Gemms<'_> {
    /// `C ← α·op(A)·op(B) + β·C` through `product` ([`AB`], [`ABT`] or [`ATB`]): on
    /// the pool when the tape has one, else on this thread with the tape's workspace.
    fn run(
        &mut self,
        (serial, pooled): (SerialGemm, PooledGemm),
        m: usize,
        kk: usize,
        n: usize,
        alpha: f32,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) {
        match self.pool {
            Some(pool) => pooled(pool, m, kk, n, alpha, a, b, beta, c),
            None => serial(m, kk, n, alpha, a, b, beta, c, self.pack),
        }
    }

    /// `C ← A·Bᵀ + bias` in every row ([`k::gemm_abt_bias`]), on the pool when the tape
    /// has one.
    fn abt_bias(
        &mut self,
        m: usize,
        kk: usize,
        n: usize,
        a: &[f32],
        b: &[f32],
        bias: &[f32],
        c: &mut [f32],
    ) {
        match self.pool {
            Some(pool) => k::par::gemm_abt_bias(pool, m, kk, n, 1.0, a, b, bias, c),
            None => k::gemm_abt_bias(m, kk, n, 1.0, a, b, bias, c, self.pack),
        }
    }

    /// `f(first_row, piece)` over pieces of `out`'s rows ([`rows_on`]).
    fn rows(&self, out: &mut [f32], rows: usize, row: usize, f: &RowJob<'_>) {
        rows_on(self.pool, out, rows, row, f);
    }

    /// [`k::Update::apply`].
    fn update(
        &self,
        update: &mut k::Update<'_>,
        range: Range<usize>,
        params: &mut [f32],
        grads: &[f32],
    ) {
        match self.pool {
            Some(pool) => k::par::update(pool, update, range, params, grads),
            None => update.apply(range, params, grads),
        }
    }
}

/// The two gradient buffers backward writes into.
struct Grads<'a> {
    arena: &'a mut [f32],
    params: &'a mut [f32],
    /// Where the GEMMs run.
    gemm: Gemms<'a>,
    /// Whether every parameter slot is written by exactly one op and holds garbage or
    /// zeros until then ([`Graph::backward_into_fresh`]'s fast path): that op
    /// overwrites it instead of accumulating.
    fresh_params: bool,
    /// Whether every arena node is read by at most one recorded op ([`read_once`]),
    /// so that the op reading it is the only one to write its gradient, as in the
    /// MLP's chain.
    single_readers: bool,
    /// The arena input the running op's rule overwrites instead of accumulating into
    /// ([`Grads::zero_for`] left it unzeroed; see [`overwritable_input`]).
    fresh_input: Option<Node>,
    /// `arena[zeroed_from..]` has been zeroed in this pass, or is about to be
    /// overwritten whole (`fresh_input`); below it, last pass's values.
    zeroed_from: usize,
}

impl<'a> Grads<'a> {
    /// Zeroes the arena gradients from `start` up to what is already zeroed.
    fn zero_from(&mut self, start: usize) {
        if start < self.zeroed_from {
            let stretch = &mut self.arena[start..self.zeroed_from];
            rows_on(self.gemm.pool, stretch, stretch.len(), 1, &|_, z| z.fill(0.0));
            self.zeroed_from = start;
        }
    }

    /// Zeroes what `op`'s backward rule reads and accumulates into (its output's and
    /// inputs' arena gradients) that is not zeroed yet, just before the rule runs.
    ///
    /// Why not one fill of the whole arena first: that is a sweep over every
    /// activation's gradient (16 MB at L = 20, B = 128) that ends up in memory, read
    /// back later. Here each stretch is zeroed just before it is accumulated into,
    /// while it stays in cache. Sound because inputs lie below their output and the
    /// pass walks the records downwards: every write goes to a stretch at or above
    /// `zeroed_from`, which only moves down, so nothing written is zeroed again, and a
    /// dead output (read by no later op) is zeroed before its rule reads it.
    ///
    /// When the op is the only reader of its one arena input and its rule can write
    /// that input's gradient whole ([`overwritable_input`]), the input is left out:
    /// the rule overwrites it (`β = 0`, or [`k::relu_backward_fresh`]), which gives the
    /// bits of zero-then-accumulate without the sweep that zeroes it.
    fn zero_for(&mut self, op: &Op) {
        self.fresh_input = None;
        if self.single_readers
            && let Some(input) = overwritable_input(op)
        {
            // Inputs lie below their output: zero from the input's end up as usual.
            self.zero_from(input.offset + input.len());
            self.zeroed_from = self.zeroed_from.min(input.offset);
            self.fresh_input = Some(input);
            return;
        }
        let lowest = op
            .inputs()
            .into_iter()
            .flatten()
            .filter(|n| n.src == Src::Arena)
            .map(|n| n.offset)
            .fold(op.out().offset, usize::min);
        self.zero_from(lowest);
    }

    /// `(d input, d out)`: the gradient to accumulate into for `input` and the
    /// upstream gradient of `out`. Inputs lie below their output in the arena. A fresh
    /// parameter slot is zeroed first (the ops using this are cheap next to a GEMM).
    fn split(&mut self, input: Node, out: Node) -> (&mut [f32], &[f32]) {
        let (dinput, dout, _, beta) = self.split_for_gemm(input, out);
        if beta == 0.0 {
            dinput.fill(0.0);
        }
        (dinput, dout)
    }

    /// [`Grads::split`] plus the GEMM packing workspace and the `β` the rule must
    /// use for `input`'s gradient: `0` to overwrite it without reading it (a fresh
    /// parameter slot, or the running op's `fresh_input`), `1` to accumulate.
    fn split_for_gemm(
        &mut self,
        input: Node,
        out: Node,
    ) -> (&mut [f32], &[f32], &mut Gemms<'a>, f32) {
        let (below, above) = self.arena.split_at_mut(out.offset);
        let dout = &above[..out.len()];
        let (dinput, beta) = match input.src {
            Src::Arena => {
                (&mut below[input.range()], if self.fresh_input == Some(input) { 0.0 } else { 1.0 })
            }
            Src::Param => {
                (&mut self.params[input.range()], if self.fresh_params { 0.0 } else { 1.0 })
            }
        };
        (dinput, dout, &mut self.gemm, beta)
    }
}

/// The backward rule of `out = x·wᵀ` (`x: B×K`, `w: N×K`): `dx += dout·w` and
/// `dw += doutᵀ·x`, each only when needed (the first layer's input needs none).
fn matmul_t_backward(
    x: Node,
    w: Node,
    out: Node,
    values: &[f32],
    params: &[f32],
    d: &mut Grads<'_>,
) {
    if x.needs_grad {
        let (dx, dout, gemm, beta) = d.split_for_gemm(x, out);
        let wv = read(values, params, w);
        gemm.run(AB, x.rows, out.cols, x.cols, 1.0, dout, wv, beta, dx);
    }
    if w.needs_grad {
        let (dw, dout, gemm, beta) = d.split_for_gemm(w, out);
        let xv = read(values, params, x);
        gemm.run(ATB, w.rows, x.rows, w.cols, 1.0, dout, xv, beta, dw);
    }
}

/// The backward rule of one op: accumulates into the gradients of its inputs. Only
/// inputs that a parameter flows into (`needs_grad`) get a gradient computed.
fn backward_op(op: &Op, values: &[f32], params: &[f32], labels: &[u32], d: &mut Grads<'_>) {
    match *op {
        Op::MatMulT { x, w, out } => matmul_t_backward(x, w, out, values, params, d),
        Op::AddBias { a, b, out } => {
            // out = a + 1·b  ⇒  da += dout,  db += column sums of dout
            if a.needs_grad {
                let (da, dout) = d.split(a, out);
                da.iter_mut().zip(dout).for_each(|(g, &v)| *g += v);
            }
            if b.needs_grad {
                let (db, dout) = d.split(b, out);
                k::bias_backward(db, dout, out.rows, out.cols);
            }
        }
        Op::Linear { x, w, b, out } => {
            // out = x·wᵀ + 1·b  ⇒  the rules of x·wᵀ, and db += column sums of dout
            matmul_t_backward(x, w, out, values, params, d);
            if b.needs_grad {
                let (db, dout) = d.split(b, out);
                k::bias_backward(db, dout, out.rows, out.cols);
            }
        }
        Op::Relu { a, out, start, end, at_zero } => {
            // out = relu(a) on start..end  ⇒  da += dout · relu′(a) there, da += dout elsewhere
            if a.needs_grad {
                let (da, dout, gemm, beta) = d.split_for_gemm(a, out);
                let backward = if beta == 0.0 { k::relu_backward_fresh } else { k::relu_backward };
                let (av, n) = (read(values, params, a), a.cols);
                rows_on(gemm.pool, da, a.rows, n, &|r0, da| {
                    let piece = r0 * n..r0 * n + da.len();
                    let rows = rows_in(da.len(), n);
                    backward(da, &dout[piece.clone()], &av[piece], rows, n, start..end, at_zero);
                });
            }
        }
        Op::PadCols { x, out } => {
            // out = [x, 0]  ⇒  dx += dout[.., ..K]
            if x.needs_grad && x.cols > 0 {
                let (dx, dout) = d.split(x, out);
                for (dx_row, dout_row) in
                    dx.chunks_exact_mut(x.cols).zip(dout.chunks_exact(out.cols))
                {
                    dx_row.iter_mut().zip(dout_row).for_each(|(g, &v)| *g += v);
                }
            }
        }
        Op::SelectCols { x, start, out } => {
            // out = x[.., start..start+N]  ⇒  dx[.., start..start+N] += dout
            if x.needs_grad {
                // Split even for N = 0: a fresh parameter slot must still be zeroed.
                let (dx, dout) = d.split(x, out);
                if out.cols > 0 {
                    for (dx_row, dout_row) in
                        dx.chunks_exact_mut(x.cols).zip(dout.chunks_exact(out.cols))
                    {
                        dx_row[start..start + out.cols]
                            .iter_mut()
                            .zip(dout_row)
                            .for_each(|(g, &v)| *g += v);
                    }
                }
            }
        }
        Op::SoftmaxXent { z, probs, labels_offset, out } => {
            // loss = mean_r −ln p_r[y_r]  ⇒  dz += dloss · (p − onehot(y)) / B
            if z.needs_grad {
                let (dz, dout) = d.split(z, out);
                let y = &labels[labels_offset..labels_offset + z.rows];
                k::softmax_xent_backward(
                    dz,
                    read(values, params, probs),
                    y,
                    z.rows,
                    z.cols,
                    dout[0],
                );
            }
        }
        Op::SumProduct { x, y, out } => {
            // out = Σ x ⊙ y  ⇒  dx += dout · y,  dy += dout · x
            if x.needs_grad {
                let (dx, dout) = d.split(x, out);
                let scale = dout[0];
                dx.iter_mut().zip(read(values, params, y)).for_each(|(g, &v)| *g += scale * v);
            }
            if y.needs_grad {
                let (dy, dout) = d.split(y, out);
                let scale = dout[0];
                dy.iter_mut().zip(read(values, params, x)).for_each(|(g, &v)| *g += scale * v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_records_nothing_and_keeps_values() {
        let params = [1.0f32, 0.0, 0.0, 1.0];
        let mut tape = Tape::new();
        let mut g = tape.inference(&params);
        let x = g.input(&[-1.0, 2.0], 1, 2);
        let w = g.param(0, 2, 2);
        let a = g.matmul_t(x, w);
        let h = g.relu(a, 0..2, ReluGradAtZero::One);
        assert_eq!(g.value(h), &[0.0, 2.0]);
        assert_eq!(g.tape().record_count(), 0);
        assert_eq!(tape.value(a), &[-1.0, 2.0]);
    }

    #[test]
    #[should_panic(expected = "forward-only")]
    fn backward_is_refused_after_inference() {
        let params = [1.0f32];
        let mut tape = Tape::new();
        let mut g = tape.inference(&params);
        let w = g.param(0, 1, 1);
        let loss = g.sum_product(w, w);
        g.backward(loss, &mut [0.0]);
    }

    #[test]
    #[should_panic(expected = "earlier pass")]
    fn a_stale_node_is_refused() {
        let mut tape = Tape::new();
        let x = tape.graph(&[]).input(&[1.0], 1, 1);
        let _ = tape.graph(&[]);
        let _ = tape.value(x);
    }

    #[test]
    fn reset_keeps_capacity() {
        let mut tape = Tape::new();
        tape.graph(&[]).input(&[0.0; 64], 8, 8);
        let capacity = tape.values.capacity();
        tape.reset();
        assert_eq!(tape.used, 0);
        assert_eq!(tape.values.capacity(), capacity);
    }

    /// Deterministic values in roughly [-1, 1), different per `seed`.
    fn wiggle(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32).map(|i| ((i * 37 + seed * 11) % 101) as f32 / 50.0 - 1.0).collect()
    }

    /// `backward_into_fresh` into a NaN-filled buffer against `fill(0)` + `backward`:
    /// equal element for element (`==`, so `-0.0` and `0.0` agree), and every element
    /// written (no NaN survives). Returns whether the fast path (disjoint parameter
    /// reads, no zeroing pass) applied.
    fn assert_fresh_matches_accumulate(
        params: &[f32],
        build: impl Fn(&mut Graph<'_>) -> Node,
    ) -> bool {
        let mut tape = Tape::new();
        let mut accumulated = vec![0.0f32; params.len()];
        let mut g = tape.graph(params);
        let loss = build(&mut g);
        g.backward(loss, &mut accumulated);
        let mut fresh = vec![f32::NAN; params.len()];
        // Twice: the second pass overwrites the first's result instead of adding to it.
        for _ in 0..2 {
            let mut g = tape.graph(params);
            let loss = build(&mut g);
            g.backward_into_fresh(loss, &mut fresh);
            for (i, (&a, &f)) in accumulated.iter().zip(&fresh).enumerate() {
                assert!(a == f, "dparams[{i}]: accumulate {a}, fresh {f}");
            }
        }
        zero_unread_params(&tape.records, &mut Vec::new(), &mut vec![0.0; params.len()])
    }

    #[test]
    fn fresh_backward_matches_accumulate_on_an_mlp() {
        use crate::mlp::{Architecture, Init, Mlp};
        // Random weights (not identity) so that every gradient is non-trivial; B = 5
        // and D = 16 leave ragged GEMM tiles.
        let arch = Architecture::new(12, 4, 3);
        let mlp = Mlp::new(arch, Init::He, 3);
        let (x, labels) = (wiggle(5 * 12, 1), [0u32, 3, 1, 2, 3]);
        let fast = assert_fresh_matches_accumulate(&mlp.params, |g| {
            let xn = g.input(&x, 5, 12);
            let logits = arch.forward(g, xn, &mut Vec::new());
            g.softmax_xent(logits, &labels)
        });
        assert!(fast, "an MLP reads each parameter once: the fast path must apply");
    }

    #[test]
    fn fresh_backward_falls_back_when_a_parameter_is_used_twice() {
        // loss = Σ ((x·wᵀ)·wᵀ) ⊙ r: both products read w, so dw gets two contributions.
        let params = wiggle(3 * 3 + 4, 2);
        let (x, r) = (wiggle(2 * 3, 3), wiggle(2 * 3, 4));
        let fast = assert_fresh_matches_accumulate(&params, |g| {
            let xn = g.input(&x, 2, 3);
            let w = g.param(0, 3, 3);
            let y = g.matmul_t(xn, w);
            let z = g.matmul_t(y, w);
            let rn = g.input(&r, 2, 3);
            g.sum_product(z, rn)
        });
        assert!(!fast, "w is read twice: the fallback must apply");
        // Overlapping but unequal ranges take the same fallback.
        let fast = assert_fresh_matches_accumulate(&params, |g| {
            let xn = g.input(&x[..3], 1, 3);
            let w = g.param(0, 3, 3);
            let b = g.param(6, 1, 3);
            let y = g.linear(xn, w, b);
            g.sum_product(y, y)
        });
        assert!(!fast, "w and b overlap: the fallback must apply");
    }

    #[test]
    fn fresh_backward_zeroes_what_no_op_reads() {
        // Params 0..3 and 12.. are read by no op; a zero-width select still reads 3..9.
        let params = wiggle(16, 5);
        let x = wiggle(2 * 3, 6);
        let fast = assert_fresh_matches_accumulate(&params, |g| {
            let xn = g.input(&x, 2, 3);
            let w = g.param(3, 2, 3);
            let b = g.param(9, 1, 2);
            let y = g.linear(xn, w, b);
            let h = g.relu(y, 0..1, ReluGradAtZero::One);
            let extra = g.param(12, 2, 2);
            let _ = g.select_cols(extra, 1..1);
            g.sum_product(h, h)
        });
        assert!(fast);
        // A parameter as the loss itself: the gradient is one-hot.
        assert_fresh_matches_accumulate(&params, |g| g.param(7, 1, 1));
    }

    #[test]
    fn a_reused_tape_zeroes_every_gradient_it_reads_even_of_dead_branches() {
        // The arena's gradients are zeroed lazily, op by op: a tape that ran a pass
        // before (leaving non-zero gradients everywhere) must give a fresh tape's
        // gradients, also through dead branches (ops whose output nothing reads), one
        // of them with parameter inputs only.
        let params = wiggle(2 * 3 * 3 + 3, 5);
        let x = wiggle(4 * 3, 9);
        let run = |tape: &mut Tape| {
            let mut dparams = vec![0.0; params.len()];
            let mut g = tape.graph(&params);
            let unused = g.input(&x, 4, 3);
            let xn = g.input(&x, 4, 3);
            let w1 = g.param(0, 3, 3);
            let w2 = g.param(9, 3, 3);
            let b = g.param(18, 1, 3);
            let h = g.linear(xn, w1, b);
            let _dead_of_h = g.matmul_t(h, w2);
            // No arena input: only its own output tells what to zero.
            let dead = g.sum_product(w1, w1);
            // The live path reads only nodes recorded after the dead ones.
            let x2 = g.input(&x, 4, 3);
            let y = g.linear(x2, w2, b);
            let r = g.relu(y, 0..2, ReluGradAtZero::One);
            let loss = g.sum_product(r, y);
            g.backward(loss, &mut dparams);
            let zeros = tape.grad(unused).iter().all(|&v| v == 0.0);
            (dparams, tape.grad(y).to_vec(), tape.grad(dead).to_vec(), zeros)
        };
        let mut used = Tape::new();
        // A first pass that fills the gradient arena with non-zero values.
        let mut g = used.graph(&params);
        let xn = g.input(&x, 4, 3);
        let w = g.param(0, 3, 3);
        let mut h = g.matmul_t(xn, w);
        for _ in 0..4 {
            h = g.matmul_t(h, w);
        }
        let loss = g.sum_product(h, h);
        g.backward(loss, &mut vec![0.0; params.len()]);
        // A second one that leaves a non-zero gradient at the arena's start, where
        // the unused input goes: loss = (Σ w²)², so its gradient there is 2·Σ w².
        let mut g = used.graph(&params);
        let w = g.param(0, 3, 3);
        let s = g.sum_product(w, w);
        let loss = g.sum_product(s, s);
        g.backward(loss, &mut vec![0.0; params.len()]);
        assert_ne!(used.grad(s), &[0.0]);
        let fresh = run(&mut Tape::new());
        assert_eq!(run(&mut used), fresh);
        assert!(fresh.2.iter().all(|&v| v == 0.0), "a dead output has a zero gradient");
        assert!(fresh.3, "an unused input reads back a zero gradient");
    }

    #[test]
    fn single_reader_overwrite_gives_the_bits_of_zero_then_accumulate() {
        use crate::mlp::{Architecture, Init, Mlp};
        // The MLP chain reads every arena node once, so relu and the input gradients
        // overwrite their gradients unzeroed. A second, zero-width read of the last
        // hidden layer adds nothing to any gradient but makes that node read twice,
        // which turns the overwrite off for the whole pass: the two must agree bit for
        // bit, on a tape whose gradient arena holds NaN from the start. Identity init
        // and inputs with many zeros give exact-zero pre-activations (both relu′(0)
        // conventions) and zero gradients; He init gives non-trivial ones.
        let arch = Architecture::new(12, 4, 3);
        let x: Vec<f32> = wiggle(5 * 12, 7).into_iter().map(|v| v.max(0.0)).collect();
        let labels = [0u32, 3, 1, 2, 3];
        for init in [Init::default(), Init::He] {
            let mlp = Mlp::new(arch, init, 3);
            let run = |second_read: bool| {
                let mut tape = Tape::new();
                let mut dparams = vec![f32::NAN; mlp.params.len()];
                let mut grads = Vec::new();
                for _ in 0..2 {
                    let mut hidden = Vec::new();
                    let mut g = tape.graph(&mlp.params);
                    let xn = g.input(&x, 5, 12);
                    let logits = arch.forward(&mut g, xn, &mut hidden);
                    if second_read {
                        let _ = g.select_cols(*hidden.last().unwrap(), 0..0);
                    }
                    let loss = g.softmax_xent(logits, &labels);
                    let fast = read_once(&g.tape.records, Src::Arena, &mut Vec::new());
                    assert_eq!(fast, !second_read, "{init:?}: which path applies");
                    let used = g.tape.used;
                    g.tape.grads.clear();
                    g.tape.grads.resize(used, f32::NAN);
                    g.backward_into_fresh(loss, &mut dparams);
                    grads = hidden[1..].iter().flat_map(|&h| tape.grad(h).to_vec()).collect();
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(&grads), bits(&dparams))
            };
            let (overwritten, accumulated) = (run(false), run(true));
            assert!(overwritten.0.iter().all(|&b| !f32::from_bits(b).is_nan()), "{init:?}");
            assert_eq!(overwritten, accumulated, "{init:?}");
        }
    }

    #[test]
    fn single_reader_overwrite_still_zeroes_dead_branches() {
        // Every arena node is read once (the overwrite path), and a dead branch lies
        // between the live relu's input and output: its gradients must read back 0
        // from an arena that held NaN, and it must add nothing to its parameters'.
        let params = wiggle(3 * 3 + 3 + 3 * 3 + 3, 4);
        let (x, c) = (wiggle(4 * 3, 5), wiggle(4 * 3, 6));
        let mut tape = Tape::new();
        let mut g = tape.graph(&params);
        let xn = g.input(&x, 4, 3);
        let (w1, b1) = (g.param(0, 3, 3), g.param(9, 1, 3));
        let a = g.linear(xn, w1, b1);
        let xm = g.input(&x, 4, 3);
        let (w2, b2) = (g.param(12, 3, 3), g.param(21, 1, 3));
        let d1 = g.linear(xm, w2, b2);
        let dead = g.relu(d1, 0..2, ReluGradAtZero::One);
        let r = g.relu(a, 0..2, ReluGradAtZero::One);
        let cn = g.input(&c, 4, 3);
        let loss = g.sum_product(r, cn);
        assert!(read_once(&g.tape.records, Src::Arena, &mut Vec::new()));
        let used = g.tape.used;
        g.tape.grads.clear();
        g.tape.grads.resize(used, f32::NAN);
        let mut dparams = vec![0.0; params.len()];
        g.backward(loss, &mut dparams);
        assert!(tape.grad(dead).iter().chain(tape.grad(d1)).all(|&v| v == 0.0));
        assert!(dparams[12..].iter().all(|&v| v == 0.0), "{:?}", &dparams[12..]);
        assert!(
            dparams[..12].iter().all(|v| v.is_finite()) && dparams[..12].iter().any(|&v| v != 0.0)
        );
        assert!(tape.grad(a).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn constants_get_no_gradient_work() {
        // x is a constant: matmul's backward computes dW only, and grad(x) stays 0.
        let params = [2.0f32];
        let mut dparams = [0.0f32];
        let mut tape = Tape::new();
        let mut g = tape.graph(&params);
        let x = g.input(&[3.0], 1, 1);
        let w = g.param(0, 1, 1);
        let y = g.matmul_t(x, w);
        let loss = g.sum_product(y, y);
        g.backward(loss, &mut dparams);
        // loss = (x·w)², dloss/dw = 2·x²·w = 36
        assert_eq!(dparams, [36.0]);
        assert_eq!(tape.grad(x), &[0.0]);
    }
}
