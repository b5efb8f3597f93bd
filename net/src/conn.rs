//! Connection limits shared by every listener of the agent (the `tcp`,
//! `syslog`, `http`, `elasticsearch` and `sluice` sources and the API).
//!
//! A [`Gate`] counts the open connections of one listener. A connection past
//! its `max_connections` is accepted and closed at once (the peer sees the
//! connection end before any byte), counted in the gauge
//! `connections_refused` and reported at most once a second; connections
//! already open are not slowed down. Keeping the accept loop going (rather
//! than not accepting) keeps the kernel's backlog empty, so a flood of idle
//! connections does not delay the ones that come after it has been closed.
//!
//! Every gate adds its cap to a process-wide sum; when the sum comes close
//! to the file-descriptor limit (`RLIMIT_NOFILE`), a warning says so: past
//! it, the agent's own files (sink files, checkpoints, disk channels) could
//! no longer be opened.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::prelude::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use sluice_core::warn::WarnLimiter;

/// Connections a listener keeps open at most, unless configured.
///
/// Enough for a fleet of several hundred senders with a connection or two
/// each, and with the file-descriptor limit raised at start-up (commonly to
/// 65536 or more) several listeners at their cap still leave room for the
/// agent's own files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Connections the API keeps open at most, unless configured: it serves
/// operators, dashboards and scrapers, not a fleet.
pub const DEFAULT_API_MAX_CONNECTIONS: usize = 128;
/// How long a stream connection (`tcp`, `syslog`, `sluice`) may stay
/// silent before it is closed, unless configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an HTTP client may take to send a request's headers (and how
/// long a kept-alive connection may wait for its next request), unless
/// configured.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors kept out of the listeners' caps for the agent's own
/// files, channels and outgoing connections.
const RESERVED_FDS: u64 = 256;

/// The sum of the caps of every gate alive.
static CAPS: AtomicUsize = AtomicUsize::new(0);

/// The default of `max_connections` for a source's config.
pub fn default_max_connections() -> NonZeroUsize {
    NonZeroUsize::new(DEFAULT_MAX_CONNECTIONS).unwrap_or(NonZeroUsize::MIN)
}

/// The default of `idle_timeout` for a source's config.
pub fn default_idle_timeout() -> sluice_core::config::Duration {
    DEFAULT_IDLE_TIMEOUT.into()
}

/// The default of `header_timeout` for a source's config.
pub fn default_header_timeout() -> sluice_core::config::Duration {
    DEFAULT_HEADER_TIMEOUT.into()
}

/// The default of `busy_timeout` for an HTTP source's config: how long a
/// request waits for room in the channels before it is refused, short so
/// that clients back off and retry instead of holding connections.
pub fn default_busy_timeout() -> sluice_core::config::Duration {
    std::time::Duration::from_secs(1).into()
}

/// A problem when a timeout option is zero.
pub fn timeout_problem(key: &str, d: Duration) -> Option<Problem> {
    d.is_zero()
        .then(|| Problem::at(key, "must be more than zero"))
}

/// Counts the open connections of one listener; see the module docs.
#[derive(Clone)]
pub struct Gate(Arc<Inner>);

struct Inner {
    /// What the log lines name: `source "in"`, `api`.
    name: String,
    max: usize,
    permits: Arc<Semaphore>,
    refused: AtomicU64,
    warn: Mutex<WarnLimiter>,
    /// Taken while the gauges are set, so that the last one set reads the
    /// counts after every change before it.
    publishing: Mutex<()>,
    /// Where the gauges `connections` and `connections_refused` go, for a
    /// source.
    metrics: Option<Arc<ComponentMetrics>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        CAPS.fetch_sub(self.max, Ordering::Relaxed);
    }
}

/// An admitted connection: it counts as open until this is dropped.
pub struct Admitted {
    permit: Option<OwnedSemaphorePermit>,
    gate: Gate,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.gate.publish();
    }
}

impl Gate {
    /// A gate for `max` connections of the listener `name`, publishing its
    /// gauges to `metrics` when given.
    pub fn new(
        name: impl Into<String>,
        max: usize,
        metrics: Option<Arc<ComponentMetrics>>,
    ) -> Gate {
        let name = name.into();
        let max = max.max(1);
        let total = CAPS.fetch_add(max, Ordering::Relaxed) + max;
        if let Some(limit) = fd_limit() {
            if total as u64 + RESERVED_FDS > limit {
                tracing::warn!(
                    listener = %name, max_connections = max, all_listeners = total, fd_limit = limit,
                    "the listeners' max_connections add up to near the open-file limit: at their caps the agent could not open its own files; lower max_connections or raise the limit (ulimit -n)"
                );
            }
        }
        let gate = Gate(Arc::new(Inner {
            name,
            max,
            permits: Arc::new(Semaphore::new(max)),
            refused: AtomicU64::new(0),
            warn: Mutex::new(WarnLimiter::default()),
            publishing: Mutex::new(()),
            metrics,
        }));
        gate.publish();
        gate
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.0.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.max - self.0.permits.available_permits()
    }

    /// Connections refused since the gate was made.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    fn publish(&self) {
        if let Some(m) = &self.0.metrics {
            let _serial = self.0.publishing.lock().unwrap_or_else(|e| e.into_inner());
            m.set_gauge("connections", self.open() as f64);
            m.set_gauge("connections_refused", self.refused() as f64);
        }
    }

    /// Admits a connection from `peer`, or counts and reports it as refused
    /// (`None`: the caller drops the stream, which closes it).
    pub fn admit(&self, peer: SocketAddr) -> Option<Admitted> {
        match self.0.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.publish();
                Some(Admitted {
                    permit: Some(permit),
                    gate: self.clone(),
                })
            }
            Err(_) => {
                self.0.refused.fetch_add(1, Ordering::Relaxed);
                self.publish();
                let allowed = self
                    .0
                    .warn
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .allow();
                if let Some(held) = allowed {
                    tracing::warn!(
                        listener = %self.0.name, %peer, max_connections = self.0.max,
                        refused_total = self.refused(), held_back = held,
                        "connection refused: max_connections reached (closed at once)"
                    );
                }
                None
            }
        }
    }

    /// The next admitted connection of `listener`, or `None` once
    /// `shutdown` is cancelled. Connections past the cap are closed as they
    /// come. A failed accept (out of file descriptors, a connection reset
    /// before it was taken) is reported (at most once a second) and retried
    /// after a short pause.
    pub async fn accept(
        &self,
        listener: &TcpListener,
        shutdown: &CancellationToken,
    ) -> Option<(TcpStream, SocketAddr, Admitted)> {
        let mut warn = WarnLimiter::default();
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, peer)) => {
                        if let Some(admitted) = self.admit(peer) {
                            return Some((stream, peer, admitted));
                        }
                        drop(stream);
                    }
                    Err(e) => {
                        if let Some(held) = warn.allow() {
                            tracing::warn!(listener = %self.0.name, held_back = held, "accept failed: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.cancelled() => return None,
            }
        }
    }
}

/// The soft limit on open files of this process, when known.
pub fn fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0
            && lim.rlim_cur != libc::RLIM_INFINITY
        {
            // `rlim_t` is not `u64` on every platform.
            #[allow(clippy::unnecessary_cast)]
            return Some(lim.rlim_cur as u64);
        }
        None
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit, so
/// that listeners at their `max_connections` leave room for the agent's own
/// files (sink files, disk channel segments, checkpoints), and logs the
/// limit in force. Called once at start-up, before any listener.
pub fn raise_fd_limit() {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return;
        }
        let before = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: setrlimit reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim = raised;
            }
        }
        let show = |v: libc::rlim_t| {
            if v == libc::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                v.to_string()
            }
        };
        tracing::info!(
            soft = %show(lim.rlim_cur), hard = %show(lim.rlim_max), was = %show(before),
            "open-file limit"
        );
    }
}

/// A TLS handshake failure, reported at most once a second per listener.
pub struct HandshakeLog(Mutex<WarnLimiter>);

impl Default for HandshakeLog {
    fn default() -> Self {
        HandshakeLog(Mutex::new(WarnLimiter::default()))
    }
}

impl HandshakeLog {
    /// The TLS handshake of a connection just accepted, within
    /// [`HANDSHAKE_TIMEOUT`]; `None` when it failed or timed out (reported
    /// through [`HandshakeLog::failed`]).
    pub async fn accept<S>(
        &self,
        tls: &tokio_rustls::TlsAcceptor,
        stream: S,
        listener: &str,
        peer: SocketAddr,
    ) -> Option<tokio_rustls::server::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                self.failed(listener, peer, &e.to_string());
                None
            }
            Err(_) => {
                self.failed(listener, peer, "timed out");
                None
            }
        }
    }

    /// Reports that the handshake with `peer` failed for `reason`.
    pub fn failed(&self, listener: &str, peer: SocketAddr, reason: &str) {
        let allowed = self.0.lock().unwrap_or_else(|e| e.into_inner()).allow();
        if let Some(held) = allowed {
            tracing::warn!(listener, %peer, held_back = held, "TLS handshake failed: {reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gate_refuses_past_its_cap_and_frees_on_drop() {
        let gate = Gate::new("test", 2, None);
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let a = gate.admit(peer).expect("first");
        let b = gate.admit(peer).expect("second");
        assert!(gate.admit(peer).is_none());
        assert_eq!((gate.open(), gate.refused()), (2, 1));
        drop(a);
        assert_eq!(gate.open(), 1);
        let _c = gate.admit(peer).expect("room again");
        drop(b);
        assert_eq!(gate.refused(), 1);
    }
}
