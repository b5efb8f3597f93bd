//! The `sluice` source: receives batches from other agents' `sluice` sinks
//! and acknowledges each one only after this agent's channels accepted it.
//!
//! ```yaml
//! sources:
//!   edge:
//!     type: sluice
//!     address: 0.0.0.0:6000
//!     channels: [main]
//! ```

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::proto::{self, ACK, BATCH, HELLO, NACK, REFUSED, WELCOME};
use crate::conn::{
    default_idle_timeout, default_max_connections, timeout_problem, Gate, HandshakeLog,
    HANDSHAKE_TIMEOUT,
};
use crate::ingest::{pump, Ingest};
use crate::secure::{bind, Io, Secret, TlsConfig, Token};

/// The `sluice` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on.
    pub address: String,
    /// The bearer token senders must present: `{env: NAME}` or `{file: PATH}`.
    pub token: Option<Secret>,
    /// TLS: `cert` and `key`, and `ca` to require client certificates.
    pub tls: Option<TlsConfig>,
    /// The largest batch frame accepted.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: ByteSize,
    /// Connections open at most; more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    /// After the welcome, a connection that sends no frame for this long is
    /// closed (a sender connects again when it has a batch).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: sluice_core::config::Duration,
}

fn default_max_frame_bytes() -> ByteSize {
    ByteSize(64 << 20)
}

impl SourceConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if let Some(tls) = &self.tls {
            p.extend(tls.server_problems());
        }
        if self.max_frame_bytes.0 < 1024 {
            p.push(Problem::at("max_frame_bytes", "must be at least 1KiB"));
        }
        p.extend(timeout_problem("idle_timeout", self.idle_timeout.get()));
        p
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(HopSource {
            listener: bind(&self.address)?,
            token: self.token.as_ref().map(Secret::load).transpose()?,
            tls: self.tls.as_ref().map(TlsConfig::acceptor).transpose()?,
            max_frame: usize::try_from(self.max_frame_bytes.0).unwrap_or(usize::MAX),
            max_connections: self.max_connections.get(),
            idle: self.idle_timeout.get(),
        }))
    }
}

/// A running `sluice` source.
pub struct HopSource {
    listener: std::net::TcpListener,
    token: Option<Token>,
    tls: Option<TlsAcceptor>,
    max_frame: usize,
    max_connections: usize,
    idle: Duration,
}

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
impl Source for HopSource {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), ComponentError> {
        let listener = TcpListener::from_std(self.listener)?;
        let (ingest, rx) = Ingest::new();
        let shutdown = cx.shutdown.clone();
        let metrics = cx.metrics.clone();
        let name = format!("source {}", cx.id);
        let gate = Gate::new(name.clone(), self.max_connections, Some(metrics.clone()));
        let handshakes = Arc::new(HandshakeLog::default());
        let shared = Arc::new((self.token, self.tls, self.max_frame, self.idle));
        let acceptor = tokio::spawn(async move {
            while let Some((tcp, peer, admitted)) = gate.accept(&listener, &shutdown).await {
                let _ = tcp.set_nodelay(true);
                let (ingest, shutdown, shared, metrics, handshakes, name) = (
                    ingest.clone(),
                    shutdown.clone(),
                    shared.clone(),
                    metrics.clone(),
                    handshakes.clone(),
                    name.clone(),
                );
                tokio::spawn(async move {
                    let _admitted = admitted;
                    let (token, tls, max_frame, idle) = &*shared;
                    let stream: Box<dyn Io> = match tls {
                        None => Box::new(tcp),
                        Some(tls) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                                Ok(Ok(s)) => Box::new(s),
                                Ok(Err(e)) => {
                                    handshakes.failed(&name, peer, &e.to_string());
                                    return;
                                }
                                Err(_) => {
                                    handshakes.failed(&name, peer, "timed out");
                                    return;
                                }
                            }
                        }
                    };
                    let limits = Limits {
                        max_frame: *max_frame,
                        idle: *idle,
                    };
                    match serve(stream, token.as_ref(), limits, ingest, shutdown, &metrics).await {
                        Ok(()) => {}
                        Err(Closed::Idle) => tracing::debug!(
                            %peer, idle_timeout = ?idle, "hop connection closed: no frame for idle_timeout"
                        ),
                        Err(Closed::Failed(e)) => {
                            tracing::warn!(%peer, "hop connection closed: {e}")
                        }
                    }
                });
            }
        });
        let result = pump(rx, &mut cx).await;
        acceptor.abort();
        result
    }
}

async fn refuse(stream: &mut Box<dyn Io>, code: u16, msg: &str) -> Closed {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(msg.as_bytes());
    let _ = proto::write_control(stream, REFUSED, &p).await;
    Closed::Failed(format!("refused ({code}): {msg}"))
}

/// The limits of one connection.
struct Limits {
    max_frame: usize,
    idle: Duration,
}

/// Why a connection was closed by this side.
enum Closed {
    /// No frame came for `idle_timeout` after the welcome.
    Idle,
    /// The peer broke the protocol, was refused, or the stream failed.
    Failed(String),
}

impl From<String> for Closed {
    fn from(e: String) -> Self {
        Closed::Failed(e)
    }
}

async fn serve(
    mut stream: Box<dyn Io>,
    token: Option<&Token>,
    limits: Limits,
    ingest: Ingest,
    shutdown: CancellationToken,
    metrics: &ComponentMetrics,
) -> Result<(), Closed> {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, proto::read_frame(&mut stream, 64 << 10))
        .await
        .map_err(|_| "no hello".to_string())?
        .map_err(|e| e.to_string())?;
    let Some((HELLO, p)) = hello else {
        return Err(refuse(&mut stream, 400, "expected a hello").await);
    };
    if p.len() < 4 || u16::from_be_bytes([p[0], p[1]]) != proto::VERSION {
        return Err(refuse(&mut stream, 400, "unsupported protocol version").await);
    }
    let tlen = u16::from_be_bytes([p[2], p[3]]) as usize;
    let offered = p.get(4..4 + tlen).unwrap_or_default();
    if let Some(t) = token {
        if !t.matches(offered) {
            return Err(refuse(&mut stream, 401, "missing or wrong token").await);
        }
    }
    proto::write_control(&mut stream, WELCOME, &[])
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(limits.idle, proto::read_frame(&mut stream, limits.max_frame)) => {
                f.map_err(|_| Closed::Idle)?.map_err(|e| e.to_string())?
            }
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Some((kind, payload)) = frame else {
            return Ok(());
        };
        if kind != BATCH {
            return Err(format!("unexpected frame {kind}").into());
        }
        let (seq, batch) = match proto::decode_batch(payload) {
            Ok(x) => x,
            Err(e) => {
                metrics.record_errors(1);
                return Err(e.to_string().into());
            }
        };
        // Once the batch is queued it is emitted even if the source is
        // stopping: wait for the answer, then acknowledge.
        match ingest.deliver(batch, None).await {
            Ok(()) => proto::write_control(&mut stream, ACK, &seq.to_be_bytes()).await,
            Err(_) => {
                let mut p = seq.to_be_bytes().to_vec();
                p.extend_from_slice(b"the receiver is stopping");
                let _ = proto::write_control(&mut stream, NACK, &p).await;
                return Ok(());
            }
        }
        .map_err(|e| e.to_string())?;
    }
}
