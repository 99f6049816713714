//! A minimal RGB canvas for the PNG figures: filled rectangles, scaled tiles, a tiny
//! digit font for axis numbers, and PNG encoding through the `png` crate.
//!
//! All drawing clips to the canvas, so a layout mistake can never panic; it can only
//! draw less.

use std::io;

use super::colormap::Rgb;

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Clone, Debug)]
pub(crate) struct Canvas {
    width: usize,
    height: usize,
    /// `height × width × 3` bytes.
    rgb: Vec<u8>,
}

impl Canvas {
    /// A `width × height` canvas filled with `background`.
    pub(crate) fn new(width: usize, height: usize, background: Rgb) -> Self {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            rgb.extend_from_slice(&background);
        }
        Canvas { width, height, rgb }
    }

    /// Fills the rectangle at `(x, y)` of size `w × h`, clipped.
    pub(crate) fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb) {
        let (x1, y1) = ((x + w).min(self.width), (y + h).min(self.height));
        for yy in y.min(y1)..y1 {
            for xx in x.min(x1)..x1 {
                let i = (yy * self.width + xx) * 3;
                self.rgb[i..i + 3].copy_from_slice(&c);
            }
        }
    }

    /// Draws a `thickness`-pixel frame on the inside edge of the rectangle.
    pub(crate) fn frame(
        &mut self,
        x: usize,
        y: usize,
        w: usize,
        h: usize,
        thickness: usize,
        c: Rgb,
    ) {
        let t = thickness.min(w).min(h);
        self.fill(x, y, w, t, c);
        self.fill(x, y + h - t, w, t, c);
        self.fill(x, y, t, h, c);
        self.fill(x + w - t, y, t, h, c);
    }

    /// Draws `values` (`rows × cols`, row-major) at `(x, y)`, each value as a
    /// `scale × scale` block coloured by `color`. Nearest-neighbour on purpose: the
    /// pixels are the data, smoothing would invent values.
    #[allow(clippy::too_many_arguments)] // one call site per figure; a struct would only rename them
    pub(crate) fn tile(
        &mut self,
        x: usize,
        y: usize,
        values: &[f32],
        rows: usize,
        cols: usize,
        scale: usize,
        color: impl Fn(f32) -> Rgb,
    ) {
        for (r, row) in values.chunks(cols.max(1)).take(rows).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                self.fill(x + c * scale, y + r * scale, scale, scale, color(v));
            }
        }
    }

    /// Draws the decimal digits of `n` with the top-left corner at `(x, y)`.
    pub(crate) fn number(&mut self, x: usize, y: usize, n: usize, scale: usize, c: Rgb) {
        for (i, digit) in n.to_string().bytes().enumerate() {
            let glyph = DIGITS[usize::from(digit - b'0')];
            let gx = x + i * (GLYPH_W + 1) * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (0b100 >> col) != 0 {
                        self.fill(gx + col * scale, y + row * scale, scale, scale, c);
                    }
                }
            }
        }
    }

    /// Encodes as an 8-bit RGB PNG. A zero-sized canvas is an error (PNG forbids it);
    /// the figure layouts never produce one.
    pub(crate) fn encode_png(&self) -> io::Result<Vec<u8>> {
        let too_big =
            || io::Error::new(io::ErrorKind::InvalidInput, "figure larger than PNG allows");
        let width = u32::try_from(self.width).map_err(|_| too_big())?;
        let height = u32::try_from(self.height).map_err(|_| too_big())?;
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // The `png` error stays behind `io::Error::other` so it is still the source of
        // the chain but never part of our public API.
        let mut writer = encoder.write_header().map_err(io::Error::other)?;
        writer.write_image_data(&self.rgb).map_err(io::Error::other)?;
        writer.finish().map_err(io::Error::other)?;
        Ok(out)
    }
}

/// Glyph width of the digit font in font pixels (glyphs are 3 × 5).
pub(crate) const GLYPH_W: usize = 3;
/// Glyph height of the digit font in font pixels.
pub(crate) const GLYPH_H: usize = 5;

/// Width in canvas pixels of `n` drawn by [`Canvas::number`] at `scale`.
pub(crate) fn number_width(n: usize, scale: usize) -> usize {
    let digits = n.to_string().len();
    (digits * (GLYPH_W + 1) - 1) * scale
}

/// A 3 × 5 bitmap font for 0–9: one `u8` per row, the low three bits left to right.
/// Enough to number layers and classes without a font dependency.
const DIGITS: [[u8; GLYPH_H]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b001, 0b001, 0b001],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_clips_at_the_edges() {
        let mut c = Canvas::new(4, 3, [0, 0, 0]);
        c.fill(2, 1, 100, 100, [255, 0, 0]);
        c.frame(0, 0, 50, 50, 2, [0, 255, 0]);
        c.number(3, 2, 1234, 3, [0, 0, 255]);
        assert_eq!(c.rgb.len(), 4 * 3 * 3);
    }

    #[test]
    fn number_width_matches_the_drawing() {
        assert_eq!(number_width(7, 1), 3);
        assert_eq!(number_width(20, 2), 14);
        let mut c = Canvas::new(20, 10, [255, 255, 255]);
        c.number(0, 0, 88, 1, [0, 0, 0]);
        // "88" at scale 1 covers columns 0..7 and nothing beyond.
        let inked = |x: usize| (0..10).any(|y| c.rgb[(y * 20 + x) * 3] == 0);
        assert!(inked(0) && inked(6) && !inked(3) && !inked(7));
    }

    #[test]
    fn zero_sized_canvas_is_an_error_not_a_panic() {
        assert!(Canvas::new(0, 5, [0, 0, 0]).encode_png().is_err());
    }
}
