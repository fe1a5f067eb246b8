//! The model description read from a sentence-transformers folder:
//! `config.json` (the BERT encoder), `sentence_bert_config.json` (sequence
//! length, lower-casing), `modules.json` + `1_Pooling/config.json` (pooling
//! and whether a `Normalize` module follows).

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
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            other => Err(Error::invalid(format!(
                "pooling must be \"mean\" or \"cls\", got {other:?}"
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
}

/// The `model_type` values accepted, in the order error messages list them.
pub const MODEL_TYPES: [&str; 4] = ["bert", "roberta", "xlm-roberta", "mpnet"];

impl Arch {
    /// The `model_type` of `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Bert => "bert",
            Arch::XlmRoberta => "xlm-roberta",
            Arch::MpNet => "mpnet",
        }
    }
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
}

/// Everything needed to run the model the way sentence-transformers does.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub bert: BertConfig,
    pub max_seq_length: usize,
    pub do_lower_case: bool,
    pub pooling: Pooling,
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
            Arch::Bert => 0,
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
            layer_norm_eps: eps_field(v, file)?,
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

impl BertConfig {
    /// The position id of the first token: 0 for BERT, `pad_id + 1` for
    /// RoBERTa-style models.
    pub fn position_offset(&self) -> usize {
        match self.arch {
            Arch::Bert => 0,
            Arch::XlmRoberta | Arch::MpNet => self.pad_id + 1,
        }
    }

    /// The longest token sequence the position table covers.
    pub fn max_tokens(&self) -> usize {
        self.max_positions - self.position_offset()
    }
}

/// `layer_norm_eps`: finite, in `(0, 1]`, and still above 0 as f32
/// (transformers' default 1e-12 when absent).
fn eps_field(v: &Value, file: &str) -> Result<f32> {
    let raw = v.get("layer_norm_eps").filter(|x| !x.is_null());
    let eps = match raw {
        None => return Ok(1e-12),
        Some(x) => x.as_f64(),
    };
    match eps {
        Some(e) if e.is_finite() && e > 0.0 && e <= limits::EPS_MAX && (e as f32) > 0.0 => {
            Ok(e as f32)
        }
        _ => Err(Error::Embed(format!(
            "{file}: layer_norm_eps must be a number in (0, {}] (a positive float32), got {}",
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
            .unwrap_or(bert.max_tokens())
            .min(bert.max_tokens());
        if max_seq_length < 2 {
            return Err(Error::Embed(format!(
                "max_seq_length must leave room for [CLS] and [SEP], got {max_seq_length}"
            )));
        }

        let (mut pooling, mut normalize) = (defaults.pooling, defaults.normalize);
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
            for (t, path) in &kinds {
                let short = t.rsplit('.').next().unwrap_or("");
                match short {
                    "Transformer" | "Normalize" => {}
                    "Pooling" => {
                        let rel = if path.is_empty() {
                            "config.json".to_string()
                        } else {
                            format!("{path}/config.json")
                        };
                        let p = dir.read_json(&rel)?;
                        let file = dir.path(&rel).display().to_string();
                        pooling = pooling_from_json(&p, &file)?;
                        // Informational in sentence-transformers (the
                        // pooled width is the encoder's); checked for range.
                        if p.get("word_embedding_dimension")
                            .is_some_and(|x| !x.is_null())
                        {
                            int_field(&p, "word_embedding_dimension", &file, limits::HIDDEN, None)?;
                        }
                    }
                    other => {
                        return Err(Error::Embed(format!(
                            "{mpath}: module {other:?} ({t}) is not supported; \
                             supported: Transformer, Pooling, Normalize"
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
            normalize,
        })
    }
}

fn pooling_from_json(v: &Value, file: &str) -> Result<Pooling> {
    if !v.is_object() {
        return Err(Error::Embed(format!(
            "{file} must hold a JSON object, got {}",
            shown(Some(v))
        )));
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
        other => Err(Error::Embed(format!(
            "{file}: pooling {other:?} is not supported; supported: exactly one of \
             pooling_mode_mean_tokens, pooling_mode_cls_token"
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
