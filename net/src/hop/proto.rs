//! The hop's wire format: length-prefixed frames over TCP (or TLS).
//!
//! Every frame is `LEN:u32 KIND:u8 PAYLOAD`, big-endian, where `LEN` counts
//! `KIND` and `PAYLOAD`. See `docs/network.md` for the whole protocol.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sluice_core::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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

/// Reads one frame: its kind and payload. `Ok(None)` at a clean end of
/// stream; an error for frames larger than `max`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<(u8, Bytes)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..]).await?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len - 1 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("hop frame of {len} bytes is larger than the limit of {max}"),
        ));
    }
    let mut payload = BytesMut::zeroed(len - 1);
    r.read_exact(&mut payload).await?;
    Ok(Some((head[4], payload.freeze())))
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

/// Decodes a `BATCH` payload; bodies and strings are slices of it.
pub fn decode_batch(mut p: Bytes) -> Result<(u64, Batch), Malformed> {
    need(&p, 12)?;
    let seq = p.get_u64();
    let n = p.get_u32() as usize;
    // Every event takes at least 16 bytes: a bound before allocating.
    if n > p.len() / 16 + 1 {
        return Err(Malformed("event count larger than the frame"));
    }
    let mut batch = Batch::with_capacity(n);
    for _ in 0..n {
        need(&p, 12)?;
        let ts = p.get_i64();
        let len = p.get_u32() as usize;
        need(&p, len)?;
        let body = p.split_to(len);
        let fields = decode_fields(&mut p, 0)?;
        batch.push(Event {
            body,
            timestamp: Timestamp(ts),
            fields,
        });
    }
    if p.has_remaining() {
        return Err(Malformed("bytes after the last event"));
    }
    Ok((seq, batch))
}

fn need(p: &Bytes, n: usize) -> Result<(), Malformed> {
    if p.len() < n {
        return Err(Malformed("truncated"));
    }
    Ok(())
}

/// Nesting deeper than this is refused.
const MAX_DEPTH: usize = 64;

fn decode_fields(p: &mut Bytes, depth: usize) -> Result<Fields, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed("fields nested too deeply"));
    }
    need(p, 4)?;
    let n = p.get_u32() as usize;
    if n > p.len() / 3 {
        return Err(Malformed("field count larger than the frame"));
    }
    let mut f = Fields::with_capacity(n);
    for _ in 0..n {
        need(p, 2)?;
        let klen = p.get_u16() as usize;
        need(p, klen)?;
        let k = p.split_to(klen);
        let k = std::str::from_utf8(&k).map_err(|_| Malformed("field name is not UTF-8"))?;
        let k = FieldName::new(k);
        let v = decode_value(p, depth)?;
        f.insert(k, v);
    }
    Ok(f)
}

fn decode_value(p: &mut Bytes, depth: usize) -> Result<Value, Malformed> {
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
                return Err(Malformed("values nested too deeply"));
            }
            need(p, 4)?;
            let n = p.get_u32() as usize;
            if n > p.len() {
                return Err(Malformed("array longer than the frame"));
            }
            let mut a = Vec::with_capacity(n);
            for _ in 0..n {
                a.push(decode_value(p, depth + 1)?);
            }
            Value::Array(a)
        }
        8 => Value::Map(decode_fields(p, depth + 1)?),
        _ => return Err(Malformed("unknown value tag")),
    })
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
        let (seq, back) = decode_batch(out.freeze().slice(5..)).unwrap();
        assert_eq!(seq, 9);
        assert_eq!(back.events, batch.events);
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let mut out = BytesMut::new();
        let mut e = Event::new("x", Timestamp(1));
        e.insert("k", "v");
        encode_batch(&mut out, 1, &Batch::from(vec![e]));
        let full = out.freeze().slice(5..);
        for cut in 0..full.len() {
            assert!(decode_batch(full.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut huge = BytesMut::new();
        huge.put_u64(1);
        huge.put_u32(u32::MAX);
        assert!(decode_batch(huge.freeze()).is_err());
    }
}
