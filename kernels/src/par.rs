//! The GEMM wrappers and the optimizer update split across a [`Pool`] (feature `std`).
//!
//! Each call cuts its output into one contiguous piece per thread, at multiples of the
//! microkernel tile, and runs the serial kernel on each piece with that thread's
//! packing workspace: the forward and input-gradient products by columns of C (each
//! thread packs its half of the weight; the pieces are computed into per-thread
//! scratch and copied into C), the weight gradient and everything else by rows of C
//! (multiples of [`MR`]). Every element of C is then computed by the same instructions
//! in the same order as in the one-thread call, so the results are **bit-identical for
//! any thread count**.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::optim::Update;
use crate::pool::{MAX_THREADS, Pool, piece};
use crate::sgemm::MR;
use crate::{check_len, gemm};

/// Below this many multiply-adds a call is not split (the hand-off costs ~10 µs).
const MIN_SPLIT_FMAS: usize = 1 << 18;

/// Whether a one-row product (batch 1, memory-bound) is split. Measured here: one core
/// already saturates this machine's memory bandwidth, and two made the batch-1 step
/// 0.7–1.0× as fast; kept (and tested) for machines where it pays.
const SPLIT_ONE_ROW: bool = false;

/// Up to this many rows of C (the batch), the forward and input-gradient products are
/// split by columns (W packed once in total) rather than by rows (W packed by every
/// thread).
const COL_SPLIT_MAX_ROWS: usize = 1024;

/// Elements per thread below which an update is not split.
const MIN_SPLIT_ELEMS: usize = 1 << 15;

/// A thread's piece of an output: its first row (or element) and the rows, behind a
/// lock that only that thread takes, so that a shared (`Fn`) job can move it out.
type Slot<'c> = Mutex<Option<(usize, &'c mut [f32])>>;

/// Takes a piece out of its slot (each slot is taken once, by its own thread).
fn take<'c>(slot: &Slot<'c>) -> Option<(usize, &'c mut [f32])> {
    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
}

/// `c` cut into `threads` row pieces of `row` floats per row, at multiples of `unit`
/// rows, each behind its own (never contended) lock so that a shared job can take it.
fn row_pieces(
    c: &mut [f32],
    rows: usize,
    row: usize,
    threads: usize,
    unit: usize,
) -> [Slot<'_>; MAX_THREADS] {
    let mut out: [Slot<'_>; MAX_THREADS] = Default::default();
    let mut rest = c;
    for (i, slot) in out.iter_mut().enumerate().take(threads) {
        let r = piece(rows, threads, unit, i);
        let (mine, tail) = core::mem::take(&mut rest).split_at_mut(r.len() * row);
        *slot.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((r.start, mine));
        rest = tail;
    }
    out
}

/// Runs `f(thread, first_row, piece)` on each of `threads` row pieces of `c`; pieces
/// are claimed by whichever thread is free (the caller does them all if the workers
/// are late), and `thread` names the packing workspace to use.
fn split_rows(
    pool: &Pool,
    c: &mut [f32],
    rows: usize,
    row: usize,
    unit: usize,
    f: &(dyn Fn(usize, usize, &mut [f32]) + Sync),
) {
    let threads = pool.threads();
    let pieces = row_pieces(c, rows, row, threads, unit);
    let next = AtomicUsize::new(0);
    // Pieces are claimed, not assigned: a worker that wakes late finds them taken.
    pool.run(&|t| {
        while let Some(slot) = pieces[..threads].get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Some((start, c)) = take(slot) {
                f(t, start, c);
            }
        }
    });
}

/// `C ← α·A·op(B) + β·C` (`C: m×n` row-major) split by columns of C at multiples of
/// 16 (the microkernel width): `piece_b(j0, j1)` gives B's part for columns `j0..j1`
/// as `(slice, row stride, column stride)` of the `k×(j1 − j0)` operand. Each thread
/// computes its columns into its own contiguous scratch (starting from C's values
/// when `β ≠ 0`), then the caller copies them into C. Why not rows: a row split makes
/// every thread pack all of B (the 794×794 weight), a column split packs it once,
/// half per thread; the copy is `m·n` floats, small next to the product.
#[allow(clippy::too_many_arguments)]
fn split_cols<'b>(
    pool: &Pool,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    piece_b: &(dyn Fn(usize, usize) -> (&'b [f32], usize, usize) + Sync),
    beta: f32,
    c: &mut [f32],
) {
    let threads = pool.threads();
    let next = AtomicUsize::new(0);
    let c_in: &[f32] = c;
    // Who computed piece i, and where in that thread's scratch: for the copy-back.
    let owner: [AtomicUsize; MAX_THREADS] = Default::default();
    let offset: [AtomicUsize; MAX_THREADS] = Default::default();
    pool.run(&|t| {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= threads {
                break;
            }
            let cols = piece(n, threads, 16, i);
            let w = cols.len();
            if w == 0 {
                continue;
            }
            let mut scratch = pool.scratch(t, 0);
            // A thread may claim several pieces: each gets its own stretch of scratch,
            // and room for all of C is reserved once so that no later call grows it.
            let base = scratch.len();
            scratch.reserve((m * n).saturating_sub(base));
            scratch.resize(base + m * w, 0.0);
            let out = &mut scratch[base..];
            if beta != 0.0 {
                for (o, row) in out.chunks_exact_mut(w).zip(c_in.chunks_exact(n)) {
                    o.copy_from_slice(&row[cols.clone()]);
                }
            }
            let (b, rsb, csb) = piece_b(cols.start, cols.end);
            #[rustfmt::skip]
            crate::sgemm::sgemm(
                m, k, w,
                alpha,
                a, k, 1,
                b, rsb, csb,
                beta,
                out, w, 1,
                &mut pool.pack(t),
            );
            owner[i].store(t, Ordering::Relaxed);
            offset[i].store(base, Ordering::Relaxed);
        }
    });
    for (i, o) in owner.iter().enumerate().take(threads) {
        let cols = piece(n, threads, 16, i);
        let w = cols.len();
        if w == 0 {
            continue;
        }
        let (t, base) = (o.load(Ordering::Relaxed), offset[i].load(Ordering::Relaxed));
        let scratch = pool.scratch(t, 0);
        for (row, s) in c.chunks_exact_mut(n).zip(scratch[base..base + m * w].chunks_exact(w)) {
            row[cols.clone()].copy_from_slice(s);
        }
    }
    for t in 0..threads {
        pool.scratch(t, 0).clear();
    }
}

/// [`gemm::gemm_ab`] (`C ← α·A·B + β·C`, `A: m×k`, `B: k×n`) on `pool`: rows of C
/// (and A) split across threads.
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
    if m <= COL_SPLIT_MAX_ROWS && n >= 32 {
        check_len("par::gemm_ab B", b.len(), k, n);
        return split_cols(pool, m, k, n, alpha, a, &|j0, _| (&b[j0..], n, 1), beta, c);
    }
    split_rows_of_a(pool, gemm::gemm_ab, m, k, n, alpha, a, b, beta, c);
}

/// [`gemm::gemm_abt`] (`C ← α·A·Bᵀ + β·C`, `A: m×k`, `B: n×k`) on `pool`: rows of
/// C split across threads; a single row (batch 1) is split by columns of C, i.e. by
/// rows of B, so each thread reads its own part of B.
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
    if pool.threads() == 1 || m * k * n < MIN_SPLIT_FMAS {
        return gemm::gemm_abt(m, k, n, alpha, a, b, beta, c, &mut pool.pack(0));
    }
    check_len("par::gemm_abt B", b.len(), n, k);
    if m == 1 && SPLIT_ONE_ROW {
        // C is one row: its columns are contiguous pieces.
        return split_rows(pool, c, n, 1, 16, &|t, j0, c| {
            let cols = c.len();
            gemm::gemm_abt(
                1,
                k,
                cols,
                alpha,
                a,
                &b[j0 * k..(j0 + cols) * k],
                beta,
                c,
                &mut pool.pack(t),
            );
        });
    }
    if m < 2 * MR {
        return gemm::gemm_abt(m, k, n, alpha, a, b, beta, c, &mut pool.pack(0));
    }
    check_len("par::gemm_abt A", a.len(), m, k);
    if m <= COL_SPLIT_MAX_ROWS && n >= 32 {
        return split_cols(pool, m, k, n, alpha, a, &|j0, j1| (&b[j0 * k..j1 * k], 1, k), beta, c);
    }
    split_rows_of_a(pool, gemm::gemm_abt, m, k, n, alpha, a, b, beta, c);
}

/// The row split of [`gemm_ab`] and [`gemm_abt`]: C and A (`m×k`, row-major) cut into
/// row pieces at multiples of [`MR`], each run through `serial` (the one-thread
/// wrapper) with its thread's packing workspace.
#[allow(clippy::too_many_arguments)]
fn split_rows_of_a(
    pool: &Pool,
    serial: gemm::GemmFn,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    split_rows(pool, c, m, n, MR, &|t, r0, c| {
        let rows = c.len() / n.max(1);
        let a = &a[r0 * k..(r0 + rows) * k];
        serial(rows, k, n, alpha, a, b, beta, c, &mut pool.pack(t));
    });
}

/// [`gemm::gemm_atb`] (`C ← α·Aᵀ·B + β·C`, `A: k×m`, `B: k×n`) on `pool`: rows of C
/// (columns of the stored A) split across threads.
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
    split_rows(pool, c, m, n, MR, &|t, r0, c| {
        let rows = c.len() / n.max(1);
        // Aᵀ's rows r0.. are A's columns r0..: a strided view, through sgemm directly.
        #[rustfmt::skip]
        crate::sgemm::sgemm(
            rows, k, n,
            alpha,
            &a[r0..], 1, m,
            b, n, 1,
            beta,
            c, n, 1,
            &mut pool.pack(t),
        );
    });
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
    split_update(pool, update, range, params, len, 1, 16, &|_, start, p, u| {
        u.apply(0..p.len(), p, &grads[start..start + p.len()]);
    });
}

/// The job [`split_update`] runs on each piece: `(thread, first_row, piece, update)`.
type PieceJob<'f> = dyn Fn(usize, usize, &mut [f32], &mut Update<'_>) + Sync + 'f;

/// Runs `f(thread, first_row, piece, update)` on one piece per thread of
/// `params[range]` (`rows` rows of `row` values, cut at multiples of `unit` rows), each
/// with an [`Update`] over the same rows of the moments. Pieces are claimed like
/// [`split_rows`]'s, and `thread` names the packing workspace to use.
#[allow(clippy::too_many_arguments)]
fn split_update(
    pool: &Pool,
    update: &mut Update<'_>,
    range: core::ops::Range<usize>,
    params: &mut [f32],
    rows: usize,
    row: usize,
    unit: usize,
    f: &PieceJob<'_>,
) {
    let threads = pool.threads();
    let rule = update.rule;
    let moments = rule.moments();
    let p = &mut params[range.clone()];
    let first = if moments >= 1 { &mut update.first[range.clone()] } else { &mut [][..] };
    let second = if moments >= 2 { &mut update.second[range] } else { &mut [][..] };
    let pieces = |s| row_pieces(s, rows, row, threads, unit);
    let pp = pieces(p);
    let ff = if moments >= 1 { pieces(first) } else { Default::default() };
    let ss = if moments >= 2 { pieces(second) } else { Default::default() };
    let next = AtomicUsize::new(0);
    pool.run(&|t| {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= threads {
                break;
            }
            let Some((start, p)) = take(&pp[i]) else { continue };
            let first = take(&ff[i]).map_or(&mut [][..], |(_, s)| s);
            let second = take(&ss[i]).map_or(&mut [][..], |(_, s)| s);
            f(t, start, p, &mut Update { rule, first, second });
        }
    });
}

/// [`Update::linear_batch`] on `pool`: W's rows (and their moments) cut into one
/// piece per thread at multiples of [`MR`]; each thread computes the weight gradient
/// of its rows stripe by stripe with its own packing workspace and updates them. The
/// tiles are those of the one-thread call, so the bits are too.
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
    split_update(pool, update, range, params, n, k, MR, &|t, r0, w, u| {
        let rows = w.len() / k.max(1);
        // Rows r0.. of dYᵀ are columns r0.. of dY: a strided view.
        #[rustfmt::skip]
        crate::sgemm::sgemm_stripes(
            rows, batch, k,
            1.0,
            &dy[r0..], 1, n,
            x, k, 1,
            &mut pool.pack(t),
            &mut crate::optim::StripeUpdate { update: u, params: w, w0: 0, k },
        );
    });
}

/// Rows of W per dispatch of [`linear_rank1`]: the column halves of that many rows are
/// gathered into stack arrays of slices (16 KiB each).
const RANK1_ROWS: usize = 1024;

/// One column half of a block of W's rows for [`linear_rank1`].
struct Half<'s, 'a> {
    w: &'s mut [&'a mut [f32]],
    first: &'s mut [&'a mut [f32]],
    second: &'s mut [&'a mut [f32]],
    dx: Option<&'s mut [f32]>,
    x: &'s [f32],
}

/// [`Update::linear_rank1`] on `pool`: W's columns (and `dx`, `x`) cut in two halves
/// at a multiple of 16, one per thread, so that each half of `dx` is accumulated over
/// the rows in the same order as on one thread (bit-identical), and W and its moments
/// stream through two cores. Two pieces whatever the thread count.
///
/// Not used by the tape: on this machine one core saturates the memory bandwidth,
/// and the split batch-1 step measured 0.7–1.0× the one-thread time.
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
    if pool.threads() == 1 || n * k < MIN_SPLIT_FMAS || k < 32 {
        return update.linear_rank1(dx, range, params, dy, x);
    }
    assert_eq!(range.len(), n * k, "par::linear_rank1: W has {} values for {n}×{k}", range.len());
    let rule = update.rule;
    let moments = rule.moments();
    let w = &mut params[range.clone()];
    let first = if moments >= 1 { &mut update.first[range.clone()] } else { &mut [][..] };
    let second = if moments >= 2 { &mut update.second[range] } else { &mut [][..] };
    let mid = piece(k, 2, 16, 0).end;
    let (x_left, x_right) = x.split_at(mid);
    let (mut dx_left, mut dx_right) = match dx {
        Some(dx) => {
            assert_eq!(dx.len(), k, "par::linear_rank1: dx has {} values, x {k}", dx.len());
            let (l, r) = dx.split_at_mut(mid);
            (Some(l), Some(r))
        }
        None => (None, None),
    };
    let empty = || -> [&mut [f32]; RANK1_ROWS] { core::array::from_fn(|_| &mut [][..]) };
    let (mut wl, mut wr, mut fl, mut fr, mut sl, mut sr) =
        (empty(), empty(), empty(), empty(), empty(), empty());
    let mut w_rows = w.chunks_exact_mut(k);
    let mut f_rows = first.chunks_exact_mut(k);
    let mut s_rows = second.chunks_exact_mut(k);
    for dy in dy.chunks(RANK1_ROWS) {
        let rows = dy.len();
        for i in 0..rows {
            (wl[i], wr[i]) = w_rows.next().expect("W has n rows").split_at_mut(mid);
            if moments >= 1 {
                (fl[i], fr[i]) = f_rows.next().expect("moment rows").split_at_mut(mid);
            }
            if moments >= 2 {
                (sl[i], sr[i]) = s_rows.next().expect("moment rows").split_at_mut(mid);
            }
        }
        let fm = if moments >= 1 { rows } else { 0 };
        let sm = if moments >= 2 { rows } else { 0 };
        let halves = [
            Mutex::new(Some(Half {
                w: &mut wl[..rows],
                first: &mut fl[..fm],
                second: &mut sl[..sm],
                dx: dx_left.as_deref_mut(),
                x: x_left,
            })),
            Mutex::new(Some(Half {
                w: &mut wr[..rows],
                first: &mut fr[..fm],
                second: &mut sr[..sm],
                dx: dx_right.as_deref_mut(),
                x: x_right,
            })),
        ];
        let next = AtomicUsize::new(0);
        pool.run(&|_| {
            while let Some(slot) = halves.get(next.fetch_add(1, Ordering::Relaxed)) {
                let taken = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                if let Some(h) = taken {
                    let (mut f, mut s) = (h.first.iter_mut(), h.second.iter_mut());
                    let rows = h.w.iter_mut().zip(dy).map(|(w_row, &d)| {
                        let fr = f.next().map_or(&mut [][..], |r| &mut **r);
                        let sr = s.next().map_or(&mut [][..], |r| &mut **r);
                        (&mut **w_row, fr, sr, d)
                    });
                    crate::optim::rank1_rows(h.dx, rows, h.x, rule);
                }
            }
        });
    }
}
