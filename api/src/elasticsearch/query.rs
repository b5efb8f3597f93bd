//! Elasticsearch's query DSL, translated into the store's query language
//! (`docs/store.md`), or refused with the part that is not supported.
//!
//! Nothing is silently ignored: a key, query, sort or aggregation outside
//! the subset below is a `400` naming it.
//!
//! | Elasticsearch | the store's query |
//! |---|---|
//! | `match_all`, `match_none` | `*`, `(NOT *)` |
//! | `query_string` | its `query`, as the store's syntax (terms joined by AND) |
//! | `term`, `terms`, `ids` | `field:"value"`, OR of them |
//! | `match` | the words of the text, OR (or `operator: and`) |
//! | `match_phrase` | `field:"the phrase"` |
//! | `range` | `field:[a TO b}`, dates as RFC 3339 |
//! | `exists` | `field:*` |
//! | `bool` | `must`/`filter` AND, `should` OR, `must_not` NOT |

use serde_json::Value as Json;
use sluice_core::event::Timestamp;

use super::request::{utc, EsError, Result};

/// A query object.
pub(crate) fn query(q: &Json) -> Result<String> {
    let Json::Object(o) = q else {
        return Err(EsError::parsing(format!(
            "a query must be an object, not {q}"
        )));
    };
    let mut members = o.iter();
    let (Some((kind, body)), None) = (members.next(), members.next()) else {
        return Err(EsError::parsing(format!(
            "a query object holds exactly one query, not {}",
            o.len()
        )));
    };
    match kind.as_str() {
        "match_all" => Ok("*".into()),
        "match_none" => Ok("(NOT *)".into()),
        "query_string" => query_string(body),
        "term" => term(body),
        "terms" => terms(body),
        "ids" => ids(body),
        "match" => match_words(body, false),
        "match_phrase" => match_words(body, true),
        "range" => range(body),
        "exists" => exists(body),
        "bool" => boolean(body),
        other => Err(EsError::parsing(format!(
            "unknown query [{other}]: Sluice supports match_all, match_none, query_string, term, terms, ids, match, match_phrase, range, exists and bool"
        ))),
    }
}

/// The one `{field: spec}` member of a leaf query, with the options its
/// spec may carry checked.
fn single_field<'a>(kind: &str, body: &'a Json) -> Result<(&'a str, &'a Json)> {
    let Json::Object(o) = body else {
        return Err(EsError::parsing(format!("[{kind}] must be an object")));
    };
    let fields: Vec<(&String, &Json)> = o.iter().filter(|(k, _)| *k != "boost").collect();
    let [(field, spec)] = fields.as_slice() else {
        return Err(EsError::parsing(format!(
            "[{kind}] query takes one field, not {}",
            fields.len()
        )));
    };
    Ok((field.as_str(), spec))
}

/// The value of a leaf's spec: itself, or its `key` member with only the
/// allowed options beside it.
fn spec_value<'a>(kind: &str, spec: &'a Json, key: &str, allowed: &[&str]) -> Result<&'a Json> {
    let Json::Object(o) = spec else {
        return Ok(spec);
    };
    for (k, v) in o {
        if k != key && k != "boost" && !allowed.contains(&k.as_str()) {
            let harmless = k == "case_insensitive" && v == &Json::Bool(false);
            if !harmless {
                return Err(EsError::parsing(format!(
                    "[{kind}] option [{k}] is not supported"
                )));
            }
        }
    }
    o.get(key)
        .ok_or_else(|| EsError::parsing(format!("[{kind}] needs [{key}]")))
}

/// A field name of the store's query language: `@timestamp` is the
/// event's time, `x.keyword` is `x` (strings are kept whole), `_id` and
/// `_index` the fields the `elasticsearch` source sets.
fn field(name: &str) -> Result<String> {
    let name = name.strip_suffix(".keyword").unwrap_or(name);
    match name {
        "@timestamp" | "timestamp" => return Ok("timestamp".into()),
        "message" => return Ok("message".into()),
        // `_id` is also a name of the store's own: the event field is
        // `fields._id`.
        "_id" | "_index" => return Ok(format!("fields.{name}")),
        _ => {}
    }
    if name.is_empty() || name.starts_with('-') {
        return Err(EsError::illegal(format!(
            "[{name}] is not a field name Sluice can search"
        )));
    }
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if "+^`:{}\"'[]()!\\* ".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// A value of a term: numbers and booleans bare, strings quoted.
fn literal(v: &Json) -> Result<String> {
    match v {
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        Json::String(s)
            if s.parse::<f64>().is_ok_and(f64::is_finite) && !s.contains(['e', 'E']) =>
        {
            Ok(s.clone())
        }
        Json::String(s) => Ok(quote(s)),
        other => Err(EsError::parsing(format!(
            "{other} is not a value to search for"
        ))),
    }
}

/// `s` as a quoted term of the store's syntax.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn term(body: &Json) -> Result<String> {
    let (name, spec) = single_field("term", body)?;
    let value = spec_value("term", spec, "value", &[])?;
    equals(name, value)
}

/// `field` equal to `value`; on the timestamp, that instant.
fn equals(name: &str, value: &Json) -> Result<String> {
    let f = field(name)?;
    if f == "timestamp" {
        let t = date(value, None)?;
        return Ok(format!("timestamp:[{t} TO {t}]"));
    }
    Ok(format!("{f}:{}", literal(value)?))
}

fn terms(body: &Json) -> Result<String> {
    let (name, values) = single_field("terms", body)?;
    let Json::Array(values) = values else {
        return Err(EsError::parsing(format!(
            "[terms] of [{name}] must be an array"
        )));
    };
    any(values.iter().map(|v| equals(name, v)))
}

fn ids(body: &Json) -> Result<String> {
    let Some(Json::Array(values)) = body.get("values") else {
        return Err(EsError::parsing("[ids] needs [values], an array"));
    };
    any(values.iter().map(|v| equals("_id", v)))
}

/// OR of the parts; nothing matches when there are none.
fn any(parts: impl Iterator<Item = Result<String>>) -> Result<String> {
    let parts: Vec<String> = parts.collect::<Result<_>>()?;
    if parts.is_empty() {
        return Ok("(NOT *)".into());
    }
    Ok(format!("({})", parts.join(" OR ")))
}

fn match_words(body: &Json, phrase: bool) -> Result<String> {
    let kind = if phrase { "match_phrase" } else { "match" };
    let (name, spec) = single_field(kind, body)?;
    let allowed: &[&str] = if phrase { &[] } else { &["operator"] };
    let value = spec_value(kind, spec, "query", allowed)?;
    let and = match spec
        .get("operator")
        .map(|o| o.as_str().map(str::to_ascii_lowercase))
    {
        None => false,
        Some(Some(o)) if o == "or" => false,
        Some(Some(o)) if o == "and" => true,
        Some(_) => return Err(EsError::parsing("[match] operator must be and or or")),
    };
    let f = field(name)?;
    if f == "timestamp" {
        return equals(name, value);
    }
    let Json::String(text) = value else {
        return Ok(format!("{f}:{}", literal(value)?));
    };
    if f != "message" || phrase {
        return Ok(format!("{f}:{}", quote(text)));
    }
    // The message is full text: its words, as Elasticsearch's `match`
    // analyses them.
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("message:{}", quote(w)))
        .collect();
    if words.is_empty() {
        return Ok("(NOT *)".into());
    }
    Ok(format!(
        "({})",
        words.join(if and { " AND " } else { " OR " })
    ))
}

fn exists(body: &Json) -> Result<String> {
    let Some(Json::String(name)) = body.get("field") else {
        return Err(EsError::parsing("[exists] needs [field]"));
    };
    let f = field(name)?;
    if f == "timestamp" || f == "message" {
        return Ok("*".into());
    }
    Ok(format!("{f}:*"))
}

fn range(body: &Json) -> Result<String> {
    let (name, spec) = single_field("range", body)?;
    let Json::Object(spec) = spec else {
        return Err(EsError::parsing(format!(
            "[range] of [{name}] must be an object"
        )));
    };
    let f = field(name)?;
    let time = f == "timestamp";
    let format = spec.get("format").and_then(Json::as_str);
    let (mut lower, mut upper) = ("[*".to_string(), "*]".to_string());
    for (k, v) in spec {
        let bound = || -> Result<String> {
            if time {
                date(v, format)
            } else {
                range_value(v)
            }
        };
        match k.as_str() {
            "gte" | "from" => lower = format!("[{}", bound()?),
            "gt" => lower = format!("{{{}", bound()?),
            "lte" | "to" => upper = format!("{}]", bound()?),
            "lt" => upper = format!("{}}}", bound()?),
            "format" if time => {}
            "time_zone" if utc(v) => {}
            "boost" => {}
            "relation" if v.as_str() == Some("intersects") => {}
            other => {
                return Err(EsError::parsing(format!(
                    "[range] option [{other}] = {v} is not supported"
                )))
            }
        }
    }
    Ok(format!("{f}:{lower} TO {upper}"))
}

/// A bound of a range on a field other than the time: a number, or a word.
fn range_value(v: &Json) -> Result<String> {
    match v {
        Json::Number(n) => Ok(n.to_string()),
        Json::String(s)
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_')) =>
        {
            Ok(s.clone())
        }
        other => Err(EsError::parsing(format!(
            "[range] bound {other} is not supported: use a number or a word of letters, digits, `.`, `-` and `_`"
        ))),
    }
}

/// A date bound as RFC 3339: an ISO 8601 date or date-time (UTC unless it
/// says otherwise), epoch milliseconds (a number, or text with `format:
/// epoch_millis`), epoch seconds with `format: epoch_second`, or `now` with
/// an optional `+N` / `-N` and unit (`s`, `m`, `h`, `d`, `w`).
fn date(v: &Json, format: Option<&str>) -> Result<String> {
    let formats: Vec<&str> = format.map(|f| f.split("||").collect()).unwrap_or_default();
    for f in &formats {
        if !matches!(
            *f,
            "epoch_millis"
                | "epoch_second"
                | "strict_date_optional_time"
                | "date_optional_time"
                | "strict_date_time"
                | "date_time"
        ) {
            return Err(EsError::illegal(format!(
                "date format [{f}] is not supported: use strict_date_optional_time, epoch_millis or epoch_second"
            )));
        }
    }
    let seconds = formats.contains(&"epoch_second");
    let number = |n: f64| {
        let ns = if seconds { n * 1e9 } else { n * 1e6 };
        (ns.is_finite() && ns.abs() < 9.2e18).then_some(Timestamp(ns as i64))
    };
    let t = match v {
        Json::Number(n) => n.as_f64().and_then(number),
        Json::String(s) => {
            let s = s.trim();
            if let Some(rest) = s.strip_prefix("now") {
                now_math(rest)
            } else if s.len() > 4
                && s.bytes().all(|b| b.is_ascii_digit())
                && (formats.is_empty() || seconds || formats.contains(&"epoch_millis"))
            {
                s.parse::<f64>().ok().and_then(number)
            } else {
                sluice_net::elasticsearch::bulk::parse_date(s)
            }
        }
        _ => None,
    };
    let t = t.ok_or_else(|| {
        EsError::parsing(format!(
            "failed to parse date field [{v}]: use ISO 8601 (2026-12-03T10:00:00Z), epoch milliseconds or now-15m"
        ))
    })?;
    Ok(t.to_datetime()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// `now`, `now-15m`, `now+1d`: rounding (`/d`) is not supported.
fn now_math(rest: &str) -> Option<Timestamp> {
    let now = Timestamp::now();
    if rest.is_empty() {
        return Some(now);
    }
    let (sign, amount) = match rest.as_bytes().first()? {
        b'-' => (-1i64, &rest[1..]),
        b'+' => (1, &rest[1..]),
        _ => return None,
    };
    let digits: String = amount.chars().take_while(char::is_ascii_digit).collect();
    let n: i64 = digits.parse().ok()?;
    let unit: i64 = match &amount[digits.len()..] {
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" | "H" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        "w" => 7 * 86_400_000_000_000,
        _ => return None,
    };
    Some(Timestamp(now.0.checked_add(sign * n.checked_mul(unit)?)?))
}

fn query_string(body: &Json) -> Result<String> {
    let Json::Object(o) = body else {
        return Err(EsError::parsing("[query_string] must be an object"));
    };
    let mut text = None;
    for (k, v) in o {
        match k.as_str() {
            "query" => text = v.as_str(),
            "default_field" if matches!(v.as_str(), Some("*" | "message")) => {}
            "default_operator" if v.as_str().is_some_and(|o| o.eq_ignore_ascii_case("and")) => {}
            "analyze_wildcard" | "boost" | "lenient" => {}
            "default_operator" => {
                return Err(EsError::illegal(
                    "[query_string] default_operator OR is not supported: terms are joined by AND; write OR between them",
                ))
            }
            other => {
                return Err(EsError::parsing(format!(
                    "[query_string] option [{other}] = {v} is not supported"
                )))
            }
        }
    }
    let text = text.ok_or_else(|| EsError::parsing("[query_string] needs [query], a string"))?;
    query_text(text)
}

/// Query text (`q`, `query_string`): the store's syntax, `@timestamp:` read
/// as `timestamp:`.
pub(crate) fn query_text(text: &str) -> Result<String> {
    let text = text.trim();
    if text.is_empty() || text == "*" {
        return Ok("*".into());
    }
    Ok(format!("({})", text.replace("@timestamp:", "timestamp:")))
}

fn boolean(body: &Json) -> Result<String> {
    let Json::Object(o) = body else {
        return Err(EsError::parsing("[bool] must be an object"));
    };
    let list = |v: &Json| -> Result<Vec<String>> {
        match v {
            Json::Array(a) => a.iter().map(query).collect(),
            other => Ok(vec![query(other)?]),
        }
    };
    let (mut must, mut should, mut not) = (Vec::new(), Vec::new(), Vec::new());
    let mut minimum = None;
    for (k, v) in o {
        match k.as_str() {
            "must" | "filter" => must.extend(list(v)?),
            "should" => should.extend(list(v)?),
            "must_not" => not.extend(list(v)?),
            "minimum_should_match" => {
                minimum = Some(
                    match v {
                        Json::Number(n) => n.as_u64(),
                        Json::String(s) => match s.as_str() {
                            "0" | "0%" => Some(0),
                            "1" | "100%" => Some(1),
                            _ => None,
                        },
                        _ => None,
                    }
                    .filter(|n| *n <= 1)
                    .ok_or_else(|| {
                        EsError::illegal(format!(
                            "[bool] minimum_should_match {v} is not supported: only 0 or 1"
                        ))
                    })?,
                )
            }
            "boost" => {}
            other => {
                return Err(EsError::parsing(format!(
                    "[bool] does not support [{other}]"
                )))
            }
        }
    }
    let mut parts = must;
    // As Elasticsearch: `should` must match once when nothing else is
    // required, else only scores (and scores are not computed here).
    let need_should = minimum.unwrap_or(u64::from(parts.is_empty())) >= 1;
    if !should.is_empty() && need_should {
        parts.push(format!("({})", should.join(" OR ")));
    }
    if parts.is_empty() {
        parts.push("*".into());
    }
    for n in not {
        parts.push(format!("NOT {n}"));
    }
    Ok(format!("({})", parts.join(" AND ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elasticsearch::request::search;
    use serde_json::json;

    fn q(v: Json) -> Result<String> {
        search(&json!({ "query": v }), &[]).map(|p| p.query)
    }

    #[test]
    fn queries_translate_into_the_store_syntax() {
        assert_eq!(q(json!({"match_all": {}})).unwrap(), "*");
        assert_eq!(
            q(json!({"term": {"service": "api"}})).unwrap(),
            "service:\"api\""
        );
        assert_eq!(
            q(json!({"term": {"service.keyword": {"value": "a\"b"}}})).unwrap(),
            "service:\"a\\\"b\""
        );
        assert_eq!(q(json!({"term": {"n": 5}})).unwrap(), "n:5");
        assert_eq!(q(json!({"term": {"status": "404"}})).unwrap(), "status:404");
        assert_eq!(
            q(json!({"term": {"_index": "logs"}})).unwrap(),
            "fields._index:\"logs\""
        );
        assert_eq!(
            q(json!({"terms": {"level": ["a", "b"]}})).unwrap(),
            "(level:\"a\" OR level:\"b\")"
        );
        assert_eq!(
            q(json!({"match": {"message": "disk full!"}})).unwrap(),
            "(message:\"disk\" OR message:\"full\")"
        );
        assert_eq!(
            q(json!({"match": {"message": {"query": "disk full", "operator": "and"}}})).unwrap(),
            "(message:\"disk\" AND message:\"full\")"
        );
        assert_eq!(
            q(json!({"match_phrase": {"message": "disk full"}})).unwrap(),
            "message:\"disk full\""
        );
        assert_eq!(
            q(json!({"range": {"n": {"gte": 10, "lt": 20}}})).unwrap(),
            "n:[10 TO 20}"
        );
        assert_eq!(q(json!({"range": {"n": {"gt": 1}}})).unwrap(), "n:{1 TO *]");
        assert_eq!(
            q(json!({"range": {"@timestamp": {"gte": "2026-12-03T10:00:00Z", "lte": 1796295600000_i64}}})).unwrap(),
            "timestamp:[2026-12-03T10:00:00Z TO 2026-12-03T11:00:00Z]"
        );
        assert_eq!(
            q(json!({"range": {"@timestamp": {"gte": "1796292000", "format": "epoch_second"}}}))
                .unwrap(),
            "timestamp:[2026-12-03T10:00:00Z TO *]"
        );
        assert_eq!(q(json!({"exists": {"field": "host"}})).unwrap(), "host:*");
        assert_eq!(
            q(json!({"bool": {
                "must": [{"term": {"a": 1}}],
                "filter": {"term": {"b": 2}},
                "should": [{"term": {"c": 3}}],
                "must_not": [{"term": {"d": 4}}]
            }}))
            .unwrap(),
            "(b:2 AND a:1 AND NOT d:4)"
        );
        assert_eq!(
            q(json!({"bool": {"should": [{"term": {"c": 3}}, {"term": {"c": 4}}], "must_not": {"term": {"d": 4}}}})).unwrap(),
            "((c:3 OR c:4) AND NOT d:4)"
        );
        assert_eq!(
            q(json!({"bool": {"must_not": {"match_all": {}}}})).unwrap(),
            "(* AND NOT *)"
        );
        assert_eq!(
            q(json!({"query_string": {"query": "level:error AND @timestamp:>2026-01-01"}}))
                .unwrap(),
            "(level:error AND timestamp:>2026-01-01)"
        );
        assert_eq!(
            q(json!({"ids": {"values": ["x"]}})).unwrap(),
            "(fields._id:\"x\")"
        );
        assert_eq!(
            q(json!({"term": {"we ird:name": true}})).unwrap(),
            "we\\ ird\\:name:true"
        );
    }

    #[test]
    fn what_is_not_supported_is_refused_by_name() {
        let reason = |v: Json| q(v).unwrap_err().reason;
        assert!(reason(json!({"fuzzy": {"a": "b"}})).contains("unknown query [fuzzy]"));
        assert!(
            reason(json!({"term": {"a": {"value": 1, "case_insensitive": true}}}))
                .contains("case_insensitive")
        );
        assert!(
            reason(json!({"match": {"message": {"query": "x", "fuzziness": 2}}}))
                .contains("fuzziness")
        );
        assert!(reason(json!({"range": {"@timestamp": {"gte": "now/d"}}}))
            .contains("failed to parse date"));
        assert!(
            reason(json!({"range": {"@timestamp": {"gte": "1", "format": "yyyy"}}}))
                .contains("yyyy")
        );
        assert!(
            reason(json!({"bool": {"should": [], "minimum_should_match": 2}}))
                .contains("minimum_should_match")
        );
        assert!(
            reason(json!({"query_string": {"query": "a b", "default_operator": "OR"}}))
                .contains("OR")
        );
        assert!(reason(json!({"term": {"a": 1, "b": 2}})).contains("one field"));
        let e = search(&json!({"highlight": {}}), &[]).unwrap_err();
        assert_eq!((e.status, e.kind), (400, "parsing_exception"));
        assert!(e.reason.contains("[highlight]"));
        let e = search(&json!({"size": 9000, "from": 2000}), &[]).unwrap_err();
        assert!(e.reason.contains("Result window is too large"));
        let e = search(&Json::Null, &[("scroll".into(), "1m".into())]).unwrap_err();
        assert!(e.reason.contains("unrecognized parameter: [scroll]"));
        let e = search(&json!({"sort": [{"level": "asc"}]}), &[]).unwrap_err();
        assert!(e.reason.contains("sorting on [level]"));
        let e = search(&json!({"aggs": {"x": {"terms": {"field": "a"}}}}), &[]).unwrap_err();
        assert!(e.reason.contains("[terms] is not supported"));
        let e = search(&json!({"aggs": {"x": {"date_histogram": {"field": "@timestamp", "calendar_interval": "month"}}}}), &[]).unwrap_err();
        assert!(e.reason.contains("month"));
    }
}
