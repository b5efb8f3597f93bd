//! A small HTTP/1.1 client for `GET` requests to a local agent's API: enough
//! for `sluice top` and `sluice tap` (fixed-length, chunked and
//! read-to-close bodies), without a general-purpose client's weight.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where `sluice top` and `sluice tap` look for an agent's API when no
/// `--api` is given: the address the documentation's `api:` examples use.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7583";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://HOST:PORT[/...]` or `HOST:PORT`.
    #[error("`{0}` is not an http://HOST:PORT address")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("{url}: {source}")]
    Io {
        /// The URL asked for.
        url: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The answer is not HTTP/1.x as expected.
    #[error("{url}: malformed response: {what}")]
    Malformed {
        /// The URL asked for.
        url: String,
        /// What is wrong.
        what: String,
    },
}

impl ClientError {
    /// Whether nothing listens at the address (the connection was refused):
    /// most often, the agent runs without an `api:` section.
    pub fn is_refused(&self) -> bool {
        matches!(self, ClientError::Io { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused)
    }
}

/// A whole response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Splits `http://host:port/base` into `host:port` and the base path.
fn split_url(url: &str) -> Result<(String, String), ClientError> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.starts_with("https://") || rest.contains("://") {
        return Err(ClientError::Url(url.to_string()));
    }
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || !host.contains(':') {
        return Err(ClientError::Url(url.to_string()));
    }
    Ok((host.to_string(), path.trim_end_matches('/').to_string()))
}

/// The environment variable `sluice top` and `sluice tap` take the API's
/// bearer token from.
pub const TOKEN_ENV: &str = "SLUICE_API_TOKEN";

/// `GET base + path`, the whole body; with `token`, sent as
/// `Authorization: Bearer TOKEN`.
///
/// # Errors
///
/// When the server cannot be reached or answers something that is not HTTP.
pub async fn get(base: &str, path: &str, token: Option<&str>) -> Result<Response, ClientError> {
    let mut body = Vec::new();
    let status = get_streaming(base, path, token, |_, chunk| {
        body.extend_from_slice(chunk);
        true
    })
    .await?;
    Ok(Response { status, body })
}

/// `GET base + path` (with `token` as a bearer token), handing each piece of
/// the body to `on_data` as it arrives with the status code, until the body
/// ends or `on_data` returns `false`. Returns the status code.
///
/// # Errors
///
/// When the server cannot be reached or answers something that is not HTTP.
pub async fn get_streaming(
    base: &str,
    path: &str,
    token: Option<&str>,
    mut on_data: impl FnMut(u16, &[u8]) -> bool,
) -> Result<u16, ClientError> {
    let (host, prefix) = split_url(base)?;
    let url = format!("http://{host}{prefix}{path}");
    let io = |source| ClientError::Io {
        url: url.clone(),
        source,
    };
    let bad = |what: &str| ClientError::Malformed {
        url: url.clone(),
        what: what.to_string(),
    };
    let mut stream = TcpStream::connect(&host).await.map_err(io)?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "GET {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n{auth}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut r = BufReader::new(stream);

    let mut line = String::new();
    r.read_line(&mut line).await.map_err(io)?;
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let (mut chunked, mut length) = (false, None::<usize>);
    loop {
        line.clear();
        if r.read_line(&mut line).await.map_err(io)? == 0 {
            return Err(bad("headers end early"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| bad("bad content-length"))?);
            }
        }
    }

    let mut buf = vec![0u8; 16 * 1024];
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await.map_err(io)?;
            let size = line.trim_end().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                break;
            }
            let mut left = size;
            while left > 0 {
                let n = left.min(buf.len());
                r.read_exact(&mut buf[..n]).await.map_err(io)?;
                left -= n;
                if !on_data(status, &buf[..n]) {
                    return Ok(status);
                }
            }
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).await.map_err(io)?;
        }
    } else {
        let mut left = length.unwrap_or(usize::MAX);
        while left > 0 {
            let want = left.min(buf.len());
            let n = r.read(&mut buf[..want]).await.map_err(io)?;
            if n == 0 {
                if length.is_some() {
                    return Err(bad("body ends early"));
                }
                break;
            }
            left -= n;
            if !on_data(status, &buf[..n]) {
                break;
            }
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_and_without_scheme() {
        assert_eq!(
            split_url("http://127.0.0.1:7583").unwrap(),
            ("127.0.0.1:7583".into(), String::new())
        );
        assert_eq!(
            split_url("localhost:9/agent/").unwrap(),
            ("localhost:9".into(), "/agent".into())
        );
        assert!(split_url("https://x:1").is_err());
        assert!(split_url("http://nohost").is_err());
    }
}
