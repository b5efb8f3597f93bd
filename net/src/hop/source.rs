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
use sluice_core::config::{address_problem, AddressUse};
use sluice_core::prelude::*;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::proto::{
    self, Budget, Decoded, FrameError, ACK, BATCH, HELLO, NACK, REFUSED, REJECT, WELCOME,
};
use crate::conn::{
    default_idle_timeout, default_max_connections, timeout_problem, Gate, HandshakeLog,
};
use crate::ingest::{pump, Ingest};
use crate::secure::{bind, Io, Secret, TlsConfig, Token};
use sluice_core::warn::WarnLimiter;

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
    /// Memory that unfinished frames of all connections may hold together
    /// (from their first byte until their batch is in the channels); at
    /// least `max_frame_bytes`.
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: ByteSize,
    /// How long a started frame may go without a new byte or without memory
    /// from `max_buffered_bytes` before its connection is closed.
    #[serde(default = "default_frame_timeout")]
    pub frame_timeout: sluice_core::config::Duration,
    /// The most fields an event may have, nested ones included; an event
    /// with more is refused for good and the sender told so.
    #[serde(default = "sluice_core::defaults::max_fields")]
    pub max_fields: NonZeroUsize,
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

fn default_max_buffered_bytes() -> ByteSize {
    ByteSize(256 << 20)
}

fn default_frame_timeout() -> sluice_core::config::Duration {
    Duration::from_secs(10).into()
}

impl SourceConfig for Config {
    /// The port it listens on, so that a reload stops the old listener
    /// before the new one binds.
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        Resource::tcp(&self.address).into_iter().collect()
    }
    fn validate(&self) -> Vec<Problem> {
        let mut p: Vec<Problem> = address_problem("address", &self.address, AddressUse::Listen)
            .into_iter()
            .collect();
        if let Some(tls) = &self.tls {
            p.extend(tls.server_problems());
        }
        if self.max_frame_bytes.0 < 1024 {
            p.push(Problem::at("max_frame_bytes", "must be at least 1KiB"));
        }
        if self.max_frame_bytes.0 > u64::from(u32::MAX) - 1 {
            p.push(Problem::at("max_frame_bytes", "must be less than 4GiB"));
        }
        if self.max_buffered_bytes.0 < self.max_frame_bytes.0 {
            p.push(Problem::at(
                "max_buffered_bytes",
                "must be at least max_frame_bytes, or a frame of that size could never be read",
            ));
        }
        if self.frame_timeout.get().is_zero() {
            p.push(Problem::at("frame_timeout", "must be more than zero"));
        }
        p.extend(timeout_problem("idle_timeout", self.idle_timeout.get()));
        p
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(HopSource {
            listener: bind(cx, &self.address)?,
            token: self.token.as_ref().map(Secret::load).transpose()?,
            tls: self.tls.as_ref().map(TlsConfig::acceptor).transpose()?,
            limits: Limits {
                max_frame: usize::try_from(self.max_frame_bytes.0).unwrap_or(usize::MAX),
                budget: Budget::new(
                    usize::try_from(self.max_buffered_bytes.0).unwrap_or(usize::MAX),
                ),
                frame_timeout: self.frame_timeout.get(),
                max_fields: self.max_fields.get(),
                idle: self.idle_timeout.get(),
                closed_warn: Default::default(),
            },
            max_connections: self.max_connections.get(),
        }))
    }
}

/// A running `sluice` source.
pub struct HopSource {
    listener: std::net::TcpListener,
    token: Option<Token>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    max_connections: usize,
}

/// What one connection may send; shared by all connections of a source.
struct Limits {
    max_frame: usize,
    /// The memory all unfinished frames share.
    budget: Budget,
    frame_timeout: Duration,
    max_fields: usize,
    /// How long a connection may wait between frames.
    idle: Duration,
    /// Connections closed on an error are logged at most once a second (a
    /// flood of bad peers must not flood the log); `held_back` says how
    /// many were not.
    closed_warn: std::sync::Mutex<WarnLimiter>,
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
        self.limits.budget.publish_to(metrics.clone());
        let shared = Arc::new((self.token, self.tls, self.limits));
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
                    let (token, tls, limits) = &*shared;
                    let stream: Box<dyn Io> = match tls {
                        None => Box::new(tcp),
                        Some(tls) => match handshakes.accept(tls, tcp, &name, peer).await {
                            Some(s) => Box::new(s),
                            None => return,
                        },
                    };
                    match serve(stream, token.as_ref(), limits, ingest, shutdown, &metrics).await {
                        Ok(()) => {}
                        Err(Closed::Idle) => tracing::debug!(
                            %peer, idle_timeout = ?limits.idle, "hop connection closed: no frame for idle_timeout"
                        ),
                        Err(Closed::Failed(e)) => {
                            let allowed = limits.closed_warn.lock().map(|mut w| w.allow());
                            if let Ok(Some(held_back)) = allowed {
                                tracing::warn!(%peer, held_back, "hop connection closed: {e}");
                            }
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
    limits: &Limits,
    ingest: Ingest,
    shutdown: CancellationToken,
    metrics: &ComponentMetrics,
) -> Result<(), Closed> {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, proto::read_frame(&mut stream, 64 << 10))
        .await
        .map_err(|_| "no hello".to_string())?
        .map_err(|e| e.to_string())?;
    let Some((kind, p)) = hello else {
        // Closed before a byte: a port probe (a load balancer's health
        // check, a test waiting for the port), not worth a warning.
        return Ok(());
    };
    if kind != HELLO {
        return Err(refuse(&mut stream, 400, "expected a hello").await);
    }
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
    let mut warn = WarnLimiter::default();
    loop {
        let frame = tokio::select! {
            f = proto::read_budgeted(&mut stream, limits.max_frame, &limits.budget, limits.frame_timeout, limits.idle) => {
                f.map_err(|e| match e {
                    FrameError::Idle(_) => Closed::Idle,
                    // A frame refused or abandoned (not a broken connection)
                    // is bad input: counted.
                    FrameError::Io(e) => Closed::Failed(e.to_string()),
                    e => {
                        metrics.record_errors(1);
                        Closed::Failed(e.to_string())
                    }
                })?
            }
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Some(frame) = frame else {
            return Ok(());
        };
        if frame.kind != BATCH {
            return Err(format!("unexpected frame {}", frame.kind).into());
        }
        let decoded = match decode_off_thread(frame.payload, limits.max_fields).await {
            Ok(x) => x,
            Err(e) => {
                metrics.record_errors(1);
                return Err(e.into());
            }
        };
        // Once the batch is queued it is emitted even if the source is
        // stopping: wait for the answer, then acknowledge. The frame's
        // memory counts against the budget until then.
        let delivered = if decoded.batch.is_empty() {
            Ok(())
        } else {
            ingest.deliver(decoded.batch, None).await
        };
        drop(frame.held);
        let seq = decoded.seq;
        match delivered {
            Ok(()) if decoded.refused.is_empty() => {
                proto::write_control(&mut stream, ACK, &seq.to_be_bytes()).await
            }
            Ok(()) => {
                let n = decoded.refused.len();
                metrics.record_errors(n);
                let why = match &decoded.unknown_version {
                    Some(e) => e.to_string(),
                    None => format!(
                        "more than max_fields ({}) fields in an event",
                        limits.max_fields
                    ),
                };
                if let Some(held_back) = warn.allow() {
                    tracing::warn!(
                        held_back,
                        "refused {n} event(s) of a batch: {why}; the sender is told not to resend them"
                    );
                }
                let p = proto::encode_reject(seq, &why, &decoded.refused);
                proto::write_control(&mut stream, REJECT, &p).await
            }
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

/// Frames from this size on are decoded on tokio's blocking pool, so that a
/// large one does not hold up the other connections of the worker thread.
const OFF_THREAD_FROM: usize = 1 << 20;

async fn decode_off_thread(payload: bytes::Bytes, max_fields: usize) -> Result<Decoded, String> {
    if payload.len() < OFF_THREAD_FROM {
        return proto::decode_batch(payload, max_fields).map_err(|e| e.to_string());
    }
    tokio::task::spawn_blocking(move || proto::decode_batch(payload, max_fields))
        .await
        .map_err(|e| format!("the batch could not be decoded: {e}"))?
        .map_err(|e| e.to_string())
}
