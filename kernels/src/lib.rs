//! # idmlp-kernels
//!
//! Flat-slice numeric kernels for idmlp: GEMM, bias, relu, softmax cross-entropy,
//! reductions and optimizer updates. Every kernel takes row-major `f32` slices and
//! sizes, allocates nothing and knows nothing of tapes or models.
//!
//! Conventions, shared by every kernel:
//! - argument order: outputs first, then saved inputs, then sizes, then scalars;
//!   gradient names take a `d` prefix (`dh`, `dw`, `db`);
//! - **forward overwrites, backward accumulates** (`+=`); zeroing a gradient is the
//!   caller's own call (`fill(0.0)`), never a side effect;
//! - lengths are checked up front: a mismatch is a programming error and panics with
//!   the sizes in the message;
//! - each fast kernel has a slow, obvious twin in [`naive`] that tests compare against.
//!
//! Dimension names: `rows` is usually the batch `B`, `cols` the width `D = d + C`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

pub mod bias;
pub mod gemm;
pub mod naive;
pub mod optim;
#[cfg(feature = "std")]
pub mod par;
#[cfg(feature = "std")]
pub mod pool;
pub mod reduce;
pub mod relu;
pub mod sgemm;
pub mod simd;
pub mod softmax;

pub use bias::{bias_backward, bias_forward};
pub use gemm::{gemm_ab, gemm_abt, gemm_abt_bias, gemm_atb};
pub use optim::{
    Adam, Update, UpdateRule, adam_step, linear_rank1_update, momentum_step, sgd_step,
};
pub use reduce::{argmax, argmax_rows, column_sums_add};
pub use relu::{ReluGradAtZero, relu_backward, relu_backward_fresh, relu_forward};
pub use softmax::{softmax_rows, softmax_xent_backward, softmax_xent_forward};

/// Panics unless `len == rows * cols`, naming the buffer. Shared length check.
#[inline]
#[track_caller]
pub(crate) fn check_len(name: &str, len: usize, rows: usize, cols: usize) {
    let want = rows.checked_mul(cols).expect("matrix size overflows usize");
    assert!(len == want, "{name}: expected {rows}×{cols} = {want} elements, got {len}");
}
