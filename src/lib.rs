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
//! All matrices are row-major flat `f32` slices; buffers carry their shape in a
//! comment, e.g. `h: (B, D)`.
//!
//! ## Two choices that differ from the paper's literal model
//!
//! - **The `C` class dims are linear** ([`mlp::ClassActivation::Linear`], the default):
//!   relu applies to the `d` feature dims only. With relu on all `D` dims a class dim
//!   whose pre-activation turns negative for every input is dead for good (on
//!   Fashion-MNIST 4 of the 10 class logits die and accuracy stalls near 56%).
//!   [`mlp::ClassActivation::Relu`] keeps the literal model available.
//! - **relu′(0) = 1** ([`tape::ReluGradAtZero::One`], the default; backward mask
//!   `a ≥ 0`). At identity init every class dim and every background pixel sits
//!   exactly at the kink. With the common convention relu′(0) = 0 the literal model
//!   gets an exactly zero gradient and its loss never leaves `ln C`; with relu′(0) = 1
//!   a layer at the kink is treated as the identity it was initialised to.
//!
//! ## Reading a layer
//!
//! Because trained weights stay near identity, layer `l` is readable on its own
//! ([`interpret`]): its **contribution map** `h_l[0..d] − x` (what it changed in the
//! image so far), its **class likelihood** `softmax(h_l[d..D])` and so its own
//! prediction and accuracy, and its **identity distance** `‖W_l − I‖_F / ‖I‖_F`.
//!
//! ## Three ways in
//!
//! Embed a trained model: map a checkpoint, interpret an image into buffers you own,
//! with no allocation after setup (`examples/embed.rs`, builds with
//! `default-features = false`):
//!
//! ```
//! use idmlp::interpret::{Interpreter, Readout};
//! use idmlp::mlp::{Architecture, Init, Mlp};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("idmlp-lib-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("model.idmlp");
//! let arch = Architecture::new(4, 2, 3); // d = 4 pixels, C = 2 classes, L = 3 layers
//! idmlp::checkpoint::save(&path, &Mlp::new(arch, Init::default(), 0), Init::default())?;
//!
//! let model = idmlp::checkpoint::MappedCheckpoint::open(&path)?; // zero copy
//! let arch = model.meta().arch;
//! let mut interpreter = Interpreter::new();
//! interpreter.prepare(&arch, model.params(), 1); // setup: size the tape once
//! let mut readout = Readout::new(&arch); //          your buffers: L×C, L, L×d
//! let class = interpreter.read_image(&arch, model.params(), &[0.0, 1.0, 0.5, 0.0], &mut readout);
//! assert_eq!(class, readout.prediction(3));
//! assert_eq!(readout.likelihood(1).len(), 2);
//! # drop(model);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! Check gradients of your own function built on the [`tape`] with [`gradcheck`]
//! (`examples/gradcheck.rs`), and time a reusable [`train::Trainer`] step against
//! [`mlp::Architecture::step_flops`] (`examples/step_cost.rs`).
//!
//! ## Features
//!
//! `cli` (default: the `idmlp` binary, with `gz` and `report`), `gz` (gzip IDX files),
//! `report` (PNG/SVG/HTML/JSON output, the `report` module). With none of them the
//! crate holds only the model, tape, data readers, checkpoints, interpretation and
//! gradient checks.
#![deny(missing_docs)]

mod atomic;
pub mod checkpoint;
pub mod data;
pub mod gradcheck;
mod hugepages;
pub mod idx;
pub mod interpret;
pub mod mlp;
pub mod optim;
#[cfg(feature = "report")]
pub mod report;
pub mod tape;
pub mod train;
