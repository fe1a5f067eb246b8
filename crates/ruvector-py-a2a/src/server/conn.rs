//! Connections of the server: the accept loop, the cap on open
//! connections and the per-connection deadlines (hyper HTTP/1.1 underneath).
//!
//! Each connection is in one phase:
//!
//! * **waiting for a request head** — from accept (or, on a kept-alive
//!   connection, from the first byte of the next request) the head must be
//!   complete within `header_read_timeout`, else the connection is closed
//!   (this cuts off slowloris peers that trickle headers);
//! * **idle** between requests — closed after `keep_alive_timeout`;
//! * **busy** — a request is being served: no connection deadline (the body
//!   has its own `body_read_timeout`, see [`super::rpc`]); an SSE stream
//!   stays open as long as it sends.
//!
//! At `max_connections` open connections, a new one evicts the connection
//! that has been waiting or idle the longest (a peer that holds sockets
//! without sending requests cannot lock real clients out); when every
//! connection is busy, the new one is answered `503 Service Unavailable`
//! with `Connection: close` at once. When the process runs out of file
//! descriptors, accepting pauses briefly after evicting the oldest waiting
//! connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tower_service::Service;

/// Connection limits of one server (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
}

/// Largest request head (and read buffer) per connection: bounds the
/// memory a peer can pin per socket (hyper's default is ~400 KiB).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Refusals (503) being written at once; past it, a connection is just closed.
const MAX_REFUSING: usize = 64;

const FRESH: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;
const IDLE: u8 = 3;

struct Conn {
    id: u64,
    phase: AtomicU8,
    /// Start of the current phase, in ms since the table's epoch.
    since: AtomicU64,
    evicted: AtomicBool,
    wake: Notify,
}

struct Table {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    closed: Notify,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Table {
    fn new() -> Self {
        Table {
            epoch: Instant::now(),
            conns: Mutex::new(HashMap::new()),
            closed: Notify::new(),
            next: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn len(&self) -> usize {
        lock(&self.conns).len()
    }

    fn register(&self) -> Arc<Conn> {
        let c = Arc::new(Conn {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            phase: AtomicU8::new(FRESH),
            since: AtomicU64::new(self.now_ms()),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        });
        lock(&self.conns).insert(c.id, c.clone());
        c
    }

    fn remove(&self, id: u64) {
        lock(&self.conns).remove(&id);
        self.closed.notify_waiters();
    }

    /// Asks the connection waiting or idle the longest to close; false if
    /// every connection is busy.
    fn evict_oldest_idle(&self) -> bool {
        let conns = lock(&self.conns);
        let victim = conns
            .values()
            .filter(|c| c.phase.load(Ordering::SeqCst) != BUSY && !c.evicted.load(Ordering::SeqCst))
            .min_by_key(|c| c.since.load(Ordering::SeqCst));
        match victim {
            Some(c) => {
                c.evicted.store(true, Ordering::SeqCst);
                c.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Evicts one waiting/idle connection and waits (briefly) until it is
    /// gone; false when there is none to evict.
    async fn make_room(&self, cap: usize) -> bool {
        if !self.evict_oldest_idle() {
            return false;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.len() < cap {
                return true;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return true; // a slight overshoot rather than a refusal
            }
        }
    }
}

impl Conn {
    fn set(&self, phase: u8, table: &Table) {
        self.since.store(table.now_ms(), Ordering::SeqCst);
        self.phase.store(phase, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// When the current phase runs out (`None` while busy).
    fn deadline(&self, table: &Table, limits: &ConnLimits) -> Option<Instant> {
        let limit = match self.phase.load(Ordering::SeqCst) {
            FRESH | HEAD => limits.header_read_timeout,
            IDLE => limits.keep_alive_timeout,
            _ => return None,
        };
        let since = Duration::from_millis(self.since.load(Ordering::SeqCst));
        Some(table.epoch + since + limit)
    }
}

/// The socket, noting the first byte of a request that arrives on an idle
/// connection (its head deadline starts there).
struct TrackedIo {
    inner: TcpStream,
    conn: Arc<Conn>,
    table: Arc<Table>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(())))
            && buf.filled().len() > before
            && this.conn.phase.load(Ordering::SeqCst) == IDLE
        {
            this.conn.set(HEAD, &this.table);
        }
        r
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Marks the connection idle when the response body is done (dropped by
/// hyper once written, or with the connection).
struct IdleOnDrop {
    conn: Arc<Conn>,
    table: Arc<Table>,
}

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.conn.set(IDLE, &self.table);
    }
}

/// A response body that keeps its connection busy until it is dropped.
struct TrackedBody {
    inner: Body,
    _idle: IdleOnDrop,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

async fn serve_conn(
    stream: TcpStream,
    conn: Arc<Conn>,
    table: Arc<Table>,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        conn: conn.clone(),
        table: table.clone(),
    });
    let (c2, t2) = (conn.clone(), table.clone());
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (conn, table) = (c2.clone(), t2.clone());
        let mut app = app.clone();
        async move {
            conn.set(BUSY, &table);
            let idle = IdleOnDrop { conn, table };
            let resp: Response<Body> = match app.call(req).await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            Ok::<_, Infallible>(resp.map(|inner| TrackedBody { inner, _idle: idle }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Deadlines are kept here (per phase), not by hyper's own head timer.
    builder
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .header_read_timeout(None);
    let mut http = Box::pin(builder.serve_connection(io, svc));
    let mut stopping = false;
    loop {
        let deadline = conn.deadline(&table, &limits);
        tokio::select! {
            _ = http.as_mut() => break,
            _ = sleep_until(deadline) => {
                // The phase may have moved on since the deadline was taken.
                if conn.deadline(&table, &limits).is_some_and(|d| d <= Instant::now()) {
                    break;
                }
            }
            _ = conn.wake.notified() => {
                if conn.evicted.load(Ordering::SeqCst) && conn.phase.load(Ordering::SeqCst) != BUSY {
                    break;
                }
            }
            _ = stop.wait_for(|v| *v), if !stopping => {
                stopping = true;
                http.as_mut().graceful_shutdown();
            }
        }
    }
    // Dropping `http` closes the socket.
    drop(http);
    table.remove(conn.id);
}

/// Answers 503 and closes, without reading the request (bounded: past
/// `MAX_REFUSING` refusals in flight the socket is just closed).
fn refuse(mut stream: TcpStream, slots: &Arc<Semaphore>, cap: usize) {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let body = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{{\"code\":-32000,\"message\":\"too many connections (max_connections = {cap}); retry later\"}}}}"
        );
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            stream.shutdown().await?;
            // Drain what the client sent so the close is not a reset that
            // could discard the answer before it is read.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

fn out_of_descriptors(e: &io::Error) -> bool {
    // EMFILE / ENFILE (Linux, macOS), WSAEMFILE (Windows).
    matches!(e.raw_os_error(), Some(23) | Some(24) | Some(10024))
}

/// Serves `app` on `listener` until `stop` turns true, then lets open
/// connections finish (the caller aborts this task after its grace period;
/// the connections are aborted with it).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let table = Arc::new(Table::new());
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut conns: JoinSet<()> = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|v| *v) => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                if out_of_descriptors(&e) {
                    table.evict_oldest_idle();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small writes (SSE events, JSON-RPC answers) go out at once: with
        // Nagle on, a last small event could wait for a delayed ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        if table.len() >= limits.max_connections && !table.make_room(limits.max_connections).await {
            refuse(stream, &refusing, limits.max_connections);
            continue;
        }
        let conn = table.register();
        conns.spawn(serve_conn(
            stream,
            conn,
            table.clone(),
            app.clone(),
            limits,
            stop.clone(),
        ));
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn eviction_takes_the_oldest_connection_that_is_not_busy() {
        let t = Table::new();
        let a = t.register();
        let b = t.register();
        let c = t.register();
        a.set(BUSY, &t);
        a.since.store(0, Ordering::SeqCst); // busy: never a victim, however old
        c.set(IDLE, &t);
        b.since.store(5, Ordering::SeqCst); // waiting for its head since 5 ms
        c.since.store(10, Ordering::SeqCst); // idle since 10 ms
        assert!(t.evict_oldest_idle());
        assert!(b.evicted.load(Ordering::SeqCst));
        assert!(!a.evicted.load(Ordering::SeqCst) && !c.evicted.load(Ordering::SeqCst));
        assert!(t.evict_oldest_idle());
        assert!(c.evicted.load(Ordering::SeqCst));
        assert!(!t.evict_oldest_idle(), "a busy connection is never evicted");
        t.remove(b.id);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let t = Table::new();
        let l = limits();
        let c = t.register();
        let head = c
            .deadline(&t, &l)
            .expect("a new connection waits for its head");
        c.set(BUSY, &t);
        assert!(c.deadline(&t, &l).is_none());
        c.set(IDLE, &t);
        let idle = c.deadline(&t, &l).expect("idle");
        assert!(idle > head + Duration::from_secs(40));
    }

    #[test]
    fn descriptor_exhaustion_is_recognised() {
        assert!(out_of_descriptors(&io::Error::from_raw_os_error(24)));
        assert!(!out_of_descriptors(&io::Error::from_raw_os_error(104)));
    }
}
