//! # sluice-net
//!
//! Network sources and the agent-to-agent hop of Sluice:
//!
//! * [`tcp`], [`udp`], [`syslog`] (RFC 3164 and 5424 over TCP or UDP),
//!   [`http`] (POST of NDJSON, JSON or lines) and [`elasticsearch`] (the
//!   bulk API of Elasticsearch, for the shippers that speak it) are sources
//!   that listen.
//! * [`hop`] is the `sluice` sink and source: batches with their fields go
//!   from one agent to another, acknowledged only once the receiver's
//!   channels accepted them.
//! * [`secure`] holds what they share for security: TLS (rustls) and
//!   bearer tokens read from the environment or a file.
//! * [`conn`] holds the connection limits of every listener: a cap on open
//!   connections, idle and header timeouts.
//!
//! Listening sources run a task per connection that frames and decodes the
//! stream and hands batches to the source's own task, which emits them
//! (`ingest.rs`): while the channels are full, connections are not read.
//!
//! ```
//! use sluice_core::registry::Registry;
//!
//! let mut registry = Registry::new();
//! sluice_net::register(&mut registry).unwrap();
//! assert_eq!(registry.names("source"), ["elasticsearch", "http", "sluice", "syslog", "tcp", "udp"]);
//! assert_eq!(registry.names("sink"), ["sluice"]);
//! ```

use sluice_core::registry::{DuplicateType, Registry};

pub mod budget;
pub mod conn;
#[cfg(test)]
mod fuzz_tests;
mod http_body;
mod ingest;
mod listen;
mod udp_stats;

pub mod elasticsearch;
pub mod hop;
pub mod http;
pub mod secure;
pub mod syslog;
pub mod tcp;
pub mod udp;

pub use sluice_core::framing::{FrameError, Framing};

/// Registers the network sources and the `sluice` sink.
///
/// # Errors
///
/// When one of the names is already registered.
pub fn register(registry: &mut Registry) -> Result<(), DuplicateType> {
    registry.add_source::<elasticsearch::Config>("elasticsearch")?;
    registry.add_source::<http::Config>("http")?;
    registry.add_source::<hop::source::Config>("sluice")?;
    registry.add_source::<syslog::Config>("syslog")?;
    registry.add_source::<tcp::Config>("tcp")?;
    registry.add_source::<udp::Config>("udp")?;
    registry.add_sink::<hop::sink::Config>("sluice")?;
    Ok(())
}
