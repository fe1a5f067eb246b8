//! A loaded text model: configuration, tokenizer and encoder, and the batch
//! driver that tokenises, packs sentences into balanced chunks and runs the
//! chunks on the wheel's thread pool.

use rayon::prelude::*;

use ruvector_py_core::interrupt::{catch_panic, Cancel};
use ruvector_py_core::parallel;

use crate::error::{Error, FromBase, Result};

use crate::bert::Bert;
use crate::bert::{l2_normalize, linear};
use crate::config::{Activation, Arch, BertConfig, Defaults, DenseConfig, ModelConfig, Pooling};
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
    dense: Vec<Dense>,
}

/// A loaded sentence-transformers `Dense` module.
struct Dense {
    cfg: DenseConfig,
    /// `(out_features, in_features)`, row-major (`linear.weight`).
    weight: Vec<f32>,
    /// `linear.bias`, zeros when the module has none.
    bias: Vec<f32>,
}

impl Dense {
    /// Reads `model.safetensors` of the module folder: `linear.weight` and,
    /// if the config asks for one, `linear.bias`, checked against the config.
    fn load(dir: &ModelDir, cfg: &DenseConfig) -> Result<Self> {
        let rel = if cfg.path.is_empty() {
            "model.safetensors".to_string()
        } else {
            format!("{}/model.safetensors", cfg.path)
        };
        let file = dir.path(&rel).display().to_string();
        if !dir.exists(&rel) {
            let legacy = rel.replace("model.safetensors", "pytorch_model.bin");
            let hint = if dir.exists(&legacy) {
                " (the module has only pytorch_model.bin, a pickle this embedder does not load; \
                 resave the model with a sentence-transformers release that writes safetensors)"
            } else {
                ""
            };
            return Err(Error::Embed(format!(
                "weights file {file} of the Dense module is missing{hint}"
            )));
        }
        let (n, k) = (cfg.out_features, cfg.in_features);
        let w_shape = [n, k];
        // Twice the float32 size (a float64 checkpoint) plus 1 MiB of header.
        let limit = ((n as u64) * (k as u64 + 1)) * 8 + (1 << 20);
        let model = "this Dense module's config.json";
        let st = SafeTensors::open(&file, dir.open_limited(&rel, limit)?, |st| {
            st.check("linear.weight", &w_shape)?;
            if cfg.bias {
                st.check("linear.bias", &[n])?;
            } else if st.contains("linear.bias") {
                return Err(Error::Embed(format!(
                    "{file}: the checkpoint has a tensor linear.bias, but the module's config.json \
                     says bias: false"
                )));
            }
            Ok(())
        })?;
        let weight = st.f32_for("linear.weight", &w_shape, model)?;
        let bias = if cfg.bias {
            st.f32_for("linear.bias", &[n], model)?
        } else {
            vec![0.0; n]
        };
        Ok(Self {
            cfg: cfg.clone(),
            weight,
            bias,
        })
    }

    /// Applies the module to `rows` rows of `x`, returning the new rows.
    fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (k, n) = (self.cfg.in_features, self.cfg.out_features);
        let mut y = vec![0.0f32; rows * n];
        linear(x, rows, k, &self.weight, n, &self.bias, &mut y);
        if self.cfg.activation == Activation::Tanh {
            for v in &mut y {
                *v = v.tanh();
            }
        }
        y
    }
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
        let dense = cfg
            .dense
            .iter()
            .map(|d| Dense::load(dir, d))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg,
            tok,
            bert,
            dense,
        })
    }

    /// Width of the embeddings: the last Dense module's output, else the
    /// encoder's hidden size.
    pub fn dim(&self) -> usize {
        self.cfg
            .dense
            .last()
            .map_or(self.cfg.bert.hidden, |d| d.out_features)
    }

    pub fn vocab_size(&self) -> usize {
        self.tok.vocab_size()
    }

    pub fn weight_bytes(&self) -> usize {
        let dense: usize = self
            .dense
            .iter()
            .map(|d| 4 * (d.weight.len() + d.bias.len()))
            .sum();
        self.bert.weight_bytes() + dense
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
        let out = if self.dense.is_empty() {
            let mut out = vec![0.0f32; seqs.len() * dim];
            self.bert
                .embed_chunk(seqs, self.cfg.pooling, normalize, &mut out, cancel)?;
            out
        } else {
            // Pooling, then the Dense modules in order, then Normalize.
            let mut x = vec![0.0f32; seqs.len() * self.cfg.bert.hidden];
            self.bert
                .embed_chunk(seqs, self.cfg.pooling, false, &mut x, cancel)?;
            for d in &self.dense {
                x = d.apply(&x, seqs.len());
            }
            if normalize {
                for row in x.chunks_exact_mut(dim) {
                    l2_normalize(row);
                }
            }
            x
        };
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
