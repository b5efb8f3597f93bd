//! Per-event cost of evaluating conditions over a prepared batch.
//!
//! Each benchmark evaluates one condition on every event of a 1,000-event
//! batch (Apache-style bodies with parsed fields, a quarter of them 5xx), so
//! the reported time divided by 1,000 is the cost per event. `baseline` runs
//! the same loop with a closure that returns `true`.
//!
//! Run: `cargo bench -p sluice-processors --bench condition -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_core::prelude::*;
use sluice_processors::condition::Condition;

const N: usize = 1000;

fn batch() -> Batch {
    let methods = ["GET", "POST", "PUT", "GET"];
    let levels = ["info", "warn", "error", "info"];
    (0..N)
        .map(|i| {
            let status: i64 = if i % 4 == 0 { 503 } else { 200 };
            let body = format!(
                "10.0.0.{} - - [10/Oct/2000:13:55:36 -0700] \"{} /api/v1/items/{i} HTTP/1.1\" {status} {}{}",
                i % 256,
                methods[i % 4],
                100 + i,
                if i % 10 == 0 { " upstream timeout" } else { "" },
            );
            let mut e = Event::new(body, Timestamp(i as i64));
            e.insert("level", levels[i % 4]);
            e.insert("method", methods[i % 4]);
            e.insert("status", status);
            e.insert("http.path", format!("/api/v1/items/{i}"));
            e
        })
        .collect::<Vec<_>>()
        .into()
}

fn count(batch: &Batch, f: impl Fn(&Event) -> bool) -> usize {
    batch.iter().filter(|e| f(black_box(e))).count()
}

fn bench(c: &mut Criterion) {
    let batch = batch();
    let mut g = c.benchmark_group("condition");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("baseline_true", |b| b.iter(|| count(&batch, |_| true)));
    let cases = [
        ("field_eq", r#".level == "error""#),
        ("numeric_ge", ".status >= 500"),
        ("regex_message", r#".message =~ "timeout|refused""#),
        (
            "compound",
            r#"(.status >= 500 && .method in ["POST", "PUT"]) || .level == "error""#,
        ),
        ("nested_path_prefix", r#"starts_with(.http.path, "/api/")"#),
    ];
    for (name, src) in cases {
        let cond = match Condition::parse(src) {
            Ok(c) => c,
            Err(e) => panic!("{src}: {e}"),
        };
        g.bench_function(name, |b| b.iter(|| count(&batch, |e| cond.matches(e))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
