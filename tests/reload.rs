//! Hot reload (SIGHUP and `--watch`) and the progress bar of bounded runs.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::util::*;

pub(crate) const LIMIT: Duration = Duration::from_secs(60);

/// Appends numbered lines to `logs/app.log`, 20 every few milliseconds,
/// until stopped.
pub(crate) struct Writer {
    written: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Writer {
    pub(crate) fn start(d: &Dir) -> Writer {
        let written = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let path = d.join("logs/app.log");
        let (w, s) = (written.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .expect("open");
            while !s.load(Ordering::Relaxed) {
                let next = w.load(Ordering::Relaxed);
                let chunk: String = (next..next + 20).map(|i| format!("{i}\n")).collect();
                f.write_all(chunk.as_bytes()).expect("append");
                w.store(next + 20, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Writer {
            written,
            stop,
            thread,
        }
    }

    pub(crate) fn written(&self) -> usize {
        self.written.load(Ordering::Relaxed)
    }

    /// Stops and returns how many lines were written.
    pub(crate) fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let written = self.written.clone();
        let _ = self.thread.join();
        written.load(Ordering::Relaxed)
    }
}

/// Replaces the pipeline file in one step, as editors and deploy tools do.
pub(crate) fn replace(d: &Dir, name: &str, text: &str) {
    let tmp = d.write(&format!("{name}.tmp"), text);
    std::fs::rename(tmp, d.join(name)).expect("rename");
}

pub(crate) const FOLLOW: &str = "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    poll_interval: 20ms\n    channels: [a]\nchannels:\n  a: {type: memory, capacity: 64}\nsinks:\n  one: {type: file, channel: a, path: ./out/a.log}\n";

/// Whether the last line of `name` is `n - 1`.
pub(crate) fn ends_at(d: &Dir, name: &str, n: usize) -> bool {
    d.lines(name).last() == Some(&(n - 1).to_string())
}

/// Lines `from`, `from + 1`, ... `to - 1`.
fn assert_range(lines: &[String], from: usize, to: usize) {
    assert_eq!(lines.len(), to - from, "expected lines {from}..{to}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l, &(from + i).to_string(), "gap or duplicate at line {i}");
    }
}

/// How the agent learns of its new pipeline file.
#[derive(Clone, Copy)]
pub(crate) enum Trigger {
    /// SIGHUP after the file was replaced.
    Sighup,
    /// `run --watch` sees the file change.
    Watch,
}

/// A reload while lines are written: the agent follows `logs/app.log`
/// (empty at first) with the pipeline `before`, whose sink writes
/// `out/a.log`, while a [`Writer`] appends to it.
pub(crate) struct Reload<'a> {
    pub before: &'a str,
    pub after: &'a str,
    pub trigger: Trigger,
    /// Lines in `out/a.log` before the pipeline is replaced.
    pub first: usize,
    /// What the log says once the new file was taken (or refused).
    pub outcome: &'a str,
    /// Lines written after that.
    pub more: usize,
}

/// What a [`Reload`] saw.
pub(crate) struct Reloaded {
    /// Lines written when the log said `outcome`.
    pub at_reload: usize,
    /// Lines written in all.
    pub written: usize,
    /// The agent's whole log.
    pub log: String,
}

impl<'a> Reload<'a> {
    /// `first` and `more` 500 lines, and the reload expected to succeed.
    pub(crate) fn new(before: &'a str, after: &'a str, trigger: Trigger) -> Self {
        Reload {
            before,
            after,
            trigger,
            first: 500,
            outcome: "reload complete",
            more: 500,
        }
    }

    /// Once `first` lines arrived, replaces the pipeline with `after`, tells
    /// the agent and waits for `outcome`; lets `more` lines be written,
    /// stops the writer, waits until `caught_up(lines written)` and stops the
    /// agent, which must exit cleanly.
    pub(crate) fn run(&self, d: &Dir, caught_up: impl Fn(usize) -> bool) -> Reloaded {
        d.write("logs/app.log", "");
        d.write("p.yaml", self.before);
        let args: &[&str] = match self.trigger {
            Trigger::Sighup => &["run", "p.yaml"],
            Trigger::Watch => &["run", "p.yaml", "--watch"],
        };
        let agent = Agent::start(d, args);
        let writer = Writer::start(d);
        wait_for(LIMIT, "the first lines", || {
            d.lines("out/a.log").len() >= self.first
        });
        replace(d, "p.yaml", self.after);
        if let Trigger::Sighup = self.trigger {
            signal(&agent.child, libc::SIGHUP);
        }
        // A refused reload fails at once when a complete one is expected.
        wait_for(LIMIT, self.outcome, || {
            let log = agent.log();
            assert!(
                self.outcome == "reload refused" || !log.contains("reload refused"),
                "{log}"
            );
            log.contains(self.outcome)
        });
        let at_reload = writer.written();
        wait_for(LIMIT, "lines after the reload", || {
            writer.written() >= at_reload + self.more
        });
        let written = writer.stop();
        wait_for(LIMIT, "the sinks to catch up", || caught_up(written));
        let (status, log) = agent.stop();
        assert!(status.success(), "{log}");
        Reloaded {
            at_reload,
            written,
            log,
        }
    }
}

/// A file followed while it grows, to sink `one`; the reload adds channel
/// `b` and sink `two` fed by the same source. Sink `one` gets every line
/// once, sink `two` every line from the reload on.
fn adding_a_sink_loses_nothing(trigger: Trigger) {
    let d = Dir::new();
    let grown = FOLLOW.replace("channels: [a]", "channels: [a, b]").replace(
        "  a: {type: memory, capacity: 64}\n",
        "  a: {type: memory, capacity: 64}\n  b: {type: memory, capacity: 64}\n",
    ) + "  two: {type: file, channel: b, path: ./out/b.log}\n";
    let reload = Reload {
        more: 1000,
        ..Reload::new(FOLLOW, &grown, trigger)
    };
    let Reloaded {
        at_reload,
        written: n,
        log,
    } = reload.run(&d, |n| {
        ends_at(&d, "out/a.log", n) && ends_at(&d, "out/b.log", n)
    });
    assert_sequence(&d.lines("out/a.log"), n);
    let b = d.lines("out/b.log");
    let first: usize = b[0].parse().expect("a number");
    assert!(
        first <= at_reload,
        "b starts at {first}, after the reload at {at_reload}"
    );
    assert_range(&b, first, n);
    // Only what changed was touched: sink `one` and channel `a` kept running.
    assert!(!log.contains("component=sink `one`"), "{log}");
    assert!(
        log.contains("reload: restarting component=source `app`"),
        "{log}"
    );
    assert!(log.contains("reload: adding component=sink `two`"), "{log}");
}

#[test]
fn a_reload_on_sighup_that_adds_a_sink_loses_no_event() {
    adding_a_sink_loses_nothing(Trigger::Sighup);
}

#[test]
fn a_watched_file_that_adds_a_sink_is_applied_without_losing_an_event() {
    adding_a_sink_loses_nothing(Trigger::Watch);
}

#[test]
fn an_invalid_file_on_reload_keeps_the_pipeline_running_and_names_every_problem() {
    let d = Dir::new();
    // Two mistakes: a misspelt sink option and a channel nobody declared.
    let broken = FOLLOW
        .replace("path: ./out/a.log", "pathh: ./out/a.log")
        .replace("channels: [a]", "channels: [a, nope]");
    let reload = Reload {
        first: 200,
        outcome: "reload refused",
        ..Reload::new(FOLLOW, &broken, Trigger::Sighup)
    };
    let Reloaded {
        written: n, log, ..
    } = reload.run(&d, |n| ends_at(&d, "out/a.log", n));
    assert_sequence(&d.lines("out/a.log"), n);
    // The same problems, at the same places, as `sluice validate` names them.
    let o = d.run(&["validate", "p.yaml"], LIMIT);
    assert_eq!(o.status.code(), Some(2));
    let problems: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| {
            l.strip_prefix("p.yaml:")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(String::from)
        .collect();
    assert!(problems.len() >= 2, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("pathh")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("nope")), "{problems:?}");
    for p in &problems {
        assert!(log.contains(p.as_str()), "`{p}` not in the log:\n{log}");
    }
    assert!(!log.contains("reload: restarting"), "{log}");
}

#[test]
fn changing_only_a_sink_restarts_only_that_sink() {
    let d = Dir::new();
    let yaml = "sources:\n  gen: {type: generator, rate: 5000, channels: [a]}\nchannels:\n  a: {type: memory, capacity: 100}\nsinks:\n  one: {type: file, channel: a, path: ./out/first.log}\n";
    d.write("p.yaml", yaml);
    let agent = Agent::start(&d, &["run", "p.yaml", "--watch"]);
    wait_for(LIMIT, "the first lines", || {
        d.lines("out/first.log").len() >= 1000
    });
    replace(
        &d,
        "p.yaml",
        &yaml.replace("./out/first.log", "./out/second.log"),
    );
    agent.wait_log("reload complete", 1);
    wait_for(LIMIT, "lines in the new file", || {
        d.lines("out/second.log").len() >= 1000
    });
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    // A generator counts from 0 again when restarted: one gap-free run of
    // numbers across both files shows that it was not.
    let mut all = d.lines("out/first.log");
    let first = all.len();
    all.extend(d.lines("out/second.log"));
    assert_prefix(&all);
    assert!(first >= 1000 && all.len() >= first + 1000);
    let reload: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reload:") && l.contains("component="))
        .collect();
    assert!(
        reload
            .iter()
            .any(|l| l.contains("reload: restarting component=sink `one`")),
        "{log}"
    );
    assert!(reload.iter().all(|l| !l.contains("source")), "{log}");
}

#[test]
fn changing_a_channel_drains_it_and_rebuilds_it_without_loss() {
    let d = Dir::new();
    let bigger = FOLLOW.replace("capacity: 64", "capacity: 200");
    let reload = Reload::new(FOLLOW, &bigger, Trigger::Sighup);
    let Reloaded {
        written: n, log, ..
    } = reload.run(&d, |n| ends_at(&d, "out/a.log", n));
    assert_sequence(&d.lines("out/a.log"), n);
    assert!(log.contains("reload: channel rebuilt channel=a"), "{log}");
}

#[test]
fn a_changed_stage_switches_between_two_batches_without_loss() {
    let d = Dir::new();
    let yaml = FOLLOW
        .replace("channels: [a]", "channels: [raw]")
        .replace(
            "channels:\n  a: {type: memory, capacity: 64}\n",
            "processors:\n  tag: {type: add_fields, input: raw, channels: [a], fields: {v: one}}\nchannels:\n  raw: {type: memory, capacity: 64}\n  a: {type: memory, capacity: 64}\n",
        )
        .replace("path: ./out/a.log}", "path: ./out/a.log, format: json}");
    let two = yaml.replace("v: one", "v: two");
    let reload = Reload::new(&yaml, &two, Trigger::Watch);
    let Reloaded {
        at_reload,
        written: n,
        log,
    } = reload.run(&d, |n| d.lines("out/a.log").len() >= n);
    let lines = d.lines("out/a.log");
    assert_eq!(lines.len(), n);
    // Every line once, in order; tagged `one` up to some line, `two` after.
    let mut switched = None;
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        assert_eq!(v["message"].as_str(), Some(i.to_string().as_str()));
        match (v["fields"]["v"].as_str(), switched) {
            (Some("one"), None) => {}
            (Some("two"), None) => switched = Some(i),
            (Some("two"), Some(_)) => {}
            other => panic!("line {i}: {other:?}"),
        }
    }
    let switched = switched.expect("lines tagged by the new version");
    assert!(
        switched > 0 && switched <= at_reload,
        "switched at {switched}"
    );
    let reload: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reload:") && l.contains("component="))
        .collect();
    assert!(
        reload.iter().all(|l| l.contains("processor `tag`")),
        "{log}"
    );
}

#[test]
fn a_finished_bounded_source_changed_by_a_reload_runs_again() {
    let d = Dir::new();
    let yaml = "sources:\n  endless: {type: generator, rate: 1000, channels: [a]}\n  once: {type: generator, count: 100, channels: [b]}\nchannels:\n  a: {type: memory}\n  b: {type: memory}\nsinks:\n  sa: {type: \"null\", channel: a}\n  sb: {type: file, channel: b, path: ./out/b.log}\n";
    d.write("p.yaml", yaml);
    let agent = Agent::start(&d, &["run", "p.yaml"]);
    wait_for(LIMIT, "the bounded source", || {
        d.lines("out/b.log").len() >= 100
    });
    // Its channel closed when it finished; the new version gets a new one.
    replace(&d, "p.yaml", &yaml.replace("count: 100", "count: 200"));
    signal(&agent.child, libc::SIGHUP);
    agent.wait_log("reload complete", 1);
    wait_for(LIMIT, "the second run", || {
        d.lines("out/b.log").len() >= 300
    });
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    let b = d.lines("out/b.log");
    assert_sequence(&b[..100], 100);
    assert_sequence(&b[100..], 200);
}

/// A bounded file source big enough to take a moment.
fn bounded(d: &Dir) -> usize {
    let n = 400_000;
    let text: String = (0..n).map(|i| format!("{i}\n")).collect();
    d.write("logs/big.log", &text);
    d.write(
        "p.yaml",
        "sources:\n  app: {type: file, include: [./logs/big.log], read_from: beginning, follow: false, channels: [a]}\nchannels:\n  a: {type: memory, capacity: 1000}\nsinks:\n  out: {type: file, channel: a, path: ./out/big.log}\n",
    );
    n
}

/// Runs `sluice ARGS` with stderr on a pseudo-terminal; returns what the
/// terminal showed.
fn on_a_terminal(d: &Dir, args: &str) -> String {
    let cmd = format!("{} {args}", sluice_bin().display());
    let o = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .current_dir(d.path())
        .env_remove("RUST_LOG")
        .env_remove("SLUICE_SETTINGS")
        .stdin(Stdio::null())
        .output()
        .expect("`script` (util-linux) runs the agent on a pseudo-terminal");
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn a_bounded_run_on_a_terminal_shows_progress_and_elsewhere_nothing() {
    let d = Dir::new();
    let n = bounded(&d);
    let size = std::fs::metadata(d.join("logs/big.log"))
        .expect("size")
        .len();
    let screen = on_a_terminal(&d, "run p.yaml");
    assert_sequence(&d.lines("out/big.log"), n);
    // The last state of the bar: everything read.
    let total = format!("{:.2} MiB", size as f64 / (1024.0 * 1024.0));
    assert!(
        screen.contains(&format!("{total}/{total} read")),
        "{total} not read in:\n{screen}"
    );
    assert!(screen.contains("events/s"), "{screen}");
    assert!(screen.contains("ETA"), "{screen}");

    // --quiet: no bar.
    std::fs::remove_dir_all(d.join(".sluice")).expect("rm");
    std::fs::remove_file(d.join("out/big.log")).expect("rm");
    let screen = on_a_terminal(&d, "run --quiet p.yaml");
    assert_sequence(&d.lines("out/big.log"), n);
    assert!(!screen.contains("events/s"), "{screen}");
    assert!(screen.contains("stopped cleanly"), "{screen}");

    // stderr not a terminal: no bar.
    std::fs::remove_dir_all(d.join(".sluice")).expect("rm");
    std::fs::remove_file(d.join("out/big.log")).expect("rm");
    let o = d.run(&["run", "p.yaml"], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_sequence(&d.lines("out/big.log"), n);
    assert!(!stderr(&o).contains("events/s"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("ETA"), "{}", stderr(&o));
}

#[test]
fn an_endless_run_on_a_terminal_shows_no_progress_bar() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "sources:\n  gen: {type: generator, rate: 1000, channels: [a]}\nchannels:\n  a: {type: memory}\nsinks:\n  out: {type: \"null\", channel: a}\n",
    );
    // Ends itself after three seconds: SIGTERM from the shell.
    let screen = on_a_terminal(
        &d,
        "run p.yaml & pid=$!; sleep 3; kill -TERM $pid; wait $pid",
    );
    assert!(screen.contains("stopped cleanly"), "{screen}");
    assert!(!screen.contains("events/s"), "{screen}");
}
