//! The last minutes of the agent, for the dashboard's charts
//! (`GET /api/history`): every [`INTERVAL`] the API takes a sample of each
//! component's counters and gauges and of each channel's fill, and keeps the
//! last [`KEPT`] samples of each in a ring. Memory is bounded: a fixed ring
//! per component, channel and gauge (about 50 bytes a sample: 30 KB per
//! component for ten minutes), and those no longer running are dropped at
//! the next sample.
//!
//! Counters are kept as totals (rates are differences between samples), so
//! the chart of a counter ends at the value `/metrics` shows.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::state::StateView;

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Samples kept per series: ten minutes at one a second.
pub const KEPT: usize = 600;

/// One series: samples of `N` values at an uptime, oldest first.
#[derive(Debug)]
struct Series<const N: usize> {
    rows: VecDeque<(f64, [f64; N])>,
}

impl<const N: usize> Series<N> {
    fn new() -> Self {
        Series {
            rows: VecDeque::with_capacity(KEPT),
        }
    }

    fn push(&mut self, t: f64, values: [f64; N]) {
        if self.rows.len() == KEPT {
            self.rows.pop_front();
        }
        self.rows.push_back((t, values));
    }

    /// `{"t": [...], name: [...], ...}`: one array per column.
    fn render(&self, names: [&str; N]) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert(
            "t".into(),
            json!(self.rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        );
        for (j, name) in names.iter().enumerate() {
            let column: Vec<f64> = self.rows.iter().map(|r| r.1[j]).collect();
            m.insert((*name).into(), json!(column));
        }
        serde_json::Value::Object(m)
    }
}

/// Keeps the series whose keys are in `live`, adding new ones.
fn follow<K: Ord + Clone, const N: usize>(
    map: &mut BTreeMap<K, Series<N>>,
    live: &[(K, f64, [f64; N])],
) {
    map.retain(|k, _| live.iter().any(|(l, _, _)| l == k));
    for (k, t, v) in live {
        map.entry(k.clone())
            .or_insert_with(Series::new)
            .push(*t, *v);
    }
}

const COMPONENT_COLUMNS: [&str; 4] = ["events_in", "events_out", "errors", "discarded"];
const CHANNEL_COLUMNS: [&str; 3] = ["events", "fill", "discarded"];

#[derive(Debug, Default)]
struct Rings {
    components: BTreeMap<String, Series<4>>,
    channels: BTreeMap<String, Series<3>>,
    /// By component and gauge name.
    gauges: BTreeMap<(String, String), Series<1>>,
}

/// The rings of every component, channel and gauge.
#[derive(Debug, Default)]
pub struct History {
    rings: Mutex<Rings>,
}

/// `GET /api/history`.
#[derive(Serialize)]
pub struct HistoryView {
    /// Seconds between samples.
    pub interval_seconds: f64,
    /// Samples kept per series.
    pub kept: usize,
    /// Per component id: `t` (uptime, seconds) and the totals
    /// `events_in`, `events_out`, `errors`, `discarded`, one per `t`.
    pub components: BTreeMap<String, serde_json::Value>,
    /// Per channel id: `t`, `events` held, `fill` (0 to 1; 0 when
    /// unbounded) and the total `discarded`.
    pub channels: BTreeMap<String, serde_json::Value>,
    /// Per component id, per gauge: `t` and `value`.
    pub gauges: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

impl History {
    /// Adds a sample of `view`, taken at its uptime, and forgets what no
    /// longer runs.
    pub fn sample(&self, view: &StateView) {
        let t = view.uptime_seconds;
        let components: Vec<(String, f64, [f64; 4])> = view
            .components
            .iter()
            .map(|c| {
                let m = &c.metrics;
                let v = [m.events_in, m.events_out, m.errors, m.discarded];
                (c.id.clone(), t, v.map(|n| n as f64))
            })
            .collect();
        let channels: Vec<(String, f64, [f64; 3])> = view
            .channels
            .iter()
            .map(|c| {
                let v = [
                    c.events as f64,
                    c.fill.unwrap_or(0.0),
                    c.discarded_events as f64,
                ];
                (c.id.clone(), t, v)
            })
            .collect();
        let gauges: Vec<((String, String), f64, [f64; 1])> = view
            .components
            .iter()
            .flat_map(|c| {
                c.gauges
                    .iter()
                    .map(|(name, v)| ((c.id.clone(), name.clone()), t, [*v]))
            })
            .collect();
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        follow(&mut rings.components, &components);
        follow(&mut rings.channels, &channels);
        follow(&mut rings.gauges, &gauges);
    }

    /// Every series, as `GET /api/history` answers.
    pub fn view(&self) -> HistoryView {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let mut gauges: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
        for ((id, name), s) in &rings.gauges {
            gauges
                .entry(id.clone())
                .or_default()
                .insert(name.clone(), s.render(["value"]));
        }
        HistoryView {
            interval_seconds: INTERVAL.as_secs_f64(),
            kept: KEPT,
            components: rings
                .components
                .iter()
                .map(|(id, s)| (id.clone(), s.render(COMPONENT_COLUMNS)))
                .collect(),
            channels: rings
                .channels
                .iter()
                .map(|(id, s)| (id.clone(), s.render(CHANNEL_COLUMNS)))
                .collect(),
            gauges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ComponentView, Status};

    fn view(t: f64, ids: &[&str], events_out: u64) -> StateView {
        StateView {
            uptime_seconds: t,
            status: Status::Ok,
            components: ids
                .iter()
                .map(|id| ComponentView {
                    id: (*id).into(),
                    kind: "source",
                    type_name: "generator".into(),
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    runs_in: Vec::new(),
                    health: sluice_core::metrics::HealthSnapshot {
                        state: "running",
                        consecutive_failures: 0,
                        error: None,
                        healthy: true,
                    },
                    metrics: sluice_core::metrics::MetricsSnapshot {
                        events_out,
                        ..Default::default()
                    },
                    gauges: [("score".to_string(), t)].into_iter().collect(),
                    reports: Vec::new(),
                })
                .collect(),
            channels: Vec::new(),
        }
    }

    #[test]
    fn each_series_keeps_the_latest_samples_and_drops_what_stopped() {
        let h = History::default();
        for i in 0..KEPT + 10 {
            h.sample(&view(i as f64, &["a", "b"], i as u64 * 3));
        }
        let v = h.view();
        let a = &v.components["a"];
        assert_eq!(a["t"].as_array().map(Vec::len), Some(KEPT));
        assert_eq!(a["t"][0], 10.0);
        assert_eq!(a["events_out"][KEPT - 1], ((KEPT + 9) * 3) as f64);
        assert_eq!(v.gauges["b"]["score"]["value"][KEPT - 1], (KEPT + 9) as f64);
        // `b` is removed by a reload: its series go with it.
        h.sample(&view(1000.0, &["a"], 0));
        let v = h.view();
        assert!(!v.components.contains_key("b"));
        assert!(!v.gauges.contains_key("b"));
    }
}
