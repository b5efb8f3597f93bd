//! # sluice-processors
//!
//! The built-in processors of Sluice. Each one lives in its own file named
//! after its YAML `type` and has two halves:
//!
//! * a `Config` struct (`#[serde(deny_unknown_fields)]`, every option
//!   documented) implementing [`ProcessorConfig`]: a pure `validate` that
//!   lists every problem, and a `build` that compiles what can be compiled
//!   once (regexes, conditions, the host name);
//! * the processor itself, implementing [`Processor`]: it changes a
//!   [`Batch`](sluice_core::event::Batch) in place and reports an event it
//!   cannot handle with [`ProcessContext::fail`] (the event stays in the
//!   batch; the runtime sends it to the dead-letter channel or logs it).
//!
//! [`register`] is the one list of what exists here:
//!
//! | `type` | does |
//! |---|---|
//! | `timestamp` | sets the event timestamp (now, or parsed from a field) |
//! | `host` | adds the machine's host name |
//! | `add_fields` | adds constant fields |
//! | `remove_fields` | removes fields |
//! | `rename_fields` | renames fields |
//! | `filter` | keeps the events that match a [condition](crate::condition) |
//! | `route` | names each event's route by conditions, for a `multiplexing` selector |
//! | `sample` | keeps one event in N, optionally per key |
//! | `throttle` | lets at most N events through per window, per key |
//! | `dedupe` | drops repeats of recent events (by fields or body, bounded LRU) |
//! | `parse_json` | parses a JSON object from the body or a field |
//! | `parse_regex` | extracts named captures, zero-copy, from the body or a field |
//! | `parse_logfmt` | reads `key=value` pairs (logfmt, or other separators and quotes) |
//! | `parse_csv` | reads a delimited row into named fields (named columns or a header row) |
//! | `parse_grok` | grok patterns (`%{COMBINEDAPACHELOG}`, the standard library) into fields |
//! | `parse_syslog` | reads RFC 3164 / RFC 5424 lines ([`syslog`] is the parser, shared with the `syslog` source) |
//!
//! ```
//! use sluice_core::prelude::*;
//!
//! let mut registry = Registry::new();
//! sluice_processors::register(&mut registry).unwrap();
//! assert!(registry.processor("filter").is_some());
//!
//! // Using one directly, outside a pipeline:
//! let config: sluice_processors::filter::Config =
//!     sluice_core::config::from_yaml_str(r#"condition: '.message =~ "ERROR"'"#).unwrap();
//! let cx = BuildContext {
//!     id: "errors".into(),
//!     pipeline_data_dir: ".".into(),
//!     data_dir: ".".into(),
//!     durable_input: false,
//! };
//! let mut filter = config.build(&cx).unwrap();
//! let mut batch = Batch::new();
//! batch.push(Event::new("ERROR disk full", Timestamp(0)));
//! batch.push(Event::new("INFO all good", Timestamp(0)));
//! filter.process(&mut batch, &mut ProcessContext::new());
//! assert_eq!(batch.len(), 1);
//! ```
//!
//! [`ProcessorConfig`]: sluice_core::registry::ProcessorConfig
//! [`Processor`]: sluice_core::processor::Processor
//! [`ProcessContext::fail`]: sluice_core::processor::ProcessContext::fail

use sluice_core::registry::{DuplicateType, Registry};

pub mod add_fields;
pub mod condition;
pub mod dedupe;
pub mod filter;
pub mod host;
mod keyed;
pub mod parse_csv;
pub mod parse_grok;
pub mod parse_json;
pub mod parse_logfmt;
pub mod parse_regex;
pub mod parse_syslog;
pub mod remove_fields;
pub mod rename_fields;
pub mod route;
pub mod sample;
mod straight;
/// The parser, in `sluice-core` because the `syslog` source uses it too.
pub use sluice_core::syslog;
pub mod throttle;
pub mod timestamp;

/// Registers every built-in processor under its YAML `type`.
///
/// # Errors
///
/// When one of these names is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_processor::<timestamp::Config>("timestamp")?;
    registry.add_processor::<host::Config>("host")?;
    registry.add_processor::<add_fields::Config>("add_fields")?;
    registry.add_processor::<remove_fields::Config>("remove_fields")?;
    registry.add_processor::<rename_fields::Config>("rename_fields")?;
    registry.add_processor::<filter::Config>("filter")?;
    registry.add_processor::<parse_json::Config>("parse_json")?;
    registry.add_processor::<parse_regex::Config>("parse_regex")?;
    registry.add_processor::<parse_syslog::Config>("parse_syslog")?;
    registry.add_processor::<parse_logfmt::Config>("parse_logfmt")?;
    registry.add_processor::<parse_csv::Config>("parse_csv")?;
    registry.add_processor::<parse_grok::Config>("parse_grok")?;
    registry.add_processor::<route::Config>("route")?;
    registry.add_processor::<sample::Config>("sample")?;
    registry.add_processor::<throttle::Config>("throttle")?;
    registry.add_processor::<dedupe::Config>("dedupe")?;
    Ok(())
}

/// The text a parser reads: the body, or the string field `field`.
pub(crate) fn input_text(
    e: &sluice_core::event::Event,
    field: Option<&str>,
) -> Result<bytes::Bytes, String> {
    use sluice_core::event::Value;
    match field {
        None => Ok(e.body.clone()),
        Some(f) => match e.get(f) {
            Some(Value::String(b)) => Ok(b.clone()),
            Some(other) => Err(format!("field `{f}` holds a {}, not text", other.kind())),
            None => Err(format!("field `{f}` is missing")),
        },
    }
}

/// Checks shared by the processors' `validate`: a dotted field path must
/// have no empty segment.
pub(crate) fn check_path(key: &str, path: &str) -> Option<sluice_core::registry::Problem> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        Some(sluice_core::registry::Problem::at(
            key,
            format!(
                "`{path}` is not a field path: use names separated by dots, such as `http.status`"
            ),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::registry::Registry;

    /// The documented list, the registered list and the example pipelines
    /// agree.
    #[test]
    fn every_documented_type_is_registered_once_with_an_example() {
        let mut r = Registry::new();
        assert!(super::register(&mut r).is_ok());
        assert!(
            super::register(&mut r).is_err(),
            "a duplicate name must fail"
        );
        let docs = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/processors.md"
        ))
        .unwrap_or_default();
        let documented: Vec<&str> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("## `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        // docs/processors.md also documents processors of other crates;
        // every one registered here must be documented.
        let registered = r.names("processor");
        for ty in &registered {
            assert!(documented.contains(ty), "`{ty}` is not documented");
        }
        for ty in registered {
            let path = format!(
                "{}/../pipelines/processor-{ty}.yaml",
                env!("CARGO_MANIFEST_DIR")
            );
            assert!(std::path::Path::new(&path).exists(), "{path}");
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    pub use sluice_runtime::testing::processor::*;
}

/// The text parsers on arbitrary input: no panic, and an event either
/// parses or fails (reported, left as it was).
#[cfg(test)]
mod arbitrary_input {
    use crate::test_util::*;
    use sluice_core::prelude::*;

    /// xorshift64*: reproducible noise without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Lines built from the characters the parsers care about, plus any byte.
    fn lines(seed: u64, n: usize) -> Vec<bytes::Bytes> {
        const PIECES: &[&[u8]] = &[
            b"=",
            b"\"",
            b"'",
            b"\\",
            b" ",
            b"\t",
            b",",
            b";",
            b":",
            b"<",
            b">",
            b"[",
            b"]",
            b"1",
            b"34",
            b"a",
            b"key",
            b"Dec",
            b" 10 ",
            b"06:55:46",
            b"<13>",
            b"1 ",
            b"2026-12-03T07:51:25Z",
            b"-",
            b"\xff",
            b"\xc3\xa9",
            b"\r",
            b"\"\"",
            b"%",
        ];
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| {
                let len = rng.below(24);
                let mut v = Vec::new();
                for _ in 0..len {
                    if rng.below(8) == 0 {
                        v.push(rng.next() as u8);
                    } else {
                        v.extend_from_slice(PIECES[rng.below(PIECES.len())]);
                    }
                }
                bytes::Bytes::from(v)
            })
            .collect()
    }

    fn check<C: ProcessorConfig>(yaml: &str, seed: u64) {
        let mut p = build::<C>(yaml);
        for chunk in lines(seed, 20_000).chunks(100) {
            let mut b: Batch = chunk
                .iter()
                .map(|l| Event::new(l.clone(), Timestamp(7)))
                .collect::<Vec<_>>()
                .into();
            let failures = run(p.as_mut(), &mut b);
            for (i, _) in failures {
                // A failed event keeps no partial result.
                assert!(b.events[i].fields.is_empty(), "{yaml}: {:?}", b.events[i]);
                assert_eq!(b.events[i].timestamp, Timestamp(7));
            }
        }
    }

    #[test]
    fn no_parser_panics_or_half_parses() {
        check::<crate::parse_logfmt::Config>("types: {a: integer}", 1);
        check::<crate::parse_logfmt::Config>(
            "pair_separator: ', '\nkey_separator: ':'\nquotes: ['\"', \"'\"]",
            2,
        );
        check::<crate::parse_csv::Config>("columns: [a, b, c]\ntypes: {a: integer}", 3);
        check::<crate::parse_csv::Config>("header: true\ndelimiter: ';'\nquote: \"'\"", 4);
        check::<crate::parse_syslog::Config>("{}", 5);
        check::<crate::parse_grok::Config>(
            "patterns: ['%{SYSLOGLINE}', '%{INT:n:int} %{QS:q}', '%{WORD:w}=%{NUMBER:x:float}']",
            6,
        );
    }

    /// Values written the way CSV writers quote them come back as written.
    #[test]
    fn csv_reads_back_what_a_writer_quotes() {
        let mut rng = Rng(99);
        let mut p = build::<crate::parse_csv::Config>("columns: [a, b, c]");
        const CHARS: &[char] = &['a', 'b', ',', '"', ' ', 'é', '1', '\''];
        for _ in 0..2000 {
            let values: Vec<String> = (0..3)
                .map(|_| {
                    (0..rng.below(6))
                        .map(|_| CHARS[rng.below(CHARS.len())])
                        .collect()
                })
                .collect();
            let row: Vec<String> = values
                .iter()
                .map(|v| {
                    if v.contains([',', '"']) || rng.below(4) == 0 {
                        format!("\"{}\"", v.replace('"', "\"\""))
                    } else {
                        v.clone()
                    }
                })
                .collect();
            let line = row.join(",");
            let mut b = batch(&[line.as_str()]);
            assert!(run(p.as_mut(), &mut b).is_empty(), "{line}");
            for (name, want) in ["a", "b", "c"].iter().zip(&values) {
                assert_eq!(
                    b.events[0].get(name).and_then(Value::as_str),
                    Some(want.as_str()),
                    "{line}"
                );
            }
        }
    }
}

#[cfg(test)]
mod throughput;
