//! A persistent worker pool for splitting one kernel call across cores, with no heap
//! allocation per call (feature `std`).
//!
//! Why not `std::thread::scope`: spawning allocates (a thread, its stack, a packet),
//! and a training step must allocate nothing after warm-up. The workers here are
//! spawned once, in [`Pool::new`], and wait between calls; [`Pool::run`] hands them a
//! borrowed closure and returns only after every worker is done with it, which is what
//! makes lending a non-`'static` closure sound.
//!
//! Waiting is spin-then-park, on both sides: a worker spins for up to [`SPIN`] (the
//! budget below) on the job counter before it parks on a condition variable, and so
//! does the caller on the count of unfinished workers before it sleeps. Why: a
//! 2-thread training step at (B = 128, L = 20) is 376 calls (counted by a probe), on
//! average ~250 µs apart, and waking a parked thread costs a futex round trip plus, on
//! a virtual machine, waking an idle vCPU: measured here, 40 µs on average per call
//! and sometimes milliseconds, during which one core works alone. A spinning thread
//! sees the next call within a microsecond.
//!
//! The spin is adaptive: a wait that spins out its budget halves it (down to
//! [`MIN_SPIN`]), one that ends while spinning doubles it (up to [`SPIN`]). Why: when
//! the cores are oversubscribed (another busy process), the scheduler can put the
//! caller and a worker on one core, and a worker spinning for the next call then holds
//! the core the caller needs to make that call, so every spin runs out. With a busy
//! loop on one of two cores, `idmlp bench --batch 128 --layers 20 --threads 2` measured
//! the 2-thread step at 0.74 and 0.76× the one-thread step with a fixed 500 µs spin,
//! 0.99 and 0.90× with the adaptive one. On free cores the calls of a step come within
//! the budget, the spins end in time, and it stays at [`SPIN`]: 10 interleaved runs
//! each gave speed-ups of median 1.697 (fixed) and 1.725 (adaptive).
//!
//! Each thread also owns a GEMM packing workspace ([`Pool::pack`]), so that the
//! parallel GEMMs of [`crate::par`] allocate nothing either.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sgemm::PACK_LEN;

/// The most threads a pool runs (partitions are built in fixed-size stack arrays).
pub const MAX_THREADS: usize = 16;

/// The most pieces a call is cut into (a few per thread, see [`crate::par`]).
pub const MAX_PIECES: usize = 4 * MAX_THREADS;

/// How long a waiting thread spins at most before it parks: long enough to span the
/// gaps between the calls of a training step (the serial work between two GEMMs, or
/// the next step's batch), short enough that an idle pool stops burning a core at once.
pub const SPIN: Duration = Duration::from_micros(500);

/// The least a waiting thread spins: the budget never drops to nothing, so that spins
/// can still end in time and win it back once the cores are free again.
pub const MIN_SPIN: Duration = Duration::from_micros(2);

/// Spins until `ready()` or until the pool's spin budget has passed, which it then
/// halves (a spin that ends in time doubles it); returns `ready()`'s last value.
fn spin_until(shared: &Shared, ready: impl Fn() -> bool) -> bool {
    let budget = Duration::from_nanos(shared.spin_ns.load(Ordering::Relaxed));
    let start = Instant::now();
    loop {
        // Reading the clock costs ~20 ns; check it every few dozen polls only.
        for _ in 0..32 {
            if ready() {
                if budget < SPIN {
                    shared.set_spin((2 * budget).min(SPIN));
                }
                return true;
            }
            core::hint::spin_loop();
        }
        if start.elapsed() >= budget {
            shared.set_spin((budget / 2).max(MIN_SPIN));
            return ready();
        }
    }
}

/// The job type: called once per thread index `0..threads`.
type Job<'a> = dyn Fn(usize) + Sync + 'a;

/// A borrowed job with its lifetime erased; valid while [`Pool::run`] waits.
#[derive(Clone, Copy)]
struct JobPtr(*const Job<'static>);

// SAFETY: the pointee is `Sync` (so calling it from another thread is fine), and
// `Pool::run` keeps it alive until every worker has reported back (see `run`).
#[allow(unsafe_code)]
unsafe impl Send for JobPtr {}

struct State {
    /// The current job; `None` once the caller has finished its own call, so that a
    /// worker waking up later does not start it.
    job: Option<JobPtr>,
    /// Incremented per job: a worker runs each epoch at most once.
    epoch: u64,
    /// Workers that started the current job and have not finished it.
    pending: usize,
    panicked: bool,
    quit: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
    /// `state.epoch`, readable without the lock (and bumped on quit): what a waiting
    /// worker spins on.
    epoch: AtomicU64,
    /// `state.pending`, readable without the lock: what the waiting caller spins on.
    pending: AtomicUsize,
    /// How long a wait spins before it parks, in ns ([`spin_until`]).
    spin_ns: AtomicU64,
}

impl Shared {
    fn set_spin(&self, spin: Duration) {
        // At most SPIN: fits u64 nanoseconds.
        self.spin_ns.store(spin.as_nanos() as u64, Ordering::Relaxed);
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic inside a job is caught before the lock is taken again, so poisoning can
    // only come from a bug here; the state stays consistent either way.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `threads − 1` parked workers plus the calling thread, and one packing workspace
/// per thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    packs: Vec<Mutex<Vec<f32>>>,
    /// One packed B that all threads read (grown on first use, kept).
    packed_b: Mutex<Vec<f32>>,
}

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool").field("threads", &self.threads()).finish()
    }
}

impl Pool {
    /// A pool of `threads` threads (clamped to `1..=MAX_THREADS`): the caller of
    /// [`Pool::run`] is thread 0, and `threads − 1` workers are spawned here, once.
    pub fn new(threads: usize) -> Self {
        let threads = threads.clamp(1, MAX_THREADS);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                epoch: 0,
                pending: 0,
                panicked: false,
                quit: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            epoch: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            spin_ns: AtomicU64::new(SPIN.as_nanos() as u64),
        });
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("idmlp-worker-{index}"))
                    .spawn(move || worker(&shared, index))
                    .expect("idmlp: cannot spawn a worker thread")
            })
            .collect();
        let packs = (0..threads).map(|_| Mutex::new(vec![0.0; PACK_LEN])).collect();
        Pool { shared, workers, packs, packed_b: Mutex::new(Vec::new()) }
    }

    /// Threads that [`Pool::run`] uses, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Thread `index`'s packing workspace ([`PACK_LEN`] floats). Each thread locks
    /// only its own, so the lock is never contended.
    pub fn pack(&self, index: usize) -> MutexGuard<'_, Vec<f32>> {
        self.packs[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pool's shared packed-B buffer, at least `len` floats: grown on first use and
    /// kept, so steady-state calls allocate nothing. The caller of [`Pool::run`] locks
    /// it around a call whose threads pack B into it together and then all read it
    /// (see [`crate::par`]); contents on entry are unspecified.
    pub fn packed_b(&self, len: usize) -> MutexGuard<'_, Vec<f32>> {
        let mut b = self.packed_b.lock().unwrap_or_else(PoisonError::into_inner);
        if b.len() < len {
            b.resize(len, 0.0);
        }
        b
    }

    /// Calls `job(0)` on the calling thread and `job(i)` on each worker `i` that wakes
    /// up before `job(0)` returns, then waits (spinning, then parked) for the calls
    /// that started. A panic in any call is re-raised here after all have finished.
    /// Allocates nothing.
    ///
    /// A worker that is not scheduled in time (a busy machine) is skipped rather than
    /// waited for, so a job must claim its pieces of work dynamically (an atomic
    /// counter) and `job(0)` must finish whatever is left: then the caller never
    /// sleeps on a descheduled worker, and the result cannot depend on who ran what.
    pub fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            return job(0);
        }
        // SAFETY: only the lifetime is erased. A worker copies the pointer out of the
        // state only while `job` is `Some` (and counts itself in `pending` under the
        // same lock); this function clears `job` and then waits for `pending` to reach
        // zero before returning (not even unwinding skips that: `job(0)` runs under
        // catch_unwind), so `job` outlives every use.
        #[allow(unsafe_code)]
        let ptr =
            JobPtr(unsafe { core::mem::transmute::<*const Job<'_>, *const Job<'static>>(job) });
        let shared = &*self.shared;
        {
            let mut s = lock(&shared.state);
            s.job = Some(ptr);
            s.epoch = s.epoch.wrapping_add(1);
            s.pending = 0;
            s.panicked = false;
            shared.pending.store(0, Ordering::Relaxed);
            shared.epoch.store(s.epoch, Ordering::Release);
        }
        shared.work.notify_all();
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        let mut s = lock(&shared.state);
        // From here on no worker starts this job: those that did are in `pending`.
        s.job = None;
        if s.pending > 0 {
            drop(s);
            // Whatever the spin sees, the lock below orders the workers' writes before
            // our return: they decrement `pending` under it.
            spin_until(shared, || shared.pending.load(Ordering::Acquire) == 0);
            s = lock(&shared.state);
            while s.pending > 0 {
                s = shared.done.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
        }
        let theirs = s.panicked;
        drop(s);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        assert!(!theirs, "idmlp: a worker thread panicked");
    }
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        spin_until(shared, || shared.epoch.load(Ordering::Acquire) != seen);
        let mut s = lock(&shared.state);
        while s.epoch == seen && !s.quit {
            s = shared.work.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.quit {
            return;
        }
        seen = s.epoch;
        // Too late (the caller has finished): skip this job.
        let Some(JobPtr(job)) = s.job else { continue };
        s.pending += 1;
        shared.pending.store(s.pending, Ordering::Relaxed);
        drop(s);
        // SAFETY: `Pool::run` keeps the job alive until `pending` reaches zero, which
        // needs this worker's decrement below.
        #[allow(unsafe_code)]
        let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)(index) }));
        let mut s = lock(&shared.state);
        s.panicked |= result.is_err();
        s.pending -= 1;
        shared.pending.store(s.pending, Ordering::Release);
        if s.pending == 0 {
            shared.done.notify_one();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.state).quit = true;
        // Wakes the spinning workers too: they take the lock and see `quit`.
        self.shared.epoch.fetch_add(1, Ordering::Release);
        self.shared.work.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Splits `0..len` into `parts` contiguous pieces whose boundaries are multiples of
/// `unit` (the last piece takes the rest): piece `i` is returned.
pub fn piece(len: usize, parts: usize, unit: usize, i: usize) -> core::ops::Range<usize> {
    let units = len.div_ceil(unit);
    let bound = |j: usize| (units * j / parts * unit).min(len);
    bound(i)..if i + 1 == parts { len } else { bound(i + 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(shared: &Shared) -> Duration {
        Duration::from_nanos(shared.spin_ns.load(Ordering::Relaxed))
    }

    /// The budget rule alone, on a pool without workers (so no thread but this one
    /// waits): a wait that spins out halves it down to MIN_SPIN, one that ends while
    /// spinning doubles it up to SPIN.
    #[test]
    fn spin_budget_halves_when_a_wait_spins_out_and_doubles_when_it_ends_in_time() {
        let pool = Pool::new(1);
        let shared = &*pool.shared;
        assert_eq!(budget(shared), SPIN);
        assert!(!spin_until(shared, || false));
        assert_eq!(budget(shared), SPIN / 2);
        for _ in 0..20 {
            assert!(!spin_until(shared, || false));
        }
        assert_eq!(budget(shared), MIN_SPIN);
        assert!(spin_until(shared, || true));
        assert_eq!(budget(shared), 2 * MIN_SPIN);
        for _ in 0..20 {
            assert!(spin_until(shared, || true));
        }
        assert_eq!(budget(shared), SPIN);
    }
}
