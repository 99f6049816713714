//! Optimizer updates over flat parameter slices: one call updates every parameter.
//!
//! Parameters, gradients and optimizer moments share one layout, so each update is
//! a single loop over equal-length slices. Gradients are read, never cleared.

use core::ops::Range;

use crate::simd::wide;

/// Plain SGD: `p ← p − lr·g`.
#[track_caller]
pub fn sgd_step(params: &mut [f32], grads: &[f32], lr: f32) {
    assert_eq!(params.len(), grads.len(), "sgd_step: params and grads differ in length");
    wide!({
        for (p, &g) in params.iter_mut().zip(grads) {
            sgd_elem(p, g, lr);
        }
    });
}

/// SGD with (heavy-ball) momentum, as in PyTorch: `v ← μ·v + g`, `p ← p − lr·v`.
/// `velocity` starts at zero and is owned by the caller.
#[track_caller]
pub fn momentum_step(params: &mut [f32], velocity: &mut [f32], grads: &[f32], lr: f32, mu: f32) {
    assert_eq!(params.len(), grads.len(), "momentum_step: params and grads differ in length");
    assert_eq!(params.len(), velocity.len(), "momentum_step: params and velocity differ in length");
    wide!({
        for ((p, v), &g) in params.iter_mut().zip(velocity.iter_mut()).zip(grads) {
            momentum_elem(p, v, g, lr, mu);
        }
    });
}

/// Adam hyper-parameters (Kingma & Ba, 2015).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
}

impl Default for Adam {
    /// The paper's defaults: lr 1e-3, β₁ 0.9, β₂ 0.999, ε 1e-8.
    fn default() -> Self {
        Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Bias-corrected Adam step number `t` (1 for the first step):
///
/// ```text
/// m ← β₁·m + (1 − β₁)·g        v ← β₂·v + (1 − β₂)·g²
/// p ← p − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
#[track_caller]
pub fn adam_step(
    params: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grads: &[f32],
    hp: &Adam,
    t: u32,
) {
    let n = params.len();
    assert!(
        m.len() == n && v.len() == n && grads.len() == n,
        "adam_step: params, m, v and grads must have one length"
    );
    assert!(t >= 1, "adam_step: step numbers start at 1");
    let (c1, c2) = adam_corrections(hp, t);
    let (b1, b2) = (hp.beta1, hp.beta2);
    let step = hp.lr / c1;
    let inv_c2 = 1.0 / c2;
    wide!({
        for (((p, mi), vi), &g) in params.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grads)
        {
            adam_elem(p, mi, vi, g, b1, b2, step, inv_c2, hp.eps);
        }
    });
}

/// Adam's bias corrections `(1 − β₁ᵗ, 1 − β₂ᵗ)`.
///
/// Formed in f64 and rounded once. Rounding βᵗ to f32 first and subtracting in f32
/// cancels the leading bits: at β₂ = 0.999, t = 2 the relative error of 1 − β₂ᵗ ≈ 0.002
/// reaches u/0.002 = 500·u, half of which survives the √ into every parameter's update.
fn adam_corrections(hp: &Adam, t: u32) -> (f32, f32) {
    let c1 = (1.0 - libm::pow(f64::from(hp.beta1), f64::from(t))) as f32;
    let c2 = (1.0 - libm::pow(f64::from(hp.beta2), f64::from(t))) as f32;
    (c1, c2)
}

/// `p ← p − lr·g`, one element: the formula of [`sgd_step`], shared with the fused passes.
#[inline(always)]
fn sgd_elem(p: &mut f32, g: f32, lr: f32) {
    *p -= lr * g;
}

/// `v ← μ·v + g`, `p ← p − lr·v`, one element: the formula of [`momentum_step`].
#[inline(always)]
fn momentum_elem(p: &mut f32, v: &mut f32, g: f32, lr: f32, mu: f32) {
    velocity_elem(v, g, mu);
    momentum_param_elem(p, *v, lr);
}

/// `v ← μ·v + g`: momentum's moment half, which needs no parameter (see [`moment_rows`]).
#[inline(always)]
fn velocity_elem(v: &mut f32, g: f32, mu: f32) {
    *v = mu * *v + g;
}

/// `p ← p − lr·v`: momentum's parameter half, from the updated velocity.
#[inline(always)]
fn momentum_param_elem(p: &mut f32, v: f32, lr: f32) {
    *p -= lr * v;
}

/// `dx += s·w_row`: a row's share of the batch-1 input gradient, with the old weights.
#[inline(always)]
fn add_scaled_row(dx: &mut [f32], s: f32, w_row: &[f32]) {
    dx.iter_mut().zip(w_row).for_each(|(d, &wj)| *d += s * wj);
}

/// One Adam element with the step's constants: the formula of [`adam_step`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn adam_elem(
    p: &mut f32,
    m: &mut f32,
    v: &mut f32,
    g: f32,
    b1: f32,
    b2: f32,
    step: f32,
    inv_c2: f32,
    eps: f32,
) {
    adam_moments_elem(m, v, g, b1, b2);
    adam_param_elem(p, *m, *v, step, inv_c2, eps);
}

/// Adam's moment half of one element: `m ← β₁·m + (1 − β₁)·g`, `v ← β₂·v + (1 − β₂)·g²`.
#[inline(always)]
fn adam_moments_elem(m: &mut f32, v: &mut f32, g: f32, b1: f32, b2: f32) {
    *m = b1 * *m + (1.0 - b1) * g;
    *v = b2 * *v + (1.0 - b2) * g * g;
}

/// Adam's parameter half of one element, from the updated moments.
#[inline(always)]
fn adam_param_elem(p: &mut f32, m: f32, v: f32, step: f32, inv_c2: f32, eps: f32) {
    *p -= step * m / (sqrt(v * inv_c2) + eps);
}

/// `√x`, correctly rounded as IEEE 754 requires, so the same bits from either source:
/// with `std` the compiler's own square root, which it vectorises (`vsqrtps`);
/// without, libm's, a scalar `sqrtss` in inline assembly that keeps every loop
/// around it scalar (it made Adam's update 3× slower than momentum's at batch 100).
#[inline(always)]
fn sqrt(x: f32) -> f32 {
    #[cfg(feature = "std")]
    let root = x.sqrt();
    #[cfg(not(feature = "std"))]
    let root = libm::sqrtf(x);
    root
}

/// An update rule with the constants of one step, for passes that update parameters
/// piece by piece ([`Update`]). Each element gets exactly the arithmetic of
/// [`sgd_step`], [`momentum_step`] or [`adam_step`], so updating in pieces, in any
/// order, gives the same bits as one call over the whole buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateRule {
    /// `p ← p − lr·g`.
    Sgd {
        /// Learning rate.
        lr: f32,
    },
    /// `v ← μ·v + g`, `p ← p − lr·v`.
    Momentum {
        /// Learning rate.
        lr: f32,
        /// Momentum `μ`.
        mu: f32,
    },
    /// Adam at one step number (see [`UpdateRule::adam`]).
    Adam {
        /// `β₁`.
        beta1: f32,
        /// `β₂`.
        beta2: f32,
        /// `lr / (1 − β₁ᵗ)`.
        step: f32,
        /// `1 / (1 − β₂ᵗ)`.
        inv_c2: f32,
        /// `ε`.
        eps: f32,
    },
}

impl UpdateRule {
    /// Adam's rule at step number `t` (1 for the first step), with the bias
    /// corrections of [`adam_step`].
    #[track_caller]
    pub fn adam(hp: &Adam, t: u32) -> Self {
        assert!(t >= 1, "UpdateRule::adam: step numbers start at 1");
        let (c1, c2) = adam_corrections(hp, t);
        UpdateRule::Adam {
            beta1: hp.beta1,
            beta2: hp.beta2,
            step: hp.lr / c1,
            inv_c2: 1.0 / c2,
            eps: hp.eps,
        }
    }

    /// Moment buffers the rule keeps: 0 (SGD), 1 (momentum) or 2 (Adam).
    pub fn moments(&self) -> usize {
        match self {
            UpdateRule::Sgd { .. } => 0,
            UpdateRule::Momentum { .. } => 1,
            UpdateRule::Adam { .. } => 2,
        }
    }
}

/// One step's update of a flat parameter buffer, applied range by range: the rule and
/// the optimizer's moments (the parameter layout; empty when the rule keeps none).
///
/// Why: a training step can update each parameter range as soon as its gradient is
/// final, while the range is still in cache, or fuse the update into the pass that
/// computes the gradient ([`linear_rank1_update`]), instead of one more sweep over
/// every parameter, gradient and moment after backward.
#[derive(Debug)]
pub struct Update<'a> {
    /// The rule and its constants for this step.
    pub rule: UpdateRule,
    /// Momentum's velocity or Adam's first moment; empty for SGD.
    pub first: &'a mut [f32],
    /// Adam's second moment; empty otherwise.
    pub second: &'a mut [f32],
}

impl Update<'_> {
    /// Checks that the moments fit a parameter buffer of `len` values.
    #[track_caller]
    pub fn check(&self, len: usize) {
        let want = |n: usize| if self.rule.moments() >= n { len } else { 0 };
        assert!(
            self.first.len() == want(1) && self.second.len() == want(2),
            "Update: {} and {} moment values for {len} parameters under {:?}",
            self.first.len(),
            self.second.len(),
            self.rule
        );
    }

    /// The moments of `range` (empty slices for the moments the rule does not keep).
    pub(crate) fn moments(&mut self, range: Range<usize>) -> (&mut [f32], &mut [f32]) {
        let n = self.rule.moments();
        let first = if n >= 1 { &mut self.first[range.clone()] } else { &mut [][..] };
        let second = if n >= 2 { &mut self.second[range] } else { &mut [][..] };
        (first, second)
    }

    /// Updates `params[range]` from `grads` (the gradient of that range, same length).
    #[track_caller]
    pub fn apply(&mut self, range: Range<usize>, params: &mut [f32], grads: &[f32]) {
        let rule = self.rule;
        let params = &mut params[range.clone()];
        assert_eq!(params.len(), grads.len(), "Update::apply: range and grads differ in length");
        let (first, second) = self.moments(range);
        match rule {
            UpdateRule::Sgd { lr } => sgd_step(params, grads, lr),
            UpdateRule::Momentum { lr, mu } => momentum_step(params, first, grads, lr, mu),
            UpdateRule::Adam { beta1, beta2, step, inv_c2, eps } => wide!({
                for (((p, m), v), &g) in params.iter_mut().zip(first).zip(second).zip(grads) {
                    adam_elem(p, m, v, g, beta1, beta2, step, inv_c2, eps);
                }
            }),
        }
    }

    /// The batch-1 backward and update of a linear layer `y = W·x` with `W: n×k` at
    /// `params[range]` (row-major), `dy: n`, `x: k`, in one sweep over W and its moments:
    ///
    /// ```text
    /// dx += Wᵀ·dy          with the old W, accumulated (dx: k)
    /// W  ← rule(W, dy·xᵀ)  the weight gradient, formed element by element, never stored
    /// ```
    ///
    /// Row `i` of W is read, used for `dx += dy[i]·W[i, ..]`, then updated with
    /// `g[i, j] = dy[i]·x[j]`: the additions into `dx` happen in the same order, and
    /// each weight gets the same arithmetic, as `gemm_ab` (`m = 1`, `β = 1`), then
    /// `gemm_atb` (`k = 1`, `β = 0`), then the rule over the stored gradient — the
    /// same bits from one read and one write of W (and of each moment) instead of
    /// three reads and two writes plus a gradient buffer.
    #[track_caller]
    pub fn linear_rank1(
        &mut self,
        dx: Option<&mut [f32]>,
        range: Range<usize>,
        params: &mut [f32],
        dy: &[f32],
        x: &[f32],
    ) {
        let rule = self.rule;
        let (n, k) = (dy.len(), x.len());
        assert_eq!(
            range.len(),
            n * k,
            "Update::linear_rank1: W has {} values for {n}×{k}",
            range.len()
        );
        if let Some(dx) = &dx {
            assert_eq!(dx.len(), k, "Update::linear_rank1: dx has {} values, x {k}", dx.len());
        }
        let w = &mut params[range.clone()];
        let (first, second) = self.moments(range);
        linear_rank1_update(dx, w, first, second, dy, x, rule);
    }

    /// The weight gradient and update of a linear layer `Y = X·Wᵀ` at any batch, with
    /// `W: n×k` at `params[range]` (row-major), `dY: batch×n`, `X: batch×k`:
    ///
    /// ```text
    /// dW = dYᵀ·X           computed [`MR`](crate::sgemm::MR) rows at a time, never stored
    /// W  ← rule(W, dW)     each stripe of rows as soon as it is final, while in L1
    /// ```
    ///
    /// The same bits as `gemm_atb` (`β = 0`) into a gradient buffer followed by
    /// [`Update::apply`] over it, without writing the gradient to memory and reading
    /// it back. `pack` is the GEMM workspace ([`PACK_LEN`](crate::sgemm::PACK_LEN)).
    ///
    /// # Panics
    ///
    /// Unless [`stripes_fit`](crate::sgemm::stripes_fit)`(batch, k)`, or on lengths
    /// that do not match.
    #[track_caller]
    #[allow(clippy::too_many_arguments)]
    pub fn linear_batch(
        &mut self,
        range: Range<usize>,
        params: &mut [f32],
        batch: usize,
        dy: &[f32],
        x: &[f32],
        pack: &mut [f32],
    ) {
        let (n, k) = linear_batch_dims("Update::linear_batch", range.len(), batch, dy, x);
        let mut sink = StripeUpdate { update: self, params, w0: range.start, k };
        crate::gemm::gemm_atb_stripes(n, batch, k, 1.0, dy, x, pack, &mut sink);
    }
}

/// `(n, k)` of a linear layer at `batch`: W is `n×k` (`w_len` values), dY `batch×n`,
/// X `batch×k`. Panics, naming `who`, when the lengths do not fit together.
#[track_caller]
pub(crate) fn linear_batch_dims(
    who: &str,
    w_len: usize,
    batch: usize,
    dy: &[f32],
    x: &[f32],
) -> (usize, usize) {
    let (n, k) = (dy.len() / batch.max(1), x.len() / batch.max(1));
    assert!(
        dy.len() == batch * n && x.len() == batch * k && w_len == n * k,
        "{who}: W has {w_len} values, dY {} and X {} at batch {batch}",
        dy.len(),
        x.len()
    );
    (n, k)
}

/// The stripe consumer of [`Update::linear_batch`]: updates W's rows from each stripe
/// of its gradient, and prefetches those rows (and their moments) while the stripe's
/// tiles are computed, so that the update's memory traffic overlaps the GEMM's
/// arithmetic instead of following it.
pub(crate) struct StripeUpdate<'u, 'a> {
    /// The step's rule and moments.
    pub(crate) update: &'u mut Update<'a>,
    /// The buffer W lies in, and where: row `i` of W is `params[w0 + i·k..][..k]`.
    pub(crate) params: &'u mut [f32],
    pub(crate) w0: usize,
    pub(crate) k: usize,
}

impl crate::sgemm::StripeSink for StripeUpdate<'_, '_> {
    #[inline]
    fn before_tile(&mut self, first_row: usize, rows: usize, col: usize) {
        for i in first_row..first_row + rows {
            let at = self.w0 + i * self.k + col;
            prefetch(self.params, at);
            prefetch(self.update.first, at);
            prefetch(self.update.second, at);
        }
    }

    fn stripe(&mut self, first_row: usize, g: &[f32]) {
        let start = self.w0 + first_row * self.k;
        self.update.apply(start..start + g.len(), self.params, g);
    }
}

/// Asks the CPU to bring the cache line of `s[i]` closer (no-op past the end). A hint
/// only: it changes no value.
#[inline(always)]
fn prefetch(s: &[f32], i: usize) {
    if let Some(x) = s.get(i) {
        prefetch_addr(x);
    }
}

/// Asks the CPU to bring the cache line at `p` closer (no-op off x86-64). Any address
/// will do, mapped or not: a prefetch never faults, so callers may run past the end of
/// a slice (with `wrapping_add`, which makes the pointer without dereferencing it).
#[inline(always)]
fn prefetch_addr(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE (which `prefetcht0` belongs to) is part of the x86-64 baseline,
        // and a prefetch reads no memory architecturally and cannot fault, whatever
        // the address.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Floats per step of [`momentum_row_with_dx`]: one 64-byte cache line.
const LINE: usize = 16;

/// How far ahead of its position [`momentum_row_with_dx`] prefetches W and v: 512
/// bytes (8 lines). The hardware prefetcher alone keeps too few lines in flight for
/// one core to reach the memory's rate. Measured on 20 layers of the batch-1 momentum
/// sweep (200 MB of reads and writes), variants alternating in one process, four runs
/// of 30–40 rounds: 4–14% faster than no prefetch at 64, 128 and 256 floats ahead
/// (128 best in three runs), no faster at 512. The same prefetch in the forward's dot
/// products made them slower, and in the SGD sweep (W only) gained 2–5%: neither has it.
/// The whole batch-1 momentum step, old and new loop alternating in one process (three
/// runs of 60 rounds): 2.4–2.9% faster.
const AHEAD: usize = 128;

/// One row of the batch-1 momentum sweep with an input gradient: `dx += s·w_row`
/// (old W), then `v ← μ·v + s·x`, `W ← W − lr·v`, a cache line at a time with W and v
/// prefetched [`AHEAD`] floats ahead (into the next row near the end, which is where
/// the sweep goes next). Each element's arithmetic is [`momentum_elem`]'s, so the bits
/// do not depend on the blocking. `v_row`, `dx` and `x` are as long as `w_row`.
#[inline(always)]
fn momentum_row_with_dx(
    w_row: &mut [f32],
    v_row: &mut [f32],
    dx: &mut [f32],
    x: &[f32],
    s: f32,
    lr: f32,
    mu: f32,
) {
    let elem = |p: &mut f32, v: &mut f32, d: &mut f32, xj: f32| {
        *d += s * *p;
        momentum_elem(p, v, s * xj, lr, mu);
    };
    // Raw, because the chunks below borrow the rows; only ever prefetched.
    let (w_at, v_at) = (w_row.as_ptr(), v_row.as_ptr());
    let mut w = w_row.chunks_exact_mut(LINE);
    let mut v = v_row.chunks_exact_mut(LINE);
    let mut d = dx.chunks_exact_mut(LINE);
    let mut xs = x.chunks_exact(LINE);
    for (c, (((w, v), d), xs)) in
        w.by_ref().zip(v.by_ref()).zip(d.by_ref()).zip(xs.by_ref()).enumerate()
    {
        prefetch_addr(w_at.wrapping_add(c * LINE + AHEAD));
        prefetch_addr(v_at.wrapping_add(c * LINE + AHEAD));
        for j in 0..LINE {
            elem(&mut w[j], &mut v[j], &mut d[j], xs[j]);
        }
    }
    let rest = w.into_remainder().iter_mut().zip(v.into_remainder()).zip(d.into_remainder());
    for (((p, v), d), &xj) in rest.zip(xs.remainder()) {
        elem(p, v, d, xj);
    }
}

/// The kernel behind [`Update::linear_rank1`]: `dx += Wᵀ·dy` (old W), then
/// `W ← rule(W, dy·xᵀ)`, row by row. `W: n×k` with `n = dy.len()`, `k = x.len()`;
/// `first`/`second` are W's moments (empty when the rule keeps none).
#[track_caller]
pub fn linear_rank1_update(
    dx: Option<&mut [f32]>,
    w: &mut [f32],
    first: &mut [f32],
    second: &mut [f32],
    dy: &[f32],
    x: &[f32],
    rule: UpdateRule,
) {
    let k = x.len();
    assert_eq!(w.len(), dy.len() * k, "linear_rank1_update: W is not dy.len()×x.len()");
    if let Some(dx) = &dx {
        assert_eq!(dx.len(), k, "linear_rank1_update: dx has {} values, x {k}", dx.len());
    }
    let want = |n: usize| if rule.moments() >= n { w.len() } else { 0 };
    assert!(
        first.len() == want(1) && second.len() == want(2),
        "linear_rank1_update: moment lengths {} and {} for {} weights under {rule:?}",
        first.len(),
        second.len(),
        w.len()
    );
    if k == 0 {
        return;
    }
    let (mut f, mut v) = (first.chunks_exact_mut(k), second.chunks_exact_mut(k));
    let rows = w
        .chunks_exact_mut(k)
        .zip(dy)
        .map(|(w_row, &s)| (w_row, f.next().unwrap_or(&mut []), v.next().unwrap_or(&mut []), s));
    rank1_rows(dx, rows, x, rule);
}

/// One row of W for [`rank1_rows`]: the row (or a column range of it), the same part
/// of its moments (empty when the rule keeps none), and `dy[i]`.
pub type Rank1Row<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], f32);

/// The loop of [`linear_rank1_update`] over any rows, or column ranges of rows, of W:
/// `dx += s·w_row` (old values), then the update with `g = s·x`. `dx` and `x` cover
/// the same columns as each row. Callers check the lengths (moment rows as long as
/// the weight row, or empty when the rule keeps none).
pub fn rank1_rows<'a>(
    dx: Option<&mut [f32]>,
    rows: impl Iterator<Item = Rank1Row<'a>>,
    x: &[f32],
    rule: UpdateRule,
) {
    wide!(rank1_rows_body(dx, rows, x, rule));
}

/// The body of [`rank1_rows`], inlined into both of its builds.
#[inline(always)]
fn rank1_rows_body<'a>(
    mut dx: Option<&mut [f32]>,
    rows: impl Iterator<Item = Rank1Row<'a>>,
    x: &[f32],
    rule: UpdateRule,
) {
    match rule {
        UpdateRule::Sgd { lr } => {
            for (w_row, _, _, s) in rows {
                if let Some(dx) = dx.as_deref_mut() {
                    add_scaled_row(dx, s, w_row);
                }
                w_row.iter_mut().zip(x).for_each(|(p, &xj)| sgd_elem(p, s * xj, lr));
            }
        }
        UpdateRule::Momentum { lr, mu } => {
            for (w_row, v_row, _, s) in rows {
                assert_eq!(v_row.len(), w_row.len(), "rank1_rows: velocity row length");
                match dx.as_deref_mut() {
                    // One loop per row: W and v are each read and written once.
                    Some(dx) => momentum_row_with_dx(w_row, v_row, dx, x, s, lr, mu),
                    None => {
                        for ((p, v), &xj) in w_row.iter_mut().zip(v_row).zip(x) {
                            momentum_elem(p, v, s * xj, lr, mu);
                        }
                    }
                }
            }
        }
        UpdateRule::Adam { beta1, beta2, step, inv_c2, eps } => {
            for (w_row, m_row, v_row, s) in rows {
                assert!(
                    m_row.len() == w_row.len() && v_row.len() == w_row.len(),
                    "rank1_rows: moment row lengths"
                );
                if let Some(dx) = dx.as_deref_mut() {
                    add_scaled_row(dx, s, w_row);
                }
                for (((p, m), v), &xj) in w_row.iter_mut().zip(m_row).zip(v_row).zip(x) {
                    adam_elem(p, m, v, s * xj, beta1, beta2, step, inv_c2, eps);
                }
            }
        }
    }
}

/// The moment half of [`rank1_rows`], for rows whose weights are updated afterwards by
/// [`params_rows`], possibly on another thread: each row's moments (`first`, `second`,
/// empty when the rule keeps none) take the gradient `g = s·x` exactly as in the fused
/// sweep. SGD keeps no moments, so it does nothing here.
///
/// Why split: at batch 1 the moments are independent of the weights, so a second core
/// can stream them ahead of the thread that must read W in row order (for `dx`).
#[cfg(feature = "std")]
pub(crate) fn moment_rows<'a>(
    rows: impl Iterator<Item = (&'a mut [f32], &'a mut [f32], f32)>,
    x: &[f32],
    rule: UpdateRule,
) {
    wide!({
        for (first, second, s) in rows {
            match rule {
                UpdateRule::Sgd { .. } => {}
                UpdateRule::Momentum { mu, .. } => {
                    first.iter_mut().zip(x).for_each(|(v, &xj)| velocity_elem(v, s * xj, mu));
                }
                UpdateRule::Adam { beta1, beta2, .. } => {
                    for ((m, v), &xj) in first.iter_mut().zip(second.iter_mut()).zip(x) {
                        adam_moments_elem(m, v, s * xj, beta1, beta2);
                    }
                }
            }
        }
    });
}

/// The weight half of [`rank1_rows`], after [`moment_rows`] has updated these rows'
/// moments: `dx += s·w_row` (old values), then each weight from its moments. The two
/// halves give the bits of [`rank1_rows`]. Under SGD (no moments) this is
/// [`rank1_rows`] itself, which is why it takes `x`.
#[cfg(feature = "std")]
pub(crate) fn params_rows<'a>(
    dx: Option<&mut [f32]>,
    rows: impl Iterator<Item = Rank1Row<'a>>,
    x: &[f32],
    rule: UpdateRule,
) {
    let (lr, adam) = match rule {
        UpdateRule::Sgd { .. } => return rank1_rows(dx, rows, x, rule),
        UpdateRule::Momentum { lr, .. } => (lr, None),
        UpdateRule::Adam { step, inv_c2, eps, .. } => (0.0, Some((step, inv_c2, eps))),
    };
    wide!(params_rows_body(dx, rows, lr, adam));
}

/// The body of [`params_rows`] for momentum (`adam` is `None`) and Adam.
#[cfg(feature = "std")]
#[inline(always)]
fn params_rows_body<'a>(
    mut dx: Option<&mut [f32]>,
    rows: impl Iterator<Item = Rank1Row<'a>>,
    lr: f32,
    adam: Option<(f32, f32, f32)>,
) {
    for (w_row, first, second, s) in rows {
        assert!(
            first.len() == w_row.len() && (adam.is_none() || second.len() == w_row.len()),
            "params_rows: moment row lengths"
        );
        if let Some(dx) = dx.as_deref_mut() {
            add_scaled_row(dx, s, w_row);
        }
        match adam {
            None => {
                w_row.iter_mut().zip(first.iter()).for_each(|(p, &v)| momentum_param_elem(p, v, lr))
            }
            Some((step, inv_c2, eps)) => {
                for ((p, &m), &v) in w_row.iter_mut().zip(first.iter()).zip(second.iter()) {
                    adam_param_elem(p, m, v, step, inv_c2, eps);
                }
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::{Rank1Row, UpdateRule, moment_rows, params_rows, rank1_rows};

    /// Rows `(w_row, first_row, second_row, dy[i])`; a short buffer yields empty rows.
    fn rows<'a>(
        w: &'a mut [f32],
        f: &'a mut [f32],
        s: &'a mut [f32],
        dy: &[f32],
        k: usize,
    ) -> Vec<Rank1Row<'a>> {
        let (mut wr, mut fr, mut sr) =
            (w.chunks_exact_mut(k), f.chunks_exact_mut(k), s.chunks_exact_mut(k));
        let next = |it: &mut core::slice::ChunksExactMut<'a, f32>| it.next().unwrap_or(&mut []);
        dy.iter().map(|&d| (next(&mut wr), next(&mut fr), next(&mut sr), d)).collect()
    }

    /// A `dx` of the wrong length is refused, not truncated (the row sweep walks `dx`
    /// and `x` in step with each row).
    #[test]
    #[should_panic(expected = "linear_rank1_update: dx has 3 values, x 4")]
    fn linear_rank1_update_refuses_a_short_dx() {
        let (mut w, mut v, mut dx) = (vec![0.5; 8], vec![0.0; 8], vec![0.0; 3]);
        let rule = UpdateRule::Momentum { lr: 0.1, mu: 0.9 };
        super::linear_rank1_update(
            Some(&mut dx),
            &mut w,
            &mut v,
            &mut [],
            &[1.0, 2.0],
            &[1.0; 4],
            rule,
        );
    }

    /// `moment_rows` then `params_rows` over the same rows give the bits of the fused
    /// `rank1_rows`, for every rule, with and without `dx`.
    #[test]
    fn moment_and_weight_halves_are_the_fused_sweep() {
        let (n, k) = (5, 37);
        let val = |i: usize, scale: f32| ((i * 7919 % 1009) as f32 / 1009.0 - 0.4) * scale;
        let x: Vec<f32> = (0..k).map(|j| val(j + 3, 1.0)).collect();
        let dy: Vec<f32> = (0..n).map(|i| val(i + 11, 0.3)).collect();
        let adam = super::Adam::default();
        for rule in [
            UpdateRule::Sgd { lr: 0.1 },
            UpdateRule::Momentum { lr: 0.1, mu: 0.9 },
            UpdateRule::adam(&adam, 2),
        ] {
            let len = |m: usize| if rule.moments() >= m { n * k } else { 0 };
            let w0: Vec<f32> = (0..n * k).map(|i| val(i, 1.0)).collect();
            let f0: Vec<f32> = (0..len(1)).map(|i| val(i + 5, 0.2)).collect();
            let s0: Vec<f32> = (0..len(2)).map(|i| val(i + 9, 0.2).abs()).collect();
            for with_dx in [false, true] {
                let run = |split: bool| {
                    let (mut w, mut f, mut s) = (w0.clone(), f0.clone(), s0.clone());
                    let mut dx = vec![0.25f32; k];
                    let dx_arg = if with_dx { Some(&mut dx[..]) } else { None };
                    if split {
                        let moments = rows(&mut [], &mut f, &mut s, &dy, k);
                        moment_rows(moments.into_iter().map(|(_, f, s, d)| (f, s, d)), &x, rule);
                        params_rows(
                            dx_arg,
                            rows(&mut w, &mut f, &mut s, &dy, k).into_iter(),
                            &x,
                            rule,
                        );
                    } else {
                        rank1_rows(
                            dx_arg,
                            rows(&mut w, &mut f, &mut s, &dy, k).into_iter(),
                            &x,
                            rule,
                        );
                    }
                    (w, f, s, dx)
                };
                let (got, want) = (run(true), run(false));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got.0), bits(&want.0), "{rule:?} dx {with_dx}: W");
                assert_eq!(bits(&got.1), bits(&want.1), "{rule:?} dx {with_dx}: first moment");
                assert_eq!(bits(&got.2), bits(&want.2), "{rule:?} dx {with_dx}: second moment");
                assert_eq!(bits(&got.3), bits(&want.3), "{rule:?} dx {with_dx}: dx");
            }
        }
    }
}
