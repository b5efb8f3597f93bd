//! The file source following files through rotation, truncation, inode
//! reuse, multiline events, partial and over-long lines; the file sink's
//! rotation and compression. All with the real binary on real files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(120);
/// How long to wait for lines that should arrive.
const WAIT: Duration = Duration::from_secs(60);

/// Starts `sluice run p.yaml` in `d` with JSON logs.
fn start_json(d: &Dir) -> Child {
    d.sluice(&["run", "p.yaml"])
        .env("SLUICE_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice")
}

/// Stops the agent with SIGTERM and waits for it.
fn stop(child: Child) -> Output {
    signal(&child, libc::SIGTERM);
    let o = wait_output(child, LIMIT);
    ok(&o);
    o
}

/// A pipeline following `./logs/app.log` into `./out/lines.log`.
fn follow_pipeline(extra: &str) -> String {
    format!(
        "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    poll_interval: 20ms\n{extra}    channels: [main]\nchannels:\n  main: {{type: memory, capacity: 2000}}\nsinks:\n  out: {{type: file, channel: main, path: ./out/lines.log}}\n"
    )
}

/// Polls `cond` until it holds or `limit` passes; the assertions after it
/// say what is wrong when it did not.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Asserts `lines` hold "0".."n-1" each exactly once, in any order.
fn assert_exactly_once(mut lines: Vec<String>, n: usize) {
    lines.sort_by_key(|l| l.parse::<usize>().unwrap_or(usize::MAX));
    let mut seen = vec![0u32; n];
    let mut other = Vec::new();
    for l in &lines {
        match l.parse::<usize>() {
            Ok(i) if i < n => seen[i] += 1,
            _ => other.push(l.clone()),
        }
    }
    let missing: Vec<usize> = (0..n).filter(|&i| seen[i] == 0).collect();
    let doubled: Vec<usize> = (0..n).filter(|&i| seen[i] > 1).collect();
    assert!(
        missing.is_empty() && doubled.is_empty() && other.is_empty(),
        "{} lines; missing {} (first {:?}), doubled {} (first {:?}), unexpected {:?}",
        lines.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        doubled.len(),
        &doubled[..doubled.len().min(10)],
        &other[..other.len().min(5)]
    );
}

fn open_append(p: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .expect("open for append")
}

/// Writes lines `from..to` to `f`, a few at a time.
fn write_lines(f: &mut std::fs::File, from: usize, to: usize) {
    for chunk in (from..to).collect::<Vec<_>>().chunks(50) {
        let text: String = chunk.iter().map(|i| format!("{i}\n")).collect();
        f.write_all(text.as_bytes()).expect("write");
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// Lines a rotation test writes, and about how many between rotations.
const TOTAL: usize = 30_000;
const EVERY: usize = 3_000;

/// Runs `pipeline`, following `logs/app.log` (empty at first) into
/// `out/lines.log`, while `write(logs, out)` writes the numbers
/// `0..TOTAL` to it and rotates it its own way; then waits for every line,
/// stops the agent, asserts that each line arrived exactly once and returns
/// the agent's output.
fn rotate_while_following(d: &Dir, pipeline: &str, write: impl FnOnce(&Path, &Path)) -> Output {
    d.write("logs/app.log", "");
    d.write("p.yaml", pipeline);
    let agent = start_json(d);
    write(&d.join("logs"), &d.join("out/lines.log"));
    wait_until(WAIT, || d.lines("out/lines.log").len() >= TOTAL);
    let o = stop(agent);
    assert_exactly_once(d.lines("out/lines.log"), TOTAL);
    o
}

#[test]
fn rename_rotation_loses_and_doubles_nothing() {
    let d = Dir::new();
    let pipeline = follow_pipeline("    rotate_wait: 1s\n");
    let o = rotate_while_following(&d, &pipeline, |logs, out| {
        let path = logs.join("app.log");
        let mut f = open_append(&path);
        let mut next = 0;
        let mut round = 0;
        while next < TOTAL {
            let first = next.to_string();
            write_lines(&mut f, next, next + EVERY - 40);
            next += EVERY - 40;
            // A file must be at its path for a poll interval or so to be
            // found (real rotations are minutes apart, these milliseconds):
            // rotate once the agent has read from this one.
            wait_for(WAIT, "the agent to find the file", || {
                std::fs::read_to_string(out).is_ok_and(|s| s.lines().any(|l| l == first))
            });
            // Rotate by rename; the writer still holds the old file and adds
            // its last lines there, for a while (longer than the agent's
            // poll interval), before it reopens the path.
            round += 1;
            std::fs::rename(&path, logs.join(format!("app.log.{round}"))).expect("rename");
            write_lines(&mut f, next, next + 20);
            std::thread::sleep(Duration::from_millis(100));
            write_lines(&mut f, next + 20, next + 40);
            next += 40;
            f = open_append(&path);
        }
    });
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["app"]["events_out"].as_u64(), Some(TOTAL as u64));
}

#[test]
fn copytruncate_rotation_loses_and_doubles_nothing() {
    let d = Dir::new();
    let pipeline =
        follow_pipeline("    poll_interval: 200ms\n").replace("    poll_interval: 20ms\n", "");
    rotate_while_following(&d, &pipeline, |logs, out| {
        let path = logs.join("app.log");
        let mut f = open_append(&path);
        let mut next = 0;
        let mut round = 0;
        while next < TOTAL {
            // A burst at once: right after a truncation the file then grows
            // back to (or past) the old read position before the agent
            // looks again, so only the changed first bytes tell.
            let text: String = (next..next + EVERY).map(|i| format!("{i}\n")).collect();
            f.write_all(text.as_bytes()).expect("write");
            next += EVERY;
            // The writer pauses while the file is copied and truncated (as
            // logrotate's copytruncate does), after the agent has read what
            // is there: lines written between the copy and the truncation,
            // or not read yet at the truncation, would be lost by
            // copytruncate itself.
            let written = next;
            wait_for(WAIT, "the agent to catch up", || {
                std::fs::read_to_string(out).map_or(0, |s| s.lines().count()) >= written
            });
            round += 1;
            std::fs::copy(&path, logs.join(format!("app.log.{round}"))).expect("copy");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|t| t.set_len(0))
                .expect("truncate");
        }
    });
}

#[test]
fn a_file_with_the_same_inode_but_new_content_is_read_from_zero() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  app:\n    type: file\n    include: [./logs/*.log]\n    read_from: beginning\n    follow: false\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/lines.log}\n",
    );
    d.write("logs/app.log", "old line 1\nold line 2\n");
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    let ino =
        |p: PathBuf| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("stat"));
    let before = ino(d.join("logs/app.log"));
    // Rewritten in place: same inode, longer than the saved offset.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(d.join("logs/app.log"))
        .and_then(|mut f| f.write_all(b"fresh content 1\nfresh content 2\nfresh content 3\n"))
        .expect("rewrite");
    assert_eq!(ino(d.join("logs/app.log")), before);
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    // Removed and created again (the file system may hand out the same inode).
    std::fs::remove_file(d.join("logs/app.log")).expect("rm");
    d.write(
        "logs/app.log",
        "another file entirely, line 1\nand line 2\n",
    );
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    assert_eq!(
        d.lines("out/lines.log"),
        [
            "old line 1",
            "old line 2",
            "fresh content 1",
            "fresh content 2",
            "fresh content 3",
            "another file entirely, line 1",
            "and line 2"
        ]
    );
    // An unchanged file is not read again.
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    assert_eq!(d.lines("out/lines.log").len(), 7);
}

#[test]
fn java_stack_traces_become_one_event_each() {
    let d = Dir::new();
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!(
            "2026-11-26 10:00:{:02} INFO request {i} ok\n",
            i % 60
        ));
        if i % 10 == 0 {
            text.push_str(&format!(
                "2026-11-26 10:00:{:02} ERROR request {i} failed\n\
                 java.lang.IllegalStateException: bad state {i}\n\
                 \tat com.example.Handler.handle(Handler.java:42)\n\
                 \tat com.example.Server.run(Server.java:7)\n\
                 Caused by: java.io.IOException: disk full\n\
                 \tat com.example.Disk.write(Disk.java:3)\n\
                 \t... 2 more\n",
                i % 60
            ));
        }
    }
    d.write("logs/app.log", &text);
    d.write(
        "p.yaml",
        "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    follow: false\n    multiline:\n      start_pattern: '^\\d{4}-\\d{2}-\\d{2} '\n      max_lines: 50\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/events.json, format: json}\n",
    );
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    let events: Vec<String> = d
        .lines("out/events.json")
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["message"].as_str().expect("message").to_string()
        })
        .collect();
    assert_eq!(events.len(), 220);
    let errors: Vec<&String> = events.iter().filter(|m| m.contains(" ERROR ")).collect();
    assert_eq!(errors.len(), 20);
    for (k, e) in errors.iter().enumerate() {
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 7, "{e}");
        assert!(
            lines[0].ends_with(&format!("request {} failed", k * 10)),
            "{e}"
        );
        assert_eq!(
            lines[1],
            format!("java.lang.IllegalStateException: bad state {}", k * 10)
        );
        assert_eq!(lines[6], "\t... 2 more");
    }
    assert!(events
        .iter()
        .filter(|m| m.contains(" INFO "))
        .all(|m| !m.contains('\n')));
}

#[test]
fn a_partial_line_is_emitted_after_its_timeout() {
    let d = Dir::new();
    d.write("logs/app.log", "complete\npartial");
    d.write(
        "p.yaml",
        &follow_pipeline("    partial_line_timeout: 300ms\n"),
    );
    let agent = start_json(&d);
    wait_for(WAIT, "the partial line", || {
        d.lines("out/lines.log").len() >= 2
    });
    d.append("logs/app.log", " rest\nnext\n");
    wait_for(WAIT, "the next lines", || {
        d.lines("out/lines.log").len() >= 4
    });
    stop(agent);
    assert_eq!(
        d.lines("out/lines.log"),
        ["complete", "partial", " rest", "next"]
    );
}

#[test]
fn over_long_lines_are_counted_and_reported_with_file_and_offset() {
    let d = Dir::new();
    let long = "x".repeat(500);
    let mut text = String::new();
    let mut kept = Vec::new();
    let mut first_long_offset = None;
    for i in 0..100 {
        if i % 20 == 7 {
            first_long_offset.get_or_insert(text.len());
            text.push_str(&long);
            text.push('\n');
        } else {
            text.push_str(&format!("line {i}\n"));
            kept.push(format!("line {i}"));
        }
    }
    d.write("logs/app.log", &text);
    d.write(
        "p.yaml",
        "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    follow: false\n    max_line_bytes: 200\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/lines.log}\n",
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    assert_eq!(d.lines("out/lines.log"), kept);
    let err = stderr(&o);
    let counts = final_counts(&err);
    assert_eq!(counts["app"]["errors"].as_u64(), Some(5));
    assert_eq!(counts["app"]["events_out"].as_u64(), Some(95));
    // Reported (rate limited: the first one at least), naming file and offset.
    let warning = err
        .lines()
        .find(|l| l.contains("line longer than max_line_bytes"))
        .unwrap_or_else(|| panic!("no warning:\n{err}"));
    let v: serde_json::Value = serde_json::from_str(warning).expect("json log");
    assert!(
        v["fields"]["input"]
            .as_str()
            .is_some_and(|p| p.ends_with("logs/app.log")),
        "{warning}"
    );
    assert_eq!(
        v["fields"]["offset"].as_u64(),
        first_long_offset.map(|o| o as u64)
    );
}

/// The files under `dir` in name order.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn the_file_sink_rotates_by_size_and_keeps_every_event_in_order() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen: {type: generator, count: 100000, channels: [main]}\nchannels:\n  main: {type: memory, capacity: 1000}\nsinks:\n  out:\n    type: file\n    channel: main\n    path: ./out/seq.log\n    rotate: {max_bytes: 64KiB}\n",
    );
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    let files = files_in(&d.join("out"));
    assert!(files.len() >= 8, "{files:?}");
    // Rotated names sort before the current file.
    assert!(
        files.last().is_some_and(|f| f.ends_with("seq.log")),
        "{files:?}"
    );
    let mut lines = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        assert!(
            text.len() <= 64 << 10,
            "{} has {} bytes",
            f.display(),
            text.len()
        );
        lines.extend(text.lines().map(String::from));
    }
    assert_sequence(&lines, 100_000);
}

#[test]
fn gzip_and_zstd_outputs_decompress_to_exactly_the_events() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen: {type: generator, count: 100000, channels: [a, b]}\nchannels:\n  a: {type: memory, capacity: 1000}\n  b: {type: memory, capacity: 1000}\nsinks:\n  gz:\n    type: file\n    channel: a\n    path: ./gz/seq.log.gz\n    compression: gzip\n    rotate: {max_bytes: 32KiB}\n  zst:\n    type: file\n    channel: b\n    path: ./zst/seq.log.zst\n    compression: zstd\n",
    );
    ok(&d.run(&["run", "p.yaml"], LIMIT));
    let gz = files_in(&d.join("gz"));
    assert!(gz.len() >= 2, "{gz:?}");
    let mut text = String::new();
    for f in &gz {
        let bytes = std::fs::read(f).expect("read");
        assert!(bytes.len() <= 32 << 10);
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .expect("valid gzip");
    }
    assert_sequence(&text.lines().map(String::from).collect::<Vec<_>>(), 100_000);
    let zst = files_in(&d.join("zst"));
    assert_eq!(zst.len(), 1);
    let mut text = String::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(&zst[0]).expect("open"))
        .expect("zstd")
        .read_to_string(&mut text)
        .expect("valid zstd");
    assert_sequence(&text.lines().map(String::from).collect::<Vec<_>>(), 100_000);
}
