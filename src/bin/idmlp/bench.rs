//! `idmlp bench`: the cost of one training step on random data, next to the cost of
//! the same step's GEMMs alone, with allocations counted.
//!
//! Steps and GEMM-only runs alternate (step, GEMMs, step, GEMMs, …) so that load from
//! other processes on a shared machine hits both alike; "step ÷ GEMMs" is the median of
//! the per-pair ratios.
//!
//! With `--threads T > 1` a one-thread twin steps in the same rounds, and each timed
//! step of either trainer follows one untimed step of the same trainer: the pool's
//! workers park while the twin runs, and waking a parked thread (on a VM, an idle
//! vCPU) can take milliseconds, which a training loop, stepping back to back, never
//! pays. The lead-in steps are counted in the allocations.
//!
//! With `--independent` as well, each round also starts T independent one-thread
//! trainers at once (a barrier, one lead-in step each, a barrier, one timed step
//! each), and `independent_speedup` is the median of T × the round's one-thread step
//! ÷ the slowest of the T. It reads how much a second core gives this work at the
//! moment, with nothing shared and no hand-offs: on a shared host the other tenants
//! move it, and `thread_speedup` ÷ `independent_speedup` is then the part the split
//! itself keeps. A reference, not a bound: T copies read T sets of weights, where a
//! split step reads one, so at batch 1 the split can beat it.
//!
//! Both speed-ups come with the first and third quartiles of their per-round ratios
//! (`*_quartiles`): on a shared host the rounds of one run can spread by ±0.2, and a
//! median alone hides whether they did.

use std::alloc::{GlobalAlloc, Layout, System};
use std::error::Error;
use std::num::NonZeroUsize;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Args;
use idmlp::mlp::{Architecture, Init, Mlp};
use idmlp::optim::{Adam, OptimizerKind};
use idmlp::train::{StepGemms, Trainer};
use idmlp_kernels::sgemm::sgemm_kernel_name;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::train::OptimizerArg;

/// MNIST's shape: d = 28·28 pixels, C = 10 classes (D = 794).
const PIXELS: usize = 784;
const CLASSES: usize = 10;

/// The learning rate of every optimizer here. The cost of a step does not depend on
/// it, and a small one keeps thousands of steps on random labels finite (at batch 1
/// the default 0.01 diverges within a few dozen steps on uniform random pixels).
const LR: f32 = 1e-4;

/// Random batches in rotation: training on random labels keeps the gradients large, so
/// timing does not drift as a model fits one batch (or into denormals).
const ROTATION: usize = 4;

/// `idmlp bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Mini-batch size B.
    #[arg(long, default_value_t = NonZeroUsize::new(100).unwrap())]
    pub batch: NonZeroUsize,
    /// Hidden layers L (width D = 794, MNIST's 784 pixels + 10 classes).
    #[arg(long, default_value_t = NonZeroUsize::new(20).unwrap())]
    pub layers: NonZeroUsize,
    /// Update rule (lr 1e-4: the cost does not depend on it; μ 0.9, Adam's defaults).
    #[arg(long, value_enum, default_value_t = OptimizerArg::Momentum)]
    pub optimizer: OptimizerArg,
    /// Compute threads (the step's GEMMs and updates split across them; bit-identical
    /// results for any count). The GEMM-only yardstick stays on one thread.
    #[arg(long, default_value_t = NonZeroUsize::new(1).unwrap())]
    pub threads: NonZeroUsize,
    /// Timed steps (each paired with one GEMM-only run; with `--threads` > 1, each
    /// also follows an untimed lead-in step, see the module doc).
    #[arg(long, default_value_t = NonZeroUsize::new(20).unwrap())]
    pub steps: NonZeroUsize,
    /// Untimed steps first (the first one sizes every buffer).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Seed of the random data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// With `--threads T` (T ≥ 2; with one thread it is an error): also step T
    /// independent one-thread trainers at once in every round, to report what this
    /// machine gives T copies of the step right now (see the module doc). Holds T more
    /// models in memory.
    #[arg(long)]
    pub independent: bool,
}

/// Counts heap allocations (alloc, alloc_zeroed, realloc calls) process-wide.
///
/// Why a global allocator in the binary: `idmlp bench` must report allocations per
/// step, and only the global allocator sees them. The cost for every other command is
/// one relaxed atomic add per allocation, negligible next to the allocation itself.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards its arguments unchanged to the system allocator, which
// upholds the `GlobalAlloc` contract; the counter is a static atomic and never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Heap allocations so far in this process.
fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Where a non-empty sample lies: its median, range, and first and third quartiles,
/// the quantiles interpolated linearly between neighbours (numpy's default; for an
/// even count the median is the mean of the middle two), so that a run also says how
/// much its paired ratios spread.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    quartiles: [f64; 2],
}

/// The [`Spread`] of a non-empty sample (sorted in place).
fn spread(v: &mut [f64]) -> Spread {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let h = (v.len() - 1) as f64 * p;
        let (i, frac) = (h.floor() as usize, h.fract());
        let next = v[(i + 1).min(v.len() - 1)];
        v[i] + frac * (next - v[i])
    };
    Spread { median: at(0.5), min: v[0], max: v[v.len() - 1], quartiles: [at(0.25), at(0.75)] }
}

/// `idmlp bench`.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn Error>> {
    if args.independent && args.threads.get() < 2 {
        return Err("--independent compares T threads with T independent trainers: it needs \
                    --threads 2 or more"
            .into());
    }
    let (batch, steps) = (args.batch.get(), args.steps.get());
    let arch = Architecture::new(PIXELS, CLASSES, args.layers.get());
    let kind = match args.optimizer {
        OptimizerArg::Sgd => OptimizerKind::Sgd { lr: LR },
        OptimizerArg::Momentum => OptimizerKind::Momentum { lr: LR, mu: 0.9 },
        OptimizerArg::Adam => OptimizerKind::Adam(Adam { lr: LR, ..Adam::default() }),
    };

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(args.seed);
    let data: Vec<(Vec<f32>, Vec<u32>)> = (0..ROTATION)
        .map(|_| {
            let x = (0..batch * PIXELS).map(|_| rng.random_range(0.0..1.0)).collect();
            let y = (0..batch).map(|_| rng.random_range(0..CLASSES as u32)).collect();
            (x, y)
        })
        .collect();
    // Every trainer here starts from the same model (one thread unless told).
    let fresh = || Trainer::new(Mlp::new(arch, Init::default(), args.seed), kind);
    let mut trainer = fresh().with_threads(args.threads.get());
    let mut gemms = StepGemms::new(arch, batch);
    // With --threads T > 1, a one-thread twin steps alternately with the T-thread
    // trainer, so that the speed-up is a ratio of paired steps under the same load.
    let mut single = (trainer.threads() > 1).then(fresh);
    // With --independent, T one-thread trainers that step at once (each round).
    let crowd_size = if args.independent { trainer.threads() } else { 0 };
    let mut crowd: Vec<Trainer> = (0..crowd_size).map(|_| fresh()).collect();
    // The first step sizes the tape, so the warm-up does allocate: reported, it shows
    // that the counter works.
    let warmup_before = allocations();
    for i in 0..args.warmup.max(1) {
        let (x, y) = &data[i % ROTATION];
        trainer.step(x, y);
        gemms.run();
        if let Some(single) = &mut single {
            single.step(x, y);
        }
        for t in &mut crowd {
            t.step(x, y);
        }
    }
    let warmup_allocs = allocations() - warmup_before;

    let (mut step_ms, mut gemm_ms, mut ratio) = (vec![], vec![], vec![]);
    let (mut single_ms, mut speedup, mut independent) = (vec![], vec![], vec![]);
    let mut round_trips = vec![];
    let mut step_allocs = 0;
    let mut loss = 0.0;
    for i in 0..steps {
        let (x, y) = &data[i % ROTATION];
        let before = allocations();
        if single.is_some() {
            // Lead-in: the workers parked while the twin ran; time a step of a running
            // pool, as in a training loop.
            trainer.step(x, y);
        }
        let t = Instant::now();
        loss = trainer.step(x, y).loss;
        let s = t.elapsed().as_secs_f64() * 1e3;
        step_allocs += allocations() - before;
        let t = Instant::now();
        gemms.run();
        let g = t.elapsed().as_secs_f64() * 1e3;
        step_ms.push(s);
        gemm_ms.push(g);
        ratio.push(s / g);
        if let Some(single) = &mut single {
            single.step(x, y); // lead-in, as for the pooled trainer
            let t = Instant::now();
            single.step(x, y);
            let one = t.elapsed().as_secs_f64() * 1e3;
            single_ms.push(one);
            speedup.push(one / s);
            round_trips.push(round_trip_ns());
            if !crowd.is_empty() {
                let slowest = step_at_once(&mut crowd, x, y);
                independent.push(crowd.len() as f64 * one / slowest);
            }
        }
    }
    if !loss.is_finite() {
        // Still a valid timing (NaN costs the same as any float on AVX2), but say so.
        eprintln!("note: the benchmark's random-label training diverged (loss {loss})");
    }

    let flops = arch.step_flops(batch) as f64;
    let Spread { median, min, max, .. } = spread(&mut step_ms);
    let Spread { median: gemm_median, min: gemm_min, .. } = spread(&mut gemm_ms);
    let ratio_median = spread(&mut ratio).median;
    let gflops = flops / (median * 1e-3) / 1e9;
    let gemm_gflops = flops / (gemm_median * 1e-3) / 1e9;
    let counted = if single.is_some() { 2 * steps } else { steps };
    let allocs_per_step = step_allocs as f64 / counted as f64;
    let one_thread =
        (!single_ms.is_empty()).then(|| (spread(&mut single_ms).median, spread(&mut speedup)));
    let independent = (!independent.is_empty()).then(|| spread(&mut independent));
    let round_trip = (!round_trips.is_empty()).then(|| spread(&mut round_trips));
    if args.json {
        let value = serde_json::json!({
            "batch": batch,
            "layers": arch.layers,
            "width": arch.width(),
            "threads": trainer.threads(),
            "threads_requested": args.threads.get(),
            "optimizer": kind.name(),
            "steps": steps,
            "warmup": args.warmup.max(1),
            "ms_per_step": median,
            "ms_min": min,
            "ms_max": max,
            "gflops": gflops,
            "step_flops": arch.step_flops(batch),
            "gemm_ms": gemm_median,
            "gemm_ms_min": gemm_min,
            "gemm_gflops": gemm_gflops,
            "step_over_gemm": ratio_median,
            "allocs_per_step": allocs_per_step,
            "allocs_warmup": warmup_allocs,
            "kernel": sgemm_kernel_name(),
            "huge_pages_mib": huge_pages_mib(),
            "one_thread_ms": one_thread.map(|(ms, _)| ms),
            "thread_speedup": one_thread.map(|(_, x)| x.median),
            "thread_speedup_quartiles": one_thread.map(|(_, x)| x.quartiles),
            "independent_speedup": independent.map(|x| x.median),
            "independent_speedup_quartiles": independent.map(|x| x.quartiles),
            "core_round_trip_ns": round_trip.map(|x| x.median),
            "core_round_trip_ns_quartiles": round_trip.map(|x| x.quartiles),
            "last_loss": if loss.is_finite() { serde_json::json!(loss) } else { serde_json::Value::Null },
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "idmlp bench: B = {batch}, L = {}, D = {}, {}, {} thread(s), {steps} steps after {} warm-up ({} kernel)",
        arch.layers,
        arch.width(),
        kind.name(),
        trainer.threads(),
        args.warmup.max(1),
        sgemm_kernel_name()
    );
    println!(
        "step         median {median:8.2} ms   min {min:8.2}   max {max:8.2}   {gflops:6.1} GFLOP/s"
    );
    println!(
        "GEMMs alone  median {gemm_median:8.2} ms   min {gemm_min:8.2}   {:>15}{gemm_gflops:6.1} GFLOP/s   ({} GEMMs, β = 0)",
        "",
        (3 * arch.layers).saturating_sub(1)
    );
    println!("step ÷ GEMMs {ratio_median:.3} (median of paired ratios; GEMMs on one thread)");
    if let Some((ms, Spread { median: x, quartiles: [q1, q3], .. })) = one_thread {
        println!(
            "1 thread     median {ms:8.2} ms   speed-up with {} threads {x:.2}× (median of paired ratios; quartiles {q1:.2}–{q3:.2})",
            trainer.threads()
        );
    }
    if let Some(Spread { median: x, quartiles: [q1, q3], .. }) = independent {
        println!(
            "independent  {} one-thread trainers at once: {x:.2}× one alone (median of rounds; quartiles {q1:.2}–{q3:.2})",
            trainer.threads()
        );
    }
    if let Some(Spread { median: x, quartiles: [q1, q3], .. }) = round_trip {
        println!(
            "cores        cache-line round trip between two threads {x:.0} ns (median of rounds; quartiles {q1:.0}–{q3:.0})"
        );
    }
    println!("allocations per step: {allocs_per_step} (warm-up: {warmup_allocs})");
    if let Some(mib) = huge_pages_mib() {
        println!("on huge pages: {mib} MiB of this process's memory");
    }
    Ok(())
}

/// Steps every trainer of `crowd` on its own thread at once: a barrier, an untimed
/// lead-in step each, a barrier, a timed step each. Returns the slowest timed step (ms):
/// how long the machine took to do `crowd.len()` one-thread steps side by side.
fn step_at_once(crowd: &mut [Trainer], x: &[f32], y: &[u32]) -> f64 {
    let start = Barrier::new(crowd.len());
    let timed = Barrier::new(crowd.len());
    std::thread::scope(|scope| {
        let runs: Vec<_> = crowd
            .iter_mut()
            .map(|t| {
                let (start, timed) = (&start, &timed);
                scope.spawn(move || {
                    start.wait();
                    t.step(x, y);
                    timed.wait();
                    let at = Instant::now();
                    t.step(x, y);
                    at.elapsed().as_secs_f64() * 1e3
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("a trainer of --independent panicked"))
            .fold(0.0, f64::max)
    })
}

/// Mean time (ns) for one cache line to go from this thread to a fresh one and back,
/// over up to 2,000 round trips or 2 ms, whichever ends first.
///
/// Why: how far apart the OS and the hypervisor have put two threads at this moment.
/// The 2-thread step hands cache lines between its threads all the time, and on this
/// VM the distance changes over seconds: this measure gave mostly 150–240 ns per
/// round and at times about 550 ns, and a probe timing each op split on two threads
/// against two independent copies kept 0.97 of their rate on the forward product while
/// its round trips were short and 0.84–0.90 while they were long (docs/bench-history.md).
/// Microseconds mean that the two threads shared one CPU.
fn round_trip_ns() -> f64 {
    const TRIPS: u64 = 2000;
    const STOP: u64 = u64::MAX;
    let line = AtomicU64::new(0);
    std::thread::scope(|scope| {
        // The echo: answers each odd value v with v + 1, until STOP. The caller writes
        // the next odd value only after seeing the answer, so each is answered once.
        scope.spawn(|| {
            loop {
                match line.load(Ordering::Acquire) {
                    STOP => return,
                    v if v % 2 == 1 => line.store(v + 1, Ordering::Release),
                    _ => std::hint::spin_loop(),
                }
            }
        });
        let start = Instant::now();
        let mut trips = 0;
        while trips < TRIPS && start.elapsed().as_micros() < 2000 {
            let v = 2 * trips + 1;
            line.store(v, Ordering::Release);
            while line.load(Ordering::Acquire) != v + 1 {
                std::hint::spin_loop();
            }
            trips += 1;
        }
        let ns = start.elapsed().as_nanos() as f64 / trips.max(1) as f64;
        line.store(STOP, Ordering::Release);
        ns
    })
}

/// MiB of this process's anonymous memory on transparent huge pages (Linux's
/// `AnonHugePages`), or `None` where that is not reported: says whether the trainer's
/// buffers got the pages it asked for (kernels with THP `never` give 0).
fn huge_pages_mib() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = rollup.lines().find_map(|l| l.strip_prefix("AnonHugePages:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::{Spread, spread};

    #[test]
    fn spread_interpolates_quartiles_between_sorted_values() {
        let four = spread(&mut [4.0, 1.0, 3.0, 2.0]);
        assert_eq!(four, Spread { median: 2.5, min: 1.0, max: 4.0, quartiles: [1.75, 3.25] });
        assert_eq!(spread(&mut [1.7]).quartiles, [1.7, 1.7]);
        let five = spread(&mut [5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!((five.median, five.quartiles), (3.0, [2.0, 4.0]));
    }
}
