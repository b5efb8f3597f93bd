//! The running side shared by the `tcp`, `udp` and `syslog` sources: accept
//! connections (plain or TLS), frame each stream into messages, decode each
//! message into an event, and hand batches to the source task (see
//! [`ingest`](crate::ingest)).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sluice_core::prelude::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::conn::{Gate, HandshakeLog};
use crate::ingest::{pump, Ingest};
use crate::syslog::parse_syslog;
use sluice_core::framing::{Framer, Framing};
use sluice_core::warn::WarnLimiter;

/// Bytes asked for per read.
const READ_SIZE: usize = 256 << 10;
/// The largest UDP datagram.
const DATAGRAM: usize = 65_536;

/// What a message becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decoder {
    /// The body, no fields.
    Raw,
    /// A syslog message: header parts become fields.
    Syslog,
}

/// Counts and reports messages that could not be decoded or were too long.
struct Faults {
    metrics: Arc<ComponentMetrics>,
    warn: WarnLimiter,
    peer: String,
}

impl Faults {
    fn too_long(&mut self, n: u64, max: usize) {
        if n == 0 {
            return;
        }
        self.metrics.record_errors(n as usize);
        if let Some(held) = self.warn.allow() {
            tracing::warn!(peer = %self.peer, max_line_bytes = max, skipped = n, held_back = held, "message longer than max_line_bytes: skipped");
        }
    }

    fn unparsed(&mut self, n: usize, sample: &[u8]) {
        if n == 0 {
            return;
        }
        self.metrics.record_errors(n);
        if let Some(held) = self.warn.allow() {
            let sample = sluice_core::quote::quoted(sample).max(120);
            tracing::warn!(peer = %self.peer, events = n, held_back = held, sample = %sample, "not a syslog message (RFC 3164 or 5424): passed on with its body only");
        }
    }
}

/// Adds one message to `batch`.
fn decode(
    decoder: Decoder,
    msg: Bytes,
    now: Timestamp,
    batch: &mut Batch,
    bad: &mut usize,
    last_bad: &mut Bytes,
) {
    let mut event = Event::new(msg, now);
    if decoder == Decoder::Syslog && !parse_syslog(&mut event) {
        *bad += 1;
        *last_bad = event.body.clone();
    }
    batch.push(event);
}

/// A TCP server that frames streams into events.
pub(crate) struct StreamServer {
    pub listener: std::net::TcpListener,
    pub tls: Option<TlsAcceptor>,
    pub framing: Framing,
    pub max_line_bytes: usize,
    pub batch_size: usize,
    pub decoder: Decoder,
    /// Connections open at most; more are closed at once.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

/// What every connection task of a [`StreamServer`] shares.
struct Shared {
    tls: Option<TlsAcceptor>,
    framing: Framing,
    max: usize,
    batch_size: usize,
    decoder: Decoder,
    idle: Duration,
    handshakes: HandshakeLog,
    name: String,
}

impl StreamServer {
    pub(crate) async fn run(self, mut cx: SourceContext) -> Result<(), ComponentError> {
        let listener = TcpListener::from_std(self.listener)?;
        let (ingest, rx) = Ingest::new();
        let shutdown = cx.shutdown.clone();
        let metrics = cx.metrics.clone();
        let name = format!("source {}", cx.id);
        let gate = Gate::new(name.clone(), self.max_connections, Some(metrics.clone()));
        let shared = Arc::new(Shared {
            tls: self.tls,
            framing: self.framing,
            max: self.max_line_bytes,
            batch_size: self.batch_size,
            decoder: self.decoder,
            idle: self.idle_timeout,
            handshakes: HandshakeLog::default(),
            name,
        });
        let acceptor = tokio::spawn(async move {
            while let Some((stream, peer, admitted)) = gate.accept(&listener, &shutdown).await {
                let _ = stream.set_nodelay(true);
                let (ingest, shutdown, shared) = (ingest.clone(), shutdown.clone(), shared.clone());
                let faults = Faults {
                    metrics: metrics.clone(),
                    warn: WarnLimiter::default(),
                    peer: peer.to_string(),
                };
                tokio::spawn(async move {
                    let _admitted = admitted;
                    let result = match &shared.tls {
                        None => serve(stream, &shared, ingest, shutdown, faults).await,
                        Some(tls) => {
                            let handshake =
                                shared.handshakes.accept(tls, stream, &shared.name, peer);
                            let Some(s) = handshake.await else {
                                return;
                            };
                            serve(s, &shared, ingest, shutdown, faults).await
                        }
                    };
                    match result {
                        Err(Closed::Failed(e)) => tracing::warn!(%peer, "connection closed: {e}"),
                        Err(Closed::Idle) => tracing::debug!(
                            %peer, idle_timeout = ?shared.idle, "connection closed: silent for idle_timeout"
                        ),
                        Ok(()) => {}
                    }
                });
            }
        });
        let result = pump(rx, &mut cx).await;
        acceptor.abort();
        result
    }
}

/// Why a connection was closed by this side.
enum Closed {
    /// Nothing was received for `idle_timeout`.
    Idle,
    /// A read failed or the stream broke the framing.
    Failed(String),
}

/// Reads one connection until it ends or the source stops.
/// Waits for room in the channels only between reads, so a connection held
/// back by a full channel is not idle.
async fn serve<S: tokio::io::AsyncRead + Unpin>(
    mut stream: S,
    shared: &Shared,
    ingest: Ingest,
    shutdown: CancellationToken,
    mut faults: Faults,
) -> Result<(), Closed> {
    let (framing, max, batch_size, decoder) = (
        shared.framing,
        shared.max,
        shared.batch_size,
        shared.decoder,
    );
    let mut framer = Framer::new(framing, max);
    let mut batch = Batch::with_capacity(batch_size);
    let (mut bad, mut last_bad) = (0, Bytes::new());
    let mut outcome = Ok(());
    loop {
        let buf = framer.buf_mut();
        buf.reserve(READ_SIZE);
        let want = buf.capacity() - buf.len();
        let mut stopped = false;
        let n = tokio::select! {
            r = tokio::time::timeout(shared.idle, stream.read_buf(buf)) => match r {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => { outcome = Err(Closed::Failed(e.to_string())); 0 }
                Err(_) => { outcome = Err(Closed::Idle); 0 }
            },
            _ = shutdown.cancelled() => { stopped = true; 0 }
        };
        let now = Timestamp::now();
        let eof = n == 0;
        loop {
            match framer.next_message() {
                Ok(Some(msg)) => {
                    decode(decoder, msg, now, &mut batch, &mut bad, &mut last_bad);
                    if batch.len() >= batch_size {
                        let full = std::mem::replace(&mut batch, Batch::with_capacity(batch_size));
                        if !ingest.send(full).await {
                            return Ok(());
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    faults.metrics.record_errors(1);
                    ingest.send(batch).await;
                    return Err(Closed::Failed(e.to_string()));
                }
            }
        }
        // The sender's last message counts without a newline when it closed
        // the connection or went silent; on a stop or a broken stream a
        // partial message is left out.
        if eof && !stopped && !matches!(outcome, Err(Closed::Failed(_))) {
            if let Some(msg) = framer.finish() {
                decode(decoder, msg, now, &mut batch, &mut bad, &mut last_bad);
            }
        }
        faults.too_long(framer.take_too_long(), max);
        faults.unparsed(std::mem::take(&mut bad), &last_bad);
        if eof || n < want {
            let b = std::mem::replace(&mut batch, Batch::with_capacity(batch_size));
            if !ingest.send(b).await {
                return Ok(());
            }
        }
        if eof {
            return outcome;
        }
    }
}

/// A UDP server: each datagram is a message (`Raw` datagrams are split into
/// lines).
pub(crate) struct DatagramServer {
    pub socket: std::net::UdpSocket,
    pub max_line_bytes: usize,
    pub batch_size: usize,
    pub decoder: Decoder,
}

impl DatagramServer {
    pub(crate) async fn run(self, mut cx: SourceContext) -> Result<(), ComponentError> {
        let drops = watch_drops(&self.socket, &cx);
        let socket = UdpSocket::from_std(self.socket)?;
        let (ingest, rx) = Ingest::new();
        let shutdown = cx.shutdown.clone();
        let mut faults = Faults {
            metrics: cx.metrics.clone(),
            warn: WarnLimiter::default(),
            peer: "udp".into(),
        };
        let (max, batch_size, decoder) = (self.max_line_bytes, self.batch_size, self.decoder);
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let mut batch = Batch::with_capacity(batch_size);
            let (mut bad, mut last_bad) = (0, Bytes::new());
            let mut too_long = 0u64;
            loop {
                buf.reserve(DATAGRAM);
                let r = tokio::select! {
                    r = socket.recv_buf_from(&mut buf) => r,
                    _ = shutdown.cancelled() => break,
                };
                let now = Timestamp::now();
                let mut take = |buf: &mut BytesMut, batch: &mut Batch| {
                    let datagram = buf.split().freeze();
                    let msgs: Vec<Bytes> = if decoder == Decoder::Raw {
                        datagram
                            .split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .map(|l| datagram.slice_ref(l))
                            .collect()
                    } else {
                        vec![trim_newline(datagram)]
                    };
                    for m in msgs {
                        let m = trim_cr(m);
                        if m.len() > max {
                            too_long += 1;
                            continue;
                        }
                        decode(decoder, m, now, batch, &mut bad, &mut last_bad);
                    }
                };
                match r {
                    Ok(_) => take(&mut buf, &mut batch),
                    Err(e) => {
                        tracing::warn!("receive failed: {e}");
                        continue;
                    }
                }
                // Take what else is already waiting, up to a batch.
                while batch.len() < batch_size {
                    buf.reserve(DATAGRAM);
                    match socket.try_recv_buf_from(&mut buf) {
                        Ok(_) => take(&mut buf, &mut batch),
                        Err(_) => break,
                    }
                }
                faults.too_long(std::mem::take(&mut too_long), max);
                faults.unparsed(std::mem::take(&mut bad), &last_bad);
                let b = std::mem::replace(&mut batch, Batch::with_capacity(batch_size));
                if !ingest.send(b).await {
                    break;
                }
            }
        });
        let result = pump(rx, &mut cx).await;
        reader.abort();
        if let Some(d) = drops {
            d.abort();
        }
        result
    }
}

/// How often the kernel's drop count of a UDP socket is read.
const DROPS_EVERY: Duration = Duration::from_secs(1);

/// Reports the socket's receive buffer as the gauge `receive_buffer_bytes`,
/// and starts a task that copies the kernel's count of the datagrams it
/// dropped into the counter `receive_dropped_datagrams` every second
/// (where the system gives that count: Linux).
fn watch_drops(
    socket: &std::net::UdpSocket,
    cx: &SourceContext,
) -> Option<tokio::task::JoinHandle<()>> {
    if let Ok(b) = crate::udp_stats::receive_buffer(socket) {
        cx.metrics.set_gauge("receive_buffer_bytes", b as f64);
    }
    let inode = crate::udp_stats::inode(socket)?;
    let metrics = cx.metrics.clone();
    let shutdown = cx.shutdown.clone();
    Some(tokio::spawn(async move {
        loop {
            let read = tokio::task::spawn_blocking(move || crate::udp_stats::dropped(inode));
            if let Ok(Some(n)) = read.await {
                metrics.set_counter("receive_dropped_datagrams", n);
            }
            tokio::select! {
                _ = tokio::time::sleep(DROPS_EVERY) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }))
}

fn trim_newline(b: Bytes) -> Bytes {
    match b.last() {
        Some(b'\n') => b.slice(..b.len() - 1),
        _ => b,
    }
}

fn trim_cr(b: Bytes) -> Bytes {
    match b.last() {
        Some(b'\r') => b.slice(..b.len() - 1),
        _ => b,
    }
}
