//! The A2A 1.0 JSON-RPC server (axum) that hosts a Python agent.
//!
//! Rust owns HTTP, JSON-RPC, the task store and SSE; the Python side owns the
//! agent. A new message is handed to the Python dispatcher on its asyncio
//! loop (`loop.call_soon_threadsafe`), off the request, so `GetTask` sees a
//! running task and a client that disconnects does not stop it. The agent
//! reports through [`ServerCore::update_status`] / [`ServerCore::add_artifact`],
//! which update the store and fan out to the task's SSE subscribers.
//!
//! Bounds: request body (`max_body_bytes`), one event/artifact
//! (`max_event_bytes`), stored tasks (`max_tasks`, oldest finished evicted
//! first, new tasks refused when all are running), bytes per task
//! (`max_task_bytes`), history per task, open SSE streams (`max_streams`).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use pyo3::prelude::*;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::error::{Error, FromBase, Result};
use ruvector_py_core::runtime::{self, InflightGuard};

use crate::compat03;
use crate::json::{from_py, to_py};
use crate::push;
use crate::util::{now_rfc3339, uuid4};

const TERMINAL: [&str; 4] = [
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_REJECTED",
];
const INTERRUPTED: [&str; 2] = ["TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"];
const STATES: [&str; 8] = [
    "TASK_STATE_SUBMITTED",
    "TASK_STATE_WORKING",
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_INPUT_REQUIRED",
    "TASK_STATE_REJECTED",
    "TASK_STATE_AUTH_REQUIRED",
];
const MAX_HISTORY: usize = 256;
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Events buffered per task for its slowest stream reader; a reader that
/// falls further behind gets a task snapshot (`{"task": ...}`, the full
/// state) instead of the events it missed.
const STREAM_BUFFER: usize = 1024;

// JSON-RPC and A2A error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL: i64 = -32603;
const TASK_NOT_FOUND: i64 = -32001;
const TASK_NOT_CANCELABLE: i64 = -32002;
const PUSH_NOT_SUPPORTED: i64 = -32003;
const UNSUPPORTED: i64 = -32004;
const VERSION_NOT_SUPPORTED: i64 = -32009;

pub(crate) fn is_final(state: &str) -> bool {
    TERMINAL.contains(&state) || INTERRUPTED.contains(&state)
}

struct RpcError(i64, String);

type RpcResult<T> = std::result::Result<T, RpcError>;

struct Entry {
    task: Value,
    tx: broadcast::Sender<Value>,
    bytes: usize,
    /// Webhooks of the task and the queue of their delivery worker.
    push: Vec<push::PushConfig>,
    push_tx: Option<tokio::sync::mpsc::Sender<Value>>,
}

impl Entry {
    /// Fans an event out to streams and webhooks.
    fn emit(&self, ev: Value) {
        if let Some(p) = &self.push_tx {
            // A full queue drops the event: delivery never holds memory unbounded.
            let _ = p.try_send(ev.clone());
        }
        let _ = self.tx.send(ev);
    }
}

impl Entry {
    fn state(&self) -> &str {
        self.task
            .pointer("/status/state")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

#[derive(Default)]
struct Store {
    map: HashMap<String, Entry>,
    order: VecDeque<String>,
}

struct PyBridge {
    loop_: Py<PyAny>,
    dispatch: Py<PyAny>,
    on_cancel: Py<PyAny>,
}

struct Limits {
    max_body: usize,
    max_event: usize,
    max_tasks: usize,
    max_task_bytes: usize,
    max_streams: usize,
}

struct Shared {
    card: Mutex<Value>,
    card_bytes: Mutex<Bytes>,
    store: Mutex<Store>,
    open_streams: AtomicUsize,
    limits: Limits,
    bridge: Mutex<Option<Arc<PyBridge>>>,
    shutdown: watch::Sender<bool>,
    /// `None` when push notifications are off.
    push: Option<PushSettings>,
}

struct PushSettings {
    allow_private: bool,
    client: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn snapshot(&self, id: &str, history: Option<usize>, artifacts: bool) -> Option<Value> {
        let st = lock(&self.store);
        let e = st.map.get(id)?;
        Some(trim_task(&e.task, history, artifacts))
    }

    /// Applies a status change and broadcasts it. `Ok(false)` when the task
    /// is already in a terminal state (the change is dropped).
    fn set_status(&self, id: &str, state: &str, message: Option<Value>) -> Result<bool> {
        if !STATES.contains(&state) {
            return Err(Error::invalid(format!("unknown task state {state:?}")));
        }
        let mut st = lock(&self.store);
        let e = st
            .map
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("no task {id}"), None))?;
        if TERMINAL.contains(&e.state()) {
            return Ok(false);
        }
        let mut status = json!({"state": state, "timestamp": now_rfc3339()});
        if let Some(mut m) = message {
            let n = serde_json::to_vec(&m).map(|v| v.len()).unwrap_or(0);
            if n > self.limits.max_event {
                return Err(Error::invalid(format!(
                    "a status message of {n} bytes exceeds max_event_bytes = {}",
                    self.limits.max_event
                )));
            }
            if e.bytes + n > self.limits.max_task_bytes {
                return Err(Error::invalid(format!(
                    "task {id} would exceed max_task_bytes = {}",
                    self.limits.max_task_bytes
                )));
            }
            e.bytes += n;
            fill_ids(
                &mut m,
                id,
                e.task["contextId"].as_str().unwrap_or(""),
                "ROLE_AGENT",
            );
            status["message"] = m.clone();
            let hist = e.task["history"].as_array_mut();
            if let Some(h) = hist {
                h.push(m);
                if h.len() > MAX_HISTORY {
                    h.remove(0);
                }
            }
        }
        e.task["status"] = status.clone();
        let ev = json!({"statusUpdate": {"taskId": id, "contextId": e.task["contextId"], "status": status}});
        e.emit(ev);
        Ok(true)
    }

    fn add_artifact(
        &self,
        id: &str,
        mut artifact: Value,
        append: bool,
        last_chunk: bool,
    ) -> Result<bool> {
        let n = serde_json::to_vec(&artifact).map(|v| v.len()).unwrap_or(0);
        if n > self.limits.max_event {
            return Err(Error::invalid(format!(
                "an artifact of {n} bytes exceeds max_event_bytes = {}",
                self.limits.max_event
            )));
        }
        let obj = artifact
            .as_object_mut()
            .ok_or_else(|| Error::invalid("an artifact must be a JSON object"))?;
        if !obj.get("parts").is_some_and(Value::is_array) {
            return Err(Error::invalid("an artifact needs a list of parts"));
        }
        if !obj.get("artifactId").is_some_and(Value::is_string) {
            obj.insert("artifactId".into(), Value::String(uuid4()));
        }
        let mut st = lock(&self.store);
        let e = st
            .map
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("no task {id}"), None))?;
        if TERMINAL.contains(&e.state()) {
            return Ok(false);
        }
        if e.bytes + n > self.limits.max_task_bytes {
            return Err(Error::invalid(format!(
                "task {id} would exceed max_task_bytes = {}",
                self.limits.max_task_bytes
            )));
        }
        e.bytes += n;
        let aid = artifact["artifactId"].clone();
        if !e.task.get("artifacts").is_some_and(Value::is_array) {
            e.task["artifacts"] = json!([]);
        }
        let arts = e.task["artifacts"]
            .as_array_mut()
            .expect("artifacts is an array");
        match arts.iter_mut().find(|a| a["artifactId"] == aid) {
            Some(existing) if append => {
                if let (Some(dst), Some(src)) = (
                    existing["parts"].as_array_mut(),
                    artifact["parts"].as_array(),
                ) {
                    dst.extend(src.iter().cloned());
                }
            }
            Some(existing) => *existing = artifact.clone(),
            None => arts.push(artifact.clone()),
        }
        let mut ev = json!({"taskId": id, "contextId": e.task["contextId"], "artifact": artifact});
        if append {
            ev["append"] = Value::Bool(true);
        }
        if last_chunk {
            ev["lastChunk"] = Value::Bool(true);
        }
        e.emit(json!({"artifactUpdate": ev}));
        Ok(true)
    }
}

fn trim_task(task: &Value, history: Option<usize>, artifacts: bool) -> Value {
    let mut t = task.clone();
    if let Some(n) = history {
        if let Some(h) = t.get_mut("history").and_then(Value::as_array_mut) {
            let len = h.len();
            if n < len {
                h.drain(..len - n);
            }
        }
    }
    if !artifacts {
        if let Some(o) = t.as_object_mut() {
            o.remove("artifacts");
        }
    }
    if let Some(o) = t.as_object_mut() {
        if o.get("history")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            o.remove("history");
        }
        if o.get("artifacts")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            o.remove("artifacts");
        }
    }
    t
}

fn fill_ids(m: &mut Value, task_id: &str, context_id: &str, role: &str) {
    if let Some(o) = m.as_object_mut() {
        o.insert("taskId".into(), Value::String(task_id.into()));
        o.insert("contextId".into(), Value::String(context_id.into()));
        if !o.get("messageId").is_some_and(Value::is_string) {
            o.insert("messageId".into(), Value::String(uuid4()));
        }
        if !o.contains_key("role") {
            o.insert("role".into(), Value::String(role.into()));
        }
    }
}

fn rpc_body(id: &Value, r: RpcResult<Value>) -> Value {
    match r {
        Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
        Err(RpcError(code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    }
}

fn json_response(v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn param_str<'a>(p: &'a Value, k: &str) -> RpcResult<&'a str> {
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

async fn card_handler(State(s): State<Arc<Shared>>) -> Response {
    let b = lock(&s.card_bytes).clone();
    ([(header::CONTENT_TYPE, "application/json")], b).into_response()
}

async fn rpc_handler(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
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
        "SendMessage" => respond(send_message(&s, &params).await),
        "SendStreamingMessage" => match start_task(&s, &params) {
            Err(e) => respond(Err(e)),
            Ok((task_id, rx)) => {
                // The snapshot is taken before the agent runs: every later
                // change is in `rx`, none is lost or duplicated.
                let first = s.snapshot(&task_id, None, true);
                if let Err(e) = dispatch(&s, &task_id).await {
                    return respond(Err(e));
                }
                sse_response(&s, id.clone(), &task_id, rx, first, v03)
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
                    Some(e) if TERMINAL.contains(&e.state()) => Err(RpcError(
                        UNSUPPORTED,
                        format!("task {tid} is in a terminal state"),
                    )),
                    Some(e) => Ok((e.tx.subscribe(), Some(trim_task(&e.task, None, true)))),
                }
            };
            match found {
                Ok((rx, first)) => sse_response(&s, id.clone(), &tid, rx, first, v03),
                Err(e) => respond(Err(e)),
            }
        }
        "GetTask" => respond((|| {
            let tid = param_str(&params, "id")?;
            let h = param_usize(&params, "historyLength")?;
            s.snapshot(tid, h, true)
                .ok_or_else(|| RpcError(TASK_NOT_FOUND, format!("task {tid} not found")))
        })()),
        "ListTasks" => respond(list_tasks(&s, &params)),
        "CancelTask" => respond(cancel_task(&s, &params).await),
        "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => respond(push_method(&s, method, &params).await),
        "GetExtendedAgentCard" => respond(Err(RpcError(
            -32007,
            "no extended agent card is configured".into(),
        ))),
        m => respond(Err(RpcError(
            METHOD_NOT_FOUND,
            format!("method {m:?} not found"),
        ))),
    }
}

/// The four push-notification config methods.
async fn push_method(s: &Arc<Shared>, method: &str, p: &Value) -> RpcResult<Value> {
    let Some(settings) = &s.push else {
        return Err(RpcError(
            PUSH_NOT_SUPPORTED,
            "push notifications are not supported by this agent".into(),
        ));
    };
    let tid = param_str(p, "taskId")?.to_owned();
    let not_found = || RpcError(TASK_NOT_FOUND, format!("task {tid} not found"));
    match method {
        "CreateTaskPushNotificationConfig" => {
            let cfg = push::PushConfig::from_params(p).map_err(|m| RpcError(INVALID_PARAMS, m))?;
            if !lock(&s.store).map.contains_key(&tid) {
                return Err(not_found());
            }
            push::check_target(&cfg.url, settings.allow_private)
                .await
                .map_err(|m| RpcError(INVALID_PARAMS, m))?;
            let mut st = lock(&s.store);
            let e = st.map.get_mut(&tid).ok_or_else(not_found)?;
            e.push.retain(|c| c.id != cfg.id);
            if e.push.len() >= push::MAX_CONFIGS_PER_TASK {
                return Err(RpcError(
                    INVALID_PARAMS,
                    format!("a task has at most {} webhooks", push::MAX_CONFIGS_PER_TASK),
                ));
            }
            let public = cfg.public(&tid);
            e.push.push(cfg);
            if e.push_tx.is_none() {
                let (tx, rx) = tokio::sync::mpsc::channel(push::QUEUE);
                e.push_tx = Some(tx);
                let rt = runtime::runtime().map_err(|x| RpcError(INTERNAL, x.to_string()))?;
                rt.spawn(push_worker(Arc::downgrade(s), tid.clone(), rx));
            }
            Ok(public)
        }
        "GetTaskPushNotificationConfig" => {
            let id = param_str(p, "id")?;
            let st = lock(&s.store);
            let e = st.map.get(&tid).ok_or_else(not_found)?;
            e.push
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.public(&tid))
                .ok_or_else(|| {
                    RpcError(
                        TASK_NOT_FOUND,
                        format!("no push config {id} for task {tid}"),
                    )
                })
        }
        "ListTaskPushNotificationConfigs" => {
            let st = lock(&s.store);
            let e = st.map.get(&tid).ok_or_else(not_found)?;
            let configs: Vec<Value> = e.push.iter().map(|c| c.public(&tid)).collect();
            Ok(json!({"configs": configs, "nextPageToken": ""}))
        }
        _ => {
            let id = param_str(p, "id")?;
            let mut st = lock(&s.store);
            let e = st.map.get_mut(&tid).ok_or_else(not_found)?;
            e.push.retain(|c| c.id != id);
            Ok(json!({}))
        }
    }
}

/// Delivers one task's events to its webhooks, in order, until the task
/// ends or is evicted (or the server is dropped).
async fn push_worker(
    s: std::sync::Weak<Shared>,
    tid: String,
    mut rx: tokio::sync::mpsc::Receiver<Value>,
) {
    while let Some(ev) = rx.recv().await {
        let Some(shared) = s.upgrade() else { return };
        let Some(settings) = &shared.push else { return };
        let (configs, client, allow) = {
            let st = lock(&shared.store);
            match st.map.get(&tid) {
                Some(e) => (
                    e.push.clone(),
                    settings.client.clone(),
                    settings.allow_private,
                ),
                None => return,
            }
        };
        drop(shared);
        for c in &configs {
            push::deliver(&client, c, &ev, allow).await;
        }
        let state = ev
            .pointer("/statusUpdate/status/state")
            .and_then(Value::as_str)
            .unwrap_or("");
        if TERMINAL.contains(&state) {
            return;
        }
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
        if TERMINAL.contains(&e.state()) {
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
            .position(|id| st.map.get(id).is_none_or(|e| TERMINAL.contains(&e.state())));
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

/// Hands the task to the Python dispatcher on its asyncio loop.
async fn dispatch(s: &Arc<Shared>, tid: &str) -> RpcResult<()> {
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
            bridge
                .loop_
                .call_method1(
                    py,
                    "call_soon_threadsafe",
                    (bridge.dispatch.clone_ref(py), tid2, t),
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

fn text_message(t: &str) -> Value {
    json!({"messageId": uuid4(), "role": "ROLE_AGENT", "parts": [{"text": t}]})
}

async fn send_message(s: &Arc<Shared>, params: &Value) -> RpcResult<Value> {
    let (tid, mut rx) = start_task(s, params)?;
    dispatch(s, &tid).await?;
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
        if TERMINAL.contains(&e.state()) {
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

fn sse_response(
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
    #[pyo3(signature = (card, *, max_body_bytes, max_event_bytes, max_tasks, max_task_bytes, max_streams, private_key=None, kid=None, push_notifications=false, allow_private_webhooks=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        card: &Bound<'_, PyAny>,
        max_body_bytes: usize,
        max_event_bytes: usize,
        max_tasks: usize,
        max_task_bytes: usize,
        max_streams: usize,
        private_key: Option<Vec<u8>>,
        kid: Option<String>,
        push_notifications: bool,
        allow_private_webhooks: bool,
    ) -> Result<Self> {
        let push = if push_notifications {
            let client = reqwest::Client::builder()
                // rustls even where a workspace-wide build also enables reqwest's
                // default (OpenSSL) backend for the test-only rvagent-peer.
                .use_rustls_tls()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(push::TIMEOUT)
                .connect_timeout(push::TIMEOUT)
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
        let template = from_py(card)?;
        if !template.is_object() {
            return Err(Error::invalid("the card must be a dict"));
        }
        for (what, v) in [
            ("max_body_bytes", max_body_bytes),
            ("max_event_bytes", max_event_bytes),
            ("max_tasks", max_tasks),
            ("max_task_bytes", max_task_bytes),
            ("max_streams", max_streams),
        ] {
            if v == 0 {
                return Err(Error::invalid(format!("{what} must be at least 1")));
            }
        }
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
    /// bound port. `loop`, `dispatch(task_id, task)` and `on_cancel(task_id)`
    /// are the Python side.
    fn start(
        &self,
        py: Python<'_>,
        host: String,
        port: u16,
        loop_: Py<PyAny>,
        dispatch: Py<PyAny>,
        on_cancel: Py<PyAny>,
    ) -> Result<(String, u16)> {
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
        }));
        let _ = self.shared.shutdown.send(false);
        let app = Router::new()
            .route("/.well-known/agent-card.json", get(card_handler))
            .route("/.well-known/agent.json", get(card_handler))
            .route("/", post(rpc_handler))
            .layer(DefaultBodyLimit::max(self.shared.limits.max_body))
            .with_state(self.shared.clone());
        let mut stop = self.shared.shutdown.subscribe();
        // Small writes (SSE events, JSON-RPC answers) go out at once: with
        // Nagle on, a last small event could wait for a delayed ACK (~40 ms).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let handle = rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|v| *v).await;
                })
                .await;
        });
        *running = Some((addr, handle));
        Ok((url, addr.port()))
    }

    /// Stops serving: open streams end, in-flight requests get `timeout`
    /// seconds, then the server task is aborted. Idempotent.
    #[pyo3(signature = (timeout=5.0))]
    fn stop(&self, py: Python<'_>, timeout: f64) -> Result<()> {
        let Some((_, handle)) = lock(&self.running).take() else {
            return Ok(());
        };
        let _ = self.shared.shutdown.send(true);
        let rt = runtime::runtime()?;
        let abort = handle.abort_handle();
        let t = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
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
        task_id: &str,
        state: &str,
        message: Option<&Bound<'_, PyAny>>,
    ) -> Result<bool> {
        let m = message.map(from_py).transpose()?;
        self.shared.set_status(task_id, state, m)
    }

    /// Adds (or appends to) an artifact; False if the task already ended.
    #[pyo3(signature = (task_id, artifact, append=false, last_chunk=false))]
    fn add_artifact(
        &self,
        task_id: &str,
        artifact: &Bound<'_, PyAny>,
        append: bool,
        last_chunk: bool,
    ) -> Result<bool> {
        self.shared
            .add_artifact(task_id, from_py(artifact)?, append, last_chunk)
    }

    /// The task as stored (None once evicted).
    fn get_task(&self, py: Python<'_>, task_id: &str) -> PyResult<Option<Py<PyAny>>> {
        self.shared
            .snapshot(task_id, None, true)
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
