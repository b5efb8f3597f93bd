//! Routes a sink offers on the agent's HTTP API.
//!
//! A sink whose destination can be read back (the `store` sink's index) may
//! offer read-only routes: [`SinkConfig::routes`](crate::registry::SinkConfig::routes)
//! names them, and the agent serves each as
//! `GET /api/sinks/{sink id}/{route name}?key=value&...` behind the API's
//! token and TLS. The API knows no sink type: a plugin's sink offers routes
//! the same way.
//!
//! ```
//! use std::sync::Arc;
//! use sluice_core::route::{RouteAnswer, SinkRoute};
//!
//! /// `GET /api/sinks/{id}/count`: how many events the sink wrote.
//! struct Count(Arc<std::sync::atomic::AtomicU64>);
//!
//! impl SinkRoute for Count {
//!     fn get(&self, params: &[(String, String)]) -> RouteAnswer {
//!         if let Some((k, _)) = params.first() {
//!             return RouteAnswer::error(400, format!("unknown parameter `{k}`"));
//!         }
//!         let n = self.0.load(std::sync::atomic::Ordering::Relaxed);
//!         RouteAnswer::ok(serde_json::json!({ "count": n }))
//!     }
//! }
//! ```

use std::sync::Arc;

/// One read-only route of a sink. Called for every request on a blocking
/// thread, so it may read files; it must not block for long (no waiting on
/// the pipeline).
pub trait SinkRoute: Send + Sync {
    /// Answers a `GET` with its query parameters (decoded, in order).
    fn get(&self, params: &[(String, String)]) -> RouteAnswer;
}

/// The routes of one sink: each name (a path segment) and its handler.
pub type Routes = Vec<(&'static str, Arc<dyn SinkRoute>)>;

/// What a route answers: an HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteAnswer {
    /// The HTTP status code (200, 400, 404, 503, ...).
    pub status: u16,
    /// The JSON body.
    pub body: serde_json::Value,
}

impl RouteAnswer {
    /// A `200` with `body`.
    pub fn ok(body: serde_json::Value) -> Self {
        RouteAnswer { status: 200, body }
    }

    /// An error: `status` with `{"error": message}`, the shape of every
    /// error of the API.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        RouteAnswer {
            status,
            body: serde_json::json!({ "error": message.into() }),
        }
    }
}
