//! The two raster figures: the contribution-map grid and the per-layer likelihoods.
//!
//! Each figure has a public layout type that computes every pixel position once; the
//! renderer and the tests both use it, so "where is layer 3 of sample 2" has one answer.
//! Layouts are total: zero layers or zero samples give a small but valid image.

use super::Summary;
use super::colormap::{Rgb, diverging, grayscale, sequential};
use super::raster::{Canvas, GLYPH_H, number_width};

/// Page background.
const WHITE: Rgb = [255, 255, 255];
/// Separator between tiles: light enough to stay quiet, dark enough that a white
/// (all-zero) tile still shows its edges.
const SEPARATOR: Rgb = [208, 208, 208];
/// Axis numbers.
const INK: Rgb = [64, 64, 64];
/// Marks the true class; orange stands out against both ramps (blue and red-blue).
const TRUE_CLASS: Rgb = [230, 97, 1];

/// Pixels between tiles.
const SEP: usize = 2;
/// Extra pixels between the input column and layer 1, so the image reads as a label
/// for its row rather than as a layer.
const INPUT_GAP: usize = 6;
/// Padding around axis numbers.
const PAD: usize = 3;
/// Aim for tiles about this many pixels on their long side (3× for 28-pixel MNIST).
const TARGET_TILE: usize = 84;
/// Largest upscaling factor: beyond it tiny images only get blockier.
const MAX_SCALE: usize = 8;
/// Keep figures at most this wide where a smaller scale allows it (fits a laptop
/// screen at 100% and keeps the PNG well under 2 MB).
const MAX_WIDTH: usize = 2400;
/// And at most this many pixels in total.
const MAX_PIXELS: usize = 8_000_000;

/// Refuse figures beyond this many pixels (192 MB as RGB): only absurd inputs get
/// there (the layouts shrink to 1× first), and an allocation failure would abort.
const MAX_FIGURE_PIXELS: usize = 64 << 20;

/// `Err` with the size when a `width × height` figure is too large to draw.
pub(crate) fn check_size(what: &str, width: usize, height: usize) -> Result<(), String> {
    match width.checked_mul(height) {
        Some(pixels) if pixels <= MAX_FIGURE_PIXELS => Ok(()),
        _ => Err(format!("{what} would be {width}×{height} pixels, more than {MAX_FIGURE_PIXELS}")),
    }
}

/// Pixel geometry of `contributions.png`.
///
/// ```text
///        (header: layer numbers 1..L above their columns)
/// label | input | gap | layer 1 | layer 2 | … | layer L      one row per sample
/// ```
/// Tiles are the `image_rows × image_cols` map upscaled by [`Self::scale`]
/// (nearest-neighbour), with 2-pixel separators; the row label is the true class index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContributionsLayout {
    width: usize,
    height: usize,
    scale: usize,
    tile_w: usize,
    tile_h: usize,
    /// `1 + L`.
    columns: usize,
    /// Sample rows.
    samples: usize,
    /// Width of the label strip on the left.
    left: usize,
    /// Height of the header strip.
    top: usize,
    /// Font scale of the numbers; 0 when they do not fit.
    font: usize,
}

impl ContributionsLayout {
    /// The layout for `summary` (assumed consistent; see [`super::write_all`]).
    pub fn of(summary: &Summary) -> Self {
        let (rows, cols) = (summary.image_rows.max(1), summary.image_cols.max(1));
        let (layers, samples) = (summary.arch.layers, summary.samples.len());
        let columns = layers + 1;
        let mut scale = (TARGET_TILE / rows.max(cols)).clamp(1, MAX_SCALE);
        loop {
            let layout = Self::with_scale(scale, rows, cols, columns, samples, summary);
            let too_big =
                layout.width > MAX_WIDTH || layout.width.saturating_mul(layout.height) > MAX_PIXELS;
            if scale == 1 || !too_big {
                return layout;
            }
            scale -= 1;
        }
    }

    fn with_scale(
        scale: usize,
        rows: usize,
        cols: usize,
        columns: usize,
        samples: usize,
        summary: &Summary,
    ) -> Self {
        let (tile_w, tile_h) = (cols * scale, rows * scale);
        let widest_label = summary.arch.classes.saturating_sub(1);
        // Numbers at 2× when they fit the tile, else 1×, else none.
        let font = [2, 1]
            .into_iter()
            .find(|&f| number_width(summary.arch.layers, f) <= tile_w && GLYPH_H * f <= tile_h)
            .unwrap_or(0);
        let (top, left) = match font {
            0 => (0, 0),
            f => (GLYPH_H * f + 2 * PAD, number_width(widest_label, f) + 2 * PAD),
        };
        let gap = if columns > 1 { INPUT_GAP } else { 0 };
        ContributionsLayout {
            width: left + SEP + columns * (tile_w + SEP) + gap,
            height: top + SEP + samples * (tile_h + SEP),
            scale,
            tile_w,
            tile_h,
            columns,
            samples,
            left,
            top,
            font,
        }
    }

    /// Image width in pixels (always ≥ 1).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Image height in pixels (always ≥ 1).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Upscaling factor: each image pixel is a `scale × scale` block.
    pub fn scale(&self) -> usize {
        self.scale
    }

    /// Tile size in pixels, `(width, height)` = `(image_cols, image_rows) · scale`.
    pub fn tile_size(&self) -> (usize, usize) {
        (self.tile_w, self.tile_h)
    }

    /// Top-left pixel `(x, y)` of the tile of sample `sample` (display order) in
    /// `column`: 0 is the input image, `l` in `1..=L` is layer `l`'s map. `None` outside
    /// the grid.
    pub fn tile_origin(&self, sample: usize, column: usize) -> Option<(usize, usize)> {
        if sample >= self.samples || column >= self.columns {
            return None;
        }
        Some((self.column_x(column), self.top + SEP + sample * (self.tile_h + SEP)))
    }

    /// Left edge of `column`, whether or not there are sample rows (the header needs it).
    fn column_x(&self, column: usize) -> usize {
        let gap = if column > 0 { INPUT_GAP } else { 0 };
        self.left + SEP + column * (self.tile_w + SEP) + gap
    }
}

/// The shared colour scale of the contribution grid: the largest finite `|m|` over every
/// map of every sample; 0 when all maps are 0 (or none is finite).
pub(crate) fn contribution_scale(summary: &Summary) -> f32 {
    summary
        .samples
        .iter()
        .flat_map(|s| &s.maps)
        .filter(|m| m.is_finite())
        .fold(0.0f32, |acc, m| acc.max(m.abs()))
}

/// Colour of a contribution value `m` under the shared `scale`. With `scale = 0` every
/// finite value is 0 and stays white (no 0/0); ±∞ still saturate and NaN stays gray.
fn contribution_color(m: f32, scale: f32) -> Rgb {
    if scale > 0.0 {
        diverging(m / scale)
    } else if m.is_finite() {
        diverging(0.0)
    } else {
        diverging(m)
    }
}

/// Renders `contributions.png`.
pub(crate) fn contributions(summary: &Summary) -> Canvas {
    let layout = ContributionsLayout::of(summary);
    let (rows, cols, d) = (summary.image_rows, summary.image_cols, summary.arch.inputs);
    let scale = contribution_scale(summary);
    let mut canvas = Canvas::new(layout.width, layout.height, WHITE);
    // Separator gray behind the input column and behind the layer columns; the gap
    // between them stays white so the input reads as the row's label.
    let grid_h = layout.height - layout.top;
    let input_w = SEP + layout.tile_w + SEP;
    canvas.fill(layout.left, layout.top, input_w, grid_h, SEPARATOR);
    if layout.columns > 1 {
        let x = layout.column_x(1) - SEP;
        canvas.fill(x, layout.top, layout.width - x, grid_h, SEPARATOR);
    }
    if layout.font > 0 {
        for l in 1..layout.columns {
            let x = layout.column_x(l) + (layout.tile_w - number_width(l, layout.font)) / 2;
            canvas.number(x, PAD, l, layout.font, INK);
        }
    }
    for (s, sample) in summary.samples.iter().enumerate() {
        let Some((x, y)) = layout.tile_origin(s, 0) else { continue };
        if layout.font > 0 {
            let label = sample.label as usize;
            let nx = layout.left - PAD - number_width(label, layout.font);
            let ny = y + (layout.tile_h - GLYPH_H * layout.font) / 2;
            canvas.number(nx, ny, label, layout.font, INK);
        }
        canvas.tile(x, y, &sample.image, rows, cols, layout.scale, grayscale);
        for (l, map) in sample.maps.chunks_exact(d.max(1)).enumerate() {
            if let Some((x, y)) = layout.tile_origin(s, l + 1) {
                canvas.tile(x, y, map, rows, cols, layout.scale, |m| contribution_color(m, scale));
            }
        }
    }
    canvas
}

/// Margin around the likelihood figure.
const MARGIN: usize = 8;
/// Horizontal gap between sample blocks.
const BLOCK_GAP: usize = 16;
/// Vertical gap between bands of blocks.
const BAND_GAP: usize = 16;
/// Gap between the thumbnail and the class header.
const THUMB_GAP: usize = 4;
/// Height of the true-class tick above its column.
const TICK: usize = 3;
/// Wrap blocks into bands so the figure stays about this wide.
const LIKELIHOOD_MAX_WIDTH: usize = 1600;

/// Pixel geometry of `likelihood.png`.
///
/// One block per sample, side by side, wrapping into bands:
/// ```text
///         [input thumbnail]
///         class numbers, an orange tick over the true class
/// layer 1 ■ ■ ■ ■ ■ ■ ■ ■ ■ ■
///   …     one row per layer, one column per class (white 0 → dark blue 1)
/// layer L ■ ■ ■ ■ ■ ■ ■ ■ ■ ■     the true class column framed in orange
/// ```
/// Layer numbers are drawn left of the first block of each band.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LikelihoodLayout {
    width: usize,
    height: usize,
    cell: usize,
    layers: usize,
    classes: usize,
    samples: usize,
    per_band: usize,
    block_w: usize,
    block_h: usize,
    thumb_scale: usize,
    thumb_w: usize,
    /// Height of the class-number row (0 when numbers do not fit).
    class_font: usize,
    layer_font: usize,
    left: usize,
}

impl LikelihoodLayout {
    /// The layout for `summary` (assumed consistent; see [`super::write_all`]).
    pub fn of(summary: &Summary) -> Self {
        let (layers, classes, samples) =
            (summary.arch.layers, summary.arch.classes, summary.samples.len());
        let (rows, cols) = (summary.image_rows.max(1), summary.image_cols.max(1));
        // Square cells: about 240 px across the classes and 280 px down the layers,
        // between 4 px (still visible) and 14 px (room for a 2× digit).
        let cell = (240 / classes.max(1)).clamp(4, 14).min((280 / layers.max(1)).clamp(4, 14));
        let grid_w = classes * cell;
        let thumb_scale = (grid_w / cols).clamp(1, 4);
        let thumb_w = cols * thumb_scale;
        let thumb_h = rows * thumb_scale;
        let widest_class = classes.saturating_sub(1);
        let class_font =
            [2, 1].into_iter().find(|&f| number_width(widest_class, f) + 2 <= cell).unwrap_or(0);
        let layer_font = [2, 1].into_iter().find(|&f| GLYPH_H * f + 2 <= cell).unwrap_or(0);
        let left = if layer_font > 0 && layers > 0 {
            number_width(layers, layer_font) + 2 * PAD
        } else {
            0
        };
        let block_w = grid_w.max(thumb_w);
        let block_h = thumb_h + THUMB_GAP + header_height(class_font) + layers * cell;
        let room = LIKELIHOOD_MAX_WIDTH.saturating_sub(left + 2 * MARGIN) + BLOCK_GAP;
        let per_band = (room / (block_w + BLOCK_GAP)).clamp(1, samples.max(1));
        let bands = samples.div_ceil(per_band);
        let used_w = (per_band * (block_w + BLOCK_GAP)).saturating_sub(BLOCK_GAP);
        let used_h = (bands * (block_h + BAND_GAP)).saturating_sub(BAND_GAP);
        LikelihoodLayout {
            width: left + 2 * MARGIN + if samples > 0 { used_w } else { 0 },
            height: 2 * MARGIN + used_h,
            cell,
            layers,
            classes,
            samples,
            per_band,
            block_w,
            block_h,
            thumb_scale,
            thumb_w,
            class_font,
            layer_font,
            left,
        }
    }

    /// Image width in pixels (always ≥ 1).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Image height in pixels (always ≥ 1).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Side of one (square) likelihood cell in pixels.
    pub fn cell(&self) -> usize {
        self.cell
    }

    /// Top-left pixel `(x, y)` of sample `sample`'s block (thumbnail included).
    pub fn block_origin(&self, sample: usize) -> Option<(usize, usize)> {
        if sample >= self.samples {
            return None;
        }
        let (band, slot) = (sample / self.per_band, sample % self.per_band);
        Some((
            self.left + MARGIN + slot * (self.block_w + BLOCK_GAP),
            MARGIN + band * (self.block_h + BAND_GAP),
        ))
    }

    /// Top-left pixel of the thumbnail of `sample`.
    fn thumb_origin(&self, sample: usize) -> Option<(usize, usize)> {
        let (x, y) = self.block_origin(sample)?;
        Some((x + (self.block_w - self.thumb_w) / 2, y))
    }

    /// Top-left pixel of the cell `(layer, class)` of `sample`; `layer` in `1..=L`.
    pub fn cell_origin(&self, sample: usize, layer: usize, class: usize) -> Option<(usize, usize)> {
        if !(1..=self.layers).contains(&layer) || class >= self.classes {
            return None;
        }
        let (x, y) = self.grid_origin(sample)?;
        Some((x + class * self.cell, y + (layer - 1) * self.cell))
    }

    /// Top-left pixel of the `L × C` grid of `sample`.
    fn grid_origin(&self, sample: usize) -> Option<(usize, usize)> {
        let (x, y) = self.block_origin(sample)?;
        let grid_w = self.classes * self.cell;
        let thumb_h =
            self.block_h - THUMB_GAP - header_height(self.class_font) - self.layers * self.cell;
        Some((
            x + (self.block_w - grid_w) / 2,
            y + thumb_h + THUMB_GAP + header_height(self.class_font),
        ))
    }
}

/// Height of the class header: numbers (if any), a gap, the tick, a gap.
fn header_height(font: usize) -> usize {
    let numbers = if font > 0 { GLYPH_H * font + 2 } else { 0 };
    numbers + TICK + 2
}

/// Renders `likelihood.png`.
pub(crate) fn likelihood(summary: &Summary) -> Canvas {
    let layout = LikelihoodLayout::of(summary);
    let (rows, cols, classes) = (summary.image_rows, summary.image_cols, summary.arch.classes);
    let cell = layout.cell;
    let mut canvas = Canvas::new(layout.width, layout.height, WHITE);
    for (s, sample) in summary.samples.iter().enumerate() {
        let (Some((tx, ty)), Some((gx, gy))) = (layout.thumb_origin(s), layout.grid_origin(s))
        else {
            continue;
        };
        canvas.tile(tx, ty, &sample.image, rows, cols, layout.thumb_scale, grayscale);
        let grid_w = classes * cell;
        let grid_h = layout.layers * cell;
        // A hairline around the grid so white (unlikely) cells keep their edges.
        if grid_w > 0 && grid_h > 0 {
            canvas.frame(gx - 1, gy - 1, grid_w + 2, grid_h + 2, 1, SEPARATOR);
        }
        for (l, row) in sample.likelihoods.chunks_exact(classes.max(1)).enumerate() {
            for (c, &p) in row.iter().enumerate() {
                canvas.fill(gx + c * cell, gy + l * cell, cell, cell, sequential(p));
            }
        }
        let tick_y = gy - 2 - TICK;
        for c in 0..classes {
            let truth = c == sample.label as usize;
            let color = if truth { TRUE_CLASS } else { INK };
            if layout.class_font > 0 {
                let nx = gx + c * cell + (cell - number_width(c, layout.class_font)) / 2;
                let ny = tick_y - 2 - GLYPH_H * layout.class_font;
                canvas.number(nx, ny, c, layout.class_font, color);
            }
            if truth {
                canvas.fill(gx + c * cell, tick_y, cell, TICK, TRUE_CLASS);
                let thick = if cell >= 10 { 2 } else { 1 };
                canvas.frame(gx + c * cell, gy, cell, grid_h, thick, TRUE_CLASS);
            }
        }
        // Layer numbers once per band, right-aligned in the left strip.
        if s % layout.per_band == 0 && layout.layer_font > 0 {
            let f = layout.layer_font;
            for l in 1..=layout.layers {
                let nx = layout.left - PAD - number_width(l, f);
                let ny = gy + (l - 1) * cell + (cell - GLYPH_H * f) / 2;
                canvas.number(nx, ny, l, f, INK);
            }
        }
    }
    canvas
}
