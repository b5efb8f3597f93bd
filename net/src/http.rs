//! The `http` source: events from HTTP POST requests.
//!
//! The body is NDJSON (`Content-Type: application/x-ndjson` or
//! `application/jsonl`: one JSON object per line), a JSON array of objects
//! or a single object (`application/json`), or plain lines (anything else).
//! A JSON object's members become the event's fields and its body is the
//! object's JSON text (for NDJSON, a zero-copy slice of the request).
//!
//! Answers:
//!
//! * `200` once every event of the request is in the channels;
//! * `400` with a message when the body is malformed or an object has more
//!   than `max_fields` fields (nothing is ingested);
//! * `401` without a valid `Authorization: Bearer TOKEN` when a token is set;
//! * `413` when the body is larger than `max_body_bytes`;
//! * `503` with `Retry-After` when the channels stayed full for `busy_timeout`
//!   (nothing is ingested).
//!
//! ```yaml
//! sources:
//!   http:
//!     type: http
//!     address: 0.0.0.0:8080
//!     channels: [main]
//! ```

use std::convert::Infallible;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use sluice_core::config::{address_problem, AddressUse};
use sluice_core::prelude::*;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::budget::{Budget, Held, NoRoom};
use crate::conn::{
    default_header_timeout, default_max_connections, timeout_problem, Gate, HandshakeLog,
};
use crate::http_body::{decode_off_thread, Kind};
use crate::ingest::{pump, Ingest, Refused};
use crate::secure::{bearer, bind, Secret, TlsConfig, Token};

/// The `http` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on.
    pub address: String,
    /// The request path that takes events; any path when absent.
    pub path: Option<String>,
    /// The largest request body accepted (413 above it).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: ByteSize,
    /// Bytes of request bodies held at once over all connections, from
    /// their first byte until their events are in the channels (503 when a
    /// body finds no room within `header_timeout`).
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: ByteSize,
    /// How long a request waits for room in the channels before a 503.
    #[serde(default = "crate::conn::default_busy_timeout")]
    pub busy_timeout: sluice_core::config::Duration,
    /// The bearer token clients must send: `{env: NAME}` or `{file: PATH}`.
    pub token: Option<Secret>,
    /// TLS: `cert` and `key`, and `ca` to require client certificates.
    pub tls: Option<TlsConfig>,
    /// Connections open at most; more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    /// How long a client may take to send a request's headers, wait
    /// between requests on a kept-alive connection, or pause while sending
    /// a body, before the connection is closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: sluice_core::config::Duration,
    /// The most fields one JSON object may have, nested ones included (400
    /// above it).
    #[serde(default = "sluice_core::defaults::max_fields")]
    pub max_fields: std::num::NonZeroUsize,
}

fn default_max_body_bytes() -> ByteSize {
    ByteSize(10 << 20)
}

fn default_max_buffered_bytes() -> ByteSize {
    ByteSize(64 << 20)
}

impl SourceConfig for Config {
    /// The port it listens on, so that a reload stops the old listener
    /// before the new one binds.
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        Resource::tcp(&self.address).into_iter().collect()
    }
    fn validate(&self) -> Vec<Problem> {
        let mut p: Vec<Problem> = address_problem("address", &self.address, AddressUse::Listen)
            .into_iter()
            .collect();
        if let Some(tls) = &self.tls {
            p.extend(tls.server_problems());
        }
        if self.max_body_bytes.0 == 0 {
            p.push(Problem::at("max_body_bytes", "must be at least 1 byte"));
        }
        p.extend(buffered_problem(
            self.max_buffered_bytes,
            self.max_body_bytes,
        ));
        if self.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
            p.push(Problem::at("path", "must start with `/`"));
        }
        p.extend(timeout_problem("header_timeout", self.header_timeout.get()));
        p.extend(timeout_problem("busy_timeout", self.busy_timeout.get()));
        p
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(HttpSource {
            listener: bind(cx, &self.address)?,
            tls: self.tls.as_ref().map(TlsConfig::acceptor).transpose()?,
            opts: Arc::new(Opts {
                path: self.path.clone(),
                max_body: usize::try_from(self.max_body_bytes.0).unwrap_or(usize::MAX),
                buffered: Budget::new(
                    usize::try_from(self.max_buffered_bytes.0).unwrap_or(usize::MAX),
                ),
                busy: self.busy_timeout.get(),
                token: self.token.as_ref().map(Secret::load).transpose()?,
                max_fields: self.max_fields.get(),
                header_timeout: self.header_timeout.get(),
            }),
            max_connections: self.max_connections.get(),
        }))
    }
}

struct Opts {
    path: Option<String>,
    max_body: usize,
    buffered: Budget,
    busy: Duration,
    token: Option<Token>,
    max_fields: usize,
    header_timeout: Duration,
}

/// A running `http` source.
pub struct HttpSource {
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    opts: Arc<Opts>,
    max_connections: usize,
}

#[async_trait]
impl Source for HttpSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), ComponentError> {
        let opts = self.opts;
        opts.buffered.publish_to(cx.metrics.clone());
        let limits = Limits {
            max_connections: self.max_connections,
            header_timeout: opts.header_timeout,
        };
        serve_requests(
            self.listener,
            self.tls,
            limits,
            cx,
            move |req, ingest, metrics| {
                let opts = opts.clone();
                async move { handle_inner(req, ingest, &opts, &metrics).await }
            },
        )
        .await
    }
}

/// The connection limits of an HTTP listener.
pub(crate) struct Limits {
    /// Connections open at most.
    pub max_connections: usize,
    /// How long headers (and pauses in a body) may take.
    pub header_timeout: Duration,
}

/// The running side of the HTTP sources (`http`, `elasticsearch`): accepts
/// connections (plain or TLS) under the connection cap, serves each with
/// HTTP/1.1 and `handler` per request, and emits what handlers deliver
/// through their [`Ingest`] until the source stops.
pub(crate) async fn serve_requests<H, F>(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    mut cx: SourceContext,
    handler: H,
) -> Result<(), ComponentError>
where
    H: Fn(Request<Incoming>, Ingest, Arc<ComponentMetrics>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Answer> + Send + 'static,
{
    let listener = TcpListener::from_std(listener)?;
    let (ingest, rx) = Ingest::new();
    let shutdown = cx.shutdown.clone();
    let metrics = cx.metrics.clone();
    let name = format!("source {}", cx.id);
    let gate = Gate::new(name.clone(), limits.max_connections, Some(metrics.clone()));
    let handshakes = Arc::new(HandshakeLog::default());
    let header_timeout = limits.header_timeout;
    let acceptor = tokio::spawn(async move {
        while let Some((tcp, peer, admitted)) = gate.accept(&listener, &shutdown).await {
            let (ingest, tls, shutdown, metrics, handshakes, name, handler) = (
                ingest.clone(),
                tls.clone(),
                shutdown.clone(),
                metrics.clone(),
                handshakes.clone(),
                name.clone(),
                handler.clone(),
            );
            tokio::spawn(async move {
                let _admitted = admitted;
                let service = hyper::service::service_fn(move |req| {
                    let answer = handler(req, ingest.clone(), metrics.clone());
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(header_timeout);
                let result = match tls {
                    None => serve_conn(&http, TokioIo::new(tcp), service, &shutdown).await,
                    Some(tls) => {
                        let Some(s) = handshakes.accept(&tls, tcp, &name, peer).await else {
                            return;
                        };
                        serve_conn(&http, TokioIo::new(s), service, &shutdown).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, "http connection: {e}");
                }
            });
        }
    });
    let result = pump(rx, &mut cx).await;
    acceptor.abort();
    result
}

/// Serves one connection until it ends; on a stop, lets the current request
/// finish.
async fn serve_conn<I, S>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    service: S,
    shutdown: &tokio_util::sync::CancellationToken,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Full<Bytes>>,
{
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

pub(crate) type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, msg: impl Into<String>) -> Answer {
    let mut msg = msg.into();
    msg.push('\n');
    let mut r = Response::new(Full::new(Bytes::from(msg)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle_inner(
    req: Request<Incoming>,
    ingest: Ingest,
    opts: &Opts,
    metrics: &ComponentMetrics,
) -> Answer {
    if let Some(token) = &opts.token {
        let offered = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| bearer(v.as_bytes()));
        if !offered.is_some_and(|t| token.matches(t)) {
            let mut r = answer(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    if req.method() != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    if let Some(path) = &opts.path {
        if req.uri().path() != path {
            return answer(StatusCode::NOT_FOUND, format!("events are taken at {path}"));
        }
    }
    let too_large = || {
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than max_body_bytes ({} bytes)",
                opts.max_body
            ),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > opts.max_body as u64) {
        return too_large();
    }
    let kind = Kind::of(
        req.headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let (body, _held) = match read_body(
        req.into_body(),
        opts.max_body,
        opts.header_timeout,
        &opts.buffered,
    )
    .await
    {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Busy) => {
            let mut r = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "other requests' bodies fill max_buffered_bytes ({} bytes); retry later",
                    opts.buffered.total()
                ),
            );
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
        Err(BodyError::Stalled) => {
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body stalled for header_timeout ({:?})",
                    opts.header_timeout
                ),
            )
        }
        Err(BodyError::Read(e)) => {
            return answer(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    };
    let batch = match decode_off_thread(body, kind, opts.max_fields).await {
        Ok(b) => b,
        Err(msg) => {
            metrics.record_errors(1);
            return answer(StatusCode::BAD_REQUEST, msg);
        }
    };
    let n = batch.len();
    if n == 0 {
        return answer(StatusCode::OK, "0 events");
    }
    match ingest.deliver(batch, Some(opts.busy)).await {
        Ok(()) => answer(StatusCode::OK, format!("{n} events")),
        Err(Refused::Busy) => {
            let mut r = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the channels are full; retry later",
            );
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(Refused::Closed) => {
            let mut r = answer(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping");
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

pub(crate) enum BodyError {
    TooLarge,
    Stalled,
    /// The bodies in flight hold the whole [`Budget`].
    Busy,
    Read(String),
}

impl From<NoRoom> for BodyError {
    fn from(r: NoRoom) -> Self {
        match r {
            NoRoom::Timeout => BodyError::Busy,
            NoRoom::TooLarge => BodyError::TooLarge,
        }
    }
}

/// `max_buffered_bytes` must let one body of `max_body_bytes` in.
pub(crate) fn buffered_problem(buffered: ByteSize, max_body: ByteSize) -> Option<Problem> {
    (buffered.0 < max_body.0).then(|| {
        Problem::at(
            "max_buffered_bytes",
            format!(
                "max_buffered_bytes ({} bytes) must be at least max_body_bytes ({} bytes), or no body of that size could be taken",
                buffered.0, max_body.0
            ),
        )
    })
}

/// Reads a whole body of at most `max` bytes, reserving its bytes in
/// `budget` as they come; no pause between its pieces (or wait for room in
/// the budget) may last longer than `pause`.
pub(crate) async fn read_body(
    body: Incoming,
    max: usize,
    pause: Duration,
    budget: &Budget,
) -> Result<(Bytes, Held), BodyError> {
    let mut held = Held::default();
    // A declared length is reserved at once: a body taken in never waits
    // for room again (the budget's waiters are served in order, and a body
    // half read waiting behind a new one would hold its bytes for nothing).
    let mut reserved = 0usize;
    if let Some(n) = hyper::body::Body::size_hint(&body).exact() {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > max {
            return Err(BodyError::TooLarge);
        }
        budget
            .reserve(&mut held, n, pause)
            .await
            .map_err(BodyError::from)?;
        reserved = n;
    }
    let mut received = 0usize;
    let mut body = Limited::new(body, max);
    let mut out = bytes::BytesMut::new();
    let mut single: Option<Bytes> = None;
    loop {
        let frame = match tokio::time::timeout(pause, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => break,
            Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(BodyError::TooLarge)
            }
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received += data.len();
        if received > reserved {
            budget
                .reserve(&mut held, received - reserved, pause)
                .await?;
            reserved = received;
        }
        // One piece (the usual case) is kept without a copy.
        match single.take() {
            None if out.is_empty() => single = Some(data),
            Some(first) => {
                out.extend_from_slice(&first);
                out.extend_from_slice(&data);
            }
            None => out.extend_from_slice(&data),
        }
    }
    Ok((single.unwrap_or_else(|| out.freeze()), held))
}
