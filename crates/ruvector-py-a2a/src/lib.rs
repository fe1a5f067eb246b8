//! `ruvector_a2a._native`: the wire layer of the A2A (Agent2Agent) client
//! and server, and the A2A 0.3 translation of the server.
//!
//! * [`transport`] — HTTP client (reqwest + rustls/ring): size caps,
//!   deadlines, no retries; SSE via [`sse`];
//! * [`card`] — agent-card signatures (JWS over RFC 8785 JSON, rvAgent
//!   Ed25519), canonical JSON in [`json`];
//! * [`server`] — the JSON-RPC server (axum on hyper) hosting a Python
//!   agent; webhooks in [`push`], task states in [`task_state`];
//! * [`compat03`] — A2A 0.3 on the server side (method names, `kind`-tagged
//!   JSON) and the one 0.3 method table, which the Python client reads.
//!
//! The typed A2A objects, the client's dialects (0.3 and rvAgent, in
//! `_compat03.py` / `_rvagent.py`), policy and budget live in the Python
//! package on top. Nothing here imports Python modules: the server's Python
//! side is handed in as callables.

pub mod card;
pub mod compat03;
pub mod error;
pub mod json;
pub mod push;
pub mod py_modules;
pub mod server;
pub mod sse;
pub mod task_state;
pub mod transport;
pub mod util;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    ruvector_py_core::init_module(
        m,
        "a2a",
        "ruvector-a2a",
        env!("CARGO_PKG_VERSION"),
        error::CLASSES,
    )?;
    m.add_class::<transport::HttpTransport>()?;
    m.add_class::<transport::EventStream>()?;
    m.add_class::<server::ServerCore>()?;
    m.add_function(wrap_pyfunction!(card::verify_card, m)?)?;
    m.add_function(wrap_pyfunction!(card::sign_card, m)?)?;
    m.add_function(wrap_pyfunction!(card::generate_private_key, m)?)?;
    m.add_function(wrap_pyfunction!(card::public_key_jwk, m)?)?;
    m.add_function(wrap_pyfunction!(card::agent_id_of, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_json, m)?)?;
    m.add_function(wrap_pyfunction!(compat03::compat03_methods, m)?)?;
    Ok(())
}

/// RFC 8785 canonical JSON of a value (what card signatures cover, after
/// empty fields are dropped).
#[pyfunction]
fn canonical_json(value: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(json::canonical(&json::from_py_arg(value, "value")?))
}
