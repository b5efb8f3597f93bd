//! The component registry: a map from YAML `type` to a typed config.
//!
//! A component author writes typed code only: a `Config` struct that
//! implements `Deserialize` (with `#[serde(deny_unknown_fields)]`) and one of
//! [`SourceConfig`], [`ChannelConfig`], [`ProcessorConfig`] or [`SinkConfig`]
//! with a pure `validate` and a `build`. [`Registry::add_source`] and friends
//! erase the type behind one generic function, so the runtime never knows
//! which components exist. The built-ins are registered exactly like a user's
//! own components: nothing is special-cased.
//!
//! ```
//! use sluice_core::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Nothing {}
//!
//! struct NothingSource;
//!
//! #[async_trait::async_trait]
//! impl Source for NothingSource {
//!     async fn run(self: Box<Self>, _cx: SourceContext) -> Result<(), ComponentError> {
//!         Ok(())
//!     }
//! }
//!
//! impl SourceConfig for Nothing {
//!     fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
//!         Ok(Box::new(NothingSource))
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.add_source::<Nothing>("nothing").unwrap();
//! assert!(registry.add_source::<Nothing>("nothing").is_err());
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::channel::Channel;
use crate::config::node::Node;
use crate::config::{from_node, ConfigError};
use crate::processor::Processor;
pub use crate::resource::Resource;
use crate::route::Routes;
use crate::sink::Sink;
use crate::source::Source;

/// A problem a component's `validate` found in its own config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The option at fault, when there is one: the error then points at it.
    pub key: Option<String>,
    /// What is wrong, and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem with the option `key`.
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        Problem {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    /// A problem with the component as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Problem {
            key: None,
            message: message.into(),
        }
    }
}

/// Why a component could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An I/O error while opening files, binding sockets, etc.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// What a component is given at build time.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// The component's id in the pipeline file.
    pub id: String,
    /// The pipeline's `data_dir`.
    pub pipeline_data_dir: PathBuf,
    /// The component's own directory: `data_dir/<kind>s/<id>` (not created).
    pub data_dir: PathBuf,
    /// For a sink: whether its input channel is durable
    /// ([`Channel::is_durable`](crate::channel::Channel::is_durable)). A sink
    /// reading a durable channel makes each write durable too (a file sink
    /// fsyncs) before `write` returns `Ok`, since the take is committed right
    /// after. Always `false` for other components.
    pub durable_input: bool,
}

/// A source's typed config.
pub trait SourceConfig: DeserializeOwned + Send + Sync + 'static {
    /// Pure checks beyond what deserialization does; no I/O.
    fn validate(&self) -> Vec<Problem> {
        Vec::new()
    }
    /// Builds the source (may do I/O: open files, bind sockets).
    /// What the built component will hold exclusively (a listening port,
    /// a locked directory), computed without I/O. The runtime never builds
    /// a component that declares resources while another one holds them:
    /// on reload the old holder stops and ends first, and such a component
    /// is not built on trial (see `docs/extending.md`). Default: nothing.
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        Vec::new()
    }
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError>;
}

/// A channel's typed config.
pub trait ChannelConfig: DeserializeOwned + Send + Sync + 'static {
    /// Pure checks beyond what deserialization does; no I/O.
    fn validate(&self) -> Vec<Problem> {
        Vec::new()
    }
    /// Builds the channel.
    /// What the built component will hold exclusively (a listening port,
    /// a locked directory), computed without I/O. The runtime never builds
    /// a component that declares resources while another one holds them:
    /// on reload the old holder stops and ends first, and such a component
    /// is not built on trial (see `docs/extending.md`). Default: nothing.
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        Vec::new()
    }
    fn build(&self, cx: &BuildContext) -> Result<Arc<dyn Channel>, BuildError>;
}

/// A processor's typed config. Built once per place it is used (each source
/// that lists it inline, or once as a stage).
pub trait ProcessorConfig: DeserializeOwned + Send + Sync + 'static {
    /// Pure checks beyond what deserialization does; no I/O.
    fn validate(&self) -> Vec<Problem> {
        Vec::new()
    }
    /// Builds one instance of the processor.
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError>;
    /// Whether each event's result depends on that event alone: no state
    /// kept from one event to the next, nothing held back for `finish` or
    /// `tick`. The runtime may then [build](Self::build) several instances
    /// and split a batch between them on several threads (the `workers`
    /// key), putting the parts back in order. Default: `false`.
    fn stateless(&self) -> bool {
        false
    }
}

/// A sink's typed config.
pub trait SinkConfig: DeserializeOwned + Send + Sync + 'static {
    /// Pure checks beyond what deserialization does; no I/O.
    fn validate(&self) -> Vec<Problem> {
        Vec::new()
    }
    /// What the built component will hold exclusively (a listening port,
    /// a locked directory), computed without I/O. The runtime never builds
    /// a component that declares resources while another one holds them:
    /// on reload the old holder stops and ends first, and such a component
    /// is not built on trial (see `docs/extending.md`). Default: nothing.
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        Vec::new()
    }
    /// Builds the sink.
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError>;
    /// Read-only routes this sink offers on the agent's API, served as
    /// `GET /api/sinks/{id}/{name}` (see [`crate::route`]). Called per
    /// request, without I/O. Default: none.
    fn routes(&self) -> Routes {
        Vec::new()
    }
}

macro_rules! erased {
    ($erased:ident, $typed:ident, $out:ty, $resources:expr, $routes:expr, $stateless:expr) => {
        /// A parsed config of some component type, its type erased.
        pub trait $erased: Send + Sync {
            /// See the typed trait's `validate`.
            fn validate(&self) -> Vec<Problem>;
            /// See the typed trait's `build`.
            fn build(&self, cx: &BuildContext) -> Result<$out, BuildError>;
            /// See the typed trait's `resources` (none for a processor).
            fn resources(&self, cx: &BuildContext) -> Vec<Resource>;
            /// The typed config, for readers that know its type (the API
            /// finds the `store` sinks' paths through it).
            fn as_any(&self) -> &dyn std::any::Any;
            /// See [`SinkConfig::routes`] (none for other components).
            fn routes(&self) -> Routes;
            /// See [`ProcessorConfig::stateless`] (`false` for other components).
            fn stateless(&self) -> bool;
        }
        impl<C: $typed> $erased for C {
            fn validate(&self) -> Vec<Problem> {
                $typed::validate(self)
            }
            fn build(&self, cx: &BuildContext) -> Result<$out, BuildError> {
                $typed::build(self, cx)
            }
            fn resources(&self, cx: &BuildContext) -> Vec<Resource> {
                $resources(self, cx)
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
            fn routes(&self) -> Routes {
                $routes(self)
            }
            fn stateless(&self) -> bool {
                $stateless(self)
            }
        }
    };
}
erased!(
    AnySourceConfig,
    SourceConfig,
    Box<dyn Source>,
    SourceConfig::resources,
    |_: &C| Vec::new(),
    |_: &C| false
);
erased!(
    AnyChannelConfig,
    ChannelConfig,
    Arc<dyn Channel>,
    ChannelConfig::resources,
    |_: &C| Vec::new(),
    |_: &C| false
);
erased!(
    AnyProcessorConfig,
    ProcessorConfig,
    Box<dyn Processor>,
    |_: &C, _: &BuildContext| Vec::new(),
    |_: &C| Vec::new(),
    ProcessorConfig::stateless
);
erased!(
    AnySinkConfig,
    SinkConfig,
    Box<dyn Sink>,
    SinkConfig::resources,
    SinkConfig::routes,
    |_: &C| false
);

/// Turns a component's YAML mapping (its common keys removed) into its config.
pub type Parser<T> = fn(&Node) -> Result<Arc<T>, ConfigError>;

/// A registered component type.
pub struct Entry<T: ?Sized> {
    /// Parses the component's own options.
    pub parse: Parser<T>,
    /// The option names the typed config accepts (for suggestions).
    pub fields: &'static [&'static str],
}

/// Two registrations under one name.
#[derive(Debug, thiserror::Error)]
#[error("a {kind} of type `{name}` is already registered")]
pub struct DuplicateType {
    /// `source`, `channel`, `processor` or `sink`.
    pub kind: &'static str,
    /// The type name.
    pub name: String,
}

/// Every component type a pipeline may use, by kind and YAML `type` name.
#[derive(Default)]
pub struct Registry {
    sources: BTreeMap<String, Entry<dyn AnySourceConfig>>,
    channels: BTreeMap<String, Entry<dyn AnyChannelConfig>>,
    processors: BTreeMap<String, Entry<dyn AnyProcessorConfig>>,
    sinks: BTreeMap<String, Entry<dyn AnySinkConfig>>,
}

fn parse_as<C, T: ?Sized>(node: &Node, wrap: fn(C) -> Arc<T>) -> Result<Arc<T>, ConfigError>
where
    C: DeserializeOwned,
{
    from_node::<C>(node).map(wrap)
}

macro_rules! adder {
    ($fn_name:ident, $field:ident, $typed:ident, $erased:ident, $kind:literal) => {
        #[doc = concat!("Registers a ", $kind, " type under `name`.")]
        ///
        /// # Errors
        ///
        /// When a component of this kind is already registered under `name`.
        pub fn $fn_name<C: $typed>(&mut self, name: &str) -> Result<(), DuplicateType> {
            if self.$field.contains_key(name) {
                return Err(DuplicateType {
                    kind: $kind,
                    name: name.to_string(),
                });
            }
            fn wrap<C: $typed>(c: C) -> Arc<dyn $erased> {
                Arc::new(c)
            }
            fn parse<C: $typed>(node: &Node) -> Result<Arc<dyn $erased>, ConfigError> {
                parse_as::<C, dyn $erased>(node, wrap::<C>)
            }
            self.$field.insert(
                name.to_string(),
                Entry {
                    parse: parse::<C>,
                    fields: crate::config::field_names::<C>(),
                },
            );
            Ok(())
        }
    };
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    adder!(add_source, sources, SourceConfig, AnySourceConfig, "source");
    adder!(
        add_channel,
        channels,
        ChannelConfig,
        AnyChannelConfig,
        "channel"
    );
    adder!(
        add_processor,
        processors,
        ProcessorConfig,
        AnyProcessorConfig,
        "processor"
    );
    adder!(add_sink, sinks, SinkConfig, AnySinkConfig, "sink");

    /// The registered source type `name`.
    pub fn source(&self, name: &str) -> Option<&Entry<dyn AnySourceConfig>> {
        self.sources.get(name)
    }
    /// The registered channel type `name`.
    pub fn channel(&self, name: &str) -> Option<&Entry<dyn AnyChannelConfig>> {
        self.channels.get(name)
    }
    /// The registered processor type `name`.
    pub fn processor(&self, name: &str) -> Option<&Entry<dyn AnyProcessorConfig>> {
        self.processors.get(name)
    }
    /// The registered sink type `name`.
    pub fn sink(&self, name: &str) -> Option<&Entry<dyn AnySinkConfig>> {
        self.sinks.get(name)
    }

    /// The names of every registered type of `kind` (`source`, `channel`,
    /// `processor`, `sink`), sorted.
    pub fn names(&self, kind: &str) -> Vec<&str> {
        match kind {
            "source" => self.sources.keys().map(String::as_str).collect(),
            "channel" => self.channels.keys().map(String::as_str).collect(),
            "processor" => self.processors.keys().map(String::as_str).collect(),
            "sink" => self.sinks.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}
