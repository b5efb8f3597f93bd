//! The `file` source's blocking file-system work, run on tokio's blocking
//! threads: matching the globs and opening files, reading one chunk, and
//! taking the fingerprint of a file's first bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use sluice_core::source::ComponentError;

use super::{join_error, CHUNK};

/// How many first bytes of a file its fingerprint covers at most.
pub(super) const FINGERPRINT_BYTES: usize = 1024;

/// A hash of a file's first bytes (up to [`FINGERPRINT_BYTES`]): with the
/// device and inode, it tells a file from another one that took its inode
/// (a new file after a delete, or the same file truncated and rewritten).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Fingerprint {
    /// How many first bytes the hash covers (less than the maximum while
    /// the file is shorter).
    pub(super) bytes: u64,
    /// FNV-1a (64 bits) of those bytes.
    pub(super) hash: u64,
}

impl Fingerprint {
    /// The fingerprint of a file whose first bytes are `head`.
    pub(super) fn of(head: &[u8]) -> Self {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        Fingerprint {
            bytes: head.len() as u64,
            hash: fnv1a(head),
        }
    }

    /// Whether a file whose first bytes are `head` starts like the file
    /// this fingerprint was taken of.
    pub(super) fn matches(&self, head: &[u8]) -> bool {
        match usize::try_from(self.bytes) {
            Ok(0) => true,
            Ok(n) if n <= head.len() => fnv1a(&head[..n]) == self.hash,
            _ => false,
        }
    }
}

/// 64-bit FNV-1a: stable across versions and platforms (the value is stored
/// in checkpoints), and fast enough for at most a kilobyte.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reads the first bytes of `file` (at most [`FINGERPRINT_BYTES`]) into `out`;
/// returns how many.
fn read_head(file: &File, out: &mut [u8; FINGERPRINT_BYTES]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < out.len() {
        match file.read_at(&mut out[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads up to `want` bytes at `pos` and appends them to `buf`; returns how
/// many. The bytes land in the spare capacity of a new vector without being
/// zeroed first (`read_to_end` reads into uninitialized capacity, safely):
/// the new buffer starts with the partial line `buf` held, which the old
/// buffer's reserve would have copied anyway, since its complete lines are
/// shared with events already handed out. Moves the file's own offset, which
/// nothing else uses (the other reads are positioned).
fn read_appending(
    file: &File,
    buf: &mut BytesMut,
    pos: u64,
    want: usize,
) -> std::io::Result<usize> {
    let mut vec = Vec::with_capacity(buf.len() + want);
    vec.extend_from_slice(buf);
    let mut reader = file;
    reader.seek(SeekFrom::Start(pos))?;
    let n = reader.take(want as u64).read_to_end(&mut vec)?;
    // Both conversions keep the allocation (the vector is not shared).
    *buf = BytesMut::from(bytes::Bytes::from(vec));
    Ok(n)
}

/// A file found by a scan, opened.
pub(super) struct Opened {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) len: u64,
    /// Its first bytes (at most [`FINGERPRINT_BYTES`]), to compare with a checkpoint.
    pub(super) head: Vec<u8>,
}

/// What one chunk read found.
pub(super) enum ReadOutcome {
    /// This many bytes were appended to the buffer.
    Data(usize),
    /// Nothing new: the read position is the file's end.
    Eof,
    /// The file is now shorter than the read position, or its first bytes
    /// changed: it was truncated (and maybe written again) in place.
    Truncated,
}

/// What a scan found: see [`scan`].
pub(super) type ScanResult = (
    BTreeMap<PathBuf, (u64, u64)>,
    Vec<Opened>,
    Vec<(PathBuf, std::io::Error)>,
);

/// Blocking: matches the globs; opens every matched regular file whose
/// device and inode are not in `known`. Returns every match with its device
/// and inode, the newly opened files, and the paths that could not be opened.
pub(super) fn scan(
    include: &[String],
    exclude: &[glob::Pattern],
    known: &BTreeSet<(u64, u64)>,
) -> ScanResult {
    let mut matched = BTreeMap::new();
    let mut opened = Vec::new();
    let mut failed = Vec::new();
    let paths: BTreeSet<PathBuf> = include
        .iter()
        .filter_map(|p| glob::glob(p).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|p| !exclude.iter().any(|x| x.matches_path(p)))
        .collect();
    for path in paths {
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            _ => continue,
        };
        matched.insert(path.clone(), (meta.dev(), meta.ino()));
        if known.contains(&(meta.dev(), meta.ino())) {
            continue;
        }
        let opened_file = File::open(&path).and_then(|file| {
            // Identity from the open file itself, not from the path.
            let meta = file.metadata()?;
            let mut head = [0u8; FINGERPRINT_BYTES];
            let n = read_head(&file, &mut head)?;
            Ok(Opened {
                path: path.clone(),
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                head: head[..n].to_vec(),
                file,
            })
        });
        match opened_file {
            Ok(o) => {
                if known.contains(&(o.dev, o.ino)) {
                    continue;
                }
                matched.insert(path, (o.dev, o.ino));
                opened.push(o);
            }
            Err(e) => failed.push((path, e)),
        }
    }
    (matched, opened, failed)
}

/// Blocking read of up to [`CHUNK`] bytes at `pos`, appended to `buf`.
/// Checks the file's first bytes against `fingerprint` (a mismatch means the
/// file was truncated and written again) and returns the fingerprint,
/// extended while the file is shorter than [`FINGERPRINT_BYTES`].
pub(super) async fn read_chunk(
    file: Arc<File>,
    mut buf: BytesMut,
    pos: u64,
    fingerprint: Fingerprint,
) -> Result<(BytesMut, ReadOutcome, Fingerprint), ComponentError> {
    let read = tokio::task::spawn_blocking(
        move || -> std::io::Result<(BytesMut, ReadOutcome, Fingerprint)> {
            let len = file.metadata()?.len();
            if len < pos {
                return Ok((buf, ReadOutcome::Truncated, fingerprint));
            }
            let mut fp = fingerprint;
            if fp.bytes > 0 || len > 0 {
                let mut head = [0u8; FINGERPRINT_BYTES];
                let n = read_head(&file, &mut head)?;
                if !fp.matches(&head[..n]) {
                    return Ok((buf, ReadOutcome::Truncated, fingerprint));
                }
                fp = Fingerprint::of(&head[..n]);
            }
            let want = (len - pos).min(CHUNK) as usize;
            if want == 0 {
                return Ok((buf, ReadOutcome::Eof, fp));
            }
            let n = read_appending(&file, &mut buf, pos, want)?;
            let outcome = if n == 0 {
                ReadOutcome::Eof
            } else {
                ReadOutcome::Data(n)
            };
            Ok((buf, outcome, fp))
        },
    );
    Ok(read.await.map_err(join_error)??)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_a_longer_file_with_the_same_start_only() {
        let fp = Fingerprint::of(b"2026-11-26 first line\n");
        assert_eq!(fp.bytes, 22);
        assert!(fp.matches(b"2026-11-26 first line\nsecond line\n"));
        assert!(!fp.matches(b"2026-11-26 first"));
        assert!(!fp.matches(b"2026-11-27 first line\n"));
        let long = vec![b'x'; 5000];
        assert_eq!(Fingerprint::of(&long).bytes, FINGERPRINT_BYTES as u64);
        assert!(Fingerprint::default().matches(b""));
        // The stored value must not change between versions.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
