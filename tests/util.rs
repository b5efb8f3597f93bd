//! Helpers for end-to-end tests: run the real `sluice` binary in a temporary
//! working directory and look at what it wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temporary working directory with a pipeline in it.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// Writes `text` to `name` under the directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Appends `text` to `name`.
    pub fn append(&self, name: &str, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.join(name))
            .expect("open");
        f.write_all(text.as_bytes()).expect("append");
    }

    /// The lines of `name` (empty when it does not exist).
    pub fn lines(&self, name: &str) -> Vec<String> {
        match std::fs::read_to_string(self.join(name)) {
            Ok(s) => s.lines().map(String::from).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// `sluice ARGS` with this directory as working directory.
    pub fn sluice(&self, args: &[&str]) -> Command {
        let mut c = Command::new(sluice_bin());
        c.args(args)
            .current_dir(self.path())
            .env_remove("RUST_LOG")
            .env_remove("SLUICE_SETTINGS");
        c
    }

    /// Starts `sluice ARGS` in the background (stdout discarded, stderr piped).
    pub fn start(&self, args: &[&str]) -> Child {
        self.sluice(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice")
    }

    /// Runs `sluice ARGS` to completion with JSON logs, so that
    /// [`final_counts`] can read them.
    pub fn run_logged(&self, args: &[&str]) -> Output {
        let child = self
            .sluice(args)
            .env("SLUICE_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        wait_output(child, Duration::from_secs(120))
    }

    /// Runs `sluice ARGS` to completion (at most `limit`).
    pub fn run(&self, args: &[&str], limit: Duration) -> Output {
        let child = self
            .sluice(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        wait_output(child, limit)
    }
}

pub fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// Waits for a child with a time limit, reading its piped output meanwhile
/// (so a chatty child never blocks on a full pipe); kills it and panics when
/// over the limit.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    use std::io::Read;
    fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                let err = err.join().unwrap_or_default();
                panic!(
                    "sluice did not finish within {limit:?}\nstderr:\n{}",
                    String::from_utf8_lossy(&err)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Sends a signal to a child.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a pid we own; no memory is involved.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill failed");
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Asserts that a finished `sluice` exited 0, showing its status and log.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "sluice failed ({:?}):\n{}",
        o.status,
        stderr(o)
    );
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts `lines` are exactly "0", "1", ..., "n-1".
pub fn assert_sequence(lines: &[String], n: usize) {
    assert_eq!(lines.len(), n, "expected {n} lines, found {}", lines.len());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l, &i.to_string(), "line {i} out of order or missing");
    }
}

/// Asserts `lines` are "0".."n-1" for some n (a gap-free prefix); returns n.
pub fn assert_prefix(lines: &[String]) -> usize {
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l, &i.to_string(), "gap or reordering at line {i}");
    }
    lines.len()
}

/// The `final counts` log lines of a run with `SLUICE_LOG_FORMAT=json`, by
/// component id.
pub fn final_counts(stderr: &str) -> std::collections::HashMap<String, serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "final counts")
        .map(|v| {
            (
                v["fields"]["id"].as_str().unwrap_or_default().to_string(),
                v["fields"].clone(),
            )
        })
        .collect()
}

/// Stops a child with SIGTERM, waits for it (at most `limit`) and asserts
/// that it exited cleanly; returns its output.
pub fn stop_cleanly(child: Child, limit: Duration) -> Output {
    signal(&child, libc::SIGTERM);
    let o = wait_output(child, limit);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// A port on 127.0.0.1 that was free a moment ago: something else may take
/// it before it is used. Not for an agent to listen on (give it port 0 and
/// read [`Agent::listening`] or [`Agent::api_port`]); only where no agent
/// can pick: a destination where nothing listens, the ports a script is
/// given, a reload that must keep one port across both versions.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// How long an [`Agent`] waits for a log line or for its own stop.
pub const AGENT_LIMIT: Duration = Duration::from_secs(60);

/// `sluice ARGS` running in the background, its log collected as it comes
/// (so a test can wait for a line while the agent runs). Killed when dropped
/// without [`Agent::stop`].
pub struct Agent {
    pub child: Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    pub fn start(d: &Dir, args: &[&str]) -> Agent {
        Agent::spawn(d.sluice(args))
    }

    /// As [`Agent::start`], with JSON logs (for [`final_counts`]).
    pub fn start_json(d: &Dir, args: &[&str]) -> Agent {
        let mut c = d.sluice(args);
        c.env("SLUICE_LOG_FORMAT", "json");
        Agent::spawn(c)
    }

    /// Runs `command` (a [`Dir::sluice`] with whatever else the test
    /// needs, such as a piped stdin) as an agent.
    pub fn spawn(mut command: Command) -> Agent {
        use std::io::BufRead;
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        Agent {
            child,
            log,
            reader: Some(reader),
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits until the log contains `what` `n` times in all.
    pub fn wait_log(&self, what: &str, n: usize) {
        wait_for(AGENT_LIMIT, what, || self.log().matches(what).count() >= n);
    }

    /// The port source `id` listens on, from the agent's `listening` log
    /// line (text or JSON): start it with port 0 and ask, instead of
    /// guessing a free port that another process may take first. Waits for
    /// the line; fails if the agent exits before.
    pub fn listening(&mut self, id: &str) -> u16 {
        let mut port = None;
        wait_for(AGENT_LIMIT, &format!("source {id} to listen"), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the agent exited ({status}) before listening:\n{}",
                    self.log()
                );
            }
            port = self.log().lines().find_map(|l| bound_port(l, id));
            port.is_some()
        });
        port.unwrap_or_default()
    }

    /// The port the agent's API listens on, from its `api listening` log
    /// line: give it `address: 127.0.0.1:0` and ask.
    pub fn api_port(&mut self) -> u16 {
        let mut port = None;
        wait_for(AGENT_LIMIT, "the API to listen", || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the agent exited ({status}) before its API listened:\n{}",
                    self.log()
                );
            }
            port = self.log().lines().find_map(api_port);
            port.is_some()
        });
        port.unwrap_or_default()
    }

    /// [`Agent::stop`] as an [`Output`] (the log as its stderr), for tests
    /// written against [`stop_cleanly`] and friends.
    pub fn stop_output(self) -> Output {
        let (status, log) = self.stop();
        Output {
            status,
            stdout: Vec::new(),
            stderr: log.into_bytes(),
        }
    }

    /// SIGTERM, then the exit status and the whole log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        signal(&self.child, libc::SIGTERM);
        let status = self.wait_exit(AGENT_LIMIT, "stop");
        (status, self.log())
    }

    /// Waits up to `limit` for the process to exit, then for its log.
    fn wait_exit(&mut self, limit: Duration, what: &str) -> std::process::ExitStatus {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                start.elapsed() < limit,
                "the agent did not {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }

    /// Waits up to `limit` for the agent to exit (after a signal the test
    /// sent), as an [`Output`] with the log as its stderr.
    pub fn exit_output(mut self, limit: Duration) -> Output {
        let status = self.wait_exit(limit, "exit");
        Output {
            status,
            stdout: Vec::new(),
            stderr: self.log().into_bytes(),
        }
    }

    /// SIGTERM, and asserts a clean exit.
    pub fn stop_ok(self) {
        let (status, log) = self.stop();
        assert!(status.success(), "agent failed: {log}");
    }

    /// Waits for it to exit by itself (a bounded pipeline) and asserts a
    /// clean exit.
    pub fn finish_ok(mut self, limit: Duration) {
        let status = self.wait_exit(limit, "finish");
        assert!(status.success(), "agent failed: {}", self.log());
    }

    /// SIGKILL, then reaps it.
    pub fn kill9(self) {
        drop(self);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The port in the `api listening` log line, text or JSON.
pub fn api_port(line: &str) -> Option<u16> {
    if !line.contains("api listening") {
        return None;
    }
    let address = if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        v["fields"]["address"].as_str()?.to_string()
    } else {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("address="))?
            .to_string()
    };
    address.rsplit_once(':')?.1.parse().ok()
}

/// The port in a `listening` log line of source `id`, text or JSON.
fn bound_port(line: &str, id: &str) -> Option<u16> {
    if !line.contains("listening") {
        return None;
    }
    let address = if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        let f = &v["fields"];
        if f["message"] != "listening" || f["source"] != id {
            return None;
        }
        f["address"].as_str()?.to_string()
    } else {
        let mine = line.split_whitespace().any(|w| w == format!("source={id}"));
        if !mine {
            return None;
        }
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("address="))?
            .to_string()
    };
    address.rsplit_once(':')?.1.parse().ok()
}

/// A small deterministic generator (xorshift), so a failing run reproduces.
pub struct Rng(pub u64);

impl Rng {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// SIGKILL, then reap.
pub fn kill9(mut child: Child) {
    child.kill().expect("kill -9");
    let _ = child.wait();
}
