//! The embedders' errors: the base errors of the core plus `EmbedError`,
//! converted to Python once (the shape every wheel shares comes from the
//! core's `wheel_error!`).

pub use ruvector_py_core::errors::FromBase;

ruvector_py_core::wheel_error! {
    /// An error of the embedders. Base errors (bad input…) keep their class.
    pub enum Error {
        /// `EmbedError`: model resolution, verification or inference failed.
        Embed(message) => "EmbedError",
    }
}
