//! The `elasticsearch` source: the ingest side of Elasticsearch's HTTP API,
//! so that shippers and clients that write to Elasticsearch (Fluent Bit's
//! `es` output, Vector's `elasticsearch` sink, Filebeat, Logstash, the
//! official clients) send into a pipeline.
//!
//! * `POST|PUT /_bulk`, `/{index}/_bulk`: NDJSON action and document lines
//!   ([`bulk`]); every document taken becomes an event, all those of a
//!   request one batch, answered with Elasticsearch's bulk answer once the
//!   batch is in the channels. A bad line fails only its item.
//! * `POST /{index}/_doc`, `PUT|POST /{index}/_doc/{id}`,
//!   `PUT|POST /{index}/_create/{id}`: one document.
//! * `GET|HEAD /`: the version info clients read; `GET /_license`,
//!   `/_xpack`, `/_cluster/health`: fixed answers; template and policy
//!   requests are acknowledged and ignored; `/_refresh` answers at once.
//! * Anything else: Elasticsearch's error shape with the reason.
//!
//! Every answer carries `X-Elastic-Product: Elasticsearch`, which the
//! official clients require. Listening, TLS, the connection cap, timeouts,
//! the body limit and backpressure are those of the `http` source
//! ([`crate::http`]); a request that finds the channels full for
//! `busy_timeout` is answered `429` (`es_rejected_execution_exception`),
//! which shippers retry.
//!
//! ```yaml
//! sources:
//!   es:
//!     type: elasticsearch
//!     address: 0.0.0.0:9200
//!     channels: [main]
//! ```

mod auth;
pub mod bulk;
pub mod reply;

use std::io::Read;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use sluice_core::config::{address_problem, AddressUse};
use sluice_core::prelude::*;
use tokio_rustls::TlsAcceptor;

use crate::budget::{Budget, Held};
use crate::conn::{default_header_timeout, default_max_connections, timeout_problem};
use crate::http::{buffered_problem, read_body, serve_requests, Answer, BodyError, Limits};
use crate::ingest::{Ingest, Refused};
use crate::secure::{bind, Secret, TlsConfig, Token};

/// The `elasticsearch` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on (Elasticsearch's own port is 9200).
    pub address: String,
    /// The largest request body accepted, also after decompression (413 above
    /// it); Elasticsearch's own default is 100 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: ByteSize,
    /// Bytes of request bodies (and their decompressed forms) held at once
    /// over all connections, until their events are in the channels (`429`
    /// when a body finds no room within `header_timeout`).
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: ByteSize,
    /// How long a request waits for room in the channels before a `429`.
    #[serde(default = "crate::conn::default_busy_timeout")]
    pub busy_timeout: sluice_core::config::Duration,
    /// The token clients must send, as a bearer token, an API key or the
    /// password of basic authentication: `{env: NAME}` or `{file: PATH}`.
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
    /// The most fields one document may have, nested ones included (its
    /// item fails above it).
    #[serde(default = "sluice_core::defaults::max_fields")]
    pub max_fields: NonZeroUsize,
    /// The Elasticsearch version `GET /` reports, `MAJOR.MINOR.PATCH`:
    /// shippers choose their requests by it, and some refuse a server older
    /// than themselves.
    #[serde(default = "default_version")]
    pub version: String,
    /// The `cluster_name` `GET /` reports.
    #[serde(default = "default_cluster_name")]
    pub cluster_name: String,
}

fn default_max_buffered_bytes() -> ByteSize {
    ByteSize(256 << 20)
}

fn default_max_body_bytes() -> ByteSize {
    ByteSize(100 << 20)
}

fn default_version() -> String {
    "8.17.0".into()
}

fn default_cluster_name() -> String {
    "sluice".into()
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
        let parts: Vec<&str> = self.version.split('.').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        {
            p.push(Problem::at(
                "version",
                format!(
                    "`{}` is not MAJOR.MINOR.PATCH, such as 8.17.0",
                    sluice_core::quote::quoted(&self.version).max(40)
                ),
            ));
        }
        if self.cluster_name.is_empty() {
            p.push(Problem::at("cluster_name", "must not be empty"));
        }
        p.extend(timeout_problem("header_timeout", self.header_timeout.get()));
        p.extend(timeout_problem("busy_timeout", self.busy_timeout.get()));
        p
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(EsSource {
            listener: bind(cx, &self.address)?,
            tls: self.tls.as_ref().map(TlsConfig::acceptor).transpose()?,
            opts: Arc::new(Opts {
                max_body: usize::try_from(self.max_body_bytes.0).unwrap_or(usize::MAX),
                buffered: Budget::new(
                    usize::try_from(self.max_buffered_bytes.0).unwrap_or(usize::MAX),
                ),
                busy: self.busy_timeout.get(),
                token: self.token.as_ref().map(Secret::load).transpose()?,
                max_fields: self.max_fields.get(),
                header_timeout: self.header_timeout.get(),
                info: reply::info(&cx.id, &self.cluster_name, &self.version),
                ids: Arc::new(bulk::Ids::new()),
            }),
            max_connections: self.max_connections.get(),
        }))
    }
}

struct Opts {
    max_body: usize,
    buffered: Budget,
    busy: Duration,
    token: Option<Token>,
    max_fields: usize,
    header_timeout: Duration,
    /// The answer to `GET /`.
    info: Json,
    /// Ids for documents sent without one.
    ids: Arc<bulk::Ids>,
}

/// A running `elasticsearch` source.
pub struct EsSource {
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    opts: Arc<Opts>,
    max_connections: usize,
}

#[async_trait]
impl Source for EsSource {
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
                async move { handle(req, ingest, &opts, &metrics).await }
            },
        )
        .await
    }
}

/// An answer on its way: status and JSON body (none for `HEAD`).
struct Reply {
    status: StatusCode,
    body: Json,
}

impl Reply {
    fn ok(body: Json) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
        }
    }

    fn error(status: StatusCode, kind: &str, reason: impl AsRef<str>) -> Reply {
        Reply {
            status,
            body: reply::error(status.as_u16(), kind, reason.as_ref()),
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    ingest: Ingest,
    opts: &Opts,
    metrics: &ComponentMetrics,
) -> Answer {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let content_type = reply::content_type(header(hyper::header::ACCEPT), header(CONTENT_TYPE));
    let head = req.method() == Method::HEAD;
    let unauthorized = opts.token.as_ref().is_some_and(|t| {
        !auth::authorized(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()), t)
    });
    let r = if unauthorized {
        Reply::error(
            StatusCode::UNAUTHORIZED,
            "security_exception",
            "missing or wrong credentials: send the token as `Authorization: Bearer TOKEN`, `ApiKey TOKEN` or as the password of basic authentication",
        )
    } else {
        route(req, ingest, opts, metrics).await
    };
    let mut answer = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        let mut b = serde_json::to_vec(&r.body).unwrap_or_default();
        b.push(b'\n');
        Bytes::from(b)
    }));
    *answer.status_mut() = r.status;
    let headers = answer.headers_mut();
    headers.insert(
        reply::PRODUCT_HEADER,
        HeaderValue::from_static(reply::PRODUCT),
    );
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        headers.insert(CONTENT_TYPE, v);
    }
    if r.status == StatusCode::UNAUTHORIZED {
        headers.insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sluice\", Bearer, ApiKey"),
        );
    }
    if r.status == StatusCode::TOO_MANY_REQUESTS || r.status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    answer
}

/// Paths that take a template or policy: acknowledged, not kept.
const IGNORED: &[&str] = &[
    "_index_template",
    "_template",
    "_component_template",
    "_ilm",
    "_ingest",
];

async fn route(
    req: Request<Incoming>,
    ingest: Ingest,
    opts: &Opts,
    metrics: &ComponentMetrics,
) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == Method::GET || method == Method::HEAD;
    let write = method == Method::POST || method == Method::PUT;
    let wrong_method = |allowed: &str| {
        Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "illegal_argument_exception",
            format!("Incorrect HTTP method for uri [{path}] and method [{method}], allowed: [{allowed}]"),
        )
    };
    match segments.as_slice() {
        [""] if get => Reply::ok(opts.info.clone()),
        [""] => wrong_method("GET, HEAD"),
        ["_bulk"] | [_, "_bulk"] if write => {
            let index = (segments.len() == 2).then(|| segments[0].to_string());
            bulk(req, index, ingest, opts, metrics).await
        }
        ["_bulk"] | [_, "_bulk"] => wrong_method("POST, PUT"),
        [index, "_doc"] if method == Method::POST => {
            let index = index.to_string();
            single(req, index, None, "index", ingest, opts, metrics).await
        }
        [index, kind @ ("_doc" | "_create"), id] if write => {
            let (index, id) = (index.to_string(), id.to_string());
            let action = if *kind == "_doc" { "index" } else { "create" };
            single(req, index, Some(id), action, ingest, opts, metrics).await
        }
        ["_license"] if get => Reply::ok(json!({
            "license": {
                "status": "active", "uid": "sluice", "type": "basic",
                "issue_date": "2026-01-01T00:00:00.000Z", "issue_date_in_millis": 1_767_225_600_000_i64,
                "max_nodes": 1000, "max_resource_units": null, "issued_to": "sluice",
                "issuer": "sluice", "start_date_in_millis": -1,
            }
        })),
        ["_xpack"] if get => Reply::ok(json!({
            "build": { "hash": "sluice", "date": "2026-01-01T00:00:00.000Z" },
            "license": { "uid": "sluice", "type": "basic", "mode": "basic", "status": "active" },
            "features": {},
        })),
        ["_cluster", "health", ..] if get => Reply::ok(json!({
            "cluster_name": opts.info["cluster_name"], "status": "green", "timed_out": false,
            "number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": 1,
            "active_shards": 1, "relocating_shards": 0, "initializing_shards": 0,
            "unassigned_shards": 0, "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": 100.0,
        })),
        [first, ..] if IGNORED.contains(first) && write => {
            Reply::ok(json!({ "acknowledged": true }))
        }
        [first, ..] if IGNORED.contains(first) && get => Reply::error(
            StatusCode::NOT_FOUND,
            "resource_not_found_exception",
            format!("[{path}] not found: Sluice keeps no templates, policies or pipelines (a PUT is acknowledged and ignored)"),
        ),
        ["_refresh"] | [_, "_refresh"] if write || get => Reply::ok(json!({
            "_shards": { "total": 1, "successful": 1, "failed": 0 }
        })),
        [.., "_search" | "_count" | "_msearch"] => Reply::error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!("[{path}]: this port only takes documents; search on the agent's API (GET /_search)"),
        ),
        _ => Reply::error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!("no handler found for uri [{path}] and method [{method}]: Sluice's elasticsearch source takes documents (POST /_bulk, /{{index}}/_doc) and answers GET /"),
        ),
    }
}

/// Reads a request's body, gunzipped when it says so, within `max_body`.
async fn body(req: Request<Incoming>, opts: &Opts) -> Result<(Bytes, Held), Reply> {
    let too_large = || {
        Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "content_too_long_exception",
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
        return Err(too_large());
    }
    let encoding = match req
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => None,
        Some(e) if e == "identity" || e.is_empty() => None,
        Some(e) if e == "gzip" || e == "x-gzip" => Some(Encoding::Gzip),
        Some(e) if e == "deflate" => Some(Encoding::Deflate),
        Some(e) => {
            return Err(Reply::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "illegal_argument_exception",
                format!(
                    "Content-Encoding `{}` is not supported: send gzip, deflate or no encoding",
                    sluice_core::quote::quoted(&e).max(40)
                ),
            ))
        }
    };
    let busy = || {
        Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "es_rejected_execution_exception",
            format!(
                "rejected execution: other requests' bodies fill max_buffered_bytes ({} bytes); retry later",
                opts.buffered.total()
            ),
        )
    };
    let read = read_body(
        req.into_body(),
        opts.max_body,
        opts.header_timeout,
        &opts.buffered,
    )
    .await;
    let (raw, mut held) = match read {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(too_large()),
        Err(BodyError::Busy) => return Err(busy()),
        Err(BodyError::Stalled) => {
            return Err(Reply::error(
                StatusCode::REQUEST_TIMEOUT,
                "illegal_state_exception",
                format!(
                    "the body stalled for header_timeout ({:?})",
                    opts.header_timeout
                ),
            ))
        }
        Err(BodyError::Read(e)) => {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                format!("cannot read the body: {e}"),
            ))
        }
    };
    let Some(encoding) = encoding else {
        return Ok((raw, held));
    };
    // Decompressed on the blocking pool, its room in the budget reserved
    // as it grows (while the compressed body is held too), so that bodies
    // decompressing at once never hold more than max_buffered_bytes.
    let (max, budget, wait) = (opts.max_body, opts.buffered.clone(), opts.header_timeout);
    let handle = tokio::runtime::Handle::current();
    let unzipped = tokio::task::spawn_blocking(move || {
        let room = |n| handle.block_on(budget.reserve(&mut held, n, wait)).is_ok();
        let unzipped = decompress(&raw, encoding, max, room);
        (unzipped, held)
    })
    .await;
    let (unzipped, held) = match unzipped {
        Ok(done) => done,
        Err(e) => (Err(Unzip::Bad(e.to_string())), Held::default()),
    };
    match unzipped {
        Ok(body) => Ok((body, held)),
        Err(Unzip::TooLarge) => Err(too_large()),
        Err(Unzip::Busy) => Err(busy()),
        Err(Unzip::Bad(e)) => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!("the compressed body does not decompress: {e}"),
        )),
    }
}

/// A compressed body's encoding.
#[derive(Clone, Copy, Debug)]
enum Encoding {
    /// `gzip` (Filebeat's default, the clients' `http_compress`).
    Gzip,
    /// `deflate`: zlib (Vector's `compression: zlib`).
    Deflate,
}

/// Why a compressed body was not decompressed.
#[derive(Debug, PartialEq)]
enum Unzip {
    /// It would be larger than `max_body_bytes` (it is never decompressed
    /// further).
    TooLarge,
    /// The budget had no room for it in time.
    Busy,
    /// It is not what its encoding says.
    Bad(String),
}

/// Decompresses `raw`, at most `max` bytes, asking `room` for each
/// stretch of memory before it is used (`false`: no room).
fn decompress(
    raw: &[u8],
    encoding: Encoding,
    max: usize,
    mut room: impl FnMut(usize) -> bool,
) -> Result<Bytes, Unzip> {
    let mut reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(raw)),
    };
    let mut out = Vec::new();
    let mut len = 0;
    loop {
        if len == out.len() {
            if len == max {
                // A byte more would be past `max`.
                match reader.read(&mut [0u8; 1]) {
                    Ok(0) => break,
                    Ok(_) => return Err(Unzip::TooLarge),
                    Err(e) => return Err(Unzip::Bad(e.to_string())),
                }
            }
            let step = len.max(64 << 10).min(max - len);
            if !room(step) {
                return Err(Unzip::Busy);
            }
            out.resize(len + step, 0);
        }
        match reader.read(&mut out[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Unzip::Bad(e.to_string())),
        }
    }
    out.truncate(len);
    Ok(Bytes::from(out))
}

/// Bodies from this size on are read on tokio's blocking pool, so that a
/// large one does not hold up the other requests of the worker thread.
const OFF_THREAD_FROM: usize = 256 << 10;

async fn bulk(
    req: Request<Incoming>,
    index: Option<String>,
    ingest: Ingest,
    opts: &Opts,
    metrics: &ComponentMetrics,
) -> Reply {
    let started = Instant::now();
    let (body, _held) = match body(req, opts).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (max_fields, now) = (opts.max_fields, Timestamp::now());
    let parsed = if body.len() < OFF_THREAD_FROM {
        bulk::parse(&body, index.as_deref(), max_fields, &opts.ids, now)
    } else {
        let ids = opts.ids.clone();
        let task = tokio::task::spawn_blocking(move || {
            bulk::parse(&body, index.as_deref(), max_fields, &ids, now)
        });
        match task.await {
            Ok(p) => p,
            Err(e) => {
                return Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    format!("the body could not be read: {e}"),
                )
            }
        }
    };
    if parsed.items.is_empty() {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        );
    }
    let failed = parsed.items.iter().filter(|i| i.error.is_some()).count();
    if failed > 0 {
        metrics.record_errors(failed);
    }
    if !parsed.batch.is_empty() {
        if let Err(r) = deliver(&ingest, parsed.batch, opts).await {
            return r;
        }
    }
    let items: Vec<Json> = parsed.items.iter().map(bulk::Item::to_json).collect();
    Reply::ok(json!({
        "errors": failed > 0,
        "took": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "items": items,
    }))
}

/// One document of `/{index}/_doc[/{id}]` or `/{index}/_create/{id}`.
async fn single(
    req: Request<Incoming>,
    index: String,
    id: Option<String>,
    action: &'static str,
    ingest: Ingest,
    opts: &Opts,
    metrics: &ComponentMetrics,
) -> Reply {
    let (body, _held) = match body(req, opts).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut event = match bulk::document(&body, 1, opts.max_fields, Timestamp::now()) {
        Ok(e) => e,
        Err(reason) => {
            metrics.record_errors(1);
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "document_parsing_exception",
                reason,
            );
        }
    };
    let id = id.unwrap_or_else(|| opts.ids.next());
    event
        .fields
        .insert(bulk::INDEX_FIELD, Value::from(index.as_str()));
    event
        .fields
        .insert(bulk::ID_FIELD, Value::from(id.as_str()));
    let mut batch = Batch::with_capacity(1);
    batch.push(event);
    if let Err(r) = deliver(&ingest, batch, opts).await {
        return r;
    }
    let item = bulk::Item {
        action,
        index: Some(index),
        id: Some(id),
        error: None,
    };
    let mut body = item.to_json()[action].take();
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    Reply {
        status: StatusCode::CREATED,
        body,
    }
}

/// Puts a batch into the channels; the answer when it could not.
async fn deliver(ingest: &Ingest, batch: Batch, opts: &Opts) -> Result<(), Reply> {
    match ingest.deliver(batch, Some(opts.busy)).await {
        Ok(()) => Ok(()),
        Err(Refused::Busy) => Err(Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "es_rejected_execution_exception",
            format!(
                "rejected execution: the channels stayed full for busy_timeout ({:?}); nothing of this request was taken, retry later",
                opts.busy
            ),
        )),
        Err(Refused::Closed) => Err(Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_closed_exception",
            "the agent is stopping; nothing of this request was taken, retry later",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn gzip_and_deflate_bodies_decompress_within_the_limit() {
        let text = b"{\"index\":{}}\n{\"a\":1}\n".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&text).unwrap();
        let z = z.finish().unwrap();
        assert_eq!(
            &decompress(&gz, Encoding::Gzip, text.len(), |_| true).unwrap()[..],
            &text[..]
        );
        assert_eq!(
            &decompress(&z, Encoding::Deflate, text.len(), |_| true).unwrap()[..],
            &text[..]
        );
        // One byte over the limit: refused, not decompressed further.
        assert_eq!(
            decompress(&gz, Encoding::Gzip, text.len() - 1, |_| true),
            Err(Unzip::TooLarge)
        );
        assert!(matches!(
            decompress(b"not gzip", Encoding::Gzip, 100, |_| true),
            Err(Unzip::Bad(_))
        ));
        assert!(matches!(
            decompress(&gz, Encoding::Deflate, 10_000, |_| true),
            Err(Unzip::Bad(_))
        ));
        // Memory is asked for before it is used, in growing stretches that
        // add up to at most the limit; without room, nothing more is made.
        let mut asked = Vec::new();
        let big = vec![b'x'; 1 << 20];
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&big).unwrap();
        let bomb = e.finish().unwrap();
        let out = decompress(&bomb, Encoding::Gzip, 1 << 20, |n| {
            asked.push(n);
            true
        })
        .unwrap();
        assert_eq!(out.len(), 1 << 20);
        assert_eq!(asked.iter().sum::<usize>(), 1 << 20);
        assert_eq!(asked[..3], [64 << 10, 64 << 10, 128 << 10]);
        let mut given = 0;
        let refused = decompress(&bomb, Encoding::Gzip, 1 << 20, |n| {
            given += n;
            given <= 256 << 10
        });
        assert_eq!(refused, Err(Unzip::Busy));
    }
}
