//! The compliance check every component passes, whatever its type: run it
//! in a real pipeline, stop it, and check from the agent's own final counts
//! that the stop drained everything and that the counters add up.
//!
//! One `#[test]` per registered type (`compliance::sink::file`,
//! `compliance::source::tcp`, ...), so they run in parallel and a failure
//! names its type. A new component type gets its options in the table of
//! its kind below and a line in that kind's `per_type!` list: a test fails
//! for a registered type that has none.

use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

/// Minimal options per sink type (the `channel` key is added).
fn sink_options(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "file" => "path: ./out/compliance.log",
        "console" => "format: json",
        "null" => "",
        // A receiving agent is started on the port (see below).
        "sluice" => "address: 127.0.0.1:COMPLIANCE_PORT",
        "store" => "path: ./out/store",
        "postgres" => "url: ${SLUICE_TEST_POSTGRES_URL}\ntable: sluice_compliance",
        "kafka" => "brokers: ${SLUICE_TEST_KAFKA_BROKERS}\ntopic: sluice-compliance-sink",
        "clickhouse" => {
            "url: ${SLUICE_TEST_CLICKHOUSE_URL}\ntable: sluice_compliance\ncreate_table: true"
        }
        _ => return None,
    })
}

/// Options per processor type that let every event through unchanged in
/// count (the `input`/`channels` keys are added).
fn processor_options(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "add_fields" => "fields: {checked: true}",
        "remove_fields" => "fields: [nothing]",
        "rename_fields" => "fields: {nothing: something}",
        "filter" => "condition: '.message != \"never\"'",
        "host" => "",
        "timestamp" => "",
        "parse_json" => "field: absent_field",
        "parse_regex" => "pattern: '^(?P<digits>\\d+)$'",
        "parse_logfmt" => "field: absent_field",
        "parse_csv" => "columns: [n]\ntypes: {n: integer}",
        "parse_grok" => "pattern: '^%{INT:n:int}$'",
        "parse_syslog" => "field: absent_field",
        "route" => "routes: {every: 'true'}\nmode: all",
        "sample" => "rate: 1",
        "throttle" => "limit: 5000\nwindow: 1h",
        "dedupe" => "max_entries: 5000",
        "template" => "persist: false",
        "session" => "key_field: absent_field\npass_through: true",
        "window" => "events: 10\nkey_field: absent_field\npass_through: true",
        "anomaly" => "fields: [absent_field]\ntraining_size: 100",
        _ => return None,
    })
}

/// How to run each source type endlessly, and what it needs around it.
enum Feed {
    /// Nothing: the source produces by itself.
    None,
    /// Lines appended to `./logs/app.log` while it runs.
    File,
    /// Lines written to its standard input, which stays open.
    Stdin,
    /// Lines sent over TCP to `COMPLIANCE_PORT`.
    Tcp,
    /// Lines sent in UDP datagrams to `COMPLIANCE_PORT`.
    Udp,
    /// Lines POSTed to `COMPLIANCE_PORT`.
    Http,
    /// Lines as documents of `_bulk` requests to `COMPLIANCE_PORT`.
    Bulk,
    /// A second agent sends a sequence to `COMPLIANCE_PORT` over the hop.
    Hop,
    /// A one-partition topic filled with a sequence before the start
    /// (`SLUICE_COMPLIANCE_TOPIC`).
    Kafka,
}

fn source_options(ty: &str) -> Option<(&'static str, Feed)> {
    Some(match ty {
        "generator" => ("rate: 20000", Feed::None),
        "file" => (
            "include: [./logs/app.log]\n    read_from: beginning\n    poll_interval: 50ms",
            Feed::File,
        ),
        "stdin" => ("", Feed::Stdin),
        "tcp" => ("address: 127.0.0.1:COMPLIANCE_PORT", Feed::Tcp),
        "udp" => ("address: 127.0.0.1:COMPLIANCE_PORT", Feed::Udp),
        // Not syslog: the lines pass on with their bodies (counted as errors).
        "syslog" => (
            "address: 127.0.0.1:COMPLIANCE_PORT\nframing: newline",
            Feed::Tcp,
        ),
        "http" => ("address: 127.0.0.1:COMPLIANCE_PORT", Feed::Http),
        "elasticsearch" => ("address: 127.0.0.1:COMPLIANCE_PORT", Feed::Bulk),
        "exec" => ("command: [seq, 0, 100000000]", Feed::None),
        "sluice" => ("address: 127.0.0.1:COMPLIANCE_PORT", Feed::Hop),
        "kafka" => (
            "brokers: ${SLUICE_TEST_KAFKA_BROKERS}\n    topics: [\"${SLUICE_COMPLIANCE_TOPIC}\"]\n    group_id: compliance",
            Feed::Kafka,
        ),
        _ => return None,
    })
}

/// The `kafka` channel's entry: tested against the broker instead, end to
/// end in `kafka.rs` and by the randomized channel check in `sluice-kafka`
/// (`channel::conformance`).
const KAFKA_CHANNEL: &str = "(tested in kafka.rs)";

/// Types whose compliance is checked elsewhere: kind, type, where.
const ELSEWHERE: &[(&str, &str, &str)] = &[(
    "channel",
    "kafka",
    "kafka::the_kafka_channel_keeps_fields_and_what_it_accepted_across_a_kill_9, sluice-kafka channel::conformance",
)];

/// One `#[test]` per type, named after it, running its kind's case;
/// `TYPES` lists the types for [`every_registered_type_has_a_compliance_test`].
macro_rules! per_type {
    ($kind:ident, $case:ident, [$($name:ident = $ty:literal),* $(,)?]) => {
        mod $kind {
            $(
                #[test]
                fn $name() {
                    super::$case($ty);
                }
            )*
            /// The types with a test above.
            pub const TYPES: &[&str] = &[$($ty),*];
        }
    };
}

per_type!(
    sink,
    sink_delivers_and_counts_every_event,
    [
        file = "file",
        console = "console",
        null = "null",
        sluice = "sluice",
        store = "store",
        postgres = "postgres",
        kafka = "kafka",
        clickhouse = "clickhouse",
    ]
);

per_type!(
    processor,
    processor_runs_as_a_stage_and_counts_every_event,
    [
        add_fields = "add_fields",
        remove_fields = "remove_fields",
        rename_fields = "rename_fields",
        filter = "filter",
        host = "host",
        timestamp = "timestamp",
        parse_json = "parse_json",
        parse_regex = "parse_regex",
        parse_logfmt = "parse_logfmt",
        parse_csv = "parse_csv",
        parse_grok = "parse_grok",
        parse_syslog = "parse_syslog",
        route = "route",
        sample = "sample",
        throttle = "throttle",
        dedupe = "dedupe",
        template = "template",
        session = "session",
        window = "window",
        anomaly = "anomaly",
    ]
);

per_type!(
    source,
    source_stops_on_sigterm_and_the_stop_drains_everything,
    [
        generator = "generator",
        file = "file",
        stdin = "stdin",
        tcp = "tcp",
        udp = "udp",
        syslog = "syslog",
        http = "http",
        elasticsearch = "elasticsearch",
        exec = "exec",
        sluice = "sluice",
        kafka = "kafka",
    ]
);

per_type!(
    channel,
    channel_delivers_in_order_and_a_stop_drains_it,
    [memory = "memory", disk = "disk"]
);

#[test]
fn every_registered_type_has_a_compliance_test() {
    for (kind, types) in [
        ("source", source::TYPES),
        ("processor", processor::TYPES),
        ("sink", sink::TYPES),
        ("channel", channel::TYPES),
    ] {
        let registered = registered(kind);
        assert!(!registered.is_empty(), "no {kind} types registered");
        for ty in registered {
            let elsewhere = ELSEWHERE.iter().any(|(k, t, _)| *k == kind && *t == ty);
            assert!(
                types.contains(&ty.as_str()) || elsewhere,
                "no compliance test for {kind} type `{ty}`: give it options in the {kind} table of tests/compliance.rs and a line in the `per_type!` list of {kind}s"
            );
        }
    }
}

/// Options per channel type (a small bound, so that puts wait).
fn channel_options(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "memory" => "capacity: 100",
        "disk" => "max_bytes: 64KiB\nmax_segment_bytes: 16KiB",
        // Needs a topic of its own per run and a group rebalance per start:
        // its delivery, order per partition and crash survival are checked
        // against the real broker by `kafka::the_kafka_channel_keeps_fields_and_what_it_accepted_across_a_kill_9`.
        "kafka" => return Some(KAFKA_CHANNEL),
        _ => return None,
    })
}

fn registered(kind: &str) -> Vec<String> {
    let d = Dir::new();
    let o = d.run(&["components"], Duration::from_secs(30));
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with(&format!("{kind}s:")))
        .map(String::from)
        .unwrap_or_default();
    line.split_once(':')
        .map(|x| x.1)
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn indent(opts: &str) -> String {
    opts.lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("    {}\n", l.trim_start()))
        .collect()
}

fn sink_delivers_and_counts_every_event(ty: &str) {
    let opts =
        sink_options(ty).unwrap_or_else(|| panic!("no compliance entry for sink type `{ty}`"));
    let _lock = (ty == "kafka").then(crate::kafka::broker_lock);
    let d = Dir::new();
    // The receiver of a `sluice` sink, started first on a port of its
    // choosing.
    let receiver = (ty == "sluice").then(|| {
        d.write("r.yaml", "sources:\n  r: {type: sluice, address: '127.0.0.1:0', channels: [main]}\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: \"null\", channel: main}\n");
        let mut agent = Agent::start_json(&d, &["run", "r.yaml"]);
        let port = agent.listening("r");
        (agent, port)
    });
    let port = receiver.as_ref().map_or(0, |r| r.1).to_string();
    d.write(
        "p.yaml",
        &format!("sources:\n  gen: {{type: generator, count: 20000, channels: [main]}}\nchannels:\n  main: {{type: memory, capacity: 100}}\nsinks:\n  s:\n    type: \"{ty}\"\n    channel: main\n    batch_size: 64\n{}", indent(opts)).replace("COMPLIANCE_PORT", &port),
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    if let Some((r, _)) = receiver {
        let o = r.stop_output();
        let counts = final_counts(&stderr(&o));
        assert_eq!(
            counts["out"]["events_out"].as_u64(),
            Some(20000),
            "the receiver got every event"
        );
    }
    assert!(o.status.success(), "sink `{ty}`: {}", stderr(&o));
    let counts = final_counts(&stderr(&o));
    let s = &counts["s"];
    assert_eq!(
        (
            s["events_in"].as_u64(),
            s["events_out"].as_u64(),
            s["errors"].as_u64()
        ),
        (Some(20000), Some(20000), Some(0)),
        "sink `{ty}`"
    );
}

fn processor_runs_as_a_stage_and_counts_every_event(ty: &str) {
    let opts = processor_options(ty)
        .unwrap_or_else(|| panic!("no compliance entry for processor type `{ty}`"));
    let d = Dir::new();
    d.write(
        "p.yaml",
        &format!("sources:\n  gen: {{type: generator, count: 5000, channels: [raw]}}\nprocessors:\n  p:\n    type: {ty}\n    input: raw\n    channels: [done]\n    batch_size: 50\n{}channels:\n  raw: {{type: memory, capacity: 100}}\n  done: {{type: memory, capacity: 100}}\nsinks:\n  out: {{type: file, channel: done, path: ./out/p.log}}\n", indent(opts)),
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    assert!(o.status.success(), "processor `{ty}`: {}", stderr(&o));
    let counts = final_counts(&stderr(&o));
    assert_eq!(
        counts["p"]["events_in"].as_u64(),
        Some(5000),
        "processor `{ty}`"
    );
    assert_eq!(
        counts["out"]["events_out"].as_u64(),
        Some(5000),
        "processor `{ty}`"
    );
    assert_sequence(&d.lines("out/p.log"), 5000);
}

fn source_stops_on_sigterm_and_the_stop_drains_everything(ty: &str) {
    let (opts, feed) =
        source_options(ty).unwrap_or_else(|| panic!("no compliance entry for source type `{ty}`"));
    let _lock = matches!(feed, Feed::Kafka).then(crate::kafka::broker_lock);
    let topic = crate::kafka::unique("compliance-source");
    if matches!(feed, Feed::Kafka) {
        crate::kafka::create_topic(&topic, 1);
        crate::kafka::produce_sequence(&topic, 10_000);
    }
    let d = Dir::new();
    d.write("logs/app.log", "");
    // A listening source binds port 0; the port it took is read below.
    d.write(
        "p.yaml",
        &format!("sources:\n  src:\n    type: {ty}\n    channels: [main]\n{}channels:\n  main: {{type: memory, capacity: 50}}\nsinks:\n  out: {{type: file, channel: main, path: ./out/o.log}}\n", indent(opts)).replace("COMPLIANCE_PORT", "0"),
    );
    let mut command = d.sluice(&["run", "p.yaml"]);
    command
        .env("SLUICE_LOG_FORMAT", "json")
        .env("SLUICE_COMPLIANCE_TOPIC", &topic)
        .stdin(Stdio::piped());
    let mut agent = Agent::spawn(command);
    let mut stdin = agent.child.stdin.take();
    let port = match feed {
        Feed::Tcp | Feed::Udp | Feed::Http | Feed::Bulk | Feed::Hop => agent.listening("src"),
        Feed::None | Feed::Kafka | Feed::File | Feed::Stdin => 0,
    };
    let mut net = crate::network::Feeder::new(&d, port, matches!(feed, Feed::Hop));
    let mut written = 0;
    let start = std::time::Instant::now();
    while d.lines("out/o.log").len() < 2000 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "source `{ty}` produced too little"
        );
        let chunk: String = (written..written + 200).map(|i| format!("{i}\n")).collect();
        match feed {
            Feed::None | Feed::Kafka => {}
            Feed::File => d.append("logs/app.log", &chunk),
            Feed::Stdin => {
                use std::io::Write;
                if let Some(s) = stdin.as_mut() {
                    s.write_all(chunk.as_bytes()).expect("write stdin");
                    s.flush().expect("flush");
                }
            }
            Feed::Tcp => net.tcp(&chunk),
            Feed::Udp => net.udp(&chunk),
            Feed::Http => net.http(&chunk),
            Feed::Bulk => net.bulk(&chunk),
            Feed::Hop => {}
        }
        written += 200;
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&agent.child, libc::SIGTERM);
    let stopped = std::time::Instant::now();
    drop(net);
    let o = agent.exit_output(Duration::from_secs(15));
    drop(stdin);
    assert!(o.status.success(), "source `{ty}`: {}", stderr(&o));
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "source `{ty}` took {:?} to stop",
        stopped.elapsed()
    );
    let counts = final_counts(&stderr(&o));
    let emitted = counts["src"]["events_out"].as_u64();
    assert_eq!(
        counts["out"]["events_out"].as_u64(),
        emitted,
        "source `{ty}`: the stop did not drain the channel"
    );
    let lines = d.lines("out/o.log");
    assert_eq!(Some(lines.len() as u64), emitted, "source `{ty}`");
    assert_prefix(&lines);
}

fn channel_delivers_in_order_and_a_stop_drains_it(ty: &str) {
    let opts = channel_options(ty)
        .unwrap_or_else(|| panic!("no compliance entry for channel type `{ty}`"));
    assert_ne!(opts, KAFKA_CHANNEL, "the kafka channel is tested elsewhere");
    // A bounded run: every event, in order, counted.
    let d = Dir::new();
    d.write(
        "p.yaml",
        &format!("sources:\n  gen: {{type: generator, count: 20000, channels: [c]}}\nchannels:\n  c:\n    type: {ty}\n{}sinks:\n  out: {{type: file, channel: c, batch_size: 64, path: ./out/c.log}}\n", indent(opts)),
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    assert!(o.status.success(), "channel `{ty}`: {}", stderr(&o));
    let counts = final_counts(&stderr(&o));
    assert_eq!(
        counts["out"]["events_out"].as_u64(),
        Some(20000),
        "channel `{ty}`"
    );
    assert_sequence(&d.lines("out/c.log"), 20000);
    // An endless run stopped with SIGTERM: what the source emitted is
    // all delivered.
    let d = Dir::new();
    d.write(
        "p.yaml",
        &format!("sources:\n  gen: {{type: generator, rate: 20000, channels: [c]}}\nchannels:\n  c:\n    type: {ty}\n{}sinks:\n  out: {{type: file, channel: c, path: ./out/c.log}}\n", indent(opts)),
    );
    let child = d
        .sluice(&["run", "p.yaml"])
        .env("SLUICE_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(Duration::from_secs(30), "output", || {
        d.lines("out/c.log").len() >= 2000
    });
    signal(&child, libc::SIGTERM);
    let o = wait_output(child, Duration::from_secs(15));
    assert!(o.status.success(), "channel `{ty}`: {}", stderr(&o));
    let counts = final_counts(&stderr(&o));
    let emitted = counts["gen"]["events_out"].as_u64();
    assert_eq!(
        counts["out"]["events_out"].as_u64(),
        emitted,
        "channel `{ty}`"
    );
    let n = assert_prefix(&d.lines("out/c.log"));
    assert_eq!(Some(n as u64), emitted, "channel `{ty}`");
}
