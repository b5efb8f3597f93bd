//! The `native` record format: a whole event in one Kafka record.
//!
//! The record's value is the event's body, unchanged; its timestamp travels
//! in the header [`TIMESTAMP_HEADER`] (nanoseconds, big-endian `i64`, since a
//! Kafka timestamp only holds milliseconds) and its fields, when there are
//! any, in the header [`FIELDS_HEADER`], encoded by [`encode_fields`]: every
//! type survives the trip (a timestamp stays a timestamp, an integer an
//! integer), which JSON could not promise.
//!
//! Encoding of a value: one tag byte, then
//!
//! | tag | type | then |
//! |---|---|---|
//! | 0 | null | nothing |
//! | 1 | bool | 1 byte |
//! | 2 | integer | 8 bytes, little-endian |
//! | 3 | float | 8 bytes, little-endian IEEE 754 |
//! | 4 | string | length (`u32` LE), bytes |
//! | 5 | timestamp | 8 bytes, little-endian nanoseconds |
//! | 6 | array | count (`u32` LE), values |
//! | 7 | map | count (`u32` LE), then per entry: name length (`u32` LE), name, value |
//!
//! A field map is encoded as a map without its tag.

use bytes::Bytes;
use sluice_core::event::{Fields, Timestamp, Value};

/// Header holding the event's timestamp in nanoseconds.
pub const TIMESTAMP_HEADER: &str = "sluice.ts";
/// Header holding the event's encoded fields.
pub const FIELDS_HEADER: &str = "sluice.fields";

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed `{FIELDS_HEADER}` header at byte {at}: {what}")]
pub struct DecodeError {
    /// Offset in the header where decoding failed.
    pub at: usize,
    /// What was wrong there.
    pub what: &'static str,
}

/// Appends the encoding of `fields` to `out`.
pub fn encode_fields(fields: &Fields, out: &mut Vec<u8>) {
    out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    for (name, value) in fields.iter() {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        encode_value(value, out);
    }
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Value::Integer(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(3);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => {
            out.push(4);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s);
        }
        Value::Timestamp(t) => {
            out.push(5);
            out.extend_from_slice(&t.0.to_le_bytes());
        }
        Value::Array(items) => {
            out.push(6);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for v in items {
                encode_value(v, out);
            }
        }
        Value::Map(m) => {
            out.push(7);
            encode_fields(m, out);
        }
    }
}

/// Reads encoded fields. Strings are slices of `buf` (no copy).
pub fn decode_fields(buf: &Bytes) -> Result<Fields, DecodeError> {
    let mut r = Reader { buf, at: 0 };
    let fields = r.fields(0)?;
    if r.at != buf.len() {
        return Err(r.err("trailing bytes"));
    }
    Ok(fields)
}

/// Nested arrays and maps deeper than this are refused (a corrupt header
/// must not overflow the stack).
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    buf: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError { at: self.at, what }
    }

    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("truncated"))?;
        let range = self.at..end;
        self.at = end;
        Ok(range)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let r = self.take(1)?;
        Ok(self.buf[r.start])
    }

    fn eight(&mut self) -> Result<[u8; 8], DecodeError> {
        let r = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.buf[r]);
        Ok(a)
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let r = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(&self.buf[r]);
        Ok(u32::from_le_bytes(a) as usize)
    }

    fn fields(&mut self, depth: usize) -> Result<Fields, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        let n = self.len()?;
        // Every entry takes at least 5 bytes: a corrupt count cannot make
        // us reserve more than the header could hold.
        let mut fields = Fields::with_capacity(n.min((self.buf.len() - self.at) / 5));
        for _ in 0..n {
            let len = self.len()?;
            let r = self.take(len)?;
            let name = std::str::from_utf8(&self.buf[r]).map_err(|_| self.err("name not UTF-8"))?;
            let name = name.to_string();
            let value = self.value(depth)?;
            fields.insert(name, value);
        }
        Ok(fields)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Bool(self.u8()? != 0),
            2 => Value::Integer(i64::from_le_bytes(self.eight()?)),
            3 => Value::Float(f64::from_le_bytes(self.eight()?)),
            4 => {
                let len = self.len()?;
                let r = self.take(len)?;
                Value::String(self.buf.slice(r))
            }
            5 => Value::Timestamp(Timestamp(i64::from_le_bytes(self.eight()?))),
            6 => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("nested too deeply"));
                }
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(self.buf.len() - self.at));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            7 => Value::Map(self.fields(depth + 1)?),
            _ => return Err(self.err("unknown value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_type_survives_the_round_trip() {
        let mut inner = Fields::new();
        inner.insert("deep", Value::Array(vec![Value::Null, Value::Bool(true)]));
        let mut f = Fields::new();
        f.insert("s", Value::from("héllo"));
        f.insert("i", Value::Integer(-42));
        f.insert("x", Value::Float(1.5));
        f.insert("b", Value::Bool(false));
        f.insert("t", Value::Timestamp(Timestamp(1_700_000_000_123_456_789)));
        f.insert("m", Value::Map(inner));
        f.insert("n", Value::Null);
        let mut buf = Vec::new();
        encode_fields(&f, &mut buf);
        let back = decode_fields(&Bytes::from(buf)).expect("decodes");
        assert_eq!(format!("{back:?}"), format!("{f:?}"));
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let mut f = Fields::new();
        f.insert("name", Value::from("value"));
        let mut buf = Vec::new();
        encode_fields(&f, &mut buf);
        for cut in 0..buf.len() {
            assert!(decode_fields(&Bytes::copy_from_slice(&buf[..cut])).is_err());
        }
        let mut bad = buf.clone();
        bad[4 + 4 + 4] = 99;
        assert!(decode_fields(&Bytes::from(bad)).is_err());
        // A huge count does not allocate a huge map.
        let huge = Bytes::from(vec![0xff, 0xff, 0xff, 0xff]);
        assert!(decode_fields(&huge).is_err());
    }
}
