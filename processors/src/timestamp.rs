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
    /// once (`None` when it does not parse: `validate` reports that); its
    /// fixed-width layout when it has one.
    Pattern(String, bool, Option<Vec<Item<'static>>>, Option<Layout>),
}

/// One part of a [`Layout`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    /// This many digits of a field: year (4), year in the century (2),
    /// month, day, hour, minute, second (2 each).
    Year,
    YearMod100,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// A byte written as it is.
    Byte(u8),
}

/// A strftime pattern made only of zero-padded numbers (`%Y %y %m %d %H %M
/// %S`) and literal bytes that are not digits, such as `%Y-%m-%d %H:%M:%S`
/// or `%y%m%d %H%M%S`: a time written exactly in its layout is read digit
/// by digit, without chrono (whose general parser cost 5 % of the HDFS
/// example). Anything else, or a value out of the plain ranges, goes to
/// chrono, which gives the same result or the error.
#[derive(Clone, Debug, PartialEq)]
struct Layout(Vec<Slot>);

/// Adds the bytes of a literal part of a pattern; `None` for a digit or
/// a byte outside ASCII.
fn literal(slots: &mut Vec<Slot>, l: &str) -> Option<()> {
    if l.bytes().any(|b| b.is_ascii_digit() || !b.is_ascii()) {
        return None;
    }
    slots.extend(l.bytes().map(Slot::Byte));
    Some(())
}

impl Layout {
    fn of(items: &[Item<'_>]) -> Option<Layout> {
        let mut slots = Vec::new();
        for item in items {
            match item {
                Item::Numeric(n, chrono::format::Pad::Zero) => slots.push(match n {
                    Numeric::Year => Slot::Year,
                    Numeric::YearMod100 => Slot::YearMod100,
                    Numeric::Month => Slot::Month,
                    Numeric::Day => Slot::Day,
                    Numeric::Hour => Slot::Hour,
                    Numeric::Minute => Slot::Minute,
                    Numeric::Second => Slot::Second,
                    _ => return None,
                }),
                Item::Literal(l) | Item::Space(l) => literal(&mut slots, l)?,
                Item::OwnedLiteral(l) | Item::OwnedSpace(l) => literal(&mut slots, l)?,
                _ => return None,
            }
        }
        let has = |s: Slot| slots.contains(&s);
        // A date and a time of day, each field at most once: anything
        // less (or more) is left to chrono.
        let fields = [
            Slot::Month,
            Slot::Day,
            Slot::Hour,
            Slot::Minute,
            Slot::Second,
        ];
        let once = |s: Slot| slots.iter().filter(|&&x| x == s).count() == 1;
        let years = slots
            .iter()
            .filter(|&&x| x == Slot::Year || x == Slot::YearMod100)
            .count();
        (fields.iter().all(|&f| has(f) && once(f)) && years <= 1).then_some(Layout(slots))
    }

    /// The time `s` holds when it is written exactly in this layout with
    /// plain values; `now` gives the year when the layout has none.
    fn read(&self, s: &[u8], now: (i32, u32)) -> Option<Timestamp> {
        let (mut year, mut month, mut day, mut hms) = (None, 0, 0, [0u32; 3]);
        let mut at = 0;
        // At most 4 digits: no overflow.
        let digits = |n: usize, at: &mut usize| -> Option<u32> {
            let d = s.get(*at..*at + n)?;
            *at += n;
            d.iter().try_fold(0u32, |v, b| {
                b.is_ascii_digit().then(|| v * 10 + u32::from(b - b'0'))
            })
        };
        for slot in &self.0 {
            match *slot {
                Slot::Year => year = Some(digits(4, &mut at)? as i32),
                // chrono's rule for a two-digit year: 1970 to 2069.
                Slot::YearMod100 => {
                    let y = digits(2, &mut at)? as i32;
                    year = Some(if y < 70 { 2000 + y } else { 1900 + y });
                }
                Slot::Month => month = digits(2, &mut at)?,
                Slot::Day => day = digits(2, &mut at)?,
                Slot::Hour => hms[0] = digits(2, &mut at)?,
                Slot::Minute => hms[1] = digits(2, &mut at)?,
                Slot::Second => hms[2] = digits(2, &mut at)?,
                Slot::Byte(b) => {
                    if s.get(at) != Some(&b) {
                        return None;
                    }
                    at += 1;
                }
            }
        }
        if at != s.len() || hms[2] > 59 {
            return None;
        }
        let year = year.unwrap_or_else(|| sluice_core::syslog::infer_year(month, now));
        // chrono checks the calendar (months, days, leap years, hours).
        let time = chrono::NaiveDate::from_ymd_opt(year, month, day)?
            .and_hms_opt(hms[0], hms[1], hms[2])?;
        time.and_utc().timestamp_nanos_opt().map(Timestamp)
    }
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
            Some(p) => {
                let items = StrftimeItems::new(p).parse_to_owned().ok();
                let layout = items.as_deref().and_then(Layout::of);
                Format::Pattern(p.to_string(), !has_year(p), items, layout)
            }
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
            Format::Pattern(p, yearless, items, layout) => {
                if let Some(t) = layout.as_ref().and_then(|l| l.read(s.as_bytes(), now)) {
                    return Ok(t);
                }
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
            Format::Pattern(p, ..) => p,
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
        if let Format::Pattern(p, ..) = Format::of(self.format.as_deref()) {
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

    /// The fixed-width reader agrees with chrono on every time it reads,
    /// and reads the plain ones: dates of every month of leap and common
    /// years, two-digit years on both sides of chrono's pivot, yearless
    /// patterns, and values chrono refuses or treats specially (day 31 of
    /// a short month, hour 24, second 60, a missing digit).
    #[test]
    fn the_fixed_width_reader_agrees_with_chrono() {
        let patterns = [
            "%Y-%m-%d %H:%M:%S",
            "%y%m%d %H%M%S",
            "%Y%m%d%H%M%S",
            "%d/%m/%Y %H.%M.%S",
            "%m-%d %H:%M:%S",
        ];
        let now = (2026, 12);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let (mut read, mut tried) = (0, 0);
        for p in patterns {
            let fast = Format::of(Some(p));
            let Format::Pattern(_, yearless, items, Some(layout)) = &fast else {
                panic!("{p} has a fixed layout");
            };
            let slow = Format::Pattern(p.to_string(), *yearless, items.clone(), None);
            for _ in 0..20_000 {
                let y = [1969, 1970, 2000, 2004, 2068, 2069, 2100, 1900, 2026][next(9) as usize]
                    + next(3) as i32;
                let (mo, d) = (1 + next(13), 1 + next(31));
                let (h, mi, se) = (next(25), next(60), next(61));
                let text = p
                    .replace("%Y", &format!("{y:04}"))
                    .replace("%y", &format!("{:02}", y % 100))
                    .replace("%m", &format!("{mo:02}"))
                    .replace("%d", &format!("{d:02}"))
                    .replace("%H", &format!("{h:02}"))
                    .replace("%M", &format!("{mi:02}"))
                    .replace("%S", &format!("{se:02}"));
                // Now and then a digit goes missing.
                let text = if next(20) == 0 {
                    text[1..].to_string()
                } else {
                    text
                };
                tried += 1;
                let Some(t) = layout.read(text.as_bytes(), now) else {
                    continue;
                };
                read += 1;
                let value = Value::from(text.as_str());
                assert_eq!(slow.parse(&value, now), Ok(t), "{p}: `{text}`");
            }
        }
        assert!(
            read * 2 > tried,
            "the plain times are read: {read} of {tried}"
        );
    }

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
            matches!(&f, Format::Pattern(p, true, Some(_), _) if p == "%b %d %H:%M:%S"),
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
                !matches!(Format::of(Some(p)), Format::Pattern(_, true, ..)),
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
