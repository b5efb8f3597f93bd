//! Checkpoints: small state files a component keeps across restarts.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A JSON file under the pipeline's `data_dir`, replaced atomically on save.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// A store kept at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CheckpointStore { path: path.into() }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the last saved state; `Ok(None)` when there is none yet.
    ///
    /// # Errors
    ///
    /// When the file exists but cannot be read or parsed.
    pub fn load<T: DeserializeOwned>(&self) -> std::io::Result<Option<T>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("checkpoint {}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves `state`: written to a temporary file, synced, then renamed over
    /// the old one, so a crash leaves either the old or the new state.
    pub fn save<T: Serialize>(&self, state: &T) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, state).map_err(std::io::Error::other)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("a/b/cp.json"));
        assert_eq!(store.load::<Vec<u64>>().unwrap(), None);
        store.save(&vec![1u64, 2, 3]).unwrap();
        assert_eq!(store.load::<Vec<u64>>().unwrap(), Some(vec![1, 2, 3]));
    }
}
