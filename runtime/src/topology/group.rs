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
//! dropped. A stop (a reload) ends that wait: the batch is rolled back and
//! the group flushes its members and ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::runner::{rejected_events, take_batch, Backoff, SinkRunner, Taken};
use super::{Spawn, TaskKey};
use crate::pipeline::{Balance, GroupStrategy, Pipeline, SinkGroupSpec};
use sluice_core::channel::Channel;
use sluice_core::sink::SinkError;

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
    batch_timeout: Option<Duration>,
    base_penalty: Duration,
    max_penalty: Duration,
    shutdown: CancellationToken,
    /// The group task's stop (a reload).
    stop: CancellationToken,
    /// The member that starts the next round-robin turn.
    turn: usize,
    /// State of a small xorshift generator for `random`.
    rng: u64,
}

/// The group tasks of `pipeline`, built from the runners of their members
/// (taken out of `runners`).
pub(super) fn tasks(pipeline: &Pipeline, runners: &mut HashMap<String, SinkRunner>) -> Vec<Spawn> {
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
            batch_timeout: first.runner.batch_timeout,
            shutdown: first.runner.shutdown.clone(),
            stop: first.runner.stop.clone(),
            members,
            strategy: g.strategy.clone(),
            base_penalty: g.penalty,
            max_penalty: g.max_penalty,
            turn: 0,
            rng: seed(g),
        };
        let span = tracing::info_span!("sink_group", id = %g.id);
        out.push(Spawn {
            key: TaskKey::Group(g.id.clone()),
            span,
            task: Box::pin(runner.run()),
        });
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
        tracing::warn!(sink = %m.runner.id, penalty = ?m.penalty, "write failed: {}; trying the next sink of the group", sluice_core::quote::quoted(error).max(1000));
    }

    fn recovered(&mut self, i: usize) {
        let m = &mut self.members[i];
        if !m.penalty.is_zero() {
            tracing::info!(sink = %m.runner.id, "sink works again");
        }
        m.penalty = Duration::ZERO;
        m.until = None;
    }

    async fn run(self) -> Result<(), String> {
        let members: Vec<_> = self
            .members
            .iter()
            .map(|m| m.runner.metrics.clone())
            .collect();
        members.iter().for_each(|m| m.health.started());
        let result = self.deliver().await;
        members.iter().for_each(|m| m.health.ended(&result));
        result
    }

    async fn deliver(mut self) -> Result<(), String> {
        let mut backoff = Backoff::new();
        tracing::debug!(group = %self.id, members = self.members.len(), "started");
        'batches: while let Taken::Batch(txn) = take_batch(
            &*self.input,
            self.batch_size,
            self.batch_timeout,
            &mut backoff,
            &self.stop,
        )
        .await?
        {
            'deliver: loop {
                let order = self.order(Instant::now());
                if order.is_empty() {
                    let next = self.members.iter().filter_map(|m| m.until).min();
                    let next = next.unwrap_or_else(Instant::now);
                    tokio::select! {
                        biased;
                        _ = self.stop.cancelled() => {
                            tracing::info!(
                                events = txn.len(),
                                "stopped while every sink is penalised: the batch is rolled back"
                            );
                            txn.rollback();
                            break 'batches;
                        }
                        _ = tokio::time::sleep_until(next) => {}
                    }
                    continue;
                }
                for i in order {
                    let m = &mut self.members[i];
                    let started = std::time::Instant::now();
                    let mut written = m.runner.sink.write(txn.batch()).await;
                    if written.is_ok() && m.runner.sink.acknowledges_later() {
                        // In a group each batch is made durable before the
                        // next: a failover must not leave it behind.
                        written = m.runner.sink.sync().await;
                    }
                    m.runner.observe_write(&written, started, txn.batch());
                    match written {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Collector;
    use sluice_core::event::Batch;
    use sluice_core::sink::Sink;

    struct Nothing;

    #[async_trait::async_trait]
    impl Sink for Nothing {
        async fn write(&mut self, _b: &Batch) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn group(strategy: GroupStrategy, priorities: &[i64]) -> GroupRunner {
        let input: Arc<dyn Channel> = Collector::new();
        let members = priorities
            .iter()
            .enumerate()
            .map(|(i, p)| Member {
                runner: SinkRunner {
                    id: format!("s{i}"),
                    input: input.clone(),
                    sink: Box::new(Nothing),
                    dead_letter: None,
                    metrics: Arc::default(),
                    batch_size: 10,
                    batch_timeout: None,
                    shutdown: CancellationToken::new(),
                    stop: CancellationToken::new(),
                    warn: Default::default(),
                    _guards: Vec::new(),
                },
                priority: *p,
                penalty: Duration::ZERO,
                until: None,
            })
            .collect();
        GroupRunner {
            id: "g".into(),
            input,
            members,
            strategy,
            batch_size: 10,
            batch_timeout: None,
            base_penalty: Duration::from_secs(1),
            max_penalty: Duration::from_secs(4),
            shutdown: CancellationToken::new(),
            stop: CancellationToken::new(),
            turn: 0,
            rng: 7,
        }
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_when_every_member_is_penalised() {
        use crate::topology::runner::tests::{Held, HeldChannel, Refusing};
        let held = Held::one();
        let input: Arc<dyn Channel> = Arc::new(HeldChannel(held.clone()));
        let mut g = group(
            GroupStrategy::LoadBalance {
                selector: Balance::RoundRobin,
            },
            &[0, 0],
        );
        g.input = input;
        // Penalties far longer than the test: only the stop ends the wait.
        g.base_penalty = Duration::from_secs(600);
        g.max_penalty = Duration::from_secs(600);
        for m in &mut g.members {
            m.runner.sink = Box::new(Refusing);
        }
        let stop = g.stop.clone();
        let task = tokio::spawn(g.deliver());
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        assert_eq!(held.rollbacks.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(held.held(), Some(1));
    }

    #[test]
    fn failover_prefers_priority_skips_penalised_and_fails_back() {
        let mut g = group(
            GroupStrategy::Failover {
                priorities: vec![5, 10, 1],
            },
            &[5, 10, 1],
        );
        assert_eq!(g.order(Instant::now()), [1, 0, 2]);
        g.penalise(1, "refused");
        assert_eq!(g.order(Instant::now()), [0, 2]);
        g.penalise(1, "refused again");
        assert_eq!(g.members[1].penalty, Duration::from_secs(2));
        for _ in 0..5 {
            g.penalise(1, "still refused");
        }
        assert_eq!(g.members[1].penalty, Duration::from_secs(4), "capped");
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            g.order(later),
            [1, 0, 2],
            "back first once the penalty passed"
        );
        g.recovered(1);
        assert_eq!(g.members[1].penalty, Duration::ZERO);
    }

    #[test]
    fn round_robin_turns_and_random_covers_every_member() {
        let mut g = group(
            GroupStrategy::LoadBalance {
                selector: Balance::RoundRobin,
            },
            &[0, 0, 0],
        );
        let firsts: Vec<usize> = (0..6).map(|_| g.order(Instant::now())[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        g.penalise(1, "down");
        assert_eq!(g.order(Instant::now()), [0, 2]);
        let mut g = group(
            GroupStrategy::LoadBalance {
                selector: Balance::Random,
            },
            &[0, 0, 0],
        );
        let mut seen = [0; 3];
        for _ in 0..300 {
            let order = g.order(Instant::now());
            assert_eq!(order.len(), 3);
            seen[order[0]] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
    }
}
