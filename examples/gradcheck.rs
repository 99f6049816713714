//! # Gradient checks for your own functions on the tape
//!
//! For an author of a gradient-check test suite: build any scalar function from the
//! tape's ops, and let [`GradCheck`] compare backward's gradient with central
//! differences, on every element or on a seeded sample.
//!
//! ```text
//! cargo run --example gradcheck
//! ```
//!
//! It runs three checks and prints each [`GradCheckReport`]:
//!
//! 1. a custom composition of ops — a linear layer, relu on some columns only, zero
//!    padding, a column slice, a second product and softmax cross-entropy — checked
//!    on every element of its three parameter tensors;
//! 2. the crate's own model (`Architecture::forward`, 2 layers of width 9) checked on
//!    a seeded random sample of 8 elements per tensor, the way you would check a
//!    794×794 weight;
//! 3. a **hand-written** gradient of `f(W) = Σ (X·Wᵀ) ⊙ Y`, checked with
//!    [`GradCheck::compare`]: the correct rule `dW = Yᵀ·X` passes, and a deliberately
//!    wrong one (the transposed product `Xᵀ·Y`, same shape) is caught, with the
//!    report naming the worst element and the first failures.
//!
//! The example exits with failure unless checks 1 and 2 and the correct rule pass
//! and the wrong rule fails.

use std::process::ExitCode;

use idmlp::gradcheck::{GradCheck, Sample};
use idmlp::mlp::{Architecture, Init, Mlp};
use idmlp::tape::ReluGradAtZero;

fn main() -> ExitCode {
    let mut ok = true;

    // ---- 1. a custom composition of ops, every element ----
    //
    // f(W1, b1, W2) = mean xent(softmax(S·W2ᵀ), y) with
    //   A = X·W1ᵀ + b1               X: 2×4, W1: 3×4, b1: 1×3    → 2×3
    //   H = [relu(A[:, 0..2]), A[:, 2]]   relu on two of the three columns
    //   P = [H, 0, 0]                zero-padded to 2×5
    //   S = P[:, 1..4]               a slice of columns            → 2×3
    //   Z = S·W2ᵀ                    W2: 2×3                       → 2×2 logits
    // Parameters live in one flat buffer: W1 (12), b1 (3), W2 (6).
    let mut params: Vec<f32> = (0..21).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect();
    let x = [0.2, -0.4, 0.9, 0.1, -0.7, 0.5, 0.3, 0.8];
    let labels = [1, 0];
    let custom = |g: &mut idmlp::tape::Graph<'_>| {
        let xn = g.input(&x, 2, 4);
        let w1 = g.param(0, 3, 4);
        let b1 = g.param(12, 1, 3);
        let w2 = g.param(15, 2, 3);
        let a = g.linear(xn, w1, b1);
        let h = g.relu(a, 0..2, ReluGradAtZero::One);
        let p = g.pad_cols(h, 5);
        let s = g.select_cols(p, 1..4);
        let z = g.matmul_t(s, w2);
        g.softmax_xent(z, &labels)
    };
    let inputs = [("W1", 0..12), ("b1", 12..15), ("W2", 15..21)];
    let report = GradCheck::default().run(&mut params, &inputs, custom);
    println!(
        "1. custom composition (linear, partial relu, pad, slice, matmul, xent), all elements:"
    );
    print!("{report}");
    ok &= report.is_ok();

    // ---- 2. the model itself, a seeded sample of elements ----
    let arch = Architecture::new(6, 3, 2); // d = 6, C = 3, D = 9, L = 2
    let mut mlp = Mlp::new(arch, Init::Identity { scale: 0.9 }, 0);
    for (i, p) in mlp.params.iter_mut().enumerate() {
        *p += ((i * 13 % 17) as f32 - 8.0) / 200.0; // move off the exact identity
    }
    let xs: Vec<f32> = (0..4 * 6).map(|i| ((i * 5 % 9) as f32) / 9.0 + 0.05).collect();
    let ys = [0, 2, 1, 2];
    let check = GradCheck { sample: Sample::Random { count: 8, seed: 42 }, ..GradCheck::default() };
    let tensors = [
        ("W1", arch.weight_range(0)),
        ("b1", arch.bias_range(0)),
        ("W2", arch.weight_range(1)),
        ("b2", arch.bias_range(1)),
    ];
    let mut hidden = Vec::new();
    let report = check.run(&mut mlp.params, &tensors, |g| {
        let xn = g.input(&xs, 4, 6);
        let z = arch.forward(g, xn, &mut hidden);
        g.softmax_xent(z, &ys)
    });
    println!("\n2. the model (L = 2, D = 9), 8 sampled elements per tensor (seed 42):");
    print!("{report}");
    ok &= report.is_ok();

    // ---- 3. a hand-written backward rule, right and wrong ----
    //
    // f(W) = Σ_{b,n} (X·Wᵀ)[b,n] · Y[b,n]       X: 4×3, W: 3×3, Y: 4×3 (constant)
    // df/dW[n,k] = Σ_b Y[b,n] · X[b,k]           i.e. dW = Yᵀ·X
    let (b, k) = (4, 3);
    let xm: Vec<f32> = (0..b * k).map(|i| ((i * 3 % 7) as f32 - 3.0) / 4.0).collect();
    let ym: Vec<f32> = (0..b * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 6.0).collect();
    let mut w: Vec<f32> = (0..k * k).map(|i| (i as f32 - 4.0) / 5.0).collect();
    let f = |g: &mut idmlp::tape::Graph<'_>| {
        let xn = g.input(&xm, b, k);
        let yn = g.input(&ym, b, k);
        let wn = g.param(0, k, k);
        let z = g.matmul_t(xn, wn);
        g.sum_product(z, yn)
    };
    let mut right = vec![0.0f32; k * k]; // Yᵀ·X
    let mut wrong = vec![0.0f32; k * k]; // Xᵀ·Y: the classic transposition slip
    for n in 0..k {
        for j in 0..k {
            for r in 0..b {
                right[n * k + j] += ym[r * k + n] * xm[r * k + j];
                wrong[n * k + j] += xm[r * k + n] * ym[r * k + j];
            }
        }
    }
    let right_report = GradCheck::default().compare(&mut w, &[("W", 0..k * k)], &right, f);
    println!("\n3a. hand-written dW = Yᵀ·X:");
    print!("{right_report}");
    ok &= right_report.is_ok();
    let wrong_report = GradCheck::default().compare(&mut w, &[("W", 0..k * k)], &wrong, f);
    println!("\n3b. hand-written dW = Xᵀ·Y (wrong on purpose):");
    print!("{wrong_report}");
    if wrong_report.is_ok() {
        println!("the wrong rule was NOT caught");
        ok = false;
    } else {
        println!("caught: the wrong rule fails the check, as it should");
    }

    if ok {
        println!("\nall checks behaved as expected");
        ExitCode::SUCCESS
    } else {
        println!("\nunexpected result");
        ExitCode::FAILURE
    }
}
