//! Hostile clients against the real agent's listeners: connection floods past
//! `max_connections`, silent connections, half-sent HTTP headers, and the
//! API's token and TLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::network::{make_certs, tls_connect};
use crate::operations::get;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(30);

/// Whether the server has closed `s`: a read gives end of stream or a reset.
/// `None` while it is open and has sent nothing.
fn closed(mut s: &TcpStream) -> Option<bool> {
    s.set_nonblocking(true).expect("nonblocking");
    let mut b = [0u8; 64];
    let r = match s.read(&mut b) {
        Ok(0) => Some(true),
        Ok(_) => Some(false),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(_) => Some(true),
    };
    s.set_nonblocking(false).expect("blocking");
    r
}

/// The value of the first sample of `metric` whose line contains `label`.
pub fn metric(url: &str, metric: &str, label: &str) -> Option<f64> {
    let (_, text) = get(url, "/metrics")?;
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn connections_past_the_cap_are_closed_and_silent_ones_time_out_while_health_answers() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "api:\n  address: 0.0.0.0:0\nsources:\n  in:\n    type: tcp\n    address: 127.0.0.1:0\n    max_connections: 20\n    idle_timeout: 2s\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/o.log}\n",
    );
    let mut agent = Agent::start(&d, &["run", "p.yaml"]);
    let (port, api) = (agent.listening("in"), agent.api_port());
    let url = format!("http://127.0.0.1:{api}");
    wait_for(WAIT, "the API", || get(&url, "/health").is_some());
    // Other hosts can reach this API and it has no token: said loudly.
    assert!(
        agent.log().contains("WARN") && agent.log().contains("has no token"),
        "{}",
        agent.log()
    );

    let started = Instant::now();
    let socks: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    // The 30 past the cap are closed at once; the 20 first stay open.
    wait_for(WAIT, "30 connections closed", || {
        socks.iter().filter_map(closed).count() == 30
    });
    let open = socks.iter().filter(|s| closed(s).is_none()).count();
    assert_eq!(open, 20);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refusals took {:?}",
        started.elapsed()
    );
    let (status, _) = get(&url, "/health").expect("health at the cap");
    assert_eq!(status, 200);
    assert_eq!(
        metric(&url, "sluice_component_connections_refused", "\"in\""),
        Some(30.0)
    );
    assert_eq!(
        metric(&url, "sluice_component_connections{", "\"in\""),
        Some(20.0)
    );
    // One rate-limited line for the burst, not one per connection.
    let refusals = agent.log().matches("max_connections reached").count();
    assert!(
        (1..=3).contains(&refusals),
        "{refusals} lines:\n{}",
        agent.log()
    );

    // The idle ones are closed by the idle timeout...
    wait_for(WAIT, "the idle connections to be closed", || {
        socks.iter().all(|s| closed(s).is_some())
    });
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert_eq!(
        metric(&url, "sluice_component_connections{", "\"in\""),
        Some(0.0)
    );
    // ...and a normal client is served again, its last line kept.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"hello\nworld").expect("send");
    drop(s);
    wait_for(WAIT, "the client's lines", || {
        d.lines("out/o.log").len() == 2
    });
    assert_eq!(d.lines("out/o.log"), ["hello", "world"]);
    assert_eq!(get(&url, "/health").expect("health").0, 200);
    agent.stop_ok();
}

/// Sends the start of a request and waits for the server to close; returns
/// how long that took.
fn half_header_dropped_after(port: u16) -> Duration {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Le")
        .expect("send");
    let sent = Instant::now();
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut rest = Vec::new();
    // The server closes (with a 408 or without a word); the read ends.
    let _ = s.read_to_end(&mut rest);
    let took = sent.elapsed();
    assert!(took < WAIT, "still open after {took:?}");
    took
}

#[test]
fn half_sent_headers_are_dropped_after_the_header_timeout() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "api:\n  address: 127.0.0.1:0\n  header_timeout: 1s\nsources:\n  in:\n    type: http\n    address: 127.0.0.1:0\n    header_timeout: 1s\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/o.log}\n",
    );
    let mut agent = Agent::start(&d, &["run", "p.yaml"]);
    let (port, api) = (agent.listening("in"), agent.api_port());
    let url = format!("http://127.0.0.1:{api}");
    wait_for(WAIT, "the API", || get(&url, "/health").is_some());
    wait_for(WAIT, "the source", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    for p in [port, api] {
        let took = half_header_dropped_after(p);
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "port {p}: closed after {took:?}"
        );
    }
    // A whole request is still served.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (status, _, _) = crate::network::http_post(&mut s, &[], b"one\n");
    assert_eq!(status, 200);
    agent.stop_ok();
}

/// `GET path` over `s` with `auth` as the Authorization header: the status
/// and the body.
fn https_get<S: Read + Write>(s: &mut S, path: &str, auth: Option<&str>) -> (u16, String) {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    // rustls reports a close without close_notify as an error: keep what came.
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn the_api_wants_its_token_for_events_and_speaks_tls() {
    let d = Dir::new();
    make_certs(&d);
    d.write("api-token", "t0ken\n");
    d.write(
        "p.yaml",
        "api:\n  address: 127.0.0.1:0\n  token: {file: ./api-token}\n  tls: {cert: ./server.pem, key: ./server.key}\nsources:\n  gen: {type: generator, rate: 200, channels: [main]}\nchannels:\n  main: {type: memory}\nsinks:\n  idx: {type: store, channel: main, path: ./idx}\n",
    );
    // A mistyped option is refused before anything runs.
    d.write(
        "typo.yaml",
        &std::fs::read_to_string(d.join("p.yaml"))
            .expect("read")
            .replace("  token:", "  tokn:"),
    );
    let o = d.run(&["validate", "typo.yaml"], WAIT);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("did you mean `token`"),
        "{}",
        stderr(&o)
    );

    let mut agent = Agent::start(&d, &["run", "p.yaml"]);
    let api = agent.api_port();
    let ready = || {
        TcpStream::connect(("127.0.0.1", api)).is_ok()
            && https_get(&mut tls_connect(&d, api, None), "/health", None).0 == 200
    };
    wait_for(WAIT, "the API over TLS", ready);
    // Plain HTTP gets no answer from the TLS port, and the agent says why.
    assert!(get(&format!("http://127.0.0.1:{api}"), "/health").is_none_or(|(s, _)| s != 200));
    agent.wait_log("TLS handshake failed", 1);

    let ask =
        |path: &str, auth: Option<&str>| https_get(&mut tls_connect(&d, api, None), path, auth);
    // Probes and scrapers need no token.
    assert_eq!(ask("/health", None).0, 200);
    assert_eq!(ask("/metrics", None).0, 200);
    assert_eq!(ask("/", None).0, 200);
    // Events do.
    for path in [
        "/api/tap/gen?limit=1",
        "/search?q=*&limit=1",
        "/api/components",
    ] {
        for auth in [None, Some("Bearer wrong"), Some("Basic t0ken")] {
            assert_eq!(ask(path, auth).0, 401, "{path} with {auth:?}");
        }
    }
    for auth in ["Bearer t0ken", "bearer t0ken", "BEARER t0ken"] {
        let (status, body) = ask("/api/tap/gen?limit=1", Some(auth));
        assert_eq!(status, 200, "{auth}: {body}");
        assert!(body.contains("\"message\""), "{body}");
        let (status, body) = ask("/search?q=*&limit=1", Some(auth));
        assert_eq!(status, 200, "{auth}: {body}");
        assert!(body.contains("\"total\""), "{body}");
    }
    agent.stop_ok();
}

#[test]
fn the_dashboard_asks_for_the_token_and_works_with_it() {
    let d = Dir::new();
    d.write("api-token", "t0ken\n");
    d.write(
        "p.yaml",
        "api:\n  address: 127.0.0.1:0\n  token: {file: ./api-token}\nsources:\n  gen: {type: generator, rate: 100, channels: [main]}\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: \"null\", channel: main}\n",
    );
    let mut agent = Agent::start(&d, &["run", "p.yaml"]);
    let url = format!("http://127.0.0.1:{}", agent.api_port());
    wait_for(WAIT, "the API", || get(&url, "/health").is_some());
    // Without the token the page shows no data and asks for it.
    let dom = crate::operations::dump_dom(&format!("{url}/"));
    assert!(dom.contains(">token needed<"), "{dom}");
    assert!(
        dom.contains("<form id=\"login\">"),
        "the form is shown:\n{dom}"
    );
    assert!(!dom.contains("data-node=\"c:gen\""), "{dom}");
    // Given the token (a fragment: never sent to the server), it polls.
    let dom = crate::operations::dump_dom(&format!("{url}/#token=t0ken"));
    assert!(dom.contains("data-node=\"c:gen\""), "{dom}");
    assert!(dom.contains("<form id=\"login\" hidden"), "{dom}");
    agent.stop_ok();
}

#[test]
fn a_hop_connection_closed_for_idleness_is_reopened_without_a_failed_write() {
    let d = Dir::new();
    d.write(
        "agg.yaml",
        "data_dir: ./state/agg\napi:\n  address: 127.0.0.1:0\nsources:\n  edge:\n    type: sluice\n    address: 127.0.0.1:0\n    idle_timeout: 1s\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/agg.log}\n",
    );
    let mut agg = Agent::start(&d, &["run", "agg.yaml"]);
    let (hop, api) = (agg.listening("edge"), agg.api_port());
    let url = format!("http://127.0.0.1:{api}");
    wait_for(WAIT, "the aggregator", || get(&url, "/health").is_some());
    d.write(
        "edge.yaml",
        &format!("data_dir: ./state/edge\nsources:\n  in: {{type: tcp, address: 127.0.0.1:0, channels: [main]}}\nchannels:\n  main: {{type: memory}}\nsinks:\n  up: {{type: sluice, channel: main, address: '127.0.0.1:{hop}'}}\n"),
    );
    let mut edge = Agent::start(&d, &["run", "edge.yaml"]);
    let edge_in = edge.listening("in");
    let open = || metric(&url, "sluice_component_connections{", "\"edge\"");
    let send = |text: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", edge_in)).expect("connect");
        s.write_all(text.as_bytes()).expect("send");
    };
    send("1\n2\n");
    wait_for(WAIT, "the first lines", || {
        d.lines("out/agg.log").len() == 2
    });
    assert_eq!(open(), Some(1.0));
    // The frame's bytes went back to max_buffered_bytes once delivered.
    wait_for(WAIT, "the frame budget given back", || {
        metric(&url, "sluice_component_buffered_bytes", "\"edge\"") == Some(0.0)
    });
    // The edge's kept connection goes silent and the aggregator closes it.
    wait_for(WAIT, "the idle hop connection to close", || {
        open() == Some(0.0)
    });
    send("3\n4\n");
    wait_for(WAIT, "the later lines", || {
        d.lines("out/agg.log").len() == 4
    });
    assert_eq!(d.lines("out/agg.log"), ["1", "2", "3", "4"]);
    assert!(!edge.log().contains("write failed"), "{}", edge.log());
    edge.stop_ok();
    agg.stop_ok();
}

#[test]
fn at_a_low_open_file_limit_the_caps_keep_health_and_files_working() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "api:\n  address: 127.0.0.1:0\nsources:\n  in:\n    type: tcp\n    address: 127.0.0.1:0\n    max_connections: 64\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/o.log}\n",
    );
    // 256 descriptors in all (soft and hard): fewer than the flood below.
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "ulimit -n 256 && exec \"$0\" run p.yaml"])
        .arg(sluice_bin())
        .current_dir(d.path())
        .env_remove("RUST_LOG");
    let mut agent = Agent::spawn(command);
    let (port, api) = (agent.listening("in"), agent.api_port());
    let url = format!("http://127.0.0.1:{api}");
    wait_for(WAIT, "the API", || get(&url, "/health").is_some());
    // The caps (64 + the API's 128) and the descriptors kept for the
    // agent's own files do not fit in 256: said at start.
    assert!(
        agent.log().contains("near the open-file limit"),
        "{}",
        agent.log()
    );
    let flood: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    wait_for(WAIT, "236 connections refused", || {
        metric(&url, "sluice_component_connections_refused", "\"in\"") == Some(236.0)
    });
    assert_eq!(get(&url, "/health").expect("health at the limit").0, 200);
    // An admitted sender is served and the sink writes its file.
    let mut first = &flood[0];
    first.write_all(b"still here\n").expect("send");
    wait_for(WAIT, "the line in the file", || {
        d.lines("out/o.log") == ["still here"]
    });
    drop(flood);
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("accept failed"), "{log}");
}
