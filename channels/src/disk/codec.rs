//! The binary encoding of a batch inside one record.
//!
//! A record's payload is its events one after the other:
//!
//! ```text
//! event  = varint(body length) body  zigzag-varint(timestamp delta)
//!          varint(field count) field*
//! field  = varint(name length) name  value
//! value  = tag:u8 then, by tag: 0 null | 1 false | 2 true
//!          | 3 zigzag-varint integer | 4 f64-le float
//!          | 5 varint(length) bytes (string) | 6 i64-le timestamp
//!          | 7 varint(n) value*n (array) | 8 varint(n) field*n (map)
//! ```
//!
//! The timestamp is stored as the difference to the previous event's (the
//! first one's to 0): events of a batch usually share their time stamp or
//! nearly, so it takes one byte instead of eight.
//!
//! Decoding slices bodies and string values out of the record buffer
//! ([`Bytes::slice`]): one allocation per record, not per event. The decoder
//! never trusts the input: every length is checked against what is left and
//! nesting is limited, so a damaged payload yields an error, never a panic.

use bytes::Bytes;
use sluice_core::event::{Batch, Event, FieldName, Fields, Timestamp, Value};

/// Deepest nesting of arrays and maps the decoder accepts.
const MAX_DEPTH: usize = 64;

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed record payload at byte {at}: {what}")]
pub struct DecodeError {
    /// Offset in the payload.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// Appends the encoding of `events` to `out`.
pub fn encode(events: &[Event], out: &mut Vec<u8>) {
    let mut prev = 0i64;
    for e in events {
        put_varint(out, e.body.len() as u64);
        out.extend_from_slice(&e.body);
        put_varint(out, zigzag(e.timestamp.0.wrapping_sub(prev)));
        prev = e.timestamp.0;
        put_fields(out, &e.fields);
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// A size estimate of the encoding, to reserve the buffer once.
pub fn encoded_len_hint(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| e.body.len() + 4 + if e.fields.is_empty() { 0 } else { e.size_of() })
        .sum()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_fields(out: &mut Vec<u8>, fields: &Fields) {
    put_varint(out, fields.len() as u64);
    for (k, v) in fields {
        put_varint(out, k.len() as u64);
        out.extend_from_slice(k.as_bytes());
        put_value(out, v);
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Bool(true) => out.push(2),
        Value::Integer(i) => {
            out.push(3);
            put_varint(out, zigzag(*i));
        }
        Value::Float(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(b) => {
            out.push(5);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Timestamp(t) => {
            out.push(6);
            out.extend_from_slice(&t.0.to_le_bytes());
        }
        Value::Array(a) => {
            out.push(7);
            put_varint(out, a.len() as u64);
            for x in a {
                put_value(out, x);
            }
        }
        Value::Map(m) => {
            out.push(8);
            put_fields(out, m);
        }
    }
}

/// Decodes `count` events from `payload`, keeping those with index in
/// `keep` (those before are decoded and dropped; decoding stops after the last kept one).
///
/// # Errors
///
/// When the payload does not hold `count` well-formed events.
pub fn decode(
    payload: &Bytes,
    count: u32,
    keep: std::ops::Range<u32>,
) -> Result<Batch, DecodeError> {
    let mut r = Reader {
        buf: payload,
        at: 0,
    };
    let mut batch = Batch::with_capacity(keep.len());
    let mut prev = 0i64;
    for i in 0..count {
        let body = r.bytes()?;
        prev = prev.wrapping_add(unzigzag(r.varint()?));
        let timestamp = Timestamp(prev);
        let fields = r.fields(0)?;
        if keep.contains(&i) {
            batch.push(Event {
                body,
                timestamp,
                fields,
            });
        }
        if i + 1 >= keep.end && keep.end < count {
            // The rest is not wanted (the record's checksum vouches for it).
            return Ok(batch);
        }
    }
    if r.at != payload.len() {
        return Err(r.err("trailing bytes after the last event"));
    }
    Ok(batch)
}

/// Checks that `payload` holds exactly `count` well-formed events, as
/// [`decode`] would read them, without building them (no allocation).
///
/// # Errors
///
/// As [`decode`].
pub fn validate(payload: &Bytes, count: u32) -> Result<(), DecodeError> {
    let mut r = Reader {
        buf: payload,
        at: 0,
    };
    for _ in 0..count {
        r.skip_bytes()?;
        r.varint()?;
        r.skip_fields(0)?;
    }
    if r.at != payload.len() {
        return Err(r.err("trailing bytes after the last event"));
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError { at: self.at, what }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.at).ok_or_else(|| self.err("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n > (self.buf.len() - self.at) as u64 {
            return Err(self.err("length past the end"));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.len()?;
        let b = self.buf.slice(self.at..self.at + n);
        self.at += n;
        Ok(b)
    }

    fn skip_bytes(&mut self) -> Result<(), DecodeError> {
        let n = self.len()?;
        self.at += n;
        Ok(())
    }

    fn skip_fields(&mut self, depth: usize) -> Result<(), DecodeError> {
        let n = self.len()?;
        for _ in 0..n {
            let len = self.len()?;
            std::str::from_utf8(&self.buf[self.at..self.at + len])
                .map_err(|_| self.err("field name is not UTF-8"))?;
            self.at += len;
            self.skip_value(depth)?;
        }
        Ok(())
    }

    fn skip_value(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        match self.u8()? {
            0..=2 => {}
            3 => {
                self.varint()?;
            }
            4 | 6 => {
                self.i64()?;
            }
            5 => self.skip_bytes()?,
            7 => {
                let n = self.len()?;
                for _ in 0..n {
                    self.skip_value(depth + 1)?;
                }
            }
            8 => self.skip_fields(depth + 1)?,
            _ => return Err(self.err("unknown value tag")),
        }
        Ok(())
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        let end = self.at + 8;
        let raw = self
            .buf
            .get(self.at..end)
            .ok_or_else(|| self.err("truncated"))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(raw);
        self.at = end;
        Ok(i64::from_le_bytes(a))
    }

    fn name(&mut self) -> Result<FieldName, DecodeError> {
        let n = self.len()?;
        let s = std::str::from_utf8(&self.buf[self.at..self.at + n])
            .map_err(|_| self.err("field name is not UTF-8"))?;
        self.at += n;
        Ok(FieldName::from(s))
    }

    fn fields(&mut self, depth: usize) -> Result<Fields, DecodeError> {
        let n = self.len()?;
        let mut f = Fields::with_capacity(n);
        for _ in 0..n {
            let k = self.name()?;
            let v = self.value(depth)?;
            f.insert(k, v);
        }
        Ok(f)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Integer(unzigzag(self.varint()?)),
            4 => Value::Float(f64::from_bits(self.i64()? as u64)),
            5 => Value::String(self.bytes()?),
            6 => Value::Timestamp(Timestamp(self.i64()?)),
            7 => {
                let n = self.len()?;
                let mut a = Vec::with_capacity(n);
                for _ in 0..n {
                    a.push(self.value(depth + 1)?);
                }
                Value::Array(a)
            }
            8 => Value::Map(self.fields(depth + 1)?),
            _ => return Err(self.err("unknown value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Event> {
        let mut a = Event::new("GET / 200", Timestamp(1_700_000_000_123_456_789));
        a.insert("status", 200i64);
        a.insert("neg", -5i64);
        a.insert("min", i64::MIN);
        a.insert("ratio", 0.25f64);
        a.insert("ok", true);
        a.insert("no", false);
        a.insert("nothing", Value::Null);
        a.insert("when", Timestamp(-3));
        a.insert("http.method", "GET");
        a.insert(
            "list",
            Value::Array(vec![Value::from("x"), Value::Integer(1)]),
        );
        let b = Event::new(Bytes::from_static(b"\xff\x00raw"), Timestamp(i64::MIN));
        vec![
            a,
            b,
            Event::new("", Timestamp(i64::MAX)),
            Event::new("x", Timestamp(-1)),
        ]
    }

    #[test]
    fn round_trips_every_value_kind() {
        let events = sample();
        let mut buf = Vec::new();
        encode(&events, &mut buf);
        let payload = Bytes::from(buf);
        let back = decode(&payload, 4, 0..4).unwrap();
        assert_eq!(back.events, events);
        let middle = decode(&payload, 4, 1..2).unwrap();
        assert_eq!(middle.events, events[1..2]);
    }

    #[test]
    fn damaged_payloads_are_errors_not_panics() {
        let mut buf = Vec::new();
        encode(&sample(), &mut buf);
        for cut in 0..buf.len() {
            let p = Bytes::copy_from_slice(&buf[..cut]);
            assert!(decode(&p, 4, 0..4).is_err(), "cut at {cut}");
        }
        let mut x = 0x9e37_79b9u32;
        for i in 0..buf.len() {
            let mut b = buf.clone();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b[i] = b[i].wrapping_add(1 + (x % 255) as u8);
            // Either an error or some batch: never a panic.
            let _ = decode(&Bytes::from(b), 4, 0..4);
        }
        assert!(decode(&Bytes::from_static(&[0xff; 12]), 1, 0..1).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// `validate` accepts exactly what `decode` decodes, whatever the
        /// bytes and the claimed count; neither panics.
        #[test]
        fn validate_agrees_with_decode(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            count in 0u32..8,
        ) {
            let p = Bytes::from(bytes);
            proptest::prop_assert_eq!(validate(&p, count).is_ok(), decode(&p, count, 0..count).is_ok());
        }

        /// Damage to an encoded batch is found by `validate` whenever
        /// `decode` fails on it.
        #[test]
        fn damaged_encodings_validate_as_they_decode(
            at in 0usize..4096,
            with in 1u8..=255,
            cut in 0usize..4096,
        ) {
            let mut buf = Vec::new();
            encode(&sample(), &mut buf);
            let i = at % buf.len();
            buf[i] = buf[i].wrapping_add(with);
            buf.truncate(buf.len() - cut % 8);
            let p = Bytes::from(buf);
            proptest::prop_assert_eq!(validate(&p, 4).is_ok(), decode(&p, 4, 0..4).is_ok());
        }
    }
}
