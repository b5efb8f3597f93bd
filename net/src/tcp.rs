//! The `tcp` source: events from TCP connections, one per line (or per
//! octet-counted frame), optionally over TLS.
//!
//! Every connection is read by its own task; batches go to the channels in
//! the order each connection sent them. While the channels are full the
//! connections are not read, so TCP flow control slows the senders down.
//!
//! ```yaml
//! sources:
//!   tcp:
//!     type: tcp
//!     address: 0.0.0.0:5140
//!     channels: [main]
//! ```

use std::num::NonZeroUsize;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::config::{address_problem, AddressUse};
use sluice_core::prelude::*;

use crate::conn::{default_idle_timeout, default_max_connections, timeout_problem};
use crate::listen::{Decoder, StreamServer};
use crate::secure::{bind, TlsConfig};
use sluice_core::framing::Framing;

/// The `tcp` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on.
    pub address: String,
    /// `newline` (default), `octet_counted` or `auto`.
    #[serde(default)]
    pub framing: Framing,
    /// The longest message kept; longer ones are counted as errors,
    /// reported and skipped.
    #[serde(default = "sluice_core::defaults::max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// Events per batch at most.
    #[serde(default = "sluice_core::defaults::batch_size")]
    pub batch_size: NonZeroUsize,
    /// TLS: `cert` and `key`, and `ca` to require client certificates.
    pub tls: Option<TlsConfig>,
    /// Connections open at most; more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    /// A connection that sends nothing for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: sluice_core::config::Duration,
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
        if self.max_line_bytes.0 == 0 {
            p.push(Problem::at("max_line_bytes", "must be at least 1 byte"));
        }
        if let Some(tls) = &self.tls {
            p.extend(tls.server_problems());
        }
        p.extend(timeout_problem("idle_timeout", self.idle_timeout.get()));
        p
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(TcpSource(StreamServer {
            listener: bind(cx, &self.address)?,
            tls: self.tls.as_ref().map(TlsConfig::acceptor).transpose()?,
            framing: self.framing,
            max_line_bytes: usize::try_from(self.max_line_bytes.0).unwrap_or(usize::MAX),
            batch_size: self.batch_size.get(),
            decoder: Decoder::Raw,
            max_connections: self.max_connections.get(),
            idle_timeout: self.idle_timeout.get(),
        })))
    }
}

/// A running TCP server source.
pub(crate) struct TcpSource(pub(crate) StreamServer);

#[async_trait]
impl Source for TcpSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), ComponentError> {
        self.0.run(cx).await
    }
}
