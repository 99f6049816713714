//! Central-difference gradient checks: every tape op alone, the composite
//! augmented identity MLP, and the checker itself (it must catch a wrong rule and
//! must not pass points at a relu kink).
//!
//! Tolerance: `GradCheck::default()` (h = 1e-3, rtol = 1e-2, atol = 1e-3). The losses
//! here are O(1) means; f32 rounding of an O(1) loss is ~1e-7·√n, which the difference
//! quotient magnifies by 1/(2h) = 500 to ~1e-4 absolute, and the O(h²) truncation error
//! of a smooth O(1) function is ~1e-6. atol = 1e-3 sits 10× above that noise, and a
//! wrong rule (a missing term, a transposed product) is off by O(1) relative error.

use idmlp::gradcheck::{GradCheck, Sample};
use idmlp::mlp::{Architecture, ClassActivation, Init, Mlp};
use idmlp::tape::{Graph, Node, ReluGradAtZero, Tape};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Reduces any node to a scalar with fixed random weights `r`: `f = Σ out ⊙ r`,
/// so `∂f/∂out = r` exercises every output element with a different weight.
fn project(g: &mut Graph<'_>, out: Node, seed: u64) -> Node {
    let r = uniform(out.len(), -1.0, 1.0, seed);
    let r = g.input(&r, out.rows(), out.cols());
    g.sum_product(out, r)
}

fn check(
    params: &mut [f32],
    inputs: &[(&str, std::ops::Range<usize>)],
    f: impl FnMut(&mut Graph<'_>) -> Node,
) {
    let report = GradCheck::default().run(params, inputs, f);
    report.assert_ok();
    assert_eq!(report.unchecked, 0, "a smooth op had unchecked points:\n{report}");
}

#[test]
fn matmul_t_gradient_wrt_both_operands() {
    // f(x, w) = Σ (x·wᵀ) ⊙ r  ⇒  ∂f/∂x = r·w,  ∂f/∂w = rᵀ·x
    let (b, k, n) = (3, 5, 4);
    let mut params = uniform(b * k + n * k, -1.0, 1.0, 1);
    check(&mut params, &[("x", 0..b * k), ("w", b * k..b * k + n * k)], |g| {
        let x = g.param(0, b, k);
        let w = g.param(b * k, n, k);
        let out = g.matmul_t(x, w);
        project(g, out, 11)
    });
}

#[test]
fn add_bias_gradient() {
    // f(a, b) = Σ (a + 1·b) ⊙ r  ⇒  ∂f/∂a = r,  ∂f/∂b = column sums of r
    let (rows, cols) = (4, 3);
    let mut params = uniform(rows * cols + cols, -1.0, 1.0, 2);
    check(&mut params, &[("a", 0..12), ("b", 12..15)], |g| {
        let a = g.param(0, rows, cols);
        let b = g.param(rows * cols, 1, cols);
        let out = g.add_bias(a, b);
        project(g, out, 12)
    });
}

#[test]
fn linear_gradient_wrt_input_weight_and_bias() {
    // f = Σ (x·wᵀ + b) ⊙ r
    let (b, k, n) = (2, 4, 3);
    let (wx, ww) = (b * k, n * k);
    let mut params = uniform(wx + ww + n, -1.0, 1.0, 3);
    check(&mut params, &[("x", 0..wx), ("w", wx..wx + ww), ("b", wx + ww..wx + ww + n)], |g| {
        let x = g.param(0, b, k);
        let w = g.param(wx, n, k);
        let bias = g.param(wx + ww, 1, n);
        let out = g.linear(x, w, bias);
        project(g, out, 13)
    });
}

#[test]
fn relu_gradient_away_from_the_kink() {
    // f(a) = Σ relu_cols(a) ⊙ r; values kept ≥ 0.1 away from 0 so no step crosses the kink.
    let (rows, cols) = (3, 6);
    let mut params = uniform(rows * cols, 0.1, 1.0, 4);
    for (i, v) in params.iter_mut().enumerate() {
        if i % 2 == 0 {
            *v = -*v;
        }
    }
    for at_zero in [ReluGradAtZero::One, ReluGradAtZero::Zero] {
        check(&mut params, &[("a", 0..rows * cols)], |g| {
            let a = g.param(0, rows, cols);
            let out = g.relu(a, 1..4, at_zero);
            project(g, out, 14)
        });
    }
}

#[test]
fn pad_and_select_cols_gradient() {
    // f = Σ select(pad(x))⊙r: pad adds zero columns, select picks a window across both.
    let (rows, cols) = (3, 4);
    let mut params = uniform(rows * cols, -1.0, 1.0, 5);
    check(&mut params, &[("x", 0..rows * cols)], |g| {
        let x = g.param(0, rows, cols);
        let padded = g.pad_cols(x, 7);
        let window = g.select_cols(padded, 2..6);
        project(g, window, 15)
    });
}

#[test]
fn softmax_xent_gradient() {
    // f(z) = mean_r (log Σ exp z_r − z_r[y_r])  ⇒  ∂f/∂z = (softmax(z) − onehot(y)) / B
    let (rows, cols) = (4, 5);
    let mut params = uniform(rows * cols, -3.0, 3.0, 6);
    check(&mut params, &[("z", 0..rows * cols)], |g| {
        let z = g.param(0, rows, cols);
        g.softmax_xent(z, &[0, 4, 2, 2])
    });
}

#[test]
fn sum_product_gradient_including_a_node_used_twice() {
    // f(x) = Σ x ⊙ x  ⇒  ∂f/∂x = 2x: both rules accumulate into one gradient.
    let mut params = uniform(6, -1.0, 1.0, 7);
    check(&mut params, &[("x", 0..6)], |g| {
        let x = g.param(0, 2, 3);
        g.sum_product(x, x)
    });
}

/// Identity plus noise: the regime training moves into, with no exact zeros.
fn perturbed_identity_mlp(arch: Architecture, seed: u64) -> Mlp {
    let mut mlp = Mlp::new(arch, Init::Identity { scale: 1.0 }, seed);
    let noise = uniform(mlp.params.len(), -0.1, 0.1, seed + 100);
    mlp.params.iter_mut().zip(noise).for_each(|(p, n)| *p += n);
    mlp
}

#[test]
fn composite_three_layer_augmented_identity_mlp() {
    // d = 6, C = 3, L = 3: loss(θ) = mean xent(h_3[.., 6..9], y) through linear, relu
    // on the feature dims, and linear class dims. Every W, b and the input is checked.
    let arch = Architecture::new(6, 3, 3);
    let mlp = perturbed_identity_mlp(arch, 8);
    let batch = 5;
    let x = uniform(batch * arch.inputs, 0.0, 1.0, 9);
    let labels = [0u32, 2, 1, 1, 0];
    // The input joins the parameter buffer so its gradient is checked too.
    let mut params = mlp.params.clone();
    let x_offset = params.len();
    params.extend_from_slice(&x);
    let mut inputs: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    for l in 0..arch.layers {
        inputs.push((format!("W{}", l + 1), arch.weight_range(l)));
        inputs.push((format!("b{}", l + 1), arch.bias_range(l)));
    }
    inputs.push(("x".into(), x_offset..params.len()));
    let named: Vec<(&str, std::ops::Range<usize>)> =
        inputs.iter().map(|(n, r)| (n.as_str(), r.clone())).collect();
    let mut hidden = Vec::new();
    let report = GradCheck::default().run(&mut params, &named, |g| {
        let x = g.param(x_offset, batch, arch.inputs);
        let logits = arch.forward(g, x, &mut hidden);
        g.softmax_xent(logits, &labels)
    });
    report.assert_ok();
    // Random points sit far from kinks almost everywhere: nearly all are compared.
    assert!(report.checked > 9 * report.unchecked, "too few compared:\n{report}");
    assert!(report.checked >= 300, "{report}");
}

#[test]
fn sampled_check_on_a_wide_layer() {
    // 40×40 weight, 50 sampled elements: the sample is seeded and bounded.
    let arch = Architecture::new(36, 4, 2);
    let mut params = perturbed_identity_mlp(arch, 10).params;
    let x = uniform(3 * 36, 0.0, 1.0, 11);
    let check = GradCheck { sample: Sample::Random { count: 50, seed: 5 }, ..GradCheck::default() };
    let mut hidden = Vec::new();
    let report = check.run(
        &mut params,
        &[("W1", arch.weight_range(0)), ("W2", arch.weight_range(1))],
        |g| {
            let x = g.input(&x, 3, 36);
            let logits = arch.forward(g, x, &mut hidden);
            g.softmax_xent(logits, &[0, 1, 3])
        },
    );
    report.assert_ok();
    assert_eq!(report.checked + report.unchecked, 100);
}

#[test]
fn a_wrong_backward_rule_is_caught_and_named() {
    // f(w) = Σ (x·wᵀ) ⊙ r has ∂f/∂w = rᵀ·x. The "wrong rule" forgets the transpose of
    // the upstream gradient and uses x's rows in the wrong order (a classic bug).
    let (b, k, n) = (3, 4, 3);
    let x: Vec<f32> = uniform(b * k, -1.0, 1.0, 20);
    let r: Vec<f32> = uniform(b * n, -1.0, 1.0, 21);
    let mut params = uniform(n * k, -1.0, 1.0, 22);
    let mut wrong = vec![0.0f32; n * k];
    for i in 0..n {
        for j in 0..k {
            // right: Σ_s r[s, i] · x[s, j];  wrong: Σ_s r[i, s] · x[s, j]
            wrong[i * k + j] = (0..b).map(|s| r[i * n + s] * x[s * k + j]).sum();
        }
    }
    let f = |g: &mut Graph<'_>| {
        let xn = g.input(&x, b, k);
        let w = g.param(0, n, k);
        let out = g.matmul_t(xn, w);
        let rn = g.input(&r, b, n);
        g.sum_product(out, rn)
    };
    let report = GradCheck::default().compare(&mut params, &[("w", 0..n * k)], &wrong, f);
    assert!(!report.is_ok(), "the wrong rule passed:\n{report}");
    assert!(report.failed > 0);
    let worst = report.worst.as_ref().expect("a worst element");
    assert_eq!(worst.input, "w");
    assert!(worst.rel_error > 0.1, "{report}");
    assert!(report.to_string().contains("FAIL w["), "{report}");
    // The same function with the tape's own rule passes.
    GradCheck::default().run(&mut params, &[("w", 0..n * k)], f).assert_ok();
}

#[test]
fn points_at_a_relu_kink_are_unchecked_not_passed() {
    // At identity init with x containing exact zeros, feature pre-activations sit
    // exactly on the kink; nudging W moves them across it.
    let arch =
        Architecture { class_activation: ClassActivation::Linear, ..Architecture::new(4, 2, 2) };
    let mut params = Mlp::new(arch, Init::default(), 0).params;
    let x = [0.0f32, 0.5, 0.0, 1.0];
    let mut hidden = Vec::new();
    let report = GradCheck::default().run(&mut params, &[("W1", arch.weight_range(0))], |g| {
        let x = g.input(&x, 1, 4);
        let logits = arch.forward(g, x, &mut hidden);
        g.softmax_xent(logits, &[1])
    });
    assert!(report.unchecked > 0, "kinks went unnoticed:\n{report}");
    assert_eq!(report.failed, 0, "{report}");
    assert_eq!(report.checked + report.unchecked, 36);
}

#[test]
fn params_are_restored_bit_for_bit() {
    let mut params = uniform(12, -1.0, 1.0, 30);
    let before = params.clone();
    let _ = GradCheck::default().run(&mut params, &[("x", 0..12)], |g| {
        let x = g.param(0, 3, 4);
        g.sum_product(x, x)
    });
    assert_eq!(
        before.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        params.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn tape_reuse_reads_fresh_values() {
    // Two passes with different params on one tape give the values of each pass.
    let mut tape = Tape::new();
    for scale in [1.0f32, 2.0] {
        let params = vec![scale; 4];
        let mut g = tape.graph(&params);
        let x = g.input(&[1.0, 1.0], 1, 2);
        let w = g.param(0, 2, 2);
        let out = g.matmul_t(x, w);
        assert_eq!(g.value(out), &[2.0 * scale, 2.0 * scale]);
    }
}
