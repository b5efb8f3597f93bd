//! What `sample`, `throttle` and `dedupe` share: reading a grouping key from
//! an event, and a bounded map of per-key state that forgets the least
//! recently used key when full.

use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroUsize;

use lru::LruCache;
use sluice_core::event::{Event, Value};

/// The default bound on keys remembered.
pub(crate) const DEFAULT_MAX_KEYS: usize = 10_000;

pub(crate) fn default_max_keys() -> NonZeroUsize {
    NonZeroUsize::new(DEFAULT_MAX_KEYS).unwrap_or(NonZeroUsize::MIN)
}

/// Per-key state, at most `max` keys; the least recently used key is
/// forgotten to make room. Looking a key up does not allocate; a new key is
/// copied once.
pub(crate) struct KeyedState<V> {
    map: LruCache<String, V>,
    /// The text of a non-string key, reused.
    scratch: String,
}

impl<V> KeyedState<V> {
    pub fn new(max: NonZeroUsize) -> Self {
        KeyedState {
            map: LruCache::new(max),
            scratch: String::new(),
        }
    }

    /// The state of `e`'s key (the text of field `field`; a missing field
    /// is the empty key), made with `make` when the key is new.
    pub fn entry(&mut self, e: &Event, field: &str, make: impl FnOnce() -> V) -> &mut V {
        let key: &str = match e.get(field) {
            Some(Value::String(b)) => match std::str::from_utf8(b) {
                Ok(s) => s,
                Err(_) => {
                    self.scratch.clear();
                    self.scratch.push_str(&String::from_utf8_lossy(b));
                    &self.scratch
                }
            },
            Some(v) => {
                self.scratch.clear();
                v.write_text(&mut self.scratch);
                &self.scratch
            }
            None => "",
        };
        self.map.get_or_insert_mut_ref(key, make)
    }
}

/// A 128-bit digest of chosen fields of an event (two independent keyed
/// hashes), for `dedupe`: two different events collide with a probability
/// of about 2^-128 per pair.
pub(crate) struct Digest {
    a: std::collections::hash_map::RandomState,
    b: std::collections::hash_map::RandomState,
}

impl Digest {
    pub fn new() -> Self {
        Digest {
            a: Default::default(),
            b: Default::default(),
        }
    }

    /// The digest of the body (`fields` empty) or of the listed fields.
    pub fn of(&self, e: &Event, fields: &[String]) -> u128 {
        let (mut ha, mut hb) = (self.a.build_hasher(), self.b.build_hasher());
        let mut feed = |f: &dyn Fn(&mut dyn Hasher)| {
            f(&mut ha);
            f(&mut hb);
        };
        if fields.is_empty() {
            feed(&|h| {
                h.write(&e.body);
                h.write_u8(0xff);
            });
        }
        for f in fields {
            let v = e.get(f);
            feed(&|h| hash_value(v, h));
        }
        (u128::from(ha.finish()) << 64) | u128::from(hb.finish())
    }
}

/// Feeds a value, its kind and its extent into `h`, so that different
/// values (and a missing one) hash differently.
fn hash_value(v: Option<&Value>, h: &mut dyn Hasher) {
    let Some(v) = v else {
        h.write_u8(0);
        return;
    };
    match v {
        Value::Null => h.write_u8(1),
        Value::Bool(b) => h.write(&[2, u8::from(*b)]),
        Value::Integer(i) => {
            h.write_u8(3);
            h.write_i64(*i);
        }
        Value::Float(f) => {
            h.write_u8(4);
            h.write_u64(f.to_bits());
        }
        Value::String(s) => {
            h.write_u8(5);
            h.write_usize(s.len());
            h.write(s);
        }
        Value::Timestamp(t) => {
            h.write_u8(6);
            h.write_i64(t.0);
        }
        Value::Array(a) => {
            h.write_u8(7);
            h.write_usize(a.len());
            for x in a {
                hash_value(Some(x), h);
            }
        }
        Value::Map(m) => {
            h.write_u8(8);
            h.write_usize(m.len());
            for (k, x) in m.iter() {
                h.write_usize(k.len());
                h.write(k.as_bytes());
                hash_value(Some(x), h);
            }
        }
    }
}
