//! Row softmax and the fused, numerically stable softmax cross-entropy.
//!
//! Per row `z` with label `y`: `loss = log Σ_j exp(z_j) − z_y`, computed as
//! `(m − z_y) + ln Σ_j exp(z_j − m)` with `m = max z`, so large logits never
//! overflow and each term is ≥ 0. The gradient of the mean loss over `rows` rows
//! is `(p − onehot(y)) / rows`.

use crate::check_len;

/// Writes `softmax(z)` of one row into `p` and returns `ln Σ_j exp(z_j − m)` and `m`.
#[inline]
fn softmax_row(p: &mut [f32], z: &[f32]) -> (f32, f32) {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for (pi, &zi) in p.iter_mut().zip(z) {
        let e = libm::expf(zi - m);
        *pi = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    p.iter_mut().for_each(|v| *v *= inv);
    (libm::logf(sum), m)
}

/// `p[r, ..] = softmax(z[r, ..])` for `z, p: rows×cols` (`p` overwritten).
#[track_caller]
pub fn softmax_rows(p: &mut [f32], z: &[f32], rows: usize, cols: usize) {
    check_len("softmax_rows p", p.len(), rows, cols);
    check_len("softmax_rows z", z.len(), rows, cols);
    if cols == 0 {
        return;
    }
    for (p_row, z_row) in p.chunks_exact_mut(cols).zip(z.chunks_exact(cols)) {
        softmax_row(p_row, z_row);
    }
}

/// Mean softmax cross-entropy of logits `z: rows×cols` against `labels: rows`.
///
/// Writes the probabilities into `p: rows×cols` (overwritten; the backward needs
/// them) and returns the mean loss, accumulated in f64. Returns 0 for `rows = 0`.
/// Panics if a label is `≥ cols`.
#[track_caller]
pub fn softmax_xent_forward(
    p: &mut [f32],
    z: &[f32],
    labels: &[u32],
    rows: usize,
    cols: usize,
) -> f32 {
    check_len("softmax_xent_forward p", p.len(), rows, cols);
    check_len("softmax_xent_forward z", z.len(), rows, cols);
    assert!(labels.len() == rows, "softmax_xent_forward: {} labels for {rows} rows", labels.len());
    if rows == 0 {
        return 0.0;
    }
    assert!(cols > 0, "softmax_xent_forward: no classes");
    let mut total = 0.0f64;
    for ((p_row, z_row), &y) in p.chunks_exact_mut(cols).zip(z.chunks_exact(cols)).zip(labels) {
        let y = y as usize;
        assert!(y < cols, "softmax_xent_forward: label {y} out of range for {cols} classes");
        let (log_sum, m) = softmax_row(p_row, z_row);
        total += f64::from(m - z_row[y]) + f64::from(log_sum);
    }
    (total / rows as f64) as f32
}

/// `dz[r, c] += dloss · (p[r, c] − [c == labels[r]]) / rows`: the gradient of
/// [`softmax_xent_forward`]'s mean loss scaled by the upstream `dloss` (accumulates).
#[track_caller]
pub fn softmax_xent_backward(
    dz: &mut [f32],
    p: &[f32],
    labels: &[u32],
    rows: usize,
    cols: usize,
    dloss: f32,
) {
    check_len("softmax_xent_backward dz", dz.len(), rows, cols);
    check_len("softmax_xent_backward p", p.len(), rows, cols);
    assert!(labels.len() == rows, "softmax_xent_backward: {} labels for {rows} rows", labels.len());
    if rows == 0 || cols == 0 {
        return;
    }
    let scale = dloss / rows as f32;
    for ((dz_row, p_row), &y) in dz.chunks_exact_mut(cols).zip(p.chunks_exact(cols)).zip(labels) {
        let y = y as usize;
        assert!(y < cols, "softmax_xent_backward: label {y} out of range for {cols} classes");
        for (g, &pi) in dz_row.iter_mut().zip(p_row) {
            *g += scale * pi;
        }
        dz_row[y] -= scale;
    }
}
