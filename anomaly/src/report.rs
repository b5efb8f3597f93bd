//! What the `template` and `anomaly` processors report about themselves to
//! the agent's API (`GET /api/components/{id}/reports/{name}`, see
//! [`Report`](sluice_core::metrics::Report)), for the dashboard:
//!
//! * `templates` ([`TemplateBook`]): the mined templates, the most frequent
//!   first, with their text and line counts.
//! * `anomalies` ([`AnomalyLog`]): the latest scores (a timeline) and the
//!   latest flagged sessions or windows, each with the templates it holds
//!   in text and the ones that drove its score.
//!
//! Both are bounded: the processor updates them under a lock taken once per
//! batch, and the API renders them when asked.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::json;
use sluice_core::prelude::*;

use crate::drain::Cluster;

/// Templates listed at most in the `templates` report.
pub const TEMPLATES_LISTED: usize = 1000;
/// Scores kept for the timeline.
pub const SCORES_KEPT: usize = 1000;
/// Flagged groups kept.
pub const FLAGGED_KEPT: usize = 100;
/// Templates kept per flagged group.
pub const TEMPLATES_PER_FLAGGED: usize = 50;

/// A value shared by a processor (which updates it) and its report (which
/// reads it).
pub type Shared<T> = Arc<Mutex<T>>;

/// Locks `m`, even after a panic elsewhere (the data is plain counts).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The templates a `template` processor mined: id, text and count per
/// cluster, in cluster order.
#[derive(Debug, Default)]
pub struct TemplateBook {
    entries: Vec<(u64, Bytes, u64)>,
}

impl TemplateBook {
    /// Records the state of the cluster at `index` after a line joined it.
    pub fn touch(&mut self, index: usize, cluster: &Cluster) {
        if index >= self.entries.len() {
            self.entries.resize(index + 1, (0, Bytes::new(), 0));
        }
        let e = &mut self.entries[index];
        e.0 = cluster.id;
        e.2 = cluster.count;
        // The text is shared until the template changes: compare pointers.
        if e.1.as_ptr() != cluster.text.as_ptr() || e.1.len() != cluster.text.len() {
            e.1 = cluster.text.clone();
        }
    }

    /// Copies every cluster (a miner loaded from its saved state).
    pub fn fill(&mut self, clusters: &[Cluster]) {
        for (i, c) in clusters.iter().enumerate() {
            self.touch(i, c);
        }
    }

    /// `{"templates": N, "lines": N, "top": [{"id", "text", "count"}]}`:
    /// the `TEMPLATES_LISTED` most frequent, the most frequent first.
    pub fn render(&self) -> serde_json::Value {
        let mut order: Vec<&(u64, Bytes, u64)> = self.entries.iter().filter(|e| e.0 != 0).collect();
        order.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        let lines: u64 = order.iter().map(|e| e.2).sum();
        let top: Vec<serde_json::Value> = order
            .iter()
            .take(TEMPLATES_LISTED)
            .map(|(id, text, count)| {
                json!({ "id": id, "text": String::from_utf8_lossy(text), "count": count })
            })
            .collect();
        json!({ "templates": order.len(), "lines": lines, "top": top })
    }
}

/// One scored group on the timeline.
#[derive(Debug, Clone, Copy)]
struct Scored {
    /// Its time (the end of the session or window), in nanoseconds.
    at: i64,
    score: f64,
    flagged: bool,
}

/// One flagged group: the scored event itself, rendered with its
/// templates in text only when the report is read (scoring stays cheap).
#[derive(Debug)]
struct Flagged {
    at: i64,
    score: f64,
    event: Event,
}

/// The latest scores and flagged groups of an `anomaly` processor.
#[derive(Debug, Default)]
pub struct AnomalyLog {
    scores: VecDeque<Scored>,
    flagged: VecDeque<Flagged>,
    /// Where the flagged events hold their results.
    names: Names,
    threshold: Option<f64>,
    scored_total: u64,
    flagged_total: u64,
}

/// Where the `anomaly` processor puts its results in an event: fixed for
/// the processor, given to its log once.
#[derive(Debug, Default, PartialEq)]
pub struct Names {
    /// The map of counts per template id.
    pub features: Option<String>,
    /// The map of template id to text.
    pub texts: String,
    /// The drivers (on flagged events), when explained.
    pub drivers: Option<String>,
}

fn nanos(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Timestamp(t)) => Some(t.0),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(b) => String::from_utf8_lossy(b).into_owned(),
        other => {
            let mut s = String::new();
            other.write_text(&mut s);
            s
        }
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

impl AnomalyLog {
    /// An empty log of a processor that puts its results where `names`
    /// says.
    pub fn new(names: Names) -> Self {
        AnomalyLog {
            names,
            ..AnomalyLog::default()
        }
    }

    /// Sets the threshold of the model in use.
    pub fn set_threshold(&mut self, threshold: f64) {
        self.threshold = Some(threshold);
    }

    /// Records a scored event; a flagged one is kept, to be listed with
    /// its templates when the report is read.
    pub fn record(&mut self, e: &Event, score: f64, flagged: bool) {
        let at = nanos(e.get("window_end")).unwrap_or(e.timestamp.0);
        if self.scores.len() == SCORES_KEPT {
            self.scores.pop_front();
        }
        self.scores.push_back(Scored { at, score, flagged });
        self.scored_total += 1;
        if !flagged {
            return;
        }
        self.flagged_total += 1;
        if self.flagged.len() == FLAGGED_KEPT {
            self.flagged.pop_front();
        }
        self.flagged.push_back(Flagged {
            at,
            score,
            event: e.clone(),
        });
    }

    /// One flagged group as listed in the report: its key, bounds, score,
    /// and templates in text (drivers first, then the most frequent).
    fn listed(&self, fl: &Flagged, time: impl Fn(i64) -> String) -> serde_json::Value {
        let (e, f) = (&fl.event, &self.names);
        let texts = match e.get(&f.texts) {
            Some(Value::Map(m)) => Some(m),
            _ => None,
        };
        let text_of = |id: &str| texts.and_then(|t| t.get(id)).map(text);
        let mut templates = Vec::new();
        let mut listed: Vec<String> = Vec::new();
        if let Some(Value::Array(drivers)) = f.drivers.as_deref().and_then(|d| e.get(d)) {
            for d in drivers {
                let Value::Map(m) = d else { continue };
                let Some(id) = m.get("id").map(text) else {
                    continue;
                };
                let mut t = json!({
                    "id": id,
                    "text": m.get("text").map(text).or_else(|| text_of(&id)),
                    "count": m.get("count").map(to_json),
                    "driver": true,
                });
                for measure in ["seen_in", "deviation"] {
                    if let Some(v) = m.get(measure) {
                        t[measure] = to_json(v);
                    }
                }
                templates.push(t);
                listed.push(id);
            }
        }
        let mut others: Vec<(String, f64)> = match f.features.as_deref().and_then(|k| e.get(k)) {
            Some(Value::Map(m)) => m
                .iter()
                .map(|(k, n)| (k.to_string(), n.as_f64().unwrap_or(0.0)))
                .filter(|(k, _)| !listed.contains(k))
                .collect(),
            _ => Vec::new(),
        };
        others.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let room = TEMPLATES_PER_FLAGGED.saturating_sub(templates.len());
        let more = others.len().saturating_sub(room);
        for (id, count) in others.into_iter().take(room) {
            let text = text_of(&id);
            templates.push(json!({ "id": id, "text": text, "count": count, "driver": false }));
        }
        let key = match e.get("key") {
            Some(v) => text(v),
            None => String::from_utf8_lossy(&e.body).into_owned(),
        };
        json!({
            "time": time(fl.at),
            "key": key,
            "start": nanos(e.get("window_start")).map(&time),
            "end": nanos(e.get("window_end")).map(&time),
            "event_count": e.get("event_count").and_then(|v| match v {
                Value::Integer(n) => Some(*n),
                _ => None,
            }),
            "score": fl.score,
            "templates": templates,
            "more_templates": more,
        })
    }

    /// `{"threshold", "scored", "flagged", "scores": [{"time", "score",
    /// "anomaly"}], "anomalies": [...]}`: scores oldest first, anomalies
    /// newest first; times in RFC 3339.
    pub fn render(&self) -> serde_json::Value {
        let time = |n: i64| Timestamp(n).to_string();
        let scores: Vec<serde_json::Value> = self
            .scores
            .iter()
            .map(|s| json!({ "time": time(s.at), "score": s.score, "anomaly": s.flagged }))
            .collect();
        let anomalies: Vec<serde_json::Value> = self
            .flagged
            .iter()
            .rev()
            .map(|f| self.listed(f, time))
            .collect();
        json!({
            "threshold": self.threshold,
            "scored": self.scored_total,
            "flagged": self.flagged_total,
            "scores": scores,
            "anomalies": anomalies,
        })
    }
}

/// A report rendering `shared` with `render`.
pub fn report<T: Send + 'static>(
    shared: &Shared<T>,
    render: fn(&T) -> serde_json::Value,
) -> sluice_core::metrics::Report {
    let shared = shared.clone();
    Arc::new(move || render(&lock(&shared)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(features: &[(&str, i64)], texts: &[(&str, &str)]) -> Event {
        let mut e = Event::new("blk_1", Timestamp(1_000_000_000));
        let mut f = sluice_core::event::Fields::new();
        for (k, n) in features {
            f.insert(*k, Value::Integer(*n));
        }
        e.insert("features", Value::Map(f));
        let mut t = sluice_core::event::Fields::new();
        for (k, s) in texts {
            t.insert(*k, Value::from(*s));
        }
        e.insert("templates", Value::Map(t));
        e
    }

    #[test]
    fn a_flagged_group_lists_its_templates_in_text_drivers_first() {
        let mut log = AnomalyLog::new(Names {
            features: Some("features".into()),
            texts: "templates".into(),
            drivers: Some("anomaly_drivers".into()),
        });
        let mut e = event(
            &[("1", 5), ("2", 1), ("3", 2)],
            &[
                ("1", "receiving <*>"),
                ("2", "exception <*>"),
                ("3", "served <*>"),
            ],
        );
        let mut d = sluice_core::event::Fields::new();
        d.insert("id", Value::from("2"));
        d.insert("count", Value::Integer(1));
        d.insert("seen_in", Value::Float(0.0));
        e.insert("anomaly_drivers", Value::Array(vec![Value::Map(d)]));
        log.record(&event(&[("1", 5)], &[]), 0.1, false);
        log.record(&e, 0.9, true);
        let r = log.render();
        assert_eq!(r["scored"], 2);
        assert_eq!(r["flagged"], 1);
        assert_eq!(r["scores"].as_array().map(Vec::len), Some(2));
        let a = &r["anomalies"][0];
        assert_eq!(a["key"], "blk_1");
        assert_eq!(a["score"], 0.9);
        let texts: Vec<&str> = a["templates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["exception <*>", "receiving <*>", "served <*>"]);
        assert_eq!(a["templates"][0]["driver"], true);
        assert_eq!(a["templates"][0]["seen_in"], 0.0);
        assert_eq!(a["templates"][1]["driver"], false);
    }

    #[test]
    fn the_timeline_and_the_flagged_list_are_bounded() {
        let mut log = AnomalyLog::new(Names {
            features: Some("features".into()),
            texts: "templates".into(),
            drivers: None,
        });
        let e = event(&[("1", 1)], &[("1", "x")]);
        for _ in 0..SCORES_KEPT + 5 {
            log.record(&e, 1.0, true);
        }
        assert_eq!(log.scores.len(), SCORES_KEPT);
        assert_eq!(log.flagged.len(), FLAGGED_KEPT);
        assert_eq!(log.render()["flagged"], SCORES_KEPT as u64 + 5);
    }
}
