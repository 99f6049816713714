//! Every fast kernel against its naive twin (`idmlp_kernels::naive`) on odd sizes, and
//! the buffer contracts the rest of idmlp relies on: forward kernels overwrite every
//! element (NaN-filled outputs), backward kernels accumulate (non-zero gradient
//! buffers), `A·I = A`, relu′ at exactly 0, large logits, boundary labels, ties.
//!
//! Tolerances are derived from rounding-error bounds (see `common::gamma`), not tuned
//! to pass: each is stated next to the kernel it covers.

mod common;

use common::{Rng, U, Wrapper, abs, assert_all_close, assert_all_eq, check_gemm, gamma};
use idmlp_kernels::{self as kern, Adam, ReluGradAtZero, naive};

/// Odd sizes: empty, single, smaller than a SIMD register, just past a register
/// multiple, and the model's width `D = 784 + 10`.
const SIZES: [usize; 5] = [0, 1, 7, 33, 794];

/// The model's width and number of classes: relu covers columns `0..D − C`.
const D: usize = 794;
const C: usize = 10;

// ------------------------------------------------------------------------- GEMM

/// `(α, β)` pairs: the plain product, accumulation, and general scalings. Every pair
/// with `β = 0` runs on a NaN-filled `C`: a single unwritten (or read) element fails.
const SCALARS: [(f32, f32); 5] = [(1.0, 0.0), (1.0, 1.0), (-0.5, 0.0), (1.5, -0.75), (0.0, 2.0)];

/// Every `(m, k, n)` from [`SIZES`] with at most one 794, plus the two-794 shapes with
/// the third dimension 0 or 1 (one layer at batch 0 or 1). 794³ is left to the benches:
/// the naive twin would take minutes in a debug build.
fn gemm_shapes() -> Vec<(usize, usize, usize)> {
    let mut shapes = Vec::new();
    for &m in &SIZES {
        for &k in &SIZES {
            for &n in &SIZES {
                let big = [m, k, n].iter().filter(|&&s| s == D).count();
                let small = [m, k, n].iter().copied().filter(|&s| s != D).max().unwrap_or(D);
                if big <= 1 || (big == 2 && small <= 1) {
                    shapes.push((m, k, n));
                }
            }
        }
    }
    shapes
}

#[test]
fn gemm_wrappers_match_naive_on_odd_sizes() {
    // Scalar pairs rotate over shapes so that every wrapper sees every pair on many
    // shapes without multiplying the (debug-mode) cost by five.
    for (i, &(m, k, n)) in gemm_shapes().iter().enumerate() {
        for (j, &w) in Wrapper::ALL.iter().enumerate() {
            let (alpha, beta) = SCALARS[(i + j) % SCALARS.len()];
            check_gemm(w, m, k, n, alpha, beta, (i * 3 + j) as u64);
        }
    }
}

#[test]
fn gemm_layer_shapes_at_batch_7_match_naive() {
    // The three products of one layer (DESIGN.md §6) at B = 7, each with the wrapper
    // the tape uses for it, accumulating where the tape accumulates.
    let b = 7;
    check_gemm(Wrapper::Abt, b, D, D, 1.0, 1.0, 1); // Y = X·Wᵀ + (broadcast bias)
    check_gemm(Wrapper::Ab, b, D, D, 1.0, 1.0, 2); // dX += dY·W
    check_gemm(Wrapper::Atb, D, b, D, 1.0, 0.0, 3); // dW = dYᵀ·X
}

#[test]
fn gemm_batch_one_paths_match_naive() {
    // The three products of one layer at B = 1, which the wrappers route to the
    // dot-product, axpy and outer-product loops (not the packed sgemm), on the model's
    // width and on odd sizes around the 16-lane accumulator of the dot product.
    for (s, &(alpha, beta)) in SCALARS.iter().enumerate() {
        let seed = 2000 + 10 * s as u64;
        check_gemm(Wrapper::Abt, 1, D, D, alpha, beta, seed); // y = x·Wᵀ
        check_gemm(Wrapper::Ab, 1, D, D, alpha, beta, seed + 1); // dx = dy·W
        check_gemm(Wrapper::Atb, D, 1, D, alpha, beta, seed + 2); // dW = dyᵀ·x
        for &(k, n) in &[(15, 17), (16, 1), (17, 794), (794, 33)] {
            check_gemm(Wrapper::Abt, 1, k, n, alpha, beta, seed + 3);
            check_gemm(Wrapper::Ab, 1, k, n, alpha, beta, seed + 4);
            check_gemm(Wrapper::Atb, k, 1, n, alpha, beta, seed + 5);
        }
    }
}

#[test]
fn gemm_every_wrapper_with_every_scalar_pair() {
    for &(m, k, n) in &[(7, 33, 1), (33, 7, 33), (1, 794, 7)] {
        for &w in &Wrapper::ALL {
            for (s, &(alpha, beta)) in SCALARS.iter().enumerate() {
                check_gemm(w, m, k, n, alpha, beta, 1000 + s as u64);
            }
        }
    }
}

#[test]
fn gemm_beta_zero_writes_every_element_and_never_reads_c() {
    // β = 0 over a NaN-filled C must give the plain product: NaN·0 would leak if C
    // were read, and any element left unwritten stays NaN. Includes k = 0 (C ← 0).
    for &w in &Wrapper::ALL {
        for &(m, k, n) in &[(7, 0, 33), (33, 1, 7), (1, 33, 794), (794, 7, 1)] {
            let mut rng = Rng::new(7);
            let a = rng.vec(m * k, -1.0, 1.0);
            let b = rng.vec(k * n, -1.0, 1.0);
            let mut c = vec![f32::NAN; m * n];
            w.run(m, k, n, 1.0, &a, &b, 0.0, &mut c);
            if let Some(i) = c.iter().position(|v| !v.is_finite()) {
                panic!("{w:?} m={m} k={k} n={n}: C[{i}] = {} after β = 0", c[i]);
            }
        }
    }
}

/// `I: n×n`, row-major.
fn identity(n: usize) -> Vec<f32> {
    let mut eye = vec![0.0; n * n];
    for i in 0..n {
        eye[i * n + i] = 1.0;
    }
    eye
}

#[test]
fn gemm_times_identity_is_exact() {
    // Every output is x·1 plus exact zeros: no rounding, so equality is exact. This is
    // the forward of an identity-initialised layer (X·Iᵀ) and both backward products.
    let b = 7;
    let x = Rng::new(11).vec(b * D, -1.0, 1.0); // X: (B, D)
    let xt: Vec<f32> = (0..D * b).map(|i| x[(i % b) * D + i / b]).collect(); // Xᵀ: (D, B)
    let eye = identity(D);
    let mut c = vec![f32::NAN; b * D];

    kern::gemm_ab(b, D, D, 1.0, &x, &eye, 0.0, &mut c, &mut common::pack());
    assert_all_eq("gemm_ab X·I: C", &c, &x, D);
    c.fill(f32::NAN);
    kern::gemm_abt(b, D, D, 1.0, &x, &eye, 0.0, &mut c, &mut common::pack());
    assert_all_eq("gemm_abt X·Iᵀ: C", &c, &x, D);

    let mut ct = vec![f32::NAN; D * b];
    kern::gemm_ab(D, D, b, 1.0, &eye, &xt, 0.0, &mut ct, &mut common::pack());
    assert_all_eq("gemm_ab I·Xᵀ: C", &ct, &xt, b);
    ct.fill(f32::NAN);
    kern::gemm_atb(D, D, b, 1.0, &eye, &xt, 0.0, &mut ct, &mut common::pack());
    assert_all_eq("gemm_atb Iᵀ·Xᵀ: C", &ct, &xt, b);
}

#[test]
fn bias_folded_into_gemm_at_identity_is_x_plus_b() {
    // The model's forward, Y ← X·Wᵀ + b with the bias in the GEMM's first store. At
    // W = I each element is one f32 addition x + b, so the result is bit-identical to it.
    let mut rng = Rng::new(12);
    for b in [1, 7] {
        let x = rng.vec(b * D, -1.0, 1.0);
        let bias = rng.vec(D, -1.0, 1.0);
        let mut y = vec![f32::NAN; b * D];
        kern::gemm_abt_bias(b, D, D, 1.0, &x, &identity(D), &bias, &mut y, &mut common::pack());
        let want: Vec<f32> = x.iter().enumerate().map(|(i, &v)| v + bias[i % D]).collect();
        assert_all_eq(&format!("X·Iᵀ + b, batch {b}: Y"), &y, &want, D);
    }
}

/// `gemm_abt_bias` gives the bits of what it replaced in the forward, the bias broadcast
/// into C ([`kern::bias_forward`]) and then `gemm_abt` with `β = 1`: batch 1 (the dot
/// product path), ragged and full row tiles, one and several k blocks, k = 0 and α = 0.
/// C starts as NaN, which must not leak. (`tests/simd.rs` checks the batch-1 path's
/// baseline build.)
#[test]
fn gemm_abt_bias_is_the_bias_copy_then_beta_one() {
    let mut rng = Rng::new(13);
    let shapes = [(1, D, D), (1, 33, 70), (2, 5, 17), (7, 400, 33), (128, D, D), (6, 0, 9)];
    for &(m, k, n) in &shapes {
        let (a, b) = (rng.vec(m * k, -1.0, 1.0), rng.vec(n * k, -1.0, 1.0));
        let bias = rng.vec(n, -1.0, 1.0);
        for alpha in [1.0, 0.5, 0.0] {
            let mut want = vec![f32::NAN; m * n];
            kern::bias_forward(&mut want, &bias, m, n);
            kern::gemm_abt(m, k, n, alpha, &a, &b, 1.0, &mut want, &mut common::pack());
            let mut got = vec![f32::NAN; m * n];
            kern::gemm_abt_bias(m, k, n, alpha, &a, &b, &bias, &mut got, &mut common::pack());
            assert_all_eq(&format!("{m}×{k}×{n} α {alpha}"), &got, &want, n);
        }
    }
}

#[test]
#[should_panic(expected = "gemm_abt B: expected 7×33")]
fn gemm_rejects_a_wrong_operand_length() {
    let mut c = vec![0.0; 7];
    kern::gemm_abt(1, 33, 7, 1.0, &[0.0; 33], &[0.0; 7 * 32], 0.0, &mut c, &mut common::pack());
}

// ------------------------------------------------------------------------- relu

/// `(rows, cols)` pairs from [`SIZES`] with at most one 794: a 794×794 buffer adds no
/// case that 794×33 and 33×794 lack, and costs seconds in a debug build.
fn shapes_2d() -> impl Iterator<Item = (usize, usize)> {
    SIZES.iter().flat_map(|&r| SIZES.iter().map(move |&c| (r, c))).filter(|&(r, c)| r.min(c) < D)
}

/// The column ranges relu is tested over for `cols` columns: none, all, a middle
/// third, and the model's split (features `0..cols − C`, class columns linear).
fn relu_ranges(cols: usize) -> [core::ops::Range<usize>; 4] {
    [0..0, 0..cols, cols / 3..2 * cols / 3, 0..cols.saturating_sub(C)]
}

#[test]
fn relu_forward_and_backward_match_naive() {
    // Relu only selects, copies and adds one term per element, in the same order in
    // both twins: the results are bit-identical, so the tolerance is 0. The fresh
    // backward is checked against zero-then-accumulate in the same loop.
    let mut seed = 0;
    for (rows, cols) in shapes_2d() {
        for range in relu_ranges(cols) {
            for at_zero in [ReluGradAtZero::Zero, ReluGradAtZero::One] {
                seed += 1;
                let mut rng = Rng::new(seed);
                let a = rng.vec_with_zeros(rows * cols);
                let mut dh = rng.vec(rows * cols, -1.0, 1.0);
                dh.iter_mut().step_by(3).for_each(|v| *v = -0.0);
                let da0 = rng.vec(rows * cols, -1.0, 1.0); // a non-zero gradient
                let what = format!("rows={rows} cols={cols} relu on {range:?} {at_zero:?}");

                let mut h = vec![f32::NAN; rows * cols];
                let mut h_naive = vec![f32::NAN; rows * cols];
                kern::relu_forward(&mut h, &a, rows, cols, range.clone());
                naive::relu_forward(&mut h_naive, &a, rows, cols, range.clone());
                assert_all_eq(&format!("relu_forward {what}: h"), &h, &h_naive, cols);

                let (mut da, mut da_naive) = (da0.clone(), da0.clone());
                kern::relu_backward(&mut da, &dh, &a, rows, cols, range.clone(), at_zero);
                naive::relu_backward(&mut da_naive, &dh, &a, rows, cols, range.clone(), at_zero);
                assert_all_eq(&format!("relu_backward {what}: da"), &da, &da_naive, cols);

                // The fresh backward overwrites a `da` it never reads (NaN here) with
                // the bits of zeroing it and accumulating, also where the contribution
                // is −0 (a −0 upstream gradient, or a blocked column): both give +0.
                let mut fresh = vec![f32::NAN; rows * cols];
                kern::relu_backward_fresh(&mut fresh, &dh, &a, rows, cols, range.clone(), at_zero);
                let mut zeroed = vec![0.0; rows * cols];
                kern::relu_backward(&mut zeroed, &dh, &a, rows, cols, range.clone(), at_zero);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fresh), bits(&zeroed), "relu_backward_fresh {what}");
                assert!(fresh.iter().all(|x| x.to_bits() != (-0.0f32).to_bits()), "{what}: −0");
            }
        }
    }
}

#[test]
fn relu_kink_at_exactly_zero() {
    // One row, relu on columns 0..5, columns 5..7 are "class" columns (linear).
    //              relu columns ...........................  class columns
    let a = [-1.0, -0.0, 0.0, f32::from_bits(1), 1.0, -1.0, 0.0];
    let dh = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
    let prior = 0.5; // a non-zero gradient, to check accumulation at the same time
    let mut h = [f32::NAN; 7];
    kern::relu_forward(&mut h, &a, 1, 7, 0..5);
    // relu(0) = relu(−0) = 0 (either sign of zero), the smallest subnormal passes,
    // the class columns pass −1 through.
    assert_eq!(h, [0.0, 0.0, 0.0, f32::from_bits(1), 1.0, -1.0, 0.0]);

    let mut da = [prior; 7];
    kern::relu_backward(&mut da, &dh, &a, 1, 7, 0..5, ReluGradAtZero::Zero);
    // relu′(0) = 0: mask a > 0, so both zeros block; class columns always pass.
    assert_eq!(da, [0.5, 0.5, 0.5, 8.5, 16.5, 32.5, 64.5], "ReluGradAtZero::Zero: da");

    let mut da = [prior; 7];
    kern::relu_backward(&mut da, &dh, &a, 1, 7, 0..5, ReluGradAtZero::One);
    // relu′(0) = 1: mask a ≥ 0, and −0.0 ≥ 0.0 in IEEE 754, so both zeros pass.
    assert_eq!(da, [0.5, 2.5, 4.5, 8.5, 16.5, 32.5, 64.5], "ReluGradAtZero::One: da");

    assert_eq!(
        ReluGradAtZero::default(),
        ReluGradAtZero::One,
        "DESIGN.md §1: default relu′(0) = 1"
    );
}

#[test]
fn relu_forward_propagates_nan() {
    // A NaN pre-activation must reach the output: laundering it into 0 would hide a
    // diverged layer behind a clean-looking contribution map.
    let a = [f32::NAN, -1.0, f32::NAN];
    let mut h = [0.0; 3];
    kern::relu_forward(&mut h, &a, 1, 3, 0..2);
    assert!(h[0].is_nan() && h[1] == 0.0 && h[2].is_nan(), "relu_forward h = {h:?}");
}

#[test]
#[should_panic(expected = "relu column range 3..8 does not fit in 7 columns")]
fn relu_rejects_a_range_past_the_row() {
    let mut h = [0.0; 7];
    kern::relu_forward(&mut h, &[0.0; 7], 1, 7, 3..8);
}

// ---------------------------------------------------------------------- softmax

/// Logits in the twin tests are uniform in `[−LOGIT_RANGE, LOGIT_RANGE)`, so every
/// exponent `z − max z` lies in `[−2·LOGIT_RANGE, 0]`.
const LOGIT_RANGE: f32 = 8.0;

/// Relative error bound of one fast softmax probability against the f64 twin: the
/// exponent `z − m` is rounded with absolute error ≤ u·2·LOGIT_RANGE, which `exp`
/// turns into as much relative error (16 roundings' worth); `expf` is within 1 ulp (2);
/// the row sum adds γ_cols; the reciprocal, the scaling and the twin's own rounding one
/// each (3).
fn softmax_rtol(cols: usize) -> f32 {
    gamma(cols + 2 * LOGIT_RANGE as usize + 2 + 3)
}

/// Absolute error bound of the mean loss `(m − z_y) + ln Σ exp(z − m)`: `m − z_y` is
/// rounded (u·2R), `ln` of a sum with relative error γ_{cols+2R+2} is off by that much,
/// `logf` is within 1 ulp of `ln Σ ≤ ln cols`, and the final f32 cast rounds the mean
/// (≤ 2R + ln cols) once.
fn xent_atol(cols: usize) -> f32 {
    let range = LOGIT_RANGE as usize;
    let ln_cols = (cols as f32).ln();
    U * (4.0 * LOGIT_RANGE + 3.0 * ln_cols) + gamma(cols + 2 * range + 2)
}

/// Rounding in one backward element `dz += s·(p − [c = y])` with `s = dloss / rows`:
/// the fast kernel rounds `s`, `s·p`, the add and (label column) the subtract; the
/// naive twin rounds `p − 1`, the product, the quotient and the add. Four roundings
/// each, on magnitudes ≤ |dz| + |s|·(1 + p).
const XENT_BACKWARD_ROUNDINGS: usize = 8;

#[test]
fn softmax_rows_matches_naive() {
    for (rows, cols) in shapes_2d() {
        let z = Rng::new((rows * 1000 + cols) as u64).vec(rows * cols, -LOGIT_RANGE, LOGIT_RANGE);
        let mut p = vec![f32::NAN; rows * cols];
        let mut p_naive = vec![f32::NAN; rows * cols];
        kern::softmax_rows(&mut p, &z, rows, cols);
        naive::softmax_rows(&mut p_naive, &z, rows, cols);
        let rtol = softmax_rtol(cols);
        let what = format!("softmax_rows rows={rows} cols={cols}: p");
        assert_all_close(&what, &p, &p_naive, cols, |i| rtol * p_naive[i]);
    }
}

#[test]
fn softmax_xent_matches_naive_forward_and_backward() {
    for (rows, cols) in shapes_2d().filter(|&(_, cols)| cols > 0) {
        let mut rng = Rng::new((rows * 1000 + cols) as u64);
        let z = rng.vec(rows * cols, -LOGIT_RANGE, LOGIT_RANGE);
        let mut labels = rng.labels(rows, cols);
        // Both boundary labels, whenever there is room for them.
        if let Some(first) = labels.first_mut() {
            *first = 0;
        }
        if let Some(last) = labels.last_mut() {
            *last = (cols - 1) as u32;
        }
        let what = format!("rows={rows} cols={cols}");

        let mut p = vec![f32::NAN; rows * cols];
        let mut p_naive = vec![f32::NAN; rows * cols];
        let loss = kern::softmax_xent_forward(&mut p, &z, &labels, rows, cols);
        let loss_naive = naive::softmax_xent_forward(&mut p_naive, &z, &labels, rows, cols);
        let rtol = softmax_rtol(cols);
        assert_all_close(&format!("softmax_xent_forward {what}: p"), &p, &p_naive, cols, |i| {
            rtol * p_naive[i]
        });
        let atol = xent_atol(cols);
        assert!(
            (loss - loss_naive).abs() <= atol,
            "softmax_xent_forward {what}: loss {loss:e}, want {loss_naive:e} (tol {atol:e})"
        );

        for dloss in [1.0, 0.37, -2.0] {
            let dz0 = rng.vec(rows * cols, -1.0, 1.0); // a non-zero gradient
            let (mut dz, mut dz_naive) = (dz0.clone(), dz0.clone());
            kern::softmax_xent_backward(&mut dz, &p, &labels, rows, cols, dloss);
            naive::softmax_xent_backward(&mut dz_naive, &p, &labels, rows, cols, dloss);
            let scale = (dloss / rows as f32).abs();
            let tol = |i: usize| {
                XENT_BACKWARD_ROUNDINGS as f32 * U * (dz0[i].abs() + scale * (1.0 + p[i]))
            };
            let what = format!("softmax_xent_backward {what} dloss={dloss}: dz");
            assert_all_close(&what, &dz, &dz_naive, cols, tol);
        }
    }
}

#[test]
fn softmax_xent_stays_finite_for_huge_logits() {
    // exp(88.8) already overflows f32; a kernel that exponentiates raw logits fails
    // every case here. Each case: (logits, label, expected loss).
    let ln = |x: f64| x.ln() as f32;
    let cases: [(&[f32], u32, f32); 8] = [
        (&[1e30, -1e30, 88.0, 100.0], 0, 0.0),
        (&[1e30, -1e30, 88.0, 100.0], 1, 2e30),
        (&[1e30, -1e30, 88.0, 100.0], 3, 1e30),
        (&[88.0, 100.0], 0, 12.0 + ln(1.0 + (-12.0f64).exp())),
        (&[88.0, 100.0], 1, ln(1.0 + (-12.0f64).exp())),
        (&[100.0, 100.0, 100.0], 2, ln(3.0)),
        (&[-1e30, -1e30], 1, ln(2.0)),
        (&[-1e30, 0.0], 1, 0.0),
    ];
    for (z, label, want) in cases {
        let cols = z.len();
        let mut p = vec![f32::NAN; cols];
        let loss = kern::softmax_xent_forward(&mut p, z, &[label], 1, cols);
        let what = format!("logits {z:?} label {label}");
        // Relative 1e-6 ≈ 8u: a few roundings on a result that has no cancellation.
        assert!(
            loss.is_finite() && (loss - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{what}: loss {loss:e}, want {want:e}"
        );
        let sum: f32 = p.iter().sum();
        assert!(p.iter().all(|v| v.is_finite() && *v >= 0.0), "{what}: p = {p:?}");
        assert!((sum - 1.0).abs() <= gamma(cols + 4), "{what}: Σp = {sum}");

        let mut dz = vec![0.0; cols];
        kern::softmax_xent_backward(&mut dz, &p, &[label], 1, cols, 1.0);
        assert!(dz.iter().all(|v| v.is_finite()), "{what}: dz = {dz:?}");
        assert!(dz[label as usize] <= 0.0, "{what}: dz[label] = {}", dz[label as usize]);
    }
}

#[test]
fn softmax_xent_with_no_rows() {
    let loss = kern::softmax_xent_forward(&mut [], &[], &[], 0, C);
    assert_eq!(loss, 0.0, "mean loss over 0 rows");
    let mut dz: [f32; 0] = [];
    kern::softmax_xent_backward(&mut dz, &[], &[], 0, C, 1.0);
    kern::softmax_rows(&mut [], &[], 0, C);
}

#[test]
#[should_panic(expected = "label 10 out of range for 10 classes")]
fn softmax_xent_forward_rejects_label_equal_to_classes() {
    let mut p = [0.0; 2 * C];
    kern::softmax_xent_forward(&mut p, &[0.0; 2 * C], &[9, 10], 2, C);
}

#[test]
#[should_panic(expected = "label 10 out of range for 10 classes")]
fn softmax_xent_backward_rejects_label_equal_to_classes() {
    let mut dz = [0.0; 2 * C];
    kern::softmax_xent_backward(&mut dz, &[0.1; 2 * C], &[9, 10], 2, C, 1.0);
}

// ------------------------------------------------------------ bias, column sums

/// Roundings in one column sum: `rows` additions onto a prior value, plus the naive
/// twin's f64 → f32 rounding. Bound: γ_{rows+2}·(|prior| + Σ_r |x_r|).
const COLUMN_SUM_EXTRA_ROUNDINGS: usize = 2;

#[test]
fn bias_forward_and_backward_match_naive() {
    for (rows, cols) in shapes_2d() {
        let mut rng = Rng::new((rows * 1000 + cols) as u64);
        let bias = rng.vec(cols, -1.0, 1.0);
        let what = format!("rows={rows} cols={cols}");

        let mut out = vec![f32::NAN; rows * cols];
        let mut out_naive = vec![f32::NAN; rows * cols];
        kern::bias_forward(&mut out, &bias, rows, cols);
        naive::bias_forward(&mut out_naive, &bias, rows, cols);
        assert_all_eq(&format!("bias_forward {what}: out"), &out, &out_naive, cols);

        let dout = rng.vec(rows * cols, -1.0, 1.0);
        let db0 = rng.vec(cols, -1.0, 1.0); // a non-zero gradient
        let (mut db, mut db_naive) = (db0.clone(), db0.clone());
        kern::bias_backward(&mut db, &dout, rows, cols);
        naive::column_sums_add(&mut db_naive, &dout, rows, cols);
        let g = gamma(rows + COLUMN_SUM_EXTRA_ROUNDINGS);
        let mut magnitude = abs(&db0);
        naive::column_sums_add(&mut magnitude, &abs(&dout), rows, cols);
        assert_all_close(&format!("bias_backward {what}: db"), &db, &db_naive, cols, |i| {
            g * magnitude[i]
        });

        let (mut sums, mut sums_naive) = (db0.clone(), db0.clone());
        kern::column_sums_add(&mut sums, &dout, rows, cols);
        naive::column_sums_add(&mut sums_naive, &dout, rows, cols);
        assert_all_close(&format!("column_sums_add {what}: sums"), &sums, &sums_naive, cols, |i| {
            g * magnitude[i]
        });
    }
}

// ----------------------------------------------------------------------- argmax

#[test]
fn argmax_first_wins_on_ties() {
    assert_eq!(kern::argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    assert_eq!(kern::argmax(&[5.0, 5.0, 5.0]), 0);
    assert_eq!(kern::argmax(&[0.0, -0.0]), 0, "0.0 and −0.0 tie");
    assert_eq!(kern::argmax(&[-0.0, 0.0]), 0, "−0.0 and 0.0 tie");
    assert_eq!(kern::argmax(&[f32::NEG_INFINITY; 4]), 0);
    assert_eq!(kern::argmax(&[1.0, f32::INFINITY, f32::INFINITY]), 1);
    assert_eq!(kern::argmax(&[]), 0, "empty slice");
}

#[test]
fn argmax_nan_never_wins() {
    let nan = f32::NAN;
    assert_eq!(kern::argmax(&[nan, 1.0, 2.0]), 2, "leading NaN");
    assert_eq!(kern::argmax(&[1.0, nan, 0.5]), 0, "NaN in the middle");
    assert_eq!(kern::argmax(&[-1.0, -2.0, nan]), 0, "trailing NaN");
    assert_eq!(kern::argmax(&[nan, f32::NEG_INFINITY]), 1, "NaN before −∞");
    assert_eq!(kern::argmax(&[nan, nan]), 0, "all NaN still gives an index");
    let mut out = [u32::MAX; 2];
    kern::argmax_rows(&mut out, &[nan, -3.0, 1.0, nan], 2, 2);
    assert_eq!(out, [1, 0], "argmax_rows");
}

#[test]
fn argmax_rows_matches_naive() {
    for (rows, cols) in shapes_2d() {
        let mut rng = Rng::new((rows * 1000 + cols) as u64);
        // Values on a grid of 8 levels, so that ties are common, and some NaN.
        let x: Vec<f32> = (0..rows * cols)
            .map(|_| if rng.below(20) == 0 { f32::NAN } else { rng.below(8) as f32 })
            .collect();
        let mut out = vec![u32::MAX; rows];
        let mut out_naive = vec![u32::MAX; rows];
        kern::argmax_rows(&mut out, &x, rows, cols);
        naive::argmax_rows(&mut out_naive, &x, rows, cols);
        if let Some(r) = (0..rows).find(|&r| out[r] != out_naive[r]) {
            panic!(
                "argmax_rows rows={rows} cols={cols}: out[{r}] = {}, want {}",
                out[r], out_naive[r]
            );
        }
    }
}

// ------------------------------------------------------------------- optimizers

/// Optimizer steps compared in each test; the bias correction changes every step.
const STEPS: u32 = 6;

/// `len` gradients: uniform in [−1, 1) with exact zeros and tiny values mixed in.
fn grads(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| match rng.below(10) {
            0 => 0.0,
            1 => rng.uniform(-1e-6, 1e-6),
            _ => rng.uniform(-1.0, 1.0),
        })
        .collect()
}

#[test]
fn sgd_and_momentum_match_naive_bit_for_bit() {
    // Both twins evaluate the same f32 expressions in the same order, and Rust never
    // contracts a·b + c into an FMA on its own: the results must be bit-identical.
    for &len in &SIZES {
        let mut rng = Rng::new(len as u64);
        let p0 = rng.vec(len, -1.0, 1.0);
        let (mut p, mut p_naive) = (p0.clone(), p0.clone());
        let (mut q, mut q_naive) = (p0.clone(), p0);
        let (mut v, mut v_naive) = (vec![0.0; len], vec![0.0; len]);
        for t in 1..=STEPS {
            let g = grads(&mut rng, len);
            kern::sgd_step(&mut p, &g, 0.1);
            naive::sgd_step(&mut p_naive, &g, 0.1);
            assert_all_eq(&format!("sgd_step len={len} step {t}: params"), &p, &p_naive, len);

            kern::momentum_step(&mut q, &mut v, &g, 0.1, 0.9);
            naive::momentum_step(&mut q_naive, &mut v_naive, &g, 0.1, 0.9);
            assert_all_eq(
                &format!("momentum_step len={len} step {t}: velocity"),
                &v,
                &v_naive,
                len,
            );
            assert_all_eq(&format!("momentum_step len={len} step {t}: params"), &q, &q_naive, len);
        }
    }
}

/// Roundings per Adam step in `m` (3: the products and the sum; `1 − β₁` is exact for
/// the β₁ used here or adds one) and in `v` (4), each relative to the larger term, and
/// in the update `lr·m̂/(√v̂ + ε)` (≈ 10 roundings through m, v, the two corrections,
/// √, +ε, ÷, ×), which is ≤ ~3·lr in size for a handful of steps. Rounding the
/// parameter itself costs up to 1 ulp of |p| in either twin. Errors in the moments
/// carry into later steps, so the bounds grow linearly with the step number `t`.
const ADAM_MOMENT_ROUNDINGS: f32 = 8.0;
const ADAM_UPDATE_ROUNDINGS: f32 = 32.0;

#[test]
fn adam_matches_naive_over_several_steps() {
    let settings = [
        Adam::default(),
        Adam { lr: 0.1, beta1: 0.5, beta2: 0.9, eps: 1e-6 },
        Adam { lr: 0.01, beta1: 0.0, beta2: 0.999, eps: 1e-8 },
    ];
    for (s, hp) in settings.iter().enumerate() {
        for &len in &SIZES {
            let mut rng = Rng::new((s * 1000 + len) as u64);
            // Half the parameters start at 0, where an error in the step is not hidden
            // below the rounding of a larger parameter.
            let p0: Vec<f32> =
                (0..len).map(|i| if i % 2 == 0 { 0.0 } else { rng.uniform(-1.0, 1.0) }).collect();
            let (mut p, mut p_naive) = (p0.clone(), p0);
            let (mut m, mut m_naive) = (vec![0.0; len], vec![0.0; len]);
            let (mut v, mut v_naive) = (vec![0.0; len], vec![0.0; len]);
            let mut g_max = 0.0f32;
            for t in 1..=STEPS {
                let g = grads(&mut rng, len);
                g_max = g.iter().fold(g_max, |acc, x| acc.max(x.abs()));
                kern::adam_step(&mut p, &mut m, &mut v, &g, hp, t);
                naive::adam_step(&mut p_naive, &mut m_naive, &mut v_naive, &g, hp, t);

                let what = format!("adam_step {hp:?} len={len} step {t}");
                let tf = t as f32;
                let m_tol = tf * ADAM_MOMENT_ROUNDINGS * U * g_max;
                assert_all_close(&format!("{what}: m"), &m, &m_naive, len, |_| m_tol);
                let v_tol = tf * ADAM_MOMENT_ROUNDINGS * U * g_max * g_max;
                assert_all_close(&format!("{what}: v"), &v, &v_naive, len, |_| v_tol);
                let p_tol = |i: usize| {
                    tf * (2.0 * U * p_naive[i].abs() + ADAM_UPDATE_ROUNDINGS * U * hp.lr)
                };
                assert_all_close(&format!("{what}: params"), &p, &p_naive, len, p_tol);
            }
        }
    }
}

#[test]
fn adam_steps_by_lr_for_a_constant_gradient() {
    // With a constant gradient g, bias correction makes m̂ = g and v̂ = g² exactly, so
    // every step is lr·g/(|g| + ε). This checks both corrections where they matter
    // most, the first steps (at t = 2, 1 − β₂ᵗ ≈ 0.002 is mostly cancellation).
    // Tolerance per step, relative: the recursions for m and v add same-sign terms,
    // ≤ 3t and 4t roundings (2t after the √); the update ≈ 6 more; reading the step back
    // from two parameters of size ≈ t·lr costs 2t. Hence (8t + 16)·u, a fifth of what
    // forming 1 − β₂ᵗ in f32 costs at t = 2.
    let grads = [1.0f32, -0.5, 2e-3];
    for hp in [Adam::default(), Adam { lr: 0.1, beta1: 0.5, beta2: 0.9, eps: 1e-6 }] {
        let mut p = [0.0f32; 3];
        let (mut m, mut v) = ([0.0f32; 3], [0.0f32; 3]);
        for t in 1..=8 {
            let before = p;
            kern::adam_step(&mut p, &mut m, &mut v, &grads, &hp, t);
            for (i, &g) in grads.iter().enumerate() {
                let want =
                    -f64::from(hp.lr) * f64::from(g) / (f64::from(g.abs()) + f64::from(hp.eps));
                let got = f64::from(p[i]) - f64::from(before[i]);
                let tol = f64::from((8 * t + 16) as f32 * U) * want.abs();
                assert!(
                    (got - want).abs() <= tol,
                    "adam_step {hp:?} step {t}: params[{i}] moved {got:e}, want {want:e} (tol {tol:e})"
                );
            }
        }
    }
}

// --------------------------------------------- forward overwrites, backward adds

#[test]
fn backward_kernels_accumulate_into_existing_gradients() {
    // For each backward kernel: running it on a non-zero buffer `prior` must give
    // `prior + (its result on a zero buffer)`. One extra rounding per element (the
    // add), or `rows` for the column sums, whose additions happen in another order.
    let (rows, cols) = (7, 33);
    let mut rng = Rng::new(99);
    let a = rng.vec_with_zeros(rows * cols);
    let dy = rng.vec(rows * cols, -1.0, 1.0);
    let z = rng.vec(rows * cols, -4.0, 4.0);
    let labels = rng.labels(rows, cols);
    let mut p = vec![0.0; rows * cols];
    kern::softmax_xent_forward(&mut p, &z, &labels, rows, cols);
    let prior = rng.vec(cols * cols, 1.0, 2.0); // long enough for every buffer below

    type Kernel<'a> = Box<dyn Fn(&mut [f32]) + 'a>;
    let kernels: [(&str, usize, Kernel<'_>); 5] = [
        (
            "relu_backward da",
            rows * cols,
            Box::new(|g| {
                kern::relu_backward(g, &dy, &a, rows, cols, 0..cols - 3, ReluGradAtZero::One);
            }),
        ),
        (
            "softmax_xent_backward dz",
            rows * cols,
            Box::new(|g| {
                kern::softmax_xent_backward(g, &p, &labels, rows, cols, 1.0);
            }),
        ),
        ("bias_backward db", cols, Box::new(|g| kern::bias_backward(g, &dy, rows, cols))),
        ("column_sums_add sums", cols, Box::new(|g| kern::column_sums_add(g, &dy, rows, cols))),
        // The GEMM accumulates through β = 1: dW += dYᵀ·X.
        (
            "gemm_atb β=1 dW",
            cols * cols,
            Box::new(|g| {
                kern::gemm_atb(cols, rows, cols, 1.0, &dy, &z, 1.0, g, &mut common::pack());
            }),
        ),
    ];
    for (name, len, kernel) in &kernels {
        let mut fresh = vec![0.0; *len];
        kernel(&mut fresh);
        let mut acc = prior[..*len].to_vec();
        kernel(&mut acc);
        let want: Vec<f32> = prior[..*len].iter().zip(&fresh).map(|(p, f)| p + f).collect();
        // Magnitudes: |prior| ≤ 2, each term ≤ 4·rows (gemm) or ≤ 1·rows.
        let tol = gamma(rows + 2) * (2.0 + 4.0 * rows as f32);
        assert_all_close(name, &acc, &want, cols, |_| tol);
        assert!(acc.iter().zip(&fresh).any(|(a, f)| a != f), "{name}: prior was discarded");
    }
}

/// `linear_rank1_update` (batch-1 backward + update of a layer in one sweep over W)
/// against the unfused path it replaces, bit for bit: `dx += dy·W` through `gemm_ab`
/// (`m = 1`, `β = 1`), `G = dyᵀ·x` through `gemm_atb` (`k = 1`, `β = 0`), then the
/// optimizer over G. Several steps so that the moments carry over; with and without dx.
#[test]
fn linear_rank1_update_matches_the_unfused_path_bit_for_bit() {
    let hp = Adam { lr: 0.01, ..Adam::default() };
    let mut pack = common::pack();
    for &(n, k) in &[(1, 1), (7, 15), (17, 16), (33, 33), (D, D)] {
        for rule_id in 0..3 {
            for with_dx in [false, true] {
                let mut rng = Rng::new((n * 100 + k) as u64 + rule_id);
                let w0 = rng.vec(n * k, -1.0, 1.0);
                let (mut w, mut w_ref) = (w0.clone(), w0);
                let (mut m, mut m_ref) = (vec![0.0; n * k], vec![0.0; n * k]);
                let (mut v, mut v_ref) = (vec![0.0; n * k], vec![0.0; n * k]);
                let mut g = vec![f32::NAN; n * k];
                for t in 1..=3u32 {
                    let (dy, x) = (grads(&mut rng, n), rng.vec(k, 0.0, 1.0));
                    let dx0 = rng.vec(k, -1.0, 1.0);
                    let (mut dx, mut dx_ref) = (dx0.clone(), dx0);
                    let rule = match rule_id {
                        0 => kern::UpdateRule::Sgd { lr: 0.1 },
                        1 => kern::UpdateRule::Momentum { lr: 0.1, mu: 0.9 },
                        _ => kern::UpdateRule::adam(&hp, t),
                    };
                    let (first, second) = match rule_id {
                        0 => (&mut [][..], &mut [][..]),
                        1 => (&mut m[..], &mut [][..]),
                        _ => (&mut m[..], &mut v[..]),
                    };
                    let dx_arg = if with_dx { Some(&mut dx[..]) } else { None };
                    kern::linear_rank1_update(dx_arg, &mut w, first, second, &dy, &x, rule);

                    if with_dx {
                        kern::gemm_ab(1, n, k, 1.0, &dy, &w_ref, 1.0, &mut dx_ref, &mut pack);
                    }
                    kern::gemm_atb(n, 1, k, 1.0, &dy, &x, 0.0, &mut g, &mut pack);
                    match rule_id {
                        0 => kern::sgd_step(&mut w_ref, &g, 0.1),
                        1 => kern::momentum_step(&mut w_ref, &mut m_ref, &g, 0.1, 0.9),
                        _ => kern::adam_step(&mut w_ref, &mut m_ref, &mut v_ref, &g, &hp, t),
                    }
                    let what =
                        format!("linear_rank1_update {n}×{k} rule {rule_id} dx {with_dx} step {t}");
                    assert_all_eq(&format!("{what}: W"), &w, &w_ref, k);
                    assert_all_eq(&format!("{what}: first moment"), &m, &m_ref, k);
                    assert_all_eq(&format!("{what}: second moment"), &v, &v_ref, k);
                    assert_all_eq(&format!("{what}: dx"), &dx, &dx_ref, k);
                }
            }
        }
    }
}

/// `Update::linear_batch` (weight gradient in stripes, each applied while in L1) and
/// its pool twin against the unfused path, bit for bit: `G = dYᵀ·X` through
/// `gemm_atb` (`β = 0`) into a buffer, then the rule over G. Shapes cover a last
/// stripe shorter than MR, a last tile narrower than NR, one m block and several,
/// k = 1 and the largest k one block takes; several steps so the moments carry over.
#[cfg(feature = "std")] // the pool and the split kernels need threads
#[test]
fn linear_batch_matches_the_unfused_path_bit_for_bit() {
    let hp = Adam { lr: 0.01, ..Adam::default() };
    let mut pack = common::pack();
    let pools: Vec<_> = [1, 2, 3].into_iter().map(kern::pool::Pool::new).collect();
    let shapes = [(1, 1, 2), (7, 15, 3), (13, 17, 6), (50, 33, 1), (301, 40, 320), (D, D, 100)];
    for &(n, k, batch) in &shapes {
        assert!(kern::sgemm::stripes_fit(batch, k));
        for rule_id in 0..3 {
            let mut rng = Rng::new((n * 1000 + k * 10 + batch) as u64 + rule_id);
            let p0 = rng.vec(3 + n * k, -1.0, 1.0);
            let range = 3..3 + n * k;
            let moments = |i: u64, rng: &mut Rng| {
                if rule_id >= i { rng.vec(3 + n * k, 0.0, 0.5) } else { vec![] }
            };
            let (f0, s0) = (moments(1, &mut rng), moments(2, &mut rng));
            let mut want = (p0.clone(), f0.clone(), s0.clone());
            let mut got: Vec<_> =
                (0..=pools.len()).map(|_| (p0.clone(), f0.clone(), s0.clone())).collect();
            let mut g = vec![f32::NAN; n * k];
            for t in 1..=3u32 {
                let (dy, x) = (grads(&mut rng, batch * n), rng.vec(batch * k, 0.0, 1.0));
                let rule = match rule_id {
                    0 => kern::UpdateRule::Sgd { lr: 0.1 },
                    1 => kern::UpdateRule::Momentum { lr: 0.1, mu: 0.9 },
                    _ => kern::UpdateRule::adam(&hp, t),
                };
                kern::gemm_atb(n, batch, k, 1.0, &dy, &x, 0.0, &mut g, &mut pack);
                let (p, f, s) = &mut want;
                kern::Update { rule, first: f, second: s }.apply(range.clone(), p, &g);
                for (i, (p, f, s)) in got.iter_mut().enumerate() {
                    let mut u = kern::Update { rule, first: f, second: s };
                    match pools.get(i) {
                        Some(pool) => {
                            kern::par::linear_batch(pool, &mut u, range.clone(), p, batch, &dy, &x)
                        }
                        None => u.linear_batch(range.clone(), p, batch, &dy, &x, &mut pack),
                    }
                }
                for (i, (p, f, s)) in got.iter().enumerate() {
                    let who = pools
                        .get(i)
                        .map_or("serial".into(), |p| format!("{} threads", p.threads()));
                    let what =
                        format!("linear_batch {n}×{k} batch {batch} rule {rule_id} step {t} {who}");
                    assert_all_eq(&format!("{what}: W"), p, &want.0, k);
                    assert_all_eq(&format!("{what}: first moment"), f, &want.1, k);
                    assert_all_eq(&format!("{what}: second moment"), s, &want.2, k);
                }
            }
        }
    }
}

/// `sgemm_stripes` refuses a product that does not fit one block, instead of handing
/// out stripes that are not final.
#[test]
#[should_panic(expected = "must fit one block")]
fn sgemm_stripes_rejects_a_k_past_one_block() {
    let k = kern::sgemm::KC + 1;
    let (a, b) = (vec![0.0; 2 * k], vec![0.0; k * 3]);
    kern::sgemm::sgemm_stripes(
        2,
        k,
        3,
        1.0,
        &a,
        k,
        1,
        &b,
        3,
        1,
        &mut common::pack(),
        &mut |_: usize, _: &[f32]| {},
    );
}

/// `linear_rank1_update` against its naive twin (f64 sums for dx): SGD and momentum
/// weights bit for bit (same f32 formula per element), dx within the sum's rounding.
#[test]
fn linear_rank1_update_matches_naive() {
    for &(n, k) in &[(1, 1), (7, 15), (17, 16), (D, 33)] {
        for momentum in [false, true] {
            let mut rng = Rng::new((n * 7 + k) as u64);
            let w0 = rng.vec(n * k, -1.0, 1.0);
            let (mut w, mut w_naive) = (w0.clone(), w0);
            let (mut v, mut v_naive) = (vec![0.0; n * k], vec![0.0; n * k]);
            for t in 0..3 {
                let (dy, x) = (grads(&mut rng, n), rng.vec(k, 0.0, 1.0));
                let (mut dx, mut dx_naive) = (vec![0.5; k], vec![0.5; k]);
                let w_old = abs(&w);
                let (rule, naive_rule, vel, vel_naive) = if momentum {
                    (
                        kern::UpdateRule::Momentum { lr: 0.1, mu: 0.9 },
                        naive::NaiveRule::Momentum { lr: 0.1, mu: 0.9 },
                        &mut v[..],
                        &mut v_naive[..],
                    )
                } else {
                    (
                        kern::UpdateRule::Sgd { lr: 0.1 },
                        naive::NaiveRule::Sgd { lr: 0.1 },
                        &mut [][..],
                        &mut [][..],
                    )
                };
                kern::linear_rank1_update(Some(&mut dx), &mut w, vel, &mut [], &dy, &x, rule);
                naive::linear_rank1_update(
                    Some(&mut dx_naive),
                    &mut w_naive,
                    vel_naive,
                    &mut [],
                    &dy,
                    &x,
                    naive_rule,
                );
                let what = format!("linear_rank1_update {n}×{k} momentum {momentum} step {t}");
                assert_all_eq(&format!("{what}: W"), &w, &w_naive, k);
                assert_all_eq(&format!("{what}: velocity"), &v, &v_naive, k);
                // dx = 0.5 + Σ_i dy_i·W_ij: n + 1 roundings of terms bounded by |dy|·|W|.
                let bound = |j: usize| {
                    let s: f32 = (0..n).map(|i| dy[i].abs() * w_old[i * k + j]).sum();
                    gamma(n + 1) * (0.5 + s)
                };
                assert_all_close(&format!("{what}: dx"), &dx, &dx_naive, k, bound);
            }
        }
    }
}

/// The pool-split GEMMs and update equal the serial ones bit for bit, for 1–3
/// threads, on shapes that split (and ragged ones that do not split evenly): B shared
/// block by block over several k blocks (k > KC; 128×794 is the training step's
/// shape: on 2 threads, seven pieces over three blocks) and, at 330×25000, two blocks each
/// too large to share (each piece packs its own, block by block).
#[cfg(feature = "std")] // the pool and the split kernels need threads
#[test]
fn par_gemms_and_update_are_bit_identical_to_serial() {
    use idmlp_kernels::{par, pool::Pool};
    let mut pack = common::pack();
    let shapes = [
        (1, 794, 794),
        (37, 100, 90),
        (128, 64, 200),
        (200, 7, 130),
        (50, 700, 300),
        (14, 2100, 700),
        (128, 794, 300),
        (12, 330, 25000),
    ];
    for threads in [1, 2, 3] {
        let pool = Pool::new(threads);
        for &(m, k, n) in &shapes {
            let mut rng = Rng::new((m * 7 + k * 3 + n) as u64);
            for beta in [0.0, 1.0] {
                let c0 = rng.vec(m * n, -1.0, 1.0);
                // A·B (A: m×k, B: k×n)
                let (a, b) = (rng.vec(m * k, -1.0, 1.0), rng.vec(k * n, -1.0, 1.0));
                let (mut c, mut want) = (c0.clone(), c0.clone());
                par::gemm_ab(&pool, m, k, n, 0.5, &a, &b, beta, &mut c);
                kern::gemm_ab(m, k, n, 0.5, &a, &b, beta, &mut want, &mut pack);
                assert_all_eq(&format!("par::gemm_ab {m}×{k}×{n} t={threads}"), &c, &want, n);
                // A·Bᵀ (B: n×k)
                let bt = rng.vec(n * k, -1.0, 1.0);
                let (mut c, mut want) = (c0.clone(), c0.clone());
                par::gemm_abt(&pool, m, k, n, 0.5, &a, &bt, beta, &mut c);
                kern::gemm_abt(m, k, n, 0.5, &a, &bt, beta, &mut want, &mut pack);
                assert_all_eq(&format!("par::gemm_abt {m}×{k}×{n} t={threads}"), &c, &want, n);
                // A·Bᵀ + bias
                let bias = rng.vec(n, -1.0, 1.0);
                let (mut c, mut want) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
                par::gemm_abt_bias(&pool, m, k, n, 0.5, &a, &bt, &bias, &mut c);
                kern::gemm_abt_bias(m, k, n, 0.5, &a, &bt, &bias, &mut want, &mut pack);
                assert_all_eq(&format!("par::gemm_abt_bias {m}×{k}×{n} t={threads}"), &c, &want, n);
                // Aᵀ·B (A: k×m)
                let at = rng.vec(k * m, -1.0, 1.0);
                let (mut c, mut want) = (c0.clone(), c0);
                par::gemm_atb(&pool, m, k, n, 0.5, &at, &b, beta, &mut c);
                kern::gemm_atb(m, k, n, 0.5, &at, &b, beta, &mut want, &mut pack);
                assert_all_eq(&format!("par::gemm_atb {m}×{k}×{n} t={threads}"), &c, &want, n);
            }
        }
        // The batch-1 fused layer: a worker updates the moments ahead of the caller.
        for rule_id in 0..3 {
            for &(n, k) in &[(794, 794), (700, 1001)] {
                let mut rng = Rng::new((n + k) as u64 + rule_id);
                let p0 = rng.vec(5 + n * k, -1.0, 1.0);
                let (dy, x) = (grads(&mut rng, n), rng.vec(k, 0.0, 1.0));
                let hp = Adam::default();
                let rule = match rule_id {
                    0 => kern::UpdateRule::Sgd { lr: 0.1 },
                    1 => kern::UpdateRule::Momentum { lr: 0.1, mu: 0.9 },
                    _ => kern::UpdateRule::adam(&hp, 3),
                };
                let moments = |i: usize| {
                    let mut r = Rng::new(i as u64);
                    if rule.moments() >= i { r.vec(5 + n * k, 0.0, 0.5) } else { vec![] }
                };
                let (f0, s0) = (moments(1), moments(2));
                let dx0 = rng.vec(k, -1.0, 1.0);
                let run = |parallel: bool| {
                    let (mut p, mut f, mut s, mut dx) =
                        (p0.clone(), f0.clone(), s0.clone(), dx0.clone());
                    let mut u = kern::Update { rule, first: &mut f[..], second: &mut s[..] };
                    if parallel {
                        par::linear_rank1(
                            &pool,
                            &mut u,
                            Some(&mut dx),
                            5..5 + n * k,
                            &mut p,
                            &dy,
                            &x,
                        );
                    } else {
                        u.linear_rank1(Some(&mut dx), 5..5 + n * k, &mut p, &dy, &x);
                    }
                    (p, f, s, dx)
                };
                let (got, want) = (run(true), run(false));
                let what = format!("par::linear_rank1 {n}×{k} rule {rule_id} t={threads}");
                assert_all_eq(&format!("{what}: W"), &got.0, &want.0, k);
                assert_all_eq(&format!("{what}: first"), &got.1, &want.1, k);
                assert_all_eq(&format!("{what}: second"), &got.2, &want.2, k);
                assert_all_eq(&format!("{what}: dx"), &got.3, &want.3, k);
            }
        }
        let len = 200_003;
        let mut rng = Rng::new(len as u64);
        let g = grads(&mut rng, len);
        let p0 = rng.vec(len, -1.0, 1.0);
        let (mut p, mut want) = (p0.clone(), p0);
        let (mut v, mut v_want) = (vec![0.1; len], vec![0.1; len]);
        let rule = kern::UpdateRule::Momentum { lr: 0.1, mu: 0.9 };
        let mut u = kern::Update { rule, first: &mut v, second: &mut [] };
        par::update(&pool, &mut u, 3..len, &mut p, &g[3..]);
        kern::momentum_step(&mut want[3..], &mut v_want[3..], &g[3..], 0.1, 0.9);
        assert_all_eq(&format!("par::update t={threads}: params"), &p, &want, len);
        assert_all_eq(&format!("par::update t={threads}: velocity"), &v, &v_want, len);
    }
}

/// A panic in a pool job reaches the caller, and the pool keeps working: pieces
/// claimed through a counter are all done, by whichever threads were awake.
#[cfg(feature = "std")] // the pool and the split kernels need threads
#[test]
fn pool_propagates_a_panic_and_survives() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pool = idmlp_kernels::pool::Pool::new(2);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run(&|t| assert!(t != 0, "boom in the caller's share"));
    }));
    assert!(r.is_err());
    for _ in 0..100 {
        let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
        pool.run(&|_| {
            while next.fetch_add(1, Ordering::Relaxed) < 8 {
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
        assert_eq!(done.into_inner(), 8);
    }
}
