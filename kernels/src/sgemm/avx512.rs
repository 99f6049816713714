//! The AVX-512 microkernel (x86-64): a tile of [`MR`] rows by two B̃ panels (2·[`NR`]
//! = 32 columns), one zmm per panel per row.
//!
//! Why: on a core with full-width AVX-512 (Zen 5, and Intel server cores) a zmm FMA
//! does twice the work of a ymm FMA at the same rate, so the AVX2 kernel leaves half
//! the core's arithmetic unused. The packed layout stays the AVX2 kernel's (16-column
//! panels; the tile reads two neighbouring panels as two streams), and every element
//! of C gets the AVX2 kernel's instructions in its order: the same k blocks, the same
//! accumulator sets for a tile of R rows ([`super::avx2::sets`]), the same final
//! `fma(α, ab, β·S)`. So the results are bit-identical to the AVX2 kernel's, and a
//! model trains to the same bits on either machine. Tiles that are not two full panels
//! of a row-contiguous C go to the AVX2 kernel, panel by panel.

use core::arch::x86_64::{
    _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mul_ps,
    _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::avx2::{Avx2Fma, sets};
use super::{MR, Micro, NR, Tile};

/// B̃ panels (zmm vectors of 16 floats) per tile row.
const PANELS: usize = 2;
const _: () = assert!(PANELS <= super::MAX_PANELS && NR == 16, "a zmm holds one panel row");

/// Proof that this CPU executes AVX-512F (and AVX2 + FMA, which the edge tiles and the
/// packer use): its only constructor is [`Avx512::detect`].
#[derive(Clone, Copy)]
pub(super) struct Avx512(Avx2Fma);

impl Avx512 {
    /// The token if the CPU supports AVX-512F, AVX2 and FMA: at run time with `std`,
    /// from the compile target without.
    pub(super) fn detect() -> Option<Self> {
        #[cfg(feature = "std")]
        let ok = std::is_x86_feature_detected!("avx512f");
        #[cfg(not(feature = "std"))]
        let ok = cfg!(target_feature = "avx512f");
        if ok { Avx2Fma::detect().map(Avx512) } else { None }
    }
}

impl Micro for Avx512 {
    const PANELS: usize = PANELS;

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
        self.0.pack_b(kc, nc, b, b0, rsb, csb, dst);
    }

    #[allow(unsafe_code)]
    fn tile(self, t: Tile<'_>, a: &[f32], b: &[f32], c: &mut [f32]) {
        if t.cols < PANELS * NR || t.csc != 1 {
            // Edges and strided C: the AVX2 kernel, one panel at a time.
            for (q, col) in (0..t.cols).step_by(NR).enumerate() {
                let cols = NR.min(t.cols - col);
                let part = Tile {
                    cols,
                    c0: t.c0 + col * t.csc,
                    bias: t.bias.map(|row| &row[col..col + cols]),
                    ..t
                };
                self.0.tile(part, a, &b[q * t.kc * NR..], c);
            }
            return;
        }
        t.check(a.len(), b.len(), c.len());
        let dst = c[t.c0..].as_mut_ptr();
        let (src, rss) = match t.bias {
            Some(row) => (row.as_ptr(), 0),
            None => (dst.cast_const(), t.rsc),
        };
        let (alpha, beta) = (t.alpha, t.beta);
        // SAFETY: `t.check` asserted a.len() ≥ kc·MR, b.len() ≥ kc·NR·PANELS (the tile's
        // panels), that the last tile element c0 + (rows−1)·rsc + (PANELS·NR − 1) is
        // inside `c`, so every `dst[i·rsc + j]` (i < rows, j < PANELS·NR) is inside
        // `c[c0..]`, and that a bias row has cols = PANELS·NR floats, so `src[i·0 + j]`
        // is inside it. `self` proves AVX-512F.
        unsafe {
            kernel_rows(t.rows, t.kc, a.as_ptr(), b.as_ptr(), alpha, beta, src, rss, dst, t.rsc)
        };
    }
}

/// Runs the kernel compiled for exactly `rows` rows, with the AVX2 kernel's
/// accumulator sets for that many rows.
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

/// The R×(PANELS·NR) microkernel: `dst[i·rsd + j] ← α·Σ_p ã[p·MR + i]·b̃_j(p) +
/// β·src[i·rss + j]` for i < R, j < PANELS·NR, where column j's packed values are
/// panel j / NR's (`b[(j / NR)·kc·NR + p·NR + j % NR]`); with β = 0, `src` is not read.
/// `U` accumulator sets take alternate k steps and are summed at the end, in the
/// AVX2 kernel's order.
///
/// # Safety
///
/// The CPU supports AVX-512F; `a` is readable for `kc·MR` floats, `b` for
/// `PANELS·kc·NR`; `dst` is writable at `i·rsd + j` and, if β ≠ 0, `src` readable at
/// `i·rss + j`, for i < R, j < PANELS·NR.
#[allow(unsafe_code, clippy::needless_range_loop, clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
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
    // SAFETY: every `a.add` stays below kc·MR and every `b.add` below PANELS·kc·NR
    // (panel v < PANELS starts at v·kc·NR, k steps < kc, 16 floats = NR per load);
    // every `dst.add` (`src.add`) is at i·rsd + 16v + 16 ≤ i·rsd + PANELS·NR (i·rss
    // + …) with i < R: the caller's contract.
    unsafe {
        // The C tile's cache lines, early (see the AVX2 kernel): a row of 32 floats
        // spans three lines when C's rows are not line-aligned.
        for i in 0..R {
            let row = dst.add(i * rsd);
            _mm_prefetch::<_MM_HINT_T0>(row.cast());
            _mm_prefetch::<_MM_HINT_T0>(row.add(NR).cast());
            _mm_prefetch::<_MM_HINT_T0>(row.add(PANELS * NR - 1).cast());
        }
        let panel = kc * NR;
        let mut acc = [[[_mm512_setzero_ps(); PANELS]; R]; U];
        let (mut a, mut b) = (a, b);
        macro_rules! step {
            ($u:expr, $a:expr, $b:expr) => {
                let mut bv = [_mm512_setzero_ps(); PANELS];
                for v in 0..PANELS {
                    bv[v] = _mm512_loadu_ps($b.add(v * panel));
                }
                for i in 0..R {
                    let ai = _mm512_set1_ps(*$a.add(i));
                    for v in 0..PANELS {
                        acc[$u][i][v] = _mm512_fmadd_ps(ai, bv[v], acc[$u][i][v]);
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

        let alphav = _mm512_set1_ps(alpha);
        let betav = _mm512_set1_ps(beta);
        for i in 0..R {
            for v in 0..PANELS {
                let mut ab = acc[0][i][v];
                for u in 1..U {
                    ab = _mm512_add_ps(ab, acc[u][i][v]);
                }
                let out = dst.add(i * rsd + NR * v);
                let res = if beta == 0.0 {
                    _mm512_mul_ps(alphav, ab)
                } else {
                    let s = _mm512_loadu_ps(src.add(i * rss + NR * v));
                    _mm512_fmadd_ps(alphav, ab, _mm512_mul_ps(betav, s))
                };
                _mm512_storeu_ps(out, res);
            }
        }
    }
}
