//! What the API shows: every component with its place in the graph, counters,
//! health and gauges, and every channel with its fill. Read live from the
//! running topology's shared counters.

use std::sync::Arc;

use serde::Serialize;
use sluice_core::channel::Channel;
use sluice_core::metrics::health::HealthSnapshot;
use sluice_core::metrics::{ComponentMetrics, MetricsSnapshot};
use sluice_runtime::topology::view::{LiveView, Snapshot};
use sluice_runtime::topology::{ComponentInfo, Topology};

/// One component as the API knows it.
#[derive(Clone)]
pub struct Component {
    /// `source`, `processor` or `sink`.
    pub kind: &'static str,
    /// Its id.
    pub id: String,
    /// Its `type`.
    pub type_name: String,
    /// Channels it takes from.
    pub inputs: Vec<String>,
    /// Channels it puts into.
    pub outputs: Vec<String>,
    /// For an inline processor: the sources whose task runs it.
    pub runs_in: Vec<String>,
    /// Its live counters, health and tap.
    pub metrics: Arc<ComponentMetrics>,
}

/// One channel.
#[derive(Clone)]
pub struct ChannelEntry {
    /// Its id.
    pub id: String,
    /// Its `type`.
    pub type_name: String,
    /// The channel itself, for its stats.
    pub channel: Arc<dyn Channel>,
}

/// Everything the API serves, shared by its handlers.
pub struct ApiState {
    /// What runs, kept up to date by the topology through reloads.
    view: Arc<LiveView>,
    /// When the agent started.
    pub started: std::time::Instant,
    /// The last minutes of counters, gauges and channel fill.
    pub history: crate::history::History,
}

impl ApiState {
    /// The state of `topology`. Take it before running the topology: it
    /// follows the topology's counters and reloads while it runs.
    pub fn new(topology: &Topology) -> ApiState {
        ApiState {
            view: topology.live_view(),
            started: std::time::Instant::now(),
            history: Default::default(),
        }
    }

    /// The pipeline and components running now, as the topology published
    /// them last.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.view.snapshot()
    }

    /// What runs now, in pipeline order.
    pub fn current(&self) -> Current {
        Current::of(&self.view.snapshot(), self.started)
    }
}

/// The components and channels running at one moment.
pub struct Current {
    /// Components in pipeline order: sources, processors, sinks.
    pub components: Vec<Component>,
    /// Channels in pipeline order.
    pub channels: Vec<ChannelEntry>,
    /// Sink groups: id and member sinks.
    pub groups: Vec<(String, Vec<String>)>,
    /// When the agent started.
    pub started: std::time::Instant,
}

/// The agent's health as a whole.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every component is healthy.
    Ok,
    /// Only members of sink groups fail, and each such group still has a
    /// healthy member delivering its events; or a channel cannot make
    /// progress on its own for now (a disk channel waiting for room on a
    /// full disk).
    Degraded,
    /// A component outside a group fails, or every member of a group does.
    Unhealthy,
}

impl Current {
    fn of(snapshot: &Snapshot, started: std::time::Instant) -> Current {
        let pipeline = &snapshot.pipeline;
        let info = |kind: &str, id: &str| -> Option<&ComponentInfo> {
            snapshot
                .components
                .iter()
                .find(|c| c.kind == kind && c.id == id)
        };
        let mut components = Vec::new();
        let mut add = |c: &ComponentInfo, inputs, outputs, runs_in| {
            components.push(Component {
                kind: c.kind,
                id: c.id.clone(),
                type_name: c.type_name.clone(),
                inputs,
                outputs,
                runs_in,
                metrics: c.metrics.clone(),
            })
        };
        for s in &pipeline.sources {
            if let Some(c) = info("source", &s.id) {
                add(c, Vec::new(), s.channels.clone(), Vec::new());
            }
        }
        for p in &pipeline.processors {
            if let Some(c) = info("processor", &p.id) {
                let runs_in = pipeline
                    .sources
                    .iter()
                    .filter(|s| s.processors.contains(&p.id))
                    .map(|s| s.id.clone())
                    .collect();
                add(
                    c,
                    p.input.iter().cloned().collect(),
                    p.channels.clone(),
                    runs_in,
                );
            }
        }
        for s in &pipeline.sinks {
            if let Some(c) = info("sink", &s.id) {
                add(c, vec![s.channel.clone()], Vec::new(), Vec::new());
            }
        }
        let channels = snapshot
            .channels
            .iter()
            .map(|(id, ch)| ChannelEntry {
                id: id.clone(),
                type_name: pipeline
                    .channels
                    .iter()
                    .find(|c| &c.id == id)
                    .map(|c| c.type_name.clone())
                    .unwrap_or_default(),
                channel: ch.clone(),
            })
            .collect();
        let groups = pipeline
            .sink_groups
            .iter()
            .map(|g| (g.id.clone(), g.sinks.clone()))
            .collect();
        Current {
            components,
            channels,
            groups,
            started,
        }
    }

    /// A component by id.
    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.id == id)
    }

    /// The health of a component: an inline processor is as healthy as the
    /// sources it runs in.
    pub fn health_of(&self, c: &Component) -> HealthSnapshot {
        let own = c.metrics.health.snapshot();
        if c.kind != "processor" || c.runs_in.is_empty() || !c.inputs.is_empty() {
            return own;
        }
        c.runs_in
            .iter()
            .filter_map(|s| self.component(s))
            .map(|s| s.metrics.health.snapshot())
            .find(|h| !h.healthy)
            .or_else(|| {
                self.component(&c.runs_in[0])
                    .map(|s| s.metrics.health.snapshot())
            })
            .unwrap_or(own)
    }

    /// Whether a sink group still delivers: one of its members is healthy.
    pub fn group_healthy(&self, members: &[String]) -> bool {
        members
            .iter()
            .any(|m| self.component(m).is_some_and(|c| self.health_of(c).healthy))
    }

    /// Whether the agent as a whole works: a failing member of a sink group
    /// is covered while another member of its group is healthy.
    pub fn status(&self) -> Status {
        let mut status = Status::Ok;
        for c in self
            .components
            .iter()
            .filter(|c| !self.health_of(c).healthy)
        {
            let covered = c.kind == "sink"
                && self
                    .groups
                    .iter()
                    .find(|(_, members)| members.contains(&c.id))
                    .is_some_and(|(_, members)| self.group_healthy(members));
            if !covered {
                return Status::Unhealthy;
            }
            status = Status::Degraded;
        }
        if self.channels.iter().any(|c| c.channel.degraded().is_some()) {
            status = Status::Degraded;
        }
        status
    }

    /// The JSON of `/api/components`.
    pub fn view(&self) -> StateView {
        StateView {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            status: self.status(),
            components: self
                .components
                .iter()
                .map(|c| ComponentView {
                    id: c.id.clone(),
                    kind: c.kind,
                    type_name: c.type_name.clone(),
                    inputs: c.inputs.clone(),
                    outputs: c.outputs.clone(),
                    runs_in: c.runs_in.clone(),
                    health: self.health_of(c),
                    metrics: c.metrics.snapshot(),
                    gauges: c.metrics.gauges.snapshot().into_iter().collect(),
                    reports: c.metrics.reports.names(),
                })
                .collect(),
            channels: self
                .channels
                .iter()
                .map(|c| {
                    let s = c.channel.stats();
                    ChannelView {
                        id: c.id.clone(),
                        type_name: c.type_name.clone(),
                        events: s.events,
                        bytes: s.bytes,
                        capacity: s.capacity,
                        max_bytes: s.max_bytes,
                        fill: s.fill(),
                        put_events: s.put_events,
                        committed_events: s.committed_events,
                        discarded_events: s.discarded_events,
                    }
                })
                .collect(),
        }
    }
}

/// `/api/components`: the whole state at one moment.
#[derive(Serialize, Clone, Debug)]
pub struct StateView {
    /// Seconds since the agent started.
    pub uptime_seconds: f64,
    /// The agent's health as a whole, as `/health` reports it.
    pub status: Status,
    /// Every component.
    pub components: Vec<ComponentView>,
    /// Every channel.
    pub channels: Vec<ChannelView>,
}

/// One component in `/api/components`.
#[derive(Serialize, Clone, Debug)]
pub struct ComponentView {
    /// Its id.
    pub id: String,
    /// `source`, `processor` or `sink`.
    pub kind: &'static str,
    /// Its `type`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Channels it takes from.
    pub inputs: Vec<String>,
    /// Channels it puts into.
    pub outputs: Vec<String>,
    /// For an inline processor: the sources that run it.
    pub runs_in: Vec<String>,
    /// Whether it runs.
    pub health: HealthSnapshot,
    /// Its counters.
    pub metrics: MetricsSnapshot,
    /// The gauges it reports (e.g. `anomaly_score`).
    pub gauges: std::collections::BTreeMap<String, f64>,
    /// The names of the documents it reports
    /// (`GET /api/components/{id}/reports/{name}`), e.g. `templates`.
    pub reports: Vec<&'static str>,
}

/// One channel in `/api/components`.
#[derive(Serialize, Clone, Debug)]
pub struct ChannelView {
    /// Its id.
    pub id: String,
    /// Its `type`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Events held.
    pub events: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Capacity in events; `null` when the channel sets no bound on events
    /// (a disk channel bounded by `max_bytes` only).
    pub capacity: Option<u64>,
    /// Capacity in bytes, when bounded by bytes.
    pub max_bytes: Option<u64>,
    /// How full it is, 0 to 1: the larger of events over `capacity` and
    /// bytes over `max_bytes`; `null` when it has neither bound.
    pub fill: Option<f64>,
    /// Events accepted since start.
    pub put_events: u64,
    /// Events committed by readers since start.
    pub committed_events: u64,
    /// Events dropped because the channel was full.
    pub discarded_events: u64,
}
