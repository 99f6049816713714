//! Bias broadcast (forward) and its gradient, the column sum (backward).
//!
//! The linear layer's forward does not call [`bias_forward`]: it folds the bias into
//! the GEMM's first store ([`crate::gemm_abt_bias`]), with the bits of this broadcast
//! followed by a `β = 1` GEMM. The broadcast stays for the tape's separate `add_bias`
//! op and as the reference the fold is tested against.

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
