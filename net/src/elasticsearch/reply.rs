//! The shapes of Elasticsearch's answers that clients check, shared by the
//! `elasticsearch` source and the API's `_search`: the product header, the
//! content type a client asked for, the error body and the `GET /` info.

use serde_json::{json, Value};

/// The header the official clients (8.x, 9.x) require on every successful
/// answer before they accept the server as Elasticsearch.
pub const PRODUCT_HEADER: &str = "x-elastic-product";

/// Its value.
pub const PRODUCT: &str = "Elasticsearch";

/// The media type the official clients send and ask for
/// (`Accept: application/vnd.elasticsearch+json; compatible-with=9`).
const COMPAT_JSON: &str = "application/vnd.elasticsearch+json";

/// The `Content-Type` of a JSON answer to a request with `accept` (or,
/// without it, `content_type`): the compatible-with media type when the
/// client asked for it (with the version it named), else
/// `application/json`.
pub fn content_type(accept: Option<&str>, content_type: Option<&str>) -> String {
    let asked = accept.or(content_type).unwrap_or_default();
    if !asked.contains(COMPAT_JSON) {
        return "application/json".to_string();
    }
    let version = asked
        .split_once("compatible-with=")
        .map(|(_, v)| {
            v.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "8".to_string());
    format!("{COMPAT_JSON};compatible-with={version}")
}

/// Elasticsearch's error body:
/// `{"error":{"root_cause":[{"type","reason"}],"type","reason"},"status"}`.
pub fn error(status: u16, kind: &str, reason: &str) -> Value {
    json!({
        "error": {
            "root_cause": [{ "type": kind, "reason": reason }],
            "type": kind,
            "reason": reason,
        },
        "status": status,
    })
}

/// The answer to `GET /` for `version` (`MAJOR.MINOR.PATCH`): what clients
/// and shippers read to choose how to talk (Vector, Filebeat and Logstash
/// look at `version.number`).
pub fn info(name: &str, cluster_name: &str, version: &str) -> Value {
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(8);
    // What an Elasticsearch of that major version reports.
    let (lucene, wire, index) = match major {
        0..=7 => ("8.11.1", "6.8.0", "6.0.0-beta1"),
        8 => ("9.12.0", "7.17.0", "7.0.0"),
        _ => ("10.2.2", "8.18.0", "8.0.0"),
    };
    json!({
        "name": name,
        "cluster_name": cluster_name,
        "cluster_uuid": "sluice-0000000000000000",
        "version": {
            "number": version,
            "build_flavor": "default",
            "build_type": "sluice",
            "build_hash": "sluice",
            "build_date": "2026-01-01T00:00:00.000Z",
            "build_snapshot": false,
            "lucene_version": lucene,
            "minimum_wire_compatibility_version": wire,
            "minimum_index_compatibility_version": index,
        },
        "tagline": "You Know, for Search",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_type_follows_what_the_client_asked_for() {
        assert_eq!(content_type(None, None), "application/json");
        assert_eq!(
            content_type(Some("application/json"), None),
            "application/json"
        );
        assert_eq!(
            content_type(
                Some("application/vnd.elasticsearch+json; compatible-with=9"),
                None
            ),
            "application/vnd.elasticsearch+json;compatible-with=9"
        );
        assert_eq!(
            content_type(
                None,
                Some("application/vnd.elasticsearch+x-ndjson; compatible-with=8")
            ),
            "application/json"
        );
        assert_eq!(
            content_type(None, Some("application/vnd.elasticsearch+json")),
            "application/vnd.elasticsearch+json;compatible-with=8"
        );
    }

    #[test]
    fn errors_and_info_have_the_shape_clients_read() {
        let e = error(400, "parsing_exception", "unknown query [fuzzy]");
        assert_eq!(e["error"]["type"], "parsing_exception");
        assert_eq!(
            e["error"]["root_cause"][0]["reason"],
            "unknown query [fuzzy]"
        );
        assert_eq!(e["status"], 400);
        let i = info("n", "c", "9.1.0");
        assert_eq!(i["version"]["number"], "9.1.0");
        assert_eq!(i["version"]["build_flavor"], "default");
        assert_eq!(i["version"]["lucene_version"], "10.2.2");
        assert_eq!(i["tagline"], "You Know, for Search");
    }
}
