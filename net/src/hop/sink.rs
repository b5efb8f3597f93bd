//! The `sluice` sink: sends batches to another agent's `sluice` source and
//! returns from `write` only when that agent acknowledged the batch, which
//! it does once its own channels accepted it. The runtime commits the take
//! only then, so a batch is never lost between the two agents: without an
//! acknowledgement (connection refused or lost, a timeout, a refusal) the
//! write fails and the batch is sent again, or to another member of a sink
//! group.
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
use sluice_core::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::proto::{self, ACK, NACK, REFUSED, WELCOME};
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
        let mut p = Vec::new();
        if !self.address.contains(':') {
            p.push(Problem::at("address", "must be `host:port`"));
        }
        if let Some(tls) = &self.tls {
            p.extend(tls.client_problems());
        }
        if self.ack_timeout.get().is_zero() {
            p.push(Problem::at("ack_timeout", "must be more than zero"));
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
            conn: None,
            seq: 0,
            out: BytesMut::new(),
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
}

/// Control frames are small.
const MAX_CONTROL: usize = 64 << 10;

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

    async fn send(&mut self, stream: &mut Box<dyn Io>, batch: &Batch) -> Result<(), String> {
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
            Some((ACK, p)) if p.len() == 8 && p[..] == seq.to_be_bytes() => Ok(()),
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

#[async_trait]
impl Sink for HopSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        // A kept connection may have been closed by the receiver while it
        // was idle (its `idle_timeout`): that batch was not taken, so it
        // goes again at once on a new connection, without a failed attempt.
        let (mut stream, kept) = match self.conn.take() {
            Some(s) => (s, true),
            None => (self.connect().await?, false),
        };
        let mut sent = self.send(&mut stream, batch).await;
        if sent.is_err() && kept {
            stream = self.connect().await?;
            sent = self.send(&mut stream, batch).await;
        }
        match sent {
            Ok(()) => {
                self.conn = Some(stream);
                Ok(())
            }
            // The connection is dropped: its state is unknown.
            Err(e) => Err(SinkError::Retry(format!("{}: {e}", self.address))),
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        if let Some(mut s) = self.conn.take() {
            let _ = s.shutdown().await;
        }
        Ok(())
    }
}
