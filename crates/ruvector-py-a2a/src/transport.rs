//! The client's HTTP layer: reqwest on rustls (ring), every response read
//! with a size cap and a deadline, SSE parsed by the bounded [`SseParser`].
//! Nothing here retries: a request is sent at most once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::Value;

use crate::error::{Error, FromBase, Result};
use ruvector_py_core::runtime;

use crate::json;
use crate::sse::{SseEvent, SseParser};
use crate::util::{text, text_pairs};

/// Largest accepted `max_response_bytes` / `max_event_bytes` (1 GiB).
const MAX_CAP: usize = 1 << 30;

struct Inner {
    client: reqwest::Client,
    headers: HeaderMap,
    timeout: Duration,
    max_response: usize,
    max_event: usize,
    idle: Duration,
}

fn secs(what: &str, s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0 * 7.0) {
        return Err(Error::invalid(format!(
            "{what} must be a number of seconds in (0, 604800], got {s}"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

fn header_map(pairs: &[(String, String)]) -> Result<HeaderMap> {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::invalid(format!("{k:?} is not a valid HTTP header name")))?;
        let mut value = HeaderValue::from_str(v).map_err(|_| {
            Error::invalid(format!(
                "the value of header {k:?} is not a valid HTTP header value"
            ))
        })?;
        let lower = k.to_ascii_lowercase();
        if lower == "authorization" || lower.contains("key") || lower.contains("token") {
            value.set_sensitive(true);
        }
        h.append(name, value);
    }
    Ok(h)
}

fn transport_err(what: &str, e: reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // reqwest's Display omits the cause chain; walk it for a useful message.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    Error::Transport(format!("{what} {kind}: {msg}"))
}

/// Reads a body of at most `max` bytes; refuses early on a larger
/// Content-Length and stops reading as soon as the cap is passed.
async fn read_capped(resp: reqwest::Response, max: usize, what: &str) -> Result<Vec<u8>> {
    if let Some(n) = resp.content_length() {
        if n > max as u64 {
            return Err(Error::Transport(format!(
                "{what}: the peer announced a {n}-byte body, over max_response_bytes = {max}"
            )));
        }
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport_err(what, e))?;
        if out.len() + chunk.len() > max {
            return Err(Error::Transport(format!(
                "{what}: the response body exceeds max_response_bytes = {max}"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A 401/403 answer: the agent refused the credentials (or their absence).
/// An `A2aError`, not a `TransportError`: the transport worked.
fn refused(what: &str, status: u16, bytes: &[u8]) -> Error {
    let detail = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned());
    let why = if status == 401 {
        "missing or invalid credentials"
    } else {
        "the credentials were refused"
    };
    Error::A2a(format!(
        "{what}: HTTP {status}, {why}: {detail} (see the securitySchemes of the agent's card; \
         pass bearer_token=, api_key= or headers= to connect)"
    ))
}

fn parse_json(bytes: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Transport(format!("{what}: the peer sent malformed JSON ({e})")))
}

impl Inner {
    fn build(
        &self,
        method: &str,
        url: &str,
        body: Option<Vec<u8>>,
        extra: &[(String, String)],
    ) -> Result<reqwest::RequestBuilder> {
        let m = match method {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            other => return Err(Error::invalid(format!("unsupported HTTP method {other}"))),
        };
        let mut req = self
            .client
            .request(m, url)
            .headers(self.headers.clone())
            .headers(header_map(extra)?);
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(b);
        }
        Ok(req)
    }

    /// One request, one response, parsed as JSON. Non-2xx answers are
    /// returned only when they carry a JSON-RPC error object.
    async fn request(
        &self,
        method: String,
        url: String,
        body: Option<Vec<u8>>,
        extra: Vec<(String, String)>,
    ) -> Result<(u16, Value)> {
        let what = format!("{method} {url}");
        let req = self.build(&method, &url, body, &extra)?;
        let fut = async {
            let resp = req.send().await.map_err(|e| transport_err(&what, e))?;
            let status = resp.status().as_u16();
            let bytes = read_capped(resp, self.max_response, &what).await?;
            Ok::<_, Error>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| {
                Error::Transport(format!("{what} timed out after {:?}", self.timeout))
            })??;
        if status == 401 || status == 403 {
            return Err(refused(&what, status, &bytes));
        }
        if !(200..300).contains(&status) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                if v.get("error").is_some() {
                    return Ok((status, v));
                }
            }
            let snippet: String =
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            return Err(Error::Transport(format!("{what}: HTTP {status} {snippet}")));
        }
        Ok((status, parse_json(&bytes, &what)?))
    }

    /// POSTs `body` (or GETs, without one: rvAgent's side channel) and
    /// expects an SSE answer.
    async fn open(
        &self,
        url: String,
        body: Option<Vec<u8>>,
        extra: Vec<(String, String)>,
        limit: Option<Duration>,
    ) -> Result<StreamState> {
        let what = format!("stream from {url}");
        let deadline = Deadline::new(limit);
        let method = if body.is_some() { "POST" } else { "GET" };
        let req = self
            .build(method, &url, body, &extra)?
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let wait = deadline.cap(self.timeout);
        let resp = tokio::time::timeout(wait, req.send())
            .await
            .map_err(|_| {
                deadline.error(&what).unwrap_or_else(|| {
                    Error::Transport(format!("{what} timed out after {:?}", self.timeout))
                })
            })?
            .map_err(|e| transport_err(&what, e))?;
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !ctype.starts_with("text/event-stream") {
            // A plain JSON answer (usually a JSON-RPC error) instead of a stream.
            let bytes = tokio::time::timeout(
                deadline.cap(self.timeout),
                read_capped(resp, self.max_response, &what),
            )
            .await
            .map_err(|_| {
                deadline
                    .error(&what)
                    .unwrap_or_else(|| Error::Transport(format!("{what} timed out")))
            })??;
            if status == 401 || status == 403 {
                return Err(refused(&what, status, &bytes));
            }
            let v = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .filter(|v| v.get("error").is_some() || (200..300).contains(&status));
            return match v {
                Some(v) => Ok(StreamState::finished(v, what, self.idle, deadline)),
                None => Err(Error::Transport(format!(
                    "{what}: expected text/event-stream, got HTTP {status} with content type {ctype:?}"
                ))),
            };
        }
        if !(200..300).contains(&status) {
            return Err(Error::Transport(format!("{what}: HTTP {status}")));
        }
        Ok(StreamState::pumped(
            Box::pin(resp.bytes_stream()),
            SseParser::new(self.max_event),
            what,
            self.idle,
            deadline,
        ))
    }
}

/// The total deadline of one stream (`stream_timeout`), if any.
#[derive(Clone, Copy, Debug)]
struct Deadline(Option<(tokio::time::Instant, Duration)>);

impl Deadline {
    fn new(limit: Option<Duration>) -> Self {
        Deadline(limit.map(|l| (tokio::time::Instant::now() + l, l)))
    }

    /// `wait`, shortened to what is left before the deadline.
    fn cap(&self, wait: Duration) -> Duration {
        match self.0 {
            Some((at, _)) => wait.min(at.saturating_duration_since(tokio::time::Instant::now())),
            None => wait,
        }
    }

    /// The error once the deadline has passed.
    fn error(&self, what: &str) -> Option<Error> {
        match self.0 {
            Some((at, limit)) if tokio::time::Instant::now() >= at => {
                Some(Error::Transport(format!(
                    "{what}: the stream exceeded stream_timeout ({:.3} s) and was closed",
                    limit.as_secs_f64()
                )))
            }
            _ => None,
        }
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Parsed events read ahead of the consumer: a burst that arrived while
/// Python handled the previous event is taken in one go (`ready()`), not
/// with one event-loop wake-up each. Bounded, so a fast peer is held back.
const READ_AHEAD: usize = 32;

/// One SSE response: a background task reads and parses the body into a
/// bounded channel; dropping the state aborts the task and so closes the
/// connection.
struct StreamState {
    /// `None` once the stream has ended or failed.
    rx: Option<tokio::sync::mpsc::Receiver<Result<Value>>>,
    /// A plain JSON answer given instead of a stream, handed out first.
    answer: Option<Value>,
    /// An error taken by `ready()`, reported by the next `next()`.
    failed: Option<Error>,
    pump: Option<tokio::task::AbortHandle>,
    what: String,
    idle: Duration,
    deadline: Deadline,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if let Some(p) = &self.pump {
            p.abort();
        }
    }
}

impl StreamState {
    /// A stream that is one JSON answer (usually a JSON-RPC error).
    fn finished(answer: Value, what: String, idle: Duration, deadline: Deadline) -> Self {
        StreamState {
            rx: None,
            answer: Some(answer),
            failed: None,
            pump: None,
            what,
            idle,
            deadline,
        }
    }

    /// Starts reading `body` in the background (on the current runtime).
    fn pumped(
        body: ByteStream,
        parser: SseParser,
        what: String,
        idle: Duration,
        deadline: Deadline,
    ) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let pump = tokio::spawn(pump(body, parser, tx, what.clone())).abort_handle();
        StreamState {
            rx: Some(rx),
            answer: None,
            failed: None,
            pump: Some(pump),
            what,
            idle,
            deadline,
        }
    }

    /// Ends the stream with the deadline error once it has passed.
    fn check_deadline(&mut self) -> Result<()> {
        match self.deadline.error(&self.what) {
            Some(e) => {
                self.rx = None;
                self.answer = None;
                if let Some(p) = self.pump.take() {
                    p.abort();
                }
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// The next event's JSON, `None` at the end of the stream.
    async fn next(&mut self) -> Result<Option<Value>> {
        self.check_deadline()?;
        if let Some(v) = self.answer.take() {
            return Ok(Some(v));
        }
        if let Some(e) = self.failed.take() {
            self.rx = None;
            return Err(e);
        }
        let Some(rx) = self.rx.as_mut() else {
            return Ok(None);
        };
        // The idle deadline runs from the call, so keep-alive comments or
        // trickled bytes that never complete an event cannot stretch it;
        // the total deadline bounds a peer that sends an event now and then.
        match tokio::time::timeout(self.deadline.cap(self.idle), rx.recv()).await {
            Err(_) => {
                self.check_deadline()?;
                Err(Error::Transport(format!(
                    "{}: no event within stream_idle_timeout ({:?})",
                    self.what, self.idle
                )))
            }
            Ok(None) => {
                self.rx = None;
                Ok(None)
            }
            Ok(Some(Ok(v))) => Ok(Some(v)),
            Ok(Some(Err(e))) => {
                self.rx = None;
                Err(e)
            }
        }
    }

    /// Events already read, without waiting.
    fn ready(&mut self) -> Vec<Value> {
        if self.deadline.error(&self.what).is_some() {
            return Vec::new(); // the next `next()` reports it
        }
        let mut out: Vec<Value> = self.answer.take().into_iter().collect();
        if self.failed.is_some() {
            return out;
        }
        if let Some(rx) = self.rx.as_mut() {
            while let Ok(item) = rx.try_recv() {
                match item {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        self.failed = Some(e);
                        break;
                    }
                }
            }
        }
        out
    }
}

/// Reads and parses an SSE body into `tx` until it ends, fails, or nobody
/// listens any more. A failure is sent as the last item.
async fn pump(
    mut body: ByteStream,
    mut parser: SseParser,
    tx: tokio::sync::mpsc::Sender<Result<Value>>,
    what: String,
) {
    while let Some(chunk) = body.next().await {
        let bytes = match chunk {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(transport_err(&what, e))).await;
                return;
            }
        };
        let mut events: Vec<SseEvent> = Vec::new();
        if let Err(e) = parser.feed(&bytes, &mut events) {
            let _ = tx.send(Err(e)).await;
            return;
        }
        for ev in events {
            if ev.data.trim().is_empty() {
                continue;
            }
            let item = serde_json::from_str::<Value>(&ev.data)
                .map_err(|e| Error::Transport(format!("{what}: malformed event JSON ({e})")));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    }
}

/// HTTP client settings shared by every call of one `A2aClient`.
#[pyclass(frozen, module = "ruvector_a2a._native")]
pub struct HttpTransport {
    inner: Arc<Inner>,
}

#[pymethods]
impl HttpTransport {
    #[new]
    #[pyo3(signature = (*, headers, timeout, max_response_bytes, max_event_bytes, stream_idle_timeout, user_agent))]
    fn new(
        headers: Vec<(Bound<'_, PyString>, Bound<'_, PyString>)>,
        timeout: f64,
        max_response_bytes: usize,
        max_event_bytes: usize,
        stream_idle_timeout: f64,
        user_agent: Bound<'_, PyString>,
    ) -> Result<Self> {
        let headers = text_pairs(&headers, "headers")?;
        let user_agent = text(&user_agent, "user_agent")?;
        let timeout = secs("timeout", timeout)?;
        let idle = secs("stream_idle_timeout", stream_idle_timeout)?;
        for (what, v) in [
            ("max_response_bytes", max_response_bytes),
            ("max_event_bytes", max_event_bytes),
        ] {
            if v == 0 || v > MAX_CAP {
                return Err(Error::invalid(format!(
                    "{what} must be in 1..={MAX_CAP}, got {v}"
                )));
            }
        }
        let client = reqwest::Client::builder()
            // rustls even where a workspace-wide build also enables reqwest's
            // default (OpenSSL) backend for the test-only rvagent-peer.
            .use_rustls_tls()
            .user_agent(user_agent)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Transport(format!("could not build the HTTP client: {e}")))?;
        Ok(HttpTransport {
            inner: Arc::new(Inner {
                client,
                headers: header_map(&headers)?,
                timeout,
                max_response: max_response_bytes,
                max_event: max_event_bytes,
                idle,
            }),
        })
    }

    /// `await request(method, url, body, headers)` → `(status, json)`.
    #[pyo3(signature = (method, url, body=None, headers=Vec::new()))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        method: Bound<'_, PyString>,
        url: Bound<'_, PyString>,
        body: Option<Bound<'_, PyBytes>>,
        headers: Vec<(Bound<'_, PyString>, Bound<'_, PyString>)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (method, url) = (text(&method, "method")?, text(&url, "url")?);
        let headers = text_pairs(&headers, "headers")?;
        let inner = self.inner.clone();
        let body = body.map(|b| b.as_bytes().to_vec());
        runtime::awaitable_future(
            py,
            async move { inner.request(method, url, body, headers).await },
            Box::new(|py, (status, v): (u16, Value)| {
                Ok(PyTuple::new(
                    py,
                    [
                        status.into_pyobject(py)?.into_any().unbind(),
                        json::to_py(py, &v)?,
                    ],
                )?
                .into_any()
                .unbind())
            }),
        )
    }

    /// Synchronous `request`.
    #[pyo3(signature = (method, url, body=None, headers=Vec::new()))]
    fn request_sync(
        &self,
        py: Python<'_>,
        method: Bound<'_, PyString>,
        url: Bound<'_, PyString>,
        body: Option<Bound<'_, PyBytes>>,
        headers: Vec<(Bound<'_, PyString>, Bound<'_, PyString>)>,
    ) -> PyResult<(u16, Py<PyAny>)> {
        let (method, url) = (text(&method, "method")?, text(&url, "url")?);
        let headers = text_pairs(&headers, "headers")?;
        let inner = self.inner.clone();
        let body = body.map(|b| b.as_bytes().to_vec());
        let (status, v) = runtime::block_on(py, async move {
            inner.request(method, url, body, headers).await
        })?;
        Ok((status, json::to_py(py, &v)?))
    }

    /// `await open_stream(url, body, headers, stream_timeout=None)` →
    /// `EventStream` (POST, SSE answer; a GET when `body` is None). With
    /// `stream_timeout` (seconds), the whole stream (opening included) must
    /// end within it, else `TransportError`.
    #[pyo3(signature = (url, body, headers=Vec::new(), stream_timeout=None))]
    fn open_stream<'py>(
        &self,
        py: Python<'py>,
        url: Bound<'_, PyString>,
        body: Option<Bound<'_, PyBytes>>,
        headers: Vec<(Bound<'_, PyString>, Bound<'_, PyString>)>,
        stream_timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let url = text(&url, "url")?;
        let headers = text_pairs(&headers, "headers")?;
        let limit = stream_timeout
            .map(|s| secs("stream_timeout", s))
            .transpose()?;
        let inner = self.inner.clone();
        let body = body.map(|b| b.as_bytes().to_vec());
        runtime::awaitable_future(
            py,
            async move { inner.open(url, body, headers, limit).await },
            Box::new(|py, st: StreamState| Ok(Py::new(py, EventStream::new(st))?.into_any())),
        )
    }

    /// Synchronous `open_stream`.
    #[pyo3(signature = (url, body, headers=Vec::new(), stream_timeout=None))]
    fn open_stream_sync(
        &self,
        py: Python<'_>,
        url: Bound<'_, PyString>,
        body: Option<Bound<'_, PyBytes>>,
        headers: Vec<(Bound<'_, PyString>, Bound<'_, PyString>)>,
        stream_timeout: Option<f64>,
    ) -> PyResult<EventStream> {
        let url = text(&url, "url")?;
        let headers = text_pairs(&headers, "headers")?;
        let limit = stream_timeout
            .map(|s| secs("stream_timeout", s))
            .transpose()?;
        let inner = self.inner.clone();
        let body = body.map(|b| b.as_bytes().to_vec());
        let st = runtime::block_on(
            py,
            async move { inner.open(url, body, headers, limit).await },
        )?;
        Ok(EventStream::new(st))
    }
}

/// An open SSE response. `next()` yields each event's JSON, `None` at the
/// end; a cancelled `next()` or `close()` closes the connection.
#[pyclass(frozen, module = "ruvector_a2a._native")]
pub struct EventStream {
    state: Arc<Mutex<Option<StreamState>>>,
}

impl EventStream {
    fn new(st: StreamState) -> Self {
        EventStream {
            state: Arc::new(Mutex::new(Some(st))),
        }
    }

    fn take(&self) -> Result<Option<StreamState>> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).take())
    }
}

async fn next_of(
    slot: Arc<Mutex<Option<StreamState>>>,
    st: Option<StreamState>,
) -> Result<Option<Value>> {
    let Some(mut st) = st else {
        return Err(Error::Transport(
            "the stream is closed (or a next() is already pending)".into(),
        ));
    };
    let out = st.next().await;
    // Put the state back unless the stream ended or failed.
    if matches!(out, Ok(Some(_))) {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(st);
    }
    out
}

#[pymethods]
impl EventStream {
    /// `await next()` → the next event (parsed JSON) or `None` at the end.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let st = self.take()?;
        let slot = self.state.clone();
        runtime::awaitable_future(
            py,
            next_of(slot, st),
            Box::new(|py, v: Option<Value>| match v {
                Some(v) => json::to_py(py, &v),
                None => Ok(py.None()),
            }),
        )
    }

    /// Synchronous `next`.
    fn next_sync(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let st = self.take()?;
        let slot = self.state.clone();
        match runtime::block_on(py, next_of(slot, st))? {
            Some(v) => json::to_py(py, &v),
            None => Ok(py.None()),
        }
    }

    /// Events already received and parsed, oldest first, taken without
    /// waiting (none while a `next()` is pending): a burst that arrived in
    /// one read costs one event-loop wake-up, not one per event.
    fn ready(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let events = match self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(st) => st.ready(),
            None => return Ok(Vec::new()),
        };
        events.iter().map(|v| json::to_py(py, v)).collect()
    }

    /// Closes the HTTP connection (idempotent).
    fn close(&self) -> PyResult<()> {
        drop(self.take()?);
        Ok(())
    }

    /// True while the stream can still yield events.
    #[getter]
    fn open(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}
