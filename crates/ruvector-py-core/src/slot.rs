//! A lazily built, process-wide value that can be forgotten after `fork()`.
//!
//! Thread pools do not survive `fork()`: the child inherits the pool's
//! bookkeeping but none of its threads, so the first job sent there waits
//! forever. A [`ForkSafeSlot`] hands out `&'static` references to a value
//! that is built on first use, and the at-fork hook empties it in the child
//! so the next use builds a fresh one. The old value is leaked on purpose:
//! dropping it would try to talk to threads that do not exist.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

pub struct ForkSafeSlot<T> {
    ptr: AtomicPtr<T>,
}

impl<T> ForkSafeSlot<T> {
    pub const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The current value, if one was built (and not forgotten since).
    pub fn get(&self) -> Option<&'static T> {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: non-null pointers stored here come from Box::leak and are
        // never freed, so they stay valid for 'static.
        unsafe { p.as_ref() }
    }

    /// The current value, building it with `make` on first use. When two
    /// threads race, one value wins and the other is dropped unused.
    pub fn get_or_try_init<E>(&self, make: impl FnOnce() -> Result<T, E>) -> Result<&'static T, E> {
        if let Some(v) = self.get() {
            return Ok(v);
        }
        let fresh = Box::into_raw(Box::new(make()?));
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: `fresh` was just leaked from a Box and is now owned by the slot.
            Ok(_) => Ok(unsafe { &*fresh }),
            Err(winner) => {
                // SAFETY: `fresh` never left this function; reclaim it.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: as in `get`.
                Ok(unsafe { &*winner })
            }
        }
    }

    /// Forgets the current value without dropping it (used in a forked child).
    pub fn forget(&self) {
        self.ptr.store(ptr::null_mut(), Ordering::Release);
    }
}

impl<T> Default for ForkSafeSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_once_then_rebuilds_after_forget() {
        static SLOT: ForkSafeSlot<u32> = ForkSafeSlot::new();
        assert!(SLOT.get().is_none());
        let a = SLOT.get_or_try_init(|| Ok::<_, ()>(1)).unwrap();
        let b = SLOT.get_or_try_init(|| Ok::<_, ()>(2)).unwrap();
        assert_eq!((*a, *b), (1, 1));
        SLOT.forget();
        assert_eq!(*SLOT.get_or_try_init(|| Ok::<_, ()>(3)).unwrap(), 3);
        assert_eq!(*a, 1, "the forgotten value stays readable");
    }

    #[test]
    fn a_failed_build_leaves_the_slot_empty() {
        static SLOT: ForkSafeSlot<u32> = ForkSafeSlot::new();
        assert_eq!(SLOT.get_or_try_init(|| Err("no")), Err("no"));
        assert!(SLOT.get().is_none());
    }
}
