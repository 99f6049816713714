//! Finite-difference gradient checker for any scalar function built on a [`Tape`].
//!
//! The function under test is a closure that builds a scalar (1×1) node on a
//! [`Graph`] from parameter leaves ([`Graph::param`]) in one flat buffer. The checker
//! runs it once with [`Graph::backward`] for the analytic gradient, then, for each
//! checked element `θ_i`, twice more at `θ_i ± h` for the central difference
//!
//! ```text
//! numeric_i = (f(θ + h·e_i) − f(θ − h·e_i)) / (2h)
//! ```
//!
//! and compares: an element passes when `|analytic − numeric| ≤ atol + rtol·max(|analytic|, |numeric|)`.
//!
//! ## Using it well in f32
//!
//! The forward pass runs in f32, so `f` carries a rounding error of roughly
//! `ε·|f|·√n` (ε = 1.2e-7). The difference quotient divides that by `2h`: with
//! `h = 1e-3` and `|f| ≈ 1` the numeric gradient is only good to about `1e-4`
//! absolute, so
//! - keep `h` near `1e-3` (smaller amplifies rounding, larger adds `O(h²)` curvature
//!   error), and `atol` near `1e-3` for O(1) losses;
//! - keep the loss O(1): a mean, not a sum over a big batch;
//! - for big tensors, check a seeded sample ([`Sample::Random`]): a 794×794 weight has
//!   630k elements and each costs two forward passes;
//! - the step actually taken is the f32 difference `(θ+h) − (θ−h)`, which the checker
//!   uses, not the nominal `2h`.
//!
//! Relu is not differentiable at 0. When a perturbation moves any pre-activation
//! across the kink, the difference quotient straddles two linear pieces and means
//! nothing: such elements are reported as **unchecked** (counted, never passed),
//! detected by comparing [`Tape::kink_signature`] at `θ`, `θ + h` and `θ − h`.
//!
//! ```
//! use idmlp::gradcheck::GradCheck;
//!
//! // f(w) = mean xent(softmax([1, 2]·wᵀ), class 0), w: 3×2
//! let mut params = vec![0.1, -0.2, 0.3, 0.0, -0.1, 0.2];
//! let report = GradCheck::default().run(&mut params, &[("w", 0..6)], |g| {
//!     let x = g.input(&[1.0, 2.0], 1, 2);
//!     let w = g.param(0, 3, 2);
//!     let z = g.matmul_t(x, w);
//!     g.softmax_xent(z, &[0])
//! });
//! report.assert_ok();
//! assert_eq!(report.checked, 6);
//! ```

use std::fmt;
use std::ops::Range;

use rand::RngExt;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::tape::{Graph, Node, Tape};

/// Which elements of each input to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sample {
    /// Every element.
    All,
    /// At most `count` elements per input, drawn uniformly (with replacement) from a
    /// Xoshiro256++ stream seeded with `seed`; inputs with `count` or fewer elements
    /// are checked whole.
    Random {
        /// Elements per input.
        count: usize,
        /// Seed of the draw.
        seed: u64,
    },
}

/// Settings of a check. `Default` is tuned for O(1) losses in f32 (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradCheck {
    /// Central-difference step `h`.
    pub step: f32,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Which elements to check.
    pub sample: Sample,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck { step: 1e-3, rtol: 1e-2, atol: 1e-3, sample: Sample::All }
    }
}

/// One checked element.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ElementCheck {
    /// Name of the input the element belongs to.
    pub input: String,
    /// Index within that input.
    pub index: usize,
    /// Backward's gradient.
    pub analytic: f64,
    /// The central difference.
    pub numeric: f64,
    /// `|analytic − numeric| / max(|analytic|, |numeric|)` (0 when both are 0).
    pub rel_error: f64,
    /// `|analytic − numeric| / (atol + rtol·max(|analytic|, |numeric|))`: above 1 fails.
    pub score: f64,
}

impl fmt::Display for ElementCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]: analytic {:.6e}, numeric {:.6e}, relative error {:.3e}",
            self.input, self.index, self.analytic, self.numeric, self.rel_error
        )
    }
}

/// What a check found.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct GradCheckReport {
    /// Elements compared (passed + failed).
    pub checked: usize,
    /// Elements whose gradients disagree beyond tolerance.
    pub failed: usize,
    /// Elements within one step of a relu kink: not compared, not passed.
    pub unchecked: usize,
    /// The element with the highest [`ElementCheck::score`], if any was compared.
    pub worst: Option<ElementCheck>,
    /// The first failures (at most 10), in checking order.
    pub failures: Vec<ElementCheck>,
}

impl GradCheckReport {
    /// Whether every compared element passed and at least one was compared.
    pub fn is_ok(&self) -> bool {
        self.failed == 0 && self.checked > 0
    }

    /// Panics with the full report unless [`GradCheckReport::is_ok`].
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.is_ok(), "gradient check failed:\n{self}");
    }
}

impl fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} checked, {} failed, {} unchecked (within one step of a relu kink)",
            self.checked, self.failed, self.unchecked
        )?;
        if let Some(worst) = &self.worst {
            writeln!(f, "worst: {worst}")?;
        }
        for fail in &self.failures {
            writeln!(f, "  FAIL {fail}")?;
        }
        Ok(())
    }
}

impl GradCheck {
    /// Checks `f` at `params`: `inputs` names ranges of the parameter buffer to check
    /// (e.g. `("W1", 0..36)`); `f` builds a 1×1 node on the graph it is given. The
    /// analytic gradient comes from [`Graph::backward`].
    ///
    /// `params` is perturbed in place and restored bit for bit before returning.
    pub fn run<F>(
        &self,
        params: &mut [f32],
        inputs: &[(&str, Range<usize>)],
        mut f: F,
    ) -> GradCheckReport
    where
        F: FnMut(&mut Graph<'_>) -> Node,
    {
        let mut analytic = vec![0.0f32; params.len()];
        let mut tape = Tape::new();
        let mut g = tape.graph(params);
        let loss = f(&mut g);
        g.backward(loss, &mut analytic);
        self.compare(params, inputs, &analytic, f)
    }

    /// Like [`GradCheck::run`], but checks a gradient computed elsewhere: `analytic`
    /// (the parameter buffer's layout) against central differences of `f`. Use it to
    /// test a hand-written backward rule against a forward built on the tape.
    pub fn compare<F>(
        &self,
        params: &mut [f32],
        inputs: &[(&str, Range<usize>)],
        analytic: &[f32],
        mut f: F,
    ) -> GradCheckReport
    where
        F: FnMut(&mut Graph<'_>) -> Node,
    {
        assert_eq!(
            analytic.len(),
            params.len(),
            "gradcheck: analytic gradient and params differ in length"
        );
        let mut tape = Tape::new();
        let mut eval = |params: &[f32]| -> (f64, u64) {
            let mut g = tape.graph(params);
            let loss = f(&mut g);
            (f64::from(g.scalar(loss)), g.tape().kink_signature())
        };
        let (_, base_signature) = eval(params);

        let mut report = GradCheckReport {
            checked: 0,
            failed: 0,
            unchecked: 0,
            worst: None,
            failures: Vec::new(),
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(match self.sample {
            Sample::Random { seed, .. } => seed,
            Sample::All => 0,
        });
        for (name, range) in inputs {
            assert!(
                range.end <= params.len(),
                "gradcheck: input {name} {range:?} exceeds {} parameters",
                params.len()
            );
            let indices: Vec<usize> = match self.sample {
                Sample::Random { count, .. } if count < range.len() => {
                    (0..count).map(|_| rng.random_range(range.clone())).collect()
                }
                _ => range.clone().collect(),
            };
            for i in indices {
                let original = params[i];
                let plus = original + self.step;
                let minus = original - self.step;
                params[i] = plus;
                let (f_plus, sig_plus) = eval(params);
                params[i] = minus;
                let (f_minus, sig_minus) = eval(params);
                params[i] = original;
                if sig_plus != base_signature || sig_minus != base_signature {
                    report.unchecked += 1;
                    continue;
                }
                let numeric = (f_plus - f_minus) / (f64::from(plus) - f64::from(minus));
                let a = f64::from(analytic[i]);
                let diff = (a - numeric).abs();
                let scale = a.abs().max(numeric.abs());
                let check = ElementCheck {
                    input: (*name).to_string(),
                    index: i - range.start,
                    analytic: a,
                    numeric,
                    rel_error: if scale > 0.0 { diff / scale } else { 0.0 },
                    score: diff / (self.atol + self.rtol * scale),
                };
                report.checked += 1;
                if check.score > 1.0 || !check.score.is_finite() {
                    report.failed += 1;
                    if report.failures.len() < 10 {
                        report.failures.push(check.clone());
                    }
                }
                if report
                    .worst
                    .as_ref()
                    .is_none_or(|w| check.score > w.score || check.score.is_nan())
                {
                    report.worst = Some(check);
                }
            }
        }
        report
    }
}
