//! End-to-end tests: the real `sluice` binary on real files and processes.

mod anomaly;
mod clickhouse;
mod compliance;
mod dashboard;
mod dead_letter;
mod demos;
mod disk_channel;
mod durability;
mod elasticsearch;
mod examples;
mod file_encoding;
mod hop;
mod hostile;
mod hostile_fields;
mod kafka;
mod listeners;
mod messages;
mod metrics;
mod network;
mod operations;
mod packaging;
mod poison;
mod postgres;
mod reload;
mod reload_stops;
mod sluice_test;
mod store;
mod store_api;
mod tailing;
mod transforms;
mod util;
mod validate;

use std::process::Stdio;
use std::time::Duration;

use util::*;

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn a_million_sequence_events_arrive_exactly_once_in_order() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen:\n    type: generator\n    count: 1000000\n    channels: [main]\nchannels:\n  main:\n    type: memory\n    capacity: 1000\nsinks:\n  out:\n    type: file\n    channel: main\n    path: ./out/seq.log\n",
    );
    let o = d.run(&["run", "p.yaml"], LIMIT);
    ok(&o);
    assert_sequence(&d.lines("out/seq.log"), 1_000_000);
}

#[test]
fn replicating_selector_feeds_every_channel() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen: {type: generator, count: 20000, channels: [a, b]}\nchannels:\n  a: {type: memory, capacity: 500}\n  b: {type: memory, capacity: 500}\nsinks:\n  one: {type: file, channel: a, path: ./out/a.log}\n  two: {type: file, channel: b, path: ./out/b.log, format: json}\n",
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    // Each event counts once in the source's output, whatever the copies.
    assert_eq!(
        final_counts(&stderr(&o))["gen"]["events_out"].as_u64(),
        Some(20_000)
    );
    assert_sequence(&d.lines("out/a.log"), 20_000);
    let b = d.lines("out/b.log");
    assert_eq!(b.len(), 20_000);
    for (i, line) in b.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert_eq!(v["message"], serde_json::Value::String(i.to_string()));
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }
}

#[test]
fn multiplexing_on_a_parsed_field_puts_every_line_in_the_right_file() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        r#"sources:
  web:
    type: generator
    count: 30000
    format: apache_common
    processors: [parse]
    channels: [ok, missing, other]
    selector:
      type: multiplexing
      field: status
      mapping:
        "200": [ok]
        "404": [missing]
      default: [other]
processors:
  parse:
    type: parse_regex
    pattern: '" (?P<status>\d{3}) (?P<size>\d+|-)$'
channels:
  ok: {type: memory}
  missing: {type: memory}
  other: {type: memory}
sinks:
  ok: {type: file, channel: ok, path: ./out/200.log}
  missing: {type: file, channel: missing, path: ./out/404.log}
  other: {type: file, channel: other, path: ./out/other.log, format: json}
"#,
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    assert_eq!(
        final_counts(&stderr(&o))["web"]["events_out"].as_u64(),
        Some(30_000)
    );
    let ok200 = d.lines("out/200.log");
    let nf404 = d.lines("out/404.log");
    let other = d.lines("out/other.log");
    assert!(
        !ok200.is_empty() && !nf404.is_empty() && !other.is_empty(),
        "every route gets traffic"
    );
    assert_eq!(ok200.len() + nf404.len() + other.len(), 30_000);
    let status = |l: &str| l.rsplit(' ').nth(1).map(str::to_string).unwrap_or_default();
    assert!(
        ok200.iter().all(|l| status(l) == "200"),
        "a non-200 line in 200.log"
    );
    assert!(
        nf404.iter().all(|l| status(l) == "404"),
        "a non-404 line in 404.log"
    );
    for l in &other {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let s = v["fields"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(s != "200" && s != "404" && s.len() == 3, "{l}");
        assert_eq!(status(v["message"].as_str().unwrap_or_default()), s);
    }
}

#[test]
fn filter_drops_exactly_what_it_should() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        r#"sources:
  gen:
    type: generator
    count: 10000
    processors: [num, keep]
    channels: [main]
processors:
  num:
    type: parse_regex
    pattern: '^(?P<n>\d+)$'
    types: {n: integer}
  keep:
    type: filter
    condition: '.n >= 2500 && .n < 7500 || .message == "9999"'
channels:
  main: {type: memory, capacity: 100}
sinks:
  out: {type: file, channel: main, path: ./out/kept.log}
"#,
    );
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    let want: Vec<String> = (2500..7500)
        .chain([9999])
        .map(|i: i32| i.to_string())
        .collect();
    assert_eq!(d.lines("out/kept.log"), want);
}

#[test]
fn a_processor_stage_between_two_channels() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen: {type: generator, count: 5000, channels: [raw]}\nprocessors:\n  tag:\n    type: add_fields\n    input: raw\n    channels: [tagged]\n    fields: {env: test}\nchannels:\n  raw: {type: memory, capacity: 100}\n  tagged: {type: memory, capacity: 100}\nsinks:\n  out: {type: file, channel: tagged, path: ./out/t.log, format: json}\n",
    );
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    let lines = d.lines("out/t.log");
    assert_eq!(lines.len(), 5000);
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        assert_eq!(v["message"].as_str(), Some(i.to_string().as_str()));
        assert_eq!(v["fields"]["env"].as_str(), Some("test"));
    }
}

#[test]
fn backpressure_keeps_memory_bounded_behind_a_slow_sink() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen: {type: generator, channels: [main]}\nchannels:\n  main: {type: memory, capacity: 1000}\nsinks:\n  out: {type: console, channel: main}\n",
    );
    // Nobody reads the sink's stdout for a while: the pipe fills, the sink
    // blocks, the channel fills, and the endless generator must wait.
    let mut child = d
        .sluice(&["run", "p.yaml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut peak = 0;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_kib(pid).unwrap_or(0));
    }
    // Unbounded, a generator doing millions of events per second would
    // reach gigabytes in three seconds.
    assert!(peak > 0 && peak < 64 * 1024, "peak RSS {peak} KiB");
    // The stream is intact once the reader catches up.
    use std::io::BufRead;
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    for i in 0..200_000u64 {
        line.clear();
        out.read_line(&mut line).expect("read");
        assert_eq!(line.trim_end(), i.to_string());
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigterm_stops_an_endless_pipeline_with_a_gap_free_prefix() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen: {type: generator, channels: [main]}\nchannels:\n  main: {type: memory, capacity: 1000}\nsinks:\n  out: {type: file, channel: main, path: ./out/seq.log}\n",
    );
    let child = d.start(&["run", "p.yaml"]);
    wait_for(Duration::from_secs(30), "output to appear", || {
        std::fs::metadata(d.join("out/seq.log")).is_ok_and(|m| m.len() > 100_000)
    });
    signal(&child, libc::SIGTERM);
    let o = wait_output(child, Duration::from_secs(30));
    ok(&o);
    let n = assert_prefix(&d.lines("out/seq.log"));
    assert!(n > 10_000, "only {n} events before the stop");
}

#[test]
fn a_bounded_file_source_resumes_exactly_where_it_stopped() {
    let d = Dir::new();
    let text: String = (0..1000).map(|i| format!("{i}\n")).collect();
    d.write("logs/app.log", &text);
    d.write(
        "p.yaml",
        "sources:\n  app:\n    type: file\n    include: [./logs/*.log]\n    read_from: beginning\n    follow: false\n    channels: [main]\nchannels:\n  main: {type: memory, capacity: 64}\nsinks:\n  out: {type: file, channel: main, path: ./out/app.log}\n",
    );
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    assert_sequence(&d.lines("out/app.log"), 1000);
    // Nothing new: nothing re-read.
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    assert_sequence(&d.lines("out/app.log"), 1000);
    let more: String = (1000..1500).map(|i| format!("{i}\n")).collect();
    d.append("logs/app.log", &more);
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    assert_sequence(&d.lines("out/app.log"), 1500);
}

#[test]
fn a_following_file_source_stopped_and_restarted_neither_rereads_nor_skips() {
    let d = Dir::new();
    d.write("logs/app.log", "");
    d.write(
        "p.yaml",
        "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    poll_interval: 50ms\n    channels: [main]\nchannels:\n  main: {type: memory, capacity: 64}\nsinks:\n  out: {type: file, channel: main, path: ./out/app.log}\n",
    );
    let mut next = 0;
    for _ in 0..3 {
        let child = d.start(&["run", "p.yaml"]);
        // Lines written while the agent runs, in small pieces.
        for _ in 0..10 {
            let chunk: String = (next..next + 100).map(|i| format!("{i}\n")).collect();
            d.append("logs/app.log", &chunk);
            next += 100;
            std::thread::sleep(Duration::from_millis(20));
        }
        let target = next;
        wait_for(Duration::from_secs(30), "the agent to catch up", || {
            d.lines("out/app.log").len() >= target
        });
        signal(&child, libc::SIGTERM);
        ok(&wait_output(child, Duration::from_secs(30)));
        // Lines written while it is stopped.
        let chunk: String = (next..next + 250).map(|i| format!("{i}\n")).collect();
        d.append("logs/app.log", &chunk);
        next += 250;
    }
    // A last run picks up what was written while stopped.
    let child = d.start(&["run", "p.yaml"]);
    wait_for(Duration::from_secs(30), "the last lines", || {
        d.lines("out/app.log").len() >= next
    });
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    ok(&wait_output(child, Duration::from_secs(30)));
    assert_sequence(&d.lines("out/app.log"), next);
}

#[test]
fn stdin_lines_are_read_until_eof() {
    use std::io::Write;
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  in: {type: stdin, channels: [main]}\nchannels:\n  main: {type: memory, capacity: 10}\nsinks:\n  out: {type: file, channel: main, path: ./out/stdin.log}\n",
    );
    let mut child = d
        .sluice(&["run", "p.yaml"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        let mut input = child.stdin.take().expect("stdin");
        for i in 0..5000 {
            writeln!(input, "{i}").expect("write");
        }
        // A CRLF line and an unterminated last line.
        write!(input, "5000\r\n5001").expect("write");
    }
    ok(&wait_output(child, LIMIT));
    assert_sequence(&d.lines("out/stdin.log"), 5002);
}

#[test]
fn settings_from_the_environment_switch_logs_to_json() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen: {type: generator, count: 10, channels: [main]}\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: \"null\", channel: main}\n",
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    let logs = stderr(&o);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    let finals: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["fields"]["message"] == "final counts")
        .collect();
    let sink = finals
        .iter()
        .find(|v| v["fields"]["id"] == "out")
        .expect("the sink's final counts");
    assert_eq!(sink["fields"]["events_out"], 10);
    // A settings file works the same way, and flags win over both.
    d.write(
        "agent.toml",
        "log_format = \"json\"\nlog_level = \"warn\"\n",
    );
    let o = d
        .sluice(&["--settings", "agent.toml", "run", "p.yaml"])
        .output()
        .expect("run");
    ok(&o);
    assert!(
        stderr(&o).trim().is_empty(),
        "warn level hides info lines: {}",
        stderr(&o)
    );
    d.write("typo.toml", "log_levle = \"debug\"\n");
    let o = d
        .sluice(&["--settings", "typo.toml", "run", "p.yaml"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown setting `log_levle`: did you mean `log_level`?"),
        "{}",
        stderr(&o)
    );
    d.write("bad.toml", "log_format = \"xml\"\n");
    let o = d
        .sluice(&["--settings", "bad.toml", "run", "p.yaml"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("log_format"), "{}", stderr(&o));
}

#[test]
fn the_drain_timeout_bounds_a_stop_that_cannot_drain() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen: {type: generator, channels: [main]}\nchannels:\n  main: {type: memory, capacity: 1000}\nsinks:\n  out: {type: console, channel: main}\n",
    );
    // Nobody reads stdout: the sink is stuck, so the stop cannot drain.
    let mut child = d
        .sluice(&["run", "p.yaml", "--drain-timeout", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Held open and never read.
    let _stdout = child.stdout.take();
    std::thread::sleep(Duration::from_millis(700));
    signal(&child, libc::SIGTERM);
    let start = std::time::Instant::now();
    let o = wait_output(child, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(10));
    let err = stderr(&o);
    assert!(err.contains("drain timeout"), "{err}");
}

#[test]
fn malformed_events_go_to_the_dead_letter_channel_or_pass_on_counted() {
    let d = Dir::new();
    let mut input = String::new();
    for i in 0..1000 {
        if i % 10 == 3 {
            input.push_str(&format!("not json {i}\n"));
        } else {
            input.push_str(&format!("{{\"n\":{i},\"level\":\"info\"}}\n"));
        }
    }
    d.write("logs/app.log", &input);
    let pipeline = |dead_letter: &str| {
        format!(
            "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    follow: false\n    batch_size: 10\n    processors: [json]\n    channels: [main]\nprocessors:\n  json:\n    type: parse_json\n{dead_letter}channels:\n  main: {{type: memory}}\n  bad: {{type: memory}}\nsinks:\n  out: {{type: file, channel: main, path: ./out/good.json, format: json}}\n  bad: {{type: file, channel: bad, path: ./out/bad.json, format: json}}\n"
        )
    };
    // With a dead-letter channel: the 100 bad lines are diverted, tagged.
    d.write("p.yaml", &pipeline("    dead_letter: bad\n"));
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    // Diverted events are errors, not discards.
    let counts = final_counts(&stderr(&o));
    assert_eq!(
        (
            counts["json"]["errors"].as_u64(),
            counts["json"]["discarded"].as_u64()
        ),
        (Some(100), Some(0))
    );
    let good = d.lines("out/good.json");
    let bad = d.lines("out/bad.json");
    assert_eq!((good.len(), bad.len()), (900, 100));
    for l in &bad {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("not json ")),
            "{l}"
        );
        assert_eq!(v["fields"]["component"], "json");
        assert!(
            v["fields"]["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{l}"
        );
    }
    for l in &good {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        assert_eq!(v["fields"]["level"], "info");
    }
    // Without one: nothing is lost; the bad lines pass on unchanged, and are
    // counted and logged.
    let d = Dir::new();
    d.write("logs/app.log", &input);
    d.write(
        "p.yaml",
        &pipeline("").replace("  bad: {type: memory}\n", "").replace(
            "  bad: {type: file, channel: bad, path: ./out/bad.json, format: json}\n",
            "",
        ),
    );
    let o = d.run(&["run", "p.yaml"], LIMIT);
    ok(&o);
    assert_eq!(d.lines("out/good.json").len(), 1000);
    let err = stderr(&o);
    assert!(err.contains("errors=100"), "{err}");
    // 100 batches of 10 lines each hold a failure: the warning is rate
    // limited, not repeated per batch.
    let warnings = err.matches("events failed").count();
    assert!((1..=3).contains(&warnings), "{warnings} warnings:\n{err}");
}

#[test]
fn the_data_dir_setting_moves_state_of_pipelines_that_do_not_set_their_own() {
    let d = Dir::new();
    d.write("logs/a.log", "1\n2\n");
    let yaml = "sources:\n  app: {type: file, include: [./logs/a.log], read_from: beginning, follow: false, channels: [main]}\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: \"null\", channel: main}\n";
    d.write("app.yaml", yaml);
    let o = d
        .sluice(&["run", "app.yaml"])
        .env("SLUICE_DATA_DIR", "state")
        .output()
        .expect("run");
    ok(&o);
    assert!(
        d.join("state/app/sources/app/checkpoints.json").exists(),
        "checkpoint under the configured root"
    );
    assert!(!d.join(".sluice").exists());
    // A pipeline's own data_dir wins.
    d.write("own.yaml", &format!("data_dir: ./mine\n{yaml}"));
    let o = d
        .sluice(&["run", "own.yaml"])
        .env("SLUICE_DATA_DIR", "state")
        .output()
        .expect("run");
    ok(&o);
    assert!(d.join("mine/sources/app/checkpoints.json").exists());
}

#[test]
fn the_readme_demo_routes_server_errors_by_an_integer_field() {
    let d = Dir::new();
    let demo = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/demo.yaml"),
    )
    .expect("demo");
    d.write("demo.yaml", &demo);
    let o = d
        .sluice(&["run", "demo.yaml"])
        .env("DEMO_EVENTS", "20000")
        .output()
        .expect("run");
    ok(&o);
    let access = d.lines("out/demo/access.json");
    assert_eq!(access.len(), 20_000);
    let mut server_errors = 0;
    for l in &access {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        // `status` was typed as an integer by parse_regex.
        let status = v["fields"]["status"].as_i64().expect("integer status");
        if status == 500 {
            server_errors += 1;
        }
    }
    let errors = d.lines("out/demo/errors.json");
    assert!(server_errors > 0);
    assert_eq!(
        errors.len(),
        server_errors,
        "every 500 and only those in errors.json"
    );
    for l in &errors {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        // The raw line, and the `mark` stage's field where a user sees it.
        assert_eq!(
            v["message"].as_str().and_then(|m| m.rsplit(' ').nth(1)),
            Some("500")
        );
        assert_eq!(v["fields"]["alert"], true, "{l}");
    }
}
