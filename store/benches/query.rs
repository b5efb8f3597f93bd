//! Query latency over an existing store: `cargo bench -p sluice-store
//! --bench query -- PATH [RUNS]`. Each query runs RUNS times (default 200)
//! after one warm-up, in one process with the index open (as a long-lived
//! HTTP API would), and p50 and p99 are printed in milliseconds as a
//! Markdown table. `benches/store.sh` builds the index and runs this.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice_core::event::Timestamp;
use sluice_store::{SearchOptions, StoreReader};

/// Runs `q` `runs` times: (matches, p50 ms, p99 ms).
fn measure(reader: &StoreReader, q: &str, opts: &SearchOptions, runs: usize) -> (u64, f64, f64) {
    let mut times = Vec::with_capacity(runs);
    let mut matches = 0;
    for i in 0..=runs {
        let start = Instant::now();
        let r = reader.search(q, opts).unwrap_or_else(|e| {
            eprintln!("{q}: {e}");
            std::process::exit(1);
        });
        if i > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        matches = r.total;
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    (matches, at(0.50), at(0.99))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(path) = args.first().map(PathBuf::from) else {
        eprintln!("usage: query PATH [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args
        .get(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(200)
        .max(1);
    let reader = StoreReader::open(&path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    // The index's time span, from its per-second counts.
    let seconds = reader
        .search(
            "*",
            &SearchOptions {
                count_by: Some(Duration::from_secs(1)),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1);
        });
    let (Some(first), Some(last)) = (seconds.buckets.first(), seconds.buckets.last()) else {
        eprintln!("the store is empty");
        std::process::exit(1);
    };
    let at = |s: &str| {
        sluice_store::search::parse_time(s, Timestamp(0))
            .map(|t| t.0)
            .unwrap_or(0)
    };
    let (lo, hi) = (at(&first.start), at(&last.start) + 1_000_000_000);
    // The middle tenth of the span.
    let from = Timestamp(lo + (hi - lo) / 100 * 45);
    let to = Timestamp(lo + (hi - lo) / 100 * 55);
    let range = format!("timestamp:[{from} TO {to}}}");

    let top = SearchOptions {
        limit: 100,
        ..Default::default()
    };
    let count = SearchOptions::default();
    let per_minute = SearchOptions {
        count_by: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let in_range = SearchOptions {
        from: Some(from),
        to: Some(to),
        limit: 100,
        ..Default::default()
    };
    println!(
        "{} events in {}, {runs} runs per query",
        seconds.total,
        path.display()
    );
    println!();
    println!("| query | kind | matches | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    let cases: [(&str, &str, &SearchOptions); 11] = [
        ("status:404", "term, newest 100", &top),
        ("status:404", "term, count", &count),
        ("\"POST /api/v1/orders\"", "phrase, newest 100", &top),
        ("\"POST /api/v1/orders\"", "phrase, count", &count),
        ("size:[1000 TO 1999]", "numeric range, newest 100", &top),
        ("size:[1000 TO 1999]", "numeric range, count", &count),
        (&range, "time range, newest 100", &top),
        (&range, "time range, count", &count),
        (
            "status:404",
            "term within --from/--to, newest 100",
            &in_range,
        ),
        ("status:500 AND login", "boolean, newest 100", &top),
        (
            "status:[500 TO 599]",
            "range, count per minute",
            &per_minute,
        ),
    ];
    for (q, kind, opts) in cases {
        let (matches, p50, p99) = measure(&reader, q, opts, runs);
        let shown = if q.starts_with("timestamp:") {
            "timestamp:[…]"
        } else {
            q
        };
        println!("| `{shown}` | {kind} | {matches} | {p50:.2} | {p99:.2} |");
    }
}
