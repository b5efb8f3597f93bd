//! Poison events: an event a sink can never write must not stall the sink
//! nor make it write the rest of its batch again and again. It is rejected
//! (to the dead-letter channel, or counted and logged) and every other event
//! arrives exactly once; a transient failure is retried without writing
//! twice what was already written.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::util::*;

/// How long a bounded run may take: a stalled sink never finishes.
const LIMIT: Duration = Duration::from_secs(30);

/// Which event of the input is the poison one.
const POISON: u64 = 37;

/// 100 JSON lines `{"n":i,"app":...}`, apps `web` and `db`, except line
/// [`POISON`] whose `app` is 300 bytes: too long for a file name.
fn input() -> String {
    (0..100u64)
        .map(|n| {
            let app = if n == POISON {
                "x".repeat(300)
            } else if n % 2 == 0 {
                "web".to_string()
            } else {
                "db".to_string()
            };
            format!("{{\"n\":{n},\"app\":\"{app}\"}}\n")
        })
        .collect()
}

fn pipeline(dead_letter: bool) -> String {
    let (dl, dl_channel, dl_sink) = if dead_letter {
        (
            "    dead_letter: dead\n",
            "  dead: {type: memory}\n",
            "  dead: {type: file, channel: dead, path: ./out/dead.json, format: json}\n",
        )
    } else {
        ("", "", "")
    };
    format!(
        "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    follow: false\n    batch_size: 25\n    processors: [json]\n    channels: [main]\nprocessors:\n  json: {{type: parse_json}}\nchannels:\n  main: {{type: memory, capacity: 10}}\n{dl_channel}sinks:\n  out:\n    type: file\n    channel: main\n    path: ./out/{{app}}/x.log\n{dl}{dl_sink}"
    )
}

/// How many times each `n` appears in the lines of `files` (JSON lines, as
/// the input was written).
fn seen(d: &Dir, files: &[&str]) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for f in files {
        for l in d.lines(f) {
            let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON line");
            let n = v["n"].as_u64().expect("n");
            *seen.entry(n).or_default() += 1;
        }
    }
    seen
}

/// Runs `p.yaml` to its end with JSON logs, failing when it does not
/// finish (a sink stuck on the poison event).
fn run(d: &Dir) -> std::process::Output {
    run_file(d, "p.yaml")
}

/// [`run`] for another pipeline file.
fn run_file(d: &Dir, file: &str) -> std::process::Output {
    let child = d
        .sluice(&["run", file])
        .env("SLUICE_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    let o = wait_output(child, LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

fn assert_good_once(d: &Dir) {
    let seen = seen(d, &["out/web/x.log", "out/db/x.log"]);
    let want: BTreeMap<u64, usize> = (0..100).filter(|&n| n != POISON).map(|n| (n, 1)).collect();
    assert_eq!(seen, want, "every good event exactly once");
}

#[test]
fn a_file_name_too_long_goes_to_the_dead_letter_channel_and_the_rest_arrive_once() {
    let d = Dir::new();
    d.write("logs/app.log", &input());
    d.write("p.yaml", &pipeline(true));
    let o = run(&d);
    assert_good_once(&d);
    let dead = d.lines("out/dead.json");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let v: serde_json::Value = serde_json::from_str(&dead[0]).expect("json");
    let body: serde_json::Value =
        serde_json::from_str(v["message"].as_str().expect("message")).expect("the poison line");
    assert_eq!(body["n"], POISON);
    assert_eq!(v["fields"]["component"], "out");
    let error = v["fields"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("too long"), "{error}");
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["out"]["events_out"].as_u64(), Some(99));
    assert_eq!(counts["out"]["errors"].as_u64(), Some(1));
}

#[test]
fn without_a_dead_letter_channel_the_poison_event_is_counted_and_logged() {
    let d = Dir::new();
    d.write("logs/app.log", &input());
    d.write("p.yaml", &pipeline(false));
    let o = run(&d);
    assert_good_once(&d);
    let err = stderr(&o);
    let counts = final_counts(&err);
    assert_eq!(counts["out"]["events_out"].as_u64(), Some(99));
    assert_eq!(counts["out"]["errors"].as_u64(), Some(1));
    let warned = err.lines().any(|l| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
            v["fields"]["component"] == "out"
                && v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("events failed"))
                && v["fields"]["first_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("too long"))
        })
    });
    assert!(warned, "{err}");
    // Nothing was retried: the poison event is no reason to write again.
    assert!(!err.contains("retrying the batch"), "{err}");
}

#[test]
fn a_disk_full_for_one_file_is_retried_without_writing_the_other_files_twice() {
    let d = Dir::new();
    let text: String = (0..200u64)
        .map(|n| {
            let f = if n % 2 == 0 { "a" } else { "full" };
            format!("{{\"n\":{n},\"f\":\"{f}\"}}\n")
        })
        .collect();
    d.write("logs/app.log", &text);
    std::fs::create_dir_all(d.join("out")).expect("mkdir");
    // Writing to /dev/full fails with ENOSPC: a full disk for this one file.
    std::os::unix::fs::symlink("/dev/full", d.join("out/full.log")).expect("symlink");
    d.write(
        "p.yaml",
        "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    follow: false\n    processors: [json]\n    channels: [main]\nprocessors:\n  json: {type: parse_json}\nchannels:\n  main: {type: memory, capacity: 10}\nsinks:\n  out: {type: file, channel: main, path: \"./out/{f}.log\"}\n",
    );
    let agent = Agent::start(&d, &["run", "p.yaml"]);
    agent.wait_log("retrying the batch", 3);
    // The batch went to a.log once, whatever the retries.
    let first = seen(&d, &["out/a.log"]);
    assert!(!first.is_empty());
    assert!(first.values().all(|&c| c == 1), "{first:?}");
    // Space is back.
    std::fs::remove_file(d.join("out/full.log")).expect("rm");
    agent.finish_ok(LIMIT);
    let a = seen(&d, &["out/a.log"]);
    let full = seen(&d, &["out/full.log"]);
    assert_eq!(a, (0..200).step_by(2).map(|n| (n, 1)).collect());
    assert_eq!(full, (1..200).step_by(2).map(|n| (n, 1)).collect());
}

/// A line of the hop test: its number, padded to about 100 bytes; line
/// [`POISON`] is 10,000 bytes, more than a frame may hold.
fn hop_line(n: u64) -> String {
    let pad = if n == POISON { 10_000 } else { 94 };
    format!("{n:05} {}", "x".repeat(pad))
}

#[test]
fn an_event_larger_than_the_receivers_frame_limit_is_rejected_and_the_rest_cross_once() {
    let d = Dir::new();
    d.write(
        "agg.yaml",
        "data_dir: ./state/agg\nsources:\n  edge:\n    type: sluice\n    address: 127.0.0.1:0\n    max_frame_bytes: 4KiB\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/agg.log}\n",
    );
    let mut agg = Agent::start_json(&d, &["run", "agg.yaml"]);
    let port = agg.listening("edge");
    let text: String = (0..300).map(|n| hop_line(n) + "\n").collect();
    d.write("logs/app.log", &text);
    // Batches of 100 events (about 12 KiB) are three times the frame limit.
    d.write(
        "edge.yaml",
        &format!("data_dir: ./state/edge\nsources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    follow: false\n    batch_size: 100\n    channels: [main]\nchannels:\n  main: {{type: memory}}\n  dead: {{type: memory}}\nsinks:\n  up:\n    type: sluice\n    channel: main\n    address: '127.0.0.1:{port}'\n    max_frame_bytes: 4KiB\n    batch_size: 100\n    dead_letter: dead\n  dead: {{type: file, channel: dead, path: ./out/dead.json, format: json}}\n"),
    );
    let o = run_file(&d, "edge.yaml");
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["up"]["events_out"].as_u64(), Some(299));
    assert_eq!(counts["up"]["errors"].as_u64(), Some(1));
    let want: Vec<String> = (0..300).filter(|&n| n != POISON).map(hop_line).collect();
    wait_for(LIMIT, "299 events at the receiver", || {
        d.lines("out/agg.log").len() >= want.len()
    });
    let o = agg.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    // Every other event once, in order.
    assert_eq!(d.lines("out/agg.log"), want);
    let dead = d.lines("out/dead.json");
    assert_eq!(dead.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&dead[0]).expect("json");
    assert_eq!(v["message"].as_str(), Some(hop_line(POISON).as_str()));
    let error = v["fields"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("max_frame_bytes"), "{error}");
}

#[test]
fn an_oversize_record_and_a_bad_topic_are_rejected_and_the_rest_reach_kafka_once() {
    use crate::kafka::{broker_lock, brokers, create_topic, unique};
    let _lock = broker_lock();
    let prefix = unique("poison");
    let topic = format!("{prefix}-ok");
    create_topic(&topic, 1);
    // Line POISON is 20 KB, over the producer's limit set below; line 60
    // routes to a topic name with a space, which Kafka refuses.
    let text: String = (0..100u64)
        .map(|n| {
            let (t, pad) = match n {
                POISON => ("ok", 20_000),
                60 => ("not ok", 0),
                _ => ("ok", 10),
            };
            format!(
                "{{\"n\":{n},\"t\":\"{t}\",\"pad\":\"{}\"}}\n",
                "p".repeat(pad)
            )
        })
        .collect();
    let d = Dir::new();
    d.write("logs/app.log", &text);
    d.write(
        "p.yaml",
        &format!(
            "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    follow: false\n    processors: [json]\n    channels: [main]\nprocessors:\n  json: {{type: parse_json}}\nchannels:\n  main: {{type: memory}}\n  dead: {{type: memory}}\nsinks:\n  k:\n    type: kafka\n    channel: main\n    brokers: {}\n    topic: '{prefix}-{{t}}'\n    dead_letter: dead\n    options: {{message.max.bytes: \"10000\"}}\n  dead: {{type: file, channel: dead, path: ./out/dead.json, format: json}}\n",
            brokers()
        ),
    );
    let o = run(&d);
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["k"]["events_out"].as_u64(), Some(98));
    assert_eq!(counts["k"]["errors"].as_u64(), Some(2));
    let mut dead: Vec<(u64, String)> = d
        .lines("out/dead.json")
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            (
                v["fields"]["n"].as_u64().expect("n"),
                v["fields"]["error"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    dead.sort();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0, POISON);
    assert!(
        dead[0].1.to_lowercase().contains("too large"),
        "{}",
        dead[0].1
    );
    assert_eq!(dead[1].0, 60);
    assert!(dead[1].1.contains("topic"), "{}", dead[1].1);
    // Read the topic back: every other event once.
    d.write(
        "consume.yaml",
        &format!(
            "sources:\n  k:\n    type: kafka\n    brokers: {}\n    topics: [{topic}]\n    group_id: {}\n    channels: [main]\nchannels:\n  main: {{type: memory}}\nsinks:\n  out: {{type: file, channel: main, path: ./out/read.log}}\n",
            brokers(),
            unique("g")
        ),
    );
    let agent = Agent::start(&d, &["run", "consume.yaml"]);
    wait_for(LIMIT, "98 records", || d.lines("out/read.log").len() >= 98);
    agent.stop_ok();
    let want: BTreeMap<u64, usize> = (0..100)
        .filter(|&n| n != POISON && n != 60)
        .map(|n| (n, 1))
        .collect();
    assert_eq!(seen(&d, &["out/read.log"]), want);
}
