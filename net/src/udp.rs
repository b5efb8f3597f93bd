//! The `udp` source: events from UDP datagrams, one per line of a datagram.
//!
//! UDP has no flow control: while the channels are full, or while a burst
//! arrives faster than it is read, datagrams the kernel's receive buffer
//! cannot hold are lost. The kernel counts them; the source reports that
//! count as `sluice_component_receive_dropped_datagrams_total` (Linux), and
//! `receive_buffer_bytes` asks for a larger buffer.
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

/// The `udp` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on.
    pub address: String,
    /// The longest line kept; longer ones are counted and skipped.
    #[serde(default = "sluice_core::defaults::max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// Events per batch at most.
    #[serde(default = "sluice_core::defaults::batch_size")]
    pub batch_size: NonZeroUsize,
    /// The kernel receive buffer to ask for (`SO_RCVBUF`), e.g. `8MiB`: what
    /// absorbs a burst while the source is busy. Default: the system's
    /// (`net.core.rmem_default`); Linux grants at most `net.core.rmem_max`.
    #[serde(default)]
    pub receive_buffer_bytes: Option<ByteSize>,
}

/// Binds a UDP socket, naming the address in the error, with the receive
/// buffer `receive_buffer` asks for (when set).
pub(crate) fn bind_udp(
    cx: &BuildContext,
    address: &str,
    receive_buffer: Option<ByteSize>,
) -> Result<std::net::UdpSocket, BuildError> {
    let s = std::net::UdpSocket::bind(address)
        .map_err(|e| BuildError::Other(format!("cannot listen on {address} (udp): {e}")))?;
    s.set_nonblocking(true)?;
    if let Some(want) = receive_buffer {
        crate::udp_stats::set_receive_buffer(&s, want.0).map_err(|e| {
            BuildError::Other(format!(
                "cannot set the receive buffer of {address} (udp) to {} bytes: {e}",
                want.0
            ))
        })?;
    }
    crate::secure::log_bound(cx, "udp", s.local_addr());
    Ok(s)
}

/// The problem of a `receive_buffer_bytes` option, if any.
pub(crate) fn receive_buffer_problem(v: Option<ByteSize>) -> Option<Problem> {
    let v = v?.0;
    (v == 0 || v > crate::udp_stats::MAX_RECEIVE_BUFFER).then(|| {
        Problem::at(
            "receive_buffer_bytes",
            format!(
                "must be between 1 byte and {} MiB (leave it out for the system's default)",
                crate::udp_stats::MAX_RECEIVE_BUFFER >> 20
            ),
        )
    })
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
        p.extend(receive_buffer_problem(self.receive_buffer_bytes));
        p
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(UdpSource(DatagramServer {
            socket: bind_udp(cx, &self.address, self.receive_buffer_bytes)?,
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
