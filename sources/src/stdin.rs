//! The `stdin` source: one event per line of standard input, until end of input.
//!
//! Lines are framed like the `file` source's (see `sluice_core::framing`); a final line
//! without a newline is emitted at end of input. A batch is emitted when it is
//! full, or as soon as a read returns less than a full buffer (the input is
//! caught up), so that interactive input is not held back.
//!
//! Standard input has no offsets: nothing is checkpointed.
//!
//! Note: tokio reads standard input on a blocking thread that cannot be
//! interrupted. On shutdown this source returns at once, but a read already
//! waiting on a terminal finishes only when a line (or end of input) arrives.
//!
//! ```yaml
//! sources:
//!   in:
//!     type: stdin
//!     max_line_bytes: 64KiB
//!     channels: [main]
//! ```

use std::num::NonZeroUsize;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt};

use sluice_core::framing::Framer;

/// The `stdin` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The longest line kept; longer lines are counted, reported and skipped.
    #[serde(default = "sluice_core::defaults::max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// Events per batch at most.
    #[serde(default = "sluice_core::defaults::batch_size")]
    pub batch_size: NonZeroUsize,
}

/// Bytes asked for per read.
const READ_SIZE: usize = 256 << 10;

impl SourceConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.max_line_bytes.0 == 0 {
            problems.push(Problem::at("max_line_bytes", "must be at least 1 byte"));
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(Stdin {
            config: self.clone(),
        }))
    }
}

/// The running `stdin` source.
pub struct Stdin {
    config: Config,
}

#[async_trait]
impl Source for Stdin {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), ComponentError> {
        read_lines(tokio::io::stdin(), &self.config, cx).await
    }
}

/// Emits the lines of `input` until its end or until shutdown.
pub(crate) async fn read_lines<R: AsyncRead + Unpin>(
    mut input: R,
    config: &Config,
    mut cx: SourceContext,
) -> Result<(), ComponentError> {
    let max_line = usize::try_from(config.max_line_bytes.0).unwrap_or(usize::MAX);
    let batch_size = config.batch_size.get();
    let mut framer = Framer::lines("stdin", max_line, 0);
    let mut batch = Batch::with_capacity(batch_size);
    loop {
        let buf = framer.buf_mut();
        buf.reserve(READ_SIZE);
        let want = buf.capacity() - buf.len();
        let n = tokio::select! {
            r = input.read_buf(buf) => r?,
            _ = cx.shutdown.cancelled() => break,
        };
        let now = Timestamp::now();
        let eof = n == 0;
        let push = |batch: &mut Batch, line| batch.push(Event::new(line, now));
        loop {
            while batch.len() < batch_size {
                match framer.next_line() {
                    Some(line) => push(&mut batch, line),
                    None => break,
                }
            }
            if batch.len() < batch_size {
                break;
            }
            cx.emit(std::mem::replace(
                &mut batch,
                Batch::with_capacity(batch_size),
            ))
            .await?;
        }
        if eof {
            if let Some(line) = framer.finish() {
                push(&mut batch, line);
            }
            break;
        }
        if n < want && !batch.is_empty() {
            cx.emit(std::mem::replace(
                &mut batch,
                Batch::with_capacity(batch_size),
            ))
            .await?;
        }
    }
    cx.emit(batch).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::testing::{source_context, Collector};
    use tokio::io::AsyncWriteExt;
    use tokio_util::sync::CancellationToken;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config =
            sluice_core::config::from_yaml_str("max_line_bytes: 64KiB\nbatch_size: 10\n").unwrap();
        assert_eq!(c.max_line_bytes.0, 64 << 10);
        assert_eq!(c.batch_size.get(), 10);
        let err = sluice_core::config::from_yaml_str::<Config>("batch_sise: 10\n").unwrap_err();
        assert!(
            err.message.contains("did you mean `batch_size`"),
            "{}",
            err.message
        );
        let c: Config = sluice_core::config::from_yaml_str("max_line_bytes: 0\n").unwrap();
        assert_eq!(c.validate().len(), 1);
    }

    #[tokio::test]
    async fn reads_every_line_until_end_of_input() {
        let dir = tempfile::tempdir().unwrap();
        let out = Collector::new();
        let cx = source_context("in", dir.path(), out.clone(), CancellationToken::new());
        let mut input = String::new();
        for i in 0..2500 {
            input.push_str(&format!("line {i}\r\n"));
        }
        input.push_str(&"x".repeat(100));
        input.push_str("\nlast");
        let config: Config =
            sluice_core::config::from_yaml_str("max_line_bytes: 50\nbatch_size: 1000\n").unwrap();
        read_lines(input.as_bytes(), &config, cx).await.unwrap();
        let mut expected: Vec<String> = (0..2500).map(|i| format!("line {i}")).collect();
        expected.push("last".into());
        assert_eq!(out.bodies(), expected);
    }

    #[tokio::test]
    async fn emits_lines_as_they_arrive_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let out = Collector::new();
        let shutdown = CancellationToken::new();
        let cx = source_context("in", dir.path(), out.clone(), shutdown.clone());
        let (mut writer, reader) = tokio::io::duplex(1024);
        let config: Config = sluice_core::config::from_yaml_str("{}").unwrap();
        let task = tokio::spawn(async move { read_lines(reader, &config, cx).await });
        writer.write_all(b"one\ntwo\nthr").await.unwrap();
        while out.len() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(out.bodies(), ["one", "two"]);
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(out.bodies(), ["one", "two"]);
    }
}
