//! `layer_accuracy.svg`: a hand-written line chart, no plotting dependency.
//!
//! Two series over the layer number: each layer's test accuracy on the left axis
//! (0–100%) and its identity distance `‖W_l − I‖_F / ‖I‖_F` on the right axis (0 to a
//! rounded-up maximum). The file is standalone SVG 1.1 with an `xmlns`, so it renders
//! on its own, in an `<img>`, and in image viewers.

use std::fmt::Write as _;

use super::Summary;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 380.0;
/// Plot area.
const X0: f64 = 70.0;
const X1: f64 = 640.0;
const Y0: f64 = 56.0;
const Y1: f64 = 320.0;
/// Inset of the first and last layer from the plot edges, so markers are not cut.
const INSET: f64 = 14.0;

/// Accuracy colour (dark blue, as the likelihood ramp's end).
const ACCURACY: &str = "#08519c";
/// Identity-distance colour (the report's orange).
const DISTANCE: &str = "#e66101";

/// Renders the chart.
pub(crate) fn layer_accuracy(summary: &Summary) -> String {
    let layers = &summary.layers;
    let n = layers.len();
    let mut s = String::new();
    // Writing to a String cannot fail; `let _ =` below says so once per call.
    let _ = write!(
        s,
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}" height="{h}" "#,
            r#"viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#,
            "\n<title>Accuracy and identity distance per layer</title>\n",
            "<desc>Line chart: test accuracy of each layer's own prediction (left axis, percent) ",
            "and the relative distance of its weights from the identity (right axis).</desc>\n",
            r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#,
            "\n"
        ),
        w = WIDTH,
        h = HEIGHT
    );

    let x_of = |i: usize| -> f64 {
        if n <= 1 {
            (X0 + X1) / 2.0
        } else {
            X0 + INSET + (X1 - X0 - 2.0 * INSET) * i as f64 / (n - 1) as f64
        }
    };
    let y_of = |frac: f64| Y1 - (Y1 - Y0) * frac.clamp(0.0, 1.0);

    // Left axis: accuracy 0–100% with horizontal grid lines.
    for k in 0..=5 {
        let frac = f64::from(k) / 5.0;
        let y = y_of(frac);
        let _ = writeln!(
            s,
            r##"<line x1="{X0}" y1="{y:.1}" x2="{X1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}%</text>"##,
            X0 - 6.0,
            y + 4.0,
            k * 20
        );
    }

    // Right axis: identity distance from 0 to a round number above the largest value.
    let max_distance =
        layers.iter().map(|r| r.identity_distance).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let (top, step, decimals) = nice_axis(max_distance);
    let ticks = (top / step).round() as usize;
    for k in 0..=ticks {
        let v = step * k as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{v:.decimals$}</text>"#,
            X1 + 6.0,
            y_of(v / top) + 4.0
        );
    }

    // Frame and axis titles.
    let _ = writeln!(
        s,
        concat!(
            r##"<rect x="{X0}" y="{Y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##,
            "\n",
            r#"<text x="{cx}" y="{xl}" text-anchor="middle">layer</text>"#,
            "\n",
            r#"<text transform="translate(18 {cy}) rotate(-90)" text-anchor="middle" fill="{ac}">test accuracy of the layer's own guess (%)</text>"#,
            "\n",
            r#"<text transform="translate({rx} {cy}) rotate(90)" text-anchor="middle" fill="{dc}">identity distance ‖W − I‖ / ‖I‖</text>"#
        ),
        X0 = X0,
        Y0 = Y0,
        pw = X1 - X0,
        ph = Y1 - Y0,
        cx = (X0 + X1) / 2.0,
        xl = Y1 + 40.0,
        cy = (Y0 + Y1) / 2.0,
        rx = WIDTH - 14.0,
        ac = ACCURACY,
        dc = DISTANCE,
    );

    // x ticks: every layer when they fit, else every `every`-th (1, 2, 5, 10, …).
    let every = [1usize, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
        .into_iter()
        .find(|&e| n.div_ceil(e) <= 25)
        .unwrap_or(n.max(1));
    for (i, r) in layers.iter().enumerate() {
        if (i + 1) % every == 0 || i == 0 {
            let x = x_of(i);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{Y1}" x2="{x:.1}" y2="{:.1}" stroke="#888"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                Y1 + 5.0,
                Y1 + 19.0,
                r.layer
            );
        }
    }

    if n == 0 {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#666">no layers</text>"##,
            (X0 + X1) / 2.0,
            (Y0 + Y1) / 2.0
        );
    }

    // The two series. Non-finite values leave a gap rather than a wrong point.
    let accuracy: Vec<Option<(f64, f64)>> = layers
        .iter()
        .enumerate()
        .map(|(i, r)| r.accuracy.is_finite().then(|| (x_of(i), y_of(r.accuracy))))
        .collect();
    let distance: Vec<Option<(f64, f64)>> = layers
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.identity_distance.is_finite().then(|| (x_of(i), y_of(r.identity_distance / top)))
        })
        .collect();
    polyline(&mut s, &distance, DISTANCE, Some("6 4"));
    polyline(&mut s, &accuracy, ACCURACY, None);
    for (i, p) in distance.iter().enumerate() {
        if let Some((x, y)) = p {
            let v = layers[i].identity_distance;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="6" height="6" fill="{DISTANCE}"><title>layer {}: identity distance {v:.4}</title></rect>"#,
                x - 3.0,
                y - 3.0,
                layers[i].layer
            );
        }
    }
    for (i, p) in accuracy.iter().enumerate() {
        if let Some((x, y)) = p {
            let v = layers[i].accuracy * 100.0;
            let _ = writeln!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{ACCURACY}"><title>layer {}: accuracy {v:.2}%</title></circle>"#,
                layers[i].layer
            );
        }
    }

    // Legend above the plot.
    let _ = writeln!(
        s,
        concat!(
            r#"<g transform="translate({X0} 22)">"#,
            r#"<line x1="0" y1="0" x2="28" y2="0" stroke="{ac}" stroke-width="2"/><circle cx="14" cy="0" r="3.5" fill="{ac}"/>"#,
            r#"<text x="36" y="4">layer accuracy (left axis)</text>"#,
            r#"<line x1="250" y1="0" x2="278" y2="0" stroke="{dc}" stroke-width="2" stroke-dasharray="6 4"/><rect x="261" y="-3" width="6" height="6" fill="{dc}"/>"#,
            r#"<text x="286" y="4">identity distance (right axis)</text></g>"#
        ),
        X0 = X0,
        ac = ACCURACY,
        dc = DISTANCE
    );
    s.push_str("</svg>\n");
    s
}

/// Draws the runs of consecutive `Some` points as polylines.
fn polyline(s: &mut String, points: &[Option<(f64, f64)>], color: &str, dash: Option<&str>) {
    let dash = dash.map(|d| format!(r#" stroke-dasharray="{d}""#)).unwrap_or_default();
    for run in points.split(|p| p.is_none()).filter(|r| r.len() > 1) {
        let coords: Vec<String> =
            run.iter().flatten().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            coords.join(" ")
        );
    }
}

/// A round axis for values in `[0, max]`: `(top, step, decimals)` with `top` a
/// multiple of `step`, `step` one of 1, 2, 2.5, 5 × 10^k, and about five ticks. An
/// empty or all-zero series gets the axis 0–1.
fn nice_axis(max: f64) -> (f64, f64, usize) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.2, 1);
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    // The tolerance keeps 0.08 / 0.02 = 4.000000000000001 from rounding up to 5 ticks.
    let top = (max / step - 1e-9).ceil() * step;
    // As many decimals as the step needs (0.25 → 2, 2.5 → 1, 25 → 0).
    let decimals = (0..12)
        .find(|&k| {
            let scaled = step * 10f64.powi(k);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(12) as usize;
    (top, step, decimals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes() {
        let (top, step, dec) = nice_axis(0.08);
        assert!(
            (top - 0.08).abs() < 1e-12 && (step - 0.02).abs() < 1e-12 && dec == 2,
            "{top} {step} {dec}"
        );
        let (top, step, dec) = nice_axis(0.73);
        assert!(
            (top - 0.8).abs() < 1e-12 && (step - 0.2).abs() < 1e-12 && dec == 1,
            "{top} {step} {dec}"
        );
        let (top, step, dec) = nice_axis(12.0);
        assert!(
            (top - 12.5).abs() < 1e-9 && (step - 2.5).abs() < 1e-12 && dec == 1,
            "{top} {step} {dec}"
        );
        assert_eq!(nice_axis(120.0).2, 0);
        assert_eq!(nice_axis(0.0), (1.0, 0.2, 1));
        assert_eq!(nice_axis(f64::NAN), (1.0, 0.2, 1));
    }
}
