//! A small HTTP/1.1 client for ClickHouse's HTTP interface: one
//! connection at a time (the sink sends one request at a time), kept while
//! it is in use and dropped after any failure; hyper's low-level
//! `client::conn`, no pool.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the server is: `http://host[:port][/]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, to connect to and for the `Host` header.
    pub authority: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/]` (port 8123 when omitted).
    ///
    /// # Errors
    ///
    /// A message saying what is wrong: another scheme, a path, user info.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(format!(
                "`{url}`: https is not supported; reach the server over http (a local proxy can add TLS)"
            ));
        } else {
            return Err(format!("`{url}` is not an http:// URL"));
        };
        let host_port = rest.strip_suffix('/').unwrap_or(rest);
        if host_port.is_empty() || host_port.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "`{url}`: give only `http://host:port` (the user and password have options of their own)"
            ));
        }
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port) = match host_port.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((_, "")) => (host_port, None),
                Some((_, rest)) => match rest.strip_prefix(':') {
                    Some(p) => (&host_port[..host_port.len() - rest.len()], Some(p)),
                    None => return Err(format!("`{url}`: `{rest}` after the IPv6 address")),
                },
                None => return Err(format!("`{url}`: no `]` after the IPv6 address")),
            },
            None => match host_port.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host_port, None),
            },
        };
        let authority = match port {
            None => format!("{host}:8123"),
            Some(p) if p.parse::<u16>().is_ok() && !host.is_empty() => format!("{host}:{p}"),
            Some(p) => return Err(format!("`{url}`: `{p}` is not a port")),
        };
        Ok(Endpoint { authority })
    }
}

/// Percent-encodes `s` for a URL query (RFC 3986 unreserved kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A server's answer.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body (cut at [`MAX_ANSWER`]), lossily as text.
    pub body: String,
}

/// The most of an answer's body kept: error texts and `DESCRIBE` output
/// are small.
pub const MAX_ANSWER: usize = 1 << 20;

/// A connection unused for longer may have been closed by the server (its
/// `keep_alive_timeout`, 3 s by default in old releases): a new one is
/// opened rather than risk sending on it.
const KEEP_IDLE: Duration = Duration::from_secs(1);

/// The client (see the [module docs](self)).
pub struct Client {
    endpoint: Endpoint,
    /// `Basic ...`, when a user is set.
    authorization: Option<String>,
    /// The limit for one request, connecting included.
    timeout: Duration,
    /// The open connection and when its last answer ended.
    conn: Option<(SendRequest<Full<Bytes>>, Instant)>,
}

impl Client {
    /// A client for `endpoint`; `auth` is a user and password.
    pub fn new(endpoint: Endpoint, auth: Option<(String, String)>, timeout: Duration) -> Self {
        let authorization =
            auth.map(|(u, p)| format!("Basic {}", base64(format!("{u}:{p}").as_bytes())));
        Client {
            endpoint,
            authorization,
            timeout,
            conn: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect(&self.endpoint.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.endpoint.authority))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.endpoint.authority))?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// POSTs `body` to `/?{query}` (an encoded query string), gzip-encoded
    /// when `gzip` says it is; returns the answer whatever its status.
    ///
    /// # Errors
    ///
    /// The connection failed, or no full answer came within the timeout.
    pub async fn post(&mut self, query: &str, body: Bytes, gzip: bool) -> Result<Answer, String> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(query, body, gzip)).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                Err(format!(
                    "no answer from {} within {timeout:?}",
                    self.endpoint.authority
                ))
            }
        }
    }

    async fn exchange(&mut self, query: &str, body: Bytes, gzip: bool) -> Result<Answer, String> {
        let kept = self
            .conn
            .take()
            .filter(|(s, at)| at.elapsed() < KEEP_IDLE && !s.is_closed());
        let mut sender = match kept {
            Some((s, _)) => s,
            None => self.connect().await?,
        };
        let lost = |e: hyper::Error| format!("request to {} failed: {e}", self.endpoint.authority);
        sender.ready().await.map_err(lost)?;
        let mut request = hyper::Request::post(format!("/?{query}"))
            .header(hyper::header::HOST, &self.endpoint.authority)
            .header(hyper::header::CONTENT_LENGTH, body.len());
        if gzip {
            request = request.header(hyper::header::CONTENT_ENCODING, "gzip");
        }
        if let Some(a) = &self.authorization {
            request = request.header(hyper::header::AUTHORIZATION, a);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("cannot make the request: {e}"))?;
        let response = sender.send_request(request).await.map_err(lost)?;
        let status = response.status().as_u16();
        let mut incoming = response.into_body();
        let mut text = Vec::new();
        let mut complete = true;
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(lost)?;
            if let Ok(data) = frame.into_data() {
                let room = MAX_ANSWER - text.len();
                text.extend_from_slice(&data[..data.len().min(room)]);
                if data.len() > room {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            self.conn = Some((sender, Instant::now()));
        }
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&text).into_owned(),
        })
    }

    /// Drops the connection (after a failure, at the end).
    pub fn close(&mut self) {
        self.conn = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Endpoint::parse("http://ch:8123/").unwrap().authority,
            "ch:8123"
        );
        assert_eq!(Endpoint::parse("http://ch").unwrap().authority, "ch:8123");
        assert_eq!(
            Endpoint::parse("http://[::1]:18123").unwrap().authority,
            "[::1]:18123"
        );
        assert_eq!(
            Endpoint::parse("http://[::1]").unwrap().authority,
            "[::1]:8123"
        );
        for bad in [
            "https://ch:8443",
            "ch:8123",
            "http://ch:port",
            "http://u:p@ch:8123",
            "http://ch:8123/db",
            "http://",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encodings() {
        assert_eq!(base64(b"sluice:sluice-test"), "c2x1aWNlOnNsdWljZS10ZXN0");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(
            encode_component("INSERT INTO t (a) FORMAT JSONEachRow"),
            "INSERT%20INTO%20t%20%28a%29%20FORMAT%20JSONEachRow"
        );
    }
}
