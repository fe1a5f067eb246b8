//! Ctrl-C for long calls, and all-or-nothing commits.
//!
//! A long call (build, `add_batch`, `search_batch`, `embed_batch`) runs with
//! the GIL released, so Python cannot run its SIGINT handler until it
//! returns. [`run_interruptible`] runs the work on the wheel's pool while
//! the calling thread polls Python's signal handlers every
//! [`POLL_INTERVAL`]; when one raises (`KeyboardInterrupt`), the work's
//! [`Cancel`] token is set and the work stops at its next
//! [`Cancel::check`] between chunks.
//!
//! Work that changes state takes [`Cancel::commit`] just before it mutates
//! anything visible: from then on the poller runs no handler, so a call that
//! raises `KeyboardInterrupt` has changed nothing, and a signal that arrives
//! after the commit point is raised by Python right after the call returns
//! (as for any builtin call). The engine sees only the pure [`Cancel`].

use std::sync::Mutex;
use std::time::Duration;

use crate::errors::{Error, Result};

/// How often the calling thread runs Python's signal handlers.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Cancelled,
    Committed,
}

/// A cancellation token for one call: checked by the work between chunks,
/// set by the caller's signal poll.
#[derive(Debug)]
pub struct Cancel {
    state: Mutex<State>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::Running),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(Error::Interrupted)` once the call was cancelled.
    pub fn check(&self) -> Result<()> {
        match *self.state() {
            State::Cancelled => Err(Error::Interrupted),
            _ => Ok(()),
        }
    }

    /// Passes the point of no return: fails if the call was cancelled,
    /// otherwise no later signal cancels it. Call once, right before the
    /// first visible change.
    pub fn commit(&self) -> Result<()> {
        let mut s = self.state();
        match *s {
            State::Cancelled => Err(Error::Interrupted),
            _ => {
                *s = State::Committed;
                Ok(())
            }
        }
    }

    /// Cancels the call unless it has committed; `true` if it did.
    pub fn cancel(&self) -> bool {
        let mut s = self.state();
        if *s == State::Running {
            *s = State::Cancelled;
            true
        } else {
            false
        }
    }

    /// Runs `poll` (the signal handlers) only while the call may still be
    /// cancelled, under the token's lock so that no commit slips in between;
    /// cancels the call if `poll` fails and returns that failure.
    pub fn poll_while_running<E>(
        &self,
        poll: impl FnOnce() -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut s = self.state();
        if *s != State::Running {
            return Ok(());
        }
        let outcome = poll();
        if outcome.is_err() {
            *s = State::Cancelled;
        }
        outcome
    }
}

/// Runs `work` and turns a panic in it into an internal error instead of a
/// Python `PanicException` (which no `except Exception` catches).
pub fn catch_panic<T, E: From<Error>>(
    work: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(Error::Index(format!(
            "internal error (a bug in ruvector; please report it): {what}"
        ))
        .into())
    })
}

#[cfg(feature = "python")]
mod python {
    use std::sync::mpsc;

    use pyo3::prelude::*;

    use super::{catch_panic, Cancel, POLL_INTERVAL};
    use crate::errors::Error;

    /// Runs `work` on a thread of its own with the GIL released, polling
    /// Python's signal handlers meanwhile. A handler that raises (Ctrl-C's
    /// `KeyboardInterrupt`) cancels the work and is what this returns, once
    /// the work has stopped; a panic in the work is an internal error.
    ///
    /// The work gets its own thread, not a pool job: a pool job that holds
    /// a lock could otherwise be picked up by another job waiting inside a
    /// parallel loop for that lock (a deadlock). Its parallel parts still
    /// use the pool. The poll takes the GIL before the token's lock, so the
    /// work never waits on the token while the poller waits for the GIL.
    pub fn run_interruptible<T, E, W>(py: Python<'_>, work: W) -> PyResult<T>
    where
        T: Send,
        E: From<Error> + Into<PyErr> + Send,
        W: FnOnce(&Cancel) -> std::result::Result<T, E> + Send,
    {
        let cancel = Cancel::new();
        let mut raised: Option<PyErr> = None;
        let outcome = py.detach(|| {
            std::thread::scope(|scope| {
                let (tx, rx) = mpsc::sync_channel::<std::result::Result<T, E>>(1);
                let cancel = &cancel;
                let spawned = std::thread::Builder::new()
                    .name(format!("rv-{}-call", crate::component()))
                    .spawn_scoped(scope, move || {
                        let _ = tx.send(catch_panic(|| work(cancel)));
                    });
                if let Err(e) = spawned {
                    return Err(Error::Index(format!("could not start a thread: {e}")).into());
                }
                loop {
                    match rx.recv_timeout(POLL_INTERVAL) {
                        Ok(outcome) => return outcome,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if raised.is_none() {
                                let polled = Python::attach(|py| {
                                    cancel.poll_while_running(|| py.check_signals())
                                });
                                if let Err(e) = polled {
                                    raised = Some(e);
                                }
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            return Err(Error::Index(
                                "internal error: the worker stopped without a result".into(),
                            )
                            .into())
                        }
                    }
                }
            })
        });
        // A handler raised before the work committed (the poll stops at the
        // commit point), so the work changed nothing: the signal's exception
        // is the answer, whether the work stopped at a check or not.
        if let Some(signal) = raised {
            return Err(signal);
        }
        outcome.map_err(Into::into)
    }
}

#[cfg(feature = "python")]
pub use python::run_interruptible;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_call_cannot_commit() {
        let c = Cancel::new();
        assert!(c.check().is_ok());
        assert!(c.cancel());
        assert_eq!(c.check(), Err(Error::Interrupted));
        assert_eq!(c.commit(), Err(Error::Interrupted));
    }

    #[test]
    fn a_committed_call_is_not_cancelled_and_polls_no_more() {
        let c = Cancel::new();
        c.commit().unwrap();
        assert!(!c.cancel());
        assert!(c.check().is_ok());
        let mut polled = false;
        let r: std::result::Result<(), ()> = c.poll_while_running(|| {
            polled = true;
            Err(())
        });
        assert!(r.is_ok());
        assert!(!polled);
    }

    #[test]
    fn a_failed_poll_cancels() {
        let c = Cancel::new();
        let r = c.poll_while_running(|| Err("KeyboardInterrupt"));
        assert_eq!(r, Err("KeyboardInterrupt"));
        assert_eq!(c.check(), Err(Error::Interrupted));
    }

    #[test]
    fn panics_become_internal_errors() {
        let r: Result<()> = catch_panic(|| panic!("boom {}", 7));
        match r {
            Err(Error::Index(m)) => assert!(m.contains("boom 7"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
