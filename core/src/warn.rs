//! Rate-limited warnings, for anything that may warn once per bad input: a
//! flood of bad lines, peers or records must not flood the log.
//!
//! ```
//! use sluice_core::warn::WarnLimiter;
//!
//! let mut warn = WarnLimiter::default(); // at most one a second
//! for line in ["bad", "worse"] {
//!     if let Some(held_back) = warn.allow() {
//!         tracing::warn!(held_back, "bad line: {line}");
//!     }
//! }
//! ```

use std::time::{Duration, Instant};

/// Lets a warning through at most once per interval (one second unless
/// [`WarnLimiter::every`] says otherwise), counting the ones held back.
#[derive(Debug)]
pub struct WarnLimiter {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Default for WarnLimiter {
    fn default() -> Self {
        WarnLimiter::every(Duration::from_secs(1))
    }
}

impl WarnLimiter {
    /// A limiter letting one warning through per `every`.
    pub fn every(every: Duration) -> Self {
        WarnLimiter {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(warnings held back since the last one let through)` when a
    /// warning may be logged now (log that number with it); `None` when
    /// this one is held back.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_and_a_count_of_the_others() {
        let mut w = WarnLimiter::every(Duration::from_secs(3600));
        assert_eq!(w.allow(), Some(0));
        assert_eq!(w.allow(), None);
        assert_eq!(w.allow(), None);
        w.last = w.last.map(|t| t - Duration::from_secs(3601));
        assert_eq!(w.allow(), Some(2));
        assert_eq!(w.allow(), None);
    }
}
