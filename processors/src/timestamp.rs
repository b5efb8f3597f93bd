//! `timestamp`: sets the event timestamp, to now or to a time parsed from a
//! field.
//!
//! Without options every event of a batch gets the same "now" (one clock read
//! per batch). With `field`, the time is parsed from that field in `format`;
//! with `target`, the result is written to a field instead of the event
//! timestamp.
//!
//! A strftime pattern without a year (`%b %d %H:%M:%S`, as in syslog files)
//! takes the current year, rolled over the way syslog daemons do it (see
//! [`sluice_core::syslog::infer_year`]): a month more than one month ahead of now
//! is last year's. The year is read from the clock once per batch.

use chrono::format::{Fixed, Item, Numeric, Parsed, StrftimeItems};
use chrono::Datelike;
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
    /// as `%d/%b/%Y:%H:%M:%S %z` (UTC is assumed when it has no offset; the
    /// current year, rolled over like syslog, when it has no year).
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
    /// A strftime pattern; `true` when it has no year; the pattern parsed
    /// once (`None` when it does not parse: `validate` reports that).
    Pattern(String, bool, Option<Vec<Item<'static>>>),
}

/// Whether a strftime pattern says which year it is.
fn has_year(p: &str) -> bool {
    StrftimeItems::new(p).any(|i| {
        matches!(
            i,
            Item::Numeric(
                Numeric::Year
                    | Numeric::YearDiv100
                    | Numeric::YearMod100
                    | Numeric::IsoYear
                    | Numeric::IsoYearDiv100
                    | Numeric::IsoYearMod100
                    | Numeric::Timestamp,
                _
            ) | Item::Fixed(Fixed::RFC2822 | Fixed::RFC3339)
        )
    })
}

impl Format {
    fn of(s: Option<&str>) -> Format {
        match s {
            None | Some("rfc3339") => Format::Rfc3339,
            Some("unix") => Format::Unix,
            Some("unix_ms") => Format::UnixMs,
            Some(p) => Format::Pattern(
                p.to_string(),
                !has_year(p),
                StrftimeItems::new(p).parse_to_owned().ok(),
            ),
        }
    }

    /// Parses a field value in this format; `now` is the current year and
    /// month, for patterns without a year.
    fn parse(&self, v: &Value, now: (i32, u32)) -> Result<Timestamp, String> {
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
                self.parse_str(s.trim(), now)
            }
            (_, other) => Err(format!("cannot read a time from a {} value", other.kind())),
        }
    }

    fn parse_str(&self, s: &str, now: (i32, u32)) -> Result<Timestamp, String> {
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
            Format::Pattern(p, yearless, items) => {
                let mut parsed = Parsed::new();
                // Parsed once at build, not per event.
                match items {
                    Some(items) => chrono::format::parse(&mut parsed, s, items.iter()),
                    None => chrono::format::parse(&mut parsed, s, StrftimeItems::new(p)),
                }
                .map_err(|e| bad(&e))?;
                if *yearless {
                    let month = parsed.month().unwrap_or(now.1);
                    let year = sluice_core::syslog::infer_year(month, now);
                    parsed.set_year(i64::from(year)).map_err(|e| bad(&e))?;
                }
                if parsed.offset().is_some() {
                    parsed
                        .to_datetime()
                        .map(|d| Timestamp::from_datetime(&d))
                        .map_err(|e| bad(&e))
                } else {
                    // No offset in the pattern: read it as UTC.
                    parsed
                        .to_naive_datetime_with_offset(0)
                        .map(|n| Timestamp::from_datetime(&n.and_utc()))
                        .map_err(|e| bad(&e))
                }
            }
        }
    }

    fn name(&self) -> &str {
        match self {
            Format::Rfc3339 => "rfc3339",
            Format::Unix => "unix",
            Format::UnixMs => "unix_ms",
            Format::Pattern(p, _, _) => p,
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
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.format.is_some() && self.field.is_none() {
            problems.push(Problem::at(
                "format",
                "`format` says how to read `field`; set `field` too, or remove `format` to stamp events with the current time",
            ));
        }
        if let Format::Pattern(p, _, _) = Format::of(self.format.as_deref()) {
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
        let today = chrono::Utc::now();
        let now = (today.year(), today.month());
        for (i, e) in batch.events.iter_mut().enumerate() {
            let parsed = match e.get(field) {
                None => Err(format!("field `{field}` is missing")),
                Some(v) => self
                    .format
                    .parse(v, now)
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
    fn a_pattern_without_a_year_takes_this_year_or_last() {
        let f = Format::of(Some("%b %d %H:%M:%S"));
        assert!(
            matches!(&f, Format::Pattern(p, true, Some(_)) if p == "%b %d %H:%M:%S"),
            "{f:?}"
        );
        let at = |s: &str, now| f.parse(&Value::from(s), now).map(|t| t.to_string());
        assert_eq!(
            at("Dec 10 06:55:46", (2027, 1)).as_deref(),
            Ok("2026-12-10T06:55:46.000000Z")
        );
        assert_eq!(
            at("Jan  2 00:00:01", (2027, 1)).as_deref(),
            Ok("2027-01-02T00:00:01.000000Z")
        );
        assert_eq!(
            at("Feb 29 12:00:00", (2028, 3)).as_deref(),
            Ok("2028-02-29T12:00:00.000000Z")
        );
        assert!(at("Feb 29 12:00:00", (2027, 3)).is_err(), "not a leap year");
        assert!(at("Dec 10", (2027, 1)).is_err());
        let with_zone = Format::of(Some("%b %d %H:%M:%S %z"));
        assert_eq!(
            with_zone
                .parse(&Value::from("Jun  1 10:00:00 +0200"), (2026, 6))
                .map(|t| t.to_string())
                .as_deref(),
            Ok("2026-06-01T08:00:00.000000Z")
        );
        for p in ["%Y-%m-%d", "%y%m%d", "%s", "%+"] {
            assert!(
                !matches!(Format::of(Some(p)), Format::Pattern(_, true, _)),
                "{p}"
            );
        }
        // Through the processor, with the real clock: never in the future by
        // more than a month.
        let mut p = build::<Config>("field: t\nformat: '%b %e %H:%M:%S'");
        let mut b = batch(&["x"]);
        b.events[0].insert("t", "Dec 10 06:55:46");
        assert!(run(p.as_mut(), &mut b).is_empty());
        let month_ahead = Timestamp::now().0 + 32 * 86_400 * 1_000_000_000;
        assert!(b.events[0].timestamp.0 < month_ahead);
        assert!(b.events[0]
            .timestamp
            .to_string()
            .contains("-12-10T06:55:46"));
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
