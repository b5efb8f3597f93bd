//! Cost of encoding a batch as JSON lines: 1,000 Apache *combined* lines
//! parsed into 11 fields (what `parse_regex` gives the `file` sink).
//!
//! * `serde_fields`: the layout `nested` writes, with the fields through
//!   serde (`Fields: Serialize`), for comparison;
//! * `nested`, `flat`, `flat_except`, `flat_unix_ms`: the `json` format
//!   with those [`Encoding`] options;
//! * `text`: the body and a newline.
//!
//! Run: `cargo bench -p sluice-sinks --bench encode -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::Serialize as _;
use sluice_core::config::from_yaml_str;
use sluice_core::prelude::*;
use sluice_sinks::encode::{Encoder, Encoding, Format};

fn batch() -> Batch {
    let mut b = Batch::with_capacity(1000);
    for i in 0..1000i64 {
        let body = format!(
            "10.0.{}.{} - frank [03/Dec/2026:10:00:{:02} +0000] \"GET /api/v1/orders/{i} HTTP/1.1\" 200 {} \"https://example.com/cart\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
            i % 7, i % 250, i % 60, 512 + i
        );
        let mut e = Event::new(body, Timestamp(1_764_756_000_000_000_000 + i * 1_000_000));
        e.insert("client", format!("10.0.{}.{}", i % 7, i % 250));
        e.insert("ident", "-");
        e.insert("user", "frank");
        e.insert("time", "03/Dec/2026:10:00:00 +0000");
        e.insert("method", "GET");
        e.insert("path", format!("/api/v1/orders/{i}"));
        e.insert("protocol", "HTTP/1.1");
        e.insert("status", 200i64);
        e.insert("bytes", 512 + i);
        e.insert("referrer", "https://example.com/cart");
        e.insert("agent", "Mozilla/5.0 (X11; Linux x86_64)");
        b.push(e);
    }
    b
}

fn bench(c: &mut Criterion) {
    let batch = batch();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(batch.body_bytes() as u64));
    let mut buf = Vec::with_capacity(1 << 20);
    g.bench_function("serde_fields", |b| {
        b.iter(|| {
            buf.clear();
            for e in &batch {
                buf.extend_from_slice(
                    b"{\"timestamp\":\"2026-12-03T10:00:00.000000Z\",\"message\":",
                );
                let mut ser = serde_json::Serializer::new(&mut buf);
                let _ = String::from_utf8_lossy(&e.body).serialize(&mut ser);
                buf.extend_from_slice(b",\"fields\":");
                let mut ser = serde_json::Serializer::new(&mut buf);
                let _ = e.fields.serialize(&mut ser);
                buf.extend_from_slice(b"}\n");
            }
            black_box(buf.len())
        })
    });
    let cases = [
        ("nested", "{}"),
        ("flat", "layout: flat"),
        (
            "flat_except",
            "{layout: flat, except_fields: [message, ident, protocol]}",
        ),
        ("flat_unix_ms", "{layout: flat, timestamp_format: unix_ms}"),
    ];
    for (name, yaml) in cases {
        let encoding: Encoding = from_yaml_str(yaml).expect("encoding");
        let mut enc = Encoder::with_encoding(Format::Json, &encoding);
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                black_box(enc.encode_batch(&batch, &mut buf));
                black_box(buf.len())
            })
        });
    }
    let mut enc = Encoder::new(Format::Text);
    g.bench_function("text", |b| {
        b.iter(|| {
            buf.clear();
            black_box(enc.encode_batch(&batch, &mut buf));
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
