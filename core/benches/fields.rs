//! Cost of building an event's fields: small events (the hot path) and
//! hostile ones with tens of thousands of keys, which must cost linear time.
//!
//! * `insert/N`: `N` fields set one by one with `Fields::insert` (32: where
//!   a map starts keeping an index);
//! * `json/N`: a JSON object of `N` keys parsed into `Fields` (what
//!   `parse_json` and the `http` source do);
//! * `get/8`: every field of an 8-field event looked up once.
//!
//! Run: `cargo bench -p sluice-core --bench fields -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_core::prelude::*;

fn names(n: usize) -> Vec<FieldName> {
    (0..n)
        .map(|i| FieldName::from(format!("field_{i}")))
        .collect()
}

fn object(n: usize) -> Vec<u8> {
    let mut s = String::from("{");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"field_{i}\":{i}"));
    }
    s.push('}');
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fields");
    for n in [8usize, 32, 20_000] {
        if n > 100 {
            g.sample_size(10);
        }
        g.throughput(Throughput::Elements(n as u64));
        let keys = names(n);
        g.bench_with_input(BenchmarkId::new("insert", n), &keys, |b, keys| {
            b.iter(|| {
                let mut f = Fields::new();
                for (i, k) in keys.iter().enumerate() {
                    f.insert(k.clone(), Value::Integer(i as i64));
                }
                black_box(f)
            })
        });
        let text = object(n);
        g.bench_with_input(BenchmarkId::new("json", n), &text, |b, text| {
            b.iter(|| black_box(serde_json::from_slice::<Fields>(text).expect("json")))
        });
    }
    let keys = names(8);
    let f: Fields = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), Value::Integer(i as i64)))
        .collect();
    g.sample_size(100);
    g.throughput(Throughput::Elements(8));
    g.bench_function("get/8", |b| {
        b.iter(|| {
            let mut sum = 0;
            for k in &keys {
                if let Some(Value::Integer(i)) = f.get(black_box(k.as_str())) {
                    sum += i;
                }
            }
            black_box(sum)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
