//! The lake's errors: the base errors of the core plus the lake's own
//! classes of `ruvector_common.errors`, converted to Python once (the
//! shape every wheel shares comes from the core's `wheel_error!`).

pub use ruvector_py_core::errors::FromBase;

ruvector_py_core::wheel_error! {
    /// An error of ruLake. Base errors (bad input, dimension, persistence…)
    /// keep their class; the others map onto the lake's classes.
    pub enum Error {
        /// `LakeError`: a failure that is none of the more specific ones below.
        Lake(message) => "LakeError",
        /// `BackendError`: a backend (adapter) failed; names the backend.
        Backend { message, backend } => "BackendError",
        /// `CacheMissError`: a required cache entry was missing.
        CacheMiss(message) => "CacheMissError",
        /// `WitnessMismatch`: a bundle witness did not match.
        WitnessMismatch(message) => "WitnessMismatch",
    }
}
