//! # sluice-core
//!
//! The contract of Sluice, a pipeline agent, for everyone who writes a
//! component: the event model, the component traits, the registry, the
//! config value types and the per-component counters. The runtime that
//! loads and runs a pipeline is `sluice-runtime`, which depends on this
//! crate and never the other way round.
//!
//! * [`Event`](event::Event) is one log record (body, timestamp, fields);
//!   [`Batch`](event::Batch) is the unit every component moves.
//! * [`Source`](source::Source) reads events and emits batches through its
//!   [`SourceContext`](source::SourceContext).
//! * [`Channel`](channel::Channel) is a bounded, transactional buffer: `put`,
//!   then `take` under a [`Transaction`](channel::Transaction) that is
//!   committed or rolled back, as in Flume.
//! * [`Processor`](processor::Processor) transforms batches synchronously,
//!   inline in a source or as a stage between two channels.
//! * [`Sink`](sink::Sink) delivers batches; the take is committed only after
//!   delivery.
//! * [`Registry`](registry::Registry) maps the YAML `type` of each component to
//!   its typed config ([`SourceConfig`](registry::SourceConfig) and friends).
//! * [`Resource`](resource::Resource) is what a component declares it holds
//!   exclusively (a port, a locked directory), so that a reload stops the
//!   old holder before it builds the new one.
//! * [`config`] reads YAML into a tree that keeps line and column, and
//!   deserializes a component's options from it.
//! * [`metrics`] holds each component's counters, health and tap.
//! * [`quote::quoted`] shows received data in a log line with its control
//!   characters escaped, so that a peer cannot forge log lines.
//! * The plumbing component crates share lives here, so that none imports
//!   another: [`wire`], the one versioned binary encoding of events (disk
//!   channel, `kafka` `native` records, the hop); [`warn::WarnLimiter`], the
//!   rate limit on repeated warnings; [`framing`], the one framer of
//!   streams into lines or octet-counted messages; [`defaults`], the
//!   option defaults several components share; [`syslog`], the syslog
//!   message parser of the `syslog` source and the `parse_syslog` processor.
//!
//! ```
//! use sluice_core::prelude::*;
//!
//! let mut batch = Batch::new();
//! batch.push(Event::new("GET /index.html 200", Timestamp::now()));
//! batch.events[0].insert("status", 200i64);
//! assert_eq!(batch.events[0].get("status"), Some(&Value::Integer(200)));
//! ```

pub mod channel;
pub mod checkpoint;
pub mod config;
pub mod defaults;
pub mod event;
pub mod framing;
pub mod metrics;
pub mod processor;
pub mod quote;
pub mod registry;
pub mod resource;
pub mod route;
pub mod sink;
pub mod source;
pub mod syslog;
pub mod template;
pub mod warn;
pub mod wire;

/// The names a component author needs.
pub mod prelude {
    pub use crate::channel::{Channel, ChannelError, ChannelStats, Transaction, TransactionHandle};
    pub use crate::checkpoint::CheckpointStore;
    pub use crate::config::{ByteSize, Duration};
    pub use crate::event::{Batch, Event, FieldName, Fields, Timestamp, Value};
    pub use crate::metrics::ComponentMetrics;
    pub use crate::processor::{ProcessContext, Processor};
    pub use crate::registry::{
        BuildContext, BuildError, ChannelConfig, Problem, ProcessorConfig, Registry, Resource,
        SinkConfig, SourceConfig,
    };
    pub use crate::sink::{Sink, SinkError};
    pub use crate::source::{ComponentError, Source, SourceContext};
}
