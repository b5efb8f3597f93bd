//! Throughput checks, ignored by default. Run in release:
//!
//! ```sh
//! cargo test --release -p sluice-sources --test throughput -- --ignored --nocapture
//! ```
//!
//! They emit into a channel that only counts, so they measure the source
//! alone (framing, batching, offsets), not a real channel or sink.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use sluice_core::prelude::*;
use sluice_runtime::testing::source_context;
use tokio_util::sync::CancellationToken;

/// A channel that counts what is put into it and drops it.
#[derive(Default)]
struct Counting {
    events: AtomicU64,
    bytes: AtomicU64,
}

#[async_trait]
impl Channel for Counting {
    async fn put(&self, batch: Batch) -> Result<(), ChannelError> {
        self.events.fetch_add(batch.len() as u64, Relaxed);
        self.bytes.fetch_add(batch.body_bytes() as u64, Relaxed);
        Ok(())
    }
    async fn take(&self, _max: usize) -> Result<Option<Transaction>, ChannelError> {
        Ok(None)
    }
    fn close(&self) {}
    fn stats(&self) -> ChannelStats {
        ChannelStats::default()
    }
}

fn build_cx() -> BuildContext {
    BuildContext {
        id: "bench".into(),
        pipeline_data_dir: "/nonexistent".into(),
        data_dir: "/nonexistent".into(),
        durable_input: false,
    }
}

async fn run<C: SourceConfig>(yaml: &str, data_dir: &std::path::Path) -> (Arc<Counting>, f64) {
    let config: C = sluice_core::config::from_yaml_str(yaml).unwrap();
    let out = Arc::new(Counting::default());
    let cx = source_context("bench", data_dir, out.clone(), CancellationToken::new());
    let started = Instant::now();
    config.build(&build_cx()).unwrap().run(cx).await.unwrap();
    (out, started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn generator_sequence_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000_000u64;
    let (out, secs) =
        run::<sluice_sources::generator::Config>(&format!("count: {n}\n"), dir.path()).await;
    assert_eq!(out.events.load(Relaxed), n);
    println!(
        "generator sequence: {n} events in {secs:.2}s = {:.2} M events/s",
        n as f64 / secs / 1e6
    );
    for format in ["apache_common", "syslog", "json"] {
        let n = 5_000_000u64;
        let yaml = format!("count: {n}\nformat: {format}\n");
        let (out, secs) = run::<sluice_sources::generator::Config>(&yaml, dir.path()).await;
        println!(
            "generator {format}: {:.2} M events/s, {:.0} MiB/s",
            n as f64 / secs / 1e6,
            out.bytes.load(Relaxed) as f64 / secs / (1 << 20) as f64
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn file_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let path = logs.join("big.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let lines = 4_000_000u64;
    for i in 0..lines {
        // About 160 bytes per line.
        writeln!(
            f,
            "10.0.{}.{} - frank [10/Oct/2000:13:55:36 -0700] \"GET /api/v1/orders/{i} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64; rv:120.0)\" rt=0.{:03}",
            i % 250,
            i % 7,
            i % 10_000,
            i % 1000
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let size = std::fs::metadata(&path).unwrap().len();
    // Baseline: read it like `cat` does, 256 KiB at a time into one buffer
    // (twice: the first pass warms the page cache).
    let mut baseline = 0.0;
    for _ in 0..2 {
        let started = Instant::now();
        let mut file = std::fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; 256 << 10];
        while std::io::Read::read(&mut file, &mut buf).unwrap() > 0 {}
        baseline = started.elapsed().as_secs_f64();
    }
    let yaml = format!(
        "include: [\"{}/*.log\"]\nfollow: false\nread_from: beginning\n",
        logs.display()
    );
    let (out, secs) = run::<sluice_sources::file::Config>(&yaml, &dir.path().join("data")).await;
    assert_eq!(out.events.load(Relaxed), lines);
    println!(
        "file: {:.0} MiB in {secs:.2}s = {:.0} MiB/s, {:.2} M lines/s (avg {} B/line; cat-like read baseline {:.0} MiB/s)",
        size as f64 / (1 << 20) as f64,
        size as f64 / secs / (1 << 20) as f64,
        lines as f64 / secs / 1e6,
        size / lines,
        size as f64 / baseline / (1 << 20) as f64
    );
    // With multiline: every line starts an event (the pattern is tested on
    // every line, each event a single line), then every 7 lines are one event.
    for (name, pattern, events) in [
        ("multiline, 1 line/event", "'^10\\.'", lines),
        (
            "multiline, 7 lines/event",
            "'^10\\.0\\.\\d+\\.0 '",
            lines / 7 + 1,
        ),
    ] {
        let yaml = format!("{yaml}multiline:\n  start_pattern: {pattern}\n");
        let data = tempfile::tempdir().unwrap();
        let (out, secs) = run::<sluice_sources::file::Config>(&yaml, data.path()).await;
        assert!(out.events.load(Relaxed).abs_diff(events) <= 1, "{name}");
        println!(
            "file, {name}: {:.0} MiB/s, {:.2} M lines/s",
            size as f64 / secs / (1 << 20) as f64,
            lines as f64 / secs / 1e6,
        );
    }
}
