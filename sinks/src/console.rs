//! The `console` sink: writes events to the agent's stdout or stderr.
//!
//! Each batch is encoded ([`Encoder`]) into one reused buffer, written with
//! one `write_all` and flushed, on a blocking thread
//! ([`tokio::task::spawn_blocking`]) so a slow terminal or pipe never stalls
//! the runtime's workers. `write` returns `Ok` once the bytes are handed to
//! the OS.
//!
//! When the reader has gone (`sluice run p.yaml | head`), the write fails
//! with a broken pipe; the sink then returns [`SinkError::Fatal`], which stops
//! the pipeline with a clear message instead of retrying forever. Other I/O
//! errors are [`SinkError::Retry`].

use std::io::Write;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::encode::{encoding_problems, Encoder, Encoding, Format};

/// Which standard stream to write to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Stdout => "stdout",
            Target::Stderr => "stderr",
        }
    }
}

/// The `console` sink's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `text` (the body and a newline) or `json` (one object per line).
    #[serde(default)]
    pub format: Format,
    /// Options of the `json` format, as for the `file` sink.
    #[serde(default)]
    pub encoding: Option<Encoding>,
    /// `stdout` or `stderr`.
    #[serde(default)]
    pub target: Target,
}

impl SinkConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        encoding_problems(self.format, self.encoding.as_ref())
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let out: Box<dyn Write + Send> = match self.target {
            Target::Stdout => Box::new(std::io::stdout()),
            Target::Stderr => Box::new(std::io::stderr()),
        };
        let mut sink = ConsoleSink::new(&cx.id, self.format, self.target.name(), out);
        if let Some(encoding) = &self.encoding {
            sink.encoder = Encoder::with_encoding(self.format, encoding);
        }
        Ok(Box::new(sink))
    }
}

/// The `console` sink (see the [module docs](self)).
pub struct ConsoleSink {
    /// The component id, for error messages.
    id: String,
    /// `stdout` or `stderr`, for error messages.
    target: &'static str,
    /// Encodes events into `buf`.
    encoder: Encoder,
    /// The stream; `None` only while a write is in flight (or after the
    /// blocking task panicked, when the sink cannot go on).
    out: Option<Box<dyn Write + Send>>,
    /// The batch buffer, reused.
    buf: Vec<u8>,
}

impl ConsoleSink {
    /// A sink writing `format` to `out`, named `target` in messages.
    pub fn new(id: &str, format: Format, target: &'static str, out: Box<dyn Write + Send>) -> Self {
        ConsoleSink {
            id: id.to_string(),
            target,
            encoder: Encoder::new(format),
            out: Some(out),
            buf: Vec::new(),
        }
    }
}

impl std::fmt::Debug for ConsoleSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSink")
            .field("id", &self.id)
            .field("target", &self.target)
            .field("encoder", &self.encoder)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Sink for ConsoleSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let Some(mut out) = self.out.take() else {
            return Err(SinkError::Fatal(format!(
                "sink `{}`: {} is no longer available",
                self.id, self.target
            )));
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let rejected = self.encoder.encode_batch(batch, &mut buf);
        let joined = tokio::task::spawn_blocking(move || {
            let result = out.write_all(&buf).and_then(|()| out.flush());
            (out, buf, result)
        })
        .await;
        let (out, buf, result) = joined.map_err(|e| {
            SinkError::Fatal(format!(
                "sink `{}`: the {} writer failed: {e}",
                self.id, self.target
            ))
        })?;
        self.out = Some(out);
        self.buf = buf;
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        match result {
            Ok(()) if rejected.is_empty() => Ok(()),
            Ok(()) => Err(SinkError::Rejected(rejected)),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(SinkError::Fatal(format!(
                "sink `{}`: {} is closed (broken pipe): whatever read the agent's {} has exited",
                self.id, self.target, self.target
            ))),
            Err(e) => Err(SinkError::Retry(format!(
                "sink `{}`: cannot write to {}: {e}",
                self.id, self.target
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::config::from_yaml_str;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps what it is given, counting writes and flushes.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<(Vec<u8>, usize, usize)>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut g = self.0.lock().unwrap();
            g.0.extend_from_slice(b);
            g.1 += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.lock().unwrap().2 += 1;
            Ok(())
        }
    }

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn ev(body: &str) -> Event {
        Event::new(body.to_string(), Timestamp(0))
    }

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = from_yaml_str("format: json\ntarget: stderr\n").unwrap();
        assert_eq!((c.format, c.target), (Format::Json, Target::Stderr));
        let c: Config = from_yaml_str("{}\n").unwrap();
        assert_eq!((c.format, c.target), (Format::Text, Target::Stdout));
        let e = from_yaml_str::<Config>("traget: stderr\n").err().unwrap();
        assert!(e.message.contains("did you mean `target`"), "{}", e.message);
        assert!(from_yaml_str::<Config>("target: printer\n").is_err());
    }

    #[test]
    fn encoding_applies_to_json_only() {
        let c: Config = from_yaml_str("format: json\nencoding: {layout: flat}\n").unwrap();
        assert!(c.validate().is_empty());
        let c: Config = from_yaml_str("encoding: {layout: flat}\n").unwrap();
        let p = c.validate();
        assert_eq!(p[0].key.as_deref(), Some("encoding"), "{p:?}");
    }

    #[tokio::test]
    async fn json_follows_the_encoding() {
        let shared = Shared::default();
        let c: Config =
            from_yaml_str("format: json\nencoding: {layout: flat, except_fields: [timestamp]}\n")
                .unwrap();
        let mut s = ConsoleSink::new("out", c.format, "stdout", Box::new(shared.clone()));
        s.encoder = Encoder::with_encoding(c.format, c.encoding.as_ref().unwrap());
        let mut e = ev("a");
        e.insert("n", 1i64);
        s.write(&Batch::from(vec![e])).await.unwrap();
        assert_eq!(shared.0.lock().unwrap().0, b"{\"message\":\"a\",\"n\":1}\n");
    }

    #[tokio::test]
    async fn one_write_and_one_flush_per_batch() {
        let shared = Shared::default();
        let mut s = ConsoleSink::new("out", Format::Text, "stdout", Box::new(shared.clone()));
        s.write(&Batch::from(vec![ev("a"), ev("b"), ev("c")]))
            .await
            .unwrap();
        s.write(&Batch::from(vec![ev("d")])).await.unwrap();
        let g = shared.0.lock().unwrap();
        assert_eq!(g.0, b"a\nb\nc\nd\n");
        assert_eq!((g.1, g.2), (2, 2));
    }

    #[tokio::test]
    async fn json_lines() {
        let shared = Shared::default();
        let mut s = ConsoleSink::new("out", Format::Json, "stdout", Box::new(shared.clone()));
        s.write(&Batch::from(vec![ev("a")])).await.unwrap();
        let g = shared.0.lock().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&g.0),
            "{\"timestamp\":\"1970-01-01T00:00:00.000000Z\",\"message\":\"a\"}\n"
        );
    }

    #[tokio::test]
    async fn broken_pipe_is_fatal() {
        let mut s = ConsoleSink::new("out", Format::Text, "stdout", Box::new(Broken));
        match s.write(&Batch::from(vec![ev("a")])).await {
            Err(SinkError::Fatal(m)) => assert!(m.contains("broken pipe"), "{m}"),
            other => panic!("expected Fatal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn real_closed_pipe_is_fatal() {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created and are owned here.
        let (reader, writer) = unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        };
        drop(reader);
        let mut s = ConsoleSink::new("out", Format::Text, "stdout", Box::new(writer));
        match s.write(&Batch::from(vec![ev("a")])).await {
            Err(SinkError::Fatal(m)) => assert!(m.contains("stdout is closed"), "{m}"),
            other => panic!("expected Fatal, got {other:?}"),
        }
    }
}
