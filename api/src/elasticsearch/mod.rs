//! Elasticsearch's search API over the `search` route of the pipeline's
//! store sinks, for the clients and tools that speak it:
//!
//! * `GET|POST /_search`, `/{index}/_search`: a search request
//!   ([`request`] and [`query`] say which part of it is supported), answered as
//!   Elasticsearch answers: `hits.total`, `hits.hits` (`_index`, `_id`,
//!   `_score`, `_source`) and `aggregations` (`date_histogram` buckets);
//! * `GET|POST /_count`, `/{index}/_count`: `{"count": N}`.
//!
//! `{index}` is the id of a store sink; `*`, `_all` or none is the only
//! one; any other name is the only store's events whose `_index` field
//! (set by the `elasticsearch` source) is that name. The API stays
//! store-agnostic: each request becomes parameters of the sink's `search`
//! route (`q`, `limit`, `offset`, `order`, `count_by`), and its answer
//! (`total`, `hits`, `buckets`) is reshaped.
//!
//! Every answer carries `X-Elastic-Product: Elasticsearch`; errors have
//! Elasticsearch's shape.

pub mod query;
pub mod request;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value as Json};
use sluice_core::route::SinkRoute;
use sluice_net::elasticsearch::reply;

use crate::search::{offering, Offered};
use crate::ApiState;
use request::{EsError, Plan, Track};

type Params = Vec<(String, String)>;

/// A JSON answer with the product header and the content type asked for.
fn answer(headers: &HeaderMap, status: StatusCode, body: &Json) -> Response {
    let asked = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let content_type = reply::content_type(asked(header::ACCEPT), asked(header::CONTENT_TYPE));
    let mut bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes.push(b'\n');
    let mut r = (status, bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        reply::PRODUCT_HEADER,
        HeaderValue::from_static(reply::PRODUCT),
    );
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    r
}

fn refuse(headers: &HeaderMap, e: &EsError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    answer(headers, status, &reply::error(e.status, e.kind, &e.reason))
}

/// The request's body as JSON (`Null` when empty).
fn body_json(body: &Bytes) -> Result<Json, EsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Json::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| EsError::parsing(format!("the request body is not JSON: {e}")))
}

fn params(query: Result<Query<Params>, QueryRejection>) -> Result<Params, EsError> {
    query
        .map(|Query(p)| p)
        .map_err(|e| EsError::illegal(e.body_text()))
}

/// The store a request searches, and the `_index` its events must have.
fn resolve(state: &ApiState, index: Option<&str>) -> Result<(Offered, Option<String>), EsError> {
    let stores = offering(&state.snapshot(), "search");
    let ids = || {
        stores
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let not_found = |name: &str, why: String| EsError {
        status: 404,
        kind: "index_not_found_exception",
        reason: format!("no such index [{name}]: {why}"),
    };
    let only = |name: &str| match stores.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(not_found(name, "the pipeline has no store sink".into())),
        _ => Err(EsError::illegal(format!(
            "the pipeline has several store sinks: name one as the index ({})",
            ids()
        ))),
    };
    match index {
        None | Some("" | "*" | "_all") => Ok((only("_all")?, None)),
        Some(name) if name.contains([',', '*']) => Err(EsError::illegal(format!(
            "[{name}]: lists and patterns of indices are not supported: name one store sink or one index"
        ))),
        Some(name) => {
            if let Some(s) = stores.iter().find(|s| s.id == name) {
                return Ok((s.clone(), None));
            }
            if stores.len() > 1 {
                return Err(not_found(name, format!("it is none of the store sinks ({})", ids())));
            }
            Ok((only(name)?, Some(name.to_string())))
        }
    }
}

/// The store query restricted to the events of `index`, when one is named.
fn within(query: &str, index: Option<&str>) -> String {
    match index {
        None => query.to_string(),
        Some(i) => format!("({query}) AND fields._index:{}", query::quote(i)),
    }
}

/// Runs the store's route on a blocking thread.
async fn run(route: Arc<dyn SinkRoute>, params: Params) -> Result<Json, EsError> {
    let answer = tokio::task::spawn_blocking(move || route.get(&params))
        .await
        .map_err(|e| EsError {
            status: 500,
            kind: "exception",
            reason: format!("the search failed: {e}"),
        })?;
    if answer.status == 200 {
        return Ok(answer.body);
    }
    let reason = answer.body["error"]
        .as_str()
        .unwrap_or("the search failed")
        .to_string();
    Err(match answer.status {
        400 => EsError {
            status: 400,
            kind: "query_shard_exception",
            reason,
        },
        503 => EsError {
            status: 503,
            kind: "no_shard_available_action_exception",
            reason,
        },
        status => EsError {
            status,
            kind: "exception",
            reason,
        },
    })
}

/// `/_search`.
pub(crate) async fn search_all(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
    body: Bytes,
) -> Response {
    search(&state, None, &headers, query, &body).await
}

/// `/{index}/_search`.
pub(crate) async fn search_index(
    State(state): State<Arc<ApiState>>,
    Path(index): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
    body: Bytes,
) -> Response {
    search(&state, Some(&index), &headers, query, &body).await
}

/// `/_count`.
pub(crate) async fn count_all(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
    body: Bytes,
) -> Response {
    count(&state, None, &headers, query, &body).await
}

/// `/{index}/_count`.
pub(crate) async fn count_index(
    State(state): State<Arc<ApiState>>,
    Path(index): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
    body: Bytes,
) -> Response {
    count(&state, Some(&index), &headers, query, &body).await
}

async fn count(
    state: &ApiState,
    index: Option<&str>,
    headers: &HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
    body: &Bytes,
) -> Response {
    let result = async {
        let params = params(query)?;
        let q = request::count_query(&body_json(body)?, &params)?;
        let (store, only) = resolve(state, index)?;
        let params = vec![
            ("q".to_string(), within(&q, only.as_deref())),
            ("limit".to_string(), "0".to_string()),
        ];
        let found = run(store.route, params).await?;
        Ok::<_, EsError>(json!({
            "count": found["total"].as_u64().unwrap_or(0),
            "_shards": shards(),
        }))
    };
    match result.await {
        Ok(body) => answer(headers, StatusCode::OK, &body),
        Err(e) => refuse(headers, &e),
    }
}

fn shards() -> Json {
    json!({ "total": 1, "successful": 1, "skipped": 0, "failed": 0 })
}

async fn search(
    state: &ApiState,
    index: Option<&str>,
    headers: &HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
    body: &Bytes,
) -> Response {
    let started = Instant::now();
    let result = async {
        let params = params(query)?;
        let plan = request::search(&body_json(body)?, &params)?;
        let (store, only) = resolve(state, index)?;
        let q = within(&plan.query, only.as_deref());
        let found = run(
            store.route.clone(),
            vec![
                ("q".into(), q.clone()),
                ("limit".into(), plan.size.to_string()),
                ("offset".into(), plan.from.to_string()),
                (
                    "order".into(),
                    if plan.oldest_first {
                        "oldest"
                    } else {
                        "newest"
                    }
                    .into(),
                ),
            ],
        )
        .await?;
        let mut aggregations = Map::new();
        for (name, h) in &plan.aggs {
            let counted = run(
                store.route.clone(),
                vec![
                    ("q".into(), q.clone()),
                    ("count_by".into(), format!("{}ms", h.interval_ms)),
                ],
            )
            .await?;
            aggregations.insert(name.clone(), histogram(&counted, h)?);
        }
        Ok::<_, EsError>(shape(&plan, &store.id, &found, aggregations, started))
    };
    match result.await {
        Ok(body) => answer(headers, StatusCode::OK, &body),
        Err(e) => refuse(headers, &e),
    }
}

/// The search answer from the route's `{"total", "hits"}`.
fn shape(
    plan: &Plan,
    store: &str,
    found: &Json,
    aggregations: Map<String, Json>,
    started: Instant,
) -> Json {
    let total = found["total"].as_u64().unwrap_or(0);
    let empty = Vec::new();
    let hits: Vec<Json> = found["hits"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|h| hit(h, store, plan))
        .collect();
    let max_score = if plan.sorted || hits.is_empty() {
        Json::Null
    } else {
        json!(1.0)
    };
    let mut out_hits = Map::new();
    let total_json = match plan.track {
        Track::Off => None,
        Track::Exact => Some((total, "eq")),
        Track::UpTo(n) if total > n => Some((n, "gte")),
        Track::UpTo(_) => Some((total, "eq")),
    };
    if let Some((value, relation)) = total_json {
        let t = if plan.total_as_int {
            json!(value)
        } else {
            json!({ "value": value, "relation": relation })
        };
        out_hits.insert("total".into(), t);
    }
    out_hits.insert("max_score".into(), max_score);
    out_hits.insert("hits".into(), Json::Array(hits));
    let mut out = json!({
        "took": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "timed_out": false,
        "_shards": shards(),
        "hits": out_hits,
    });
    if !aggregations.is_empty() {
        out["aggregations"] = Json::Object(aggregations);
    }
    out
}

/// A time as Elasticsearch writes dates: with milliseconds
/// (`2026-12-03T10:00:00.000Z`), or with the digits it has when finer.
fn es_time(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(d) if d.timestamp_subsec_nanos() % 1_000_000 == 0 => d
            .to_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        _ => t.to_string(),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn millis(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// One hit from the route's `{"timestamp", "message", "fields"}`:
/// `_source` is the fields with `@timestamp` and `message` (left out when
/// the message is the document's own JSON text, which the `elasticsearch`
/// source makes the message of a document without one).
fn hit(h: &Json, store: &str, plan: &Plan) -> Json {
    let mut source = h["fields"].as_object().cloned().unwrap_or_default();
    let index = match source.remove("_index") {
        Some(Json::String(s)) => s,
        _ => store.to_string(),
    };
    let timestamp = h["timestamp"].as_str().unwrap_or_default();
    let message = h["message"].as_str().unwrap_or_default();
    let id = match source.remove("_id") {
        Some(Json::String(s)) => s,
        Some(other) => other.to_string(),
        // Events from other sources have no id: one from what they are.
        None => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (timestamp, message).hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        }
    };
    source.insert("@timestamp".into(), json!(es_time(timestamp)));
    let is_document = message.starts_with('{')
        && serde_json::from_str::<Json>(message).is_ok_and(|v| v.is_object());
    if !is_document {
        source.insert("message".into(), json!(message));
    }
    let mut out = json!({
        "_index": index,
        "_id": id,
        "_score": if plan.sorted { Json::Null } else { json!(1.0) },
    });
    if plan.source {
        out["_source"] = Json::Object(source);
    }
    if plan.sorted {
        out["sort"] = json!([millis(timestamp)]);
    }
    out
}

/// A `date_histogram` from the route's `buckets`: keys in milliseconds,
/// empty buckets between the first and the last filled in unless
/// `min_doc_count` is above 0.
fn histogram(counted: &Json, h: &request::Histogram) -> Result<Json, EsError> {
    let empty = Vec::new();
    let found: Vec<(i64, u64)> = counted["buckets"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|b| Some((millis(b["start"].as_str()?)?, b["count"].as_u64()?)))
        .collect();
    let key = |ms: i64| {
        let text = chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        (ms, text)
    };
    let mut buckets = Vec::new();
    if h.min_doc_count == 0 {
        if let (Some(first), Some(last)) = (found.first(), found.last()) {
            let n = (last.0 - first.0) / h.interval_ms + 1;
            if n > request::MAX_BUCKETS {
                return Err(EsError {
                    status: 400,
                    kind: "too_many_buckets_exception",
                    reason: format!(
                        "Trying to create too many buckets. Must be less than or equal to: [{}] but this number of buckets was [{n}]: use a longer interval or min_doc_count 1",
                        request::MAX_BUCKETS
                    ),
                });
            }
            let mut it = found.iter().peekable();
            let mut at = first.0;
            while at <= last.0 {
                let count = match it.peek() {
                    Some((k, c)) if *k == at => {
                        it.next();
                        *c
                    }
                    _ => 0,
                };
                let (ms, text) = key(at);
                buckets.push(json!({ "key_as_string": text, "key": ms, "doc_count": count }));
                at += h.interval_ms;
            }
        }
    } else {
        for (ms, count) in found.iter().filter(|(_, c)| *c >= h.min_doc_count) {
            let (ms, text) = key(*ms);
            buckets.push(json!({ "key_as_string": text, "key": ms, "doc_count": count }));
        }
    }
    Ok(json!({ "buckets": buckets }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_have_the_document_with_its_time_index_and_id() {
        let plan = request::search(&json!({"sort": {"@timestamp": "asc"}}), &[]).unwrap();
        let h = hit(
            &json!({"timestamp": "2026-12-03T10:00:00.5Z", "message": "hello",
                    "fields": {"_index": "logs", "_id": "a1", "n": 3}}),
            "store",
            &plan,
        );
        assert_eq!(h["_index"], "logs");
        assert_eq!(h["_id"], "a1");
        assert_eq!(
            h["_source"],
            json!({"@timestamp": "2026-12-03T10:00:00.500Z", "message": "hello", "n": 3})
        );
        assert_eq!(h["sort"], json!([1_796_292_000_500_i64]));
        assert_eq!(h["_score"], Json::Null);
        // A document without a message, from another source.
        let plan = request::search(&Json::Null, &[]).unwrap();
        let h = hit(
            &json!({"timestamp": "2026-12-03T10:00:00Z", "message": "{\"n\":3}", "fields": {"n": 3}}),
            "store",
            &plan,
        );
        assert_eq!(h["_index"], "store");
        assert_eq!(
            h["_source"],
            json!({"@timestamp": "2026-12-03T10:00:00.000Z", "n": 3})
        );
        assert_eq!(h["_id"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn histograms_fill_empty_buckets_unless_asked_not_to() {
        let counted = json!({"buckets": [
            {"start": "2026-12-03T10:00:00Z", "count": 2},
            {"start": "2026-12-03T10:03:00Z", "count": 1},
        ]});
        let h = |min| request::Histogram {
            interval_ms: 60_000,
            min_doc_count: min,
        };
        let all = histogram(&counted, &h(0)).unwrap();
        let counts: Vec<u64> = all["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["doc_count"].as_u64().unwrap())
            .collect();
        assert_eq!(counts, [2, 0, 0, 1]);
        assert_eq!(
            all["buckets"][0]["key_as_string"],
            "2026-12-03T10:00:00.000Z"
        );
        assert_eq!(all["buckets"][1]["key"], 1_796_292_060_000_i64);
        let some = histogram(&counted, &h(1)).unwrap();
        assert_eq!(some["buckets"].as_array().unwrap().len(), 2);
        let tiny = request::Histogram {
            interval_ms: 1,
            min_doc_count: 0,
        };
        assert_eq!(
            histogram(&counted, &tiny).unwrap_err().kind,
            "too_many_buckets_exception"
        );
    }

    #[test]
    fn totals_follow_track_total_hits() {
        let found = json!({"total": 12_345, "hits": []});
        let total = |body: Json| {
            let plan = request::search(&body, &[]).unwrap();
            shape(&plan, "s", &found, Map::new(), Instant::now())["hits"]["total"].clone()
        };
        assert_eq!(
            total(Json::Null),
            json!({"value": 10_000, "relation": "gte"})
        );
        assert_eq!(
            total(json!({"track_total_hits": true})),
            json!({"value": 12_345, "relation": "eq"})
        );
        assert_eq!(total(json!({"track_total_hits": false})), Json::Null);
        assert_eq!(
            total(json!({"track_total_hits": 20_000})),
            json!({"value": 12_345, "relation": "eq"})
        );
    }
}
