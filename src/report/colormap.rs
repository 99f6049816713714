//! Colormaps for the report figures: value → 8-bit sRGB.
//!
//! - [`diverging`] for contribution maps: `t ∈ [−1, 1]`, blue (suppressed) ← white (0)
//!   → red (strengthened). The anchors are ColorBrewer's RdBu with a pure-white centre,
//!   so an untouched pixel is exactly white and an all-zero map is a blank tile.
//! - [`sequential`] for likelihoods: `t ∈ [0, 1]`, white → dark blue (ColorBrewer Blues).
//! - [`grayscale`] for input images: 0 black, 1 white.
//!
//! Every map is total: out-of-range values clamp to the ends, and NaN becomes
//! [`NAN_GRAY`], a mid gray that no ramp produces, so a broken pixel is visible instead of
//! passing for "no change".

/// An 8-bit sRGB colour.
pub(crate) type Rgb = [u8; 3];

/// Colour of a NaN value in every map. Mid gray: none of the ramps below passes through
/// an exactly neutral mid tone, so it cannot be mistaken for data.
pub(crate) const NAN_GRAY: Rgb = [128, 128, 128];

/// ColorBrewer RdBu (11 classes), blue end first, with the centre replaced by pure
/// white. Equally spaced over `[−1, 1]`; lightness falls monotonically away from the
/// centre on both sides, so a larger `|t|` is always a more saturated colour.
const RDBU: [Rgb; 11] = [
    [5, 48, 97],
    [33, 102, 172],
    [67, 147, 195],
    [146, 197, 222],
    [209, 229, 240],
    [255, 255, 255],
    [253, 219, 199],
    [244, 165, 130],
    [214, 96, 77],
    [178, 24, 43],
    [103, 0, 31],
];

/// ColorBrewer Blues (9 classes, light end) starting from pure white, equally spaced
/// over `[0, 1]`.
const BLUES: [Rgb; 7] = [
    [255, 255, 255],
    [222, 235, 247],
    [198, 219, 239],
    [158, 202, 225],
    [66, 146, 198],
    [8, 81, 156],
    [8, 48, 107],
];

/// Piecewise-linear interpolation through equally spaced `anchors` at `u ∈ [0, 1]`.
fn ramp(anchors: &[Rgb], u: f32) -> Rgb {
    let last = anchors.len() - 1;
    let pos = u.clamp(0.0, 1.0) * last as f32;
    // `pos` is finite and in [0, last], so the cast cannot wrap.
    let i = (pos.floor() as usize).min(last - 1);
    let frac = pos - i as f32;
    let (a, b) = (anchors[i], anchors[i + 1]);
    let mut out = [0u8; 3];
    for k in 0..3 {
        let v = f32::from(a[k]) + (f32::from(b[k]) - f32::from(a[k])) * frac;
        out[k] = v.round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Diverging map for `t ∈ [−1, 1]`: −1 dark blue, 0 white, +1 dark red. Values beyond
/// ±1 (including ±∞) clamp; NaN gives [`NAN_GRAY`].
pub(crate) fn diverging(t: f32) -> Rgb {
    if t.is_nan() {
        return NAN_GRAY;
    }
    // Exactly white at 0 regardless of float rounding in `ramp`.
    if t == 0.0 {
        return [255, 255, 255];
    }
    ramp(&RDBU, (t.clamp(-1.0, 1.0) + 1.0) * 0.5)
}

/// Sequential map for `t ∈ [0, 1]`: 0 white, 1 dark blue. Clamps; NaN gives [`NAN_GRAY`].
pub(crate) fn sequential(t: f32) -> Rgb {
    if t.is_nan() {
        return NAN_GRAY;
    }
    ramp(&BLUES, t)
}

/// Gray level for an input pixel in `[0, 1]` (0 black, 1 white). Clamps; NaN gives
/// [`NAN_GRAY`].
pub(crate) fn grayscale(v: f32) -> Rgb {
    if v.is_nan() {
        return NAN_GRAY;
    }
    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    [g, g, g]
}

/// The stops of [`diverging`] as CSS colours from −1 to +1, for the HTML legend (a CSS
/// gradient needs no image and no script).
pub(crate) fn diverging_css_stops() -> String {
    css_stops(&RDBU)
}

/// The stops of [`sequential`] as CSS colours from 0 to 1.
pub(crate) fn sequential_css_stops() -> String {
    css_stops(&BLUES)
}

fn css_stops(anchors: &[Rgb]) -> String {
    anchors.iter().map(|c| css_hex(*c)).collect::<Vec<_>>().join(", ")
}

/// `#rrggbb`.
pub(crate) fn css_hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance from white, summed over channels: 0 for white, larger = more saturated.
    fn ink(c: Rgb) -> u32 {
        c.iter().map(|&v| 255 - u32::from(v)).sum()
    }

    #[test]
    fn zero_is_white() {
        assert_eq!(diverging(0.0), [255, 255, 255]);
        assert_eq!(diverging(-0.0), [255, 255, 255]);
        assert_eq!(sequential(0.0), [255, 255, 255]);
    }

    #[test]
    fn ends_are_the_extremes() {
        assert_eq!(diverging(-1.0), RDBU[0]);
        assert_eq!(diverging(1.0), RDBU[10]);
        assert_eq!(sequential(1.0), BLUES[6]);
        assert_eq!(grayscale(0.0), [0, 0, 0]);
        assert_eq!(grayscale(1.0), [255, 255, 255]);
    }

    #[test]
    fn out_of_range_clamps_and_nan_is_gray() {
        assert_eq!(diverging(7.0), diverging(1.0));
        assert_eq!(diverging(f32::NEG_INFINITY), diverging(-1.0));
        assert_eq!(sequential(-3.0), sequential(0.0));
        assert_eq!(diverging(f32::NAN), NAN_GRAY);
        assert_eq!(sequential(f32::NAN), NAN_GRAY);
        assert_eq!(grayscale(f32::NAN), NAN_GRAY);
    }

    #[test]
    fn diverging_is_symmetric_in_sign_and_strength() {
        for i in 1..=100 {
            let t = i as f32 / 100.0;
            let (pos, neg) = (diverging(t), diverging(-t));
            assert!(pos[0] > pos[2], "+{t} should be red-ish: {pos:?}");
            assert!(neg[2] > neg[0], "−{t} should be blue-ish: {neg:?}");
            // RdBu's two arms are not exact mirrors, but their saturation matches
            // within a small margin at every strength.
            let (a, b) = (ink(pos) as f32, ink(neg) as f32);
            assert!((a - b).abs() <= 0.12 * a.max(b) + 8.0, "±{t}: ink {a} vs {b}");
        }
    }

    #[test]
    fn saturation_grows_with_magnitude() {
        let mut last = (0, 0, 0);
        for i in 1..=200 {
            let t = i as f32 / 200.0;
            let now = (ink(diverging(t)), ink(diverging(-t)), ink(sequential(t)));
            // Non-decreasing at every step (rounding may tie neighbours) ...
            assert!(now.0 >= last.0 && now.1 >= last.1 && now.2 >= last.2, "at {t}");
            // ... and strictly increasing over every tenth of the range.
            if i % 20 == 0 {
                let before = (i - 20) as f32 / 200.0;
                assert!(now.0 > ink(diverging(before)), "at {t}");
                assert!(now.1 > ink(diverging(-before)), "at {t}");
                assert!(now.2 > ink(sequential(before)), "at {t}");
            }
            last = now;
        }
    }
}
