//! SSE task streams of the server (`SendStreamingMessage`,
//! `SubscribeToTask`): a first task snapshot, then the task's events until
//! a final state, with keep-alive comments while the agent is quiet.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::rpc::{json_response, rpc_body, RpcError, INTERNAL};
use super::store::Shared;
use crate::compat03;
use crate::task_state::is_final;

const KEEPALIVE: Duration = Duration::from_secs(15);

struct StreamGuard(Arc<Shared>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

fn sse_frame(id: &Value, result: &Value, v03: bool) -> Bytes {
    let body = if v03 {
        json!({"jsonrpc": "2.0", "id": id, "result": compat03::event_to_03(result)})
    } else {
        json!({"jsonrpc": "2.0", "id": id, "result": result})
    };
    Bytes::from(format!("data: {body}\n\n"))
}

/// The SSE answer following task `tid`: `first` (a snapshot taken before
/// `rx` could miss anything), then every event of `rx`.
pub(super) fn sse_response(
    s: &Arc<Shared>,
    id: Value,
    tid: &str,
    rx: broadcast::Receiver<Value>,
    first: Option<Value>,
    v03: bool,
) -> Response {
    if s.open_streams.fetch_add(1, Ordering::SeqCst) >= s.limits.max_streams {
        s.open_streams.fetch_sub(1, Ordering::SeqCst);
        return json_response(&rpc_body(
            &id,
            Err(RpcError(
                INTERNAL,
                format!(
                    "too many open streams (max_streams = {})",
                    s.limits.max_streams
                ),
            )),
        ));
    }
    let guard = StreamGuard(s.clone());
    let shutdown = s.shutdown.subscribe();
    struct St {
        first: Option<Value>,
        rx: broadcast::Receiver<Value>,
        shutdown: watch::Receiver<bool>,
        done: bool,
        id: Value,
        tid: String,
        shared: Arc<Shared>,
        v03: bool,
        _guard: StreamGuard,
    }
    let state = St {
        first,
        rx,
        shutdown,
        done: false,
        id,
        tid: tid.to_owned(),
        shared: s.clone(),
        v03,
        _guard: guard,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if let Some(t) = st.first.take() {
            let state = t["status"]["state"].as_str().unwrap_or("").to_owned();
            if is_final(&state) {
                st.done = true;
            }
            let frame = sse_frame(&st.id, &json!({"task": t}), st.v03);
            return Some((Ok::<Bytes, Infallible>(frame), st));
        }
        if *st.shutdown.borrow() {
            return None;
        }
        tokio::select! {
            r = st.rx.recv() => match r {
                Ok(ev) => {
                    let state = ev
                        .pointer("/statusUpdate/status/state")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if is_final(state) {
                        st.done = true;
                    }
                    let frame = sse_frame(&st.id, &ev, st.v03);
                    Some((Ok(frame), st))
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow a reader: resynchronise with a task snapshot.
                    let t = st.shared.snapshot(&st.tid, None, true)?;
                    if is_final(t["status"]["state"].as_str().unwrap_or("")) {
                        st.done = true;
                    }
                    let frame = sse_frame(&st.id, &json!({"task": t}), st.v03);
                    Some((Ok(frame), st))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            },
            _ = st.shutdown.changed() => None,
            _ = tokio::time::sleep(KEEPALIVE) => {
                Some((Ok(Bytes::from_static(b": keep-alive\n\n")), st))
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
