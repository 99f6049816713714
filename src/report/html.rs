//! `report.html`: one self-contained page that ties the figures together and says how
//! to read them.
//!
//! Self-contained means: inline CSS, no script, no fonts or styles from the network.
//! The figures are referenced by relative path (they sit in the same directory), so
//! the directory can be moved, zipped or served as a whole. Every string that comes
//! from outside (the data path, class names) is HTML-escaped.

use std::fmt::Write as _;

use super::colormap::{css_hex, diverging_css_stops, sequential_css_stops};
use super::figures::{ContributionsLayout, LikelihoodLayout, contribution_scale};
use super::json::{argmax_finite, class_activation_name, init_name, init_scale};
use super::{
    CONTRIBUTIONS_PNG, LAYER_ACCURACY_SVG, LAYERS_CSV, LIKELIHOOD_PNG, METRICS_JSON, Summary,
};
use crate::mlp::Init;
use crate::tape::ReluGradAtZero;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// A fraction as a percentage with two decimals; "—" when not finite.
fn pct(frac: f64) -> String {
    if frac.is_finite() { format!("{:.2}%", frac * 100.0) } else { "—".into() }
}

/// A share as a percentage with one decimal; "—" when not finite.
fn share(frac: f64) -> String {
    if frac.is_finite() { format!("{:.1}%", frac * 100.0) } else { "—".into() }
}

/// A number with `decimals` decimals; "—" when not finite.
fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() { format!("{v:.decimals$}") } else { "—".into() }
}

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       background: #fff; margin: 0 auto; padding: 1rem 1.5rem 3rem; max-width: 70rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
.lede { color: #444; margin-top: 0; }
.warning { background: #fff3e0; border: 2px solid #e66101; border-radius: 6px; padding: .7rem 1rem; margin: 1rem 0; }
.note { background: #f3f6fa; border-left: 4px solid #4292c6; padding: .5rem .9rem; margin: 1rem 0; }
table { border-collapse: collapse; margin: .6rem 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e4e4e4; padding: .25rem .7rem; text-align: right; }
th { background: #f6f6f6; }
td.text, th.text { text-align: left; }
table.kv th { text-align: left; width: 11rem; }
table.kv td { text-align: left; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; background: #fff; }
figcaption, .how { color: #333; font-size: .95rem; max-width: 52rem; }
.legend { display: flex; align-items: center; gap: .6rem; margin: .6rem 0; font-size: .9rem; flex-wrap: wrap; }
.bar { width: 16rem; height: .9rem; border: 1px solid #aaa; }
.swatch { display: inline-block; width: .9rem; height: .9rem; border: 2px solid #e66101; vertical-align: middle; }
.big { font-size: 1.15rem; font-weight: 600; }
footer { margin-top: 3rem; color: #666; font-size: .85rem; }
"#;

/// Renders the page.
pub(crate) fn report(summary: &Summary) -> String {
    let arch = &summary.arch;
    let data = escape(&summary.data);
    let mut h = String::new();
    // Writing to a String cannot fail; results are ignored with `let _ =`.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>idmlp report: {data}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    );
    let _ = writeln!(h, "<h1>Layer-wise interpretation report</h1>");
    let _ = writeln!(
        h,
        "<p class=\"lede\">A deep MLP of {l} hidden layers {start} \
         (Kubota et al., ICASSP 2021, arXiv:2102.13333). Data: <code>{data}</code>.</p>",
        l = arch.layers,
        start = if summary.init.is_identity() {
            "that all start as the identity, read layer by layer"
        } else {
            "initialised at random, for comparison with the identity-initialised method"
        }
    );
    let _ = writeln!(
        h,
        "<p class=\"big\">Test accuracy: {} <span class=\"lede\">(last layer, {} test images)</span></p>",
        pct(summary.test_accuracy),
        summary.test_samples
    );

    if !summary.init.is_identity() {
        let _ = writeln!(
            h,
            "<div class=\"warning\" role=\"alert\"><strong>Warning: random initialisation ({}).</strong> \
             The per-layer reading below (contribution maps, each layer's own accuracy, layer roles) \
             relies on every layer starting as the identity, so that layer <i>l</i>'s output can be \
             compared with its input pixel by pixel. With a random init the layers do not keep that \
             correspondence, and these figures are <strong>not meaningful</strong>; they are shown for \
             comparison only.</div>",
            init_label(summary.init).trim_end_matches(" (random)")
        );
    }
    if class_activation_name(arch.class_activation) == "relu" {
        let _ = writeln!(
            h,
            "<div class=\"note\">This model uses the paper's literal activation: relu on the class dims \
             too. A class dim whose value turns negative for every input stops learning for good; \
             idmlp's default keeps the class dims linear.</div>"
        );
    }

    summary_section(&mut h, summary);
    chart_section(&mut h, summary);
    layers_section(&mut h, summary);
    contributions_section(&mut h, summary);
    likelihood_section(&mut h, summary);

    let _ = writeln!(
        h,
        "<footer>Written by idmlp {}. The numbers are also in <a href=\"{METRICS_JSON}\">{METRICS_JSON}</a> \
         and <a href=\"{LAYERS_CSV}\">{LAYERS_CSV}</a> (fractions, not percentages).</footer>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// "identity (s = 1)", "He (random)", "Xavier (random)".
fn init_label(init: Init) -> String {
    match (init_name(init), init_scale(init)) {
        (_, Some(s)) => format!("identity (s = {s})"),
        ("he", _) => "He (random)".into(),
        ("xavier", _) => "Xavier (random)".into(),
        (other, _) => other.into(),
    }
}

fn summary_section(h: &mut String, summary: &Summary) {
    let arch = &summary.arch;
    let class_dims = if class_activation_name(arch.class_activation) == "relu" {
        "relu (the paper's literal model)"
    } else {
        "linear (idmlp's default)"
    };
    let relu0 = if matches!(arch.relu_grad_at_zero, ReluGradAtZero::One) {
        "1 (backward mask a ≥ 0; the default)"
    } else {
        "0 (backward mask a &gt; 0)"
    };
    let _ = writeln!(h, "<h2>Summary</h2>\n<table class=\"kv\">");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    row("Data", format!("<code>{}</code>", escape(&summary.data)));
    row(
        "Architecture",
        format!(
            "L = {} hidden layers of width D = {} (d = {} pixels + C = {} class dims); \
             images {}×{}",
            arch.layers,
            arch.width(),
            arch.inputs,
            arch.classes,
            summary.image_rows,
            summary.image_cols
        ),
    );
    row("Class dims", class_dims.into());
    row("relu′(0)", relu0.into());
    row("Initialisation", init_label(summary.init));
    row(
        "Test accuracy",
        format!(
            "{} (layer {}, {} test images)",
            pct(summary.test_accuracy),
            arch.layers,
            summary.test_samples
        ),
    );
    if let Some(names) = &summary.class_names {
        let list: Vec<String> =
            names.iter().enumerate().map(|(i, n)| format!("{i}: {}", escape(n))).collect();
        row("Classes", list.join(", "));
    }
    let _ = writeln!(h, "</table>");

    let _ = writeln!(h, "<h3>Training</h3>");
    if summary.epochs.is_empty() {
        let _ = writeln!(
            h,
            "<p>No training epochs were recorded (the model was evaluated as loaded).</p>"
        );
        return;
    }
    let _ = writeln!(
        h,
        "<table><tr><th>epoch</th><th>train loss</th><th>train accuracy</th>\
         <th>test accuracy</th><th>seconds</th></tr>"
    );
    for e in &summary.epochs {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.epoch,
            num(e.train_loss, 4),
            pct(e.train_accuracy),
            e.test_accuracy.map_or_else(|| "—".into(), pct),
            num(e.seconds, 1)
        );
    }
    let _ = writeln!(h, "</table>");
}

fn chart_section(h: &mut String, summary: &Summary) {
    let _ = writeln!(
        h,
        "<h2>Accuracy and identity distance per layer</h2>\n\
         <figure><img src=\"{LAYER_ACCURACY_SVG}\" width=\"720\" height=\"380\" \
         alt=\"Line chart of each layer's test accuracy and identity distance\">\n\
         <figcaption>Every hidden layer keeps a copy of the class scores in its last C dims, so \
         each layer can be asked for its own guess. The <b style=\"color:#08519c\">blue line</b> \
         is how often that guess is right on the test set ({} images); it should rise with depth as \
         layers add class evidence. The <b style=\"color:#e66101\">dashed orange line</b> is how far \
         each weight matrix moved from the identity it started as, ‖W − I‖ / ‖I‖: small values mean \
         the layer still mostly passes its input through, which is what makes the per-layer \
         reading possible.</figcaption></figure>",
        summary.test_samples
    );
}

fn layers_section(h: &mut String, summary: &Summary) {
    let _ = writeln!(
        h,
        "<h2>What each layer does</h2>\n<p class=\"how\">Where a layer's weights changed tells what \
         it does. A layer whose change sits mostly in the <b>class rows</b> (the C rows that \
         write the class dims) <b>adds class evidence</b>: it reads the features and pushes the \
         class scores. A layer whose change sits mostly in the <b>feature block</b> (pixels to \
         pixels) <b>reshapes features</b>: it edits the image that later layers see, which shows up \
         in its contribution map. A layer that is still exactly the identity is labelled \
         <b>identity</b> (untrained). Feature change is the mean per-pixel |h<sub>l</sub> − \
         h<sub>l−1</sub>| on the test set.</p>"
    );
    if summary.layers.is_empty() {
        let _ = writeln!(h, "<p>The model has no hidden layers.</p>");
        return;
    }
    let _ = writeln!(
        h,
        "<table><tr><th>layer</th><th>accuracy</th><th>identity distance</th>\
         <th>class-row share</th><th>feature-block share</th><th>feature change</th>\
         <th class=\"text\">role</th></tr>"
    );
    for r in &summary.layers {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"text\">{}</td></tr>",
            r.layer,
            pct(r.accuracy),
            num(r.identity_distance, 4),
            share(r.class_row_share),
            share(r.feature_block_share),
            num(r.feature_change, 5),
            escape(r.role.label())
        );
    }
    let _ = writeln!(h, "</table>");
}

fn contributions_section(h: &mut String, summary: &Summary) {
    let layout = ContributionsLayout::of(summary);
    let scale = contribution_scale(summary);
    let _ = writeln!(
        h,
        "<h2>Contribution maps</h2>\n<p class=\"how\">One row per test image. The first column is \
         the input; column <i>l</i> (numbered on top) shows what layer <i>l</i> has done to it so \
         far: its feature output minus the input, h<sub>l</sub> − x. <b style=\"color:#b2182b\">Red</b> \
         means the network has <b>strengthened</b> that pixel relative to the input, \
         <b style=\"color:#2166ac\">blue</b> that it has <b>suppressed</b> it, white that it left it \
         unchanged. All tiles share one colour scale, so colours compare across layers and images. \
         The number left of each row is the true class.</p>"
    );
    let scale_text = if scale > 0.0 {
        format!("±{scale:.3}")
    } else {
        "every map is exactly 0 (nothing changed yet)".into()
    };
    let _ = writeln!(
        h,
        "<div class=\"legend\"><span>suppressed</span><span class=\"bar\" \
         style=\"background: linear-gradient(to right, {})\"></span><span>strengthened</span>\
         <span>full colour at {scale_text}; <span style=\"background:{}; padding:0 .3rem\">gray</span> \
         marks a NaN</span></div>",
        diverging_css_stops(),
        css_hex(super::colormap::NAN_GRAY)
    );
    if summary.samples.is_empty() {
        let _ = writeln!(h, "<p>No samples were interpreted.</p>");
    }
    let _ = writeln!(
        h,
        "<figure><a href=\"{CONTRIBUTIONS_PNG}\"><img src=\"{CONTRIBUTIONS_PNG}\" width=\"{}\" \
         height=\"{}\" alt=\"Grid of contribution maps: one row per test image, one column per \
         layer\"></a></figure>",
        layout.width(),
        layout.height()
    );
    samples_table(h, summary);
}

/// Per shown sample: its test index, label, and what the layers guessed.
fn samples_table(h: &mut String, summary: &Summary) {
    // Without layers there are no guesses to tabulate.
    if summary.samples.is_empty() || summary.arch.layers == 0 {
        return;
    }
    let (classes, layers) = (summary.arch.classes.max(1), summary.arch.layers);
    let _ = writeln!(
        h,
        "<table><tr><th>row</th><th>test index</th><th class=\"text\">true class</th>\
         <th class=\"text\">layer 1 guess</th><th class=\"text\">layer {layers} guess</th>\
         <th>correct from layer</th></tr>"
    );
    let name = |c: Option<usize>| c.map_or_else(|| "—".into(), |c| escape(&summary.class_name(c)));
    for (row, s) in summary.samples.iter().enumerate() {
        let guesses: Vec<Option<usize>> =
            s.likelihoods.chunks(classes).map(argmax_finite).collect();
        let label = Some(s.label as usize);
        // The first layer from which every later layer guesses right.
        let settled = guesses.iter().rposition(|g| *g != label).map_or(1, |i| i + 2);
        let settled = if settled > layers { "never".into() } else { settled.to_string() };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td>\
             <td class=\"text\">{}</td><td>{settled}</td></tr>",
            row + 1,
            s.index,
            name(label),
            name(guesses.first().copied().flatten()),
            name(guesses.last().copied().flatten()),
        );
    }
    let _ = writeln!(h, "</table>");
}

fn likelihood_section(h: &mut String, summary: &Summary) {
    let layout = LikelihoodLayout::of(summary);
    let _ = writeln!(
        h,
        "<h2>Class likelihood per layer</h2>\n<p class=\"how\">Each block is one test image (the \
         same images, in the same order). Row <i>l</i> is layer <i>l</i>'s own guess: the softmax \
         of its C class dims, one column per class (numbered on top). Darker blue means more \
         likely. The <span class=\"swatch\"></span> orange frame marks the true class: read down \
         it to see at which layer the network becomes sure.</p>"
    );
    let _ = writeln!(
        h,
        "<div class=\"legend\"><span>0</span><span class=\"bar\" style=\"background: \
         linear-gradient(to right, {})\"></span><span>1</span></div>",
        sequential_css_stops()
    );
    let _ = writeln!(
        h,
        "<figure><a href=\"{LIKELIHOOD_PNG}\"><img src=\"{LIKELIHOOD_PNG}\" width=\"{}\" \
         height=\"{}\" alt=\"Per test image, a layers-by-classes grid of class likelihoods\"></a></figure>",
        layout.width(),
        layout.height()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("plain ‖W‖"), "plain ‖W‖");
    }
}
