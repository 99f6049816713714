//! DESIGN.md §1, the relu′(0) trap: the paper's literal model (relu on every dim) at
//! identity init cannot learn with relu′(0) = 0, learns with relu′(0) = 1, and our
//! model (linear class dims) learns too.
//!
//! The task: x ∈ [0, 1]⁴, label = argmax(x[0..3]) (3 classes). A linear readout of
//! the input solves it, so any model that gets gradient to its class rows learns it.

use idmlp::mlp::{Architecture, ClassActivation, Init, Mlp};
use idmlp::tape::{ReluGradAtZero, Tape};
use idmlp_kernels::{argmax, sgd_step};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const D_IN: usize = 4;
const CLASSES: usize = 3;
const BATCH: usize = 32;

fn batch(rng: &mut Xoshiro256PlusPlus) -> (Vec<f32>, Vec<u32>) {
    let x: Vec<f32> = (0..BATCH * D_IN).map(|_| rng.random_range(0.0..1.0)).collect();
    let y = x.chunks_exact(D_IN).map(|row| argmax(&row[..CLASSES]) as u32).collect();
    (x, y)
}

struct Run {
    losses: Vec<f32>,
    max_abs_grad: f32,
    accuracy: f32,
}

/// Trains `steps` SGD steps (lr 0.5) on fresh batches, then measures accuracy on a
/// held-out batch of 1,000.
fn train(class_activation: ClassActivation, at_zero: ReluGradAtZero, steps: usize) -> Run {
    let arch = Architecture {
        class_activation,
        relu_grad_at_zero: at_zero,
        ..Architecture::new(D_IN, CLASSES, 3)
    };
    let mut mlp = Mlp::new(arch, Init::default(), 0);
    let mut grads = vec![0.0f32; mlp.params.len()];
    let mut tape = Tape::new();
    let mut hidden = Vec::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    let mut run = Run { losses: Vec::new(), max_abs_grad: 0.0, accuracy: 0.0 };
    for _ in 0..steps {
        let (x, y) = batch(&mut rng);
        grads.fill(0.0);
        let mut g = tape.graph(&mlp.params);
        let x = g.input(&x, BATCH, D_IN);
        let logits = arch.forward(&mut g, x, &mut hidden);
        let loss = g.softmax_xent(logits, &y);
        run.losses.push(g.scalar(loss));
        g.backward(loss, &mut grads);
        run.max_abs_grad = grads.iter().fold(run.max_abs_grad, |m, g| m.max(g.abs()));
        sgd_step(&mut mlp.params, &grads, 0.5);
    }
    let test_x: Vec<f32> = (0..1000 * D_IN).map(|_| rng.random_range(0.0..1.0)).collect();
    let mut g = tape.inference(&mlp.params);
    let x = g.input(&test_x, 1000, D_IN);
    let logits = arch.forward(&mut g, x, &mut hidden);
    let correct = g
        .value(logits)
        .chunks_exact(CLASSES)
        .zip(test_x.chunks_exact(D_IN))
        .filter(|(z, x)| argmax(z) == argmax(&x[..CLASSES]))
        .count();
    run.accuracy = correct as f32 / 1000.0;
    run
}

#[test]
fn literal_model_with_relu_grad_zero_stalls_at_ln_c() {
    let run = train(ClassActivation::Relu, ReluGradAtZero::Zero, 100);
    let ln_c = (CLASSES as f32).ln();
    // Every class logit is exactly 0 at identity init, and relu′(0) = 0 blocks the only
    // path a gradient could take: nothing moves, ever.
    assert_eq!(run.max_abs_grad, 0.0, "some gradient leaked through");
    for (step, &loss) in run.losses.iter().enumerate() {
        assert!((loss - ln_c).abs() < 1e-6, "step {step}: loss {loss} moved off ln C = {ln_c}");
    }
}

#[test]
fn literal_model_with_relu_grad_one_learns() {
    let run = train(ClassActivation::Relu, ReluGradAtZero::One, 1500);
    let last = run.losses[run.losses.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(last < 0.5 * (CLASSES as f32).ln(), "final loss {last}");
    assert!(run.accuracy > 0.85, "accuracy {} (chance: 0.33)", run.accuracy);
}

#[test]
fn our_model_with_linear_class_dims_learns() {
    for at_zero in [ReluGradAtZero::One, ReluGradAtZero::Zero] {
        let run = train(ClassActivation::Linear, at_zero, 1500);
        let last = run.losses[run.losses.len() - 10..].iter().sum::<f32>() / 10.0;
        assert!(last < 0.5 * (CLASSES as f32).ln(), "{at_zero:?}: final loss {last}");
        assert!(run.accuracy > 0.85, "{at_zero:?}: accuracy {} (chance: 0.33)", run.accuracy);
    }
}
