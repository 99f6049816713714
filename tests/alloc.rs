//! Steady state allocates nothing: after the first step, a training step (forward,
//! backward, reset, optimizer update) and an interpretation batch make zero heap
//! allocations.
//!
//! The counting global allocator (tests/common) counts this thread's allocations only,
//! so the test harness's own threads cannot disturb the count.

use idmlp::interpret::{Interpreter, LayerMetrics};
use idmlp::mlp::{Architecture, Init, Mlp};
use idmlp::optim::OptimizerKind;
use idmlp::tape::Tape;
use idmlp::train::Trainer;
use idmlp_kernels::sgd_step;

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

use common::allocations as allocated;

#[test]
fn training_steps_after_the_first_allocate_nothing() {
    let arch = Architecture::new(12, 4, 2);
    let mut mlp = Mlp::new(arch, Init::default(), 0);
    let mut grads = vec![0.0f32; mlp.params.len()];
    let batch = 8;
    let x: Vec<f32> = (0..batch * arch.inputs).map(|i| (i % 7) as f32 / 7.0).collect();
    let y: Vec<u32> = (0..batch as u32).map(|i| i % 4).collect();
    let mut tape = Tape::new();
    let mut hidden = Vec::new();
    let mut step = |tape: &mut Tape, hidden: &mut Vec<_>, params: &mut Vec<f32>| {
        grads.fill(0.0);
        let mut g = tape.graph(params);
        let xn = g.input(&x, batch, arch.inputs);
        let logits = arch.forward(&mut g, xn, hidden);
        let loss = g.softmax_xent(logits, &y);
        g.backward(loss, &mut grads);
        sgd_step(params, &grads, 0.1);
        tape.reset();
    };
    step(&mut tape, &mut hidden, &mut mlp.params);
    let before = allocated();
    for _ in 0..5 {
        step(&mut tape, &mut hidden, &mut mlp.params);
    }
    let after = allocated();
    assert_eq!(after, before, "(allocations, bytes) grew during steady-state steps");
    // The counter works: a fresh tape does allocate on its first pass.
    let mut fresh = Tape::new();
    step(&mut fresh, &mut hidden, &mut mlp.params);
    assert!(allocated().0 > after.0, "the counting allocator saw nothing");
}

/// SGD and momentum at `lr`, and Adam at its defaults.
fn every_optimizer(lr: f32) -> [OptimizerKind; 3] {
    [
        OptimizerKind::Sgd { lr },
        OptimizerKind::Momentum { lr, mu: 0.9 },
        OptimizerKind::Adam(Default::default()),
    ]
}

/// A fresh trainer for `arch` with `kind` on `threads` threads takes one step on a
/// generated batch of `batch` images, then three more that must allocate nothing.
#[track_caller]
fn assert_steady_steps_allocate_nothing(
    arch: Architecture,
    kind: OptimizerKind,
    threads: usize,
    batch: usize,
) {
    let x: Vec<f32> = (0..batch * arch.inputs).map(|i| (i % 5) as f32 / 5.0).collect();
    let y: Vec<u32> = (0..batch).map(|i| (i % arch.classes) as u32).collect();
    let mut trainer = Trainer::new(Mlp::new(arch, Init::default(), 0), kind).with_threads(threads);
    trainer.step(&x, &y);
    let before = allocated();
    for _ in 0..3 {
        trainer.step(&x, &y);
    }
    assert_eq!(
        allocated(),
        before,
        "{kind:?}, {threads} threads, batch {batch}: a steady-state step allocated"
    );
}

#[test]
fn trainer_steps_allocate_nothing_for_every_optimizer() {
    for kind in every_optimizer(0.1) {
        assert_steady_steps_allocate_nothing(Architecture::new(12, 4, 3), kind, 1, 8);
    }
}

/// With worker threads (spawned once, in `with_threads`) and at batch 1 (the fused
/// backward-and-update path), steps after the first allocate nothing either. The
/// counter sees this thread only, so the workers' own allocations would be missed:
/// they make none per step by construction (parked on a condition variable, handed a
/// borrowed job), and the process-wide count of `idmlp bench --threads 2` checks it.
#[test]
fn trainer_steps_allocate_nothing_with_two_threads_and_at_batch_one() {
    // D = 80 and B = 24 so that the GEMMs are big enough to be split; D = 528 so that
    // the batch-1 sweeps are (D² ≥ 2¹⁸ multiply-adds: forward by rows of W, the
    // moments streamed by a worker).
    let small = Architecture::new(72, 8, 3);
    let wide = Architecture::new(520, 8, 2);
    for (arch, threads, batch) in [(small, 2, 24), (small, 2, 1), (small, 1, 1), (wide, 2, 1)] {
        for kind in every_optimizer(0.1) {
            assert_steady_steps_allocate_nothing(arch, kind, threads, batch);
        }
    }
}

/// Issue 5's grid at MNIST's width (D = 794): every batch size (1 is the fused
/// sweep, 32 to 128 the striped weight gradient, 512 past one GEMM k block and so
/// the unfused path), every optimizer, 1 and 2 threads. Two layers: the number of
/// layers only repeats the same ops (`scripts/alloc-grid.sh` runs the whole grid, L up
/// to 50, through `idmlp bench`, which counts every thread's allocations).
#[test]
fn trainer_steps_allocate_nothing_across_the_benchmark_grid_at_mnist_width() {
    let arch = Architecture::new(784, 10, 2);
    for batch in [1, 32, 100, 128, 512] {
        for threads in [1, 2] {
            for kind in every_optimizer(0.01) {
                assert_steady_steps_allocate_nothing(arch, kind, threads, batch);
            }
        }
    }
}

#[test]
fn interpretation_batches_after_the_first_allocate_nothing() {
    let arch = Architecture::new(12, 4, 3);
    let mlp = Mlp::new(arch, Init::default(), 0);
    let x: Vec<f32> = (0..8 * 12).map(|i| (i % 5) as f32 / 5.0).collect();
    let y: Vec<u32> = (0..8).map(|i| i % 4).collect();
    let mut interpreter = Interpreter::new();
    let mut metrics = LayerMetrics::new(arch.layers);
    let (mut map, mut p, mut cc) = (vec![0.0; 12], vec![0.0; 4], vec![0.0; 12]);
    let mut batch = |interpreter: &mut Interpreter, metrics: &mut LayerMetrics| {
        let view = interpreter.run(&arch, &mlp.params, &x);
        view.accumulate(&y, metrics);
        for l in 1..=arch.layers {
            let layer = view.layer(l);
            layer.contribution_map(0, &mut map);
            layer.likelihood(0, &mut p);
            layer.class_contribution(0, 1, &mut cc);
        }
    };
    batch(&mut interpreter, &mut metrics);
    let before = allocated();
    for _ in 0..3 {
        batch(&mut interpreter, &mut metrics);
    }
    assert_eq!(allocated(), before, "an interpretation batch allocated");
    assert_eq!(metrics.samples, 32);
}
