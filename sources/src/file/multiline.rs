//! Joining several lines into one event (`multiline`): stack traces,
//! wrapped messages.
//!
//! One [`Rule`] (built from the options) is shared by every file; each file
//! has its own [`Assembly`], the event being put together. A line either
//! starts a new event (and the one being assembled is complete) or continues
//! the current one, decided by one regular expression:
//!
//! * `start_pattern`: a line that matches starts an event; every other line
//!   continues the current one (the usual choice when every record opens with
//!   a timestamp);
//! * `continuation_pattern`: a line that matches continues the current event;
//!   every other line starts one (the usual choice for stack traces: lines
//!   opening with white space, `at `, `Caused by:`, `...`).
//!
//! An event is also complete when it holds `max_lines` lines, when the next
//! line would take it past `max_bytes`, and when no line was added for
//! `timeout` while following (the reader checks [`Assembly::expired`]). The
//! lines are joined with `\n`. A one-line event keeps its zero-copy body;
//! longer ones are copied once into a buffer of their own.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use regex::bytes::Regex;

/// How lines are grouped: see the module docs.
#[derive(Clone, Debug)]
pub(super) struct Rule {
    pattern: Regex,
    /// `true`: a match starts an event; `false`: a match continues one.
    match_starts: bool,
    max_lines: usize,
    max_bytes: usize,
    timeout: Duration,
}

impl Rule {
    pub(super) fn new(
        pattern: Regex,
        match_starts: bool,
        max_lines: usize,
        max_bytes: usize,
        timeout: Duration,
    ) -> Self {
        Rule {
            pattern,
            match_starts,
            max_lines: max_lines.max(1),
            max_bytes,
            timeout,
        }
    }

    fn starts_event(&self, line: &[u8]) -> bool {
        self.pattern.is_match(line) == self.match_starts
    }
}

/// The event being assembled from one file's lines.
#[derive(Debug, Default)]
pub(super) struct Assembly {
    /// The first line, kept as it is while it is the only one.
    first: Option<Bytes>,
    /// The lines joined so far, once there are two or more.
    joined: Option<BytesMut>,
    lines: usize,
    bytes: usize,
    /// Byte offset in the file where the first line starts: the place to
    /// resume from while this event is not complete.
    start: u64,
    /// When the last line was added.
    last: Option<Instant>,
}

impl Assembly {
    /// Adds `line` (which starts at byte `start` of the file); returns the
    /// event it completed, if any.
    pub(super) fn push(&mut self, rule: &Rule, line: Bytes, start: u64) -> Option<Bytes> {
        let now = Instant::now();
        if self.lines == 0 {
            self.begin(line, start, now);
            return None;
        }
        let full = self.lines >= rule.max_lines
            || self.bytes.saturating_add(1 + line.len()) > rule.max_bytes;
        if full || rule.starts_event(&line) {
            let done = self.take();
            self.begin(line, start, now);
            return done;
        }
        let joined = match self.joined.as_mut() {
            Some(j) => j,
            None => {
                let first = self.first.take().unwrap_or_default();
                let mut j = BytesMut::with_capacity(first.len() * 4 + line.len() + 1);
                j.extend_from_slice(&first);
                self.joined.insert(j)
            }
        };
        joined.extend_from_slice(b"\n");
        joined.extend_from_slice(&line);
        self.lines += 1;
        self.bytes += 1 + line.len();
        self.last = Some(now);
        None
    }

    fn begin(&mut self, line: Bytes, start: u64, now: Instant) {
        self.bytes = line.len();
        self.first = Some(line);
        self.joined = None;
        self.lines = 1;
        self.start = start;
        self.last = Some(now);
    }

    /// The event assembled so far (complete now), if any.
    pub(super) fn take(&mut self) -> Option<Bytes> {
        if self.lines == 0 {
            return None;
        }
        self.lines = 0;
        self.bytes = 0;
        self.last = None;
        match self.joined.take() {
            Some(j) => Some(j.freeze()),
            None => self.first.take(),
        }
    }

    /// Where the event being assembled starts, if there is one.
    pub(super) fn pending_start(&self) -> Option<u64> {
        (self.lines > 0).then_some(self.start)
    }

    /// Whether an event is pending and has waited `timeout` for another line.
    pub(super) fn expired(&self, rule: &Rule) -> bool {
        self.last.is_some_and(|t| t.elapsed() >= rule.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rule: &Rule, lines: &[&str]) -> (Vec<String>, Option<u64>) {
        let mut a = Assembly::default();
        let mut out = Vec::new();
        let mut at = 0u64;
        for l in lines {
            if let Some(e) = a.push(rule, Bytes::copy_from_slice(l.as_bytes()), at) {
                out.push(String::from_utf8(e.to_vec()).unwrap());
            }
            at += l.len() as u64 + 1;
        }
        let pending = a.pending_start();
        if let Some(e) = a.take() {
            out.push(String::from_utf8(e.to_vec()).unwrap());
        }
        (out, pending)
    }

    fn rule(pattern: &str, match_starts: bool, max_lines: usize, max_bytes: usize) -> Rule {
        Rule::new(
            Regex::new(pattern).unwrap(),
            match_starts,
            max_lines,
            max_bytes,
            Duration::from_secs(1),
        )
    }

    const TRACE: &[&str] = &[
        "2026-11-26 INFO started",
        "2026-11-26 ERROR failed",
        "java.lang.IllegalStateException: boom",
        "\tat a.B.c(B.java:1)",
        "Caused by: java.io.IOException: x",
        "\t... 3 more",
        "2026-11-26 INFO recovered",
    ];

    #[test]
    fn start_pattern_joins_until_the_next_start() {
        let (out, pending) = run(&rule(r"^\d{4}-", true, 100, 1 << 20), TRACE);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], "2026-11-26 INFO started");
        assert_eq!(out[1], TRACE[1..6].join("\n"));
        assert_eq!(out[2], "2026-11-26 INFO recovered");
        // The last event is pending until the end: its start is the resume point.
        let last_start: usize = TRACE[..6].iter().map(|l| l.len() + 1).sum();
        assert_eq!(pending, Some(last_start as u64));
    }

    #[test]
    fn continuation_pattern_joins_matching_lines() {
        let r = rule(r"^(\s|Caused by:|java\.)", false, 100, 1 << 20);
        let (out, _) = run(&r, TRACE);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1], TRACE[1..6].join("\n"));
    }

    #[test]
    fn max_lines_and_max_bytes_split_long_events() {
        let lines = ["start", " a", " b", " c", " d"];
        let (out, _) = run(&rule(r"^\S", true, 2, 1 << 20), &lines);
        assert_eq!(out, ["start\n a", " b\n c", " d"]);
        let (out, _) = run(&rule(r"^\S", true, 100, 10), &lines);
        assert_eq!(out, ["start\n a", " b\n c\n d"]);
    }

    #[test]
    fn timeout_marks_a_pending_event_expired() {
        let r = Rule::new(
            Regex::new("^x").unwrap(),
            true,
            10,
            100,
            Duration::from_millis(0),
        );
        let mut a = Assembly::default();
        assert!(!a.expired(&r));
        assert!(a.push(&r, Bytes::from_static(b"x1"), 0).is_none());
        assert!(a.expired(&r));
        assert_eq!(a.take().unwrap(), "x1");
        assert!(!a.expired(&r));
    }
}
