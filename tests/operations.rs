//! Operating an agent: the HTTP API (`/health`, `/metrics`,
//! `/api/components`, taps, the dashboard), `sluice top` and `sluice tap`,
//! each against a real running agent.

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use crate::util::*;

const WAIT: Duration = Duration::from_secs(60);

/// `GET url + path` with the agent's own client: status and body.
pub(crate) fn get(url: &str, path: &str) -> Option<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt.block_on(sluice_api::client::get(url, path, None)).ok()?;
    Some((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// Starts `sluice run p.yaml`, whose API says port 0, and waits until the
/// API answers: the child and the API's URL, read from the agent's `api
/// listening` line. The agent's log is passed on to the test's stderr.
pub(crate) fn start_agent_any_port(d: &Dir) -> (Child, String) {
    use std::io::BufRead;
    let mut child = d.start(&["run", "p.yaml"]);
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(port) = api_port(&line) {
                let _ = tx.send(port);
            }
            eprintln!("{line}");
        }
    });
    let port = rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("the agent's API did not listen: {:?}", child.try_wait()));
    let url = format!("http://127.0.0.1:{port}");
    let child = start_agent_wait(child, &url);
    (child, url)
}

/// Waits until the API at `url` answers.
fn start_agent_wait(mut child: Child, url: &str) -> Child {
    wait_for(WAIT, "the API to answer", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sluice exited early: {status:?}");
        }
        get(url, "/health").is_some()
    });
    child
}

/// Metric samples by name and labels (sorted `k=v` pairs joined by `,`).
pub(crate) fn parse_metrics(text: &str) -> HashMap<(String, String), f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => {
                // One entry per bucket, keyed by its bound.
                for b in h {
                    let mut l = labels.clone();
                    l.push(format!("le={}", b.less_than));
                    l.sort();
                    out.insert((format!("{}_bucket", s.metric), l.join(",")), b.count);
                }
                continue;
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert((s.metric, labels.join(",")), value);
    }
    out
}

/// The entry of component `id` in the `components` list of an API answer.
fn component_entry<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no component `{id}` in {v}"))
}

fn component(id: &str, kind: &str, ty: &str) -> String {
    format!("component_id={id},component_kind={kind},component_type={ty}")
}

/// A pipeline following `in/*.log`, writing every line to `out/lines.log`.
fn follow_pipeline(port: u16, extra: &str) -> String {
    format!(
        "api:\n  address: 127.0.0.1:{port}\nsources:\n  src:\n    type: file\n    include: [\"./in/*.log\"]\n    read_from: beginning\n    follow: true\n    poll_interval: 50ms\n    channels: [main]\nchannels:\n  main: {{type: memory, capacity: 500}}\nsinks:\n  out:\n    type: file\n    channel: main\n    path: ./out/lines.log\n    batch_size: 100\n{extra}"
    )
}

fn numbered_lines(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line {i}\n")).collect()
}

/// An agent with its API on a port of its choosing.
struct Running {
    child: Child,
    port: u16,
    url: String,
}

/// Writes `p.yaml` from `pipeline(0)` (the API's port: any) and starts
/// the agent on it.
fn start_on_any_port(d: &Dir, pipeline: impl FnOnce(u16) -> String) -> Running {
    d.write("p.yaml", &pipeline(0));
    let (child, url) = start_agent_any_port(d);
    let port = url
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0);
    Running { child, port, url }
}

/// Makes `path` (under `d`) a file on a full disk: a link to `/dev/full`,
/// where every write fails with `ENOSPC`, an error a retry can fix once
/// the link is removed (a directory in the way would be refused for good).
fn full_disk(d: &Dir, path: &str) {
    let p = d.join(path);
    std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
    std::os::unix::fs::symlink("/dev/full", &p).expect("symlink");
}

/// Writes `in/a.log` with `lines` numbered lines and starts an agent
/// following it ([`follow_pipeline`]).
fn start_following(d: &Dir, lines: usize) -> Running {
    d.write("in/a.log", &numbered_lines(0, lines));
    start_on_any_port(d, |port| follow_pipeline(port, ""))
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_the_events_sent() {
    let d = Dir::new();
    let Running { child, url, .. } = start_following(&d, 5000);
    let first = numbered_lines(0, 5000);

    let metric = |text: &str, name: &str, labels: &str| -> f64 {
        *parse_metrics(text)
            .get(&(name.to_string(), labels.to_string()))
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
    };
    let scrape = |n: f64| -> String {
        let mut text = String::new();
        // Delivered, then committed: wait for both.
        wait_for(WAIT, "the sink to deliver and commit every line", || {
            text = get(&url, "/metrics").expect("metrics").1;
            let m = parse_metrics(&text);
            let at_least = |name: &str, labels: String| {
                m.get(&(name.to_string(), labels)).is_some_and(|v| *v >= n)
            };
            at_least(
                "sluice_component_sent_events_total",
                component("out", "sink", "file"),
            ) && at_least(
                "sluice_channel_committed_events_total",
                "channel_id=main,channel_type=memory".into(),
            )
        });
        text
    };

    let second = numbered_lines(5000, 6500);
    // Body bytes: the lines without their newlines.
    let body_bytes = |text: &str| text.lines().map(str::len).sum::<usize>() as f64;
    let rounds = [
        (5000.0, body_bytes(&first)),
        (6500.0, body_bytes(&first) + body_bytes(&second)),
    ];
    for (total, bytes) in rounds {
        let text = scrape(total);
        let src = component("src", "source", "file");
        let out = component("out", "sink", "file");
        for (name, labels, want) in [
            ("sluice_component_received_events_total", &src, total),
            ("sluice_component_sent_events_total", &src, total),
            ("sluice_component_sent_bytes_total", &src, bytes),
            ("sluice_component_received_events_total", &out, total),
            ("sluice_component_sent_events_total", &out, total),
            ("sluice_component_received_bytes_total", &out, bytes),
            ("sluice_component_sent_bytes_total", &out, bytes),
            ("sluice_component_errors_total", &out, 0.0),
            ("sluice_component_discarded_events_total", &src, 0.0),
            ("sluice_component_healthy", &out, 1.0),
        ] {
            assert_eq!(metric(&text, name, labels), want, "{name}{{{labels}}}");
        }
        let main = "channel_id=main,channel_type=memory";
        assert_eq!(
            metric(&text, "sluice_channel_put_events_total", main),
            total
        );
        assert_eq!(
            metric(&text, "sluice_channel_committed_events_total", main),
            total
        );
        assert_eq!(metric(&text, "sluice_channel_events", main), 0.0);
        assert_eq!(metric(&text, "sluice_channel_capacity_events", main), 500.0);
        // Every batch lands in some bucket, and batches hold 100 lines at most.
        let count = metric(&text, "sluice_sink_batch_duration_seconds_count", &out);
        let inf = metric(
            &text,
            "sluice_sink_batch_duration_seconds_bucket",
            &format!("{out},le=inf"),
        );
        assert_eq!(inf, count);
        assert!(count >= total / 100.0, "{count} batches for {total} events");
        if total == 5000.0 {
            d.append("in/a.log", &second);
        }
    }

    // The same numbers as JSON.
    let (status, body) = get(&url, "/api/components").expect("components");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let out = component_entry(&v, "out");
    assert_eq!(out["metrics"]["events_out"], 6500);
    assert_eq!(out["inputs"], serde_json::json!(["main"]));
    assert_eq!(v["channels"][0]["committed_events"], 6500);
    stop_cleanly(child, WAIT);
    assert_eq!(d.lines("out/lines.log").len(), 6500);
}

#[test]
fn health_turns_503_while_a_sink_fails_and_200_when_it_recovers() {
    let d = Dir::new();
    // The sink's disk is full: every write fails and is retried.
    full_disk(&d, "out/lines.log");
    let Running { child, url, .. } = start_following(&d, 300);

    let mut body = String::new();
    wait_for(WAIT, "/health to report the failing sink", || {
        let (status, b) = get(&url, "/health").expect("health");
        body = b;
        status == 503
    });
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "unhealthy");
    let out = component_entry(&v, "out");
    assert_eq!(out["healthy"], false, "{body}");
    assert!(
        out["error"]
            .as_str()
            .is_some_and(|e| e.contains("lines.log")),
        "{body}"
    );
    let src = v["components"][0].clone();
    assert_eq!(
        (src["id"].as_str(), src["healthy"].as_bool()),
        (Some("src"), Some(true))
    );
    let metrics = get(&url, "/metrics").expect("metrics").1;
    assert_eq!(
        parse_metrics(&metrics)[&(
            "sluice_component_healthy".to_string(),
            component("out", "sink", "file")
        )],
        0.0
    );

    // The destination comes back: the retried batch goes through.
    std::fs::remove_file(d.join("out/lines.log")).expect("rm");
    wait_for(WAIT, "/health to recover", || {
        get(&url, "/health").expect("health").0 == 200
    });
    wait_for(WAIT, "every line to arrive", || {
        d.lines("out/lines.log").len() == 300
    });
    stop_cleanly(child, WAIT);
    let lines = d.lines("out/lines.log");
    let want: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want);
}

#[test]
fn tap_streams_events_leaving_the_named_component() {
    let d = Dir::new();
    let Running { child, url, .. } = start_on_any_port(&d, |port| {
        format!(
            r#"api: {{address: "127.0.0.1:{port}"}}
sources:
  gen: {{type: generator, rate: 500, format: json, processors: [parse], channels: [raw]}}
processors:
  parse: {{type: parse_json}}
  label:
    type: add_fields
    input: raw
    channels: [labelled]
    fields: {{stage: labelled}}
channels:
  raw: {{type: memory, capacity: 1000}}
  labelled: {{type: memory, capacity: 1000}}
sinks:
  out: {{type: file, channel: labelled, path: ./out/x.json, format: json}}
"#
        )
    });
    let tap = |id: &str| {
        let o = d.run(&["tap", id, "--api", &url, "-n", "5"], WAIT);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
            .collect::<Vec<_>>()
    };
    let labelled = tap("label");
    assert_eq!(labelled.len(), 5);
    for e in &labelled {
        assert_eq!(e["component"], "label");
        assert_eq!(e["fields"]["stage"], "labelled", "{e}");
        // parse_json ran upstream: its fields are there too.
        assert!(e["fields"]["seq"].is_u64(), "{e}");
        assert!(e["message"].as_str().is_some_and(|m| m.starts_with('{')));
    }
    let parsed = tap("parse");
    assert_eq!(parsed.len(), 5);
    for e in &parsed {
        assert_eq!(e["component"], "parse");
        assert!(e["fields"]["seq"].is_u64(), "{e}");
        assert!(e["fields"].get("stage").is_none(), "{e}");
    }
    let delivered = tap("out");
    assert_eq!(delivered.len(), 5);
    assert!(delivered.iter().all(|e| e["component"] == "out"));

    let o = d.run(&["tap", "nope", "--api", &url], WAIT);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no component `nope`"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    stop_cleanly(child, WAIT);
}

#[test]
fn top_once_prints_components_counts_and_channel_fill() {
    let d = Dir::new();
    let Running { child, port, url } = start_following(&d, 1234);
    wait_for(WAIT, "every line to arrive", || {
        d.lines("out/lines.log").len() == 1234
    });
    let o = d.run(
        &["top", "--once", "--api", &url, "--interval", "200ms"],
        WAIT,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let row = |id: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()))
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|w| w.len() > 2 && w[1] == id)
            .unwrap_or_else(|| panic!("no row for `{id}` in\n{text}"))
    };
    // KIND ID TYPE STATE IN/s OUT/s IN OUT ERRORS DISCARDED
    let out = row("out");
    assert_eq!(out[0], "sink");
    assert_eq!(out[2], "file");
    assert_eq!(out[3], "running");
    assert_eq!(&out[6..], ["1234", "1234", "0", "0"], "{text}");
    assert_eq!(&row("src")[6..8], ["1234", "1234"], "{text}");
    // The channel: id, type, fill bar, percent, events, capacity, bytes.
    let main = text
        .lines()
        .find(|l| l.contains("main") && l.contains("memory"))
        .unwrap_or_else(|| panic!("no channel row in\n{text}"));
    assert!(main.contains("0%") && main.contains("500"), "{main}");
    stop_cleanly(child, WAIT);

    let o = d.run(&["top", "--once", "--api", &url], WAIT);
    assert_eq!(o.status.code(), Some(1), "no agent: an error");
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn api_section_errors_name_file_line_and_column() {
    let d = Dir::new();
    let base = "sources:\n  g: {type: generator, count: 1, channels: [c]}\nchannels:\n  c: {type: memory}\nsinks:\n  s: {type: null, channel: c}\n";
    d.write("bad.yaml", &format!("api:\n  address: nowhere\n{base}"));
    d.write("typo.yaml", &format!("api:\n  adress: 127.0.0.1:1\n{base}"));
    d.write(
        "good.yaml",
        &format!("api:\n  address: 127.0.0.1:7583\n{base}"),
    );
    let refused = |file: &str, problem: &str| {
        let o = d.run(&["validate", file], WAIT);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(problem), "{}", stderr(&o));
    };
    refused(
        "bad.yaml",
        "bad.yaml:2:12: api: `address` must be IP:PORT, e.g. 127.0.0.1:7583 or [::1]:7583, found `nowhere`",
    );
    refused(
        "typo.yaml",
        "typo.yaml:2:3: api: unknown option `adress`: did you mean `address`?",
    );
    let o = d.run(&["validate", "good.yaml"], WAIT);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The browser the dashboard tests drive, from `scripts/services/chromium.sh`.
fn chromium() -> String {
    std::env::var("SLUICE_TEST_CHROMIUM").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_CHROMIUM is not set: run the tests with scripts/test.sh (it installs headless Chromium)")
    })
}

/// Runs headless Chromium on `url` with a fresh profile, a few seconds of
/// (virtual) time and `args` (what to produce: `--dump-dom`, a screenshot).
pub(crate) fn headless(url: &str, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().expect("profile dir");
    let user_data = format!("--user-data-dir={}", profile.path().display());
    let child = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &user_data,
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    let o = wait_output(child, Duration::from_secs(120));
    assert!(o.status.success(), "chromium failed: {}", stderr(&o));
    o
}

/// The page's DOM after a few seconds of (virtual) time in headless Chromium.
pub(crate) fn dump_dom(url: &str) -> String {
    stdout(&headless(url, &["--dump-dom"]))
}

/// The text of the element with `id` in `dom`.
fn text_of(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = at + dom[at..].find('>')? + 1;
    let end = start + dom[start..].find('<')?;
    Some(dom[start..end].to_string())
}

#[test]
fn dashboard_shows_graph_rates_health_and_channel_fill() {
    let d = Dir::new();
    // `fast` flows; `stuck` cannot write, so its channel fills up.
    full_disk(&d, "out/stuck.log");
    let Running { child, url, .. } = start_on_any_port(&d, |port| {
        format!(
            "api: {{address: \"127.0.0.1:{port}\"}}\nsources:\n  gen: {{type: generator, rate: 1000, channels: [flow]}}\n  gen2: {{type: generator, rate: 1000, channels: [blocked]}}\nchannels:\n  flow: {{type: memory, capacity: 1000}}\n  blocked: {{type: memory, capacity: 50}}\nsinks:\n  fast: {{type: file, channel: flow, path: ./out/fast.log}}\n  stuck: {{type: file, channel: blocked, path: ./out/stuck.log}}\n"
        )
    });
    wait_for(WAIT, "the blocked channel to fill", || {
        get(&url, "/metrics")
            .expect("metrics")
            .1
            .contains("sluice_channel_events{channel_id=\"blocked\",channel_type=\"memory\"} 50")
    });
    let dom = dump_dom(&format!("{url}/"));
    // Let the stuck sink recover so that the stop can drain.
    std::fs::remove_file(d.join("out/stuck.log")).expect("rm");
    stop_cleanly(child, WAIT);

    let polls: u32 = dom
        .split("data-polls=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the page never polled:\n{dom}"));
    assert!(polls >= 2, "{polls} polls");
    assert_eq!(text_of(&dom, "status").as_deref(), Some("unhealthy"));
    // The graph has a node per component and channel.
    for node in [
        "c:gen",
        "c:gen2",
        "ch:flow",
        "ch:blocked",
        "c:fast",
        "c:stuck",
    ] {
        assert!(
            dom.contains(&format!("data-node=\"{node}\"")),
            "no {node} in\n{dom}"
        );
    }
    // Rates: events flow through `fast`, none leave `stuck`.
    let rate = |id: &str| -> f64 {
        text_of(&dom, id)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no numeric {id} in\n{dom}"))
    };
    assert!(rate("rate-out-gen") > 0.0);
    assert!(rate("rate-in-fast") > 0.0);
    assert_eq!(rate("rate-out-stuck"), 0.0);
    assert_eq!(
        text_of(&dom, "fill-blocked").as_deref(),
        Some("50 / 50 (100%)")
    );
    let flow = text_of(&dom, "fill-flow").expect("fill-flow");
    assert!(
        flow.ends_with(" / 1000 (0%)") || flow.contains(" / 1000 ("),
        "{flow}"
    );
    assert!(
        dom.contains("id=\"component-stuck\" class=\"unhealthy\""),
        "{dom}"
    );
}

#[test]
fn dashboard_plots_the_gauges_a_component_reports() {
    let d = Dir::new();
    let yaml = "sources:\n  gen: {type: generator, count: 1, channels: [c]}\nprocessors:\n  detect: {type: add_fields, input: c, channels: [d], fields: {x: 1}}\nchannels:\n  c: {type: memory}\n  d: {type: memory}\nsinks:\n  s: {type: null, channel: d}\n";
    let path = d.write("p.yaml", yaml);
    let pipeline =
        sluice_runtime::pipeline::load_pipeline(&path, &sluice::registry()).expect("valid");
    let topology = sluice_runtime::topology::Topology::build(&pipeline).expect("builds");
    let detect = topology
        .components()
        .iter()
        .find(|c| c.id == "detect")
        .expect("detect")
        .metrics
        .clone();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let state = std::sync::Arc::new(sluice_api::ApiState::new(&topology));
    let server = rt
        .block_on(sluice_api::serve(
            "127.0.0.1:0".parse().expect("addr"),
            state,
        ))
        .expect("serve");
    // The score moves while the page polls.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                detect.set_gauge("anomaly_score", 0.25 + f64::from(i % 2) * 0.5);
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // The page reads the history once when it opens (then every few
    // polls): wait for the first sample, or its chart has only the
    // current value.
    let base = format!("http://{}", server.address);
    wait_for(WAIT, "a sample of the gauge in the history", || {
        get(&base, "/api/history").is_some_and(|(_, h)| h.contains("\"anomaly_score\""))
    });
    let dom = dump_dom(&format!("{base}/"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().expect("feeder");

    assert!(dom.contains("anomaly_score — detect"), "{dom}");
    assert!(dom.contains("id=\"chart-detect-anomaly_score\""), "{dom}");
    let value = text_of(&dom, "gauge-detect-anomaly_score").expect("current value");
    assert!(
        value == "anomaly_score = 0.250" || value == "anomaly_score = 0.750",
        "{value}"
    );
    let points = dom
        .split("id=\"chart-detect-anomaly_score\"")
        .nth(1)
        .and_then(|s| s.split("<polyline points=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .expect("a line");
    assert!(points.split(' ').count() >= 2, "{points}");
    // And the gauge is a Prometheus metric too.
    let (_, metrics) = get(&format!("http://{}", server.address), "/metrics").expect("metrics");
    let m = parse_metrics(&metrics);
    let v = m[&(
        "sluice_component_anomaly_score".to_string(),
        component("detect", "processor", "add_fields"),
    )];
    assert!(v == 0.25 || v == 0.75, "{v}");
}

#[test]
fn the_api_follows_a_reload() {
    let d = Dir::new();
    let Running { child, url, .. } = start_following(&d, 100);
    // As written: the API's port is 0 in the file too.
    let before = follow_pipeline(0, "");
    wait_for(WAIT, "every line to arrive", || {
        d.lines("out/lines.log").len() == 100
    });
    // A second sink on a channel of its own, fed by the same source.
    let after = before
        .replace("channels: [main]", "channels: [main, copy]")
        .replace(
            "  main: {type: memory, capacity: 500}\n",
            "  main: {type: memory, capacity: 500}\n  copy: {type: memory, capacity: 500}\n",
        )
        + "  extra:\n    type: file\n    channel: copy\n    path: ./out/copy.log\n";
    d.write("p.yaml", &after);
    signal(&child, libc::SIGHUP);
    wait_for(WAIT, "the new sink and channel to show in the API", || {
        let (_, body) = get(&url, "/api/components").expect("components");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let has = |list: &str, id: &str| {
            v[list]
                .as_array()
                .is_some_and(|l| l.iter().any(|c| c["id"] == id))
        };
        has("components", "extra") && has("channels", "copy")
    });
    // Lines read after the reload go to both sinks; the new one is counted.
    d.append("in/a.log", &numbered_lines(100, 150));
    wait_for(WAIT, "the new sink to count the new lines", || {
        let m = parse_metrics(&get(&url, "/metrics").expect("metrics").1);
        m.get(&(
            "sluice_component_sent_events_total".to_string(),
            component("extra", "sink", "file"),
        )) == Some(&50.0)
    });
    let copied: Vec<String> = (100..150).map(|i| format!("line {i}")).collect();
    assert_eq!(d.lines("out/copy.log"), copied);
    let m = parse_metrics(&get(&url, "/metrics").expect("metrics").1);
    assert!(m.contains_key(&(
        "sluice_channel_events".to_string(),
        "channel_id=copy,channel_type=memory".to_string()
    )));
    assert_eq!(get(&url, "/health").expect("health").0, 200);
    stop_cleanly(child, WAIT);
}

#[test]
fn a_failing_group_member_degrades_health_while_the_group_delivers() {
    let d = Dir::new();
    d.write("in/a.log", &numbered_lines(0, 300));
    // Both members' disks are full: every write fails.
    for f in ["out/primary.log", "out/secondary.log"] {
        full_disk(&d, f);
    }
    let Running { child, url, .. } = start_on_any_port(&d, |port| {
        format!("api:\n  address: 127.0.0.1:{port}\nsources:\n  src: {{type: file, include: [\"./in/*.log\"], read_from: beginning, follow: true, poll_interval: 50ms, channels: [main]}}\nchannels:\n  main: {{type: memory, capacity: 500}}\nsinks:\n  primary: {{type: file, channel: main, path: ./out/primary.log, batch_size: 100}}\n  secondary: {{type: file, channel: main, path: ./out/secondary.log, batch_size: 100}}\nsink_groups:\n  out:\n    strategy: failover\n    sinks: [primary, secondary]\n    priorities: {{primary: 10, secondary: 5}}\n    penalty: 100ms\n    max_penalty: 300ms\n")
    });
    let health = || -> (u16, serde_json::Value) {
        let (status, body) = get(&url, "/health").expect("health");
        (status, serde_json::from_str(&body).expect("json"))
    };
    let healthy = |v: &serde_json::Value, id: &str| {
        v["components"]
            .as_array()
            .expect("components")
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["healthy"] == true)
    };

    // 1. The whole group fails: unhealthy.
    wait_for(WAIT, "/health to report both members failing", || {
        let (_, v) = health();
        healthy(&v, "primary") == Some(false) && healthy(&v, "secondary") == Some(false)
    });
    let (status, v) = health();
    assert_eq!(
        (status, v["status"].as_str()),
        (503, Some("unhealthy")),
        "{v}"
    );
    assert_eq!(v["groups"][0]["healthy"], false, "{v}");

    // 2. The secondary comes back: the group delivers, the agent is degraded
    // but answers 200.
    std::fs::remove_file(d.join("out/secondary.log")).expect("rm");
    wait_for(WAIT, "every line at the secondary", || {
        d.lines("out/secondary.log").len() == 300
    });
    wait_for(WAIT, "/health to report degraded", || {
        health().1["status"] == "degraded"
    });
    let (status, v) = health();
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (healthy(&v, "primary"), healthy(&v, "secondary")),
        (Some(false), Some(true)),
        "{v}"
    );
    assert_eq!(v["groups"][0]["id"], "out", "{v}");
    assert_eq!(v["groups"][0]["healthy"], true, "{v}");
    let view: serde_json::Value =
        serde_json::from_str(&get(&url, "/api/components").expect("components").1).expect("json");
    assert_eq!(view["status"], "degraded");

    // 3. The primary comes back: the group fails back and all is well.
    // Once its penalty (at most `max_penalty`) has passed, the next batch
    // tries it first.
    std::fs::remove_file(d.join("out/primary.log")).expect("rm");
    std::thread::sleep(Duration::from_millis(600));
    d.write("in/b.log", &numbered_lines(300, 400));
    wait_for(WAIT, "the new lines at the primary", || {
        d.lines("out/primary.log").len() == 100
    });
    wait_for(WAIT, "/health to report ok", || {
        health().1["status"] == "ok"
    });
    assert_eq!(health().0, 200);
    stop_cleanly(child, WAIT);
    let mut all = d.lines("out/primary.log");
    all.extend(d.lines("out/secondary.log"));
    all.sort_by_key(|l| l[5..].parse::<usize>().expect("a number"));
    let want: Vec<String> = (0..400).map(|i| format!("line {i}")).collect();
    assert_eq!(all, want);
}
