use super::*;
use sluice_core::config::from_yaml_str;
use std::path::Path;
use std::time::Instant;

fn sink(path: &str, format: Format) -> FileSink {
    FileSink::new(
        "out",
        Template::parse(path).unwrap(),
        format,
        64,
        std::time::Duration::from_secs(30),
    )
}

fn ev(body: &str, ts: i64) -> Event {
    Event::new(body.to_string(), Timestamp(ts))
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn tmp_path(dir: &tempfile::TempDir, rel: &str) -> String {
    dir.path().join(rel).to_str().unwrap().to_string()
}

#[test]
fn config_parses_and_rejects_unknown_keys() {
    let c: Config = from_yaml_str(
        "path: ./out/app-%Y-%m-%d.log\nformat: json\nmax_open_files: 8\nidle_timeout: 1m\n",
    )
    .unwrap();
    assert_eq!(c.format, Format::Json);
    assert_eq!(c.max_open_files.get(), 8);
    assert_eq!(c.idle_timeout.get().as_secs(), 60);
    assert!(c.validate().is_empty());
    let c: Config = from_yaml_str("path: out.log\n").unwrap();
    assert_eq!(c.format, Format::Text);
    assert_eq!(c.max_open_files.get(), 64);
    let e = from_yaml_str::<Config>("path: out.log\nformt: json\n")
        .err()
        .unwrap();
    assert!(e.message.contains("did you mean `format`"), "{}", e.message);
    assert!(from_yaml_str::<Config>("format: json\n").is_err());
    assert!(from_yaml_str::<Config>("path: out-%Q.log\n").is_err());
    assert!(from_yaml_str::<Config>("path: a.log\nmax_open_files: 0\n").is_err());
    let c: Config = from_yaml_str("path: ./out/\nidle_timeout: 0s\n").unwrap();
    assert_eq!(c.validate().len(), 2);
}

#[tokio::test]
async fn text_output_is_exact_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp_path(&dir, "a/b/out.log");
    let mut s = sink(&path, Format::Text);
    s.write(&Batch::from(vec![ev("one", 0), ev("two", 1)]))
        .await
        .unwrap();
    s.write(&Batch::from(vec![ev("three", 2)])).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(read(&path), "one\ntwo\nthree\n");
    // A new sink appends to what is there.
    let mut s = sink(&path, Format::Text);
    s.write(&Batch::from(vec![ev("four", 3)])).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(read(&path), "one\ntwo\nthree\nfour\n");
}

#[tokio::test]
async fn a_torn_last_line_left_by_a_crash_is_cut_before_appending() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp_path(&dir, "out.log");
    // A write cut short by a kill: the batch holding `three` was not
    // acknowledged and is written again.
    std::fs::write(&path, "one\ntwo\nthr").unwrap();
    let mut s = sink(&path, Format::Text);
    s.write(&Batch::from(vec![ev("three", 2)])).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(read(&path), "one\ntwo\nthree\n");
    // Not a single whole line: nothing is kept.
    let path = tmp_path(&dir, "torn.log");
    std::fs::write(&path, "half a li").unwrap();
    let mut s = sink(&path, Format::Text);
    s.write(&Batch::from(vec![ev("whole", 2)])).await.unwrap();
    assert_eq!(read(&path), "whole\n");
}

#[tokio::test]
async fn json_output_is_exact_and_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp_path(&dir, "out.json");
    let mut s = sink(&path, Format::Json);
    let mut e = ev("GET / 200", 1_795_668_191_123_456_789);
    e.insert("status", 200i64);
    e.insert("http.method", "GET");
    s.write(&Batch::from(vec![ev("plain", 0), e]))
        .await
        .unwrap();
    s.flush().await.unwrap();
    let text = read(&path);
    assert_eq!(
        text,
        "{\"timestamp\":\"1970-01-01T00:00:00.000000Z\",\"message\":\"plain\"}\n\
         {\"timestamp\":\"2026-11-26T04:43:11.123456Z\",\"message\":\"GET / 200\",\
         \"fields\":{\"status\":200,\"http\":{\"method\":\"GET\"}}}\n"
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["message"], "plain");
    assert!(lines[0].get("fields").is_none());
    assert_eq!(lines[1]["fields"]["status"], 200);
    assert_eq!(lines[1]["fields"]["http"]["method"], "GET");
    assert_eq!(lines[1]["timestamp"], "2026-11-26T04:43:11.123456Z");
}

#[tokio::test]
async fn field_template_splits_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&tmp_path(&dir, "{app}/{level}.log"), Format::Text);
    let mut batch = Batch::new();
    for (i, (app, level)) in [
        ("web", "info"),
        ("db", "error"),
        ("web", "error"),
        ("web", "info"),
        ("../x", "info"),
    ]
    .iter()
    .enumerate()
    {
        let mut e = ev(&format!("line {i}"), 0);
        e.insert("app", *app);
        e.insert("level", *level);
        batch.push(e);
    }
    s.write(&batch).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(read(dir.path().join("web/info.log")), "line 0\nline 3\n");
    assert_eq!(read(dir.path().join("web/error.log")), "line 2\n");
    assert_eq!(read(dir.path().join("db/error.log")), "line 1\n");
    assert_eq!(read(dir.path().join(".._x/info.log")), "line 4\n");
}

#[tokio::test]
async fn strftime_template_uses_event_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&tmp_path(&dir, "%Y-%m-%d/%H.log"), Format::Text);
    let hour = 3_600_000_000_000i64;
    let day = 24 * hour;
    let batch = Batch::from(vec![
        ev("a", 0),
        ev("b", 1),
        ev("c", hour),
        ev("d", day + 5),
        ev("e", 10),
    ]);
    s.write(&batch).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(read(dir.path().join("1970-01-01/00.log")), "a\nb\ne\n");
    assert_eq!(read(dir.path().join("1970-01-01/01.log")), "c\n");
    assert_eq!(read(dir.path().join("1970-01-02/00.log")), "d\n");
}

#[tokio::test]
async fn empty_rendered_path_is_rejected_others_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&tmp_path(&dir, "{name}"), Format::Text);
    let mut good = ev("good", 0);
    good.insert("name", "good.log");
    let batch = Batch::from(vec![ev("lost", 0), good]);
    match s.write(&batch).await {
        Err(SinkError::Rejected(r)) => {
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].0, 0);
            assert!(r[0].1.contains("names no file"), "{}", r[0].1);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(read(dir.path().join("good.log")), "good\n");
}

#[tokio::test]
async fn open_files_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileSink::new(
        "out",
        Template::parse(&tmp_path(&dir, "{n}.log")).unwrap(),
        Format::Text,
        2,
        std::time::Duration::from_secs(30),
    );
    for round in 0..2 {
        let mut batch = Batch::new();
        for n in 0..5i64 {
            let mut e = ev(&format!("{round}"), 0);
            e.insert("n", n);
            batch.push(e);
        }
        s.write(&batch).await.unwrap();
        assert!(s.files.as_ref().unwrap().open.len() <= 2);
    }
    for n in 0..5 {
        assert_eq!(read(dir.path().join(format!("{n}.log"))), "0\n1\n");
    }
}

#[tokio::test]
async fn idle_files_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileSink::new(
        "out",
        Template::parse(&tmp_path(&dir, "{n}.log")).unwrap(),
        Format::Text,
        64,
        std::time::Duration::from_millis(50),
    );
    let mut a = ev("a", 0);
    a.insert("n", "a");
    s.write(&Batch::from(vec![a])).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    let mut b = ev("b", 0);
    b.insert("n", "b");
    s.write(&Batch::from(vec![b])).await.unwrap();
    let open = &s.files.as_ref().unwrap().open;
    assert_eq!(open.len(), 1);
    assert!(open.keys().all(|p| p.ends_with("b.log")));
}

fn named(body: &str, field: &str, value: &str) -> Event {
    let mut e = ev(body, 0);
    e.insert(field, value);
    e
}

fn rejected_indices(r: Result<(), SinkError>) -> Vec<(usize, String)> {
    match r {
        Err(SinkError::Rejected(r)) => r,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_path_through_a_regular_file_rejects_its_events_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let mut s = sink(&tmp_path(&dir, "{d}/out.log"), Format::Text);
    let batch = Batch::from(vec![named("x", "d", "file"), named("y", "d", "dir")]);
    let r = rejected_indices(s.write(&batch).await);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, 0);
    assert!(r[0].1.contains("file/out.log"), "{}", r[0].1);
    assert_eq!(read(dir.path().join("dir/out.log")), "y\n");
}

#[tokio::test]
async fn a_file_name_too_long_rejects_its_events_and_the_rest_are_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&tmp_path(&dir, "out/{app}/x.log"), Format::Text);
    let long = "a".repeat(300);
    let batch = Batch::from(vec![
        named("one", "app", "web"),
        named("poison", "app", &long),
        named("two", "app", "db"),
        named("three", "app", "web"),
        named("poison again", "app", &long),
    ]);
    let r = rejected_indices(s.write(&batch).await);
    let indices: Vec<usize> = r.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, [1, 4]);
    assert!(r[0].1.contains("too long"), "{}", r[0].1);
    assert_eq!(read(dir.path().join("out/web/x.log")), "one\nthree\n");
    assert_eq!(read(dir.path().join("out/db/x.log")), "two\n");
    // The next batch goes on normally.
    s.write(&Batch::from(vec![named("four", "app", "web")]))
        .await
        .unwrap();
    assert_eq!(read(dir.path().join("out/web/x.log")), "one\nthree\nfour\n");
}

#[tokio::test]
async fn paths_that_fields_make_invalid_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&tmp_path(&dir, "out/{a}.{b}/{c}/x.log"), Format::Text);
    // Both `a` and `b` missing: the directory renders as `.`.
    let mut dot = ev("dot", 0);
    dot.insert("c", "x");
    // `c` missing: `out/p.q//x.log`.
    let mut empty = ev("empty", 0);
    empty.insert("a", "p");
    empty.insert("b", "q");
    let mut good = ev("good", 0);
    good.insert("a", "p");
    good.insert("b", "q");
    good.insert("c", "x");
    let r = rejected_indices(s.write(&Batch::from(vec![dot, empty, good])).await);
    let indices: Vec<usize> = r.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, [0, 1]);
    assert!(r[0].1.contains("`..`"), "{}", r[0].1);
    assert!(r[1].1.contains("empty directory"), "{}", r[1].1);
    assert_eq!(read(dir.path().join("out/p.q/x/x.log")), "good\n");
    assert!(!dir.path().join("out/x").exists());
    assert!(!dir.path().join("out/p.q/x.log").exists());
}

#[test]
fn templates_that_would_reject_every_event_are_config_errors() {
    for bad in ["./out/{app}//x.log", "./out/%Y/../x.log", "{app}/./x.log"] {
        let c: Config = from_yaml_str(&format!("path: '{bad}'\n")).unwrap();
        assert_eq!(c.validate().len(), 1, "{bad}");
    }
    for good in [
        "../out/{app}.log",
        ".//out/{app}.log",
        "/var/log/../x/%Y.log",
    ] {
        let c: Config = from_yaml_str(&format!("path: '{good}'\n")).unwrap();
        assert!(c.validate().is_empty(), "{good}: {:?}", c.validate());
    }
}

#[tokio::test]
async fn a_retry_after_a_partial_write_writes_only_what_was_not_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    // Writing to /dev/full fails with ENOSPC: a full disk, for one file.
    std::os::unix::fs::symlink("/dev/full", dir.path().join("out/full.log")).unwrap();
    let mut s = sink(&tmp_path(&dir, "out/{f}.log"), Format::Text);
    let batch = Batch::from(vec![
        named("a1", "f", "a"),
        named("full1", "f", "full"),
        named("b1", "f", "b"),
        named("a2", "f", "a"),
    ]);
    for _ in 0..3 {
        match s.write(&batch).await {
            Err(SinkError::Retry(m)) => assert!(m.contains("full.log"), "{m}"),
            other => panic!("expected Retry, got {other:?}"),
        }
    }
    assert_eq!(read(dir.path().join("out/a.log")), "a1\na2\n");
    assert_eq!(read(dir.path().join("out/b.log")), "b1\n");
    // Space is back: the retry writes the one file left, once.
    std::fs::remove_file(dir.path().join("out/full.log")).unwrap();
    s.write(&batch).await.unwrap();
    assert_eq!(read(dir.path().join("out/a.log")), "a1\na2\n");
    assert_eq!(read(dir.path().join("out/b.log")), "b1\n");
    assert_eq!(read(dir.path().join("out/full.log")), "full1\n");
    // A different batch is written whole, even right after a failure.
    std::os::unix::fs::symlink("/dev/full", dir.path().join("out/c.log")).unwrap();
    let failing = Batch::from(vec![named("a3", "f", "a"), named("c1", "f", "c")]);
    assert!(matches!(s.write(&failing).await, Err(SinkError::Retry(_))));
    let next = Batch::from(vec![named("a3", "f", "a"), named("b2", "f", "b")]);
    s.write(&next).await.unwrap();
    assert_eq!(read(dir.path().join("out/a.log")), "a1\na2\na3\na3\n");
    assert_eq!(read(dir.path().join("out/b.log")), "b1\nb2\n");
}

/// `cargo test --release -p sluice-sinks -- --ignored --nocapture throughput`
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!(
        "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 {}",
        "x".repeat(160 - 86)
    );
    assert_eq!(line.len(), 160);
    for (name, template, format) in [
        // To /dev/null: the sink's own cost, without the disk's.
        ("static text to /dev/null", "/dev/null", Format::Text),
        ("field text to /dev/{app}", "/dev/{app}", Format::Text),
        ("static json to /dev/null", "/dev/null", Format::Json),
        // To real files: bounded by the page cache and writeback.
        ("static text", "static.log", Format::Text),
        ("strftime text", "%Y-%m-%d.log", Format::Text),
        ("field text", "{app}.log", Format::Text),
        ("strftime json", "%Y-%m-%d.json", Format::Json),
        ("static text, gzip", "static.log.gz", Format::Text),
        ("static text, zstd", "static.log.zst", Format::Text),
        (
            "static text, rotated every 64 MiB",
            "rotated.log",
            Format::Text,
        ),
    ] {
        let path = if template.starts_with('/') {
            template.to_string()
        } else {
            tmp_path(&dir, template)
        };
        let mut s = match name {
            n if n.ends_with("gzip") => rotating(&path, None, Compression::Gzip),
            n if n.ends_with("zstd") => rotating(&path, None, Compression::Zstd),
            n if n.contains("rotated") => rotating(&path, Some(64 << 20), Compression::None),
            _ => sink(&path, format),
        };
        s.settings.durable = false;
        if let Some(f) = s.files.as_mut() {
            *f = Files::new(s.settings.clone());
        }
        let batches: Vec<Batch> = (0..20)
            .map(|b| {
                (0..1000i64)
                    .map(|i| {
                        let mut e = ev(
                            &line,
                            1_795_668_191_000_000_000 + (b * 1000 + i) * 1_000_000,
                        );
                        if format == Format::Json || template.contains('{') {
                            e.insert("app", "null");
                        }
                        e
                    })
                    .collect::<Vec<_>>()
                    .into()
            })
            .collect();
        let rounds = 50;
        let started = Instant::now();
        for _ in 0..rounds {
            for b in &batches {
                s.write(b).await.unwrap();
            }
        }
        s.flush().await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let events = (rounds * 20 * 1000) as f64;
        println!(
            "{name}: {:.0} events/s, {:.0} MiB/s of bodies",
            events / secs,
            events * 160.0 / secs / (1 << 20) as f64
        );
    }
}

fn rotating(path: &str, max_bytes: Option<u64>, compression: Compression) -> FileSink {
    FileSink::with_settings(
        "out",
        Template::parse(path).unwrap(),
        Encoder::new(Format::Text),
        Settings {
            max_open: 64,
            idle_timeout: std::time::Duration::from_secs(30),
            rotate_bytes: max_bytes,
            rotate_interval: None,
            compression,
            durable: true,
        },
    )
}

/// The files of `dir` in name order, with their bytes.
fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

fn decode(c: Compression, bytes: &[u8]) -> String {
    use std::io::Read;
    let mut out = String::new();
    match c {
        Compression::None => out = String::from_utf8(bytes.to_vec()).unwrap(),
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_string(&mut out)
                .unwrap();
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(bytes)
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
        }
    }
    out
}

#[test]
fn rotate_and_compression_options_parse_and_validate() {
    let c: Config = from_yaml_str(
        "path: out.log.gz\ncompression: gzip\nrotate: {max_bytes: 10MiB, interval: 1h}\n",
    )
    .unwrap();
    assert_eq!(c.compression, Compression::Gzip);
    let r = c.rotate.unwrap();
    assert_eq!(r.max_bytes.unwrap().0, 10 << 20);
    assert_eq!(r.interval.unwrap().get().as_secs(), 3600);
    assert!(c.validate().is_empty());
    let c: Config = from_yaml_str("path: a.log\ncompression: zstd\n").unwrap();
    assert_eq!(c.compression, Compression::Zstd);
    assert!(from_yaml_str::<Config>("path: a.log\ncompression: lz4\n").is_err());
    assert!(from_yaml_str::<Config>("path: a.log\nrotate: {size: 1MiB}\n").is_err());
    for (yaml, key) in [
        ("path: a.log\nrotate: {}\n", "rotate"),
        ("path: a.log\nrotate: {max_bytes: 0}\n", "rotate.max_bytes"),
        ("path: a.log\nrotate: {interval: 0s}\n", "rotate.interval"),
    ] {
        let c: Config = from_yaml_str(yaml).unwrap();
        let keys: Vec<_> = c.validate().into_iter().filter_map(|p| p.key).collect();
        assert_eq!(keys, [key], "{yaml}");
    }
}

#[test]
fn rotated_names_keep_the_extension_last() {
    let p = Path::new("/var/out/app.log");
    assert_eq!(
        writer::rotated_name(p, "20261126T055901Z", 7),
        Path::new("/var/out/app.20261126T055901Z.000007.log")
    );
    assert_eq!(
        writer::rotated_name(Path::new("o/app.log.gz"), "20261126T055901Z", 0),
        Path::new("o/app.log.20261126T055901Z.000000.gz")
    );
    assert_eq!(
        writer::rotated_name(Path::new("plain"), "T", 1),
        Path::new("plain.T.000001")
    );
}

#[tokio::test]
async fn size_rotation_keeps_every_file_under_the_limit_and_every_line_in_order() {
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp_path(&dir, "app.log");
        let max = if c == Compression::None { 2000 } else { 400 };
        let mut s = rotating(&path, Some(max), c);
        let mut n = 0;
        for b in 0..60 {
            let batch: Vec<Event> = (0..(b % 7 + 1) * 5)
                .map(|_| {
                    n += 1;
                    ev(&format!("line number {:06}", n - 1), 0)
                })
                .collect();
            s.write(&Batch::from(batch)).await.unwrap();
        }
        s.flush().await.unwrap();
        let files = files_in(dir.path());
        assert!(files.len() > 3, "{c:?}: {} files", files.len());
        // Rotated files sort by name before the current one.
        assert_eq!(files.last().unwrap().0, "app.log");
        let mut text = String::new();
        for (name, bytes) in &files {
            assert!(
                bytes.len() as u64 <= max,
                "{c:?}: {name} has {}",
                bytes.len()
            );
            text.push_str(&decode(c, bytes));
        }
        let expected: String = (0..n).map(|i| format!("line number {i:06}\n")).collect();
        assert!(text == expected, "{c:?}: lines lost, doubled or reordered");
    }
}

#[tokio::test]
async fn a_compressed_file_left_by_an_earlier_run_is_rotated_away_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp_path(&dir, "app.log.gz");
    let mut s = rotating(&path, None, Compression::Gzip);
    s.write(&Batch::from(vec![ev("one", 0), ev("two", 0)]))
        .await
        .unwrap();
    s.write(&Batch::from(vec![ev("three", 0)])).await.unwrap();
    s.flush().await.unwrap();
    // Two batches: two gzip members in one file, read as one stream.
    let files = files_in(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(decode(Compression::Gzip, &files[0].1), "one\ntwo\nthree\n");
    // Within a run, a file closed (flush, idle) is appended to again.
    s.write(&Batch::from(vec![ev("four", 0)])).await.unwrap();
    assert_eq!(files_in(dir.path()).len(), 1);
    // A new run starts a new file.
    let mut s = rotating(&path, None, Compression::Gzip);
    s.write(&Batch::from(vec![ev("five", 0)])).await.unwrap();
    let files = files_in(dir.path());
    assert_eq!(files.len(), 2);
    assert!(files[0].0.starts_with("app.log.2") && files[0].0.ends_with(".gz"));
    assert_eq!(
        decode(Compression::Gzip, &files[0].1),
        "one\ntwo\nthree\nfour\n"
    );
    assert_eq!(decode(Compression::Gzip, &files[1].1), "five\n");
}

#[tokio::test]
async fn interval_rotation_starts_a_new_file_once_the_old_one_is_old_enough() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileSink::with_settings(
        "out",
        Template::parse(&tmp_path(&dir, "app.log")).unwrap(),
        Encoder::new(Format::Text),
        Settings {
            max_open: 64,
            idle_timeout: std::time::Duration::from_secs(30),
            rotate_bytes: None,
            rotate_interval: Some(std::time::Duration::from_millis(100)),
            compression: Compression::Zstd,
            durable: false,
        },
    );
    s.write(&Batch::from(vec![ev("a", 0)])).await.unwrap();
    s.write(&Batch::from(vec![ev("b", 0)])).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    s.write(&Batch::from(vec![ev("c", 0)])).await.unwrap();
    s.flush().await.unwrap();
    let files = files_in(dir.path());
    assert_eq!(
        files.len(),
        2,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(decode(Compression::Zstd, &files[0].1), "a\nb\n");
    assert_eq!(decode(Compression::Zstd, &files[1].1), "c\n");
}
