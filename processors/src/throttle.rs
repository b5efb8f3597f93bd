//! `throttle`: lets at most `limit` events through per `window`, per key;
//! the rest are dropped (counted as discarded) or failed to the dead-letter
//! channel.
//!
//! Windows are fixed and start with the first event of a key: once `window`
//! has passed since a key's window opened, its next event opens a new one.
//! The clock is read once per batch. The windows of at most `max_keys` keys
//! are remembered (the least recently seen key is forgotten, and starts a
//! fresh window with its next event).

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Instant;

use serde::Deserialize;
use sluice_core::prelude::*;

use crate::keyed::{default_max_keys, KeyedState};

/// What becomes of the events over the limit.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Removed, counted as discarded.
    #[default]
    Drop,
    /// Failed with a reason: the stage's `dead_letter` channel receives them.
    DeadLetter,
}

/// Options of the `throttle` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Events let through per window (per key).
    pub limit: NonZeroU64,
    /// The window's length.
    #[serde(default = "one_second")]
    pub window: Duration,
    /// Count separately for each value of this field (dotted path).
    #[serde(default)]
    pub key: Option<String>,
    /// `drop` or `dead_letter`.
    #[serde(default)]
    pub action: Action,
    /// The most keys whose windows are remembered.
    #[serde(default = "default_max_keys")]
    pub max_keys: NonZeroUsize,
}

fn one_second() -> Duration {
    Duration(std::time::Duration::from_secs(1))
}

impl ProcessorConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.window.get().is_zero() {
            problems.push(Problem::at(
                "window",
                "must be longer than zero, such as `1s`",
            ));
        }
        problems.extend(
            self.key
                .as_deref()
                .and_then(|p| crate::check_path("key", p)),
        );
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Throttle {
            limit: self.limit.get(),
            window: self.window.get(),
            window_text: human(self.window.get()),
            key: self.key.clone(),
            action: self.action,
            windows: KeyedState::new(self.max_keys),
            over: Vec::new(),
        }))
    }
}

/// `1h`, `1m30s`, `250ms`: a duration the way it is written in configs.
fn human(d: std::time::Duration) -> String {
    if d.subsec_nanos() != 0 {
        return format!("{d:?}");
    }
    let s = d.as_secs();
    let mut out = String::new();
    for (unit, n) in [("h", s / 3600), ("m", s / 60 % 60), ("s", s % 60)] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// A key's current window.
struct Window {
    start: Instant,
    count: u64,
}

/// The `throttle` processor.
struct Throttle {
    limit: u64,
    window: std::time::Duration,
    /// The window as written, for failure reasons.
    window_text: String,
    key: Option<String>,
    action: Action,
    windows: KeyedState<Window>,
    /// Indexes of the events over the limit in the batch being processed.
    over: Vec<usize>,
}

impl Throttle {
    fn process_at(&mut self, batch: &mut Batch, cx: &mut ProcessContext, now: Instant) {
        self.over.clear();
        let key = self.key.as_deref().unwrap_or("");
        for (i, e) in batch.events.iter().enumerate() {
            let w = self.windows.entry(e, key, || Window {
                start: now,
                count: 0,
            });
            if now.saturating_duration_since(w.start) >= self.window {
                *w = Window {
                    start: now,
                    count: 0,
                };
            }
            w.count += 1;
            if w.count > self.limit {
                self.over.push(i);
            }
        }
        if self.over.is_empty() {
            return;
        }
        match self.action {
            Action::DeadLetter => {
                for &i in &self.over {
                    let which = match &self.key {
                        Some(k) => format!(
                            " for {k} `{}`",
                            batch.events[i]
                                .get(k)
                                .map(|v| v.to_text())
                                .unwrap_or_default()
                        ),
                        None => String::new(),
                    };
                    cx.fail(
                        i,
                        format!(
                            "throttled: over {} events per {}{which}",
                            self.limit, self.window_text
                        ),
                    );
                }
            }
            Action::Drop => {
                let (mut i, mut k) = (0, 0);
                let over = &self.over;
                batch.events.retain(|_| {
                    let drop = over.get(k) == Some(&i);
                    k += usize::from(drop);
                    i += 1;
                    !drop
                });
            }
        }
    }
}

impl Processor for Throttle {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        self.process_at(batch, cx, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config =
            config("limit: 100\nwindow: 1m30s\nkey: host\naction: dead_letter\nmax_keys: 10");
        assert!(c.validate().is_empty());
        assert_eq!(c.window.get().as_secs(), 90);
        assert!(!examples::<Config>("throttle").is_empty());
        let e = unknown_key::<Config>("limit: 1\nper: 1s");
        assert!(e.contains("unknown option `per`"), "{e}");
        let e = unknown_key::<Config>("limit: 1\naction: reject");
        assert!(e.contains("drop"), "{e}");
        let c: Config = config("limit: 1\nwindow: 0s\nkey: 'a..'");
        assert_eq!(c.validate().len(), 2);
    }

    #[test]
    fn limits_each_key_per_window() {
        let c: Config = config("limit: 2\nwindow: 10s\nkey: host\nmax_keys: 4");
        let mut p = Throttle {
            limit: 2,
            window: c.window.get(),
            window_text: human(c.window.get()),
            key: c.key.clone(),
            action: c.action,
            windows: KeyedState::new(c.max_keys),
            over: Vec::new(),
        };
        let t0 = Instant::now();
        let mut b = batch(&["a1", "a2", "a3", "b1", "a4", "b2", "b3"]);
        for (i, h) in ["a", "a", "a", "b", "a", "b", "b"].iter().enumerate() {
            b.events[i].insert("host", *h);
        }
        let mut cx = ProcessContext::new();
        p.process_at(&mut b, &mut cx, t0);
        assert!(cx.failures().is_empty());
        assert_eq!(bodies(&b), ["a1", "a2", "b1", "b2"]);
        // Still inside the window: nothing more for a.
        let mut b = batch(&["a5"]);
        b.events[0].insert("host", "a");
        p.process_at(&mut b, &mut cx, t0 + std::time::Duration::from_secs(9));
        assert!(b.is_empty());
        // The window has passed: a new one opens.
        let mut b = batch(&["a6", "a7", "a8"]);
        for e in &mut b.events {
            e.insert("host", "a");
        }
        p.process_at(&mut b, &mut cx, t0 + std::time::Duration::from_secs(10));
        assert_eq!(bodies(&b), ["a6", "a7"]);
    }

    #[test]
    fn dead_letter_fails_the_excess_with_a_reason() {
        let mut p = build::<Config>("limit: 1\nwindow: 1h\naction: dead_letter\nkey: host");
        let mut b = batch(&["x", "y", "z"]);
        for e in &mut b.events {
            e.insert("host", "web-1");
        }
        let f = run(p.as_mut(), &mut b);
        assert_eq!(b.len(), 3, "failed events stay for the runtime to move");
        assert_eq!(f.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(f[0].1, "throttled: over 1 events per 1h for host `web-1`");
        assert_eq!(human(std::time::Duration::from_secs(90)), "1m30s");
        assert_eq!(human(std::time::Duration::from_millis(250)), "250ms");
    }
}
