//! Row-major GEMM wrappers over the packed [`sgemm`](crate::sgemm::sgemm).
//!
//! `C ← α·op(A)·op(B) + β·C` where `C` is `m×n` and the shared dimension is `k`.
//! With `β = 0`, `C` is not read (it may hold NaN). Strides are in elements, so a
//! transposed operand is a stride swap, never a copy. `pack` is the caller-owned
//! packing workspace, at least [`PACK_LEN`] floats: it is what lets a training step
//! run without allocating (matrixmultiply, which we measured against, allocates its
//! packing buffer on every call).

use crate::check_len;
#[cfg(doc)]
use crate::sgemm::PACK_LEN;
use crate::sgemm::sgemm;

/// `C ← α·A·B + β·C` with `A: m×k`, `B: k×n`, `C: m×n`, all row-major.
///
/// In the tape: the input gradient of `Y = X·Wᵀ` is `dX += dY·W` (`A = dY`, `B = W`).
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_ab(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
    pack: &mut [f32],
) {
    check_len("gemm_ab A", a.len(), m, k);
    check_len("gemm_ab B", b.len(), k, n);
    check_len("gemm_ab C", c.len(), m, n);
    #[rustfmt::skip]
    sgemm(
        m, k, n,
        alpha,
        a, k, 1,
        b, n, 1,
        beta,
        c, n, 1,
        pack,
    );
}

/// `C ← α·A·Bᵀ + β·C` with `A: m×k`, `B: n×k` (stored row-major, used transposed), `C: m×n`.
///
/// In the tape: the forward product `Y = X·Wᵀ` of a linear layer (`A = X`, `B = W`).
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_abt(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
    pack: &mut [f32],
) {
    check_len("gemm_abt A", a.len(), m, k);
    check_len("gemm_abt B", b.len(), n, k);
    check_len("gemm_abt C", c.len(), m, n);
    #[rustfmt::skip]
    sgemm(
        m, k, n,
        alpha,
        a, k, 1,
        b, 1, k,
        beta,
        c, n, 1,
        pack,
    );
}

/// `C ← α·Aᵀ·B + β·C` with `A: k×m` (stored row-major, used transposed), `B: k×n`, `C: m×n`.
///
/// In the tape: the weight gradient of `Y = X·Wᵀ` is `dW += dYᵀ·X` (`A = dY`, `B = X`).
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_atb(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
    pack: &mut [f32],
) {
    check_len("gemm_atb A", a.len(), k, m);
    check_len("gemm_atb B", b.len(), k, n);
    check_len("gemm_atb C", c.len(), m, n);
    #[rustfmt::skip]
    sgemm(
        m, k, n,
        alpha,
        a, 1, m,
        b, n, 1,
        beta,
        c, n, 1,
        pack,
    );
}
