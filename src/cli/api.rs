//! The agent's HTTP API when the pipeline asks for one.

use sluice_runtime::pipeline::{Diagnostic, Pipeline};

/// The problems of the `api:` section's own options (token, TLS, limits),
/// with their positions; empty when there is no `api:`.
pub(super) fn problems(pipeline: &Pipeline) -> Vec<Diagnostic> {
    let Some(spec) = &pipeline.api else {
        return Vec::new();
    };
    let at = |pos, message: String| Diagnostic {
        file: pipeline.path.clone(),
        pos,
        message,
    };
    match sluice_api::Options::of(spec) {
        Ok(options) => options
            .problems()
            .into_iter()
            .map(|p| {
                let pos = p
                    .key
                    .as_deref()
                    .and_then(|k| spec.node.as_ref()?.get(k))
                    .map_or(spec.pos, |n| n.pos);
                let key = p.key.map(|k| format!("`{k}`: ")).unwrap_or_default();
                at(pos, format!("api: {key}{}", p.message))
            })
            .collect(),
        Err(e) => vec![at(e.pos.unwrap_or(spec.pos), format!("api: {}", e.message))],
    }
}

/// The error `sluice top` and `sluice tap` print when they cannot reach
/// `url`: when nothing listens there, a one-line hint follows on how to
/// give the agent an API.
pub(super) fn unreachable(url: &str, e: &sluice_api::client::ClientError) -> String {
    if !e.is_refused() {
        return format!("error: {e}");
    }
    let address = url.trim_start_matches("http://");
    let address = address.split('/').next().unwrap_or(address);
    format!(
        "error: no agent API answers at {url} (connection refused)\n\
         hint: add `api: {{address: {address}}}` to the pipeline file (or run it with `sluice run --api {address}`), or point --api at its address"
    )
}

/// Binds the pipeline's `api.address` with its token, TLS and limits;
/// `None` when the pipeline has no `api:`. Bound before anything is built,
/// so a taken address fails the start at once;
/// [`sluice_api::Listener::serve`] serves it once the topology is built.
pub(super) fn bind(pipeline: &Pipeline) -> Result<Option<sluice_api::Listener>, String> {
    let Some(spec) = &pipeline.api else {
        return Ok(None);
    };
    let security = sluice_api::Options::of(spec)
        .map_err(|e| format!("api: {}", e.message))?
        .load()
        .map_err(|e| format!("api: {e}"))?;
    let (token, tls) = (security.token.is_some(), security.tls.is_some());
    let listener = sluice_api::bind(spec.address, security).map_err(|e| e.to_string())?;
    tracing::info!(
        address = %listener.address, token, tls,
        "api listening: /health, /metrics, /api/components, /api/tap, /search, /"
    );
    Ok(Some(listener))
}
