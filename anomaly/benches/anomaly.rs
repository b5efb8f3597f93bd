//! Throughput of template mining and of anomaly scoring, per core.
//!
//! * `template/*`: the 12,000 content strings of the six Loghub samples
//!   (headers already removed) go through the `template` processor in
//!   batches of 1,000, as in a pipeline (fields are set on each event).
//!   `template/baseline_tokenize` only masks and tokenizes the same lines:
//!   the floor any miner pays. A fresh miner per iteration would measure
//!   template creation; the miner is warmed on the data first, so the
//!   figure is the steady state of a long-running agent.
//! * `score/*`: 1,000 feature events (template-count maps of 6 to 12
//!   dimensions, as from the BGL windows) scored by the `anomaly` processor
//!   with a trained isolation forest (100 trees of 256 rows) or k-means (8
//!   centroids). `score/baseline_vectorize` only builds the vectors;
//!   `score/forest_only` only runs the forest over prepared vectors.
//! * `hdfs/mine_group_score`: the HDFS sample's 2,000 content strings
//!   through `template`, `session` (one per block id in the line) and
//!   `anomaly` (defaults, a model trained on the same sessions), as the
//!   stages of a pipeline behind the header parser; sessions close at the
//!   end of each pass. Throughput is in lines. The sample names 2,200
//!   blocks in 2,000 lines (nearly a session per line, the worst case);
//!   `hdfs/mine_group_score_15` renames the blocks so that each holds 15
//!   consecutive lines, as in a full log.
//!
//! Run: `cargo bench -p sluice-anomaly --bench anomaly -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_anomaly::anomaly::Detector;
use sluice_anomaly::drain::{tokenize, Drain, DrainParams};
use sluice_anomaly::mask::{BuiltinMask, Masker};
use sluice_anomaly::model::{Algorithm, Model, Spec, Threshold};
use sluice_anomaly::template::TemplateMiner;
use sluice_anomaly::vectorize::{Input, Normalize};
use sluice_core::prelude::*;

const SYSTEMS: [&str; 6] = ["HDFS", "BGL", "Thunderbird", "OpenSSH", "Apache", "Linux"];

/// The `Content` column of each sample's structured file.
fn contents() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/loghub_2k");
    let mut out = Vec::new();
    for s in SYSTEMS {
        let csv =
            std::fs::read_to_string(format!("{dir}/{s}_2k.log_structured.csv")).expect("testdata");
        out.extend(sluice_anomaly::eval::csv_column(&csv, "Content").expect("Content"));
    }
    out
}

fn masker() -> Masker {
    Masker::new(
        &[r"blk_-?\d+".into()],
        &[BuiltinMask::Ipv4, BuiltinMask::Hex, BuiltinMask::Uuid],
    )
    .expect("masks")
}

fn template(c: &mut Criterion) {
    let lines = contents();
    let batches: Vec<Batch> = lines
        .chunks(1000)
        .map(|chunk| {
            chunk
                .iter()
                .map(|l| Event::new(l.clone(), Timestamp(0)))
                .collect::<Vec<_>>()
                .into()
        })
        .collect();
    let mut g = c.benchmark_group("template");
    g.throughput(Throughput::Elements(lines.len() as u64));
    let m = masker();
    let (mut buf, mut ranges) = (Vec::new(), Vec::new());
    g.bench_function("baseline_tokenize", |b| {
        b.iter(|| {
            let mut n = 0;
            for batch in &batches {
                for e in &batch.events {
                    let masked = m.apply(&e.body, &mut buf);
                    tokenize(masked, &mut ranges);
                    n += ranges.len();
                }
            }
            black_box(n)
        })
    });
    let mut miner = TemplateMiner::new(Drain::new(DrainParams::default()), masker());
    let mut cx = ProcessContext::new();
    for batch in &batches {
        miner.process(&mut batch.clone(), &mut cx);
    }
    g.bench_function("mine", |b| {
        b.iter_batched(
            || batches.clone(),
            |mut bs| {
                for batch in &mut bs {
                    miner.process(batch, &mut cx);
                }
                bs
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn feature_events() -> Vec<Event> {
    (0..1000u64)
        .map(|i| {
            let mut f = Fields::new();
            for j in 0..(6 + i % 7) {
                let id = (i * 7 + j * 13) % 40;
                f.insert(id.to_string(), Value::Integer(1 + ((i + j) % 5) as i64));
            }
            let mut e = Event::new("", Timestamp(0));
            e.insert("features", Value::Map(f));
            e
        })
        .collect()
}

fn spec(algorithm: Algorithm) -> Spec {
    Spec {
        algorithm,
        input: Input::Sparse("features".into()),
        log_counts: true,
        tfidf: false,
        normalize: Normalize::L2,
        trees: 100,
        sample_size: 256,
        clusters: 8,
        max_iterations: 100,
        seed: 1,
        threshold: Threshold::Contamination(0.05),
        texts_field: None,
    }
}

fn score(c: &mut Criterion) {
    let events = feature_events();
    let batch: Batch = events.clone().into();
    let mut g = c.benchmark_group("score");
    g.throughput(Throughput::Elements(events.len() as u64));
    let forest = Model::train(&spec(Algorithm::IsolationForest), &events).expect("train");
    let mut v = Vec::new();
    g.bench_function("baseline_vectorize", |b| {
        b.iter(|| {
            let mut s = 0.0;
            for e in &batch.events {
                let _ = forest.vectorizer.vector(e, &mut v);
                s += v[0];
            }
            black_box(s)
        })
    });
    // The forest alone on prepared vectors: what scoring costs without the
    // event fields around it.
    let dims = forest.vectorizer.dims();
    let mut rows = Vec::new();
    for e in &batch.events {
        let _ = forest.vectorizer.vector(e, &mut v);
        rows.extend_from_slice(&v);
    }
    let mut scores = Vec::new();
    g.bench_function("forest_only", |b| {
        b.iter(|| {
            forest.detector.score_many(&rows, dims, &mut scores);
            black_box(scores[0])
        })
    });
    for (name, model) in [
        ("isolation_forest", forest.clone()),
        (
            "kmeans",
            Model::train(&spec(Algorithm::Kmeans), &events).expect("train"),
        ),
    ] {
        let mut d = Detector::with_model(model);
        let mut cx = ProcessContext::new();
        g.bench_function(name, |b| {
            b.iter_batched(
                || batch.clone(),
                |mut b| {
                    d.process(&mut b, &mut cx);
                    b
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn hdfs(c: &mut Criterion) {
    use sluice_anomaly::anomaly::Config as AnomalyConfig;
    use sluice_anomaly::session::SessionConfig;
    use sluice_runtime::testing::processor::{build, config};

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/loghub_2k");
    let csv =
        std::fs::read_to_string(format!("{dir}/HDFS_2k.log_structured.csv")).expect("testdata");
    let lines = sluice_anomaly::eval::csv_column(&csv, "Content").expect("Content");
    // The sample's lines, and the same lines with the block ids renamed so
    // that each block holds 15 consecutive lines, as in a full log.
    let re = regex::Regex::new(r"blk_-?\d+").expect("regex");
    let grouped: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| re.replace_all(l, format!("blk_{}", i / 15)).into_owned())
        .collect();
    let mut g = c.benchmark_group("hdfs");
    g.throughput(Throughput::Elements(lines.len() as u64));
    for (name, lines) in [
        ("mine_group_score", &lines),
        ("mine_group_score_15", &grouped),
    ] {
        let batches: Vec<Batch> = lines
            .chunks(1000)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|l| Event::new(l.clone(), Timestamp(0)))
                    .collect::<Vec<_>>()
                    .into()
            })
            .collect();
        let mut miner = TemplateMiner::new(Drain::new(DrainParams::default()), masker());
        let mut cx = ProcessContext::new();
        // One pass to warm the miner and to train the model on its sessions.
        let pass = |miner: &mut TemplateMiner, cx: &mut ProcessContext| -> Vec<Event> {
            let mut blocks = build::<SessionConfig>("key_pattern: 'blk_-?\\d+'");
            let mut sessions = Vec::new();
            for batch in &batches {
                let mut b = batch.clone();
                miner.process(&mut b, cx);
                blocks.process(&mut b, cx);
                sessions.append(&mut b.events);
            }
            let mut rest = Batch::new();
            blocks.finish(&mut rest);
            sessions.append(&mut rest.events);
            sessions
        };
        let sessions = pass(&mut miner, &mut cx);
        let options: AnomalyConfig = config("{}");
        let model = Model::train(&options.spec(), &sessions).expect("train");
        let mut detect = Detector::with_model(model);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut scored: Batch = pass(&mut miner, &mut cx).into();
                detect.process(&mut scored, &mut cx);
                black_box(scored.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, template, score, hdfs);
criterion_main!(benches);
