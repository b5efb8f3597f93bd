//! The files of a disk channel: segments of records, and the commit log.
//!
//! # Segments
//!
//! A segment `<first record id>.seg` (20 digits) holds records back to back.
//! A record is a 28-byte header and a payload (one batch in the shared wire
//! format, see [`codec`](super::codec), whose first byte is the format's
//! version):
//!
//! ```text
//! magic "SLCD" | payload length u32 | record id u64 | events u32
//!   | payload crc32 u32 | header crc32 u32 (of the 24 bytes before it)
//! ```
//!
//! all little-endian. Record ids grow by one per record across segments.
//!
//! # Commit log
//!
//! `commits.log` holds 20-byte entries `record id u64 | first event u32 |
//! end event u32 | crc32 u32`: events `first..end` of that record were
//! committed by a reader. Pending events are those of a record no entry
//! covers.
//!
//! # Damage
//!
//! [`scan_segment`] reads a segment and never gives up: a record whose
//! payload checksum fails, or whose payload does not decode into as many
//! events as its header says, is skipped by its length; a header that fails its
//! checksum makes the scan look for the next valid header byte by byte; a
//! record cut short by the end of the file is a torn tail. Each is reported
//! with its offset.
//!
//! A sound record (both checksums hold) whose payload is in a wire format
//! version this build does not read is not damage: it was written by
//! another version of Sluice. The scan refuses the whole segment with an
//! error naming the file, the record's offset and the version, and nothing
//! is skipped or deleted.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sluice_core::wire::DecodeError;

/// Adds what was done and to which file to an I/O error, so that every
/// error of a disk channel names its path (`cannot read /x/1.seg: ...`).
pub fn at<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> io::Error + 'a {
    move |e| io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
}

/// Whether `e` says the file system is full (`ENOSPC`) or the user's quota
/// is used up (`EDQUOT`): conditions that pass once space is freed, so the
/// channel waits and tries again rather than failing.
/// Also after [`at`] added context (which keeps the kind, not the code).
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        )
}

/// Bytes of a record header.
pub const HEADER_LEN: usize = 28;
const MAGIC: [u8; 4] = *b"SLCD";
/// Bytes of a commit log entry.
pub const COMMIT_LEN: usize = 20;
/// The commit log's file name.
pub const COMMITS: &str = "commits.log";
const SEGMENT_EXT: &str = "seg";

/// The header of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Payload bytes.
    pub len: u32,
    /// Record id.
    pub rid: u64,
    /// Events in the payload.
    pub events: u32,
    /// crc32 of the payload.
    pub crc: u32,
}

impl Header {
    /// The 28 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&self.len.to_le_bytes());
        h[8..16].copy_from_slice(&self.rid.to_le_bytes());
        h[16..20].copy_from_slice(&self.events.to_le_bytes());
        h[20..24].copy_from_slice(&self.crc.to_le_bytes());
        let c = crc32fast::hash(&h[0..24]);
        h[24..28].copy_from_slice(&c.to_le_bytes());
        h
    }

    /// Parses a header; `None` when the magic or its checksum is wrong.
    pub fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN || b[0..4] != MAGIC {
            return None;
        }
        if crc32fast::hash(&b[0..24]) != u32_at(b, 24) {
            return None;
        }
        Some(Header {
            len: u32_at(b, 4),
            rid: u64_at(b, 8),
            events: u32_at(b, 16),
            crc: u32_at(b, 20),
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Committed event ranges `(start, end)` by record id.
pub type Commits = BTreeMap<u64, Vec<(u32, u32)>>;

/// One commit log entry: events `start..end` of record `rid` are committed.
pub fn commit_entry(rid: u64, start: u32, end: u32) -> [u8; COMMIT_LEN] {
    let mut e = [0u8; COMMIT_LEN];
    e[0..8].copy_from_slice(&rid.to_le_bytes());
    e[8..12].copy_from_slice(&start.to_le_bytes());
    e[12..16].copy_from_slice(&end.to_le_bytes());
    let c = crc32fast::hash(&e[0..16]);
    e[16..20].copy_from_slice(&c.to_le_bytes());
    e
}

/// A valid record found by a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Its header.
    pub header: Header,
    /// Offset of the header in the segment.
    pub offset: u64,
}

impl RecordInfo {
    /// Header plus payload bytes.
    pub fn total_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.header.len)
    }
}

/// What kind of damage a scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// A record (or unreadable bytes) in the middle of the segment.
    Corrupt,
    /// An incomplete record at the end: a write cut short by a crash.
    Torn,
}

/// A damaged stretch of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Corrupt or torn.
    pub kind: DamageKind,
    /// Where it starts.
    pub offset: u64,
    /// How many bytes it spans.
    pub len: u64,
    /// What was wrong.
    pub reason: &'static str,
}

/// The result of reading one segment.
#[derive(Clone, Debug)]
pub struct SegmentScan {
    /// The segment file.
    pub path: PathBuf,
    /// The record id in its name.
    pub first_rid: u64,
    /// File size.
    pub size: u64,
    /// Valid records, in file order.
    pub records: Vec<RecordInfo>,
    /// Damaged stretches, in file order.
    pub damage: Vec<Damage>,
}

/// The segment file name for a segment starting at record `rid`.
pub fn segment_path(dir: &Path, rid: u64) -> PathBuf {
    dir.join(format!("{rid:020}.{SEGMENT_EXT}"))
}

/// The segments in `dir`, by first record id.
///
/// # Errors
///
/// When the directory cannot be listed.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(at("list", dir))? {
        let path = entry.map_err(at("list", dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SEGMENT_EXT) {
            continue;
        }
        if let Some(rid) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((rid, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a segment, checking every record: its checksums, and that its
/// payload decodes into the number of events its header gives. See the
/// module docs.
///
/// # Errors
///
/// When the file cannot be read at all.
/// When the file cannot be read at all, or holds a record in a wire format
/// version this build does not read (`InvalidData`).
pub fn scan_segment(path: &Path, first_rid: u64) -> io::Result<SegmentScan> {
    let data = fs::read(path).map_err(at("read", path))?;
    scan_bytes(path, first_rid, Bytes::from(data))
}

/// [`scan_segment`] on a segment's bytes.
///
/// # Errors
///
/// A record in a wire format version this build does not read.
pub fn scan_bytes(path: &Path, first_rid: u64, data: Bytes) -> io::Result<SegmentScan> {
    let mut scan = SegmentScan {
        path: path.to_path_buf(),
        first_rid,
        size: data.len() as u64,
        records: Vec::new(),
        damage: Vec::new(),
    };
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        if rest.len() < HEADER_LEN {
            let kind =
                if rest.iter().all(|&b| b == 0) || MAGIC.starts_with(&rest[..rest.len().min(4)]) {
                    DamageKind::Torn
                } else {
                    DamageKind::Corrupt
                };
            scan.damage.push(Damage {
                kind,
                offset: at as u64,
                len: rest.len() as u64,
                reason: "incomplete record header at the end",
            });
            break;
        }
        match Header::decode(rest) {
            Some(h) => {
                let end = HEADER_LEN + h.len as usize;
                if end > rest.len() {
                    scan.damage.push(Damage {
                        kind: DamageKind::Torn,
                        offset: at as u64,
                        len: rest.len() as u64,
                        reason: "record cut short by the end of the segment",
                    });
                    break;
                }
                let reason = if crc32fast::hash(&rest[HEADER_LEN..end]) != h.crc {
                    Some("payload checksum mismatch")
                } else {
                    match super::codec::validate(&data.slice(at + HEADER_LEN..at + end), h.events) {
                        Ok(()) => None,
                        Err(e @ DecodeError::UnknownVersion { .. }) => {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "segment {}: the record at byte {at} holds {e}; it was written by another version of sluice, which can drain it",
                                    path.display()
                                ),
                            ));
                        }
                        Err(DecodeError::Malformed { .. }) => {
                            Some("payload does not decode into the events its header counts")
                        }
                    }
                };
                match reason {
                    None => scan.records.push(RecordInfo {
                        header: h,
                        offset: at as u64,
                    }),
                    Some(reason) => scan.damage.push(Damage {
                        kind: DamageKind::Corrupt,
                        offset: at as u64,
                        len: end as u64,
                        reason,
                    }),
                }
                at += end;
            }
            None => {
                // Look for the next valid header.
                let next = (1..rest.len())
                    .find(|&i| rest[i] == MAGIC[0] && Header::decode(&rest[i..]).is_some());
                let len = next.unwrap_or(rest.len());
                let torn = next.is_none() && rest.iter().all(|&b| b == 0);
                scan.damage.push(Damage {
                    kind: if torn {
                        DamageKind::Torn
                    } else {
                        DamageKind::Corrupt
                    },
                    offset: at as u64,
                    len: len as u64,
                    reason: if torn {
                        "zeroed bytes at the end (a write cut short)"
                    } else {
                        "bad record header"
                    },
                });
                at += len;
            }
        }
    }
    Ok(scan)
}

/// Committed event ranges by record id, read from the commit log. Entries
/// that fail their checksum are skipped (their events are delivered again)
/// and counted in the second value.
///
/// # Errors
///
/// When the file exists but cannot be read.
pub fn read_commits(dir: &Path) -> io::Result<(Commits, u64)> {
    let path = dir.join(COMMITS);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(at("read", &path)(e)),
    };
    let mut out: BTreeMap<u64, Vec<(u32, u32)>> = BTreeMap::new();
    let mut bad = 0;
    for e in data.chunks_exact(COMMIT_LEN) {
        if crc32fast::hash(&e[0..16]) != u32_at(e, 16) {
            bad += 1;
            continue;
        }
        let (start, end) = (u32_at(e, 8), u32_at(e, 12));
        if start < end {
            out.entry(u64_at(e, 0)).or_default().push((start, end));
        }
    }
    Ok((out, bad))
}

/// The event ranges of a record of `events` events not covered by `committed`.
pub fn pending_ranges(events: u32, committed: Option<&Vec<(u32, u32)>>) -> Vec<(u32, u32)> {
    let Some(c) = committed else {
        return if events > 0 {
            vec![(0, events)]
        } else {
            Vec::new()
        };
    };
    let mut c = c.clone();
    c.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for (s, e) in c {
        if s > at {
            out.push((at, s.min(events)));
        }
        at = at.max(e);
        if at >= events {
            break;
        }
    }
    if at < events {
        out.push((at, events));
    }
    out.retain(|(s, e)| s < e);
    out
}

/// Replaces the commit log with `entries` (written to a temporary file,
/// synced, renamed).
///
/// # Errors
///
/// On any I/O error; the old log is then left as it was.
pub fn rewrite_commits(dir: &Path, entries: &[(u64, u32, u32)]) -> io::Result<()> {
    let tmp = dir.join("commits.tmp");
    let mut buf = Vec::with_capacity(entries.len() * COMMIT_LEN);
    for &(rid, s, e) in entries {
        buf.extend_from_slice(&commit_entry(rid, s, e));
    }
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(&buf)?;
        f.sync_all()
    });
    if let Err(e) = written {
        // A full disk leaves a partial file: take it away again.
        let _ = fs::remove_file(&tmp);
        return Err(at("write", &tmp)(e));
    }
    let log = dir.join(COMMITS);
    fs::rename(&tmp, &log).map_err(at("replace", &log))?;
    sync_dir(dir);
    Ok(())
}

/// An exclusive lock on a channel directory, held while the value lives:
/// two agents, two channels of one agent, or `repair` and an agent never
/// work on one directory at once.
///
/// It is an open file description lock (`F_OFD_SETLK`, Linux) on
/// `DIR/lock`: it belongs to this open of the file, not to the process, so
/// a second open in the same process is refused too, and closing some other
/// descriptor of the file does not release it (a POSIX record lock would
/// be released by the first `close` of any descriptor of the file in the
/// process, and is shared by all its threads). Elsewhere, `flock`, which
/// has the same semantics. Both conflict with a POSIX record lock taken
/// on the same file by another process (older versions).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// How many more times a refused lock is tried, 50 ms apart.
const LOCK_TRIES: u32 = 10;

/// Takes the lock on `dir`.
///
/// # Errors
///
/// `WouldBlock` when another open holds it (the message names `dir`); any
/// I/O error opening the lock file.
pub fn lock_dir(dir: &Path) -> io::Result<DirLock> {
    let path = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(at("open the lock file", &path))?;
    // A child process being started by another thread holds a copy of
    // every descriptor until it executes its program, and with it this
    // lock for a moment after we let go of it: try again for a short while
    // before calling the directory taken.
    let mut tries = 0;
    let locked = loop {
        match lock_file(&file) {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EAGAIN))
                    && tries < LOCK_TRIES =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => break r,
        }
    };
    if let Err(e) = locked {
        if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EAGAIN)) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another process (a running agent?) or by another disk channel of this one",
                    dir.display()
                ),
            ));
        }
        return Err(at("lock", &path)(e));
    }
    Ok(DirLock { _file: file })
}

#[cfg(target_os = "linux")]
fn lock_file(file: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: an all-zero `struct flock` is a valid value (a lock of the
    // whole file once the type is set; `l_pid` must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    // SAFETY: fcntl(2) F_OFD_SETLK on a descriptor we own and keep open,
    // with a pointer to a live `struct flock`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn lock_file(file: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock(2) on a descriptor we own and keep open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Syncs a directory so that renames and new files in it survive an OS
/// crash; best effort (not every platform allows it).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
