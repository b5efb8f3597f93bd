//! A full disk.
//!
//! When a write, an `fdatasync`, a segment's creation or the commit log
//! fails with `ENOSPC` or `EDQUOT`, nothing fails: what was being written
//! is cut back from the file and kept in memory, the writer is *full*, and
//! its thread tries again with a growing pause (up to
//! [`MAX_RETRY_PAUSE`]). Meanwhile appends and syncs wait in order behind
//! what was being written (their puts wait: backpressure), commits go on
//! (their segments are deleted, which may free the space) and the channel
//! reports itself degraded (`disk full`). Once a retry succeeds, the
//! waiting records are published and the waiting commands run, in order:
//! nothing accepted is lost or written twice.

use std::io;
use std::time::{Duration, Instant};

use super::Writer;

/// First pause before a write that failed on a full disk is tried again;
/// it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Longest pause between two tries on a full disk.
pub const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How often a writer waiting on a full disk says so again in the log.
const FULL_LOG_EVERY: Duration = Duration::from_secs(30);

/// A writer waiting for room on a full disk.
pub(super) struct Full {
    /// When the disk was found full.
    pub(super) since: Instant,
    /// The next try.
    next_try: Instant,
    /// The pause before the try after it.
    pause: Duration,
    /// When it was last logged.
    logged: Instant,
}

impl Writer {
    /// Whether it waits for room on a full disk.
    pub fn is_full(&self) -> bool {
        self.full.is_some()
    }

    /// Records that the disk is full: logs it (rate limited), reports the
    /// channel degraded, and schedules a try.
    pub(super) fn stall(&mut self, e: &io::Error) {
        let now = Instant::now();
        self.stalls += 1;
        if self.full.is_none() {
            tracing::warn!(dir = %self.dir.display(), "disk channel: the disk is full ({e}); writers wait until there is room again");
            self.full = Some(Full {
                since: now,
                next_try: now + FIRST_RETRY_PAUSE,
                pause: FIRST_RETRY_PAUSE,
                logged: now,
            });
        }
        self.shared.lock().full = Some(format!("disk full: {e}; writers wait for room"));
    }

    /// Tries again what waits for room: the commit entries, then the
    /// stalled records. Returns whether everything went through.
    pub(super) fn retry_full(&mut self) -> bool {
        if self.full.is_none() {
            return true;
        }
        let stalls = self.stalls;
        self.flush_commits();
        if self.stalls == stalls {
            self.make_room();
        }
        let mut written = Vec::new();
        if self.stalls == stalls {
            let mut pending = std::mem::take(&mut self.stalled);
            self.flush_segment(&mut pending, &mut written);
        }
        let now = Instant::now();
        if self.stalls != stalls {
            if let Some(full) = &mut self.full {
                full.pause = (full.pause * 2).min(MAX_RETRY_PAUSE);
                full.next_try = now + full.pause;
                if now.duration_since(full.logged) >= FULL_LOG_EVERY {
                    full.logged = now;
                    tracing::warn!(dir = %self.dir.display(), waiting_secs = full.since.elapsed().as_secs(), "disk channel: the disk is still full; writers wait");
                }
            }
            return false;
        }
        // Not degraded any more before the waiting puts return.
        self.shared.lock().full = None;
        self.publish(written);
        if let Some(was) = self.full.take() {
            tracing::info!(dir = %self.dir.display(), waited_secs = format!("{:.1}", was.since.elapsed().as_secs_f64()), "disk channel: room on the disk again; writing resumed");
        }
        true
    }

    /// Frees what room the channel itself holds on a full disk: when every
    /// record of the active segment is committed, the segment is sealed
    /// (and so deleted) and the records waiting to be written move to a new
    /// segment, named after the first of them. (A record's bytes do not
    /// depend on its segment or offset.) Without this, an active segment of
    /// committed records could fill the disk for good.
    fn make_room(&mut self) {
        let move_on = match &self.file {
            Some((id, _, size)) => {
                *size > 0
                    && self
                        .shared
                        .lock()
                        .segments
                        .get(id)
                        .is_some_and(|s| s.pending == 0)
            }
            None => !self.stalled.is_empty(),
        };
        if !move_on {
            return;
        }
        let first = self.stalled.first().map_or(self.next_rid, |w| w.rid);
        match self.roll_at(first) {
            Ok(()) => {
                let mut offset = 0;
                for w in &mut self.stalled {
                    w.rec.seg = first;
                    w.rec.offset = offset;
                    offset += w.rec.len;
                }
            }
            Err(e) => self.stall(&e),
        }
    }

    /// How long the thread may sleep before it must try a full disk again.
    pub(super) fn retry_in(&self) -> Option<Duration> {
        self.full
            .as_ref()
            .map(|f| f.next_try.saturating_duration_since(Instant::now()))
    }
}
