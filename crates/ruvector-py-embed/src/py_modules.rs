//! Every Python object this wheel's Rust code looks up: model resolution
//! lives in Python (`_models.py`: files, caches, digests, downloads).

use ruvector_py_core::py_modules::LazyPyImport;

/// `image_model_name(name)`: the canonical image model name, or `None`.
pub static IMAGE_MODEL_NAME: LazyPyImport =
    LazyPyImport::new("ruvector_embed._models", "image_model_name");
/// `resolve_model(name, ...)`: where a text model's files are.
pub static RESOLVE_MODEL: LazyPyImport =
    LazyPyImport::new("ruvector_embed._models", "resolve_model");
/// `resolve_image_weights(name, ...)`: where an image model's weights are.
pub static RESOLVE_IMAGE_WEIGHTS: LazyPyImport =
    LazyPyImport::new("ruvector_embed._models", "resolve_image_weights");
/// `reduce_embedder(emb)`: pickling an `Embedder` by reference to its files.
pub static REDUCE_EMBEDDER: LazyPyImport =
    LazyPyImport::new("ruvector_embed._pickle", "reduce_embedder");
/// `reduce_image_embedder(emb)`: the same for an `ImageEmbedder`.
pub static REDUCE_IMAGE_EMBEDDER: LazyPyImport =
    LazyPyImport::new("ruvector_embed._pickle", "reduce_image_embedder");
/// `encode(emb, sentences, ...)`: `Embedder.encode` (sentence-transformers' shape).
pub static ENCODE: LazyPyImport = LazyPyImport::new("ruvector_embed._encode", "encode");
/// `model_prompts(path, registry, prompts, default_prompt_name)`: the prompts of a text model.
pub static MODEL_PROMPTS: LazyPyImport =
    LazyPyImport::new("ruvector_embed._encode", "model_prompts");
