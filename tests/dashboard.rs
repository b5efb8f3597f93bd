//! The dashboard as an operator opens it: the real agent, its page in
//! headless Chromium, a screenshot of each view in the test's directory
//! (also copied to `$SLUICE_TEST_SCREENSHOTS` when set, for the docs), and
//! assertions on what the page shows against `/metrics`, `sluice search`
//! and the anomaly detector's report.

use std::path::Path;
use std::time::Duration;

use crate::operations::{dump_dom, get, headless, parse_metrics, start_agent_any_port};
use crate::util::*;

const WAIT: Duration = Duration::from_secs(60);

/// Saves a screenshot of `url` as `name` in `d` (and in
/// `$SLUICE_TEST_SCREENSHOTS`), at a laptop's window size.
fn screenshot(d: &Dir, url: &str, name: &str) {
    let png = d.join(name);
    let target = format!("--screenshot={}", png.display());
    headless(
        url,
        &["--hide-scrollbars", "--window-size=1366,1000", &target],
    );
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "{name} is not a PNG");
    if let Some(dir) = std::env::var_os("SLUICE_TEST_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::copy(&png, Path::new(&dir).join(name)).expect("copy screenshot");
    }
}

/// The text of the element with `id` in `dom`, up to its first child.
fn text_of(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = at + dom[at..].find('>')? + 1;
    let end = start + dom[start..].find('<')?;
    Some(dom[start..end].to_string())
}

/// The text of `<span id=ID><i ...></i>TEXT</span>` (a chart's legend).
fn legend_of(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = at + dom[at..].find("</i>")? + 4;
    let end = start + dom[start..].find('<')?;
    Some(dom[start..end].to_string())
}

/// `text` as the DOM dump escapes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A component's counter in `/metrics`.
fn counter(url: &str, name: &str, id: &str) -> Option<f64> {
    let (_, text) = get(url, "/metrics")?;
    parse_metrics(&text)
        .into_iter()
        .find_map(|((n, labels), v)| {
            (n == name && labels.split(',').any(|l| l == format!("component_id={id}"))).then_some(v)
        })
}

fn json(url: &str, path: &str) -> serde_json::Value {
    let (status, body) = get(url, path).expect("the API answers");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

#[test]
fn the_overview_charts_the_counts_metrics_shows_and_names_every_component() {
    let d = Dir::new();
    d.write("in/app.log", "");
    d.write(
        "p.yaml",
        "api: {address: \"127.0.0.1:0\"}\nsources:\n  application_log_of_the_shop:\n    type: file\n    include: [./in/app.log]\n    read_from: beginning\n    processors: [parse_json_lines_of_the_shop, add_the_deployment_environment]\n    channels: [events]\nprocessors:\n  parse_json_lines_of_the_shop: {type: parse_json}\n  add_the_deployment_environment: {type: add_fields, fields: {env: prod}}\nchannels:\n  events: {type: memory, capacity: 1000}\nsinks:\n  archive: {type: file, channel: events, path: ./out/archive.log}\n",
    );
    let (child, url) = start_agent_any_port(&d);
    // Lines come once the agent has a first sample, so the chart shows them
    // arrive (and the parse errors as marks).
    wait_for(WAIT, "a first sample", || {
        json(&url, "/api/history")["components"]["archive"]["t"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    });
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&format!("{{\"n\": {i}, \"status\": 200}}\n"));
    }
    for i in 0..5 {
        text.push_str(&format!("not json {i}\n"));
    }
    d.append("in/app.log", &text);
    let sent = "sluice_component_received_events_total";
    wait_for(WAIT, "every line delivered", || {
        counter(&url, sent, "archive") == Some(35.0)
    });
    // A few samples after the lines, for the rates to be drawn as lines.
    wait_for(WAIT, "more samples", || {
        json(&url, "/api/history")["components"]["archive"]["t"]
            .as_array()
            .is_some_and(|t| t.len() >= 4)
    });
    let page = format!("{url}/#overview");
    let dom = dump_dom(&page);
    screenshot(&d, &page, "overview.png");
    let total = |name, id| counter(&url, name, id).expect("a counter") as u64;
    let source = "application_log_of_the_shop";
    let parse = "parse_json_lines_of_the_shop";
    let out = total("sluice_component_sent_events_total", source);
    let delivered = total(sent, "archive");
    let errors = total("sluice_component_errors_total", parse);
    stop_cleanly(child, WAIT);

    // Each chart's legend shows the totals /metrics has.
    assert_eq!(out, 35);
    assert_eq!(
        legend_of(&dom, &format!("total-out-{source}")),
        Some(format!("out {out}"))
    );
    assert_eq!(
        legend_of(&dom, "total-in-archive"),
        Some(format!("in {delivered}"))
    );
    assert_eq!(errors, 5);
    assert_eq!(
        legend_of(&dom, &format!("total-errors-{parse}")),
        Some(format!("errors {errors}"))
    );
    // The errors are marked on the parser's chart where they happened.
    let chart = dom
        .split(&format!("id=\"rates-{parse}\""))
        .nth(1)
        .and_then(|s| s.split("</svg>").next())
        .expect("the parser's chart");
    let marked: u64 = chart
        .split("<title>")
        .skip(1)
        .filter_map(|t| t.split(" errors</title>").next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(marked, errors, "{chart}");
    let line = dom
        .split("id=\"rates-archive\"")
        .nth(1)
        .and_then(|s| s.split("<polyline points=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .expect("the sink's rate line");
    assert!(line.split(' ').count() >= 2, "{line}");
    // The graph names every component in full, inline processors too.
    for name in [source, "events", "archive"] {
        assert!(dom.contains(&format!(">{name}</text>")), "{name} in\n{dom}");
    }
    for p in [parse, "add_the_deployment_environment"] {
        assert!(
            dom.contains(&format!("data-inline=\"{p}\">↳ {p}</text>")),
            "{p} in\n{dom}"
        );
    }
}

/// Lines of block sessions: 100 blocks received and served 1 to 5 times,
/// then 3 odd ones that fail with an exception 5 times each.
fn block_lines() -> String {
    let mut text = String::new();
    for b in 1000..1100 {
        text.push_str(&format!("receiving block blk_{b} from 10.0.0.{}\n", b % 7));
        text.push_str(&format!("received block blk_{b} of size 67108864\n"));
        for _ in 0..=(b % 5) {
            text.push_str(&format!("served block blk_{b} to 10.0.1.{}\n", b % 11));
        }
    }
    for b in 9001..9004 {
        text.push_str(&format!("receiving block blk_{b} from 10.0.0.1\n"));
        for _ in 0..5 {
            text.push_str(&format!(
                "exception writing block blk_{b} connection reset by peer\n"
            ));
        }
    }
    text
}

#[test]
fn the_dashboard_searches_like_sluice_search_and_shows_flagged_sessions_with_their_templates() {
    let d = Dir::new();
    d.write("in/dn.log", "");
    d.write(
        "p.yaml",
        "api: {address: \"127.0.0.1:0\"}\nsources:\n  datanode:\n    type: file\n    include: [./in/dn.log]\n    read_from: beginning\n    processors: [templates]\n    channels: [lines, feed]\nprocessors:\n  templates: {type: template, mask_patterns: ['blk_\\d+']}\n  blocks: {type: session, input: feed, channels: [sessions], key_pattern: 'blk_\\d+', inactivity_timeout: 1s}\n  detect: {type: anomaly, input: sessions, channels: [scored], algorithm: kmeans, clusters: 2, training_size: 60, contamination: 0.02}\nchannels:\n  lines: {type: memory, capacity: 2000}\n  feed: {type: memory, capacity: 2000}\n  sessions: {type: memory}\n  scored: {type: memory}\nsinks:\n  store: {type: store, channel: lines, path: ./out/store}\n  sessions_out: {type: file, channel: scored, path: ./out/sessions.json, format: json}\n",
    );
    let (child, url) = start_agent_any_port(&d);
    d.append("in/dn.log", &block_lines());
    let report = "/api/components/detect/reports/anomalies";
    wait_for(WAIT, "every session scored", || {
        get(&url, report).is_some_and(|(s, b)| {
            s == 200
                && serde_json::from_str::<serde_json::Value>(&b).is_ok_and(|r| r["scored"] == 103)
        })
    });
    let count = || {
        let o = d.run(&["search", "./out/store", "exception", "--count"], WAIT);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    wait_for(WAIT, "the lines indexed", || count() == "15");

    let search = format!("{url}/#search?q=exception&range=");
    let found = dump_dom(&search);
    screenshot(&d, &search, "search.png");
    let anomalies = format!("{url}/#anomalies");
    let flagged = dump_dom(&anomalies);
    screenshot(&d, &anomalies, "anomalies.png");
    let detected = json(&url, report);
    let mined = json(&url, "/api/components/templates/reports/templates");
    stop_cleanly(child, WAIT);

    // The search shows the total `sluice search` counts, a histogram of
    // those matches, and the newest hits.
    assert_eq!(text_of(&found, "search-total"), Some(count()));
    let bars: u64 = found
        .split("data-count=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(bars, 15);
    assert_eq!(found.matches("class=\"hit\"").count(), 15);
    let first = found.split("id=\"hit-0\"").nth(1).expect("a first hit");
    assert!(first.contains("exception writing block blk_90"), "{first}");

    // Every odd block is flagged, and each flagged session lists its
    // templates in text, the unseen exception marked as what drove it.
    let listed = detected["anomalies"].as_array().expect("anomalies");
    for b in 9001..9004 {
        assert!(
            listed.iter().any(|a| a["key"] == format!("blk_{b}")),
            "blk_{b} not flagged: {detected}"
        );
    }
    for (i, a) in listed.iter().enumerate() {
        let id = format!("id=\"anomaly-detect-{i}\"");
        let shown = flagged
            .split(&id)
            .nth(1)
            .and_then(|s| s.split("id=\"anomaly-detect-").next())
            .unwrap_or_else(|| panic!("no {id} in\n{flagged}"));
        for t in a["templates"].as_array().expect("templates") {
            let text = t["text"].as_str().expect("a template text");
            assert!(shown.contains(&escaped(text)), "{text} in\n{shown}");
        }
    }
    // Each flagged one is a point of the timeline a keyboard reaches.
    assert_eq!(
        flagged
            .matches("tabindex=\"0\" role=\"button\" class=\"flag\"")
            .count(),
        listed.len()
    );
    let odd = listed
        .iter()
        .position(|a| a["key"] == "blk_9001")
        .expect("blk_9001");
    let shown = flagged
        .split(&format!("id=\"anomaly-detect-{odd}\""))
        .nth(1)
        .expect("blk_9001 shown");
    let driver = format!(
        "<tr class=\"driver\"><td class=\"num\">5</td><td class=\"tpl\">{}</td>",
        escaped("exception writing block <*> connection reset by peer")
    );
    assert!(shown.contains(&driver), "{driver} in\n{shown}");
    // The templates mined, with their counts.
    assert_eq!(mined["templates"], 4);
    for t in mined["top"].as_array().expect("templates") {
        let row = format!(
            "<td class=\"num\">{}</td><td class=\"tpl\">{}</td>",
            t["count"],
            escaped(t["text"].as_str().expect("text"))
        );
        assert!(flagged.contains(&row), "{row} in\n{flagged}");
    }
}
