//! Property tests of the decoders that read bytes from the network: the hop
//! frame reader and batch decoder, and the `http` source's body decoders.
//! Arbitrary or damaged input must give an error or a result whose size is
//! bounded by the input's, never a panic; valid input must come back intact.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluice_core::prelude::*;

use crate::hop::proto::{self, decode_batch, encode_batch, Budget};
use crate::http_body::{decode, Kind};

/// Decoded size may be this many times the input's (an encoded `null`
/// takes one byte, a decoded value some 40).
const BLOWUP: usize = 64;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Integer),
        (-1e12f64..1e12).prop_map(Value::Float),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(|b| Value::String(b.into())),
        any::<i64>().prop_map(|t| Value::Timestamp(Timestamp(t))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[a-d]{0,2}", inner), 0..6)
                .prop_map(|kv| Value::Map(kv.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    (
        proptest::collection::vec(any::<u8>(), 0..24),
        any::<i64>(),
        proptest::collection::vec(("[a-f]{1,3}", value()), 0..6),
    )
        .prop_map(|(body, ts, fields)| {
            let mut e = Event::new(body, Timestamp(ts));
            e.fields = fields.into_iter().collect();
            e
        })
}

/// A `BATCH` payload of these events (without the frame header).
fn payload(seq: u64, events: &[Event]) -> Bytes {
    let mut out = BytesMut::new();
    encode_batch(&mut out, seq, &Batch::from(events.to_vec()));
    out.freeze().slice(5..)
}

fn check_bounded(input_len: usize, batch: &Batch) {
    assert!(
        batch.size_of() <= BLOWUP * input_len + 64,
        "{} bytes decoded from {input_len}",
        batch.size_of()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hop_batches_round_trip_and_max_fields_refuses_exactly_the_wide_events(
        seq in any::<u64>(),
        events in proptest::collection::vec(event(), 0..6),
        max_fields in 0usize..12,
    ) {
        let d = decode_batch(payload(seq, &events), usize::MAX).expect("valid");
        prop_assert_eq!(d.seq, seq);
        prop_assert_eq!(&d.batch.events, &events);
        let d = decode_batch(payload(seq, &events), max_fields).expect("valid");
        let wide: Vec<u32> = (0..events.len() as u32)
            .filter(|&i| events[i as usize].fields.deep_len() > max_fields)
            .collect();
        let kept: Vec<Event> = events
            .iter()
            .filter(|e| e.fields.deep_len() <= max_fields)
            .cloned()
            .collect();
        prop_assert_eq!(d.refused, wide);
        prop_assert_eq!(d.batch.events, kept);
    }

    #[test]
    fn damaged_hop_batches_are_errors_or_bounded_batches(
        events in proptest::collection::vec(event(), 1..4),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        patch in any::<[u8; 4]>(),
        max_fields in 0usize..8,
    ) {
        let good = payload(1, &events);
        let truncated = good.slice(..cut.index(good.len()));
        if let Ok(d) = decode_batch(truncated.clone(), max_fields) {
            check_bounded(truncated.len(), &d.batch);
        }
        let mut patched = good.to_vec();
        let i = at.index(patched.len());
        for (j, b) in patch.iter().enumerate() {
            if let Some(x) = patched.get_mut(i + j) {
                *x = *b;
            }
        }
        let len = patched.len();
        if let Ok(d) = decode_batch(Bytes::from(patched), max_fields) {
            check_bounded(len, &d.batch);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_hop_decoders(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        max_fields in 0usize..2000,
    ) {
        if let Ok(d) = decode_batch(Bytes::from(bytes.clone()), max_fields) {
            check_bounded(bytes.len(), &d.batch);
        }
        let _ = proto::decode_reject(Bytes::from(bytes.clone()));
        // The frame reader: a result or an error, and every byte of budget
        // back once the frame is dropped.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let budget = Budget::new(1 << 20);
        rt.block_on(async {
            let mut r = &bytes[..];
            while let Ok(Some(f)) =
                proto::read_budgeted(&mut r, 4096, &budget, std::time::Duration::from_secs(1), std::time::Duration::from_secs(1)).await
            {
                assert!(f.payload.len() <= 4096 && f.held.bytes() == f.payload.len());
            }
        });
        prop_assert_eq!(budget.available(), 1 << 20);
    }

    #[test]
    fn arbitrary_http_bodies_never_panic_and_stay_bounded(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        max_fields in 1usize..50,
    ) {
        for kind in [Kind::Lines, Kind::Ndjson, Kind::Json] {
            if let Ok(b) = decode(Bytes::from(bytes.clone()), kind, max_fields) {
                check_bounded(bytes.len(), &b);
                prop_assert!(b.iter().all(|e| e.fields.deep_len() <= max_fields));
                if kind == Kind::Lines {
                    let lines = bytes.split(|&c| c == b'\n').count()
                        - usize::from(bytes.last() == Some(&b'\n') || bytes.is_empty());
                    prop_assert_eq!(b.len(), lines);
                }
            }
        }
    }

    #[test]
    fn json_bodies_decode_to_their_objects_within_max_fields(
        objects in proptest::collection::vec(
            proptest::collection::vec(("[a-f]{1,3}", value()), 0..6), 1..4),
        max_fields in 0usize..20,
    ) {
        let objects: Vec<Fields> = objects.into_iter().map(|kv| kv.into_iter().collect()).collect();
        // Timestamps and non-UTF-8 strings do not survive JSON: compare
        // with what the JSON text itself says.
        let text = serde_json::to_vec(&objects).unwrap();
        let expect: Vec<Fields> = serde_json::from_slice(&text).unwrap();
        let fits = expect.iter().all(|f| f.deep_len() <= max_fields);
        let ndjson: Vec<u8> = expect
            .iter()
            .flat_map(|f| {
                let mut l = serde_json::to_vec(f).unwrap();
                l.push(b'\n');
                l
            })
            .collect();
        for (kind, body) in [(Kind::Json, text), (Kind::Ndjson, ndjson)] {
            match decode(Bytes::from(body), kind, max_fields) {
                Ok(b) => {
                    prop_assert!(fits);
                    let got: Vec<&Fields> = b.iter().map(|e| &e.fields).collect();
                    prop_assert_eq!(got, expect.iter().collect::<Vec<_>>());
                }
                Err(e) => {
                    prop_assert!(!fits, "{}", e);
                    prop_assert!(e.contains("is more than max_fields"), "{}", e);
                }
            }
        }
    }
}
