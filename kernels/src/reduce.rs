//! Reductions over rows and columns: column sums and row argmax.

use crate::check_len;

/// `sums[c] += Σ_r x[r, c]` over `x: rows×cols` (accumulates into `sums: cols`).
#[track_caller]
pub fn column_sums_add(sums: &mut [f32], x: &[f32], rows: usize, cols: usize) {
    check_len("column_sums_add x", x.len(), rows, cols);
    check_len("column_sums_add sums", sums.len(), 1, cols);
    if cols == 0 {
        return;
    }
    // Row-major: walking rows and adding each whole row keeps both streams contiguous
    // and lets the inner loop vectorise.
    for row in x.chunks_exact(cols) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
}

/// Index of the largest element; the first one on ties, `0` for an empty slice.
/// NaN never wins, wherever it stands: the first non-NaN element is the starting
/// candidate (a NaN candidate would beat everything, as `v > NaN` is always false).
/// An all-NaN row gives `0`, so every row still gets an index.
pub fn argmax(x: &[f32]) -> usize {
    let Some(mut best) = x.iter().position(|v| !v.is_nan()) else {
        return 0;
    };
    for (i, &v) in x.iter().enumerate().skip(best + 1) {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// `out[r] = argmax(x[r, ..])` for `x: rows×cols`, `out: rows` (overwritten).
#[track_caller]
pub fn argmax_rows(out: &mut [u32], x: &[f32], rows: usize, cols: usize) {
    check_len("argmax_rows x", x.len(), rows, cols);
    assert!(out.len() == rows, "argmax_rows out: expected {rows} elements, got {}", out.len());
    if cols == 0 {
        out.fill(0);
        return;
    }
    for (o, row) in out.iter_mut().zip(x.chunks_exact(cols)) {
        *o = argmax(row) as u32;
    }
}
