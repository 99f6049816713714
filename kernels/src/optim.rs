//! Optimizer updates over flat parameter slices: one call updates every parameter.
//!
//! Parameters, gradients and optimizer moments share one layout, so each update is
//! a single loop over equal-length slices. Gradients are read, never cleared.

/// Plain SGD: `p ← p − lr·g`.
#[track_caller]
pub fn sgd_step(params: &mut [f32], grads: &[f32], lr: f32) {
    assert_eq!(params.len(), grads.len(), "sgd_step: params and grads differ in length");
    for (p, &g) in params.iter_mut().zip(grads) {
        *p -= lr * g;
    }
}

/// SGD with (heavy-ball) momentum, as in PyTorch: `v ← μ·v + g`, `p ← p − lr·v`.
/// `velocity` starts at zero and is owned by the caller.
#[track_caller]
pub fn momentum_step(params: &mut [f32], velocity: &mut [f32], grads: &[f32], lr: f32, mu: f32) {
    assert_eq!(params.len(), grads.len(), "momentum_step: params and grads differ in length");
    assert_eq!(params.len(), velocity.len(), "momentum_step: params and velocity differ in length");
    for ((p, v), &g) in params.iter_mut().zip(velocity.iter_mut()).zip(grads) {
        *v = mu * *v + g;
        *p -= lr * *v;
    }
}

/// Adam hyper-parameters (Kingma & Ba, 2015).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
}

impl Default for Adam {
    /// The paper's defaults: lr 1e-3, β₁ 0.9, β₂ 0.999, ε 1e-8.
    fn default() -> Self {
        Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Bias-corrected Adam step number `t` (1 for the first step):
///
/// ```text
/// m ← β₁·m + (1 − β₁)·g        v ← β₂·v + (1 − β₂)·g²
/// p ← p − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
#[track_caller]
pub fn adam_step(
    params: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grads: &[f32],
    hp: &Adam,
    t: u32,
) {
    let n = params.len();
    assert!(
        m.len() == n && v.len() == n && grads.len() == n,
        "adam_step: params, m, v and grads must have one length"
    );
    assert!(t >= 1, "adam_step: step numbers start at 1");
    // The corrections 1 − βᵗ are formed in f64 and rounded once. Rounding βᵗ to f32
    // first and subtracting in f32 cancels the leading bits: at β₂ = 0.999, t = 2 the
    // relative error of 1 − β₂ᵗ ≈ 0.002 reaches u/0.002 = 500·u, half of which
    // survives the √ into every parameter's update.
    let c1 = (1.0 - libm::pow(f64::from(hp.beta1), f64::from(t))) as f32;
    let c2 = (1.0 - libm::pow(f64::from(hp.beta2), f64::from(t))) as f32;
    let (b1, b2) = (hp.beta1, hp.beta2);
    let step = hp.lr / c1;
    let inv_c2 = 1.0 / c2;
    for (((p, mi), vi), &g) in params.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grads) {
        *mi = b1 * *mi + (1.0 - b1) * g;
        *vi = b2 * *vi + (1.0 - b2) * g * g;
        *p -= step * *mi / (libm::sqrtf(*vi * inv_c2) + hp.eps);
    }
}
