//! `metrics.json` and `layers.csv`: the machine-readable side of the report.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::Summary;
use super::figures::contribution_scale;
#[cfg(doc)]
use super::write_metrics;
use crate::mlp::{ClassActivation, Init};
use crate::tape::ReluGradAtZero;

/// The version of the `metrics.json` layout; bumped when a key changes meaning or goes
/// away (adding keys does not bump it).
const FORMAT_VERSION: u32 = 1;

/// The metrics as one JSON object, as text: exactly what [`write_metrics`] writes to
/// `metrics.json` (pretty-printed, final newline). Text rather than a `serde_json`
/// value so that the public API does not tie callers to one JSON library's types;
/// parse it with any JSON reader. Accuracies and shares are fractions in `[0, 1]`;
/// per-layer arrays have `L` entries, layer 1 first. Non-finite numbers become `null`.
///
/// | key | value |
/// |---|---|
/// | `format_version` | 1 |
/// | `layers`, `width`, `classes`, `inputs` | `L`, `D = d + C`, `C`, `d` |
/// | `image_rows`, `image_cols` | image shape |
/// | `class_activation` | `"linear"` or `"relu"` (the paper's literal model) |
/// | `relu_grad_at_zero` | `1` or `0` |
/// | `init`, `init_scale` | `"identity"`, `"he"` or `"xavier"`; the identity scale `s` or `null` |
/// | `test_accuracy`, `test_samples` | accuracy of layer `L`, and on how many images |
/// | `layer_accuracy` | accuracy of each layer's own prediction |
/// | `identity_distance` | `‖W_l − I‖_F / ‖I‖_F` |
/// | `class_row_share`, `feature_block_share`, `feedback_share` | where `‖W_l − I‖²_F` sits |
/// | `feature_change` | mean per-pixel `|h_l[0..d] − h_{l−1}[0..d]|` |
/// | `roles` | each layer's role label, e.g. `"adds class evidence"` |
/// | `epochs` | `[{epoch, train_loss, train_accuracy, test_accuracy (or null), seconds}]` |
/// | `contribution_scale` | the shared `max |m|` that maps to full colour in `contributions.png` |
/// | `samples` | `[{index, label, predictions}]`: each shown image and every layer's guess |
/// | `data`, `class_names` | where the data came from; names or `null` |
pub fn metrics_json(summary: &Summary) -> String {
    // Serialising a `Value` to a String cannot fail (no I/O, string keys only).
    let mut text = serde_json::to_string_pretty(&metrics_value(summary)).unwrap_or_default();
    text.push('\n');
    text
}

/// [`metrics_json`] before serialisation.
fn metrics_value(summary: &Summary) -> Value {
    let arch = &summary.arch;
    let per_layer =
        |f: fn(&super::LayerRecord) -> f64| -> Vec<f64> { summary.layers.iter().map(f).collect() };
    let epochs: Vec<Value> = summary
        .epochs
        .iter()
        .map(|e| {
            json!({
                "epoch": e.epoch,
                "train_loss": e.train_loss,
                "train_accuracy": e.train_accuracy,
                "test_accuracy": e.test_accuracy,
                "seconds": e.seconds,
            })
        })
        .collect();
    let classes = arch.classes.max(1);
    let samples: Vec<Value> = summary
        .samples
        .iter()
        .map(|s| {
            let predictions: Vec<Option<usize>> =
                s.likelihoods.chunks(classes).map(argmax_finite).collect();
            json!({ "index": s.index, "label": s.label, "predictions": predictions })
        })
        .collect();
    json!({
        "format_version": FORMAT_VERSION,
        "layers": arch.layers,
        "width": arch.width(),
        "classes": arch.classes,
        "inputs": arch.inputs,
        "image_rows": summary.image_rows,
        "image_cols": summary.image_cols,
        "class_activation": class_activation_name(arch.class_activation),
        "relu_grad_at_zero": relu_grad_at_zero_value(arch.relu_grad_at_zero),
        "init": init_name(summary.init),
        "init_scale": init_scale(summary.init).map(short_f64),
        "test_accuracy": summary.test_accuracy,
        "test_samples": summary.test_samples,
        "layer_accuracy": per_layer(|r| r.accuracy),
        "identity_distance": per_layer(|r| r.identity_distance),
        "class_row_share": per_layer(|r| r.class_row_share),
        "feature_block_share": per_layer(|r| r.feature_block_share),
        "feedback_share": per_layer(|r| r.feedback_share),
        "feature_change": per_layer(|r| r.feature_change),
        "roles": summary.layers.iter().map(|r| r.role.label()).collect::<Vec<_>>(),
        "epochs": epochs,
        "contribution_scale": short_f64(contribution_scale(summary)),
        "samples": samples,
        "data": summary.data,
        "class_names": summary.class_names,
    })
}

/// `layers.csv`: a header line and one row per layer.
pub(crate) fn layers_csv(summary: &Summary) -> String {
    let mut out = String::from(
        "layer,accuracy,identity_distance,class_row_share,feature_block_share,feedback_share,feature_change,role\n",
    );
    for r in &summary.layers {
        // `{}` on f64 is the shortest representation that reads back exactly. Writing
        // to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.layer,
            r.accuracy,
            r.identity_distance,
            r.class_row_share,
            r.feature_block_share,
            r.feedback_share,
            r.feature_change,
            r.role.label(),
        );
    }
    out
}

/// `x` as the f64 with the same shortest decimal form, so 0.3f32 is written as `0.3`
/// rather than `0.30000001192092896`. Non-finite values pass through (and become `null`).
fn short_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Index of the largest finite value; `None` when no value is finite.
pub(crate) fn argmax_finite(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .fold(None, |best: Option<(usize, f32)>, (i, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

/// `"linear"` or `"relu"`, as on the command line.
pub(crate) fn class_activation_name(a: ClassActivation) -> &'static str {
    // `matches!` rather than `match`: still compiles if the enum grows.
    if matches!(a, ClassActivation::Relu) { "relu" } else { "linear" }
}

/// relu′(0) as the number the command line takes.
pub(crate) fn relu_grad_at_zero_value(g: ReluGradAtZero) -> u8 {
    u8::from(matches!(g, ReluGradAtZero::One))
}

/// `"identity"`, `"he"` or `"xavier"`, as on the command line.
pub(crate) fn init_name(init: Init) -> &'static str {
    match init {
        Init::Identity { .. } => "identity",
        Init::He => "he",
        Init::Xavier => "xavier",
    }
}

/// The identity init's diagonal scale, if that is the init.
pub(crate) fn init_scale(init: Init) -> Option<f32> {
    match init {
        Init::Identity { scale } => Some(scale),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_skips_non_finite_and_keeps_the_first_tie() {
        assert_eq!(argmax_finite(&[0.1, f32::NAN, 0.7, 0.7, f32::INFINITY]), Some(2));
        assert_eq!(argmax_finite(&[f32::NAN]), None);
        assert_eq!(argmax_finite(&[]), None);
    }

    #[test]
    fn f32_values_keep_their_short_form() {
        assert_eq!(short_f64(0.3).to_string(), "0.3");
        assert!(short_f64(f32::NAN).is_nan());
        assert_eq!(short_f64(f32::INFINITY), f64::INFINITY);
    }
}
