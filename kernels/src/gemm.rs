//! Row-major GEMM wrappers over `matrixmultiply::sgemm`.
//!
//! `C ← α·op(A)·op(B) + β·C` where `C` is `m×n` and the shared dimension is `k`.
//! With `β = 0`, `C` is not read (it may hold NaN). Strides are in elements, so a
//! transposed operand is a stride swap, never a copy. This file holds the crate's one
//! `unsafe` call; every public function checks lengths before reaching it.

use crate::check_len;

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
) {
    check_len("gemm_ab A", a.len(), m, k);
    check_len("gemm_ab B", b.len(), k, n);
    check_len("gemm_ab C", c.len(), m, n);
    sgemm(
        m,
        k,
        n,
        alpha,
        Operand { data: a, rs: k, cs: 1 },
        Operand { data: b, rs: n, cs: 1 },
        beta,
        c,
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
) {
    check_len("gemm_abt A", a.len(), m, k);
    check_len("gemm_abt B", b.len(), n, k);
    check_len("gemm_abt C", c.len(), m, n);
    sgemm(
        m,
        k,
        n,
        alpha,
        Operand { data: a, rs: k, cs: 1 },
        Operand { data: b, rs: 1, cs: k },
        beta,
        c,
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
) {
    check_len("gemm_atb A", a.len(), k, m);
    check_len("gemm_atb B", b.len(), k, n);
    check_len("gemm_atb C", c.len(), m, n);
    sgemm(
        m,
        k,
        n,
        alpha,
        Operand { data: a, rs: 1, cs: m },
        Operand { data: b, rs: n, cs: 1 },
        beta,
        c,
    );
}

/// A read-only operand: its data and element strides (row stride, column stride).
struct Operand<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

/// The one `sgemm` call. Callers have checked that every operand holds exactly its
/// matrix, so every index `sgemm` forms lies inside its slice.
#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty product: C ← β·C, and β = 0 must not read C.
        if beta == 0.0 {
            c.fill(0.0);
        } else {
            c.iter_mut().for_each(|v| *v *= beta);
        }
        return;
    }
    let stride = |s: usize| isize::try_from(s).expect("stride overflows isize");
    #[allow(unsafe_code)]
    // SAFETY: `a` is m×k, `b` is k×n and `c` is m×n with the given strides (checked by
    // the public wrappers: each slice length equals its matrix size and all three
    // strides describe a dense row-major or transposed layout of exactly that size);
    // `c` is a unique borrow, so it aliases neither `a` nor `b`.
    unsafe {
        #[rustfmt::skip]
        matrixmultiply::sgemm(
            m, k, n,
            alpha,
            a.data.as_ptr(), stride(a.rs), stride(a.cs),
            b.data.as_ptr(), stride(b.rs), stride(b.cs),
            beta,
            c.as_mut_ptr(), stride(n), 1,
        );
    }
}
