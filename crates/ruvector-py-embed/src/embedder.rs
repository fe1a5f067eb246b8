//! The Python class `Embedder`.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use ruvector_py_core::args::{int_in_range, str_arg};
use ruvector_py_core::arrays::{f32_matrix, f32_vector, type_name};
use ruvector_py_core::interrupt::{run_interruptible, Cancel};
use ruvector_py_core::runtime;

use crate::error::{Error, FromBase};
use crate::py_modules::{ENCODE, IMAGE_MODEL_NAME, MODEL_PROMPTS, REDUCE_EMBEDDER, RESOLVE_MODEL};

use crate::config::{Defaults, Pooling};
use crate::files::ModelDir;
use crate::image_embedder::ImageEmbedder;
use crate::model::{guarded, Overrides, TextModel};

/// Where a model came from, as reported by the resolver.
struct Origin {
    /// The name as Python gave it (a folder name may hold surrogate escapes).
    name: Py<PyString>,
    /// The folder as Python gave it (a `str` that may hold the surrogate
    /// escapes of a non-UTF-8 file name).
    path: Py<PyString>,
    source: String,
    verified: bool,
    /// Prompt name -> text prepended by ``encode(prompt_name=...)``.
    prompts: Py<PyDict>,
    /// The prompt ``encode`` uses when given neither prompt nor prompt_name.
    default_prompt_name: Option<Py<PyString>>,
}

/// Sentence embeddings computed in Rust.
///
/// Build one with :meth:`Embedder.from_pretrained`. Every method is
/// thread-safe; batch calls run on the wheel's thread pool with the GIL
/// released.
#[pyclass(frozen, module = "ruvector_embed", name = "Embedder")]
pub struct Embedder {
    model: Arc<TextModel>,
    origin: Origin,
}

/// The texts of a batch; an item that is not a str is refused naming it
/// ``what[offset + i]``.
fn texts_arg(texts: &Bound<'_, PyAny>, what: &str, offset: usize) -> PyResult<Vec<String>> {
    if texts.is_instance_of::<PyString>() {
        return Err(Error::invalid(
            "texts must be a sequence of strings, got a single str; \
             use embed(text) for one text or pass [text]",
        )
        .into());
    }
    let iter = texts.try_iter().map_err(|_| {
        PyErr::from(Error::invalid(format!(
            "texts must be a sequence of strings, got {}",
            type_name(texts)
        )))
    })?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        out.push(str_arg(&item?, &format!("{what}[{}]", offset + i))?);
    }
    Ok(out)
}

fn text_arg(text: &Bound<'_, PyAny>) -> PyResult<String> {
    if !text.is_instance_of::<PyString>() {
        return Err(Error::invalid(format!(
            "text must be a str, got {}; use embed_batch for several texts",
            type_name(text)
        ))
        .into());
    }
    str_arg(text, "text")
}

#[pymethods]
impl Embedder {
    /// Resolves ``name`` offline first (see ``ruvector_embed.resolve_model``),
    /// verifies the pinned SHA-256 digests of a known model, and loads it.
    /// An image model name (``"mobilenetv3-small"``) gives an
    /// :class:`ImageEmbedder` (see :meth:`ImageEmbedder.from_pretrained`).
    #[classmethod]
    #[pyo3(signature = (name, *, cache_dir=None, download=None, sources=None, pooling=None, normalize=None, max_seq_length=None, weights=None, pretrained=None, prompts=None, default_prompt_name=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_pretrained(
        _cls: &Bound<'_, pyo3::types::PyType>,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        cache_dir: Option<&Bound<'_, PyAny>>,
        download: Option<&Bound<'_, PyAny>>,
        sources: Option<&Bound<'_, PyAny>>,
        pooling: Option<&Bound<'_, PyAny>>,
        normalize: Option<bool>,
        max_seq_length: Option<&Bound<'_, PyAny>>,
        weights: Option<&Bound<'_, PyAny>>,
        pretrained: Option<bool>,
        prompts: Option<&Bound<'_, PyAny>>,
        default_prompt_name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let pooling = pooling
            .filter(|p| !p.is_none())
            .map(|p| str_arg(p, "pooling"))
            .transpose()?;
        let image_name = IMAGE_MODEL_NAME.get(py)?.call1((name,))?;
        if !image_name.is_none() {
            let max_seq_length = max_seq_length.filter(|o| !o.is_none());
            let prompts_given = prompts.is_some_and(|p| !p.is_none())
                || default_prompt_name.is_some_and(|p| !p.is_none());
            if pooling.is_some() || max_seq_length.is_some() || prompts_given {
                return Err(Error::invalid(format!(
                    "pooling, max_seq_length, prompts and default_prompt_name apply to text \
                     models; {} is an image model",
                    image_name.str()?
                ))
                .into());
            }
            let img = ImageEmbedder::create(
                py, name, weights, pretrained, cache_dir, download, sources, normalize,
            )?;
            return Ok(Bound::new(py, img)?.into_any().unbind());
        }
        if weights.is_some_and(|w| !w.is_none()) || pretrained.is_some() {
            return Err(Error::invalid(
                "weights= and pretrained= are for image models (mobilenetv3-small); a text \
                 model's weights are the model.safetensors of its folder",
            )
            .into());
        }
        let over = Overrides {
            pooling: pooling.as_deref().map(Pooling::parse).transpose()?,
            normalize,
            max_seq_length: max_seq_length
                .filter(|o| !o.is_none())
                .map(|o| int_in_range(o, "max_seq_length", 2, 1 << 20).map(|v| v as usize))
                .transpose()?,
        };
        let kwargs = PyDict::new(py);
        kwargs.set_item("cache_dir", cache_dir)?;
        kwargs.set_item("download", download)?;
        kwargs.set_item("sources", sources)?;
        let resolved = RESOLVE_MODEL.get(py)?.call((name,), Some(&kwargs))?;
        // A PathBuf keeps non-UTF-8 file names (surrogate escapes) intact.
        let path_obj = resolved.getattr("path")?;
        let path: std::path::PathBuf = path_obj.extract()?;
        let path_text = path_obj.str()?.unbind();
        let digests: HashMap<String, String> = resolved.getattr("digests")?.extract()?;
        let pooling_default: String = resolved.getattr("pooling")?.extract()?;
        let defaults = Defaults {
            pooling: Pooling::parse(&pooling_default)?,
            normalize: resolved.getattr("normalize")?.extract()?,
            max_seq_length: resolved.getattr("max_seq_length")?.extract()?,
        };
        // The prompts: the folder's config_sentence_transformers.json over
        // the registry's, the caller's over both (checked in Python).
        let (prompt_map, default_prompt): (Bound<'_, PyDict>, Option<Bound<'_, PyString>>) =
            MODEL_PROMPTS
                .get(py)?
                .call1((
                    &path_obj,
                    resolved.getattr("prompts")?,
                    prompts,
                    default_prompt_name,
                ))?
                .extract()?;
        let origin = Origin {
            name: resolved.getattr("name")?.str()?.unbind(),
            source: resolved.getattr("source")?.extract()?,
            verified: !digests.is_empty(),
            path: path_text,
            prompts: prompt_map.unbind(),
            default_prompt_name: default_prompt.map(Bound::unbind),
        };
        let dir = ModelDir::new(path, digests);
        let model = py.detach(|| guarded(|| TextModel::load(&dir, defaults, over)))?;
        let emb = Self {
            model: Arc::new(model),
            origin,
        };
        Ok(Bound::new(py, emb)?.into_any().unbind())
    }

    /// Pickles by reference: the model's file paths, sizes and SHA-256
    /// digests and its settings, not its weights; unpickling checks the
    /// files again and loads them (a changed file raises ``EmbedError``).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        REDUCE_EMBEDDER.get(slf.py())?.call1((slf,))
    }

    /// The same embedder: it is immutable, so a copy is not needed.
    fn __copy__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The same embedder (see ``__copy__``).
    fn __deepcopy__(slf: Py<Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
        slf
    }

    /// Embeds one text: a ``(dim,)`` float32 array.
    fn embed(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let text = text_arg(text)?;
        let v = py.detach(|| self.model.embed_one(&text))?;
        Ok(f32_vector(py, v))
    }

    /// Embeds every text: a ``(len(texts), dim)`` float32 array, computed on
    /// the wheel's thread pool with the GIL released. Ctrl-C stops it
    /// within about a layer's work and raises ``KeyboardInterrupt``.
    fn embed_batch(&self, py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let texts = texts_arg(texts, "texts", 0)?;
        let dim = self.model.dim();
        let model = &self.model;
        let m = run_interruptible(py, |cancel| model.embed_many(&texts, None, cancel))?;
        f32_matrix(py, m, dim)
    }

    /// Embeds ``sentences`` with the arguments of ``SentenceTransformer.encode``:
    /// one str gives a ``(dim,)`` float32 array, any iterable of str (a list,
    /// a generator...) a ``(n, dim)`` array, equal to :meth:`embed_batch`.
    ///
    /// * ``batch_size`` (1 to 2**20): texts read and embedded per call to the
    ///   thread pool (sized by ``set_num_threads``); one batch of texts is
    ///   held at a time, so generators of any length stream through;
    /// * ``show_progress_bar``: a bar on stderr (tqdm's if installed);
    ///   ``None``: only when stderr is a terminal;
    /// * ``normalize_embeddings``: ``None`` follows :attr:`normalize`,
    ///   ``True`` unit length, ``False`` no normalisation;
    /// * ``convert_to_numpy=False``: a list of ``(dim,)`` arrays;
    /// * ``prompt`` is prepended to every text; ``prompt_name`` names one of
    ///   :attr:`prompts`; neither: the :attr:`default_prompt_name` prompt;
    /// * ``convert_to_tensor``, ``device``, ``precision``, ``output_value``
    ///   accept only ``False``, ``None``/``"cpu"``, ``"float32"``,
    ///   ``"sentence_embedding"``.
    ///
    /// Ctrl-C raises ``KeyboardInterrupt`` within a batch's work.
    #[pyo3(
        signature = (sentences, *args, **kwargs),
        text_signature = "(self, sentences, batch_size=32, *, show_progress_bar=None, \
                          normalize_embeddings=None, convert_to_numpy=True, prompt_name=None, \
                          prompt=None, convert_to_tensor=False, device=None, precision='float32', \
                          output_value='sentence_embedding')"
    )]
    fn encode<'py>(
        slf: &Bound<'py, Self>,
        sentences: &Bound<'py, PyAny>,
        args: &Bound<'py, pyo3::types::PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let mut all = vec![slf.clone().into_any(), sentences.clone()];
        all.extend(args.iter());
        let all = pyo3::types::PyTuple::new(py, all)?;
        ENCODE.get(py)?.call(all, kwargs)
    }

    /// One batch of :meth:`encode`: ``texts`` (a list of str) embedded as
    /// :meth:`embed_batch` does, L2-normalised if ``normalize``; an item that
    /// is not a str is named ``sentences[offset + i]``.
    #[pyo3(name = "_embed_batch", signature = (texts, normalize, offset))]
    fn embed_batch_for_encode(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        normalize: bool,
        offset: usize,
    ) -> PyResult<Py<PyAny>> {
        let texts = texts_arg(texts, "sentences", offset)?;
        let dim = self.model.dim();
        let model = &self.model;
        let m = run_interruptible(py, |cancel| {
            model.embed_many(&texts, Some(normalize), cancel)
        })?;
        f32_matrix(py, m, dim)
    }

    /// Awaitable :meth:`embed`, run on the wheel's runtime.
    fn embed_async<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let text = text_arg(text)?;
        let model = Arc::clone(&self.model);
        runtime::awaitable(
            py,
            move || model.embed_one(&text),
            Box::new(|py, v: Vec<f32>| Ok(f32_vector(py, v))),
        )
    }

    /// Awaitable :meth:`embed_batch`, run on the wheel's runtime.
    fn embed_batch_async<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let texts = texts_arg(texts, "texts", 0)?;
        let model = Arc::clone(&self.model);
        let dim = model.dim();
        runtime::awaitable(
            py,
            move || model.embed_many(&texts, None, &Cancel::new()),
            Box::new(move |py, m: Vec<f32>| f32_matrix(py, m, dim)),
        )
    }

    /// Token ids the model sees for ``text`` (with ``[CLS]``/``[SEP]``,
    /// truncated to :attr:`max_seq_length`).
    fn tokenize(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        let text = text_arg(text)?;
        Ok(py.detach(|| guarded(|| self.model.tokenize(&text)))?)
    }

    /// Length of the embeddings (384 for all-MiniLM-L6-v2).
    #[getter]
    fn dim(&self) -> usize {
        self.model.dim()
    }

    /// Tokens per text, special tokens included; longer texts are truncated.
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.model.cfg.max_seq_length
    }

    /// ``"mean"``, ``"cls"`` or ``"lasttoken"``.
    #[getter]
    fn pooling(&self) -> &'static str {
        self.model.cfg.pooling.name()
    }

    /// Whether embeddings are L2-normalised (unit length).
    #[getter]
    fn normalize(&self) -> bool {
        self.model.cfg.normalize
    }

    /// Prompt name -> text that :meth:`encode` prepends for
    /// ``prompt_name=...`` (a new dict on every access): the ``prompts`` of
    /// the folder's ``config_sentence_transformers.json``, else the
    /// registry's for a known model, or those given to ``from_pretrained``.
    #[getter]
    fn prompts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.origin.prompts.bind(py).copy()
    }

    /// The prompt :meth:`encode` uses when given neither ``prompt`` nor
    /// ``prompt_name`` (``None``: no prompt).
    #[getter]
    fn default_prompt_name(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.origin
            .default_prompt_name
            .as_ref()
            .map(|p| p.clone_ref(py))
    }

    /// The model's name (the known name, or the folder for a local path).
    #[getter]
    fn name(&self, py: Python<'_>) -> Py<PyString> {
        self.origin.name.clone_ref(py)
    }

    /// The folder the model was loaded from.
    #[getter]
    fn path(&self, py: Python<'_>) -> Py<PyString> {
        self.origin.path.clone_ref(py)
    }

    /// Where the resolver found the model: ``"directory"``, ``"env"``,
    /// ``"hf-cache"``, ``"package"``, ``"cache"`` or ``"download"``.
    #[getter]
    fn source(&self) -> &str {
        &self.origin.source
    }

    /// Whether pinned SHA-256 digests were checked while loading.
    #[getter]
    fn verified(&self) -> bool {
        self.origin.verified
    }

    /// Number of encoder layers.
    #[getter]
    fn num_layers(&self) -> usize {
        self.model.cfg.bert.layers
    }

    /// Tokenizer vocabulary size (added tokens included).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    /// Bytes of weights held in memory.
    #[getter]
    fn memory_bytes(&self) -> usize {
        self.model.weight_bytes()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let name = self
            .origin
            .name
            .bind(py)
            .repr()
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!(
            "Embedder(name={}, kind='text', dim={}, max_seq_length={}, pooling='{}', \
             normalize={}, source='{}', verified={})",
            name,
            self.model.dim(),
            self.model.cfg.max_seq_length,
            self.model.cfg.pooling.name(),
            py_bool(self.model.cfg.normalize),
            self.origin.source,
            py_bool(self.origin.verified),
        )
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

#[pyfunction]
/// SHA-256 of a file, as lower-case hex (used by the resolver for downloads
/// and by tools that pin new models). Runs with the GIL released.
pub fn sha256_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<String> {
    py.detach(|| {
        crate::files::sha256_file_hex(&path)
            .map_err(|e| Error::Embed(format!("cannot read {}: {e}", path.display())))
    })
    .map_err(PyErr::from)
}
