use super::*;
use sluice_runtime::testing::{source_context, Collector};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;
use tokio_util::sync::CancellationToken;

/// Waits (at most 5 s) until `out` holds `n` events.
async fn wait_for(out: &Collector, n: usize) {
    tokio::time::timeout(StdDuration::from_secs(5), async {
        while out.len() < n {
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited for {n} events, got {:?}", out.bodies()));
}

fn config(yaml: &str) -> Config {
    sluice_core::config::from_yaml_str(yaml).unwrap()
}

fn build_cx() -> BuildContext {
    BuildContext {
        id: "logs".into(),
        pipeline_data_dir: "/nonexistent".into(),
        data_dir: "/nonexistent".into(),
        durable_input: false,
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A temporary root with an empty `logs/` directory; returns both.
fn with_logs() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    (root, logs)
}

/// A file source built from `yaml`, running in the background with its data
/// under `root/data`.
struct Running {
    out: Arc<Collector>,
    shutdown: CancellationToken,
    metrics: Arc<ComponentMetrics>,
    task: tokio::task::JoinHandle<Result<(), ComponentError>>,
}

fn start(root: &Path, yaml: &str) -> Running {
    let out = Collector::new();
    let shutdown = CancellationToken::new();
    let cx = source_context("logs", root.join("data"), out.clone(), shutdown.clone());
    let metrics = cx.metrics.clone();
    let task = tokio::spawn(config(yaml).build(&build_cx()).unwrap().run(cx));
    Running {
        out,
        shutdown,
        metrics,
        task,
    }
}

impl Running {
    /// Waits (at most 10 s) for a bounded run to end; returns what it emitted.
    async fn finish(self) -> Vec<Event> {
        tokio::time::timeout(StdDuration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        self.out.events()
    }

    /// Stops a following run; returns what it emitted and its error count.
    async fn stop(self) -> (Vec<Event>, u64) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        (self.out.events(), self.metrics.snapshot().errors)
    }
}

/// A bounded run (`follow: false`) over `logs/*.log`, from the beginning.
async fn run_once(root: &Path, extra: &str) -> Vec<Event> {
    let mut yaml = format!(
        "include: [\"{}/logs/*.log\"]\nfollow: false\n{extra}",
        root.display()
    );
    if !extra.contains("read_from") {
        yaml.push_str("read_from: beginning\n");
    }
    start(root, &yaml).finish().await
}

fn bodies(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8(e.body.to_vec()).unwrap())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn config_parses_validates_and_rejects_unknown_keys() {
    let c = config(
        "include: [\"/var/log/*.log\"]\nexclude: [\"/var/log/debug*\"]\nread_from: beginning\n\
         follow: false\npoll_interval: 1s\nmax_line_bytes: 64KiB\nbatch_size: 500\n",
    );
    assert_eq!(c.read_from, ReadFrom::Beginning);
    assert!(!c.follow);
    assert_eq!(c.poll_interval.get(), StdDuration::from_secs(1));
    assert_eq!(c.max_line_bytes.0, 64 << 10);
    assert!(c.validate().is_empty());
    let d = config("include: [a.log]\n");
    assert_eq!(d.read_from, ReadFrom::End);
    assert!(d.follow);
    assert_eq!(d.poll_interval.get(), StdDuration::from_millis(250));
    assert_eq!((d.max_line_bytes.0, d.batch_size.get()), (1 << 20, 1000));

    let err =
        sluice_core::config::from_yaml_str::<Config>("include: [a]\nfolow: false\n").unwrap_err();
    assert!(
        err.message.contains("did you mean `follow`"),
        "{}",
        err.message
    );
    let err = sluice_core::config::from_yaml_str::<Config>("follow: false\n").unwrap_err();
    assert!(err.message.contains("include"), "{}", err.message);

    let bad = config("include: []\nexclude: [\"a[\"]\npoll_interval: 0s\n");
    let keys: Vec<_> = bad.validate().into_iter().filter_map(|p| p.key).collect();
    assert_eq!(keys, ["include", "exclude", "poll_interval"]);
}

#[tokio::test]
async fn bounded_run_reads_every_line_of_every_file_once() {
    let (root, logs) = with_logs();
    let mut expected = Vec::new();
    for f in 0..3 {
        let mut text = String::new();
        // Enough to need several chunks and batches.
        for i in 0..5000 {
            text.push_str(&format!("file {f} line {i} {}\n", "x".repeat(100)));
            expected.push(format!("file {f} line {i} {}", "x".repeat(100)));
        }
        append(&logs.join(format!("{f}.log")), &text);
    }
    append(&logs.join("crlf.log"), "one\r\ntwo\r\n\r\nlong ");
    append(&logs.join("crlf.log"), &"y".repeat(3000));
    append(&logs.join("crlf.log"), "\r\nafter long\r\npartial");
    expected.extend(["one", "two", "", "after long", "partial"].map(String::from));
    append(&logs.join("skipped.txt"), "not matched\n");
    let events = run_once(root.path(), "max_line_bytes: 1KiB\nbatch_size: 700\n").await;
    assert_eq!(sorted(bodies(&events)), sorted(expected));
    // Order within a file is kept; every event names its file.
    let crlf: Vec<_> = events
        .iter()
        .filter(|e| {
            e.get("file")
                .and_then(Value::as_str)
                .is_some_and(|p| p.ends_with("crlf.log"))
        })
        .collect();
    assert_eq!(crlf.len(), 5);
    assert_eq!(crlf[4].body, "partial");
    let zero: Vec<_> = events
        .iter()
        .filter(|e| {
            e.get("file")
                .and_then(Value::as_str)
                .is_some_and(|p| p.ends_with("/0.log"))
        })
        .map(|e| e.body.clone())
        .collect();
    assert_eq!(zero.len(), 5000);
    assert!(zero[4999].starts_with(b"file 0 line 4999 "));
}

#[tokio::test]
async fn exclude_and_read_from_end() {
    let (root, logs) = with_logs();
    append(&logs.join("a.log"), "a1\n");
    append(&logs.join("debug.log"), "d1\n");
    let excl = format!("exclude: [\"{}/logs/debug*\"]\n", root.path().display());
    let events = run_once(root.path(), &excl).await;
    assert_eq!(bodies(&events), ["a1"]);

    // `read_from: end` skips what is there, for files without a checkpoint.
    let (other, _) = with_logs();
    append(&other.path().join("logs/b.log"), "old\n");
    assert!(run_once(other.path(), "read_from: end\n").await.is_empty());
    append(&other.path().join("logs/b.log"), "new\n");
    assert_eq!(
        bodies(&run_once(other.path(), "read_from: end\n").await),
        ["new"]
    );
}

#[tokio::test]
async fn restart_resumes_after_the_last_line() {
    let (root, logs) = with_logs();
    append(&logs.join("a.log"), "a1\na2\n");
    append(&logs.join("b.log"), "b1\nb2 part");
    assert_eq!(
        sorted(bodies(&run_once(root.path(), "").await)),
        ["a1", "a2", "b1", "b2 part"]
    );
    append(&logs.join("a.log"), "a3\n");
    append(&logs.join("b.log"), "b3\n");
    append(&logs.join("c.log"), "c1\n");
    assert_eq!(
        sorted(bodies(&run_once(root.path(), "").await)),
        ["a3", "b3", "c1"]
    );
    assert!(run_once(root.path(), "").await.is_empty());
    let saved: Checkpoint = CheckpointStore::new(root.path().join("data/checkpoint.json"))
        .load()
        .unwrap()
        .unwrap();
    let a = &saved.files[&logs.join("a.log").to_string_lossy().into_owned()];
    assert_eq!(a.offset, 9);
}

#[tokio::test]
async fn truncated_or_replaced_file_starts_again_at_zero() {
    let (root, logs) = with_logs();
    append(&logs.join("a.log"), "first line is long\nsecond\n");
    append(&logs.join("b.log"), "b1\n");
    assert_eq!(run_once(root.path(), "").await.len(), 3);
    // Truncate in place (same inode), then write less than before.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(logs.join("a.log"))
        .unwrap();
    append(&logs.join("a.log"), "new1\n");
    // Replace b.log by another file (a new inode).
    std::fs::rename(logs.join("b.log"), root.path().join("b.old")).unwrap();
    append(&logs.join("b.log"), "b-new\n");
    assert_eq!(
        sorted(bodies(&run_once(root.path(), "").await)),
        ["b-new", "new1"]
    );
}

#[tokio::test]
async fn follow_reads_appends_and_new_files_and_stops_on_shutdown() {
    let (root, logs) = with_logs();
    append(&logs.join("a.log"), "old\n");
    let yaml = format!(
        "include: [\"{}/logs/*.log\"]\npoll_interval: 20ms\n",
        logs.parent().unwrap().display()
    );
    let Running {
        out,
        shutdown,
        task,
        ..
    } = start(root.path(), &yaml);
    // Default `read_from: end`: "old" is not read; appended lines are.
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    append(&logs.join("a.log"), "a1\na2 ");
    wait_for(&out, 1).await;
    append(&logs.join("a.log"), "done\n");
    append(&logs.join("new.log"), "n1\n");
    wait_for(&out, 3).await;
    assert_eq!(sorted(out.bodies()), ["a1", "a2 done", "n1"]);
    append(&logs.join("a.log"), "pending partial");
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    let stopped = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(StdDuration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(stopped.elapsed() < StdDuration::from_millis(500));
    assert_eq!(out.len(), 3);

    // The checkpoint taken at shutdown: a restart reads only what follows.
    append(&logs.join("a.log"), " line\n");
    append(&logs.join("new.log"), "n2\n");
    let bounded = format!("{yaml}follow: false\n");
    let events = start(root.path(), &bounded).finish().await;
    assert_eq!(sorted(bodies(&events)), ["n2", "pending partial line"]);
}

#[tokio::test]
async fn follow_handles_rotation_and_truncation() {
    let (root, logs) = with_logs();
    append(&logs.join("app.log"), "");
    let yaml = format!(
        "include: [\"{}/*.log\"]\npoll_interval: 10ms\nread_from: beginning\nrotate_wait: 30ms\n",
        logs.display()
    );
    let running = start(root.path(), &yaml);
    let out = running.out.clone();
    append(&logs.join("app.log"), "one\ntwo\n");
    wait_for(&out, 2).await;
    // Rotate: the old file gets a last line (without newline) after the
    // rename; a new file takes the path.
    std::fs::rename(logs.join("app.log"), root.path().join("app.log.1")).unwrap();
    append(&root.path().join("app.log.1"), "three");
    append(&logs.join("app.log"), "new one\n");
    wait_for(&out, 4).await;
    // Truncate the new file in place and write something shorter.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(logs.join("app.log"))
        .unwrap();
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    append(&logs.join("app.log"), "x\n");
    wait_for(&out, 5).await;
    let (events, _) = running.stop().await;
    // Order holds within a file, not across the old and the new one.
    let bodies = bodies(&events);
    assert_eq!(bodies[..2], ["one", "two"]);
    assert_eq!(sorted(bodies[2..4].to_vec()), ["new one", "three"]);
    assert_eq!(bodies[4], "x");
}

/// Runs a following source over `root/logs/*.log` until `until` holds, then
/// stops it; returns what it emitted and its error count.
async fn follow_until(
    root: &Path,
    extra: &str,
    until: impl AsyncFnOnce(&Collector),
) -> (Vec<Event>, u64) {
    let yaml = format!(
        "include: [\"{}/logs/*.log\"]\npoll_interval: 10ms\nread_from: beginning\n{extra}",
        root.display()
    );
    let running = start(root, &yaml);
    until(&running.out).await;
    running.stop().await
}

const JAVA: &str = "2026-11-26 10:00:00 INFO start\n\
2026-11-26 10:00:01 ERROR request failed\n\
java.lang.IllegalStateException: boom\n\
\tat com.example.A.run(A.java:10)\n\
\tat com.example.B.main(B.java:5)\n\
Caused by: java.io.IOException: disk\n\
\t... 2 more\n\
2026-11-26 10:00:02 INFO next\n";

#[tokio::test]
async fn multiline_joins_stack_traces_and_resumes_at_a_pending_event() {
    let (root, logs) = with_logs();
    append(&logs.join("app.log"), JAVA);
    let ml = "multiline:\n  start_pattern: '^\\d{4}-\\d{2}-\\d{2} '\n  timeout: 10s\n";
    // Following: the last event waits for a next start line (timeout 10 s),
    // so a stop leaves it pending and the checkpoint at its start.
    let (events, _) = follow_until(root.path(), ml, async |out: &Collector| {
        wait_for(out, 2).await;
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    })
    .await;
    let b = bodies(&events);
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(b[0], "2026-11-26 10:00:00 INFO start");
    assert_eq!(
        b[1],
        JAVA.lines().skip(1).take(6).collect::<Vec<_>>().join("\n")
    );
    // A bounded run goes on from the pending event and completes it.
    append(&logs.join("app.log"), "\tcontinued after restart\n");
    let events = run_once(root.path(), ml).await;
    assert_eq!(
        bodies(&events),
        ["2026-11-26 10:00:02 INFO next\n\tcontinued after restart"]
    );

    // `continuation_pattern`, and the timeout while following.
    let (other, _) = with_logs();
    append(&other.path().join("logs/app.log"), JAVA);
    let ml = "multiline:\n  continuation_pattern: '^(\\s|Caused by:|java\\.)'\n  timeout: 30ms\n";
    let (events, _) = follow_until(other.path(), ml, async |out: &Collector| {
        wait_for(out, 3).await;
    })
    .await;
    assert_eq!(bodies(&events)[1].lines().count(), 6);
    assert_eq!(bodies(&events)[2], "2026-11-26 10:00:02 INFO next");
}

#[tokio::test]
async fn partial_line_is_emitted_after_the_timeout_only() {
    let (root, logs) = with_logs();
    append(&logs.join("a.log"), "whole\nhalf a li");
    let (events, _) = follow_until(
        root.path(),
        "partial_line_timeout: 50ms\n",
        async |out: &Collector| wait_for(out, 2).await,
    )
    .await;
    assert_eq!(bodies(&events), ["whole", "half a li"]);
    // Without the option the partial line waits (a stop leaves it unread).
    append(&logs.join("b.log"), "other\nwaits");
    let (events, _) = follow_until(root.path(), "", async |out: &Collector| {
        wait_for(out, 1).await;
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    })
    .await;
    assert_eq!(bodies(&events), ["other"]);
}

#[tokio::test]
async fn over_long_lines_are_counted_as_errors() {
    let (root, logs) = with_logs();
    let long = "z".repeat(300);
    append(
        &logs.join("a.log"),
        &format!("ok1\n{long}\nok2\n{long}\n{long}\nok3\n"),
    );
    let (events, errors) = follow_until(
        root.path(),
        "max_line_bytes: 100\n",
        async |out: &Collector| {
            wait_for(out, 3).await;
        },
    )
    .await;
    assert_eq!(bodies(&events), ["ok1", "ok2", "ok3"]);
    assert_eq!(errors, 3);
}

#[tokio::test]
async fn same_inode_with_new_content_is_read_from_zero_and_old_checkpoints_load() {
    let (root, logs) = with_logs();
    append(&logs.join("a.log"), "old 1\nold 2\n");
    assert_eq!(run_once(root.path(), "").await.len(), 2);
    // Rewritten in place (same inode), longer than the old offset.
    std::fs::write(logs.join("a.log"), "brand new 1\nbrand new 2\n").unwrap();
    assert_eq!(
        bodies(&run_once(root.path(), "").await),
        ["brand new 1", "brand new 2"]
    );
    // A checkpoint without fingerprints (older versions) still loads: the
    // inode and the offset are used.
    let store = CheckpointStore::new(root.path().join("data/checkpoint.json"));
    let saved: Checkpoint = store.load().unwrap().unwrap();
    let at = saved.files.values().next().unwrap();
    assert!(at.fingerprint.is_some());
    let old = format!(
        "{{\"files\":{{\"{}\":{{\"dev\":{},\"ino\":{},\"offset\":12}}}}}}\n",
        logs.join("a.log").display(),
        at.dev,
        at.ino
    );
    std::fs::write(store.path(), old).unwrap();
    assert_eq!(bodies(&run_once(root.path(), "").await), ["brand new 2"]);
}

#[tokio::test]
async fn a_file_renamed_to_another_matched_path_is_not_read_twice() {
    let (root, logs) = with_logs();
    append(&logs.join("app.log"), "1\n2\n");
    let (events, _) = follow_until(root.path(), "", async |out: &Collector| {
        wait_for(out, 2).await;
        std::fs::rename(logs.join("app.log"), logs.join("app.1.log")).unwrap();
        append(&logs.join("app.1.log"), "3\n");
        append(&logs.join("app.log"), "4\n");
        wait_for(out, 4).await;
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    })
    .await;
    assert_eq!(sorted(bodies(&events)), ["1", "2", "3", "4"]);
    // Renamed while stopped: found by its identity, resumed.
    std::fs::rename(logs.join("app.1.log"), logs.join("app.2.log")).unwrap();
    append(&logs.join("app.2.log"), "5\n");
    assert_eq!(bodies(&run_once(root.path(), "").await), ["5"]);
}
