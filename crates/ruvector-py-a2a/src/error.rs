//! The A2A errors: the base errors of the core plus the A2A classes of
//! `ruvector_common.errors`, converted to Python once (the shape every
//! wheel shares comes from the core's `wheel_error!`).

pub use ruvector_py_core::errors::FromBase;

ruvector_py_core::wheel_error! {
    /// An error of the A2A client or server. Base errors (bad input, missing
    /// task…) keep their class; the others map onto the A2A classes.
    pub enum Error {
        /// `A2aError`: a failure that is none of the more specific ones below.
        A2a(message) => "A2aError",
        /// `CardSignatureInvalid`: an agent card signature is missing,
        /// malformed or wrong.
        CardSignatureInvalid(message) => "CardSignatureInvalid",
        /// `PolicyViolation`: a task policy was violated before sending.
        PolicyViolation(message) => "PolicyViolation",
        /// `BudgetExceeded`: the client-wide budget is spent.
        BudgetExceeded(message) => "BudgetExceeded",
        /// `TransportError`: HTTP / SSE transport failure (including hostile
        /// peers).
        Transport(message) => "TransportError",
    }
}
