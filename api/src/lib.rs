//! # sluice-api
//!
//! The HTTP endpoint of a running agent, enabled by the pipeline file's
//! `api: { address: IP:PORT }`:
//!
//! * `GET /health`: 200 while every component runs (or finished cleanly) and
//!   no sink fails to write, else 503; the body says which component is not
//!   healthy and why. A failing member of a sink group leaves the agent
//!   `degraded` (still 200) while another member of its group is healthy;
//!   so does a channel that waits for room on a full disk (listed under
//!   `channels` with its reason).
//! * `GET /metrics`: every counter, channel fill and sink latency, the
//!   build (`sluice_build_info`) and the process (CPU, memory, descriptors) in the
//!   Prometheus text format ([`prometheus`]).
//! * `GET /api/components`: the same as JSON, with the pipeline graph
//!   ([`state::StateView`]).
//! * `GET /api/history`: the last ten minutes of every component's counters
//!   and gauges and every channel's fill, a sample a second
//!   ([`history`]), for the dashboard's charts.
//! * `GET /api/components/{component}/reports/{name}`: a document a
//!   component reports about itself (the `template` processor's
//!   `templates`, the `anomaly` processor's `anomalies`; see
//!   [`sluice_core::metrics::Report`]); `/api/components` lists each
//!   component's under `reports`.
//! * `GET /api/tap/{component}`: a sample of the events leaving a component,
//!   as JSON lines, streamed until the client goes away (`?limit=N` stops
//!   after `N` events).
//! * `GET /search?q=QUERY[&from=T&to=T&limit=N&count_by=INTERVAL&store=ID]`:
//!   the search of `sluice search` over the index of the pipeline's `store`
//!   sink (`store=ID` picks one when there are several), as JSON
//!   `{"total", "hits", "buckets"}`, newest hits first ([`search`](mod@search)).
//! * `GET|POST /_search`, `/{index}/_search`, `/_count`: Elasticsearch's
//!   search API over the same store sinks, for its clients
//!   ([`elasticsearch`](mod@elasticsearch)).
//! * `GET /api/sinks/{sink}/{route}`: a read-only route a sink offers
//!   ([`sluice_core::route`]; the `store` sink offers `search`, which
//!   `/search` calls). The API knows no sink type.
//! * `GET /`: the dashboard: live charts of rates and channel fill and the
//!   pipeline graph, a search over the store sinks, and the anomalies with
//!   their templates. Its files (HTML, CSS, JS) are embedded in the binary.
//!
//! With `token` set, everything but `/health`, `/metrics` and the page (`/`,
//! `/ui/*`) needs `Authorization: Bearer TOKEN`; with `tls`, the API speaks
//! HTTPS; connections are capped and must send their headers in time
//! ([`serve`](mod@serve)).
//!
//! [`ApiState::new`] follows the live counters (and reloads) of a built
//! [`Topology`](sluice_runtime::topology::Topology); [`bind`] then
//! [`Listener::serve`] (or [`serve`] at once) listens.
//! [`client`] is the small HTTP client of `sluice top` and `sluice tap`.

pub mod client;
pub mod elasticsearch;
pub mod history;
mod process;
pub mod prometheus;
pub mod search;
pub mod serve;
pub mod state;
mod tap;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

pub use serve::{Options, Security};
pub use state::ApiState;

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}: {source}")]
pub struct ServeError {
    /// The address asked for.
    pub address: SocketAddr,
    /// The error of `bind`.
    pub source: std::io::Error,
}

/// A running API server; it stops when dropped.
pub struct Server {
    /// The address it listens on (the port chosen when asked for port 0).
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Takes the samples of [`history`].
    sampler: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        self.sampler.abort();
    }
}

/// The routes over `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::file))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/components", get(components))
        .route("/api/components/{component}/reports/{name}", get(report))
        .route("/api/history", get(history))
        .route("/api/tap/{component}", get(tap))
        .route("/search", get(search::search))
        .route("/api/sinks/{sink}/{route}", get(search::sink_route))
        .route(
            "/_search",
            get(elasticsearch::search_all).post(elasticsearch::search_all),
        )
        .route(
            "/{index}/_search",
            get(elasticsearch::search_index).post(elasticsearch::search_index),
        )
        .route(
            "/_count",
            get(elasticsearch::count_all).post(elasticsearch::count_all),
        )
        .route(
            "/{index}/_count",
            get(elasticsearch::count_index).post(elasticsearch::count_index),
        )
        .with_state(state)
}

/// A listening socket for the API, bound before the pipeline is built so
/// that a taken address fails the start at once.
pub struct Listener {
    socket: std::net::TcpListener,
    /// The address bound (the port chosen when asked for port 0).
    pub address: SocketAddr,
    security: Security,
}

/// Binds `address` for the API, to be served with `security`; warns when
/// other hosts can reach it without a token.
///
/// # Errors
///
/// When the address cannot be bound.
pub fn bind(address: SocketAddr, security: Security) -> Result<Listener, ServeError> {
    let err = |source| ServeError { address, source };
    let socket = std::net::TcpListener::bind(address).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    let local = socket.local_addr().map_err(err)?;
    security.warn_if_open(local);
    Ok(Listener {
        socket,
        address: local,
        security,
    })
}

impl Listener {
    /// Serves the API of `topology` (following its reloads) in a
    /// background task. Call from within the runtime.
    ///
    /// # Errors
    ///
    /// When the socket cannot be handed to the runtime.
    pub fn serve(
        &self,
        topology: &sluice_runtime::topology::Topology,
    ) -> Result<Server, ServeError> {
        let err = |source| ServeError {
            address: self.address,
            source,
        };
        let socket = self.socket.try_clone().map_err(err)?;
        let listener = tokio::net::TcpListener::from_std(socket).map_err(err)?;
        Ok(spawn(
            listener,
            self.address,
            Arc::new(ApiState::new(topology)),
            self.security.clone(),
        ))
    }
}

fn spawn(
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    state: Arc<ApiState>,
    security: Security,
) -> Server {
    let gate = sluice_net::conn::Gate::new("api", security.max_connections, None);
    let sampler = tokio::spawn(sample(state.clone()));
    let app = router(state).layer(axum::Extension(gate.clone())).layer(
        axum::middleware::from_fn_with_state(security.token.clone(), serve::require_token),
    );
    let task = tokio::spawn(serve::accept_loop(listener, app, security, gate));
    Server {
        address,
        task,
        sampler,
    }
}

/// Samples the state into its history every [`history::INTERVAL`].
async fn sample(state: Arc<ApiState>) {
    let mut every = tokio::time::interval(history::INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        state.history.sample(&state.current().view());
    }
}

/// Listens on `address` and serves the API (plain HTTP, no token, the
/// default limits) in a background task.
///
/// # Errors
///
/// When the address cannot be bound.
pub async fn serve(address: SocketAddr, state: Arc<ApiState>) -> Result<Server, ServeError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServeError { address, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError { address, source })?;
    Ok(spawn(listener, local, state, Security::default()))
}

async fn health(State(state): State<Arc<ApiState>>) -> Response {
    let state = state.current();
    let components: Vec<serde_json::Value> = state
        .components
        .iter()
        .map(|c| {
            let h = state.health_of(c);
            serde_json::json!({
                "id": c.id, "kind": c.kind, "state": h.state, "healthy": h.healthy,
                "consecutive_failures": h.consecutive_failures, "error": h.error,
            })
        })
        .collect();
    let groups: Vec<serde_json::Value> = state
        .groups
        .iter()
        .map(|(id, members)| {
            let healthy = state.group_healthy(members);
            serde_json::json!({ "id": id, "members": members, "healthy": healthy })
        })
        .collect();
    // Only channels that cannot make progress (a full disk), with why.
    let channels: Vec<serde_json::Value> = state
        .channels
        .iter()
        .filter_map(|c| {
            let why = c.channel.degraded()?;
            Some(
                serde_json::json!({ "id": c.id, "healthy": false, "degraded": true, "error": why }),
            )
        })
        .collect();
    let overall = state.status();
    let status = if overall == state::Status::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = serde_json::json!({
        "status": overall,
        "components": components,
        "groups": groups,
        "channels": channels,
    });
    (status, Json(body)).into_response()
}

async fn metrics(
    State(state): State<Arc<ApiState>>,
    gate: Option<axum::Extension<sluice_net::conn::Gate>>,
) -> Response {
    let mut text = prometheus::render(&state.current());
    if let Some(axum::Extension(gate)) = gate {
        prometheus::render_api(&mut text, &gate);
    }
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], text).into_response()
}

async fn components(State(state): State<Arc<ApiState>>) -> Json<state::StateView> {
    Json(state.current().view())
}

async fn history(State(state): State<Arc<ApiState>>) -> Json<history::HistoryView> {
    Json(state.history.view())
}

async fn report(
    State(state): State<Arc<ApiState>>,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let state = state.current();
    let Some(c) = state.component(&id) else {
        let body = serde_json::json!({ "error": format!("no component `{id}`") });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let Some(report) = c.metrics.reports.get(&name) else {
        let body = serde_json::json!({
            "error": format!("component `{id}` reports no `{name}`"),
            "reports": c.metrics.reports.names(),
        });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    // Rendering takes the component's lock: off the runtime's threads.
    match tokio::task::spawn_blocking(move || report()).await {
        Ok(body) => Json(body).into_response(),
        Err(e) => {
            tracing::error!("report `{name}` of `{id}` failed: {e}");
            let body = serde_json::json!({ "error": "the report failed" });
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}

/// Query of `/api/tap/{component}`.
#[derive(serde::Deserialize)]
struct TapQuery {
    /// Stop after this many events.
    limit: Option<u64>,
}

async fn tap(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Query<TapQuery>,
) -> Response {
    let state = state.current();
    let Some(c) = state.component(&id) else {
        let known: Vec<&str> = state.components.iter().map(|c| c.id.as_str()).collect();
        let body = serde_json::json!({
            "error": format!("no component `{id}`"), "components": known,
        });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let body = tap::stream(c.id.clone(), c.metrics.tap.subscribe(), q.limit);
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}
