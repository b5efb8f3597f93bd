//! `host:port` options, checked when the pipeline is validated so that an
//! address that can never work (`999.1.1.1:99999`) is refused by
//! `sluice validate` with its position, not at start-up or, for a sink,
//! only when it first connects.
//!
//! Names are not resolved here (that is I/O, and a name may resolve only
//! where the agent runs): a host is an IPv4 address, an IPv6 address in
//! brackets, or a name made of letters, digits, `-`, `_` and dots.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::registry::Problem;

/// What an address is for: the port it may name differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressUse {
    /// An address to listen on: port 0 means any free port.
    Listen,
    /// An address to connect to: the port is 1 to 65535.
    Connect,
}

/// Checks `address` as `host:port` for `usage`.
///
/// # Errors
///
/// What is wrong, with an example of what would be right.
pub fn check_address(address: &str, usage: AddressUse) -> Result<(), String> {
    let example = match usage {
        AddressUse::Listen => "`0.0.0.0:5140`, `127.0.0.1:5140` or `[::]:5140`",
        AddressUse::Connect => "`collector-1:6000`, `10.0.0.5:6000` or `[::1]:6000`",
    };
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(format!(
                "`{address}`: an IPv6 address opened with `[` needs a closing `]`"
            ));
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{address}`: `{v6}` is not an IPv6 address"));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!(
                "`{address}` has no port: write `host:port`, e.g. {example}"
            ));
        };
        (None, port)
    } else {
        let Some((host, port)) = address.rsplit_once(':') else {
            return Err(format!(
                "`{address}` has no port: write `host:port`, e.g. {example}"
            ));
        };
        if host.contains(':') {
            return Err(format!(
                "`{address}`: write an IPv6 address in brackets, e.g. `[::1]:{port}`"
            ));
        }
        (Some(host), port)
    };
    if let Some(host) = host {
        check_host(address, host, example)?;
    }
    let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    let port_num = if port_ok {
        port.parse::<u32>().ok()
    } else {
        None
    };
    match (port_num, usage) {
        (Some(p), AddressUse::Listen) if p <= 65535 => Ok(()),
        (Some(p), AddressUse::Connect) if (1..=65535).contains(&p) => Ok(()),
        _ => {
            let range = match usage {
                AddressUse::Listen => "0 to 65535 (0: any free port)",
                AddressUse::Connect => "1 to 65535",
            };
            Err(format!(
                "`{address}`: the port `{port}` is not a number from {range}"
            ))
        }
    }
}

fn check_host(address: &str, host: &str, example: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!(
            "`{address}` has no host: write `host:port`, e.g. {example}"
        ));
    }
    // Digits and dots only: it can only be meant as an IPv4 address.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!(
                "`{address}`: `{host}` is not an IPv4 address (four numbers from 0 to 255)"
            )),
        };
    }
    let name_ok = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if name_ok {
        Ok(())
    } else {
        Err(format!(
            "`{address}`: `{host}` is neither an IP address nor a host name (letters, digits, `-`, `_`, dot-separated)"
        ))
    }
}

/// The problem with the `host:port` option `key`, if any: for a
/// component's `validate`.
pub fn address_problem(key: &str, address: &str, usage: AddressUse) -> Option<Problem> {
    check_address(address, usage)
        .err()
        .map(|e| Problem::at(key, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_addresses_pass() {
        for a in [
            "0.0.0.0:5140",
            "127.0.0.1:0",
            "[::]:5140",
            "[::1]:65535",
            "localhost:80",
            "collector-1.example.com:6000",
            "my_service:9092",
        ] {
            assert_eq!(check_address(a, AddressUse::Listen), Ok(()), "{a}");
        }
        assert_eq!(check_address("host:1", AddressUse::Connect), Ok(()));
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let err = |a: &str, u| check_address(a, u).unwrap_err();
        let e = err("999.1.1.1:99999", AddressUse::Listen);
        assert!(e.contains("`999.1.1.1` is not an IPv4 address"), "{e}");
        let e = err("1.2.3.4:99999", AddressUse::Listen);
        assert!(
            e.contains("the port `99999` is not a number from 0 to 65535"),
            "{e}"
        );
        let e = err("host:0", AddressUse::Connect);
        assert!(e.contains("from 1 to 65535"), "{e}");
        for a in [
            "5140",
            ":5140",
            "host:",
            "host:-1",
            "host:+80",
            "host:0x50",
            "::1:80",
            "[::1:80",
            "[zz]:80",
            "[::1]80",
            "ho st:80",
            "a..b:80",
            "1.2.3:80",
            "",
        ] {
            assert!(check_address(a, AddressUse::Listen).is_err(), "{a}");
        }
        let p = address_problem("address", "nowhere", AddressUse::Listen).unwrap();
        assert_eq!(p.key.as_deref(), Some("address"));
    }
}
