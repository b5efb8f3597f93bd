//! A live view of a running topology for observers (the HTTP API): the
//! pipeline now running, its components with their counters, its channels.
//! Published again whenever a task ends or a reload changes the topology.

use std::sync::{Arc, RwLock};

use super::ComponentInfo;
use crate::pipeline::Pipeline;
use sluice_core::channel::Channel;

/// What runs at one moment.
pub struct Snapshot {
    /// The pipeline applied last.
    pub pipeline: Pipeline,
    /// Its components, with their live counters.
    pub components: Vec<ComponentInfo>,
    /// Its channels by id.
    pub channels: Vec<(String, Arc<dyn Channel>)>,
}

/// The latest [`Snapshot`], shared between the topology and its observers.
pub struct LiveView {
    latest: RwLock<Arc<Snapshot>>,
}

impl LiveView {
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        LiveView {
            latest: RwLock::new(Arc::new(snapshot)),
        }
    }

    /// What runs now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the snapshot (on a task's end or a reload: rarely).
    pub(crate) fn publish(
        &self,
        pipeline: &Pipeline,
        components: &[ComponentInfo],
        channels: &[(String, Arc<dyn Channel>)],
    ) {
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Snapshot {
            pipeline: pipeline.clone(),
            components: components.to_vec(),
            channels: channels.to_vec(),
        });
    }
}
