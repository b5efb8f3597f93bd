//! The `elasticsearch` source and the API's `_search`, driven by the
//! official Elasticsearch Python client (`elasticsearch` 9.5.1 from PyPI,
//! installed by `scripts/services.sh up python`): a client nobody here
//! wrote bulk-indexes 100,000 documents, a body with bad items, a gzip
//! body and single documents, then searches them back;
//! `testdata/elasticsearch_client.py` says what it checks. Backpressure
//! (`429`) is checked with a plain HTTP client.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

const CLIENT_LIMIT: Duration = Duration::from_secs(600);

/// Where the pinned client is installed; fails (never skips) without it.
fn client_path() -> String {
    let path = std::env::var("SLUICE_TEST_ES_PYTHONPATH").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_ES_PYTHONPATH is not set: run `scripts/services.sh up python` and `eval \"$(scripts/services.sh env)\"`, or scripts/test.sh"
        )
    });
    assert!(
        std::path::Path::new(&path).join("elasticsearch").is_dir(),
        "no elasticsearch client in SLUICE_TEST_ES_PYTHONPATH={path}: run `scripts/services.sh up python`"
    );
    path
}

#[test]
fn the_official_python_client_bulk_indexes_and_searches_back() {
    let pythonpath = client_path();
    let d = Dir::new();
    d.write("token", "es-test-token\n");
    d.write(
        "p.yaml",
        r#"api:
  address: 127.0.0.1:0
  token: {file: ./token}
sources:
  es:
    type: elasticsearch
    address: 127.0.0.1:0
    token: {file: ./token}
    channels: [main]
channels:
  main: {type: memory, capacity: 20000}
sinks:
  store: {type: store, channel: main, path: ./store, batch_size: 5000}
"#,
    );
    let mut agent = Agent::start_json(&d, &["run", "p.yaml"]);
    let ingest = agent.listening("es");
    let api = agent.api_port();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/elasticsearch_client.py");
    let child = Command::new("python3")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{ingest}"))
        .arg(format!("http://127.0.0.1:{api}"))
        .arg("es-test-token")
        .env("PYTHONPATH", &pythonpath)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let o = wait_output(child, CLIENT_LIMIT);
    assert!(
        o.status.success(),
        "the client failed:\n{}{}\nagent log:\n{}",
        stdout(&o),
        stderr(&o),
        agent.log()
    );
    // The measurements, for whoever reads the test's output.
    eprintln!("{}", stdout(&o).trim());
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    let counts = final_counts(&log);
    // 100,000 documents, the two good ones of the raw body, ten of a gzip
    // body and three single ones; the raw body's five bad items count as
    // errors.
    assert_eq!(counts["es"]["events_out"].as_u64(), Some(100_015));
    assert_eq!(counts["es"]["errors"].as_u64(), Some(5));
    assert_eq!(counts["store"]["events_out"].as_u64(), Some(100_015));
}

#[test]
fn a_full_channel_is_answered_429_in_elasticsearch_shape_and_nothing_is_taken() {
    use crate::network::try_http_post_to;
    use std::net::TcpStream;
    let d = Dir::new();
    let dead = free_port();
    // The sink can never deliver (nothing listens at `dead`): the channel
    // fills and stays full.
    d.write(
        "p.yaml",
        &format!("sources:\n  es:\n    type: elasticsearch\n    address: 127.0.0.1:0\n    busy_timeout: 200ms\n    channels: [main]\nchannels:\n  main: {{type: memory, capacity: 20}}\nsinks:\n  out: {{type: sluice, channel: main, address: '127.0.0.1:{dead}', batch_size: 5}}\n"),
    );
    let mut agent = Agent::start_json(&d, &["run", "p.yaml", "--drain-timeout", "1s"]);
    let port = agent.listening("es");
    let body: String = (0..5)
        .map(|i| format!("{{\"index\":{{\"_index\":\"a\"}}}}\n{{\"message\":\"m{i}\"}}\n"))
        .collect();
    let (mut accepted, mut busy) = (0, None);
    let mut waiting = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        match try_http_post_to(&mut s, "/_bulk", &[], body.as_bytes()) {
            Some((200, _, b)) => {
                assert!(b.contains("\"errors\":false"), "{b}");
                accepted += 1;
            }
            Some((429, headers, b)) => {
                busy = Some((headers, b));
                break;
            }
            Some((other, _, b)) => panic!("unexpected status {other}: {b}"),
            None => waiting.push(s),
        }
    }
    let (headers, b) = busy.expect("a 429 once the channel is full");
    assert!(
        accepted > 0,
        "nothing was accepted before the channel filled"
    );
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-elastic-product"), Some("Elasticsearch"));
    assert_eq!(header("retry-after"), Some("1"));
    let v: serde_json::Value = serde_json::from_str(&b).expect("JSON");
    assert_eq!(v["status"], 429);
    assert_eq!(v["error"]["type"], "es_rejected_execution_exception");
    assert!(v["error"]["root_cause"][0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("busy_timeout")));
    assert!(
        waiting.is_empty(),
        "{} requests left waiting past busy_timeout",
        waiting.len()
    );
    // The stop cannot drain the stuck channel: it ends at the drain
    // timeout, still counting what came in.
    let (status, log) = agent.stop();
    assert_eq!(status.code(), Some(1), "{log}");
    // What went in is what was answered 200: five events per request.
    let counts = final_counts(&log);
    assert_eq!(counts["es"]["events_out"].as_u64(), Some(accepted * 5));
}

#[test]
fn bodies_beyond_max_buffered_bytes_are_answered_429_until_room_is_given_back() {
    use crate::network::try_http_post_to;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    let d = Dir::new();
    d.write(
        "p.yaml",
        "api:\n  address: 127.0.0.1:0\nsources:\n  es:\n    type: elasticsearch\n    address: 127.0.0.1:0\n    max_body_bytes: 1MiB\n    max_buffered_bytes: 1MiB\n    header_timeout: 1s\n    busy_timeout: 30s\n    channels: [main]\nchannels:\n  main: {type: memory, capacity: 1000}\nsinks:\n  out: {type: file, channel: main, path: ./out/o.log, format: json}\n",
    );
    let mut agent = Agent::start_json(&d, &["run", "p.yaml"]);
    let (port, api) = (agent.listening("es"), agent.api_port());
    let url = format!("http://127.0.0.1:{api}");
    let doc = |i: usize| format!("{{\"index\":{{}}}}\n{{\"message\":\"slow {i:06}\"}}\n");
    // A slow client declares 900 KiB and sends it a piece at a time, never
    // pausing as long as header_timeout: its declared length is held.
    let slow_body: String = (0..900 * 1024 / doc(0).len()).map(doc).collect();
    let slow_events = 900 * 1024 / doc(0).len();
    let slow_len = slow_body.len();
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(
        format!(
            "POST /logs/_bulk HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            slow_body.len()
        )
        .as_bytes(),
    )
    .expect("head");
    let trickle = std::thread::spawn(move || {
        for piece in slow_body.as_bytes().chunks(slow_body.len() / 10 + 1) {
            slow.write_all(piece).expect("piece");
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut line = String::new();
        BufReader::new(slow).read_line(&mut line).expect("status");
        line
    });
    wait_for(
        Duration::from_secs(30),
        "the slow body's length held",
        || {
            crate::listeners::metric(&url, "sluice_component_buffered_bytes", "\"es\"")
                == Some(slow_len as f64)
        },
    );
    let other: String = (0..2000)
        .map(|i| format!("{{\"index\":{{}}}}\n{{\"message\":\"other {i:0100}\"}}\n"))
        .collect();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (status, headers, b) =
        try_http_post_to(&mut s, "/logs/_bulk", &[], other.as_bytes()).expect("an answer");
    assert_eq!(status, 429, "{b}");
    assert!(headers.iter().any(|(k, v)| k == "retry-after" && v == "1"));
    let v: serde_json::Value = serde_json::from_str(&b).expect("JSON");
    assert_eq!(v["error"]["type"], "es_rejected_execution_exception");
    let line = trickle.join().expect("slow client");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (status, _, b) =
        try_http_post_to(&mut s, "/logs/_bulk", &[], other.as_bytes()).expect("an answer");
    assert_eq!(status, 200, "{}", &b[..b.len().min(500)]);
    assert!(b.contains("\"errors\":false"), "{}", &b[..b.len().min(500)]);
    let want = slow_events + 2000;
    wait_for(Duration::from_secs(60), "both bodies in the file", || {
        d.lines("out/o.log").len() >= want
    });
    let o = agent.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.lines("out/o.log").len(), want);
}
