//! Report output (feature `report`): turns numbers that were already computed into
//! files a person can read.
//!
//! This module never runs a model. The caller (the `idmlp` binary, or your own code)
//! trains and interprets, fills a [`Summary`] with plain numbers, and calls
//! [`write_all`], which writes six files into one directory:
//!
//! | file | what it holds |
//! |---|---|
//! | `metrics.json` | every number below, machine-readable ([`metrics_json`] lists the keys) |
//! | `layers.csv` | one row per layer: accuracy, identity distance, where the change sits, role |
//! | `contributions.png` | one row per sample: the input, then each layer's contribution map `h_l[0..d] − x` |
//! | `likelihood.png` | per sample, layers × classes: each layer's `softmax(h_l[d..D])` |
//! | `layer_accuracy.svg` | accuracy and identity distance per layer |
//! | `report.html` | one self-contained page showing all of the above, with how to read it |
//!
//! Accuracies and shares are fractions in `[0, 1]` everywhere in the API and in
//! `metrics.json`/`layers.csv`; only the HTML and SVG show percentages.
//!
//! Every file is written atomically (a temporary sibling, synced, then renamed), so a
//! crash or a reader never sees half a file. A [`Summary`] whose parts do not agree
//! (say, a sample with the wrong number of pixels), or whose figures would be absurdly
//! large (over 64 Mpixel), is a [`ReportError::Invalid`] before anything is written.
//! Odd but consistent input is not an error: zero layers or zero samples give valid,
//! small figures and empty tables; NaN values show as gray pixels, gaps in the chart
//! and `null` in `metrics.json`.
//!
//! ```
//! use idmlp::interpret::LayerRole;
//! use idmlp::mlp::{Architecture, Init};
//! use idmlp::report::{LayerRecord, SampleRecord, Summary, write_all};
//!
//! // A 2×2-pixel, 2-class, 1-layer model and one interpreted sample.
//! let summary = Summary {
//!     arch: Architecture::new(4, 2, 1),
//!     init: Init::default(),
//!     image_rows: 2,
//!     image_cols: 2,
//!     test_accuracy: 0.75,
//!     test_samples: 4,
//!     layers: vec![LayerRecord {
//!         layer: 1,
//!         accuracy: 0.75,
//!         identity_distance: 0.02,
//!         class_row_share: 0.9,
//!         feature_block_share: 0.1,
//!         feedback_share: 0.0,
//!         feature_change: 0.01,
//!         role: LayerRole::ClassEvidence,
//!     }],
//!     epochs: vec![],
//!     samples: vec![SampleRecord {
//!         index: 0,
//!         label: 1,
//!         image: vec![0.0, 1.0, 1.0, 0.0],
//!         maps: vec![0.0, -0.2, 0.1, 0.0],
//!         likelihoods: vec![0.3, 0.7],
//!     }],
//!     data: "generated".into(),
//!     class_names: None,
//! };
//! let dir = std::env::temp_dir().join(format!("idmlp-report-doc-{}", std::process::id()));
//! let files = write_all(&dir, &summary)?;
//! assert!(files.report.ends_with("report.html"));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), idmlp::report::ReportError>(())
//! ```

mod colormap;
mod figures;
mod html;
mod json;
mod raster;
mod svg;

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::interpret::LayerRole;
use crate::mlp::{Architecture, Init};

pub use figures::{ContributionsLayout, LikelihoodLayout};
pub use json::metrics_json;

/// Largest image (`d` pixels) the figures draw.
const MAX_IMAGE_PIXELS: usize = 1 << 24;

/// File name of the metrics JSON inside the output directory.
pub const METRICS_JSON: &str = "metrics.json";
/// File name of the per-layer CSV.
pub const LAYERS_CSV: &str = "layers.csv";
/// File name of the contribution-map grid.
pub const CONTRIBUTIONS_PNG: &str = "contributions.png";
/// File name of the per-layer likelihood figure.
pub const LIKELIHOOD_PNG: &str = "likelihood.png";
/// File name of the accuracy / identity-distance chart.
pub const LAYER_ACCURACY_SVG: &str = "layer_accuracy.svg";
/// File name of the HTML page.
pub const REPORT_HTML: &str = "report.html";

/// One training epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy, a fraction in `[0, 1]`.
    pub train_accuracy: f64,
    /// Test accuracy of the last layer after the epoch, a fraction; `None` if not measured.
    pub test_accuracy: Option<f64>,
    /// Wall-clock seconds the epoch took.
    pub seconds: f64,
}

/// What one hidden layer does, measured on the test set and on its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRecord {
    /// Layer number `l`, 1-based (`Summary::layers[i].layer == i + 1`).
    pub layer: usize,
    /// Test accuracy of this layer's own prediction `argmax h_l[d..D]`, a fraction.
    pub accuracy: f64,
    /// `‖W_l − I‖_F / ‖I‖_F` (see [`crate::interpret::WeightStats`]).
    pub identity_distance: f64,
    /// Share of `‖W_l − I‖²_F` in the class rows, a fraction.
    pub class_row_share: f64,
    /// Share of `‖W_l − I‖²_F` in the feature block, a fraction.
    pub feature_block_share: f64,
    /// Share of `‖W_l − I‖²_F` in the feature rows' class columns, a fraction.
    pub feedback_share: f64,
    /// Mean per-pixel `|h_l[0..d] − h_{l−1}[0..d]|` over the test set
    /// ([`crate::interpret::LayerMetrics::mean_feature_change`]).
    pub feature_change: f64,
    /// The role read off the weights ([`crate::interpret::WeightStats::role`]).
    pub role: LayerRole,
}

/// One interpreted test image.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRecord {
    /// Index of the image in the test set.
    pub index: usize,
    /// True class, `< C`.
    pub label: u32,
    /// The input `x`: `d` pixels in `[0, 1]`, row-major `image_rows × image_cols`.
    pub image: Vec<f32>,
    /// Contribution maps `h_l[0..d] − x`, `L × d`, layer 1 first.
    pub maps: Vec<f32>,
    /// Class likelihoods `softmax(h_l[d..D])`, `L × C`, layer 1 first.
    pub likelihoods: Vec<f32>,
}

/// Everything a report shows, as plain numbers. Build it with a struct literal.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The model's shape and activation choices.
    pub arch: Architecture,
    /// How the weights were initialised; a random init gets a warning in the report.
    pub init: Init,
    /// Image height; `image_rows · image_cols` must equal `arch.inputs`.
    pub image_rows: usize,
    /// Image width.
    pub image_cols: usize,
    /// Test accuracy of the last layer (the model's output), a fraction.
    pub test_accuracy: f64,
    /// Number of test images the accuracies were measured on.
    pub test_samples: usize,
    /// One record per hidden layer, layer 1 first (`arch.layers` of them).
    pub layers: Vec<LayerRecord>,
    /// Training history; empty when the model was only evaluated.
    pub epochs: Vec<EpochRecord>,
    /// The images shown in the figures, in display order.
    pub samples: Vec<SampleRecord>,
    /// Where the data came from (a path or a description); shown escaped.
    pub data: String,
    /// Optional class names (`arch.classes` of them); indices are shown otherwise.
    pub class_names: Option<Vec<String>>,
}

impl Summary {
    /// Checks the parts that every file relies on: one layer record per layer,
    /// numbered 1..=L, and class names (if any) one per class.
    fn check_layers(&self) -> Result<(), String> {
        let l = self.arch.layers;
        if self.layers.len() != l {
            return Err(format!("{} layer records for a {l}-layer model", self.layers.len()));
        }
        if let Some(bad) = self.layers.iter().enumerate().find(|(i, r)| r.layer != i + 1) {
            return Err(format!("layer record {} is numbered {}", bad.0 + 1, bad.1.layer));
        }
        if let Some(names) = &self.class_names
            && names.len() != self.arch.classes
        {
            let c = self.arch.classes;
            return Err(format!("{} class names for {c} classes", names.len()));
        }
        Ok(())
    }

    /// Checks everything the figures index: the image shape and every sample's lengths
    /// and label, with overflow-checked sizes.
    fn check_samples(&self) -> Result<(), String> {
        self.check_layers()?;
        let (d, c, l) = (self.arch.inputs, self.arch.classes, self.arch.layers);
        let (rows, cols) = (self.image_rows, self.image_cols);
        if rows.checked_mul(cols) != Some(d) || d == 0 {
            return Err(format!("image shape {rows}×{cols} does not hold d = {d} pixels"));
        }
        // Keeps the figure arithmetic far from overflow; 4096×4096 is plenty for a tile.
        if d > MAX_IMAGE_PIXELS {
            return Err(format!(
                "images of {d} pixels are too large to draw (at most {MAX_IMAGE_PIXELS})"
            ));
        }
        let maps = l.checked_mul(d).ok_or("L·d overflows")?;
        let likelihoods = l.checked_mul(c).ok_or("L·C overflows")?;
        for s in &self.samples {
            let i = s.index;
            if s.image.len() != d {
                return Err(format!("sample {i}: {} pixels, expected d = {d}", s.image.len()));
            }
            if s.maps.len() != maps {
                return Err(format!(
                    "sample {i}: {} map values, expected L·d = {maps}",
                    s.maps.len()
                ));
            }
            if s.likelihoods.len() != likelihoods {
                let n = s.likelihoods.len();
                return Err(format!("sample {i}: {n} likelihoods, expected L·C = {likelihoods}"));
            }
            if s.label as usize >= c {
                return Err(format!("sample {i}: label {} is not below C = {c}", s.label));
            }
        }
        Ok(())
    }

    /// [`Self::check_samples`], plus that both figures fit in memory.
    fn check_figures(&self) -> Result<(), String> {
        self.check_samples()?;
        let c = ContributionsLayout::of(self);
        figures::check_size("the contribution grid", c.width(), c.height())?;
        let l = LikelihoodLayout::of(self);
        figures::check_size("the likelihood figure", l.width(), l.height())
    }

    /// The display name of class `c`: its name if given, else its index.
    fn class_name(&self, c: usize) -> String {
        match self.class_names.as_ref().and_then(|n| n.get(c)) {
            Some(name) => name.clone(),
            None => c.to_string(),
        }
    }
}

/// The files [`write_all`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportFiles {
    /// `metrics.json`.
    pub metrics: PathBuf,
    /// `layers.csv`.
    pub layers_csv: PathBuf,
    /// `contributions.png`.
    pub contributions: PathBuf,
    /// `likelihood.png`.
    pub likelihood: PathBuf,
    /// `layer_accuracy.svg`.
    pub layer_accuracy: PathBuf,
    /// `report.html`, the page to open.
    pub report: PathBuf,
}

/// Why a report file could not be written.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReportError {
    /// The [`Summary`] does not hold together; nothing was written for `path`.
    Invalid {
        /// The file (or, from [`write_all`], the directory) that was to be written.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// Creating the directory, encoding, writing, syncing or renaming failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error (a PNG encoding failure is wrapped here too).
        source: io::Error,
    },
}

impl ReportError {
    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReportError::Invalid { path, .. } | ReportError::Io { path, .. } => path,
        }
    }
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Invalid { path, reason } => {
                write!(f, "cannot write {}: inconsistent report data: {reason}", path.display())
            }
            ReportError::Io { path, .. } => write!(f, "cannot write {}", path.display()),
        }
    }
}

impl Error for ReportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ReportError::Invalid { .. } => None,
            ReportError::Io { source, .. } => Some(source),
        }
    }
}

/// Wraps a consistency failure with the path it was for.
fn invalid(path: &Path, check: Result<(), String>) -> Result<(), ReportError> {
    check.map_err(|reason| ReportError::Invalid { path: path.to_path_buf(), reason })
}

/// Writes `bytes` to `path` atomically, naming `path` in any error.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::atomic::write(path, bytes)
        .map_err(|source| ReportError::Io { path: path.to_path_buf(), source })
}

/// Writes `metrics.json` ([`metrics_json`], pretty-printed, with a final newline).
pub fn write_metrics(path: impl AsRef<Path>, summary: &Summary) -> Result<(), ReportError> {
    let path = path.as_ref();
    invalid(path, summary.check_layers())?;
    write_file(path, metrics_json(summary).as_bytes())
}

/// Writes `layers.csv`: a header line, then one row per layer (layer 1 first) with
/// `layer, accuracy, identity_distance, class_row_share, feature_block_share,
/// feedback_share, feature_change, role`. Fractions, not percentages.
pub fn write_layers_csv(path: impl AsRef<Path>, summary: &Summary) -> Result<(), ReportError> {
    let path = path.as_ref();
    invalid(path, summary.check_layers())?;
    write_file(path, json::layers_csv(summary).as_bytes())
}

/// Writes `contributions.png`: one row per sample, the input image (grayscale) then
/// one tile per layer with its contribution map, coloured blue (suppressed) – white
/// (0) – red (strengthened) on one scale shared by every tile. Geometry:
/// [`ContributionsLayout`].
pub fn write_contributions_png(
    path: impl AsRef<Path>,
    summary: &Summary,
) -> Result<(), ReportError> {
    let path = path.as_ref();
    invalid(path, summary.check_figures())?;
    let png = figures::contributions(summary).encode_png();
    write_file(path, &png.map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?)
}

/// Writes `likelihood.png`: per sample, the input above a block of `L` rows (layers,
/// layer 1 at the top) × `C` columns (classes), white (0) to dark blue (1), with the
/// true class framed in orange. Geometry: [`LikelihoodLayout`].
pub fn write_likelihood_png(path: impl AsRef<Path>, summary: &Summary) -> Result<(), ReportError> {
    let path = path.as_ref();
    invalid(path, summary.check_figures())?;
    let png = figures::likelihood(summary).encode_png();
    write_file(path, &png.map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?)
}

/// Writes `layer_accuracy.svg`: a standalone SVG line chart of each layer's accuracy
/// (left axis, 0–100%) and identity distance (right axis) over layer number.
pub fn write_layer_accuracy_svg(
    path: impl AsRef<Path>,
    summary: &Summary,
) -> Result<(), ReportError> {
    let path = path.as_ref();
    invalid(path, summary.check_layers())?;
    write_file(path, svg::layer_accuracy(summary).as_bytes())
}

/// Writes `report.html`: one self-contained page (no script, no network) that shows
/// `contributions.png`, `likelihood.png` and `layer_accuracy.svg` by relative path, so
/// it belongs in the same directory as them (as [`write_all`] arranges).
pub fn write_report_html(path: impl AsRef<Path>, summary: &Summary) -> Result<(), ReportError> {
    let path = path.as_ref();
    invalid(path, summary.check_samples())?;
    write_file(path, html::report(summary).as_bytes())
}

/// Writes all six report files into `out_dir` (created if missing) and returns their
/// paths. The summary is checked once before anything is written; the page is written
/// last, so it never points at a figure that is not there yet.
pub fn write_all(out_dir: impl AsRef<Path>, summary: &Summary) -> Result<ReportFiles, ReportError> {
    let dir = out_dir.as_ref();
    invalid(dir, summary.check_figures())?;
    std::fs::create_dir_all(dir)
        .map_err(|source| ReportError::Io { path: dir.to_path_buf(), source })?;
    let files = ReportFiles {
        metrics: dir.join(METRICS_JSON),
        layers_csv: dir.join(LAYERS_CSV),
        contributions: dir.join(CONTRIBUTIONS_PNG),
        likelihood: dir.join(LIKELIHOOD_PNG),
        layer_accuracy: dir.join(LAYER_ACCURACY_SVG),
        report: dir.join(REPORT_HTML),
    };
    write_metrics(&files.metrics, summary)?;
    write_layers_csv(&files.layers_csv, summary)?;
    write_contributions_png(&files.contributions, summary)?;
    write_likelihood_png(&files.likelihood, summary)?;
    write_layer_accuracy_svg(&files.layer_accuracy, summary)?;
    write_report_html(&files.report, summary)?;
    Ok(files)
}
