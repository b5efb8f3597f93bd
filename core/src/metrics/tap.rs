//! Taps: samples of the events leaving a component, for `sluice tap` and the
//! API. Nothing is copied while nobody listens: the hook on the hot path is
//! one atomic load.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::event::{Batch, Event};

/// Events per second a component's tap passes on at most, whatever the
/// number of listeners.
pub const TAP_EVENTS_PER_SECOND: usize = 100;

/// Sampled events of one component, shared by its listeners.
pub type TapSample = Arc<Vec<Event>>;

/// The tap point of one component.
#[derive(Debug)]
pub struct Tap {
    /// Listeners now; zero keeps [`Tap::offer`] free.
    subscribers: Arc<AtomicUsize>,
    sender: broadcast::Sender<TapSample>,
    /// Start of the current one-second window and events sent in it.
    window: Mutex<(Instant, usize)>,
}

impl Default for Tap {
    fn default() -> Self {
        Tap {
            subscribers: Arc::new(AtomicUsize::new(0)),
            sender: broadcast::channel(16).0,
            window: Mutex::new((Instant::now(), 0)),
        }
    }
}

/// One listener of a tap; stops listening when dropped.
#[derive(Debug)]
pub struct TapSubscription {
    /// The samples; a listener that lags loses samples, never slows the
    /// component.
    pub receiver: broadcast::Receiver<TapSample>,
    subscribers: Arc<AtomicUsize>,
}

impl Drop for TapSubscription {
    fn drop(&mut self) {
        self.subscribers.fetch_sub(1, Relaxed);
    }
}

impl Tap {
    /// Starts listening.
    pub fn subscribe(&self) -> TapSubscription {
        self.subscribers.fetch_add(1, Relaxed);
        TapSubscription {
            receiver: self.sender.subscribe(),
            subscribers: self.subscribers.clone(),
        }
    }

    /// Whether anybody listens.
    pub fn is_tapped(&self) -> bool {
        self.subscribers.load(Relaxed) > 0
    }

    /// Offers the events of `batch` leaving the component: when tapped, a
    /// sample spread over the batch within the per-second budget is sent.
    #[inline]
    pub fn offer(&self, batch: &Batch) {
        if self.is_tapped() && !batch.is_empty() {
            self.send_sample(batch);
        }
    }

    fn send_sample(&self, batch: &Batch) {
        let n = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if now.duration_since(w.0) >= Duration::from_secs(1) {
                *w = (now, 0);
            }
            let n = (TAP_EVENTS_PER_SECOND - w.1).min(batch.len());
            w.1 += n;
            n
        };
        if n == 0 {
            return;
        }
        let step = batch.len() / n;
        let sample: Vec<Event> = batch.events.iter().step_by(step).take(n).cloned().collect();
        let _ = self.sender.send(Arc::new(sample));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    fn batch(n: usize) -> Batch {
        let mut b = Batch::new();
        for i in 0..n {
            b.push(Event::new(i.to_string(), Timestamp::now()));
        }
        b
    }

    #[test]
    fn untapped_sends_nothing_and_tapped_stays_within_budget() {
        let tap = Tap::default();
        tap.offer(&batch(10));
        let mut sub = tap.subscribe();
        assert!(sub.receiver.try_recv().is_err());
        tap.offer(&batch(1000));
        tap.offer(&batch(1000));
        let first = sub.receiver.try_recv().expect("a sample");
        assert_eq!(first.len(), TAP_EVENTS_PER_SECOND);
        assert_eq!(first[0].body.as_ref(), b"0");
        assert_eq!(first[1].body.as_ref(), b"10");
        // The budget of this second is spent.
        assert!(sub.receiver.try_recv().is_err());
        drop(sub);
        assert!(!tap.is_tapped());
    }
}
