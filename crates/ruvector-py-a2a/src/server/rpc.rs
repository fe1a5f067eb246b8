//! JSON-RPC routing and the task methods: the request is authenticated
//! (see [`super::auth`]), its body read under the size cap and deadline,
//! parsed, translated from 0.3 when its method name is a 0.3 one, and
//! dispatched. A new message is handed to the Python dispatcher on its
//! asyncio loop (`loop.call_soon_threadsafe`), off the request, so `GetTask`
//! sees a running task and a client that disconnects does not stop it.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use pyo3::prelude::*;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use ruvector_py_core::runtime::InflightGuard;

use super::auth::{self, Principal};
use super::push_rpc::push_method;
use super::store::{fill_ids, lock, text_message, trim_task, Entry, Shared, MAX_HISTORY};
use super::stream::sse_response;
use crate::compat03;
use crate::json::to_py;
use crate::task_state::{is_final, is_terminal};
use crate::util::{now_rfc3339, uuid4};

/// Events buffered per task for its slowest stream reader; a reader that
/// falls further behind gets a task snapshot (`{"task": ...}`, the full
/// state) instead of the events it missed.
const STREAM_BUFFER: usize = 1024;

// JSON-RPC and A2A error codes.
pub(super) const PARSE_ERROR: i64 = -32700;
pub(super) const INVALID_REQUEST: i64 = -32600;
pub(super) const METHOD_NOT_FOUND: i64 = -32601;
pub(super) const INVALID_PARAMS: i64 = -32602;
pub(super) const INTERNAL: i64 = -32603;
/// Implementation-defined server error: the request was refused before it
/// was read (credentials, size, deadline); the HTTP status says which.
pub(super) const REFUSED: i64 = -32000;
pub(super) const TASK_NOT_FOUND: i64 = -32001;
pub(super) const TASK_NOT_CANCELABLE: i64 = -32002;
pub(super) const PUSH_NOT_SUPPORTED: i64 = -32003;
pub(super) const UNSUPPORTED: i64 = -32004;
pub(super) const EXTENDED_CARD_NOT_CONFIGURED: i64 = -32007;
pub(super) const VERSION_NOT_SUPPORTED: i64 = -32009;

pub(super) struct RpcError(pub i64, pub String);

pub(super) type RpcResult<T> = std::result::Result<T, RpcError>;

pub(super) fn rpc_body(id: &Value, r: RpcResult<Value>) -> Value {
    match r {
        Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
        Err(RpcError(code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    }
}

pub(super) fn json_response(v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An HTTP error status with a JSON-RPC error body (`id` null: the request
/// was not read), and the connection closed when `close`.
pub(super) fn refusal(status: StatusCode, message: String, close: bool) -> Response {
    let mut r = json_response(&rpc_body(&Value::Null, Err(RpcError(REFUSED, message))));
    *r.status_mut() = status;
    if close {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

pub(super) fn param_str<'a>(p: &'a Value, k: &str) -> RpcResult<&'a str> {
    p.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError(INVALID_PARAMS, format!("params.{k} must be a string")))
}

fn param_usize(p: &Value, k: &str) -> RpcResult<Option<usize>> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(|n| Some(n as usize))
            .ok_or_else(|| {
                RpcError(
                    INVALID_PARAMS,
                    format!("params.{k} must be a non-negative integer"),
                )
            }),
    }
}

/// The card endpoints: public, never behind the card's security.
pub(super) async fn card_handler(State(s): State<Arc<Shared>>) -> Response {
    let b = lock(&s.card_bytes).clone();
    ([(header::CONTENT_TYPE, "application/json")], b).into_response()
}

/// Bytes of an oversized body read and discarded before answering 413, so a
/// client that writes its whole body before reading sees the answer (not a
/// reset); past it the connection is just closed.
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// Reads the whole body: at most `max` bytes (413 past it) within
/// `deadline` (408 past it; the connection is then closed).
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    deadline: std::time::Duration,
) -> std::result::Result<Bytes, Response> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    let read = async {
        if announced.is_some_and(|n| n > max as u64) {
            return Ok(None);
        }
        let mut out: Vec<u8> = Vec::with_capacity(announced.unwrap_or(0) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                refusal(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {e}"),
                    true,
                )
            })?;
            if out.len() + chunk.len() > max {
                return Ok(None);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Some(Bytes::from(out)))
    };
    let timed_out = || {
        refusal(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within body_read_timeout = {:?}",
                deadline
            ),
            true,
        )
    };
    let start = tokio::time::Instant::now();
    match tokio::time::timeout(deadline, read).await {
        Err(_) => Err(timed_out()),
        Ok(Err(r)) => Err(r),
        Ok(Ok(Some(b))) => Ok(b),
        Ok(Ok(None)) => {
            let drain = async {
                let mut n = 0usize;
                while let Some(Ok(c)) = stream.next().await {
                    n += c.len();
                    if n > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout_at(start + deadline, drain).await;
            Err(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body exceeds max_body_bytes = {max}"),
                true,
            ))
        }
    }
}

/// `POST /`: one JSON-RPC request (no batches).
pub(super) async fn rpc_handler(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // Credentials first: nothing of an unauthenticated request is read.
    let principal = match auth::authorize(&s, &parts.headers, &parts.uri).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let body = match read_body(
        &parts.headers,
        body,
        s.limits.max_body,
        s.conn.body_read_timeout,
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    route(&s, &parts.headers, &body, principal).await
}

async fn route(
    s: &Arc<Shared>,
    headers: &HeaderMap,
    body: &[u8],
    principal: Principal,
) -> Response {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return json_response(&rpc_body(
                &Value::Null,
                Err(RpcError(PARSE_ERROR, format!("parse error: {e}"))),
            ))
        }
    };
    let Some(obj) = req.as_object() else {
        let msg = if req.is_array() {
            "batch requests are not supported"
        } else {
            "the request must be a JSON object"
        };
        return json_response(&rpc_body(
            &Value::Null,
            Err(RpcError(INVALID_REQUEST, msg.into())),
        ));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    if !(id.is_string() || id.is_number() || id.is_null())
        || obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0")
    {
        return json_response(&rpc_body(
            &Value::Null,
            Err(RpcError(
                INVALID_REQUEST,
                "not a JSON-RPC 2.0 request".into(),
            )),
        ));
    }
    let Some(wire_method) = obj.get("method").and_then(Value::as_str) else {
        return json_response(&rpc_body(
            &id,
            Err(RpcError(INVALID_REQUEST, "no method".into())),
        ));
    };
    // A 0.3 method name selects the 0.3 dialect for this request.
    let (method, v03) = match compat03::method_from_03(wire_method) {
        Some(m) => (m, true),
        None => (wire_method, false),
    };
    let respond = |r: RpcResult<Value>| -> Response {
        let r = if v03 {
            r.map(|v| compat03::result_to_03(method, v))
        } else {
            r
        };
        json_response(&rpc_body(&id, r))
    };
    if !v03 {
        if let Some(v) = headers.get("a2a-version").and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            if !(v.is_empty() || v == "1.0" || v == "1") {
                return respond(Err(RpcError(
                    VERSION_NOT_SUPPORTED,
                    format!("A2A-Version {v} is not supported; this server speaks 1.0 (and 0.3 by method name)"),
                )));
            }
        }
    }
    let mut params = obj.get("params").cloned().unwrap_or_else(|| json!({}));
    if !params.is_object() {
        return respond(Err(RpcError(
            INVALID_PARAMS,
            "params must be an object".into(),
        )));
    }
    if v03 {
        params = compat03::params_from_03(method, &params);
    }
    match method {
        "SendMessage" => respond(send_message(s, &params, principal).await),
        "SendStreamingMessage" => match start_task(s, &params) {
            Err(e) => respond(Err(e)),
            Ok((task_id, rx)) => {
                // The snapshot is taken before the agent runs: every later
                // change is in `rx`, none is lost or duplicated.
                let first = s.snapshot(&task_id, None, true);
                if let Err(e) = dispatch(s, &task_id, principal).await {
                    return respond(Err(e));
                }
                sse_response(s, id.clone(), &task_id, rx, first, v03)
            }
        },
        "SubscribeToTask" => {
            let tid = match param_str(&params, "id") {
                Ok(t) => t.to_owned(),
                Err(e) => return respond(Err(e)),
            };
            let found = {
                let st = lock(&s.store);
                match st.map.get(&tid) {
                    None => Err(RpcError(TASK_NOT_FOUND, format!("task {tid} not found"))),
                    Some(e) if is_terminal(e.state()) => Err(RpcError(
                        UNSUPPORTED,
                        format!("task {tid} is in a terminal state"),
                    )),
                    Some(e) => Ok((e.tx.subscribe(), Some(trim_task(&e.task, None, true)))),
                }
            };
            match found {
                Ok((rx, first)) => sse_response(s, id.clone(), &tid, rx, first, v03),
                Err(e) => respond(Err(e)),
            }
        }
        "GetTask" => respond((|| {
            let tid = param_str(&params, "id")?;
            let h = param_usize(&params, "historyLength")?;
            s.snapshot(tid, h, true)
                .ok_or_else(|| RpcError(TASK_NOT_FOUND, format!("task {tid} not found")))
        })()),
        "ListTasks" => respond(list_tasks(s, &params)),
        "CancelTask" => respond(cancel_task(s, &params).await),
        "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => respond(push_method(s, method, &params).await),
        "GetExtendedAgentCard" => respond(Err(RpcError(
            EXTENDED_CARD_NOT_CONFIGURED,
            "no extended agent card is configured".into(),
        ))),
        m => respond(Err(RpcError(
            METHOD_NOT_FOUND,
            format!("method {m:?} not found"),
        ))),
    }
}

/// Validates the message, creates (or resumes) its task and subscribes to it.
fn start_task(s: &Shared, params: &Value) -> RpcResult<(String, broadcast::Receiver<Value>)> {
    let mut msg = params
        .get("message")
        .cloned()
        .ok_or_else(|| RpcError(INVALID_PARAMS, "params.message is required".into()))?;
    let parts_ok = msg
        .get("parts")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    if !msg.is_object() || !parts_ok {
        return Err(RpcError(
            INVALID_PARAMS,
            "params.message must be an object with a non-empty parts list".into(),
        ));
    }
    let role = msg
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("ROLE_USER");
    if role != "ROLE_USER" && role != "user" {
        return Err(RpcError(
            INVALID_PARAMS,
            format!("a sent message must have role ROLE_USER, got {role}"),
        ));
    }
    msg["role"] = Value::String("ROLE_USER".into());
    let n = serde_json::to_vec(&msg).map(|v| v.len()).unwrap_or(0);
    if n > s.limits.max_event {
        return Err(RpcError(
            INVALID_PARAMS,
            format!(
                "the message is {n} bytes, over max_event_bytes = {}",
                s.limits.max_event
            ),
        ));
    }
    let mut st = lock(&s.store);
    if let Some(tid) = msg.get("taskId").and_then(Value::as_str).map(str::to_owned) {
        // A follow-up message for an interrupted task.
        let e = st
            .map
            .get_mut(&tid)
            .ok_or_else(|| RpcError(TASK_NOT_FOUND, format!("task {tid} not found")))?;
        if is_terminal(e.state()) {
            return Err(RpcError(
                UNSUPPORTED,
                format!("task {tid} is in a terminal state"),
            ));
        }
        let ctx = e.task["contextId"].as_str().unwrap_or("").to_owned();
        fill_ids(&mut msg, &tid, &ctx, "ROLE_USER");
        if let Some(h) = e.task["history"].as_array_mut() {
            h.push(msg);
            if h.len() > MAX_HISTORY {
                h.remove(0);
            }
        }
        e.bytes += n;
        return Ok((tid, e.tx.subscribe()));
    }
    if st.map.len() >= s.limits.max_tasks {
        let victim = st
            .order
            .iter()
            .position(|id| st.map.get(id).is_none_or(|e| is_terminal(e.state())));
        match victim {
            Some(i) => {
                if let Some(old) = st.order.remove(i) {
                    st.map.remove(&old);
                }
            }
            None => {
                return Err(RpcError(
                    INTERNAL,
                    format!(
                        "server at capacity: {} tasks are running",
                        s.limits.max_tasks
                    ),
                ))
            }
        }
    }
    let tid = uuid4();
    let ctx = msg
        .get("contextId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(uuid4);
    fill_ids(&mut msg, &tid, &ctx, "ROLE_USER");
    let mut task = json!({
        "id": tid, "contextId": ctx,
        "status": {"state": "TASK_STATE_SUBMITTED", "timestamp": now_rfc3339()},
        "history": [msg],
    });
    if let Some(md) = params.get("metadata").filter(|m| m.is_object()) {
        task["metadata"] = md.clone();
    }
    let (tx, rx) = broadcast::channel(STREAM_BUFFER);
    st.map.insert(
        tid.clone(),
        Entry {
            task,
            tx,
            bytes: n,
            push: Vec::new(),
            push_tx: None,
        },
    );
    st.order.push_back(tid.clone());
    Ok((tid, rx))
}

/// Hands the task (and the caller's principal) to the Python dispatcher on
/// its asyncio loop.
async fn dispatch(s: &Arc<Shared>, tid: &str, principal: Principal) -> RpcResult<()> {
    let bridge = lock(&s.bridge)
        .clone()
        .ok_or_else(|| RpcError(INTERNAL, "the agent is not running".into()))?;
    let task = s
        .snapshot(tid, None, true)
        .ok_or_else(|| RpcError(INTERNAL, "task vanished".into()))?;
    let tid2 = tid.to_owned();
    let r = tokio::task::spawn_blocking(move || -> std::result::Result<(), String> {
        let Some(_g) = InflightGuard::enter() else {
            return Err("the interpreter is exiting".into());
        };
        Python::attach(|py| {
            let t = to_py(py, &task).map_err(|e| e.to_string())?;
            let who = principal
                .as_ref()
                .map_or_else(|| py.None(), |p| p.principal.clone_ref(py));
            let scheme = principal.as_ref().map(|p| p.scheme.clone());
            bridge
                .loop_
                .call_method1(
                    py,
                    "call_soon_threadsafe",
                    (bridge.dispatch.clone_ref(py), tid2, t, who, scheme),
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    })
    .await
    .map_err(|e| RpcError(INTERNAL, e.to_string()))?;
    if let Err(e) = r {
        let _ = s.set_status(
            tid,
            "TASK_STATE_FAILED",
            Some(text_message(&format!("agent unavailable: {e}"))),
        );
        return Err(RpcError(
            INTERNAL,
            format!("could not start the agent: {e}"),
        ));
    }
    Ok(())
}

async fn send_message(s: &Arc<Shared>, params: &Value, principal: Principal) -> RpcResult<Value> {
    let (tid, mut rx) = start_task(s, params)?;
    dispatch(s, &tid, principal).await?;
    let immediate = params
        .pointer("/configuration/returnImmediately")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let history = param_usize(
        params.get("configuration").unwrap_or(&Value::Null),
        "historyLength",
    )?;
    let mut shutdown = s.shutdown.subscribe();
    if !immediate {
        loop {
            let st = s
                .snapshot(&tid, Some(0), false)
                .map(|t| t["status"]["state"].as_str().unwrap_or("").to_owned());
            match st {
                None => break,
                Some(x) if is_final(&x) => break,
                _ => {}
            }
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = shutdown.changed() => break,
            }
        }
    }
    let t = s
        .snapshot(&tid, history, true)
        .ok_or_else(|| RpcError(TASK_NOT_FOUND, format!("task {tid} was evicted")))?;
    Ok(json!({"task": t}))
}

fn list_tasks(s: &Shared, p: &Value) -> RpcResult<Value> {
    let ctx = p.get("contextId").and_then(Value::as_str);
    let status = p.get("status").and_then(Value::as_str);
    let page = param_usize(p, "pageSize")?.unwrap_or(50).clamp(1, 100);
    let offset: usize = match p.get("pageToken").and_then(Value::as_str) {
        None | Some("") => 0,
        Some(t) => t
            .parse()
            .map_err(|_| RpcError(INVALID_PARAMS, "bad pageToken".into()))?,
    };
    let history = param_usize(p, "historyLength")?.or(Some(0));
    let artifacts = p
        .get("includeArtifacts")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let st = lock(&s.store);
    let matching: Vec<&Entry> = st
        .order
        .iter()
        .rev()
        .filter_map(|id| st.map.get(id))
        .filter(|e| ctx.is_none_or(|c| e.task["contextId"].as_str() == Some(c)))
        .filter(|e| status.is_none_or(|x| e.state() == x))
        .collect();
    let total = matching.len();
    let tasks: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page)
        .map(|e| trim_task(&e.task, history, artifacts))
        .collect();
    let next = if offset + tasks.len() < total {
        (offset + tasks.len()).to_string()
    } else {
        String::new()
    };
    Ok(json!({"tasks": tasks, "nextPageToken": next, "pageSize": page, "totalSize": total}))
}

async fn cancel_task(s: &Arc<Shared>, p: &Value) -> RpcResult<Value> {
    let tid = param_str(p, "id")?.to_owned();
    {
        let st = lock(&s.store);
        let e = st
            .map
            .get(&tid)
            .ok_or_else(|| RpcError(TASK_NOT_FOUND, format!("task {tid} not found")))?;
        if is_terminal(e.state()) {
            return Err(RpcError(
                TASK_NOT_CANCELABLE,
                format!("task {tid} is already {}", e.state()),
            ));
        }
    }
    s.set_status(&tid, "TASK_STATE_CANCELED", None)
        .map_err(|e| RpcError(INTERNAL, e.to_string()))?;
    let bridge = lock(&s.bridge).clone();
    if let Some(bridge) = bridge {
        let tid2 = tid.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let Some(_g) = InflightGuard::enter() else {
                return;
            };
            Python::attach(|py| {
                let _ = bridge.loop_.call_method1(
                    py,
                    "call_soon_threadsafe",
                    (bridge.on_cancel.clone_ref(py), tid2),
                );
            });
        })
        .await;
    }
    s.snapshot(&tid, None, true)
        .ok_or_else(|| RpcError(TASK_NOT_FOUND, format!("task {tid} was evicted")))
}
