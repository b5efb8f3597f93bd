//! [`Resource`]: something outside the process that one component at a
//! time may hold (a listening port, a directory with a lock, a consumer
//! group membership).
//!
//! A component config declares what it will hold through `resources()` (see
//! [`SourceConfig::resources`](crate::registry::SourceConfig::resources)),
//! without doing any I/O. The runtime uses the declarations on reload:
//!
//! * a component that declares resources is not built on trial (its `build`
//!   would bind or lock what the running version still holds); its pure
//!   `validate` is what checks it before anything stops;
//! * when a new component claims a resource that a running one holds
//!   ([`Resource::conflicts`]), the running one is stopped and has ended
//!   before the new one is built.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};

/// Something that only one component at a time may hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// A TCP port listened on.
    TcpPort(SocketAddr),
    /// A UDP port bound.
    UdpPort(SocketAddr),
    /// A file or directory used exclusively (an index with a writer lock,
    /// a disk channel's segments).
    Path(PathBuf),
    /// Membership of a Kafka consumer group, by group id.
    ConsumerGroup(String),
}

impl Resource {
    /// A TCP port from a `host:port` option. A host that is not an IP
    /// address (a name, resolved only at `build`) counts as every address,
    /// so that it conflicts with any listener on the same port.
    pub fn tcp(address: &str) -> Option<Resource> {
        socket_addr(address).map(Resource::TcpPort)
    }

    /// A UDP port from a `host:port` option (see [`Resource::tcp`]).
    pub fn udp(address: &str) -> Option<Resource> {
        socket_addr(address).map(Resource::UdpPort)
    }

    /// A path, made comparable: `.` components are removed and `..` folds
    /// into its parent (without touching the file system).
    pub fn path(path: &Path) -> Resource {
        let mut out = PathBuf::new();
        for c in path.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir if out.file_name().is_some() => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        Resource::Path(out)
    }

    /// Whether `self` and `other` cannot be held at the same time: the same
    /// port of the same protocol on overlapping addresses (an unspecified
    /// address such as `0.0.0.0` overlaps every address), paths of which
    /// one contains the other, the same consumer group.
    pub fn conflicts(&self, other: &Resource) -> bool {
        match (self, other) {
            (Resource::TcpPort(a), Resource::TcpPort(b))
            | (Resource::UdpPort(a), Resource::UdpPort(b)) => {
                a.port() == b.port()
                    && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
            }
            (Resource::Path(a), Resource::Path(b)) => a.starts_with(b) || b.starts_with(a),
            (Resource::ConsumerGroup(a), Resource::ConsumerGroup(b)) => a == b,
            _ => false,
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::TcpPort(a) => write!(f, "tcp port {a}"),
            Resource::UdpPort(a) => write!(f, "udp port {a}"),
            Resource::Path(p) => write!(f, "path {}", p.display()),
            Resource::ConsumerGroup(g) => write!(f, "consumer group `{g}`"),
        }
    }
}

/// `host:port` as an address; a host name counts as the unspecified address.
fn socket_addr(address: &str) -> Option<SocketAddr> {
    if let Ok(a) = address.parse::<SocketAddr>() {
        return Some(a);
    }
    let (_, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
}

/// Whether any of `a` conflicts with any of `b`.
pub fn any_conflict(a: &[Resource], b: &[Resource]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.conflicts(y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_conflict_on_the_same_port_and_overlapping_addresses() {
        let t = |a: &str| Resource::tcp(a).unwrap();
        assert!(t("0.0.0.0:80").conflicts(&t("127.0.0.1:80")));
        assert!(t("127.0.0.1:80").conflicts(&t("127.0.0.1:80")));
        assert!(t("localhost:80").conflicts(&t("127.0.0.1:80")));
        assert!(!t("127.0.0.1:80").conflicts(&t("127.0.0.2:80")));
        assert!(!t("0.0.0.0:80").conflicts(&t("0.0.0.0:81")));
        assert!(!t("0.0.0.0:80").conflicts(&Resource::udp("0.0.0.0:80").unwrap()));
        assert_eq!(Resource::tcp("no port"), None);
    }

    #[test]
    fn paths_conflict_when_one_holds_the_other() {
        let p = |s: &str| Resource::path(Path::new(s));
        assert!(p("data/store").conflicts(&p("./data/store/")));
        assert!(p("data/store").conflicts(&p("data/x/../store/index")));
        assert!(!p("data/store").conflicts(&p("data/store2")));
        assert!(Resource::ConsumerGroup("g".into()).conflicts(&Resource::ConsumerGroup("g".into())));
        assert!(!p("g").conflicts(&Resource::ConsumerGroup("g".into())));
    }
}
