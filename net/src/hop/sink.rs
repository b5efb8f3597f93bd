//! The `sluice` sink: sends batches to another agent's `sluice` source and
//! returns from `write` only when that agent acknowledged the batch, which
//! it does once its own channels accepted it. The runtime commits the take
//! only then, so a batch is never lost between the two agents: without an
//! acknowledgement (connection refused or lost, a timeout, a refusal) the
//! write fails and the batch is sent again, or to another member of a sink
//! group.
//!
//! Before sending, [`frames::plan`] rejects the events a receiver would
//! refuse whatever the retries (too large for a frame, not encodable, nested
//! too deeply) and cuts the rest into frames of at most `max_frame_bytes`.
//! A batch sent in several frames that fails part-way is remembered
//! ([`Pending`]): its retry sends only the frames not acknowledged.
//!
//! ```yaml
//! sinks:
//!   upstream:
//!     type: sluice
//!     channel: main
//!     address: aggregator-1:6000
//! ```

use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use serde::Deserialize;
use sluice_core::config::{address_problem, AddressUse};
use sluice_core::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::frames::{self, Plan};
use super::proto::{self, ACK, NACK, REFUSED, REJECT, WELCOME};
use crate::secure::{Io, Secret, TlsConfig, Token};

/// The `sluice` sink's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` of the receiving agent's `sluice` source.
    pub address: String,
    /// The bearer token the receiver expects: `{env: NAME}` or `{file: PATH}`.
    pub token: Option<Secret>,
    /// TLS: `ca` to trust the receiver, `cert` and `key` to present a
    /// client certificate, `server_name` to check.
    pub tls: Option<TlsConfig>,
    /// How long to wait for a connection (and the TLS handshake).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: sluice_core::config::Duration,
    /// How long to wait for a batch's acknowledgement.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: sluice_core::config::Duration,
    /// The largest frame sent: no more than the receiver's
    /// `max_frame_bytes`. A larger batch is sent as several frames; an event
    /// that alone is larger is rejected.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: ByteSize,
}

fn default_max_frame_bytes() -> ByteSize {
    ByteSize(64 << 20)
}

fn default_connect_timeout() -> sluice_core::config::Duration {
    Duration::from_secs(5).into()
}

fn default_ack_timeout() -> sluice_core::config::Duration {
    Duration::from_secs(30).into()
}

/// `host` of `host:port` (brackets removed from an IPv6 address).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl SinkConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut p: Vec<Problem> = address_problem("address", &self.address, AddressUse::Connect)
            .into_iter()
            .collect();
        if let Some(tls) = &self.tls {
            p.extend(tls.client_problems());
        }
        if self.ack_timeout.get().is_zero() {
            p.push(Problem::at("ack_timeout", "must be more than zero"));
        }
        if self.max_frame_bytes.0 < 1024 || self.max_frame_bytes.0 > u64::from(u32::MAX) - 1 {
            p.push(Problem::at(
                "max_frame_bytes",
                "must be between 1KiB and 4GiB, and no more than the receiver's",
            ));
        }
        p
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let tls = match &self.tls {
            Some(t) => Some(t.connector(host_of(&self.address))?),
            None => None,
        };
        Ok(Box::new(HopSink {
            address: self.address.clone(),
            token: self.token.as_ref().map(Secret::load).transpose()?,
            tls,
            connect_timeout: self.connect_timeout.get(),
            ack_timeout: self.ack_timeout.get(),
            max_frame: usize::try_from(self.max_frame_bytes.0).unwrap_or(usize::MAX),
            conn: None,
            seq: 0,
            out: BytesMut::new(),
            pending: None,
        }))
    }
}

/// A running `sluice` sink.
pub struct HopSink {
    address: String,
    token: Option<Token>,
    tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
    connect_timeout: Duration,
    ack_timeout: Duration,
    /// The open connection, after a welcome.
    conn: Option<Box<dyn Io>>,
    /// The sequence number of the last batch sent.
    seq: u64,
    /// Reused encoding buffer.
    out: BytesMut,
    /// The largest frame payload sent.
    max_frame: usize,
    /// The last batch, when it was sent in several frames, some were
    /// acknowledged and then one failed.
    pending: Option<Pending>,
}

/// How far a batch sent in several frames got before a failure, so that the
/// retry of the same batch sends only the frames not acknowledged.
#[derive(Debug)]
struct Pending {
    /// Identifies the batch (see [`fingerprint`]).
    fingerprint: u64,
    /// How many of its frames the receiver acknowledged.
    acked: usize,
    /// Events of the acknowledged frames the receiver refused for good.
    refused: Vec<(usize, String)>,
}

/// Control frames are small; a `REJECT` lists 4 bytes per refused event.
const MAX_CONTROL: usize = 1 << 20;

impl HopSink {
    async fn connect(&mut self) -> Result<Box<dyn Io>, SinkError> {
        let retry = |e: String| SinkError::Retry(format!("{}: {e}", self.address));
        let connect = async {
            let tcp = TcpStream::connect(&self.address)
                .await
                .map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            let stream: Box<dyn Io> = match &self.tls {
                None => Box::new(tcp),
                Some((connector, name)) => Box::new(
                    connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS handshake failed: {e}"))?,
                ),
            };
            Ok::<_, String>(stream)
        };
        let mut stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| retry("connection timed out".into()))?
            .map_err(retry)?;
        let token = self.token.as_ref().map(Token::as_bytes).unwrap_or_default();
        let mut hello = Vec::with_capacity(4 + token.len());
        hello.extend_from_slice(&proto::VERSION.to_be_bytes());
        hello.extend_from_slice(&(token.len() as u16).to_be_bytes());
        hello.extend_from_slice(token);
        let reply = async {
            proto::write_control(&mut stream, proto::HELLO, &hello).await?;
            proto::read_frame(&mut stream, MAX_CONTROL).await
        };
        match tokio::time::timeout(self.connect_timeout, reply).await {
            Err(_) => Err(retry("no answer to the hello".into())),
            Ok(Err(e)) => Err(retry(e.to_string())),
            Ok(Ok(None)) => Err(retry("closed during the hello".into())),
            Ok(Ok(Some((WELCOME, _)))) => Ok(stream),
            Ok(Ok(Some((REFUSED, p)))) => {
                let code = if p.len() >= 2 {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    0
                };
                let msg = String::from_utf8_lossy(p.get(2..).unwrap_or_default()).into_owned();
                Err(retry(format!("refused ({code}): {msg}")))
            }
            Ok(Ok(Some((kind, _)))) => Err(retry(format!(
                "unexpected frame {kind} instead of a welcome"
            ))),
        }
    }

    /// Sends one frame holding `batch` and waits for its answer: the events
    /// the receiver refused for good (usually none), or why the frame must
    /// be sent again.
    async fn send(
        &mut self,
        stream: &mut Box<dyn Io>,
        batch: &Batch,
    ) -> Result<Vec<(usize, String)>, String> {
        self.seq += 1;
        let seq = self.seq;
        self.out.clear();
        proto::encode_batch(&mut self.out, seq, batch);
        stream
            .write_all(&self.out)
            .await
            .map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(self.ack_timeout, proto::read_frame(stream, MAX_CONTROL))
            .await
            .map_err(|_| format!("no acknowledgement within {:?}", self.ack_timeout))?
            .map_err(|e| e.to_string())?;
        match answer {
            Some((ACK, p)) if p.len() == 8 && p[..] == seq.to_be_bytes() => Ok(Vec::new()),
            Some((REJECT, p)) => {
                let (got, why, indexes) = proto::decode_reject(p).map_err(|e| e.to_string())?;
                if got != seq || indexes.iter().any(|&i| i as usize >= batch.len()) {
                    return Err("a refusal that does not match the batch".into());
                }
                let why = format!("refused by {}: {why}", self.address);
                Ok(indexes
                    .into_iter()
                    .map(|i| (i as usize, why.clone()))
                    .collect())
            }
            Some((NACK, p)) => Err(format!(
                "the receiver did not take the batch: {}",
                String::from_utf8_lossy(p.get(8..).unwrap_or_default())
            )),
            Some((kind, _)) => Err(format!(
                "unexpected frame {kind} instead of an acknowledgement"
            )),
            None => Err("connection closed before the acknowledgement".into()),
        }
    }
}

impl HopSink {
    /// Sends the frames of `plan` from `first` on, adding the events the
    /// receiver refused (as batch indices) to `refused`; returns how many
    /// frames were acknowledged in all, and the error that stopped it, if
    /// any.
    async fn send_frames(
        &mut self,
        stream: &mut Box<dyn Io>,
        batch: &Batch,
        plan: &Plan,
        first: usize,
        refused: &mut Vec<(usize, String)>,
    ) -> (usize, Result<(), String>) {
        if plan.is_whole(batch) {
            // The usual case: the batch as it is, without copying events.
            return match self.send(stream, batch).await {
                Ok(r) => {
                    refused.extend(r);
                    (1, Ok(()))
                }
                Err(e) => (0, Err(e)),
            };
        }
        for (n, frame) in plan.frames.iter().enumerate().skip(first) {
            let part = Batch::from(
                frame
                    .iter()
                    .map(|&i| batch.events[i].clone())
                    .collect::<Vec<_>>(),
            );
            match self.send(stream, &part).await {
                Ok(r) => refused.extend(r.into_iter().map(|(i, why)| (frame[i], why))),
                Err(e) => return (n, Err(e)),
            }
        }
        (plan.frames.len(), Ok(()))
    }
}

/// Identifies a batch between a failed write and its retry: its address,
/// its length and a hash of every event's timestamp, body and encoded
/// fields. The runtime retries the very same batch; a different batch
/// matching all of this would be the same events.
fn fingerprint(batch: &Batch, scratch: &mut BytesMut) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (batch.events.as_ptr() as usize).hash(&mut h);
    batch.len().hash(&mut h);
    scratch.clear();
    proto::encode_batch(scratch, 0, batch);
    scratch[..].hash(&mut h);
    scratch.clear();
    h.finish()
}

#[async_trait]
impl Sink for HopSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let plan = frames::plan(batch, self.max_frame);
        // Frames of this very batch acknowledged before a failure.
        let pending = self
            .pending
            .take()
            .filter(|p| fingerprint(batch, &mut self.out) == p.fingerprint);
        let first = pending.as_ref().map_or(0, |p| p.acked);
        let mut refused = pending
            .as_ref()
            .map_or_else(Vec::new, |p| p.refused.clone());
        if first < plan.frames.len() {
            // A kept connection may have been closed by the receiver while
            // it was idle (its `idle_timeout`): if its first frame gets no
            // answer, nothing was taken, so it goes again at once on a new
            // connection, without a failed attempt.
            let (mut stream, kept) = match self.conn.take() {
                Some(s) => (s, true),
                None => match self.connect().await {
                    Ok(s) => (s, false),
                    Err(e) => {
                        self.pending = pending;
                        return Err(e);
                    }
                },
            };
            let mut sent = self
                .send_frames(&mut stream, batch, &plan, first, &mut refused)
                .await;
            if kept && sent.0 == first && sent.1.is_err() {
                stream = match self.connect().await {
                    Ok(s) => s,
                    Err(e) => {
                        self.pending = pending;
                        return Err(e);
                    }
                };
                sent = self
                    .send_frames(&mut stream, batch, &plan, first, &mut refused)
                    .await;
            }
            match sent {
                (_, Ok(())) => self.conn = Some(stream),
                // The connection is dropped: its state is unknown.
                (acked, Err(e)) => {
                    let total = plan.frames.len();
                    if acked == 0 {
                        return Err(SinkError::Retry(format!("{}: {e}", self.address)));
                    }
                    self.pending = Some(Pending {
                        fingerprint: pending
                            .map_or_else(|| fingerprint(batch, &mut self.out), |p| p.fingerprint),
                        acked,
                        refused,
                    });
                    return Err(SinkError::Retry(format!(
                        "{}: {e} ({acked} of {total} frames of this batch acknowledged; the retry sends only the others)",
                        self.address,
                    )));
                }
            }
        }
        let mut rejected = plan.rejected;
        rejected.extend(refused);
        if rejected.is_empty() {
            Ok(())
        } else {
            rejected.sort_by_key(|r| r.0);
            Err(SinkError::Rejected(rejected))
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        if let Some(mut s) = self.conn.take() {
            let _ = s.shutdown().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use tokio::net::TcpListener;

    use super::*;

    /// The receiving end of the protocol, scripted: on its first connection
    /// it acknowledges `ack_first` batch frames, then hangs up on the next
    /// one without an acknowledgement (a receiver restarting); it refuses
    /// the second connection's hello; afterwards it acknowledges everything.
    /// It keeps the bodies it acknowledged.
    async fn receiver(listener: TcpListener, ack_first: usize, taken: Arc<Mutex<Vec<Bytes>>>) {
        let mut connection = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            connection += 1;
            let first = connection == 1;
            let Ok(Some((proto::HELLO, _))) = proto::read_frame(&mut s, MAX_CONTROL).await else {
                return;
            };
            let answer = if connection == 2 { REFUSED } else { WELCOME };
            if proto::write_control(&mut s, answer, &[]).await.is_err() || answer == REFUSED {
                continue;
            }
            let mut acked = 0;
            while let Ok(Some((_, payload))) = proto::read_frame(&mut s, 1 << 20).await {
                if first && acked == ack_first {
                    break;
                }
                let Ok(proto::Decoded { seq, batch, .. }) =
                    proto::decode_batch(payload, usize::MAX)
                else {
                    return;
                };
                if let Ok(mut t) = taken.lock() {
                    t.extend(batch.events.iter().map(|e| e.body.clone()));
                }
                if proto::write_control(&mut s, ACK, &seq.to_be_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
                acked += 1;
            }
        }
    }

    fn sink(port: u16, max_frame: usize) -> HopSink {
        HopSink {
            address: format!("127.0.0.1:{port}"),
            token: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(5),
            conn: None,
            seq: 0,
            out: BytesMut::new(),
            max_frame,
            pending: None,
        }
    }

    fn batch(from: usize, to: usize) -> Batch {
        Batch::from(
            (from..to)
                .map(|i| Event::new(format!("{i:05} {}", "x".repeat(90)), Timestamp(i as i64)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn a_retry_sends_only_the_frames_not_acknowledged() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let taken = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(receiver(listener, 2, taken.clone()));
        let mut s = sink(port, 1024);
        let b = batch(0, 50);
        let frames = frames::plan(&b, 1024).frames.len();
        assert!(frames > 3, "{frames} frames");
        match s.write(&b).await {
            Err(SinkError::Retry(e)) => assert!(e.contains("2 of"), "{e}"),
            other => panic!("expected a retry, got {other:?}"),
        }
        // The receiver refuses the next connection: what it acknowledged
        // before is still known.
        match s.write(&b).await {
            Err(SinkError::Retry(e)) => assert!(e.contains("refused"), "{e}"),
            other => panic!("expected a retry, got {other:?}"),
        }
        s.write(&b).await.unwrap();
        // A different batch afterwards is sent whole.
        let c = batch(50, 60);
        s.write(&c).await.unwrap();
        let want: Vec<Bytes> = b
            .events
            .iter()
            .chain(&c.events)
            .map(|e| e.body.clone())
            .collect();
        assert_eq!(*taken.lock().unwrap(), want);
    }
}
