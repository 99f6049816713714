//! Data-path benchmarks: IDX header parsing, and mini-batch conversion (u8 → f32 / 255
//! into a reused buffer) in shuffled and file order. Batch throughput is reported in
//! bytes of u8 pixels read, so criterion prints GB/s.
//!
//! `cargo bench --bench idx -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::num::NonZeroUsize;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use idmlp::data::{BatchStream, Dataset, LastBatch, SequentialBatches, Split, epoch_order};
use idmlp::idx::{self, IdxFile};

const MNIST_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-sample");

/// Batch sizes measured: a typical SGD batch and a large evaluation batch.
const BATCH_SIZES: [usize; 2] = [100, 1000];

/// The MNIST sample's training split (8000 × 28 × 28); if it cannot be read (no `gz`
/// feature, no sample), generated data of the same shape.
fn data() -> Dataset {
    Dataset::load(MNIST_SAMPLE, Split::Train).unwrap_or_else(|e| {
        eprintln!("note: {e}; benchmarking generated 8000 × 28 × 28 data instead");
        let (n, side) = (8000u32, 28u32);
        let mut images = vec![0, 0, 8, 3];
        for d in [n, side, side] {
            images.extend_from_slice(&d.to_be_bytes());
        }
        images.extend((0..n * side * side).map(|k| (k.wrapping_mul(2_654_435_761) >> 24) as u8));
        let mut labels = vec![0, 0, 8, 1];
        labels.extend_from_slice(&n.to_be_bytes());
        labels.extend((0..n).map(|k| (k % 10) as u8));
        Dataset::from_files(
            IdxFile::from_raw_bytes("generated-images", images).unwrap(),
            IdxFile::from_raw_bytes("generated-labels", labels).unwrap(),
            10,
        )
        .unwrap()
    })
}

fn parse(c: &mut Criterion) {
    let data = data();
    let bytes = data.images_file().bytes();
    let mut group = c.benchmark_group("idx");
    group.bench_function("parse_header", |b| b.iter(|| idx::parse_header(black_box(&bytes[..16]))));
    group.bench_function("parse_whole_file", |b| {
        b.iter(|| idx::parse(black_box(bytes)).map(|v| v.len()))
    });
    group.finish();
}

fn batches(c: &mut Criterion) {
    let data = data();
    let d = data.pixels();
    let mut group = c.benchmark_group("batch");
    for b in BATCH_SIZES {
        let nz = NonZeroUsize::new(b).unwrap();
        group.throughput(Throughput::Bytes((b * d) as u64));
        let (mut x, mut y) = (vec![0.0f32; b * d], vec![0u32; b]);

        // Epoch boundaries are inside the loop (one `None` and a reshuffle per epoch),
        // as in training; the boundary call converts nothing, so the rate is slightly
        // understated.
        let mut stream = BatchStream::new(&data, nz, LastBatch::Drop, 1);
        group.bench_function(BenchmarkId::new("shuffled", b), |bench| {
            bench.iter(|| stream.next_batch(black_box(&mut x), black_box(&mut y)))
        });

        let mut seq = SequentialBatches::new(&data, nz);
        group.bench_function(BenchmarkId::new("sequential", b), |bench| {
            bench.iter(|| {
                if seq.next_batch(black_box(&mut x), black_box(&mut y)).is_none() {
                    seq.reset();
                }
            })
        });
    }
    group.finish();
}

/// The once-per-epoch cost: the 2^128-step jump plus a Fisher–Yates over 60,000.
fn reshuffle(c: &mut Criterion) {
    let mut order = vec![0u32; 60_000];
    let mut epoch = 1;
    let mut group = c.benchmark_group("epoch_order");
    group.throughput(Throughput::Elements(order.len() as u64));
    group.bench_function("60000", |b| {
        b.iter(|| {
            epoch += 1;
            epoch_order(7, black_box(epoch), &mut order)
        })
    });
    group.finish();
}

criterion_group!(benches, parse, batches, reshuffle);
criterion_main!(benches);
