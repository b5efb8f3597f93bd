//! The `sink_groups:` section: sinks that drain one channel together, by
//! failover or by load balancing. Parsed into [`SinkGroupSpec`]s and checked
//! against the sinks: every member exists, all read the same channel, and a
//! sink belongs to at most one group.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration as StdDuration;

use serde::Deserialize;

use super::keys::section;
use super::{Ctx, SinkSpec};
use sluice_core::config::node::{Node, Pos};
use sluice_core::config::{from_node, Duration};

/// How a group chooses the sink that writes a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupStrategy {
    /// The available sink with the highest priority; the others only when
    /// it fails. `priorities` is parallel to the group's `sinks`.
    Failover {
        /// Priority of each member (higher is preferred).
        priorities: Vec<i64>,
    },
    /// Batches spread over the available sinks.
    LoadBalance {
        /// Which sink is tried first for each batch.
        selector: Balance,
    },
}

/// How a load-balancing group spreads batches.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each sink in turn.
    #[default]
    RoundRobin,
    /// A sink chosen at random for each batch.
    Random,
}

/// A sink group as declared.
#[derive(Clone, Debug)]
pub struct SinkGroupSpec {
    /// Its id.
    pub id: String,
    /// How it chooses.
    pub strategy: GroupStrategy,
    /// Its members, as listed.
    pub sinks: Vec<String>,
    /// The channel every member reads.
    pub channel: String,
    /// How long a failed member is left alone the first time; doubled on
    /// each further failure up to `max_penalty`.
    pub penalty: StdDuration,
    /// The longest a failed member is left alone.
    pub max_penalty: StdDuration,
    /// Where it is declared.
    pub pos: Pos,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum StrategyName {
    Failover,
    LoadBalance,
}

/// A group's options as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupConfig {
    /// `failover` or `load_balance`.
    strategy: StrategyName,
    /// The member sinks.
    sinks: Vec<String>,
    /// Failover: sink id → priority (higher first). Unlisted members rank
    /// below listed ones, in list order.
    #[serde(default)]
    priorities: BTreeMap<String, i64>,
    /// Load balance: `round_robin` or `random`.
    selector: Option<Balance>,
    /// First back-off of a failed member.
    #[serde(default = "default_penalty")]
    penalty: Duration,
    /// Longest back-off of a failed member.
    #[serde(default = "default_max_penalty")]
    max_penalty: Duration,
}

fn default_penalty() -> Duration {
    Duration(StdDuration::from_secs(1))
}

fn default_max_penalty() -> Duration {
    Duration(StdDuration::from_secs(30))
}

fn item_pos(node: &Node, key: &str, value: &str) -> Pos {
    let list = node.get(key);
    list.and_then(Node::as_seq)
        .and_then(|items| items.iter().find(|i| i.as_str() == Some(value)))
        .map(|i| i.pos)
        .or(list.map(|l| l.pos))
        .unwrap_or(node.pos)
}

/// Parses and checks `sink_groups:` against the parsed `sinks`.
pub(super) fn sink_groups(cx: &mut Ctx, root: &Node, sinks: &[SinkSpec]) -> Vec<SinkGroupSpec> {
    let mut groups = Vec::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    let by_id: HashMap<&str, &SinkSpec> = sinks.iter().map(|s| (s.id.as_str(), s)).collect();
    for (id, node, pos) in section(cx, root, "sink_groups") {
        let what = format!("sink group `{id}`");
        let config: GroupConfig = match from_node(node) {
            Ok(c) => c,
            Err(e) => {
                cx.err(e.pos.unwrap_or(pos), format!("{what}: {}", e.message));
                continue;
            }
        };
        let at = |key: &str| node.get(key).map_or(pos, |n| n.pos);
        if config.sinks.is_empty() {
            cx.err(
                at("sinks"),
                format!("{what}: `sinks` must list at least one sink"),
            );
        }
        let mut channel: Option<(String, String)> = None;
        let mut listed = HashSet::new();
        for s in &config.sinks {
            // Positions are looked for only to report a problem.
            let p = || item_pos(node, "sinks", s);
            if !listed.insert(s.as_str()) {
                cx.err(p(), format!("{what}: sink `{s}` is listed twice"));
                continue;
            }
            let Some(spec) = by_id.get(s.as_str()) else {
                let ids: Vec<&str> = sinks.iter().map(|k| k.id.as_str()).collect();
                let msg = match cx.nearest(s, &ids) {
                    Some(n) => format!("{what}: sink `{s}` is not declared: did you mean `{n}`?"),
                    None => format!("{what}: sink `{s}` is not declared under `sinks:`"),
                };
                cx.err(p(), msg);
                continue;
            };
            if let Some(other) = owner.insert(s.clone(), id.clone()) {
                cx.err(p(), format!("{what}: sink `{s}` already belongs to sink group `{other}`; a sink belongs to at most one group"));
            }
            match &channel {
                None => channel = Some((s.clone(), spec.channel.clone())),
                Some((first, ch)) if *ch != spec.channel => cx.err(p(), format!("{what}: sink `{s}` reads channel `{}` but `{first}` reads `{ch}`; the sinks of a group drain one channel", spec.channel)),
                Some(_) => {}
            }
        }
        let strategy = match config.strategy {
            StrategyName::Failover => {
                if config.selector.is_some() {
                    cx.err(
                        at("selector"),
                        format!("{what}: `selector` applies to `strategy: load_balance` only"),
                    );
                }
                for k in config.priorities.keys() {
                    if !listed.contains(k.as_str()) {
                        cx.err(
                            at("priorities"),
                            format!(
                                "{what}: `priorities` names `{k}`, which is not in its `sinks`"
                            ),
                        );
                    }
                }
                // Unlisted members rank below every listed one, in list order.
                let floor = config.priorities.values().min().copied().unwrap_or(0);
                let priorities = config
                    .sinks
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        config
                            .priorities
                            .get(s)
                            .copied()
                            .unwrap_or(floor.saturating_sub(1 + i as i64))
                    })
                    .collect();
                GroupStrategy::Failover { priorities }
            }
            StrategyName::LoadBalance => {
                if !config.priorities.is_empty() {
                    cx.err(
                        at("priorities"),
                        format!("{what}: `priorities` applies to `strategy: failover` only"),
                    );
                }
                GroupStrategy::LoadBalance {
                    selector: config.selector.unwrap_or_default(),
                }
            }
        };
        if config.penalty.0.is_zero() {
            cx.err(
                at("penalty"),
                format!("{what}: `penalty` must be more than zero"),
            );
        }
        if config.max_penalty.0 < config.penalty.0 {
            cx.err(
                at("max_penalty"),
                format!("{what}: `max_penalty` must be at least `penalty`"),
            );
        }
        groups.push(SinkGroupSpec {
            id,
            strategy,
            channel: channel.map(|c| c.1).unwrap_or_default(),
            sinks: config.sinks,
            penalty: config.penalty.0,
            max_penalty: config.max_penalty.0,
            pos,
        });
    }
    groups
}
