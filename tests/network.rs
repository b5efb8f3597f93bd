//! The network sources with the real binary on real sockets: `tcp`, `udp`,
//! `syslog`, `http` and `exec`, with TLS and tokens. Helpers here are shared
//! with `hop.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use crate::util::*;

/// The size `0\n1\n...(n-1)\n` takes.
pub fn sequence_bytes(n: usize) -> u64 {
    (0..n).map(|i| i.to_string().len() as u64 + 1).sum()
}

/// Waits until the file holds `bytes` bytes (cheaper than counting lines).
pub fn wait_size(path: &Path, bytes: u64, what: &str) {
    wait_for(Duration::from_secs(120), what, || {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) >= bytes
    });
}

/// `from..to` as lines.
pub fn lines_text(from: usize, to: usize) -> String {
    let mut s = String::with_capacity((to - from) * 8);
    for i in from..to {
        s.push_str(&i.to_string());
        s.push('\n');
    }
    s
}

/// An HTTP answer: status, headers (lower-case names), body.
pub type Answer = (u16, Vec<(String, String)>, String);

/// A minimal HTTP/1.1 client: sends one request on `stream`, returns the
/// status, the headers (lower-case names) and the body.
pub fn http_post<S: Read + Write>(stream: &mut S, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    try_http_post(stream, headers, body).expect("an answer")
}

/// [`http_post`], `None` when the answer does not come (a read timeout).
pub fn try_http_post<S: Read + Write>(
    stream: &mut S,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    try_http_post_to(stream, "/events", headers, body)
}

/// [`try_http_post`] to `path`.
pub fn try_http_post_to<S: Read + Write>(
    stream: &mut S,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("send head");
    // A server may answer (413, 401) and close without reading the body.
    let _ = stream.write_all(body).and_then(|_| stream.flush());
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut hs = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            hs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = hs
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut b = vec![0; len];
    r.read_exact(&mut b).expect("body");
    Some((status, hs, String::from_utf8_lossy(&b).into_owned()))
}

/// A CA, a server certificate for `localhost`/127.0.0.1 and a client
/// certificate, written as PEM files into `dir`: `ca.pem`, `server.pem`,
/// `server.key`, `client.pem`, `client.key`; and a second, untrusted CA
/// with its own client certificate: `other-client.pem`, `other-client.key`.
pub fn make_certs(d: &Dir) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).expect("ca");
        (cert, key)
    };
    let leaf =
        |names: Vec<String>, usage: ExtendedKeyUsagePurpose, ca: &(rcgen::Certificate, KeyPair)| {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(names).expect("params");
            p.extended_key_usages = vec![usage];
            let cert = p.signed_by(&key, &ca.0, &ca.1).expect("sign");
            (cert.pem(), key.serialize_pem())
        };
    let trusted = ca("sluice test ca");
    let other = ca("someone else");
    d.write("ca.pem", &trusted.0.pem());
    let (c, k) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        &trusted,
    );
    d.write("server.pem", &c);
    d.write("server.key", &k);
    let (c, k) = leaf(
        vec!["edge".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        &trusted,
    );
    d.write("client.pem", &c);
    d.write("client.key", &k);
    let (c, k) = leaf(
        vec!["intruder".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        &other,
    );
    d.write("other-client.pem", &c);
    d.write("other-client.key", &k);
}

/// A TLS client connection to 127.0.0.1:`port` trusting `ca.pem`, with the
/// client certificate `name` (`client`, `other-client`) when given.
pub fn tls_connect(
    d: &Dir,
    port: u16,
    client: Option<&str>,
) -> tokio_rustls::rustls::StreamOwned<tokio_rustls::rustls::ClientConnection, TcpStream> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(d.join("ca.pem")).expect("ca") {
        roots.add(c.expect("cert")).expect("add");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(name) => {
            let certs: Vec<_> = CertificateDer::pem_file_iter(d.join(&format!("{name}.pem")))
                .expect("cert")
                .map(|c| c.expect("cert"))
                .collect();
            let key = PrivateKeyDer::from_pem_file(d.join(&format!("{name}.key"))).expect("key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    let conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from("localhost").expect("name"),
    )
    .expect("client");
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    rustls::StreamOwned::new(conn, tcp)
}

fn file_pipeline(source: &str, format: &str) -> String {
    format!("sources:\n  in:\n{source}    channels: [main]\nchannels:\n  main: {{type: memory, capacity: 5000}}\nsinks:\n  out: {{type: file, channel: main, path: ./out/o.log, format: {format}}}\n")
}

#[test]
fn half_a_million_lines_over_tcp_arrive_exactly_once_in_order() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        &file_pipeline(
            "    type: tcp\n    address: 127.0.0.1:0\n    max_line_bytes: 100\n",
            "text",
        ),
    );
    let mut child = Agent::start_json(&d, &["run", "p.yaml"]);
    let port = child.listening("in");
    let n = 500_000;
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let text = lines_text(0, n);
    // One over-long line in the middle: skipped and counted, the rest intact.
    let mid = text.find("250000\n").expect("middle");
    s.write_all(&text.as_bytes()[..mid]).expect("send");
    s.write_all(format!("{}\n", "x".repeat(150)).as_bytes())
        .expect("send");
    s.write_all(&text.as_bytes()[mid..]).expect("send");
    drop(s);
    wait_size(
        &d.join("out/o.log"),
        sequence_bytes(n),
        "every line in the file",
    );
    let o = child.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_sequence(&d.lines("out/o.log"), n);
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["in"]["events_out"].as_u64(), Some(n as u64));
    assert_eq!(
        counts["in"]["errors"].as_u64(),
        Some(1),
        "the long line is counted"
    );
    assert!(
        stderr(&o).contains("longer than max_line_bytes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn tcp_octet_counting_and_several_connections() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        &file_pipeline(
            "    type: tcp\n    address: 127.0.0.1:0\n    framing: octet_counted\n",
            "text",
        ),
    );
    let mut child = Agent::start_json(&d, &["run", "p.yaml"]);
    let port = child.listening("in");
    let mut expected = Vec::new();
    let senders: Vec<_> = (0..4)
        .map(|c| {
            let mut frames = String::new();
            for i in 0..5000 {
                let msg = format!("c{c} m{i}");
                frames.push_str(&format!("{} {msg}", msg.len()));
                expected.push(msg);
            }
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.write_all(frames.as_bytes()).expect("send");
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    wait_for(Duration::from_secs(60), "20000 lines", || {
        d.lines("out/o.log").len() >= 20_000
    });
    let o = child.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut got = d.lines("out/o.log");
    // Each connection's messages keep their order.
    for c in 0..4 {
        let mine: Vec<&String> = got
            .iter()
            .filter(|l| l.starts_with(&format!("c{c} ")))
            .collect();
        let want: Vec<String> = (0..5000).map(|i| format!("c{c} m{i}")).collect();
        assert!(mine.iter().zip(&want).all(|(a, b)| *a == b) && mine.len() == 5000);
    }
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn half_a_million_lines_over_http_and_every_answer() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        &file_pipeline(
            "    type: http\n    address: 127.0.0.1:0\n    path: /events\n    max_body_bytes: 1MiB\n",
            "json",
        ),
    );
    let mut child = Agent::start_json(&d, &["run", "p.yaml"]);
    let port = child.listening("in");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let n = 500_000;
    let per = 20_000;
    for start in (0..n).step_by(per) {
        let (status, _, body) = http_post(
            &mut s,
            &[("Content-Type", "text/plain")],
            lines_text(start, start + per).as_bytes(),
        );
        assert_eq!(
            (status, body.trim()),
            (200, format!("{per} events").as_str())
        );
    }
    // NDJSON: members become fields.
    let (status, _, _) = http_post(
        &mut s,
        &[("Content-Type", "application/x-ndjson")],
        b"{\"user\":\"ann\",\"n\":1}\n{\"user\":\"bob\",\"n\":2,\"tags\":[\"a\"]}\n",
    );
    assert_eq!(status, 200);
    // A JSON array.
    let (status, _, _) = http_post(
        &mut s,
        &[("Content-Type", "application/json")],
        b"[{\"user\":\"cy\",\"n\":3}]",
    );
    assert_eq!(status, 200);
    // Malformed: 400 with the line at fault; nothing of it is ingested.
    let (status, _, body) = http_post(
        &mut s,
        &[("Content-Type", "application/x-ndjson")],
        b"{\"user\":\"never\"}\n{broken\n",
    );
    assert_eq!(status, 400);
    assert!(body.contains("line 2: invalid JSON"), "{body}");
    let (status, _, body) = http_post(&mut s, &[("Content-Type", "application/json")], b"[1, 2]");
    assert_eq!(status, 400, "{body}");
    // Too large: 413 (declared length over the limit).
    let big = vec![b'x'; (1 << 20) + 1];
    let mut s2 = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (status, _, _) = http_post(&mut s2, &[], &big);
    assert_eq!(status, 413);
    let expected_lines = n + 3;
    wait_for(Duration::from_secs(120), "every event in the file", || {
        std::fs::metadata(d.join("out/o.log"))
            .map(|m| m.len())
            .unwrap_or(0)
            > 0
            && d.lines("out/o.log").len() >= expected_lines
    });
    let o = child.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = d.lines("out/o.log");
    assert_eq!(lines.len(), expected_lines);
    for (i, l) in lines[..n].iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        assert_eq!(v["message"].as_str(), Some(i.to_string().as_str()));
    }
    let users: Vec<serde_json::Value> = lines[n..]
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["fields"].clone())
        .collect();
    assert_eq!(users[0]["user"], "ann");
    assert_eq!(users[1]["tags"][0], "a");
    assert_eq!(users[2]["n"], 3);
    assert!(!d.lines("out/o.log").iter().any(|l| l.contains("never")));
    let counts = final_counts(&stderr(&o));
    assert_eq!(
        counts["in"]["events_out"].as_u64(),
        Some(expected_lines as u64)
    );
}

#[test]
fn http_answers_503_with_retry_after_while_the_channel_is_full() {
    let d = Dir::new();
    let dead = free_port();
    // The sink can never deliver (nothing listens at `dead`): the channel
    // fills and stays full.
    d.write(
        "p.yaml",
        &format!("sources:\n  in:\n    type: http\n    address: 127.0.0.1:0\n    busy_timeout: 200ms\n    channels: [main]\nchannels:\n  main: {{type: memory, capacity: 20}}\nsinks:\n  out: {{type: sluice, channel: main, address: '127.0.0.1:{dead}', batch_size: 5}}\n"),
    );
    let mut child = Agent::start_json(&d, &["run", "p.yaml"]);
    let port = child.listening("in");
    let mut accepted = 0;
    let mut busy = None;
    // Once the channel is full, every request is answered within
    // busy_timeout: the one whose batch is being put into the full channel
    // too (it used to wait for room for as long as the sink was down).
    let mut waiting = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        match try_http_post(&mut s, &[], b"a\nb\nc\nd\ne\n") {
            Some((200, _, _)) => accepted += 1,
            Some((503, headers, _)) => {
                busy = Some(headers);
                break;
            }
            Some((other, _, _)) => panic!("unexpected status {other}"),
            None => waiting.push(s),
        }
    }
    assert!(
        waiting.is_empty(),
        "{} requests left waiting",
        waiting.len()
    );
    let headers = busy.expect("a 503 once the channel is full");
    assert!(
        headers.iter().any(|(k, v)| k == "retry-after" && v == "1"),
        "{headers:?}"
    );
    assert!(
        accepted >= 4,
        "{accepted} requests accepted before the channel filled"
    );
    child.kill9();
}

#[test]
fn http_bodies_in_flight_share_max_buffered_bytes() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        &format!("api:\n  address: 127.0.0.1:0\n{}", file_pipeline(
            "    type: http\n    address: 127.0.0.1:0\n    path: /events\n    max_body_bytes: 1MiB\n    max_buffered_bytes: 1MiB\n    header_timeout: 1s\n    busy_timeout: 30s\n",
            "text",
        )),
    );
    let mut child = Agent::start_json(&d, &["run", "p.yaml"]);
    let (port, api) = (child.listening("in"), child.api_port());
    let url = format!("http://127.0.0.1:{api}");
    // A slow client: 900 KiB of its body at once, then the rest a byte at a
    // time, never pausing as long as header_timeout.
    let head_part = "a\n".repeat(450 * 1024);
    let tail = "b\n".repeat(10);
    let total = head_part.len() + tail.len();
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(
        format!("POST /events HTTP/1.1\r\nHost: test\r\nContent-Length: {total}\r\n\r\n")
            .as_bytes(),
    )
    .expect("head");
    slow.write_all(head_part.as_bytes()).expect("body");
    let trickle = std::thread::spawn(move || {
        for b in tail.bytes() {
            std::thread::sleep(Duration::from_millis(150));
            slow.write_all(&[b]).expect("trickle");
        }
        let mut r = BufReader::new(slow);
        let mut line = String::new();
        r.read_line(&mut line).expect("status");
        line
    });
    wait_for(
        Duration::from_secs(30),
        "the slow body's length held",
        || {
            crate::listeners::metric(&url, "sluice_component_buffered_bytes", "\"in\"")
                == Some(total as f64)
        },
    );
    // Another body does not fit beside it: 503 with Retry-After once
    // header_timeout has passed, rather than memory for both.
    let other = "c\n".repeat(100 * 1024);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (status, headers, body) = http_post(&mut s, &[], other.as_bytes());
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_buffered_bytes"), "{body}");
    assert!(
        headers.iter().any(|(k, v)| k == "retry-after" && v == "1"),
        "{headers:?}"
    );
    // The slow body completes; its room is given back and the retry fits.
    let line = trickle.join().expect("slow client");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (status, _, body) = http_post(&mut s, &[], other.as_bytes());
    assert_eq!(status, 200, "{body}");
    let want = 450 * 1024 + 10 + 100 * 1024;
    wait_for(Duration::from_secs(60), "both bodies in the file", || {
        d.lines("out/o.log").len() >= want
    });
    // Every reserved byte is given back.
    wait_for(Duration::from_secs(30), "the budget given back", || {
        crate::listeners::metric(&url, "sluice_component_buffered_bytes", "\"in\"") == Some(0.0)
    });
    let o = child.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = d.lines("out/o.log");
    assert_eq!(lines.len(), want);
    assert_eq!(lines.iter().filter(|l| *l == "b").count(), 10);
    assert_eq!(lines.iter().filter(|l| *l == "c").count(), 100 * 1024);
}

#[test]
fn http_and_tcp_with_tls_tokens_and_client_certificates() {
    let d = Dir::new();
    make_certs(&d);
    d.write("token", "s3cret-token\n");
    d.write(
        "p.yaml",
        "sources:\n  web:\n    type: http\n    address: 127.0.0.1:0\n    token: {file: ./token}\n    tls: {cert: ./server.pem, key: ./server.key}\n    channels: [main]\n  raw:\n    type: tcp\n    address: 127.0.0.1:0\n    tls: {cert: ./server.pem, key: ./server.key, ca: ./ca.pem}\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/o.log}\n",
    );
    let mut child = Agent::start_json(&d, &["run", "p.yaml"]);
    let (http_port, tcp_port) = (child.listening("web"), child.listening("raw"));
    let mut s = tls_connect(&d, http_port, None);
    let (status, headers, _) = http_post(&mut s, &[("Authorization", "Bearer wrong")], b"nope-1\n");
    assert_eq!(status, 401);
    assert!(headers.iter().any(|(k, _)| k == "www-authenticate"));
    // A refused request's body is not read: the server closes the connection.
    let mut s = tls_connect(&d, http_port, None);
    let (status, _, _) = http_post(&mut s, &[], b"nope-2\n");
    assert_eq!(status, 401);
    let mut s = tls_connect(&d, http_port, None);
    let (status, _, _) = http_post(
        &mut s,
        &[("Authorization", "Bearer s3cret-token")],
        b"web-ok\n",
    );
    assert_eq!(status, 200);
    // TCP with client certificates required: a trusted one gets in.
    let mut t = tls_connect(&d, tcp_port, Some("client"));
    t.write_all(b"tcp-ok\n").expect("send");
    t.flush().expect("flush");
    t.conn.send_close_notify();
    let _ = t.flush();
    drop(t);
    // No certificate, or one from another CA: the handshake fails.
    for who in [None, Some("other-client")] {
        let mut t = tls_connect(&d, tcp_port, who);
        let _ = t.write_all(b"nope-3\n");
        let _ = t.flush();
        let mut buf = [0u8; 16];
        assert!(
            t.read(&mut buf).is_err() || t.read(&mut buf).ok() == Some(0),
            "{who:?} accepted"
        );
    }
    wait_for(Duration::from_secs(30), "two lines", || {
        d.lines("out/o.log").len() >= 2
    });
    let o = child.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut lines = d.lines("out/o.log");
    lines.sort();
    assert_eq!(lines, ["tcp-ok", "web-ok"]);
    assert!(
        !stderr(&o).contains("s3cret-token"),
        "the token is never logged"
    );
}

#[test]
fn syslog_of_both_rfcs_over_tcp_and_udp_becomes_fields() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  st:\n    type: syslog\n    address: 127.0.0.1:0\n    channels: [main]\n  su:\n    type: syslog\n    mode: udp\n    address: 127.0.0.1:0\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/o.json, format: json}\n",
    );
    let mut child = Agent::start_json(&d, &["run", "p.yaml"]);
    let (tcp, udp) = (child.listening("st"), child.listening("su"));
    let rfc5424 = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event"#;
    let rfc3164 = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8";
    let mut s = TcpStream::connect(("127.0.0.1", tcp)).expect("connect");
    // One line-framed, one octet-counted, on the same connection.
    s.write_all(format!("{rfc3164}\n{} {rfc5424}", rfc5424.len()).as_bytes())
        .expect("send");
    drop(s);
    let u = UdpSocket::bind("127.0.0.1:0").expect("udp");
    u.send_to(format!("{rfc5424}\n").as_bytes(), ("127.0.0.1", udp))
        .expect("send");
    u.send_to(b"not syslog at all", ("127.0.0.1", udp))
        .expect("send");
    wait_for(Duration::from_secs(30), "four events", || {
        d.lines("out/o.json").len() >= 4
    });
    let o = child.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    let events: Vec<serde_json::Value> = d
        .lines("out/o.json")
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let find = |app: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["fields"]["appname"] == app)
            .collect()
    };
    let new = find("evntslog");
    assert_eq!(new.len(), 2, "one over TCP, one over UDP");
    for e in new {
        let f = &e["fields"];
        assert_eq!(f["facility"], "local4");
        assert_eq!(f["severity"], "notice");
        assert_eq!(f["hostname"], "mymachine.example.com");
        assert_eq!(f["procid"], "42");
        assert_eq!(f["msgid"], "ID47");
        assert_eq!(f["version"], 1);
        assert_eq!(
            f["structured_data"]["exampleSDID@32473"]["eventSource"],
            "Application"
        );
        assert_eq!(f["message"], "An application event");
        assert_eq!(e["timestamp"], "2003-10-11T22:14:15.003000Z");
    }
    let old = find("su");
    assert_eq!(old.len(), 1);
    let f = &old[0]["fields"];
    assert_eq!(
        (f["facility"].as_str(), f["severity"].as_str()),
        (Some("auth"), Some("crit"))
    );
    assert_eq!(f["hostname"], "mymachine");
    assert_eq!(f["message"], "'su root' failed for lonvick on /dev/pts/8");
    assert!(old[0]["timestamp"]
        .as_str()
        .is_some_and(|t| t.contains("-10-11T22:14:15")));
    // Not syslog: kept with its body, counted as an error.
    assert!(events.iter().any(|e| e["message"] == "not syslog at all"
        && e["fields"].as_object().is_none_or(|m| m.is_empty())));
    assert_eq!(final_counts(&stderr(&o))["su"]["errors"].as_u64(), Some(1));
}

#[test]
fn udp_datagrams_of_lines() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        &file_pipeline("    type: udp\n    address: 127.0.0.1:0\n", "text"),
    );
    let mut child = Agent::start_json(&d, &["run", "p.yaml"]);
    let port = child.listening("in");
    let u = UdpSocket::bind("127.0.0.1:0").expect("udp");
    // The socket is bound once the agent runs: resend the first datagram
    // until it shows up.
    wait_for(Duration::from_secs(30), "the first datagram", || {
        let _ = u.send_to(b"hello\n", ("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(50));
        !d.lines("out/o.log").is_empty()
    });
    for k in 0..20 {
        u.send_to(
            lines_text(k * 10, k * 10 + 10).as_bytes(),
            ("127.0.0.1", port),
        )
        .expect("send");
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for(Duration::from_secs(30), "200 lines", || {
        d.lines("out/o.log")
            .iter()
            .filter(|l| *l != "hello")
            .count()
            >= 200
    });
    let o = child.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = d
        .lines("out/o.log")
        .into_iter()
        .filter(|l| l != "hello")
        .collect();
    assert_sequence(&lines, 200);
}

#[test]
fn exec_runs_a_command_and_restarts_it_per_policy() {
    let d = Dir::new();
    // `never`: a bounded run that ends with the command.
    d.write(
        "p.yaml",
        &file_pipeline(
            "    type: exec\n    command: [seq, 0, 49999]\n    restart: never\n",
            "text",
        ),
    );
    let o = d.run(&["run", "p.yaml"], Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_sequence(&d.lines("out/o.log"), 50_000);
    // `on_failure`: a failing command runs again after the delay.
    let d = Dir::new();
    d.write(
        "p.yaml",
        &file_pipeline("    type: exec\n    command: [sh, -c, 'echo run; exit 3']\n    restart: on_failure\n    restart_delay: 50ms\n", "text"),
    );
    let child = Agent::start_json(&d, &["run", "p.yaml"]);
    wait_for(Duration::from_secs(30), "three runs", || {
        d.lines("out/o.log").len() >= 3
    });
    let o = child.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.lines("out/o.log").iter().all(|l| l == "run"));
    // `on_failure` after a clean exit: no restart.
    let d = Dir::new();
    d.write(
        "p.yaml",
        &file_pipeline(
            "    type: exec\n    command: [sh, -c, 'echo once']\n    restart_delay: 10ms\n",
            "text",
        ),
    );
    let o = d.run(&["run", "p.yaml"], Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.lines("out/o.log"), ["once"]);
}

/// Feeds a listening source for the compliance check: over TCP, UDP or
/// HTTP, or from a second agent over the hop.
pub struct Feeder {
    port: u16,
    tcp: Option<TcpStream>,
    udp: Option<UdpSocket>,
    sender: Option<Child>,
}

impl Feeder {
    /// With `hop`, starts a second agent that sends a sequence to `port`.
    pub fn new(d: &Dir, port: u16, hop: bool) -> Feeder {
        let sender = hop.then(|| {
            d.write(
                "sender.yaml",
                &format!("data_dir: ./state/sender\nsources:\n  gen: {{type: generator, rate: 20000, channels: [main]}}\nchannels:\n  main: {{type: memory, capacity: 1000}}\nsinks:\n  up: {{type: sluice, channel: main, address: '127.0.0.1:{port}'}}\n"),
            );
            d.start(&["run", "sender.yaml"])
        });
        Feeder {
            port,
            tcp: None,
            udp: None,
            sender,
        }
    }

    fn connected(&mut self) -> &mut TcpStream {
        let port = self.port;
        self.tcp.get_or_insert_with(|| {
            let mut s = None;
            wait_for(Duration::from_secs(30), "the source to listen", || {
                s = TcpStream::connect(("127.0.0.1", port)).ok();
                s.is_some()
            });
            s.expect("connected")
        })
    }

    pub fn tcp(&mut self, chunk: &str) {
        self.connected().write_all(chunk.as_bytes()).expect("send");
    }

    pub fn http(&mut self, chunk: &str) {
        let (status, _, body) = http_post(self.connected(), &[], chunk.as_bytes());
        assert_eq!(status, 200, "{body}");
    }

    /// Each line of `chunk` as the `message` of a document of a `_bulk`
    /// request (the `elasticsearch` source).
    pub fn bulk(&mut self, chunk: &str) {
        let body: String = chunk
            .lines()
            .map(|l| format!("{{\"index\":{{\"_index\":\"c\"}}}}\n{{\"message\":\"{l}\"}}\n"))
            .collect();
        let headers = [("Content-Type", "application/x-ndjson")];
        let (status, _, answer) =
            try_http_post_to(self.connected(), "/_bulk", &headers, body.as_bytes())
                .expect("an answer");
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains("\"errors\":false"), "{answer}");
    }

    pub fn udp(&mut self, chunk: &str) {
        let port = self.port;
        let u = self.udp.get_or_insert_with(|| {
            // The port is taken once the agent has bound it.
            wait_for(Duration::from_secs(30), "the source to bind", || {
                UdpSocket::bind(("127.0.0.1", port)).is_err()
            });
            UdpSocket::bind("127.0.0.1:0").expect("udp")
        });
        u.send_to(chunk.as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        if let Some(mut s) = self.sender.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}
