//! The routes sinks offer on the API (see [`sluice_core::route`]), served
//! without knowing any sink type:
//!
//! * `GET /api/sinks/{sink}/{route}?...`: any route of any sink;
//! * `GET /search?...`: the `search` route (the `store` sink's, the search
//!   of `sluice search`) of the pipeline's only sink that offers one, or of
//!   the one `store=ID` names.
//!
//! Sinks are found per request in the pipeline running now, so a reload that
//! adds or removes one is followed. A route runs on a blocking thread.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sluice_core::route::{RouteAnswer, SinkRoute};
use sluice_runtime::topology::view::Snapshot;

use crate::ApiState;

/// Query parameters, decoded, in order.
type Params = Vec<(String, String)>;

/// A sink of the running pipeline offering a route.
#[derive(Clone)]
pub struct Offered {
    /// The sink's id.
    pub id: String,
    /// Its handler.
    pub route: Arc<dyn SinkRoute>,
}

/// The sinks of `snapshot`'s pipeline offering a route named `name`, in
/// pipeline order.
pub fn offering(snapshot: &Snapshot, name: &str) -> Vec<Offered> {
    snapshot
        .pipeline
        .sinks
        .iter()
        .filter_map(|s| {
            let route = s.config.routes().into_iter().find(|(n, _)| *n == name)?.1;
            Some(Offered {
                id: s.id.clone(),
                route,
            })
        })
        .collect()
}

/// A request refused before any route ran: its status and
/// `{"error", "stores"?}`.
struct Refusal {
    status: StatusCode,
    message: String,
    /// The ids of the sinks offering the route, when they help choose one.
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
fn pick(stores: Vec<Offered>, wanted: Option<&str>) -> Result<Offered, Refusal> {
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
            _ => Err(listed(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the pipeline has several store sinks: name one with store=ID",
            ))),
        },
    }
}

/// Runs `route` on a blocking thread.
async fn answer(route: Arc<dyn SinkRoute>, params: Params) -> Response {
    let answer = match tokio::task::spawn_blocking(move || route.get(&params)).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("a sink route failed: {e}");
            RouteAnswer::error(500, "the route failed")
        }
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(answer.body)).into_response()
}

fn params(query: Result<Query<Params>, QueryRejection>) -> Result<Params, Refusal> {
    query
        .map(|Query(p)| p)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.body_text()))
}

/// `GET /search`.
pub(crate) async fn search(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let mut params = match params(query) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let mut wanted = None;
    params.retain(|(k, v)| {
        if k == "store" {
            wanted = Some(v.clone());
        }
        k != "store"
    });
    match pick(offering(&state.snapshot(), "search"), wanted.as_deref()) {
        Ok(store) => answer(store.route, params).await,
        Err(r) => r.into_response(),
    }
}

/// `GET /api/sinks/{sink}/{route}`.
pub(crate) async fn sink_route(
    State(state): State<Arc<ApiState>>,
    Path((sink, name)): Path<(String, String)>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = match params(query) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let snapshot = state.snapshot();
    let Some(config) = snapshot.pipeline.sinks.iter().find(|s| s.id == sink) else {
        return Refusal::new(StatusCode::NOT_FOUND, format!("no sink `{sink}`")).into_response();
    };
    let routes = config.config.routes();
    match routes.iter().find(|(n, _)| *n == name) {
        Some((_, route)) => answer(route.clone(), params).await,
        None => {
            let names: Vec<&str> = routes.iter().map(|(n, _)| *n).collect();
            let mut body = serde_json::json!({
                "error": format!("sink `{sink}` offers no route `{name}`"),
                "routes": names,
            });
            if names.is_empty() {
                body["error"] = format!("sink `{sink}` offers no routes").into();
            }
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl SinkRoute for Nothing {
        fn get(&self, _: &[(String, String)]) -> RouteAnswer {
            RouteAnswer::ok(serde_json::Value::Null)
        }
    }

    fn sink(id: &str) -> Offered {
        Offered {
            id: id.into(),
            route: Arc::new(Nothing),
        }
    }

    fn id(r: Result<Offered, Refusal>) -> Option<String> {
        r.ok().map(|o| o.id)
    }

    #[test]
    fn the_only_store_is_the_default_and_an_id_picks_one_of_several() {
        assert_eq!(id(pick(vec![sink("a")], None)), Some("a".into()));
        assert_eq!(
            id(pick(vec![sink("a"), sink("b")], Some("b"))),
            Some("b".into())
        );
        let Err(r) = pick(vec![sink("a"), sink("b")], None) else {
            panic!("ambiguous");
        };
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.stores, Some(vec!["a".to_string(), "b".to_string()]));
        let Err(r) = pick(vec![sink("a")], Some("c")) else {
            panic!("unknown");
        };
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.stores, Some(vec!["a".to_string()]));
        let Err(r) = pick(Vec::new(), None) else {
            panic!("none");
        };
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.message, "the pipeline has no store sink");
    }
}
