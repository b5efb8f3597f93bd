//! Typed option values shared by component configs: sizes and durations.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A size in bytes, written `64MiB`, `1GiB`, `512KiB`, `10MB`, `4096` or `4096B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `64MiB`, `1.5GB`, `100` (bytes).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().map_err(|_| {
            format!("invalid size `{s}`: expected a number with a unit such as `64MiB`")
        })?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" | "ki" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" | "mi" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" | "gi" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" | "ti" => 1 << 40,
            other => {
                return Err(format!(
                "invalid size unit `{other}` in `{s}`: use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
            ))
            }
        };
        Ok(ByteSize((n * mult as f64) as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{}", self.0 / size, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as `64MiB` or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration, written `500ms`, `1s`, `5m`, `2h`, `1d`, or as a sum of such
/// parts (`1m30s`, `1h 15m`); a bare number is seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// The problem of option `key` when this duration is zero (a wait,
    /// timeout or interval of nothing), suggesting `example` such as `30s`.
    pub fn zero_problem(self, key: &str, example: &str) -> Option<crate::registry::Problem> {
        self.0.is_zero().then(|| {
            crate::registry::Problem::at(key, format!("must be longer than 0, such as `{example}`"))
        })
    }

    /// Parses `500ms`, `1.5s`, `10m`, `2h`, `1d`, `30` (seconds), and sums
    /// of parts such as `1m30s` or `1h 15m` (spaces between parts allowed).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!("invalid duration `{s}`: expected a number with a unit such as `5s` or `1m30s`")
        };
        let mut rest = s;
        let mut secs = 0.0f64;
        let mut parts = 0;
        while !rest.is_empty() {
            let split = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (num, after) = rest.split_at(split);
            let n: f64 = num.parse().map_err(|_| bad())?;
            let after = after.trim_start();
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let scale = match unit {
                "" if parts == 0 && next.is_empty() => 1.0,
                "s" | "sec" | "secs" => 1.0,
                "ms" => 1e-3,
                "us" | "µs" => 1e-6,
                "ns" => 1e-9,
                "m" | "min" | "mins" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                "" => return Err(bad()),
                other => {
                    return Err(format!(
                        "invalid duration unit `{other}` in `{s}`: use ns, us, ms, s, m, h or d"
                    ))
                }
            };
            secs += n * scale;
            parts += 1;
            rest = next.trim_start();
        }
        if parts == 0 {
            return Err(bad());
        }
        StdDuration::try_from_secs_f64(secs)
            .map(Duration)
            .map_err(|_| format!("duration `{s}` is out of range"))
    }

    /// The standard-library duration.
    pub fn get(self) -> StdDuration {
        self.0
    }
}

impl From<StdDuration> for Duration {
    fn from(d: StdDuration) -> Self {
        Duration(d)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `500ms`, `5s` or `1m`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration(StdDuration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(|v| Duration(StdDuration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                if v < 0.0 || !v.is_finite() {
                    return Err(E::custom("a duration must be a positive number"));
                }
                Ok(Duration(StdDuration::from_secs_f64(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_duration_is_a_problem_naming_its_option_and_an_example() {
        let p = Duration(StdDuration::ZERO).zero_problem("commit_interval", "1s");
        assert_eq!(
            p,
            Some(crate::registry::Problem::at(
                "commit_interval",
                "must be longer than 0, such as `1s`"
            ))
        );
        assert_eq!(
            Duration(StdDuration::from_millis(1)).zero_problem("t", "1s"),
            None
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("64MiB").unwrap().0, 64 << 20);
        assert_eq!(ByteSize::parse("1GiB").unwrap().0, 1 << 30);
        assert_eq!(ByteSize::parse("10MB").unwrap().0, 10_000_000);
        assert_eq!(ByteSize::parse("4096").unwrap().0, 4096);
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
    }

    #[test]
    fn durations() {
        assert_eq!(
            Duration::parse("500ms").unwrap().0,
            StdDuration::from_millis(500)
        );
        assert_eq!(
            Duration::parse("2m").unwrap().0,
            StdDuration::from_secs(120)
        );
        assert_eq!(Duration::parse("3").unwrap().0, StdDuration::from_secs(3));
        assert!(Duration::parse("3 fortnights").is_err());
        assert_eq!(
            Duration::parse("1m30s").unwrap().0,
            StdDuration::from_secs(90)
        );
        assert_eq!(
            Duration::parse("1h 15m").unwrap().0,
            StdDuration::from_secs(4500)
        );
        assert_eq!(
            Duration::parse("2s500ms").unwrap().0,
            StdDuration::from_millis(2500)
        );
        assert_eq!(
            Duration::parse("1.5 s").unwrap().0,
            StdDuration::from_millis(1500)
        );
        for bad in [
            "",
            "m",
            "1m30",
            "1m 30",
            "1x2s",
            "99999999999999999999999d",
            "1..2s",
        ] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }
}
