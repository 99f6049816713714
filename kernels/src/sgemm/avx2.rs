//! The AVX2 + FMA microkernel and the transposing B packer (x86-64): the only `unsafe`
//! of the sgemm module.
//!
//! Both are `unsafe fn`s with `#[target_feature]`, reachable only through the safe
//! methods of [`Avx2Fma`], a token that exists only once the CPU has been seen to
//! support AVX2 and FMA, and those methods assert every bound the raw pointers rely on.

use core::arch::x86_64::{
    _MM_HINT_T0, _mm_prefetch, _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps,
    _mm256_loadu_ps, _mm256_loadu2_m128, _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

use super::{MR, Micro, NR, Tile, pack, store_tile};

/// ymm vectors per row of a tile.
const NV: usize = NR / 8;

/// Proof that this CPU executes AVX2 and FMA instructions: its only constructor is
/// [`Avx2Fma::detect`], so holding one makes the `#[target_feature]` code sound to call.
#[derive(Clone, Copy)]
pub(super) struct Avx2Fma(());

impl Avx2Fma {
    /// The token if the CPU supports AVX2 and FMA. With `std` this is a run-time check
    /// (std caches the `cpuid` result, so it costs an atomic load per call); without
    /// it, only what the compile target guarantees.
    pub(super) fn detect() -> Option<Self> {
        #[cfg(feature = "std")]
        let ok = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        #[cfg(not(feature = "std"))]
        let ok = cfg!(all(target_feature = "avx2", target_feature = "fma"));
        ok.then_some(Avx2Fma(()))
    }
}

impl Micro for Avx2Fma {
    /// [`pack::pack_b`], except for a column-major B (`rsb = 1`, the forward pass's
    /// Wᵀ), whose full panels are packed as 8×8 blocks transposed in registers
    /// instead of one strided scalar store per element. That matters at small m,
    /// where packing B is a sizeable part of the work (k·n copies, m·k·n FMAs).
    #[allow(unsafe_code)]
    fn pack_b(
        self,
        kc: usize,
        nc: usize,
        b: &[f32],
        b0: usize,
        rsb: usize,
        csb: usize,
        dst: &mut [f32],
    ) {
        if rsb != 1 || csb == 1 {
            pack::pack_b(kc, nc, b, b0, rsb, csb, dst);
            return;
        }
        let k8 = kc - kc % 8;
        let panels = dst[..nc.div_ceil(NR) * NR * kc].chunks_exact_mut(NR * kc);
        for (q, panel) in panels.enumerate() {
            let (src, cols) = (b0 + q * NR * csb, NR.min(nc - q * NR));
            if cols < NR || k8 == 0 {
                pack::pack_b_panel(cols, b, src, 1, csb, panel);
                continue;
            }
            // The largest index read below is that of element (k8 − 1, NR − 1).
            let last = (NR - 1).checked_mul(csb).and_then(|o| o.checked_add(src + k8 - 1));
            assert!(last.is_some_and(|l| l < b.len()), "sgemm: B panel outside B");
            // SAFETY: `transpose_panel` reads `b[src + jj·csb + p]` for jj < NR, p < k8,
            // all ≤ `last` < b.len() (asserted above); it writes `panel[p·NR + jj]` for
            // p < k8 ≤ kc, jj < NR, inside `panel` (kc·NR floats by construction).
            // `self` proves AVX2 is available.
            unsafe { transpose_panel(k8, b[src..].as_ptr(), csb, panel.as_mut_ptr()) };
            for p in k8..kc {
                for jj in 0..NR {
                    panel[p * NR + jj] = b[src + jj * csb + p];
                }
            }
        }
    }

    #[allow(unsafe_code)]
    fn tile(self, t: Tile<'_>, a: &[f32], b: &[f32], c: &mut [f32]) {
        t.check(a.len(), b.len(), c.len());
        if t.cols == NR && t.csc == 1 {
            // A full tile of a row-contiguous C: the kernel stores straight into C, and
            // reads the β term from C or from the bias row (row stride 0).
            let dst = c[t.c0..].as_mut_ptr();
            let (src, rss) = match t.bias {
                Some(row) => (row.as_ptr(), 0),
                None => (dst.cast_const(), t.rsc),
            };
            let (alpha, beta) = (t.alpha, t.beta);
            // SAFETY: `t.check` asserted a.len() ≥ kc·MR, b.len() ≥ kc·NR, that the
            // last tile element c0 + (rows−1)·rsc + (NR−1)·1 is inside `c`, so every
            // `dst[i·rsc + j]` (i < rows, j < NR) is inside `c[c0..]`, and that a bias
            // row has cols = NR floats, so `src[i·0 + j]` is inside it. `self` proves
            // AVX2 + FMA.
            unsafe {
                kernel_rows(t.rows, t.kc, a.as_ptr(), b.as_ptr(), alpha, beta, src, rss, dst, t.rsc)
            };
        } else {
            // An edge or strided-C tile: compute α·Ã·B̃ into a stack tile (β = 0, so
            // the zeros are not read), then copy the valid corner out with safe code.
            let mut tile = [[0.0f32; NR]; MR];
            let dst = tile.as_mut_ptr().cast::<f32>();
            // SAFETY: as above for `a` and `b`; `dst` is the MR×NR stack tile with row
            // stride NR and rows ≤ MR (asserted by `t.check`).
            unsafe {
                kernel_rows(t.rows, t.kc, a.as_ptr(), b.as_ptr(), t.alpha, 0.0, dst, NR, dst, NR)
            };
            store_tile(&t, &tile, c);
        }
    }
}

/// Accumulator sets for an R-row kernel: enough that the kernel keeps ≥ 8 independent
/// FMA chains in flight (Zen 3: 2 FMA pipes × 4 cycles latency), so that tiles with
/// few rows (m = 1, or the last rows of a block) do not stall on FMA latency.
pub(super) const fn sets(rows: usize) -> usize {
    match rows * NV {
        0..4 => 4,
        4..8 => 2,
        _ => 1,
    }
}

/// Runs the kernel compiled for exactly `rows` rows (`sets(rows)` accumulator sets).
///
/// # Safety
///
/// As [`kernel`], with `1 ≤ rows ≤ MR`.
#[allow(unsafe_code, clippy::too_many_arguments)]
#[inline]
unsafe fn kernel_rows(
    rows: usize,
    kc: usize,
    a: *const f32,
    b: *const f32,
    alpha: f32,
    beta: f32,
    src: *const f32,
    rss: usize,
    dst: *mut f32,
    rsd: usize,
) {
    macro_rules! by_rows {
        ($($r:literal)*) => {{
            const _: () = assert!(MR == [$($r),*].len(), "one arm per row count 1..=MR");
            match rows {
                // SAFETY: forwarded contract; each arm's R equals `rows`.
                $($r => unsafe { kernel::<$r, { sets($r) }>(kc, a, b, alpha, beta, src, rss, dst, rsd) },)*
                _ => unreachable!("tile rows {rows} outside 1..={MR}"),
            }
        }};
    }
    by_rows!(1 2 3 4 5 6)
}

/// The R×NR microkernel: `dst[i·rsd + j] ← α·Σ_p ã[p·MR + i]·b̃[p·NR + j] +
/// β·src[i·rss + j]` for i < R, j < NR; with β = 0, `src` is not read. `src` is `dst`
/// itself (`C ← α·Ã·B̃ + β·C`) or a bias row with `rss = 0`. `U` accumulator sets take
/// alternate k steps and are summed at the end.
///
/// # Safety
///
/// The CPU supports AVX2 and FMA; `a` is readable for `kc·MR` floats, `b` for `kc·NR`;
/// `dst` is writable at `i·rsd + j` and, if β ≠ 0, `src` readable at `i·rss + j`, for
/// i < R, j < NR.
#[allow(unsafe_code, clippy::needless_range_loop, clippy::too_many_arguments)] // indices mirror the packed layout
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize, const U: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    alpha: f32,
    beta: f32,
    src: *const f32,
    rss: usize,
    dst: *mut f32,
    rsd: usize,
) {
    // SAFETY: every `a.add`, `b.add` stays below kc·MR, kc·NR (k steps < kc, row
    // index < R ≤ MR, vector offset + 8 ≤ NR); every `dst.add` (`src.add`) is at
    // i·rsd + 8v + 8 ≤ i·rsd + NR (i·rss + …) with i < R: the caller's contract.
    unsafe {
        // Ask for the C tile's cache lines now, so that their misses overlap the k
        // loop instead of stalling the stores at its end (measured: the weight
        // gradient, whose k = B is short and whose C = 794×794 outgrows L2, went from
        // 0.6–0.9× to 1.1–1.3× matrixmultiply). A row of NR floats spans two lines when
        // C's rows are not line-aligned (D = 794).
        for i in 0..R {
            let row = dst.add(i * rsd);
            _mm_prefetch::<_MM_HINT_T0>(row.cast());
            _mm_prefetch::<_MM_HINT_T0>(row.add(NR - 1).cast());
        }
        let mut acc = [[[_mm256_setzero_ps(); NV]; R]; U];
        let (mut a, mut b) = (a, b);
        // One k step into accumulator set `u`: NV loads of B̃, R broadcasts of Ã, R·NV
        // FMAs. Constant trip counts, so all of it unrolls into registers.
        macro_rules! step {
            ($u:expr, $a:expr, $b:expr) => {
                let mut bv = [_mm256_setzero_ps(); NV];
                for v in 0..NV {
                    bv[v] = _mm256_loadu_ps($b.add(8 * v));
                }
                for i in 0..R {
                    let ai = _mm256_broadcast_ss(&*$a.add(i));
                    for v in 0..NV {
                        acc[$u][i][v] = _mm256_fmadd_ps(ai, bv[v], acc[$u][i][v]);
                    }
                }
            };
        }
        for _ in 0..kc / U {
            for u in 0..U {
                step!(u, a.add(u * MR), b.add(u * NR));
            }
            a = a.add(U * MR);
            b = b.add(U * NR);
        }
        for _ in 0..kc % U {
            step!(0, a, b);
            a = a.add(MR);
            b = b.add(NR);
        }

        let alphav = _mm256_set1_ps(alpha);
        let betav = _mm256_set1_ps(beta);
        for i in 0..R {
            for v in 0..NV {
                let mut ab = acc[0][i][v];
                for u in 1..U {
                    ab = _mm256_add_ps(ab, acc[u][i][v]);
                }
                let out = dst.add(i * rsd + 8 * v);
                let res = if beta == 0.0 {
                    _mm256_mul_ps(alphav, ab)
                } else {
                    let s = _mm256_loadu_ps(src.add(i * rss + 8 * v));
                    _mm256_fmadd_ps(alphav, ab, _mm256_mul_ps(betav, s))
                };
                _mm256_storeu_ps(out, res);
            }
        }
    }
}

/// Packs the first `k8` k steps (a multiple of 8) of one full NR-column panel of a
/// column-major B: `dst[p·NR + jj] = src[jj·csb + p]`, 8×8 blocks at a time. Each
/// block loads 8 half-columns pairwise into ymm (`loadu2`: column t in the low lane,
/// column t + 4 in the high lane), so two rounds of in-lane shuffles finish the
/// transpose without a cross-lane permute.
///
/// # Safety
///
/// The CPU supports AVX2; `src` is readable at `jj·csb + p` for jj < NR, p < k8; `dst`
/// is writable for `k8·NR` floats.
#[allow(unsafe_code)]
#[target_feature(enable = "avx2")]
unsafe fn transpose_panel(k8: usize, src: *const f32, csb: usize, dst: *mut f32) {
    // SAFETY: offsets stay within the ranges of the contract above.
    unsafe {
        for p in (0..k8).step_by(8) {
            for h in 0..NV {
                let col = |t: usize| src.add((8 * h + t) * csb + p);
                for half in 0..2 {
                    let o = 4 * half;
                    // r_t = [col t, k p+o..p+o+4 | col t+4, same k]
                    let r0 = _mm256_loadu2_m128(col(4).add(o), col(0).add(o));
                    let r1 = _mm256_loadu2_m128(col(5).add(o), col(1).add(o));
                    let r2 = _mm256_loadu2_m128(col(6).add(o), col(2).add(o));
                    let r3 = _mm256_loadu2_m128(col(7).add(o), col(3).add(o));
                    let t0 = _mm256_unpacklo_ps(r0, r1); // c0k0 c1k0 c0k1 c1k1 | c4.. c5..
                    let t1 = _mm256_unpackhi_ps(r0, r1); // c0k2 c1k2 c0k3 c1k3 | …
                    let t2 = _mm256_unpacklo_ps(r2, r3);
                    let t3 = _mm256_unpackhi_ps(r2, r3);
                    // Row k of the output: columns 0..4 in the low lane, 4..8 in the high.
                    let rows = [
                        _mm256_shuffle_ps::<0x44>(t0, t2),
                        _mm256_shuffle_ps::<0xEE>(t0, t2),
                        _mm256_shuffle_ps::<0x44>(t1, t3),
                        _mm256_shuffle_ps::<0xEE>(t1, t3),
                    ];
                    for (s, row) in rows.into_iter().enumerate() {
                        _mm256_storeu_ps(dst.add((p + o + s) * NR + 8 * h), row);
                    }
                }
            }
        }
    }
}
