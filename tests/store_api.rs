//! `GET /search` of a running agent against its `store` sink: the same
//! answers as `sluice search` on the same index, and the store chosen from
//! the pipeline running now.

use std::time::Duration;

use crate::operations::{get, start_agent_any_port};
use crate::util::*;

const WAIT: Duration = Duration::from_secs(300);

/// `s` percent-encoded for a query string.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /search?QUERY`: status and body as JSON.
fn search(url: &str, query: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(url, &format!("/search?{query}")).expect("the API answers");
    let v = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    (status, v)
}

/// The `total` of a successful `/search`.
fn total(url: &str, query: &str) -> u64 {
    let (status, v) = search(url, query);
    assert_eq!(status, 200, "{query}: {v}");
    v["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total: {v}"))
}

/// `sluice search ARGS --json` in `d`: one JSON value per line.
fn cli(d: &Dir, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    all.push("--json");
    let o = d.run(&all, WAIT);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

fn cli_count(d: &Dir, store: &str, query: &str) -> u64 {
    cli(d, &[store, query, "--count"])[0]["total"]
        .as_u64()
        .expect("a total")
}

const PIPELINE: &str = r#"sources:
  web:
    type: generator
    count: 100000
    resume: true
    format: apache_common
    batch_size: 2000
    processors: [parse]
    channels: [index, copy]
  tail:
    type: file
    include: ["./in/*.log"]
    read_from: beginning
    follow: true
    poll_interval: 50ms
    channels: [tailed]
processors:
  parse:
    type: parse_regex
    pattern: '" (?P<status>\d{3}) (?P<size>\d+)$'
    types: {status: integer, size: integer}
channels:
  index: {type: memory, capacity: 20000}
  copy: {type: memory, capacity: 20000}
  tailed: {type: memory, capacity: 1000}
sinks:
  store: {type: store, channel: index, path: ./store, batch_size: 5000}
  copy: {type: file, channel: copy, path: ./out/access.log}
"#;

const TAILED_TO_FILE: &str = "  tailed: {type: file, channel: tailed, path: ./out/tailed.log}\n";
const TAILED_TO_STORE: &str = "  lines: {type: store, channel: tailed, path: ./lines}\n";

#[test]
fn http_search_answers_as_sluice_search_and_follows_the_store_sinks_of_a_reload() {
    const N: u64 = 100_000;
    let d = Dir::new();
    d.write(
        "p.yaml",
        &format!("api:\n  address: 127.0.0.1:0\n{PIPELINE}{TAILED_TO_FILE}"),
    );
    std::fs::create_dir_all(d.join("in")).expect("mkdir in");
    let (child, url) = start_agent_any_port(&d);
    wait_for(WAIT, "every generated event to be searchable", || {
        total(&url, "q=*&limit=0") == N && d.lines("out/access.log").len() == N as usize
    });

    // What was generated, from the copy the file sink wrote.
    let lines = d.lines("out/access.log");
    let (not_found, orders) = crate::store::not_found_and_orders(&lines);
    assert!(not_found > 0 && orders > 0);

    // Term, phrase and boolean queries: as generated, and as the CLI says.
    assert_eq!(total(&url, "q=status:404"), not_found);
    assert_eq!(cli_count(&d, "store", "status:404"), not_found);
    let phrase = "\"POST /api/v1/orders\"";
    assert_eq!(total(&url, &format!("q={}", enc(phrase))), orders);
    assert_eq!(cli_count(&d, "store", phrase), orders);
    let q = "status:404 OR status:500";
    assert_eq!(
        total(&url, &format!("q={}", enc(q))),
        cli_count(&d, "store", q)
    );
    // The only store sink is the default; naming it gives the same.
    assert_eq!(total(&url, "q=status:404&store=store&limit=0"), not_found);

    // Hits: newest first, the same events and JSON as `sluice search --json`.
    let (code, v) = search(&url, "q=status:404&limit=25");
    assert_eq!(code, 200, "{v}");
    let hits = v["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 25);
    assert_eq!(hits, &cli(&d, &["store", "status:404", "--limit", "25"]));
    for w in hits.windows(2) {
        assert!(w[0]["timestamp"].as_str() >= w[1]["timestamp"].as_str());
    }
    assert!(hits.iter().all(|h| h["fields"]["status"] == 404));
    assert_eq!(v["buckets"], serde_json::json!([]));

    // Counts per second: the CLI's buckets, adding up to the total.
    let (code, v) = search(&url, "q=status:404&count_by=1s");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["total"].as_u64(), Some(not_found));
    let buckets = v["buckets"].as_array().expect("buckets");
    assert_eq!(
        buckets,
        &cli(&d, &["store", "status:404", "--count-by", "1s"])
    );
    let summed: u64 = buckets
        .iter()
        .map(|b| b["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(summed, not_found);
    assert_eq!(v["hits"], serde_json::json!([]));

    // Time bounds far away select nothing; a wide window selects all.
    assert_eq!(total(&url, "q=*&to=2000-01-01&limit=0"), 0);
    assert_eq!(total(&url, "q=*&from=2000-01-01&limit=0"), N);

    // Bad requests name the problem.
    let (code, v) = search(&url, &format!("q={}", enc("status:[1 TO")));
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("bad query")),
        "{v}"
    );
    let (code, v) = search(&url, "q=*&from=yesterday-ish");
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.starts_with("from:")),
        "{v}"
    );
    let (code, v) = search(&url, "q=*&limit=lots");
    assert_eq!(code, 400, "{v}");
    let (code, v) = search(&url, "q=*&colour=blue");
    assert_eq!(code, 400, "{v}");
    let (code, v) = search(&url, "q=*&store=nope");
    assert_eq!(code, 404, "{v}");
    assert_eq!(v["stores"], serde_json::json!(["store"]));

    // A reload adds a second store sink: the API finds it at once, and
    // without `store=` the choice is now ambiguous.
    d.write(
        "p.yaml",
        &format!("api:\n  address: 127.0.0.1:0\n{PIPELINE}{TAILED_TO_STORE}"),
    );
    signal(&child, libc::SIGHUP);
    wait_for(WAIT, "the reload to add the `lines` store", || {
        search(&url, "q=*").0 == 400
    });
    let (_, v) = search(&url, "q=*");
    assert_eq!(v["stores"], serde_json::json!(["store", "lines"]), "{v}");
    d.write(
        "in/a.log",
        &(0..30).map(|i| format!("line {i}\n")).collect::<String>(),
    );
    wait_for(WAIT, "the tailed lines in the new store", || {
        total(&url, "q=*&store=lines&limit=0") == 30
    });
    assert_eq!(total(&url, "q=%2217%22&store=lines"), 1);
    assert_eq!(cli_count(&d, "lines", "17"), 1);
    // The same search is the `search` route each store sink offers.
    let route = |path: &str| -> (u16, serde_json::Value) {
        let (status, body) = get(&url, path).expect("the API answers");
        (status, serde_json::from_str(&body).expect("JSON"))
    };
    let (code, v) = route("/api/sinks/lines/search?q=%2217%22");
    assert_eq!((code, v["total"].as_u64()), (200, Some(1)), "{v}");
    let (code, v) = route("/api/sinks/store/search?q=status:404&limit=0");
    assert_eq!((code, v["total"].as_u64()), (200, Some(not_found)), "{v}");
    let (code, v) = route("/api/sinks/lines/search?q=*&store=lines");
    assert_eq!(code, 400, "{v}");
    let (code, v) = route("/api/sinks/lines/nothing");
    assert_eq!(
        (code, &v["routes"]),
        (404, &serde_json::json!(["search"])),
        "{v}"
    );
    let (code, v) = route("/api/sinks/nope/search");
    assert_eq!(code, 404, "{v}");
    // The first store is untouched by the reload (which restarts the
    // finished generator, on closed channels: it resumes at its count).
    assert_eq!(total(&url, "q=status:404&store=store&limit=0"), not_found);
    stop_cleanly(child, WAIT);
}

#[test]
fn http_search_without_a_store_sink_is_not_found() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "api:\n  address: 127.0.0.1:0\nsources:\n  tail:\n    type: file\n    include: [\"./in/*.log\"]\n    follow: true\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/lines.log}\n",
    );
    let (child, url) = start_agent_any_port(&d);
    let (code, v) = search(&url, "q=*");
    assert_eq!(code, 404, "{v}");
    assert_eq!(v["error"], "the pipeline has no store sink");
    stop_cleanly(child, WAIT);
}
