//! `host`: adds the machine's host name to every event.
//!
//! The name is read once, when the processor is built (`gethostname(2)`, or
//! the `HOSTNAME` environment variable if that fails); every event then gets
//! a clone of one shared string value (a reference-count bump, no copy).

use bytes::Bytes;
use serde::Deserialize;
use sluice_core::prelude::*;

/// Options of the `host` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field (dotted path) that receives the host name.
    #[serde(default = "default_field")]
    pub field: String,
}

fn default_field() -> String {
    "host".to_string()
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        crate::check_path("field", &self.field)
            .into_iter()
            .collect()
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        let name = hostname()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .ok_or_else(|| {
                BuildError::Other(
                    "cannot find the host name: gethostname failed and HOSTNAME is not set".into(),
                )
            })?;
        Ok(Box::new(HostProcessor {
            field: self.field.clone(),
            value: Value::String(Bytes::from(name)),
        }))
    }
}

/// The host name from `gethostname(2)`, if it works and is UTF-8.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call;
    // gethostname writes at most `len` bytes into it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..len]).ok()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// The `host` processor.
struct HostProcessor {
    field: String,
    value: Value,
}

impl Processor for HostProcessor {
    fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
        for e in &mut batch.events {
            e.insert(&self.field, self.value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config("{}");
        assert_eq!(c.field, "host");
        let c: Config = config("field: agent.host");
        assert!(c.validate().is_empty());
        assert!(!examples::<Config>("host").is_empty());
        let e = unknown_key::<Config>("name: x");
        assert!(e.contains("unknown option `name`"), "{e}");
        let c: Config = config("field: 'a.'");
        assert_eq!(c.validate().len(), 1);
    }

    #[test]
    fn adds_the_host_name_to_every_event() {
        let mut p = build::<Config>("field: agent.host");
        let mut b = batch(&["a", "b"]);
        assert!(run(p.as_mut(), &mut b).is_empty());
        let want = hostname().unwrap_or_default();
        for e in &b.events {
            let got = e
                .get("agent.host")
                .and_then(Value::as_str)
                .unwrap_or_default();
            assert!(!got.is_empty());
            if !want.is_empty() {
                assert_eq!(got, want);
            }
        }
        // The events share one buffer.
        let ptr = |i: usize| {
            b.events[i]
                .get("agent.host")
                .and_then(Value::as_bytes)
                .map(<[u8]>::as_ptr)
        };
        assert_eq!(ptr(0), ptr(1));
    }
}
