//! The model description read from a sentence-transformers folder:
//! `config.json` (the BERT encoder), `sentence_bert_config.json` (sequence
//! length, lower-casing), `modules.json` + `1_Pooling/config.json` (pooling),
//! the `Dense` modules after the pooling and whether a `Normalize` module
//! follows.

use serde_json::Value;

use crate::error::{Error, FromBase, Result};

use crate::files::ModelDir;

/// How token embeddings become one sentence embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the attended tokens (special tokens included).
    Mean,
    /// The first token (`[CLS]`).
    Cls,
    /// The last token of each text (after truncation: the end-of-text
    /// token the tokenizer appends), as decoder-style embedders use.
    LastToken,
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::LastToken => "lasttoken",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            "lasttoken" => Ok(Pooling::LastToken),
            other => Err(Error::invalid(format!(
                "pooling must be \"mean\", \"cls\" or \"lasttoken\", got {other:?}"
            ))),
        }
    }
}

/// The encoder family, from `model_type` in `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// BERT: absolute positions from 0, token type embeddings.
    Bert,
    /// XLM-RoBERTa: BERT layers, positions counted from `pad_token_id + 1`,
    /// one token type. Also RoBERTa (`model_type` `"roberta"`): the same
    /// network and tensor names, only the vocabulary differs (byte-level BPE
    /// instead of SentencePiece), and that lives in `tokenizer.json`.
    XlmRoberta,
    /// MPNet: positions counted from 2 (padding index 1), no token types,
    /// a relative position bias shared by every layer.
    MpNet,
    /// NomicBert (nomic-embed-text): rotary position embeddings instead of
    /// a position table, a fused query/key/value projection, a SwiGLU MLP,
    /// biases optional, post-LayerNorm.
    NomicBert,
}

/// The `model_type` values accepted, in the order error messages list them.
pub const MODEL_TYPES: [&str; 5] = ["bert", "roberta", "xlm-roberta", "mpnet", "nomic_bert"];

impl Arch {
    /// The `model_type` of `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Bert => "bert",
            Arch::XlmRoberta => "xlm-roberta",
            Arch::MpNet => "mpnet",
            Arch::NomicBert => "nomic_bert",
        }
    }
}

/// What NomicBert adds to the shared encoder shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NomicConfig {
    /// Base of the rotary frequencies (`rotary_emb_base`; 1000 in
    /// nomic-embed-text).
    pub rotary_base: f32,
    /// Whether the fused query/key/value projection has a bias.
    pub qkv_bias: bool,
    /// Whether the two SwiGLU input projections have biases.
    pub fc1_bias: bool,
    /// Whether the SwiGLU output projection has a bias.
    pub fc2_bias: bool,
}

/// Shape of a BERT-family encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    pub arch: Arch,
    /// Padding token id: positions of RoBERTa-style models start after it.
    pub pad_id: usize,
    /// Rows of MPNet's relative attention bias table (0 for other models).
    pub rel_buckets: usize,
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f32,
    /// NomicBert's rotary and bias settings (`None` for other families).
    pub nomic: Option<NomicConfig>,
}

/// The activation after a `Dense` module's linear map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Tanh,
}

/// The activation classes accepted in a `Dense` config (sentence-transformers
/// writes the full class path; the default, when absent, is `Tanh`).
const ACTIVATIONS: [(&str, Activation); 4] = [
    ("torch.nn.modules.activation.Tanh", Activation::Tanh),
    ("torch.nn.modules.linear.Identity", Activation::Identity),
    ("torch.nn.Tanh", Activation::Tanh),
    ("torch.nn.Identity", Activation::Identity),
];

/// One sentence-transformers `Dense` module: `y = act(W x + b)` on the
/// pooled embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseConfig {
    /// The module folder inside the model folder (`""`: the folder itself).
    pub path: String,
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
    pub activation: Activation,
}

/// Everything needed to run the model the way sentence-transformers does.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub bert: BertConfig,
    pub max_seq_length: usize,
    pub do_lower_case: bool,
    pub pooling: Pooling,
    /// The `Dense` modules after the pooling, in `modules.json` order.
    pub dense: Vec<DenseConfig>,
    pub normalize: bool,
}

/// Defaults used where the folder has no sentence-transformers files.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: Option<usize>,
}

/// Ranges accepted for the sizes of `config.json`. Real BERT encoders sit far
/// inside them (MiniLM: 30522 / 384 / 6 / 12 / 1536 / 512 / 2); the bounds
/// keep every size product and every scratch buffer of the forward pass
/// within reach of a 64-bit `usize` and of memory.
pub mod limits {
    pub const VOCAB: (u64, u64) = (1, 1 << 20);
    pub const HIDDEN: (u64, u64) = (1, 4096);
    pub const LAYERS: (u64, u64) = (1, 128);
    pub const HEADS: (u64, u64) = (1, 256);
    pub const INTERMEDIATE: (u64, u64) = (1, 16384);
    /// The intermediate layer may be at most this many times the hidden one
    /// (BERT uses 4).
    pub const INTERMEDIATE_PER_HIDDEN: u64 = 16;
    pub const POSITIONS: (u64, u64) = (2, 8192);
    pub const TYPE_VOCAB: (u64, u64) = (1, 1024);
    /// Width of a `Dense` module's output.
    pub const DENSE_FEATURES: (u64, u64) = (1, 16384);
    /// `Dense` modules in one model.
    pub const DENSE_MODULES: usize = 16;
    /// `layer_norm_eps` must lie in `(0, EPS_MAX]` (and stay above 0 as f32).
    pub const EPS_MAX: f64 = 1.0;
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None => "nothing (the key is missing)".to_string(),
        Some(x) => {
            let mut s = x.to_string();
            if s.len() > 80 {
                let mut cut = 77;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                s.push_str("...");
            }
            s
        }
    }
}

/// The integer `key` of `v` in `lo..=hi`; `default` when the key is absent
/// (or null) and a default exists.
fn int_field(
    v: &Value,
    key: &str,
    file: &str,
    (lo, hi): (u64, u64),
    default: Option<u64>,
) -> Result<usize> {
    let raw = v.get(key).filter(|x| !x.is_null());
    let n = match (raw, default) {
        (None, Some(d)) => d,
        _ => raw.and_then(Value::as_u64).ok_or_else(|| {
            Error::Embed(format!(
                "{file}: {key} must be an integer between {lo} and {hi}, got {}",
                shown(raw)
            ))
        })?,
    };
    if n < lo || n > hi {
        return Err(Error::Embed(format!(
            "{file}: {key} must be an integer between {lo} and {hi}, got {n}"
        )));
    }
    usize::try_from(n).map_err(|_| {
        Error::Embed(format!(
            "{file}: {key} = {n} does not fit this machine's address space"
        ))
    })
}

/// The string `key` of `v` if present (not null), which must be one of
/// `allowed`; `why` explains the choice in the error.
fn choice_field(v: &Value, key: &str, file: &str, allowed: &[&str], why: &str) -> Result<()> {
    let Some(raw) = v.get(key).filter(|x| !x.is_null()) else {
        return Ok(());
    };
    match raw.as_str() {
        Some(s) if allowed.contains(&s) => Ok(()),
        _ => {
            let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            Err(Error::Embed(format!(
                "{file}: {key} must be {}, got {}{why}",
                if list.len() == 1 {
                    list[0].clone()
                } else {
                    format!("one of {}", list.join(", "))
                },
                shown(Some(raw))
            )))
        }
    }
}

/// The boolean `key` of `v`, `default` when absent or null.
fn bool_field(v: &Value, key: &str, file: &str, default: bool) -> Result<bool> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::Embed(format!(
            "{file}: {key} must be true or false, got {}",
            shown(Some(other))
        ))),
    }
}

impl BertConfig {
    pub fn from_json(v: &Value, file: &str) -> Result<Self> {
        if !v.is_object() {
            return Err(Error::Embed(format!(
                "{file} must hold a JSON object, got {}",
                shown(Some(v))
            )));
        }
        choice_field(
            v,
            "model_type",
            file,
            &MODEL_TYPES,
            "; these are the encoder families this embedder runs",
        )?;
        let arch = match v.get("model_type").and_then(Value::as_str) {
            Some("xlm-roberta" | "roberta") => Arch::XlmRoberta,
            Some("mpnet") => Arch::MpNet,
            Some("nomic_bert") => return nomic_from_json(v, file),
            _ => Arch::Bert,
        };
        choice_field(
            v,
            "hidden_act",
            file,
            &["gelu"],
            "; only exact (erf-based) GELU is supported",
        )?;
        choice_field(
            v,
            "position_embedding_type",
            file,
            &["absolute"],
            "; only absolute position embeddings are supported",
        )?;
        let hidden = int_field(v, "hidden_size", file, limits::HIDDEN, None)?;
        let vocab_size = int_field(v, "vocab_size", file, limits::VOCAB, None)?;
        let pad_id = match arch {
            Arch::Bert | Arch::NomicBert => 0,
            // MPNet's embeddings fix the padding index at 1 whatever the config says.
            Arch::MpNet => 1,
            Arch::XlmRoberta => {
                int_field(v, "pad_token_id", file, (0, vocab_size as u64 - 1), Some(1))?
            }
        };
        let rel_buckets = match arch {
            // transformers buckets relative positions into 32 classes
            // whatever the table size, so the table needs at least 32 rows.
            Arch::MpNet => int_field(
                v,
                "relative_attention_num_buckets",
                file,
                (32, 1024),
                Some(32),
            )?,
            _ => 0,
        };
        let c = BertConfig {
            arch,
            pad_id,
            rel_buckets,
            vocab_size,
            hidden,
            layers: int_field(v, "num_hidden_layers", file, limits::LAYERS, None)?,
            heads: int_field(v, "num_attention_heads", file, limits::HEADS, None)?,
            intermediate: int_field(
                v,
                "intermediate_size",
                file,
                (
                    limits::INTERMEDIATE.0,
                    limits::INTERMEDIATE
                        .1
                        .min(limits::INTERMEDIATE_PER_HIDDEN * hidden as u64),
                ),
                None,
            )?,
            max_positions: int_field(v, "max_position_embeddings", file, limits::POSITIONS, None)?,
            // transformers' default when the key is absent.
            type_vocab: match arch {
                Arch::MpNet => 0,
                _ => int_field(v, "type_vocab_size", file, limits::TYPE_VOCAB, Some(2))?,
            },
            layer_norm_eps: eps_field(v, "layer_norm_eps", file)?,
            nomic: None,
        };
        if c.max_positions <= c.position_offset() + 1 {
            return Err(Error::Embed(format!(
                "{file}: max_position_embeddings {} leaves no room for a token after the \
                 position offset {} of a {} model",
                c.max_positions,
                c.position_offset(),
                arch.name()
            )));
        }
        if !c.hidden.is_multiple_of(c.heads) {
            return Err(Error::Embed(format!(
                "{file}: hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden, c.heads
            )));
        }
        Ok(c)
    }
}

/// The key of `v` that holds a NomicBert setting: nomic's own name
/// (`nomic`, as nomic-embed-text's `config.json` spells it) or
/// transformers' (`hf`, as transformers writes it). Both may appear only
/// with the same value. Absent (or null) under both names: `nomic`, so
/// that a "missing" error names the key the real model uses.
fn alias_key<'a>(v: &Value, nomic: &'a str, hf: &'a str, file: &str) -> Result<&'a str> {
    let get = |k: &str| v.get(k).filter(|x| !x.is_null());
    match (get(nomic), get(hf)) {
        (Some(a), Some(b)) if a != b => Err(Error::Embed(format!(
            "{file}: {nomic} = {} and {hf} = {} disagree; they name the same setting",
            shown(Some(a)),
            shown(Some(b))
        ))),
        (None, Some(_)) => Ok(hf),
        _ => Ok(nomic),
    }
}

/// A boolean that must hold `want` (or be absent): the NomicBert variants
/// this embedder does not run (`why` says what the other value would mean).
fn fixed_bool(v: &Value, key: &str, file: &str, want: bool, why: &str) -> Result<()> {
    if bool_field(v, key, file, want)? != want {
        return Err(Error::Embed(format!(
            "{file}: {key} must be {want}, got {}{why}",
            !want
        )));
    }
    Ok(())
}

/// Bounds of the rotary base (nomic-embed-text uses 1000, LLMs 1e4 to 1e6).
pub const ROTARY_BASE: (f64, f64) = (1.0, 1e9);

/// NomicBert's `config.json`, in nomic's keys (`n_embd`, `n_head`,
/// `n_layer`, `n_inner`, `n_positions`, `layer_norm_epsilon`,
/// `rotary_emb_base`, `activation_function`) or transformers' (`hidden_size`
/// …, `rope_parameters`, `hidden_act`).
fn nomic_from_json(v: &Value, file: &str) -> Result<BertConfig> {
    // nomic's name for the MLP, and transformers' for its gate activation.
    choice_field(
        v,
        "activation_function",
        file,
        &["swiglu"],
        "; NomicBert runs a SwiGLU MLP",
    )?;
    choice_field(
        v,
        "hidden_act",
        file,
        &["silu"],
        "; NomicBert's MLP is gated by SiLU",
    )?;
    fixed_bool(
        v,
        "prenorm",
        file,
        false,
        " (pre-LayerNorm blocks are not supported)",
    )?;
    fixed_bool(
        v,
        "causal",
        file,
        false,
        " (an embedding encoder attends both ways)",
    )?;
    fixed_bool(
        v,
        "use_rms_norm",
        file,
        false,
        " (RMSNorm is not supported)",
    )?;
    fixed_bool(
        v,
        "parallel_block",
        file,
        false,
        " (parallel blocks are not supported)",
    )?;
    fixed_bool(
        v,
        "rotary_emb_interleaved",
        file,
        false,
        " (interleaved rotary pairs are not supported; nomic-embed-text rotates halves)",
    )?;
    if let Some(f) = v.get("rotary_emb_fraction").filter(|x| !x.is_null()) {
        if f.as_f64() != Some(1.0) {
            return Err(Error::Embed(format!(
                "{file}: rotary_emb_fraction must be 1.0 (rotary embeddings on every head \
                 dimension), got {}",
                shown(Some(f))
            )));
        }
    }
    if let Some(f) = v.get("rotary_scaling_factor").filter(|x| !x.is_null()) {
        return Err(Error::Embed(format!(
            "{file}: rotary_scaling_factor must be null (dynamic NTK rotary scaling is not \
             supported), got {}",
            shown(Some(f))
        )));
    }
    // The rotary base: nomic's rotary_emb_base or transformers' rope_parameters.
    let mut base = v.get("rotary_emb_base").filter(|x| !x.is_null()).cloned();
    if let Some(rp) = v.get("rope_parameters").filter(|x| !x.is_null()) {
        let obj = rp.as_object().ok_or_else(|| {
            Error::Embed(format!(
                "{file}: rope_parameters must be an object, got {}",
                shown(Some(rp))
            ))
        })?;
        choice_field(
            rp,
            "rope_type",
            file,
            &["default"],
            " in rope_parameters; scaled rotary embeddings are not supported",
        )?;
        if let Some(t) = obj.get("rope_theta").filter(|x| !x.is_null()) {
            match &base {
                Some(b) if b.as_f64() != t.as_f64() => {
                    return Err(Error::Embed(format!(
                        "{file}: rotary_emb_base = {} and rope_parameters.rope_theta = {} \
                         disagree; they name the same setting",
                        shown(Some(b)),
                        shown(Some(t))
                    )))
                }
                _ => base = Some(t.clone()),
            }
        }
    }
    let rotary_base = match &base {
        // transformers' default_theta for NomicBert, and nomic's default.
        None => 1000.0,
        Some(b) => match b.as_f64() {
            Some(x) if x.is_finite() && x > ROTARY_BASE.0 && x <= ROTARY_BASE.1 => x as f32,
            _ => {
                return Err(Error::Embed(format!(
                    "{file}: rotary_emb_base must be a number in ({}, {:e}], got {}",
                    ROTARY_BASE.0,
                    ROTARY_BASE.1,
                    shown(Some(b))
                )))
            }
        },
    };

    let key = |nomic: &'static str, hf: &'static str| alias_key(v, nomic, hf, file);
    let hidden = int_field(v, key("n_embd", "hidden_size")?, file, limits::HIDDEN, None)?;
    let heads = int_field(
        v,
        key("n_head", "num_attention_heads")?,
        file,
        limits::HEADS,
        None,
    )?;
    let inter_key = key("n_inner", "intermediate_size")?;
    let intermediate = if v.get(inter_key).is_some_and(|x| !x.is_null()) {
        int_field(
            v,
            inter_key,
            file,
            (
                limits::INTERMEDIATE.0,
                limits::INTERMEDIATE
                    .1
                    .min(limits::INTERMEDIATE_PER_HIDDEN * hidden as u64),
            ),
            None,
        )?
    } else {
        // nomic's default: four times the width.
        4 * hidden
    };
    let c = BertConfig {
        arch: Arch::NomicBert,
        pad_id: 0,
        rel_buckets: 0,
        vocab_size: int_field(v, "vocab_size", file, limits::VOCAB, None)?,
        hidden,
        layers: int_field(
            v,
            key("n_layer", "num_hidden_layers")?,
            file,
            limits::LAYERS,
            None,
        )?,
        heads,
        intermediate,
        max_positions: int_field(
            v,
            key("n_positions", "max_position_embeddings")?,
            file,
            limits::POSITIONS,
            None,
        )?,
        type_vocab: int_field(v, "type_vocab_size", file, limits::TYPE_VOCAB, Some(2))?,
        layer_norm_eps: eps_field(v, key("layer_norm_epsilon", "layer_norm_eps")?, file)?,
        nomic: Some(NomicConfig {
            rotary_base,
            qkv_bias: bool_field(v, "qkv_proj_bias", file, false)?,
            fc1_bias: bool_field(v, "mlp_fc1_bias", file, false)?,
            fc2_bias: bool_field(v, "mlp_fc2_bias", file, false)?,
        }),
    };
    if !c.hidden.is_multiple_of(c.heads) {
        return Err(Error::Embed(format!(
            "{file}: the width {} is not a multiple of the {} attention heads",
            c.hidden, c.heads
        )));
    }
    let d = c.hidden / c.heads;
    if !d.is_multiple_of(2) {
        return Err(Error::Embed(format!(
            "{file}: the head width {} ({} / {} heads) must be even: rotary embeddings rotate \
             pairs of dimensions",
            d, c.hidden, c.heads
        )));
    }
    if let Some(hd) = v.get("head_dim").filter(|x| !x.is_null()) {
        if hd.as_u64() != Some(d as u64) {
            return Err(Error::Embed(format!(
                "{file}: head_dim must be {d} (the width over the heads), got {}",
                shown(Some(hd))
            )));
        }
    }
    Ok(c)
}

impl BertConfig {
    /// The position id of the first token: 0 for BERT, `pad_id + 1` for
    /// RoBERTa-style models.
    pub fn position_offset(&self) -> usize {
        match self.arch {
            Arch::Bert | Arch::NomicBert => 0,
            Arch::XlmRoberta | Arch::MpNet => self.pad_id + 1,
        }
    }

    /// The longest token sequence the position table covers.
    pub fn max_tokens(&self) -> usize {
        self.max_positions - self.position_offset()
    }
}

/// `layer_norm_eps` (or nomic's `layer_norm_epsilon`: `key`): finite, in
/// `(0, 1]`, and still above 0 as f32 (transformers' default 1e-12 when
/// absent).
fn eps_field(v: &Value, key: &str, file: &str) -> Result<f32> {
    let raw = v.get(key).filter(|x| !x.is_null());
    let eps = match raw {
        None => return Ok(1e-12),
        Some(x) => x.as_f64(),
    };
    match eps {
        Some(e) if e.is_finite() && e > 0.0 && e <= limits::EPS_MAX && (e as f32) > 0.0 => {
            Ok(e as f32)
        }
        _ => Err(Error::Embed(format!(
            "{file}: {key} must be a number in (0, {}] (a positive float32), got {}",
            limits::EPS_MAX,
            shown(raw)
        ))),
    }
}

/// A module path of `modules.json`: relative, inside the model folder.
fn module_path<'a>(path: &'a str, file: &str) -> Result<&'a str> {
    let bad = path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path.contains(':')
        || path.split('/').any(|part| part == "..");
    if bad {
        return Err(Error::Embed(format!(
            "{file}: module path {path:?} must be a relative path inside the model folder"
        )));
    }
    Ok(path.trim_end_matches('/'))
}

impl ModelConfig {
    /// Reads the configuration files of `dir`, falling back to `defaults`.
    pub fn load(dir: &ModelDir, defaults: Defaults) -> Result<Self> {
        let cfg_path = dir.path("config.json").display().to_string();
        let bert = BertConfig::from_json(&dir.read_json("config.json")?, &cfg_path)?;

        let st_path = dir.path("sentence_bert_config.json").display().to_string();
        let st = dir.read_json_opt("sentence_bert_config.json")?;
        let (st_max, do_lower_case) = match &st {
            None => (None, false),
            Some(v) => {
                if !v.is_object() {
                    return Err(Error::Embed(format!(
                        "{st_path} must hold a JSON object, got {}",
                        shown(Some(v))
                    )));
                }
                let max = match v.get("max_seq_length").filter(|x| !x.is_null()) {
                    None => None,
                    Some(_) => Some(int_field(
                        v,
                        "max_seq_length",
                        &st_path,
                        (2, u64::from(u32::MAX)),
                        None,
                    )?),
                };
                (max, bool_field(v, "do_lower_case", &st_path, false)?)
            }
        };
        let max_seq_length = st_max
            .or(defaults.max_seq_length)
            .or(tokenizer_max_length(dir)?)
            .unwrap_or(bert.max_tokens())
            .min(bert.max_tokens());
        if max_seq_length < 2 {
            return Err(Error::Embed(format!(
                "max_seq_length must leave room for [CLS] and [SEP], got {max_seq_length}"
            )));
        }

        let (mut pooling, mut normalize) = (defaults.pooling, defaults.normalize);
        let mut dense: Vec<DenseConfig> = Vec::new();
        if let Some(modules) = dir.read_json_opt("modules.json")? {
            let mpath = dir.path("modules.json").display().to_string();
            let list = modules.as_array().ok_or_else(|| {
                Error::Embed(format!(
                    "{mpath} must hold a JSON list of modules, got {}",
                    shown(Some(&modules))
                ))
            })?;
            let mut kinds: Vec<(String, String)> = Vec::with_capacity(list.len());
            for (i, m) in list.iter().enumerate() {
                let text = |key: &str| -> Result<String> {
                    match m.get(key) {
                        None | Some(Value::Null) => Ok(String::new()),
                        Some(Value::String(s)) => Ok(s.clone()),
                        Some(other) => Err(Error::Embed(format!(
                            "{mpath}: module {i}: {key} must be a string, got {}",
                            shown(Some(other))
                        ))),
                    }
                };
                if !m.is_object() {
                    return Err(Error::Embed(format!(
                        "{mpath}: module {i} must be a JSON object, got {}",
                        shown(Some(m))
                    )));
                }
                let path = text("path")?;
                let path = module_path(&path, &mpath)?.to_string();
                kinds.push((text("type")?, path));
            }
            normalize = kinds.iter().any(|(t, _)| t.ends_with(".Normalize"));
            // The order sentence-transformers runs them in: Transformer,
            // Pooling, any Dense modules, then Normalize.
            let (mut pooled, mut normalized) = (false, false);
            let mut width = bert.hidden;
            for (t, path) in &kinds {
                let short = t.rsplit('.').next().unwrap_or("");
                let config_rel = || {
                    if path.is_empty() {
                        "config.json".to_string()
                    } else {
                        format!("{path}/config.json")
                    }
                };
                match short {
                    "Transformer" => {}
                    "Normalize" => normalized = true,
                    "Pooling" => {
                        let rel = config_rel();
                        let p = dir.read_json(&rel)?;
                        let file = dir.path(&rel).display().to_string();
                        pooling = pooling_from_json(&p, &file)?;
                        pooled = true;
                        // Informational in sentence-transformers (the
                        // pooled width is the encoder's); checked for range.
                        for key in ["word_embedding_dimension", "embedding_dimension"] {
                            if p.get(key).is_some_and(|x| !x.is_null()) {
                                int_field(&p, key, &file, limits::HIDDEN, None)?;
                            }
                        }
                    }
                    "Dense" => {
                        if !pooled || normalized {
                            return Err(Error::Embed(format!(
                                "{mpath}: the Dense module {path:?} must come after the Pooling \
                                 module and before any Normalize module, got it {}",
                                if pooled {
                                    "after Normalize"
                                } else {
                                    "before Pooling"
                                }
                            )));
                        }
                        if dense.len() == limits::DENSE_MODULES {
                            return Err(Error::Embed(format!(
                                "{mpath}: at most {} Dense modules are supported, got more",
                                limits::DENSE_MODULES
                            )));
                        }
                        let rel = config_rel();
                        let file = dir.path(&rel).display().to_string();
                        let d = dense_from_json(&dir.read_json(&rel)?, &file, path, width)?;
                        width = d.out_features;
                        dense.push(d);
                    }
                    other => {
                        return Err(Error::Embed(format!(
                            "{mpath}: module {other:?} ({t}) is not supported; \
                             supported: Transformer, Pooling, Dense, Normalize"
                        )))
                    }
                }
            }
        }
        Ok(ModelConfig {
            bert,
            max_seq_length,
            do_lower_case,
            pooling,
            dense,
            normalize,
        })
    }
}

/// `model_max_length` of `tokenizer_config.json`, where sentence-transformers
/// 5 and later keep the sequence length they save (their
/// `sentence_bert_config.json` has none). Tokenizers without a limit write
/// a huge placeholder (about 1e30): anything that is not an integer of at
/// most [`u32::MAX`] counts as no limit.
fn tokenizer_max_length(dir: &ModelDir) -> Result<Option<usize>> {
    let Some(v) = dir.read_json_opt("tokenizer_config.json")? else {
        return Ok(None);
    };
    let n = v
        .get("model_max_length")
        .and_then(Value::as_u64)
        .filter(|&n| n <= u64::from(u32::MAX));
    match n {
        None => Ok(None),
        Some(n) if n >= 2 => Ok(usize::try_from(n).ok()),
        Some(n) => Err(Error::Embed(format!(
            "{}: model_max_length must leave room for the start and end tokens (at least 2), got {n}",
            dir.path("tokenizer_config.json").display()
        ))),
    }
}

/// A `Dense` module's `config.json`; `width` is the embedding width that
/// reaches it (the pooled width, or the previous Dense module's output).
fn dense_from_json(v: &Value, file: &str, path: &str, width: usize) -> Result<DenseConfig> {
    if !v.is_object() {
        return Err(Error::Embed(format!(
            "{file} must hold a JSON object, got {}",
            shown(Some(v))
        )));
    }
    let in_features = int_field(v, "in_features", file, limits::DENSE_FEATURES, None)?;
    if in_features != width {
        return Err(Error::Embed(format!(
            "{file}: in_features must be the width of the embedding that reaches this module \
             ({width}), got {in_features}"
        )));
    }
    let out_features = int_field(v, "out_features", file, limits::DENSE_FEATURES, None)?;
    let bias = bool_field(v, "bias", file, true)?;
    if bool_field(v, "use_residual", file, false)? {
        return Err(Error::Embed(format!(
            "{file}: use_residual must be false (residual Dense modules are not supported), got true"
        )));
    }
    for key in ["module_input_name", "module_output_name"] {
        choice_field(
            v,
            key,
            file,
            &["sentence_embedding"],
            " (only Dense modules on the sentence embedding are supported)",
        )?;
    }
    let activation = match v.get("activation_function").filter(|x| !x.is_null()) {
        None => Activation::Tanh,
        Some(raw) => {
            let found = raw
                .as_str()
                .and_then(|s| ACTIVATIONS.iter().find(|(name, _)| *name == s));
            match found {
                Some((_, a)) => *a,
                None => {
                    return Err(Error::Embed(format!(
                        "{file}: activation_function must be \"torch.nn.modules.activation.Tanh\" \
                         or \"torch.nn.modules.linear.Identity\", got {}",
                        shown(Some(raw))
                    )))
                }
            }
        }
    };
    Ok(DenseConfig {
        path: path.to_string(),
        in_features,
        out_features,
        bias,
        activation,
    })
}

fn pooling_from_json(v: &Value, file: &str) -> Result<Pooling> {
    if !v.is_object() {
        return Err(Error::Embed(format!(
            "{file} must hold a JSON object, got {}",
            shown(Some(v))
        )));
    }
    // `include_prompt: false` pools without the prompt's tokens; pooling them
    // anyway would give other vectors without a word, so it is refused.
    if !bool_field(v, "include_prompt", file, true)? {
        return Err(Error::Embed(format!(
            "{file}: include_prompt false (pooling without the prompt's tokens) is not supported; \
             expected true or absent, got false"
        )));
    }
    // sentence-transformers 5.2 and later write one `pooling_mode` (a name,
    // or a list of names whose outputs are concatenated); earlier releases
    // one boolean per mode.
    if let Some(raw) = v.get("pooling_mode").filter(|x| !x.is_null()) {
        let name = match raw {
            Value::String(s) => Some(s.as_str()),
            Value::Array(a) if a.len() == 1 => a[0].as_str(),
            _ => None,
        };
        return match name {
            Some("mean") => Ok(Pooling::Mean),
            Some("cls") => Ok(Pooling::Cls),
            Some("lasttoken") => Ok(Pooling::LastToken),
            _ => Err(Error::Embed(format!(
                "{file}: pooling_mode must be one of \"mean\", \"cls\", \"lasttoken\", got {}",
                shown(Some(raw))
            ))),
        };
    }
    let mut modes: Vec<&str> = Vec::new();
    for k in [
        "pooling_mode_cls_token",
        "pooling_mode_mean_tokens",
        "pooling_mode_max_tokens",
        "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens",
        "pooling_mode_lasttoken",
    ] {
        if bool_field(v, k, file, false)? {
            modes.push(k);
        }
    }
    match modes.as_slice() {
        ["pooling_mode_cls_token"] => Ok(Pooling::Cls),
        ["pooling_mode_mean_tokens"] => Ok(Pooling::Mean),
        ["pooling_mode_lasttoken"] => Ok(Pooling::LastToken),
        other => Err(Error::Embed(format!(
            "{file}: pooling {other:?} is not supported; supported: exactly one of \
             pooling_mode_mean_tokens, pooling_mode_cls_token, pooling_mode_lasttoken"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_modes() {
        let v: Value = serde_json::json!({"pooling_mode_cls_token": true});
        assert_eq!(pooling_from_json(&v, "f").unwrap(), Pooling::Cls);
        let v: Value =
            serde_json::json!({"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true});
        assert!(pooling_from_json(&v, "f").is_err());
    }

    #[test]
    fn pooling_mode_names_and_last_token() {
        for (v, want) in [
            (
                serde_json::json!({"pooling_mode": "lasttoken"}),
                Pooling::LastToken,
            ),
            (serde_json::json!({"pooling_mode": ["cls"]}), Pooling::Cls),
            (serde_json::json!({"pooling_mode": "mean"}), Pooling::Mean),
            (
                serde_json::json!({"pooling_mode_lasttoken": true}),
                Pooling::LastToken,
            ),
        ] {
            assert_eq!(pooling_from_json(&v, "f").unwrap(), want);
        }
        for v in [
            serde_json::json!({"pooling_mode": "max"}),
            serde_json::json!({"pooling_mode": ["mean", "cls"]}),
            serde_json::json!({"pooling_mode": []}),
        ] {
            assert!(pooling_from_json(&v, "f").is_err());
        }
        assert_eq!(Pooling::parse("lasttoken").unwrap().name(), "lasttoken");
    }

    #[test]
    fn include_prompt_false_is_refused_not_ignored() {
        let ok = serde_json::json!({"pooling_mode": "mean", "include_prompt": true});
        assert_eq!(pooling_from_json(&ok, "f").unwrap(), Pooling::Mean);
        let v = serde_json::json!({"pooling_mode": "mean", "include_prompt": false});
        let msg = pooling_from_json(&v, "f").unwrap_err().to_string();
        assert!(msg.contains("include_prompt false"), "{msg}");
        let v = serde_json::json!({"pooling_mode": "mean", "include_prompt": "no"});
        assert!(pooling_from_json(&v, "f").is_err());
    }

    #[test]
    fn dense_defaults_follow_sentence_transformers() {
        let v = serde_json::json!({"in_features": 8, "out_features": 4});
        let d = dense_from_json(&v, "f", "2_Dense", 8).unwrap();
        assert_eq!(
            (d.bias, d.activation, d.out_features),
            (true, Activation::Tanh, 4)
        );
        let v = serde_json::json!({"in_features": 8, "out_features": 4, "bias": false,
            "activation_function": "torch.nn.modules.linear.Identity"});
        let d = dense_from_json(&v, "f", "", 8).unwrap();
        assert_eq!((d.bias, d.activation), (false, Activation::Identity));
        let e = dense_from_json(&v, "f", "", 9).unwrap_err().to_string();
        assert!(e.contains("(9), got 8"), "{e}");
    }

    #[test]
    fn bert_config_checks() {
        let v = serde_json::json!({"model_type": "bert", "vocab_size": 10, "hidden_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 3, "intermediate_size": 16,
            "max_position_embeddings": 32});
        let e = BertConfig::from_json(&v, "c").unwrap_err().to_string();
        assert!(e.contains("not a multiple"), "{e}");
        let v = serde_json::json!({"model_type": "albert"});
        let e = BertConfig::from_json(&v, "c").unwrap_err().to_string();
        assert!(e.contains("got \"albert\""), "{e}");
        // RoBERTa is XLM-RoBERTa's network: positions after pad_token_id.
        let mut v = minilm();
        v["model_type"] = serde_json::json!("roberta");
        v["pad_token_id"] = serde_json::json!(1);
        v["max_position_embeddings"] = serde_json::json!(514);
        let c = BertConfig::from_json(&v, "c").unwrap();
        assert_eq!(
            (c.arch, c.pad_id, c.max_tokens()),
            (Arch::XlmRoberta, 1, 512)
        );
    }

    fn minilm() -> Value {
        serde_json::json!({"model_type": "bert", "vocab_size": 30522, "hidden_size": 384,
            "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
            "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
            "hidden_act": "gelu", "position_embedding_type": "absolute"})
    }

    fn with(key: &str, value: Value) -> std::result::Result<BertConfig, String> {
        let mut v = minilm();
        v[key] = value;
        BertConfig::from_json(&v, "cfg.json").map_err(|e| e.to_string())
    }

    #[test]
    fn minilm_config_is_accepted() {
        let c = BertConfig::from_json(&minilm(), "c").unwrap();
        assert_eq!(
            (c.vocab_size, c.hidden, c.layers, c.heads),
            (30522, 384, 6, 12)
        );
        assert_eq!(
            (c.intermediate, c.max_positions, c.type_vocab),
            (1536, 512, 2)
        );
        assert_eq!(c.layer_norm_eps, 1e-12f32);
        // Absent optional keys take transformers' defaults.
        let mut v = minilm();
        let o = v.as_object_mut().unwrap();
        o.remove("type_vocab_size");
        o.remove("layer_norm_eps");
        let c = BertConfig::from_json(&v, "c").unwrap();
        assert_eq!((c.type_vocab, c.layer_norm_eps), (2, 1e-12f32));
    }

    #[test]
    fn every_size_is_range_checked_naming_key_range_and_value() {
        let big = serde_json::json!(1u64 << 62);
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "vocab_size",
                serde_json::json!(0),
                "between 1 and 1048576, got 0",
            ),
            ("vocab_size", big.clone(), "got 4611686018427387904"),
            (
                "hidden_size",
                serde_json::json!(1_000_000),
                "between 1 and 4096",
            ),
            (
                "num_hidden_layers",
                serde_json::json!(0),
                "between 1 and 128, got 0",
            ),
            (
                "num_attention_heads",
                serde_json::json!(0),
                "between 1 and 256",
            ),
            (
                "num_attention_heads",
                serde_json::json!(7),
                "not a multiple",
            ),
            (
                "intermediate_size",
                serde_json::json!(10_000_000),
                "between 1 and 6144",
            ),
            (
                "max_position_embeddings",
                serde_json::json!(1),
                "between 2 and 8192",
            ),
            ("max_position_embeddings", serde_json::json!(-3), "got -3"),
            (
                "type_vocab_size",
                big,
                "between 1 and 1024, got 4611686018427387904",
            ),
            ("type_vocab_size", serde_json::json!(0), "got 0"),
            ("type_vocab_size", serde_json::json!("two"), "got \"two\""),
            ("type_vocab_size", serde_json::json!(2.5), "got 2.5"),
            (
                "layer_norm_eps",
                serde_json::json!(-1.0),
                "layer_norm_eps must be a number in (0, 1]",
            ),
            ("layer_norm_eps", serde_json::json!(0.0), "got 0.0"),
            ("layer_norm_eps", serde_json::json!(1e-50), "got 1e-50"),
            ("layer_norm_eps", serde_json::json!(5.0), "got 5.0"),
            (
                "layer_norm_eps",
                serde_json::json!("1e-12"),
                "got \"1e-12\"",
            ),
            (
                "hidden_act",
                serde_json::json!("relu"),
                "hidden_act must be \"gelu\", got \"relu\"",
            ),
            ("hidden_act", serde_json::json!(3), "got 3"),
            (
                "model_type",
                serde_json::json!(["bert"]),
                "model_type must be one of \"bert\", \"roberta\", \"xlm-roberta\", \"mpnet\"",
            ),
            (
                "position_embedding_type",
                serde_json::json!("relative_key"),
                "got \"relative_key\"",
            ),
        ];
        for (key, value, want) in cases {
            let e = with(key, value.clone()).expect_err(&format!("{key} = {value} was accepted"));
            assert!(e.contains("cfg.json"), "{e}");
            assert!(e.contains(key) || key == "num_attention_heads", "{e}");
            assert!(e.contains(want), "{key} = {value}: {e}");
        }
        let mut v = minilm();
        v.as_object_mut().unwrap().remove("hidden_size");
        let e = BertConfig::from_json(&v, "c").unwrap_err().to_string();
        assert!(e.contains("hidden_size") && e.contains("missing"), "{e}");
        assert!(BertConfig::from_json(&serde_json::json!([1, 2]), "c").is_err());
    }

    fn nomic_v15() -> Value {
        serde_json::json!({"model_type": "nomic_bert", "activation_function": "swiglu",
            "n_embd": 768, "n_head": 12, "n_inner": 3072, "n_layer": 12, "n_positions": 8192,
            "layer_norm_epsilon": 1e-12, "rotary_emb_base": 1000, "rotary_emb_fraction": 1.0,
            "rotary_emb_interleaved": false, "rotary_scaling_factor": null, "prenorm": false,
            "qkv_proj_bias": false, "mlp_fc1_bias": false, "mlp_fc2_bias": false,
            "type_vocab_size": 2, "vocab_size": 30528})
    }

    #[test]
    fn nomic_config_in_either_key_set() {
        let c = BertConfig::from_json(&nomic_v15(), "c").unwrap();
        assert_eq!(c.arch, Arch::NomicBert);
        assert_eq!(
            (c.hidden, c.heads, c.intermediate, c.layers, c.max_positions),
            (768, 12, 3072, 12, 8192)
        );
        assert_eq!(
            (c.max_tokens(), c.type_vocab, c.vocab_size),
            (8192, 2, 30528)
        );
        let n = c.nomic.clone().unwrap();
        assert_eq!(n.rotary_base, 1000.0);
        assert!(!n.qkv_bias && !n.fc1_bias && !n.fc2_bias);
        // transformers' keys for the same model.
        let hf = serde_json::json!({"model_type": "nomic_bert", "hidden_act": "silu",
            "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
            "num_hidden_layers": 12, "max_position_embeddings": 8192, "layer_norm_eps": 1e-12,
            "rope_parameters": {"rope_theta": 1000.0, "rope_type": "default"}, "head_dim": 64,
            "vocab_size": 30528});
        assert_eq!(BertConfig::from_json(&hf, "c").unwrap(), c);
        // Both key sets at once must agree.
        let mut both = nomic_v15();
        both["hidden_size"] = serde_json::json!(768);
        assert_eq!(BertConfig::from_json(&both, "c").unwrap(), c);
        both["hidden_size"] = serde_json::json!(512);
        let e = BertConfig::from_json(&both, "c").unwrap_err().to_string();
        assert!(
            e.contains("n_embd = 768 and hidden_size = 512 disagree"),
            "{e}"
        );
    }

    #[test]
    fn nomic_variants_not_run_are_refused() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "rotary_scaling_factor",
                serde_json::json!(2),
                "must be null",
            ),
            (
                "rotary_emb_interleaved",
                serde_json::json!(true),
                "must be false, got true",
            ),
            ("rotary_emb_fraction", serde_json::json!(0.5), "must be 1.0"),
            (
                "rotary_emb_base",
                serde_json::json!(0.5),
                "must be a number in (1, 1e9], got 0.5",
            ),
            ("rotary_emb_base", serde_json::json!(1e300), "got 1e+300"),
            (
                "activation_function",
                serde_json::json!("gelu"),
                "must be \"swiglu\"",
            ),
            ("prenorm", serde_json::json!(true), "must be false"),
            ("causal", serde_json::json!(true), "must be false"),
            ("use_rms_norm", serde_json::json!(true), "must be false"),
            (
                "qkv_proj_bias",
                serde_json::json!("yes"),
                "must be true or false",
            ),
            ("n_head", serde_json::json!(7), "not a multiple"),
            ("n_head", serde_json::json!(256), "head width 3"),
            (
                "n_positions",
                serde_json::json!(1u64 << 40),
                "between 2 and 8192",
            ),
            (
                "n_inner",
                serde_json::json!(1u64 << 40),
                "between 1 and 12288",
            ),
        ];
        for (key, value, want) in cases {
            let mut v = nomic_v15();
            v[key] = value.clone();
            let e = BertConfig::from_json(&v, "cfg.json")
                .expect_err(&format!("{key} = {value} was accepted"))
                .to_string();
            assert!(e.contains("cfg.json"), "{e}");
            assert!(e.contains(want), "{key} = {value}: {e}");
        }
    }

    #[test]
    fn module_paths_stay_inside_the_folder() {
        assert_eq!(module_path("1_Pooling/", "m").unwrap(), "1_Pooling");
        assert_eq!(module_path("", "m").unwrap(), "");
        for bad in ["../x", "/etc", "a/../../b", "c:\\x", "a\\..\\b"] {
            assert!(module_path(bad, "m").is_err(), "{bad}");
        }
    }

    #[test]
    fn pooling_flags_must_be_booleans() {
        let v = serde_json::json!({"pooling_mode_mean_tokens": "yes"});
        let e = pooling_from_json(&v, "p").unwrap_err().to_string();
        assert!(
            e.contains("pooling_mode_mean_tokens must be true or false, got \"yes\""),
            "{e}"
        );
    }
}
