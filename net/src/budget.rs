//! A budget of bytes shared by all connections of one listening source:
//! what request bodies (`http`, `elasticsearch`) or hop frames (`sluice`)
//! being received, and not yet delivered to the channels, may hold
//! together (`max_buffered_bytes`). With the per-message limit and
//! `max_connections` it is what bounds a listener's memory whatever its
//! clients send. Published as the gauge `buffered_bytes`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sluice_core::metrics::ComponentMetrics;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes that the messages being received by one source may hold together.
#[derive(Clone, Debug)]
pub struct Budget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    permits: Arc<Semaphore>,
    total: usize,
    metrics: OnceLock<Arc<ComponentMetrics>>,
}

impl Inner {
    fn publish(&self) {
        if let Some(m) = self.metrics.get() {
            let held = self.total - self.permits.available_permits().min(self.total);
            m.set_gauge("buffered_bytes", held as f64);
        }
    }
}

/// Why bytes could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// Other messages held the budget for the whole wait.
    Timeout,
    /// More than one reservation can count (4 GiB).
    TooLarge,
}

impl Budget {
    /// A budget of `total` bytes (capped at what a semaphore can count).
    pub fn new(total: usize) -> Budget {
        let total = total.min(Semaphore::MAX_PERMITS);
        Budget(Arc::new(Inner {
            permits: Arc::new(Semaphore::new(total)),
            total,
            metrics: OnceLock::new(),
        }))
    }

    /// Its size in bytes.
    pub fn total(&self) -> usize {
        self.0.total
    }

    /// Bytes not held now.
    pub fn available(&self) -> usize {
        self.0.permits.available_permits()
    }

    /// Publishes the gauge `buffered_bytes` to `metrics` from now on.
    pub fn publish_to(&self, metrics: Arc<ComponentMetrics>) {
        let _ = self.0.metrics.set(metrics);
        self.0.publish();
    }

    /// Reserves `n` more bytes into `held`, waiting at most `wait` for
    /// other messages to give some back. Waiters are served in order.
    ///
    /// # Errors
    ///
    /// [`NoRoom`], and then `held` is as it was.
    pub async fn reserve(&self, held: &mut Held, n: usize, wait: Duration) -> Result<(), NoRoom> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| NoRoom::TooLarge)?;
        let permit = tokio::time::timeout(wait, self.0.permits.clone().acquire_many_owned(n))
            .await
            .map_err(|_| NoRoom::Timeout)?
            // The semaphore is never closed.
            .map_err(|_| NoRoom::Timeout)?;
        match &mut held.permit {
            Some(p) => p.merge(permit),
            None => held.permit = Some(permit),
        }
        held.budget = Some(self.0.clone());
        self.0.publish();
        Ok(())
    }
}

/// Bytes reserved in a [`Budget`], given back when dropped: keep it until
/// the message's events are in the channels.
#[derive(Debug, Default)]
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
    budget: Option<Arc<Inner>>,
}

impl Held {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.permit.take());
        if let Some(b) = &self.budget {
            b.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_in_order_and_come_back_when_dropped() {
        let budget = Budget::new(100);
        let mut a = Held::default();
        budget
            .reserve(&mut a, 60, Duration::from_millis(10))
            .await
            .unwrap();
        budget
            .reserve(&mut a, 20, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!((a.bytes(), budget.available()), (80, 20));
        let mut b = Held::default();
        assert_eq!(
            budget.reserve(&mut b, 30, Duration::from_millis(20)).await,
            Err(NoRoom::Timeout)
        );
        assert_eq!(b.bytes(), 0);
        drop(a);
        assert_eq!(budget.available(), 100);
        budget
            .reserve(&mut b, 30, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(
            budget.reserve(&mut b, 1 << 33, Duration::ZERO).await,
            Err(NoRoom::TooLarge)
        );
        assert_eq!(budget.available(), 70);
    }
}
