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

/// A request the search refuses: its status and `{"error", "stores"?}`.
struct Refusal {
    status: StatusCode,
    message: String,
    /// The ids of the store sinks, when they help choose one.
    stores: Option<Vec<String>>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            stores: None,
        }
    }

    fn bad(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let (Some(stores), Some(body)) = (self.stores, body.as_object_mut()) {
            body.insert("stores".into(), serde_json::json!(stores));
        }
        (self.status, Json(body)).into_response()
    }
}

/// Picks the sink `wanted` names, or the only one.
fn pick(stores: Vec<StoreSink>, wanted: Option<&str>) -> Result<StoreSink, Refusal> {
    let listed = |r: Refusal| Refusal {
        stores: Some(stores.iter().map(|s| s.id.clone()).collect()),
        ..r
    };
    match wanted {
        Some(id) => stores.iter().find(|s| s.id == id).cloned().ok_or_else(|| {
            listed(Refusal::new(
                StatusCode::NOT_FOUND,
                format!("no store sink `{id}`"),
            ))
        }),
        None => match stores.as_slice() {
            [] => Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "the pipeline has no store sink",
            )),
            [only] => Ok(only.clone()),
            _ => Err(listed(Refusal::bad(
                "the pipeline has several store sinks: name one with store=ID",
            ))),
        },
    }
}

/// The search options `params` ask for.
fn options(params: &Params) -> Result<SearchOptions, Refusal> {
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n <= MAX_LIMIT => n,
            _ => {
                return Err(Refusal::bad(format!(
                    "limit: `{s}` is not a number from 0 to {MAX_LIMIT}"
                )))
            }
        },
    };
    SearchOptions::from_text(
        params.from.as_deref(),
        params.to.as_deref(),
        params.count_by.as_deref(),
        limit,
        Timestamp::now(),
    )
    .map_err(|e| Refusal::bad(e.to_string()))
}

/// `GET /search`.
pub(crate) async fn search(
    State(state): State<Arc<ApiState>>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    match run(&state, params).await {
        Ok(result) => Json(result).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn run(
    state: &ApiState,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<sluice_store::SearchResult, Refusal> {
    let Query(params) = params.map_err(|e| Refusal::bad(e.body_text()))?;
    let opts = options(&params)?;
    let store = pick(store_sinks(&state.snapshot()), params.store.as_deref())?;
    let query = params.q.unwrap_or_else(|| "*".to_string());
    let search = move || StoreReader::open(&store.path)?.search(&query, &opts);
    match tokio::task::spawn_blocking(search).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e @ StoreError::Query(_))) => Err(Refusal::bad(e.to_string())),
        Ok(Err(e @ StoreError::Open(_))) => {
            Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
        Ok(Err(e)) => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
        Err(e) => {
            tracing::error!("search failed: {e}");
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the search failed",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(id: &str) -> StoreSink {
        StoreSink {
            id: id.into(),
            path: PathBuf::from(format!("./{id}")),
        }
    }

    #[test]
    fn the_only_store_is_the_default_and_an_id_picks_one_of_several() {
        assert_eq!(pick(vec![sink("a")], None).ok(), Some(sink("a")));
        assert_eq!(
            pick(vec![sink("a"), sink("b")], Some("b")).ok(),
            Some(sink("b"))
        );
        let r = pick(vec![sink("a"), sink("b")], None).expect_err("ambiguous");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.stores, Some(vec!["a".to_string(), "b".to_string()]));
        let r = pick(vec![sink("a")], Some("c")).expect_err("unknown");
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.stores, Some(vec!["a".to_string()]));
        let r = pick(Vec::new(), None).expect_err("none");
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.message, "the pipeline has no store sink");
    }

    #[test]
    fn options_parse_like_the_command_and_refuse_bad_values() {
        let p = |q: &str| -> Params {
            let mut p = Params::default();
            for pair in q.split('&') {
                let (k, v) = pair.split_once('=').expect("k=v");
                let v = Some(v.to_string());
                match k {
                    "q" => p.q = v,
                    "from" => p.from = v,
                    "to" => p.to = v,
                    "limit" => p.limit = v,
                    "count_by" => p.count_by = v,
                    _ => p.store = v,
                }
            }
            p
        };
        let o = options(&p("q=x")).ok().expect("defaults");
        assert_eq!(o.limit, DEFAULT_LIMIT);
        assert!(o.from.is_none() && o.to.is_none() && o.count_by.is_none());
        let o = options(&p("limit=0&count_by=1m&from=2026-11-26&to=now"))
            .ok()
            .expect("all set");
        assert_eq!(o.limit, 0);
        assert_eq!(o.count_by, Some(std::time::Duration::from_secs(60)));
        assert!(o.from.is_some_and(|f| o.to.is_some_and(|t| f < t)));
        for bad in [
            "limit=-1",
            "limit=10001",
            "count_by=0s",
            "count_by=often",
            "from=soon",
            "to=x",
        ] {
            let r = options(&p(bad))
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
