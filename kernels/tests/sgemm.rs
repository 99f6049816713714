//! `sgemm` against a strided f64 reference: odd and block-crossing sizes, every
//! transposition (a stride swap), α/β grids, NaN-filled C with β = 0, padded C views
//! whose padding must stay bit-for-bit untouched, identities, both microkernels, the
//! panics of the argument checks, and zero heap allocations.
//!
//! A counting global allocator (this thread's allocations only) proves the last point.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{Rng, gamma};
use idmlp_kernels::sgemm::{
    KC, Kernel, MC, MR, NC, NR, PACK_LEN, pack_b_panels, pack_b_steps, packed_b_blocks,
    packed_b_len, sgemm, sgemm_bias, sgemm_kernel_name, sgemm_on, sgemm_packed_b, sgemm_stripes,
    sgemm_stripes_packed_b,
};

// ---------------------------------------------------------------------------------
// Counting allocator

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the counter is a
// const-initialised thread-local without destructor, which never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// ---------------------------------------------------------------------------------
// Matrices, the reference and the tolerance

/// Poison for C's padding: a NaN with a payload, compared bit for bit, so that a
/// stray write of any value (even another NaN) is caught.
const POISON: f32 = f32::from_bits(0x7fc0_dead);

/// A strided matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone)]
struct Mat {
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    data: Vec<f32>,
}

impl Mat {
    /// A `rows×cols` view stored row-major (or column-major when `col_major`, which is
    /// how a transposed operand looks) with `pad` extra elements per stored line; every
    /// element, padding included, is `fill`.
    fn filled(rows: usize, cols: usize, col_major: bool, pad: usize, fill: f32) -> Mat {
        let (lines, line) = if col_major { (cols, rows + pad) } else { (rows, cols + pad) };
        let (rs, cs) = if col_major { (1, line) } else { (line, 1) };
        Mat { rows, cols, rs, cs, data: vec![fill; lines * line] }
    }

    /// As [`Mat::filled`] with uniform values in `[-1, 1)` inside the view.
    fn random(rng: &mut Rng, rows: usize, cols: usize, col_major: bool, pad: usize) -> Mat {
        let mut m = Mat::filled(rows, cols, col_major, pad, POISON);
        for i in 0..rows {
            for j in 0..cols {
                m.set(i, j, rng.uniform(-1.0, 1.0));
            }
        }
        m
    }

    fn idx(&self, i: usize, j: usize) -> usize {
        i * self.rs + j * self.cs
    }

    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[self.idx(i, j)]
    }

    fn set(&mut self, i: usize, j: usize, v: f32) {
        let ix = self.idx(i, j);
        self.data[ix] = v;
    }

    /// Whether flat index `ix` is an element of the view (not padding).
    fn in_view(&self, ix: usize) -> bool {
        // Stored row-major (`cs = 1`) or column-major (`rs = 1`): split `ix` into the
        // stored line and the position along it.
        let (i, j) =
            if self.cs == 1 { (ix / self.rs, ix % self.rs) } else { (ix % self.cs, ix / self.cs) };
        i < self.rows && j < self.cols
    }
}

/// The exact product, rounded once: `α·Σ_p a·b + β·c` accumulated in f64 (products of
/// two f32 are exact in f64, and k ≤ 1100 sums lose nothing that matters at f32
/// precision), and `|α|·Σ|a||b| + |β|·|c|`, the magnitude the error bound scales with.
/// With β = 0, C is not read. Row-major m×n outputs.
fn reference(alpha: f32, a: &Mat, b: &Mat, beta: f32, c: &Mat) -> (Vec<f32>, Vec<f32>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut want = vec![0.0; m * n];
    let mut scale = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut acc, mut mag) = (0.0f64, 0.0f64);
            for p in 0..k {
                let t = f64::from(a.at(i, p)) * f64::from(b.at(p, j));
                acc += t;
                mag += t.abs();
            }
            let (prior, prior_mag) = if beta == 0.0 {
                (0.0, 0.0)
            } else {
                let bc = f64::from(beta) * f64::from(c.at(i, j));
                (bc, bc.abs())
            };
            want[i * n + j] = (f64::from(alpha) * acc + prior) as f32;
            scale[i * n + j] = (f64::from(alpha).abs() * mag + prior_mag) as f32;
        }
    }
    (want, scale)
}

/// Roundings between the exact result and sgemm's, counted generously so the bound
/// holds for any summation order and blocking: k products and k − 1 additions (FMA
/// fuses some), then per k block (at most k of them) one α product, one β product and
/// one addition, plus the f64 reference's own final rounding. The error is then at
/// most `γ(roundings)·(|α|·Σ|a||b| + |β|·|c|)` (Higham §3.1, as in `common::gamma`):
/// about `3k·ε/2` relative to the magnitudes, never flaky on random data, and still
/// orders of magnitude below a single missing or doubled term.
fn roundings(k: usize) -> usize {
    3 * k + 3
}

type Gemm = fn(
    usize,
    usize,
    usize,
    f32,
    &[f32],
    usize,
    usize,
    &[f32],
    usize,
    usize,
    f32,
    &mut [f32],
    usize,
    usize,
    &mut [f32],
);

/// `sgemm` forced onto one kernel ([`sgemm_on`]), as a [`Gemm`].
macro_rules! forced {
    ($name:ident, $kernel:expr) => {
        #[allow(clippy::too_many_arguments)]
        fn $name(
            m: usize,
            k: usize,
            n: usize,
            alpha: f32,
            a: &[f32],
            rsa: usize,
            csa: usize,
            b: &[f32],
            rsb: usize,
            csb: usize,
            beta: f32,
            c: &mut [f32],
            rsc: usize,
            csc: usize,
            pack: &mut [f32],
        ) {
            #[rustfmt::skip]
            sgemm_on(
                $kernel, m, k, n, alpha,
                (a, rsa, csa), (b, rsb, csb),
                beta, None,
                (c, rsc, csc), pack,
            );
        }
    };
}
forced!(sgemm_avx512, Kernel::Avx512);
forced!(sgemm_avx2, Kernel::Avx2);
forced!(sgemm_portable, Kernel::Portable);

/// `sgemm` as it dispatches, then every microkernel this CPU runs, forced.
fn kernels() -> Vec<(&'static str, Gemm)> {
    let forced: [(Kernel, Gemm); 3] = [
        (Kernel::Avx512, sgemm_avx512),
        (Kernel::Avx2, sgemm_avx2),
        (Kernel::Portable, sgemm_portable),
    ];
    let mut out: Vec<(&str, Gemm)> = vec![("sgemm", sgemm)];
    out.extend(forced.into_iter().filter(|(k, _)| k.available()).map(|(k, g)| (k.name(), g)));
    out
}

/// Runs `gemm` on `c` and checks it against [`reference`]: every view element within
/// tolerance, every padding element still [`POISON`] bit for bit.
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn check(
    what: &str,
    gemm: Gemm,
    alpha: f32,
    a: &Mat,
    b: &Mat,
    beta: f32,
    c: &Mat,
    pack: &mut [f32],
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!((b.rows, c.rows, c.cols), (k, m, n), "{what}: test shapes");
    let (want, scale) = reference(alpha, a, b, beta, c);
    let mut got = c.clone();
    #[rustfmt::skip]
    gemm(
        m, k, n,
        alpha,
        &a.data, a.rs, a.cs,
        &b.data, b.rs, b.cs,
        beta,
        &mut got.data, got.rs, got.cs,
        pack,
    );
    let tol = gamma(roundings(k));
    for i in 0..m {
        for j in 0..n {
            let (g, w, s) = (got.at(i, j), want[i * n + j], scale[i * n + j]);
            assert!(
                (g - w).abs() <= tol * s,
                "{what}: C[{i}, {j}] = {g:e}, want {w:e}, |diff| {:e} > tol {:e} \
                 (m={m} k={k} n={n} α={alpha} β={beta} A strides ({}, {}) B ({}, {}) C ({}, {}))",
                (g - w).abs(),
                tol * s,
                a.rs,
                a.cs,
                b.rs,
                b.cs,
                c.rs,
                c.cs,
            );
        }
    }
    for (ix, &v) in got.data.iter().enumerate() {
        if v.to_bits() != POISON.to_bits() {
            assert!(c.in_view(ix), "{what}: wrote {v:e} to C padding at flat index {ix}");
        }
    }
}

fn workspace() -> Vec<f32> {
    vec![0.0; PACK_LEN]
}

/// Every transposition of A and B and two C layouts (row-major padded, column-major
/// padded), on both kernels, at one α/β.
#[allow(clippy::too_many_arguments)]
fn check_layouts(
    rng: &mut Rng,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    pack: &mut [f32],
) {
    for (ta, tb, tc) in (0..8).map(|bits| (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0)) {
        let a = Mat::random(rng, m, k, ta, 3);
        let b = Mat::random(rng, k, n, tb, 2);
        let c = if beta == 0.0 {
            // NaN in the view: β = 0 must not read it.
            let mut c = Mat::filled(m, n, tc, 5, POISON);
            (0..m).for_each(|i| (0..n).for_each(|j| c.set(i, j, f32::NAN)));
            c
        } else {
            Mat::random(rng, m, n, tc, 5)
        };
        for (name, gemm) in kernels() {
            let what = format!("{name} (A col-major {ta}, B col-major {tb}, C col-major {tc})");
            check(&what, gemm, alpha, &a, &b, beta, &c, pack);
        }
    }
}

// ---------------------------------------------------------------------------------
// Tests

#[test]
fn sgemm_runs_the_fastest_kernel_the_cpu_has() {
    // If this fails, `kernels()` below quietly tests a slower kernel twice and never
    // the one users run. With `std` the choice is made at run time, without it at
    // compile time.
    #[cfg(target_arch = "x86_64")]
    let (avx512, avx2) = if cfg!(feature = "std") {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        (avx2 && is_x86_feature_detected!("avx512f"), avx2)
    } else {
        let avx2 = cfg!(all(target_feature = "avx2", target_feature = "fma"));
        (avx2 && cfg!(target_feature = "avx512f"), avx2)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (avx512, avx2) = (false, false);
    let want = if avx512 {
        "avx512f"
    } else if avx2 {
        "avx2+fma"
    } else {
        "portable"
    };
    assert_eq!(sgemm_kernel_name(), want);
    assert_eq!(Kernel::best().name(), want);
    assert!(Kernel::Portable.available());
}

#[test]
fn small_sizes_all_layouts() {
    let mut rng = Rng::new(1);
    let mut pack = workspace();
    let sizes = [0, 1, 2, 7, 16, 17, 33, 65];
    for &m in &sizes {
        for &k in &sizes {
            for &n in &sizes {
                check_layouts(&mut rng, m, k, n, 0.5, -2.0, &mut pack);
            }
        }
    }
}

#[test]
fn alpha_beta_grid() {
    let mut rng = Rng::new(2);
    let mut pack = workspace();
    let scalars = [0.0, 1.0, 0.5, -2.0];
    for &(m, k, n) in &[(7, 33, 65), (65, 7, 33), (13, 1, 18)] {
        for alpha in scalars {
            for beta in scalars {
                check_layouts(&mut rng, m, k, n, alpha, beta, &mut pack);
            }
        }
    }
}

#[test]
fn width_794_in_each_dimension() {
    // The model's D = 794 in one dimension at a time keeps the f64 reference cheap.
    let mut rng = Rng::new(3);
    let mut pack = workspace();
    for &(m, k, n) in &[(794, 7, 33), (7, 794, 33), (33, 7, 794), (33, 794, 65), (65, 33, 794)] {
        check_layouts(&mut rng, m, k, n, 1.0, 0.0, &mut pack);
        check_layouts(&mut rng, m, k, n, -2.0, 0.5, &mut pack);
    }
}

#[test]
fn block_edges() {
    // Sizes one unit either side of every block size, so that the block loops, the
    // equal-split rounding and the edge tiles all run both ways.
    let mut rng = Rng::new(4);
    let mut pack = workspace();
    let cases = [
        (MR - 1, 9, NR + 1),
        (MR + 1, 9, NR - 1),
        (MC - 1, 9, 19),
        (MC + 1, 9, 19),
        (2 * MC + MR + 1, 5, 3),
        (5, KC - 1, 7),
        (5, KC + 1, 7),
        (5, 2 * KC + 9, 7),
        (3, 5, NC - 1),
        (3, 5, NC + 1),
        (3, 5, 2 * NC + NR + 3),
    ];
    for (m, k, n) in cases {
        check_layouts(&mut rng, m, k, n, 0.5, 1.0, &mut pack);
    }
}

#[test]
fn model_shapes_match_the_naive_twin() {
    // The three GEMMs of a linear layer Y = X·Wᵀ, as the tape issues them (row-major,
    // transposes by stride), against `naive::gemm` (D scaled down to keep it quick).
    let (bsz, d) = (13, 101);
    let mut rng = Rng::new(5);
    let x = rng.vec(bsz * d, -1.0, 1.0); // (B, D)
    let w = rng.vec(d * d, -1.0, 1.0); // (D, D)
    let dy = rng.vec(bsz * d, -1.0, 1.0); // (B, D)
    let mut pack = workspace();
    for (name, gemm) in kernels() {
        let tol = gamma(roundings(d.max(bsz))) * d as f32;
        // Forward: Y = X·Wᵀ.
        let (mut got, mut want) = (vec![f32::NAN; bsz * d], vec![0.0; bsz * d]);
        #[rustfmt::skip]
        gemm(bsz, d, d, 1.0, &x, d, 1, &w, 1, d, 0.0, &mut got, d, 1, &mut pack);
        idmlp_kernels::naive::gemm(bsz, d, d, 1.0, &x, false, &w, true, 0.0, &mut want);
        common::assert_all_close(&format!("{name} forward"), &got, &want, d, |_| tol);
        // Input gradient: dX += dY·W.
        let mut got = rng.vec(bsz * d, -1.0, 1.0);
        let mut want = got.clone();
        #[rustfmt::skip]
        gemm(bsz, d, d, 1.0, &dy, d, 1, &w, d, 1, 1.0, &mut got, d, 1, &mut pack);
        idmlp_kernels::naive::gemm(bsz, d, d, 1.0, &dy, false, &w, false, 1.0, &mut want);
        common::assert_all_close(&format!("{name} input grad"), &got, &want, d, |_| tol);
        // Weight gradient: dW = dYᵀ·X.
        let (mut got, mut want) = (vec![f32::NAN; d * d], vec![0.0; d * d]);
        #[rustfmt::skip]
        gemm(d, bsz, d, 1.0, &dy, 1, d, &x, d, 1, 0.0, &mut got, d, 1, &mut pack);
        idmlp_kernels::naive::gemm(d, bsz, d, 1.0, &dy, true, &x, false, 0.0, &mut want);
        common::assert_all_close(&format!("{name} weight grad"), &got, &want, d, |_| tol);
    }
}

#[test]
fn identity_is_exact() {
    // A·I = A and I·B = B bit for bit: each output is one exact product plus zeros.
    let mut rng = Rng::new(6);
    let mut pack = workspace();
    for (name, gemm) in kernels() {
        for &(m, k) in &[(1, 1), (7, 33), (33, 7), (65, 300), (150, 17)] {
            let a = rng.vec(m * k, -1.0, 1.0);
            let mut eye = vec![0.0; k * k];
            (0..k).for_each(|i| eye[i * k + i] = 1.0);
            let mut c = vec![f32::NAN; m * k];
            gemm(m, k, k, 1.0, &a, k, 1, &eye, k, 1, 0.0, &mut c, k, 1, &mut pack);
            common::assert_all_eq(&format!("{name} A·I ({m}×{k})"), &c, &a, k);
            // I·Aᵀ = Aᵀ, reading A transposed by strides and writing C column-major.
            let mut c = vec![f32::NAN; m * k];
            gemm(k, k, m, 1.0, &eye, k, 1, &a, 1, k, 0.0, &mut c, 1, k, &mut pack);
            common::assert_all_eq(&format!("{name} I·Aᵀ ({k}×{m})"), &c, &a, k);
        }
    }
}

#[test]
fn alpha_zero_reads_neither_a_nor_b() {
    // As in BLAS: α = 0 means C ← β·C without touching A·B, so NaN in A or B stays out.
    let mut pack = workspace();
    for (name, gemm) in kernels() {
        let (a, b) = (vec![f32::NAN; 7 * 9], vec![f32::INFINITY; 9 * 5]);
        let mut c = vec![3.0; 7 * 5];
        gemm(7, 9, 5, 0.0, &a, 9, 1, &b, 5, 1, 0.5, &mut c, 5, 1, &mut pack);
        common::assert_all_eq(&format!("{name} α = 0, β = 0.5"), &c, &[1.5; 35], 5);
        let mut c = vec![f32::NAN; 7 * 5];
        gemm(7, 9, 5, 0.0, &a, 9, 1, &b, 5, 1, 0.0, &mut c, 5, 1, &mut pack);
        common::assert_all_eq(&format!("{name} α = 0, β = 0"), &c, &[0.0; 35], 5);
        // k = 0 is the same empty product, with empty A and B.
        let mut c = vec![f32::NAN; 7 * 5];
        gemm(7, 0, 5, 1.0, &[], 0, 1, &[], 5, 1, 0.0, &mut c, 5, 1, &mut pack);
        common::assert_all_eq(&format!("{name} k = 0"), &c, &[0.0; 35], 5);
    }
}

#[test]
fn workspace_contents_do_not_matter() {
    // A workspace full of NaN (e.g. reused from a previous call with other shapes) must
    // give the same bits as a zeroed one: padding is written, never assumed.
    let mut rng = Rng::new(7);
    let (m, k, n) = (13, 37, 29);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    for (name, gemm) in kernels() {
        let mut clean = vec![0.0; m * n];
        gemm(m, k, n, 1.0, &a, k, 1, &b, 1, k, 0.0, &mut clean, n, 1, &mut workspace());
        let mut dirty = vec![0.0; m * n];
        gemm(
            m,
            k,
            n,
            1.0,
            &a,
            k,
            1,
            &b,
            1,
            k,
            0.0,
            &mut dirty,
            n,
            1,
            &mut vec![f32::NAN; PACK_LEN],
        );
        common::assert_all_eq(&format!("{name} NaN workspace"), &dirty, &clean, n);
    }
}

#[test]
fn allocates_nothing() {
    let mut rng = Rng::new(8);
    let (bsz, d) = (32, 794);
    let x = rng.vec(bsz * d, -1.0, 1.0);
    let w = rng.vec(d * d, -1.0, 1.0);
    let mut y = vec![0.0; bsz * d];
    let mut dw = vec![0.0; d * d];
    let mut pack = workspace();
    let kernels = kernels();
    let before = allocations();
    for &(_, gemm) in &kernels {
        #[rustfmt::skip]
        gemm(bsz, d, d, 1.0, &x, d, 1, &w, 1, d, 0.0, &mut y, d, 1, &mut pack);
        gemm(bsz, d, d, 1.0, &x, d, 1, &w, d, 1, 1.0, &mut y, d, 1, &mut pack);
        gemm(d, bsz, d, 0.5, &x, 1, d, &y, d, 1, 0.0, &mut dw, d, 1, &mut pack);
        // Edge tiles, a strided C, and the degenerate paths.
        gemm(7, 5, 3, 1.0, &x, 5, 1, &w, 3, 1, 2.0, &mut y, 1, 7, &mut pack);
        gemm(7, 0, 3, 1.0, &[], 0, 1, &[], 3, 1, 0.0, &mut y, 3, 1, &mut pack);
        gemm(7, 5, 3, 0.0, &x, 5, 1, &w, 3, 1, 0.5, &mut y, 3, 1, &mut pack);
    }
    assert_eq!(allocations() - before, 0, "sgemm allocated");
}

// ---------------------------------------------------------------------------------
// Argument checks

#[test]
#[should_panic(expected = "packing workspace has 10 floats")]
fn short_workspace_panics() {
    sgemm(1, 1, 1, 1.0, &[1.0], 1, 1, &[1.0], 1, 1, 0.0, &mut [0.0], 1, 1, &mut [0.0; 10]);
}

#[test]
#[should_panic(
    expected = "sgemm: A is 3×4 with strides (4, 1), so its last element is at index 11"
)]
fn short_a_panics() {
    let mut c = [0.0; 6];
    sgemm(3, 4, 2, 1.0, &[0.0; 11], 4, 1, &[0.0; 8], 2, 1, 0.0, &mut c, 2, 1, &mut workspace());
}

#[test]
#[should_panic(expected = "sgemm: B is 4×2 with strides (1, 4)")]
fn short_transposed_b_panics() {
    let mut c = [0.0; 6];
    sgemm(3, 4, 2, 1.0, &[0.0; 12], 4, 1, &[0.0; 7], 1, 4, 0.0, &mut c, 2, 1, &mut workspace());
}

#[test]
#[should_panic(
    expected = "sgemm: C is 3×2 with strides (5, 1), so its last element is at index 11"
)]
fn short_strided_c_panics() {
    let mut c = [0.0; 11];
    sgemm(3, 4, 2, 1.0, &[0.0; 12], 4, 1, &[0.0; 8], 2, 1, 0.0, &mut c, 5, 1, &mut workspace());
}

#[test]
#[should_panic(expected = "overflows usize")]
fn overflowing_strides_panic() {
    let mut c = [0.0; 6];
    sgemm(
        3,
        4,
        2,
        1.0,
        &[0.0; 12],
        usize::MAX / 2,
        1,
        &[0.0; 8],
        2,
        1,
        0.0,
        &mut c,
        2,
        1,
        &mut workspace(),
    );
}

#[test]
#[should_panic(expected = "makes elements overlap")]
fn overlapping_c_panics() {
    // Row stride 1 with column stride 1: C[0, 1] and C[1, 0] are the same element.
    let mut c = [0.0; 6];
    sgemm(3, 4, 2, 1.0, &[0.0; 12], 4, 1, &[0.0; 8], 2, 1, 0.0, &mut c, 1, 1, &mut workspace());
}

#[test]
#[should_panic(expected = "makes elements overlap")]
fn zero_c_stride_panics() {
    let mut c = [0.0; 6];
    sgemm(1, 4, 2, 1.0, &[0.0; 4], 4, 1, &[0.0; 8], 2, 1, 0.0, &mut c, 2, 0, &mut workspace());
}

#[test]
fn broadcast_operands_are_allowed() {
    // Stride 0 on an input is a broadcast, not an error: every row of A is the same.
    let mut pack = workspace();
    let row = [1.0, 2.0, 3.0];
    let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3×2
    let mut c = [0.0; 8];
    sgemm(4, 3, 2, 1.0, &row, 0, 1, &b, 2, 1, 0.0, &mut c, 2, 1, &mut pack);
    common::assert_all_eq("broadcast A", &c, &[4.0, 5.0, 4.0, 5.0, 4.0, 5.0, 4.0, 5.0], 2);
}

// ---------------------------------------------------------------------------------
// B packed once, shared by several calls

/// B (`k×n`) packed whole three ways, block by block: each block in one call, by three
/// bands of panels, and (when row-major) by three bands of steps. Asserts the three
/// agree, returns the packing.
fn pack_three_ways(k: usize, n: usize, b: &[f32], rsb: usize, csb: usize) -> Vec<f32> {
    let len = packed_b_len(k, n);
    let panels = n.div_ceil(NR);
    let (mut whole, mut by_panels, mut by_steps) =
        (vec![f32::NAN; len], vec![f32::NAN; len], vec![f32::NAN; len]);
    for steps in packed_b_blocks(k) {
        let block = steps.start * panels * NR..steps.end * panels * NR;
        let kc = steps.len();
        pack_b_panels(k, n, b, rsb, csb, steps.clone(), 0..panels, &mut whole[block.clone()]);
        let mut rest = &mut by_panels[block.clone()];
        for i in 0..3 {
            let q = panels * i / 3..panels * (i + 1) / 3;
            let (mine, tail) = rest.split_at_mut(q.len() * kc * NR);
            pack_b_panels(k, n, b, rsb, csb, steps.clone(), q, mine);
            rest = tail;
        }
        if csb == 1 {
            let cuts = [0, kc / 3, 2 * kc / 3, kc];
            for w in cuts.windows(2) {
                let mut dst: Vec<&mut [f32]> = by_steps[block.clone()]
                    .chunks_exact_mut(kc * NR)
                    .map(|panel| &mut panel[w[0] * NR..w[1] * NR])
                    .collect();
                let band = steps.start + w[0]..steps.start + w[1];
                pack_b_steps(k, n, b, rsb, band, 0, &mut dst);
            }
        }
    }
    assert!(bits_equal(&whole, &by_panels), "{k}×{n}: packed by panels differs");
    if csb == 1 {
        assert!(bits_equal(&whole, &by_steps), "{k}×{n}: packed by steps differs");
    }
    whole
}

fn bits_equal(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// `sgemm_bias` gives the bits of the pass it replaces, the bias written into every row
/// of C and then `sgemm` with `β = 1`, on every kernel: every transposition of A and
/// B, row- and column-major padded C (so full tiles, edge tiles and the strided store
/// path), ragged row tiles, several k blocks (the bias only in the first) and several n
/// blocks (the bias row offset by the block), k = 0 and α = 0. C starts as NaN, which
/// must not leak, and its padding must stay untouched.
#[test]
fn bias_matches_a_copied_bias_and_beta_one_bit_for_bit() {
    let mut rng = Rng::new(91);
    let mut pack = workspace();
    let shapes = [
        (1, 1, 1),
        (5, 7, 16),
        (MR + 1, 33, 2 * NR + 3),
        (13, KC + 9, 33),
        (2 * MR, 0, 17),
        (MC + 7, 2 * KC + 3, NC + 20),
    ];
    let kernels = Kernel::ALL.into_iter().filter(|k| k.available()).map(Some);
    for kernel in [None].into_iter().chain(kernels) {
        let name = kernel.map_or("sgemm", Kernel::name);
        for &(m, k, n) in &shapes {
            for (ta, tb, tc) in (0..8).map(|bits| (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0)) {
                let a = Mat::random(&mut rng, m, k, ta, 3);
                let b = Mat::random(&mut rng, k, n, tb, 2);
                let bias = rng.vec(n, -1.0, 1.0);
                for alpha in [1.0, -0.75, 0.0] {
                    let mut want = Mat::filled(m, n, tc, 5, POISON);
                    let mut got = Mat::filled(m, n, tc, 5, POISON);
                    for i in 0..m {
                        for (j, &v) in bias.iter().enumerate() {
                            want.set(i, j, v);
                            got.set(i, j, f32::NAN);
                        }
                    }
                    let (a_, b_) = ((&a.data[..], a.rs, a.cs), (&b.data[..], b.rs, b.cs));
                    let (w, g) = (&mut want, &mut got);
                    match kernel {
                        None => {
                            #[rustfmt::skip]
                            sgemm(m, k, n, alpha, a_.0, a.rs, a.cs, b_.0, b.rs, b.cs, 1.0,
                                  &mut w.data, w.rs, w.cs, &mut pack);
                            #[rustfmt::skip]
                            sgemm_bias(m, k, n, alpha, a_.0, a.rs, a.cs, b_.0, b.rs, b.cs, &bias,
                                       &mut g.data, g.rs, g.cs, &mut pack);
                        }
                        Some(kern) => {
                            #[rustfmt::skip]
                            sgemm_on(kern, m, k, n, alpha, a_, b_, 1.0, None,
                                     (&mut w.data, w.rs, w.cs), &mut pack);
                            #[rustfmt::skip]
                            sgemm_on(kern, m, k, n, alpha, a_, b_, 0.0, Some(&bias),
                                     (&mut g.data, g.rs, g.cs), &mut pack);
                        }
                    }
                    assert!(
                        bits_equal(&want.data, &got.data),
                        "{name}: {m}×{k}×{n} α {alpha}, transposed A {ta} B {tb}, column-major C {tc}"
                    );
                }
            }
        }
    }
}

/// The AVX-512 kernel gives the AVX2 kernel's bits (the claim that lets a model train
/// to the same bits on either CPU): every layout, α and β (including the edge and
/// strided store paths), ragged row tiles of every height (each with its own
/// accumulator sets), an odd number of panels (the last pair is one panel), several k
/// and n blocks, the bias start, and the weight gradient's stripes. On a CPU without
/// AVX-512 there is nothing to compare and the test says so.
#[test]
fn avx512_kernel_gives_the_avx2_kernels_bits() {
    if !Kernel::Avx512.available() {
        eprintln!("no AVX-512F on this CPU: the AVX-512 kernel is not run");
        return;
    }
    let mut rng = Rng::new(92);
    let mut pack = workspace();
    // n covers every panel ending: two full panels, one, a full one and a partial one,
    // a lone partial one, and each partial width's neighbours (n % NR = 1, 15).
    let shapes = [
        (1, 5, 32),
        (3, 17, 48),
        (2, 9, 26),
        (5, 9, 7),
        (MR, 33, NR + 1),
        (MR + 1, 40, 3 * NR - 1),
        (MR, 794, 794),
        (128, 794, 794),
        (794, 128, 794),
        (MC + 5, KC + 9, 3 * NR),
        (7, 2 * KC + 3, NC + 40),
    ];
    for &(m, k, n) in &shapes {
        for (ta, tb, tc) in (0..8).map(|bits| (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0)) {
            let a = Mat::random(&mut rng, m, k, ta, 1);
            let b = Mat::random(&mut rng, k, n, tb, 1);
            let c = Mat::random(&mut rng, m, n, tc, 1);
            let bias = rng.vec(n, -1.0, 1.0);
            for (alpha, beta, with_bias) in
                // α = 1.3 is not a power of two, so α·ab rounds: a fused and an unfused
                // store then differ.
                [(1.0, 0.0, false), (1.0, 1.0, false), (1.3, 0.75, false), (1.0, 0.0, true)]
            {
                let bias = with_bias.then_some(&bias[..]);
                let mut out = [c.clone(), c.clone()];
                for (kern, got) in [Kernel::Avx512, Kernel::Avx2].into_iter().zip(&mut out) {
                    #[rustfmt::skip]
                    sgemm_on(kern, m, k, n, alpha, (&a.data, a.rs, a.cs), (&b.data, b.rs, b.cs),
                             beta, bias, (&mut got.data, got.rs, got.cs), &mut pack);
                }
                assert!(
                    bits_equal(&out[0].data, &out[1].data),
                    "{m}×{k}×{n} α {alpha} β {beta} bias {with_bias}, transposed A {ta} B {tb}, \
                     column-major C {tc}"
                );
            }
        }
    }
    // The weight gradient's stripes (sgemm_stripes runs the AVX-512 kernel here).
    for &(m, k, n) in &[(794, 128, 794), (13, 100, 3 * NR + 5)] {
        let (dy, x) = (rng.vec(k * m, -1.0, 1.0), rng.vec(k * n, -1.0, 1.0));
        let mut want = vec![f32::NAN; m * n];
        #[rustfmt::skip]
        sgemm_on(Kernel::Avx2, m, k, n, 1.0, (&dy, 1, m), (&x, n, 1), 0.0, None,
                 (&mut want, n, 1), &mut pack);
        let mut got = vec![f32::NAN; m * n];
        let mut sink = |row: usize, stripe: &[f32]| {
            got[row * n..row * n + stripe.len()].copy_from_slice(stripe);
        };
        sgemm_stripes(m, k, n, 1.0, &dy, 1, m, &x, n, 1, &mut pack, &mut sink);
        assert!(bits_equal(&want, &got), "stripes {m}×{k}×{n}");
    }
}

#[test]
#[should_panic(expected = "sgemm: bias is 1×17")]
fn short_bias_panics() {
    let (a, b, mut c) = (vec![0.0; 3 * 2], vec![0.0; 2 * 17], vec![0.0; 3 * 17]);
    sgemm_bias(3, 2, 17, 1.0, &a, 2, 1, &b, 17, 1, &[0.0; 16], &mut c, 17, 1, &mut workspace());
}

/// `sgemm_packed_b` (on row pieces of C, as the pool runs it) and
/// `sgemm_stripes_packed_b` give `sgemm`'s and `sgemm_stripes`'s bits, for B
/// row-major, column-major and strided, over several k blocks (k > KC), several n
/// blocks (n > NC), ragged panels and ragged row tiles.
#[test]
fn packed_b_calls_match_sgemm_bit_for_bit() {
    let mut rng = Rng::new(77);
    let mut pack = workspace();
    let shapes = [(1, 1, 1), (7, 5, 17), (13, KC + 9, 33), (2 * MR + 1, 2 * KC + 3, NC + 20)];
    for &(m, k, n) in &shapes {
        let a = rng.vec(m * k, -1.0, 1.0);
        let b = rng.vec(k * n * 2, -1.0, 1.0);
        // (rsb, csb): row-major, column-major, and row-major with every other column.
        for (rsb, csb) in [(n, 1), (1, k), (2 * n, 2)] {
            let packed = pack_three_ways(k, n, &b, rsb, csb);
            for beta in [0.0, 0.5] {
                let c0 = rng.vec(m * n, -1.0, 1.0);
                let mut want = c0.clone();
                sgemm(m, k, n, 1.5, &a, k, 1, &b, rsb, csb, beta, &mut want, n, 1, &mut pack);
                let mut got = c0.clone();
                // Three row pieces at multiples of MR, each its own call.
                let cut = [0, (m / 3 / MR) * MR, (2 * m / 3 / MR) * MR, m];
                for w in cut.windows(2) {
                    let (r0, r1) = (w[0], w[1]);
                    sgemm_packed_b(
                        r1 - r0,
                        k,
                        n,
                        1.5,
                        &a[r0 * k..],
                        k,
                        1,
                        &packed,
                        beta,
                        &mut got[r0 * n..r1 * n],
                        n,
                        1,
                        &mut pack,
                    );
                }
                assert!(bits_equal(&want, &got), "{m}×{k}×{n}, B strides ({rsb}, {csb}), β {beta}");
            }
            if idmlp_kernels::sgemm::stripes_fit(k, n) {
                let collect = |packed: Option<&[f32]>, pack: &mut [f32]| {
                    let mut c = vec![f32::NAN; m * n];
                    let mut sink = |row: usize, stripe: &[f32]| {
                        c[row * n..row * n + stripe.len()].copy_from_slice(stripe);
                    };
                    match packed {
                        Some(p) => {
                            sgemm_stripes_packed_b(m, k, n, 0.5, &a, k, 1, p, pack, &mut sink)
                        }
                        None => {
                            sgemm_stripes(m, k, n, 0.5, &a, k, 1, &b, rsb, csb, pack, &mut sink)
                        }
                    }
                    c
                };
                let want = collect(None, &mut pack);
                let got = collect(Some(&packed), &mut pack);
                assert!(bits_equal(&want, &got), "stripes {m}×{k}×{n}, B strides ({rsb}, {csb})");
            }
        }
    }
}

#[test]
#[should_panic(expected = "packed B has")]
fn short_packed_b_panics() {
    let mut c = vec![0.0; 4];
    let packed = vec![0.0; packed_b_len(3, 2) - 1];
    sgemm_packed_b(2, 3, 2, 1.0, &[0.0; 6], 3, 1, &packed, 0.0, &mut c, 2, 1, &mut workspace());
}

#[test]
#[should_panic(expected = "pack_b_steps: panel 1 has")]
fn pack_b_steps_rejects_a_wrong_panel_length() {
    let b = vec![0.0; 4 * 40];
    let (mut p0, mut p1) = (vec![0.0; 2 * NR], vec![0.0; 2 * NR - 1]);
    pack_b_steps(4, 40, &b, 40, 1..3, 0, &mut [&mut p0[..], &mut p1[..]]);
}

#[test]
#[should_panic(expected = "pack_b_panels: panels")]
fn pack_b_panels_rejects_panels_past_b() {
    let b = vec![0.0; 4 * 20];
    let mut dst = vec![0.0; 3 * 4 * NR];
    pack_b_panels(4, 20, &b, 20, 1, 0..4, 0..3, &mut dst);
}
