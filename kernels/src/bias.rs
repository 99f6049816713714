//! Bias broadcast (forward) and its gradient, the column sum (backward).
//!
//! The forward writes the bias into every row of the output so that the GEMM that
//! follows can run with `β = 1` and fold the bias in without an extra pass.

use crate::check_len;

/// `out[r, c] = bias[c]` for every row: `out: rows×cols` is overwritten.
#[track_caller]
pub fn bias_forward(out: &mut [f32], bias: &[f32], rows: usize, cols: usize) {
    check_len("bias_forward out", out.len(), rows, cols);
    check_len("bias_forward bias", bias.len(), 1, cols);
    if cols == 0 {
        return;
    }
    for row in out.chunks_exact_mut(cols) {
        row.copy_from_slice(bias);
    }
}

/// `dbias[c] += Σ_r dout[r, c]`: the bias gradient of [`bias_forward`] (accumulates).
#[track_caller]
pub fn bias_backward(dbias: &mut [f32], dout: &[f32], rows: usize, cols: usize) {
    crate::column_sums_add(dbias, dout, rows, cols);
}
