//! Wider vectors for the plain loops: a loop body handed to `wide!` is compiled a
//! second time with AVX2 enabled and that copy runs when the CPU has AVX2.
//!
//! The memory-bound kernels (batch-1 GEMM paths, optimizer updates) are written as
//! ordinary loops that the compiler vectorises. For the baseline x86-64 target that
//! means 4-wide SSE, which measured 25–45% slower than AVX2 on the weights that sit
//! in L3. AVX2 alone (no FMA) changes the width of the instructions, not the
//! arithmetic: Rust never fuses `a * b + c`, and each lane adds in the same order,
//! so both copies give bit-identical results (`tests/twins.rs` checks it).

use core::sync::atomic::{AtomicBool, Ordering};

/// Evaluates `$body`, compiled for AVX2 when this CPU has it.
///
/// The AVX2 copy is a closure called from one `#[target_feature]` function and
/// nowhere else, so the compiler inlines it there (one call site) and vectorises it
/// with 256-bit registers; the fallback is `$body` inline. What `$body` calls must be
/// `#[inline(always)]` to be compiled into the AVX2 copy.
macro_rules! wide {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let result = match $crate::simd::Avx2::detect() {
            Some(avx2) => avx2.run(
                #[inline(always)]
                || $body,
            ),
            None => $body,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let result = $body;
        result
    }};
}
pub(crate) use wide;

/// Set by [`baseline_only`]: every `wide!` body runs its baseline build.
static BASELINE_ONLY: AtomicBool = AtomicBool::new(false);

/// Makes every `wide!` kernel run its baseline (SSE2) build while `on`, so that tests
/// can check both builds give the same bits. Not for production use.
#[doc(hidden)]
pub fn baseline_only(on: bool) {
    BASELINE_ONLY.store(on, Ordering::Relaxed);
}

/// Proof that this CPU executes AVX2: its only constructor is [`Avx2::detect`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// With `std`, a run-time check (cached by std: one atomic load); without it,
    /// only what the compile target guarantees.
    #[inline(always)]
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(feature = "std")]
        let ok = std::is_x86_feature_detected!("avx2");
        #[cfg(not(feature = "std"))]
        let ok = cfg!(target_feature = "avx2");
        (ok && !BASELINE_ONLY.load(Ordering::Relaxed)).then_some(Avx2(()))
    }

    #[inline(always)]
    #[allow(unsafe_code)]
    pub(crate) fn run<R>(self, body: impl FnOnce() -> R) -> R {
        #[target_feature(enable = "avx2")]
        #[inline]
        unsafe fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        // SAFETY: `self` exists only when `detect` saw AVX2 on this CPU, which is the
        // one precondition of calling a `#[target_feature(enable = "avx2")]` function.
        unsafe { with_avx2(body) }
    }
}
