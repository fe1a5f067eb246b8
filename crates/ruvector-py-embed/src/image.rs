//! Image preprocessing for the image embedder, equal to the evaluation
//! transform of torchvision's ImageNet weights applied to a PIL image:
//!
//! 1. resize so that the shorter side is 256 pixels (the longer side is
//!    `int(256 · long / short)`), with antialiased bilinear filtering done
//!    the way Pillow (13.0) does it on 8-bit images: a triangle filter
//!    stretched by the downscaling factor, fixed-point coefficients with 22
//!    fractional bits, one pass per axis rounded to 8 bits, the horizontal
//!    one first unless the height shrinks much more (see [`vertical_first`]);
//! 2. crop the central 224 × 224 pixels (offsets rounded half to even, as
//!    Python's `round` does);
//! 3. scale to [0, 1] (`/ 255`), subtract the ImageNet mean and divide by
//!    its standard deviation, channel by channel, in float32;
//! 4. reorder from height × width × channel (NumPy's layout) to channel ×
//!    height × width (the network's).
//!
//! Only the pixels inside the crop are computed: every output pixel depends
//! on its own filter window alone, so the result is the one of resizing the
//! whole image and cropping afterwards. The output is bit-identical to
//! torchvision + Pillow; integer arithmetic makes it independent of the CPU.

use std::borrow::Cow;

/// Side of the square network input.
pub const CROP: usize = 224;
/// Length the shorter image side is resized to before cropping.
pub const RESIZE: usize = 256;
/// Largest accepted image side (larger inputs are refused, not resized).
pub const MAX_SIDE: usize = 16384;
/// ImageNet channel means and standard deviations (RGB).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Fractional bits of the fixed-point filter coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// An `(h, w, 3)` uint8 image in row-major order (NumPy's C layout).
pub struct Rgb8<'a> {
    pub data: Cow<'a, [u8]>,
    pub h: usize,
    pub w: usize,
}

impl Rgb8<'_> {
    /// The `(3, 224, 224)` float32 network input, row-major.
    pub fn preprocess(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; 3 * CROP * CROP];
        preprocess_into(&self.data, self.h, self.w, &mut out);
        out
    }
}

/// Size after resizing the shorter side to `RESIZE`: `(height, width)`.
pub fn resized_size(h: usize, w: usize) -> (usize, usize) {
    // Python's int(256 * long / short): an exact product, a correctly
    // rounded division, truncation; all three are exact in f64 here.
    let scaled = |long: usize, short: usize| (RESIZE as f64 * long as f64 / short as f64) as usize;
    if w <= h {
        (scaled(h, w), RESIZE)
    } else {
        (RESIZE, scaled(w, h))
    }
}

/// Top (or left) offset of a centred crop of `crop` out of `size`:
/// `int(round((size - crop) / 2))` with Python's round-half-to-even.
pub fn crop_offset(size: usize, crop: usize) -> usize {
    let diff = size - crop;
    let half = diff / 2;
    if diff % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// The filter windows of the output positions `first..first + count` of a
/// 1-D resize from `in_size` to `out_size`: for each, the first input index,
/// and `taps` fixed-point coefficients (zero past the window's end).
#[derive(Debug, PartialEq)]
pub struct Coeffs {
    pub start: Vec<usize>,
    pub len: Vec<usize>,
    pub taps: usize,
    pub k: Vec<i32>,
}

impl Coeffs {
    fn window(&self, i: usize) -> (usize, &[i32]) {
        (
            self.start[i],
            &self.k[i * self.taps..i * self.taps + self.len[i]],
        )
    }
}

/// The triangle (bilinear) filter, support 1.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Antialiased bilinear coefficients as Pillow computes them for 8-bit
/// images (see the module documentation).
pub fn coefficients(in_size: usize, out_size: usize, first: usize, count: usize) -> Coeffs {
    if in_size == out_size {
        // An unchanged axis is copied (Pillow skips the pass; the filter
        // would give weights exactly 1 and 0 anyway).
        return Coeffs {
            start: (first..first + count).collect(),
            len: vec![1; count],
            taps: 1,
            k: vec![1 << PRECISION_BITS; count],
        };
    }
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale;
    let taps = support.ceil() as usize * 2 + 1;
    let inv = 1.0 / filter_scale;
    let mut start = Vec::with_capacity(count);
    let mut len = Vec::with_capacity(count);
    let mut k = vec![0i32; count * taps];
    let mut w = vec![0.0f64; taps];
    for (i, out) in (first..first + count).enumerate() {
        let center = (out as f64 + 0.5) * scale;
        // C casts: truncation toward zero, then clamping to the image.
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = hi.saturating_sub(lo).min(taps);
        let mut total = 0.0;
        for (x, wx) in w[..n].iter_mut().enumerate() {
            *wx = triangle(((x + lo) as f64 - center + 0.5) * inv);
            total += *wx;
        }
        let row = &mut k[i * taps..i * taps + n];
        for (kx, &wx) in row.iter_mut().zip(&w[..n]) {
            let wx = if total != 0.0 { wx / total } else { wx };
            let fixed = wx * f64::from(1u32 << PRECISION_BITS);
            *kx = if wx < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        start.push(lo);
        len.push(n);
    }
    Coeffs {
        start,
        len,
        taps,
        k,
    }
}

/// Rounds a fixed-point accumulator back to 8 bits, saturating.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Whether Pillow (13.0 and later) runs the vertical pass first: when the
/// height shrinks by more than twice as many pixels as the width does.
/// Older Pillow releases always start with the horizontal pass; the two
/// orders differ by at most one unit in some 8-bit values.
pub fn vertical_first(h: usize, w: usize, rh: usize, rw: usize) -> bool {
    let dh = h as i64 - rh as i64;
    let dw = w as i64 - rw as i64;
    dh > 0 && dh > 2 * dw
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// The horizontal pass over `rows` of `src` (`width` pixels wide): one
/// output row per input row, one output pixel per window of `c`, whose
/// starts are shifted left by `shift` columns.
fn horizontal(
    src: &[u8],
    width: usize,
    rows: std::ops::Range<usize>,
    c: &Coeffs,
    shift: usize,
    dst: &mut [u8],
) {
    let out_w = c.start.len();
    for (y, out) in rows.zip(dst.chunks_exact_mut(out_w * 3)) {
        let line = &src[y * width * 3..(y + 1) * width * 3];
        for (x, px) in out.chunks_exact_mut(3).enumerate() {
            let (lo, k) = c.window(x);
            let mut acc = [HALF; 3];
            for (&kx, p) in k.iter().zip(line[(lo - shift) * 3..].chunks_exact(3)) {
                acc[0] += i32::from(p[0]) * kx;
                acc[1] += i32::from(p[1]) * kx;
                acc[2] += i32::from(p[2]) * kx;
            }
            px[0] = clip8(acc[0]);
            px[1] = clip8(acc[1]);
            px[2] = clip8(acc[2]);
        }
    }
}

/// The vertical pass over the columns `cols` of `src` (`width` pixels
/// wide): one output row per window of `c`, whose starts are shifted up by
/// `shift` rows.
fn vertical(
    src: &[u8],
    width: usize,
    cols: std::ops::Range<usize>,
    c: &Coeffs,
    shift: usize,
    dst: &mut [u8],
) {
    let n = cols.len() * 3;
    let mut acc = vec![0i32; n];
    for (y, out) in dst.chunks_exact_mut(n).enumerate().take(c.start.len()) {
        let (lo, k) = c.window(y);
        acc.fill(HALF);
        for (t, &ky) in k.iter().enumerate() {
            let r = lo - shift + t;
            let line = &src[(r * width + cols.start) * 3..][..n];
            for (a, &p) in acc.iter_mut().zip(line) {
                *a += i32::from(p) * ky;
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
}

/// The resized and centre-cropped `(224, 224, 3)` uint8 pixels of `src`
/// (`h × w × 3`): the shorter side resized to 256, as Pillow does it.
pub fn resize_crop(src: &[u8], h: usize, w: usize) -> Vec<u8> {
    debug_assert_eq!(src.len(), h * w * 3);
    let (rh, rw) = resized_size(h, w);
    let (top, left) = (crop_offset(rh, CROP), crop_offset(rw, CROP));
    let horiz = coefficients(w, rw, left, CROP);
    let vert = coefficients(h, rh, top, CROP);
    let mut crop = vec![0u8; CROP * CROP * 3];
    if vertical_first(h, w, rh, rw) {
        // Only the input columns some cropped output column reads.
        let col0 = horiz.start[0];
        let col1 = horiz.start[CROP - 1] + horiz.len[CROP - 1];
        let mut tmp = vec![0u8; CROP * (col1 - col0) * 3];
        vertical(src, w, col0..col1, &vert, 0, &mut tmp);
        horizontal(&tmp, col1 - col0, 0..CROP, &horiz, col0, &mut crop);
    } else {
        // Only the input rows some cropped output row reads.
        let row0 = vert.start[0];
        let row1 = vert.start[CROP - 1] + vert.len[CROP - 1];
        let mut tmp = vec![0u8; (row1 - row0) * CROP * 3];
        horizontal(src, w, row0..row1, &horiz, 0, &mut tmp);
        vertical(&tmp, CROP, 0..CROP, &vert, row0, &mut crop);
    }
    crop
}

/// Resizes `src` (`h × w × 3`) with the shorter side to 256, crops the
/// centre 224 × 224, normalises, and writes `(3, 224, 224)` into `out`.
pub fn preprocess_into(src: &[u8], h: usize, w: usize, out: &mut [f32]) {
    debug_assert_eq!(out.len(), 3 * CROP * CROP);
    let crop = resize_crop(src, h, w);
    let plane = CROP * CROP;
    for (i, px) in crop.chunks_exact(3).enumerate() {
        for c in 0..3 {
            // torchvision: x.to(float32) / 255, then (x - mean) / std.
            let v = f32::from(px[c]) / 255.0;
            out[c * plane + i] = (v - MEAN[c]) / STD[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_follows_torchvision() {
        assert_eq!(resized_size(480, 640), (256, 341));
        assert_eq!(resized_size(640, 480), (341, 256));
        assert_eq!(resized_size(97, 411), (256, 1084));
        assert_eq!(resized_size(224, 224), (256, 256));
        assert_eq!(resized_size(1, 16384), (256, 4_194_304));
    }

    #[test]
    fn crop_offset_rounds_half_to_even() {
        assert_eq!(crop_offset(256, 224), 16);
        assert_eq!(crop_offset(341, 224), 58); // round(58.5) = 58
        assert_eq!(crop_offset(343, 224), 60); // round(59.5) = 60
        assert_eq!(crop_offset(224, 224), 0);
    }

    #[test]
    fn coefficients_sum_to_one_and_identity_is_exact() {
        let one = 1i32 << PRECISION_BITS;
        for &(inp, out) in &[(480usize, 256usize), (97, 256), (16384, 256), (3, 256)] {
            let c = coefficients(inp, out, 0, out);
            for i in 0..out {
                let (lo, k) = c.window(i);
                assert!(lo + k.len() <= inp);
                let s: i32 = k.iter().sum();
                // Each coefficient is rounded on its own: off by at most
                // half a unit per tap.
                assert!(
                    (s - one).unsigned_abs() as usize <= k.len(),
                    "{inp}->{out} at {i}: {s}"
                );
            }
        }
        let id = coefficients(256, 256, 16, 224);
        assert_eq!(id.start[0], 16);
        assert!(id.k.iter().all(|&k| k == one));
    }

    #[test]
    fn downscale_by_two_uses_the_stretched_triangle() {
        // 4 → 2: the triangle stretched to support 2 around 1.0, sampled at
        // pixel centres 0.5, 1.5, 2.5: 0.75, 0.75, 0.25, normalised.
        let c = coefficients(4, 2, 0, 2);
        let (lo, k) = c.window(0);
        assert_eq!(lo, 0);
        let f: Vec<f64> = k
            .iter()
            .map(|&v| f64::from(v) / f64::from(1 << PRECISION_BITS))
            .collect();
        let expect = [3.0 / 7.0, 3.0 / 7.0, 1.0 / 7.0];
        for (a, b) in f.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{f:?}");
        }
    }

    #[test]
    fn pass_order_follows_pillow_13() {
        assert!(vertical_first(1001, 257, 997, 256));
        assert!(!vertical_first(600, 599, 256, 256));
        assert!(vertical_first(700, 300, 597, 256));
        assert!(!vertical_first(480, 640, 256, 341));
        assert!(!vertical_first(97, 411, 256, 1084));
    }

    #[test]
    fn constant_image_stays_constant() {
        let (h, w) = (37, 53);
        let src: Vec<u8> = (0..h * w).flat_map(|_| [10u8, 128, 250]).collect();
        let img = Rgb8 {
            data: Cow::Owned(src),
            h,
            w,
        };
        let x = img.preprocess();
        for c in 0..3 {
            let want = ([10.0f32, 128.0, 250.0][c] / 255.0 - MEAN[c]) / STD[c];
            let plane = &x[c * CROP * CROP..(c + 1) * CROP * CROP];
            assert!(plane.iter().all(|&v| v == want), "channel {c}");
        }
    }
}
