//! # sluice-sources
//!
//! The built-in sources of Sluice. Each lives in the file named after its
//! YAML `type` and has a `Config` (the typed options, with a pure `validate`
//! and a `build`) and a running source that implements
//! [`Source`](sluice_core::source::Source):
//!
//! * [`generator`]: synthetic events (`sequence`, `apache_common`, `syslog`,
//!   `json`), optionally rate-limited and counted; for tests and benchmarks.
//! * [`file`](mod@file): lines of files matched by globs, followed like `tail -F` or
//!   read once to their end, with per-file offsets kept in the checkpoint
//!   store so that a restart neither re-reads nor skips a line. Files are
//!   known by inode and a fingerprint of their first bytes, followed through
//!   rename and copytruncate rotation; `multiline` joins stack traces.
//! * [`stdin`]: lines of standard input until end of input.
//! * [`exec`]: the lines a command prints, the command restarted per
//!   `restart`.
//!
//! `file`, `stdin` and `exec` frame lines with `sluice_core::framing`, as the
//! network sources do: big reads,
//! `memchr` to find newlines, and each body a zero-copy slice of the read
//! buffer.
//!
//! [`register`] adds all of them to a [`Registry`] under their type names:
//!
//! ```
//! use sluice_core::registry::Registry;
//!
//! let mut registry = Registry::new();
//! sluice_sources::register(&mut registry).unwrap();
//! assert_eq!(registry.names("source"), ["exec", "file", "generator", "stdin"]);
//! ```

use sluice_core::registry::{DuplicateType, Registry};

pub mod exec;
pub mod file;
pub mod generator;
pub mod stdin;

/// Registers every built-in source under its YAML `type`.
///
/// # Errors
///
/// When one of the names is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_source::<exec::Config>("exec")?;
    registry.add_source::<file::Config>("file")?;
    registry.add_source::<generator::Config>("generator")?;
    registry.add_source::<stdin::Config>("stdin")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_every_source_once() {
        let mut registry = Registry::new();
        register(&mut registry).unwrap();
        assert_eq!(
            registry.names("source"),
            ["exec", "file", "generator", "stdin"]
        );
        assert!(register(&mut registry).is_err());
    }
}
