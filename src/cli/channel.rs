//! `sluice channel check DIR` and `sluice channel repair DIR`: inspect and
//! fix a disk channel's directory while no agent uses it.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use sluice_channels::disk::{self, log::DamageKind};

use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};

/// What to do with a disk channel's directory.
#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Reports segments, records, pending events and damaged records; exits 1 when it finds damage.
    Check {
        /// The channel's directory (by default `<data_dir>/channels/<id>`).
        dir: PathBuf,
    },
    /// Cuts torn tails and drops corrupt records so that the channel opens cleanly.
    Repair {
        /// The channel's directory.
        dir: PathBuf,
    },
}

/// Runs a `sluice channel` command; returns the exit code: 0 clean (or
/// repaired), 1 damage found by `check`, 2 the directory could not be read,
/// written or locked.
pub fn main(cmd: ChannelCommand) -> i32 {
    let result = match cmd {
        ChannelCommand::Check { dir } => check(&dir),
        ChannelCommand::Repair { dir } => repair(&dir),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        EXIT_CONFIG
    })
}

fn kind(k: DamageKind) -> &'static str {
    match k {
        DamageKind::Corrupt => "corrupt",
        DamageKind::Torn => "torn",
    }
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    Ok(())
}

fn check(dir: &Path) -> anyhow::Result<i32> {
    ensure_dir(dir)?;
    let (_, _, s) = disk::inspect(dir, |path, d| {
        println!(
            "{} record in {} at offset {} ({} bytes): {}",
            kind(d.kind),
            path.display(),
            d.offset,
            d.len,
            d.reason
        );
    })?;
    println!(
        "segments: {}\nrecords: {}\npending records: {}\npending events: {}\ncorrupt records: {}\ntorn records: {}\nbad commit entries: {}",
        s.segments, s.records, s.pending_records, s.pending_events, s.corrupt, s.torn, s.bad_commits
    );
    if s.corrupt + s.torn + s.bad_commits > 0 {
        println!("damaged: run `sluice channel repair {}`", dir.display());
        Ok(EXIT_FAILED)
    } else {
        println!("clean");
        Ok(EXIT_OK)
    }
}

fn repair(dir: &Path) -> anyhow::Result<i32> {
    ensure_dir(dir)?;
    let (fixed, bad) = disk::repair(dir)?;
    for seg in &fixed {
        for d in &seg.removed {
            println!(
                "removed {} record from {} at offset {} ({} bytes): {}",
                kind(d.kind),
                seg.path.display(),
                d.offset,
                d.len,
                d.reason
            );
        }
    }
    if bad > 0 {
        println!("removed {bad} bad commit entries (their events will be delivered again)");
    }
    let (_, _, s) = disk::inspect(dir, |_, _| {})?;
    println!(
        "repaired {} segment{}; now {} records, {} pending events",
        fixed.len(),
        if fixed.len() == 1 { "" } else { "s" },
        s.records,
        s.pending_events
    );
    Ok(EXIT_OK)
}
