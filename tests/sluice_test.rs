//! `sluice test`: unit tests declared in YAML, run by the real binary on the
//! examples in pipelines/ and on tests written to fail.

use std::time::Duration;

use crate::util::*;

const T: Duration = Duration::from_secs(120);

fn repo(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The pipeline of docs/testing.md, with its two tests.
const DOC_EXAMPLE: &str = r#"
sources:
  web:
    type: file
    include: [/var/log/nginx/access.log]
    processors: [parse]
    channels: [all, errors]
    selector:
      type: multiplexing
      field: status
      mapping:
        "500": [all, errors]
      default: [all]

processors:
  parse:
    type: parse_regex
    pattern: '"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3})'
    types: { status: integer }

channels:
  all: { type: memory }
  errors: { type: memory }

sinks:
  all: { type: file, channel: all, path: ./out/all.json, format: json }
  alerts: { type: file, channel: errors, path: ./out/errors.json, format: json }

tests:
  - name: a 500 is parsed and also goes to the alerts
    inputs:
      - insert_at: web
        lines:
          - '10.0.0.1 - - [03/Dec/2026:10:00:00 +0000] "POST /orders HTTP/1.1" 500 17'
    outputs:
      - extract_from: parse
        conditions: ['.status == 500', '.method == "POST"']
      - extract_from: alerts
        count: 1
  - name: a 200 does not
    inputs:
      - insert_at: web
        lines: ['10.0.0.1 - - [03/Dec/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5']
    outputs:
      - extract_from: sink:all
        count: 1
    no_outputs_from: [alerts]
"#;

#[test]
fn every_example_pipeline_has_tests_and_they_pass() {
    let mut files = Vec::new();
    for dir in ["pipelines", "pipelines/loghub"] {
        for entry in std::fs::read_dir(repo(dir)).expect("pipelines/") {
            let p = entry.expect("entry").path();
            if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(p.display().to_string());
            }
        }
    }
    files.sort();
    assert!(files.len() >= 40, "found {} examples", files.len());
    let d = Dir::new();
    let mut args = vec!["test"];
    args.extend(files.iter().map(String::as_str));
    let o = d.run(&args, T);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    for f in &files {
        assert!(
            out.contains(&format!("({f}) ... ok")),
            "no passing test for {f}:\n{out}"
        );
    }
    assert!(
        out.contains(&format!("0 failed; 0 invalid ({} files)", files.len())),
        "{out}"
    );
    // Nothing was written: no sink ran.
    assert!(!d.join("out").exists());
}

#[test]
fn the_documented_example_passes_and_a_broken_expectation_fails_with_the_events_seen() {
    let d = Dir::new();
    d.write("p.yaml", DOC_EXAMPLE);
    let o = d.run(&["test", "p.yaml"], T);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("test result: ok. 2 passed; 0 failed; 0 invalid (1 file)"),
        "{}",
        stdout(&o)
    );

    d.write(
        "p.yaml",
        &DOC_EXAMPLE
            .replace("'.status == 500'", "'.status == 501'")
            .replace(
                "      - extract_from: alerts\n        count: 1",
                "      - extract_from: alerts\n        events:\n          - fields: { status: \"500\", method: POST }",
            )
            .replace("no_outputs_from: [alerts]", "no_outputs_from: [sink:all]"),
    );
    let o = d.run(&["test", "p.yaml"], T);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(
        out.contains("test `a 500 is parsed and also goes to the alerts` (p.yaml) ... FAILED"),
        "{out}"
    );
    assert!(
        out.contains("processor `parse`: no event matched `.status == 501`"),
        "{out}"
    );
    // The events actually seen, with their fields.
    assert!(
        out.contains("1 event came out of processor `parse`:"),
        "{out}"
    );
    assert!(
        out.contains(r#""fields":{"method":"POST","path":"/orders","status":500}"#),
        "{out}"
    );
    // An expected event that differs: which event, which field, both values.
    assert!(
        out.contains(
            "sink `alerts`: event #1: field `status`: expected \"500\" (string), got 500 (integer)"
        ),
        "{out}"
    );
    assert!(
        out.contains("sink `all`: expected no output, 1 event came out"),
        "{out}"
    );
    assert!(
        out.contains("test result: FAILED. 0 passed; 2 failed; 0 invalid"),
        "{out}"
    );
}

#[test]
fn a_separate_test_file_checks_stages_dead_letters_and_held_back_events() {
    let d = Dir::new();
    d.write(
        "conf/p.yaml",
        r#"
sources:
  app: { type: stdin, channels: [raw] }
processors:
  parse:
    type: parse_json
    input: raw
    channels: [parsed]
    dead_letter: bad
  once:
    type: dedupe
    input: parsed
    channels: [out]
    fields: [user]
channels:
  raw: { type: memory }
  parsed: { type: memory }
  out: { type: memory }
  bad: { type: memory }
sinks:
  out: { type: console, channel: out }
  bad: { type: console, channel: bad }
"#,
    );
    d.write(
        "conf/p.test.yaml",
        r#"
pipeline: p.yaml
tests:
  - name: one event per user; broken JSON is set apart
    inputs:
      - insert_at: raw
        lines: ['{"user":"ada"}', 'nope', '{"user":"ada"}']
      - insert_at: parse
        events:
          - message: '{"user":"bob"}'
            timestamp: '2026-12-03T10:00:00Z'
    outputs:
      - extract_from: channel:out
        count: 2
        conditions: ['.user == "bob" && .timestamp == "2026-12-03T10:00:00Z"']
      - extract_from: sink:bad
        every_event: ['.component == "parse"', 'starts_with(.error, "cannot read a JSON object")']
        count: 1
"#,
    );
    let o = d.run(&["test", "conf/p.test.yaml"], T);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("1 passed; 0 failed"), "{}", stdout(&o));
}

#[test]
fn invalid_tests_are_reported_with_their_position_and_exit_2() {
    let d = Dir::new();
    let ok_test = "  - name: fine\n    inputs:\n      - insert_at: web\n        lines: ['x']\n    outputs:\n      - extract_from: parse\n";
    d.write(
        "p.yaml",
        &format!(
            "{}\n  - name: wrong names\n    inputs:\n      - insert_at: nowhere\n        lines: ['x']\n    outputs:\n      - extract_from: all\n  - name: typo\n    input: []\n{ok_test}",
            DOC_EXAMPLE
                .split("\ntests:\n")
                .next()
                .map(|p| format!("{p}\ntests:\n{ok_test}"))
                .unwrap_or_default()
        ),
    );
    let o = d.run(&["test", "p.yaml", "missing.yaml"], T);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{}{err}", stdout(&o));
    assert!(
        err.contains(
            "test `wrong names`: `insert_at`: `nowhere` names no source, processor or channel"
        ),
        "{err}"
    );
    assert!(
        err.contains("`extract_from`: `all` is ambiguous: write `channel:all` or `sink:all`"),
        "{err}"
    );
    assert!(
        err.contains("unknown option `input`: did you mean `inputs`?"),
        "{err}"
    );
    assert!(err.contains("p.yaml:"), "{err}");
    assert!(
        err.contains("missing.yaml:1:1: cannot read the file"),
        "{err}"
    );
    // The valid tests still ran.
    assert!(
        stdout(&o).contains("2 passed; 0 failed; 3 invalid (2 files)"),
        "{}",
        stdout(&o)
    );

    // A pipeline without tests is no test run.
    d.write(
        "none.yaml",
        DOC_EXAMPLE.split("\ntests:\n").next().unwrap_or(""),
    );
    let o = d.run(&["test", "none.yaml"], T);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no tests: add a `tests:` list"),
        "{}",
        stderr(&o)
    );
    // ... and `validate` ignores the tests.
    let o = d.run(&["validate", "p.yaml"], T);
    assert!(o.status.success(), "{}", stderr(&o));
}
