//! Security shared by the network components: secrets read from the
//! environment or a file (never from the pipeline file itself, never
//! logged), bearer tokens, and TLS (rustls with the `ring` provider) for
//! servers and clients.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use sluice_core::prelude::*;
use tokio_rustls::rustls;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Where a secret comes from: `{env: NAME}` or `{file: PATH}`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Secret {
    /// The value of an environment variable.
    Env(String),
    /// The contents of a file, without a trailing line ending.
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Says where the secret lives, never what it is.
        match self {
            Secret::Env(name) => write!(f, "Secret(env {name})"),
            Secret::File(path) => write!(f, "Secret(file {})", path.display()),
        }
    }
}

impl Secret {
    /// Reads the secret. Errors name its source, not its value.
    pub fn load(&self) -> Result<Token, BuildError> {
        let value = match self {
            Secret::Env(name) => std::env::var(name).map_err(|_| {
                BuildError::Other(format!(
                    "the environment variable `{name}` holding the token is not set"
                ))
            })?,
            Secret::File(path) => std::fs::read_to_string(path).map_err(|e| {
                BuildError::Other(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            })?,
        };
        let value = value.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err(BuildError::Other(format!(
                "the token from {self:?} is empty"
            )));
        }
        Ok(Token(Arc::from(value.into_bytes())))
    }
}

/// A loaded bearer token. `Debug` hides it.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `offered` is this token; takes the same time wherever the
    /// first difference is.
    pub fn matches(&self, offered: &[u8]) -> bool {
        if offered.len() != self.0.len() {
            return false;
        }
        offered
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The token of an `Authorization` header value with the `Bearer` scheme.
/// The scheme's case does not matter (RFC 7235: `bearer`, `BEARER`); spaces
/// around the token are ignored. `None` for another scheme or no token.
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, token) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Whether a server with `ca` requires client certificates.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// A client must present a certificate signed by `ca`.
    #[default]
    Required,
    /// A client may connect without a certificate; one it presents must be
    /// signed by `ca`.
    Optional,
}

/// TLS options. A server needs `cert` and `key`, and with `ca` it checks
/// client certificates against that CA: required by default, or only when
/// presented with `client_auth: optional`. A client needs `ca` (the
/// servers' CA) and may present `cert` and `key` as its own certificate.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain: the server's, or the client's own.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
    /// PEM CA certificates: a server trusts client certificates it signed;
    /// a client trusts server certificates it signed.
    pub ca: Option<PathBuf>,
    /// Client only: the name the server's certificate must carry (default:
    /// the host part of `address`).
    pub server_name: Option<String>,
    /// Server only, with `ca`: `required` (default) refuses clients without
    /// a certificate, `optional` lets them in.
    pub client_auth: Option<ClientAuth>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            BuildError::Other(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?
        .collect();
    let certs = certs
        .map_err(|e| BuildError::Other(format!("bad certificate in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(BuildError::Other(format!(
            "no certificate found in {}",
            path.display()
        )));
    }
    Ok(certs)
}

fn key(path: &PathBuf) -> Result<PrivateKeyDer<'static>, BuildError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        BuildError::Other(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })
}

fn roots(path: &PathBuf) -> Result<rustls::RootCertStore, BuildError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(path)? {
        roots.add(c).map_err(|e| {
            BuildError::Other(format!("bad CA certificate in {}: {e}", path.display()))
        })?;
    }
    Ok(roots)
}

fn tls_err(e: rustls::Error) -> BuildError {
    BuildError::Other(format!("TLS setup: {e}"))
}

impl TlsConfig {
    /// Problems of a server-side TLS block.
    pub fn server_problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.cert.is_none() || self.key.is_none() {
            p.push(Problem::at(
                "tls",
                "a TLS server needs both `cert` and `key`",
            ));
        }
        if self.server_name.is_some() {
            p.push(Problem::at(
                "tls",
                "`server_name` applies only to a client (a `sluice` sink)",
            ));
        }
        if self.client_auth.is_some() && self.ca.is_none() {
            p.push(Problem::at(
                "tls",
                "`client_auth` needs `ca`: the CA that client certificates are checked against",
            ));
        }
        p
    }

    /// Problems of a client-side TLS block.
    pub fn client_problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.ca.is_none() {
            p.push(Problem::at(
                "tls",
                "a TLS client needs `ca`: the CA that signed the server's certificate",
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            p.push(Problem::at(
                "tls",
                "a client certificate needs both `cert` and `key`",
            ));
        }
        if self.client_auth.is_some() {
            p.push(Problem::at(
                "tls",
                "`client_auth` applies only to a server (a source)",
            ));
        }
        p
    }

    /// An acceptor for a server.
    pub fn acceptor(&self) -> Result<TlsAcceptor, BuildError> {
        let (Some(cert), Some(key_path)) = (&self.cert, &self.key) else {
            return Err(BuildError::Other(
                "a TLS server needs both `cert` and `key`".into(),
            ));
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?;
        let builder = match &self.ca {
            Some(ca) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(ca)?),
                    provider(),
                );
                let verifier = match self.client_auth.unwrap_or_default() {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| BuildError::Other(format!("TLS client verification: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs(cert)?, key(key_path)?)
            .map_err(tls_err)?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// A connector for a client, and the server name to check.
    pub fn connector(&self, host: &str) -> Result<(TlsConnector, ServerName<'static>), BuildError> {
        let Some(ca) = &self.ca else {
            return Err(BuildError::Other("a TLS client needs `ca`".into()));
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_root_certificates(roots(ca)?);
        let config = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(certs(c)?, key(k)?)
                .map_err(tls_err)?,
            _ => builder.with_no_client_auth(),
        };
        let name = self.server_name.clone().unwrap_or_else(|| host.to_string());
        let name = ServerName::try_from(name.clone())
            .map_err(|e| BuildError::Other(format!("bad TLS server name `{name}`: {e}")))?;
        Ok((TlsConnector::from(Arc::new(config)), name))
    }
}

/// A byte stream, plain or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Binds a TCP listener, naming the address in the error.
pub fn bind(cx: &BuildContext, address: &str) -> Result<std::net::TcpListener, BuildError> {
    let l = std::net::TcpListener::bind(address)
        .map_err(|e| BuildError::Other(format!("cannot listen on {address}: {e}")))?;
    l.set_nonblocking(true)?;
    log_bound(cx, "tcp", l.local_addr());
    Ok(l)
}

/// Logs the address a source bound: the port chosen when `address` asked
/// for port 0, so that whoever started the agent can find it.
pub(crate) fn log_bound(
    cx: &BuildContext,
    protocol: &str,
    bound: std::io::Result<std::net::SocketAddr>,
) {
    if let Ok(address) = bound {
        tracing::info!(source = %cx.id, %address, protocol, "listening");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(ca: bool, client_auth: Option<ClientAuth>) -> TlsConfig {
        TlsConfig {
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            ca: ca.then(|| "ca.pem".into()),
            server_name: None,
            client_auth,
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearerabc"), None);
    }

    #[test]
    fn client_auth_belongs_to_a_server_with_a_ca() {
        assert!(tls(true, Some(ClientAuth::Optional))
            .server_problems()
            .is_empty());
        assert!(tls(true, None).server_problems().is_empty());
        let p = tls(false, Some(ClientAuth::Required)).server_problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("`client_auth` needs `ca`"), "{p:?}");
        let p = tls(true, Some(ClientAuth::Optional)).client_problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("only to a server"), "{p:?}");
        assert!(tls(true, None).client_problems().is_empty());
    }
}
