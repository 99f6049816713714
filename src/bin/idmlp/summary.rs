//! Collects what the report shows: per-layer accuracy over a data set, where each
//! layer's weights moved, and the full per-layer reading of a few samples.

use std::error::Error;
use std::num::NonZeroUsize;

use idmlp::data::Dataset;
use idmlp::interpret::{Interpreter, Readout, evaluate, weight_stats};
use idmlp::mlp::{Init, Mlp};
use idmlp::report::{EpochRecord, LayerRecord, SampleRecord, Summary};

/// Batch size of evaluation passes: large enough for efficient GEMMs, small enough
/// that the tape (L·B·D floats ×3) stays modest.
const EVAL_BATCH: usize = 250;

/// Evaluates `mlp` on all of `data` and reads `samples` example images layer by layer.
pub fn collect(
    mlp: &Mlp,
    init: Init,
    data: &Dataset,
    samples: usize,
    epochs: Vec<EpochRecord>,
    data_name: &str,
) -> Result<Summary, Box<dyn Error>> {
    let arch = mlp.arch;
    check_compatible(mlp, data, data_name)?;
    let mut interpreter = Interpreter::new();
    let batch = NonZeroUsize::new(EVAL_BATCH).expect("non-zero");
    let metrics = evaluate(&mut interpreter, &arch, &mlp.params, data, batch);
    let accuracy = metrics.accuracy();
    let change = metrics.mean_feature_change();
    let layers = weight_stats(mlp)
        .into_iter()
        .enumerate()
        .map(|(i, w)| LayerRecord {
            layer: i + 1,
            accuracy: accuracy[i],
            identity_distance: w.identity_distance,
            class_row_share: w.class_row_share,
            feature_block_share: w.feature_block_share,
            feedback_share: w.feedback_share,
            feature_change: change[i],
            role: w.role(),
        })
        .collect();

    let picked = pick_samples(data, samples);
    let d = arch.inputs;
    let mut x = Vec::with_capacity(picked.len() * d);
    for &i in &picked {
        let image = data.image(i).expect("picked index is in range");
        x.extend(image.iter().map(|&p| f32::from(p) / 255.0));
    }
    let mut records = Vec::with_capacity(picked.len());
    if !picked.is_empty() {
        let view = interpreter.run(&arch, &mlp.params, &x);
        let mut readout = Readout::new(&arch);
        for (s, &i) in picked.iter().enumerate() {
            view.read_into(s, &mut readout); // every layer: L×d maps, L×C likelihoods
            records.push(SampleRecord {
                index: i,
                label: u32::from(data.label(i).expect("picked index is in range")),
                image: x[s * d..(s + 1) * d].to_vec(),
                maps: readout.contribution_maps().to_vec(),
                likelihoods: readout.likelihoods().to_vec(),
            });
        }
    }
    Ok(Summary {
        arch,
        init,
        image_rows: data.rows(),
        image_cols: data.cols(),
        test_accuracy: accuracy.last().copied().unwrap_or(0.0),
        test_samples: data.len(),
        layers,
        epochs,
        samples: records,
        data: data_name.to_string(),
        class_names: None,
    })
}

/// Explains, in one sentence, why a model and a data set do not fit together.
pub fn check_compatible(mlp: &Mlp, data: &Dataset, data_name: &str) -> Result<(), Box<dyn Error>> {
    let arch = mlp.arch;
    if data.pixels() != arch.inputs || data.classes() != arch.classes {
        return Err(format!(
            "model and data do not fit: the checkpoint has d = {}, C = {} (D = {}); {data_name} has \
             {}×{} images (d = {}) and C = {} → D = {}",
            arch.inputs,
            arch.classes,
            arch.width(),
            data.rows(),
            data.cols(),
            data.pixels(),
            data.classes(),
            data.pixels() + data.classes()
        )
        .into());
    }
    Ok(())
}

/// Up to `n` sample indices: the first example of each class in turn (so a grid of
/// 10 shows every digit), then further examples in file order.
fn pick_samples(data: &Dataset, n: usize) -> Vec<usize> {
    let n = n.min(data.len());
    let mut picked = Vec::with_capacity(n);
    let mut seen = vec![false; data.classes()];
    for i in 0..data.len() {
        if picked.len() == n {
            break;
        }
        let label = data.label(i).map_or(0, usize::from);
        if !seen[label] {
            seen[label] = true;
            picked.push(i);
        }
    }
    let mut i = 0;
    while picked.len() < n {
        if !picked.contains(&i) {
            picked.push(i);
        }
        i += 1;
    }
    picked.sort_unstable();
    picked
}
