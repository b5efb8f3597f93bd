//! The sender's side of the hop's limits: which events a receiver would
//! refuse whatever the retries, and how the rest of a batch is cut into
//! frames that fit the receiver's `max_frame_bytes`.
//!
//! A receiver closes the connection on a frame it cannot take (larger than
//! its limit, or malformed), and the sender cannot tell that from a network
//! failure. Sent again, the same frame is refused again, forever. So the
//! sender checks before sending:
//!
//! * an event nested deeper than the wire format's [`MAX_DEPTH`], or that
//!   alone would not fit in one frame, is rejected;
//! * the others are cut, in order, into frames of at most `max_frame`
//!   payload bytes.
//!
//! An event's size is [`wire::encoded_len_bound`]: exact but for its
//! timestamp, counted at its largest, so a frame may come out a little
//! smaller than planned, never larger. A unit test checks it.

use sluice_core::prelude::*;
use sluice_core::wire;

/// The deepest nesting a receiver decodes: fields inside maps and lists
/// below the event's top-level fields.
pub use sluice_core::wire::MAX_DEPTH;

/// A frame's payload besides its events: `SEQ:u64 COUNT:u32` and the wire
/// format's version byte.
const FRAME_OVERHEAD: usize = 12 + wire::VERSION_LEN;

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

/// At least the bytes `e` takes in a frame, or why a receiver could not
/// decode it.
fn event_len(e: &Event) -> Result<usize, String> {
    wire::encoded_len_bound(e).map_err(|why| format!("{why}: it cannot cross the hop"))
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
    fn sizes_bound_the_encoding() {
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
            let real = encoded(&batch).len();
            let bound: usize = batch.iter().map(|e| event_len(e).unwrap()).sum();
            // At most 9 bytes more an event: the timestamp delta's varint
            // counted at its largest (10 bytes), at least 1.
            assert!(bound + FRAME_OVERHEAD >= real, "{bound} {real}");
            assert!(
                bound + FRAME_OVERHEAD <= real + 9 * batch.len(),
                "{bound} {real}"
            );
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
        let batch = Batch::from(vec![Event::new("a", Timestamp(0)), long, nested(200)]);
        let p = plan(&batch, 1 << 20);
        // A long field name is no limit of the wire format.
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].0, 2);
        assert!(
            p.rejected[0].1.contains("cannot cross the hop"),
            "{}",
            p.rejected[0].1
        );
        assert_eq!(p.frames, [vec![0, 1]]);
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
