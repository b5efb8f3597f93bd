//! Sink groups: one task takes batches from the channel its member sinks
//! share and writes each batch through one member, chosen by the group's
//! strategy. The take is committed once a member delivered the batch; a
//! member whose write fails is left alone for a penalty (doubling up to the
//! group's `max_penalty`) and the batch goes to the next member.
//!
//! * `failover`: members by priority; the best available one writes.
//!   When a better member's penalty has passed it is tried again first, so
//!   the group fails back as soon as it works again.
//! * `load_balance`: `round_robin` starts each batch with the next member
//!   in turn; `random` with a random one. Penalised members are skipped.
//!
//! When every member is penalised the group waits for the first penalty to
//! pass: the channel fills and its writers wait (backpressure), nothing is
//! dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{rejected_events, take_retrying, Backoff, SinkRunner, Task};
use crate::channel::Channel;
use crate::config::pipeline::{Balance, GroupStrategy, Pipeline, SinkGroupSpec};
use crate::sink::SinkError;

/// One member: a sink's runner (its sink, counters, dead-letter channel)
/// with its priority and penalty.
struct Member {
    runner: SinkRunner,
    priority: i64,
    /// The current penalty; zero while the member works.
    penalty: Duration,
    /// Left alone until then.
    until: Option<Instant>,
}

/// A running sink group.
struct GroupRunner {
    id: String,
    input: Arc<dyn Channel>,
    members: Vec<Member>,
    strategy: GroupStrategy,
    batch_size: usize,
    base_penalty: Duration,
    max_penalty: Duration,
    shutdown: CancellationToken,
    /// The member that starts the next round-robin turn.
    turn: usize,
    /// State of a small xorshift generator for `random`.
    rng: u64,
}

/// The group tasks of `pipeline`, built from the runners of their members
/// (taken out of `runners`).
pub(super) fn tasks(
    pipeline: &Pipeline,
    runners: &mut HashMap<String, SinkRunner>,
) -> Vec<(String, tracing::Span, Task)> {
    let mut out = Vec::new();
    for g in &pipeline.sink_groups {
        let members: Vec<Member> = g
            .sinks
            .iter()
            .enumerate()
            .filter_map(|(i, id)| {
                let runner = runners.remove(id)?;
                let priority = match &g.strategy {
                    GroupStrategy::Failover { priorities } => {
                        priorities.get(i).copied().unwrap_or(0)
                    }
                    GroupStrategy::LoadBalance { .. } => 0,
                };
                Some(Member {
                    runner,
                    priority,
                    penalty: Duration::ZERO,
                    until: None,
                })
            })
            .collect();
        let Some(first) = members.first() else {
            continue;
        };
        let runner = GroupRunner {
            id: g.id.clone(),
            input: first.runner.input.clone(),
            batch_size: first.runner.batch_size,
            shutdown: first.runner.shutdown.clone(),
            members,
            strategy: g.strategy.clone(),
            base_penalty: g.penalty,
            max_penalty: g.max_penalty,
            turn: 0,
            rng: seed(g),
        };
        let span = tracing::info_span!("sink_group", id = %g.id);
        out.push((
            format!("sink group `{}`", g.id),
            span,
            Box::pin(runner.run()) as Task,
        ));
    }
    out
}

fn seed(g: &SinkGroupSpec) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ (g.id.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
}

impl GroupRunner {
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The members to try for the next batch, best first: those not
    /// penalised at `now`.
    fn order(&mut self, now: Instant) -> Vec<usize> {
        let n = self.members.len();
        let available = |m: &Member| m.until.is_none_or(|u| u <= now);
        match self.strategy.clone() {
            GroupStrategy::Failover { .. } => {
                let mut idx: Vec<usize> = (0..n).filter(|&i| available(&self.members[i])).collect();
                idx.sort_by_key(|&i| std::cmp::Reverse(self.members[i].priority));
                idx
            }
            GroupStrategy::LoadBalance { selector } => {
                let start = match selector {
                    Balance::RoundRobin => {
                        let s = self.turn;
                        self.turn = (self.turn + 1) % n;
                        s
                    }
                    Balance::Random => (self.random() % n as u64) as usize,
                };
                (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| available(&self.members[i]))
                    .collect()
            }
        }
    }

    fn penalise(&mut self, i: usize, error: &str) {
        let (base, max) = (self.base_penalty, self.max_penalty);
        let m = &mut self.members[i];
        m.penalty = if m.penalty.is_zero() {
            base
        } else {
            (m.penalty * 2).min(max)
        };
        m.until = Some(Instant::now() + m.penalty);
        tracing::warn!(sink = %m.runner.id, penalty = ?m.penalty, "write failed: {error}; trying the next sink of the group");
    }

    fn recovered(&mut self, i: usize) {
        let m = &mut self.members[i];
        if !m.penalty.is_zero() {
            tracing::info!(sink = %m.runner.id, "sink works again");
        }
        m.penalty = Duration::ZERO;
        m.until = None;
    }

    async fn run(mut self) -> Result<(), String> {
        let mut backoff = Backoff::new();
        tracing::debug!(group = %self.id, members = self.members.len(), "started");
        while let Some(txn) = take_retrying(&*self.input, self.batch_size, &mut backoff).await {
            'deliver: loop {
                let order = self.order(Instant::now());
                if order.is_empty() {
                    let next = self.members.iter().filter_map(|m| m.until).min();
                    tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await;
                    continue;
                }
                for i in order {
                    let m = &mut self.members[i];
                    match m.runner.sink.write(txn.batch()).await {
                        Ok(()) => {
                            m.runner.metrics.record_in(txn.batch());
                            m.runner.metrics.record_out(txn.batch());
                            self.recovered(i);
                            break 'deliver;
                        }
                        Err(SinkError::Retry(e)) => self.penalise(i, &e),
                        Err(SinkError::Rejected(rejected)) => {
                            let r = &mut m.runner;
                            r.metrics.record_in(txn.batch());
                            rejected_events(
                                &r.id,
                                &r.metrics,
                                r.dead_letter.as_ref(),
                                &mut r.warn,
                                txn.batch(),
                                rejected,
                            )
                            .await?;
                            self.recovered(i);
                            break 'deliver;
                        }
                        Err(SinkError::Fatal(e)) => {
                            txn.rollback();
                            self.shutdown.cancel();
                            return Err(format!("sink `{}`: {e}", m.runner.id));
                        }
                    }
                }
            }
            if let Err(e) = txn.commit().await {
                tracing::warn!("commit failed: {e}");
            }
        }
        let mut result = Ok(());
        for m in &mut self.members {
            if let Err(e) = m.runner.sink.flush().await {
                tracing::warn!(sink = %m.runner.id, "flush failed: {e}");
                result = Err(format!("sink `{}`: flush failed: {e}", m.runner.id));
            }
        }
        result
    }
}
