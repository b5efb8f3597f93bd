//! Two tiers of agents joined by the acknowledged `sluice` hop: fields
//! intact, tokens and TLS, failover and load-balancing sink groups.

use std::io::Write;
use std::net::TcpStream;
use std::process::Child;
use std::time::Duration;

use crate::network::*;
use crate::util::*;

/// An aggregator: `sluice` source on `port` → file `out/NAME.log`.
fn aggregator(d: &Dir, name: &str, port: u16, extra: &str, format: &str) -> Child {
    d.write(
        &format!("{name}.yaml"),
        &format!("data_dir: ./state/{name}\nsources:\n  edge:\n    type: sluice\n    address: 127.0.0.1:{port}\n{extra}    channels: [main]\nchannels:\n  main: {{type: memory, capacity: 5000}}\nsinks:\n  out: {{type: file, channel: main, path: ./out/{name}.log, format: {format}}}\n"),
    );
    let mut child = start_logged(d, &format!("{name}.yaml"));
    wait_listening(port, &mut child);
    child
}

#[test]
fn events_cross_the_hop_with_their_fields_intact() {
    let d = Dir::new();
    let port = free_port();
    let agg = aggregator(&d, "agg", port, "", "json");
    d.write(
        "edge.yaml",
        &format!("data_dir: ./state/edge\nsources:\n  gen:\n    type: generator\n    format: json\n    count: 20000\n    processors: [parse, tag]\n    channels: [main]\nprocessors:\n  parse: {{type: parse_json}}\n  tag: {{type: add_fields, fields: {{tier: edge, ratio: 0.5, ok: true}}}}\nchannels:\n  main: {{type: memory, capacity: 1000}}\nsinks:\n  up: {{type: sluice, channel: main, address: '127.0.0.1:{port}'}}\n  local: {{type: file, channel: copy, path: ./out/local.log, format: json}}\n"),
    );
    // The same events also go to a local file to compare with.
    let edge_yaml = std::fs::read_to_string(d.join("edge.yaml")).expect("yaml");
    d.write(
        "edge.yaml",
        &edge_yaml
            .replace(
                "channels: [main]\nprocessors",
                "channels: [main, copy]\nprocessors",
            )
            .replace(
                "channels:\n  main:",
                "channels:\n  copy: {type: memory}\n  main:",
            ),
    );
    let o = d.run_logged(&["run", "edge.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        final_counts(&stderr(&o))["up"]["events_out"].as_u64(),
        Some(20_000)
    );
    wait_for(Duration::from_secs(60), "20000 events", || {
        d.lines("out/agg.log").len() >= 20_000
    });
    let o = stop(agg);
    assert!(o.status.success(), "{}", stderr(&o));
    // Every event as the edge had it: body, timestamp, typed fields.
    assert_eq!(d.lines("out/agg.log"), d.lines("out/local.log"));
    let first: serde_json::Value = serde_json::from_str(&d.lines("out/agg.log")[0]).expect("json");
    assert_eq!(first["fields"]["tier"], "edge");
    assert_eq!(first["fields"]["ratio"], 0.5);
    assert_eq!(first["fields"]["ok"], true);
    assert_eq!(first["fields"]["seq"], 0);
}

fn edge_sink(port: u16, extra: &str) -> String {
    format!("sources:\n  gen: {{type: generator, count: 1000, channels: [main]}}\nchannels:\n  main: {{type: memory, capacity: 1000}}\nsinks:\n  up:\n    type: sluice\n    channel: main\n    address: '127.0.0.1:{port}'\n    connect_timeout: 2s\n{extra}")
}

/// Runs an edge for a while; returns its stderr after a stop.
fn edge_refused(d: &Dir, yaml: &str) -> String {
    d.write("edge.yaml", yaml);
    let child = d.start(&["run", "edge.yaml", "--drain-timeout", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let o = stop(child);
    stderr(&o)
}

#[test]
fn a_wrong_or_missing_token_is_refused_and_nothing_is_ingested() {
    let d = Dir::new();
    let port = free_port();
    // A token variable that is not set is a start-up error naming it.
    d.write(
        "env.yaml",
        &format!("sources:\n  edge: {{type: sluice, address: '127.0.0.1:{port}', token: {{env: HOP_TOKEN_UNSET}}, channels: [main]}}\nchannels:\n  main: {{type: memory}}\nsinks:\n  out: {{type: \"null\", channel: main}}\n"),
    );
    let o = d.run(&["run", "env.yaml"], Duration::from_secs(30));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("`HOP_TOKEN_UNSET` holding the token is not set"),
        "{}",
        stderr(&o)
    );

    d.write("token", "right-token\n");
    let agg = aggregator(&d, "agg", port, "    token: {file: ./token}\n", "text");
    d.write("wrong", "wrong-token\n");
    let err = edge_refused(&d, &edge_sink(port, "    token: {file: ./wrong}\n"));
    assert!(err.contains("refused (401)"), "{err}");
    assert!(!err.contains("wrong-token"), "the token is never logged");
    let err = edge_refused(&d, &edge_sink(port, ""));
    assert!(err.contains("refused (401)"), "{err}");
    assert!(d.lines("out/agg.log").is_empty(), "nothing ingested");
    d.write(
        "edge.yaml",
        &edge_sink(port, "    token: {file: ./token}\n"),
    );
    let o = d.run(&["run", "edge.yaml"], Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for(Duration::from_secs(30), "1000 lines", || {
        d.lines("out/agg.log").len() >= 1000
    });
    let o = stop(agg);
    assert!(o.status.success());
    assert_sequence(&d.lines("out/agg.log"), 1000);
    assert!(!stderr(&o).contains("right-token"));
}

#[test]
fn the_hop_over_tls_requires_a_trusted_client_certificate() {
    let d = Dir::new();
    make_certs(&d);
    let port = free_port();
    let agg = aggregator(
        &d,
        "agg",
        port,
        "    tls: {cert: ./server.pem, key: ./server.key, ca: ./ca.pem}\n",
        "text",
    );
    for client in ["", "    tls: {ca: ./ca.pem, server_name: localhost}\n", "    tls: {ca: ./ca.pem, server_name: localhost, cert: ./other-client.pem, key: ./other-client.key}\n"] {
        let err = edge_refused(&d, &edge_sink(port, client));
        assert!(err.contains("write failed"), "{client}: {err}");
        assert!(d.lines("out/agg.log").is_empty(), "{client}: nothing ingested");
    }
    d.write(
        "edge.yaml",
        &edge_sink(port, "    tls: {ca: ./ca.pem, server_name: localhost, cert: ./client.pem, key: ./client.key}\n"),
    );
    let o = d.run(&["run", "edge.yaml"], Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for(Duration::from_secs(30), "1000 lines", || {
        d.lines("out/agg.log").len() >= 1000
    });
    let o = stop(agg);
    assert!(o.status.success());
    assert_sequence(&d.lines("out/agg.log"), 1000);
}

/// Feeds lines `from..to` to the edge's tcp source.
fn feed(port: u16, from: usize, to: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(lines_text(from, to).as_bytes()).expect("send");
}

fn numbers(lines: &[String]) -> Vec<usize> {
    lines.iter().map(|l| l.parse().expect("a number")).collect()
}

#[test]
fn a_failover_group_switches_when_the_primary_dies_and_fails_back() {
    let d = Dir::new();
    let (p1, p2, input) = (free_port(), free_port(), free_port());
    let agg1 = aggregator(&d, "agg1", p1, "", "text");
    let agg2 = aggregator(&d, "agg2", p2, "", "text");
    d.write(
        "edge.yaml",
        &format!("data_dir: ./state/edge\nsources:\n  in: {{type: tcp, address: '127.0.0.1:{input}', channels: [main]}}\nchannels:\n  main: {{type: memory, capacity: 10000}}\nsinks:\n  primary: {{type: sluice, channel: main, address: '127.0.0.1:{p1}', batch_size: 500, connect_timeout: 1s}}\n  secondary: {{type: sluice, channel: main, address: '127.0.0.1:{p2}', batch_size: 500}}\nsink_groups:\n  aggregators:\n    strategy: failover\n    sinks: [primary, secondary]\n    priorities: {{primary: 10, secondary: 5}}\n    penalty: 300ms\n    max_penalty: 1s\n"),
    );
    let mut edge = start_logged(&d, "edge.yaml");
    wait_listening(input, &mut edge);
    // 1. The primary takes everything.
    feed(input, 0, 50_000);
    wait_for(Duration::from_secs(60), "50000 at the primary", || {
        d.lines("out/agg1.log").len() >= 50_000
    });
    assert!(
        d.lines("out/agg2.log").is_empty(),
        "the secondary stays idle"
    );
    // 2. kill -9 the primary. Its channel is a memory channel, so it is
    // killed once it has written out what it acknowledged (with a disk
    // channel on the aggregators it can be killed at any moment). What the
    // edge sends from here on reaches the dead primary's socket without an
    // acknowledgement: nothing is lost because the edge commits its take
    // only on an acknowledgement and resends the batch to the secondary.
    let mut agg1 = agg1;
    agg1.kill().expect("kill -9");
    let _ = agg1.wait();
    feed(input, 50_000, 150_000);
    let total = |d: &Dir| d.lines("out/agg1.log").len() + d.lines("out/agg2.log").len();
    wait_for(Duration::from_secs(60), "150000 in all", || {
        total(&d) >= 150_000
    });
    assert!(
        !d.lines("out/agg2.log").is_empty(),
        "the edge switched to the secondary"
    );
    // 3. The primary comes back: after its penalty the group fails back.
    let before = d.lines("out/agg1.log").len();
    let agg1 = aggregator(&d, "agg1", p1, "", "text");
    std::thread::sleep(Duration::from_millis(1200));
    feed(input, 150_000, 200_000);
    wait_for(Duration::from_secs(60), "200000 in all", || {
        total(&d) >= 200_000
    });
    assert!(
        d.lines("out/agg1.log").len() > before,
        "the group failed back to the primary"
    );
    let o = stop(edge);
    assert!(o.status.success(), "{}", stderr(&o));
    for a in [agg1, agg2] {
        let o = stop(a);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut all = numbers(&d.lines("out/agg1.log"));
    all.extend(numbers(&d.lines("out/agg2.log")));
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    assert_eq!(all, (0..200_000).collect::<Vec<_>>(), "nothing lost");
    // A batch sent to the dead primary may have been written before the
    // kill without its acknowledgement reaching the edge: at most one batch
    // is duplicated.
    assert!(n - all.len() <= 500, "{} duplicates", n - all.len());
}

#[test]
fn a_load_balance_group_spreads_evenly_over_three_receivers() {
    let d = Dir::new();
    let ports = [free_port(), free_port(), free_port()];
    let aggs: Vec<Child> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| aggregator(&d, &format!("agg{i}"), *p, "", "text"))
        .collect();
    let mut sinks = String::new();
    for (i, p) in ports.iter().enumerate() {
        sinks.push_str(&format!(
            "  s{i}: {{type: sluice, channel: main, address: '127.0.0.1:{p}', batch_size: 100}}\n"
        ));
    }
    d.write(
        "edge.yaml",
        &format!("sources:\n  gen: {{type: generator, count: 60000, batch_size: 100, channels: [main]}}\nchannels:\n  main: {{type: memory, capacity: 1000}}\nsinks:\n{sinks}sink_groups:\n  spread:\n    strategy: load_balance\n    selector: round_robin\n    sinks: [s0, s1, s2]\n"),
    );
    let o = d.run_logged(&["run", "edge.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let counts = final_counts(&stderr(&o));
    let sent: u64 = (0..3)
        .map(|i| counts[&format!("s{i}")]["events_out"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(sent, 60_000);
    let total = |d: &Dir| {
        (0..3)
            .map(|i| d.lines(&format!("out/agg{i}.log")).len())
            .sum::<usize>()
    };
    wait_for(Duration::from_secs(60), "60000 in all", || {
        total(&d) >= 60_000
    });
    for a in aggs {
        assert!(stop(a).status.success());
    }
    let mut all = Vec::new();
    for i in 0..3 {
        let mine = numbers(&d.lines(&format!("out/agg{i}.log")));
        let share = mine.len() as f64 / 20_000.0;
        assert!(
            (0.9..=1.1).contains(&share),
            "receiver {i} got {} events",
            mine.len()
        );
        all.extend(mine);
    }
    all.sort_unstable();
    assert_eq!(all, (0..60_000).collect::<Vec<_>>());
}

#[test]
fn the_edge_aggregator_demo_runs_locally() {
    let d = Dir::new();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demos/edge-aggregator/run-local.sh");
    let child = std::process::Command::new("bash")
        .arg(&script)
        .env("SLUICE_BIN", sluice_bin())
        .env("DEMO_WORK_DIR", d.path())
        .env("PORT_1", free_port().to_string())
        .env("PORT_2", free_port().to_string())
        .env("DEMO_EVENTS", "20000")
        .env("DEMO_RATE", "10000")
        .env_remove("RUST_LOG")
        .env_remove("SLUICE_SETTINGS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run-local.sh");
    let o = wait_output(child, Duration::from_secs(120));
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok: nothing lost"), "{}", stdout(&o));
    let mut seqs = Vec::new();
    for name in ["aggregator-1", "aggregator-2"] {
        let lines = d.lines(&format!("out/{name}.json"));
        assert!(!lines.is_empty(), "{name} got nothing");
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(&l).expect("json");
            // Parsed at the edge, carried over the hop as typed fields.
            assert!(v["fields"]["host"].is_string(), "{l}");
            seqs.push(v["fields"]["seq"].as_u64().expect("seq"));
        }
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (0..20_000).collect::<Vec<u64>>());
}

#[test]
fn graph_draws_a_sink_group_around_its_members() {
    let d = Dir::new();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/hop-edge.yaml");
    let o = d.run(
        &["graph", &file.display().to_string()],
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dot = stdout(&o);
    assert!(
        dot.contains("subgraph \"cluster_group:aggregators\" { style=dashed; label=\"aggregators (failover)\";\n    \"sink:primary\";\n    \"sink:secondary\";\n  }"),
        "{dot}"
    );
}
