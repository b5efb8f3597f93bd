//! Everyday parsing, routing and transforms through the real binary:
//! syslog files with year-less stamps, grok, logfmt and CSV, routing by
//! condition, sample, throttle and dedupe; counts checked against the
//! input and malformed lines found in the dead-letter files.

use std::path::Path;

use serde_json::Value as Json;

use crate::util::*;

fn json_lines(d: &Dir, path: &str) -> Vec<Json> {
    d.lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}: {l}")))
        .collect()
}

fn count(counts: &std::collections::HashMap<String, Json>, id: &str, what: &str) -> u64 {
    counts
        .get(id)
        .and_then(|c| c[what].as_u64())
        .unwrap_or_else(|| panic!("no {what} count for {id}: {counts:?}"))
}

/// The year syslog daemons give `month` today (see `infer_year`).
fn expected_year(month: u32) -> i32 {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let ahead = month as i32 - now.month() as i32;
    now.year() - i32::from(ahead > 1) + i32::from(ahead < -10)
}

#[test]
fn an_auth_log_parses_with_syslog_grok_and_a_yearless_timestamp() {
    let d = Dir::new();
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/loghub_2k/OpenSSH_2k.log"),
    )
    .expect("OpenSSH sample");
    let mut text = String::new();
    for (i, line) in sample.lines().enumerate() {
        text.push_str(line);
        text.push('\n');
        if i % 500 == 7 {
            text.push_str("-- MARK -- not a syslog line\n");
        }
    }
    d.write("logs/auth.log", &text);
    d.write(
        "p.yaml",
        r#"sources:
  auth:
    type: file
    include: [./logs/auth.log]
    read_from: beginning
    follow: false
    processors: [syslog, grok, stamp]
    channels: [out]
processors:
  syslog:
    type: parse_syslog
    dead_letter: bad
  grok:
    type: parse_grok
    pattern: '%{SYSLOGLINE}'
    target: g
  stamp:
    type: timestamp
    field: g.timestamp
    format: '%b %e %H:%M:%S'
    target: stamped
channels:
  out: {type: memory, capacity: 500}
  bad: {type: memory}
sinks:
  out: {type: file, channel: out, path: ./out/auth.json, format: json}
  bad: {type: file, channel: bad, path: ./out/bad.json, format: json}
"#,
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    let counts = final_counts(&stderr(&o));
    assert_eq!(count(&counts, "syslog", "errors"), 4);
    assert_eq!(count(&counts, "grok", "errors"), 0);
    assert_eq!(count(&counts, "stamp", "errors"), 0);
    let out = json_lines(&d, "out/auth.json");
    let bad = json_lines(&d, "out/bad.json");
    assert_eq!((out.len(), bad.len()), (2000, 4));
    let lines: Vec<&str> = sample.lines().collect();
    let year = expected_year(12);
    for (e, line) in out.iter().zip(&lines) {
        assert_eq!(e["message"].as_str(), Some(*line));
        let f = &e["fields"];
        assert_eq!(f["hostname"], "LabSZ", "{e}");
        assert_eq!(f["appname"], "sshd", "{e}");
        assert!(
            f["procid"]
                .as_str()
                .is_some_and(|p| p.parse::<u32>().is_ok()),
            "{e}"
        );
        assert!(line.ends_with(f["message"].as_str().unwrap_or("?")), "{e}");
        // "Dec 10 06:55:46": the month and time from the line, the year by
        // the syslog rule; both parsers agree.
        let ts = e["timestamp"].as_str().unwrap_or_default();
        let stamp = &line[..15].replace("  ", " ");
        let parsed =
            chrono::NaiveDateTime::parse_from_str(&format!("{year} {stamp}"), "%Y %b %e %H:%M:%S")
                .expect("stamp");
        assert_eq!(
            ts,
            parsed.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "{e}"
        );
        assert_eq!(f["stamped"].as_str(), Some(ts), "{e}");
        assert_eq!(f["g"]["program"], "sshd");
        assert_eq!(f["g"]["logsource"], "LabSZ");
    }
    for e in &bad {
        assert_eq!(e["message"], "-- MARK -- not a syslog line");
        assert_eq!(e["fields"]["component"], "syslog");
        assert!(
            e["fields"]["error"]
                .as_str()
                .is_some_and(|m| m.contains("RFC 3164")),
            "{e}"
        );
    }
}

#[test]
fn routing_by_level_puts_every_event_in_the_right_file_once() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        r#"sources:
  app:
    type: generator
    format: json
    count: 20000
    processors: [parse, by_level]
    channels: [errors, warnings, rest]
    selector:
      type: multiplexing
      field: route
      mapping: {errors: [errors], warnings: [warnings]}
      default: [rest]
processors:
  parse: {type: parse_json}
  by_level:
    type: route
    routes:
      errors: '.level == "error"'
      warnings: '.level == "warn" || .level == "error"'
  copies:
    type: route
    input: rest
    channels: [info, debug, all]
    mode: all
    routes:
      info: '.level == "info"'
      debug: '.level == "debug"'
      any: 'true'
    selector:
      type: multiplexing
      field: route
      mapping: {info: [info], debug: [debug], any: [all]}
channels:
  errors: {type: memory}
  warnings: {type: memory}
  rest: {type: memory}
  info: {type: memory}
  debug: {type: memory}
  all: {type: memory}
sinks:
  errors: {type: file, channel: errors, path: ./out/errors.json, format: json}
  warnings: {type: file, channel: warnings, path: ./out/warnings.json, format: json}
  info: {type: file, channel: info, path: ./out/info.json, format: json}
  debug: {type: file, channel: debug, path: ./out/debug.json, format: json}
  all: {type: file, channel: all, path: ./out/rest.json, format: json}
"#,
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    let level = |e: &Json| {
        e["fields"]["level"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let seqs = |v: &[Json]| -> Vec<i64> {
        v.iter()
            .filter_map(|e| e["fields"]["seq"].as_i64())
            .collect()
    };
    let errors = json_lines(&d, "out/errors.json");
    let warnings = json_lines(&d, "out/warnings.json");
    let info = json_lines(&d, "out/info.json");
    let debug = json_lines(&d, "out/debug.json");
    let rest = json_lines(&d, "out/rest.json");
    assert!(!errors.is_empty() && !warnings.is_empty() && !info.is_empty() && !debug.is_empty());
    // First match: an error matches both routes and goes to `errors` only.
    assert!(errors
        .iter()
        .all(|e| level(e) == "error" && e["fields"]["route"] == "errors"));
    assert!(warnings.iter().all(|e| level(e) == "warn"));
    assert!(rest
        .iter()
        .all(|e| level(e) != "warn" && level(e) != "error"));
    assert_eq!(errors.len() + warnings.len() + rest.len(), 20_000);
    // Every match: each of `rest` also went to its level's file.
    assert!(info
        .iter()
        .all(|e| level(e) == "info" && e["fields"]["route"] == "info"));
    assert!(debug.iter().all(|e| level(e) == "debug"));
    assert_eq!(info.len() + debug.len(), rest.len());
    let mut all: Vec<i64> = [seqs(&errors), seqs(&warnings), seqs(&rest)].concat();
    all.sort_unstable();
    assert_eq!(all, (0..20_000).collect::<Vec<i64>>(), "each event once");
    let counts = final_counts(&stderr(&o));
    assert_eq!(count(&counts, "app", "events_out"), 20_000);
    assert_eq!(count(&counts, "copies", "discarded"), 0);
}

#[test]
fn throttle_sample_and_dedupe_drop_exactly_what_they_count() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        r#"sources:
  gen:
    type: generator
    count: 5000
    processors: [digits]
    channels: [a, b, c, e]
processors:
  digits:
    type: parse_regex
    pattern: '(?P<last>\d)$'
  capped:
    type: throttle
    input: a
    channels: [a_out]
    limit: 1000
    window: 1h
  per_digit:
    type: throttle
    input: b
    channels: [b_out]
    dead_letter: throttled
    limit: 50
    window: 1h30m
    key: last
    action: dead_letter
  tenth:
    type: sample
    input: c
    channels: [c_out]
    rate: 10
    keep: '.message == "4999"'
  once:
    type: dedupe
    input: e
    channels: [e_out]
    fields: [last]
channels:
  a: {type: memory}
  b: {type: memory}
  c: {type: memory}
  e: {type: memory}
  a_out: {type: memory}
  b_out: {type: memory}
  c_out: {type: memory}
  e_out: {type: memory}
  throttled: {type: memory}
sinks:
  a: {type: file, channel: a_out, path: ./out/capped.log}
  b: {type: file, channel: b_out, path: ./out/per_digit.log}
  c: {type: file, channel: c_out, path: ./out/tenth.log}
  e: {type: file, channel: e_out, path: ./out/once.log}
  t: {type: file, channel: throttled, path: ./out/throttled.json, format: json}
"#,
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    let counts = final_counts(&stderr(&o));
    // throttle, drop: the first 1000, the rest counted as discarded.
    assert_sequence(&d.lines("out/capped.log"), 1000);
    assert_eq!(count(&counts, "capped", "discarded"), 4000);
    // throttle per key to the dead letter: 50 of each last digit pass.
    let per_digit = d.lines("out/per_digit.log");
    assert_eq!(per_digit.len(), 500);
    for digit in 0..10u32 {
        let n = per_digit
            .iter()
            .filter(|l| l.ends_with(&digit.to_string()))
            .count();
        assert_eq!(n, 50, "digit {digit}");
    }
    let throttled = json_lines(&d, "out/throttled.json");
    assert_eq!(throttled.len(), 4500);
    assert_eq!(count(&counts, "per_digit", "errors"), 4500);
    assert!(throttled[0]["fields"]["error"]
        .as_str()
        .is_some_and(|m| m.starts_with("throttled: over 50 events per 1h30m for last `")));
    // sample: one in ten by count, plus the one `keep` names.
    let want: Vec<String> = (0..5000)
        .step_by(10)
        .map(|i: i32| i.to_string())
        .chain(["4999".to_string()])
        .collect();
    assert_eq!(d.lines("out/tenth.log"), want);
    assert_eq!(count(&counts, "tenth", "discarded"), 5000 - 501);
    // dedupe on the last digit: the first of each.
    assert_sequence(&d.lines("out/once.log"), 10);
    assert_eq!(count(&counts, "once", "discarded"), 4990);
}

#[test]
fn logfmt_and_csv_files_parse_with_bad_lines_in_the_dead_letter() {
    let d = Dir::new();
    let mut logfmt = String::new();
    let mut csv = String::from("id,user,note,score\n");
    for i in 0..1000 {
        if i % 100 == 42 {
            logfmt.push_str(&format!("id={i} msg=\"unterminated\n"));
            csv.push_str(&format!("{i},only-three,fields\n"));
        } else {
            logfmt.push_str(&format!(
                "id={i} level=info msg=\"user \\\"u{i}\\\" logged in\" took={}.5 ok\n",
                i % 7
            ));
            csv.push_str(&format!("{i},u{i},\"says \"\"hi\"\", twice\",{}\n", i % 9));
        }
    }
    d.write("logs/app.log", &logfmt);
    d.write("logs/rows.csv", &csv);
    d.write(
        "p.yaml",
        r#"sources:
  app:
    type: file
    include: [./logs/app.log]
    read_from: beginning
    follow: false
    processors: [kv]
    channels: [app]
  rows:
    type: file
    include: [./logs/rows.csv]
    read_from: beginning
    follow: false
    processors: [csv]
    channels: [rows]
processors:
  kv:
    type: parse_logfmt
    dead_letter: bad
    types: {id: integer, took: float}
  csv:
    type: parse_csv
    dead_letter: bad
    header: true
    types: {id: integer, score: integer}
channels:
  app: {type: memory}
  rows: {type: memory}
  bad: {type: memory}
sinks:
  app: {type: file, channel: app, path: ./out/app.json, format: json}
  rows: {type: file, channel: rows, path: ./out/rows.json, format: json}
  bad: {type: file, channel: bad, path: ./out/bad.json, format: json}
"#,
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    let app = json_lines(&d, "out/app.json");
    let rows = json_lines(&d, "out/rows.json");
    let bad = json_lines(&d, "out/bad.json");
    assert_eq!((app.len(), rows.len(), bad.len()), (990, 990, 20));
    for e in &app {
        let f = &e["fields"];
        let id = f["id"].as_i64().expect("integer id");
        assert_eq!(
            f["msg"].as_str(),
            Some(format!("user \"u{id}\" logged in").as_str())
        );
        assert_eq!(f["took"].as_f64(), Some((id % 7) as f64 + 0.5));
        assert_eq!(f["ok"], true);
    }
    for e in &rows {
        let f = &e["fields"];
        let id = f["id"].as_i64().expect("integer id");
        assert_eq!(f["user"].as_str(), Some(format!("u{id}").as_str()));
        assert_eq!(f["note"], "says \"hi\", twice");
        assert_eq!(f["score"].as_i64(), Some(id % 9));
    }
    let by = |c: &str| bad.iter().filter(|e| e["fields"]["component"] == c).count();
    assert_eq!((by("kv"), by("csv")), (10, 10));
    let counts = final_counts(&stderr(&o));
    assert_eq!(count(&counts, "csv", "errors"), 10);
    // The header row is consumed, not passed on.
    assert_eq!(count(&counts, "csv", "discarded"), 1);
}

/// A stateless chain split over four threads: every event comes out once,
/// in the order read, and the failed ones reach the dead letter in order.
#[test]
fn a_chain_split_over_workers_keeps_the_order_and_every_failure() {
    let d = Dir::new();
    let mut text = String::new();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for i in 0..30_000 {
        if i % 13 == 5 {
            bad.push(format!("oops {i}"));
            text.push_str(&format!("oops {i}\n"));
        } else {
            good.push(i);
            text.push_str(&format!("line {i} x\n"));
        }
    }
    d.write("logs/in.log", &text);
    d.write(
        "p.yaml",
        r#"sources:
  in:
    type: file
    include: [./logs/in.log]
    read_from: beginning
    follow: false
    processors: [parse, tag]
    channels: [out]
processors:
  parse:
    type: parse_regex
    pattern: '^line (?P<n>\d+) (?P<rest>.*)$'
    types: {n: integer}
    workers: 4
    dead_letter: bad
  tag:
    type: add_fields
    fields: {tagged: t1}
    workers: 4
channels:
  out: {type: memory, capacity: 2000}
  bad: {type: memory}
sinks:
  out: {type: file, channel: out, path: ./out/out.json, format: json, encoding: {layout: flat}}
  bad: {type: file, channel: bad, path: ./out/bad.json, format: json}
"#,
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    let counts = final_counts(&stderr(&o));
    assert_eq!(count(&counts, "parse", "errors"), bad.len() as u64);
    let out = json_lines(&d, "out/out.json");
    let ns: Vec<i64> = out.iter().map(|e| e["n"].as_i64().unwrap_or(-1)).collect();
    assert_eq!(ns, good, "every parsed event once, in the order read");
    assert!(out.iter().all(|e| e["tagged"] == "t1" && e["rest"] == "x"));
    let dead: Vec<String> = json_lines(&d, "out/bad.json")
        .iter()
        .map(|e| {
            assert_eq!(e["fields"]["component"], "parse", "{e}");
            e["message"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(dead, bad, "every failed event once, in the order read");
}
