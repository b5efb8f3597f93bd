//! The `udp` source: events from UDP datagrams, one per line of a datagram.
//!
//! UDP has no flow control: while the channels are full, datagrams the
//! kernel's receive buffer cannot hold are lost (the kernel counts them).
//!
//! ```yaml
//! sources:
//!   udp:
//!     type: udp
//!     address: 0.0.0.0:5141
//!     channels: [main]
//! ```

use std::num::NonZeroUsize;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::config::{address_problem, AddressUse};
use sluice_core::prelude::*;

use crate::listen::{DatagramServer, Decoder};
use crate::tcp::{default_batch_size, default_max_line_bytes};

/// The `udp` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on.
    pub address: String,
    /// The longest line kept; longer ones are counted and skipped.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// Events per batch at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: NonZeroUsize,
}

/// Binds a UDP socket, naming the address in the error.
pub(crate) fn bind_udp(
    cx: &BuildContext,
    address: &str,
) -> Result<std::net::UdpSocket, BuildError> {
    let s = std::net::UdpSocket::bind(address)
        .map_err(|e| BuildError::Other(format!("cannot listen on {address} (udp): {e}")))?;
    s.set_nonblocking(true)?;
    crate::secure::log_bound(cx, "udp", s.local_addr());
    Ok(s)
}

impl SourceConfig for Config {
    /// The port it listens on, so that a reload stops the old listener
    /// before the new one binds.
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        Resource::udp(&self.address).into_iter().collect()
    }
    fn validate(&self) -> Vec<Problem> {
        let mut p: Vec<Problem> = address_problem("address", &self.address, AddressUse::Listen)
            .into_iter()
            .collect();
        if self.max_line_bytes.0 == 0 {
            p.push(Problem::at("max_line_bytes", "must be at least 1 byte"));
        }
        p
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(UdpSource(DatagramServer {
            socket: bind_udp(cx, &self.address)?,
            max_line_bytes: usize::try_from(self.max_line_bytes.0).unwrap_or(usize::MAX),
            batch_size: self.batch_size.get(),
            decoder: Decoder::Raw,
        })))
    }
}

struct UdpSource(DatagramServer);

#[async_trait]
impl Source for UdpSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), ComponentError> {
        self.0.run(cx).await
    }
}
