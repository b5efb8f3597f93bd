//! Compares the events that came out of a component with the `events:` a
//! test expects there, and says what differs, event by event and field by
//! field.

use sluice_core::event::{Event, Fields, Timestamp, Value};

use super::spec::ExpectedEvent;

/// What differs between `expected` and `actual` (empty when they agree).
pub fn compare(expected: &[ExpectedEvent], actual: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    if expected.len() != actual.len() {
        out.push(format!(
            "expected {} event{} (`events`), {} came out",
            expected.len(),
            if expected.len() == 1 { "" } else { "s" },
            actual.len()
        ));
    }
    for (i, (want, got)) in expected.iter().zip(actual).enumerate() {
        let n = i + 1;
        if let Some(m) = &want.message {
            if got.body != m.as_bytes() {
                out.push(format!(
                    "event #{n}: message: expected {:?}, got {:?}",
                    m,
                    String::from_utf8_lossy(&got.body)
                ));
            }
        }
        if let Some(t) = &want.timestamp {
            match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(d) if Timestamp::from_datetime(&d) == got.timestamp => {}
                Ok(_) => out.push(format!(
                    "event #{n}: timestamp: expected {t}, got {}",
                    got.timestamp
                )),
                Err(e) => out.push(format!("event #{n}: timestamp: `{t}` is not RFC 3339: {e}")),
            }
        }
        match &want.fields {
            None | Some(Value::Null) => {}
            Some(Value::Map(m)) => fields(n, "", m, &got.fields, &mut out),
            Some(v) => out.push(format!(
                "event #{n}: `fields` must be a mapping, found {}",
                v.kind()
            )),
        }
    }
    out
}

/// Each field of `want` must be in `got` with an equal value; maps are
/// compared the same way, key by key.
fn fields(n: usize, prefix: &str, want: &Fields, got: &Fields, out: &mut Vec<String>) {
    for (name, w) in want.iter() {
        let path = format!("{prefix}{name}");
        match (w, got.get(name)) {
            (_, None) => out.push(format!(
                "event #{n}: field `{path}`: expected {}, it is missing",
                show(w)
            )),
            (Value::Map(wm), Some(Value::Map(gm))) => fields(n, &format!("{path}."), wm, gm, out),
            (w, Some(g)) if !same(w, g) => out.push(format!(
                "event #{n}: field `{path}`: expected {}, got {}",
                show(w),
                show(g)
            )),
            _ => {}
        }
    }
}

/// Equal values; a timestamp also equals its RFC 3339 text.
fn same(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(s), Value::Timestamp(t)) => std::str::from_utf8(s)
            .ok()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|d| Timestamp::from_datetime(&d) == *t),
        (Value::Integer(a), Value::Float(b)) | (Value::Float(b), Value::Integer(a)) => {
            *a as f64 == *b
        }
        _ => want == got,
    }
}

/// A value as JSON with its type, so that `200` and `"200"` differ visibly.
fn show(v: &Value) -> String {
    let json = serde_json::to_string(v).unwrap_or_default();
    format!("{json} ({})", v.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::config::from_yaml_str;

    #[test]
    fn differences_name_the_event_and_the_field() {
        let want: Vec<ExpectedEvent> = from_yaml_str(
            "[{message: a, fields: {status: 200, http: {method: GET}}}, {fields: {x: 1}}]",
        )
        .unwrap();
        let mut e = Event::new("b", Timestamp(0));
        e.insert("status", "200");
        e.insert("http.method", "GET");
        e.insert("extra", true);
        let problems = compare(&want, &[e.clone()]);
        assert_eq!(
            problems,
            [
                "expected 2 events (`events`), 1 came out",
                "event #1: message: expected \"a\", got \"b\"",
                "event #1: field `status`: expected 200 (integer), got \"200\" (string)",
            ]
        );
        let mut ok = e;
        ok.body = "a".into();
        ok.insert("status", 200i64);
        assert!(compare(&want[..1], &[ok]).is_empty());
    }
}
