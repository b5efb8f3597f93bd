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

fn encoded(events: &[Event]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_events(events, &mut buf);
    buf
}

/// Decodes `count` events, or the first error.
fn decode(buf: &Bytes, count: usize) -> Result<Vec<Event>, DecodeError> {
    let mut d = Decoder::new(buf)?;
    let events = (0..count).map(|_| d.event()).collect::<Result<_, _>>()?;
    d.finish()?;
    Ok(events)
}

/// Skips `count` events, or the first error.
fn skip(buf: &Bytes, count: usize) -> Result<(), DecodeError> {
    let mut d = Decoder::new(buf)?;
    for _ in 0..count {
        d.skip_event()?;
    }
    d.finish()
}

#[test]
fn round_trips_every_value_kind() {
    let events = sample();
    let buf = Bytes::from(encoded(&events));
    assert_eq!(buf[0], VERSION);
    assert_eq!(decode(&buf, 4).unwrap(), events);
    // Skipping keeps the timestamp base: the event after a skipped one
    // decodes to its own time.
    let mut d = Decoder::new(&buf).unwrap();
    d.skip_event().unwrap();
    d.skip_event().unwrap();
    assert_eq!(d.event().unwrap(), events[2]);
    // Into a `BytesMut` as into a `Vec`.
    let mut b = bytes::BytesMut::new();
    encode_events(&events, &mut b);
    assert_eq!(&b[..], &buf[..]);
}

#[test]
fn an_unknown_version_is_refused_by_name() {
    let mut buf = encoded(&sample());
    buf[0] = 7;
    let err = decode(&Bytes::from(buf), 4).unwrap_err();
    assert_eq!(err, DecodeError::UnknownVersion { found: 7 });
    assert_eq!(
        err.to_string(),
        "events in wire format version 7, which this build cannot read (it reads version 1)"
    );
    let mut f = Vec::new();
    encode_fields(&sample()[0].fields, &mut f);
    f[0] = 0;
    assert_eq!(
        decode_fields(&Bytes::from(f)),
        Err(DecodeError::UnknownVersion { found: 0 })
    );
    assert!(matches!(
        Decoder::new(&Bytes::new()),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn damaged_input_is_an_error_not_a_panic() {
    let buf = encoded(&sample());
    for cut in 0..buf.len() {
        let p = Bytes::copy_from_slice(&buf[..cut]);
        assert!(decode(&p, 4).is_err(), "cut at {cut}");
        assert!(skip(&p, 4).is_err(), "cut at {cut}");
    }
    let mut x = 0x9e37_79b9u32;
    for i in 0..buf.len() {
        let mut b = buf.clone();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = b[i].wrapping_add(1 + (x % 255) as u8);
        // Either an error or some events: never a panic.
        let _ = decode(&Bytes::from(b), 4);
    }
    let mut huge = vec![VERSION];
    huge.extend_from_slice(&[0xff; 12]);
    assert!(decode(&Bytes::from(huge), 1).is_err());
}

#[test]
fn fields_alone_round_trip() {
    let f = sample()[0].fields.clone();
    let mut buf = Vec::new();
    encode_fields(&f, &mut buf);
    assert_eq!(decode_fields(&Bytes::from(buf.clone())).unwrap(), f);
    for cut in 0..buf.len() {
        assert!(decode_fields(&Bytes::copy_from_slice(&buf[..cut])).is_err());
    }
    // A huge count does not allocate a huge map.
    let huge = Bytes::from(vec![VERSION, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(decode_fields(&huge).is_err());
}

fn wide(n: usize) -> Event {
    let mut e = Event::new(format!("{n}"), Timestamp(n as i64));
    for i in 0..n {
        e.insert(&format!("f{i}"), i as i64);
    }
    e
}

#[test]
fn an_event_with_too_many_fields_is_skipped_alone() {
    let mut nested = Event::new("nested", Timestamp(2));
    nested.insert("a.b", 1i64);
    nested.insert("a.c", Value::Array(vec![Value::Map(wide(3).fields)]));
    // `a`, `a.b`, `a.c` and the three in the array: 6.
    assert_eq!(nested.fields.deep_len(), 6);
    let events = [wide(5), wide(40_000), nested.clone(), wide(6), wide(7)];
    let buf = Bytes::from(encoded(&events));
    let mut d = Decoder::new(&buf).unwrap();
    let got: Vec<Option<Event>> = (0..5).map(|_| d.event_limited(6).unwrap()).collect();
    d.finish().unwrap();
    assert_eq!(
        got,
        [
            Some(events[0].clone()),
            None,
            Some(nested),
            Some(events[3].clone()),
            None
        ]
    );
}

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

#[test]
fn the_length_bound_holds_and_agrees_with_the_nesting_limit() {
    let mut events = sample();
    events.push(wide(300));
    let mut long = Event::new("x".repeat(300), Timestamp(5));
    long.insert("s", "y".repeat(20_000).as_str());
    events.push(long);
    let bound: usize = events.iter().map(|e| encoded_len_bound(e).unwrap()).sum();
    let len = encoded(&events).len();
    assert!(VERSION_LEN + bound >= len, "{bound} < {len}");
    // The deepest nesting the bound accepts decodes; one level more is
    // refused by both.
    let mut deepest = 0;
    for depth in 0..200 {
        let e = nested(depth);
        let buf = Bytes::from(encoded(std::slice::from_ref(&e)));
        let decodes = decode(&buf, 1).is_ok();
        assert_eq!(encoded_len_bound(&e).is_ok(), decodes, "depth {depth}");
        assert_eq!(skip(&buf, 1).is_ok(), decodes, "depth {depth}");
        if decodes {
            deepest = depth;
        }
    }
    assert!((MAX_DEPTH..199).contains(&deepest), "{deepest}");
}

#[test]
fn varint_lengths_match_the_encoding() {
    for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX >> 1, u64::MAX] {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        assert_eq!(varint_len(v), b.len(), "{v}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Skipping accepts exactly what decoding decodes, whatever the bytes
    /// and the claimed count; neither panics.
    #[test]
    fn skip_agrees_with_decode(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        count in 0usize..8,
    ) {
        let mut b = vec![VERSION];
        b.extend_from_slice(&bytes);
        let p = Bytes::from(b);
        proptest::prop_assert_eq!(skip(&p, count).is_ok(), decode(&p, count).is_ok());
    }

    /// Damage to an encoding is found by skipping whenever decoding fails
    /// on it.
    #[test]
    fn damaged_encodings_skip_as_they_decode(
        at in 0usize..4096,
        with in 1u8..=255,
        cut in 0usize..4096,
    ) {
        let mut buf = encoded(&sample());
        let i = 1 + at % (buf.len() - 1);
        buf[i] = buf[i].wrapping_add(with);
        buf.truncate(buf.len() - cut % 8);
        let p = Bytes::from(buf);
        proptest::prop_assert_eq!(skip(&p, 4).is_ok(), decode(&p, 4).is_ok());
    }
}
