//! `timestamp`: sets the event timestamp, to now or to a time parsed from a
//! field.
//!
//! Without options every event of a batch gets the same "now" (one clock read
//! per batch). With `field`, the time is parsed from that field in `format`;
//! with `target`, the result is written to a field instead of the event
//! timestamp.

use chrono::format::{Item, StrftimeItems};
use serde::Deserialize;
use sluice_core::prelude::*;

/// Options of the `timestamp` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Parse the time from this field (dotted path) instead of using the
    /// current time.
    #[serde(default)]
    pub field: Option<String>,
    /// How `field` is written: `rfc3339` (default), `unix` (seconds, may be
    /// fractional), `unix_ms` (milliseconds) or a chrono strftime pattern such
    /// as `%d/%b/%Y:%H:%M:%S %z` (UTC is assumed when it has no offset).
    #[serde(default)]
    pub format: Option<String>,
    /// Write the time to this field (as a timestamp value) and leave the event
    /// timestamp alone.
    #[serde(default)]
    pub target: Option<String>,
}

/// A parsed `format`.
#[derive(Clone, Debug, PartialEq)]
enum Format {
    Rfc3339,
    Unix,
    UnixMs,
    Pattern(String),
}

impl Format {
    fn of(s: Option<&str>) -> Format {
        match s {
            None | Some("rfc3339") => Format::Rfc3339,
            Some("unix") => Format::Unix,
            Some("unix_ms") => Format::UnixMs,
            Some(p) => Format::Pattern(p.to_string()),
        }
    }

    /// Parses a field value in this format.
    fn parse(&self, v: &Value) -> Result<Timestamp, String> {
        match (self, v) {
            (_, Value::Timestamp(t)) => Ok(*t),
            (Format::Unix, Value::Integer(s)) => s
                .checked_mul(1_000_000_000)
                .map(Timestamp)
                .ok_or_else(|| format!("{s} seconds is out of range")),
            (Format::Unix, Value::Float(s)) => float_ts(*s * 1e9),
            (Format::UnixMs, Value::Integer(ms)) => ms
                .checked_mul(1_000_000)
                .map(Timestamp)
                .ok_or_else(|| format!("{ms} milliseconds is out of range")),
            (Format::UnixMs, Value::Float(ms)) => float_ts(*ms * 1e6),
            (_, Value::String(b)) => {
                let s =
                    std::str::from_utf8(b).map_err(|_| "the time is not UTF-8 text".to_string())?;
                self.parse_str(s.trim())
            }
            (_, other) => Err(format!("cannot read a time from a {} value", other.kind())),
        }
    }

    fn parse_str(&self, s: &str) -> Result<Timestamp, String> {
        let bad = |e: &dyn std::fmt::Display| {
            format!("`{s}` is not a time in the format {}: {e}", self.name())
        };
        match self {
            Format::Rfc3339 => chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| Timestamp::from_datetime(&d))
                .map_err(|e| bad(&e)),
            Format::Unix => s
                .parse::<f64>()
                .map_err(|e| bad(&e))
                .and_then(|f| float_ts(f * 1e9)),
            Format::UnixMs => s
                .parse::<f64>()
                .map_err(|e| bad(&e))
                .and_then(|f| float_ts(f * 1e6)),
            Format::Pattern(p) => match chrono::DateTime::parse_from_str(s, p) {
                Ok(d) => Ok(Timestamp::from_datetime(&d)),
                // No offset in the pattern: read it as UTC.
                Err(e) => chrono::NaiveDateTime::parse_from_str(s, p)
                    .map(|n| Timestamp::from_datetime(&n.and_utc()))
                    .map_err(|_| bad(&e)),
            },
        }
    }

    fn name(&self) -> &str {
        match self {
            Format::Rfc3339 => "rfc3339",
            Format::Unix => "unix",
            Format::UnixMs => "unix_ms",
            Format::Pattern(p) => p,
        }
    }
}

fn float_ts(nanos: f64) -> Result<Timestamp, String> {
    if nanos.is_finite() && nanos.abs() < i64::MAX as f64 {
        Ok(Timestamp(nanos as i64))
    } else {
        Err("the time is out of range".to_string())
    }
}

impl ProcessorConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.format.is_some() && self.field.is_none() {
            problems.push(Problem::at(
                "format",
                "`format` says how to read `field`; set `field` too, or remove `format` to stamp events with the current time",
            ));
        }
        if let Format::Pattern(p) = Format::of(self.format.as_deref()) {
            if StrftimeItems::new(&p).any(|i| matches!(i, Item::Error)) {
                problems.push(Problem::at(
                    "format",
                    format!("`{p}` is not a valid strftime pattern; use rfc3339, unix, unix_ms or a pattern such as `%d/%b/%Y:%H:%M:%S %z`"),
                ));
            }
        }
        for (key, path) in [("field", &self.field), ("target", &self.target)] {
            if let Some(p) = path.as_deref().and_then(|p| crate::check_path(key, p)) {
                problems.push(p);
            }
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(TimestampProcessor {
            field: self.field.clone(),
            format: Format::of(self.format.as_deref()),
            target: self.target.clone(),
        }))
    }
}

/// The `timestamp` processor.
struct TimestampProcessor {
    field: Option<String>,
    format: Format,
    target: Option<String>,
}

impl TimestampProcessor {
    fn set(&self, event: &mut Event, t: Timestamp) {
        match &self.target {
            Some(target) => event.insert(target, Value::Timestamp(t)),
            None => event.timestamp = t,
        }
    }
}

impl Processor for TimestampProcessor {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        let Some(field) = &self.field else {
            let now = Timestamp::now();
            for e in &mut batch.events {
                self.set(e, now);
            }
            return;
        };
        for (i, e) in batch.events.iter_mut().enumerate() {
            let parsed = match e.get(field) {
                None => Err(format!("field `{field}` is missing")),
                Some(v) => self
                    .format
                    .parse(v)
                    .map_err(|m| format!("field `{field}`: {m}")),
            };
            match parsed {
                Ok(t) => self.set(e, t),
                Err(m) => cx.fail(i, m),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config("field: time\nformat: '%d/%b/%Y:%H:%M:%S %z'\ntarget: parsed");
        assert!(c.validate().is_empty());
        assert!(examples::<Config>("timestamp").len() >= 2);
        let e = unknown_key::<Config>("fields: time");
        assert!(e.contains("did you mean `field`"), "{e}");
    }

    #[test]
    fn validate_finds_every_problem() {
        let c: Config = config("format: '%Q'\ntarget: 'a..b'");
        let p = c.validate();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().all(|p| p.key.is_some()));
    }

    #[test]
    fn stamps_now_once_per_batch() {
        let mut p = build::<Config>("{}");
        let mut b = batch(&["a", "b", "c"]);
        let before = Timestamp::now();
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert!(b.events[0].timestamp >= before);
        assert!(b
            .events
            .iter()
            .all(|e| e.timestamp == b.events[0].timestamp));
    }

    #[test]
    fn parses_each_format() {
        let cases: [(&str, Value, i64); 6] = [
            (
                "rfc3339",
                Value::from("2026-11-26T04:43:11.5Z"),
                1_795_668_191_500_000_000,
            ),
            ("unix", Value::Integer(10), 10_000_000_000),
            ("unix", Value::from("1.5"), 1_500_000_000),
            ("unix_ms", Value::Integer(1500), 1_500_000_000),
            (
                "'%d/%b/%Y:%H:%M:%S %z'",
                Value::from("10/Oct/2000:13:55:36 -0700"),
                971_211_336_000_000_000,
            ),
            (
                "'%Y-%m-%d %H:%M:%S'",
                Value::from("1970-01-01 00:00:02"),
                2_000_000_000,
            ),
        ];
        for (fmt, v, want) in cases {
            let mut p = build::<Config>(&format!("field: t\nformat: {fmt}"));
            let mut b = batch(&["x"]);
            b.events[0].insert("t", v);
            assert!(run(p.as_mut(), &mut b).is_empty(), "{fmt}");
            assert_eq!(b.events[0].timestamp, Timestamp(want), "{fmt}");
        }
    }

    #[test]
    fn target_leaves_the_event_timestamp() {
        let mut p = build::<Config>("field: t\nformat: unix\ntarget: when.parsed");
        let mut b = batch(&["x"]);
        b.events[0].insert("t", 7i64);
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert_eq!(b.events[0].timestamp, Timestamp(0));
        assert_eq!(
            b.events[0].get("when.parsed"),
            Some(&Value::Timestamp(Timestamp(7_000_000_000)))
        );
    }

    #[test]
    fn unparseable_or_missing_fails_the_event_only() {
        let mut p = build::<Config>("field: t");
        let mut b = batch(&["a", "b", "c", "d"]);
        b.events[0].insert("t", "yesterday");
        b.events[2].insert("t", "2026-01-01T00:00:00Z");
        b.events[3].insert("t", true);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(f.iter().map(|f| f.0).collect::<Vec<_>>(), vec![0, 1, 3]);
        assert!(f[0].1.contains("yesterday"), "{f:?}");
        assert!(f[1].1.contains("missing"), "{f:?}");
        assert_eq!(b.len(), 4);
        assert_ne!(b.events[2].timestamp, Timestamp(0));
        let mut p = build::<Config>("field: t\nformat: unix");
        let mut b = batch(&["a"]);
        b.events[0].insert("t", i64::MAX);
        assert_eq!(run(p.as_mut(), &mut b).len(), 1);
    }
}
