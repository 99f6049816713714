//! The training-state section of a version 2 checkpoint: what a run needs besides
//! its weights to continue bit for bit where it stopped.
//!
//! ```text
//! offset  size  field (all little-endian)
//!   0      8    tag b"IDMLPTS\0"
//!   8      1    optimizer (0 SGD, 1 momentum, 2 Adam)
//!   9      1    lr schedule (0 constant, 1 cosine; reserved before, so 0 in older files)
//!  10      2    reserved, 0
//!  12      4    lr (f32)
//!  16      4    momentum μ / Adam β1 (f32; 0 for SGD)
//!  20      4    Adam β2 (f32; 0 otherwise)
//!  24      4    Adam ε (f32; 0 otherwise)
//!  28      4    batch size B (≥ 1)
//!  32      8    optimizer steps taken
//!  40      8    batch-order seed
//!  48      8    epoch (from 0) the batch order is in
//!  56      8    items of that epoch already trained on (the cursor)
//!  64      8    training-set size
//!  72      8    this epoch so far: steps
//!  80      8    this epoch so far: samples (= the cursor)
//!  88      8    this epoch so far: samples predicted right
//!  96      8    this epoch so far: loss sum (f64)
//! 104      8    this epoch so far: seconds (f64)
//! 112      8    completed epochs n (= the epoch at 48)
//! 120      8    cosine schedule's length in epochs (< 2³²; 0 when constant)
//! 128     4·m   optimizer moments (f32): none for SGD, the velocity for momentum,
//!               first then second moment for Adam (each one value per parameter)
//! …      32·n   per completed epoch: train loss, train accuracy, test accuracy
//!               (NaN: no test split), seconds (f64 each)
//! ```
//!
//! Every field is checked and the section's length must be exactly what the
//! optimizer, the parameter count and `n` imply, so nothing is allocated that the
//! file does not hold.

use crate::data::StreamState;
use crate::optim::{Adam, LrSchedule, Optimizer, OptimizerKind};
use crate::train::EpochProgress;

const TAG: [u8; 8] = *b"IDMLPTS\0";
const FIXED_LEN: usize = 128;

/// Everything besides the weights that `idmlp train` needs to continue a run
/// exactly: the optimizer with its moments, where the batch order stands, the running
/// totals of the current epoch, and the completed epochs' numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingState {
    /// The update rule, its hyper-parameters, moments and step count.
    pub optimizer: Optimizer,
    /// How the lr changes from epoch to epoch ([`LrSchedule::Constant`] in files
    /// written before the schedule existed).
    pub schedule: LrSchedule,
    /// Mini-batch size.
    pub batch_size: u32,
    /// Where the batch order stands ([`crate::data::BatchStream::resume`]).
    pub stream: StreamState,
    /// Training samples per epoch (guards against resuming on other data).
    pub train_samples: u64,
    /// The current epoch's totals so far (all zero at an epoch boundary).
    pub epoch: EpochProgress,
    /// The completed epochs, first first.
    pub history: Vec<CompletedEpoch>,
}

/// The numbers of one completed epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompletedEpoch {
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy of the last layer.
    pub train_accuracy: f64,
    /// Test accuracy of the last layer after the epoch, if there was a test split.
    pub test_accuracy: Option<f64>,
    /// Wall time.
    pub seconds: f64,
}

/// Moment lengths `(first, second)` of `kind` over `params` parameters.
fn moment_lens(kind: &OptimizerKind, params: usize) -> (usize, usize) {
    match kind {
        OptimizerKind::Sgd { .. } => (0, 0),
        OptimizerKind::Momentum { .. } => (params, 0),
        OptimizerKind::Adam(_) => (params, params),
    }
}

/// The section's bytes for `state` over `params` parameters.
pub(super) fn encode(state: &TrainingState, params: usize) -> Vec<u8> {
    let kind = state.optimizer.kind();
    let (first, second) = state.optimizer.moments();
    assert_eq!(
        (first.len(), second.len()),
        moment_lens(&kind, params),
        "save_with_state: the optimizer does not cover the model's parameters"
    );
    let mut out =
        Vec::with_capacity(FIXED_LEN + 4 * (first.len() + second.len()) + 32 * state.history.len());
    let (code, hyper) = match kind {
        OptimizerKind::Sgd { lr } => (0u8, [lr, 0.0, 0.0, 0.0]),
        OptimizerKind::Momentum { lr, mu } => (1, [lr, mu, 0.0, 0.0]),
        OptimizerKind::Adam(a) => (2, [a.lr, a.beta1, a.beta2, a.eps]),
    };
    let (schedule, schedule_epochs) = match state.schedule {
        LrSchedule::Constant => (0u8, 0u64),
        LrSchedule::Cosine { epochs } => (1, u64::from(epochs)),
    };
    out.extend_from_slice(&TAG);
    out.extend_from_slice(&[code, schedule, 0, 0]);
    for v in hyper {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&state.batch_size.to_le_bytes());
    let p = &state.epoch;
    for v in [
        state.optimizer.steps(),
        state.stream.seed,
        state.stream.epoch,
        state.stream.cursor,
        state.train_samples,
        p.steps,
        p.samples,
        p.correct,
        p.loss_sum.to_bits(),
        p.seconds.to_bits(),
        state.history.len() as u64,
        schedule_epochs,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    debug_assert_eq!(out.len(), FIXED_LEN);
    for v in first.iter().chain(second) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for e in &state.history {
        let test = e.test_accuracy.unwrap_or(f64::NAN);
        for v in [e.train_loss, e.train_accuracy, test, e.seconds] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Everything of a validated section except the optimizer's moments, which stay in
/// the file's bytes until [`decode`] needs them.
struct Fields {
    kind: OptimizerKind,
    schedule: LrSchedule,
    steps: u64,
    batch_size: u32,
    stream: StreamState,
    train_samples: u64,
    epoch: EpochProgress,
    history: Vec<CompletedEpoch>,
}

/// Validates a section for a model of `params` parameters without reading its moments
/// into memory: what every load runs, the weights-only ones included. The error says
/// which field is wrong.
pub(super) fn check(bytes: &[u8], params: usize) -> Result<(), &'static str> {
    parse(bytes, params).map(|_| ())
}

/// Validates and decodes a section for a model of `params` parameters.
pub(super) fn decode(bytes: &[u8], params: usize) -> Result<TrainingState, &'static str> {
    let Fields { kind, schedule, steps, batch_size, stream, train_samples, epoch, history } =
        parse(bytes, params)?;
    let mut optimizer = Optimizer::new(kind, params);
    let (first, second) = optimizer.moments_mut();
    // `parse` checked that the moments fill the bytes between the fixed part and the
    // history, in this order.
    let values =
        bytes[FIXED_LEN..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    for (m, v) in first.iter_mut().chain(second.iter_mut()).zip(values) {
        *m = v;
    }
    optimizer.set_steps(steps);
    Ok(TrainingState { optimizer, schedule, batch_size, stream, train_samples, epoch, history })
}

fn parse(bytes: &[u8], params: usize) -> Result<Fields, &'static str> {
    if bytes.len() < FIXED_LEN {
        return Err("shorter than its 128-byte fixed part");
    }
    if bytes[0..8] != TAG {
        return Err("wrong tag");
    }
    let f32_at = |at: usize| f32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let f64_at = |at: usize| f64::from_bits(u64_at(at));
    if bytes[10..12] != [0; 2] {
        return Err("reserved bytes are not zero");
    }
    let schedule = match (bytes[9], u64_at(120)) {
        (0, 0) => LrSchedule::Constant,
        // Every u32 length, 0 included, so that whatever `encode` writes reads back.
        (1, epochs @ 0..=0xFFFF_FFFF) => LrSchedule::Cosine { epochs: epochs as u32 },
        (0 | 1, _) => return Err("lr schedule length is invalid"),
        _ => return Err("unknown lr schedule"),
    };
    let [lr, h1, h2, h3] = [12, 16, 20, 24].map(f32_at);
    if !(lr.is_finite() && lr > 0.0) {
        return Err("learning rate is not a positive number");
    }
    let kind = match (bytes[8], h1.to_bits(), h2.to_bits(), h3.to_bits()) {
        (0, 0, 0, 0) => OptimizerKind::Sgd { lr },
        (1, _, 0, 0) if h1.is_finite() => OptimizerKind::Momentum { lr, mu: h1 },
        (2, ..) if [h1, h2, h3].iter().all(|v| v.is_finite()) => {
            OptimizerKind::Adam(Adam { lr, beta1: h1, beta2: h2, eps: h3 })
        }
        (0..=2, ..) => return Err("optimizer hyper-parameters are invalid"),
        _ => return Err("unknown optimizer"),
    };
    let batch_size = u32::from_le_bytes(bytes[28..32].try_into().expect("4 bytes"));
    if batch_size == 0 {
        return Err("batch size is 0");
    }
    let steps = u64_at(32);
    let stream = StreamState { seed: u64_at(40), epoch: u64_at(48), cursor: u64_at(56) };
    let train_samples = u64_at(64);
    let epoch = EpochProgress {
        steps: u64_at(72),
        samples: u64_at(80),
        correct: u64_at(88),
        loss_sum: f64_at(96),
        seconds: f64_at(104),
    };
    let completed = u64_at(112);
    if stream.cursor > train_samples || epoch.samples != stream.cursor {
        return Err("epoch position is outside the training set");
    }
    if epoch.correct > epoch.samples || epoch.steps > epoch.samples {
        return Err("epoch totals are inconsistent");
    }
    let non_negative = |v: f64| v.is_finite() && v >= 0.0;
    if !non_negative(epoch.loss_sum) || !non_negative(epoch.seconds) {
        return Err("epoch loss or time is not a non-negative number");
    }
    if completed != stream.epoch {
        return Err("completed epochs disagree with the batch order's epoch");
    }

    // The length must be exactly what the optimizer and the history imply.
    let (m1, m2) = moment_lens(&kind, params);
    let moments_end = (m1 + m2)
        .checked_mul(4)
        .and_then(|m| m.checked_add(FIXED_LEN))
        .filter(|&end| end <= bytes.len())
        .ok_or("too short for the optimizer's moments")?;
    let history_bytes = &bytes[moments_end..];
    if history_bytes.len() as u64 != completed.saturating_mul(32) {
        return Err("length disagrees with the number of completed epochs");
    }
    let mut history = Vec::with_capacity(history_bytes.len() / 32);
    for rec in history_bytes.chunks_exact(32) {
        let [loss, train, test, seconds] =
            [0, 8, 16, 24].map(|at| f64::from_le_bytes(rec[at..at + 8].try_into().expect("8")));
        let fraction = |v: f64| (0.0..=1.0).contains(&v);
        // NaN means "no test split", and only the one NaN `encode` writes.
        let test_accuracy = match test {
            t if t.to_bits() == f64::NAN.to_bits() => None,
            t if fraction(t) => Some(t),
            _ => return Err("an epoch's test accuracy is not a fraction"),
        };
        if !(non_negative(loss) && fraction(train) && non_negative(seconds)) {
            return Err("an epoch's numbers are out of range");
        }
        history.push(CompletedEpoch {
            train_loss: loss,
            train_accuracy: train,
            test_accuracy,
            seconds,
        });
    }

    Ok(Fields { kind, schedule, steps, batch_size, stream, train_samples, epoch, history })
}
