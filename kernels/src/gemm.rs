//! Row-major GEMM wrappers over the packed [`sgemm`].
//!
//! `C ← α·op(A)·op(B) + β·C` where `C` is `m×n` and the shared dimension is `k`.
//! With `β = 0`, `C` is not read (it may hold NaN). Strides are in elements, so a
//! transposed operand is a stride swap, never a copy. `pack` is the caller-owned
//! packing workspace, at least [`PACK_LEN`] floats: it is what lets a training step
//! run without allocating (matrixmultiply, which we measured against, allocates its
//! packing buffer on every call).
//!
//! Batch 1 is a different regime (DESIGN.md §6): with a single row of activations each
//! product is matrix-vector shaped, and packing the 794×794 operand would cost as much
//! as the product itself. So the wrappers route the three batch-1 shapes of a layer to
//! memory-bound loops that read each weight once: `X·Wᵀ` with `m = 1` is a dot
//! product per row of W, in six sequential bands of rows ([`gemm_abt`]), `dY·W` with
//! `m = 1` an axpy per row of W ([`gemm_ab`]), and `dYᵀ·X` with `k = 1` an outer product
//! ([`gemm_atb`]). Degenerate calls (`k = 0`, `α = 0`) keep going through [`sgemm`].

use crate::check_len;
#[cfg(doc)]
use crate::sgemm::PACK_LEN;
#[cfg(doc)]
use crate::sgemm::sgemm_bias;
use crate::sgemm::{BSource, Start, StripeSink, sgemm, sgemm_from, sgemm_stripes};
use crate::simd::wide;

/// The signature [`gemm_ab`], [`gemm_abt`] and [`gemm_atb`] share,
/// `(m, k, n, α, a, b, β, c, pack)`: for code that picks one of them at run time.
pub type GemmFn = fn(usize, usize, usize, f32, &[f32], &[f32], f32, &mut [f32], &mut [f32]);

/// `C ← α·A·B + β·C` with `A: m×k`, `B: k×n`, `C: m×n`, all row-major.
///
/// In the tape: the input gradient of `Y = X·Wᵀ` is `dX += dY·W` (`A = dY`, `B = W`).
/// With `m = 1` it runs as one axpy per row of B (see the module doc).
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
    if m == 1 && k > 0 && alpha != 0.0 {
        return wide!(row_times_matrix(alpha, a, b, beta, c));
    }
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
/// With `m = 1` it runs as one dot product per row of B (see the module doc).
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
    abt(m, k, n, alpha, a, b, Start::Beta(beta), c, pack);
}

/// `C ← α·A·Bᵀ + bias` with `A: m×k`, `B: n×k` (stored row-major, used transposed),
/// `C: m×n`, and the `n` floats of `bias` added to every row of C. C is not read.
///
/// In the tape: the forward of a linear layer, `Y = X·Wᵀ + b`. The bias is folded into
/// the GEMM's first store ([`sgemm_bias`]) instead of being written into Y by a pass
/// of its own; the bits are those of that pass followed by [`gemm_abt`] with `β = 1`.
/// With `m = 1` the bias row is copied into C and the dot products add onto it.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_abt_bias(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    bias: &[f32],
    c: &mut [f32],
    pack: &mut [f32],
) {
    check_len("gemm_abt_bias bias", bias.len(), 1, n);
    abt(m, k, n, alpha, a, b, Start::Bias(bias), c, pack);
}

/// The body of [`gemm_abt`] and [`gemm_abt_bias`] (and of their pool twins' pieces):
/// `C ← α·A·Bᵀ + start`.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub(crate) fn abt(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    start: Start<'_>,
    c: &mut [f32],
    pack: &mut [f32],
) {
    check_len("gemm_abt A", a.len(), m, k);
    check_len("gemm_abt B", b.len(), n, k);
    check_len("gemm_abt C", c.len(), m, n);
    if m == 1 && k > 0 && alpha != 0.0 {
        let beta = match start {
            Start::Beta(beta) => beta,
            Start::Bias(bias) => {
                c.copy_from_slice(bias);
                1.0
            }
        };
        return wide!(row_dot_rows(alpha, a, b, beta, c));
    }
    let b = BSource::Strided { b, rsb: 1, csb: k };
    sgemm_from(m, k, n, alpha, (a, k, 1), b, start, (c, n, 1), pack);
}

/// `C ← α·Aᵀ·B + β·C` with `A: k×m` (stored row-major, used transposed), `B: k×n`, `C: m×n`.
///
/// In the tape: the weight gradient of `Y = X·Wᵀ` is `dW += dYᵀ·X` (`A = dY`, `B = X`).
/// With `k = 1` (batch 1) it runs as an outer product (see the module doc).
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
    if k == 1 && n > 0 && alpha != 0.0 {
        return wide!(outer_product(alpha, a, b, beta, c));
    }
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

/// `C = α·Aᵀ·B` (`A: k×m` stored row-major, `B: k×n`, `C: m×n`) handed to `sink` in
/// stripes of rows instead of stored: [`sgemm_stripes`] (see there), with
/// `sink.stripe(first_row, rows)` getting every row of C exactly once, in order.
///
/// In the tape: the weight gradient `dW = dYᵀ·X` consumed by the optimizer update
/// while it is in L1 (the batched twin of [`Update::linear_rank1`](crate::Update::linear_rank1)).
///
/// # Panics
///
/// Unless [`stripes_fit`](crate::sgemm::stripes_fit)`(k, n)`, or if a slice is too short.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_atb_stripes(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    pack: &mut [f32],
    sink: &mut dyn StripeSink,
) {
    check_len("gemm_atb_stripes A", a.len(), k, m);
    check_len("gemm_atb_stripes B", b.len(), k, n);
    #[rustfmt::skip]
    sgemm_stripes(
        m, k, n,
        alpha,
        a, 1, m,
        b, n, 1,
        pack,
        sink,
    );
}

/// Accumulator lanes of a dot product ([`dot_rows`]): 16 independent partial sums,
/// which LLVM turns into vector registers and independent add chains (a single running
/// sum would be one serial chain and could not be vectorised without reordering the
/// additions).
const LANES: usize = 16;

/// Rows of B whose dot products [`dot_rows`] computes in one pass.
const ROWS: usize = 6;

/// `Σ_p x[p]·row[p]` for each of [`ROWS`] rows as long as `x`: summed in [`LANES`]
/// interleaved partial sums (lane `l` takes `p ≡ l mod LANES` over the whole chunks, in
/// order), then across the lanes in order, plus the leftover elements' sum.
///
/// Why several rows at once: a single dot ends in a serial chain (the lanes summed in
/// order, after k/16 dependent adds per lane) that the out-of-order window cannot hide
/// behind the next row's loads; independent chains can. Each row's arithmetic is the
/// single dot's, so the bits are too (unit test below). Six rows keep 12 accumulator
/// vectors and the two of `x` in 14 of AVX2's 16 registers. Measured on 20 layers of
/// the batch-1 forward (adjacent rows, before [`row_dot_rows`] took them from bands),
/// variants alternating in one process (6 runs): medians of 3.83–4.05 ms with six
/// rows, 4.06–4.73 with four, 4.30–4.54 one at a time; seven rows were slower than six
/// in every run.
#[inline(always)]
fn dot_rows(x: &[f32], rows: [&[f32]; ROWS]) -> [f32; ROWS] {
    let lanes = |s: &[f32], c: usize| -> [f32; LANES] {
        s[c * LANES..(c + 1) * LANES].try_into().expect("a range of LANES floats")
    };
    let mut acc = [[0.0f32; LANES]; ROWS];
    for c in 0..x.len() / LANES {
        let xs = lanes(x, c);
        for (acc, row) in acc.iter_mut().zip(rows) {
            // Fixed-size arrays, so that LLVM vectorises along the lanes, not across
            // the rows (which it did for slices: spills and shuffles).
            let ys = lanes(row, c);
            for l in 0..LANES {
                acc[l] += xs[l] * ys[l];
            }
        }
    }
    let full = x.len() - x.len() % LANES;
    core::array::from_fn(|r| {
        let tail: f32 = x[full..].iter().zip(&rows[r][full..]).map(|(&a, &b)| a * b).sum();
        acc[r].iter().sum::<f32>() + tail
    })
}

/// `c ← α·a·Bᵀ + β·c` for the row `a` (`k`), `B: n×k` and the row `c` (`n`): one dot
/// product per row of B, [`ROWS`] at a time, each pass taking one row from each of
/// [`ROWS`] equal bands of B (rows `i`, `i + band`, `i + 2·band`, …). `k ≥ 1`.
///
/// Why bands: B (the weight, 2.5 MB a layer) mostly comes from memory, at a rate set
/// by how far ahead the hardware prefetcher runs. Six adjacent rows are one 19 KB
/// stretch, a new one every pass; six bands are six long sequential streams. A C probe
/// reading 20 such layers from memory: 7.6–8.1 GB/s adjacent, 9.0–10.1 GB/s in bands.
/// Each row's dot product is unchanged, so the bits are too (unit test below).
/// Measured on the one-thread batch-1 momentum step (L = 20, the two loops alternating
/// in one process, 60 rounds): adjacent ÷ banded step time 1.13–1.16 (14.8 → 12.8 ms),
/// SGD 1.21, two threads 1.06; 12 or 18 bands (two or three passes of six per row
/// position) gained less, 1.06–1.10.
#[inline(always)]
fn row_dot_rows(alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    let (k, n) = (a.len(), c.len());
    let band = n.div_ceil(ROWS);
    for i in 0..band {
        // Band r's row of this pass, if the band has one (the last bands can be short
        // or empty); a missing row repeats band 0's (from cache) and is not stored.
        let row = |r: usize| Some(r * band + i).filter(|&j| j < n);
        let rows = core::array::from_fn(|r| {
            let j = row(r).unwrap_or(i);
            &b[j * k..(j + 1) * k]
        });
        for (r, d) in dot_rows(a, rows).into_iter().enumerate() {
            if let Some(j) = row(r) {
                let v = alpha * d;
                c[j] = if beta == 0.0 { v } else { v + beta * c[j] };
            }
        }
    }
}

/// `c ← α·a·B + β·c` for the row `a` (`k`), `B: k×n` and the row `c` (`n`): `c` is
/// scaled once, then gains `α·a[p]·B[p, ..]` row by row (an axpy each), so B is read
/// once, in storage order, and `c` stays in L1. `k ≥ 1`.
#[inline(always)]
fn row_times_matrix(alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.iter_mut().for_each(|v| *v *= beta);
    }
    if c.is_empty() {
        return;
    }
    for (&ap, row) in a.iter().zip(b.chunks_exact(c.len())) {
        let s = alpha * ap;
        for (cj, &bj) in c.iter_mut().zip(row) {
            *cj += s * bj;
        }
    }
}

/// `C ← α·aᵀ·b + β·C` for the rows `a` (`m`) and `b` (`n`), `C: m×n`: the outer
/// product, written row by row. `n ≥ 1`.
#[inline(always)]
fn outer_product(alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    for (&ai, c_row) in a.iter().zip(c.chunks_exact_mut(b.len())) {
        let s = alpha * ai;
        if beta == 0.0 {
            c_row.iter_mut().zip(b).for_each(|(cj, &bj)| *cj = s * bj);
        } else {
            c_row.iter_mut().zip(b).for_each(|(cj, &bj)| *cj = s * bj + beta * *cj);
        }
    }
}

#[cfg(test)]
mod tests {
    // The harness links std even when the crate is built without it.
    extern crate std;
    use std::vec::Vec;

    use super::{LANES, gemm_abt};

    /// One dot product in the order the batch-1 forward has always used: lane `l` sums
    /// `x[p]·y[p]` for `p ≡ l mod LANES` over the whole chunks, then the lanes in order,
    /// then the leftover elements' sum.
    fn dot_in_order(x: &[f32], y: &[f32]) -> f32 {
        let mut acc = [0.0f32; LANES];
        let full = x.len() - x.len() % LANES;
        for p in 0..full {
            acc[p % LANES] += x[p] * y[p];
        }
        let tail: f32 = x[full..].iter().zip(&y[full..]).map(|(&a, &b)| a * b).sum();
        acc.iter().sum::<f32>() + tail
    }

    #[test]
    fn batch1_forward_keeps_the_single_dot_bits() {
        let value = |i: usize| ((i * 7919 % 1000) as f32 - 500.0) / 317.0;
        for k in [1, 15, 16, 17, 33, 794] {
            // Up to 9 rows: bands of one or two rows, some empty; 37: a short last band.
            for n in (1..=9).chain([13, 36, 37]) {
                let a: Vec<f32> = (0..k).map(value).collect();
                let b: Vec<f32> = (0..n * k).map(|i| value(i + 13)).collect();
                for beta in [0.0, 1.0] {
                    let mut c: Vec<f32> = (0..n).map(|j| value(j + 5)).collect();
                    let want: Vec<u32> = c
                        .iter()
                        .enumerate()
                        .map(|(j, &c0)| {
                            let v = 1.3 * dot_in_order(&a, &b[j * k..(j + 1) * k]);
                            (if beta == 0.0 { v } else { v + beta * c0 }).to_bits()
                        })
                        .collect();
                    gemm_abt(1, k, n, 1.3, &a, &b, beta, &mut c, &mut []);
                    let got: Vec<u32> = c.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(got, want, "k = {k}, n = {n}, β = {beta}");
                }
            }
        }
    }
}
