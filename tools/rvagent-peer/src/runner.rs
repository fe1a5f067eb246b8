//! The peer's `TaskRunner`. What it does is chosen by the first text part of
//! the incoming message:
//!
//! * `stream <N>`: N `working` status events and N artifact events, ~20 ms
//!   apart, then completed;
//! * `sleep <ms>`: works for that long in small steps, stops early (state
//!   `canceled`) when `tasks/cancel` reaches `cancel()`;
//! * anything else (including `echo <text>`): completed at once with the text
//!   echoed back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use rvagent_a2a::executor::TaskRunner;
use rvagent_a2a::server::{emit_status_event, A2aState, TaskEvent};
use rvagent_a2a::{
    A2aError, Artifact, Message, Part, Role, Task, TaskArtifactUpdateEvent, TaskSpec, TaskState,
    TaskStatus, TaskStatusUpdateEvent,
};
use serde_json::Value;

/// Gap between two `stream` steps.
const STREAM_STEP: Duration = Duration::from_millis(20);
/// How often a `sleep` task looks at its cancel flag.
const SLEEP_STEP: Duration = Duration::from_millis(10);
/// Caps so a typo in a test cannot wedge the peer for hours; 200 events stay
/// below the crate's 256-slot broadcast channel.
const MAX_STREAM: u32 = 200;
const MAX_SLEEP_MS: u64 = 600_000;

pub struct PeerRunner {
    /// The runner is built before the server, and the crate gives a runner no
    /// handle to its server, so main() fills this in once the server exists.
    pub state: Arc<OnceLock<A2aState>>,
    /// Cancel flags of the tasks running now, by task id. `cancel()` on an
    /// unknown id is a no-op, so a stale cancel cannot poison a later task
    /// that reuses the id.
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
}

impl PeerRunner {
    pub fn new(state: Arc<OnceLock<A2aState>>) -> Self {
        Self {
            state,
            running: Mutex::new(HashMap::new()),
        }
    }

    fn register(&self, id: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.running
            .lock()
            .unwrap()
            .insert(id.to_string(), flag.clone());
        flag
    }

    fn unregister(&self, id: &str) {
        self.running.lock().unwrap().remove(id);
    }

    async fn stream(&self, spec: &TaskSpec, n: u32, cancel: &AtomicBool) -> Task {
        let Some(state) = self.state.get() else {
            return finished(
                spec,
                TaskState::Failed,
                "server state not set".into(),
                vec![],
            );
        };
        let mut chunks = Vec::new();
        for i in 1..=n {
            if cancel.load(Ordering::Relaxed) {
                return finished(
                    spec,
                    TaskState::Canceled,
                    format!("canceled at {i}/{n}"),
                    vec![],
                );
            }
            let status = TaskStatusUpdateEvent {
                id: spec.id.clone(),
                status: status(TaskState::Working, format!("working {i}/{n}")),
                final_: false,
                metadata: Value::Null,
            };
            // Err only means nobody subscribed; the event is still kept for
            // `tasks/resubscribe` replay, so there is nothing to handle.
            let _ = emit_status_event(state, status).await;

            let chunk = format!("chunk {i}/{n}");
            let artifact = TaskArtifactUpdateEvent {
                id: spec.id.clone(),
                artifact: Artifact {
                    name: Some("stream".into()),
                    description: None,
                    parts: vec![text(chunk.clone())],
                    index: 0,
                    append: i > 1,
                    last_chunk: i == n,
                    metadata: Value::Null,
                },
                metadata: Value::Null,
            };
            // The crate has no helper for artifact events (and never replays
            // them): send on the task's channel by hand, if anyone listens.
            let tx = state.streams.read().await.get(&spec.id).cloned();
            if let Some(tx) = tx {
                let _ = tx.send(TaskEvent::Artifact(artifact));
            }
            chunks.push(text(chunk));
            tokio::time::sleep(STREAM_STEP).await;
        }
        let artifact = Artifact {
            name: Some("stream".into()),
            description: None,
            parts: chunks,
            index: 0,
            append: false,
            last_chunk: true,
            metadata: Value::Null,
        };
        finished(
            spec,
            TaskState::Completed,
            format!("streamed {n} chunks"),
            vec![artifact],
        )
    }

    async fn sleep(&self, spec: &TaskSpec, ms: u64, cancel: &AtomicBool) -> Task {
        let deadline = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < deadline {
            if cancel.load(Ordering::Relaxed) {
                return finished(spec, TaskState::Canceled, "canceled".into(), vec![]);
            }
            tokio::time::sleep(SLEEP_STEP.min(deadline - Instant::now())).await;
        }
        finished(
            spec,
            TaskState::Completed,
            format!("slept {ms} ms"),
            vec![text_artifact("sleep", format!("slept {ms} ms"))],
        )
    }
}

#[async_trait]
impl TaskRunner for PeerRunner {
    async fn run(&self, spec: TaskSpec) -> Result<Task, A2aError> {
        let input = first_text(&spec.message);
        let (verb, arg) = input.split_once(' ').unwrap_or((input.as_str(), ""));
        let cancel = self.register(&spec.id);
        let task = match (verb, arg.trim().parse::<u64>()) {
            ("stream", Ok(n)) => {
                let n = n.min(u64::from(MAX_STREAM)) as u32;
                self.stream(&spec, n, &cancel).await
            }
            ("sleep", Ok(ms)) => self.sleep(&spec, ms.min(MAX_SLEEP_MS), &cancel).await,
            _ => {
                let echoed = format!("echo: {}", input.strip_prefix("echo ").unwrap_or(&input));
                finished(
                    &spec,
                    TaskState::Completed,
                    echoed.clone(),
                    vec![text_artifact("echo", echoed)],
                )
            }
        };
        self.unregister(&spec.id);
        Ok(task)
    }

    async fn cancel(&self, task_id: &str) -> Result<(), A2aError> {
        if let Some(flag) = self.running.lock().unwrap().get(task_id) {
            flag.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn first_text(msg: &Message) -> String {
    msg.parts
        .iter()
        .find_map(|p| match p {
            Part::Text { text } => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn text(s: String) -> Part {
    Part::Text { text: s }
}

fn text_artifact(name: &str, s: String) -> Artifact {
    Artifact {
        name: Some(name.into()),
        description: None,
        parts: vec![text(s)],
        index: 0,
        append: false,
        last_chunk: true,
        metadata: Value::Null,
    }
}

fn status(state: TaskState, note: String) -> TaskStatus {
    TaskStatus {
        state,
        timestamp: Utc::now(),
        message: Some(Message {
            role: Role::Agent,
            parts: vec![text(note)],
            metadata: Value::Null,
        }),
    }
}

/// The task a run ends with. The server keeps only its status and artifacts
/// (it rebuilds history and metadata from the request), but fill them in
/// anyway so the value is a sensible Task on its own.
fn finished(spec: &TaskSpec, state: TaskState, note: String, artifacts: Vec<Artifact>) -> Task {
    let status = status(state, note);
    Task {
        id: spec.id.clone(),
        session_id: None,
        history: vec![spec.message.clone(), status.message.clone().unwrap()],
        status,
        artifacts,
        metadata: spec.metadata.clone(),
    }
}
