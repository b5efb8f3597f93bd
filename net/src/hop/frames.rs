//! The sender's side of the hop's limits: which events a receiver would
//! refuse whatever the retries, and how the rest of a batch is cut into
//! frames that fit the receiver's `max_frame_bytes`.
//!
//! A receiver closes the connection on a frame it cannot take (larger than
//! its limit, or malformed), and the sender cannot tell that from a network
//! failure. Sent again, the same frame is refused again, forever. So the
//! sender checks before sending:
//!
//! * an event whose encoding could not be decoded (a field name longer than
//!   64 KiB, which the `u16` length cannot carry; a body, string or list
//!   past 4 GiB; fields nested deeper than [`MAX_DEPTH`]) or that alone
//!   would not fit in one frame is rejected;
//! * the others are cut, in order, into frames of at most `max_frame`
//!   payload bytes.
//!
//! The sizes computed here mirror [`proto::encode_batch`]; a unit test
//! checks that they match.

use sluice_core::prelude::*;

#[cfg(doc)]
use super::proto;

/// The deepest nesting a receiver decodes (`proto`'s limit): fields inside
/// maps and lists below the event's top-level fields.
pub const MAX_DEPTH: usize = 64;

/// A frame's payload besides its events: `SEQ:u64 COUNT:u32`.
const FRAME_OVERHEAD: usize = 12;

/// How a batch is sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Events a receiver would refuse, by index, with the reason.
    pub rejected: Vec<(usize, String)>,
    /// The frames: each a run of event indices, in batch order.
    pub frames: Vec<Vec<usize>>,
}

impl Plan {
    /// Whether the batch goes whole as one frame (nothing rejected, nothing
    /// split): it can then be encoded as it is.
    pub fn is_whole(&self, batch: &Batch) -> bool {
        self.rejected.is_empty() && self.frames.len() == 1 && self.frames[0].len() == batch.len()
    }
}

/// Checks every event of `batch` and cuts the rest into frames whose
/// payload is at most `max_frame` bytes.
pub fn plan(batch: &Batch, max_frame: usize) -> Plan {
    let mut plan = Plan::default();
    let mut current: Vec<usize> = Vec::new();
    let mut size = FRAME_OVERHEAD;
    for (i, e) in batch.iter().enumerate() {
        let len = match event_len(e) {
            Ok(len) => len,
            Err(why) => {
                plan.rejected.push((i, why));
                continue;
            }
        };
        if FRAME_OVERHEAD + len > max_frame {
            plan.rejected.push((
                i,
                format!(
                    "the event takes {len} bytes in a hop frame, more than `max_frame_bytes` ({max_frame})"
                ),
            ));
            continue;
        }
        if size + len > max_frame && !current.is_empty() {
            plan.frames.push(std::mem::take(&mut current));
            size = FRAME_OVERHEAD;
        }
        size += len;
        current.push(i);
    }
    if !current.is_empty() {
        plan.frames.push(current);
    }
    plan
}

/// The bytes `e` takes in a frame, or why a receiver could not decode it.
fn event_len(e: &Event) -> Result<usize, String> {
    let body = checked_u32(e.body.len(), "the body")?;
    Ok(8 + 4 + body + fields_len(&e.fields, 0)?)
}

fn fields_len(f: &Fields, depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "fields nested deeper than {MAX_DEPTH} levels cannot cross the hop"
        ));
    }
    checked_u32(f.len(), "a map")?;
    let mut len = 4;
    for (k, v) in f.iter() {
        if k.len() > usize::from(u16::MAX) {
            return Err(format!(
                "a field name of {} bytes cannot cross the hop (at most {})",
                k.len(),
                u16::MAX
            ));
        }
        len += 2 + k.len() + value_len(v, depth)?;
    }
    Ok(len)
}

fn value_len(v: &Value, depth: usize) -> Result<usize, String> {
    Ok(match v {
        Value::Null | Value::Bool(_) => 1,
        Value::Integer(_) | Value::Float(_) | Value::Timestamp(_) => 9,
        Value::String(s) => 1 + 4 + checked_u32(s.len(), "a string")?,
        Value::Array(a) => {
            if depth > MAX_DEPTH {
                return Err(format!(
                    "values nested deeper than {MAX_DEPTH} levels cannot cross the hop"
                ));
            }
            checked_u32(a.len(), "a list")?;
            let mut len = 1 + 4;
            for x in a {
                len += value_len(x, depth + 1)?;
            }
            len
        }
        Value::Map(m) => 1 + fields_len(m, depth + 1)?,
    })
}

fn checked_u32(n: usize, what: &str) -> Result<usize, String> {
    if u32::try_from(n).is_err() {
        return Err(format!("{what} of {n} bytes or items cannot cross the hop"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::proto;
    use super::*;
    use bytes::BytesMut;

    fn nested(depth: usize) -> Event {
        let mut v = Value::from("leaf");
        for i in 0..depth {
            v = if i % 2 == 0 {
                let mut m = Fields::new();
                m.insert("k", v);
                Value::Map(m)
            } else {
                Value::Array(vec![v])
            };
        }
        let mut e = Event::new("deep", Timestamp(1));
        e.fields.insert("top", v);
        e
    }

    fn encoded(batch: &Batch) -> bytes::Bytes {
        let mut out = BytesMut::new();
        proto::encode_batch(&mut out, 1, batch);
        out.freeze().slice(5..)
    }

    #[test]
    fn sizes_match_the_encoding() {
        let mut e = Event::new("hello", Timestamp(3));
        e.insert("s", "text");
        e.insert("i", 1i64);
        e.insert("f", 0.5f64);
        e.insert("b", false);
        e.insert("t", Timestamp(9));
        e.fields.insert("n", Value::Null);
        e.fields
            .insert("a", Value::Array(vec![Value::from("x"), Value::Integer(2)]));
        e.insert("m.inner", "deep");
        for batch in [
            Batch::from(vec![e.clone()]),
            Batch::from(vec![e.clone(), Event::new("", Timestamp(0)), nested(10)]),
        ] {
            let want = encoded(&batch).len();
            let got: usize = batch.iter().map(|e| event_len(e).unwrap()).sum();
            assert_eq!(got + FRAME_OVERHEAD, want);
        }
    }

    #[test]
    fn what_the_receiver_would_refuse_is_rejected_and_the_rest_decodes() {
        // The deepest nesting accepted here decodes; one level more is
        // refused here, as the receiver would.
        let mut deepest = 0;
        for depth in 0..200 {
            let batch = Batch::from(vec![nested(depth)]);
            let p = plan(&batch, 1 << 20);
            let decodes = proto::decode_batch(encoded(&batch), usize::MAX).is_ok();
            assert_eq!(p.rejected.is_empty(), decodes, "depth {depth}");
            if decodes {
                deepest = depth;
            }
        }
        // Both sides of the limit were tried.
        assert!((MAX_DEPTH..199).contains(&deepest), "{deepest}");
        let mut long = Event::new("x", Timestamp(0));
        long.insert("k".repeat(70_000).as_str(), "v");
        let batch = Batch::from(vec![Event::new("a", Timestamp(0)), long]);
        let p = plan(&batch, 1 << 20);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].0, 1);
        assert_eq!(p.frames, [vec![0]]);
    }

    #[test]
    fn batches_are_cut_into_frames_under_the_limit_in_order() {
        let events: Vec<Event> = (0..100)
            .map(|i| Event::new("x".repeat(100 + i), Timestamp(i as i64)))
            .chain([Event::new("y".repeat(5000), Timestamp(0))])
            .collect();
        let batch = Batch::from(events);
        let max = 1024;
        let p = plan(&batch, max);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].0, 100);
        let flat: Vec<usize> = p.frames.iter().flatten().copied().collect();
        assert_eq!(flat, (0..100).collect::<Vec<_>>());
        for f in &p.frames {
            let part = Batch::from(
                f.iter()
                    .map(|&i| batch.events[i].clone())
                    .collect::<Vec<_>>(),
            );
            let len = encoded(&part).len();
            assert!(len <= max, "{len}");
        }
        assert!(!p.is_whole(&batch));
        let small = Batch::from(batch.events[..3].to_vec());
        assert!(plan(&small, max).is_whole(&small));
    }
}
