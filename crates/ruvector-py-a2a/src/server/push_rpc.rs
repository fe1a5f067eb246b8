//! The four push-notification config methods and the per-task delivery
//! worker (the webhook checks and POSTs themselves are in [`crate::push`]).

use std::sync::Arc;

use serde_json::{json, Value};

use ruvector_py_core::runtime;

use super::rpc::{
    param_str, RpcError, RpcResult, INTERNAL, INVALID_PARAMS, PUSH_NOT_SUPPORTED, TASK_NOT_FOUND,
};
use super::store::{lock, Shared};
use crate::push;
use crate::task_state::is_terminal;

/// Create / Get / List / Delete `TaskPushNotificationConfig`.
pub(super) async fn push_method(s: &Arc<Shared>, method: &str, p: &Value) -> RpcResult<Value> {
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
        if is_terminal(state) {
            return;
        }
    }
}
