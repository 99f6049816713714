//! # Embedding a trained model's interpretation
//!
//! For an engineer who ships a trained idmlp model inside a small program and wants
//! every layer's reading of one image at a time, with no heap traffic in the hot path.
//!
//! ```text
//! cargo run --release --no-default-features --example embed -- MODEL [IMAGES [LABELS]]
//! ```
//!
//! - `MODEL`: a checkpoint written by `idmlp train` or `idmlp::checkpoint::save`. It is
//!   memory-mapped and validated once ([`MappedCheckpoint`]); the parameters are read
//!   straight from the map, never copied.
//! - `IMAGES`, `LABELS`: raw (uncompressed) IDX files such as `t10k-images-idx3-ubyte`
//!   and `t10k-labels-idx1-ubyte`, also memory-mapped. Without them the example draws
//!   one image itself (a vertical stroke, roughly a "1").
//!
//! Setup allocates: the interpreter's tape is sized once ([`Interpreter::prepare`]),
//! and one [`Readout`] holds the caller's buffers (per-layer likelihoods `L×C`,
//! predictions `L`, contribution maps `L×d`). After setup, each image is one forward
//! pass written into those buffers: a counting global allocator checks that the
//! whole loop over the images allocates **nothing**, and the example fails if it does.
//!
//! It prints the first image's reading layer by layer, its last layer's contribution
//! map as text (`+` strengthened, `-` suppressed), per-layer accuracy over all images
//! when labels are given, and the allocation count.
//!
//! The example needs none of the crate's features (no CLI, gzip or report code):
//! `scripts/embed-size.sh` builds it with `--no-default-features --release`, strips
//! it and prints its size.

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use idmlp::checkpoint::MappedCheckpoint;
use idmlp::idx::IdxFile;
use idmlp::interpret::{Interpreter, Readout};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the images come from: mapped IDX files, or one generated image.
enum Images {
    Files { images: IdxFile, labels: Option<IdxFile>, rows: usize, cols: usize, count: usize },
    Generated { image: Vec<u8>, rows: usize, cols: usize },
}

impl Images {
    fn count(&self) -> usize {
        match self {
            Images::Files { count, .. } => *count,
            Images::Generated { .. } => 1,
        }
    }

    fn shape(&self) -> (usize, usize) {
        match self {
            Images::Files { rows, cols, .. } | Images::Generated { rows, cols, .. } => {
                (*rows, *cols)
            }
        }
    }

    /// Image `i` as `rows·cols` bytes, borrowed from the map.
    fn image(&self, i: usize) -> &[u8] {
        match self {
            Images::Files { images, rows, cols, .. } => {
                let d = rows * cols;
                let pixels = images.view().as_u8().expect("checked at open: u8 images");
                &pixels[i * d..(i + 1) * d]
            }
            Images::Generated { image, .. } => image,
        }
    }

    fn label(&self, i: usize) -> Option<usize> {
        match self {
            Images::Files { labels: Some(labels), .. } => {
                labels.view().as_u8().map(|l| usize::from(l[i]))
            }
            _ => None,
        }
    }
}

fn open_images(args: &[String], d: usize) -> Result<Images, Box<dyn Error>> {
    let Some(images_path) = args.get(2) else {
        let side = (d as f64).sqrt() as usize;
        if side * side != d {
            return Err(
                format!("the model has d = {d} inputs, not a square image; pass IMAGES").into()
            );
        }
        // A vertical stroke two pixels wide in the middle third: roughly a "1".
        let mut image = vec![0u8; d];
        for r in side / 5..side - side / 5 {
            for c in side / 2 - 1..=side / 2 {
                image[r * side + c] = 255;
            }
        }
        return Ok(Images::Generated { image, rows: side, cols: side });
    };
    let images = IdxFile::open(images_path)?;
    let view = images.view();
    let dims: Vec<usize> = view.dims().collect();
    if view.as_u8().is_none() || dims.len() != 3 {
        return Err(format!("{images_path}: expected u8 images (rank 3), got {dims:?}").into());
    }
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows * cols != d {
        return Err(format!(
            "{images_path}: {rows}×{cols} images, but the model has d = {d} inputs"
        )
        .into());
    }
    let labels = match args.get(3) {
        Some(path) => {
            let labels = IdxFile::open(path)?;
            let n = labels.view().as_u8().map(<[u8]>::len);
            if n != Some(count) {
                return Err(format!("{path}: expected {count} u8 labels").into());
            }
            Some(labels)
        }
        None => None,
    };
    Ok(Images::Files { images, labels, rows, cols, count })
}

fn run() -> Result<ExitCode, Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(model_path) = args.get(1) else {
        eprintln!("usage: embed MODEL [IMAGES [LABELS]]   (raw IDX files)");
        return Ok(ExitCode::from(2));
    };

    // ---- setup: everything that allocates happens here, once ----
    let model = MappedCheckpoint::open(model_path)?;
    let arch = model.meta().arch;
    let params = model.params(); // borrowed from the map: L·(D² + D) floats
    let (d, classes, layers) = (arch.inputs, arch.classes, arch.layers);
    println!(
        "model: {} (d = {d}, C = {classes}, L = {layers}, {} parameters, mapped zero-copy)",
        file_name(model_path),
        params.len()
    );
    let images = open_images(&args, d)?;
    let (rows, cols) = images.shape();
    match args.get(2) {
        Some(path) => println!("images: {} ({} of {rows}×{cols})", file_name(path), images.count()),
        None => println!("images: one generated {rows}×{cols} stroke"),
    }

    let mut interpreter = Interpreter::new();
    interpreter.prepare(&arch, params, 1); // sizes the tape for one image
    let mut readout = Readout::new(&arch); // caller-owned: L×C likelihoods, L predictions, L×d maps
    let mut x = vec![0.0f32; d]; // one image scaled to [0, 1]
    let mut correct = vec![0u64; layers]; // per-layer hits

    // ---- the hot loop: no allocation from here on ----
    let before = counting_alloc::allocations();
    let start = Instant::now();
    for i in 0..images.count() {
        for (v, &p) in x.iter_mut().zip(images.image(i)) {
            *v = f32::from(p) / 255.0;
        }
        interpreter.read_image(&arch, params, &x, &mut readout);
        if let Some(label) = images.label(i) {
            for (hits, &p) in correct.iter_mut().zip(readout.predictions()) {
                *hits += u64::from(p == label);
            }
        }
    }
    let elapsed = start.elapsed();
    let after = counting_alloc::allocations();
    // ---- end of the hot loop ----

    // Image 0 again, to print its reading (printing allocates, so not in the loop).
    for (v, &p) in x.iter_mut().zip(images.image(0)) {
        *v = f32::from(p) / 255.0;
    }
    interpreter.read_image(&arch, params, &x, &mut readout);
    print_first(&readout, images.label(0), rows, cols);
    let n = images.count();
    if images.label(0).is_some() {
        let acc = |l: usize| 100.0 * correct[l - 1] as f64 / n.max(1) as f64;
        let per_layer: Vec<String> = (1..=layers).map(|l| format!("{:.1}", acc(l))).collect();
        println!("accuracy by layer (%): {}", per_layer.join(" "));
        println!("last-layer accuracy: {:.2}% on {n} images", acc(layers));
    }
    println!(
        "interpreted {n} image(s) in {:.1} ms ({:.0} µs per image)",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / n.max(1) as f64
    );
    let (calls, bytes) = (after.0 - before.0, after.1 - before.1);
    println!("allocations while interpreting {n} image(s) after setup: {calls} ({bytes} bytes)");
    if calls != 0 {
        eprintln!("embed: the interpretation loop allocated");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Image 0's reading: per layer its prediction and confidence, then the last layer's
/// contribution map as text.
fn print_first(first: &Readout, label: Option<usize>, rows: usize, cols: usize) {
    let layers = first.layers();
    match label {
        Some(label) => println!("image 0 (label {label}), layer by layer:"),
        None => println!("image 0, layer by layer:"),
    }
    println!("  layer  prediction  p(prediction)  mean |map|");
    for l in 1..=layers {
        let p = first.prediction(l);
        let map = first.contribution_map(l);
        let mean = map.iter().map(|m| m.abs()).sum::<f32>() / map.len().max(1) as f32;
        println!("  {l:>5}  {p:>10}  {:>13.3}  {mean:>10.4}", first.likelihood(l)[p]);
    }
    let map = first.contribution_map(layers);
    let scale = map.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!(
        "contribution map of layer {layers} (+ strengthened, - suppressed, max |m| = {scale:.3}):"
    );
    for r in 0..rows {
        let line: String = map[r * cols..(r + 1) * cols]
            .iter()
            .map(|&m| match m / scale.max(f32::MIN_POSITIVE) {
                v if v > 0.25 => '+',
                v if v < -0.25 => '-',
                _ => '.',
            })
            .collect();
        println!("  {line}");
    }
}

fn file_name(path: &str) -> String {
    Path::new(path).file_name().map_or(path.into(), |n| n.to_string_lossy().into_owned())
}
