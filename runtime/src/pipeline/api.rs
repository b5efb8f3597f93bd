//! The optional top-level `api:` section: where the agent serves its health,
//! metrics and dashboard over HTTP.
//!
//! Only `address` is read here; the security and limit options (`token`,
//! `tls`, `max_connections`, `header_timeout`) belong to the API crate,
//! which this crate does not know: their keys are accepted here, and the
//! mapping is kept in [`ApiSpec::node`] for the API to read its typed
//! options from (with positions for its errors).

use std::net::SocketAddr;

use super::Ctx;
use sluice_core::config::de::from_node;
use sluice_core::config::node::{Node, Pos};

/// The `api:` section as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiSpec {
    /// The address to listen on, e.g. `127.0.0.1:7583`.
    pub address: SocketAddr,
    /// Where it is declared.
    pub pos: Pos,
    /// The whole mapping, for the API's own options; `None` when the API
    /// was asked for on the command line only.
    pub node: Option<Node>,
}

/// The options of `api:`; all but `address` are read by the API crate.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ApiConfig {
    /// `IP:PORT` to listen on (port 0: any free port).
    address: String,
    token: Option<serde::de::IgnoredAny>,
    tls: Option<serde::de::IgnoredAny>,
    max_connections: Option<serde::de::IgnoredAny>,
    header_timeout: Option<serde::de::IgnoredAny>,
}

/// Reads the `api:` section of `root`, reporting problems with their place.
pub(super) fn api_spec(cx: &mut Ctx, root: &Node) -> Option<ApiSpec> {
    let node = root.get("api")?;
    let pos = root.key("api").map_or(node.pos, |k| k.pos);
    if node.as_map().is_none() {
        cx.err(
            node.pos,
            format!(
                "`api` must be a mapping with `address: IP:PORT`, found {}",
                node.type_name()
            ),
        );
        return None;
    }
    match from_node::<ApiConfig>(node) {
        Ok(c) => match c.address.trim().parse::<SocketAddr>() {
            Ok(address) => Some(ApiSpec {
                address,
                pos,
                node: Some(node.clone()),
            }),
            Err(_) => {
                let at = node.get("address").map_or(node.pos, |n| n.pos);
                cx.err(
                    at,
                    format!(
                        "api: `address` must be IP:PORT, e.g. 127.0.0.1:7583 or [::1]:7583, found `{}`",
                        c.address
                    ),
                );
                None
            }
        },
        Err(e) => {
            cx.err(e.pos.unwrap_or(node.pos), format!("api: {}", e.message));
            None
        }
    }
}
