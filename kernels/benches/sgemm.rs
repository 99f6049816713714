//! Our packed `sgemm` against `matrixmultiply::sgemm` on the three GEMMs of a linear
//! layer `Y = X·Wᵀ` (D = 794, B ∈ {32, 128, 512}), single-threaded, same strides,
//! `β = 0`, throughput in FLOPs (2·m·k·n): criterion's `elem/s` reads as FLOP/s.
//!
//! ```text
//! cargo bench -p idmlp-kernels --bench sgemm -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The machine is shared and noisy, and criterion times one function for seconds
//! before it starts the other, so a load change in between skews their ratio. After
//! the criterion groups, this bench therefore also prints a *paired* table: the two
//! implementations alternate in short bursts, and the ratio is the median over bursts
//! of (their time ÷ ours), which cancels load that drifts slower than a burst. A
//! criterion filter argument (e.g. `forward`) also filters that table. Where `sgemm`
//! runs the AVX-512 kernel, the table also times it forced onto the AVX2 kernel (same
//! bits), so the two kernels' ratio is read off the same bursts.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use idmlp_kernels::sgemm::{Kernel, PACK_LEN, sgemm, sgemm_kernel_name, sgemm_on};

/// Hidden width of the model: d + C = 784 + 10.
const D: usize = 794;
const BATCHES: [usize; 3] = [32, 128, 512];

/// Bursts per shape in the paired table, and the work per burst (≈ 0.1 GFLOP: a few
/// milliseconds, short next to load changes, long next to the timer).
const PAIRED_BURSTS: usize = 31;
const BURST_FLOPS: u64 = 100_000_000;

/// One GEMM: `C (m×n, row-major) ← A·B`, operands addressed by (row, column) strides.
struct Shape {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    a: (usize, usize),
    b: (usize, usize),
}

/// The three GEMMs of `Y = X·Wᵀ` at batch `bsz`, with the strides the tape uses.
fn shapes(bsz: usize) -> [Shape; 3] {
    [
        // Y = X·Wᵀ: X (B, D) row-major, W (D, D) row-major read transposed.
        Shape { name: "forward", m: bsz, k: D, n: D, a: (D, 1), b: (1, D) },
        // dX = dY·W.
        Shape { name: "input_grad", m: bsz, k: D, n: D, a: (D, 1), b: (D, 1) },
        // dW = dYᵀ·X: dY (B, D) read transposed.
        Shape { name: "weight_grad", m: D, k: bsz, n: D, a: (1, D), b: (D, 1) },
    ]
}

/// FLOPs of one call: a multiply and an add per term.
fn flops(s: &Shape) -> u64 {
    2 * (s.m * s.k * s.n) as u64
}

/// Deterministic values in [-1, 1) without a dependency (SplitMix-style hash).
fn data(len: usize, seed: u64) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            let mut z = (i ^ (seed << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Inputs and output of one shape, allocated once, outside any timing.
struct Operands {
    a: Vec<f32>,
    b: Vec<f32>,
    out: Vec<f32>,
}

impl Operands {
    fn new(s: &Shape) -> Self {
        Operands { a: data(s.m * s.k, 1), b: data(s.k * s.n, 2), out: vec![0.0; s.m * s.n] }
    }
}

fn run_ours(s: &Shape, x: &mut Operands, pack: &mut [f32]) {
    #[rustfmt::skip]
    sgemm(
        s.m, s.k, s.n,
        1.0,
        black_box(&x.a), s.a.0, s.a.1,
        black_box(&x.b), s.b.0, s.b.1,
        0.0,
        &mut x.out, s.n, 1,
        pack,
    );
    black_box(&mut x.out);
}

/// [`run_ours`] forced onto the AVX2 kernel.
fn run_avx2(s: &Shape, x: &mut Operands, pack: &mut [f32]) {
    #[rustfmt::skip]
    sgemm_on(
        Kernel::Avx2, s.m, s.k, s.n,
        1.0,
        (black_box(&x.a), s.a.0, s.a.1),
        (black_box(&x.b), s.b.0, s.b.1),
        0.0, None,
        (&mut x.out, s.n, 1),
        pack,
    );
    black_box(&mut x.out);
}

fn run_matrixmultiply(s: &Shape, x: &mut Operands) {
    #[allow(unsafe_code)]
    // SAFETY: `a` is m×k, `b` is k×n and `out` is m×n, each a Vec of exactly that many
    // elements, and the strides describe exactly those dense (row-major or
    // transposed) layouts; `out` is borrowed uniquely.
    unsafe {
        #[rustfmt::skip]
        matrixmultiply::sgemm(
            s.m, s.k, s.n,
            1.0,
            black_box(&x.a).as_ptr(), s.a.0 as isize, s.a.1 as isize,
            black_box(&x.b).as_ptr(), s.b.0 as isize, s.b.1 as isize,
            0.0,
            x.out.as_mut_ptr(), s.n as isize, 1,
        );
    }
    black_box(&mut x.out);
}

fn bench_sgemm(c: &mut Criterion, pack: &mut [f32]) {
    for bsz in BATCHES {
        for s in shapes(bsz) {
            let mut x = Operands::new(&s);
            let mut group = c.benchmark_group(format!("sgemm/{}/B={bsz}", s.name));
            group.throughput(Throughput::Elements(flops(&s)));
            group.bench_function(BenchmarkId::from_parameter("ours"), |bench| {
                bench.iter(|| run_ours(&s, &mut x, pack));
            });
            group.bench_function(BenchmarkId::from_parameter("matrixmultiply"), |bench| {
                bench.iter(|| run_matrixmultiply(&s, &mut x));
            });
            group.finish();
        }
    }
}

/// Median of a non-empty sample.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The paired table (see the file doc): for each shape, median GFLOP/s of each and the
/// median over bursts of the per-burst speed ratio ours ÷ matrixmultiply (and ours ÷
/// our AVX2 kernel, where `sgemm` runs another).
fn paired_table(filter: Option<&str>, pack: &mut [f32]) {
    let with_avx2 = Kernel::best() != Kernel::Avx2 && Kernel::Avx2.available();
    println!("\npaired, interleaved ({PAIRED_BURSTS} bursts per shape, medians):");
    print!("{:<24} {:>12} {:>16} {:>7}", "shape", "ours GF/s", "matrixmul. GF/s", "ratio");
    if with_avx2 {
        print!(" {:>10} {:>12}", "avx2 GF/s", "ours ÷ avx2");
    }
    println!();
    for bsz in BATCHES {
        for s in shapes(bsz) {
            let label = format!("sgemm/{}/B={bsz}", s.name);
            if filter.is_some_and(|f| !label.contains(f)) {
                continue;
            }
            let mut x = Operands::new(&s);
            let calls = BURST_FLOPS.div_ceil(flops(&s)).max(1) as usize;
            // Seconds per call of each contender, per burst: ours, matrixmultiply, AVX2.
            let mut times: [Vec<f64>; 3] = Default::default();
            let contenders = if with_avx2 { 3 } else { 2 };
            // Burst 0 warms caches and is dropped; the order rotates so that no side
            // always runs on another's cache leftovers.
            for burst in 0..=PAIRED_BURSTS {
                for turn in 0..contenders {
                    let who = (burst + turn) % contenders;
                    let t = Instant::now();
                    for _ in 0..calls {
                        match who {
                            0 => run_ours(&s, &mut x, pack),
                            1 => run_matrixmultiply(&s, &mut x),
                            _ => run_avx2(&s, &mut x, pack),
                        }
                    }
                    if burst > 0 {
                        times[who].push(t.elapsed().as_secs_f64() / calls as f64);
                    }
                }
            }
            let gflops = |t: &[f64]| median(t.iter().map(|t| flops(&s) as f64 / t / 1e9).collect());
            let ratio =
                |them: &[f64]| median(them.iter().zip(&times[0]).map(|(t, o)| t / o).collect());
            let (o, t, r) = (gflops(&times[0]), gflops(&times[1]), ratio(&times[1]));
            print!("{label:<24} {o:>12.1} {t:>16.1} {r:>7.2}");
            if with_avx2 {
                print!(" {:>10.1} {:>12.2}", gflops(&times[2]), ratio(&times[2]));
            }
            println!();
        }
    }
}

fn main() {
    eprintln!("sgemm microkernel: {}", sgemm_kernel_name());
    let mut pack = vec![0.0f32; PACK_LEN];
    let mut criterion = Criterion::default().configure_from_args();
    bench_sgemm(&mut criterion, &mut pack);
    criterion.final_summary();
    // Only under `cargo bench` (which passes `--bench`), not `cargo test --benches`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--bench") {
        // Criterion's positional filter, if any: the first argument not an option or
        // an option's value (the options used with this bench all take one value).
        let mut filter = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--bench" {
                continue;
            } else if arg.starts_with("--") {
                it.next();
            } else {
                filter = Some(arg.as_str());
                break;
            }
        }
        paired_table(filter, &mut pack);
    }
}
