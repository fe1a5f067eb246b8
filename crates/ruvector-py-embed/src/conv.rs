//! Convolution kernels of the image network, single-threaded (a batch runs
//! one image per thread).
//!
//! Activations are channels-last: a `(height · width, channels)` row-major
//! matrix, one row per pixel. Then
//!
//! * a 1×1 convolution is one GEMM, `(pixels × in) · (in × out)`, with the
//!   PyTorch weight `(out, in)` read transposed through its strides;
//! * the dense 3×3 stem is im2col plus the same GEMM;
//! * a depthwise k×k convolution loops over output pixels and kernel taps
//!   with the channels innermost: contiguous, in blocks of accumulators the
//!   compiler keeps in vector registers;
//! * bias, residual input and activation are fused into the output pass.

use crate::gemm::gemm_acc;

/// Activation after a convolution (BatchNorm is already folded in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Hardswish,
}

/// `x · relu6(x + 3) / 6`.
#[inline]
pub fn hardswish(x: f32) -> f32 {
    x * (x + 3.0).clamp(0.0, 6.0) / 6.0
}

/// `relu6(x + 3) / 6`.
#[inline]
pub fn hardsigmoid(x: f32) -> f32 {
    (x + 3.0).clamp(0.0, 6.0) / 6.0
}

#[inline]
pub fn activate(x: &mut [f32], act: Act) {
    match act {
        Act::None => {}
        Act::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Act::Hardswish => x.iter_mut().for_each(|v| *v = hardswish(*v)),
    }
}

/// Output length of a convolution along one axis (padding `k / 2`).
pub fn out_size(size: usize, k: usize, stride: usize) -> usize {
    (size + 2 * (k / 2) - k) / stride + 1
}

/// A 1×1 convolution over `n` pixels: `y = act(x · wᵀ + b [+ residual])`;
/// `x` is `(n, cin)`, `w` is `(cout, cin)`; `y` is resized to `(n, cout)`.
#[allow(clippy::too_many_arguments)]
pub fn pointwise(
    w: &[f32],
    b: &[f32],
    cin: usize,
    x: &[f32],
    n: usize,
    act: Act,
    residual: Option<&[f32]>,
    y: &mut Vec<f32>,
) {
    let cout = b.len();
    y.resize(n * cout, 0.0);
    let y = &mut y[..n * cout];
    match residual {
        Some(r) => {
            for (row, res) in y.chunks_exact_mut(cout).zip(r.chunks_exact(cout)) {
                for ((o, &v), &bias) in row.iter_mut().zip(res).zip(b) {
                    *o = v + bias;
                }
            }
        }
        None => y
            .chunks_exact_mut(cout)
            .for_each(|row| row.copy_from_slice(b)),
    }
    gemm_acc(&x[..n * cin], n, cin, w, cout, y);
    activate(y, act);
}

/// im2col of a channel-major `(c, h, w)` input for a `k×k` convolution with
/// padding `k / 2` and `stride`: one row per output pixel, `c·k·k` columns in
/// PyTorch's weight order `(c, ky, kx)`, zero outside the image. `pad` is
/// scratch for the zero-padded input.
#[allow(clippy::too_many_arguments)]
pub fn im2col(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: &mut Vec<f32>,
    col: &mut Vec<f32>,
) {
    let (oh, ow) = (out_size(h, k, stride), out_size(w, k, stride));
    let p = k / 2;
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    pad.clear();
    pad.resize(c * ph * pw, 0.0);
    for ci in 0..c {
        for y in 0..h {
            let dst = &mut pad[(ci * ph + y + p) * pw + p..][..w];
            dst.copy_from_slice(&x[(ci * h + y) * w..][..w]);
        }
    }
    let width = c * k * k;
    col.resize(oh * ow * width, 0.0);
    for (o, row) in col.chunks_exact_mut(width).enumerate() {
        let (oy, ox) = (o / ow, o % ow);
        let mut t = 0;
        for ci in 0..c {
            for ky in 0..k {
                let src = &pad[(ci * ph + oy * stride + ky) * pw + ox * stride..][..k];
                row[t..t + k].copy_from_slice(src);
                t += k;
            }
        }
    }
}

/// Channels per block of accumulators in [`depthwise`].
const LANES: usize = 8;

/// A depthwise `k×k` convolution (padding `k / 2`) of a channels-last
/// `(h·w, c)` input: `y = act(conv(x) + b)`; `wt` is the kernel transposed
/// to `(k·k, c)`. Returns the output size.
#[allow(clippy::too_many_arguments)]
pub fn depthwise(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    wt: &[f32],
    b: &[f32],
    k: usize,
    stride: usize,
    act: Act,
    y: &mut Vec<f32>,
) -> (usize, usize) {
    let (oh, ow) = (out_size(h, k, stride), out_size(w, k, stride));
    let pad = k / 2;
    y.resize(oh * ow * c, 0.0);
    let blocks = c / LANES;
    // Valid taps of an output coordinate: `lo..hi` of the kernel.
    let taps = |o: usize, size: usize| {
        let lo = pad.saturating_sub(o * stride);
        let hi = k.min(size + pad - o * stride);
        (lo, hi)
    };
    for oy in 0..oh {
        let (ky0, ky1) = taps(oy, h);
        for ox in 0..ow {
            let (kx0, kx1) = taps(ox, w);
            let out = &mut y[(oy * ow + ox) * c..][..c];
            for blk in 0..blocks {
                let base = blk * LANES;
                let mut acc: [f32; LANES] = b[base..base + LANES].try_into().expect("LANES");
                for ky in ky0..ky1 {
                    let iy = oy * stride + ky - pad;
                    for kx in kx0..kx1 {
                        let ix = ox * stride + kx - pad;
                        let px = &x[(iy * w + ix) * c + base..][..LANES];
                        let kv = &wt[(ky * k + kx) * c + base..][..LANES];
                        for l in 0..LANES {
                            acc[l] += kv[l] * px[l];
                        }
                    }
                }
                out[base..base + LANES].copy_from_slice(&acc);
            }
            for ch in blocks * LANES..c {
                let mut acc = b[ch];
                for ky in ky0..ky1 {
                    let iy = oy * stride + ky - pad;
                    for kx in kx0..kx1 {
                        let ix = ox * stride + kx - pad;
                        acc += wt[(ky * k + kx) * c + ch] * x[(iy * w + ix) * c + ch];
                    }
                }
                out[ch] = acc;
            }
            activate(out, act);
        }
    }
    (oh, ow)
}

/// Per-channel mean of a channels-last `(n, c)` matrix, summed in f64.
pub fn channel_means(x: &[f32], n: usize, c: usize, out: &mut [f32], acc: &mut Vec<f64>) {
    acc.clear();
    acc.resize(c, 0.0);
    for row in x[..n * c].chunks_exact(c) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += f64::from(v);
        }
    }
    for (o, &a) in out[..c].iter_mut().zip(acc.iter()) {
        *o = (a / n as f64) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct single-channel convolution for checking.
    fn naive(x: &[f32], h: usize, w: usize, kern: &[f32], k: usize, stride: usize) -> Vec<f32> {
        let (oh, ow) = (out_size(h, k, stride), out_size(w, k, stride));
        let pad = (k / 2) as isize;
        let mut y = vec![0.0; oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut s = 0.0;
                for ky in 0..k {
                    for kx in 0..k {
                        let iy = (oy * stride + ky) as isize - pad;
                        let ix = (ox * stride + kx) as isize - pad;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            s += kern[ky * k + kx] * x[iy as usize * w + ix as usize];
                        }
                    }
                }
                y[oy * ow + ox] = s;
            }
        }
        y
    }

    #[test]
    fn depthwise_and_im2col_match_a_direct_convolution() {
        let cases = [
            (7, 9, 3, 1),
            (8, 5, 3, 2),
            (13, 6, 5, 2),
            (4, 4, 5, 1),
            (1, 1, 5, 2),
            (2, 3, 3, 2),
        ];
        // 11 channels: one block of 8 and 3 left over.
        let c = 11;
        for &(h, w, k, stride) in &cases {
            let plane = |ch: usize| -> Vec<f32> {
                (0..h * w)
                    .map(|i| (((i + ch) * 7919) % 23) as f32 - 11.0)
                    .collect()
            };
            let kern = |ch: usize| -> Vec<f32> {
                (0..k * k)
                    .map(|i| (((i + 2 * ch) * 31) % 7) as f32 - 3.0)
                    .collect()
            };
            // Channels-last input and (k·k, c) kernel.
            let mut x = vec![0.0; h * w * c];
            let mut wt = vec![0.0; k * k * c];
            for ch in 0..c {
                for (p, v) in plane(ch).into_iter().enumerate() {
                    x[p * c + ch] = v;
                }
                for (t, v) in kern(ch).into_iter().enumerate() {
                    wt[t * c + ch] = v;
                }
            }
            let mut y = Vec::new();
            let (oh, ow) = depthwise(
                &x,
                c,
                h,
                w,
                &wt,
                &vec![0.0; c],
                k,
                stride,
                Act::None,
                &mut y,
            );
            for ch in 0..c {
                let want = naive(&plane(ch), h, w, &kern(ch), k, stride);
                let got: Vec<f32> = (0..oh * ow).map(|p| y[p * c + ch]).collect();
                assert_eq!(got, want, "depthwise {h}x{w} k{k} s{stride} channel {ch}");
            }
            // im2col + GEMM of one channel-major input channel.
            let (mut pad, mut col) = (Vec::new(), Vec::new());
            im2col(&plane(0), 1, h, w, k, stride, &mut pad, &mut col);
            let mut y2 = vec![0.0; oh * ow];
            gemm_acc(&col, oh * ow, k * k, &kern(0), 1, &mut y2);
            assert_eq!(
                y2,
                naive(&plane(0), h, w, &kern(0), k, stride),
                "im2col {h}x{w} k{k} s{stride}"
            );
        }
    }

    #[test]
    fn activations_and_sizes() {
        assert_eq!(hardswish(-4.0), 0.0);
        assert_eq!(hardswish(4.0), 4.0);
        assert_eq!(hardswish(1.0), 1.0 * 4.0 / 6.0);
        assert_eq!(hardsigmoid(0.0), 0.5);
        assert_eq!(hardsigmoid(5.0), 1.0);
        assert_eq!(out_size(224, 3, 2), 112);
        assert_eq!(out_size(14, 5, 2), 7);
        assert_eq!(out_size(7, 5, 1), 7);
    }
}
