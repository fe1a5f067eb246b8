//! torchvision's `mobilenet_v3_small` feature extractor (eval mode), written
//! for CPU inference: the stem, eleven inverted-residual blocks and the last
//! 1×1 convolution, then the global average pool: a 576-d feature per image
//! (the classifier is not used).
//!
//! Weights come from a torchvision `state_dict` saved as safetensors, under
//! torchvision's tensor names; every tensor's shape is checked against the
//! architecture. BatchNorm (eps 0.001, running statistics) is folded into
//! the preceding convolution's weights and bias at load time. Without a
//! file, [`MobileNetV3Small::untrained`] draws weights from a fixed-seed
//! generator: the same bits on every machine, but no semantics.

use crate::error::{Error, Result};

use crate::conv::{self, Act};
use crate::image::CROP;
use crate::safetensors::SafeTensors;

/// Length of the feature vector.
pub const FEATURE_DIM: usize = 576;
/// BatchNorm epsilon of torchvision's MobileNetV3.
const BN_EPS: f64 = 0.001;
/// Seed of the untrained weights.
pub const UNTRAINED_SEED: u64 = 0x5256_4543_544F_5231; // "RVECTOR1"

/// One inverted-residual block of the configuration table.
#[derive(Debug, Clone, Copy)]
pub struct BlockCfg {
    pub inp: usize,
    pub kernel: usize,
    pub expanded: usize,
    pub out: usize,
    pub se: bool,
    pub hardswish: bool,
    pub stride: usize,
}

const fn b(
    inp: usize,
    kernel: usize,
    expanded: usize,
    out: usize,
    se: bool,
    hs: bool,
    stride: usize,
) -> BlockCfg {
    BlockCfg {
        inp,
        kernel,
        expanded,
        out,
        se,
        hardswish: hs,
        stride,
    }
}

/// `features.1` .. `features.11` of torchvision's `mobilenet_v3_small`.
pub const BLOCKS: [BlockCfg; 11] = [
    b(16, 3, 16, 16, true, false, 2),
    b(16, 3, 72, 24, false, false, 2),
    b(24, 3, 88, 24, false, false, 1),
    b(24, 5, 96, 40, true, true, 2),
    b(40, 5, 240, 40, true, true, 1),
    b(40, 5, 240, 40, true, true, 1),
    b(40, 5, 120, 48, true, true, 1),
    b(48, 5, 144, 48, true, true, 1),
    b(48, 5, 288, 96, true, true, 2),
    b(96, 5, 576, 96, true, true, 1),
    b(96, 5, 576, 96, true, true, 1),
];
const STEM_OUT: usize = 16;
const LAST_IN: usize = 96;

/// The channel rounding of the MobileNet reference code: the nearest
/// multiple of `divisor`, at least `divisor`, never more than 10% below.
pub fn make_divisible(v: usize, divisor: usize) -> usize {
    let rounded = ((v + divisor / 2) / divisor * divisor).max(divisor);
    if (rounded as f64) < 0.9 * v as f64 {
        rounded + divisor
    } else {
        rounded
    }
}

/// A convolution with BatchNorm folded in: `w` is `(out, in·k·k)`, except
/// for depthwise kernels, stored transposed as `(k·k, channels)`.
struct Conv {
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Se {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

struct Block {
    cfg: BlockCfg,
    act: Act,
    expand: Option<Conv>,
    dw: Conv,
    se: Option<Se>,
    project: Conv,
}

/// The network's weights.
pub struct MobileNetV3Small {
    stem: Conv,
    blocks: Vec<Block>,
    last: Conv,
}

/// Scratch buffers of one forward pass (reused across images of a thread).
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,
    y: Vec<f32>,
    e: Vec<f32>,
    d: Vec<f32>,
    col: Vec<f32>,
    wp: Vec<f32>,
    pooled: Vec<f32>,
    sq: Vec<f32>,
    sums: Vec<f64>,
}

/// Where weights come from: a checkpoint or the seeded generator.
trait Source {
    /// The tensor `name` of exactly `shape`.
    fn tensor(&mut self, name: &str, shape: &[usize], kind: Kind) -> Result<Vec<f32>>;
}

/// What a tensor is, for the untrained initialisation.
#[derive(Clone, Copy)]
enum Kind {
    /// Convolution weight: uniform with variance 2 / fan_in.
    Weight,
    Gamma,
    Beta,
    Mean,
    Var,
    Bias,
}

struct Checkpoint<'a>(&'a SafeTensors);

impl Source for Checkpoint<'_> {
    fn tensor(&mut self, name: &str, shape: &[usize], _: Kind) -> Result<Vec<f32>> {
        // Shape, dtype and finiteness are checked by the reader.
        self.0
            .f32_for(name, shape, "torchvision's mobilenet_v3_small")
    }
}

/// SplitMix64: a tiny generator whose output is fixed by its seed alone.
struct Untrained(u64);

impl Untrained {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1), exactly representable (24 random bits).
    fn symmetric(&mut self) -> f32 {
        ((self.next() >> 40) as f32) * (2.0 / 16_777_216.0) - 1.0
    }
}

impl Source for Untrained {
    fn tensor(&mut self, _: &str, shape: &[usize], kind: Kind) -> Result<Vec<f32>> {
        let n: usize = shape.iter().product();
        Ok(match kind {
            // He-uniform: bound sqrt(6 / fan_in) (sqrt is exact-rounded
            // everywhere, so the bits do not depend on the machine).
            Kind::Weight => {
                let fan_in: usize = shape[1..].iter().product();
                let bound = (6.0f32 / fan_in as f32).sqrt();
                (0..n).map(|_| self.symmetric() * bound).collect()
            }
            // BatchNorm as identity (up to eps) and zero SE biases, as
            // torchvision initialises an untrained model.
            Kind::Gamma | Kind::Var => vec![1.0; n],
            Kind::Beta | Kind::Mean | Kind::Bias => vec![0.0; n],
        })
    }
}

/// Reads `prefix.0.weight` (a bias-free conv of `shape`) and the BatchNorm
/// `prefix.1.*`, and folds them: `w·γ/√(σ²+ε)`, `β − μ·γ/√(σ²+ε)`.
fn conv_bn(src: &mut dyn Source, prefix: &str, shape: [usize; 4]) -> Result<Conv> {
    let out = shape[0];
    let w = src.tensor(&format!("{prefix}.0.weight"), &shape, Kind::Weight)?;
    let gamma = src.tensor(&format!("{prefix}.1.weight"), &[out], Kind::Gamma)?;
    let beta = src.tensor(&format!("{prefix}.1.bias"), &[out], Kind::Beta)?;
    let mean = src.tensor(&format!("{prefix}.1.running_mean"), &[out], Kind::Mean)?;
    let var = src.tensor(&format!("{prefix}.1.running_var"), &[out], Kind::Var)?;
    if let Some(i) = var.iter().position(|&v| v < 0.0) {
        return Err(Error::Embed(format!(
            "tensor {prefix}.1.running_var holds a negative variance ({}) at index {i}",
            var[i]
        )));
    }
    let conv = fold_bn(w, &gamma, &beta, &mean, &var);
    // A huge gamma over a tiny variance overflows float32 when folded.
    if conv.w.iter().chain(&conv.b).any(|v| !v.is_finite()) {
        return Err(Error::Embed(format!(
            "the BatchNorm of {prefix} (weight / sqrt(running_var + eps)) overflows float32 \
             when folded into the convolution"
        )));
    }
    Ok(conv)
}

/// BatchNorm folding (see [`conv_bn`]), computed in f64.
fn fold_bn(mut w: Vec<f32>, gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32]) -> Conv {
    let per = w.len() / gamma.len();
    let mut b = Vec::with_capacity(gamma.len());
    for (o, row) in w.chunks_exact_mut(per).enumerate() {
        let s = f64::from(gamma[o]) / (f64::from(var[o]) + BN_EPS).sqrt();
        row.iter_mut().for_each(|v| *v = (f64::from(*v) * s) as f32);
        b.push((f64::from(beta[o]) - f64::from(mean[o]) * s) as f32);
    }
    Conv { w, b }
}

impl MobileNetV3Small {
    /// Loads torchvision's tensor names from a checkpoint (other tensors,
    /// such as the classifier and `num_batches_tracked`, are ignored).
    pub fn load(st: &SafeTensors) -> Result<Self> {
        Self::build(&mut Checkpoint(st)).map_err(|e| match e {
            Error::Embed(m) if !m.starts_with(st.file()) => {
                Error::Embed(format!("{}: {m}", st.file()))
            }
            other => other,
        })
    }

    /// Untrained weights from [`UNTRAINED_SEED`]: reproducible bit for bit,
    /// not semantic.
    pub fn untrained() -> Self {
        Self::build(&mut Untrained(UNTRAINED_SEED)).expect("the generator never fails")
    }

    fn build(src: &mut dyn Source) -> Result<Self> {
        let stem = conv_bn(src, "features.0", [STEM_OUT, 3, 3, 3])?;
        let mut blocks = Vec::with_capacity(BLOCKS.len());
        for (i, cfg) in BLOCKS.iter().enumerate() {
            let p = format!("features.{}.block", i + 1);
            let mut j = 0;
            let expand = if cfg.expanded != cfg.inp {
                j += 1;
                Some(conv_bn(
                    src,
                    &format!("{p}.0"),
                    [cfg.expanded, cfg.inp, 1, 1],
                )?)
            } else {
                None
            };
            let mut dw = conv_bn(
                src,
                &format!("{p}.{j}"),
                [cfg.expanded, 1, cfg.kernel, cfg.kernel],
            )?;
            dw.w = transpose(&dw.w, cfg.expanded, cfg.kernel * cfg.kernel);
            j += 1;
            let se = if cfg.se {
                let sq = make_divisible(cfg.expanded / 4, 8);
                let q = format!("{p}.{j}");
                j += 1;
                Some(Se {
                    w1: src.tensor(
                        &format!("{q}.fc1.weight"),
                        &[sq, cfg.expanded, 1, 1],
                        Kind::Weight,
                    )?,
                    b1: src.tensor(&format!("{q}.fc1.bias"), &[sq], Kind::Bias)?,
                    w2: src.tensor(
                        &format!("{q}.fc2.weight"),
                        &[cfg.expanded, sq, 1, 1],
                        Kind::Weight,
                    )?,
                    b2: src.tensor(&format!("{q}.fc2.bias"), &[cfg.expanded], Kind::Bias)?,
                })
            } else {
                None
            };
            let project = conv_bn(src, &format!("{p}.{j}"), [cfg.out, cfg.expanded, 1, 1])?;
            blocks.push(Block {
                cfg: *cfg,
                act: if cfg.hardswish {
                    Act::Hardswish
                } else {
                    Act::Relu
                },
                expand,
                dw,
                se,
                project,
            });
        }
        let last = conv_bn(src, "features.12", [FEATURE_DIM, LAST_IN, 1, 1])?;
        Ok(Self { stem, blocks, last })
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        let conv = |c: &Conv| (c.w.len() + c.b.len()) * 4;
        let mut n = conv(&self.stem) + conv(&self.last);
        for b in &self.blocks {
            n += b.expand.as_ref().map_or(0, conv) + conv(&b.dw) + conv(&b.project);
            if let Some(se) = &b.se {
                n += (se.w1.len() + se.b1.len() + se.w2.len() + se.b2.len()) * 4;
            }
        }
        n
    }

    /// The pooled 576-d features of one channel-major `(3, 224, 224)` input.
    pub fn features(&self, input: &[f32], s: &mut Scratch, out: &mut [f32]) {
        assert_eq!(input.len(), 3 * CROP * CROP);
        assert_eq!(out.len(), FEATURE_DIM);
        // Stem: 3×3 stride 2, 3 → 16, Hardswish; from here on channels-last.
        conv::im2col(input, 3, CROP, CROP, 3, 2, &mut s.y, &mut s.col);
        let (mut h, mut w) = (conv::out_size(CROP, 3, 2), conv::out_size(CROP, 3, 2));
        conv::pointwise(
            &self.stem.w,
            &self.stem.b,
            27,
            &s.col,
            h * w,
            Act::Hardswish,
            None,
            &mut s.x,
        );

        for blk in &self.blocks {
            let c = blk.cfg;
            let n = h * w;
            let expanded: &[f32] = match &blk.expand {
                Some(e) => {
                    conv::pointwise(&e.w, &e.b, c.inp, &s.x, n, blk.act, None, &mut s.e);
                    &s.e
                }
                None => &s.x,
            };
            let (oh, ow) = conv::depthwise(
                expanded, c.expanded, h, w, &blk.dw.w, &blk.dw.b, c.kernel, c.stride, blk.act,
                &mut s.d,
            );
            let m = oh * ow;
            // Squeeze-and-excitation: rather than scaling the expanded
            // planes, scale the projection's input columns (fewer products).
            let proj: &[f32] = match &blk.se {
                Some(se) => {
                    let sq = se.b1.len();
                    s.pooled.resize(c.expanded, 0.0);
                    conv::channel_means(&s.d, m, c.expanded, &mut s.pooled, &mut s.sums);
                    s.sq.resize(sq, 0.0);
                    for (o, (row, &bias)) in
                        s.sq.iter_mut()
                            .zip(se.w1.chunks_exact(c.expanded).zip(&se.b1))
                    {
                        *o = (bias + dot(row, &s.pooled)).max(0.0);
                    }
                    for (o, (row, &bias)) in
                        s.pooled.iter_mut().zip(se.w2.chunks_exact(sq).zip(&se.b2))
                    {
                        *o = conv::hardsigmoid(bias + dot(row, &s.sq));
                    }
                    s.wp.clear();
                    for row in blk.project.w.chunks_exact(c.expanded) {
                        s.wp.extend(row.iter().zip(&s.pooled).map(|(&a, &g)| a * g));
                    }
                    &s.wp
                }
                None => &blk.project.w,
            };
            let residual = (c.stride == 1 && c.inp == c.out).then_some(&s.x[..n * c.inp]);
            conv::pointwise(
                proj,
                &blk.project.b,
                c.expanded,
                &s.d,
                m,
                Act::None,
                residual,
                &mut s.y,
            );
            std::mem::swap(&mut s.x, &mut s.y);
            (h, w) = (oh, ow);
        }

        let n = h * w;
        conv::pointwise(
            &self.last.w,
            &self.last.b,
            LAST_IN,
            &s.x,
            n,
            Act::Hardswish,
            None,
            &mut s.y,
        );
        conv::channel_means(&s.y, n, FEATURE_DIM, out, &mut s.sums);
    }
}

/// The `(cols, rows)` transpose of a row-major `(rows, cols)` matrix.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_gives_torchvision_squeeze_widths() {
        let got: Vec<usize> = [16, 96, 240, 120, 144, 288, 576]
            .iter()
            .map(|&e| make_divisible(e / 4, 8))
            .collect();
        assert_eq!(got, [8, 24, 64, 32, 40, 72, 144]);
        assert_eq!(make_divisible(3, 8), 8);
        assert_eq!(make_divisible(1000, 8), 1000);
    }

    #[test]
    fn batchnorm_folds_into_weight_and_bias() {
        // Two output channels of two weights each.
        let c = fold_bn(
            vec![1.0, 2.0, -1.0, 0.5],
            &[2.0, 1.0],
            &[0.5, -1.0],
            &[1.0, 0.0],
            &[3.999, 0.249],
        );
        // s = γ / sqrt(var + 0.001) = 1 and 2.
        assert_eq!(c.w, vec![1.0, 2.0, -2.0, 1.0]);
        assert_eq!(c.b, vec![-0.5, -1.0]);
        // conv+BN of an input equals the folded conv.
        let x = [0.3f32, -0.7];
        let raw = 1.0 * x[0] + 2.0 * x[1];
        let bn = (raw - 1.0) * 2.0 / (3.999f32 + 0.001).sqrt() + 0.5;
        let folded = c.w[0] * x[0] + c.w[1] * x[1] + c.b[0];
        assert!((bn - folded).abs() < 1e-6);
    }

    #[test]
    fn untrained_weights_are_fixed_and_features_finite() {
        let a = MobileNetV3Small::untrained();
        let b = MobileNetV3Small::untrained();
        assert_eq!(a.stem.w, b.stem.w);
        // The first draws of the generator are pinned: they define the
        // untrained weights on every machine.
        let mut g = Untrained(UNTRAINED_SEED);
        let first: Vec<f32> = (0..3).map(|_| g.symmetric()).collect();
        assert!(first.iter().all(|v| (-1.0..1.0).contains(v)));
        let raw = first[0] * (6.0f32 / 27.0).sqrt();
        // Folded with the identity BatchNorm: divided by sqrt(1 + eps).
        assert_eq!(a.stem.w[0], (f64::from(raw) / 1.001f64.sqrt()) as f32);
        let input: Vec<f32> = (0..3 * CROP * CROP)
            .map(|i| ((i % 97) as f32 - 48.0) / 30.0)
            .collect();
        let mut out = vec![0.0; FEATURE_DIM];
        a.features(&input, &mut Scratch::default(), &mut out);
        assert!(out.iter().all(|v| v.is_finite()));
        assert!(out.iter().any(|&v| v != 0.0));
    }
}
