//! A record's payload: the events of one batch in the shared wire format
//! ([`sluice_core::wire`], version byte first). The record's header
//! carries the event count; this module reads a range of the events, or
//! checks them all without building them.

use bytes::Bytes;
use sluice_core::event::{Batch, Event};
use sluice_core::wire::{self, DecodeError, Decoder};

/// Appends the encoding of `events` to `out`.
pub fn encode(events: &[Event], out: &mut Vec<u8>) {
    wire::encode_events(events, out);
}

/// A size estimate of the encoding, to reserve the buffer once.
pub fn encoded_len_hint(events: &[Event]) -> usize {
    wire::encoded_len_hint(events)
}

/// Decodes `count` events from `payload`, keeping those with index in
/// `keep` (those before are skipped without being built; decoding stops
/// after the last kept one).
///
/// # Errors
///
/// When the payload is in an unknown version or does not hold `count`
/// well-formed events.
pub fn decode(
    payload: &Bytes,
    count: u32,
    keep: std::ops::Range<u32>,
) -> Result<Batch, DecodeError> {
    let mut d = Decoder::new(payload)?;
    let mut batch = Batch::with_capacity(keep.len());
    for i in 0..count {
        if keep.contains(&i) {
            batch.push(d.event()?);
        } else {
            d.skip_event()?;
        }
        if i + 1 >= keep.end && keep.end < count {
            // The rest is not wanted (the record's checksum vouches for it).
            return Ok(batch);
        }
    }
    d.finish()?;
    Ok(batch)
}

/// Checks that `payload` holds exactly `count` well-formed events, as
/// [`decode`] would read them, without building them (no allocation).
///
/// # Errors
///
/// As [`decode`].
pub fn validate(payload: &Bytes, count: u32) -> Result<(), DecodeError> {
    let mut d = Decoder::new(payload)?;
    for _ in 0..count {
        d.skip_event()?;
    }
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::event::Timestamp;

    #[test]
    fn a_range_of_a_record_decodes_alone() {
        let events: Vec<Event> = (0..5)
            .map(|i| {
                let mut e = Event::new(format!("e{i}"), Timestamp(1_000 + i));
                e.insert("i", i);
                e
            })
            .collect();
        let mut buf = Vec::new();
        encode(&events, &mut buf);
        let payload = Bytes::from(buf);
        assert_eq!(decode(&payload, 5, 0..5).unwrap().events, events);
        assert_eq!(decode(&payload, 5, 1..3).unwrap().events, events[1..3]);
        assert_eq!(decode(&payload, 5, 4..5).unwrap().events, events[4..]);
        validate(&payload, 5).unwrap();
        assert!(validate(&payload, 4).is_err());
        assert!(validate(&payload, 6).is_err());
    }
}
