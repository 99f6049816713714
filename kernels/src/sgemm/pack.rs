//! Packing: copies a block of A or B into the contiguous, kernel-ordered layout the
//! microkernels stream through (safe code; the AVX2 transposing packer is in `avx2`).
//!
//! - Ã, the `mc×kc` block of A, becomes MR-tall row panels: element `(i, p)` goes to
//!   `dst[(i / MR)·kc·MR + p·MR + i % MR]`, so the kernel reads the MR values of one k
//!   step with consecutive broadcasts.
//! - B̃, the `kc×nc` block of B, becomes NR-wide column panels: element `(p, j)` goes to
//!   `dst[(j / NR)·kc·NR + p·NR + j % NR]`, so the kernel reads one k step as NR/8 ymm.
//!
//! The last panel is zero-padded to a full MR or NR: kernels compute whole panels and
//! discard the padding's results, and zeros keep that work on defined values rather
//! than whatever the workspace held (NaN, say).

use super::{KC, MR, NR};

/// The rows a partial A panel lacks, read as zeros (a block's k never exceeds [`KC`]).
static ZERO_ROW: [f32; KC] = [0.0; KC];

/// Packs the `mc×kc` block of A whose first element is `a[a0]` (strides `rsa`, `csa`)
/// into `dst` as MR-tall panels (see the module doc).
pub(super) fn pack_a(
    mc: usize,
    kc: usize,
    a: &[f32],
    a0: usize,
    rsa: usize,
    csa: usize,
    dst: &mut [f32],
) {
    if rsa == 1 {
        // Column-major A (the weight gradient's dYᵀ): one k step of the block is mc
        // consecutive floats. Walk the block k step by k step, reading each front to
        // back and dealing out MR floats to each panel, as `pack_b_rows` does for B.
        let full = mc / MR;
        for p in 0..kc {
            let step = &a[a0 + p * csa..][..mc];
            for q in 0..full {
                // Fixed size: vector moves, not a `memmove` call per 24 bytes.
                let src: &[f32; MR] = step[q * MR..][..MR].try_into().expect("MR floats");
                dst[q * kc * MR + p * MR..][..MR].copy_from_slice(src);
            }
            if full * MR < mc {
                let out = &mut dst[full * kc * MR + p * MR..][..MR];
                let rows = mc - full * MR;
                out[..rows].copy_from_slice(&step[full * MR..]);
                out[rows..].fill(0.0);
            }
        }
        return;
    }
    let panels = dst[..mc.div_ceil(MR) * MR * kc].chunks_exact_mut(MR * kc);
    for (q, panel) in panels.enumerate() {
        let i0 = q * MR;
        let rows = MR.min(mc - i0);
        if csa == 1 {
            // Row-major A; the last panel's missing rows are zeros.
            pack_a_rows_tiled(
                &core::array::from_fn(|r| {
                    if r < rows { &a[a0 + (i0 + r) * rsa..][..kc] } else { &ZERO_ROW[..kc] }
                }),
                panel,
            );
        } else {
            for (p, step) in panel.chunks_exact_mut(MR).enumerate() {
                for (r, x) in step.iter_mut().enumerate() {
                    *x = if r < rows { a[a0 + (i0 + r) * rsa + p * csa] } else { 0.0 };
                }
            }
        }
    }
}

/// One MR-tall panel of a row-major A: `panel[p·MR + r] = rows[r][p]`, 8 k steps
/// at a time through a stack tile, so that each group is 8-float reads from every row
/// and one contiguous 48-float write, instead of a strided scalar store per element.
/// Measured on the whole (B = 128, L = 20) momentum step, the two packers alternating
/// in one process (20 rounds): 1.008, 1.028 and 1.014× as fast on one thread, 0.994
/// and 1.026 on two, 1.009 at B = 32; `pack_a`'s share of a one-thread profile went
/// from 4.1% to 2.4–2.8%.
fn pack_a_rows_tiled(rows: &[&[f32]; MR], panel: &mut [f32]) {
    let kc = rows[0].len();
    let k8 = kc - kc % 8;
    for (p, out) in (0..k8).step_by(8).zip(panel.chunks_exact_mut(8 * MR)) {
        let mut tile = [[0.0f32; MR]; 8];
        for (r, row) in rows.iter().enumerate() {
            let v: &[f32; 8] = row[p..p + 8].try_into().expect("8 floats");
            for (s, &x) in v.iter().enumerate() {
                tile[s][r] = x;
            }
        }
        for (out, step) in out.chunks_exact_mut(MR).zip(&tile) {
            out.copy_from_slice(step);
        }
    }
    for p in k8..kc {
        for (r, row) in rows.iter().enumerate() {
            panel[p * MR + r] = row[p];
        }
    }
}

/// Packs the `kc×nc` block of B whose first element is `b[b0]` (strides `rsb`, `csb`,
/// any `nc`) into `dst` as NR-wide panels (see the module doc).
pub(super) fn pack_b(
    kc: usize,
    nc: usize,
    b: &[f32],
    b0: usize,
    rsb: usize,
    csb: usize,
    dst: &mut [f32],
) {
    if csb == 1 {
        pack_b_rows(kc, nc, b, b0, rsb, dst);
        return;
    }
    let panels = dst[..nc.div_ceil(NR) * NR * kc].chunks_exact_mut(NR * kc);
    for (q, panel) in panels.enumerate() {
        pack_b_panel(NR.min(nc - q * NR), b, b0 + q * NR * csb, rsb, csb, panel);
    }
}

/// Packs the `kc×nc` block of a row-major B (`csb = 1`, the input gradient's W) whose
/// first element is `b[b0]` into `dst` as NR-wide panels, row by row: each row of the
/// block is read once, front to back (a stream the hardware prefetcher follows), and
/// dealt out NR floats to each panel. Panel by panel instead would step down the rows,
/// 64 bytes from each, a new page almost every k step: measured 1.2–1.4× slower
/// overall at B ≤ 128.
fn pack_b_rows(kc: usize, nc: usize, b: &[f32], b0: usize, rsb: usize, dst: &mut [f32]) {
    let full = nc / NR;
    for p in 0..kc {
        let row = &b[b0 + p * rsb..][..nc];
        for q in 0..full {
            // Fixed size: a few vector moves, not a `memmove` call per 64 bytes (which
            // measured slower than the microkernel itself at B = 32).
            let src: &[f32; NR] = row[q * NR..][..NR].try_into().expect("NR floats");
            dst[q * kc * NR + p * NR..][..NR].copy_from_slice(src);
        }
        if full * NR < nc {
            let step = &mut dst[full * kc * NR + p * NR..][..NR];
            let cols = nc - full * NR;
            step[..cols].copy_from_slice(&row[full * NR..]);
            step[cols..].fill(0.0);
        }
    }
}

/// Packs steps (rows) `p0..p0 + steps` of panels `q0..q0 + dst.len()` of a row-major
/// B (`csb = 1`, first element `b[0]`, row stride `rsb`, `n` columns) into `dst[i]`:
/// panel `q0 + i`'s stretch for those steps, `steps·NR` floats. Walks each row of B
/// front to back across the panels, like `pack_b_rows`.
///
/// Why: a row-major B shared by several threads is packed fastest when each thread
/// takes a band of B's rows (one contiguous stretch of memory); a band of its columns
/// costs as much as the whole row on this machine (measured: packing the left half of
/// each row of a cold 794×794 B took 1.0–1.05× the time of the whole B).
pub(super) fn pack_b_steps(
    n: usize,
    b: &[f32],
    rsb: usize,
    p0: usize,
    steps: usize,
    q0: usize,
    dst: &mut [&mut [f32]],
) {
    for s in 0..steps {
        let row = &b[(p0 + s) * rsb..][..n];
        for (i, panel) in dst.iter_mut().enumerate() {
            let j0 = (q0 + i) * NR;
            let out: &mut [f32; NR] = (&mut panel[s * NR..][..NR]).try_into().expect("NR floats");
            match row.get(j0..j0 + NR) {
                // Fixed size: a few vector moves (see `pack_b_rows`).
                Some(src) => out.copy_from_slice(src),
                None => {
                    let cols = n - j0;
                    out[..cols].copy_from_slice(&row[j0..]);
                    out[cols..].fill(0.0);
                }
            }
        }
    }
}

/// Packs the `kc×cols` panel of a B that is not row-major (`csb ≠ 1`) at `b[b0]`
/// (`cols ≤ NR`) into `panel` (kc·NR floats), zero-padding columns `cols..NR`. Reads
/// each column along k: contiguous when B is column-major (the forward's Wᵀ).
pub(super) fn pack_b_panel(
    cols: usize,
    b: &[f32],
    b0: usize,
    rsb: usize,
    csb: usize,
    panel: &mut [f32],
) {
    for jj in 0..cols {
        let col = b0 + jj * csb;
        for (p, step) in panel.chunks_exact_mut(NR).enumerate() {
            step[jj] = b[col + p * rsb];
        }
    }
    for step in panel.chunks_exact_mut(NR) {
        step[cols..].fill(0.0);
    }
}
