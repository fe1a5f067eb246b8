//! The BERT-family encoder forward pass (post-LayerNorm, learned positions,
//! exact GELU), written for inference on CPU. Three families share it:
//!
//! * **BERT** — positions from 0, token type 0 added to every token;
//! * **XLM-RoBERTa** — the same layers, positions counted from
//!   `pad_token_id + 1` (a padding token takes position `pad_token_id`),
//!   its single token type added to every token;
//! * **MPNet** — positions as RoBERTa with padding index 1, no token types,
//!   and a relative position bias (T5-style log buckets of the key−query
//!   distance, one learned value per bucket and head) added to the scaled
//!   attention scores of every layer; the bias depends only on the distance,
//!   so one table per chunk serves every sequence and layer;
//! * **NomicBert** — no position table: rotary position embeddings turn
//!   each query and key pair `(x_i, x_{i+d/2})` of a head by the angle
//!   `position · base^(−2i/d)`; a fused query/key/value projection, a SwiGLU
//!   MLP (`fc2(fc11(x) · silu(fc12(x)))`), biases only where the config
//!   says, post-LayerNorm as BERT. Positions count from 0 in each sequence.
//!
//! Sentences are *packed*, not padded: the token rows of every sentence in a
//! chunk are stacked into one `(tokens, hidden)` matrix, so the dense layers
//! run as a few large GEMMs with no work spent on padding, and attention runs
//! per sentence and head on its own rows. Because nothing attends across
//! sentences and no padding exists, the result equals the padded, masked
//! computation of the reference implementation up to float rounding.

use ruvector_py_core::interrupt::Cancel;

use crate::error::{Error, Result};

use crate::config::{Arch, BertConfig, Pooling};

/// Query rows per block of attention scores: a sequence longer than this is
/// attended in row blocks, so the score buffer stays at most
/// `ATTN_ROWS × max_positions` (shorter sequences take one block, as before).
const ATTN_ROWS: usize = 512;
use crate::safetensors::SafeTensors;

struct Layer {
    /// Query, key and value weights stacked: `(3·hidden, hidden)`, row-major
    /// as stored by PyTorch (`out × in`).
    wqkv: Vec<f32>,
    bqkv: Vec<f32>,
    wo: Vec<f32>,
    bo: Vec<f32>,
    ln1: (Vec<f32>, Vec<f32>),
    wi: Vec<f32>,
    bi: Vec<f32>,
    wo2: Vec<f32>,
    bo2: Vec<f32>,
    ln2: (Vec<f32>, Vec<f32>),
}

/// Weights of a BERT-family encoder (BERT, XLM-RoBERTa, MPNet).
pub struct Bert {
    cfg: BertConfig,
    word: Vec<f32>,
    pos: Vec<f32>,
    /// Token type embeddings (empty for MPNet, which has none).
    typ: Vec<f32>,
    ln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    /// MPNet's relative attention bias, `(buckets, heads)` (empty otherwise).
    rel: Vec<f32>,
    /// NomicBert's rotary inverse frequencies, `head_dim / 2` of them
    /// (empty otherwise).
    rope_inv: Vec<f32>,
}

/// NomicBert's rotary inverse frequencies `1 / base^(2i/d)`, computed in
/// float32 step by step as the reference does.
fn rope_inv_freq(base: f32, d: usize) -> Vec<f32> {
    (0..d / 2)
        .map(|i| 1.0f32 / base.powf((2 * i) as f32 / d as f32))
        .collect()
}

/// Rotates the `head_dim`-wide vector `x` by the angles of one position
/// (`cos`, `sin`: `head_dim / 2` values): the pair `(x_i, x_{i+d/2})`
/// becomes `(x_i·cos − x_{i+d/2}·sin, x_{i+d/2}·cos + x_i·sin)`.
fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    let (a, b) = x.split_at_mut(half);
    for (((a, b), &c), &s) in a.iter_mut().zip(b.iter_mut()).zip(cos).zip(sin) {
        let (x1, x2) = (*a, *b);
        *a = x1 * c + -x2 * s;
        *b = x2 * c + x1 * s;
    }
}

/// SiLU-gated product of one row of the fused SwiGLU projection:
/// `row = [up (n) | gate (n)]` becomes `up · silu(gate)` in its first `n`
/// values.
fn swiglu_rows(inter: &mut [f32], rows: usize, n: usize) {
    // Row r's result goes to r·n.., read from r·2n..: writes never pass
    // the reads still to come (in row order, each row left to right).
    for r in 0..rows {
        for j in 0..n {
            let up = inter[r * 2 * n + j];
            let g = inter[r * 2 * n + n + j];
            inter[r * n + j] = g / (1.0 + (-g).exp()) * up;
        }
    }
}

/// Names of a layer's attention tensors (without `.weight` / `.bias`):
/// query, key, value, output projection, LayerNorm.
fn attention_names(arch: Arch) -> [&'static str; 5] {
    match arch {
        Arch::Bert | Arch::XlmRoberta => [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
        ],
        // Unused: NomicBert's fused projection has its own loader.
        Arch::NomicBert => [
            "attn.Wqkv",
            "attn.Wqkv",
            "attn.Wqkv",
            "attn.out_proj",
            "norm1",
        ],
        Arch::MpNet => [
            "attention.attn.q",
            "attention.attn.k",
            "attention.attn.v",
            "attention.attn.o",
            "attention.LayerNorm",
        ],
    }
}

/// Number of relative position classes MPNet uses (transformers passes 32
/// whatever `relative_attention_num_buckets` says).
const REL_BUCKETS: usize = 32;
/// Distance from which every relative position shares the last log bucket.
const REL_MAX_DISTANCE: f32 = 128.0;

/// MPNet's bucket of the relative position `rel = key − query`: one half of
/// the buckets per direction, exact distances below 8, logarithmic classes
/// up to [`REL_MAX_DISTANCE`]. The logarithm is taken in float32, as the
/// reference does, so the class boundaries fall where its do.
fn relative_bucket(rel: i64) -> usize {
    let half = REL_BUCKETS / 2;
    let n = -rel;
    let mut ret = if n < 0 { half } else { 0 };
    let n = n.unsigned_abs() as usize;
    let max_exact = half / 2;
    if n < max_exact {
        ret += n;
    } else {
        let scale = (f64::from(REL_MAX_DISTANCE) / max_exact as f64).ln() as f32;
        let v = ((n as f32 / max_exact as f32).ln() / scale * (half - max_exact) as f32) as usize;
        ret += (max_exact + v).min(half - 1);
    }
    ret
}

/// Scratch buffers reused across the layers of one chunk.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    inter: Vec<f32>,
    scores: Vec<f32>,
}

/// `y = x · Wᵀ + b` for `x` of shape `(t, k)`, `W` of shape `(n, k)`.
pub(crate) fn linear(x: &[f32], t: usize, k: usize, w: &[f32], n: usize, b: &[f32], y: &mut [f32]) {
    debug_assert!(b.len() == n);
    for row in y[..t * n].chunks_exact_mut(n) {
        row.copy_from_slice(b);
    }
    crate::gemm::gemm_acc(x, t, k, w, n, y);
}

/// In-place LayerNorm of each `width`-wide row of `x`.
fn layer_norm(x: &mut [f32], width: usize, (g, b): &(Vec<f32>, Vec<f32>), eps: f32) {
    for row in x.chunks_exact_mut(width) {
        let n = width as f64;
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = row
            .iter()
            .map(|&v| {
                let d = f64::from(v) - mean;
                d * d
            })
            .sum::<f64>()
            / n;
        let inv = 1.0 / (var + f64::from(eps)).sqrt();
        for ((v, &g), &b) in row.iter_mut().zip(g).zip(b) {
            *v = ((f64::from(*v) - mean) * inv) as f32 * g + b;
        }
    }
}

/// erf(z) from the piecewise polynomial of [`crate::erf_table`] (fit error
/// below 1e-11 on [0, 6); beyond, erf is 1 in double precision). Branch-light
/// and about ten times faster than a libm call, which matters: the GELU of
/// the intermediate layer evaluates erf for 1536 values per token and layer.
#[cfg(test)]
fn erf(z: f64) -> f64 {
    use crate::erf_table::{ERF_COEF, ERF_INTERVALS, ERF_LIMIT, ERF_SCALE};
    let a = z.abs();
    let r = if a >= ERF_LIMIT {
        1.0
    } else {
        let idx = ((a * ERF_SCALE) as usize).min(ERF_INTERVALS - 1);
        let t = (a - (idx as f64 + 0.5) / ERF_SCALE) * (2.0 * ERF_SCALE);
        let c = &ERF_COEF[idx];
        let mut y = c[6];
        for k in (0..6).rev() {
            // Not mul_add: without a target FMA that is a slow libm call.
            y = y * t + c[k];
        }
        y
    };
    r.copysign(z)
}

/// Exact (erf-based) GELU, as `hidden_act = "gelu"` means in BERT configs:
/// `0.5·x·(1 + erf(x/√2))`, erf from the piecewise polynomial of
/// [`crate::erf_table`]. Eight lanes at a time with AVX2+FMA where the CPU
/// has them (the GELU of the intermediate layer would otherwise cost a
/// quarter of the forward pass), scalar double precision elsewhere.
fn gelu(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            let done = x.len() / 8 * 8;
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { gelu_avx2(&mut x[..done]) };
            gelu_scalar(&mut x[done..]);
            return;
        }
    }
    gelu_scalar(x);
}

fn gelu_scalar(x: &mut [f32]) {
    use crate::erf_table::{ERF_COEF, ERF_INTERVALS, ERF_LIMIT, ERF_SCALE};
    const INV_SQRT2: f64 = std::f64::consts::FRAC_1_SQRT_2;
    for v in x {
        let f = f64::from(*v);
        let z = f * INV_SQRT2;
        let a = z.abs();
        let e = if a >= ERF_LIMIT {
            1.0
        } else {
            let idx = ((a * ERF_SCALE) as usize).min(ERF_INTERVALS - 1);
            let t = (a - (idx as f64 + 0.5) / ERF_SCALE) * (2.0 * ERF_SCALE);
            let c = &ERF_COEF[idx];
            let mut y = c[6];
            for k in (0..6).rev() {
                y = y * t + c[k];
            }
            y
        };
        *v = (0.5 * f * (1.0 + e.copysign(z))) as f32;
    }
}

/// The erf coefficients as f32, one row per power: `[power][interval]`.
#[cfg(target_arch = "x86_64")]
fn erf_coef_f32() -> &'static [[f32; crate::erf_table::ERF_INTERVALS]; 7] {
    use crate::erf_table::{ERF_COEF, ERF_INTERVALS};
    static TABLE: std::sync::OnceLock<[[f32; ERF_INTERVALS]; 7]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[0.0f32; ERF_INTERVALS]; 7];
        for (i, row) in ERF_COEF.iter().enumerate() {
            for (k, &c) in row.iter().enumerate() {
                t[k][i] = c as f32;
            }
        }
        t
    })
}

/// # Safety
/// The CPU must support AVX2 and FMA; `x.len()` must be a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(x: &mut [f32]) {
    use crate::erf_table::{ERF_LIMIT, ERF_SCALE};
    use std::arch::x86_64::*;
    let coef = erf_coef_f32();
    let sign = _mm256_set1_ps(-0.0);
    let inv_sqrt2 = _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2);
    let limit = _mm256_set1_ps(ERF_LIMIT as f32);
    let below_limit = _mm256_set1_ps(ERF_LIMIT as f32 * (1.0 - f32::EPSILON));
    let scale = _mm256_set1_ps(ERF_SCALE as f32);
    let one = _mm256_set1_ps(1.0);
    let two = _mm256_set1_ps(2.0);
    let half = _mm256_set1_ps(0.5);
    for chunk in x.chunks_exact_mut(8) {
        let p = chunk.as_mut_ptr();
        let v = _mm256_loadu_ps(p);
        let z = _mm256_mul_ps(v, inv_sqrt2);
        let za = _mm256_andnot_ps(sign, z);
        let a = _mm256_min_ps(za, below_limit);
        let f = _mm256_mul_ps(a, scale);
        let idx = _mm256_cvttps_epi32(f);
        // t = 2·(a·scale − idx − 0.5) ∈ [−1, 1]
        let t = _mm256_sub_ps(
            _mm256_mul_ps(two, _mm256_sub_ps(f, _mm256_cvtepi32_ps(idx))),
            one,
        );
        let mut y = _mm256_i32gather_ps::<4>(coef[6].as_ptr(), idx);
        for k in (0..6).rev() {
            y = _mm256_fmadd_ps(y, t, _mm256_i32gather_ps::<4>(coef[k].as_ptr(), idx));
        }
        let big = _mm256_cmp_ps::<_CMP_GE_OQ>(za, limit);
        let e = _mm256_blendv_ps(y, one, big);
        let e = _mm256_or_ps(e, _mm256_and_ps(z, sign));
        let out = _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e));
        _mm256_storeu_ps(p, out);
    }
}

fn softmax_rows(s: &mut [f32], width: usize) {
    for row in s.chunks_exact_mut(width) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

impl Bert {
    /// The tensor-name prefix of a checkpoint: `""` or the model's own
    /// (`"bert."` …).
    fn prefix(st: &SafeTensors, arch: Arch) -> Result<&'static str> {
        let models: &[&'static str] = match arch {
            Arch::Bert => &["bert."],
            Arch::XlmRoberta => &["roberta."],
            Arch::MpNet => &["mpnet."],
            Arch::NomicBert => &["bert.", "nomic_bert."],
        };
        if st.contains("embeddings.word_embeddings.weight") {
            return Ok("");
        }
        for &model in models {
            if st.contains(&format!("{model}embeddings.word_embeddings.weight")) {
                return Ok(model);
            }
        }
        let mut some: Vec<&str> = st.names().take(5).collect();
        some.sort_unstable();
        Err(Error::Embed(format!(
            "the checkpoint has no embeddings.word_embeddings.weight tensor, so it is not \
             a {} encoder (some of its tensors: {})",
            arch.name(),
            some.join(", ")
        )))
    }

    /// Checks that the checkpoint holds every tensor `cfg` describes, with
    /// the right shape and a supported dtype, and no extra encoder layer,
    /// without converting anything.
    pub fn check(st: &SafeTensors, cfg: &BertConfig) -> Result<()> {
        let prefix = Self::prefix(st, cfg.arch)?;
        for (name, shape) in Self::tensor_shapes(cfg) {
            st.check(&format!("{prefix}{name}"), &shape)?;
        }
        let next_layer = match cfg.arch {
            Arch::NomicBert => format!("{prefix}encoder.layers.{}.attn.Wqkv.weight", cfg.layers),
            _ => format!(
                "{prefix}encoder.layer.{}.{}.weight",
                cfg.layers,
                attention_names(cfg.arch)[0]
            ),
        };
        if st.contains(&next_layer) {
            return Err(Error::Embed(format!(
                "the checkpoint has more encoder layers than num_hidden_layers = {} in config.json",
                cfg.layers
            )));
        }
        Ok(())
    }

    /// Reads the encoder from a checkpoint, checking every tensor's shape
    /// against `cfg` (all of them before any is converted) and every value
    /// to be finite. Tensor names may carry a `bert.` prefix.
    pub fn load(st: &SafeTensors, cfg: &BertConfig) -> Result<Self> {
        Self::check(st, cfg)?;
        if cfg.arch == Arch::NomicBert {
            return Self::load_nomic(st, cfg);
        }
        let prefix = Self::prefix(st, cfg.arch)?;
        let (h, i) = (cfg.hidden, cfg.intermediate);
        let [nq, nk, nv, no, nln] = attention_names(cfg.arch);
        let get = |name: &str, shape: &[usize]| st.f32(&format!("{prefix}{name}"), shape);
        let ln = |name: &str| -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((
                get(&format!("{name}.weight"), &[h])?,
                get(&format!("{name}.bias"), &[h])?,
            ))
        };
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("encoder.layer.{l}");
            let mut wqkv = Vec::with_capacity(3 * h * h);
            let mut bqkv = Vec::with_capacity(3 * h);
            for part in [nq, nk, nv] {
                wqkv.extend(get(&format!("{p}.{part}.weight"), &[h, h])?);
                bqkv.extend(get(&format!("{p}.{part}.bias"), &[h])?);
            }
            layers.push(Layer {
                wqkv,
                bqkv,
                wo: get(&format!("{p}.{no}.weight"), &[h, h])?,
                bo: get(&format!("{p}.{no}.bias"), &[h])?,
                ln1: ln(&format!("{p}.{nln}"))?,
                wi: get(&format!("{p}.intermediate.dense.weight"), &[i, h])?,
                bi: get(&format!("{p}.intermediate.dense.bias"), &[i])?,
                wo2: get(&format!("{p}.output.dense.weight"), &[h, i])?,
                bo2: get(&format!("{p}.output.dense.bias"), &[h])?,
                ln2: ln(&format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            word: get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            pos: get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_positions, h],
            )?,
            typ: if cfg.type_vocab > 0 {
                get(
                    "embeddings.token_type_embeddings.weight",
                    &[cfg.type_vocab, h],
                )?
            } else {
                Vec::new()
            },
            ln: ln("embeddings.LayerNorm")?,
            layers,
            rel: if cfg.rel_buckets > 0 {
                get(
                    "encoder.relative_attention_bias.weight",
                    &[cfg.rel_buckets, cfg.heads],
                )?
            } else {
                Vec::new()
            },
            rope_inv: Vec::new(),
            cfg: cfg.clone(),
        })
    }

    /// [`Bert::load`] for NomicBert: nomic's tensor names (which
    /// transformers also writes), absent biases as zeros, the two SwiGLU
    /// input projections stacked `[fc11; fc12]`.
    fn load_nomic(st: &SafeTensors, cfg: &BertConfig) -> Result<Self> {
        let prefix = Self::prefix(st, cfg.arch)?;
        let nomic = cfg.nomic.as_ref().ok_or_else(|| {
            Error::Embed("internal error: a NomicBert config without its settings".into())
        })?;
        let (h, i) = (cfg.hidden, cfg.intermediate);
        let get = |name: &str, shape: &[usize]| st.f32(&format!("{prefix}{name}"), shape);
        let bias = |present: bool, name: &str, n: usize| -> Result<Vec<f32>> {
            if present {
                get(name, &[n])
            } else {
                Ok(vec![0.0; n])
            }
        };
        let ln = |name: &str| -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((
                get(&format!("{name}.weight"), &[h])?,
                get(&format!("{name}.bias"), &[h])?,
            ))
        };
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("encoder.layers.{l}");
            let mut wi = get(&format!("{p}.mlp.fc11.weight"), &[i, h])?;
            wi.extend(get(&format!("{p}.mlp.fc12.weight"), &[i, h])?);
            let mut bi = bias(nomic.fc1_bias, &format!("{p}.mlp.fc11.bias"), i)?;
            bi.extend(bias(nomic.fc1_bias, &format!("{p}.mlp.fc12.bias"), i)?);
            layers.push(Layer {
                wqkv: get(&format!("{p}.attn.Wqkv.weight"), &[3 * h, h])?,
                bqkv: bias(nomic.qkv_bias, &format!("{p}.attn.Wqkv.bias"), 3 * h)?,
                wo: get(&format!("{p}.attn.out_proj.weight"), &[h, h])?,
                bo: bias(nomic.qkv_bias, &format!("{p}.attn.out_proj.bias"), h)?,
                ln1: ln(&format!("{p}.norm1"))?,
                wi,
                bi,
                wo2: get(&format!("{p}.mlp.fc2.weight"), &[h, i])?,
                bo2: bias(nomic.fc2_bias, &format!("{p}.mlp.fc2.bias"), h)?,
                ln2: ln(&format!("{p}.norm2"))?,
            });
        }
        Ok(Bert {
            word: get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            pos: Vec::new(),
            typ: get(
                "embeddings.token_type_embeddings.weight",
                &[cfg.type_vocab, h],
            )?,
            ln: ln("emb_ln")?,
            layers,
            rel: Vec::new(),
            rope_inv: rope_inv_freq(nomic.rotary_base, h / cfg.heads),
            cfg: cfg.clone(),
        })
    }

    /// [`Bert::tensor_shapes`] for NomicBert.
    fn nomic_tensor_shapes(cfg: &BertConfig) -> Vec<(String, Vec<usize>)> {
        let (h, i) = (cfg.hidden, cfg.intermediate);
        let (qkv_bias, fc1_bias, fc2_bias) =
            cfg.nomic.as_ref().map_or((false, false, false), |n| {
                (n.qkv_bias, n.fc1_bias, n.fc2_bias)
            });
        let mut out: Vec<(String, Vec<usize>)> = vec![
            (
                "embeddings.word_embeddings.weight".into(),
                vec![cfg.vocab_size, h],
            ),
            (
                "embeddings.token_type_embeddings.weight".into(),
                vec![cfg.type_vocab, h],
            ),
            ("emb_ln.weight".into(), vec![h]),
            ("emb_ln.bias".into(), vec![h]),
        ];
        for l in 0..cfg.layers {
            let p = format!("encoder.layers.{l}");
            out.push((format!("{p}.attn.Wqkv.weight"), vec![3 * h, h]));
            out.push((format!("{p}.attn.out_proj.weight"), vec![h, h]));
            if qkv_bias {
                out.push((format!("{p}.attn.Wqkv.bias"), vec![3 * h]));
                out.push((format!("{p}.attn.out_proj.bias"), vec![h]));
            }
            for fc in ["fc11", "fc12"] {
                out.push((format!("{p}.mlp.{fc}.weight"), vec![i, h]));
                if fc1_bias {
                    out.push((format!("{p}.mlp.{fc}.bias"), vec![i]));
                }
            }
            out.push((format!("{p}.mlp.fc2.weight"), vec![h, i]));
            if fc2_bias {
                out.push((format!("{p}.mlp.fc2.bias"), vec![h]));
            }
            for ln in ["norm1", "norm2"] {
                out.push((format!("{p}.{ln}.weight"), vec![h]));
                out.push((format!("{p}.{ln}.bias"), vec![h]));
            }
        }
        out
    }

    /// Names (without the `bert.` prefix) and shapes of every tensor the
    /// encoder reads.
    fn tensor_shapes(cfg: &BertConfig) -> Vec<(String, Vec<usize>)> {
        if cfg.arch == Arch::NomicBert {
            return Self::nomic_tensor_shapes(cfg);
        }
        let (h, i) = (cfg.hidden, cfg.intermediate);
        let [nq, nk, nv, no, nln] = attention_names(cfg.arch);
        let mut out: Vec<(String, Vec<usize>)> = vec![
            (
                "embeddings.word_embeddings.weight".into(),
                vec![cfg.vocab_size, h],
            ),
            (
                "embeddings.position_embeddings.weight".into(),
                vec![cfg.max_positions, h],
            ),
            ("embeddings.LayerNorm.weight".into(), vec![h]),
            ("embeddings.LayerNorm.bias".into(), vec![h]),
        ];
        if cfg.type_vocab > 0 {
            out.push((
                "embeddings.token_type_embeddings.weight".into(),
                vec![cfg.type_vocab, h],
            ));
        }
        if cfg.rel_buckets > 0 {
            out.push((
                "encoder.relative_attention_bias.weight".into(),
                vec![cfg.rel_buckets, cfg.heads],
            ));
        }
        for l in 0..cfg.layers {
            let p = format!("encoder.layer.{l}");
            for part in [nq, nk, nv] {
                out.push((format!("{p}.{part}.weight"), vec![h, h]));
                out.push((format!("{p}.{part}.bias"), vec![h]));
            }
            out.push((format!("{p}.{no}.weight"), vec![h, h]));
            out.push((format!("{p}.{no}.bias"), vec![h]));
            out.push((format!("{p}.intermediate.dense.weight"), vec![i, h]));
            out.push((format!("{p}.intermediate.dense.bias"), vec![i]));
            out.push((format!("{p}.output.dense.weight"), vec![h, i]));
            out.push((format!("{p}.output.dense.bias"), vec![h]));
            for ln in [nln, "output.LayerNorm"] {
                out.push((format!("{p}.{ln}.weight"), vec![h]));
                out.push((format!("{p}.{ln}.bias"), vec![h]));
            }
        }
        out
    }

    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        let l: usize = self
            .layers
            .iter()
            .map(|l| {
                l.wqkv.len()
                    + l.bqkv.len()
                    + l.wo.len()
                    + l.bo.len()
                    + 2 * l.ln1.0.len()
                    + l.wi.len()
                    + l.bi.len()
                    + l.wo2.len()
                    + l.bo2.len()
                    + 2 * l.ln2.0.len()
            })
            .sum();
        4 * (l
            + self.word.len()
            + self.pos.len()
            + self.typ.len()
            + self.rel.len()
            + self.rope_inv.len()
            + 2 * self.ln.0.len())
    }

    /// Embeds each token sequence of `seqs` (ids including `[CLS]`/`[SEP]`,
    /// each at most `max_positions` long and non-empty) and writes one
    /// pooled, optionally L2-normalised row per sequence into `out`.
    /// `cancel` is checked before each layer.
    pub fn embed_chunk(
        &self,
        seqs: &[&[u32]],
        pooling: Pooling,
        normalize: bool,
        out: &mut [f32],
        cancel: &Cancel,
    ) -> Result<()> {
        self.embed_chunk_rows(seqs, pooling, normalize, out, cancel, ATTN_ROWS)
    }

    /// [`Bert::embed_chunk`] with `attn_rows` query rows per attention block.
    fn embed_chunk_rows(
        &self,
        seqs: &[&[u32]],
        pooling: Pooling,
        normalize: bool,
        out: &mut [f32],
        cancel: &Cancel,
        attn_rows: usize,
    ) -> Result<()> {
        let c = &self.cfg;
        let (h, inter, heads) = (c.hidden, c.intermediate, c.heads);
        let d = h / heads;
        if out.len() != seqs.len() * h {
            return Err(Error::Embed(format!(
                "internal error: {} output values for {} sequences of width {h}",
                out.len(),
                seqs.len()
            )));
        }
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if longest > c.max_tokens() || seqs.iter().any(|s| s.is_empty()) {
            return Err(Error::Embed(format!(
                "token sequences must hold 1 to {} tokens, got one of {longest}",
                c.max_tokens()
            )));
        }
        let mut s = Scratch {
            x: vec![0.0; total * h],
            qkv: vec![0.0; total * 3 * h],
            ctx: vec![0.0; total * h],
            tmp: vec![0.0; total * h],
            // NomicBert's SwiGLU projects to twice the intermediate width.
            inter: vec![0.0; total * inter * if self.rope_inv.is_empty() { 1 } else { 2 }],
            scores: vec![0.0; longest.min(attn_rows) * longest],
        };

        // MPNet: the bias of every head for each key−query distance
        // −(longest−1)..=longest−1, `rel_bias[head · width + (j − i + longest − 1)]`.
        let width = 2 * longest - 1;
        let mut rel_bias = Vec::new();
        if !self.rel.is_empty() {
            rel_bias = vec![0.0f32; heads * width];
            for k in 0..width {
                let bucket = relative_bucket(k as i64 - (longest as i64 - 1));
                for head in 0..heads {
                    rel_bias[head * width + k] = self.rel[bucket * heads + head];
                }
            }
        }

        // NomicBert: cos and sin of every position's angles,
        // `rope[p · half + i]` for position p and pair i (float32 angles,
        // as the reference computes them).
        let half = self.rope_inv.len();
        let (mut rope_cos, mut rope_sin) = (Vec::new(), Vec::new());
        if half > 0 {
            rope_cos.reserve(longest * half);
            rope_sin.reserve(longest * half);
            for p in 0..longest {
                for &f in &self.rope_inv {
                    let angle = f64::from(p as f32 * f);
                    rope_cos.push(angle.cos() as f32);
                    rope_sin.push(angle.sin() as f32);
                }
            }
        }

        // Embeddings: word + token type 0 (if any) + position (if the model
        // has a table), then LayerNorm.
        let mut row = 0;
        for seq in seqs {
            // RoBERTa-style position ids: padding tokens sit at pad_id, the
            // others count up from pad_id + 1.
            let mut seen = 0usize;
            for (p, &id) in seq.iter().enumerate() {
                let p = match c.arch {
                    Arch::Bert | Arch::NomicBert => p,
                    Arch::XlmRoberta | Arch::MpNet => {
                        if id as usize == c.pad_id {
                            c.pad_id
                        } else {
                            seen += 1;
                            c.pad_id + seen
                        }
                    }
                };
                let id = id as usize;
                if id >= c.vocab_size {
                    return Err(Error::Embed(format!(
                        "token id {id} is outside the model's vocabulary of {} entries: \
                         the tokenizer does not belong to this checkpoint",
                        c.vocab_size
                    )));
                }
                let dst = &mut s.x[row * h..(row + 1) * h];
                let w = &self.word[id * h..(id + 1) * h];
                if self.pos.is_empty() {
                    let t = &self.typ[..h];
                    for j in 0..h {
                        dst[j] = w[j] + t[j];
                    }
                    row += 1;
                    continue;
                }
                let ps = &self.pos[p * h..(p + 1) * h];
                if self.typ.is_empty() {
                    for j in 0..h {
                        dst[j] = w[j] + ps[j];
                    }
                } else {
                    let t = &self.typ[..h];
                    for j in 0..h {
                        dst[j] = w[j] + t[j] + ps[j];
                    }
                }
                row += 1;
            }
        }
        layer_norm(&mut s.x, h, &self.ln, c.layer_norm_eps);

        let scale = 1.0 / (d as f32).sqrt();
        for layer in &self.layers {
            cancel.check()?;
            linear(&s.x, total, h, &layer.wqkv, 3 * h, &layer.bqkv, &mut s.qkv);
            if half > 0 {
                // Rotary embeddings on the query and key of every head,
                // positions counted from 0 in each sequence.
                let mut off = 0;
                for seq in seqs {
                    for p in 0..seq.len() {
                        let (cos, sin) = (
                            &rope_cos[p * half..(p + 1) * half],
                            &rope_sin[p * half..(p + 1) * half],
                        );
                        let row = &mut s.qkv[(off + p) * 3 * h..(off + p + 1) * 3 * h];
                        for x in row[..2 * h].chunks_exact_mut(d) {
                            rotate(x, cos, sin);
                        }
                    }
                    off += seq.len();
                }
            }
            let mut off = 0;
            for seq in seqs {
                let l = seq.len();
                for head in 0..heads {
                    let base = off * 3 * h + head * d;
                    let mut r0 = 0;
                    while r0 < l {
                        let rows = (l - r0).min(attn_rows);
                        let scores = &mut s.scores[..rows * l];
                        // SAFETY: rows off..off+l of qkv (stride 3h) hold the
                        // query, key and value columns base.., base+h..,
                        // base+2h.. of width d; the query block is rows
                        // r0..r0+rows of them; scores is rows×l; ctx rows
                        // off+r0.. (stride h) columns head·d.. of width d.
                        unsafe {
                            let q = s.qkv.as_ptr().add(base + r0 * 3 * h);
                            let k = s.qkv.as_ptr().add(base + h);
                            let v = s.qkv.as_ptr().add(base + 2 * h);
                            matrixmultiply::sgemm(
                                rows,
                                d,
                                l,
                                scale,
                                q,
                                (3 * h) as isize,
                                1,
                                k,
                                1,
                                (3 * h) as isize,
                                0.0,
                                scores.as_mut_ptr(),
                                l as isize,
                                1,
                            );
                            if !rel_bias.is_empty() {
                                let bias = &rel_bias[head * width..(head + 1) * width];
                                for (r, srow) in scores.chunks_exact_mut(l).enumerate() {
                                    // Distance j − i for i = r0 + r: index
                                    // j − i + longest − 1.
                                    let start = longest - 1 - (r0 + r);
                                    for (v, &b) in srow.iter_mut().zip(&bias[start..start + l]) {
                                        *v += b;
                                    }
                                }
                            }
                            softmax_rows(scores, l);
                            matrixmultiply::sgemm(
                                rows,
                                l,
                                d,
                                1.0,
                                scores.as_ptr(),
                                l as isize,
                                1,
                                v,
                                (3 * h) as isize,
                                1,
                                0.0,
                                s.ctx.as_mut_ptr().add((off + r0) * h + head * d),
                                h as isize,
                                1,
                            );
                        }
                        r0 += rows;
                    }
                }
                off += l;
            }
            linear(&s.ctx, total, h, &layer.wo, h, &layer.bo, &mut s.tmp);
            for (x, t) in s.x.iter_mut().zip(&s.tmp) {
                *x += *t;
            }
            layer_norm(&mut s.x, h, &layer.ln1, c.layer_norm_eps);
            if half > 0 {
                linear(
                    &s.x,
                    total,
                    h,
                    &layer.wi,
                    2 * inter,
                    &layer.bi,
                    &mut s.inter,
                );
                swiglu_rows(&mut s.inter, total, inter);
            } else {
                linear(&s.x, total, h, &layer.wi, inter, &layer.bi, &mut s.inter);
                gelu(&mut s.inter[..total * inter]);
            }
            linear(
                &s.inter, total, inter, &layer.wo2, h, &layer.bo2, &mut s.tmp,
            );
            for (x, t) in s.x.iter_mut().zip(&s.tmp) {
                *x += *t;
            }
            layer_norm(&mut s.x, h, &layer.ln2, c.layer_norm_eps);
        }

        let mut off = 0;
        for (seq, dst) in seqs.iter().zip(out.chunks_exact_mut(h)) {
            let l = seq.len();
            let rows = &s.x[off * h..(off + l) * h];
            match pooling {
                Pooling::Cls => dst.copy_from_slice(&rows[..h]),
                // Sequences are unpadded and already truncated: the last
                // row is the last token the model saw.
                Pooling::LastToken => dst.copy_from_slice(&rows[(l - 1) * h..]),
                Pooling::Mean => {
                    let mut acc = vec![0.0f64; h];
                    for r in rows.chunks_exact(h) {
                        for (a, &v) in acc.iter_mut().zip(r) {
                            *a += f64::from(v);
                        }
                    }
                    for (o, a) in dst.iter_mut().zip(acc) {
                        *o = (a / l as f64) as f32;
                    }
                }
            }
            if normalize {
                l2_normalize(dst);
            }
            off += l;
        }
        Ok(())
    }
}

/// Scales `row` to unit L2 norm (a zero row stays zero), as
/// sentence-transformers' `Normalize` module does.
pub(crate) fn l2_normalize(row: &mut [f32]) {
    let norm = row
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    let inv = 1.0 / norm.max(1e-12);
    for v in row.iter_mut() {
        *v = (f64::from(*v) * inv) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_naive() {
        let (t, k, n) = (3, 4, 2);
        let x: Vec<f32> = (0..t * k).map(|i| i as f32 * 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|i| 1.0 - i as f32 * 0.25).collect();
        let b = vec![0.5, -1.0];
        let mut y = vec![0.0; t * n];
        linear(&x, t, k, &w, n, &b, &mut y);
        for r in 0..t {
            for c in 0..n {
                let want: f32 = b[c] + (0..k).map(|j| x[r * k + j] * w[c * k + j]).sum::<f32>();
                assert!((y[r * n + c] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn gelu_and_softmax() {
        let mut v = [0.0f32, 1.0, -1.0];
        gelu(&mut v);
        assert_eq!(v[0], 0.0);
        assert!((v[1] - 0.841_344_7).abs() < 1e-6);
        assert!((v[2] + 0.158_655_3).abs() < 1e-6);
        let mut s = [1.0f32, 2.0, 3.0, 0.0];
        softmax_rows(&mut s, 2);
        assert!((s[0] + s[1] - 1.0).abs() < 1e-6 && s[1] > s[0]);
        assert!((s[2] - 0.952_574_1).abs() < 1e-6);
    }

    #[test]
    fn erf_table_is_accurate() {
        let mut worst = 0.0f64;
        for i in -80_000..=80_000 {
            let z = f64::from(i) * 1e-4;
            worst = worst.max((erf(z) - libm::erf(z)).abs());
        }
        assert!(worst < 1e-9, "max |erf error| = {worst:e}");
        assert!(erf(0.0).abs() < 1e-11);
        assert_eq!(erf(9.0), 1.0);
        assert_eq!(erf(-9.0), -1.0);
    }

    #[test]
    fn gelu_matches_erf_definition() {
        let mut v: Vec<f32> = (-1000..=1000).map(|i| i as f32 * 0.011).collect();
        let want: Vec<f32> = v
            .iter()
            .map(|&x| {
                let f = f64::from(x);
                (0.5 * f * (1.0 + libm::erf(f * std::f64::consts::FRAC_1_SQRT_2))) as f32
            })
            .collect();
        let mut scalar = v.clone();
        gelu_scalar(&mut scalar);
        gelu(&mut v);
        for ((g, s), w) in v.iter().zip(&scalar).zip(&want) {
            assert!((g - w).abs() <= 4e-7 * w.abs().max(1.0), "{g} vs {w}");
            assert!((s - w).abs() <= 1e-7 * w.abs().max(1.0), "{s} vs {w}");
        }
    }

    /// A small encoder with deterministic pseudo-random weights.
    fn tiny(max_positions: usize) -> Bert {
        let (h, i, v) = (8, 16, 10);
        let mut seed = 1u32;
        let mut w = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect()
        };
        let ln = (vec![1.0; h], vec![0.0; h]);
        Bert {
            cfg: BertConfig {
                arch: Arch::Bert,
                pad_id: 0,
                rel_buckets: 0,
                vocab_size: v,
                hidden: h,
                layers: 1,
                heads: 2,
                intermediate: i,
                max_positions,
                type_vocab: 2,
                layer_norm_eps: 1e-12,
                nomic: None,
            },
            word: w(v * h),
            pos: w(max_positions * h),
            typ: w(2 * h),
            ln: ln.clone(),
            layers: vec![Layer {
                wqkv: w(3 * h * h),
                bqkv: w(3 * h),
                wo: w(h * h),
                bo: w(h),
                ln1: ln.clone(),
                wi: w(i * h),
                bi: w(i),
                wo2: w(h * i),
                bo2: w(h),
                ln2: ln,
            }],
            rel: Vec::new(),
            rope_inv: Vec::new(),
        }
    }

    #[test]
    fn attention_in_row_blocks_equals_one_block() {
        let bert = tiny(1300);
        let long: Vec<u32> = (0..1300u32).map(|t| t * 7 % 10).collect();
        let short: Vec<u32> = (0..37u32).map(|t| t % 10).collect();
        let seqs: Vec<&[u32]> = vec![&long, &short];
        let cancel = Cancel::new();
        let mut blocked = vec![0.0; 16];
        let mut whole = vec![0.0; 16];
        bert.embed_chunk_rows(&seqs, Pooling::Mean, true, &mut blocked, &cancel, 512)
            .unwrap();
        bert.embed_chunk_rows(&seqs, Pooling::Mean, true, &mut whole, &cancel, 4096)
            .unwrap();
        for (a, b) in blocked.iter().zip(&whole) {
            assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
        }
        // A cancelled call stops at the first layer.
        assert!(cancel.cancel());
        assert_eq!(
            bert.embed_chunk(&seqs, Pooling::Mean, true, &mut blocked, &cancel),
            Err(Error::Base(ruvector_py_core::Error::Interrupted))
        );
        // Sequences longer than the position table are refused.
        let too_long: Vec<u32> = vec![1; 1301];
        let e = bert
            .embed_chunk(
                &[&too_long],
                Pooling::Cls,
                true,
                &mut [0.0; 8],
                &Cancel::new(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("1 to 1300 tokens"), "{e}");
    }

    #[test]
    fn mpnet_relative_buckets() {
        // rel = key − query: keys before the query take buckets 0..16,
        // keys after it 16..32; exact below 8, log classes up to 128.
        let cases = [
            (0, 0),
            (-1, 1),
            (1, 17),
            (-7, 7),
            (-8, 8),
            (-15, 9),
            (-16, 10),
            (-31, 11),
            (-32, 12),
            (-64, 14),
            (-127, 15),
            (-128, 15),
            (-5000, 15),
            (16, 26),
            (5000, 31),
        ];
        for (rel, want) in cases {
            assert_eq!(relative_bucket(rel), want, "rel {rel}");
        }
    }

    #[test]
    fn rotary_turns_pairs_of_halves() {
        // Frequencies 1 / base^(2i/d): 1, base^(-1/2) for d = 4.
        let inv = rope_inv_freq(100.0, 4);
        assert_eq!(inv, vec![1.0, 0.1]);
        // Position 0 leaves the vector alone; a quarter turn maps
        // (x_i, x_{i+d/2}) to (-x_{i+d/2}, x_i).
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        rotate(&mut x, &[1.0, 1.0], &[0.0, 0.0]);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
        rotate(&mut x, &[0.0, 1.0], &[1.0, 0.0]);
        assert_eq!(x, [-3.0, 2.0, 1.0, 4.0]);
        // Rotations keep the norm.
        let mut y = [0.3f32, -1.2, 0.7, 2.0];
        let (c, s) = (0.6f32.cos(), 0.6f32.sin());
        rotate(&mut y, &[c, 1.0], &[s, 0.0]);
        let norm: f32 = y.iter().map(|v| v * v).sum();
        assert!((norm - (0.09 + 1.44 + 0.49 + 4.0)).abs() < 1e-5);
    }

    #[test]
    fn swiglu_gates_the_linear_half() {
        // Two rows of [up | gate], n = 2.
        let mut v = vec![2.0f32, -1.0, 0.0, 3.0, 1.0, 1.0, -2.0, 100.0];
        swiglu_rows(&mut v, 2, 2);
        let silu = |g: f32| g / (1.0 + (-g).exp());
        let want = [2.0 * silu(0.0), -silu(3.0), silu(-2.0), silu(100.0)];
        for (g, w) in v[..4].iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
        assert_eq!(v[0], 0.0);
        assert!((v[3] - 100.0).abs() < 1e-4);
    }

    #[test]
    fn layer_norm_centres_and_scales() {
        let mut x = vec![1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut x, 4, &(vec![1.0; 4], vec![0.0; 4]), 1e-12);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
    }
}
