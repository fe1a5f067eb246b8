//! A loaded text model: configuration, tokenizer and encoder, and the batch
//! driver that tokenises, packs sentences into balanced chunks and runs the
//! chunks on the wheel's thread pool.

use rayon::prelude::*;

use ruvector_py_core::interrupt::{catch_panic, Cancel};
use ruvector_py_core::parallel;

use crate::error::{Error, FromBase, Result};

use crate::bert::Bert;
use crate::config::{Arch, BertConfig, Defaults, ModelConfig, Pooling};
use crate::files::{ModelDir, MAX_TOKENIZER_BYTES};
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
/// Scratch floats per chunk (32 MiB): wider models get fewer tokens per chunk.
const MAX_CHUNK_FLOATS: usize = 8 << 20;

/// Runs `work`, turning a panic (a bug, or one in a dependency such as the
/// tokenizers library) into an `EmbedError` rather than a `PanicException`.
pub fn guarded<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_panic(work).map_err(|e| match e {
        Error::Base(ruvector_py_core::Error::Index(m)) => Error::Embed(m),
        other => other,
    })
}

/// Largest `model.safetensors` accepted for `cfg`: twice the float32 size of
/// the tensors the config describes, plus 64 MiB for the header and extra
/// tensors (a pooler, position ids). `None` if the size overflows.
fn weights_limit(cfg: &BertConfig) -> Option<u64> {
    let (h, i) = (cfg.hidden as u64, cfg.intermediate as u64);
    // NomicBert's SwiGLU MLP has three h × i projections, BERT's two.
    let mlp = if cfg.arch == Arch::NomicBert { 3 } else { 2 };
    let layer = h
        .checked_mul(h)?
        .checked_mul(4)?
        .checked_add(h.checked_mul(i)?.checked_mul(mlp)?)?
        .checked_add(h.checked_mul(9)?)?
        .checked_add(i)?;
    let emb = (cfg.vocab_size as u64)
        .checked_add(cfg.max_positions as u64)?
        .checked_add(cfg.type_vocab as u64)?
        .checked_add(2)?
        .checked_mul(h)?
        .checked_add((cfg.rel_buckets as u64).checked_mul(cfg.heads as u64)?)?;
    let floats = layer.checked_mul(cfg.layers as u64)?.checked_add(emb)?;
    floats.checked_mul(8)?.checked_add(64 << 20)
}

/// Fails if `row` (the embedding of `what`) holds NaN or an infinity.
pub fn check_finite(row: &[f32], what: &dyn Fn() -> String) -> Result<()> {
    match row.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(j) => Err(Error::Embed(format!(
            "the model produced a non-finite value ({}) at position {j} of the embedding of {}: \
             its weights or configuration make the activations overflow float32",
            row[j],
            what()
        ))),
    }
}

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
            if m < 2 || m > cfg.bert.max_tokens() {
                return Err(Error::invalid(format!(
                    "max_seq_length must be between 2 and {} (the positions the model's \
                     max_position_embeddings covers), got {m}",
                    cfg.bert.max_tokens()
                )));
            }
            cfg.max_seq_length = m;
        }
        // The weights first (header and shapes only), then the tokenizer:
        // a checkpoint that does not fit the config is refused before the
        // tokenizer is built or any tensor converted.
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
        let limit = weights_limit(&cfg.bert).ok_or_else(|| {
            Error::Embed(format!(
                "{}: the model sizes overflow",
                dir.path("config.json").display()
            ))
        })?;
        let in_file = |e: Error| match e {
            Error::Embed(m) if !m.starts_with(&st_path) => Error::Embed(format!("{st_path}: {m}")),
            other => other,
        };
        let st = SafeTensors::open(
            &st_path,
            dir.open_limited("model.safetensors", limit)?,
            |st| Bert::check(st, &cfg.bert).map_err(in_file),
        )?;

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
            &dir.read_limited("tokenizer.json", MAX_TOKENIZER_BYTES)?,
            cfg.max_seq_length,
            cfg.do_lower_case,
        )?;
        if let Some(max_id) = tok.max_id()? {
            if max_id as usize >= cfg.bert.vocab_size {
                return Err(Error::Embed(format!(
                    "{tok_path} produces token ids up to {max_id}, but the checkpoint's vocabulary \
                     has {} entries: the tokenizer and the weights belong to different models",
                    cfg.bert.vocab_size
                )));
            }
        }
        let bert = Bert::load(&st, &cfg.bert).map_err(in_file)?;
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

    /// The worst-case growth of a text through the tokenizer's normalizers.
    pub fn tokenizer_expansion(&self) -> f64 {
        self.tok.expansion()
    }

    /// At most this many bytes of a text are tokenised.
    pub fn max_text_bytes(&self) -> usize {
        self.tok.max_text_bytes()
    }

    /// Embeds the sequences of one chunk; `index[k]` is the position of
    /// `seqs[k]` in the caller's batch (`None`: a single text).
    /// `normalize` is the model's setting or the caller's override.
    fn run_chunk(
        &self,
        seqs: &[&[u32]],
        index: &[Option<usize>],
        normalize: bool,
        cancel: &Cancel,
    ) -> Result<Vec<f32>> {
        let dim = self.dim();
        let mut out = vec![0.0f32; seqs.len() * dim];
        self.bert
            .embed_chunk(seqs, self.cfg.pooling, normalize, &mut out, cancel)?;
        // One pass over the result: a broken model raises instead of
        // returning NaN.
        for (row, i) in out.chunks_exact(dim).zip(index) {
            check_finite(row, &|| match i {
                Some(i) => format!("texts[{i}]"),
                None => "the text".to_string(),
            })?;
        }
        Ok(out)
    }

    /// Embeds one text on the calling thread.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        guarded(|| {
            let ids = self.tok.encode(text)?;
            self.run_chunk(&[&ids], &[None], self.cfg.normalize, &Cancel::new())
        })
    }

    /// Tokens per chunk: [`MAX_CHUNK_TOKENS`], fewer for wide models.
    fn chunk_tokens(&self) -> usize {
        let b = &self.cfg.bert;
        let glu = if b.arch == Arch::NomicBert { 2 } else { 1 };
        let per_token = 6 * b.hidden + glu * b.intermediate;
        (MAX_CHUNK_FLOATS / per_token.max(1)).clamp(1, MAX_CHUNK_TOKENS)
    }

    /// Embeds `texts` on the wheel's pool: `(texts.len(), dim)` row-major,
    /// L2-normalised if `normalize` (`None`: the model's setting). `cancel`
    /// is checked between texts while tokenising and between layers of
    /// every chunk.
    pub fn embed_many(
        &self,
        texts: &[String],
        normalize: Option<bool>,
        cancel: &Cancel,
    ) -> Result<Vec<f32>> {
        let normalize = normalize.unwrap_or(self.cfg.normalize);
        guarded(|| self.embed_many_inner(texts, normalize, cancel))
    }

    fn embed_many_inner(
        &self,
        texts: &[String],
        normalize: bool,
        cancel: &Cancel,
    ) -> Result<Vec<f32>> {
        let dim = self.dim();
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let pool = parallel::pool()?;
        let threads = pool.current_num_threads().max(1);
        let max_chunk = self.chunk_tokens();
        pool.install(|| {
            let ids: Vec<Vec<u32>> = texts
                .par_iter()
                .map(|t| {
                    cancel.check()?;
                    self.tok.encode(t)
                })
                .collect::<Result<_>>()?;
            // Longest first, then greedy chunks of about equal token counts:
            // chunks of similar length keep the attention blocks uniform.
            let mut order: Vec<usize> = (0..ids.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
            let total: usize = ids.iter().map(Vec::len).sum();
            let target = total.div_ceil(threads).clamp(1, max_chunk);
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
                    cancel.check()?;
                    let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
                    let index: Vec<Option<usize>> = chunk.iter().map(|&i| Some(i)).collect();
                    self.run_chunk(&seqs, &index, normalize, cancel)
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
