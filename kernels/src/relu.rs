//! Relu over a column range, forward and backward side by side.
//!
//! The augmented MLP applies relu to the `d` feature columns only; the `C` class
//! columns pass through unchanged (DESIGN.md §1). Columns outside `relu_cols` are
//! copied in the forward and pass the gradient through untouched in the backward.

use core::ops::Range;

use crate::check_len;

/// The derivative of relu at exactly 0, a choice that decides whether an
/// identity-initialised network can learn at all.
///
/// At identity init every class dim and every background pixel has a
/// pre-activation of exactly 0. With [`ReluGradAtZero::Zero`] (the common
/// convention) and relu on every dim, no gradient reaches the class dims: the loss
/// stays at ln C forever. [`ReluGradAtZero::One`] (the default, backward mask
/// `a ≥ 0`) treats the layer at the kink as the identity it was initialised to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReluGradAtZero {
    /// relu′(0) = 0: backward mask `a > 0`.
    Zero,
    /// relu′(0) = 1: backward mask `a ≥ 0` (default).
    #[default]
    One,
}

impl ReluGradAtZero {
    /// Whether the gradient passes at pre-activation `a`.
    #[inline]
    pub fn passes(self, a: f32) -> bool {
        match self {
            ReluGradAtZero::Zero => a > 0.0,
            ReluGradAtZero::One => a >= 0.0,
        }
    }
}

#[track_caller]
fn check_range(relu_cols: &Range<usize>, cols: usize) {
    assert!(
        relu_cols.start <= relu_cols.end && relu_cols.end <= cols,
        "relu column range {relu_cols:?} does not fit in {cols} columns"
    );
}

/// `h[r, c] = max(a[r, c], 0)` for `c` in `relu_cols`, `h[r, c] = a[r, c]` elsewhere.
/// `h: rows×cols` is overwritten; `a: rows×cols` is the pre-activation (keep it: the
/// backward mask needs its sign, which `h` has lost at 0). NaN stays NaN: a diverged
/// pre-activation must not come out as a clean 0.
#[track_caller]
pub fn relu_forward(h: &mut [f32], a: &[f32], rows: usize, cols: usize, relu_cols: Range<usize>) {
    check_len("relu_forward h", h.len(), rows, cols);
    check_len("relu_forward a", a.len(), rows, cols);
    check_range(&relu_cols, cols);
    if cols == 0 {
        return;
    }
    let Range { start, end } = relu_cols;
    for (h_row, a_row) in h.chunks_exact_mut(cols).zip(a.chunks_exact(cols)) {
        h_row[..start].copy_from_slice(&a_row[..start]);
        for (v, &x) in h_row[start..end].iter_mut().zip(&a_row[start..end]) {
            // Not `f32::max`, which returns the non-NaN operand. A select vectorises.
            *v = if x < 0.0 { 0.0 } else { x };
        }
        h_row[end..].copy_from_slice(&a_row[end..]);
    }
}

/// `da[r, c] += dh[r, c] · relu′(a[r, c])` for `c` in `relu_cols`, `da += dh`
/// elsewhere (accumulates). `relu′(0)` is chosen by `at_zero`.
#[track_caller]
pub fn relu_backward(
    da: &mut [f32],
    dh: &[f32],
    a: &[f32],
    rows: usize,
    cols: usize,
    relu_cols: Range<usize>,
    at_zero: ReluGradAtZero,
) {
    relu_backward_with(da, dh, a, rows, cols, relu_cols, at_zero, |g, v| *g += v);
}

/// [`relu_backward`] into a `da` that nothing else adds into: overwrites it with
/// `0 + dh·relu′(a)` and never reads it (it may hold NaN). Bit for bit the result of
/// zeroing `da` and then calling [`relu_backward`] (the `0 +` turns a `−0` into `+0`
/// as that addition would), without the pass that zeroes it or the read of the zeros.
#[track_caller]
pub fn relu_backward_fresh(
    da: &mut [f32],
    dh: &[f32],
    a: &[f32],
    rows: usize,
    cols: usize,
    relu_cols: Range<usize>,
    at_zero: ReluGradAtZero,
) {
    relu_backward_with(da, dh, a, rows, cols, relu_cols, at_zero, |g, v| *g = 0.0 + v);
}

/// The checks and dispatch of both backwards; `put(g, v)` combines `da`'s element
/// with its contribution.
#[track_caller]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn relu_backward_with(
    da: &mut [f32],
    dh: &[f32],
    a: &[f32],
    rows: usize,
    cols: usize,
    relu_cols: Range<usize>,
    at_zero: ReluGradAtZero,
    put: impl Fn(&mut f32, f32),
) {
    check_len("relu_backward da", da.len(), rows, cols);
    check_len("relu_backward dh", dh.len(), rows, cols);
    check_len("relu_backward a", a.len(), rows, cols);
    check_range(&relu_cols, cols);
    if cols == 0 {
        return;
    }
    // One monomorphic loop per convention: the mask test is then a plain compare that
    // vectorises into a select. (A per-element `match` and range test compiled to
    // branches that mispredict on random signs: ≈ 30× slower at 128×794, measured.)
    match at_zero {
        ReluGradAtZero::Zero => relu_backward_rows(da, dh, a, cols, relu_cols, |x| x > 0.0, put),
        ReluGradAtZero::One => relu_backward_rows(da, dh, a, cols, relu_cols, |x| x >= 0.0, put),
    }
}

/// The body of [`relu_backward`] for one mask; `cols > 0`, lengths checked.
#[inline(always)]
fn relu_backward_rows(
    da: &mut [f32],
    dh: &[f32],
    a: &[f32],
    cols: usize,
    relu_cols: Range<usize>,
    passes: impl Fn(f32) -> bool,
    put: impl Fn(&mut f32, f32),
) {
    let Range { start, end } = relu_cols;
    let rows_iter = da.chunks_exact_mut(cols).zip(dh.chunks_exact(cols)).zip(a.chunks_exact(cols));
    for ((da_row, dh_row), a_row) in rows_iter {
        // Linear columns on either side of the range: the gradient passes unchanged.
        for (g, &d) in da_row[..start].iter_mut().zip(&dh_row[..start]) {
            put(g, d);
        }
        let masked = da_row[start..end].iter_mut().zip(&dh_row[start..end]).zip(&a_row[start..end]);
        for ((g, &d), &x) in masked {
            put(g, if passes(x) { d } else { 0.0 });
        }
        for (g, &d) in da_row[end..].iter_mut().zip(&dh_row[end..]) {
            put(g, d);
        }
    }
}
