//! Shared test support: a seeded generator, rounding-error bounds, a comparison that
//! names the buffer, the flat index and the (row, col) of the first mismatch, and the
//! GEMM-vs-naive check used by both the twin tests and the quickcheck properties.
//!
//! Each test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

use idmlp_kernels::{self as kern, naive};

/// Unit roundoff of f32: the largest relative error of one correctly rounded
/// operation (`+ − × ÷ √`).
pub const U: f32 = f32::EPSILON / 2.0;

/// `γ_n = n·u / (1 − n·u)` (Higham, *Accuracy and Stability of Numerical Algorithms*,
/// §3.1): the worst-case relative error of `n` chained roundings, e.g. a length-`n`
/// sum or dot product in f32 in *any* order, with or without FMA. It bounds the error
/// against `Σ|terms|`, not against the (possibly cancelled) result, so tolerances built
/// on it never flake on random data and are still far below one missing term.
pub fn gamma(n: usize) -> f32 {
    let nu = n as f64 * f64::from(U);
    assert!(nu < 0.5, "gamma({n}) is not a useful bound in f32");
    (nu / (1.0 - nu)) as f32
}

/// SplitMix64: tiny, seeded, good enough for test data, and no dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator that yields the same stream for the same seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)` with 24 random bits.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32;
        lo + (hi - lo) * unit
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `len` values uniform in `[lo, hi)`.
    pub fn vec(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform(lo, hi)).collect()
    }

    /// `len` values uniform in `[-1, 1)`, one in eight replaced by an exact `0.0` or
    /// `-0.0`: relu's kink must be hit, not just approached.
    pub fn vec_with_zeros(&mut self, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| match self.below(16) {
                0 => 0.0,
                1 => -0.0,
                _ => self.uniform(-1.0, 1.0),
            })
            .collect()
    }

    /// `len` class labels in `0..classes`.
    pub fn labels(&mut self, len: usize, classes: usize) -> Vec<u32> {
        (0..len).map(|_| self.below(classes) as u32).collect()
    }
}

/// Asserts `|got[i] − want[i]| ≤ tol(i)` for every `i`, with NaN equal only to NaN and
/// infinities only to themselves. `cols` is the row length, used to report `[row, col]`.
/// The message names `what` (kernel, case and buffer) and the first failing index.
#[track_caller]
pub fn assert_all_close(
    what: &str,
    got: &[f32],
    want: &[f32],
    cols: usize,
    tol: impl Fn(usize) -> f32,
) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs expected {}", got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() || g.is_nan() || w.is_infinite() || g.is_infinite() {
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan())
        } else {
            (g - w).abs() <= tol(i)
        };
        if !ok {
            let (r, c) = (i / cols.max(1), i % cols.max(1));
            panic!(
                "{what}[{i}] (row {r}, col {c}): got {g:e}, want {w:e}, |diff| {:e} > tol {:e}",
                (g - w).abs(),
                tol(i)
            );
        }
    }
}

/// [`assert_all_close`] with tolerance 0: for kernels that only select or copy.
#[track_caller]
pub fn assert_all_eq(what: &str, got: &[f32], want: &[f32], cols: usize) {
    assert_all_close(what, got, want, cols, |_| 0.0);
}

/// Element-wise absolute values.
pub fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

// ------------------------------------------------------------------------- GEMM

/// The three row-major wrappers and how each stores its operands.
#[derive(Clone, Copy, Debug)]
pub enum Wrapper {
    /// `C ← α·A·B + β·C`, `A: m×k`, `B: k×n`.
    Ab,
    /// `C ← α·A·Bᵀ + β·C`, `A: m×k`, `B: n×k`.
    Abt,
    /// `C ← α·Aᵀ·B + β·C`, `A: k×m`, `B: k×n`.
    Atb,
}

impl Wrapper {
    pub const ALL: [Wrapper; 3] = [Wrapper::Ab, Wrapper::Abt, Wrapper::Atb];

    /// `(trans_a, trans_b)` for [`naive::gemm`].
    pub fn trans(self) -> (bool, bool) {
        match self {
            Wrapper::Ab => (false, false),
            Wrapper::Abt => (false, true),
            Wrapper::Atb => (true, false),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn run(
        self,
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) {
        let pack = &mut pack();
        match self {
            Wrapper::Ab => kern::gemm_ab(m, k, n, alpha, a, b, beta, c, pack),
            Wrapper::Abt => kern::gemm_abt(m, k, n, alpha, a, b, beta, c, pack),
            Wrapper::Atb => kern::gemm_atb(m, k, n, alpha, a, b, beta, c, pack),
        }
    }
}

/// Roundings in one element of `C ← α·A·B + β·C` besides the `k`-term dot product: the
/// scale by α, the product β·c, the final add, and the naive twin's own f64 → f32
/// rounding. The bound `γ_{k+4}·(|α|·Σ_p |a_ip·b_pj| + |β|·|c_ij|)` is then rigorous
/// (Higham §3.5) whatever blocking or FMA the fast kernel uses. The tests replace
/// `Σ_p |a_ip·b_pj|` by `‖a_i‖₂·‖b_j‖₂` (Cauchy–Schwarz: never smaller, ≈ 4/3 of it on
/// uniform data, and O(m·k + k·n) instead of a second O(m·k·n) pass in debug). A
/// missing or doubled term (≈ 1/4 on uniform data) is ≈ 1/(k²·u) times the bound:
/// 20 times at k = 794, 10⁴ times at k = 33.
pub const GEMM_EXTRA_ROUNDINGS: usize = 4;

/// Euclidean norms of the `count` vectors of length `len` stored in `x` with element
/// stride `step` and vector stride `stride`: rows of `A` or columns of `op(B)`.
fn norms(x: &[f32], count: usize, len: usize, stride: usize, step: usize) -> Vec<f32> {
    (0..count)
        .map(|i| {
            let sq: f64 = (0..len).map(|p| f64::from(x[i * stride + p * step]).powi(2)).sum();
            sq.sqrt() as f32
        })
        .collect()
}

/// Runs one wrapper and [`naive::gemm`] on the same seeded data and compares every
/// element of `C` against the bound above.
#[allow(clippy::too_many_arguments)]
pub fn check_gemm(w: Wrapper, m: usize, k: usize, n: usize, alpha: f32, beta: f32, seed: u64) {
    let mut rng = Rng::new(seed);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let c0 = if beta == 0.0 { vec![f32::NAN; m * n] } else { rng.vec(m * n, -1.0, 1.0) };
    let (ta, tb) = w.trans();

    let mut fast = c0.clone();
    w.run(m, k, n, alpha, &a, &b, beta, &mut fast);
    let mut slow = c0.clone();
    naive::gemm(m, k, n, alpha, &a, ta, &b, tb, beta, &mut slow);

    // Row i of op(A) and column j of op(B): (stride between vectors, between elements).
    let row_a = norms(&a, m, k, if ta { 1 } else { k }, if ta { m } else { 1 });
    let col_b = norms(&b, n, k, if tb { k } else { 1 }, if tb { 1 } else { n });
    let g = gamma(k + GEMM_EXTRA_ROUNDINGS);
    let tol = |i: usize| {
        let prior = if beta == 0.0 { 0.0 } else { beta.abs() * c0[i].abs() };
        g * (alpha.abs() * row_a[i / n] * col_b[i % n] + prior)
    };
    let what = format!("{w:?} m={m} k={k} n={n} α={alpha} β={beta}: C");
    assert_all_close(&what, &fast, &slow, n, tol);
}

/// A fresh GEMM packing workspace, poisoned with NaN: its contents on entry must not matter.
pub fn pack() -> Vec<f32> {
    vec![f32::NAN; kern::sgemm::PACK_LEN]
}
