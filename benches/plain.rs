//! The baseline of issue 5's batch-1 acceptance: the same training step (forward,
//! backward, optimizer update) through plain `matrixmultiply::sgemm` calls, one per
//! product, with the update as one loop over the flat buffer afterwards (our own
//! `sgd_step` / `momentum_step`, so the update arithmetic is the same as ours).
//!
//! Everything else (bias broadcast, relu and its mask, softmax cross-entropy, column
//! sums) uses the crate's kernels: they are cheap next to the products, and the
//! comparison is about how the step treats the 50 MB of weights.

use idmlp::mlp::Architecture;
use idmlp::optim::OptimizerKind;
use idmlp_kernels as k;

/// One sgemm call, row-major operands addressed by strides (elements).
#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    kk: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
) {
    assert!(m == 0 || kk == 0 || (m - 1) * rsa + (kk - 1) * csa < a.len());
    assert!(kk == 0 || n == 0 || (kk - 1) * rsb + (n - 1) * csb < b.len());
    assert!(m * n <= c.len());
    // SAFETY: the asserts above keep every element sgemm addresses in bounds (A: m×k,
    // B: k×n by the given strides; C: m×n row-major, contiguous), and C does not
    // overlap A or B (distinct borrows).
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(
            m,
            kk,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Buffers of the plain step: the parameters, their gradient and moments, and per
/// layer the pre-activations and activations and their gradients.
pub struct PlainStep {
    arch: Architecture,
    batch: usize,
    kind: OptimizerKind,
    params: Vec<f32>,
    grads: Vec<f32>,
    velocity: Vec<f32>,
    /// `a_1 … a_L`, `(L, B, D)`.
    pre: Vec<f32>,
    /// `h_0 … h_L`, `(L + 1, B, D)`.
    hidden: Vec<f32>,
    /// `dh`, `da`: `(B, D)` each.
    dh: Vec<f32>,
    da: Vec<f32>,
    probs: Vec<f32>,
    dz: Vec<f32>,
}

impl PlainStep {
    /// Identity-initialised parameters, SGD or momentum.
    pub fn new(arch: Architecture, batch: usize, kind: OptimizerKind) -> Self {
        let (dd, layers) = (arch.width(), arch.layers);
        let mut params = vec![0.0; arch.param_count()];
        arch.init_params(&mut params, Default::default(), 0);
        let velocity = match kind {
            OptimizerKind::Momentum { .. } => vec![0.0; params.len()],
            _ => Vec::new(),
        };
        PlainStep {
            arch,
            batch,
            kind,
            grads: vec![0.0; params.len()],
            params,
            velocity,
            pre: vec![0.0; layers * batch * dd],
            hidden: vec![0.0; (layers + 1) * batch * dd],
            dh: vec![0.0; batch * dd],
            da: vec![0.0; batch * dd],
            probs: vec![0.0; batch * arch.classes],
            dz: vec![0.0; batch * arch.classes],
        }
    }

    /// One step on `x` (`B×d`) and `labels`; returns the loss.
    pub fn step(&mut self, x: &[f32], labels: &[u32]) -> f32 {
        let arch = self.arch;
        let (b, dd, d, c) = (self.batch, arch.width(), arch.inputs, arch.classes);
        let act = b * dd;
        // h_0 = [x, 0]
        for (row, xr) in self.hidden[..act].chunks_exact_mut(dd).zip(x.chunks_exact(d)) {
            row[..d].copy_from_slice(xr);
            row[d..].fill(0.0);
        }
        for l in 0..arch.layers {
            let w = &self.params[arch.weight_range(l)];
            let bias = &self.params[arch.bias_range(l)];
            let a = &mut self.pre[l * act..(l + 1) * act];
            k::bias_forward(a, bias, b, dd);
            let h_prev = &self.hidden[l * act..(l + 1) * act];
            sgemm(b, dd, dd, h_prev, (dd, 1), w, (1, dd), 1.0, a);
            let h = &mut self.hidden[(l + 1) * act..(l + 2) * act];
            k::relu_forward(h, a, b, dd, arch.relu_cols());
        }
        let last = &self.hidden[arch.layers * act..];
        // logits = h_L[.., d..D]: strided rows, copied out (B·C floats).
        let mut logits = std::mem::take(&mut self.dz);
        for (zr, hr) in logits.chunks_exact_mut(c).zip(last.chunks_exact(dd)) {
            zr.copy_from_slice(&hr[d..]);
        }
        let loss = k::softmax_xent_forward(&mut self.probs, &logits, labels, b, c);
        logits.fill(0.0);
        k::softmax_xent_backward(&mut logits, &self.probs, labels, b, c, 1.0);
        self.dh.fill(0.0);
        for (dr, zr) in self.dh.chunks_exact_mut(dd).zip(logits.chunks_exact(c)) {
            dr[d..].copy_from_slice(zr);
        }
        self.dz = logits;
        for l in (0..arch.layers).rev() {
            self.da.fill(0.0);
            let a = &self.pre[l * act..(l + 1) * act];
            k::relu_backward(
                &mut self.da,
                &self.dh,
                a,
                b,
                dd,
                arch.relu_cols(),
                arch.relu_grad_at_zero,
            );
            let db = &mut self.grads[arch.bias_range(l)];
            db.fill(0.0);
            k::bias_backward(db, &self.da, b, dd);
            let h_prev = &self.hidden[l * act..(l + 1) * act];
            // dW = daᵀ·h_{l−1}
            let dw = &mut self.grads[arch.weight_range(l)];
            sgemm(dd, b, dd, &self.da, (1, dd), h_prev, (dd, 1), 0.0, dw);
            if l > 0 {
                // dh_{l−1} = da·W
                let w = &self.params[arch.weight_range(l)];
                sgemm(b, dd, dd, &self.da, (dd, 1), w, (dd, 1), 0.0, &mut self.dh);
            }
        }
        match self.kind {
            OptimizerKind::Sgd { lr } => k::sgd_step(&mut self.params, &self.grads, lr),
            OptimizerKind::Momentum { lr, mu } => {
                k::momentum_step(&mut self.params, &mut self.velocity, &self.grads, lr, mu)
            }
            other => panic!("plain step: {other:?} is not benchmarked"),
        }
        loss
    }

    /// The parameters (for the bench's sanity check against the trainer).
    pub fn params(&self) -> &[f32] {
        &self.params
    }
}
