//! The hop's wire format: length-prefixed frames over TCP (or TLS).
//!
//! Every frame is `LEN:u32 KIND:u8 PAYLOAD`, big-endian, where `LEN` counts
//! `KIND` and `PAYLOAD`. See `docs/network.md` for the whole protocol.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sluice_core::prelude::*;
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use super::frame::{read_budgeted, read_frame, Frame, FrameBudget, FrameError};

/// Protocol version sent in `HELLO`.
pub const VERSION: u16 = 1;

/// Client → server, first frame: `VERSION:u16 TOKEN_LEN:u16 TOKEN`.
pub const HELLO: u8 = 1;
/// Server → client: the hello is accepted.
pub const WELCOME: u8 = 2;
/// Server → client, then close: `CODE:u16 MESSAGE` (401: bad token, 400:
/// bad hello or version).
pub const REFUSED: u8 = 3;
/// Client → server: `SEQ:u64 COUNT:u32 EVENT*`.
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

/// Appends a `BATCH` frame.
pub fn encode_batch(out: &mut BytesMut, seq: u64, batch: &Batch) {
    let at = begin(out, BATCH);
    out.put_u64(seq);
    out.put_u32(batch.len() as u32);
    for e in batch.iter() {
        out.put_i64(e.timestamp.0);
        out.put_u32(e.body.len() as u32);
        out.put_slice(&e.body);
        encode_fields(out, &e.fields);
    }
    finish(out, at);
}

fn encode_fields(out: &mut BytesMut, f: &Fields) {
    out.put_u32(f.len() as u32);
    for (k, v) in f.iter() {
        out.put_u16(k.len() as u16);
        out.put_slice(k.as_bytes());
        encode_value(out, v);
    }
}

fn encode_value(out: &mut BytesMut, v: &Value) {
    match v {
        Value::Null => out.put_u8(0),
        Value::Bool(false) => out.put_u8(1),
        Value::Bool(true) => out.put_u8(2),
        Value::Integer(i) => {
            out.put_u8(3);
            out.put_i64(*i);
        }
        Value::Float(f) => {
            out.put_u8(4);
            out.put_f64(*f);
        }
        Value::String(s) => {
            out.put_u8(5);
            out.put_u32(s.len() as u32);
            out.put_slice(s);
        }
        Value::Timestamp(t) => {
            out.put_u8(6);
            out.put_i64(t.0);
        }
        Value::Array(a) => {
            out.put_u8(7);
            out.put_u32(a.len() as u32);
            for x in a {
                encode_value(out, x);
            }
        }
        Value::Map(m) => {
            out.put_u8(8);
            encode_fields(out, m);
        }
    }
}

/// A decoded `BATCH` payload.
#[derive(Debug)]
pub struct Decoded {
    /// The batch's sequence number.
    pub seq: u64,
    /// The events taken, in order.
    pub batch: Batch,
    /// Indexes (in the frame) of the events refused for having more than
    /// `max_fields` fields; they are not in `batch`.
    pub refused: Vec<u32>,
}

/// Decodes a `BATCH` payload; bodies and strings are slices of it. An event
/// with more than `max_fields` fields (counted as [`Fields::deep_len`]
/// counts them) is refused: skipped without building its fields, its index
/// listed in [`Decoded::refused`]. Work is linear in the payload's size.
pub fn decode_batch(mut p: Bytes, max_fields: usize) -> Result<Decoded, Malformed> {
    need(&p, 12)?;
    let seq = p.get_u64();
    let n = p.get_u32() as usize;
    // Every event takes at least 16 bytes: a bound before allocating.
    if n > p.len() / 16 + 1 {
        return Err(Malformed("event count larger than the frame"));
    }
    let mut batch = Batch::with_capacity(n);
    let mut refused = Vec::new();
    for i in 0..n {
        need(&p, 12)?;
        let ts = p.get_i64();
        let len = p.get_u32() as usize;
        need(&p, len)?;
        let body = p.split_to(len);
        let at = p.clone();
        let mut left = max_fields;
        match decode_fields(&mut p, 0, &mut left) {
            Ok(fields) => batch.push(Event {
                body,
                timestamp: Timestamp(ts),
                fields,
            }),
            Err(Error::TooManyFields) => {
                p = at;
                skip_fields(&mut p, 0)?;
                refused.push(i as u32);
            }
            Err(Error::Malformed(m)) => return Err(m),
        }
    }
    if p.has_remaining() {
        return Err(Malformed("bytes after the last event"));
    }
    Ok(Decoded {
        seq,
        batch,
        refused,
    })
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

/// Nesting deeper than this is refused.
const MAX_DEPTH: usize = 64;

/// Room reserved ahead for a declared count: the rest grows as elements
/// actually decode, so a count alone allocates little.
const RESERVE_AHEAD: usize = 1024;

enum Error {
    Malformed(Malformed),
    TooManyFields,
}

impl From<Malformed> for Error {
    fn from(m: Malformed) -> Self {
        Error::Malformed(m)
    }
}

fn decode_fields(p: &mut Bytes, depth: usize, left: &mut usize) -> Result<Fields, Error> {
    if depth > MAX_DEPTH {
        return Err(Malformed("fields nested too deeply").into());
    }
    need(p, 4)?;
    let n = p.get_u32() as usize;
    if n > p.len() / 3 {
        return Err(Malformed("field count larger than the frame").into());
    }
    if n > *left {
        return Err(Error::TooManyFields);
    }
    *left -= n;
    let mut f = Fields::with_capacity(n);
    for _ in 0..n {
        need(p, 2)?;
        let klen = p.get_u16() as usize;
        need(p, klen)?;
        let k = p.split_to(klen);
        let k = std::str::from_utf8(&k).map_err(|_| Malformed("field name is not UTF-8"))?;
        let k = FieldName::new(k);
        let v = decode_value(p, depth, left)?;
        f.insert(k, v);
    }
    Ok(f)
}

fn decode_value(p: &mut Bytes, depth: usize, left: &mut usize) -> Result<Value, Error> {
    need(p, 1)?;
    Ok(match p.get_u8() {
        0 => Value::Null,
        1 => Value::Bool(false),
        2 => Value::Bool(true),
        3 => {
            need(p, 8)?;
            Value::Integer(p.get_i64())
        }
        4 => {
            need(p, 8)?;
            Value::Float(p.get_f64())
        }
        5 => {
            need(p, 4)?;
            let len = p.get_u32() as usize;
            need(p, len)?;
            Value::String(p.split_to(len))
        }
        6 => {
            need(p, 8)?;
            Value::Timestamp(Timestamp(p.get_i64()))
        }
        7 => {
            if depth > MAX_DEPTH {
                return Err(Malformed("values nested too deeply").into());
            }
            need(p, 4)?;
            let n = p.get_u32() as usize;
            if n > p.len() {
                return Err(Malformed("array longer than the frame").into());
            }
            let mut a = Vec::with_capacity(n.min(RESERVE_AHEAD));
            for _ in 0..n {
                a.push(decode_value(p, depth + 1, left)?);
            }
            Value::Array(a)
        }
        8 => Value::Map(decode_fields(p, depth + 1, left)?),
        _ => return Err(Malformed("unknown value tag").into()),
    })
}

/// Moves past encoded fields without building them (the same checks as
/// [`decode_fields`], no limit on their number).
fn skip_fields(p: &mut Bytes, depth: usize) -> Result<(), Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed("fields nested too deeply"));
    }
    need(p, 4)?;
    let n = p.get_u32() as usize;
    if n > p.len() / 3 {
        return Err(Malformed("field count larger than the frame"));
    }
    for _ in 0..n {
        need(p, 2)?;
        let klen = p.get_u16() as usize;
        need(p, klen)?;
        std::str::from_utf8(&p[..klen]).map_err(|_| Malformed("field name is not UTF-8"))?;
        p.advance(klen);
        skip_value(p, depth)?;
    }
    Ok(())
}

fn skip_value(p: &mut Bytes, depth: usize) -> Result<(), Malformed> {
    need(p, 1)?;
    match p.get_u8() {
        0..=2 => {}
        3 | 4 | 6 => {
            need(p, 8)?;
            p.advance(8);
        }
        5 => {
            need(p, 4)?;
            let len = p.get_u32() as usize;
            need(p, len)?;
            p.advance(len);
        }
        7 => {
            if depth > MAX_DEPTH {
                return Err(Malformed("values nested too deeply"));
            }
            need(p, 4)?;
            let n = p.get_u32() as usize;
            if n > p.len() {
                return Err(Malformed("array longer than the frame"));
            }
            for _ in 0..n {
                skip_value(p, depth + 1)?;
            }
        }
        8 => skip_fields(p, depth + 1)?,
        _ => return Err(Malformed("unknown value tag")),
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
        assert!(decode_batch(huge.freeze(), 1000).is_err());
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
