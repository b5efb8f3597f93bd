//! The `exec` source: runs a command and emits one event per line of its
//! standard output; restarts it per `restart`.
//!
//! The command is run directly (no shell): `command` is the program and its
//! arguments. Its standard error is passed through to the agent's. On
//! shutdown the command is killed and what it printed so far is emitted.
//! With `restart: never` (or `on_failure` after a clean exit) the source
//! ends when the command does, which ends a bounded run.
//!
//! ```yaml
//! sources:
//!   uptime:
//!     type: exec
//!     command: [sh, -c, "uptime; sleep 10"]
//!     restart: always
//!     restart_delay: 1s
//!     channels: [main]
//! ```

use std::num::NonZeroUsize;
use std::process::Stdio;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use sluice_core::framing::{Framer, Framing};

/// When the command is started again after it exits.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// After every exit.
    Always,
    /// After an exit with a non-zero status or a signal.
    #[default]
    OnFailure,
    /// Never: the source ends with the command.
    Never,
}

/// The `exec` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// `always`, `on_failure` (default) or `never`.
    #[serde(default)]
    pub restart: Restart,
    /// How long to wait before a restart.
    #[serde(default = "default_restart_delay")]
    pub restart_delay: sluice_core::config::Duration,
    /// The longest line kept; longer ones are counted as errors and skipped.
    #[serde(default = "sluice_core::defaults::max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// Events per batch at most.
    #[serde(default = "sluice_core::defaults::batch_size")]
    pub batch_size: NonZeroUsize,
}

fn default_restart_delay() -> sluice_core::config::Duration {
    std::time::Duration::from_secs(1).into()
}

impl SourceConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.command.first().is_none_or(|c| c.is_empty()) {
            p.push(Problem::at(
                "command",
                "must name a program: `[program, arg, ...]`",
            ));
        }
        if self.max_line_bytes.0 == 0 {
            p.push(Problem::at("max_line_bytes", "must be at least 1 byte"));
        }
        p
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(Exec {
            config: self.clone(),
        }))
    }
}

/// A running `exec` source.
pub struct Exec {
    config: Config,
}

/// How one run of the command ended.
enum Ended {
    Exited(std::process::ExitStatus),
    Stopped,
}

#[async_trait]
impl Source for Exec {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), ComponentError> {
        let c = &self.config;
        loop {
            let failed = match run_once(c, &mut cx).await? {
                Ended::Stopped => return Ok(()),
                Ended::Exited(status) => {
                    if !status.success() {
                        tracing::warn!(command = ?c.command, %status, "command failed");
                    } else {
                        tracing::info!(command = ?c.command, "command exited");
                    }
                    !status.success()
                }
            };
            let again = match c.restart {
                Restart::Always => true,
                Restart::OnFailure => failed,
                Restart::Never => false,
            };
            if !again {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(c.restart_delay.get()) => {}
                _ = cx.shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

async fn run_once(c: &Config, cx: &mut SourceContext) -> Result<Ended, ComponentError> {
    let mut child = match Command::new(&c.command[0])
        .args(&c.command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            // Treated like a failed run, so `restart` decides what follows.
            tracing::warn!(command = ?c.command, "cannot start the command: {e}");
            use std::os::unix::process::ExitStatusExt;
            return Ok(Ended::Exited(std::process::ExitStatus::from_raw(127 << 8)));
        }
    };
    let Some(mut out) = child.stdout.take() else {
        return Err(ComponentError::Other(
            "the command's stdout is not piped".into(),
        ));
    };
    let max = usize::try_from(c.max_line_bytes.0).unwrap_or(usize::MAX);
    let batch_size = c.batch_size.get();
    let mut framer = Framer::new(Framing::Newline, max);
    let mut batch = Batch::with_capacity(batch_size);
    let mut stopped = false;
    loop {
        let buf = framer.buf_mut();
        buf.reserve(64 << 10);
        let want = buf.capacity() - buf.len();
        let n = tokio::select! {
            r = out.read_buf(buf) => r?,
            _ = cx.shutdown.cancelled() => { stopped = true; 0 }
        };
        let now = Timestamp::now();
        while let Ok(Some(line)) = framer.next_message() {
            batch.push(Event::new(line, now));
            if batch.len() >= batch_size {
                cx.emit(std::mem::replace(
                    &mut batch,
                    Batch::with_capacity(batch_size),
                ))
                .await?;
            }
        }
        // At the command's end its last line counts even without a newline;
        // on a stop a partial line is left out.
        if n == 0 && !stopped {
            if let Some(line) = framer.finish() {
                batch.push(Event::new(line, now));
            }
        }
        let too_long = framer.take_too_long();
        if too_long > 0 {
            cx.metrics.record_errors(too_long as usize);
            tracing::warn!(command = ?c.command, max_line_bytes = max, "line longer than max_line_bytes: skipped");
        }
        if n == 0 || n < want {
            cx.emit(std::mem::replace(
                &mut batch,
                Batch::with_capacity(batch_size),
            ))
            .await?;
        }
        if n == 0 {
            break;
        }
    }
    if stopped {
        let _ = child.kill().await;
        return Ok(Ended::Stopped);
    }
    Ok(Ended::Exited(child.wait().await?))
}
