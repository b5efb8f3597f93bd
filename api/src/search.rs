//! `GET /search`: the search of `sluice search` over the index of a `store`
//! sink of the running pipeline.
//!
//! The store is found per request in the pipeline running now (so a reload
//! that adds or removes a `store` sink is followed): `store=ID` names the
//! sink; without it the pipeline's only `store` sink is searched. The search
//! itself runs on a blocking thread.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sluice_core::event::Timestamp;
use sluice_core::topology::view::Snapshot;
use sluice_store::{SearchOptions, StoreError, StoreReader};

use crate::ApiState;

/// The most events one request may ask for.
pub const MAX_LIMIT: usize = 10_000;

/// Events returned when `limit` is not given (as `sluice search`).
const DEFAULT_LIMIT: usize = 100;

/// The query string of `/search`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// The query (`*` when absent).
    q: Option<String>,
    /// Only events at or after this time.
    from: Option<String>,
    /// Only events before this time.
    to: Option<String>,
    /// Events to return at most, newest first.
    limit: Option<String>,
    /// Count per bucket of this length instead of returning events.
    count_by: Option<String>,
    /// The id of the `store` sink to search.
    store: Option<String>,
}

/// A `store` sink of the running pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSink {
    /// The sink's id.
    pub id: String,
    /// Its index directory (its `path` option).
    pub path: PathBuf,
}

/// The `store` sinks of `snapshot`'s pipeline, in pipeline order.
pub fn store_sinks(snapshot: &Snapshot) -> Vec<StoreSink> {
    snapshot
        .pipeline
        .sinks
        .iter()
        .filter_map(|s| {
            let config = s
                .config
                .as_any()
                .downcast_ref::<sluice_store::sink::Config>()?;
            Some(StoreSink {
                id: s.id.clone(),
                path: config.path.clone(),
            })
        })
        .collect()
}

/// An error answer: `{"error": message, ...extra}`.
fn error(status: StatusCode, message: impl Into<String>, extra: serde_json::Value) -> Response {
    let mut body = serde_json::json!({ "error": message.into() });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (status, Json(body)).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message, serde_json::Value::Null)
}

/// Picks the sink `wanted` names, or the only one.
fn pick(stores: Vec<StoreSink>, wanted: Option<&str>) -> Result<StoreSink, Response> {
    let ids = || serde_json::json!({ "stores": stores.iter().map(|s| &s.id).collect::<Vec<_>>() });
    match wanted {
        Some(id) => match stores.iter().find(|s| s.id == id) {
            Some(s) => Ok(s.clone()),
            None => Err(error(
                StatusCode::NOT_FOUND,
                format!("no store sink `{id}`"),
                ids(),
            )),
        },
        None => match stores.as_slice() {
            [] => Err(error(
                StatusCode::NOT_FOUND,
                "the pipeline has no store sink",
                serde_json::Value::Null,
            )),
            [only] => Ok(only.clone()),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                "the pipeline has several store sinks: name one with store=ID",
                ids(),
            )),
        },
    }
}

/// The search options `params` ask for.
fn options(params: &Params) -> Result<SearchOptions, Response> {
    let now = Timestamp::now();
    let time = |s: &Option<String>, name: &str| {
        s.as_deref()
            .map(|s| {
                sluice_store::search::parse_time(s, now)
                    .map_err(|e| bad_request(format!("{name}: {e}")))
            })
            .transpose()
    };
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n <= MAX_LIMIT => n,
            _ => {
                return Err(bad_request(format!(
                    "limit: `{s}` is not a number from 0 to {MAX_LIMIT}"
                )))
            }
        },
    };
    let count_by = params
        .count_by
        .as_deref()
        .map(|s| match sluice_core::config::Duration::parse(s) {
            Ok(d) if !d.get().is_zero() => Ok(d.get()),
            Ok(_) => Err(bad_request("count_by: must be longer than 0, such as `1m`")),
            Err(e) => Err(bad_request(format!("count_by: {e}"))),
        })
        .transpose()?;
    Ok(SearchOptions {
        from: time(&params.from, "from")?,
        to: time(&params.to, "to")?,
        limit,
        count_by,
    })
}

/// `GET /search`.
pub(crate) async fn search(
    State(state): State<Arc<ApiState>>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => return bad_request(e.body_text()),
    };
    let opts = match options(&params) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let store = match pick(store_sinks(&state.snapshot()), params.store.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query = params.q.unwrap_or_else(|| "*".to_string());
    let run = move || StoreReader::open(&store.path)?.search(&query, &opts);
    match tokio::task::spawn_blocking(run).await {
        Ok(Ok(result)) => Json(result).into_response(),
        Ok(Err(e @ StoreError::Query(_))) => bad_request(e.to_string()),
        Ok(Err(e @ StoreError::Open(_))) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
            serde_json::Value::Null,
        ),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            serde_json::Value::Null,
        ),
        Err(e) => {
            tracing::error!("search failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the search failed",
                serde_json::Value::Null,
            )
        }
    }
}
