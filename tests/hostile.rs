//! Hostile input: pipeline files built to exhaust `sluice validate`, and
//! received data built to forge lines in the agent's log.

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::util::*;

const GOOD: &str = "sources:\n  gen:\n    type: generator\n    count: 10\n    channels: [main]\nchannels:\n  main:\n    type: memory\nsinks:\n  out:\n    type: console\n    channel: main\n";

/// `sluice validate FILE` with `yaml` as the file, its address space
/// limited to `max_bytes`: (exit code, stderr, time taken).
fn validate_bounded(yaml: &str, max_bytes: u64) -> (Option<i32>, String, Duration) {
    let d = Dir::new();
    d.write("p.yaml", yaml);
    let mut cmd = d.sluice(&["validate", "p.yaml"]);
    // SAFETY: `setrlimit` is async-signal-safe and touches no memory of the
    // parent: allowed between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: max_bytes,
                rlim_max: max_bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    let start = Instant::now();
    let o = wait_output(child, Duration::from_secs(60));
    (o.status.code(), stderr(&o), start.elapsed())
}

const GIB: u64 = 1 << 30;

/// The "billion laughs": nine levels of nine aliases, 9^9 nodes expanded.
fn alias_bomb() -> String {
    let lol = ["\"lol\""; 9].join(", ");
    let mut t = format!("a: &a [{lol}]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(", ");
        t.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    t
}

#[test]
fn an_alias_bomb_is_refused_at_its_position_quickly_in_bounded_memory() {
    let bomb = alias_bomb();
    assert!(bomb.len() < 512, "{}", bomb.len());
    // It took more than 4.6 GiB before; 1 GiB of address space is plenty
    // for the refusal.
    let (code, err, took) = validate_bounded(&bomb, GIB);
    assert_eq!(code, Some(2), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("p.yaml:5:") && first.contains(": anchors and aliases copy more than "),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Deep nesting is refused the same way.
    let deep: String = (0..100)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let (code, err, _) = validate_bounded(&deep, GIB);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("p.yaml:65:") && err.contains("nest deeper than 64 levels"),
        "{err}"
    );
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let (code, err, _) = validate_bounded(&format!("\u{feff}{GOOD}"), 2 * GIB);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_second_document_is_refused_not_ignored() {
    // The second document would add a source with an unknown type: before,
    // it was never read and the file passed.
    let yaml = format!("{GOOD}---\nsources:\n  x: {{type: nonsense}}\n");
    let (code, err, _) = validate_bounded(&yaml, 2 * GIB);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("p.yaml:13:1: a second YAML document starts here"),
        "{err}"
    );
}

#[test]
fn impossible_addresses_are_refused_by_validate() {
    let yaml = "sources:\n  sys:\n    type: syslog\n    address: \"999.1.1.1:99999\"\n    channels: [main]\n  tcp:\n    type: tcp\n    address: 127.0.0.1:0\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  fwd:\n    type: sluice\n    address: collector:0\n    channel: main\n";
    let (code, err, _) = validate_bounded(yaml, 2 * GIB);
    assert_eq!(code, Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.contains(&"p.yaml:4:14: source `sys`: `999.1.1.1:99999`: `999.1.1.1` is not an IPv4 address (four numbers from 0 to 255)"),
        "{err}"
    );
    assert!(
        lines.contains(&"p.yaml:15:14: sink `fwd`: `collector:0`: the port `0` is not a number from 1 to 65535"),
        "{err}"
    );
    // The good address is not reported.
    assert_eq!(lines.last(), Some(&"p.yaml: 2 problems"), "{err}");
}

#[test]
fn fifty_thousand_sources_validate_in_seconds() {
    use std::fmt::Write as _;
    let n = 50_000;
    let mut yaml = String::with_capacity(n * 150);
    yaml.push_str("sources:\n");
    for i in 0..n {
        let _ = writeln!(
            yaml,
            "  s{i}: {{type: generator, count: 1, channels: [c{i}]}}"
        );
    }
    yaml.push_str("channels:\n");
    for i in 0..n {
        let _ = writeln!(yaml, "  c{i}: {{type: memory}}");
    }
    yaml.push_str("sinks:\n");
    for i in 0..n {
        let _ = writeln!(yaml, "  k{i}: {{type: \"null\", channel: c{i}}}");
    }
    let d = Dir::new();
    d.write("big.yaml", &yaml);
    let start = Instant::now();
    let o = d.run(&["validate", "big.yaml"], Duration::from_secs(120));
    let took = start.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "big.yaml: ok (50000 sources, 50000 channels, 0 processors (0 stages), 50000 sinks)"
    );
    // Quadratic, this took minutes.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // One mistake among them is found, with its place.
    let bad = yaml.replace("channels: [c31337]}", "channels: [c31337x]}");
    d.write("big.yaml", &bad);
    let o = d.run(&["validate", "big.yaml"], Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let col = bad
        .lines()
        .nth(31338)
        .and_then(|l| l.find("c31337x"))
        .unwrap_or(0)
        + 1;
    let want = format!("big.yaml:31339:{col}: source `s31337` refers to channel `c31337x`, which is not declared: did you mean `c31337`?");
    assert!(
        err.lines().any(|l| l == want),
        "{}",
        err.lines().take(5).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn a_syslog_message_cannot_forge_lines_in_the_agent_log() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  sys:\n    type: syslog\n    address: 127.0.0.1:0\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/o.log}\n",
    );
    // Text logs, as an operator reads them.
    let mut agent = Agent::start(&d, &["run", "p.yaml"]);
    let port = agent.listening("sys");
    let forged = "2026-12-03T07:00:00.000000Z ERROR sluice: disk full, all data lost";
    let msg = format!("hello\n{forged}\x1b[2K\x1b[31m\r");
    // Octet-counted: the newline is inside the one message.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(format!("{} {msg}", msg.len()).as_bytes())
        .expect("send");
    drop(s);
    agent.wait_log("not a syslog message", 1);
    wait_for(Duration::from_secs(30), "the event", || {
        std::fs::metadata(d.join("out/o.log")).is_ok_and(|m| m.len() > 0)
    });
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    // No line of the log is the forged one, and no control character
    // reached it.
    for line in log.lines() {
        assert!(
            !line.starts_with("2026-12-03T07:00:00"),
            "forged line:\n{log}"
        );
        assert!(
            !line.contains('\x1b') && !line.contains('\r'),
            "raw escape:\n{log:?}"
        );
    }
    // The warning shows what was sent, escaped.
    let want = format!(r"sample=hello\n{forged}\u{{1b}}[2K\u{{1b}}[31m\r");
    assert!(log.contains(&want), "missing {want}\nin:\n{log}");
    // The event itself is kept as sent.
    let out = std::fs::read(d.join("out/o.log")).expect("output");
    assert!(out.windows(forged.len()).any(|w| w == forged.as_bytes()));
}
