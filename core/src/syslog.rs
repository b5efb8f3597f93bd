//! The syslog message formats, shared by the `syslog` network source and the
//! `parse_syslog` processor (so it lives here, where both can reach it):
//! pure functions, no I/O.
//!
//! [`parse`] reads an RFC 5424 message or an RFC 3164 ("BSD") one from an
//! event's body into fields: `facility`, `severity` (when a `<PRI>` opens the
//! message), `hostname`, `appname`, `procid`, `msgid` (5424), `version`
//! (5424), `structured_data` (5424: a map from SD-ID to a map of its
//! parameters) and `message`. The event's timestamp becomes the message's
//! own. Fields are zero-copy slices of the body; only escaped
//! structured-data values are copied.
//!
//! An RFC 3164 stamp (`Dec 10 06:55:46`) has no year and no zone: the year
//! is chosen by [`infer_year`] (the rule syslog daemons use: a month more
//! than one month ahead of now is last year's) and the zone is UTC. Lines
//! that daemons write to files (`/var/log/auth.log`) have no `<PRI>`; with
//! [`Options::require_pri`] off they are read too, and an RFC 3339 stamp may
//! stand where the BSD one would (`2026-12-03T07:51:25.123+01:00 host app:
//! msg`, the high-precision file format of rsyslog).

use crate::prelude::*;
use bytes::Bytes;
use chrono::{Datelike, NaiveDate};

/// How [`parse`] reads a message.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Refuse a message that does not open with `<PRI>` (network syslog
    /// always has one; lines of log files usually do not).
    pub require_pri: bool,
    /// The current year and month (1-12), for stamps without a year.
    pub now: (i32, u32),
}

impl Options {
    /// Options with the current year and month.
    pub fn now(require_pri: bool) -> Self {
        let t = chrono::Utc::now();
        Options {
            require_pri,
            now: (t.year(), t.month()),
        }
    }
}

/// The year of a stamp in `month` (1-12) that has none, seen at `now`
/// (year, month): the current year, except that a month more than one month
/// ahead belongs to last year (a December line read in January) and January
/// seen in December belongs to next year (a clock slightly ahead).
pub fn infer_year(month: u32, now: (i32, u32)) -> i32 {
    let (year, now_month) = now;
    let ahead = month as i32 - now_month as i32;
    if ahead > 1 {
        year - 1
    } else if ahead < -10 {
        year + 1
    } else {
        year
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

/// Parses the body of `event` as network syslog (a `<PRI>` required),
/// setting fields and the timestamp. `false` when it is neither RFC 5424 nor
/// RFC 3164; the event is then left as it was.
pub fn parse_syslog(event: &mut Event) -> bool {
    parse(event, &Options::now(true))
}

/// Parses the body of `event` as syslog, adding fields and setting the
/// timestamp. `false` when it is neither RFC 5424 nor RFC 3164: the event is
/// then left as it was (no field added, timestamp kept).
pub fn parse(event: &mut Event, opts: &Options) -> bool {
    let body = event.body.clone();
    let mut fields = Fields::new();
    match parse_bytes(&body, opts, &mut fields) {
        Some(t) => {
            event.timestamp = t.unwrap_or(event.timestamp);
            event.fields.extend(fields);
            true
        }
        None => false,
    }
}

/// Parses `text` as syslog into `fields` (which may be left partly filled
/// when it fails). `None` when it is neither RFC 5424 nor RFC 3164; else the
/// message's time, when it has one (RFC 5424 allows `-`).
pub fn parse_bytes(text: &Bytes, opts: &Options, fields: &mut Fields) -> Option<Option<Timestamp>> {
    let b = &text[..];
    let pri = if b.first() == Some(&b'<') {
        let close = b.iter().take(5).position(|c| *c == b'>')?;
        let pri = std::str::from_utf8(&b[1..close])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|p| *p < 192 && close > 1)?;
        Some((pri, close + 1))
    } else if opts.require_pri {
        return None;
    } else {
        None
    };
    let mut cur = Cur {
        body: text,
        pos: pri.map_or(0, |(_, start)| start),
    };
    if let Some((pri, _)) = pri {
        fields.insert("facility", Value::from(FACILITIES[pri / 8]));
        fields.insert("severity", Value::from(SEVERITIES[pri % 8]));
    }
    let mut timestamp = None;
    let ok = if cur.rest().starts_with(b"1 ") && pri.is_some() {
        cur.pos += 2;
        fields.insert("version", Value::Integer(1));
        parse_5424(&mut cur, &mut timestamp, fields)
    } else {
        parse_3164(&mut cur, &mut timestamp, fields, opts.now)
    };
    ok.then_some(timestamp)
}

fn nil_or(cur: &Cur, t: (usize, usize), name: &str, fields: &mut Fields) {
    if &cur.body[t.0..t.1] != b"-" {
        fields.insert(name, Value::String(cur.slice(t)));
    }
}

fn parse_5424(cur: &mut Cur, timestamp: &mut Option<Timestamp>, fields: &mut Fields) -> bool {
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
            Ok(t) => *timestamp = Some(Timestamp::from_datetime(&t)),
            Err(_) => return false,
        }
    }
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

/// `Mmm dd hh:mm:ss` (the day padded with a space or a zero): month, day,
/// hour, minute, second.
fn bsd_stamp(b: &[u8]) -> Option<(u32, u32, u32, u32, u32)> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let b = b.get(..15)?;
    let month = MONTHS.iter().position(|m| b[..3] == m[..])? as u32 + 1;
    let digit = |c: u8| c.is_ascii_digit().then(|| u32::from(c - b'0'));
    let two = |i: usize| Some(digit(b[i])? * 10 + digit(b[i + 1])?);
    let day = match b[4] {
        b' ' => digit(b[5])?,
        _ => two(4)?,
    };
    if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    Some((month, day, two(7)?, two(10)?, two(13)?))
}

fn parse_3164(
    cur: &mut Cur,
    timestamp: &mut Option<Timestamp>,
    fields: &mut Fields,
    now: (i32, u32),
) -> bool {
    let rest = cur.rest();
    if let Some((month, day, h, m, s)) = bsd_stamp(rest).filter(|_| rest.get(15) == Some(&b' ')) {
        let Some(t) = NaiveDate::from_ymd_opt(infer_year(month, now), month, day)
            .and_then(|d| d.and_hms_opt(h, m, s))
        else {
            return false;
        };
        *timestamp = Some(Timestamp::from_datetime(&t.and_utc()));
        cur.pos += 16;
    } else {
        // An RFC 3339 stamp, as rsyslog writes to files.
        let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let Some(t) = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        else {
            return false;
        };
        *timestamp = Some(Timestamp::from_datetime(&t));
        cur.pos = (cur.pos + end + 1).min(cur.body.len());
    }
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
    fn the_year_rolls_over_like_syslog_daemons() {
        assert_eq!(infer_year(12, (2027, 1)), 2026, "December read in January");
        assert_eq!(
            infer_year(2, (2027, 1)),
            2027,
            "one month ahead is this year"
        );
        assert_eq!(
            infer_year(3, (2027, 1)),
            2026,
            "two months ahead is last year"
        );
        assert_eq!(infer_year(6, (2026, 6)), 2026);
        assert_eq!(infer_year(1, (2026, 12)), 2027, "January seen in December");
        assert_eq!(infer_year(11, (2026, 12)), 2026);
    }

    #[test]
    fn lines_from_files_without_pri() {
        let opts = Options {
            require_pri: false,
            now: (2027, 1),
        };
        let mut e = Event::new(
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
            Timestamp(0),
        );
        assert!(parse(&mut e, &opts));
        assert_eq!(e.timestamp.to_string(), "2026-12-10T06:55:46.000000Z");
        assert_eq!(s(&e, "hostname"), "LabSZ");
        assert_eq!(s(&e, "appname"), "sshd");
        assert_eq!(s(&e, "procid"), "24200");
        assert_eq!(
            s(&e, "message"),
            "Invalid user webmaster from 173.234.31.186"
        );
        assert!(e.get("facility").is_none());
        let mut e = Event::new(
            "2026-12-03T07:51:25.250+01:00 web-1 CRON[77]: (root) CMD (true)",
            Timestamp(0),
        );
        assert!(parse(&mut e, &opts));
        assert_eq!(e.timestamp.to_string(), "2026-12-03T06:51:25.250000Z");
        assert_eq!(s(&e, "appname"), "CRON");
        assert_eq!(s(&e, "message"), "(root) CMD (true)");
        for bad in [
            "hello world",
            "Dec 99 06:55:46 h a: m",
            "Feb 30 06:55:46 h a: m",
            "Dez 10 06:55:46 h a: m",
            "",
        ] {
            let mut e = Event::new(bad, Timestamp(5));
            e.insert("kept", 1i64);
            assert!(!parse(&mut e, &opts), "{bad}");
            assert_eq!(e.fields.len(), 1, "{bad}");
            assert_eq!(e.timestamp, Timestamp(5), "{bad}");
        }
        let strict = Options {
            require_pri: true,
            ..opts
        };
        let mut e = Event::new("Dec 10 06:55:46 LabSZ sshd[1]: x", Timestamp(0));
        assert!(!parse(&mut e, &strict));
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
        let e = parsed("<13>Feb  6 04:43:11 host cron: job done");
        assert!(e.timestamp.to_string().contains("-02-06T04:43:11"));
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
