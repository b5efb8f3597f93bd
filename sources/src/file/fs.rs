//! The `file` source's blocking file-system work, run on tokio's blocking
//! threads: matching the globs and opening files, and reading one chunk.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use sluice_core::source::ComponentError;

use super::{join_error, CHUNK};

/// A file found by a scan, opened.
pub(super) struct Opened {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) len: u64,
}

/// What one chunk read found.
pub(super) enum ReadOutcome {
    /// This many bytes were appended to the buffer.
    Data(usize),
    /// Nothing new: the read position is the file's end.
    Eof,
    /// The file is now shorter than the read position.
    Truncated,
}

/// What a scan found: see [`scan`].
pub(super) type ScanResult = (
    BTreeMap<PathBuf, (u64, u64)>,
    Vec<Opened>,
    Vec<(PathBuf, std::io::Error)>,
);

/// Blocking: matches the globs; opens every matched regular file not in
/// `known` (path, device, inode). Returns every match with its device and
/// inode, the newly opened files, and the paths that could not be opened.
pub(super) fn scan(
    include: &[String],
    exclude: &[glob::Pattern],
    known: &BTreeSet<(PathBuf, u64, u64)>,
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
        if known.contains(&(path.clone(), meta.dev(), meta.ino())) {
            continue;
        }
        let opened_file = File::open(&path).and_then(|file| {
            // Identity from the open file itself, not from the path.
            let meta = file.metadata()?;
            Ok(Opened {
                path: path.clone(),
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                file,
            })
        });
        match opened_file {
            Ok(o) => {
                matched.insert(path, (o.dev, o.ino));
                opened.push(o);
            }
            Err(e) => failed.push((path, e)),
        }
    }
    (matched, opened, failed)
}

/// Blocking read of up to [`CHUNK`] bytes at `pos`, appended to `buf`.
pub(super) async fn read_chunk(
    file: Arc<File>,
    mut buf: BytesMut,
    pos: u64,
) -> Result<(BytesMut, ReadOutcome), ComponentError> {
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<(BytesMut, ReadOutcome)> {
        let len = file.metadata()?.len();
        if len < pos {
            return Ok((buf, ReadOutcome::Truncated));
        }
        let want = (len - pos).min(CHUNK) as usize;
        if want == 0 {
            return Ok((buf, ReadOutcome::Eof));
        }
        let start = buf.len();
        buf.resize(start + want, 0);
        let n = file.read_at(&mut buf[start..], pos)?;
        buf.truncate(start + n);
        let outcome = if n == 0 {
            ReadOutcome::Eof
        } else {
            ReadOutcome::Data(n)
        };
        Ok((buf, outcome))
    });
    Ok(read.await.map_err(join_error)??)
}
