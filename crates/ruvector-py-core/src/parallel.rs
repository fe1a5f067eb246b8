//! The rayon pool that batch calls run on, separate from rayon's global pool
//! so that it can be rebuilt in a forked child (see [`crate::slot`]).
//! Size: `RUVECTOR_<COMPONENT>_NUM_THREADS`, `RUVECTOR_NUM_THREADS`, or the
//! number of CPUs.

use rayon::ThreadPool;

use crate::errors::{Error, Result};
use crate::slot::ForkSafeSlot;

static POOL: ForkSafeSlot<ThreadPool> = ForkSafeSlot::new();

/// The pool, built on first use.
pub fn pool() -> Result<&'static ThreadPool> {
    POOL.get_or_try_init(|| {
        let component = crate::component();
        let threads = crate::threads::thread_count(
            component,
            "NUM_THREADS",
            crate::threads::available_cpus(),
        )?;
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("rv-{component}-cpu-{i}"))
            .build()
            .map_err(|e| Error::Index(format!("could not start the {threads}-thread pool: {e}")))
    })
}

/// Threads in the pool if it has been built.
pub fn pool_threads() -> Option<usize> {
    POOL.get().map(|p| p.current_num_threads())
}

pub(crate) fn forget_after_fork() {
    POOL.forget();
}
