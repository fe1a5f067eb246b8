//! Every Python object this wheel's Rust code looks up: none. The Python
//! package calls into Rust (`_native`), never the other way round; the
//! server calls the agent handler it was given.
