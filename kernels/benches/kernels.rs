//! Kernel benches at the model's shapes (DESIGN.md §6): the three GEMMs of one layer at
//! D = 794 for B ∈ {1, 32, 128}, relu forward / backward and softmax cross-entropy.
//!
//! GEMM throughput is set in flops, so criterion's `elem/s` reads as FLOP/s
//! (`Gelem/s` = GFLOP/s). The other kernels count elements. Buffers are built outside
//! the timed closure; inputs pass through `black_box`.
//!
//! `cargo bench -p idmlp-kernels --bench kernels -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use idmlp_kernels::{self as kern, ReluGradAtZero};

/// Hidden width `D = d + C` and classes `C` of the MNIST model.
const D: usize = 794;
const C: usize = 10;

/// One layer's products `Y = X·Wᵀ`, `dX = dY·W`, `dW = dYᵀ·X` and their wrappers.
#[derive(Clone, Copy)]
enum Product {
    /// `Y ← X·Wᵀ + Y`: `gemm_abt`, m = B, k = D, n = D; β = 1 folds in the broadcast bias.
    Forward,
    /// `dX ← dY·W + dX`: `gemm_ab`, m = B, k = D, n = D; β = 1, backward accumulates.
    InputGrad,
    /// `dW ← dYᵀ·X + β·dW`: `gemm_atb`, m = D, k = B, n = D.
    WeightGrad,
}

/// `(product, B, β)`: the shapes follow from the product and the batch B.
/// The weight gradient runs with β = 0 and β = 1: DESIGN.md §6 measured β = 1 as
/// 10–15% slower with matrixmultiply, which decides whether the update is fused.
#[rustfmt::skip]
const GEMMS: [(Product, usize, f32); 12] = [
    (Product::Forward, 1, 1.0),   (Product::InputGrad, 1, 1.0),
    (Product::WeightGrad, 1, 0.0),   (Product::WeightGrad, 1, 1.0),
    (Product::Forward, 32, 1.0),  (Product::InputGrad, 32, 1.0),
    (Product::WeightGrad, 32, 0.0),  (Product::WeightGrad, 32, 1.0),
    (Product::Forward, 128, 1.0), (Product::InputGrad, 128, 1.0),
    (Product::WeightGrad, 128, 0.0), (Product::WeightGrad, 128, 1.0),
];

impl Product {
    fn name(self) -> &'static str {
        match self {
            Product::Forward => "forward_abt",
            Product::InputGrad => "input_grad_ab",
            Product::WeightGrad => "weight_grad_atb",
        }
    }

    /// `(m, k, n)` at batch `b`.
    fn shape(self, b: usize) -> (usize, usize, usize) {
        match self {
            Product::Forward | Product::InputGrad => (b, D, D),
            Product::WeightGrad => (D, b, D),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        self,
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
        pack: &mut [f32],
    ) {
        match self {
            Product::Forward => kern::gemm_abt(m, k, n, 1.0, a, b, beta, c, pack),
            Product::InputGrad => kern::gemm_ab(m, k, n, 1.0, a, b, beta, c, pack),
            Product::WeightGrad => kern::gemm_atb(m, k, n, 1.0, a, b, beta, c, pack),
        }
    }
}

/// Floating-point operations of an m×k by k×n product: one multiply and one add per
/// term (the α and β scalings are O(m·n) and not counted).
fn flops(m: usize, k: usize, n: usize) -> u64 {
    2 * (m * k * n) as u64
}

/// `len` values in [−1, 1) from a fixed LCG: deterministic, and no denormals or zeros
/// that could make one run faster than another.
fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    for &(product, batch, beta) in &GEMMS {
        let (m, k, n) = product.shape(batch);
        // Operand storage: A is m×k (k×m for Aᵀ), B is k×n (n×k for Bᵀ); same sizes.
        let a = data(m * k, 1);
        let b = data(k * n, 2);
        let mut out = data(m * n, 3);
        group.throughput(Throughput::Elements(flops(m, k, n)));
        let id = BenchmarkId::new(product.name(), format!("B={batch}/beta={beta}"));
        group.bench_function(id, |bench| {
            let mut pack = vec![0.0; kern::sgemm::PACK_LEN];
            bench.iter(|| {
                product.run(m, k, n, black_box(&a), black_box(&b), beta, &mut out, &mut pack)
            });
        });
    }
    group.finish();
}

fn relu(c: &mut Criterion) {
    let (rows, cols, features) = (128, D, D - C);
    let a = data(rows * cols, 4);
    let dh = data(rows * cols, 5);
    let mut h = vec![0.0; rows * cols];
    let mut da = vec![0.0; rows * cols];
    let mut group = c.benchmark_group("relu");
    group.throughput(Throughput::Elements((rows * cols) as u64));
    group.bench_function(BenchmarkId::new("forward", format!("{rows}x{cols}")), |bench| {
        bench.iter(|| kern::relu_forward(&mut h, black_box(&a), rows, cols, 0..features));
    });
    group.bench_function(BenchmarkId::new("backward", format!("{rows}x{cols}")), |bench| {
        bench.iter(|| {
            kern::relu_backward(
                &mut da,
                black_box(&dh),
                black_box(&a),
                rows,
                cols,
                0..features,
                ReluGradAtZero::One,
            );
        });
    });
    group.finish();
}

fn softmax_xent(c: &mut Criterion) {
    let (rows, cols) = (128, C);
    let z = data(rows * cols, 6);
    let labels: Vec<u32> = (0..rows as u32).map(|r| r % cols as u32).collect();
    let mut p = vec![0.0; rows * cols];
    let mut dz = vec![0.0; rows * cols];
    let mut group = c.benchmark_group("softmax_xent");
    group.throughput(Throughput::Elements((rows * cols) as u64));
    group.bench_function(BenchmarkId::new("forward", format!("{rows}x{cols}")), |bench| {
        bench.iter(|| kern::softmax_xent_forward(&mut p, black_box(&z), &labels, rows, cols));
    });
    kern::softmax_xent_forward(&mut p, &z, &labels, rows, cols);
    group.bench_function(BenchmarkId::new("backward", format!("{rows}x{cols}")), |bench| {
        bench
            .iter(|| kern::softmax_xent_backward(&mut dz, black_box(&p), &labels, rows, cols, 1.0));
    });
    group.finish();
}

criterion_group!(benches, gemm, relu, softmax_xent);
criterion_main!(benches);
