//! A2A 0.3 on the server: 0.3 method names and `kind`-tagged JSON are
//! translated to the 1.0 shapes the server works in, and answers back.

use serde_json::{json, Map, Value};

/// The A2A 0.3 method table: `(1.0 name, 0.3 name)`. The one copy: the
/// server translates with it, and the Python client reads it through
/// `_native.compat03_methods()`.
pub const METHODS: [(&str, &str); 10] = [
    ("SendMessage", "message/send"),
    ("SendStreamingMessage", "message/stream"),
    ("GetTask", "tasks/get"),
    ("CancelTask", "tasks/cancel"),
    ("SubscribeToTask", "tasks/resubscribe"),
    (
        "CreateTaskPushNotificationConfig",
        "tasks/pushNotificationConfig/set",
    ),
    (
        "GetTaskPushNotificationConfig",
        "tasks/pushNotificationConfig/get",
    ),
    (
        "ListTaskPushNotificationConfigs",
        "tasks/pushNotificationConfig/list",
    ),
    (
        "DeleteTaskPushNotificationConfig",
        "tasks/pushNotificationConfig/delete",
    ),
    ("GetExtendedAgentCard", "agent/getAuthenticatedExtendedCard"),
];

/// The 1.0 name of a 0.3 method, if it is one.
pub fn method_from_03(m: &str) -> Option<&'static str> {
    METHODS
        .iter()
        .find(|(_, old)| *old == m)
        .map(|(new, _)| *new)
}

/// The 0.3 method table as `[(1.0 name, 0.3 name)]` (for the Python client).
#[pyo3::pyfunction]
pub fn compat03_methods() -> Vec<(&'static str, &'static str)> {
    METHODS.to_vec()
}

fn part_from_03(p: &Value) -> Value {
    let Some(o) = p.as_object() else {
        return p.clone();
    };
    let mut out = Map::new();
    match o.get("kind").and_then(Value::as_str) {
        Some("text") => {
            out.insert("text".into(), o.get("text").cloned().unwrap_or(json!("")));
        }
        Some("data") => {
            out.insert("data".into(), o.get("data").cloned().unwrap_or(Value::Null));
        }
        Some("file") => {
            let f = o
                .get("file")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if let Some(b) = f.get("bytes") {
                out.insert("raw".into(), b.clone());
            } else {
                out.insert("url".into(), f.get("uri").cloned().unwrap_or(json!("")));
            }
            if let Some(n) = f.get("name") {
                out.insert("filename".into(), n.clone());
            }
            if let Some(m) = f.get("mimeType") {
                out.insert("mediaType".into(), m.clone());
            }
        }
        _ => return p.clone(),
    }
    if let Some(m) = o.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    Value::Object(out)
}

fn part_to_03(p: &Value) -> Value {
    let Some(o) = p.as_object() else {
        return p.clone();
    };
    let mut out = Map::new();
    if let Some(t) = o.get("text") {
        out.insert("kind".into(), json!("text"));
        out.insert("text".into(), t.clone());
    } else if o.contains_key("raw") || o.contains_key("url") {
        let mut f = Map::new();
        if let Some(b) = o.get("raw") {
            f.insert("bytes".into(), b.clone());
        } else if let Some(u) = o.get("url") {
            f.insert("uri".into(), u.clone());
        }
        if let Some(n) = o.get("filename") {
            f.insert("name".into(), n.clone());
        }
        if let Some(m) = o.get("mediaType") {
            f.insert("mimeType".into(), m.clone());
        }
        out.insert("kind".into(), json!("file"));
        out.insert("file".into(), Value::Object(f));
    } else {
        let d = o.get("data").cloned().unwrap_or(Value::Null);
        out.insert("kind".into(), json!("data"));
        out.insert(
            "data".into(),
            if d.is_object() {
                d
            } else {
                json!({"value": d})
            },
        );
    }
    if let Some(m) = o.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    Value::Object(out)
}

fn map_parts(v: &mut Value, f: fn(&Value) -> Value) {
    if let Some(parts) = v.get_mut("parts").and_then(Value::as_array_mut) {
        for p in parts.iter_mut() {
            *p = f(p);
        }
    }
}

/// A 0.3 message as 1.0.
pub fn message_from_03(m: &Value) -> Value {
    let mut out = m.clone();
    if let Some(o) = out.as_object_mut() {
        o.remove("kind");
        let role = match o.get("role").and_then(Value::as_str) {
            Some("agent") | Some("ROLE_AGENT") => "ROLE_AGENT",
            _ => "ROLE_USER",
        };
        o.insert("role".into(), json!(role));
    }
    map_parts(&mut out, part_from_03);
    out
}

fn message_to_03(m: &Value) -> Value {
    let mut out = m.clone();
    if let Some(o) = out.as_object_mut() {
        let role = if o.get("role").and_then(Value::as_str) == Some("ROLE_AGENT") {
            "agent"
        } else {
            "user"
        };
        o.insert("role".into(), json!(role));
        o.insert("kind".into(), json!("message"));
    }
    map_parts(&mut out, part_to_03);
    out
}

/// `TASK_STATE_INPUT_REQUIRED` → `input-required`.
fn state_to_03(s: &str) -> String {
    s.strip_prefix("TASK_STATE_")
        .unwrap_or(s)
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn status_to_03(s: &Value) -> Value {
    let mut out = s.clone();
    if let Some(o) = out.as_object_mut() {
        if let Some(st) = o.get("state").and_then(Value::as_str) {
            let v = state_to_03(st);
            o.insert("state".into(), json!(v));
        }
        if let Some(m) = o.get("message").cloned() {
            o.insert("message".into(), message_to_03(&m));
        }
    }
    out
}

fn artifact_to_03(a: &Value) -> Value {
    let mut out = a.clone();
    map_parts(&mut out, part_to_03);
    out
}

/// A 1.0 Task as 0.3.
pub fn task_to_03(t: &Value) -> Value {
    let mut out = t.clone();
    if let Some(o) = out.as_object_mut() {
        o.insert("kind".into(), json!("task"));
        if let Some(s) = o.get("status").cloned() {
            o.insert("status".into(), status_to_03(&s));
        }
        if let Some(h) = o.get_mut("history").and_then(Value::as_array_mut) {
            for m in h.iter_mut() {
                *m = message_to_03(m);
            }
        }
        if let Some(a) = o.get_mut("artifacts").and_then(Value::as_array_mut) {
            for x in a.iter_mut() {
                *x = artifact_to_03(x);
            }
        }
    }
    out
}

/// 0.3 params of `method` (a 1.0 name) as 1.0 params.
pub fn params_from_03(method: &str, p: &Value) -> Value {
    if method.ends_with("PushNotificationConfig") || method.ends_with("PushNotificationConfigs") {
        return push_params_from_03(method, p);
    }
    let mut out = p.clone();
    if let Some(o) = out.as_object_mut() {
        if let Some(m) = o.get("message").cloned() {
            o.insert("message".into(), message_from_03(&m));
        }
        if let Some(c) = o.get_mut("configuration").and_then(Value::as_object_mut) {
            if c.get("blocking").and_then(Value::as_bool) == Some(false) {
                c.insert("returnImmediately".into(), json!(true));
            }
        }
    }
    out
}

/// A 1.0 unary result (of `method`, a 1.0 name) as the 0.3 result.
pub fn result_to_03(method: &str, r: Value) -> Value {
    match method {
        "SendMessage" => event_to_03(&r),
        "GetTask" | "CancelTask" => task_to_03(&r),
        "CreateTaskPushNotificationConfig" | "GetTaskPushNotificationConfig" => {
            push_config_to_03(&r)
        }
        // 0.3 lists are a bare array; 0.3 delete answers null.
        "ListTaskPushNotificationConfigs" => Value::Array(
            r.get("configs")
                .and_then(Value::as_array)
                .map(|c| c.iter().map(push_config_to_03).collect())
                .unwrap_or_default(),
        ),
        "DeleteTaskPushNotificationConfig" => Value::Null,
        _ => r,
    }
}

/// 0.3 push-config params (`{taskId, pushNotificationConfig}` for set,
/// `{id, pushNotificationConfigId}` for the others, `id` being the task) as
/// the flat 1.0 params (`{taskId, id, url, token, authentication}`).
fn push_params_from_03(method: &str, p: &Value) -> Value {
    let mut out = Map::new();
    if method == "CreateTaskPushNotificationConfig" {
        if let Some(t) = p.get("taskId") {
            out.insert("taskId".into(), t.clone());
        }
        let cfg = p
            .get("pushNotificationConfig")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in cfg {
            if k == "authentication" {
                // 0.3: {schemes: [...], credentials}; 1.0: {scheme, credentials}.
                let mut a = Map::new();
                if let Some(s) = v.pointer("/schemes/0") {
                    a.insert("scheme".into(), s.clone());
                }
                if let Some(c) = v.get("credentials") {
                    a.insert("credentials".into(), c.clone());
                }
                out.insert(k, Value::Object(a));
            } else {
                out.insert(k, v);
            }
        }
    } else {
        if let Some(t) = p.get("id") {
            out.insert("taskId".into(), t.clone());
        }
        if let Some(c) = p.get("pushNotificationConfigId") {
            out.insert("id".into(), c.clone());
        }
    }
    Value::Object(out)
}

/// A flat 1.0 push config as a 0.3 `TaskPushNotificationConfig`.
fn push_config_to_03(c: &Value) -> Value {
    let mut cfg = Map::new();
    for k in ["id", "url", "token"] {
        if let Some(v) = c.get(k) {
            cfg.insert(k.into(), v.clone());
        }
    }
    if let Some(s) = c.pointer("/authentication/scheme") {
        cfg.insert("authentication".into(), json!({"schemes": [s]}));
    }
    json!({"taskId": c.get("taskId").cloned().unwrap_or(Value::Null), "pushNotificationConfig": cfg})
}

/// A 1.0 StreamResponse as a 0.3 stream result (`kind`-tagged, with `final`).
pub fn event_to_03(e: &Value) -> Value {
    if let Some(t) = e.get("task") {
        return task_to_03(t);
    }
    if let Some(m) = e.get("message") {
        return message_to_03(m);
    }
    if let Some(s) = e.get("statusUpdate") {
        let mut out = s.clone();
        let state = s
            .pointer("/status/state")
            .and_then(Value::as_str)
            .unwrap_or("");
        let fin = crate::task_state::is_final(state);
        if let Some(o) = out.as_object_mut() {
            o.insert("kind".into(), json!("status-update"));
            o.insert("final".into(), json!(fin));
            if let Some(st) = s.get("status") {
                o.insert("status".into(), status_to_03(st));
            }
        }
        return out;
    }
    if let Some(a) = e.get("artifactUpdate") {
        let mut out = a.clone();
        if let Some(o) = out.as_object_mut() {
            o.insert("kind".into(), json!("artifact-update"));
            if let Some(x) = a.get("artifact") {
                o.insert("artifact".into(), artifact_to_03(x));
            }
        }
        return out;
    }
    e.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn does_not_depend_on_the_server() {
        // The server uses this module; the reverse would be a cycle.
        let src = include_str!("compat03.rs");
        assert!(!src.contains(concat!("crate::", "server")));
    }

    #[test]
    fn method_table_maps_both_ways() {
        assert_eq!(method_from_03("message/send"), Some("SendMessage"));
        assert_eq!(method_from_03("SendMessage"), None);
        let mut olds: Vec<&str> = METHODS.iter().map(|(_, o)| *o).collect();
        olds.sort_unstable();
        olds.dedup();
        assert_eq!(olds.len(), METHODS.len(), "0.3 names are unique");
    }

    #[test]
    fn round_trips_a_message() {
        let m03 = json!({"kind": "message", "messageId": "m", "role": "user",
            "parts": [{"kind": "text", "text": "hi"}, {"kind": "file", "file": {"uri": "u", "mimeType": "x/y"}},
                      {"kind": "data", "data": {"a": 1}}]});
        let m10 = message_from_03(&m03);
        assert_eq!(m10["role"], "ROLE_USER");
        assert_eq!(m10["parts"][0], json!({"text": "hi"}));
        assert_eq!(m10["parts"][1], json!({"url": "u", "mediaType": "x/y"}));
        assert_eq!(message_to_03(&m10), m03);
    }

    #[test]
    fn push_configs_translate_both_ways() {
        let set03 = json!({"taskId": "t", "pushNotificationConfig": {"id": "c", "url": "https://h/x",
            "token": "s", "authentication": {"schemes": ["Bearer"], "credentials": "k"}}});
        let flat = params_from_03("CreateTaskPushNotificationConfig", &set03);
        assert_eq!(
            flat,
            json!({"taskId": "t", "id": "c", "url": "https://h/x", "token": "s",
                   "authentication": {"scheme": "Bearer", "credentials": "k"}})
        );
        let get03 = json!({"id": "t", "pushNotificationConfigId": "c"});
        assert_eq!(
            params_from_03("GetTaskPushNotificationConfig", &get03),
            json!({"taskId": "t", "id": "c"})
        );
        let public = json!({"taskId": "t", "id": "c", "url": "https://h/x", "authentication": {"scheme": "Bearer"}});
        let r = result_to_03("GetTaskPushNotificationConfig", public.clone());
        assert_eq!(
            r,
            json!({"taskId": "t", "pushNotificationConfig": {"id": "c", "url": "https://h/x",
                   "authentication": {"schemes": ["Bearer"]}}})
        );
        let l = result_to_03(
            "ListTaskPushNotificationConfigs",
            json!({"configs": [public], "nextPageToken": ""}),
        );
        assert_eq!(l.as_array().map(Vec::len), Some(1));
        assert_eq!(
            result_to_03("DeleteTaskPushNotificationConfig", json!({})),
            Value::Null
        );
    }

    #[test]
    fn events_get_kind_and_final() {
        let e = json!({"statusUpdate": {"taskId": "t", "contextId": "c",
            "status": {"state": "TASK_STATE_INPUT_REQUIRED"}}});
        let o = event_to_03(&e);
        assert_eq!(o["kind"], "status-update");
        assert_eq!(o["final"], true);
        assert_eq!(o["status"]["state"], "input-required");
    }
}
