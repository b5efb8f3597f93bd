//! Cost of the shared wire format ([`sluice_core::wire`]) on a batch of
//! 1000 events, as the disk channel, the hop and the `kafka` channel use
//! it: every event one buffer, events sliced out of it when decoded.
//!
//! * `encode/plain`, `encode/fields`: a batch of 160-byte lines, without
//!   fields and with four (two strings, an integer, a float), encoded into
//!   a reused buffer;
//! * `decode/...`: the same decoded into a `Batch`;
//! * `skip/fields`: checked without building the events (what the disk
//!   channel's recovery scan does).
//!
//! Run: `cargo bench -p sluice-core --bench wire -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_core::prelude::*;
use sluice_core::wire;

const N: usize = 1000;

fn batch(fields: bool) -> Vec<Event> {
    (0..N)
        .map(|i| {
            let body = format!("2026-11-26T04:43:{:02}.{:03}Z INFO req={i:012} host=web-{:02} path=/api/v1/users status=200 latency_ms={} msg=\"request handled ok\"", i % 60, i % 1000, i % 16, i % 997);
            let mut e = Event::new(body, Timestamp(1_764_000_000_000_000_000 + i as i64 * 1_000));
            if fields {
                e.insert("host", format!("web-{:02}", i % 16).as_str());
                e.insert("path", "/api/v1/users");
                e.insert("status", 200i64);
                e.insert("latency", (i % 997) as f64 / 10.0);
            }
            e
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(N as u64));
    for (name, fields) in [("plain", false), ("fields", true)] {
        let events = batch(fields);
        let mut out = Vec::with_capacity(wire::encoded_len_hint(&events));
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                wire::encode_events(black_box(&events), &mut out);
                black_box(out.len())
            })
        });
        // Encoded here too: a filter may have skipped the bench above.
        out.clear();
        wire::encode_events(&events, &mut out);
        let buf = Bytes::from(out.clone());
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                let mut d = wire::Decoder::new(&buf).unwrap();
                let mut batch = Batch::with_capacity(N);
                for _ in 0..N {
                    batch.push(d.event().unwrap());
                }
                d.finish().unwrap();
                black_box(batch)
            })
        });
        if fields {
            g.bench_function("skip/fields", |b| {
                b.iter(|| {
                    let mut d = wire::Decoder::new(&buf).unwrap();
                    for _ in 0..N {
                        d.skip_event().unwrap();
                    }
                    d.finish().unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
