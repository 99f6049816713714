//! The AVX2 builds of the `wide!` kernels (batch-1 GEMM paths, optimizer updates, the
//! fused batch-1 update) give exactly the bits of their baseline builds: the wider
//! registers change the instructions, not the arithmetic. One test function, because
//! `simd::baseline_only` is process-wide.

mod common;

use common::{Rng, pack};
use idmlp_kernels::optim::{UpdateRule, linear_rank1_update};
use idmlp_kernels::{self as kern, Adam, simd};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every wide kernel on random data; the outputs, concatenated.
fn run_all(seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let (k, n) = (37 + rng.below(60), 29 + rng.below(70));
    let mut out = Vec::new();
    let mut pack = pack();
    let a = rng.vec(k, -1.0, 1.0);
    let b_kn = rng.vec(k * n, -1.0, 1.0);
    let mut c = rng.vec(n, -1.0, 1.0);
    kern::gemm_ab(1, k, n, 0.7, &a, &b_kn, 0.5, &mut c, &mut pack); // a·B
    out.extend_from_slice(&c);
    let b_nk = rng.vec(n * k, -1.0, 1.0);
    kern::gemm_abt(1, k, n, 1.3, &a, &b_nk, 0.0, &mut c, &mut pack); // a·Bᵀ
    out.extend_from_slice(&c);
    let bias = rng.vec(n, -1.0, 1.0);
    kern::gemm_abt_bias(1, k, n, 0.6, &a, &b_nk, &bias, &mut c, &mut pack); // a·Bᵀ + bias
    out.extend_from_slice(&c);
    let (col, row) = (rng.vec(k, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
    let mut outer = rng.vec(k * n, -1.0, 1.0);
    kern::gemm_atb(k, 1, n, 0.9, &col, &row, 1.0, &mut outer, &mut pack); // colᵀ·row
    out.extend_from_slice(&outer);

    let len = 1000 + rng.below(100);
    let grads = rng.vec(len, -1.0, 1.0);
    let mut p = rng.vec(len, -1.0, 1.0);
    let (mut m, mut v) = (rng.vec(len, -0.1, 0.1), rng.vec(len, 0.0, 0.1));
    kern::sgd_step(&mut p, &grads, 0.01);
    kern::momentum_step(&mut p, &mut m, &grads, 0.01, 0.9);
    kern::adam_step(&mut p, &mut m, &mut v, &grads, &Adam::default(), 3);
    out.extend([&p[..], &m, &v].concat());

    let adam = UpdateRule::adam(&Adam::default(), 2);
    for rule in [UpdateRule::Sgd { lr: 0.1 }, UpdateRule::Momentum { lr: 0.1, mu: 0.9 }, adam] {
        let moments = rule.moments();
        let mut w = rng.vec(n * k, -1.0, 1.0);
        let mut first = if moments >= 1 { rng.vec(n * k, -0.1, 0.1) } else { vec![] };
        let mut second = if moments >= 2 { rng.vec(n * k, 0.0, 0.1) } else { vec![] };
        let (dy, x) = (rng.vec(n, -1.0, 1.0), rng.vec(k, 0.0, 1.0));
        let mut dx = rng.vec(k, -1.0, 1.0);
        linear_rank1_update(Some(&mut dx), &mut w, &mut first, &mut second, &dy, &x, rule);
        out.extend([&w[..], &first, &second, &dx].concat());
    }
    out
}

#[test]
fn avx2_builds_give_the_baseline_bits() {
    for seed in 0..20 {
        let wide = run_all(seed);
        simd::baseline_only(true);
        let baseline = run_all(seed);
        simd::baseline_only(false);
        assert_eq!(wide.len(), baseline.len());
        assert!(bits(&wide) == bits(&baseline), "seed {seed}: the AVX2 build differs");
    }
}
