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

/// Shape of a BERT encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
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

fn field_usize(v: &Value, key: &str, file: &str) -> Result<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .filter(|&n| n > 0 && n < (1 << 24))
        .map(|n| n as usize)
        .ok_or_else(|| {
            Error::Embed(format!(
                "{file}: field {key:?} must be a positive integer, got {}",
                v.get(key).map_or("nothing".to_string(), |x| x.to_string())
            ))
        })
}

impl BertConfig {
    pub fn from_json(v: &Value, file: &str) -> Result<Self> {
        if let Some(t) = v.get("model_type").and_then(Value::as_str) {
            if t != "bert" {
                return Err(Error::Embed(format!(
                    "{file}: model_type is {t:?}; this embedder runs BERT encoders only"
                )));
            }
        }
        if let Some(act) = v.get("hidden_act").and_then(Value::as_str) {
            if act != "gelu" {
                return Err(Error::Embed(format!(
                    "{file}: hidden_act is {act:?}; only \"gelu\" (exact, erf-based) is supported"
                )));
            }
        }
        if let Some(p) = v.get("position_embedding_type").and_then(Value::as_str) {
            if p != "absolute" {
                return Err(Error::Embed(format!(
                    "{file}: position_embedding_type is {p:?}; only \"absolute\" is supported"
                )));
            }
        }
        let c = BertConfig {
            vocab_size: field_usize(v, "vocab_size", file)?,
            hidden: field_usize(v, "hidden_size", file)?,
            layers: field_usize(v, "num_hidden_layers", file)?,
            heads: field_usize(v, "num_attention_heads", file)?,
            intermediate: field_usize(v, "intermediate_size", file)?,
            max_positions: field_usize(v, "max_position_embeddings", file)?,
            type_vocab: v
                .get("type_vocab_size")
                .and_then(Value::as_u64)
                .unwrap_or(2)
                .max(1) as usize,
            layer_norm_eps: v
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-12) as f32,
        };
        if !c.hidden.is_multiple_of(c.heads) {
            return Err(Error::Embed(format!(
                "{file}: hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden, c.heads
            )));
        }
        if c.layers > 128 || c.hidden > 8192 || c.intermediate > 65536 {
            return Err(Error::Embed(format!(
                "{file}: {} layers of width {} are beyond what this embedder runs",
                c.layers, c.hidden
            )));
        }
        Ok(c)
    }
}

impl ModelConfig {
    /// Reads the configuration files of `dir`, falling back to `defaults`.
    pub fn load(dir: &ModelDir, defaults: Defaults) -> Result<Self> {
        let cfg_path = dir.path("config.json").display().to_string();
        let bert = BertConfig::from_json(&dir.read_json("config.json")?, &cfg_path)?;

        let st = dir.read_json_opt("sentence_bert_config.json")?;
        let st_max = st
            .as_ref()
            .and_then(|v| v.get("max_seq_length"))
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        let do_lower_case = st
            .as_ref()
            .and_then(|v| v.get("do_lower_case"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let max_seq_length = st_max
            .or(defaults.max_seq_length)
            .unwrap_or(bert.max_positions)
            .min(bert.max_positions);
        if max_seq_length < 2 {
            return Err(Error::Embed(format!(
                "max_seq_length must leave room for [CLS] and [SEP], got {max_seq_length}"
            )));
        }

        let (mut pooling, mut normalize) = (defaults.pooling, defaults.normalize);
        if let Some(modules) = dir.read_json_opt("modules.json")? {
            let list = modules.as_array().cloned().unwrap_or_default();
            let kinds: Vec<(String, String)> = list
                .iter()
                .map(|m| {
                    (
                        m.get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        m.get("path")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    )
                })
                .collect();
            normalize = kinds.iter().any(|(t, _)| t.ends_with(".Normalize"));
            for (t, path) in &kinds {
                let short = t.rsplit('.').next().unwrap_or("");
                match short {
                    "Transformer" | "Normalize" => {}
                    "Pooling" => {
                        let rel = format!("{}/config.json", path.trim_end_matches('/'));
                        let p = dir.read_json(&rel)?;
                        pooling = pooling_from_json(&p, &dir.path(&rel).display().to_string())?;
                    }
                    other => {
                        return Err(Error::Embed(format!(
                            "{}: module {other:?} ({t}) is not supported; \
                             supported: Transformer, Pooling, Normalize",
                            dir.path("modules.json").display()
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
    let on = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let modes: Vec<&str> = [
        "pooling_mode_cls_token",
        "pooling_mode_mean_tokens",
        "pooling_mode_max_tokens",
        "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens",
        "pooling_mode_lasttoken",
    ]
    .into_iter()
    .filter(|k| on(k))
    .collect();
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
        let v = serde_json::json!({"model_type": "roberta"});
        assert!(BertConfig::from_json(&v, "c").is_err());
    }
}
