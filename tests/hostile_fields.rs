//! Hostile input against the real binary: events with tens of thousands of
//! fields (`http`, the `sluice` hop, `parse_json`), and hop frames that
//! declare far more than they send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::network::*;
use crate::util::*;

/// A JSON object `{"id": ID, "k0": 0, ..., "k{n-1}": n-1}`.
fn wide_object(id: usize, n: usize) -> String {
    let mut s = format!("{{\"id\":{id}");
    for i in 0..n {
        s.push_str(&format!(",\"k{i}\":{i}"));
    }
    s.push('}');
    s
}

/// The status of `GET path` on `port`, `None` when no answer came within
/// `limit`.
fn get_status(port: u16, path: &str, limit: Duration) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[test]
fn http_refuses_an_object_over_max_fields_and_parses_it_when_allowed() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "api:\n  address: 127.0.0.1:0\nsources:\n  strict: {type: http, address: '127.0.0.1:0', channels: [main]}\n  wide: {type: http, address: '127.0.0.1:0', max_fields: 50000, channels: [main]}\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/o.json, format: json}\n",
    );
    let mut child = Agent::start_json(&d, &["run", "p.yaml"]);
    let (api, strict, wide) = (
        child.api_port(),
        child.listening("strict"),
        child.listening("wide"),
    );
    let json = [("Content-Type", "application/json")];
    // 20,001 fields against the default limit: a 400 that says why.
    let mut s = TcpStream::connect(("127.0.0.1", strict)).expect("connect");
    let (status, _, body) = http_post(&mut s, &json, wide_object(99, 20_000).as_bytes());
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(
            "an object of 20001 fields (nested ones included) is more than max_fields (1000)"
        ),
        "{body}"
    );
    // Allowed on the other source: two clients post three each while
    // /health is asked again and again; it must keep answering.
    let posters: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", wide)).expect("connect");
                for i in 0..3 {
                    let obj = wide_object(t * 3 + i, 20_000);
                    let (status, _, body) = http_post(&mut s, &json, obj.as_bytes());
                    assert_eq!((status, body.trim()), (200, "1 events"));
                }
            })
        })
        .collect();
    let mut answers = 0;
    while answers == 0 || posters.iter().any(|p| !p.is_finished()) {
        let status = get_status(api, "/health", Duration::from_secs(10));
        assert_eq!(status, Some(200), "/health while large requests run");
        answers += 1;
    }
    for p in posters {
        p.join().expect("poster");
    }
    wait_for(Duration::from_secs(60), "6 wide events", || {
        d.lines("out/o.json").len() >= 6
    });
    let o = child.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut ids = Vec::new();
    for l in d.lines("out/o.json") {
        let v: serde_json::Value = serde_json::from_str(&l).expect("json");
        let fields = v["fields"].as_object().expect("fields");
        assert_eq!(fields.len(), 20_001);
        assert_eq!(fields["k19999"], 19_999);
        ids.push(fields["id"].as_u64().expect("id"));
    }
    ids.sort();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["strict"]["errors"].as_u64(), Some(1));
    assert_eq!(counts["wide"]["events_out"].as_u64(), Some(6));
}

#[test]
fn a_hop_event_over_max_fields_is_refused_and_the_sender_reports_it() {
    hop_refusal("");
}

/// The same with frames that hold one wide event, not two (one takes about
/// 140 KiB): the sender cuts the batch into several frames, and the
/// refusals of a later frame still name the right events of the batch.
#[test]
fn a_refused_event_in_a_split_batch_is_the_one_rejected() {
    hop_refusal(", max_frame_bytes: 200KiB");
}

/// Two events of 100 over the receiver's `max_fields` cross the hop (with
/// `frame` added to both ends' options): those two are refused and counted
/// on both sides, the others arrive once, in order.
fn hop_refusal(frame: &str) {
    let d = Dir::new();
    d.write(
        "agg.yaml",
        &format!("data_dir: ./state/agg\nsources:\n  edge: {{type: sluice, address: '127.0.0.1:0'{frame}, channels: [main]}}\nchannels:\n  main: {{type: memory}}\nsinks:\n  out: {{type: file, channel: main, path: ./out/agg.json, format: json}}\n"),
    );
    let mut agg = Agent::start_json(&d, &["run", "agg.yaml"]);
    let port = agg.listening("edge");
    // 100 events; two carry 5,001 fields (parse_json allows them on the
    // edge, the aggregator's default max_fields does not).
    let input: String = (0..100)
        .map(|i| match i {
            17 | 60 => wide_object(i, 5000) + "\n",
            _ => format!("{{\"id\":{i}}}\n"),
        })
        .collect();
    d.write("in.ndjson", &input);
    d.write(
        "edge.yaml",
        &format!("data_dir: ./state/edge\nsources:\n  in: {{type: file, include: [./in.ndjson], read_from: beginning, follow: false, processors: [json], channels: [main]}}\nprocessors:\n  json: {{type: parse_json, max_fields: 50000}}\nchannels:\n  main: {{type: memory}}\nsinks:\n  up: {{type: sluice, channel: main, address: '127.0.0.1:{port}'{frame}}}\n"),
    );
    let o = d.run_logged(&["run", "edge.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let edge_log = stderr(&o);
    assert!(
        edge_log.contains(&format!(
            "refused by 127.0.0.1:{port}: more than max_fields (1000) fields in an event"
        )),
        "{edge_log}"
    );
    let counts = final_counts(&edge_log);
    assert_eq!(
        (
            counts["up"]["events_out"].as_u64(),
            counts["up"]["errors"].as_u64()
        ),
        (Some(98), Some(2))
    );
    wait_for(Duration::from_secs(60), "98 events", || {
        d.lines("out/agg.json").len() >= 98
    });
    let o = agg.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    let ids: Vec<u64> = d
        .lines("out/agg.json")
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["fields"]["id"]
                .as_u64()
                .expect("id")
        })
        .collect();
    let want: Vec<u64> = (0..100).filter(|i| *i != 17 && *i != 60).collect();
    assert_eq!(ids, want);
    let agg_log = stderr(&o);
    assert_eq!(final_counts(&agg_log)["edge"]["errors"].as_u64(), Some(2));
    assert!(
        agg_log.contains("event(s) of a batch: more than max_fields (1000) fields in an event"),
        "{agg_log}"
    );
}

/// Connects to a `sluice` source and says hello (no token).
fn hop_connect(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(&[0, 0, 0, 5, 1, 0, 2, 0, 0]).expect("hello");
    let mut welcome = [0u8; 5];
    s.read_exact(&mut welcome).expect("welcome");
    assert_eq!(welcome, [0, 0, 0, 1, 2]);
    s
}

/// One hop frame: kind and payload.
fn read_hop_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = [0u8; 5];
    s.read_exact(&mut head).expect("frame header");
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut payload = vec![0u8; len - 1];
    s.read_exact(&mut payload).expect("frame payload");
    (head[4], payload)
}

/// A `BATCH` frame: `seq`, `count` and the events' bytes as given.
fn batch_frame(seq: u64, count: u32, events: &[u8]) -> Vec<u8> {
    let mut f = ((1 + 12 + events.len()) as u32).to_be_bytes().to_vec();
    f.push(16);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&count.to_be_bytes());
    f.extend_from_slice(events);
    f
}

#[test]
fn a_hop_batch_in_an_unknown_wire_version_is_refused_and_counted_not_misread() {
    let d = Dir::new();
    d.write(
        "agg.yaml",
        "sources:\n  edge: {type: sluice, address: '127.0.0.1:0', channels: [main]}\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/agg.log}\n",
    );
    let mut agg = Agent::start_json(&d, &["run", "agg.yaml"]);
    let port = agg.listening("edge");
    // A sender of the hop protocol's version 1 (before the shared wire
    // format) is refused in the hello, not misread.
    let mut old = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    old.write_all(&[0, 0, 0, 5, 1, 0, 1, 0, 0]).expect("hello");
    let (kind, p) = read_hop_frame(&mut old);
    assert_eq!((kind, &p[..2]), (3, &400u16.to_be_bytes()[..]));
    // Two events in wire format version 9: both refused for good, naming
    // the version; the connection stays up.
    let mut s = hop_connect(port);
    s.write_all(&batch_frame(7, 2, &[9, 0xde, 0xad, 0xbe, 0xef]))
        .expect("batch");
    let (kind, p) = read_hop_frame(&mut s);
    assert_eq!(kind, 19, "a REJECT");
    assert_eq!(&p[..8], &7u64.to_be_bytes());
    let mlen = u16::from_be_bytes([p[8], p[9]]) as usize;
    let message = String::from_utf8_lossy(&p[10..10 + mlen]).into_owned();
    assert!(message.contains("wire format version 9"), "{message}");
    assert_eq!(&p[10 + mlen..], &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
    // Version 1, one event `ok`: taken and acknowledged.
    s.write_all(&batch_frame(8, 1, &[1, 2, b'o', b'k', 0, 0]))
        .expect("batch");
    assert_eq!(read_hop_frame(&mut s), (17, 8u64.to_be_bytes().to_vec()));
    wait_for(Duration::from_secs(30), "the event", || {
        d.lines("out/agg.log") == ["ok"]
    });
    let (status, log) = agg.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        final_counts(&log)["edge"]["errors"].as_u64(),
        Some(2),
        "{log}"
    );
}

/// Reads until the peer closes (or `limit` passes).
fn wait_closed(s: &mut TcpStream, limit: Duration) -> bool {
    let _ = s.set_read_timeout(Some(limit));
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

#[test]
fn unfinished_hop_frames_share_a_bounded_budget_and_a_normal_hop_goes_on() {
    let d = Dir::new();
    d.write(
        "agg.yaml",
        "data_dir: ./state/agg\nsources:\n  edge:\n    type: sluice\n    address: '127.0.0.1:0'\n    max_frame_bytes: 8MiB\n    max_buffered_bytes: 16MiB\n    frame_timeout: 1s\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/agg.log}\n",
    );
    let mut agg = Agent::start_json(&d, &["run", "agg.yaml"]);
    let port = agg.listening("edge");
    // A frame that declares a length of 0 is answered with what is wrong.
    let mut s = hop_connect(port);
    s.write_all(&[0, 0, 0, 0, 16]).expect("send");
    assert!(wait_closed(&mut s, Duration::from_secs(10)));
    let pid = agg.child.id();
    let before = rss_kib(pid).expect("rss");
    // Twelve connections each declare an 8 MiB frame and send 7 MiB of it:
    // 84 MiB if all were held.
    let attackers: Vec<_> = (0..12)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = hop_connect(port);
                let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                let mut head = ((8u32 << 20) + 1).to_be_bytes().to_vec();
                head.push(16);
                let _ = s.write_all(&head);
                let chunk = vec![0u8; 64 << 10];
                for _ in 0..112 {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                }
                wait_closed(&mut s, Duration::from_secs(30))
            })
        })
        .collect();
    // A normal hop starts in the middle of it.
    d.write(
        "edge.yaml",
        &format!("data_dir: ./state/edge\nsources:\n  gen: {{type: generator, count: 2000, channels: [main]}}\nchannels:\n  main: {{type: memory}}\nsinks:\n  up: {{type: sluice, channel: main, address: '127.0.0.1:{port}'}}\n"),
    );
    let edge = Agent::start(&d, &["run", "edge.yaml"]);
    let mut peak = before;
    let start = Instant::now();
    while attackers.iter().any(|a| !a.is_finished()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "attackers still connected"
        );
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    for a in attackers {
        assert!(
            a.join().expect("attacker"),
            "the agent closed every attacker"
        );
    }
    assert!(
        peak < before + 40 * 1024,
        "RSS went from {before} KiB to {peak} KiB with a budget of 16 MiB"
    );
    wait_for(
        Duration::from_secs(60),
        "the normal hop's 2000 events",
        || d.lines("out/agg.log").len() >= 2000,
    );
    edge.finish_ok(Duration::from_secs(60));
    let o = agg.stop_output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_sequence(&d.lines("out/agg.log"), 2000);
    let log = stderr(&o);
    assert!(
        log.contains("hop frame with a length of 0 (a frame holds at least its kind byte)"),
        "{log}"
    );
    assert!(!log.contains("larger than the limit"), "{log}");
    // Closed connections are logged at most once a second, all counted:
    // the zero-length frame and every attacker at least.
    assert!(
        log.contains("no memory for a hop frame within 1s")
            || log.contains("no byte of a started hop frame for 1s"),
        "{log}"
    );
    let errors = final_counts(&log)["edge"]["errors"].as_u64();
    assert!(errors.is_some_and(|n| n >= 13), "{errors:?} errors");
}

#[test]
fn parse_json_sends_an_object_over_max_fields_to_the_dead_letter_channel() {
    let d = Dir::new();
    let input = format!(
        "{{\"id\":0}}\n{}\n{{\"id\":2,\"tags\":{{\"a\":1}}}}\n",
        wide_object(1, 20_000)
    );
    d.write("in.ndjson", &input);
    d.write(
        "p.yaml",
        "sources:\n  in: {type: file, include: [./in.ndjson], read_from: beginning, follow: false, processors: [json], channels: [main]}\nprocessors:\n  json: {type: parse_json, dead_letter: bad}\nchannels:\n  main: {type: memory}\n  bad: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/good.json, format: json}\n  bad: {type: file, channel: bad, path: ./out/bad.json, format: json}\n",
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["json"]["errors"].as_u64(), Some(1));
    let good: Vec<serde_json::Value> = d
        .lines("out/good.json")
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(good.len(), 2);
    assert_eq!(
        (&good[0]["fields"]["id"], &good[1]["fields"]["tags"]["a"]),
        (&0.into(), &1.into())
    );
    let bad = d.lines("out/bad.json");
    assert_eq!(bad.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&bad[0]).expect("json");
    // The body is kept whole, the fields are not added.
    assert_eq!(
        v["message"].as_str().map(str::len),
        Some(wide_object(1, 20_000).len())
    );
    assert_eq!(
        v["fields"]["error"],
        "an object of 20001 fields (nested ones included) is more than max_fields (1000)"
    );
    assert!(v["fields"].get("k0").is_none());
}
