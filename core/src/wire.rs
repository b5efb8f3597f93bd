//! The one binary encoding of events, shared by every place an event
//! leaves the process as bytes: the `disk` channel's records, the
//! `kafka` sink's and channel's `native` records, and the hop's `BATCH`
//! frames. It lives in `sluice-core` so that a component crate (or a
//! plugin) encodes events the same way without depending on another
//! component crate.
//!
//! # Format (version 1)
//!
//! ```text
//! events = version:u8 event*
//! event  = varint(body length) body  zigzag-varint(timestamp delta)
//!          fields
//! fields = varint(field count) (varint(name length) name value)*
//! value  = tag:u8 then, by tag: 0 null | 1 false | 2 true
//!          | 3 zigzag-varint integer | 4 f64-le float
//!          | 5 varint(length) bytes (string) | 6 i64-le timestamp
//!          | 7 varint(n) value*n (array) | 8 fields (map)
//! ```
//!
//! A varint is LEB128 (7 bits a byte, low first). The number of events is
//! not part of the encoding: the container carries it (a disk record's
//! header, a hop frame). A timestamp is stored as the difference to the
//! previous event's (the first one's to 0): events of a batch usually
//! share their time stamp or nearly, so it takes one byte instead of eight.
//! A field map alone ([`encode_fields`], the `kafka` `native` header) is
//! `version:u8 fields`.
//!
//! # Versions
//!
//! The leading byte is the format's version, [`VERSION`]. A reader refuses
//! any other with [`DecodeError::UnknownVersion`] before reading further:
//! each container says what that means for it (a disk channel refuses to
//! open the segment, a hop receiver and a `kafka` source count the events
//! as malformed). A change to the format gets a new version number, and the
//! reader keeps reading the old one.
//!
//! # Decoding
//!
//! [`Decoder`] slices bodies and string values out of the buffer it reads
//! ([`Bytes::slice`]): one allocation per buffer, not per event. It never
//! trusts the input: every length is checked against what is left, counts
//! are bounded by the bytes left before anything is reserved, and nesting
//! is limited to [`MAX_DEPTH`], so damaged input yields an error, never a
//! panic or a large allocation.
//!
//! ```
//! use bytes::Bytes;
//! use sluice_core::event::{Event, Timestamp};
//! use sluice_core::wire;
//!
//! let mut e = Event::new("GET / 200", Timestamp(1));
//! e.insert("status", 200i64);
//! let mut buf = Vec::new();
//! wire::encode_events([&e], &mut buf);
//! assert_eq!(buf[0], wire::VERSION);
//! let buf = Bytes::from(buf);
//! let mut d = wire::Decoder::new(&buf).unwrap();
//! assert_eq!(d.event().unwrap(), e);
//! d.finish().unwrap();
//! ```

use bytes::{BufMut, Bytes};

use crate::event::{Event, FieldName, Fields, Timestamp, Value};

/// The version of the format this build writes (and the only one it reads).
pub const VERSION: u8 = 1;

/// Deepest nesting of arrays and maps below an event's fields the decoder
/// accepts; an encoder checks it with [`encoded_len_bound`].
pub const MAX_DEPTH: usize = 64;

/// Bytes of the version byte.
pub const VERSION_LEN: usize = 1;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The leading version byte is not one this build reads.
    #[error(
        "events in wire format version {found}, which this build cannot read (it reads version {VERSION})"
    )]
    UnknownVersion {
        /// The version byte found.
        found: u8,
    },
    /// The bytes are not a valid encoding.
    #[error("malformed event encoding at byte {at}: {what}")]
    Malformed {
        /// Offset in the buffer.
        at: usize,
        /// What was wrong there.
        what: &'static str,
    },
}

/// Appends the version byte, then the encoding of every event of `events`.
pub fn encode_events<'a, B: BufMut>(events: impl IntoIterator<Item = &'a Event>, out: &mut B) {
    out.put_u8(VERSION);
    let mut prev = 0i64;
    for e in events {
        put_varint(out, e.body.len() as u64);
        out.put_slice(&e.body);
        put_varint(out, zigzag(e.timestamp.0.wrapping_sub(prev)));
        prev = e.timestamp.0;
        put_fields(out, &e.fields);
    }
}

/// Appends the version byte, then the encoding of `fields`.
pub fn encode_fields<B: BufMut>(fields: &Fields, out: &mut B) {
    out.put_u8(VERSION);
    put_fields(out, fields);
}

/// Decodes what [`encode_fields`] wrote. Strings are slices of `buf`.
///
/// # Errors
///
/// An unknown version, or bytes that are not exactly one field map.
pub fn decode_fields(buf: &Bytes) -> Result<Fields, DecodeError> {
    let mut d = Decoder::new(buf)?;
    let mut no_limit = usize::MAX;
    let fields = match d.fields(0, &mut no_limit) {
        Ok(f) => f,
        Err(Stop::Error(e)) => return Err(e),
        Err(Stop::TooMany) => return Err(d.err("more fields than the limit")),
    };
    d.finish()?;
    Ok(fields)
}

/// A size estimate of the encoding of `events`, to reserve a buffer once.
pub fn encoded_len_hint(events: &[Event]) -> usize {
    VERSION_LEN
        + events
            .iter()
            .map(|e| e.body.len() + 4 + if e.fields.is_empty() { 0 } else { e.size_of() })
            .sum::<usize>()
}

/// At least the bytes `e` takes in an encoding (the timestamp counted at
/// its largest, since its delta depends on the event before), or why a
/// decoder would refuse it: fields nested deeper than [`MAX_DEPTH`].
///
/// # Errors
///
/// The nesting limit, in words for a user.
pub fn encoded_len_bound(e: &Event) -> Result<usize, String> {
    Ok(varint_len(e.body.len() as u64) + e.body.len() + 10 + fields_len(&e.fields, 0)?)
}

fn fields_len(f: &Fields, depth: usize) -> Result<usize, String> {
    let mut len = varint_len(f.len() as u64);
    for (k, v) in f.iter() {
        len += varint_len(k.len() as u64) + k.len() + value_len(v, depth)?;
    }
    Ok(len)
}

fn value_len(v: &Value, depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "fields nested deeper than {MAX_DEPTH} levels cannot be encoded"
        ));
    }
    Ok(match v {
        Value::Null | Value::Bool(_) => 1,
        Value::Integer(i) => 1 + varint_len(zigzag(*i)),
        Value::Float(_) | Value::Timestamp(_) => 9,
        Value::String(s) => 1 + varint_len(s.len() as u64) + s.len(),
        Value::Array(a) => {
            let mut len = 1 + varint_len(a.len() as u64);
            for x in a {
                len += value_len(x, depth + 1)?;
            }
            len
        }
        Value::Map(m) => 1 + fields_len(m, depth + 1)?,
    })
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn put_varint<B: BufMut>(out: &mut B, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn put_fields<B: BufMut>(out: &mut B, fields: &Fields) {
    put_varint(out, fields.len() as u64);
    for (k, v) in fields {
        put_varint(out, k.len() as u64);
        out.put_slice(k.as_bytes());
        put_value(out, v);
    }
}

fn put_value<B: BufMut>(out: &mut B, v: &Value) {
    match v {
        Value::Null => out.put_u8(0),
        Value::Bool(false) => out.put_u8(1),
        Value::Bool(true) => out.put_u8(2),
        Value::Integer(i) => {
            out.put_u8(3);
            put_varint(out, zigzag(*i));
        }
        Value::Float(f) => {
            out.put_u8(4);
            out.put_slice(&f.to_le_bytes());
        }
        Value::String(b) => {
            out.put_u8(5);
            put_varint(out, b.len() as u64);
            out.put_slice(b);
        }
        Value::Timestamp(t) => {
            out.put_u8(6);
            out.put_slice(&t.0.to_le_bytes());
        }
        Value::Array(a) => {
            out.put_u8(7);
            put_varint(out, a.len() as u64);
            for x in a {
                put_value(out, x);
            }
        }
        Value::Map(m) => {
            out.put_u8(8);
            put_fields(out, m);
        }
    }
}

/// Room reserved ahead for a declared array length: the rest grows as
/// elements actually decode, so a length alone allocates little.
const RESERVE_AHEAD: usize = 1024;

/// Why a limited decode did not build the fields.
enum Stop {
    Error(DecodeError),
    /// More fields than the limit: the event is skipped.
    TooMany,
}

impl From<DecodeError> for Stop {
    fn from(e: DecodeError) -> Self {
        Stop::Error(e)
    }
}

/// Reads the events of a buffer written by [`encode_events`], one at a
/// time. See the module docs.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a Bytes,
    at: usize,
    /// The previous event's timestamp: the base of the next one's delta.
    prev: i64,
}

impl<'a> Decoder<'a> {
    /// Checks the version byte and stands before the first event.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnknownVersion`], or `Malformed` for an empty buffer.
    pub fn new(buf: &'a Bytes) -> Result<Self, DecodeError> {
        let mut d = Decoder {
            buf,
            at: 0,
            prev: 0,
        };
        let found = d.u8()?;
        if found != VERSION {
            return Err(DecodeError::UnknownVersion { found });
        }
        Ok(d)
    }

    /// Events of at least 3 bytes each could still follow: a bound on a
    /// declared event count before reserving room for it.
    pub fn max_events_left(&self) -> usize {
        (self.buf.len() - self.at) / 3
    }

    /// The next event.
    ///
    /// # Errors
    ///
    /// When the bytes at the position are not an event.
    pub fn event(&mut self) -> Result<Event, DecodeError> {
        match self.event_limited(usize::MAX) {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(self.err("more fields than the limit")),
            Err(e) => Err(e),
        }
    }

    /// The next event, or `None` when it has more than `max_fields` fields
    /// (counted as [`Fields::deep_len`] counts them): it is then skipped
    /// without building its fields.
    ///
    /// # Errors
    ///
    /// When the bytes at the position are not an event.
    pub fn event_limited(&mut self, max_fields: usize) -> Result<Option<Event>, DecodeError> {
        let body = self.bytes()?;
        self.prev = self.prev.wrapping_add(unzigzag(self.varint()?));
        let timestamp = Timestamp(self.prev);
        let start = self.at;
        let mut left = max_fields;
        match self.fields(0, &mut left) {
            Ok(fields) => Ok(Some(Event {
                body,
                timestamp,
                fields,
            })),
            Err(Stop::TooMany) => {
                self.at = start;
                self.skip_fields(0)?;
                Ok(None)
            }
            Err(Stop::Error(e)) => Err(e),
        }
    }

    /// Moves past the next event without building it (the same checks as
    /// [`Decoder::event`], no allocation).
    ///
    /// # Errors
    ///
    /// When the bytes at the position are not an event.
    pub fn skip_event(&mut self) -> Result<(), DecodeError> {
        self.skip_bytes()?;
        self.prev = self.prev.wrapping_add(unzigzag(self.varint()?));
        self.skip_fields(0)
    }

    /// Checks that nothing follows the last event read.
    ///
    /// # Errors
    ///
    /// When bytes are left.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.at != self.buf.len() {
            return Err(self.err("trailing bytes after the last event"));
        }
        Ok(())
    }

    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError::Malformed { at: self.at, what }
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

    /// A length or count of items of at least `each` bytes, checked
    /// against the bytes left.
    fn count(&mut self, each: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n.saturating_mul(each as u64) > (self.buf.len() - self.at) as u64 {
            return Err(self.err("length past the end"));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.count(1)?;
        let b = self.buf.slice(self.at..self.at + n);
        self.at += n;
        Ok(b)
    }

    fn skip_bytes(&mut self) -> Result<(), DecodeError> {
        let n = self.count(1)?;
        self.at += n;
        Ok(())
    }

    fn name(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.count(1)?;
        let buf: &'a Bytes = self.buf;
        let s = std::str::from_utf8(&buf[self.at..self.at + n])
            .map_err(|_| self.err("field name is not UTF-8"))?;
        self.at += n;
        Ok(s)
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

    /// A field map; its entries (at every depth) count against `left`.
    fn fields(&mut self, depth: usize, left: &mut usize) -> Result<Fields, Stop> {
        // A field takes at least 2 bytes: its name's length and a tag.
        let n = self.count(2)?;
        if n > *left {
            return Err(Stop::TooMany);
        }
        *left -= n;
        let mut f = Fields::with_capacity(n);
        for _ in 0..n {
            let k = FieldName::from(self.name()?);
            let v = self.value(depth, left)?;
            f.insert(k, v);
        }
        Ok(f)
    }

    fn value(&mut self, depth: usize, left: &mut usize) -> Result<Value, Stop> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deep").into());
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
                let n = self.count(1)?;
                let mut a = Vec::with_capacity(n.min(RESERVE_AHEAD));
                for _ in 0..n {
                    a.push(self.value(depth + 1, left)?);
                }
                Value::Array(a)
            }
            8 => Value::Map(self.fields(depth + 1, left)?),
            _ => return Err(self.err("unknown value tag").into()),
        })
    }

    fn skip_fields(&mut self, depth: usize) -> Result<(), DecodeError> {
        let n = self.count(2)?;
        for _ in 0..n {
            self.name()?;
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
                let n = self.count(1)?;
                for _ in 0..n {
                    self.skip_value(depth + 1)?;
                }
            }
            8 => self.skip_fields(depth + 1)?,
            _ => return Err(self.err("unknown value tag")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
