//! `parse_syslog`: reads RFC 3164 and RFC 5424 syslog lines, such as those
//! of `/var/log/auth.log`, into fields, with the `syslog` source's own parser
//! ([`crate::syslog`]).
//!
//! The fields are zero-copy slices of the text; the event timestamp becomes
//! the message's (unless `set_timestamp: false`). A line that is neither
//! format fails the event and adds nothing.

use bytes::Bytes;
use serde::Deserialize;
use sluice_core::prelude::*;

use sluice_core::syslog::{parse_bytes, Options};

/// Options of the `parse_syslog` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field (dotted path) to parse; the body when unset.
    #[serde(default)]
    pub field: Option<String>,
    /// Put the fields in a map under this field (dotted path) instead of at
    /// the top level.
    #[serde(default)]
    pub target: Option<String>,
    /// Fail lines that do not open with `<PRI>` (as network syslog does);
    /// lines written to files usually have none.
    #[serde(default)]
    pub require_pri: bool,
    /// Set the event timestamp to the message's time.
    #[serde(default = "yes")]
    pub set_timestamp: bool,
}

fn yes() -> bool {
    true
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        [("field", &self.field), ("target", &self.target)]
            .into_iter()
            .filter_map(|(key, path)| path.as_deref().and_then(|p| crate::check_path(key, p)))
            .collect()
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(ParseSyslog {
            field: self.field.clone(),
            target: self.target.clone(),
            require_pri: self.require_pri,
            set_timestamp: self.set_timestamp,
        }))
    }
}

/// The `parse_syslog` processor.
struct ParseSyslog {
    field: Option<String>,
    target: Option<String>,
    require_pri: bool,
    set_timestamp: bool,
}

impl Processor for ParseSyslog {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        // One clock read per batch, for stamps without a year.
        let opts = Options::now(self.require_pri);
        for (i, e) in batch.events.iter_mut().enumerate() {
            let text: Bytes = match &self.field {
                None => e.body.clone(),
                Some(f) => match e.get(f) {
                    Some(Value::String(b)) => b.clone(),
                    Some(other) => {
                        cx.fail(i, format!("field `{f}` holds a {}, not text", other.kind()));
                        continue;
                    }
                    None => {
                        cx.fail(i, format!("field `{f}` is missing"));
                        continue;
                    }
                },
            };
            let mut fields = Fields::new();
            let Some(time) = parse_bytes(&text, &opts, &mut fields) else {
                cx.fail(
                    i,
                    if self.require_pri && text.first() != Some(&b'<') {
                        "not a syslog message: no <PRI> at the start"
                    } else {
                        "not an RFC 3164 or RFC 5424 syslog message"
                    },
                );
                continue;
            };
            if let Some(t) = time.filter(|_| self.set_timestamp) {
                e.timestamp = t;
            }
            match &self.target {
                Some(t) => e.insert(t, Value::Map(fields)),
                None => e.fields.extend(fields),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config("field: line\ntarget: syslog\nrequire_pri: true");
        assert!(c.validate().is_empty());
        assert!(c.set_timestamp);
        assert!(!examples::<Config>("parse_syslog").is_empty());
        let e = unknown_key::<Config>("require_prio: true");
        assert!(e.contains("did you mean `require_pri`"), "{e}");
        let c: Config = config("target: 'a..b'");
        assert_eq!(c.validate().len(), 1);
    }

    #[test]
    fn reads_auth_log_lines_and_fails_the_rest() {
        let mut p = build::<Config>("{}");
        let mut b = batch(&[
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
            "not syslog at all",
            "<86>1 2026-12-03T07:51:25Z host su - - - root login",
        ]);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, 1);
        assert!(f[0].1.contains("RFC 3164"), "{f:?}");
        let e = &b.events[0];
        assert_eq!(e.get("appname").and_then(Value::as_str), Some("sshd"));
        assert_eq!(e.get("procid").and_then(Value::as_str), Some("24200"));
        assert!(e.timestamp.to_string().contains("-12-10T06:55:46"));
        assert!(b.events[1].fields.is_empty());
        assert_eq!(b.events[1].timestamp, Timestamp(0));
        assert_eq!(
            b.events[2].get("severity").and_then(Value::as_str),
            Some("info")
        );
        assert_eq!(
            b.events[2].timestamp.to_string(),
            "2026-12-03T07:51:25.000000Z"
        );
    }

    #[test]
    fn field_target_and_options() {
        let mut p =
            build::<Config>("field: line\ntarget: sys\nrequire_pri: true\nset_timestamp: false");
        let mut b = batch(&["a", "b", "c"]);
        b.events[0].insert("line", "<13>Feb  6 04:43:11 host cron: job done");
        b.events[1].insert("line", "Feb  6 04:43:11 host cron: job done");
        b.events[2].insert("line", 5i64);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(f.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
        assert!(f[0].1.contains("no <PRI>"), "{f:?}");
        assert!(f[1].1.contains("integer"), "{f:?}");
        assert_eq!(b.events[0].timestamp, Timestamp(0));
        assert_eq!(
            b.events[0].get("sys.message").and_then(Value::as_str),
            Some("job done")
        );
        assert_eq!(
            b.events[0].get("sys.facility").and_then(Value::as_str),
            Some("user")
        );
    }
}
