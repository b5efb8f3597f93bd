//! The `clickhouse` sink against a real ClickHouse server (18.16 from
//! Debian, the oldest release the sink supports; started by
//! `scripts/test.sh`, found through `SLUICE_TEST_CLICKHOUSE_URL`), checked
//! through the server's own HTTP interface.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(300);

fn url() -> String {
    std::env::var("SLUICE_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_CLICKHOUSE_URL is not set: run the tests with scripts/test.sh, \
             which starts ClickHouse (scripts/services/clickhouse.sh) and exports it"
        )
    })
}

/// Runs SQL over the HTTP interface; `Err` with the server's answer when
/// it is not a 200 or the server cannot be reached.
fn try_query(sql: &str) -> Result<String, String> {
    let u = url();
    let authority = u.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(authority).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let request = format!(
        "POST / HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {answer:?}"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("`{sql}`: {head}\n{body}"));
    }
    Ok(body.trim().to_string())
}

fn query(sql: &str) -> String {
    try_query(sql).unwrap_or_else(|e| panic!("{e}"))
}

fn number(sql: &str) -> i64 {
    let out = query(sql);
    out.parse()
        .unwrap_or_else(|_| panic!("`{sql}` gave {out:?}, not a number"))
}

/// A table name of its own for each test run, dropped first.
fn fresh_table(name: &str) -> String {
    let table = format!("sluice_{name}_{}", std::process::id());
    query(&format!("DROP TABLE IF EXISTS {table}"));
    table
}

/// The tests share one server and one of them kills it: one at a time.
static SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn server() -> std::sync::MutexGuard<'static, ()> {
    SERVER.lock().unwrap_or_else(|e| e.into_inner())
}

/// An order-independent checksum of lines: the sum of their FNV-1a hashes.
fn checksum<'a>(lines: impl Iterator<Item = &'a str>) -> (usize, u64) {
    let mut n = 0;
    let mut sum = 0u64;
    for l in lines {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in l.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        sum = sum.wrapping_add(h);
        n += 1;
    }
    (n, sum)
}

#[test]
fn two_hundred_thousand_events_arrive_as_rows_with_what_was_sent() {
    let _one_at_a_time = server();
    let table = fresh_table("bulk");
    let d = Dir::new();
    d.write(
        "p.yaml",
        &format!(
            r#"sources:
  gen:
    type: generator
    count: 200000
    format: json
    batch_size: 5000
    processors: [json]
    channels: [main, sent]
processors:
  json: {{type: parse_json}}
channels:
  main: {{type: memory, capacity: 20000}}
  sent: {{type: memory, capacity: 20000}}
sinks:
  ch:
    type: clickhouse
    channel: main
    url: ${{SLUICE_TEST_CLICKHOUSE_URL}}
    table: {table}
    batch_size: 10000
    user: sluice
    password: sluice-test
    columns:
      timestamp: "@timestamp"
      seq: seq
      level: level
      service: service
      latency_ms: latency_ms
      message: "@message"
      fields: "@fields"
    create_table: >-
      CREATE TABLE IF NOT EXISTS {table} (timestamp DateTime, seq UInt64,
      level String, service String, latency_ms UInt32, message String, fields String)
      ENGINE = MergeTree() ORDER BY (service, timestamp)
  # What was sent, to compare with.
  sent: {{type: file, channel: sent, path: ./out/sent.log}}
"#
        ),
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    assert_eq!(
        final_counts(&stderr(&o))["ch"]["events_out"].as_u64(),
        Some(200_000)
    );
    assert_eq!(number(&format!("SELECT count() FROM {table}")), 200_000);
    assert_eq!(
        query(&format!(
            "SELECT uniqExact(seq), min(seq), max(seq) FROM {table} FORMAT TSV"
        )),
        "200000\t0\t199999"
    );
    // The bodies, byte for byte: the same checksum on both sides.
    let sent = d.lines("out/sent.log");
    let stored = query(&format!("SELECT message FROM {table} FORMAT TSVRaw"));
    assert_eq!(
        checksum(stored.lines()),
        checksum(sent.iter().map(String::as_str))
    );
    // Columns from the typed fields: each row's body is the JSON of its
    // own columns.
    assert_eq!(
        number(&format!(
            "SELECT count() FROM {table} WHERE message != concat('{{\"seq\":', toString(seq), \
             ',\"level\":\"', level, '\",\"service\":\"', service, '\",\"latency_ms\":', \
             toString(latency_ms), ',\"message\":\"request ', toString(seq), ' handled\"}}')"
        )),
        0,
        "every row's columns hold the fields its body was parsed into"
    );
    // `@fields` is the fields' JSON; timestamps are the events' own.
    assert_eq!(
        number(&format!(
            "SELECT count() FROM {table} WHERE fields != message"
        )),
        0
    );
    assert_eq!(
        number(&format!(
            "SELECT count() FROM {table} WHERE timestamp > now() - 3600 AND timestamp <= now()"
        )),
        200_000
    );
    query(&format!("DROP TABLE {table}"));
}

#[test]
fn the_server_killed_mid_stream_and_restarted_loses_nothing_from_a_disk_channel() {
    let _one_at_a_time = server();
    let ctl = std::env::var("SLUICE_TEST_CLICKHOUSE_CTL").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_CLICKHOUSE_CTL is not set: run the tests with scripts/test.sh \
             (scripts/services/clickhouse.sh env exports it)"
        )
    });
    let table = fresh_table("killed");
    const N: i64 = 60_000;
    let d = Dir::new();
    d.write(
        "p.yaml",
        &format!(
            r#"data_dir: ./data
sources:
  gen:
    type: generator
    count: {N}
    rate: 10000
    batch_size: 200
    channels: [main]
channels:
  main: {{type: disk}}
sinks:
  ch:
    type: clickhouse
    channel: main
    url: ${{SLUICE_TEST_CLICKHOUSE_URL}}
    table: {table}
    create_table: true
    batch_size: 500
    timeout: 5s
"#
        ),
    );
    let ctl_run = |verb: &str| {
        let mut parts = ctl.split_whitespace();
        let program = parts
            .next()
            .expect("a command in SLUICE_TEST_CLICKHOUSE_CTL");
        let o = Command::new(program)
            .args(parts)
            .arg(verb)
            .output()
            .expect("run SLUICE_TEST_CLICKHOUSE_CTL");
        assert!(
            o.status.success(),
            "`{verb}` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let child = d.start(&["run", "p.yaml"]);
    let count = || try_query(&format!("SELECT count() FROM {table}"));
    wait_for(Duration::from_secs(60), "the first rows", || {
        count().is_ok_and(|n| n.parse::<i64>().is_ok_and(|n| n >= 5_000))
    });
    ctl_run("kill");
    assert!(count().is_err(), "the server still answers after the kill");
    // The generator goes on into the disk channel meanwhile.
    std::thread::sleep(Duration::from_secs(1));
    ctl_run("start");
    let before_end = number(&format!("SELECT count() FROM {table}"));
    assert!(before_end < N, "the kill came after the end");
    let o = wait_output(child, LIMIT);
    ok(&o);
    // Nothing lost: every sequence number is there.
    assert_eq!(
        query(&format!(
            "SELECT uniqExact(message), min(toUInt64(message)), max(toUInt64(message)) FROM {table} FORMAT TSV"
        )),
        format!("{N}\t0\t{}", N - 1)
    );
    // Duplicates only from the insert in flight at the kill, whose answer
    // was lost: at most one batch.
    let rows = number(&format!("SELECT count() FROM {table}"));
    assert!((N..=N + 500).contains(&rows), "{rows} rows");
    query(&format!("DROP TABLE {table}"));
}

#[test]
fn rows_the_server_refuses_go_to_the_dead_letter_channel_and_the_rest_arrive_once() {
    let _one_at_a_time = server();
    let table = fresh_table("refused");
    let d = Dir::new();
    let mut input = String::new();
    for i in 0..1000 {
        if i % 100 == 7 {
            // Not a number: a UInt16 column cannot take it.
            input.push_str(&format!("{{\"n\":{i},\"status\":\"teapot\"}}\n"));
        } else {
            input.push_str(&format!("{{\"n\":{i},\"status\":{}}}\n", 200 + i % 3));
        }
    }
    d.write("logs/app.log", &input);
    d.write(
        "p.yaml",
        &format!(
            r#"sources:
  app:
    type: file
    include: [./logs/app.log]
    read_from: beginning
    follow: false
    batch_size: 1000
    processors: [json]
    channels: [main]
processors:
  json: {{type: parse_json}}
channels:
  main: {{type: memory}}
  bad: {{type: memory}}
sinks:
  ch:
    type: clickhouse
    channel: main
    dead_letter: bad
    url: ${{SLUICE_TEST_CLICKHOUSE_URL}}
    table: {table}
    batch_size: 1000
    columns: {{n: n, status: status, message: "@message"}}
    create_table: >-
      CREATE TABLE IF NOT EXISTS {table} (n UInt32, status UInt16, message String)
      ENGINE = MergeTree() ORDER BY n
  bad: {{type: file, channel: bad, path: ./out/bad.json, format: json}}
"#
        ),
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    assert_eq!(number(&format!("SELECT count() FROM {table}")), 990);
    // Each good row once: the bisection inserted nothing twice.
    assert_eq!(number(&format!("SELECT uniqExact(n) FROM {table}")), 990);
    assert_eq!(
        number(&format!("SELECT count() FROM {table} WHERE n % 100 = 7")),
        0
    );
    let bad = d.lines("out/bad.json");
    assert_eq!(bad.len(), 10, "{bad:?}");
    for l in &bad {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains("teapot")),
            "{l}"
        );
        assert_eq!(v["fields"]["component"], "ch");
        // The server's own reason, with its code.
        assert!(
            v["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("ClickHouse error ") && e.contains("status")),
            "{l}"
        );
    }
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["ch"]["events_out"].as_u64(), Some(990));
    query(&format!("DROP TABLE {table}"));
}

#[test]
fn a_wrong_password_or_a_missing_column_is_retried_with_the_servers_reason() {
    let _one_at_a_time = server();
    let table = fresh_table("auth");
    query(&format!(
        "CREATE TABLE {table} (timestamp DateTime, message String) ENGINE = MergeTree() ORDER BY timestamp"
    ));
    let d = Dir::new();
    let pipeline = |password: &str, columns: &str| {
        format!(
            r#"sources:
  gen: {{type: generator, count: 100, channels: [main]}}
channels:
  main: {{type: memory}}
sinks:
  ch:
    type: clickhouse
    channel: main
    url: ${{SLUICE_TEST_CLICKHOUSE_URL}}
    table: {table}
    user: sluice
    password: {password}
    columns: {columns}
"#
        )
    };
    for (password, columns, reason) in [
        (
            "wrong",
            "{timestamp: '@timestamp', message: '@message'}",
            "Wrong password",
        ),
        (
            "sluice-test",
            "{timestamp: '@timestamp', message: '@message', level: level}",
            "has no column `level`",
        ),
    ] {
        d.write("p.yaml", &pipeline(password, columns));
        let agent = Agent::start(&d, &["run", "p.yaml"]);
        // Retried, never rejected: nothing goes anywhere meanwhile.
        agent.wait_log(reason, 1);
        drop(agent); // killed
        assert_eq!(number(&format!("SELECT count() FROM {table}")), 0);
    }
    // Fixed: the same pipeline delivers.
    d.write(
        "p.yaml",
        &pipeline(
            "sluice-test",
            "{timestamp: '@timestamp', message: '@message'}",
        ),
    );
    ok(&d.run_logged(&["run", "p.yaml"]));
    assert_eq!(number(&format!("SELECT count() FROM {table}")), 100);
    query(&format!("DROP TABLE {table}"));
}

#[test]
fn the_local_clickhouse_tiered_demo_stores_every_line_once_over_two_shards() {
    let _broker = crate::kafka::broker_lock();
    let _one_at_a_time = server();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = Dir::new();
    let topic = format!("sluice_ch_demo_{}", std::process::id());
    let table = format!("logs_{topic}");
    let o = Command::new("bash")
        .arg(root.join("demos/clickhouse-tiered/run-local.sh"))
        .current_dir(d.path())
        .env("SLUICE_BIN", sluice_bin())
        .env("KAFKA_BROKERS", crate::kafka::brokers())
        .env("CLICKHOUSE_URL", url())
        .env("DEMO_EVENTS", "5000")
        .env("DEMO_DIR", d.path())
        .env("DEMO_TOPIC", &topic)
        .output()
        .expect("run-local.sh");
    assert!(
        o.status.success(),
        "run-local.sh failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    // Two edges of 5000 lines, each line once, typed columns filled.
    assert_eq!(
        query(&format!(
            "SELECT edge, count(), uniqExact(seq), min(seq), max(seq) FROM default.{table} \
             GROUP BY edge ORDER BY edge FORMAT TSV"
        )),
        "a\t5000\t5000\t0\t4999\nb\t5000\t5000\t0\t4999"
    );
    // Spread over both shards, each row in one of them.
    let shard1 = number(&format!("SELECT count() FROM shard1.{table}_local"));
    let shard2 = number(&format!("SELECT count() FROM shard2.{table}_local"));
    assert!(shard1 > 0 && shard2 > 0, "{shard1} + {shard2}");
    assert_eq!(shard1 + shard2, 10_000);
    for t in [
        format!("default.{table}"),
        format!("shard1.{table}_local"),
        format!("shard2.{table}_local"),
    ] {
        query(&format!("DROP TABLE {t}"));
    }
}
