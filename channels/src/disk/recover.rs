//! Opening a disk channel's directory: rebuilds the pending records from
//! the segments and the commit log, reports damage, deletes segments that
//! are fully committed and compacts the commit log.
//!
//! Recovery never refuses to start because of the data: damaged records are
//! skipped, counted and logged with their segment and offset; everything
//! else is delivered again (taken but uncommitted events included). Each
//! segment is read once, so it cannot loop.

use std::io;
use std::path::Path;

use super::log::{self, DamageKind};
use super::state::{Rec, Seg, State, Unit};

/// What [`open`] found.
pub struct Recovered {
    /// Held for as long as the channel is open.
    pub lock: log::DirLock,
    pub state: State,
    /// Id for the next record.
    pub next_rid: u64,
    /// Bytes of the commit log after compaction.
    pub commits_len: u64,
}

/// What a directory holds, as `sluice channel check` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Segment files.
    pub segments: usize,
    /// Valid records.
    pub records: u64,
    /// Events not committed yet.
    pub pending_events: u64,
    /// Records with pending events.
    pub pending_records: u64,
    /// Damaged stretches inside segments (corrupt records).
    pub corrupt: u64,
    /// Records cut short at the end of a segment.
    pub torn: u64,
    /// Commit log entries that failed their checksum.
    pub bad_commits: u64,
}

/// What [`inspect`] returns: every segment's scan, the committed ranges,
/// and the summary.
pub type Inspection = (Vec<log::SegmentScan>, log::Commits, Summary);

/// Reads the segments of `dir` and the commit log, reporting each damaged
/// stretch to `report` (segment file, damage). Returns the scans, the
/// committed ranges and the summary.
///
/// # Errors
///
/// When the directory or a file cannot be read.
pub fn inspect(dir: &Path, mut report: impl FnMut(&Path, &log::Damage)) -> io::Result<Inspection> {
    let (commits, bad_commits) = log::read_commits(dir)?;
    let mut summary = Summary {
        bad_commits,
        ..Summary::default()
    };
    let mut scans = Vec::new();
    for (first, path) in log::list_segments(dir)? {
        let scan = log::scan_segment(&path, first)?;
        summary.segments += 1;
        summary.records += scan.records.len() as u64;
        for d in &scan.damage {
            match d.kind {
                DamageKind::Corrupt => summary.corrupt += 1,
                DamageKind::Torn => summary.torn += 1,
            }
            report(&path, d);
        }
        for r in &scan.records {
            let pending = log::pending_ranges(r.header.events, commits.get(&r.header.rid));
            let n: u64 = pending.iter().map(|(s, e)| u64::from(e - s)).sum();
            if n > 0 {
                summary.pending_records += 1;
                summary.pending_events += n;
            }
        }
        scans.push(scan);
    }
    Ok((scans, commits, summary))
}

/// Opens (creating) `dir` and rebuilds the channel's state from it.
///
/// # Errors
///
/// When the directory cannot be created or read, or a file in it cannot
/// be read or deleted.
pub fn open(dir: &Path) -> io::Result<Recovered> {
    std::fs::create_dir_all(dir).map_err(log::at("create the directory", dir))?;
    let lock = log::lock_dir(dir)?;
    let (scans, commits, summary) = inspect(dir, |path, d| {
        let what = match d.kind {
            DamageKind::Corrupt => "skipped a corrupt record",
            DamageKind::Torn => "skipped a torn record at the end of a segment",
        };
        tracing::warn!(
            segment = %path.display(),
            offset = d.offset,
            bytes = d.len,
            reason = d.reason,
            "disk channel: {what}"
        );
    })?;
    if summary.bad_commits > 0 {
        tracing::warn!(
            entries = summary.bad_commits,
            "disk channel: commit log entries failed their checksum; their events are delivered again"
        );
    }
    let mut state = State {
        corrupt_records: summary.corrupt + summary.torn,
        ..State::default()
    };
    let mut next_rid = commits.keys().next_back().map_or(0, |r| r + 1);
    // Records of the segments that stay.
    let mut kept = std::collections::HashSet::new();
    for scan in scans {
        next_rid = next_rid.max(scan.first_rid);
        let mut pending = 0;
        for r in &scan.records {
            let rid = r.header.rid;
            next_rid = next_rid.max(rid + 1);
            let ranges = log::pending_ranges(r.header.events, commits.get(&rid));
            if ranges.is_empty() {
                continue;
            }
            let committed = r.header.events - ranges.iter().map(|(s, e)| e - s).sum::<u32>();
            state.records.insert(
                rid,
                Rec {
                    seg: scan.first_rid,
                    offset: r.offset,
                    len: r.total_len(),
                    events: r.header.events,
                    committed,
                },
            );
            state.used_bytes += r.total_len();
            for (start, end) in ranges {
                state.queued += u64::from(end - start);
                state.used_events += u64::from(end - start);
                state.units.push_back(Unit {
                    rid,
                    start,
                    end,
                    cached: None,
                    cached_bytes: 0,
                });
            }
            pending += 1;
        }
        if pending == 0 {
            std::fs::remove_file(&scan.path).map_err(log::at("delete", &scan.path))?;
        } else {
            kept.extend(scan.records.iter().map(|r| r.header.rid));
            state.segments.insert(
                scan.first_rid,
                Seg {
                    path: scan.path,
                    pending,
                    sealed: true,
                },
            );
        }
    }
    // Keep the commits of every record of a segment that stays: those of
    // its fully committed records too, or the next start would deliver
    // them again.
    let keep: Vec<(u64, u32, u32)> = commits
        .iter()
        .filter(|(rid, _)| kept.contains(rid))
        .flat_map(|(&rid, ranges)| ranges.iter().map(move |&(s, e)| (rid, s, e)))
        .collect();
    let commits_len = match log::rewrite_commits(dir, &keep) {
        Ok(()) => (keep.len() * log::COMMIT_LEN) as u64,
        // Compaction needs room for a copy; the log as it is serves as
        // well, cut to whole entries (which frees room, never takes it).
        Err(e) if log::is_full(&e) => {
            tracing::warn!(dir = %dir.display(), "disk channel: the disk is full: the commit log is not compacted ({e})");
            keep_commit_log(dir)?
        }
        Err(e) => return Err(e),
    };
    if summary.pending_events > 0 || summary.corrupt + summary.torn > 0 {
        tracing::info!(
            dir = %dir.display(),
            pending_events = state.queued,
            pending_records = state.records.len(),
            segments = state.segments.len(),
            corrupt_records = summary.corrupt,
            torn_records = summary.torn,
            "disk channel: recovered"
        );
    }
    Ok(Recovered {
        lock,
        state,
        next_rid,
        commits_len,
    })
}

/// Keeps the commit log as it is, cut to a whole number of entries;
/// returns its length.
fn keep_commit_log(dir: &Path) -> io::Result<u64> {
    let path = dir.join(log::COMMITS);
    let f = match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(log::at("open", &path)(e)),
    };
    let len = f.metadata().map_err(log::at("read", &path))?.len();
    let whole = len - len % log::COMMIT_LEN as u64;
    if whole != len {
        f.set_len(whole).map_err(log::at("cut", &path))?;
    }
    Ok(whole)
}

/// What [`repair`] removed from one segment.
#[derive(Clone, Debug)]
pub struct Repaired {
    /// The segment file.
    pub path: std::path::PathBuf,
    /// The damaged stretches removed.
    pub removed: Vec<log::Damage>,
}

/// Rewrites every damaged segment of `dir` without its damaged stretches
/// (torn tails cut, corrupt records dropped) and the commit log without
/// entries that fail their checksum, so the channel opens cleanly. Returns
/// the segments repaired and the number of commit entries dropped.
///
/// # Errors
///
/// On any I/O error (a segment is replaced atomically, so an error leaves
/// it as it was).
pub fn repair(dir: &Path) -> io::Result<(Vec<Repaired>, u64)> {
    let _lock = log::lock_dir(dir)?;
    let (scans, _, _) = inspect(dir, |_, _| {})?;
    let mut out = Vec::new();
    for scan in scans {
        if scan.damage.is_empty() {
            continue;
        }
        let data = std::fs::read(&scan.path).map_err(log::at("read", &scan.path))?;
        let mut good = Vec::with_capacity(data.len());
        for r in &scan.records {
            let start = r.offset as usize;
            let end = start + r.total_len() as usize;
            if let Some(bytes) = data.get(start..end) {
                good.extend_from_slice(bytes);
            }
        }
        let tmp = scan.path.with_extension("tmp");
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            use std::io::Write;
            f.write_all(&good)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(log::at("write", &tmp)(e));
        }
        std::fs::rename(&tmp, &scan.path).map_err(log::at("replace", &scan.path))?;
        log::sync_dir(dir);
        out.push(Repaired {
            path: scan.path,
            removed: scan.damage,
        });
    }
    let (commits, bad) = log::read_commits(dir)?;
    if bad > 0 {
        let entries: Vec<(u64, u32, u32)> = commits
            .iter()
            .flat_map(|(&rid, ranges)| ranges.iter().map(move |&(a, b)| (rid, a, b)))
            .collect();
        log::rewrite_commits(dir, &entries)?;
    }
    Ok((out, bad))
}
