//! The hop's wire format: length-prefixed frames over TCP (or TLS).
//!
//! Every frame is `LEN:u32 KIND:u8 PAYLOAD`, big-endian, where `LEN` counts
//! `KIND` and `PAYLOAD`. See `docs/network.md` for the whole protocol.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sluice_core::prelude::*;
use sluice_core::wire;
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use super::frame::{read_budgeted, read_frame, Budget, Frame, FrameError};

/// Protocol version sent in `HELLO`. 2: events in the shared wire format
/// (version byte first); 1 had its own encoding, and a receiver refuses it
/// in the hello rather than misreading its batches.
pub const VERSION: u16 = 2;

/// Client → server, first frame: `VERSION:u16 TOKEN_LEN:u16 TOKEN`.
pub const HELLO: u8 = 1;
/// Server → client: the hello is accepted.
pub const WELCOME: u8 = 2;
/// Server → client, then close: `CODE:u16 MESSAGE` (401: bad token, 400:
/// bad hello or version).
pub const REFUSED: u8 = 3;
/// Client → server: `SEQ:u64 COUNT:u32 EVENTS` (the wire format, see
/// [`encode_batch`]).
pub const BATCH: u8 = 16;
/// Server → client: `SEQ:u64`, the batch is in the receiver's channels.
pub const ACK: u8 = 17;
/// Server → client: `SEQ:u64 MESSAGE`, the batch was not taken; resend.
pub const NACK: u8 = 18;
/// Server → client: `SEQ:u64 MSG_LEN:u16 MESSAGE COUNT:u32 INDEX:u32*`,
/// the batch is in the receiver's channels except the events at these
/// indexes, which it refuses for good (`MESSAGE` says why): do not resend
/// them.
pub const REJECT: u8 = 19;

/// A malformed frame.
#[derive(Debug, thiserror::Error)]
#[error("malformed hop frame: {0}")]
pub struct Malformed(pub &'static str);

/// Writes a frame header into `out` (to be patched with [`finish`]).
pub fn begin(out: &mut BytesMut, kind: u8) -> usize {
    let at = out.len();
    out.put_u32(0);
    out.put_u8(kind);
    at
}

/// Patches the length of the frame begun at `at`.
pub fn finish(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes a small control frame.
pub async fn write_control<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    let at = begin(&mut out, kind);
    out.put_slice(payload);
    finish(&mut out, at);
    w.write_all(&out).await?;
    w.flush().await
}

/// Appends a `BATCH` frame: `SEQ:u64 COUNT:u32` and the events in the
/// shared wire format ([`sluice_core::wire`], version byte first).
pub fn encode_batch(out: &mut BytesMut, seq: u64, batch: &Batch) {
    let at = begin(out, BATCH);
    out.put_u64(seq);
    out.put_u32(batch.len() as u32);
    wire::encode_events(batch.iter(), out);
    finish(out, at);
}

/// A decoded `BATCH` payload.
#[derive(Debug)]
pub struct Decoded {
    /// The batch's sequence number.
    pub seq: u64,
    /// The events taken, in order.
    pub batch: Batch,
    /// Indexes (in the frame) of the events refused: for having more than
    /// `max_fields` fields, or all of them when the events are in a wire
    /// format version this build does not read. They are not in `batch`.
    pub refused: Vec<u32>,
    /// Set when every event was refused for its wire format version.
    pub unknown_version: Option<wire::DecodeError>,
}

/// Decodes a `BATCH` payload; bodies and strings are slices of it. An event
/// with more than `max_fields` fields (counted as [`Fields::deep_len`]
/// counts them) is refused: skipped without building its fields, its index
/// listed in [`Decoded::refused`]. Events in a wire format version this
/// build does not read are all refused the same way (they are not a
/// broken frame: the sender is told not to send them again). Work is
/// linear in the payload's size.
pub fn decode_batch(mut p: Bytes, max_fields: usize) -> Result<Decoded, Malformed> {
    need(&p, 12)?;
    let seq = p.get_u64();
    let n = p.get_u32() as usize;
    let mut d = match wire::Decoder::new(&p) {
        Ok(d) => d,
        Err(e @ wire::DecodeError::UnknownVersion { .. }) => {
            // Whatever the version, an event takes a byte at least.
            if n > p.len() {
                return Err(Malformed("event count larger than the frame"));
            }
            return Ok(Decoded {
                seq,
                batch: Batch::new(),
                refused: (0..n as u32).collect(),
                unknown_version: Some(e),
            });
        }
        Err(e) => return Err(malformed(e)),
    };
    if n > d.max_events_left() {
        return Err(Malformed("event count larger than the frame"));
    }
    let mut batch = Batch::with_capacity(n);
    let mut refused = Vec::new();
    for i in 0..n {
        match d.event_limited(max_fields).map_err(malformed)? {
            Some(e) => batch.push(e),
            None => refused.push(i as u32),
        }
    }
    d.finish().map_err(malformed)?;
    Ok(Decoded {
        seq,
        batch,
        refused,
        unknown_version: None,
    })
}

fn malformed(e: wire::DecodeError) -> Malformed {
    match e {
        wire::DecodeError::Malformed { what, .. } => Malformed(what),
        wire::DecodeError::UnknownVersion { .. } => Malformed("unknown wire format version"),
    }
}

/// Encodes a `REJECT` payload.
pub fn encode_reject(seq: u64, message: &str, indexes: &[u32]) -> Vec<u8> {
    let message = &message.as_bytes()[..message.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(14 + message.len() + 4 * indexes.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
    out.extend_from_slice(&(indexes.len() as u32).to_be_bytes());
    for i in indexes {
        out.extend_from_slice(&i.to_be_bytes());
    }
    out
}

/// Decodes a `REJECT` payload: sequence number, message, indexes.
pub fn decode_reject(mut p: Bytes) -> Result<(u64, String, Vec<u32>), Malformed> {
    need(&p, 10)?;
    let seq = p.get_u64();
    let mlen = p.get_u16() as usize;
    need(&p, mlen + 4)?;
    let message = String::from_utf8_lossy(&p.split_to(mlen)).into_owned();
    let n = p.get_u32() as usize;
    if p.len() != n.saturating_mul(4) {
        return Err(Malformed("index count does not match the frame"));
    }
    let indexes = (0..n).map(|_| p.get_u32()).collect();
    Ok((seq, message, indexes))
}

fn need(p: &Bytes, n: usize) -> Result<(), Malformed> {
    if p.len() < n {
        return Err(Malformed("truncated"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_with_fields_intact() {
        let mut e = Event::new("hello world", Timestamp(1_700_000_000_123_456_789));
        e.insert("s", "text");
        e.insert("i", -42i64);
        e.insert("f", 1.5f64);
        e.insert("b", true);
        e.insert("t", Timestamp(7));
        e.fields.insert("n", Value::Null);
        e.fields
            .insert("a", Value::Array(vec![Value::Integer(1), Value::from("x")]));
        e.insert("m.inner", "deep");
        let batch = Batch::from(vec![e.clone(), Event::new("", Timestamp(0))]);
        let mut out = BytesMut::new();
        encode_batch(&mut out, 9, &batch);
        let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(len, out.len() - 4);
        assert_eq!(out[4], BATCH);
        let d = decode_batch(out.freeze().slice(5..), 1000).unwrap();
        assert_eq!(d.seq, 9);
        assert_eq!(d.batch.events, batch.events);
        assert!(d.refused.is_empty());
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let mut out = BytesMut::new();
        let mut e = Event::new("x", Timestamp(1));
        e.insert("k", "v");
        encode_batch(&mut out, 1, &Batch::from(vec![e]));
        let full = out.freeze().slice(5..);
        for cut in 0..full.len() {
            assert!(
                decode_batch(full.slice(..cut), 1000).is_err(),
                "cut at {cut}"
            );
        }
        let mut huge = BytesMut::new();
        huge.put_u64(1);
        huge.put_u32(u32::MAX);
        huge.put_u8(wire::VERSION);
        assert!(decode_batch(huge.clone().freeze(), 1000).is_err());
        // In an unknown version too: no list of four billion refusals.
        huge[12] = 99;
        assert!(decode_batch(huge.freeze(), 1000).is_err());
    }

    #[test]
    fn events_in_an_unknown_wire_version_are_all_refused_not_misread() {
        let events = Batch::from(vec![
            Event::new("a", Timestamp(1)),
            Event::new("b", Timestamp(2)),
        ]);
        let mut out = BytesMut::new();
        encode_batch(&mut out, 4, &events);
        out[5 + 12] = 42;
        let d = decode_batch(out.freeze().slice(5..), 1000).unwrap();
        assert_eq!(d.seq, 4);
        assert!(d.batch.is_empty());
        assert_eq!(d.refused, [0, 1]);
        assert_eq!(
            d.unknown_version.unwrap().to_string(),
            "events in wire format version 42, which this build cannot read (it reads version 1)"
        );
    }

    #[test]
    fn an_event_with_too_many_fields_is_refused_alone() {
        let wide = |n: usize| {
            let mut e = Event::new(format!("{n}"), Timestamp(1));
            for i in 0..n {
                e.insert(&format!("f{i}"), i as i64);
            }
            e
        };
        let mut nested = Event::new("nested", Timestamp(2));
        nested.insert("a.b", 1i64);
        nested.insert("a.c", Value::Array(vec![Value::Map(wide(3).fields)]));
        // `a`, `a.b`, `a.c` and the three in the array: 6.
        assert_eq!(nested.fields.deep_len(), 6);
        let events = vec![wide(5), wide(40_000), nested.clone(), wide(6), wide(7)];
        let mut out = BytesMut::new();
        encode_batch(&mut out, 3, &Batch::from(events.clone()));
        let d = decode_batch(out.freeze().slice(5..), 6).unwrap();
        assert_eq!(d.refused, [1, 4]);
        assert_eq!(
            d.batch.events,
            [events[0].clone(), nested, events[3].clone()]
        );
        let back = decode_reject(Bytes::from(encode_reject(3, "too many", &d.refused))).unwrap();
        assert_eq!(back, (3, "too many".to_string(), vec![1, 4]));
        assert!(decode_reject(Bytes::from_static(&[0; 13])).is_err());
    }
}
