//! Elasticsearch's search request, translated into the parameters of a
//! sink's `search` route (the store's query language, `limit`, `offset`,
//! `order`, `count_by`), or refused with the part that is not supported:
//! the request's keys and parameters, `sort`, `track_total_hits` and the
//! `date_histogram` aggregation here, the query in [`query`](super::query).
//!
//! Nothing is silently ignored: a key, parameter, sort or aggregation
//! outside the subset is a `400` naming it.

use serde_json::{Map, Value as Json};

use super::query::{query, query_text};

/// A refused request: status, Elasticsearch's error type and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct EsError {
    pub status: u16,
    pub kind: &'static str,
    pub reason: String,
}

impl EsError {
    pub(crate) fn parsing(reason: impl Into<String>) -> EsError {
        EsError {
            status: 400,
            kind: "parsing_exception",
            reason: reason.into(),
        }
    }

    pub(crate) fn illegal(reason: impl Into<String>) -> EsError {
        EsError {
            status: 400,
            kind: "illegal_argument_exception",
            reason: reason.into(),
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, EsError>;

/// The furthest hit a search may reach (`from + size`), as Elasticsearch's
/// `index.max_result_window` and the store's window.
pub const MAX_WINDOW: usize = 10_000;

/// Buckets one aggregation may return at most (Elasticsearch's
/// `search.max_buckets`).
pub const MAX_BUCKETS: i64 = 65_536;

/// How `hits.total` is counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Track {
    /// Exactly (`track_total_hits: true`).
    Exact,
    /// Exactly up to this many, then `"relation": "gte"` (the default,
    /// 10,000).
    UpTo(u64),
    /// Not at all (`false`): no `total`.
    Off,
}

/// One `date_histogram`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The bucket width in milliseconds.
    pub interval_ms: i64,
    /// Buckets with fewer matches are left out (0: empty buckets between
    /// the first and the last are listed).
    pub min_doc_count: u64,
}

/// A search request, translated.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The store query.
    pub query: String,
    pub size: usize,
    pub from: usize,
    pub oldest_first: bool,
    /// A sort was asked for: hits carry `sort` and no score.
    pub sorted: bool,
    pub track: Track,
    /// `rest_total_hits_as_int`: `hits.total` as a number.
    pub total_as_int: bool,
    /// `_source: false` leaves it out of the hits.
    pub source: bool,
    pub aggs: Vec<(String, Histogram)>,
}

/// URL parameters that change nothing in the answer's content.
const HARMLESS: &[&str] = &["pretty", "human", "error_trace"];

/// Translates a `_search`: its JSON body (`Null` when none) and URL
/// parameters.
pub fn search(body: &Json, params: &[(String, String)]) -> Result<Plan> {
    let mut plan = Plan {
        query: "*".into(),
        size: 10,
        from: 0,
        oldest_first: false,
        sorted: false,
        track: Track::UpTo(10_000),
        total_as_int: false,
        source: true,
        aggs: Vec::new(),
    };
    let body = object(body, "the request body")?;
    for (key, v) in body.iter() {
        match key.as_str() {
            "query" => plan.query = query(v)?,
            "size" => plan.size = count(v, "size")?,
            "from" => plan.from = count(v, "from")?,
            "sort" => sort(v, &mut plan)?,
            "track_total_hits" => plan.track = track(v)?,
            "_source" => plan.source = flag(v, "_source")?,
            "aggs" | "aggregations" => plan.aggs = aggregations(v)?,
            other => {
                return Err(EsError::parsing(format!(
                    "[{other}] is not supported by Sluice's _search; supported keys: query, size, from, sort, track_total_hits, _source, aggs"
                )))
            }
        }
    }
    for (key, v) in params {
        let text = Json::String(v.clone());
        match key.as_str() {
            "q" => plan.query = query_text(v)?,
            "size" => plan.size = count(&number_text(v), "size")?,
            "from" => plan.from = count(&number_text(v), "from")?,
            "sort" => sort(&text, &mut plan)?,
            "track_total_hits" => plan.track = track(&bool_or_number_text(v))?,
            "rest_total_hits_as_int" => plan.total_as_int = v.is_empty() || v == "true",
            "_source" => plan.source = flag(&bool_or_number_text(v), "_source")?,
            k if HARMLESS.contains(&k) => {}
            other => {
                return Err(EsError::illegal(format!(
                    "request [/_search] contains unrecognized parameter: [{other}]"
                )))
            }
        }
    }
    if plan.from + plan.size > MAX_WINDOW {
        return Err(EsError::illegal(format!(
            "Result window is too large, from + size must be less than or equal to: [{MAX_WINDOW}] but was [{}]",
            plan.from + plan.size
        )));
    }
    Ok(plan)
}

/// Translates a `_count`: its `query`, or `q`.
pub fn count_query(body: &Json, params: &[(String, String)]) -> Result<String> {
    let mut q = "*".to_string();
    for (key, v) in object(body, "the request body")?.iter() {
        match key.as_str() {
            "query" => q = query(v)?,
            other => {
                return Err(EsError::parsing(format!(
                    "[{other}] is not supported by _count; only query"
                )))
            }
        }
    }
    for (key, v) in params {
        match key.as_str() {
            "q" => q = query_text(v)?,
            k if HARMLESS.contains(&k) => {}
            other => {
                return Err(EsError::illegal(format!(
                    "request [/_count] contains unrecognized parameter: [{other}]"
                )))
            }
        }
    }
    Ok(q)
}

fn number_text(v: &str) -> Json {
    v.parse::<u64>().map_or(Json::String(v.into()), Json::from)
}

fn bool_or_number_text(v: &str) -> Json {
    match v {
        "" | "true" => Json::Bool(true),
        "false" => Json::Bool(false),
        _ => number_text(v),
    }
}

fn object<'a>(v: &'a Json, what: &str) -> Result<std::borrow::Cow<'a, Map<String, Json>>> {
    match v {
        Json::Null => Ok(std::borrow::Cow::Owned(Map::new())),
        Json::Object(o) => Ok(std::borrow::Cow::Borrowed(o)),
        _ => Err(EsError::parsing(format!("{what} must be an object"))),
    }
}

fn count(v: &Json, key: &str) -> Result<usize> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| EsError::parsing(format!("[{key}] must be a number of 0 or more, not {v}")))
}

fn flag(v: &Json, key: &str) -> Result<bool> {
    v.as_bool().ok_or_else(|| {
        EsError::parsing(format!(
            "[{key}] is supported only as true or false, not {v}"
        ))
    })
}

fn track(v: &Json) -> Result<Track> {
    match v {
        Json::Bool(true) => Ok(Track::Exact),
        Json::Bool(false) => Ok(Track::Off),
        Json::Number(n) => match n.as_i64() {
            Some(-1) => Ok(Track::Exact),
            Some(n) if n >= 0 => Ok(Track::UpTo(n as u64)),
            _ => Err(EsError::illegal(format!(
                "[track_total_hits] must be true, false or a number of 0 or more, not {v}"
            ))),
        },
        _ => Err(EsError::illegal(format!(
            "[track_total_hits] must be true, false or a number, not {v}"
        ))),
    }
}

/// `sort`: one key, `@timestamp` (or `timestamp`) ascending or descending,
/// or `_score` (newest first, the store's own order).
fn sort(v: &Json, plan: &mut Plan) -> Result<()> {
    let keys: Vec<&Json> = match v {
        Json::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let [key] = keys.as_slice() else {
        return Err(EsError::parsing(format!(
            "[sort] takes one key (@timestamp or _score), not {}",
            keys.len()
        )));
    };
    let (field, order) = match key {
        Json::String(s) => match s.split_once(':') {
            Some((f, o)) => (f.to_string(), Some(o.to_string())),
            None => (s.clone(), None),
        },
        Json::Object(o) if o.len() == 1 => {
            let (f, spec) = o
                .iter()
                .next()
                .map(|(k, v)| (k.clone(), v))
                .unwrap_or_default();
            let order = match spec {
                Json::String(s) => Some(s.clone()),
                Json::Object(opts) => {
                    for k in opts.keys() {
                        if !matches!(k.as_str(), "order" | "format" | "unmapped_type") {
                            return Err(EsError::parsing(format!(
                                "[sort] option [{k}] is not supported; only order"
                            )));
                        }
                    }
                    opts.get("order").and_then(Json::as_str).map(str::to_string)
                }
                other => {
                    return Err(EsError::parsing(format!(
                        "[sort] of [{f}]: {other} is not an order"
                    )))
                }
            };
            (f, order)
        }
        other => {
            return Err(EsError::parsing(format!(
                "[sort]: {other} is not a sort key"
            )))
        }
    };
    let descending = match order.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => field == "_score",
        Some("desc") => true,
        Some("asc") => false,
        Some(o) => {
            return Err(EsError::parsing(format!(
                "[sort] order [{o}] is not asc or desc"
            )))
        }
    };
    match field.as_str() {
        "@timestamp" | "timestamp" => {
            plan.sorted = true;
            plan.oldest_first = !descending;
        }
        "_score" if descending => plan.oldest_first = false,
        other => {
            return Err(EsError::illegal(format!(
                "sorting on [{other}] is not supported: only @timestamp (asc or desc) and _score"
            )))
        }
    }
    Ok(())
}

/// `aggs`: `date_histogram`s on the timestamp, without sub-aggregations.
fn aggregations(v: &Json) -> Result<Vec<(String, Histogram)>> {
    let aggs = object(v, "[aggs]")?;
    let mut out = Vec::new();
    for (name, agg) in aggs.iter() {
        let agg = object(agg, &format!("aggregation [{name}]"))?;
        let mut histogram = None;
        for (kind, spec) in agg.iter() {
            match kind.as_str() {
                "date_histogram" => histogram = Some(date_histogram(name, spec)?),
                "aggs" | "aggregations" => {
                    return Err(EsError::illegal(format!(
                        "aggregation [{name}]: sub-aggregations are not supported"
                    )))
                }
                other => {
                    return Err(EsError::illegal(format!(
                        "aggregation [{name}]: [{other}] is not supported; only date_histogram on @timestamp"
                    )))
                }
            }
        }
        let histogram = histogram
            .ok_or_else(|| EsError::parsing(format!("aggregation [{name}] has no type")))?;
        out.push((name.clone(), histogram));
    }
    Ok(out)
}

fn date_histogram(name: &str, spec: &Json) -> Result<Histogram> {
    let spec = object(spec, &format!("[date_histogram] of [{name}]"))?;
    let mut interval = None;
    let mut min_doc_count = 0;
    for (key, v) in spec.iter() {
        match key.as_str() {
            "field" => match v.as_str() {
                Some("@timestamp" | "timestamp") => {}
                _ => {
                    return Err(EsError::illegal(format!(
                        "[date_histogram] of [{name}]: only the field @timestamp is supported, not {v}"
                    )))
                }
            },
            "fixed_interval" | "calendar_interval" | "interval" => {
                if interval.is_some() {
                    return Err(EsError::illegal(format!(
                        "[date_histogram] of [{name}]: give one interval"
                    )));
                }
                let text = v.as_str().ok_or_else(|| {
                    EsError::parsing(format!("[{key}] of [{name}] must be a string such as 1m"))
                })?;
                interval = Some(interval_ms(key, text)?);
            }
            "min_doc_count" => {
                min_doc_count = v.as_u64().ok_or_else(|| {
                    EsError::parsing(format!("[min_doc_count] of [{name}] must be a number"))
                })?;
            }
            "time_zone" if utc(v) => {}
            "offset" if matches!(v.as_str(), Some("0" | "+0" | "0s" | "0ms")) => {}
            "keyed" if v == &Json::Bool(false) => {}
            "format" if matches!(v.as_str(), Some("strict_date_optional_time" | "date_optional_time")) => {}
            other => {
                return Err(EsError::illegal(format!(
                    "[date_histogram] of [{name}]: [{other}] = {v} is not supported; supported: field, fixed_interval, calendar_interval, interval, min_doc_count, time_zone UTC"
                )))
            }
        }
    }
    let interval_ms = interval.ok_or_else(|| {
        EsError::illegal(format!(
            "[date_histogram] of [{name}]: fixed_interval or calendar_interval is required"
        ))
    })?;
    Ok(Histogram {
        interval_ms,
        min_doc_count,
    })
}

pub(crate) fn utc(v: &Json) -> bool {
    matches!(
        v.as_str(),
        Some("UTC" | "utc" | "Z" | "+00:00" | "Etc/UTC" | "GMT")
    )
}

/// An interval in milliseconds: `30s`, `5m`, `1h`, `1d` (fixed), or the
/// calendar units that have a fixed length in UTC (`minute`, `hour`,
/// `day`, `1m`, `1h`, `1d`).
fn interval_ms(key: &str, text: &str) -> Result<i64> {
    let calendar = match text {
        "minute" | "1m" => Some(60_000),
        "hour" | "1h" => Some(3_600_000),
        "day" | "1d" => Some(86_400_000),
        "second" | "1s" => Some(1_000),
        _ => None,
    };
    if key == "calendar_interval" {
        return calendar.ok_or_else(|| {
            EsError::illegal(format!(
                "calendar_interval [{text}] is not supported: weeks, months, quarters and years are not; use second, minute, hour, day or a fixed_interval"
            ))
        });
    }
    if let Some(ms) = calendar.filter(|_| key == "interval") {
        return Ok(ms);
    }
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let unit = &text[digits.len()..];
    let n: i64 = digits.parse().map_err(|_| {
        EsError::illegal(format!(
            "[{key}] [{text}] is not a number and a unit such as 30s"
        ))
    })?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(EsError::illegal(format!(
                "[{key}] [{text}]: the unit must be ms, s, m, h or d"
            )))
        }
    };
    match n.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(EsError::illegal(format!(
            "[{key}] [{text}] must be longer than 0"
        ))),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_sort_totals_and_histograms() {
        let p = search(&Json::Null, &[]).unwrap();
        assert_eq!(
            (p.query.as_str(), p.size, p.from, p.track),
            ("*", 10, 0, Track::UpTo(10_000))
        );
        let p = search(
            &json!({"size": 3, "from": 6, "sort": [{"@timestamp": {"order": "asc"}}], "track_total_hits": true,
                    "aggs": {"per_min": {"date_histogram": {"field": "@timestamp", "fixed_interval": "90s", "min_doc_count": 1}}}}),
            &[("pretty".into(), "true".into())],
        )
        .unwrap();
        assert_eq!(
            (p.size, p.from, p.oldest_first, p.sorted, p.track),
            (3, 6, true, true, Track::Exact)
        );
        assert_eq!(
            p.aggs,
            [(
                "per_min".to_string(),
                Histogram {
                    interval_ms: 90_000,
                    min_doc_count: 1
                }
            )]
        );
        let p = search(
            &json!({"sort": "@timestamp:desc", "track_total_hits": 50}),
            &[],
        )
        .unwrap();
        assert!(!p.oldest_first && p.sorted);
        assert_eq!(p.track, Track::UpTo(50));
        let p = search(
            &Json::Null,
            &[
                ("q".into(), "level:warn".into()),
                ("sort".into(), "@timestamp:asc".into()),
                ("size".into(), "0".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            (p.query.as_str(), p.oldest_first, p.size),
            ("(level:warn)", true, 0)
        );
        let p = search(&json!({"aggs": {"h": {"date_histogram": {"field": "@timestamp", "calendar_interval": "hour"}}}}), &[]).unwrap();
        assert_eq!(p.aggs[0].1.interval_ms, 3_600_000);
        assert_eq!(
            count_query(&json!({"query": {"term": {"a": 1}}}), &[]).unwrap(),
            "a:1"
        );
    }
}
