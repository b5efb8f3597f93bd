//! The `store` sink and `sluice search`: real pipelines into a real index,
//! searched by the real binary.

use std::collections::HashMap;
use std::time::Duration;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(300);

/// `sluice search ARGS --count` in `d`: the number it prints.
fn count(d: &Dir, args: &[&str]) -> u64 {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    all.push("--count");
    let o = d.run(&all, LIMIT);
    ok(&o);
    stdout(&o)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {:?}", stdout(&o)))
}

/// Every event of the store as JSON, newest first.
fn events(d: &Dir, store: &str, limit: usize) -> Vec<serde_json::Value> {
    let n = limit.to_string();
    let o = d.run(&["search", store, "*", "--json", "--limit", &n], LIMIT);
    ok(&o);
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect()
}

/// Seconds since the epoch of an apache time such as `26/Nov/2026:06:06:13 +0000`.
fn apache_seconds(line: &str) -> i64 {
    let start = line.find('[').expect("[") + 1;
    let end = line.find(" +0000]").expect("]");
    let t = &line[start..end];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day: i64 = t[0..2].parse().expect("day");
    let month = months.iter().position(|m| *m == &t[3..6]).expect("month") as i64 + 1;
    let year: i64 = t[7..11].parse().expect("year");
    let (h, mi, s): (i64, i64, i64) = (
        t[12..14].parse().expect("h"),
        t[15..17].parse().expect("m"),
        t[18..20].parse().expect("s"),
    );
    // Days from the civil date (proleptic Gregorian).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + mi * 60 + s
}

fn rfc3339(secs: i64) -> String {
    // Through the agent's own formatting is not at hand here: build it.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The status code of an `apache_common` line.
fn status(line: &str) -> &str {
    line.rsplit(' ').nth(1).unwrap_or_default()
}

/// Of generated `apache_common` lines: how many have status 404, and how
/// many are a `POST /api/v1/orders` (what the status and phrase queries of
/// the store tests must find).
pub(crate) fn not_found_and_orders(lines: &[String]) -> (u64, u64) {
    let not_found = lines.iter().filter(|l| status(l) == "404").count() as u64;
    let orders = lines
        .iter()
        .filter(|l| l.contains("\"POST /api/v1/orders HTTP/1.1\""))
        .count() as u64;
    (not_found, orders)
}

#[test]
fn a_million_apache_events_are_found_by_status_phrase_and_time() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        r#"sources:
  web:
    type: generator
    count: 1000000
    format: apache_common
    batch_size: 2000
    processors: [parse]
    channels: [index, copy]
processors:
  parse:
    type: parse_regex
    pattern: '" (?P<status>\d{3}) (?P<size>\d+)$'
    types: {status: integer, size: integer}
channels:
  index: {type: memory, capacity: 20000}
  copy: {type: memory, capacity: 20000}
sinks:
  store: {type: store, channel: index, path: ./store, batch_size: 10000}
  copy: {type: file, channel: copy, path: ./out/access.log}
"#,
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    assert_eq!(
        final_counts(&stderr(&o))["store"]["events_out"].as_u64(),
        Some(1_000_000)
    );
    // What was generated, from the copy the file sink wrote.
    let lines = d.lines("out/access.log");
    assert_eq!(lines.len(), 1_000_000);
    let (not_found, orders) = not_found_and_orders(&lines);
    let mut per_second: HashMap<i64, u64> = HashMap::new();
    for l in &lines {
        *per_second.entry(apache_seconds(l)).or_default() += 1;
    }
    let first = *per_second.keys().min().expect("a second");
    let last = *per_second.keys().max().expect("a second");
    assert!(not_found > 0 && orders > 0);

    assert_eq!(count(&d, &["store", "*"]), 1_000_000);
    assert_eq!(count(&d, &["store", "status:404"]), not_found);
    assert_eq!(count(&d, &["store", "\"POST /api/v1/orders\""]), orders);
    // Boolean operators and a numeric range.
    let server_errors_get = lines
        .iter()
        .filter(|l| status(l) == "500" && l.contains("\"GET "))
        .count() as u64;
    assert_eq!(
        count(&d, &["store", "status:500 AND message:get"]),
        server_errors_get
    );
    let small = lines
        .iter()
        .filter(|l| {
            let n: u64 = l
                .rsplit(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (1000..2000).contains(&n)
        })
        .count() as u64;
    assert_eq!(count(&d, &["store", "size:[1000 TO 2000}"]), small);
    assert_eq!(
        count(&d, &["store", "status:404 OR status:500"]),
        not_found + lines.iter().filter(|l| status(l) == "500").count() as u64
    );
    assert_eq!(
        count(&d, &["store", "* -status:404"]),
        1_000_000 - not_found
    );
    // A time range: every whole second but the first and the last (or the
    // first alone when the run fit in one or two seconds).
    let (from, to) = if last - first >= 2 {
        (first + 1, last)
    } else {
        (first, first + 1)
    };
    let in_range: u64 = (from..to)
        .map(|s| per_second.get(&s).copied().unwrap_or(0))
        .sum();
    let (f, t) = (rfc3339(from), rfc3339(to));
    assert_eq!(
        count(&d, &["store", "*", "--from", &f, "--to", &t]),
        in_range
    );
    // The same as a query on the timestamp.
    let q = format!("timestamp:[{f} TO {t}}}");
    assert_eq!(count(&d, &["store", &q]), in_range);
    // Counts per second add up to the per-second counts of the copy.
    let o = d.run(
        &["search", "store", "*", "--count-by", "1s", "--json"],
        LIMIT,
    );
    ok(&o);
    let mut buckets = HashMap::new();
    for l in stdout(&o).lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json bucket");
        let start = v["start"].as_str().expect("start").to_string();
        buckets.insert(start, v["count"].as_u64().expect("count"));
    }
    for (s, n) in &per_second {
        assert_eq!(buckets.get(&rfc3339(*s)), Some(n), "second {}", rfc3339(*s));
    }
    assert_eq!(buckets.len(), per_second.len());
    // Newest first, with fields.
    let o = d.run(
        &["search", "store", "status:404", "--json", "--limit", "50"],
        LIMIT,
    );
    ok(&o);
    let hits: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(hits.len(), 50);
    for w in hits.windows(2) {
        assert!(w[0]["timestamp"].as_str() >= w[1]["timestamp"].as_str());
    }
    for h in &hits {
        assert_eq!(h["fields"]["status"], 404);
        assert!(h["message"].as_str().is_some_and(|m| m.contains("\" 404 ")));
    }
    // A bad query names the problem and exits 2.
    let o = d.run(&["search", "store", "status:[1 TO"], LIMIT);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad query"), "{}", stderr(&o));
    // So does a bad option, named as the flag.
    let o = d.run(&["search", "store", "*", "--count-by", "0s"], LIMIT);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--count-by: must be longer than 0"),
        "{}",
        stderr(&o)
    );
    let o = d.run(&["search", "store", "*", "--from", "soon"], LIMIT);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--from:"), "{}", stderr(&o));
}

/// The `seq` field of every event of `store`, sorted.
fn sequence_numbers(d: &Dir, store: &str, limit: usize) -> Vec<u64> {
    let mut seqs: Vec<u64> = events(d, store, limit)
        .iter()
        .map(|e| e["fields"]["seq"].as_u64().expect("a sequence number"))
        .collect();
    seqs.sort_unstable();
    seqs
}

#[test]
fn kill_9_at_random_moments_leaves_every_event_searchable_exactly_once() {
    const N: u64 = 200_000;
    const KILLS: u64 = 4;
    const SOURCE_BATCH: u64 = 1000;
    const SINK_BATCH: u64 = 2000;
    let d = Dir::new();
    // A resuming generator into disk channels: a kill loses nothing and
    // repeats at most a generator batch and a sink batch. The `store` sink
    // names the events' identity (`dedupe_by`), which turns those repeats
    // into replacements; the `plain` one does not.
    d.write(
        "p.yaml",
        &format!(
            r#"sources:
  gen:
    type: generator
    count: {N}
    rate: 25000
    batch_size: {SOURCE_BATCH}
    resume: true
    processors: [parse]
    channels: [main, plain]
processors:
  parse:
    type: parse_regex
    pattern: '^(?P<seq>\d+)$'
    types: {{seq: integer}}
channels:
  main: {{type: disk, max_segment_bytes: 1MiB}}
  plain: {{type: disk, max_segment_bytes: 1MiB}}
sinks:
  store:
    type: store
    channel: main
    path: ./store
    batch_size: {SINK_BATCH}
    dedupe_by: [message]
  plain:
    type: store
    channel: plain
    path: ./plain
    batch_size: {SINK_BATCH}
"#
        ),
    );
    // Each run is killed at a random moment once its store has committed
    // something new; at most 25,000 events a second, the kills fall in the
    // middle of the ingest, and a last run finishes it.
    let mut rng = Rng(0x5709_E4D1);
    let mut seen = 0;
    for kill in 1..=KILLS {
        let child = d.start(&["run", "p.yaml"]);
        wait_for(LIMIT, "the store to commit more", || {
            let o = d
                .sluice(&["search", "store", "*", "--count"])
                .output()
                .expect("search");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .is_ok_and(|n| n > seen)
        });
        std::thread::sleep(Duration::from_millis(rng.below(500)));
        kill9(child);
        // The index opens at its last commit; what it had stays.
        let now = count(&d, &["store", "*"]);
        assert!(now >= seen, "kill {kill}: {now} events, {seen} before");
        seen = now;
    }
    assert!(
        seen > 0 && seen < N,
        "the kills must hit the ingest in progress ({seen} of {N} events before the last run)"
    );
    ok(&d.run(&["run", "p.yaml"], LIMIT));

    // With `dedupe_by`: every event exactly once.
    assert_eq!(count(&d, &["store", "*"]), N);
    let seqs = sequence_numbers(&d, "store", N as usize + 1);
    assert_eq!(seqs.len() as u64, N);
    assert!(seqs.iter().copied().eq(0..N), "every event exactly once");
    // Searches agree: per range of numbers, and single events by field and
    // by body.
    for start in (0..N).step_by(40_000) {
        let q = format!("seq:[{start} TO {}]", start + 39_999);
        assert_eq!(count(&d, &["store", &q]), 40_000, "{q}");
    }
    for _ in 0..5 {
        let n = rng.below(N).to_string();
        assert_eq!(count(&d, &["store", &format!("seq:{n}")]), 1, "seq {n}");
        assert_eq!(
            count(&d, &["store", &format!("message:{n}")]),
            1,
            "message {n}"
        );
    }

    // Without: every event at least once, and per kill at most a source
    // batch and a sink batch again.
    let seqs = sequence_numbers(
        &d,
        "plain",
        (N + KILLS * (SOURCE_BATCH + SINK_BATCH)) as usize + 1,
    );
    let mut unique = seqs.clone();
    unique.dedup();
    assert!(unique.iter().copied().eq(0..N), "every event at least once");
    let duplicates = (seqs.len() - unique.len()) as u64;
    assert!(
        duplicates <= KILLS * (SOURCE_BATCH + SINK_BATCH),
        "{duplicates} duplicates after {KILLS} kills"
    );
    eprintln!("{KILLS} kills, {seen} events stored before the last run: {duplicates} duplicates without dedupe_by");

    // A full replay (the generator's checkpoint removed) delivers every
    // event again; `dedupe_by` keeps exactly one of each.
    let plain_before = count(&d, &["plain", "seq:[0 TO 999]"]);
    std::fs::remove_dir_all(d.join(".sluice/p/sources")).expect("remove checkpoints");
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    assert_eq!(count(&d, &["store", "*"]), N);
    assert_eq!(count(&d, &["store", "seq:[0 TO 999]"]), 1000);
    assert_eq!(count(&d, &["plain", "seq:[0 TO 999]"]), plain_before + 1000);
}
