//! The rayon pool that batch calls run on, separate from rayon's global pool
//! so that it can be rebuilt in a forked child (see [`crate::slot`]).
//!
//! Size: the count set at runtime with [`set_num_threads`] (Python:
//! `set_num_threads(n)`), else `RUVECTOR_<COMPONENT>_NUM_THREADS`, else
//! `RUVECTOR_NUM_THREADS`, else the number of CPUs.
//!
//! Changing the count replaces the pool: calls already running finish on
//! the old pool (each holds an `Arc` to it), later calls use the new one,
//! and the old pool's threads exit once its last call ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::ThreadPool;

use crate::errors::{Error, Result};
use crate::slot::ForkSafeSlot;

/// Largest thread count accepted (the environment variables' limit too).
pub const MAX_THREADS: usize = crate::threads::MAX_THREADS;

/// The current pool, behind a lock that is itself forgotten after `fork()`
/// (a lock held by another thread at fork time would never be released in
/// the child).
static POOL: ForkSafeSlot<Mutex<Option<Arc<ThreadPool>>>> = ForkSafeSlot::new();
/// The count set by [`set_num_threads`], 0 when never set.
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

fn slot() -> &'static Mutex<Option<Arc<ThreadPool>>> {
    POOL.get_or_try_init(|| Ok::<_, ()>(Mutex::new(None)))
        .expect("infallible")
}

/// The thread count the pool has, or will have when next built.
pub fn num_threads() -> Result<usize> {
    match REQUESTED.load(Ordering::Acquire) {
        0 => crate::threads::thread_count(
            crate::component(),
            "NUM_THREADS",
            crate::threads::available_cpus(),
        ),
        n => Ok(n),
    }
}

/// Sets the pool's thread count (1..=[`MAX_THREADS`]); takes effect for
/// the calls that start afterwards.
pub fn set_num_threads(n: i128) -> Result<()> {
    if !(1..=MAX_THREADS as i128).contains(&n) {
        return Err(Error::invalid(format!(
            "the thread count must be between 1 and {MAX_THREADS}, got {n}"
        )));
    }
    REQUESTED.store(n as usize, Ordering::Release);
    let old = slot().lock().unwrap_or_else(|p| p.into_inner()).take();
    // Dropped outside the lock; running calls keep their own reference.
    drop(old);
    Ok(())
}

/// The pool, built on first use (and after [`set_num_threads`]).
pub fn pool() -> Result<Arc<ThreadPool>> {
    let mut guard = slot().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pool) = guard.as_ref() {
        return Ok(Arc::clone(pool));
    }
    let component = crate::component();
    let threads = num_threads()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("rv-{component}-cpu-{i}"))
        .build()
        .map_err(|e| Error::Index(format!("could not start the {threads}-thread pool: {e}")))?;
    let pool = Arc::new(pool);
    *guard = Some(Arc::clone(&pool));
    Ok(pool)
}

/// Threads in the pool if it has been built.
pub fn pool_threads() -> Option<usize> {
    let guard = POOL.get()?.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().map(|p| p.current_num_threads())
}

/// In a forked child: the pool (and its lock) are leaked, never dropped,
/// since its threads do not exist here; the next use builds a fresh one.
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub(crate) fn forget_after_fork() {
    POOL.forget();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_checked_and_replaces_the_pool() {
        assert!(set_num_threads(0).is_err());
        assert!(set_num_threads(MAX_THREADS as i128 + 1).is_err());
        let e = set_num_threads(-3).unwrap_err().to_string();
        assert!(e.contains("between 1 and 1024, got -3"), "{e}");
        set_num_threads(3).unwrap();
        assert_eq!(num_threads().unwrap(), 3);
        let first = pool().unwrap();
        assert_eq!(first.current_num_threads(), 3);
        set_num_threads(2).unwrap();
        let second = pool().unwrap();
        assert_eq!(second.current_num_threads(), 2);
        assert_eq!(pool_threads(), Some(2));
        // The old pool still runs work given to it.
        assert_eq!(first.install(|| 7), 7);
    }
}
