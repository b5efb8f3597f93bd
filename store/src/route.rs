//! The `search` route the `store` sink offers on the agent's API
//! (`GET /api/sinks/{id}/search`, and `GET /search` for the pipeline's only
//! or named store): the search of `sluice search`, with the same options
//! and the same JSON.

use std::path::PathBuf;

use sluice_core::event::Timestamp;
use sluice_core::route::{RouteAnswer, SinkRoute};

use crate::{SearchOptions, StoreError, StoreReader};

/// The most events one request may ask for.
pub const MAX_LIMIT: usize = 10_000;

/// Events returned when `limit` is not given (as `sluice search`).
pub const DEFAULT_LIMIT: usize = 100;

/// Searches the index at `path` (the sink's `path` option).
#[derive(Debug, Clone)]
pub struct SearchRoute {
    /// The index directory.
    pub path: PathBuf,
}

/// What a request asks for.
#[derive(Debug)]
struct Request {
    query: String,
    options: SearchOptions,
}

impl SinkRoute for SearchRoute {
    /// Parameters: `q` (default `*`), `from`, `to`, `limit` (default 100, at
    /// most 10,000; 0 returns only the total), `count_by`, `order`
    /// (`newest`, the default, or `oldest` first) and `offset` (matches
    /// skipped; `offset + limit` at most 10,000). `400` for a bad parameter
    /// or query, `503` when the index cannot be opened.
    fn get(&self, params: &[(String, String)]) -> RouteAnswer {
        let request = match request(params, Timestamp::now()) {
            Ok(r) => r,
            Err(message) => return RouteAnswer::error(400, message),
        };
        let result =
            StoreReader::open(&self.path).and_then(|r| r.search(&request.query, &request.options));
        match result {
            Ok(result) => match serde_json::to_value(result) {
                Ok(body) => RouteAnswer::ok(body),
                Err(e) => RouteAnswer::error(500, e.to_string()),
            },
            Err(e @ StoreError::Query(_)) => RouteAnswer::error(400, e.to_string()),
            Err(e @ StoreError::Open(_)) => RouteAnswer::error(503, e.to_string()),
            Err(e) => RouteAnswer::error(500, e.to_string()),
        }
    }
}

/// Reads the parameters; the message of a `400` for a bad one.
fn request(params: &[(String, String)], now: Timestamp) -> Result<Request, String> {
    let (mut q, mut from, mut to, mut limit, mut count_by) = (None, None, None, None, None);
    let (mut order, mut offset) = (None, None);
    for (key, value) in params {
        let slot = match key.as_str() {
            "q" => &mut q,
            "from" => &mut from,
            "to" => &mut to,
            "limit" => &mut limit,
            "count_by" => &mut count_by,
            "order" => &mut order,
            "offset" => &mut offset,
            other => {
                return Err(format!(
                "unknown parameter `{}`: expected q, from, to, limit, count_by, order or offset",
                sluice_core::quote::quoted(other).max(100)
            ))
            }
        };
        if slot.replace(value.as_str()).is_some() {
            return Err(format!("`{key}` is given twice"));
        }
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n <= MAX_LIMIT => n,
            _ => {
                return Err(format!(
                    "limit: `{}` is not a number from 0 to {MAX_LIMIT}",
                    sluice_core::quote::quoted(s).max(100)
                ))
            }
        },
    };
    let offset = match offset {
        None => 0,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n + limit <= crate::search::MAX_WINDOW => n,
            _ => {
                return Err(format!(
                    "offset: `{}` is not a number from 0 to {} (offset + limit at most {})",
                    sluice_core::quote::quoted(s).max(100),
                    crate::search::MAX_WINDOW - limit,
                    crate::search::MAX_WINDOW
                ))
            }
        },
    };
    let oldest_first = match order {
        None | Some("newest") => false,
        Some("oldest") => true,
        Some(other) => {
            return Err(format!(
                "order: `{}` is not `newest` or `oldest`",
                sluice_core::quote::quoted(other).max(100)
            ))
        }
    };
    let mut options =
        SearchOptions::from_text(from, to, count_by, limit, now).map_err(|e| e.to_string())?;
    options.oldest_first = oldest_first;
    options.offset = offset;
    Ok(Request {
        query: q.unwrap_or("*").to_string(),
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Request, String> {
        let pairs: Vec<(String, String)> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').expect("k=v");
                (k.to_string(), v.to_string())
            })
            .collect();
        request(&pairs, Timestamp::now())
    }

    #[test]
    fn options_parse_like_the_command_and_refuse_bad_values() {
        let r = parse("").expect("defaults");
        assert_eq!(r.query, "*");
        let o = parse("q=x").expect("defaults").options;
        assert_eq!(o.limit, DEFAULT_LIMIT);
        assert!(o.from.is_none() && o.to.is_none() && o.count_by.is_none());
        let o = parse("limit=0&count_by=1m&from=2026-11-26&to=now")
            .expect("all set")
            .options;
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
            "sort=asc",
            "q=a&q=b",
            "order=up",
            "offset=x",
            "offset=9990&limit=11",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        assert!(parse("from=soon").unwrap_err().starts_with("from:"));
        let o = parse("order=oldest&offset=20&limit=5")
            .expect("paged")
            .options;
        assert!(o.oldest_first);
        assert_eq!((o.offset, o.limit), (20, 5));
    }

    #[test]
    fn a_missing_index_is_a_503_and_a_bad_query_a_400() {
        let dir = tempfile::tempdir().expect("tempdir");
        let route = SearchRoute {
            path: dir.path().join("none"),
        };
        assert_eq!(route.get(&[]).status, 503);
        let bad = route.get(&[("limit".into(), "x".into())]);
        assert_eq!(bad.status, 400);
        assert!(bad.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("limit")));
    }
}
