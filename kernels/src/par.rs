//! The GEMM wrappers and the optimizer update split across a [`Pool`] (feature `std`).
//!
//! Every call cuts its output into contiguous pieces of rows, at multiples of the
//! microkernel height [`MR`], and runs the serial kernel on each piece with the
//! packing workspace of the thread that claimed it. Every element of C is then
//! computed by the same instructions in the same order as in the one-thread call, so
//! the results are **bit-identical for any thread count**.
//!
//! The products share one packing of B: for each k block, the threads first pack B̃
//! together, each into its own stretch of the pool's buffer ([`Pool::packed_b`]),
//! and then all read it ([`sgemm_packed_b`](crate::sgemm::sgemm_packed_b)). Why: the layer's B is the 794×794
//! weight (or the batch), and packing it per thread would read it from memory once
//! per thread; a split by columns of C instead, which packs it once, makes every
//! thread re-pack A and leaves C in column pieces to be copied together afterwards.
//!
//! A product is cut into pieces of decreasing size (`Cuts::guided`: each about what
//! is left ÷ 2·threads), claimed in order by whichever thread is free: a core that
//! runs slower (a busy neighbour on a shared host, a cold cache, a worker that wakes
//! late) takes fewer pieces, and the small last pieces let the threads finish
//! together instead of one waiting out the other's last big piece.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::optim::Update;
use crate::pool::{MAX_PIECES, MAX_THREADS, Pool, piece};
use crate::sgemm::{
    BSource, MR, NR, Start, pack_b_panels, pack_b_steps, packed_b_blocks, packed_b_len, sgemm_from,
};
use crate::{check_len, gemm};

/// Below this many multiply-adds a call is not split (the hand-off costs a few µs).
const MIN_SPLIT_FMAS: usize = 1 << 18;

/// The largest packed k block of B (floats) shared through [`Pool::packed_b`]:
/// 16 MiB (a block of the 794×794 weight is 0.85 MiB). A larger one falls back to
/// each piece packing what it needs.
const MAX_SHARED_B: usize = 4 << 20;

/// Elements per thread below which an update is not split.
const MIN_SPLIT_ELEMS: usize = 1 << 15;

/// A thread's piece of an output: its first row (or element) and the rows, behind a
/// lock that only that thread takes, so that a shared (`Fn`) job can move it out.
type Slot<'c> = Mutex<Option<(usize, &'c mut [f32])>>;

/// Takes a piece out of its slot (each slot is taken once, by its own thread).
fn take<'c>(slot: &Slot<'c>) -> Option<(usize, &'c mut [f32])> {
    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
}

/// Where a call cuts `0..len` (rows, or elements): piece `i` is
/// `bounds[i]..bounds[i + 1]`, for `i < count`.
struct Cuts {
    bounds: [usize; MAX_PIECES + 1],
    count: usize,
}

impl Cuts {
    /// `parts` pieces of equal size at multiples of `unit` (the last takes the rest).
    fn even(len: usize, parts: usize, unit: usize) -> Cuts {
        let count = parts.clamp(1, MAX_PIECES);
        let mut bounds = [len; MAX_PIECES + 1];
        for (i, b) in bounds.iter_mut().enumerate().take(count) {
            *b = piece(len, count, unit, i).start;
        }
        Cuts { bounds, count }
    }

    /// Guided self-scheduling for `threads` threads: each piece is what is left ÷
    /// `2·threads` (rounded up), at multiples of `unit` and at least `min_units`
    /// units. Big pieces first keep the per-piece cost (re-reading a shared B̃, a
    /// claim) low; small ones last let the threads finish within a small piece of each
    /// other. 128 rows on 2 threads in units of 6: 36, 24, 18, 18, 12, 12, 8.
    fn guided(len: usize, threads: usize, unit: usize, min_units: usize) -> Cuts {
        let units = len.div_ceil(unit.max(1));
        let mut bounds = [len; MAX_PIECES + 1];
        bounds[0] = 0;
        let (mut done, mut count) = (0, 0);
        while done < units {
            let left = units - done;
            let take = if count + 1 == MAX_PIECES {
                left
            } else {
                left.div_ceil(2 * threads.max(1)).max(min_units).min(left)
            };
            done += take;
            count += 1;
            bounds[count] = (done * unit).min(len);
        }
        Cuts { bounds, count: count.max(1) }
    }

    fn get(&self, i: usize) -> core::ops::Range<usize> {
        self.bounds[i]..self.bounds[i + 1]
    }
}

/// `c` (`row` floats per row) cut at `cuts`, each piece behind its own (never
/// contended) lock so that a shared job can take it.
fn row_pieces<'c>(c: &'c mut [f32], row: usize, cuts: &Cuts) -> [Slot<'c>; MAX_PIECES] {
    let mut out: [Slot<'_>; MAX_PIECES] = core::array::from_fn(|_| Mutex::new(None));
    let mut rest = c;
    for (i, slot) in out.iter_mut().enumerate().take(cuts.count) {
        let r = cuts.get(i);
        let (mine, tail) = core::mem::take(&mut rest).split_at_mut(r.len() * row);
        *slot.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((r.start, mine));
        rest = tail;
    }
    out
}

/// Runs `f(thread, index, piece)` once for each slot of `slots` that holds a piece, on
/// `pool`: slots are claimed in order by whichever thread is free (the caller does
/// them all if the workers are late: pieces are claimed, not assigned), and each
/// piece is moved out of its slot by the thread that claimed it. `thread` names the
/// packing workspace to use.
fn claim_each<T: Send>(
    pool: &Pool,
    slots: &[Mutex<Option<T>>],
    f: &(dyn Fn(usize, usize, T) + Sync),
) {
    let next = AtomicUsize::new(0);
    pool.run(&|t| {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else { break };
            let taken = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            if let Some(piece) = taken {
                f(t, i, piece);
            }
        }
    });
}

/// Runs `f(thread, first_row, piece)` on each piece of `c` (`row` floats per row, cut
/// at `cuts`), claimed as in [`claim_each`].
fn split_rows(
    pool: &Pool,
    c: &mut [f32],
    row: usize,
    cuts: &Cuts,
    f: &(dyn Fn(usize, usize, &mut [f32]) + Sync),
) {
    let slots = row_pieces(c, row, cuts);
    claim_each(pool, &slots[..cuts.count], &|t, _, (start, c)| f(t, start, c));
}

/// Panels per dispatch when a row-major B is packed by bands of rows: each thread's
/// slices of that many panels sit in a stack array.
const PANEL_GROUP: usize = 64;

/// Packs the k block `steps` of the `k×n` B (strides `rsb`, `csb`) into `block`
/// ([`packed_b_len`]`(steps.len(), n)` floats, the B̃ that [`crate::sgemm::sgemm`]
/// would pack for it) on the pool's threads: a row-major B by bands of the block's
/// rows ([`pack_b_steps`]: each thread reads one stretch of memory), any other by bands
/// of panels (each panel is then whole rows of the stored matrix, e.g. the forward's
/// Wᵀ).
fn pack_shared_block(
    pool: &Pool,
    k: usize,
    n: usize,
    (b, rsb, csb): (&[f32], usize, usize),
    steps: core::ops::Range<usize>,
    block: &mut [f32],
) {
    let panels = n.div_ceil(NR);
    let per_panel = steps.len() * NR;
    if per_panel == 0 || panels == 0 {
        return;
    }
    if csb != 1 {
        let cuts = Cuts::even(panels, pool.threads().min(panels), 1);
        return split_rows(pool, block, per_panel, &cuts, &|_, q0, dst| {
            let q = q0..q0 + dst.len() / per_panel;
            pack_b_panels(k, n, b, rsb, csb, steps.clone(), q, dst);
        });
    }
    pack_block_by_bands(pool, k, n, (b, rsb), steps, block);
}

/// [`pack_shared_block`]'s row-major case (`block`: its B̃, panel-major):
/// each thread packs a band of the block's steps into its stretch of every panel.
fn pack_block_by_bands(
    pool: &Pool,
    k: usize,
    n: usize,
    (b, rsb): (&[f32], usize),
    steps: core::ops::Range<usize>,
    block: &mut [f32],
) {
    let panels = n.div_ceil(NR);
    let per_panel = steps.len() * NR;
    let bands = pool.threads().min(steps.len()).max(1);
    let band = |t: usize| {
        let r = piece(steps.len(), bands, 1, t);
        steps.start + r.start..steps.start + r.end
    };
    let mut rest = block;
    for q0 in (0..panels).step_by(PANEL_GROUP) {
        let group = PANEL_GROUP.min(panels - q0);
        // Band t's stretch of each panel of the group.
        let mut slices: [[&mut [f32]; PANEL_GROUP]; MAX_THREADS] =
            core::array::from_fn(|_| core::array::from_fn(|_| &mut [][..]));
        for g in 0..group {
            let (mut panel, tail) = core::mem::take(&mut rest).split_at_mut(per_panel);
            rest = tail;
            for (t, slice) in slices.iter_mut().enumerate().take(bands) {
                let (mine, tail) = core::mem::take(&mut panel).split_at_mut(band(t).len() * NR);
                slice[g] = mine;
                panel = tail;
            }
        }
        let mut each = slices.iter_mut();
        let slots: [Mutex<Option<&mut [&mut [f32]]>>; MAX_THREADS] =
            core::array::from_fn(|_| Mutex::new(each.next().map(|s| &mut s[..group])));
        claim_each(pool, &slots[..bands], &|_, t, dst| {
            pack_b_steps(k, n, b, rsb, band(t), q0, dst);
        });
    }
}

/// `len` floats of `buf` starting on a 64-byte boundary when `buf` has the slack
/// (16 floats), so that the kernels' loads from a shared B̃ never split a cache line.
fn aligned(buf: &mut [f32], len: usize) -> &mut [f32] {
    let offset = buf.as_ptr().align_offset(64);
    let offset = if offset + len <= buf.len() { offset } else { 0 };
    &mut buf[offset..offset + len]
}

/// Operand A of a row-split product, from a given row of C: `(slice, rsa, csa)`.
type RowsOfA<'a> = dyn Fn(usize) -> (&'a [f32], usize, usize) + Sync + 'a;

/// `C ← α·A·B + β·C`, or `+ bias` in every row (`start`), with `C: m×n` row-major,
/// `A` from `a_from(row)`, `B: k×n` by strides, on `pool`, cut by rows of C, one k
/// block at a time: the threads pack the block's B̃ together into the pool's buffer,
/// then each piece of rows multiplies by it (`start` on the first block, `β = 1` after:
/// per element, the serial loop nest's order). Why block by
/// block rather than all of B at once: a block (≤ 1.25 MiB) is rewritten in place
/// while still in cache; packing all of B first measured 1.6–2.4× the time of the
/// serial call's own packing (0.55–0.75 ms for a 794×794 B).
#[allow(clippy::too_many_arguments)]
fn split_rows_shared_b(
    pool: &Pool,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a_from: &RowsOfA<'_>,
    b: (&[f32], usize, usize),
    start: Start<'_>,
    c: &mut [f32],
) {
    // At least two tiles of rows per piece: each piece streams all of B̃ from cache.
    let cuts = Cuts::guided(m, pool.threads(), MR, 2);
    // The first k block is the largest. One too large to share is packed by each
    // piece from B itself, block by block all the same.
    let block_len = packed_b_blocks(k).next().map_or(0, |steps| packed_b_len(steps.len(), n));
    let share = block_len <= MAX_SHARED_B;
    let mut shared = pool.packed_b(if share { block_len + 16 } else { 0 });
    let buf = aligned(&mut shared, if share { block_len } else { 0 });
    let (b, rsb, csb) = b;
    for steps in packed_b_blocks(k) {
        let kc = steps.len();
        let packed = if share {
            let packed = &mut buf[..packed_b_len(kc, n)];
            pack_shared_block(pool, k, n, (b, rsb, csb), steps.clone(), packed);
            Some(&*packed)
        } else {
            None
        };
        let b = match packed {
            Some(p) => BSource::Packed(p),
            None => BSource::Strided { b: &b[steps.start * rsb..], rsb, csb },
        };
        let start = if steps.start == 0 { start } else { Start::Beta(1.0) };
        split_rows(pool, c, n, &cuts, &|t, r0, c| {
            let (a, rsa, csa) = a_from(r0);
            let (a, rows, pack) = (&a[steps.start * csa..], c.len() / n, &mut pool.pack(t));
            sgemm_from(rows, kc, n, alpha, (a, rsa, csa), b, start, (c, n, 1), pack);
        });
    }
}

/// [`gemm::gemm_ab`] (`C ← α·A·B + β·C`, `A: m×k`, `B: k×n`) on `pool`: rows of C
/// (and A) split across threads, B packed once and shared.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_ab(
    pool: &Pool,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    check_len("par::gemm_ab C", c.len(), m, n);
    if pool.threads() == 1 || m < 2 * MR || m * k * n < MIN_SPLIT_FMAS {
        return gemm::gemm_ab(m, k, n, alpha, a, b, beta, c, &mut pool.pack(0));
    }
    check_len("par::gemm_ab A", a.len(), m, k);
    check_len("par::gemm_ab B", b.len(), k, n);
    let a_from = |r0| (&a[r0 * k..], k, 1);
    split_rows_shared_b(pool, m, k, n, alpha, &a_from, (b, n, 1), Start::Beta(beta), c);
}

/// [`gemm::gemm_abt`] (`C ← α·A·Bᵀ + β·C`, `A: m×k`, `B: n×k`) on `pool`: rows of
/// C split across threads, B packed once and shared; a single row (batch 1) is split
/// by columns of C, i.e. by rows of B, so each thread reads its own part of B.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_abt(
    pool: &Pool,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    check_len("par::gemm_abt C", c.len(), m, n);
    abt(pool, m, k, n, alpha, a, b, Start::Beta(beta), c);
}

/// [`gemm::gemm_abt_bias`] (`C ← α·A·Bᵀ + bias` in every row) on `pool`, split as
/// [`gemm_abt`]: the forward of a linear layer with its bias folded into the GEMM.
/// Bit-identical to the serial call for any thread count.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_abt_bias(
    pool: &Pool,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    bias: &[f32],
    c: &mut [f32],
) {
    check_len("par::gemm_abt_bias C", c.len(), m, n);
    check_len("par::gemm_abt_bias bias", bias.len(), 1, n);
    abt(pool, m, k, n, alpha, a, b, Start::Bias(bias), c);
}

/// The body of [`gemm_abt`] and [`gemm_abt_bias`].
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn abt(
    pool: &Pool,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    start: Start<'_>,
    c: &mut [f32],
) {
    // The serial call on columns `cols` of C (rows of B).
    let serial = |m, b: &[f32], cols: core::ops::Range<usize>, c: &mut [f32], pack: &mut [f32]| {
        let start = match start {
            Start::Beta(beta) => Start::Beta(beta),
            Start::Bias(bias) => Start::Bias(&bias[cols.clone()]),
        };
        gemm::abt(m, k, cols.len(), alpha, a, b, start, c, pack);
    };
    if pool.threads() == 1 || m * k * n < MIN_SPLIT_FMAS || (m > 1 && m < 2 * MR) {
        return serial(m, b, 0..n, c, &mut pool.pack(0));
    }
    check_len("par::gemm_abt B", b.len(), n, k);
    if m == 1 {
        // C is one row: its columns are contiguous pieces, each a dot product with a
        // band of B's rows. Memory-bound: two cores read W 1.2–1.6× as fast as one here.
        return split_rows(pool, c, 1, &Cuts::guided(n, pool.threads(), 16, 2), &|t, j0, c| {
            let cols = j0..j0 + c.len();
            serial(1, &b[cols.start * k..cols.end * k], cols, c, &mut pool.pack(t));
        });
    }
    check_len("par::gemm_abt A", a.len(), m, k);
    split_rows_shared_b(pool, m, k, n, alpha, &|r0| (&a[r0 * k..], k, 1), (b, 1, k), start, c);
}

/// [`gemm::gemm_atb`] (`C ← α·Aᵀ·B + β·C`, `A: k×m`, `B: k×n`) on `pool`: rows of C
/// (columns of the stored A) split across threads, B packed once and shared.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_atb(
    pool: &Pool,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    check_len("par::gemm_atb C", c.len(), m, n);
    if pool.threads() == 1 || m < 2 * MR || m * k * n < MIN_SPLIT_FMAS {
        return gemm::gemm_atb(m, k, n, alpha, a, b, beta, c, &mut pool.pack(0));
    }
    check_len("par::gemm_atb A", a.len(), k, m);
    check_len("par::gemm_atb B", b.len(), k, n);
    // Aᵀ's rows r0.. are A's columns r0..: a strided view.
    let a_from = |r0| (&a[r0..], 1, m);
    split_rows_shared_b(pool, m, k, n, alpha, &a_from, (b, n, 1), Start::Beta(beta), c);
}

/// Runs `f(first_row, piece)` on pieces of `out` (`rows` rows of `row` floats) across
/// `pool`, a few per thread: for row-wise kernels (the bias broadcast, relu and its
/// backward, zeroing) whose rows are independent, so that the pieces give the bits of
/// one call over all rows. Small outputs (below 2¹⁵ floats per thread) run as one call
/// on this thread.
pub fn rows(
    pool: &Pool,
    out: &mut [f32],
    rows: usize,
    row: usize,
    f: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    check_len("par::rows out", out.len(), rows, row);
    if pool.threads() == 1 || out.len() < pool.threads() * MIN_SPLIT_ELEMS {
        return f(0, out);
    }
    // Pieces of at least 16 floats' worth of rows, so no two share a cache line's work.
    let unit = 16usize.div_ceil(row.max(1));
    let cuts = Cuts::guided(rows, pool.threads(), unit, 1);
    split_rows(pool, out, row, &cuts, &|_, r0, piece| f(r0, piece));
}

/// [`Update::apply`] on `pool`: the range split into one contiguous piece per thread.
/// Element-wise, so bit-identical to the serial call.
#[track_caller]
pub fn update(
    pool: &Pool,
    update: &mut Update<'_>,
    range: core::ops::Range<usize>,
    params: &mut [f32],
    grads: &[f32],
) {
    let threads = pool.threads();
    if threads == 1 || range.len() < threads * MIN_SPLIT_ELEMS {
        return update.apply(range, params, grads);
    }
    assert_eq!(range.len(), grads.len(), "par::update: range and grads differ in length");
    let len = range.len();
    let cuts = Cuts::even(len, threads, 16);
    split_update(pool, update, range, params, 1, &cuts, &|_, start, p, u| {
        u.apply(0..p.len(), p, &grads[start..start + p.len()]);
    });
}

/// The job [`split_update`] runs on each piece: `(thread, first_row, piece, update)`.
type PieceJob<'f> = dyn Fn(usize, usize, &mut [f32], &mut Update<'_>) + Sync + 'f;

/// Runs `f(thread, first_row, piece, update)` on each piece of `params[range]` (`row`
/// values per row, cut at `cuts`), each with an [`Update`] over the same rows of the
/// moments. Pieces are claimed like [`split_rows`]'s, and `thread` names the packing
/// workspace to use.
fn split_update(
    pool: &Pool,
    update: &mut Update<'_>,
    range: core::ops::Range<usize>,
    params: &mut [f32],
    row: usize,
    cuts: &Cuts,
    f: &PieceJob<'_>,
) {
    let rule = update.rule;
    let moments = rule.moments();
    let p = &mut params[range.clone()];
    let first = if moments >= 1 { &mut update.first[range.clone()] } else { &mut [][..] };
    let second = if moments >= 2 { &mut update.second[range] } else { &mut [][..] };
    let cut = |s| row_pieces(s, row, cuts);
    let none = || core::array::from_fn(|_| Mutex::new(None));
    let pp = cut(p);
    let ff = if moments >= 1 { cut(first) } else { none() };
    let ss = if moments >= 2 { cut(second) } else { none() };
    // Piece i of the parameters with the same rows of each moment.
    let slots: [Mutex<Option<_>>; MAX_PIECES] = core::array::from_fn(|i| {
        let first = take(&ff[i]).map_or(&mut [][..], |(_, s)| s);
        let second = take(&ss[i]).map_or(&mut [][..], |(_, s)| s);
        Mutex::new(take(&pp[i]).map(|(start, p)| (start, p, first, second)))
    });
    claim_each(pool, &slots[..cuts.count], &|t, _, (start, p, first, second)| {
        f(t, start, p, &mut Update { rule, first, second });
    });
}

/// [`Update::linear_batch`] on `pool`: X packed once and shared (see the module doc),
/// then W's rows (and their moments) cut into pieces at multiples of [`MR`]; each
/// piece's weight gradient is computed stripe by stripe with its thread's workspace
/// and applied to its rows. The tiles are those of the one-thread call, so the bits
/// are too.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn linear_batch(
    pool: &Pool,
    update: &mut Update<'_>,
    range: core::ops::Range<usize>,
    params: &mut [f32],
    batch: usize,
    dy: &[f32],
    x: &[f32],
) {
    let (n, k) = crate::optim::linear_batch_dims("par::linear_batch", range.len(), batch, dy, x);
    if pool.threads() == 1 || n < 2 * MR || n * k * batch < MIN_SPLIT_FMAS {
        return update.linear_batch(range, params, batch, dy, x, &mut pool.pack(0));
    }
    // B = X (batch × k) fits one k block, so it is at most KC×NC floats: always shared.
    let len = packed_b_len(batch, k);
    let mut shared = pool.packed_b(len + 16);
    let packed = aligned(&mut shared, len);
    pack_shared_block(pool, batch, k, (x, k, 1), 0..batch, packed);
    let packed: &[f32] = packed;
    let cuts = Cuts::guided(n, pool.threads(), MR, 1);
    split_update(pool, update, range, params, k, &cuts, &|t, r0, w, u| {
        let rows = w.len() / k.max(1);
        // Rows r0.. of dYᵀ are columns r0.. of dY: a strided view.
        #[rustfmt::skip]
        crate::sgemm::sgemm_stripes_packed_b(
            rows, batch, k,
            1.0,
            &dy[r0..], 1, n,
            packed,
            &mut pool.pack(t),
            &mut crate::optim::StripeUpdate { update: u, params: w, w0: 0, k },
        );
    });
}

/// Rows of W per block of [`linear_rank1`] (at least; more when W has more than
/// [`RANK1_BLOCKS`] blocks' worth): 8 rows of 794 floats are 25 KiB per buffer.
const RANK1_ROWS: usize = 8;

/// The most blocks [`linear_rank1`] cuts W into (its block states sit on the stack).
const RANK1_BLOCKS: usize = 256;

/// How many blocks the moment thread of [`linear_rank1`] may run ahead of the weight
/// thread: close enough that the moments it wrote are still in a cache when the
/// weight thread reads them (8 blocks of 8 rows: 200 KiB per moment buffer).
const RANK1_LEAD: usize = 8;

/// The first `len` floats of `rest` (all of it if shorter, e.g. an unused moment),
/// which keeps the others.
fn split_off<'a>(rest: &mut &'a mut [f32], len: usize) -> &'a mut [f32] {
    let len = len.min(rest.len());
    let (mine, tail) = core::mem::take(rest).split_at_mut(len);
    *rest = tail;
    mine
}

/// Marks every block of [`linear_rank1`] passed when dropped.
struct PassAll<'p>(&'p AtomicUsize, usize);

impl Drop for PassAll<'_> {
    fn drop(&mut self) {
        self.0.store(self.1, Ordering::Release);
    }
}

/// Where a block of [`linear_rank1`] stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rank1Block {
    /// Untouched: whoever takes it first decides.
    Fresh,
    /// The moment thread has updated its moments; its weights remain.
    MomentsDone,
    /// The weight thread has finished it (moments and weights).
    Done,
}

/// One block of rows of W's moments for [`linear_rank1`], their `dy`, and the state.
struct MomentBlock<'a> {
    first: &'a mut [f32],
    second: &'a mut [f32],
    dy: &'a [f32],
    state: Rank1Block,
}

impl MomentBlock<'_> {
    /// `(first_row, second_row, dy[i])` per row of the block (`k` floats a row); a
    /// moment the rule does not keep gives empty rows.
    fn rows(&mut self, k: usize) -> impl Iterator<Item = (&mut [f32], &mut [f32], f32)> {
        let (mut first, mut second) =
            (self.first.chunks_exact_mut(k), self.second.chunks_exact_mut(k));
        self.dy
            .iter()
            .map(move |&s| (first.next().unwrap_or(&mut []), second.next().unwrap_or(&mut []), s))
    }
}

/// [`Update::linear_rank1`] on `pool`, for a rule with moments (momentum, Adam): the
/// caller streams W in row order, as it must to accumulate `dx` in the serial order,
/// while worker 1 streams the moments a few blocks of rows ahead of it,
/// since at batch 1 they depend only on `dy` and `x`. Each element gets the serial
/// arithmetic, split in its moment half and its weight half, so the results are
/// **bit-identical** to the one-thread sweep; a block whose moments the worker has not
/// reached yet is done by the caller in one fused pass, so a late worker (or none)
/// costs nothing but its help. SGD keeps no moments and runs on the calling thread.
///
/// Why not split W itself: by rows, each thread's `dx` would sum in a different
/// order; by columns, the two threads write the same cache line at every row
/// boundary (794 floats are not a whole number of lines), which measured slower than
/// one thread.
#[track_caller]
pub fn linear_rank1(
    pool: &Pool,
    update: &mut Update<'_>,
    dx: Option<&mut [f32]>,
    range: core::ops::Range<usize>,
    params: &mut [f32],
    dy: &[f32],
    x: &[f32],
) {
    let (n, k) = (dy.len(), x.len());
    let moments = update.rule.moments();
    if pool.threads() == 1 || moments == 0 || n * k < MIN_SPLIT_FMAS {
        return update.linear_rank1(dx, range, params, dy, x);
    }
    assert_eq!(range.len(), n * k, "par::linear_rank1: W has {} values for {n}×{k}", range.len());
    if let Some(dx) = &dx {
        assert_eq!(dx.len(), k, "par::linear_rank1: dx has {} values, x {k}", dx.len());
    }
    let rule = update.rule;
    let rows_per = RANK1_ROWS.max(n.div_ceil(RANK1_BLOCKS));
    let (mut first, mut second) = update.moments(range.clone());
    let blocks: [Mutex<MomentBlock<'_>>; RANK1_BLOCKS] = core::array::from_fn(|b| {
        let len = rows_per.min(n.saturating_sub(b * rows_per)) * k;
        Mutex::new(MomentBlock {
            first: split_off(&mut first, len),
            second: split_off(&mut second, len),
            dy: dy.get(b * rows_per..(b * rows_per + rows_per).min(n)).unwrap_or(&[]),
            state: Rank1Block::Fresh,
        })
    });
    let count = n.div_ceil(rows_per);
    let weights = Mutex::new(Some((&mut params[range], dx)));
    // Blocks the caller has finished: the worker never touches one below this.
    let passed = AtomicUsize::new(0);
    let lock = |b: usize| loop {
        // The other thread holds a block for one block's work (µs): spin, don't park.
        match blocks[b].try_lock() {
            Ok(guard) => return guard,
            Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => core::hint::spin_loop(),
        }
    };
    pool.run(&|t| match t {
        0 => {
            // However this thread leaves (a panic included), the worker must not wait on it.
            let _release = PassAll(&passed, count);
            let taken = weights.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            let Some((w, mut dx)) = taken else { return };
            for (b, w) in w.chunks_mut(rows_per * k).enumerate() {
                let mut block = lock(b);
                let moments_done = block.state == Rank1Block::MomentsDone;
                let rows = w
                    .chunks_exact_mut(k)
                    .zip(block.rows(k))
                    .map(|(w_row, (f, v, s))| (w_row, f, v, s));
                if moments_done {
                    crate::optim::params_rows(dx.as_deref_mut(), rows, x, rule);
                } else {
                    crate::optim::rank1_rows(dx.as_deref_mut(), rows, x, rule);
                }
                block.state = Rank1Block::Done;
                drop(block);
                passed.store(b + 1, Ordering::Release);
            }
        }
        1 => {
            for b in 0..count {
                // Stay at most RANK1_LEAD blocks ahead; give up on blocks already passed.
                let ahead = loop {
                    let p = passed.load(Ordering::Acquire);
                    if b < p {
                        break false;
                    }
                    if b < p + RANK1_LEAD {
                        break true;
                    }
                    core::hint::spin_loop();
                };
                if !ahead {
                    continue;
                }
                let mut block = lock(b);
                if block.state != Rank1Block::Fresh {
                    continue;
                }
                crate::optim::moment_rows(block.rows(k), x, rule);
                block.state = Rank1Block::MomentsDone;
            }
        }
        _ => {}
    });
}

#[cfg(test)]
mod tests {
    use super::{Cuts, MAX_PIECES};

    /// The pieces tile `0..len` in order, each but the last a multiple of `unit`.
    fn check_tiles(cuts: &Cuts, len: usize, unit: usize) {
        assert!((1..=MAX_PIECES).contains(&cuts.count));
        assert_eq!(cuts.get(0).start, 0);
        assert_eq!(cuts.get(cuts.count - 1).end, len);
        for i in 0..cuts.count {
            let r = cuts.get(i);
            assert!(r.start <= r.end, "piece {i}: {r:?}");
            if i + 1 < cuts.count {
                assert_eq!(r.end, cuts.get(i + 1).start);
                assert_eq!(r.len() % unit, 0, "piece {i}: {r:?}");
            }
        }
    }

    #[test]
    fn guided_pieces_shrink_and_tile_the_range() {
        let cuts = Cuts::guided(128, 2, 6, 2);
        let sizes: Vec<_> = (0..cuts.count).map(|i| cuts.get(i).len()).collect();
        assert_eq!(sizes, [36, 24, 18, 18, 12, 12, 8]);
        for (len, threads, unit, min) in
            [(0, 2, 6, 1), (5, 2, 6, 2), (794, 2, 6, 1), (1 << 20, 16, 1, 1)]
        {
            let cuts = Cuts::guided(len, threads, unit, min);
            check_tiles(&cuts, len, unit);
            for i in 1..cuts.count.saturating_sub(1) {
                assert!(cuts.get(i).len() <= cuts.get(i - 1).len(), "{len}: piece {i} grew");
            }
        }
    }

    #[test]
    fn even_pieces_tile_the_range() {
        for (len, parts, unit) in [(0, 2, 16), (100, 3, 16), (794, 2, 6), (5, 4, 1)] {
            check_tiles(&Cuts::even(len, parts, unit), len, unit);
        }
    }
}
