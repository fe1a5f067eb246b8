//! The wheel's tokio runtime and its bridge to asyncio.
//!
//! Awaitables returned to Python are coroutines of the shared helper
//! `ruvector_common._aio.run`, which creates an asyncio future on the
//! running loop and calls back into Rust to start the work on tokio. The
//! result travels back through `loop.call_soon_threadsafe`.
//!
//! Two hazards of a naive bridge are handled here:
//! * **Interpreter exit.** A tokio thread that touches Python while the
//!   interpreter finalizes is killed inside Rust frames, which aborts the
//!   process. Every hand-off holds an [`InflightGuard`]; an `atexit` hook
//!   flags shutdown and waits (bounded) for hand-offs in flight; later ones
//!   drop their result without touching Python.
//! * **fork().** The child inherits no runtime threads; the at-fork hook
//!   forgets the runtime so the child builds its own.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple};
use tokio::runtime::Runtime;

use crate::errors::{Error, Result};
use crate::py_modules::{AIO_DELIVER, AIO_RUN};
use crate::slot::ForkSafeSlot;

static RUNTIME: ForkSafeSlot<Runtime> = ForkSafeSlot::new();
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
static INFLIGHT: AtomicUsize = AtomicUsize::new(0);
static WORKERS: OnceLock<Mutex<(usize, usize)>> = OnceLock::new();

/// How long the exit hook waits for hand-offs already in flight.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Default worker count: `min(8, cpus)`.
pub fn default_worker_threads() -> usize {
    crate::threads::available_cpus().min(8)
}

/// The runtime, built on first use (never at import).
pub fn runtime() -> Result<&'static Runtime> {
    RUNTIME.get_or_try_init(|| {
        let component = crate::component();
        let workers =
            crate::threads::thread_count(component, "WORKER_THREADS", default_worker_threads())?;
        let blocking =
            crate::threads::thread_count(component, "MAX_BLOCKING_THREADS", workers.max(2))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .max_blocking_threads(blocking)
            .thread_name(format!("rv-{component}"))
            .enable_all()
            .build()
            .map_err(|e| Error::Index(format!("could not start the tokio runtime: {e}")))?;
        *WORKERS
            .get_or_init(|| Mutex::new((0, 0)))
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (workers, blocking);
        Ok(rt)
    })
}

/// `(started, worker_threads, max_blocking_threads)` of the runtime.
pub fn runtime_state() -> (bool, usize, usize) {
    match RUNTIME.get() {
        None => (false, 0, 0),
        Some(_) => {
            let (w, b) = *WORKERS
                .get_or_init(|| Mutex::new((0, 0)))
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            (true, w, b)
        }
    }
}

/// Marks a Rust→Python hand-off in progress; `None` once shutdown began.
pub struct InflightGuard(());

impl InflightGuard {
    pub fn enter() -> Option<Self> {
        INFLIGHT.fetch_add(1, Ordering::SeqCst);
        if SHUTTING_DOWN.load(Ordering::SeqCst) {
            INFLIGHT.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(InflightGuard(()))
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        INFLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `atexit` hook: stop new hand-offs, wait for those in flight.
#[pyfunction]
#[pyo3(name = "_quiesce_runtime")]
pub fn quiesce(py: Python<'_>) {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = Instant::now() + EXIT_GRACE;
        while INFLIGHT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// `os.register_at_fork(after_in_child=...)` hook.
#[pyfunction]
#[pyo3(name = "_reset_after_fork")]
pub fn reset_after_fork() {
    RUNTIME.forget();
    INFLIGHT.store(0, Ordering::SeqCst);
    crate::parallel::forget_after_fork();
}

/// Converts the Rust result into a Python value, with the GIL held.
pub type Convert<T> = Box<dyn FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send>;

/// Builds the coroutine `ruvector_common._aio.run(start)`, where
/// `start(loop, future)` calls `spawn(loop, future)` once and returns a
/// `cancel()` callable that aborts the spawned task.
fn coroutine<'py, S>(py: Python<'py>, spawn: S) -> PyResult<Bound<'py, PyAny>>
where
    S: FnOnce(Py<PyAny>, Py<PyAny>) -> tokio::task::AbortHandle + Send + 'static,
{
    let job = Mutex::new(Some(spawn));
    let start = PyCFunction::new_closure(
        py,
        None,
        None,
        move |args: &Bound<'_, PyTuple>,
              _kwargs: Option<&Bound<'_, PyDict>>|
              -> PyResult<Py<PyAny>> {
            let py = args.py();
            let loop_: Py<PyAny> = args.get_item(0)?.unbind();
            let fut: Py<PyAny> = args.get_item(1)?.unbind();
            let spawn = job
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| Error::invalid("this awaitable was already awaited"))?;
            let abort = spawn(loop_, fut);
            let cancel = PyCFunction::new_closure(
                py,
                None,
                None,
                move |_a: &Bound<'_, PyTuple>, _k: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
                    abort.abort();
                    Ok(())
                },
            )?;
            Ok(cancel.into_any().unbind())
        },
    )?;
    AIO_RUN.get(py)?.call1((start,))
}

/// Returns a coroutine that runs `work` on the runtime's blocking pool
/// (GIL released) and resolves to `convert(result)`. Cancelling the awaiting
/// task drops the result; work that already started runs to completion.
pub fn awaitable<'py, T, E, W>(
    py: Python<'py>,
    work: W,
    convert: Convert<T>,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Send + 'static,
    E: Into<PyErr> + Send + 'static,
    W: FnOnce() -> std::result::Result<T, E> + Send + 'static,
{
    let rt = runtime()?;
    coroutine(py, move |loop_, fut| {
        rt.spawn_blocking(move || hand_off(loop_, fut, work(), convert))
            .abort_handle()
    })
}

/// Like [`awaitable`], for async Rust work (HTTP, timers): `fut` runs on the
/// runtime's workers; cancelling the awaiting task aborts it.
pub fn awaitable_future<'py, T, E, F>(
    py: Python<'py>,
    fut: F,
    convert: Convert<T>,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Send + 'static,
    E: Into<PyErr> + Send + 'static,
    F: std::future::Future<Output = std::result::Result<T, E>> + Send + 'static,
{
    let rt = runtime()?;
    coroutine(py, move |loop_, pyfut| {
        rt.spawn(async move {
            let outcome = fut.await;
            // Converting needs the GIL: leave the async worker for it.
            let _ =
                tokio::task::spawn_blocking(move || hand_off(loop_, pyfut, outcome, convert)).await;
        })
        .abort_handle()
    })
}

/// Runs async Rust work to completion from synchronous Python, with the GIL
/// released (for the sync siblings of async methods).
pub fn block_on<T, E, F>(py: Python<'_>, fut: F) -> std::result::Result<T, E>
where
    T: Send,
    E: From<Error> + Send,
    F: std::future::Future<Output = std::result::Result<T, E>> + Send,
{
    let rt = runtime()?;
    py.detach(|| rt.block_on(fut))
}

fn hand_off<T, E: Into<PyErr>>(
    loop_: Py<PyAny>,
    fut: Py<PyAny>,
    outcome: std::result::Result<T, E>,
    convert: Convert<T>,
) {
    let Some(_guard) = InflightGuard::enter() else {
        // Interpreter is exiting: nobody will read this result. The Py
        // handles are released by PyO3's deferred reference pool.
        return;
    };
    Python::attach(|py| {
        let delivered = (|| -> PyResult<()> {
            let (ok, value) = match outcome.map_err(Into::into).and_then(|v| convert(py, v)) {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            let deliver = AIO_DELIVER.get(py)?;
            loop_.call_method1(py, "call_soon_threadsafe", (deliver, fut, ok, value))?;
            Ok(())
        })();
        // A closed loop cannot take the result; its awaiter is gone too.
        drop(delivered);
    });
}
