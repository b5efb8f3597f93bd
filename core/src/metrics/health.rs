//! Whether each component runs: the state of its task and, for sinks, whether
//! its writes currently fail. The API's `/health` reads it.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

const RUNNING: u8 = 1;
const FINISHED: u8 = 2;
const FAILED: u8 = 3;

/// The health of one component. Updated by the runtime; cheap to update on
/// success (one atomic load).
#[derive(Debug, Default)]
pub struct ComponentHealth {
    /// 0: idle (not started, or an inline processor that runs inside its
    /// source's task), `RUNNING`, `FINISHED` or `FAILED`.
    state: AtomicU8,
    /// Writes that failed in a row since the last one that succeeded.
    consecutive_failures: AtomicU64,
    /// The latest failure: of the task, or of a write while they fail.
    last_error: Mutex<Option<String>>,
}

/// A copy of a component's health at one moment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HealthSnapshot {
    /// `idle`, `running`, `finished` or `failed`.
    pub state: &'static str,
    /// Writes that failed in a row and were not yet followed by a success.
    pub consecutive_failures: u64,
    /// Why it is unhealthy, when it is.
    pub error: Option<String>,
    /// Neither failed nor failing.
    pub healthy: bool,
}

impl ComponentHealth {
    /// The task started.
    pub fn started(&self) {
        self.state.store(RUNNING, Relaxed);
    }

    /// The task ended, with its result.
    pub fn ended(&self, result: &Result<(), String>) {
        match result {
            Ok(()) => self.state.store(FINISHED, Relaxed),
            Err(e) => {
                self.set_error(Some(e.clone()));
                self.state.store(FAILED, Relaxed);
            }
        }
    }

    /// A write (or flush) failed and will be retried.
    pub fn write_failed(&self, error: &str) {
        self.set_error(Some(error.to_string()));
        self.consecutive_failures.fetch_add(1, Relaxed);
    }

    /// A write succeeded: the component recovered if it was failing.
    pub fn write_succeeded(&self) {
        if self.consecutive_failures.load(Relaxed) > 0 {
            self.consecutive_failures.store(0, Relaxed);
            if self.state.load(Relaxed) != FAILED {
                self.set_error(None);
            }
        }
    }

    fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// A plain copy.
    pub fn snapshot(&self) -> HealthSnapshot {
        let state = self.state.load(Relaxed);
        let consecutive_failures = self.consecutive_failures.load(Relaxed);
        let healthy = state != FAILED && consecutive_failures == 0;
        HealthSnapshot {
            state: match state {
                RUNNING => "running",
                FINISHED => "finished",
                FAILED => "failed",
                _ => "idle",
            },
            consecutive_failures,
            error: if healthy {
                None
            } else {
                self.last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            },
            healthy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_writes_make_unhealthy_until_one_succeeds() {
        let h = ComponentHealth::default();
        h.started();
        assert!(h.snapshot().healthy);
        h.write_failed("disk full");
        h.write_failed("disk full");
        let s = h.snapshot();
        assert!(!s.healthy);
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.error.as_deref(), Some("disk full"));
        h.write_succeeded();
        assert_eq!(h.snapshot().state, "running");
        assert!(h.snapshot().healthy);
        h.ended(&Err("gone".into()));
        let s = h.snapshot();
        assert_eq!((s.state, s.healthy), ("failed", false));
        assert_eq!(s.error.as_deref(), Some("gone"));
    }
}
