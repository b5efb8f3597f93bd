//! Keeping each task's health state (see
//! [`ComponentHealth`](sluice_core::metrics::ComponentHealth)).

use std::sync::Arc;

use sluice_core::metrics::ComponentMetrics;

/// Runs a component's task, keeping its health state.
pub(crate) async fn tracked(
    metrics: Arc<ComponentMetrics>,
    task: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    metrics.health.started();
    let result = task.await;
    metrics.health.ended(&result);
    result
}
