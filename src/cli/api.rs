//! The agent's HTTP API when the pipeline asks for one.

use sluice_core::config::Pipeline;

/// Binds the pipeline's `api.address`; `None` when the pipeline has no
/// `api:`. Bound before anything is built, so a taken address fails the
/// start at once; [`sluice_api::Listener::serve`] serves it once the
/// topology is built.
pub(super) fn bind(
    pipeline: &Pipeline,
) -> Result<Option<sluice_api::Listener>, sluice_api::ServeError> {
    let Some(spec) = &pipeline.api else {
        return Ok(None);
    };
    let listener = sluice_api::bind(spec.address)?;
    tracing::info!(address = %listener.address, "api listening: /health, /metrics, /api/components, /search, /");
    Ok(Some(listener))
}
