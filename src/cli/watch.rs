//! `sluice run` around the topology: reloads on SIGHUP and, with `--watch`,
//! when the pipeline file changes; the progress bar of a bounded run.
//!
//! A reload reads and validates the file exactly as `sluice run` does at
//! start-up. An invalid file is reported (every problem, as
//! FILE:LINE:COL: message) and the running pipeline stays as it is; a valid
//! one goes to the topology, which restarts only what changed (see
//! `sluice_runtime::topology::reload`).

use std::path::Path;
use std::time::Duration;

use sluice_core::registry::Registry;
use sluice_runtime::pipeline::Pipeline;
use sluice_runtime::topology::{ComponentBuildError, RunReport, Topology};
use tokio::sync::mpsc;

use super::progress::Progress;
use crate::settings::Settings;

/// How often `--watch` looks at the file.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What `sluice run` was asked for besides the file.
pub(super) struct RunOptions {
    /// Reload when the file changes.
    pub watch: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Forget the sources' checkpoints before starting (`--from-start`).
    pub from_start: bool,
}

/// Puts a pipeline that does not set its own `data_dir` under the agent's.
pub(super) fn place_data_dir(pipeline: &mut Pipeline, file: &Path, settings: &Settings) {
    if !pipeline.data_dir_set {
        if let Some(stem) = file.file_stem() {
            pipeline.data_dir = settings.data_dir.join(stem);
        }
    }
}

/// Builds and runs `pipeline` (read from `file`) until it ends or `stop`
/// resolves, applying reloads meanwhile.
///
/// # Errors
///
/// The components that failed to build at start-up.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_pipeline(
    registry: &Registry,
    file: &Path,
    settings: &Settings,
    pipeline: &Pipeline,
    options: &RunOptions,
    api: Option<&sluice_api::Listener>,
    stop: impl std::future::Future<Output = ()> + Send,
    drain_timeout: Duration,
) -> Result<RunReport, Vec<ComponentBuildError>> {
    // Listen before anything runs: from here on SIGHUP no longer ends the process.
    let hangup = hangup();
    // Channels and components may open files and take locks as they are built.
    let built = tokio::task::block_in_place(|| Topology::build(pipeline));
    let topology = built?;
    // Serves until dropped at the end of the run.
    let _api = api.and_then(|l| {
        l.serve(&topology)
            .map_err(|e| tracing::error!("the API does not start: {e}"))
            .ok()
    });
    let progress = if options.quiet {
        None
    } else {
        Progress::start(topology.components())
    };
    let (tx, rx) = mpsc::channel(1);
    let requests = async {
        reload_requests(registry, file, settings, options.watch, hangup, tx).await;
        std::future::pending::<()>().await
    };
    let run = topology.run_reloading(stop, drain_timeout, Some(rx));
    let report = tokio::select! {
        report = run => report,
        () = requests => unreachable!("reload requests never end"),
    };
    if let Some(p) = progress {
        p.finish().await;
    }
    Ok(report)
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP ({e}): reload with --watch instead");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

async fn next_hangup(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(s) = hangup.as_mut() {
        if s.recv().await.is_some() {
            return;
        }
    }
    let _ = hangup;
    std::future::pending().await
}

/// The contents of `file`, read on a blocking thread.
async fn read(file: &Path) -> Option<Vec<u8>> {
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::read(file).ok())
        .await
        .ok()
        .flatten()
}

/// Loads the file on each SIGHUP, and with `watch` each time its contents
/// change, and sends every valid version to the topology.
async fn reload_requests(
    registry: &Registry,
    file: &Path,
    settings: &Settings,
    watch: bool,
    mut hangup: Hangup,
    tx: mpsc::Sender<Pipeline>,
) {
    // The file is read on a blocking thread, off the executor.
    let mut seen = read(file).await;
    let mut ticker = tokio::time::interval(WATCH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = next_hangup(&mut hangup) => {
                tracing::info!(pipeline = %file.display(), "SIGHUP: reloading");
                seen = read(file).await.or(seen);
            }
            _ = ticker.tick(), if watch => {
                // A file that is briefly missing (an editor replacing it) is
                // looked at again on the next tick.
                let Some(now) = read(file).await else { continue };
                if seen.as_ref() == Some(&now) {
                    continue;
                }
                seen = Some(now);
                tracing::info!(pipeline = %file.display(), "the pipeline file changed: reloading");
            }
        }
        match tokio::task::block_in_place(|| super::load_checked(file, registry)) {
            Ok(mut pipeline) => {
                place_data_dir(&mut pipeline, file, settings);
                if tx.send(pipeline).await.is_err() {
                    return;
                }
            }
            Err(problems) => {
                for p in &problems {
                    tracing::error!("{p}");
                }
                tracing::error!(
                    pipeline = %file.display(),
                    problems = problems.len(),
                    "reload refused: the file is invalid; the running pipeline stays as it is"
                );
            }
        }
    }
}
