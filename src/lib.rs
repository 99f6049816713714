//! # idmlp — deep identity-initialized MLPs, explained layer by layer
//!
//! Kubota, Hayashi, Hayase and Uchida, "Layer-Wise Interpretation of Deep Neural
//! Networks Using Identity Initialization" (ICASSP 2021, arXiv:2102.13333).
//!
//! ## The model
//!
//! ```text
//! h_0 = [x, 0_C]                          the C extra dims start at zero
//! a_l = h_{l-1} W_lᵀ + b_l                W_l: D×D, b_l: D, l = 1..L
//! h_l = [relu(a_l[0..d]), a_l[d..d+C]]    relu on the d feature dims; class dims stay linear
//! z   = h_L[d .. d+C]                     logits: the class dims of the last layer
//! loss = mean softmax cross-entropy(z, label)
//! init "identity": W_l = s·I (s = 1 by default), b_l = 0
//! ```
//!
//! ## Dimension legend
//!
//! | name | meaning |
//! |---|---|
//! | `B` | batch size (rows of every activation) |
//! | `d` | input pixels (`rows·cols` of an IDX image, 784 for MNIST) |
//! | `C` | classes (10) |
//! | `D` | hidden width, `d + C` (794) |
//! | `L` | hidden layers |
//!
//! All matrices are row-major flat `f32` slices.
#![deny(missing_docs)]

mod atomic;
pub mod checkpoint;
pub mod data;
pub mod gradcheck;
pub mod idx;
pub mod interpret;
pub mod mlp;
pub mod optim;
#[cfg(feature = "report")]
pub mod report;
pub mod tape;
pub mod train;
