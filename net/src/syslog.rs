//! The `syslog` source: RFC 3164 and RFC 5424 messages over TCP (framed by
//! lines or by octet counting, RFC 6587) or UDP (one message a datagram).
//!
//! The header parts become fields: `facility`, `severity`, `hostname`,
//! `appname`, `procid`, `msgid` (5424), `version` (5424),
//! `structured_data` (5424: a map from SD-ID to a map of its parameters)
//! and `message`. The event's timestamp is the message's own when it has a
//! valid one (RFC 3164 stamps have no year: the current year is assumed,
//! and no zone: UTC). Fields are zero-copy slices of the body. A message
//! that is neither format keeps its body, gets no fields, and is counted as
//! an error.
//!
//! ```yaml
//! sources:
//!   syslog:
//!     type: syslog
//!     mode: udp
//!     address: 0.0.0.0:5514
//!     channels: [main]
//! ```

use std::num::NonZeroUsize;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{Datelike, NaiveDateTime};
use serde::Deserialize;
use sluice_core::config::{address_problem, AddressUse};
use sluice_core::prelude::*;

use crate::conn::{default_idle_timeout, default_max_connections, timeout_problem};
use crate::framing::Framing;
use crate::listen::{DatagramServer, Decoder, StreamServer};
use crate::secure::{bind, TlsConfig};
use crate::tcp::{default_batch_size, default_max_line_bytes};

/// The transport.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// TCP, optionally with TLS.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// The `syslog` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on.
    pub address: String,
    /// `tcp` or `udp`.
    #[serde(default)]
    pub mode: Mode,
    /// TCP framing: `auto` (octet counted when a message starts with a
    /// digit, else lines), `newline` or `octet_counted`.
    #[serde(default = "auto")]
    pub framing: Framing,
    /// The longest message kept; longer ones are counted and skipped.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// Events per batch at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: NonZeroUsize,
    /// TLS for TCP.
    pub tls: Option<TlsConfig>,
    /// TCP: connections open at most; more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    /// TCP: a connection that sends nothing for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: sluice_core::config::Duration,
}

fn auto() -> Framing {
    Framing::Auto
}

impl SourceConfig for Config {
    /// The port it listens on (see the `tcp` source).
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        let port = match self.mode {
            Mode::Tcp => Resource::tcp(&self.address),
            Mode::Udp => Resource::udp(&self.address),
        };
        port.into_iter().collect()
    }
    fn validate(&self) -> Vec<Problem> {
        let mut p: Vec<Problem> = address_problem("address", &self.address, AddressUse::Listen)
            .into_iter()
            .collect();
        if self.max_line_bytes.0 == 0 {
            p.push(Problem::at("max_line_bytes", "must be at least 1 byte"));
        }
        if let Some(tls) = &self.tls {
            if self.mode == Mode::Udp {
                p.push(Problem::at("tls", "TLS applies to `mode: tcp` only"));
            }
            p.extend(tls.server_problems());
        }
        p.extend(timeout_problem("idle_timeout", self.idle_timeout.get()));
        p
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let max = usize::try_from(self.max_line_bytes.0).unwrap_or(usize::MAX);
        Ok(match self.mode {
            Mode::Tcp => Box::new(crate::tcp::TcpSource(StreamServer {
                listener: bind(&self.address)?,
                tls: self.tls.as_ref().map(TlsConfig::acceptor).transpose()?,
                framing: self.framing,
                max_line_bytes: max,
                batch_size: self.batch_size.get(),
                decoder: Decoder::Syslog,
                max_connections: self.max_connections.get(),
                idle_timeout: self.idle_timeout.get(),
            })),
            Mode::Udp => Box::new(UdpSyslog(DatagramServer {
                socket: crate::udp::bind_udp(&self.address)?,
                max_line_bytes: max,
                batch_size: self.batch_size.get(),
                decoder: Decoder::Syslog,
            })),
        })
    }
}

struct UdpSyslog(DatagramServer);

#[async_trait]
impl Source for UdpSyslog {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), ComponentError> {
        self.0.run(cx).await
    }
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A cursor over the body.
struct Cur<'a> {
    body: &'a Bytes,
    pos: usize,
}

impl Cur<'_> {
    fn rest(&self) -> &[u8] {
        &self.body[self.pos..]
    }
    /// The next space-separated token.
    fn token(&mut self) -> Option<(usize, usize)> {
        let rest = self.rest();
        if rest.is_empty() {
            return None;
        }
        let len = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let t = (self.pos, self.pos + len);
        self.pos = (self.pos + len + 1).min(self.body.len());
        Some(t)
    }
    fn slice(&self, (a, b): (usize, usize)) -> Bytes {
        self.body.slice(a..b)
    }
}

/// Parses the body of `event` as syslog, setting fields and the
/// timestamp. `false` when it is neither RFC 5424 nor RFC 3164.
pub fn parse_syslog(event: &mut Event) -> bool {
    let body = event.body.clone();
    let b = &body[..];
    if b.first() != Some(&b'<') {
        return false;
    }
    let Some(close) = b.iter().take(5).position(|c| *c == b'>') else {
        return false;
    };
    let Some(pri) = std::str::from_utf8(&b[1..close])
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|p| *p < 192 && close > 1)
    else {
        return false;
    };
    let mut cur = Cur {
        body: &body,
        pos: close + 1,
    };
    let fields = &mut event.fields;
    fields.insert("facility", Value::from(FACILITIES[pri / 8]));
    fields.insert("severity", Value::from(SEVERITIES[pri % 8]));
    let ok = if cur.rest().starts_with(b"1 ") {
        cur.pos += 2;
        fields.insert("version", Value::Integer(1));
        parse_5424(&mut cur, event)
    } else {
        parse_3164(&mut cur, event)
    };
    if !ok {
        event.fields = Fields::new();
    }
    ok
}

fn nil_or(cur: &Cur, t: (usize, usize), name: &str, fields: &mut Fields) {
    if &cur.body[t.0..t.1] != b"-" {
        fields.insert(name, Value::String(cur.slice(t)));
    }
}

fn parse_5424(cur: &mut Cur, event: &mut Event) -> bool {
    let (Some(ts), Some(host), Some(app), Some(proc_id), Some(msgid)) = (
        cur.token(),
        cur.token(),
        cur.token(),
        cur.token(),
        cur.token(),
    ) else {
        return false;
    };
    let ts_text = std::str::from_utf8(&cur.body[ts.0..ts.1]).unwrap_or("-");
    if ts_text != "-" {
        match chrono::DateTime::parse_from_rfc3339(ts_text) {
            Ok(t) => event.timestamp = Timestamp::from_datetime(&t),
            Err(_) => return false,
        }
    }
    let fields = &mut event.fields;
    nil_or(cur, host, "hostname", fields);
    nil_or(cur, app, "appname", fields);
    nil_or(cur, proc_id, "procid", fields);
    nil_or(cur, msgid, "msgid", fields);
    // STRUCTURED-DATA: `-` or one or more `[ID k="v" ...]`.
    let rest = cur.rest();
    if rest.first() == Some(&b'-') {
        cur.pos += 1;
    } else if rest.first() == Some(&b'[') {
        let mut sd = Fields::new();
        while cur.rest().first() == Some(&b'[') {
            let Some(len) = sd_element(cur, &mut sd) else {
                return false;
            };
            cur.pos += len;
        }
        fields.insert("structured_data", Value::Map(sd));
    } else if !rest.is_empty() {
        return false;
    }
    if cur.rest().first() == Some(&b' ') {
        cur.pos += 1;
    }
    let mut msg = cur.rest();
    let mut start = cur.pos;
    // A UTF-8 byte order mark may open the message.
    if msg.starts_with(b"\xEF\xBB\xBF") {
        start += 3;
        msg = &msg[3..];
    }
    if !msg.is_empty() {
        fields.insert("message", Value::String(cur.body.slice(start..)));
    }
    true
}

/// Parses one `[ID k="v" ...]` at the cursor into `sd`; its length.
fn sd_element(cur: &Cur, sd: &mut Fields) -> Option<usize> {
    let b = cur.rest();
    let base = cur.pos;
    let id_end = b.iter().position(|c| *c == b' ' || *c == b']')?;
    let id = std::str::from_utf8(b.get(1..id_end)?).ok()?.to_string();
    let mut i = id_end;
    let mut params = Fields::new();
    loop {
        match b.get(i)? {
            b']' => {
                sd.insert(id, Value::Map(params));
                return Some(i + 1);
            }
            b' ' => i += 1,
            _ => {
                let eq = i + b[i..].iter().position(|c| *c == b'=')?;
                let name = std::str::from_utf8(&b[i..eq]).ok()?.to_string();
                if b.get(eq + 1) != Some(&b'"') {
                    return None;
                }
                // The value ends at the first `"` not escaped by `\`.
                let mut j = eq + 2;
                let mut escaped = false;
                loop {
                    match b.get(j)? {
                        b'\\' if !escaped => escaped = true,
                        b'"' if !escaped => break,
                        _ => escaped = false,
                    }
                    j += 1;
                }
                let raw = &b[eq + 2..j];
                let value = if raw.contains(&b'\\') {
                    let mut v = Vec::with_capacity(raw.len());
                    let mut k = 0;
                    while k < raw.len() {
                        if raw[k] == b'\\' && matches!(raw.get(k + 1), Some(b'"' | b'\\' | b']')) {
                            k += 1;
                        }
                        v.push(raw[k]);
                        k += 1;
                    }
                    Bytes::from(v)
                } else {
                    cur.body.slice(base + eq + 2..base + j)
                };
                params.insert(name, Value::String(value));
                i = j + 1;
            }
        }
    }
}

fn parse_3164(cur: &mut Cur, event: &mut Event) -> bool {
    // `Mmm dd hh:mm:ss` (the day padded with a space when < 10).
    let rest = cur.rest();
    if rest.len() >= 16 && rest[15] == b' ' {
        let stamp = std::str::from_utf8(&rest[..15]).unwrap_or("");
        let year = chrono::Utc::now().year();
        let with_year = format!("{year} {}", stamp.replace("  ", " "));
        if let Ok(t) = NaiveDateTime::parse_from_str(&with_year, "%Y %b %d %H:%M:%S") {
            event.timestamp = Timestamp::from_datetime(&t.and_utc());
            cur.pos += 16;
        } else {
            return false;
        }
    } else {
        return false;
    }
    let fields = &mut event.fields;
    let Some(host) = cur.token() else {
        return true;
    };
    fields.insert("hostname", Value::String(cur.slice(host)));
    // TAG: up to `[`, `:` or a space; `[PID]` then `:`.
    let rest = cur.rest();
    let tag_end = rest
        .iter()
        .position(|c| matches!(c, b'[' | b':' | b' '))
        .unwrap_or(rest.len());
    let mut msg_start = cur.pos;
    if tag_end > 0 && tag_end < rest.len() && matches!(rest[tag_end], b'[' | b':') {
        fields.insert(
            "appname",
            Value::String(cur.body.slice(cur.pos..cur.pos + tag_end)),
        );
        let mut i = tag_end;
        if rest[i] == b'[' {
            if let Some(close) = rest[i..].iter().position(|c| *c == b']') {
                fields.insert(
                    "procid",
                    Value::String(cur.body.slice(cur.pos + i + 1..cur.pos + i + close)),
                );
                i += close + 1;
            }
        }
        if rest.get(i) == Some(&b':') {
            i += 1;
        }
        if rest.get(i) == Some(&b' ') {
            i += 1;
        }
        msg_start = cur.pos + i;
    }
    if msg_start < cur.body.len() {
        fields.insert("message", Value::String(cur.body.slice(msg_start..)));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Event {
        let mut e = Event::new(line.to_string(), Timestamp(0));
        assert!(parse_syslog(&mut e), "{line}");
        e
    }

    fn s(e: &Event, k: &str) -> String {
        e.get(k)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let e = parsed(
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high\"x"] An application event"#,
        );
        assert_eq!(s(&e, "facility"), "local4");
        assert_eq!(s(&e, "severity"), "notice");
        assert_eq!(s(&e, "hostname"), "mymachine.example.com");
        assert_eq!(s(&e, "appname"), "evntslog");
        assert!(e.get("procid").is_none());
        assert_eq!(s(&e, "msgid"), "ID47");
        assert_eq!(s(&e, "message"), "An application event");
        assert_eq!(s(&e, "structured_data.exampleSDID@32473.eventID"), "1011");
        assert_eq!(
            s(&e, "structured_data.examplePriority@32473.class"),
            "high\"x"
        );
        assert_eq!(e.timestamp.to_string(), "2003-10-11T22:14:15.003000Z");
        let e = parsed("<34>1 2003-10-11T22:14:15.003Z - su 77 - - \u{feff}'su root' failed");
        assert_eq!(s(&e, "procid"), "77");
        assert_eq!(s(&e, "message"), "'su root' failed");
    }

    #[test]
    fn rfc3164() {
        let e = parsed("<34>Oct  1 22:14:15 mymachine su[230]: 'su root' failed for lonvick");
        assert_eq!(s(&e, "facility"), "auth");
        assert_eq!(s(&e, "severity"), "crit");
        assert_eq!(s(&e, "hostname"), "mymachine");
        assert_eq!(s(&e, "appname"), "su");
        assert_eq!(s(&e, "procid"), "230");
        assert_eq!(s(&e, "message"), "'su root' failed for lonvick");
        assert!(e.timestamp.to_string().contains("-10-01T22:14:15"));
        let e = parsed("<13>Feb 26 04:43:11 host cron: job done");
        assert_eq!(s(&e, "appname"), "cron");
        assert_eq!(s(&e, "message"), "job done");
        let mut bad = Event::new("hello", Timestamp(0));
        assert!(!parse_syslog(&mut bad));
        assert!(bad.fields.is_empty());
        let mut bad = Event::new("<999>x", Timestamp(0));
        assert!(!parse_syslog(&mut bad));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Bytes that look like syslog often enough to reach every branch.
    fn syslogish() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"<34>".to_vec()),
            Just(b"<165>1 ".to_vec()),
            Just(b"<".to_vec()),
            Just(b">".to_vec()),
            Just(b"- ".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]".to_vec()),
            Just(b"=\"".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"\"".to_vec()),
            Just(b" ".to_vec()),
            Just(b"2003-10-11T22:14:15.003Z ".to_vec()),
            Just(b"Oct 11 22:14:15 ".to_vec()),
            Just(b"host app[1]: ".to_vec()),
            Just("\u{feff}".as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ];
        prop::collection::vec(piece, 0..20).prop_map(|p| p.concat())
    }

    fn parses_or_leaves_no_fields(bytes: Vec<u8>) {
        let mut e = Event::new(bytes, Timestamp(7));
        if !parse_syslog(&mut e) {
            assert!(e.fields.is_empty());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            parses_or_leaves_no_fields(bytes);
        }

        #[test]
        fn syslog_like_bytes_never_panic(bytes in syslogish()) {
            parses_or_leaves_no_fields(bytes);
        }
    }
}
