//! The `native` record format: a whole event in one Kafka record.
//!
//! The record's value is the event's body, unchanged; its timestamp travels
//! in the header [`TIMESTAMP_HEADER`] (nanoseconds, big-endian `i64`, since a
//! Kafka timestamp only holds milliseconds) and its fields in the header
//! [`FIELDS_HEADER`], in the shared wire format ([`sluice_core::wire`]:
//! version byte first, then the field map): every type survives the trip (a
//! timestamp stays a timestamp, an integer an integer), which JSON could not
//! promise. The header is written for every record, empty fields too, so
//! that every record says which version of the format it is in.

use bytes::Bytes;
use sluice_core::event::Fields;
use sluice_core::wire;

pub use sluice_core::wire::DecodeError;

/// Header holding the event's timestamp in nanoseconds.
pub const TIMESTAMP_HEADER: &str = "sluice.ts";
/// Header holding the event's encoded fields.
pub const FIELDS_HEADER: &str = "sluice.fields";

/// Appends the encoding of `fields` (version byte first) to `out`.
pub fn encode_fields(fields: &Fields, out: &mut Vec<u8>) {
    wire::encode_fields(fields, out);
}

/// Reads encoded fields. Strings are slices of `buf` (no copy).
///
/// # Errors
///
/// A version this build does not read, or bytes that are not a field map.
pub fn decode_fields(buf: &Bytes) -> Result<Fields, DecodeError> {
    wire::decode_fields(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::event::{Timestamp, Value};

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
        let mut newer = buf.clone();
        newer[0] = 2;
        let err = decode_fields(&Bytes::from(newer)).unwrap_err();
        assert!(err.to_string().contains("wire format version 2"), "{err}");
        // A huge count does not allocate a huge map.
        let huge = Bytes::from(vec![1, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode_fields(&huge).is_err());
    }
}
