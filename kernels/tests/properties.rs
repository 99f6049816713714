//! quickcheck properties of GEMM (against its naive twin, any wrapper, random shapes,
//! α and β) and of softmax cross-entropy (rows sum to 1, shift invariance, loss ≥ 0,
//! gradient rows sum to 0). Shapes and values are bounded so that each property runs
//! its cases in milliseconds in a debug build.
//!
//! Each case carries a seed from which its data is generated, so shrinking keeps the
//! data family and a failing case printed by quickcheck can be replayed exactly.

mod common;

use common::{Rng, U, Wrapper, check_gemm, gamma};
use idmlp_kernels as kern;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// Cases per property: enough to cover every wrapper × ragged-edge combination many
/// times over, at a few milliseconds per property.
const CASES: u64 = 300;

/// Largest GEMM dimension drawn: past two of matrixmultiply's 8-wide kernel tiles,
/// so that full tiles, ragged edges and the k = 0 / m = 0 paths all come up.
const MAX_DIM: usize = 20;

/// Largest softmax row drawn (the model has 10 classes; longer rows exercise the sum).
const MAX_COLS: usize = 64;

/// Largest number of softmax rows drawn.
const MAX_ROWS: usize = 6;

fn run<A: quickcheck::Testable>(prop: A) {
    QuickCheck::new().tests(CASES).quickcheck(prop);
}

/// A scalar on a 1/16 grid in [−8, 8): includes 0, ±1 and values no test would pick.
fn grid_scalar(g: &mut Gen) -> f32 {
    f32::from(i8::arbitrary(g)) / 16.0
}

#[derive(Clone, Debug)]
struct GemmCase {
    wrapper: Wrapper,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    seed: u64,
}

impl Arbitrary for GemmCase {
    fn arbitrary(g: &mut Gen) -> Self {
        let dim = |g: &mut Gen| usize::arbitrary(g) % (MAX_DIM + 1);
        GemmCase {
            wrapper: *g.choose(&Wrapper::ALL).expect("non-empty"),
            m: dim(g),
            k: dim(g),
            n: dim(g),
            alpha: grid_scalar(g),
            // β = 0 a quarter of the time: C is then NaN-filled and must not be read.
            beta: if u8::arbitrary(g) % 4 == 0 { 0.0 } else { grid_scalar(g) },
            seed: u64::arbitrary(g),
        }
    }

    /// Shrinks the dimensions; the data comes from the same seed.
    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let case = self.clone();
        Box::new((self.m, self.k, self.n).shrink().map(move |(m, k, n)| GemmCase {
            m,
            k,
            n,
            ..case.clone()
        }))
    }
}

#[test]
fn gemm_matches_naive_for_any_shape_transpose_and_scalars() {
    fn prop(c: GemmCase) -> bool {
        // Panics (with the element, bound and case) on a mismatch; quickcheck reports it.
        check_gemm(c.wrapper, c.m, c.k, c.n, c.alpha, c.beta, c.seed);
        true
    }
    run(prop as fn(GemmCase) -> bool);
}

#[derive(Clone, Debug)]
struct SoftmaxCase {
    rows: usize,
    cols: usize,
    /// Logits are `i16 / 256`: dyadic, in [−128, 128), so adding an integer shift of
    /// up to ±1000 is exact in f32 (8 fraction bits + 11 integer bits < 24).
    logits: Vec<i16>,
    labels: Vec<u32>,
    shift: i16,
}

impl SoftmaxCase {
    fn z(&self) -> Vec<f32> {
        self.logits.iter().map(|&v| f32::from(v) / 256.0).collect()
    }
}

impl Arbitrary for SoftmaxCase {
    fn arbitrary(g: &mut Gen) -> Self {
        let rows = 1 + usize::arbitrary(g) % MAX_ROWS;
        let cols = 1 + usize::arbitrary(g) % MAX_COLS;
        let mut rng = Rng::new(u64::arbitrary(g));
        SoftmaxCase {
            rows,
            cols,
            logits: (0..rows * cols).map(|_| i16::arbitrary(g)).collect(),
            labels: rng.labels(rows, cols),
            shift: i16::arbitrary(g) % 1001,
        }
    }
}

#[test]
fn softmax_rows_sum_to_one() {
    fn prop(c: SoftmaxCase) -> TestResult {
        let z = c.z();
        let mut p = vec![f32::NAN; c.rows * c.cols];
        kern::softmax_rows(&mut p, &z, c.rows, c.cols);
        for (r, row) in p.chunks_exact(c.cols).enumerate() {
            // p_j = e_j·(1/S) with S the f32 sum of the e_j: Σ_j p_j = 1 up to the
            // sum's γ_cols, the reciprocal and the scaling. (Exponent rounding cancels:
            // the same e_j are in the numerators and in S.)
            let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
            let tol = f64::from(gamma(c.cols + 2));
            if !((sum - 1.0).abs() <= tol && row.iter().all(|&v| (0.0..=1.0).contains(&v))) {
                return TestResult::error(format!("row {r}: Σp = {sum}, p = {row:?}"));
            }
        }
        TestResult::passed()
    }
    run(prop as fn(SoftmaxCase) -> TestResult);
}

#[test]
fn softmax_is_shift_invariant() {
    fn prop(c: SoftmaxCase) -> TestResult {
        let z = c.z();
        let shifted: Vec<f32> = z.iter().map(|&v| v + f32::from(c.shift)).collect();
        let (mut p, mut q) = (vec![0.0; z.len()], vec![0.0; z.len()]);
        kern::softmax_rows(&mut p, &z, c.rows, c.cols);
        kern::softmax_rows(&mut q, &shifted, c.rows, c.cols);
        // The shift is exact and so is max-subtraction on these dyadic logits, so a
        // kernel that subtracts the row max sees the same exponents either way (today's
        // is bit-exact). The tolerance leaves room for a kernel that rounds
        // differently, up to the softmax bound (sum γ_cols, exp, reciprocal, scale).
        let rtol = gamma(c.cols + 6);
        for (i, (&a, &b)) in p.iter().zip(&q).enumerate() {
            if (a - b).abs() > rtol * a.max(b) {
                return TestResult::error(format!(
                    "p[{i}] = {a:e} unshifted, {b:e} shifted by {}",
                    c.shift
                ));
            }
        }
        TestResult::passed()
    }
    run(prop as fn(SoftmaxCase) -> TestResult);
}

#[test]
fn cross_entropy_is_non_negative_and_finite() {
    fn prop(c: SoftmaxCase) -> TestResult {
        // Per row, loss = (max z − z_y) + ln Σ exp(z − max z): the first term is ≥ 0
        // and the sum holds exp(0) = 1, so its log is ≥ 0 too, even after rounding.
        let z = c.z();
        let mut p = vec![0.0; c.cols];
        for r in 0..c.rows {
            let row = &z[r * c.cols..(r + 1) * c.cols];
            let loss = kern::softmax_xent_forward(&mut p, row, &c.labels[r..=r], 1, c.cols);
            if !(loss.is_finite() && loss >= 0.0) {
                return TestResult::error(format!("row {r} label {}: loss {loss}", c.labels[r]));
            }
        }
        let mut p = vec![0.0; c.rows * c.cols];
        let mean = kern::softmax_xent_forward(&mut p, &z, &c.labels, c.rows, c.cols);
        TestResult::from_bool(mean.is_finite() && mean >= 0.0)
    }
    run(prop as fn(SoftmaxCase) -> TestResult);
}

#[test]
fn cross_entropy_gradient_rows_sum_to_zero() {
    fn prop(c: SoftmaxCase) -> TestResult {
        // Shift invariance, differentiated: the gradient of each row is orthogonal to
        // (1, …, 1), as Σ_j (p_j − [j = y]) = Σp − 1 = 0. Each element carries ≈ 3
        // roundings of size ≤ s = dloss/rows, and Σp is 1 within γ_{cols+2}.
        let z = c.z();
        let mut p = vec![0.0; c.rows * c.cols];
        kern::softmax_xent_forward(&mut p, &z, &c.labels, c.rows, c.cols);
        let mut dz = vec![0.0; c.rows * c.cols];
        kern::softmax_xent_backward(&mut dz, &p, &c.labels, c.rows, c.cols, 1.0);
        let scale = 1.0 / c.rows as f64;
        let tol = scale * f64::from(gamma(c.cols + 2) + 3.0 * (c.cols + 1) as f32 * U);
        for (r, row) in dz.chunks_exact(c.cols).enumerate() {
            let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
            if sum.abs() > tol {
                return TestResult::error(format!("dz row {r} sums to {sum:e} (tol {tol:e})"));
            }
        }
        TestResult::passed()
    }
    run(prop as fn(SoftmaxCase) -> TestResult);
}
