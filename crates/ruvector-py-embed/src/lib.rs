//! `ruvector_embed._native`: sentence embeddings computed in Rust.
//!
//! * [`files`] — model files read with their SHA-256 digests checked;
//! * [`safetensors`] — the checkpoint reader; [`config`] — the model
//!   description of a sentence-transformers folder;
//! * [`tokenize`] — text to token ids as sentence-transformers does it;
//! * [`gemm`] — the matrix product both encoders use;
//! * [`bert`] — the BERT encoder forward pass over packed sentences;
//! * [`model`] — a loaded model and the parallel batch driver;
//! * [`embedder`] — the Python class `Embedder`;
//! * [`image`] — image preprocessing (resize, crop, normalise) as
//!   torchvision does it; [`conv`] — convolution kernels; [`mobilenet`] —
//!   torchvision's `mobilenet_v3_small` feature extractor;
//! * [`image_embedder`] — the Python class `ImageEmbedder`.

pub mod bert;
pub mod config;
pub mod conv;
pub mod embedder;
mod erf_table;
pub mod error;
pub mod files;
pub mod gemm;
pub mod image;
pub mod image_embedder;
pub mod mobilenet;
pub mod model;
pub mod py_modules;
pub mod safetensors;
pub mod tokenize;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    ruvector_py_core::init_module(
        m,
        "embed",
        "ruvector-embed",
        env!("CARGO_PKG_VERSION"),
        error::CLASSES,
    )?;
    // NumPy's C API now, not lazily at the first returned array (where a
    // failed import would be a panic).
    ruvector_py_core::arrays::init_numpy(m.py())?;
    ruvector_py_core::add_thread_functions(m)?;
    m.add_class::<embedder::Embedder>()?;
    m.add_class::<image_embedder::ImageEmbedder>()?;
    m.add_function(wrap_pyfunction!(embedder::sha256_file, m)?)?;
    Ok(())
}
