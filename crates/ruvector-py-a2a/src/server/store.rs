//! The task store and the state shared by every request of one server:
//! tasks, their subscribers and webhooks, limits, the Python bridge.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use pyo3::prelude::*;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::error::{Error, FromBase, Result};

use super::auth::AuthPlan;
use crate::push;
use crate::task_state::{is_terminal, STATES};
use crate::util::{now_rfc3339, uuid4};

/// Messages kept per task.
pub(super) const MAX_HISTORY: usize = 256;

pub(super) struct Entry {
    pub task: Value,
    pub tx: broadcast::Sender<Value>,
    pub bytes: usize,
    /// Webhooks of the task and the queue of their delivery worker.
    pub push: Vec<push::PushConfig>,
    pub push_tx: Option<tokio::sync::mpsc::Sender<Value>>,
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

    pub fn state(&self) -> &str {
        self.task
            .pointer("/status/state")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

#[derive(Default)]
pub(super) struct Store {
    pub map: HashMap<String, Entry>,
    pub order: VecDeque<String>,
}

/// The Python side: its asyncio loop, the dispatcher, the cancel hook and
/// (when the card declares security) the credential check.
pub(super) struct PyBridge {
    pub loop_: Py<PyAny>,
    pub dispatch: Py<PyAny>,
    pub on_cancel: Py<PyAny>,
    pub check_credential: Option<Py<PyAny>>,
}

/// Size and count limits of the task store and streams.
pub(super) struct Limits {
    pub max_body: usize,
    pub max_event: usize,
    pub max_tasks: usize,
    pub max_task_bytes: usize,
    pub max_streams: usize,
}

pub(super) struct PushSettings {
    pub allow_private: bool,
    pub client: reqwest::Client,
}

pub(super) struct Shared {
    pub card: Mutex<Value>,
    pub card_bytes: Mutex<Bytes>,
    pub store: Mutex<Store>,
    pub open_streams: AtomicUsize,
    pub limits: Limits,
    pub conn: super::conn::ConnLimits,
    pub auth: Option<AuthPlan>,
    pub bridge: Mutex<Option<Arc<PyBridge>>>,
    pub shutdown: watch::Sender<bool>,
    /// `None` when push notifications are off.
    pub push: Option<PushSettings>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn snapshot(&self, id: &str, history: Option<usize>, artifacts: bool) -> Option<Value> {
        let st = lock(&self.store);
        let e = st.map.get(id)?;
        Some(trim_task(&e.task, history, artifacts))
    }

    /// Applies a status change and broadcasts it. `Ok(false)` when the task
    /// is already in a terminal state (the change is dropped).
    pub fn set_status(&self, id: &str, state: &str, message: Option<Value>) -> Result<bool> {
        if !STATES.contains(&state) {
            return Err(Error::invalid(format!("unknown task state {state:?}")));
        }
        let mut st = lock(&self.store);
        let e = st
            .map
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("no task {id}"), None))?;
        if is_terminal(e.state()) {
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

    pub fn add_artifact(
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
        if is_terminal(e.state()) {
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

/// A copy of the task with the last `history` messages and, optionally,
/// without artifacts; empty lists are left out.
pub(super) fn trim_task(task: &Value, history: Option<usize>, artifacts: bool) -> Value {
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

pub(super) fn fill_ids(m: &mut Value, task_id: &str, context_id: &str, role: &str) {
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

pub(super) fn text_message(t: &str) -> Value {
    json!({"messageId": uuid4(), "role": "ROLE_AGENT", "parts": [{"text": t}]})
}
