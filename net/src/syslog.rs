//! The `syslog` source: RFC 3164 and RFC 5424 messages over TCP (framed by
//! lines or by octet counting, RFC 6587) or UDP (one message a datagram).
//!
//! The header parts become fields: `facility`, `severity`, `hostname`,
//! `appname`, `procid`, `msgid` (5424), `version` (5424),
//! `structured_data` (5424: a map from SD-ID to a map of its parameters)
//! and `message`. The event's timestamp is the message's own when it has a
//! valid one (RFC 3164 stamps have no year: the current year is assumed,
//! a month more than one month ahead being last year's, and no zone: UTC). Fields are zero-copy slices of the body. A message
//! that is neither format keeps its body, gets no fields, and is counted as
//! an error.
//!
//! ```yaml
//! sources:
//!   syslog:
//!     type: syslog
//!     mode: udp
//!     address: 0.0.0.0:5514
//!     channels: [main]
//! ```

use std::num::NonZeroUsize;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::config::{address_problem, AddressUse};
use sluice_core::prelude::*;

use crate::conn::{default_idle_timeout, default_max_connections, timeout_problem};
use crate::listen::{DatagramServer, Decoder, StreamServer};
use crate::secure::{bind, TlsConfig};
use sluice_core::framing::Framing;

/// The transport.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// TCP, optionally with TLS.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// The `syslog` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on.
    pub address: String,
    /// `tcp` or `udp`.
    #[serde(default)]
    pub mode: Mode,
    /// TCP framing: `auto` (octet counted when a message starts with a
    /// digit, else lines), `newline` or `octet_counted`.
    #[serde(default = "auto")]
    pub framing: Framing,
    /// The longest message kept; longer ones are counted and skipped.
    #[serde(default = "sluice_core::defaults::max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// Events per batch at most.
    #[serde(default = "sluice_core::defaults::batch_size")]
    pub batch_size: NonZeroUsize,
    /// TLS for TCP.
    pub tls: Option<TlsConfig>,
    /// TCP: connections open at most; more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    /// TCP: a connection that sends nothing for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: sluice_core::config::Duration,
    /// UDP: the kernel receive buffer to ask for (`SO_RCVBUF`), e.g.
    /// `8MiB` (see the `udp` source).
    #[serde(default)]
    pub receive_buffer_bytes: Option<ByteSize>,
}

fn auto() -> Framing {
    Framing::Auto
}

impl SourceConfig for Config {
    /// The port it listens on (see the `tcp` source).
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        let port = match self.mode {
            Mode::Tcp => Resource::tcp(&self.address),
            Mode::Udp => Resource::udp(&self.address),
        };
        port.into_iter().collect()
    }
    fn validate(&self) -> Vec<Problem> {
        let mut p: Vec<Problem> = address_problem("address", &self.address, AddressUse::Listen)
            .into_iter()
            .collect();
        if self.max_line_bytes.0 == 0 {
            p.push(Problem::at("max_line_bytes", "must be at least 1 byte"));
        }
        if let Some(tls) = &self.tls {
            if self.mode == Mode::Udp {
                p.push(Problem::at("tls", "TLS applies to `mode: tcp` only"));
            }
            p.extend(tls.server_problems());
        }
        p.extend(timeout_problem("idle_timeout", self.idle_timeout.get()));
        if self.receive_buffer_bytes.is_some() && self.mode == Mode::Tcp {
            p.push(Problem::at(
                "receive_buffer_bytes",
                "applies to `mode: udp` only",
            ));
        }
        p.extend(crate::udp::receive_buffer_problem(
            self.receive_buffer_bytes,
        ));
        p
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let max = usize::try_from(self.max_line_bytes.0).unwrap_or(usize::MAX);
        Ok(match self.mode {
            Mode::Tcp => Box::new(crate::tcp::TcpSource(StreamServer {
                listener: bind(cx, &self.address)?,
                tls: self.tls.as_ref().map(TlsConfig::acceptor).transpose()?,
                framing: self.framing,
                max_line_bytes: max,
                batch_size: self.batch_size.get(),
                decoder: Decoder::Syslog,
                max_connections: self.max_connections.get(),
                idle_timeout: self.idle_timeout.get(),
            })),
            Mode::Udp => Box::new(UdpSyslog(DatagramServer {
                socket: crate::udp::bind_udp(cx, &self.address, self.receive_buffer_bytes)?,
                max_line_bytes: max,
                batch_size: self.batch_size.get(),
                decoder: Decoder::Syslog,
            })),
        })
    }
}

struct UdpSyslog(DatagramServer);

#[async_trait]
impl Source for UdpSyslog {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), ComponentError> {
        self.0.run(cx).await
    }
}

/// The parser, shared with the `parse_syslog` processor, which reads the
/// same formats from lines of files.
pub use sluice_core::syslog::parse_syslog;
