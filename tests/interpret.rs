//! The interpretation pass: exact at identity init, equal to a from-scratch
//! recomputation from the weights, and weight statistics that locate the change.

use idmlp::interpret::{Interpreter, LayerMetrics, LayerRole, WeightStats, weight_stats};
use idmlp::mlp::{Architecture, Init, Mlp};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

#[test]
fn at_identity_init_every_layer_is_the_input_and_every_map_is_zero() {
    let arch = Architecture::new(20, 4, 6);
    let mlp = Mlp::new(arch, Init::default(), 0);
    let batch = 5;
    // Non-negative inputs with exact zeros, like images: relu leaves them unchanged.
    let mut x = uniform(batch * arch.inputs, 0.0, 1.0, 1);
    x.iter_mut().step_by(3).for_each(|v| *v = 0.0);
    let mut interpreter = Interpreter::new();
    let view = interpreter.run(&arch, &mlp.params, &x);
    let mut map = vec![f32::NAN; arch.inputs];
    for l in 1..=arch.layers {
        let layer = view.layer(l);
        for s in 0..batch {
            let h0: Vec<f32> =
                x[s * arch.inputs..(s + 1) * arch.inputs].iter().copied().chain([0.0; 4]).collect();
            assert_eq!(layer.h(s), &h0[..], "layer {l}, sample {s}: h_l differs from h_0");
            layer.contribution_map(s, &mut map);
            assert!(
                map.iter().all(|&m| m == 0.0),
                "layer {l}, sample {s}: non-zero contribution map"
            );
        }
    }
}

/// h_1 … h_L recomputed in f64 with plain loops from the weights alone.
fn reference_forward(mlp: &Mlp, x: &[f64]) -> Vec<Vec<f64>> {
    let arch = mlp.arch;
    let (d, width) = (arch.inputs, arch.width());
    let mut h: Vec<f64> = x.iter().copied().chain(std::iter::repeat_n(0.0, arch.classes)).collect();
    let mut out = Vec::new();
    for l in 0..arch.layers {
        let (w, b) = (mlp.weight(l), mlp.bias(l));
        let next: Vec<f64> = (0..width)
            .map(|i| {
                let a = f64::from(b[i])
                    + (0..width).map(|j| f64::from(w[i * width + j]) * h[j]).sum::<f64>();
                if i < d { a.max(0.0) } else { a }
            })
            .collect();
        out.push(next.clone());
        h = next;
    }
    out
}

#[test]
fn interpretation_equals_a_recomputation_from_the_weights() {
    let arch = Architecture::new(12, 3, 4);
    let mut mlp = Mlp::new(arch, Init::default(), 0);
    let noise = uniform(mlp.params.len(), -0.15, 0.15, 2);
    mlp.params.iter_mut().zip(noise).for_each(|(p, n)| *p += n);
    let batch = 6;
    let x = uniform(batch * arch.inputs, 0.0, 1.0, 3);
    let mut interpreter = Interpreter::new();
    let view = interpreter.run(&arch, &mlp.params, &x);
    let (d, width) = (arch.inputs, arch.width());
    const TOL: f64 = 1e-4; // f32 sums of ~15 O(1) terms vs f64: ~1e-6, with margin
    let (mut map, mut p, mut cc) = (vec![0.0; d], vec![0.0; 3], vec![0.0; d]);
    for s in 0..batch {
        let xs: Vec<f64> = x[s * d..(s + 1) * d].iter().map(|&v| f64::from(v)).collect();
        let reference = reference_forward(&mlp, &xs);
        for l in 1..=arch.layers {
            let layer = view.layer(l);
            let want = &reference[l - 1];
            for (i, (&got, &w)) in layer.h(s).iter().zip(want).enumerate() {
                assert!((f64::from(got) - w).abs() < TOL, "h_{l}[{s}, {i}]: {got} vs {w}");
            }
            layer.contribution_map(s, &mut map);
            for i in 0..d {
                assert!((f64::from(map[i]) - (want[i] - xs[i])).abs() < TOL, "map_{l}[{s}, {i}]");
            }
            let logits = &want[d..width];
            let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f64 = logits.iter().map(|v| (v - max).exp()).sum();
            layer.likelihood(s, &mut p);
            for c in 0..3 {
                let want_p = (logits[c] - max).exp() / sum;
                assert!((f64::from(p[c]) - want_p).abs() < TOL, "p_{l}[{s}, {c}]");
            }
            let want_pred =
                (0..3).fold(0, |best, c| if logits[c] > logits[best] { c } else { best });
            assert_eq!(layer.prediction(s), want_pred, "prediction of layer {l}, sample {s}");
            let prev: Vec<f64> = if l == 1 { xs.clone() } else { reference[l - 2][..d].to_vec() };
            for c in 0..3 {
                layer.class_contribution(s, c, &mut cc);
                let w = mlp.weight(l - 1);
                for i in 0..d {
                    let want_cc = f64::from(w[(d + c) * width + i]) * prev[i];
                    assert!(
                        (f64::from(cc[i]) - want_cc).abs() < TOL,
                        "class contribution {l}/{c}[{s}, {i}]"
                    );
                }
            }
        }
    }
}

#[test]
fn layer_metrics_count_every_layer() {
    let arch = Architecture::new(6, 2, 3);
    let mut mlp = Mlp::new(arch, Init::default(), 0);
    // Make layer 2 onwards say "class 1" for every input: its class-1 bias is large.
    let b2 = arch.bias_range(1);
    mlp.params[b2.start + arch.inputs + 1] = 5.0;
    let x = uniform(4 * 6, 0.0, 1.0, 4);
    let mut interpreter = Interpreter::new();
    let mut metrics = LayerMetrics::new(3);
    interpreter.run(&arch, &mlp.params, &x).accumulate(&[1, 1, 0, 1], &mut metrics);
    assert_eq!(metrics.samples, 4);
    // Layer 1: all class logits 0, argmax picks class 0: right once. Layers 2, 3: class 1, right 3 times.
    assert_eq!(metrics.correct, vec![1, 3, 3]);
    assert_eq!(metrics.accuracy(), vec![0.25, 0.75, 0.75]);
}

#[test]
fn weight_stats_locate_the_change() {
    let arch = Architecture::new(8, 2, 3);
    let mut mlp = Mlp::new(arch, Init::default(), 0);
    let width = arch.width();
    // Layer 1 unchanged; layer 2: a change in a class row; layer 3: in the feature block.
    mlp.params[arch.weight_range(1).start + 9 * width + 3] = 0.3;
    mlp.params[arch.weight_range(2).start + 2 * width + 5] = -0.4;
    let stats = weight_stats(&mlp);
    assert_eq!(stats[0].identity_distance, 0.0);
    assert_eq!(stats[0].role(), LayerRole::Identity);
    assert!((stats[1].identity_distance - 0.3 / (width as f64).sqrt()).abs() < 1e-7);
    assert_eq!(stats[1].class_row_share, 1.0);
    assert_eq!(stats[1].role(), LayerRole::ClassEvidence);
    assert_eq!(stats[2].feature_block_share, 1.0);
    assert_eq!(stats[2].role(), LayerRole::FeatureReshaping);
    let s = WeightStats::of(&arch, mlp.weight(2));
    assert!((s.class_row_share + s.feature_block_share + s.feedback_share - 1.0).abs() < 1e-12);
}
