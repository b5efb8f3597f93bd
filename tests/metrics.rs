//! What `/metrics`, `/api/components` and `sluice top` say about channels
//! without an event bound, a file source falling behind, a UDP source losing
//! datagrams, the build and the process: each read from a real running
//! agent.

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use crate::operations::{get, parse_metrics, start_agent_any_port};
use crate::util::*;

const WAIT: Duration = Duration::from_secs(60);

/// A sink that never delivers and retries for ever: a `sluice` hop to a
/// port nothing listens on.
fn stuck_sink(channel: &str) -> String {
    let dead = free_port();
    format!("sinks:\n  out: {{type: sluice, channel: {channel}, address: '127.0.0.1:{dead}'}}\n")
}

/// Kills the agent when the test ends, passed or not: its sink never
/// delivers, so a clean stop would wait for the drain timeout.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Scrapes `/metrics` until `ready` holds on the parsed samples.
fn scrape_until(
    url: &str,
    what: &str,
    ready: impl Fn(&HashMap<(String, String), f64>) -> bool,
) -> (String, HashMap<(String, String), f64>) {
    let mut last = (String::new(), HashMap::new());
    wait_for(WAIT, what, || {
        let text = get(url, "/metrics").expect("metrics").1;
        let m = parse_metrics(&text);
        let ok = ready(&m);
        last = (text, m);
        ok
    });
    last
}

fn value(m: &HashMap<(String, String), f64>, name: &str, labels: &str) -> Option<f64> {
    m.get(&(name.to_string(), labels.to_string())).copied()
}

#[test]
fn a_disk_channel_without_capacity_reports_its_byte_bound_and_fill_and_the_file_source_its_lag() {
    let d = Dir::new();
    // 4 MiB of lines; the channel holds 256 KiB; the sink never delivers,
    // so the source stops far behind the end of the file.
    let line = format!("{}\n", "x".repeat(99));
    d.write("in/a.log", &line.repeat(40_000));
    d.write(
        "p.yaml",
        &format!(
            "api: {{address: \"127.0.0.1:0\"}}\nsources:\n  src:\n    type: file\n    include: [\"./in/*.log\"]\n    read_from: beginning\n    poll_interval: 50ms\n    channels: [buf]\nchannels:\n  buf: {{type: disk, max_bytes: 256KiB, max_segment_bytes: 64KiB}}\n{}",
            stuck_sink("buf")
        ),
    );
    let (child, url) = start_agent_any_port(&d);
    let agent = Killed(child);
    let chan = "channel_id=buf,channel_type=disk";
    // The file as the glob matched it.
    let src = "component_id=src,component_kind=source,component_type=file,file=in/a.log";
    let (text, m) = scrape_until(&url, "the channel to fill up", |m| {
        value(m, "sluice_channel_fill_ratio", chan).is_some_and(|f| f > 0.5)
            && value(m, "sluice_component_bytes_behind", src).is_some_and(|b| b > 1e6)
    });

    // No "no bound" sentinel: the disk channel has no event capacity at
    // all, and its byte bound is the one configured.
    assert!(
        !text.contains("18446744073709551615"),
        "a sentinel in\n{text}"
    );
    assert_eq!(
        value(&m, "sluice_channel_capacity_events", chan),
        None,
        "{text}"
    );
    assert_eq!(
        value(&m, "sluice_channel_capacity_bytes", chan),
        Some(256.0 * 1024.0)
    );
    let fill = value(&m, "sluice_channel_fill_ratio", chan).expect("fill");
    assert!(fill <= 1.0, "{fill}");
    // Behind: the whole file less what went into the channel.
    let behind = value(&m, "sluice_component_bytes_behind", src).expect("behind");
    assert!(behind <= 4e6, "{behind}");

    // The build and the process.
    let build = format!(
        "rust_version={},version={}",
        rustc_version(),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&m, "sluice_build_info", &build), Some(1.0), "{text}");
    let cpu = value(&m, "process_cpu_seconds_total", "").expect("cpu");
    assert!(cpu > 0.0, "{cpu}");
    let rss = value(&m, "process_resident_memory_bytes", "").expect("rss");
    let pid_rss = rss_kib(agent.0.id()).expect("the agent's own RSS") as f64 * 1024.0;
    assert!(rss > 1e6 && rss < pid_rss * 2.0, "{rss} vs {pid_rss}");
    // stdin, stdout, stderr, the API's listener, the file read, the
    // channel's segment and lock, at least.
    let fds = value(&m, "process_open_fds", "").expect("fds");
    assert!(fds >= 6.0, "{fds}");
    assert!(value(&m, "process_max_fds", "").is_some_and(|max| max >= fds));

    // The same in /api/components: no capacity, the byte bound, a fill.
    let (_, body) = get(&url, "/api/components").expect("components");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let c = &v["channels"][0];
    assert_eq!(c["id"], "buf");
    assert_eq!(c["capacity"], serde_json::Value::Null, "{c}");
    assert_eq!(c["max_bytes"], 256 * 1024, "{c}");
    assert!(c["fill"].as_f64().is_some_and(|f| f > 0.5), "{c}");

    // And in `sluice top`: a fill bar with its percentage, `-` for the
    // missing bound.
    let o = d.run(
        &["top", "--once", "--interval", "100ms", "--api", &url],
        WAIT,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let top = stdout(&o);
    let row = top
        .lines()
        .find(|l| l.contains("buf") && l.contains("disk"))
        .unwrap_or_else(|| panic!("no channel row in\n{top}"));
    assert!(!row.contains("18446744073709551615"), "{row}");
    assert!(row.contains(" - "), "no bound shown as `-`: {row}");
    assert!(row.contains("262144"), "max_bytes shown: {row}");
    let percent: f64 = row
        .split_whitespace()
        .find_map(|w| w.strip_suffix('%')?.parse().ok())
        .unwrap_or_else(|| panic!("no percentage in {row}"));
    assert!(percent > 50.0, "{row}");
}

/// `rustc 1.89.0 (...)` → `1.89.0`: what built the agent built the tests.
fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let o = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .expect("rustc --version");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .expect("a version")
        .to_string()
}

#[test]
fn a_udp_source_counts_the_datagrams_the_kernel_dropped_and_gets_the_buffer_it_asked_for() {
    let d = Dir::new();
    // The sink never delivers: the channel fills, the source stops reading
    // the socket, and the small receive buffer overflows.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let udp_port = udp.local_addr().expect("addr").port();
    drop(udp);
    d.write(
        "p.yaml",
        &format!(
            "api: {{address: \"127.0.0.1:0\"}}\nsources:\n  in:\n    type: udp\n    address: 127.0.0.1:{udp_port}\n    receive_buffer_bytes: 64KiB\n    batch_size: 10\n    channels: [main]\nchannels:\n  main: {{type: memory, capacity: 10}}\n{}",
            stuck_sink("main")
        ),
    );
    let (child, url) = start_agent_any_port(&d);
    let _agent = Killed(child);
    let labels = "component_id=in,component_kind=source,component_type=udp";
    let (_, m) = scrape_until(&url, "the receive buffer gauge", |m| {
        value(m, "sluice_component_receive_buffer_bytes", labels).is_some()
    });
    // Linux books twice what was asked (capped by net.core.rmem_max).
    let granted = value(&m, "sluice_component_receive_buffer_bytes", labels).expect("buffer");
    let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(f64::MAX);
    assert!(
        granted >= (64.0 * 1024.0f64).min(rmem_max),
        "granted {granted}"
    );

    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let datagram = [b'y'; 512];
    for _ in 0..5000 {
        // Loopback never blocks the sender: the receiver drops.
        let _ = sender.send_to(&datagram, ("127.0.0.1", udp_port));
    }
    let (text, m) = scrape_until(&url, "the kernel's drops to be counted", |m| {
        value(
            m,
            "sluice_component_receive_dropped_datagrams_total",
            labels,
        )
        .is_some_and(|n| n > 0.0)
    });
    let dropped = value(
        &m,
        "sluice_component_receive_dropped_datagrams_total",
        labels,
    )
    .expect("dropped");
    // At most what was sent; the rest sits in the buffer or was read.
    assert!(dropped <= 5000.0, "{dropped}");
    assert!(
        text.contains("# TYPE sluice_component_receive_dropped_datagrams_total counter"),
        "{text}"
    );
}
