//! The topology runtime.
pub(crate) mod emit;
