//! The AVX-512 microkernel (x86-64): a tile of [`MR`] rows by two B̃ panels (2·[`NR`]
//! = 32 columns), one zmm per panel per row.
//!
//! Why: on a core with full-width AVX-512 (Zen 5, and Intel server cores) a zmm FMA
//! does twice the work of a ymm FMA at the same rate, so the AVX2 kernel leaves half
//! the core's arithmetic unused. The packed layout stays the AVX2 kernel's (16-column
//! panels; the tile reads two neighbouring panels as two streams), and every element
//! of C gets the AVX2 kernel's instructions in its order: the same k blocks, the same
//! accumulator sets for a tile of R rows ([`super::avx2::sets`]), the same final
//! `fma(α, ab, β·S)`; and in a partial last panel (fewer than 16 columns, written
//! through a lane mask) the AVX2 edge path's `β·S + α·ab`, unfused. So the results
//! are bit-identical to the AVX2 kernel's, and a model trains to the same bits on either
//! machine. Only a C whose columns are not contiguous goes to the AVX2 kernel.

use core::arch::x86_64::{
    _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps,
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
        if t.csc != 1 {
            // A strided C: the AVX2 kernel's stack-tile path, one panel at a time.
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
        // SAFETY: `t.check` asserted 1 ≤ cols ≤ PANELS·NR, a.len() ≥ kc·MR, b.len() ≥
        // kc·NR·⌈cols/NR⌉ (the tile's panels), that the last tile element c0 +
        // (rows−1)·rsc + (cols − 1) is inside `c`, so every `dst[i·rsc + j]` (i < rows,
        // j < cols) is inside `c[c0..]`, and that a bias row has `cols` floats, so
        // `src[i·0 + j]` is inside it. `self` proves AVX-512F.
        unsafe {
            kernel_rows(
                t.rows,
                t.cols,
                t.kc,
                a.as_ptr(),
                b.as_ptr(),
                alpha,
                beta,
                src,
                rss,
                dst,
                t.rsc,
            )
        };
    }
}

/// Runs the kernel compiled for exactly `rows` rows and `⌈cols/NR⌉` panels, with the
/// AVX2 kernel's accumulator sets for that many rows.
///
/// # Safety
///
/// As [`kernel`], with `1 ≤ rows ≤ MR` and `1 ≤ cols ≤ PANELS·NR`.
#[allow(unsafe_code, clippy::too_many_arguments)]
#[inline]
unsafe fn kernel_rows(
    rows: usize,
    cols: usize,
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
    // Lanes of the last panel that are C's: all 16, or the first cols % NR.
    let last = (cols - 1) % NR + 1;
    let mask = u16::MAX >> (NR - last);
    macro_rules! by_rows {
        ($p:literal: $($r:literal)*) => {{
            const _: () = assert!(MR == [$($r),*].len(), "one arm per row count 1..=MR");
            match rows {
                // SAFETY: forwarded contract; each arm's R equals `rows` and P equals
                // the tile's panels, whose last has the `mask` lanes.
                $($r => unsafe {
                    kernel::<$r, { sets($r) }, $p>(kc, a, b, alpha, beta, src, rss, dst, rsd, mask)
                },)*
                _ => unreachable!("tile rows {rows} outside 1..={MR}"),
            }
        }};
    }
    const _: () = assert!(PANELS == 2, "one arm per panel count 1..=PANELS");
    if cols > NR { by_rows!(2: 1 2 3 4 5 6) } else { by_rows!(1: 1 2 3 4 5 6) }
}

/// The R×(P·NR) microkernel: `dst[i·rsd + j] ← α·Σ_p ã[p·MR + i]·b̃_j(p) +
/// β·src[i·rss + j]` for i < R and the tile's columns j, where column j's packed values
/// are panel j / NR's (`b[(j / NR)·kc·NR + p·NR + j % NR]`); with β = 0, `src` is not
/// read. The last of the P panels has the columns of the lanes set in `mask` (all 16,
/// or its first few), and only those are read from `src` and written. `U`
/// accumulator sets take alternate k steps and are summed at the end, in the AVX2
/// kernel's order; a full panel stores `fma(α, ab, β·S)` as the AVX2 kernel's full
/// tile does, a partial one `β·S + α·ab` as its edge path (`store_tile`) does.
///
/// # Safety
///
/// The CPU supports AVX-512F; `a` is readable for `kc·MR` floats, `b` for `P·kc·NR`;
/// for i < R, `dst` is writable and, if β ≠ 0, `src` readable at `i·rsd + j`
/// (`i·rss + j`) for the columns j of the first P − 1 panels and the `mask` lanes of
/// the last (`j = (P − 1)·NR + lane`), and `mask` is not 0.
#[allow(unsafe_code, clippy::needless_range_loop, clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize, const U: usize, const P: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    alpha: f32,
    beta: f32,
    src: *const f32,
    rss: usize,
    dst: *mut f32,
    rsd: usize,
    mask: u16,
) {
    // SAFETY: every `a.add` stays below kc·MR and every `b.add` below P·kc·NR (panel
    // v < P starts at v·kc·NR, k steps < kc, 16 floats = NR per load: the packed panels
    // are zero-padded to NR columns); every full `dst.add` (`src.add`) store or load is
    // at i·rsd + 16v + 16 (i·rss + …) with i < R and v < P − 1, or v = P − 1 with all
    // lanes in `mask`, and the masked ones touch only the `mask` lanes (masked-out
    // lanes are neither read nor written, nor can they fault): the caller's contract.
    // The prefetches are hints at addresses in the tile (wrapping_add: never UB).
    unsafe {
        // The C tile's cache lines, early (see the AVX2 kernel): a row of 32 floats
        // spans three lines when C's rows are not line-aligned.
        let last_col = (P - 1) * NR + (15 - mask.leading_zeros() as usize);
        for i in 0..R {
            let row = dst.wrapping_add(i * rsd);
            _mm_prefetch::<_MM_HINT_T0>(row.cast());
            if P > 1 {
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR).cast());
            }
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(last_col).cast());
        }
        let panel = kc * NR;
        let mut acc = [[[_mm512_setzero_ps(); P]; R]; U];
        let (mut a, mut b) = (a, b);
        macro_rules! step {
            ($u:expr, $a:expr, $b:expr) => {
                let mut bv = [_mm512_setzero_ps(); P];
                for v in 0..P {
                    bv[v] = _mm512_loadu_ps($b.add(v * panel));
                }
                for i in 0..R {
                    let ai = _mm512_set1_ps(*$a.add(i));
                    for v in 0..P {
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
            for v in 0..P {
                let mut ab = acc[0][i][v];
                for u in 1..U {
                    ab = _mm512_add_ps(ab, acc[u][i][v]);
                }
                let (out, s) = (dst.add(i * rsd + NR * v), src.add(i * rss + NR * v));
                if v < P - 1 || mask == u16::MAX {
                    let res = if beta == 0.0 {
                        _mm512_mul_ps(alphav, ab)
                    } else {
                        _mm512_fmadd_ps(alphav, ab, _mm512_mul_ps(betav, _mm512_loadu_ps(s)))
                    };
                    _mm512_storeu_ps(out, res);
                } else {
                    let scaled = _mm512_mul_ps(alphav, ab);
                    let res = if beta == 0.0 {
                        scaled
                    } else {
                        let s = _mm512_maskz_loadu_ps(mask, s);
                        _mm512_add_ps(_mm512_mul_ps(betav, s), scaled)
                    };
                    _mm512_mask_storeu_ps(out, mask, res);
                }
            }
        }
    }
}
