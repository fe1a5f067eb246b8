//! A loaded text model: configuration, tokenizer and encoder, and the batch
//! driver that tokenises, packs sentences into balanced chunks and runs the
//! chunks on the wheel's thread pool.

use rayon::prelude::*;

use ruvector_py_core::parallel;

use crate::error::{Error, FromBase, Result};

use crate::bert::Bert;
use crate::config::{Defaults, ModelConfig, Pooling};
use crate::files::ModelDir;
use crate::safetensors::SafeTensors;
use crate::tokenize::TextTokenizer;

/// Choices made by the caller over the folder's own configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub pooling: Option<Pooling>,
    pub normalize: Option<bool>,
    pub max_seq_length: Option<usize>,
}

pub struct TextModel {
    pub cfg: ModelConfig,
    tok: TextTokenizer,
    bert: Bert,
}

/// Tokens per chunk above which a chunk is split even on one thread (bounds
/// the scratch memory of a chunk to a few tens of MB).
const MAX_CHUNK_TOKENS: usize = 2048;

impl TextModel {
    /// Loads `dir`: configuration, `tokenizer.json`, `model.safetensors`,
    /// each checked against its pinned digest when one is given.
    pub fn load(dir: &ModelDir, defaults: Defaults, over: Overrides) -> Result<Self> {
        let mut cfg = ModelConfig::load(dir, defaults)?;
        if let Some(p) = over.pooling {
            cfg.pooling = p;
        }
        if let Some(n) = over.normalize {
            cfg.normalize = n;
        }
        if let Some(m) = over.max_seq_length {
            if m < 2 || m > cfg.bert.max_positions {
                return Err(Error::invalid(format!(
                    "max_seq_length must be between 2 and {} (the model's max_position_embeddings), got {m}",
                    cfg.bert.max_positions
                )));
            }
            cfg.max_seq_length = m;
        }
        if !dir.exists("tokenizer.json") {
            let hint = if dir.exists("vocab.txt") {
                " (the folder has only vocab.txt: this embedder reads the fast-tokenizer file \
                 tokenizer.json, which sentence-transformers folders ship)"
            } else {
                ""
            };
            return Err(Error::Embed(format!(
                "tokenizer file {} is missing{hint}",
                dir.path("tokenizer.json").display()
            )));
        }
        let tok_path = dir.path("tokenizer.json").display().to_string();
        let tok = TextTokenizer::from_json(
            &tok_path,
            &dir.read("tokenizer.json")?,
            cfg.max_seq_length,
            cfg.do_lower_case,
        )?;
        if let Some(max_id) = tok.max_id() {
            if max_id as usize >= cfg.bert.vocab_size {
                return Err(Error::Embed(format!(
                    "{tok_path} produces token ids up to {max_id}, but the checkpoint's vocabulary \
                     has {} entries: the tokenizer and the weights belong to different models",
                    cfg.bert.vocab_size
                )));
            }
        }
        let st_path = dir.path("model.safetensors").display().to_string();
        if !dir.exists("model.safetensors") {
            let hint = if dir.exists("pytorch_model.bin") {
                " (the folder has only pytorch_model.bin, a pickle this embedder does not load; \
                 use the model.safetensors file of the same model)"
            } else {
                ""
            };
            return Err(Error::Embed(format!(
                "weights file {st_path} is missing{hint}"
            )));
        }
        let st = SafeTensors::parse(&st_path, dir.read("model.safetensors")?)?;
        let bert = Bert::load(&st, &cfg.bert).map_err(|e| match e {
            Error::Embed(m) if !m.starts_with(&st_path) => Error::Embed(format!("{st_path}: {m}")),
            other => other,
        })?;
        Ok(Self { cfg, tok, bert })
    }

    pub fn dim(&self) -> usize {
        self.cfg.bert.hidden
    }

    pub fn vocab_size(&self) -> usize {
        self.tok.vocab_size()
    }

    pub fn weight_bytes(&self) -> usize {
        self.bert.weight_bytes()
    }

    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tok.encode(text)
    }

    fn run_chunk(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; seqs.len() * self.dim()];
        self.bert
            .embed_chunk(seqs, self.cfg.pooling, self.cfg.normalize, &mut out)?;
        Ok(out)
    }

    /// Embeds one text on the calling thread.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let ids = self.tok.encode(text)?;
        self.run_chunk(&[&ids])
    }

    /// Embeds `texts` on the wheel's pool: `(texts.len(), dim)` row-major.
    pub fn embed_many(&self, texts: &[String]) -> Result<Vec<f32>> {
        let dim = self.dim();
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let pool = parallel::pool()?;
        let threads = pool.current_num_threads().max(1);
        pool.install(|| {
            let ids: Vec<Vec<u32>> = texts
                .par_iter()
                .map(|t| self.tok.encode(t))
                .collect::<Result<_>>()?;
            // Longest first, then greedy chunks of about equal token counts:
            // chunks of similar length keep the attention blocks uniform.
            let mut order: Vec<usize> = (0..ids.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
            let total: usize = ids.iter().map(Vec::len).sum();
            let target = total.div_ceil(threads).clamp(1, MAX_CHUNK_TOKENS);
            let mut chunks: Vec<Vec<usize>> = Vec::new();
            let mut cur = Vec::new();
            let mut cur_tokens = 0;
            for &i in &order {
                if cur_tokens >= target {
                    chunks.push(std::mem::take(&mut cur));
                    cur_tokens = 0;
                }
                cur.push(i);
                cur_tokens += ids[i].len();
            }
            if !cur.is_empty() {
                chunks.push(cur);
            }
            let results: Vec<Vec<f32>> = chunks
                .par_iter()
                .map(|chunk| {
                    let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
                    self.run_chunk(&seqs)
                })
                .collect::<Result<_>>()?;
            let mut out = vec![0.0f32; texts.len() * dim];
            for (chunk, rows) in chunks.iter().zip(results) {
                for (&i, row) in chunk.iter().zip(rows.chunks_exact(dim)) {
                    out[i * dim..(i + 1) * dim].copy_from_slice(row);
                }
            }
            Ok(out)
        })
    }
}
