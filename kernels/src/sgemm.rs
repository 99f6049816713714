//! Packed single-precision GEMM with a caller-owned workspace: `C ← α·A·B + β·C`.
//!
//! Why it exists: `matrixmultiply::sgemm` allocates its packing buffer on every call,
//! and a training step must not allocate after warm-up. [`sgemm`] takes the packing
//! workspace as an argument ([`PACK_LEN`] floats, allocated once by the caller) and is
//! otherwise the same algorithm, tuned for this model's shapes.
//!
//! # The loop nest (BLIS / GotoBLAS)
//!
//! ```text
//! for jc in 0..n step NC          column block of B and C
//!   for pc in 0..k step KC        k block: pack B[pc.., jc..] into B̃ (kc×nc, NR-wide panels)
//!     for ic in 0..m step MC      row block: pack A[ic.., pc..] into Ã (mc×kc, MR-tall panels)
//!       for jr in 0..nc step NR   one B̃ micro-panel (kc×NR): stays in L1 for the loop below
//!         for ir in 0..mc step MR one Ã micro-panel (MR×kc), streamed from L2
//!           microkernel: the MR×NR tile of C ← α·Ã_ir·B̃_jr + β·C, accumulated in registers
//! ```
//!
//! The first k block applies the caller's β; later k blocks accumulate (β = 1). Each
//! dimension is cut into blocks of *equal* size (rounded up to the kernel unit), not
//! into full blocks plus a ragged tail: k = 794 becomes 3 × 272 rather than
//! 2 × 320 + 154, so no block pays a pass over C for a short stretch of k.
//!
//! Edges: a tile with fewer than MR rows runs a kernel compiled for exactly that many
//! rows (no wasted FMAs: m = B is rarely a multiple of 6); a tile with fewer than NR
//! columns, or a C whose columns are not contiguous, is computed into a stack tile and
//! copied out element by element, so nothing outside the m×n view of C is touched.
//!
//! Microkernels ([`Kernel`]): `avx512` (x86-64 with AVX-512F: 6×32 tiles over two
//! B̃ panels, bit-identical to `avx2`), `avx2` (x86-64 with AVX2 + FMA: 6×16) and
//! `portable` (plain Rust over fixed-size arrays); the fastest the CPU has is chosen at
//! run time with `std`, at compile time without. All read the same packed layout;
//! packing lives in `pack`.
//!
//! Safety: the `unsafe` is confined to `avx2` and `avx512`. Everything else, including
//! every store to C outside a full SIMD tile, is safe indexing, and the unsafe kernels
//! are reached only through safe wrappers that assert the bounds they rely on.
//!
//! # Block sizes (2-core Zen 3: 32 KiB L1d and 512 KiB L2 per core, shared L3)
//!
//! The AVX-512 kernel keeps them (they fix the k blocks, and so the bits); on the Zen 5
//! host it was measured on (48 KiB L1d, 1 MiB L2) its two-panel B̃ micro-panel is 40 KiB
//! at KC = 320, and three panels (60 KiB) measured no faster.
//!
//! Chosen by measurement on the `sgemm` bench's shapes (D = 794, B ∈ {32, 128, 512});
//! each constant's doc says why. Tried and rejected:
//! - 8×8 tiles (matrixmultiply's shape): 5–15% slower (8 FMA chains, 9 loads per
//!   8 FMAs);
//! - 4×24 tiles: 12 accumulators, 3 B vectors and a broadcast need all 16 ymm, LLVM
//!   spills an accumulator every k step: about half speed;
//! - KC = 256 or 512 (k = 794 in 4 or 2 blocks): 2–6% slower;
//! - MC = 96 or 192: no difference beyond noise;
//! - NC = 256 or 512 (A re-packed, B̃ no faster): about 7% slower;
//! - packing B̃ in groups of micro-panels just before their first use (into the
//!   same few L2-resident slots when m is one row block), with or without software
//!   prefetch of the next panel, instead of one pass per k block: no better, and
//!   worse for a row-major B, whose rows it reads in short pieces;
//! - for m ≤ MC < n, computing Cᵀ = Bᵀ·Aᵀ so that W goes through the L2-resident Ã:
//!   5–15% slower, as every tile of Cᵀ is stored through the scalar edge path.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod pack;
mod portable;

/// Microkernel rows: the rows of C one microkernel call produces.
///
/// 6×16 is the classic AVX2 shape (BLIS Haswell/Zen): 6 rows × 2 ymm = 12 accumulators,
/// plus 2 ymm of B and 1 broadcast of A = 15 of the 16 ymm registers. 12 independent
/// FMA chains cover Zen 3's 2 FMA pipes × 4-cycle latency with room to spare, and a
/// k step loads 22 floats (2 vectors + 6 broadcasts) for 96 multiply-adds.
pub const MR: usize = 6;

/// Microkernel columns: the columns of C one microkernel call produces (2 ymm of 8).
///
/// Columns, not rows, are the vector direction because our C is row-major: a full
/// tile stores 2 contiguous vectors per row, and a packed k step of B̃ is one 64-byte
/// cache line.
pub const NR: usize = 16;

/// k block: the largest kc whose B̃ micro-panel (kc × 64 B) and Ã micro-panel
/// (kc × 24 B) fit together in Zen 3's 32 KiB L1d with room to spare (28 KiB at 320),
/// so that the `ir` loop re-reads B̃ from L1. k = 794 splits into 3 × 272.
pub const KC: usize = 320;

/// m block: Ã is MC×KC (180 KiB at 144×320), about a third of Zen 3's 512 KiB L2,
/// leaving room for the B̃ micro-panel stream and the C tiles. B = 512 splits into
/// 4 × 132. A multiple of [`MR`].
pub const MC: usize = 144;

/// n block: B̃ is KC×NC (1.25 MiB, in L3). NC only has to be large enough that
/// re-packing A once per n block is negligible, and ≥ D = 794 so that this model's
/// GEMMs pack A exactly once. A multiple of [`NR`].
pub const NC: usize = 1024;

/// The most B̃ panels a microkernel tile spans ([`Micro::PANELS`]).
const MAX_PANELS: usize = 2;

/// Floats of slack in front of the packed buffers, so that they can start on a
/// 64-byte (cache-line) boundary whatever the alignment of the caller's slice.
const ALIGN_SLACK: usize = 16;

/// Packing workspace length (in f32) that [`sgemm`] and [`sgemm_stripes`] need for
/// any `m`, `k`, `n`: the block sizes bound it (B̃: KC×NC, Ã: MC×KC, one MR×NC stripe
/// of C, plus alignment slack), ≈ 1.45 MiB. Allocate it once (`vec![0.0; PACK_LEN]`)
/// and reuse it; its contents on entry do not matter and on return are unspecified.
pub const PACK_LEN: usize = ALIGN_SLACK + KC * NC + MC * KC + MR * NC;

const _: () = {
    assert!(MC.is_multiple_of(MR) && NC.is_multiple_of(NR) && KC.is_multiple_of(8));
    assert!(NR.is_multiple_of(8), "the AVX2 kernel and B packer work in ymm vectors of 8");
};

/// `C ← α·A·B + β·C` with `C: m×n`, `A: m×k`, `B: k×n`, every operand addressed by
/// element strides: `A[i, p] = a[i·rsa + p·csa]`, `B[p, j] = b[p·rsb + j·csb]`,
/// `C[i, j] = c[i·rsc + j·csc]`. A transposed operand is a stride swap, never a copy;
/// a submatrix of a larger C is a row stride larger than `n`.
///
/// - With `β = 0`, C is not read: NaN or garbage in C does not leak into the result.
/// - With `α = 0` (or `k = 0`), A and B are not read either: `C ← β·C` (as in BLAS).
/// - Only the `m×n` elements of C are written; elements between them (padding of a
///   strided view) are untouched.
/// - `pack` is the packing workspace: `pack.len() >= PACK_LEN`, contents irrelevant.
///   Nothing is allocated, ever.
///
/// Fastest when C is row-major (`csc = 1`); any layout is correct.
///
/// # Panics
///
/// With a message naming the operand, if `pack` is shorter than [`PACK_LEN`]; if a
/// slice is too short for its dimensions and strides (the largest index is computed
/// with overflow checks); or if C's strides make two of its elements overlap. C
/// must be a grid: its smaller stride ≥ 1 (when that dimension has more than one
/// element) and its larger stride ≥ smaller stride × that dimension's extent (so
/// interleaved layouts such as `rsc = 2, csc = 3` are rejected even where they happen
/// not to collide). A and B may use any strides, including 0 (a broadcast).
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
    pack: &mut [f32],
) {
    let b = BSource::Strided { b, rsb, csb };
    sgemm_from(m, k, n, alpha, (a, rsa, csa), b, Start::Beta(beta), (c, rsc, csc), pack);
}

/// `C ← α·A·B + bias`, the bias row added to every row of C: [`sgemm`] with the
/// bias folded into the first k block's store, instead of a pass that writes it into
/// C before a `β = 1` call. C is not read (NaN in C does not leak), and each element
/// gets the bits of that copy followed by `sgemm` with `β = 1`: the kernels read the
/// bias as a C whose rows all start at `bias`.
///
/// # Panics
///
/// As [`sgemm`], and if `bias` is shorter than `n`.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn sgemm_bias(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    bias: &[f32],
    c: &mut [f32],
    rsc: usize,
    csc: usize,
    pack: &mut [f32],
) {
    let b = BSource::Strided { b, rsb, csb };
    sgemm_from(m, k, n, alpha, (a, rsa, csa), b, Start::Bias(bias), (c, rsc, csc), pack);
}

/// The entry behind [`sgemm`] and its variants: B from `b` (strided or packed whole),
/// the first k block's addend from `start`.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_from(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    (a, rsa, csa): (&[f32], usize, usize),
    b: BSource<'_>,
    start: Start<'_>,
    (c, rsc, csc): (&mut [f32], usize, usize),
    pack: &mut [f32],
) {
    run_dispatch(Args { m, k, n, alpha, a, rsa, csa, b, start, rsc, csc }, c, pack);
}

/// Floats that a `k×n` B takes packed whole: `k` steps of `⌈n/NR⌉` panels of NR
/// floats (the last panel zero-padded).
///
/// The layout, which [`sgemm_packed_b`] and [`sgemm_stripes_packed_b`] read, is
/// block-major: for each k block of [`packed_b_blocks`], in order, the B̃ that
/// [`sgemm`] itself would pack for it. Block `steps` starts at
/// `steps.start·⌈n/NR⌉·NR`; within it panel `q` (columns `q·NR..`) starts at
/// `q·steps.len()·NR`, and its step `p` at `p·NR` from there.
///
/// # Panics
///
/// If that overflows `usize`.
#[track_caller]
pub fn packed_b_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR)
        .checked_mul(NR * k)
        .unwrap_or_else(|| panic!("sgemm: a packed {k}×{n} B overflows usize"))
}

/// The k blocks of a product with shared dimension `k`: the ranges of B's rows (k
/// steps) that [`sgemm`] packs and multiplies one at a time, in order, and so the
/// blocks of a packed B ([`packed_b_len`]).
pub fn packed_b_blocks(k: usize) -> impl Iterator<Item = core::ops::Range<usize>> {
    // Multiples of 8 keep the AVX2 transposing packer on full 8×8 blocks.
    let step = if k == 0 { 1 } else { even_step(k, KC, 8) };
    (0..k).step_by(step).map(move |p| p..(p + step).min(k))
}

/// Packs panels `panels` of the k block `steps` of the `k×n` B (strides as in
/// [`sgemm`]; panel `q` is columns `q·NR..(q + 1)·NR`, zero-padded past `n`) into
/// `dst`, exactly `panels.len()·steps.len()·NR` floats: the stretch of the packed B
/// ([`packed_b_len`]) at `steps.start·⌈n/NR⌉·NR + panels.start·steps.len()·NR`.
/// `steps` must be one of [`packed_b_blocks`]`(k)` for the packed B to be read right.
///
/// Why by pieces: so that several threads can pack one B together, each into its own
/// disjoint stretch, and then share it (`crate::par`). The packed values are copies,
/// so how B is cut makes no difference to them.
///
/// # Panics
///
/// If `steps` reaches past `k` or `panels` past B's last panel, if `dst` has the wrong
/// length, or if `b` is too short for its dimensions and strides.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn pack_b_panels(
    k: usize,
    n: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    steps: core::ops::Range<usize>,
    panels: core::ops::Range<usize>,
    dst: &mut [f32],
) {
    assert!(
        steps.start <= steps.end && steps.end <= k,
        "pack_b_panels: steps {steps:?} of a B with {k} rows"
    );
    assert!(
        panels.start <= panels.end && panels.end <= n.div_ceil(NR),
        "pack_b_panels: panels {panels:?} of a B with {} columns ({} panels)",
        n,
        n.div_ceil(NR)
    );
    let need = panels.len() * NR * steps.len();
    assert!(
        dst.len() == need,
        "pack_b_panels: {} panels of {} steps need {need} floats, dst has {}",
        panels.len(),
        steps.len(),
        dst.len()
    );
    check_operand("B", b.len(), k, n, rsb, csb);
    if need == 0 {
        return;
    }
    let j0 = panels.start * NR;
    let (kc, nc, b0) = (steps.len(), n.min(panels.end * NR) - j0, steps.start * rsb + j0 * csb);
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = avx2::Avx2Fma::detect() {
        return isa.pack_b(kc, nc, b, b0, rsb, csb, dst);
    }
    portable::Portable.pack_b(kc, nc, b, b0, rsb, csb, dst);
}

/// Packs steps (rows of B) `steps` of panels `q0..q0 + dst.len()` of a **row-major**
/// `k×n` B (row stride `rsb`, column stride 1) into `dst[i]`: panel `q0 + i`'s
/// stretch for those steps, `steps.len()·NR` floats. In a packed B those steps lie in
/// one k block, and `dst[i]` starts at their offset (`(p − block start)·NR`) inside
/// that block's panel `q0 + i` (see [`packed_b_len`]).
///
/// Why: threads sharing one packed B cut a row-major B by bands of its rows, each
/// read as one stream; cut by panels (bands of columns), each thread reads half of
/// every row, which measured as slow as reading all of it.
///
/// # Panics
///
/// If `steps` reaches past `k`, the panels past B's last, a `dst[i]` is not
/// `steps.len()·NR` floats, or `b` is too short.
#[track_caller]
pub fn pack_b_steps(
    k: usize,
    n: usize,
    b: &[f32],
    rsb: usize,
    steps: core::ops::Range<usize>,
    q0: usize,
    dst: &mut [&mut [f32]],
) {
    assert!(
        steps.start <= steps.end && steps.end <= k,
        "pack_b_steps: steps {steps:?} of a B with {k} rows"
    );
    assert!(
        q0 + dst.len() <= n.div_ceil(NR),
        "pack_b_steps: panels {q0}..{} of a B with {n} columns",
        q0 + dst.len()
    );
    let want = steps.len() * NR;
    for (i, d) in dst.iter().enumerate() {
        assert!(
            d.len() == want,
            "pack_b_steps: panel {} has {} floats, needs {want}",
            q0 + i,
            d.len()
        );
    }
    check_operand("B", b.len(), k, n, rsb, 1);
    pack::pack_b_steps(n, b, rsb, steps.start, steps.len(), q0, dst);
}

/// [`sgemm`] with B given packed whole ([`packed_b_len`]`(k, n)` floats, filled by
/// [`pack_b_panels`] or [`pack_b_steps`]), so that one packing of B serves several calls:
/// one per piece of C's rows, on several threads. The bits are those of [`sgemm`]
/// (same packed values, same tiles, same k order).
///
/// # Panics
///
/// As [`sgemm`], with `packed_b` shorter than [`packed_b_len`]`(k, n)` in place of a
/// short `b`.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn sgemm_packed_b(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    packed_b: &[f32],
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
    pack: &mut [f32],
) {
    let b = BSource::Packed(packed_b);
    sgemm_from(m, k, n, alpha, (a, rsa, csa), b, Start::Beta(beta), (c, rsc, csc), pack);
}

/// Whether [`sgemm_stripes`] takes a product with shared dimension `k` and `n`
/// columns: both must fit one block (`1 ≤ k ≤ KC`, `n ≤ NC`), so that one microkernel
/// call finishes each tile of C.
pub fn stripes_fit(k: usize, n: usize) -> bool {
    (1..=KC).contains(&k) && n <= NC
}

/// Where [`sgemm_stripes`] hands its stripes of C. Any `FnMut(first_row, stripe)` is
/// one (with no look-ahead).
pub trait StripeSink {
    /// The tile at columns `col..col + NR` of the `rows` rows from `first_row` is about
    /// to be computed: a hint to prefetch what [`StripeSink::stripe`] will touch there,
    /// so that its memory traffic overlaps the microkernel's arithmetic. No-op by default.
    #[inline]
    fn before_tile(&mut self, first_row: usize, rows: usize, col: usize) {
        let _ = (first_row, rows, col);
    }

    /// Takes the finished rows `first_row..first_row + c.len() / n` of C (row-major).
    fn stripe(&mut self, first_row: usize, c: &[f32]);
}

impl<F: FnMut(usize, &[f32])> StripeSink for F {
    fn stripe(&mut self, first_row: usize, c: &[f32]) {
        self(first_row, c)
    }
}

/// `C ← α·A·B` (`C: m×n`, `A: m×k`, `B: k×n`, strides as in [`sgemm`]) without storing
/// C: it is computed [`MR`] rows at a time into a stripe inside `pack`, and
/// `sink.stripe(first_row, stripe)` gets each stripe (`rows·n` floats, row-major,
/// `rows ≤ MR`) as soon as it is final, in row order.
///
/// Why: a consumer of C that works row by row (the optimizer update of a weight
/// gradient) then reads C from L1 instead of from a buffer in memory, and C is never
/// written to memory at all. Every element gets the instructions it gets in
/// [`sgemm`] with `β = 0` (same packing, same microkernel, same k order): the bits are
/// those of `sgemm` followed by `sink` over the stored C.
///
/// # Panics
///
/// Unless [`stripes_fit`]`(k, n)`, if `pack` is shorter than [`PACK_LEN`], or if `a`
/// or `b` is too short for its dimensions and strides (as in [`sgemm`]).
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn sgemm_stripes(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    pack: &mut [f32],
    sink: &mut dyn StripeSink,
) {
    let b = BSource::Strided { b, rsb, csb };
    stripes_dispatch(
        Args { m, k, n, alpha, a, rsa, csa, b, start: Start::Beta(0.0), rsc: n, csc: 1 },
        pack,
        sink,
    );
}

/// [`sgemm_stripes`] with B given packed whole ([`packed_b_len`]), so that one
/// packing of B serves several calls (one per piece of C's rows, on several threads).
/// Same bits as [`sgemm_stripes`].
///
/// # Panics
///
/// As [`sgemm_stripes`], with `packed_b` shorter than [`packed_b_len`]`(k, n)` in
/// place of a short `b`.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn sgemm_stripes_packed_b(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    packed_b: &[f32],
    pack: &mut [f32],
    sink: &mut dyn StripeSink,
) {
    let b = BSource::Packed(packed_b);
    stripes_dispatch(
        Args { m, k, n, alpha, a, rsa, csa, b, start: Start::Beta(0.0), rsc: n, csc: 1 },
        pack,
        sink,
    );
}

/// Runs [`run`] on this CPU's kernel.
#[track_caller]
fn run_dispatch(args: Args<'_>, c: &mut [f32], pack: &mut [f32]) {
    run_on(Kernel::best(), args, c, pack);
}

/// Evaluates `$body` with `$isa` bound to the [`Micro`] of `$kernel`, or to the
/// portable one if this CPU cannot run it: the one place a [`Kernel`] becomes code.
macro_rules! on_kernel {
    ($kernel:expr, $isa:ident => $body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        match $kernel {
            Kernel::Avx512 => {
                if let Some($isa) = avx512::Avx512::detect() {
                    return $body;
                }
            }
            Kernel::Avx2 => {
                if let Some($isa) = avx2::Avx2Fma::detect() {
                    return $body;
                }
            }
            Kernel::Portable => {}
        }
        let $isa = portable::Portable;
        $body
    }};
}

/// Runs [`run`] on `kernel` (the portable one if this CPU cannot run it).
#[track_caller]
fn run_on(kernel: Kernel, args: Args<'_>, c: &mut [f32], pack: &mut [f32]) {
    on_kernel!(kernel, isa => run(isa, args, c, pack))
}

/// Checks that the product fits one block and runs [`stripes`] on this CPU's kernel.
#[track_caller]
fn stripes_dispatch(args: Args<'_>, pack: &mut [f32], sink: &mut dyn StripeSink) {
    let (k, n) = (args.k, args.n);
    assert!(stripes_fit(k, n), "sgemm_stripes: k = {k} and n = {n} must fit one block");
    on_kernel!(Kernel::best(), isa => stripes(isa, args, pack, sink))
}

/// A microkernel family [`sgemm`] can run on. The AVX-512 kernel computes each
/// element with the AVX2 kernel's instructions in their order, so the two give the
/// same bits; the portable kernel multiplies and adds separately (no FMA), so its
/// bits differ, within the same error bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512F: 6×32 tiles over two 16-column panels (x86-64).
    Avx512,
    /// AVX2 + FMA: 6×16 tiles (x86-64).
    Avx2,
    /// Plain Rust over fixed-size arrays, vectorised by the compiler: any CPU.
    Portable,
}

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512, Kernel::Avx2, Kernel::Portable];

    /// The kernel [`sgemm`] and its variants use on this CPU: the first of
    /// [`Kernel::ALL`] it can run (checked at run time with `std`, from the compile
    /// target without).
    pub fn best() -> Kernel {
        Kernel::ALL.into_iter().find(|k| k.available()).unwrap_or(Kernel::Portable)
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::Avx512::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::Avx2Fma::detect().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx512 | Kernel::Avx2 => false,
            Kernel::Portable => true,
        }
    }

    /// Its name in reports: `"avx512f"`, `"avx2+fma"` or `"portable"`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512f",
            Kernel::Avx2 => "avx2+fma",
            Kernel::Portable => "portable",
        }
    }
}

/// The name of the microkernel [`sgemm`] uses on this CPU ([`Kernel::best`]), for
/// benchmark and test reports.
pub fn sgemm_kernel_name() -> &'static str {
    Kernel::best().name()
}

/// [`sgemm`] (`bias: None`) or [`sgemm_bias`] (`Some`, `beta` ignored) forced onto
/// `kernel`, whatever [`Kernel::best`] is, so that tests and benchmarks cover every
/// kernel the CPU has; not a stable API.
///
/// # Panics
///
/// As the call it stands for, and if this CPU cannot run `kernel`.
#[doc(hidden)]
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn sgemm_on(
    kernel: Kernel,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    (a, rsa, csa): (&[f32], usize, usize),
    (b, rsb, csb): (&[f32], usize, usize),
    beta: f32,
    bias: Option<&[f32]>,
    (c, rsc, csc): (&mut [f32], usize, usize),
    pack: &mut [f32],
) {
    assert!(kernel.available(), "sgemm_on: this CPU cannot run the {} kernel", kernel.name());
    let b = BSource::Strided { b, rsb, csb };
    let start = bias.map_or(Start::Beta(beta), Start::Bias);
    run_on(kernel, Args { m, k, n, alpha, a, rsa, csa, b, start, rsc, csc }, c, pack);
}

/// The read-only arguments of one call, bundled so that the loop nest does not pass
/// fifteen parameters around.
struct Args<'a> {
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &'a [f32],
    rsa: usize,
    csa: usize,
    b: BSource<'a>,
    start: Start<'a>,
    rsc: usize,
    csc: usize,
}

/// What the first k block adds to its `α·Ã·B̃` (later blocks add the C they built).
#[derive(Clone, Copy)]
pub(crate) enum Start<'a> {
    /// `β·C`, as in BLAS; with `β = 0` C is not read.
    Beta(f32),
    /// A row of `n` floats added to every row of C (the linear layer's bias); C is
    /// not read. The kernels read it as a C with row stride 0, so each element gets
    /// the instructions of `β = 1` onto a C that holds the row.
    Bias(&'a [f32]),
}

/// Where the loop nest gets its packed B̃ blocks from.
#[derive(Clone, Copy)]
pub(crate) enum BSource<'a> {
    /// B itself, addressed by strides: each `kc×nc` block is packed into the
    /// workspace just before use.
    Strided { b: &'a [f32], rsb: usize, csb: usize },
    /// B already packed whole, block-major (see [`packed_b_len`]).
    Packed(&'a [f32]),
}

impl BSource<'_> {
    /// Panics unless B can be read as `k×n`.
    #[track_caller]
    fn check(&self, k: usize, n: usize) {
        match *self {
            BSource::Strided { b, rsb, csb } => check_operand("B", b.len(), k, n, rsb, csb),
            BSource::Packed(packed) => {
                let need = packed_b_len(k, n);
                assert!(
                    packed.len() >= need,
                    "sgemm: packed B has {} floats, a packed {k}×{n} B needs {need}",
                    packed.len()
                );
            }
        }
    }
}

/// One microkernel's output: the `rows×cols` tile of C whose top-left element is
/// `c[c0]`, with `C ← α·Ã·B̃ + β·S` over `kc` packed k steps, where S is the tile of C
/// itself or, with `bias`, that row (`cols` floats) repeated down the tile.
#[derive(Clone, Copy)]
struct Tile<'a> {
    kc: usize,
    rows: usize,
    cols: usize,
    c0: usize,
    rsc: usize,
    csc: usize,
    alpha: f32,
    beta: f32,
    bias: Option<&'a [f32]>,
}

impl Tile<'_> {
    /// Panics unless every element of the tile lies inside `c_len` and the packed
    /// panels hold `kc` steps: the precondition the unsafe kernel relies on, checked
    /// again at its door (a handful of integer ops per 6·16·kc FMAs).
    #[inline]
    fn check(&self, a_len: usize, b_len: usize, c_len: usize) {
        assert!((1..=MR).contains(&self.rows) && (1..=MAX_PANELS * NR).contains(&self.cols));
        let need_a = self.kc.checked_mul(MR);
        let need_b = self.kc.checked_mul(NR * self.cols.div_ceil(NR));
        assert!(need_a.is_some_and(|l| l <= a_len) && need_b.is_some_and(|l| l <= b_len));
        let last = (self.rows - 1)
            .checked_mul(self.rsc)
            .and_then(|r| (self.cols - 1).checked_mul(self.csc).and_then(|s| r.checked_add(s)))
            .and_then(|o| o.checked_add(self.c0));
        assert!(last.is_some_and(|l| l < c_len), "sgemm tile outside C");
        assert!(self.bias.is_none_or(|row| row.len() == self.cols), "sgemm tile bias");
    }
}

/// A microkernel family: its packer for B (which may specialise layouts) and its tile.
/// A is always packed by the shared [`pack::pack_a`]: it is packed once per n block,
/// so its cost is m·k against m·k·n FMAs, and safe code does it well enough (a
/// row-major A goes 8 k steps at a time through a stack tile).
trait Micro: Copy {
    /// B̃ panels (of [`NR`] columns) one tile spans: the loop nests step over C's
    /// columns `PANELS·NR` at a time and hand `tile` that many panels.
    const PANELS: usize = 1;

    /// Packs the `kc×nc` block of B whose first element is `b[b0]` into `dst` in the
    /// layout of [`pack::pack_b`].
    #[allow(clippy::too_many_arguments)]
    fn pack_b(
        self,
        kc: usize,
        nc: usize,
        b: &[f32],
        b0: usize,
        rsb: usize,
        csb: usize,
        dst: &mut [f32],
    );

    /// `tile ← α·ã·b̃ + β·S` (S: the tile, or its bias row), `ã`: MR×kc packed,
    /// `b̃`: the tile's `⌈cols/NR⌉ ≤ PANELS` panels of kc×NR, one after the other.
    fn tile(self, t: Tile<'_>, a: &[f32], b: &[f32], c: &mut [f32]);
}

/// Checks every argument, handles the degenerate cases, then runs the loop nest.
#[track_caller]
fn run<K: Micro>(kern: K, p: Args<'_>, c: &mut [f32], pack: &mut [f32]) {
    assert!(
        pack.len() >= PACK_LEN,
        "sgemm: packing workspace has {} floats, needs PACK_LEN = {PACK_LEN}",
        pack.len()
    );
    check_operand("A", p.a.len(), p.m, p.k, p.rsa, p.csa);
    p.b.check(p.k, p.n);
    check_operand("C", c.len(), p.m, p.n, p.rsc, p.csc);
    check_no_overlap(p.m, p.n, p.rsc, p.csc);
    if let Start::Bias(bias) = p.start {
        check_operand("bias", bias.len(), 1, p.n, p.n, 1);
    }
    if p.m == 0 || p.n == 0 {
        return;
    }
    if p.k == 0 || p.alpha == 0.0 {
        scale_c(&p, c);
        return;
    }
    gemm_loop(kern, &p, c, pack);
}

/// Panics unless every index `i·rs + j·cs` (`i < rows`, `j < cols`) is inside a slice of
/// length `len`. An operand with no elements may be any slice.
#[track_caller]
fn check_operand(name: &str, len: usize, rows: usize, cols: usize, rs: usize, cs: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|s| r.checked_add(s)));
    match last {
        Some(last) if last < len => {}
        Some(last) => panic!(
            "sgemm: {name} is {rows}×{cols} with strides ({rs}, {cs}), so its last element \
             is at index {last}, but the slice has {len} elements"
        ),
        None => panic!(
            "sgemm: {name} is {rows}×{cols} with strides ({rs}, {cs}): its last index \
             overflows usize"
        ),
    }
}

/// Panics unless C's strides lay its `m×n` elements out as a grid without overlap (see
/// [`sgemm`]'s panics section). A sufficient condition, which is what every dense or
/// padded layout satisfies.
#[track_caller]
fn check_no_overlap(m: usize, n: usize, rsc: usize, csc: usize) {
    // An empty C has no elements to overlap (its strides may be anything, e.g. 0).
    if m == 0 || n == 0 {
        return;
    }
    // Order the two axes by stride; an axis of extent ≤ 1 never steps.
    let (small, small_len, big, big_len) =
        if rsc <= csc { (rsc, m, csc, n) } else { (csc, n, rsc, m) };
    let ok = if small_len <= 1 && big_len <= 1 {
        true
    } else if small_len <= 1 {
        big >= 1
    } else if big_len <= 1 {
        small >= 1
    } else {
        // `check_operand` has shown small·(small_len−1) fits; small·small_len may not.
        small >= 1 && small.checked_mul(small_len).is_some_and(|span| big >= span)
    };
    assert!(
        ok,
        "sgemm: C is {m}×{n} with strides ({rsc}, {csc}), which makes elements overlap \
         (need smaller stride ≥ 1 and larger stride ≥ smaller stride × its extent)"
    );
}

/// `C ← β·C` (or `C ← bias` in every row) over the m×n view, for `k = 0` or `α = 0`:
/// A·B contributes nothing, and with `β = 0` C is overwritten with zeros without
/// being read.
fn scale_c(p: &Args<'_>, c: &mut [f32]) {
    if matches!(p.start, Start::Beta(1.0)) {
        return;
    }
    for i in 0..p.m {
        for j in 0..p.n {
            let x = &mut c[i * p.rsc + j * p.csc];
            *x = match p.start {
                Start::Beta(0.0) => 0.0,
                Start::Beta(beta) => beta * *x,
                Start::Bias(bias) => bias[j],
            };
        }
    }
}

/// Splits `len` into equal blocks of at most `max`, rounded up to a multiple of
/// `unit`, and returns the block step (`max` is a multiple of `unit`, so step ≤ max).
fn even_step(len: usize, max: usize, unit: usize) -> usize {
    let blocks = len.div_ceil(max);
    len.div_ceil(blocks).next_multiple_of(unit)
}

/// The five loops of the file-top comment. All dimensions are ≥ 1 here.
fn gemm_loop<K: Micro>(kern: K, p: &Args<'_>, c: &mut [f32], pack: &mut [f32]) {
    // Start B̃ on a cache line (and so Ã too: KC·NC floats is a multiple of 16), so that
    // the kernel's B loads never split a line. An impossible alignment degrades to 0:
    // the kernels use unaligned loads, so this is speed only.
    let offset = pack.as_ptr().align_offset(64);
    let offset = if offset < ALIGN_SLACK { offset } else { 0 };
    let (bpack, apack) = pack[offset..offset + KC * NC + MC * KC].split_at_mut(KC * NC);

    let nc_step = even_step(p.n, NC, NR);
    // The blocks of `packed_b_blocks`.
    let kc_step = even_step(p.k, KC, 8);
    let mc_step = even_step(p.m, MC, MR);

    for jc in (0..p.n).step_by(nc_step) {
        let nc = nc_step.min(p.n - jc);
        for pc in (0..p.k).step_by(kc_step) {
            let kc = kc_step.min(p.k - pc);
            let (beta, bias) = match p.start {
                Start::Beta(beta) if pc == 0 => (beta, None),
                Start::Bias(bias) if pc == 0 => (1.0, Some(&bias[jc..jc + nc])),
                _ => (1.0, None),
            };
            // B̃'s micro-panel q (columns jc + q·NR..) starts at q·kc·NR = jr·kc.
            let btilde: &[f32] = match p.b {
                BSource::Strided { b, rsb, csb } => {
                    kern.pack_b(kc, nc, b, pc * rsb + jc * csb, rsb, csb, bpack);
                    bpack
                }
                // This k block's B̃, from its panel jc / NR.
                BSource::Packed(packed) => &packed[pc * p.n.div_ceil(NR) * NR + jc * kc..],
            };
            for ic in (0..p.m).step_by(mc_step) {
                let mc = mc_step.min(p.m - ic);
                pack::pack_a(mc, kc, p.a, ic * p.rsa + pc * p.csa, p.rsa, p.csa, apack);
                for jr in (0..nc).step_by(K::PANELS * NR) {
                    let cols = (K::PANELS * NR).min(nc - jr);
                    let b_panel = &btilde[jr * kc..(jr + cols.next_multiple_of(NR)) * kc];
                    for ir in (0..mc).step_by(MR) {
                        let a_panel = &apack[ir * kc..(ir + MR) * kc];
                        let tile = Tile {
                            kc,
                            rows: MR.min(mc - ir),
                            cols,
                            c0: (ic + ir) * p.rsc + (jc + jr) * p.csc,
                            rsc: p.rsc,
                            csc: p.csc,
                            alpha: p.alpha,
                            beta,
                            bias: bias.map(|row| &row[jr..jr + cols]),
                        };
                        kern.tile(tile, a_panel, b_panel, c);
                    }
                }
            }
        }
    }
}

/// The loop nest of [`sgemm_stripes`]: [`gemm_loop`] with one n and one k block and
/// the `jr` and `ir` loops swapped, so that each MR-row stripe of C is finished (across
/// all of its columns) before the next starts. The Ã micro-panel now stays in L1 and
/// the B̃ panels stream from L2 (k·n floats, ≤ 1.25 MiB, 320 KiB at k = 100).
#[track_caller]
fn stripes<K: Micro>(kern: K, p: Args<'_>, pack: &mut [f32], sink: &mut dyn StripeSink) {
    assert!(
        pack.len() >= PACK_LEN,
        "sgemm_stripes: packing workspace has {} floats, needs PACK_LEN = {PACK_LEN}",
        pack.len()
    );
    check_operand("A", p.a.len(), p.m, p.k, p.rsa, p.csa);
    p.b.check(p.k, p.n);
    if p.m == 0 || p.n == 0 {
        return;
    }
    let offset = pack.as_ptr().align_offset(64);
    let offset = if offset < ALIGN_SLACK { offset } else { 0 };
    let (bpack, rest) = pack[offset..offset + KC * NC + MC * KC + MR * NC].split_at_mut(KC * NC);
    let (apack, stripe) = rest.split_at_mut(MC * KC);
    let (k, n) = (p.k, p.n);
    // One k block: micro-panel q of B̃ starts at q·k·NR = jr·k either way.
    let btilde: &[f32] = match p.b {
        BSource::Strided { b, rsb, csb } => {
            kern.pack_b(k, n, b, 0, rsb, csb, bpack);
            bpack
        }
        BSource::Packed(packed) => packed,
    };
    let mc_step = even_step(p.m, MC, MR);
    for ic in (0..p.m).step_by(mc_step) {
        let mc = mc_step.min(p.m - ic);
        pack::pack_a(mc, k, p.a, ic * p.rsa, p.rsa, p.csa, apack);
        for ir in (0..mc).step_by(MR) {
            let rows = MR.min(mc - ir);
            let a_panel = &apack[ir * k..(ir + MR) * k];
            for jr in (0..n).step_by(K::PANELS * NR) {
                let cols = (K::PANELS * NR).min(n - jr);
                for col in (jr..jr + cols).step_by(NR) {
                    sink.before_tile(ic + ir, rows, col);
                }
                let tile = Tile {
                    kc: k,
                    rows,
                    cols,
                    c0: jr,
                    rsc: n,
                    csc: 1,
                    alpha: p.alpha,
                    beta: 0.0,
                    bias: None,
                };
                kern.tile(
                    tile,
                    a_panel,
                    &btilde[jr * k..(jr + cols.next_multiple_of(NR)) * k],
                    stripe,
                );
            }
            sink.stripe(ic + ir, &stripe[..rows * n]);
        }
    }
}

/// Writes an `α·A·B` tile (already scaled by α) into C: `C ← tile + β·S` on the
/// `rows×cols` corner (S: C, or the tile's bias row in every row), reading S only when
/// `β ≠ 0`. The edge and strided-C path of both kernels.
fn store_tile(t: &Tile<'_>, tile: &[[f32; NR]; MR], c: &mut [f32]) {
    for (i, row) in tile.iter().enumerate().take(t.rows) {
        let c_row = t.c0 + i * t.rsc;
        for (j, &v) in row.iter().enumerate().take(t.cols) {
            let x = &mut c[c_row + j * t.csc];
            let s = t.bias.map_or(*x, |bias| bias[j]);
            *x = if t.beta == 0.0 { v } else { t.beta * s + v };
        }
    }
}
