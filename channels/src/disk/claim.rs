//! One disk channel per directory.
//!
//! Across processes the directory lock ([`log::lock_dir`]) keeps a second
//! agent out. Inside one process this module keeps a table of the
//! directories its disk channels have open, so that a second open gets a
//! clear error at once, and so that a channel rebuilt by a reload can take
//! the directory over from its closed predecessor: a predecessor that is
//! closed and has nothing taken is *retired* (its writer thread finishes
//! and syncs, its lock is released, it hands out nothing more) before the
//! new channel reads the files. A predecessor being dropped elsewhere is
//! waited for, at most [`CLOSING_WAIT`].
//!
//! [`shared_directories`] finds the same conflict in a pipeline before
//! anything runs.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use sluice_core::config::node::Pos;
use sluice_core::registry::AnyChannelConfig;

use super::{log, Core, DiskConfig};

/// How long an open waits for a channel of this process that is being
/// dropped to let go of the directory.
pub const CLOSING_WAIT: Duration = Duration::from_secs(30);

enum Holder {
    /// A channel is being opened there.
    Opening,
    /// A channel has it open (dropping when the `Weak` is dead).
    Open(Weak<Core>),
}

static OPEN: Mutex<BTreeMap<PathBuf, Holder>> = Mutex::new(BTreeMap::new());
/// Notified whenever an entry of [`OPEN`] goes.
static RELEASED: Condvar = Condvar::new();

fn table() -> MutexGuard<'static, BTreeMap<PathBuf, Holder>> {
    OPEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// This process's claim on a directory while a channel opens there;
/// dropped without [`Claim::open`] (the open failed), it lets go.
pub(super) struct Claim {
    pub(super) key: PathBuf,
    opened: bool,
}

impl Claim {
    /// The channel is open: the directory is its own until it is retired
    /// or dropped.
    pub(super) fn open(mut self, core: &Arc<Core>) {
        table().insert(self.key.clone(), Holder::Open(Arc::downgrade(core)));
        self.opened = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.opened {
            let mut t = table();
            if matches!(t.get(&self.key), Some(Holder::Opening)) {
                t.remove(&self.key);
            }
            RELEASED.notify_all();
        }
    }
}

fn in_use(dir: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "{} is already open by another disk channel of this agent{why}: two disk channels cannot share a directory",
            dir.display()
        ),
    )
}

/// Claims `dir` (which exists) for a channel about to open there: refused
/// when another channel of this process has it open; a closed, idle one
/// is retired first.
///
/// # Errors
///
/// `WouldBlock` naming `dir` when it is in use here; an I/O error when
/// `dir` cannot be resolved.
pub(super) fn claim(dir: &Path) -> io::Result<Claim> {
    let key = dir
        .canonicalize()
        .map_err(log::at("resolve the directory", dir))?;
    let deadline = Instant::now() + CLOSING_WAIT;
    let mut t = table();
    loop {
        let holder = match t.get(&key) {
            None => {
                t.insert(key.clone(), Holder::Opening);
                return Ok(Claim { key, opened: false });
            }
            Some(Holder::Opening) => return Err(in_use(dir, "")),
            Some(Holder::Open(w)) => w.upgrade(),
        };
        match holder {
            Some(core) if core.retirable() => {
                drop(t);
                core.retire();
                drop(core);
                t = table();
            }
            Some(_) => return Err(in_use(dir, "")),
            None => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(in_use(dir, " (still closing)"));
                }
                t = RELEASED
                    .wait_timeout(t, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }
}

/// Lets go of `key` if `core` holds it; wakes opens waiting for it.
pub(super) fn release(key: &Path, core: *const Core) {
    let mut t = table();
    if matches!(t.get(key), Some(Holder::Open(w)) if std::ptr::eq(w.as_ptr(), core)) {
        t.remove(key);
    }
    RELEASED.notify_all();
}

/// The directory a disk channel `id` of a pipeline whose `data_dir` is
/// `data_dir` uses.
pub fn directory(data_dir: &Path, id: &str, config: &DiskConfig) -> PathBuf {
    config
        .path
        .clone()
        .unwrap_or_else(|| data_dir.join("channels").join(id))
}

/// `path` made absolute and without `.` and `..` (lexically: no I/O, so
/// two names of one directory through a symbolic link are not found here;
/// the lock finds them when the channels open).
fn normalize(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The disk channels among `channels` (id, options, where declared) of a
/// pipeline whose `data_dir` is `data_dir`, whose directory another disk
/// channel of them uses too: where each is declared, and the problem.
pub fn shared_directories<'a>(
    data_dir: &Path,
    channels: impl IntoIterator<Item = (&'a str, &'a dyn AnyChannelConfig, Pos)>,
) -> Vec<(Pos, String)> {
    let mut seen: Vec<(PathBuf, &str)> = Vec::new();
    let mut out = Vec::new();
    for (id, config, pos) in channels {
        let Some(config) = config.as_any().downcast_ref::<DiskConfig>() else {
            continue;
        };
        let dir = directory(data_dir, id, config);
        let norm = normalize(&dir);
        match seen.iter().find(|(p, _)| *p == norm) {
            Some((_, other)) => out.push((
                pos,
                format!(
                    "channel `{id}`: its directory {} is also the directory of channel `{other}`: two disk channels cannot share a directory",
                    dir.display()
                ),
            )),
            None => seen.push((norm, id)),
        }
    }
    out
}
