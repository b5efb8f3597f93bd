//! Starts the agent's HTTP API when the pipeline asks for one.

use std::sync::Arc;

use sluice_core::config::Pipeline;
use sluice_core::topology::Topology;

/// Serves the API of `topology` at the pipeline's `api.address`; `None` when
/// the pipeline has no `api:`. The server stops when the value is dropped.
pub(super) async fn start(
    pipeline: &Pipeline,
    topology: &Topology,
) -> Result<Option<sluice_api::Server>, sluice_api::ServeError> {
    let Some(spec) = &pipeline.api else {
        return Ok(None);
    };
    let state = Arc::new(sluice_api::ApiState::new(pipeline, topology));
    let server = sluice_api::serve(spec.address, state).await?;
    tracing::info!(address = %server.address, "api listening: /health, /metrics, /api/components, /");
    Ok(Some(server))
}
