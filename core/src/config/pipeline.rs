//! The pipeline model (stub).
pub struct Pipeline;
pub struct Diagnostic;
pub fn load_pipeline() {}
