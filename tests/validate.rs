//! `sluice validate`, `sluice graph` and the files in pipelines/.

use std::time::Duration;

use crate::util::*;

const T: Duration = Duration::from_secs(30);

/// Validates `yaml` and returns (exit code, stderr lines).
fn invalid(yaml: &str) -> Vec<String> {
    let d = Dir::new();
    d.write("bad.yaml", yaml);
    let o = d.run(&["validate", "bad.yaml"], T);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2, stderr:\n{}",
        stderr(&o)
    );
    stderr(&o).lines().map(String::from).collect()
}

fn has(lines: &[String], want: &str) {
    assert!(
        lines.iter().any(|l| l == want),
        "missing line\n  {want}\nin\n{}",
        lines.join("\n")
    );
}

const GOOD: &str = "sources:\n  gen:\n    type: generator\n    count: 10\n    channels: [main]\nchannels:\n  main:\n    type: memory\nsinks:\n  out:\n    type: console\n    channel: main\n";

#[test]
fn a_valid_file_prints_a_summary_and_exits_0() {
    let d = Dir::new();
    d.write("good.yaml", GOOD);
    let o = d.run(&["validate", "good.yaml"], T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "good.yaml: ok (1 source, 1 channel, 0 processors (0 stages), 1 sink)"
    );
}

#[test]
fn yaml_syntax_error() {
    let lines = invalid("sources:\n  gen: {type: generator\n");
    assert!(
        lines[0].starts_with("bad.yaml:3:1: YAML syntax error"),
        "{lines:?}"
    );
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let lines = invalid(&GOOD.replace("    count: 10\n", "    cuont: 10\n"));
    has(
        &lines,
        "bad.yaml:4:5: source `gen`: unknown option `cuont`: did you mean `count`?",
    );
    let lines = invalid(&GOOD.replace("    channels: [main]\n", "    chanels: [main]\n"));
    has(
        &lines,
        "bad.yaml:5:5: source `gen`: unknown option `chanels`: did you mean `channels`?",
    );
}

#[test]
fn unknown_type() {
    let lines = invalid(&GOOD.replace("type: memory", "type: memroy"));
    has(
        &lines,
        "bad.yaml:8:11: channel `main`: unknown channel type `memroy`: did you mean `memory`?",
    );
}

#[test]
fn missing_required_option() {
    let lines = invalid(&GOOD.replace("    type: console\n", "    type: file\n"));
    has(
        &lines,
        "bad.yaml:10:3: sink `out`: missing required option `path`",
    );
    let lines = invalid(&GOOD.replace("    channel: main\n", ""));
    has(
        &lines,
        "bad.yaml:10:3: sink `out`: missing required option `channel`",
    );
}

#[test]
fn wrong_value_type() {
    let lines = invalid(&GOOD.replace("count: 10", "count: lots"));
    assert!(
        lines
            .iter()
            .any(|l| l == "bad.yaml:4:12: source `gen`: `count` must be a whole number (0 or more), found the text `lots`"),
        "{lines:?}"
    );
    let lines =
        invalid(&GOOD.replace("    type: memory\n", "    type: memory\n    capacity: -5\n"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("bad.yaml:9:15: channel `main`:")),
        "{lines:?}"
    );
}

#[test]
fn reference_to_a_missing_channel_or_processor() {
    let lines = invalid(&GOOD.replace("    channel: main\n", "    channel: mian\n"));
    has(&lines, "bad.yaml:12:14: sink `out` refers to channel `mian`, which is not declared: did you mean `main`?");
    let lines = invalid(&GOOD.replace(
        "    channels: [main]\n",
        "    channels: [main]\n    processors: [stamp]\n",
    ));
    has(&lines, "bad.yaml:6:18: source `gen` uses processor `stamp`, which is not declared under `processors:`");
}

#[test]
fn channels_that_nothing_writes_or_reads() {
    let lines = invalid(
        &format!("{GOOD}  spare:\n    type: null\n    channel: unused\n").replace(
            "channels:\n  main:\n",
            "channels:\n  unused:\n    type: memory\n  orphan:\n    type: memory\n  main:\n",
        ),
    );
    has(&lines, "bad.yaml:7:3: channel `unused`: nothing writes to it (list it in a source's or stage's `channels:`)");
    has(&lines, "bad.yaml:9:3: channel `orphan`: nothing writes to it (list it in a source's or stage's `channels:`)");
    has(&lines, "bad.yaml:9:3: channel `orphan`: nothing reads from it (give it a sink with `channel: orphan`, or a stage with `input: orphan`)");
}

#[test]
fn cycles_between_stages() {
    let lines = invalid(
        "sources:\n  gen: {type: generator, channels: [a]}\nprocessors:\n  one: {type: add_fields, input: a, channels: [b], fields: {x: 1}}\n  two: {type: add_fields, input: b, channels: [a, c], fields: {y: 2}}\nchannels:\n  a: {type: memory}\n  b: {type: memory}\n  c: {type: memory}\nsinks:\n  out: {type: null, channel: c}\n",
    );
    assert!(
        lines.iter().any(|l| l
            .starts_with("bad.yaml:4:47: processor stages form a cycle: `one` → `b`, `two` → `a`")),
        "{lines:?}"
    );
}

#[test]
fn unset_variable_without_default() {
    let lines = invalid(&GOOD.replace("count: 10", "count: ${SLUICE_TEST_SURELY_UNSET}"));
    has(&lines, "bad.yaml:4:12: environment variable `SLUICE_TEST_SURELY_UNSET` is not set and has no default (write `${SLUICE_TEST_SURELY_UNSET:-default}` to give one)");
}

#[test]
fn every_problem_is_listed_at_once() {
    let lines = invalid(
        &GOOD
            .replace("count: 10", "count: lots")
            .replace("type: memory", "type: memroy")
            .replace("channel: main", "channel: nope"),
    );
    // Three problems, then the count line.
    assert!(lines.len() >= 4, "{lines:?}");
    assert!(
        lines.last().is_some_and(|l| l.ends_with("problems")),
        "{lines:?}"
    );
}

#[test]
fn variables_are_substituted_from_the_environment() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        &GOOD
            .replace("count: 10", "count: ${N:-3}")
            .replace("type: console", "type: file\n    path: ./out/${NAME}.log"),
    );
    let o = d
        .sluice(&["run", "p.yaml"])
        .env("NAME", "fromenv")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_sequence(&d.lines("out/fromenv.log"), 3);
}

#[test]
fn run_refuses_an_invalid_file_with_exit_2() {
    let d = Dir::new();
    d.write("bad.yaml", &GOOD.replace("type: memory", "type: memroy"));
    let o = d.run(&["run", "bad.yaml"], T);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.yaml:8:11: channel `main`: unknown channel type `memroy`"));
}

#[test]
fn graph_prints_dot() {
    let d = Dir::new();
    d.write("good.yaml", GOOD);
    let o = d.run(&["graph", "good.yaml"], T);
    assert!(o.status.success());
    let dot = stdout(&o);
    assert!(dot.starts_with("digraph \"good\" {"), "{dot}");
    assert!(dot.contains("\"source:gen\" -> \"channel:main\";"), "{dot}");
    assert!(dot.contains("\"channel:main\" -> \"sink:out\";"), "{dot}");
}

#[test]
fn every_example_pipeline_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("pipelines/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected an example per component, found {}",
        files.len()
    );
    let d = Dir::new();
    let mut args = vec!["validate".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = d.run(&args, T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), files.len());

    // Every registered type has an example that uses it.
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect();
    let o = d.run(&["components"], T);
    for line in stdout(&o).lines() {
        let (kind, names) = line.split_once(':').expect("kind: names");
        for name in names.split(',').map(str::trim) {
            let used = texts.iter().any(|t| {
                t.lines().any(|l| {
                    let l = l.trim().trim_start_matches('{');
                    l.contains(&format!("type: {name}")) || l.contains(&format!("type: \"{name}\""))
                })
            });
            assert!(
                used,
                "no example in pipelines/ uses the {kind} type `{name}`"
            );
        }
    }
}

#[test]
fn every_documented_component_type_is_registered() {
    let d = Dir::new();
    let o = d.run(&["components"], T);
    assert!(o.status.success());
    let listed = stdout(&o);
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for (kind, file) in [
        ("sources", "sources.md"),
        ("channels", "channels.md"),
        ("processors", "processors.md"),
        ("sinks", "sinks.md"),
    ] {
        let text = std::fs::read_to_string(docs.join(file)).expect("doc file");
        let line = listed
            .lines()
            .find(|l| l.starts_with(&format!("{kind}:")))
            .expect("kind line");
        // Every `## type` heading in the doc names a registered type, and
        // every registered type has a heading.
        let documented: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("## `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let registered: Vec<&str> = line
            .split_once(':')
            .map(|x| x.1)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .collect();
        let mut a = documented.clone();
        a.sort();
        let mut b = registered.clone();
        b.sort();
        assert_eq!(a, b, "{file}: documented types vs registered {kind}");
    }
}

#[test]
fn workers_on_a_processor_that_keeps_state_is_refused_where_written() {
    let yaml = "sources:\n  gen:\n    type: generator\n    count: 10\n    processors: [once, parse]\n    channels: [main]\nprocessors:\n  once:\n    type: dedupe\n    workers: 2\n  parse:\n    type: parse_json\n    workers: none\nchannels:\n  main:\n    type: memory\nsinks:\n  out:\n    type: console\n    channel: main\n";
    let lines = invalid(yaml);
    has(&lines, "bad.yaml:10:14: processor `once`: `dedupe` keeps state from one event to the next, so it runs on one thread; remove `workers` (or set it to 1)");
    has(
        &lines,
        "bad.yaml:13:14: `workers` must be `auto` or an integer from 1 to 64",
    );
}

#[test]
fn max_buffered_bytes_below_max_body_bytes_is_refused() {
    let yaml = GOOD.replace(
        "    type: generator\n    count: 10\n",
        "    type: http\n    address: 127.0.0.1:0\n    max_body_bytes: 2MiB\n    max_buffered_bytes: 1MiB\n",
    );
    has(
        &invalid(&yaml),
        "bad.yaml:6:25: source `gen`: max_buffered_bytes (1048576 bytes) must be at least max_body_bytes (2097152 bytes), or no body of that size could be taken",
    );
}
