//! Slow, obvious twins of every kernel: the oracles the fast kernels are tested
//! against. Index arithmetic instead of iterators, f64 accumulation where sums are
//! long. Same signatures and buffer contracts as the fast kernels.

use core::ops::Range;

use crate::relu::ReluGradAtZero;

/// `C ← α·op(A)·op(B) + β·C`, `C: m×n`, with `op(X)` = `X` or `Xᵀ` as flagged;
/// `a` is `m×k` (or `k×m` when `trans_a`), `b` is `k×n` (or `n×k` when `trans_b`).
/// With `β = 0`, `C` is not read.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    trans_a: bool,
    b: &[f32],
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                let av = if trans_a { a[p * m + i] } else { a[i * k + p] };
                let bv = if trans_b { b[j * k + p] } else { b[p * n + j] };
                acc += f64::from(av) * f64::from(bv);
            }
            let prior = if beta == 0.0 { 0.0 } else { f64::from(beta) * f64::from(c[i * n + j]) };
            c[i * n + j] = (f64::from(alpha) * acc + prior) as f32;
        }
    }
}

/// Twin of [`crate::bias_forward`].
pub fn bias_forward(out: &mut [f32], bias: &[f32], rows: usize, cols: usize) {
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = bias[c];
        }
    }
}

/// Twin of [`crate::column_sums_add`] (f64 accumulation).
pub fn column_sums_add(sums: &mut [f32], x: &[f32], rows: usize, cols: usize) {
    for c in 0..cols {
        let mut acc = f64::from(sums[c]);
        for r in 0..rows {
            acc += f64::from(x[r * cols + c]);
        }
        sums[c] = acc as f32;
    }
}

/// Twin of [`crate::argmax_rows`]: the first index holding the largest non-NaN value,
/// 0 when there is none.
pub fn argmax_rows(out: &mut [u32], x: &[f32], rows: usize, cols: usize) {
    for r in 0..rows {
        let mut best: Option<usize> = None;
        for c in 0..cols {
            let v = x[r * cols + c];
            let better = match best {
                None => !v.is_nan(),
                Some(b) => v > x[r * cols + b],
            };
            if better {
                best = Some(c);
            }
        }
        out[r] = best.unwrap_or(0) as u32;
    }
}

/// Twin of [`crate::relu_forward`].
pub fn relu_forward(h: &mut [f32], a: &[f32], rows: usize, cols: usize, relu_cols: Range<usize>) {
    for r in 0..rows {
        for c in 0..cols {
            let v = a[r * cols + c];
            h[r * cols + c] = if relu_cols.contains(&c) && v < 0.0 { 0.0 } else { v };
        }
    }
}

/// Twin of [`crate::relu_backward`].
#[allow(clippy::too_many_arguments)]
pub fn relu_backward(
    da: &mut [f32],
    dh: &[f32],
    a: &[f32],
    rows: usize,
    cols: usize,
    relu_cols: Range<usize>,
    at_zero: ReluGradAtZero,
) {
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            let passes = match at_zero {
                ReluGradAtZero::Zero => a[i] > 0.0,
                ReluGradAtZero::One => a[i] >= 0.0,
            };
            let slope = if !relu_cols.contains(&c) || passes { 1.0 } else { 0.0 };
            da[i] += slope * dh[i];
        }
    }
}

/// Twin of [`crate::softmax_rows`], in f64.
pub fn softmax_rows(p: &mut [f32], z: &[f32], rows: usize, cols: usize) {
    for r in 0..rows {
        let row = &z[r * cols..(r + 1) * cols];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let sum: f64 = row.iter().map(|&v| libm::exp(f64::from(v) - m)).sum();
        for c in 0..cols {
            p[r * cols + c] = (libm::exp(f64::from(row[c]) - m) / sum) as f32;
        }
    }
}

/// Twin of [`crate::softmax_xent_forward`], in f64: `mean(−ln p_y)`.
pub fn softmax_xent_forward(
    p: &mut [f32],
    z: &[f32],
    labels: &[u32],
    rows: usize,
    cols: usize,
) -> f32 {
    softmax_rows(p, z, rows, cols);
    if rows == 0 {
        return 0.0;
    }
    let mut total = 0.0f64;
    for r in 0..rows {
        let row = &z[r * cols..(r + 1) * cols];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let sum: f64 = row.iter().map(|&v| libm::exp(f64::from(v) - m)).sum();
        total += m + libm::log(sum) - f64::from(row[labels[r] as usize]);
    }
    (total / rows as f64) as f32
}

/// Twin of [`crate::softmax_xent_backward`].
pub fn softmax_xent_backward(
    dz: &mut [f32],
    p: &[f32],
    labels: &[u32],
    rows: usize,
    cols: usize,
    dloss: f32,
) {
    for r in 0..rows {
        for c in 0..cols {
            let target = if c == labels[r] as usize { 1.0 } else { 0.0 };
            dz[r * cols + c] += dloss * (p[r * cols + c] - target) / rows as f32;
        }
    }
}

/// Twin of [`crate::sgd_step`].
pub fn sgd_step(params: &mut [f32], grads: &[f32], lr: f32) {
    for i in 0..params.len() {
        params[i] -= lr * grads[i];
    }
}

/// Twin of [`crate::momentum_step`].
pub fn momentum_step(params: &mut [f32], velocity: &mut [f32], grads: &[f32], lr: f32, mu: f32) {
    for i in 0..params.len() {
        velocity[i] = mu * velocity[i] + grads[i];
        params[i] -= lr * velocity[i];
    }
}

/// Twin of [`crate::adam_step`], in f64.
pub fn adam_step(
    params: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grads: &[f32],
    hp: &crate::Adam,
    t: u32,
) {
    let (b1, b2) = (f64::from(hp.beta1), f64::from(hp.beta2));
    let c1 = 1.0 - libm::pow(b1, f64::from(t));
    let c2 = 1.0 - libm::pow(b2, f64::from(t));
    for i in 0..params.len() {
        let g = f64::from(grads[i]);
        let mi = b1 * f64::from(m[i]) + (1.0 - b1) * g;
        let vi = b2 * f64::from(v[i]) + (1.0 - b2) * g * g;
        m[i] = mi as f32;
        v[i] = vi as f32;
        let update = f64::from(hp.lr) * (mi / c1) / (libm::sqrt(vi / c2) + f64::from(hp.eps));
        params[i] = (f64::from(params[i]) - update) as f32;
    }
}

/// Twin of [`crate::linear_rank1_update`], the unfused way: `dx += Wᵀ·dy`, the
/// gradient `G = dy·xᵀ`, then the optimizer twin on each weight. Adam is given as its
/// hyper-parameters and step number (the twin works in f64).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub fn linear_rank1_update(
    dx: Option<&mut [f32]>,
    w: &mut [f32],
    first: &mut [f32],
    second: &mut [f32],
    dy: &[f32],
    x: &[f32],
    rule: NaiveRule,
) {
    let (n, k) = (dy.len(), x.len());
    if let Some(dx) = dx {
        for j in 0..k {
            let mut s = 0.0f64;
            for i in 0..n {
                s += f64::from(dy[i]) * f64::from(w[i * k + j]);
            }
            dx[j] = (f64::from(dx[j]) + s) as f32;
        }
    }
    // No buffer for G (no_std, no allocation): each element's gradient goes through
    // the optimizer twin as a one-element slice.
    for i in 0..n {
        for j in 0..k {
            let (e, g) = (i * k + j..i * k + j + 1, [dy[i] * x[j]]);
            match rule {
                NaiveRule::Sgd { lr } => sgd_step(&mut w[e], &g, lr),
                NaiveRule::Momentum { lr, mu } => {
                    momentum_step(&mut w[e.clone()], &mut first[e], &g, lr, mu)
                }
                NaiveRule::Adam(hp, t) => {
                    adam_step(&mut w[e.clone()], &mut first[e.clone()], &mut second[e], &g, &hp, t)
                }
            }
        }
    }
}

/// The rule of [`linear_rank1_update`]'s twin.
#[derive(Clone, Copy, Debug)]
pub enum NaiveRule {
    /// Plain SGD.
    Sgd {
        /// Learning rate.
        lr: f32,
    },
    /// Heavy-ball momentum.
    Momentum {
        /// Learning rate.
        lr: f32,
        /// Momentum.
        mu: f32,
    },
    /// Adam at step `t`.
    Adam(crate::Adam, u32),
}
