//! The A2A 1.0 JSON-RPC server (axum on hyper) that hosts a Python agent.
//!
//! Rust owns HTTP, JSON-RPC, the task store and SSE; the Python side owns
//! the agent. The agent reports through [`ServerCore::update_status`] /
//! [`ServerCore::add_artifact`], which update the store and fan out to the
//! task's SSE subscribers.
//!
//! * [`conn`] — accept loop, connection cap, header / keep-alive deadlines;
//! * [`auth`] — the card's security, enforced before any method runs;
//! * [`rpc`] — JSON-RPC routing, body deadline, the task methods;
//! * [`stream`] — SSE task streams;
//! * [`push_rpc`] — push-notification configs and their delivery worker;
//! * [`store`] — the task store and the state shared by all requests.
//!
//! Bounds: request body (`max_body_bytes`), one event/artifact
//! (`max_event_bytes`), stored tasks (`max_tasks`, oldest finished evicted
//! first, new tasks refused when all are running), bytes per task
//! (`max_task_bytes`), history per task, open SSE streams (`max_streams`),
//! open connections (`max_connections`), and the time a peer may take to
//! send a request head / body or stay idle.

mod auth;
mod conn;
mod push_rpc;
mod rpc;
mod store;
mod stream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use pyo3::prelude::*;
use pyo3::types::PyString;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::error::{Error, FromBase, Result};
use ruvector_py_core::runtime;

use crate::json::{from_py_arg, to_py};
use crate::util::{opt_text, text};
use auth::AuthPlan;
use conn::ConnLimits;
use store::{lock, Limits, PushSettings, PyBridge, Shared, Store};

fn seconds(what: &str, s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0) {
        return Err(Error::invalid(format!(
            "{what} must be a number of seconds in (0, 86400], got {s}"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

/// The native half of `A2aServer`.
#[pyclass(frozen, module = "ruvector_a2a._native")]
pub struct ServerCore {
    shared: Arc<Shared>,
    template: Value,
    private_key: Option<Vec<u8>>,
    kid: Option<String>,
    running: Mutex<Option<(SocketAddr, tokio::task::JoinHandle<()>)>>,
}

#[pymethods]
impl ServerCore {
    #[new]
    #[pyo3(signature = (
        card, *, max_body_bytes, max_event_bytes, max_tasks, max_task_bytes, max_streams,
        max_connections, header_read_timeout, body_read_timeout, keep_alive_timeout,
        auth=None, private_key=None, kid=None, push_notifications=false, allow_private_webhooks=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        card: &Bound<'_, PyAny>,
        max_body_bytes: usize,
        max_event_bytes: usize,
        max_tasks: usize,
        max_task_bytes: usize,
        max_streams: usize,
        max_connections: usize,
        header_read_timeout: f64,
        body_read_timeout: f64,
        keep_alive_timeout: f64,
        auth: Option<Vec<Vec<(String, String, String)>>>,
        private_key: Option<Vec<u8>>,
        kid: Option<Bound<'_, PyString>>,
        push_notifications: bool,
        allow_private_webhooks: bool,
    ) -> Result<Self> {
        let kid = opt_text(kid.as_ref(), "kid")?;
        let push = if push_notifications {
            let client = reqwest::Client::builder()
                // rustls even where a workspace-wide build also enables reqwest's
                // default (OpenSSL) backend for the test-only rvagent-peer.
                .use_rustls_tls()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(crate::push::TIMEOUT)
                .connect_timeout(crate::push::TIMEOUT)
                .user_agent(concat!("ruvector-a2a/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| {
                    Error::Transport(format!("could not build the webhook client: {e}"))
                })?;
            Some(PushSettings {
                allow_private: allow_private_webhooks,
                client,
            })
        } else {
            None
        };
        let template = from_py_arg(card, "card")?;
        if !template.is_object() {
            return Err(Error::invalid("the card must be a dict"));
        }
        for (what, v) in [
            ("max_body_bytes", max_body_bytes),
            ("max_event_bytes", max_event_bytes),
            ("max_tasks", max_tasks),
            ("max_task_bytes", max_task_bytes),
            ("max_streams", max_streams),
            ("max_connections", max_connections),
        ] {
            if v == 0 {
                return Err(Error::invalid(format!("{what} must be at least 1")));
            }
        }
        let conn = ConnLimits {
            max_connections,
            header_read_timeout: seconds("header_read_timeout", header_read_timeout)?,
            body_read_timeout: seconds("body_read_timeout", body_read_timeout)?,
            keep_alive_timeout: seconds("keep_alive_timeout", keep_alive_timeout)?,
        };
        let auth = auth.map(AuthPlan::from_spec).transpose()?;
        if let Some(k) = &private_key {
            crate::card::public_jwk(k, None)?;
        }
        let (tx, _) = watch::channel(false);
        Ok(ServerCore {
            shared: Arc::new(Shared {
                card: Mutex::new(Value::Null),
                card_bytes: Mutex::new(Bytes::new()),
                store: Mutex::new(Store::default()),
                open_streams: AtomicUsize::new(0),
                limits: Limits {
                    max_body: max_body_bytes,
                    max_event: max_event_bytes,
                    max_tasks,
                    max_task_bytes,
                    max_streams,
                },
                conn,
                auth,
                bridge: Mutex::new(None),
                shutdown: tx,
                push,
            }),
            template,
            private_key,
            kid,
            running: Mutex::new(None),
        })
    }

    /// Binds `host:port`, finishes and signs the card, serves; returns the
    /// URL and the bound port. `loop`, `dispatch(task_id, task, principal,
    /// scheme)`, `on_cancel(task_id)` and `check_credential(scheme,
    /// credential) -> (status, principal)` are the Python side.
    #[pyo3(signature = (host, port, loop_, dispatch, on_cancel, check_credential=None))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        py: Python<'_>,
        host: Bound<'_, PyString>,
        port: u16,
        loop_: Py<PyAny>,
        dispatch: Py<PyAny>,
        on_cancel: Py<PyAny>,
        check_credential: Option<Py<PyAny>>,
    ) -> Result<(String, u16)> {
        let host = text(&host, "host")?;
        if self.shared.auth.is_some() && check_credential.is_none() {
            return Err(Error::invalid(
                "the card declares security requirements but no credential check was given",
            ));
        }
        let mut running = lock(&self.running);
        if running.is_some() {
            return Err(Error::invalid("the server is already running"));
        }
        let rt = runtime::runtime()?;
        let listener = py
            .detach(|| rt.block_on(tokio::net::TcpListener::bind((host.as_str(), port))))
            .map_err(|e| Error::Transport(format!("could not listen on {host}:{port}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Transport(e.to_string()))?;
        let url_host = if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        let url = format!("http://{url_host}:{}/", addr.port());
        let mut card = self.template.clone();
        let needs_iface = card
            .get("supportedInterfaces")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if needs_iface {
            // 1.0 first; 0.3 on the same endpoint (chosen by method name).
            card["supportedInterfaces"] = json!([
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            ]);
        }
        if let Some(k) = &self.private_key {
            // Sign what a 1.0 (protobuf) verifier sees: the 1.0 fields.
            card = crate::card::sign(&crate::card::project_v1(&card), k, self.kid.as_deref())?;
        }
        if needs_iface {
            // The 0.3 top-level fields for 0.3-only clients: unsigned, as
            // with the official SDK; 1.0 verifiers drop them.
            if let Some(o) = card.as_object_mut() {
                o.entry("url").or_insert_with(|| json!(url));
                o.entry("protocolVersion").or_insert_with(|| json!("0.3.0"));
                o.entry("preferredTransport")
                    .or_insert_with(|| json!("JSONRPC"));
            }
        }
        *lock(&self.shared.card_bytes) = Bytes::from(serde_json::to_vec(&card).unwrap_or_default());
        *lock(&self.shared.card) = card;
        *lock(&self.shared.bridge) = Some(Arc::new(PyBridge {
            loop_,
            dispatch,
            on_cancel,
            check_credential,
        }));
        let _ = self.shared.shutdown.send(false);
        let app = Router::new()
            .route("/.well-known/agent-card.json", get(rpc::card_handler))
            .route("/.well-known/agent.json", get(rpc::card_handler))
            .route("/", post(rpc::rpc_handler))
            .with_state(self.shared.clone());
        let stop = self.shared.shutdown.subscribe();
        let handle = rt.spawn(conn::serve(listener, app, self.shared.conn, stop));
        *running = Some((addr, handle));
        Ok((url, addr.port()))
    }

    /// Stops serving: open streams end, in-flight requests get `timeout`
    /// seconds, then the server task (and every connection) is aborted.
    /// Idempotent.
    #[pyo3(signature = (timeout=5.0))]
    fn stop(&self, py: Python<'_>, timeout: f64) -> Result<()> {
        let Some((_, handle)) = lock(&self.running).take() else {
            return Ok(());
        };
        let _ = self.shared.shutdown.send(true);
        let rt = runtime::runtime()?;
        let abort = handle.abort_handle();
        let t = Duration::from_secs_f64(if timeout.is_finite() {
            timeout.clamp(0.0, 3600.0)
        } else {
            5.0
        });
        py.detach(|| {
            if rt
                .block_on(async move { tokio::time::timeout(t, handle).await })
                .is_err()
            {
                abort.abort();
            }
        });
        let bridge = lock(&self.shared.bridge).take();
        drop(bridge);
        Ok(())
    }

    /// The served (final, signed) card, once started.
    #[getter]
    fn card(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &lock(&self.shared.card))
    }

    /// Records a status change; False if the task already ended (cancelled).
    #[pyo3(signature = (task_id, state, message=None))]
    fn update_status(
        &self,
        task_id: Bound<'_, PyString>,
        state: Bound<'_, PyString>,
        message: Option<&Bound<'_, PyAny>>,
    ) -> Result<bool> {
        let task_id = text(&task_id, "task_id")?;
        let state = text(&state, "state")?;
        let m = message.map(|m| from_py_arg(m, "message")).transpose()?;
        self.shared.set_status(&task_id, &state, m)
    }

    /// Adds (or appends to) an artifact; False if the task already ended.
    #[pyo3(signature = (task_id, artifact, append=false, last_chunk=false))]
    fn add_artifact(
        &self,
        task_id: Bound<'_, PyString>,
        artifact: &Bound<'_, PyAny>,
        append: bool,
        last_chunk: bool,
    ) -> Result<bool> {
        let task_id = text(&task_id, "task_id")?;
        self.shared.add_artifact(
            &task_id,
            from_py_arg(artifact, "artifact")?,
            append,
            last_chunk,
        )
    }

    /// The task as stored (None once evicted).
    fn get_task(
        &self,
        py: Python<'_>,
        task_id: Bound<'_, PyString>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let task_id = text(&task_id, "task_id")?;
        self.shared
            .snapshot(&task_id, None, true)
            .map(|t| to_py(py, &t))
            .transpose()
    }

    /// `(stored tasks, open streams)`.
    fn stats(&self) -> (usize, usize) {
        (
            lock(&self.shared.store).map.len(),
            self.shared.open_streams.load(Ordering::SeqCst),
        )
    }
}
