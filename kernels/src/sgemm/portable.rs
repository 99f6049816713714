//! The portable microkernel: plain Rust over fixed-size arrays, for CPUs (or `no_std`
//! builds) without AVX2 + FMA. The compiler vectorises the inner `j` loop with the
//! target's baseline SIMD; it computes the full MR×NR tile even at edges (the padding
//! is zeros) and leaves every store to [`store_tile`].

use super::{MR, Micro, NR, Tile, pack, store_tile};

/// The portable kernel family: safe code only.
#[derive(Clone, Copy)]
pub(super) struct Portable;

impl Micro for Portable {
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
        pack::pack_b(kc, nc, b, b0, rsb, csb, dst);
    }

    fn tile(self, t: Tile, a: &[f32], b: &[f32], c: &mut [f32]) {
        let mut acc = [[0.0f32; NR]; MR];
        let steps = a[..t.kc * MR].chunks_exact(MR).zip(b[..t.kc * NR].chunks_exact(NR));
        for (a_step, b_step) in steps {
            // Fixed-size views: the loops below unroll and vectorise without bounds checks.
            let a_step: &[f32; MR] = a_step.try_into().expect("chunk of MR");
            let b_step: &[f32; NR] = b_step.try_into().expect("chunk of NR");
            for (acc_row, &ai) in acc.iter_mut().zip(a_step) {
                for (x, &bj) in acc_row.iter_mut().zip(b_step) {
                    *x += ai * bj;
                }
            }
        }
        for x in acc.iter_mut().flatten() {
            *x *= t.alpha;
        }
        store_tile(&t, &acc, c);
    }
}
