//! The report files from a small synthetic [`Summary`] (4×4 images, C = 3, L = 4,
//! 3 samples): every file is written, the PNGs decode and put colours where the layout
//! says, the JSON and CSV have the documented shape, and the HTML references only files
//! that exist and escapes what it did not write itself.
#![cfg(feature = "report")]

use std::collections::BTreeSet;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use idmlp::interpret::LayerRole;
use idmlp::mlp::{Architecture, Init};
use idmlp::report::{
    ContributionsLayout, EpochRecord, LayerRecord, LikelihoodLayout, ReportError, SampleRecord,
    Summary, metrics_json, write_all, write_contributions_png,
};

const ROWS: usize = 4;
const COLS: usize = 4;
const D: usize = ROWS * COLS;
const C: usize = 3;
const L: usize = 4;
const SAMPLES: usize = 3;

/// A consistent summary whose maps are all zero (as at identity init before training).
fn summary() -> Summary {
    let samples = (0..SAMPLES)
        .map(|s| SampleRecord {
            index: 10 + s,
            label: (s % C) as u32,
            image: (0..D).map(|i| i as f32 / (D - 1) as f32).collect(),
            maps: vec![0.0; L * D],
            // Layer l puts more weight on the true class the deeper it is.
            likelihoods: (0..L)
                .flat_map(|l| {
                    let sure = (l + 1) as f32 / L as f32;
                    (0..C).map(move |c| if c == s % C { sure } else { (1.0 - sure) / 2.0 })
                })
                .collect(),
        })
        .collect();
    Summary {
        arch: Architecture::new(D, C, L),
        init: Init::default(),
        image_rows: ROWS,
        image_cols: COLS,
        test_accuracy: 0.9,
        test_samples: 100,
        layers: (1..=L)
            .map(|l| LayerRecord {
                layer: l,
                accuracy: 0.5 + 0.1 * l as f64,
                identity_distance: 0.01 * l as f64,
                class_row_share: 0.2 * l as f64,
                feature_block_share: 1.0 - 0.2 * l as f64,
                feedback_share: 0.0,
                feature_change: 0.001 * l as f64,
                role: if l > 2 { LayerRole::ClassEvidence } else { LayerRole::FeatureReshaping },
            })
            .collect(),
        epochs: vec![
            EpochRecord {
                epoch: 1,
                train_loss: 0.7,
                train_accuracy: 0.8,
                test_accuracy: Some(0.85),
                seconds: 1.5,
            },
            EpochRecord {
                epoch: 2,
                train_loss: 0.4,
                train_accuracy: 0.9,
                test_accuracy: None,
                seconds: 1.4,
            },
        ],
        samples,
        data: "synthetic".into(),
        class_names: Some(vec!["zero".into(), "one".into(), "two".into()]),
    }
}

/// A fresh, empty directory unique to this process and test.
fn out_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("idmlp-report-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// A decoded 8-bit RGB image.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "({x}, {y}) outside {}×{}",
            self.width,
            self.height
        );
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

fn decode(path: &Path) -> Image {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    rgb.truncate(info.buffer_size());
    Image { width: info.width as usize, height: info.height as usize, rgb }
}

/// Every pixel of the tile of `sample` in `column` (0 = input, l = layer l).
fn tile_pixels(
    img: &Image,
    layout: &ContributionsLayout,
    sample: usize,
    column: usize,
) -> Vec<[u8; 3]> {
    let (x0, y0) = layout.tile_origin(sample, column).unwrap();
    let (w, h) = layout.tile_size();
    (y0..y0 + h)
        .flat_map(|y| (x0..x0 + w).map(move |x| (x, y)))
        .map(|(x, y)| img.at(x, y))
        .collect()
}

/// The centre pixel of image pixel `i` in a tile.
fn pixel_of(
    img: &Image,
    layout: &ContributionsLayout,
    sample: usize,
    column: usize,
    i: usize,
) -> [u8; 3] {
    let (x0, y0) = layout.tile_origin(sample, column).unwrap();
    let s = layout.scale();
    img.at(x0 + (i % COLS) * s + s / 2, y0 + (i / COLS) * s + s / 2)
}

/// Distance from white: 0 for white, larger is more saturated.
fn ink(c: [u8; 3]) -> u32 {
    c.iter().map(|&v| 255 - u32::from(v)).sum()
}

const WHITE: [u8; 3] = [255, 255, 255];

#[test]
fn writes_six_files_and_nothing_else() {
    let dir = out_dir("six");
    let files = write_all(&dir, &summary()).unwrap();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // No temporary file is left behind by the atomic writes.
    assert_eq!(
        names,
        [
            "contributions.png",
            "layer_accuracy.svg",
            "layers.csv",
            "likelihood.png",
            "metrics.json",
            "report.html"
        ]
    );
    for path in [
        &files.metrics,
        &files.layers_csv,
        &files.contributions,
        &files.likelihood,
        &files.layer_accuracy,
        &files.report,
    ] {
        assert!(
            path.starts_with(&dir) && fs::metadata(path).unwrap().len() > 0,
            "{}",
            path.display()
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pngs_decode_with_the_layout_dimensions() {
    let dir = out_dir("dims");
    let s = summary();
    let files = write_all(&dir, &s).unwrap();
    let contributions = decode(&files.contributions);
    let layout = ContributionsLayout::of(&s);
    assert_eq!((contributions.width, contributions.height), (layout.width(), layout.height()));
    // 1 + L columns and SAMPLES rows of upscaled tiles must fit.
    let (tw, th) = layout.tile_size();
    assert_eq!((tw, th), (COLS * layout.scale(), ROWS * layout.scale()));
    assert!(layout.scale() >= 2, "tiny images are upscaled");
    assert!(layout.width() >= (L + 1) * tw && layout.height() >= SAMPLES * th);
    let (x, y) = layout.tile_origin(SAMPLES - 1, L).unwrap();
    assert!(x + tw <= layout.width() && y + th <= layout.height());
    assert!(layout.tile_origin(SAMPLES, 0).is_none() && layout.tile_origin(0, L + 1).is_none());

    let likelihood = decode(&files.likelihood);
    let ll = LikelihoodLayout::of(&s);
    assert_eq!((likelihood.width, likelihood.height), (ll.width(), ll.height()));
    let (x, y) = ll.cell_origin(SAMPLES - 1, L, C - 1).unwrap();
    assert!(x + ll.cell() <= ll.width() && y + ll.cell() <= ll.height());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn all_zero_maps_are_plain_white_and_the_input_is_grayscale() {
    let dir = out_dir("zero");
    let s = summary();
    let files = write_all(&dir, &s).unwrap();
    let img = decode(&files.contributions);
    let layout = ContributionsLayout::of(&s);
    for sample in 0..SAMPLES {
        for l in 1..=L {
            assert!(
                tile_pixels(&img, &layout, sample, l).iter().all(|&p| p == WHITE),
                "sample {sample} layer {l}"
            );
        }
        // The input ramps from black (pixel 0) to white (last pixel), in gray.
        assert_eq!(pixel_of(&img, &layout, sample, 0, 0), [0, 0, 0]);
        assert_eq!(pixel_of(&img, &layout, sample, 0, D - 1), WHITE);
        assert!(tile_pixels(&img, &layout, sample, 0).iter().all(|p| p[0] == p[1] && p[1] == p[2]));
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&files.metrics).unwrap()).unwrap();
    assert_eq!(metrics["contribution_scale"], 0.0);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sign_sets_the_hue_and_nan_is_gray() {
    let dir = out_dir("sign");
    let mut s = summary();
    let map = &mut s.samples[0].maps[..D]; // sample 0, layer 1
    map[0] = 0.5;
    map[1] = -0.5;
    map[2] = f32::NAN;
    let files = write_all(&dir, &s).unwrap();
    let img = decode(&files.contributions);
    let layout = ContributionsLayout::of(&s);
    let (pos, neg, nan, zero) = (
        pixel_of(&img, &layout, 0, 1, 0),
        pixel_of(&img, &layout, 0, 1, 1),
        pixel_of(&img, &layout, 0, 1, 2),
        pixel_of(&img, &layout, 0, 1, 3),
    );
    assert!(pos[0] > pos[2] + 50, "positive (strengthened) is red-ish: {pos:?}");
    assert!(neg[2] > neg[0] + 50, "negative (suppressed) is blue-ish: {neg:?}");
    assert_eq!(zero, WHITE);
    assert!(
        nan[0] == nan[1] && nan[1] == nan[2] && nan != WHITE && nan != [0, 0, 0],
        "NaN is a visible gray: {nan:?}"
    );
    // ±0.5 is the largest |m|: both ends are at full strength, equally far from white.
    let (a, b) = (ink(pos) as f32, ink(neg) as f32);
    assert!((a - b).abs() < 0.15 * a.max(b), "symmetric strength: {pos:?} vs {neg:?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_scale_is_shared_by_every_tile() {
    let dir = out_dir("scale");
    let mut s = summary();
    // Sample 0 layer 1 only ever reaches 0.2; sample 2 layer 3 holds the global max 2.0.
    s.samples[0].maps[5] = 0.2;
    s.samples[1].maps[D + 7] = -1.0;
    s.samples[2].maps[2 * D + 9] = 2.0;
    s.samples[2].maps[3 * D + 1] = 1.0;
    let files = write_all(&dir, &s).unwrap();
    let img = decode(&files.contributions);
    let layout = ContributionsLayout::of(&s);
    let max = pixel_of(&img, &layout, 2, 3, 9);
    let max_ink = ink(max);
    for sample in 0..SAMPLES {
        for l in 1..=L {
            for p in tile_pixels(&img, &layout, sample, l) {
                assert!(
                    ink(p) <= max_ink,
                    "sample {sample} layer {l}: {p:?} is more saturated than the max {max:?}"
                );
            }
        }
    }
    let weak = pixel_of(&img, &layout, 0, 1, 5);
    let half = pixel_of(&img, &layout, 2, 4, 1);
    // A per-tile scale would paint 0.2 at full strength; the shared scale keeps it pale.
    assert!(
        ink(weak) < ink(half) && ink(half) < max_ink,
        "0.2 {weak:?} < 1.0 {half:?} < 2.0 {max:?}"
    );
    assert!(weak[0] > weak[2] && half[0] > half[2]);
    let metrics: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&files.metrics).unwrap()).unwrap();
    assert_eq!(metrics["contribution_scale"], 2.0);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn likelihood_cells_follow_the_ramp_and_mark_the_true_class() {
    let dir = out_dir("likelihood");
    let s = summary();
    let files = write_all(&dir, &s).unwrap();
    let img = decode(&files.likelihood);
    let ll = LikelihoodLayout::of(&s);
    let centre = |sample, layer, class| {
        let (x, y) = ll.cell_origin(sample, layer, class).unwrap();
        img.at(x + ll.cell() / 2, y + ll.cell() / 2)
    };
    for sample in 0..SAMPLES {
        let truth = sample % C;
        let other = (truth + 1) % C;
        // Layer L is sure (p = 1: dark blue); the other classes get p = 0 (white).
        let sure = centre(sample, L, truth);
        assert!(sure[2] > sure[0] + 50 && ink(sure) > 400, "p = 1 is dark blue: {sure:?}");
        assert_eq!(centre(sample, L, other), WHITE);
        // Darker with depth along the true class.
        assert!(ink(centre(sample, 1, truth)) < ink(sure));
        // The true-class column is framed in orange (its left edge), the others are not.
        let (x, y) = ll.cell_origin(sample, 2, truth).unwrap();
        let edge = img.at(x, y + ll.cell() / 2);
        assert!(edge[0] > 200 && edge[2] < 60, "orange frame: {edge:?}");
        let (x, y) = ll.cell_origin(sample, 2, other).unwrap();
        assert_ne!(img.at(x, y + ll.cell() / 2), edge);
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metrics_json_has_every_documented_key() {
    let dir = out_dir("json");
    let s = summary();
    let files = write_all(&dir, &s).unwrap();
    let text = fs::read_to_string(&files.metrics).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(text, metrics_json(&s), "the file is metrics_json");
    assert_eq!(m["layers"], L);
    assert_eq!(m["width"], D + C);
    assert_eq!(m["classes"], C);
    assert_eq!(m["inputs"], D);
    assert_eq!(m["test_accuracy"], 0.9);
    assert_eq!(m["test_samples"], 100);
    assert_eq!(m["init"], "identity");
    assert_eq!(m["class_activation"], "linear");
    assert_eq!(m["relu_grad_at_zero"], 1);
    assert_eq!(m["data"], "synthetic");
    for key in [
        "layer_accuracy",
        "identity_distance",
        "class_row_share",
        "feature_block_share",
        "feedback_share",
        "feature_change",
        "roles",
    ] {
        assert_eq!(m[key].as_array().map(Vec::len), Some(L), "{key}");
    }
    assert_eq!(m["layer_accuracy"][0], 0.6);
    assert_eq!(m["roles"][0], "reshapes features");
    assert_eq!(m["roles"][L - 1], "adds class evidence");
    let epochs = m["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    for key in ["epoch", "train_loss", "train_accuracy", "test_accuracy", "seconds"] {
        assert!(epochs[0].get(key).is_some() && epochs[1].get(key).is_some(), "epochs[].{key}");
    }
    assert_eq!(epochs[0]["test_accuracy"], 0.85);
    assert!(epochs[1]["test_accuracy"].is_null(), "an unmeasured epoch is null");
    let samples = m["samples"].as_array().unwrap();
    assert_eq!(samples.len(), SAMPLES);
    assert_eq!(samples[1]["predictions"].as_array().unwrap().len(), L);
    assert_eq!(samples[1]["predictions"][L - 1], 1);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_finite_numbers_become_null_in_json() {
    let mut s = summary();
    s.layers[1].identity_distance = f64::NAN;
    s.test_accuracy = f64::INFINITY;
    let m: serde_json::Value = serde_json::from_str(&metrics_json(&s)).unwrap();
    assert!(m["identity_distance"][1].is_null() && m["test_accuracy"].is_null());
    // And the text still parses.
    let text = serde_json::to_string(&m).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
}

#[test]
fn layers_csv_has_a_header_and_one_row_per_layer() {
    let dir = out_dir("csv");
    let files = write_all(&dir, &summary()).unwrap();
    let text = fs::read_to_string(&files.layers_csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), L + 1);
    assert!(lines[0].starts_with("layer,accuracy,identity_distance,class_row_share"));
    let columns = lines[0].split(',').count();
    for (i, line) in lines[1..].iter().enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), columns, "{line}");
        assert_eq!(fields[0], (i + 1).to_string());
    }
    assert!(lines[1].ends_with(",reshapes features"));
    fs::remove_dir_all(&dir).unwrap();
}

/// Every `attr="…"` value in `html`.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

#[test]
fn html_references_exactly_the_files_that_exist() {
    let dir = out_dir("html");
    let files = write_all(&dir, &summary()).unwrap();
    let html = fs::read_to_string(&files.report).unwrap();
    let srcs = attribute_values(&html, "src");
    let hrefs = attribute_values(&html, "href");
    let images: BTreeSet<&str> = srcs.iter().copied().collect();
    assert_eq!(
        images,
        BTreeSet::from(["contributions.png", "layer_accuracy.svg", "likelihood.png"])
    );
    for reference in srcs.iter().chain(&hrefs) {
        assert!(
            !reference.contains(':') && !reference.starts_with('/'),
            "not a relative path: {reference}"
        );
        assert!(dir.join(reference).is_file(), "{reference} does not exist");
    }
    // Self-contained: nothing from the network, no script.
    assert!(!html.to_ascii_lowercase().contains("http"), "a network reference");
    assert!(!html.contains("<script") && !html.contains("url("), "script or external resource");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // The tables: one per-layer row per layer, each with its role label.
    assert_eq!(
        html.matches("reshapes features</td>").count()
            + html.matches("adds class evidence</td>").count(),
        L
    );
    assert!(!html.contains("not meaningful"), "no warning for the identity init");
    // Layer 1 puts p = 0.25 on the true class (below the others' 0.375), layer 2 on: 0.5
    // and up, so every sample is correct from layer 2.
    assert_eq!(html.matches("<td>2</td></tr>").count(), SAMPLES, "correct-from-layer column");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn html_escapes_outside_strings() {
    let dir = out_dir("escape");
    let mut s = summary();
    s.data = "<script>alert('x')</script> & \"quotes\"".into();
    s.class_names = Some(vec!["<b>zero</b>".into(), "one".into(), "t&o".into()]);
    let files = write_all(&dir, &s).unwrap();
    let html = fs::read_to_string(&files.report).unwrap();
    assert!(!html.contains("<script") && !html.contains("<b>zero"));
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;")
    );
    assert!(html.contains("&lt;b&gt;zero&lt;/b&gt;") && html.contains("t&amp;o"));
    // metrics.json keeps the raw string (JSON has its own escaping).
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&files.metrics).unwrap()).unwrap();
    assert_eq!(m["data"], s.data.as_str());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_random_init_gets_a_visible_warning() {
    let dir = out_dir("warning");
    let mut s = summary();
    s.init = Init::He;
    let files = write_all(&dir, &s).unwrap();
    let html = fs::read_to_string(&files.report).unwrap();
    assert!(html.contains("class=\"warning\"") && html.contains("not meaningful"));
    let m: serde_json::Value = serde_json::from_str(&metrics_json(&s)).unwrap();
    assert_eq!(m["init"], "he");
    fs::remove_dir_all(&dir).unwrap();
}

/// Checks that tags nest properly (a small XML well-formedness check: the report's
/// SVG has no comments, CDATA or `>` inside attribute values).
fn assert_tags_balance(xml: &str) {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("unclosed tag") + open;
        let tag = &rest[open + 1..close];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap());
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn svg_is_standalone_and_well_formed() {
    let dir = out_dir("svg");
    let files = write_all(&dir, &summary()).unwrap();
    let svg = fs::read_to_string(&files.layer_accuracy).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_tags_balance(&svg);
    // One marker per layer in each series, and the axis words.
    assert_eq!(svg.matches("<circle cx").count(), L + 1, "L markers + the legend's");
    assert!(svg.contains(">layer<") && svg.contains("100%") && svg.contains("identity distance"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_layers_and_no_samples_still_give_valid_files() {
    let dir = out_dir("empty");
    let mut s = summary();
    s.arch = Architecture::new(D, C, 0);
    s.layers.clear();
    s.samples.clear();
    s.epochs.clear();
    let files = write_all(&dir, &s).unwrap();
    for png in [&files.contributions, &files.likelihood] {
        let img = decode(png);
        assert!(img.width > 0 && img.height > 0);
    }
    let svg = fs::read_to_string(&files.layer_accuracy).unwrap();
    assert_tags_balance(&svg);
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&files.metrics).unwrap()).unwrap();
    assert_eq!(m["layers"], 0);
    assert_eq!(m["layer_accuracy"].as_array().map(Vec::len), Some(0));
    assert_eq!(fs::read_to_string(&files.layers_csv).unwrap().lines().count(), 1);
    let html = fs::read_to_string(&files.report).unwrap();
    for reference in attribute_values(&html, "src") {
        assert!(dir.join(reference).is_file());
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn samples_without_layers_still_show_their_input() {
    let dir = out_dir("nolayers");
    let mut s = summary();
    s.arch = Architecture::new(D, C, 0);
    s.layers.clear();
    for sample in &mut s.samples {
        sample.maps.clear();
        sample.likelihoods.clear();
    }
    let files = write_all(&dir, &s).unwrap();
    let img = decode(&files.contributions);
    let layout = ContributionsLayout::of(&s);
    assert_eq!(pixel_of(&img, &layout, 0, 0, D - 1), WHITE);
    assert_eq!(pixel_of(&img, &layout, 0, 0, 0), [0, 0, 0]);
    decode(&files.likelihood);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_inconsistent_summary_is_an_error_naming_the_path_and_writes_nothing() {
    let dir = out_dir("invalid");
    let mut s = summary();
    s.samples[1].maps.pop();
    let err = write_all(&dir, &s).unwrap_err();
    assert!(matches!(err, ReportError::Invalid { .. }), "{err:?}");
    assert_eq!(err.path(), dir.as_path());
    let message = err.to_string();
    assert!(
        message.contains(&dir.display().to_string()) && message.contains("sample 11"),
        "{message}"
    );
    assert!(err.source().is_none());
    assert!(!dir.exists(), "nothing written");

    // Each single-file writer names its own file.
    let file = dir.join("c.png");
    let err = write_contributions_png(&file, &s).unwrap_err();
    assert_eq!(err.path(), file.as_path());

    for (what, broken) in [
        ("label", {
            let mut b = summary();
            b.samples[0].label = C as u32;
            b
        }),
        ("image shape", {
            let mut b = summary();
            b.image_rows = 3;
            b
        }),
        ("layer records", {
            let mut b = summary();
            b.layers.pop();
            b
        }),
        ("class names", {
            let mut b = summary();
            b.class_names = Some(vec!["a".into()]);
            b
        }),
    ] {
        assert!(matches!(write_all(&dir, &broken), Err(ReportError::Invalid { .. })), "{what}");
    }
}

#[test]
fn absurdly_large_figures_are_refused_before_anything_is_written() {
    let dir = out_dir("huge");
    // Too many pixels per image; then images that fit but a grid of 4 columns of 2^21
    // pixels each that would not. No samples, so the test allocates nothing big.
    for (rows, cols, layers) in [(1, (1 << 24) + 1, 0), (8, 1 << 21, 3)] {
        let mut s = summary();
        s.arch = Architecture::new(rows * cols, C, layers);
        (s.image_rows, s.image_cols) = (rows, cols);
        s.layers.truncate(layers);
        s.samples.clear();
        let err = write_all(&dir, &s).unwrap_err();
        assert!(matches!(err, ReportError::Invalid { .. }), "{rows}×{cols}: {err}");
        assert!(
            err.to_string().contains("too large") || err.to_string().contains("pixels, more than"),
            "{err}"
        );
        assert!(!dir.exists());
    }
}

#[test]
fn an_unwritable_directory_is_an_io_error_with_a_source() {
    let dir = out_dir("blocked");
    fs::create_dir_all(&dir).unwrap();
    let blocker = dir.join("not-a-dir");
    fs::write(&blocker, b"x").unwrap();
    let err = write_all(blocker.join("out"), &summary()).unwrap_err();
    assert!(matches!(err, ReportError::Io { .. }), "{err:?}");
    assert!(err.source().is_some());
    assert!(err.to_string().contains("not-a-dir"));
    fs::remove_dir_all(&dir).unwrap();
}
