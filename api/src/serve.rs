//! How the API listens: its options (`token`, `tls`, `max_connections`,
//! `header_timeout`), the bearer-token check, and the accept loop shared in
//! spirit with the network sources (the same [`Gate`], TLS and tokens from
//! `sluice-net`).
//!
//! Open without a token: `GET /health` (probes: Kubernetes, load balancers
//! and Vector-style health checks expect it open), `GET /metrics`
//! (Prometheus: counts and component ids, no event content), `GET /` and
//! `GET /ui/*` (the dashboard page and its scripts, which hold no data: it
//! asks for the token and sends it with its requests). Everything else (`/api/*`: components
//! and taps of events, `/search`, `/_search`, `/_count`: the indexed events) needs
//! `Authorization: Bearer TOKEN` when a token is set.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use sluice_core::config::{from_node, ConfigError};
use sluice_core::registry::{BuildError, Problem};
use sluice_net::conn::{Gate, HandshakeLog, DEFAULT_API_MAX_CONNECTIONS, DEFAULT_HEADER_TIMEOUT};
use sluice_net::secure::{bearer, Secret, TlsConfig, Token};
use sluice_runtime::pipeline::ApiSpec;
use tokio_util::sync::CancellationToken;

/// The options of the pipeline file's `api:` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// `IP:PORT` to listen on (read and checked by the pipeline loader).
    pub address: String,
    /// The bearer token that `/api/*`, `/search` and `/_search` require: `{env: NAME}`
    /// or `{file: PATH}`.
    pub token: Option<Secret>,
    /// HTTPS: `cert` and `key`, and `ca` to require client certificates
    /// (`client_auth: optional` to only check those presented).
    pub tls: Option<TlsConfig>,
    /// Connections open at most; more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    /// How long a client may take to send a request's headers (or keep an
    /// idle connection waiting for its next request).
    #[serde(default = "default_header_timeout")]
    pub header_timeout: sluice_core::config::Duration,
}

fn default_max_connections() -> NonZeroUsize {
    NonZeroUsize::new(DEFAULT_API_MAX_CONNECTIONS).unwrap_or(NonZeroUsize::MIN)
}

fn default_header_timeout() -> sluice_core::config::Duration {
    DEFAULT_HEADER_TIMEOUT.into()
}

impl Options {
    /// The options of `spec`: its mapping, or the defaults when the API was
    /// asked for on the command line only.
    ///
    /// # Errors
    ///
    /// A mistyped or unknown option, with its position.
    pub fn of(spec: &ApiSpec) -> Result<Options, ConfigError> {
        match &spec.node {
            Some(node) => from_node(node),
            None => Ok(Options {
                address: spec.address.to_string(),
                token: None,
                tls: None,
                max_connections: default_max_connections(),
                header_timeout: default_header_timeout(),
            }),
        }
    }

    /// What is wrong with the options (each names its key).
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if let Some(tls) = &self.tls {
            p.extend(tls.server_problems());
        }
        if self.header_timeout.get().is_zero() {
            p.push(Problem::at("header_timeout", "must be more than zero"));
        }
        p
    }

    /// Reads the token and the TLS files.
    ///
    /// # Errors
    ///
    /// A token or certificate that cannot be read.
    pub fn load(&self) -> Result<Security, BuildError> {
        Ok(Security {
            token: self.token.as_ref().map(Secret::load).transpose()?,
            tls: self.tls.as_ref().map(TlsConfig::acceptor).transpose()?,
            max_connections: self.max_connections.get(),
            header_timeout: self.header_timeout.get(),
        })
    }
}

/// The loaded security and limits of the API.
#[derive(Clone)]
pub struct Security {
    /// The token `/api/*` and `/search` require, when set.
    pub token: Option<Token>,
    /// The TLS acceptor, for HTTPS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Connections open at most.
    pub max_connections: usize,
    /// The header-read timeout.
    pub header_timeout: Duration,
}

impl Default for Security {
    /// Plain HTTP, no token, the default limits.
    fn default() -> Self {
        Security {
            token: None,
            tls: None,
            max_connections: DEFAULT_API_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }
}

impl Security {
    /// Warns when `address` can be reached from other hosts and the API
    /// is not locked: no token (events readable by anyone), or a token sent
    /// without TLS.
    pub fn warn_if_open(&self, address: SocketAddr) {
        if address.ip().is_loopback() {
            return;
        }
        if self.token.is_none() {
            tracing::warn!(
                %address,
                "the API listens on an address other hosts can reach and has no token: anyone who can reach it can read events (/api/tap) and search the index (/search); set api.token (and api.tls), or listen on 127.0.0.1"
            );
        } else if self.tls.is_none() {
            tracing::warn!(
                %address,
                "the API's token travels in clear text: set api.tls to protect it on the network"
            );
        }
    }
}

/// Paths served without a token; see the module docs.
fn is_open(path: &str) -> bool {
    matches!(path, "/" | "/health" | "/metrics")
        || path
            .strip_prefix("/ui/")
            .is_some_and(|f| !f.is_empty() && !f.contains('/'))
}

/// Refuses a request without the token where one is needed.
pub(crate) async fn require_token(
    State(token): State<Option<Token>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(req).await;
    };
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    let offered = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()));
    if offered.is_some_and(|t| token.matches(t)) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "missing or wrong bearer token\n",
    )
        .into_response()
}

/// Accepts connections until the task is aborted, each served by its own
/// task: past the cap they are closed at once, a TLS handshake that fails
/// is reported, headers must come within the header timeout.
pub(crate) async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    security: Security,
    gate: Gate,
) {
    let never = CancellationToken::new();
    let handshakes = Arc::new(HandshakeLog::default());
    let security = Arc::new(security);
    while let Some((tcp, peer, admitted)) = gate.accept(&listener, &never).await {
        let (app, security, handshakes) = (app.clone(), security.clone(), handshakes.clone());
        tokio::spawn(async move {
            let _admitted = admitted;
            let _ = tcp.set_nodelay(true);
            let service = TowerToHyperService::new(app);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(security.header_timeout);
            let result = match &security.tls {
                None => http.serve_connection(TokioIo::new(tcp), service).await,
                Some(tls) => {
                    let Some(s) = handshakes.accept(tls, tcp, "api", peer).await else {
                        return;
                    };
                    http.serve_connection(TokioIo::new(s), service).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "api connection: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_health_metrics_and_the_page_are_open() {
        for p in ["/", "/health", "/metrics", "/ui/main.js"] {
            assert!(is_open(p), "{p}");
        }
        for p in [
            "/api/tap/x",
            "/api/components",
            "/search",
            "/health/x",
            "//",
            "/ui/",
            "/ui/x/../../api/history",
            "/api/history",
            "/_search",
            "/logs/_search",
            "/_count",
        ] {
            assert!(!is_open(p), "{p}");
        }
    }
}
