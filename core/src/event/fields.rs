//! [`Fields`]: the structured fields of an event, a small map kept as a
//! vector in insertion order.
//!
//! Why not a `BTreeMap<String, Value>`: an event usually has a handful of
//! fields, and a B-tree allocates a node of several hundred bytes for the
//! first one, plus a `String` per key. Here one event's fields are one
//! vector allocation, and names are [`FieldName`]s (`SmolStr`): names up to
//! 23 bytes live inline, so a processor that adds the same names to every
//! event clones them without allocating. Lookups are linear, which beats
//! hashing or tree walks at these sizes.
//!
//! A map can also be *shared* ([`Fields::into_shared`]): its clones then
//! share one reference-counted list of entries, copied on the first change
//! of one of them. A source that stamps the same fields on every event of a
//! batch (the `file` source's `file`) builds them once per batch and clones
//! them into each event without allocating.
//!
//! Past [`INDEXED_FROM`] fields a linear lookup would make building a map
//! cost the square of its size (a hostile JSON object of 20,000 keys took
//! seconds), so a larger map also keeps a hash index from name to position
//! (std's `HashMap` with its randomly keyed hasher, so that chosen names
//! cannot make it slow either). Small maps never allocate one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::Value;

/// A field name: inline up to 23 bytes, cheap to clone.
pub type FieldName = smol_str::SmolStr;

/// The default `max_fields` of the components that build events from
/// outside input (`http`, `sluice` sources, `parse_json`): the most fields,
/// counted by [`Fields::deep_len`], one event may have.
pub const DEFAULT_MAX_FIELDS: usize = 1000;

/// From this many fields on, a map keeps a hash index of its names.
pub const INDEXED_FROM: usize = 32;

/// An event's fields (or a nested map), in insertion order, names unique.
#[derive(Clone, Default)]
pub struct Fields {
    entries: Entries,
    /// Position of each name in `entries`, kept only while the map has at
    /// least [`INDEXED_FROM`] fields. Boxed so that small maps pay one word
    /// (a `HashMap` itself is six): `Fields` stays 32 bytes and `Value`, which
    /// holds one inline, does not grow.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<FieldName, usize>>>,
}

/// The entries of a [`Fields`]: owned, or shared with its clones until one
/// of them changes.
#[derive(Clone)]
enum Entries {
    Owned(Vec<(FieldName, Value)>),
    /// A `Vec` behind the count, not a slice: sharing a list moves no
    /// entries, and the last holder takes the vector back without copying.
    Shared(Arc<Vec<(FieldName, Value)>>),
}

impl Default for Entries {
    fn default() -> Self {
        Entries::Owned(Vec::new())
    }
}

impl std::ops::Deref for Entries {
    type Target = [(FieldName, Value)];
    fn deref(&self) -> &Self::Target {
        match self {
            Entries::Owned(v) => v,
            Entries::Shared(s) => s.as_slice(),
        }
    }
}

impl Entries {
    /// The entries, owned: a shared list is copied first (with room for a
    /// few more, as a processor adding fields will want).
    fn owned(&mut self) -> &mut Vec<(FieldName, Value)> {
        self.owned_with_room(0)
    }

    /// The entries, owned, a shared list copied with room for `more` and
    /// [`SPARE`] besides: the processors after the one that copies often
    /// add a field or two (a template id after the captures), which would
    /// otherwise move the whole list to a larger allocation.
    fn owned_with_room(&mut self, more: usize) -> &mut Vec<(FieldName, Value)> {
        /// Entries of room kept past what the first writer asks for.
        const SPARE: usize = 2;
        if let Entries::Shared(s) = self {
            let v = match Arc::get_mut(s) {
                // The last holder: the vector is taken back as it is.
                Some(v) => {
                    let mut v = std::mem::take(v);
                    v.reserve(more + SPARE);
                    v
                }
                None => {
                    let mut v = Vec::with_capacity(s.len() + more + SPARE);
                    v.extend_from_slice(s);
                    v
                }
            };
            *self = Entries::Owned(v);
        }
        match self {
            Entries::Owned(v) => v,
            Entries::Shared(_) => unreachable!("made owned above"),
        }
    }

    fn into_vec(self) -> Vec<(FieldName, Value)> {
        match self {
            Entries::Owned(v) => v,
            Entries::Shared(s) => Arc::try_unwrap(s).unwrap_or_else(|s| s.to_vec()),
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Entries::Owned(v) => v.capacity(),
            Entries::Shared(s) => s.len(),
        }
    }
}

impl Fields {
    /// An empty map (allocates nothing).
    pub const fn new() -> Self {
        Fields {
            entries: Entries::Owned(Vec::new()),
            index: None,
        }
    }

    /// An empty map with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Fields {
            entries: Entries::Owned(Vec::with_capacity(n)),
            index: None,
        }
    }

    /// This map, made shareable: cloning it (and its clones) then costs a
    /// reference count instead of copying the entries, and the first change
    /// to a clone copies them for that clone only. For fields stamped on
    /// every event of a batch: build them once, clone them into each event.
    pub fn into_shared(self) -> Self {
        let entries = match self.entries {
            Entries::Owned(v) => Entries::Shared(Arc::new(v)),
            shared => shared,
        };
        Fields {
            entries,
            index: self.index,
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of fields at every depth: each field of this map counts once,
    /// and so does each field of every map nested in it, including maps
    /// inside arrays. `{"a": 1, "b": {"c": 2, "d": [{"e": 3}]}}` has 5.
    /// Other array elements do not count. This is what `max_fields` limits.
    pub fn deep_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, v)| 1 + v.deep_len())
            .sum::<usize>()
    }

    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            None => self.entries.iter().position(|(k, _)| k.as_str() == name),
            Some(index) => index.get(name).copied(),
        }
    }

    /// Rebuilds the index after entries moved, or drops it when the map
    /// became small. Out of line: the small-map paths stay compact.
    #[inline(never)]
    fn reindex(&mut self) {
        if self.entries.len() < INDEXED_FROM {
            self.index = None;
            return;
        }
        let cap = self.entries.capacity();
        let index = self
            .index
            .get_or_insert_with(|| Box::new(HashMap::with_capacity(cap)));
        index.clear();
        index.extend(
            self.entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i)),
        );
    }

    /// Appends a field known to be new.
    fn push(&mut self, name: FieldName, value: Value) -> usize {
        let i = self.entries.len();
        if let Some(index) = &mut self.index {
            index.insert(name.clone(), i);
            self.entries.owned().push((name, value));
        } else {
            self.entries.owned().push((name, value));
            if self.entries.len() >= INDEXED_FROM {
                self.reindex();
            }
        }
        i
    }

    /// The value of field `name` (not a dotted path: see [`get_path`](super::get_path)).
    pub fn get(&self, name: &str) -> Option<&Value> {
        match &self.index {
            None => self
                .entries
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .map(|(_, v)| v),
            Some(index) => index
                .get(name)
                .and_then(|&i| self.entries.get(i))
                .map(|(_, v)| v),
        }
    }

    /// The value of field `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        match &self.index {
            None => {
                let i = self.entries.iter().position(|(k, _)| k.as_str() == name)?;
                Some(&mut self.entries.owned()[i].1)
            }
            Some(index) => {
                let i = *index.get(name)?;
                self.entries.owned().get_mut(i).map(|(_, v)| v)
            }
        }
    }

    /// Whether field `name` exists.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets field `name`, returning the old value. A new field goes last; an
    /// existing one keeps its place.
    pub fn insert(&mut self, name: impl Into<FieldName>, value: Value) -> Option<Value> {
        let name = name.into();
        if self.index.is_some() {
            return self.insert_indexed(name, value);
        }
        let found = self
            .entries
            .iter()
            .position(|(k, _)| k.as_str() == name.as_str());
        if let Some(i) = found {
            return Some(std::mem::replace(&mut self.entries.owned()[i].1, value));
        }
        self.entries.owned().push((name, value));
        if self.entries.len() >= INDEXED_FROM {
            self.reindex();
        }
        None
    }

    #[inline(never)]
    fn insert_indexed(&mut self, name: FieldName, value: Value) -> Option<Value> {
        match self.position(&name) {
            Some(i) => Some(std::mem::replace(&mut self.entries.owned()[i].1, value)),
            None => {
                self.push(name, value);
                None
            }
        }
    }

    /// The value of field `name`, inserting `make()` first when missing.
    pub fn get_or_insert_with(
        &mut self,
        name: impl Into<FieldName>,
        make: impl FnOnce() -> Value,
    ) -> &mut Value {
        let name = name.into();
        let i = match self.position(&name) {
            Some(i) => i,
            None => self.push(name, make()),
        };
        &mut self.entries.owned()[i].1
    }

    /// Removes field `name`, keeping the order of the others.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.position(name)?;
        let (_, v) = self.entries.owned().remove(i);
        if let Some(index) = &mut self.index {
            index.remove(name);
            for at in index.values_mut() {
                if *at > i {
                    *at -= 1;
                }
            }
            if self.entries.len() < INDEXED_FROM {
                self.index = None;
            }
        }
        Some(v)
    }

    /// Keeps the fields for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&FieldName, &mut Value) -> bool) {
        let before = self.entries.len();
        self.entries.owned().retain_mut(|(k, v)| keep(k, v));
        if self.index.is_some() && self.entries.len() != before {
            self.reindex();
        }
    }

    /// The fields in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&FieldName, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The fields in order, values mutable.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (&FieldName, &mut Value)> {
        self.entries.owned().iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The names in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &FieldName> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl Fields {
    /// Sets every field of `iter`, as [`Extend::extend`] does, for names
    /// known to be distinct from each other (the named captures of a regex):
    /// each is looked up among the fields the map had before the call only,
    /// not among the ones just added. A name repeated in `iter` would be
    /// added twice.
    pub fn extend_distinct(&mut self, iter: impl IntoIterator<Item = (FieldName, Value)>) {
        let iter = iter.into_iter();
        let before = self.entries.len();
        if self.index.is_some() || before + iter.size_hint().0 >= INDEXED_FROM {
            return self.extend(iter);
        }
        let more = iter.size_hint().0;
        let entries = self.entries.owned_with_room(more);
        entries.reserve(more);
        for (name, value) in iter {
            let found = entries[..before]
                .iter()
                .position(|(k, _)| k.as_str() == name.as_str());
            match found {
                Some(i) => entries[i].1 = value,
                None => entries.push((name, value)),
            }
        }
        if entries.len() >= INDEXED_FROM {
            self.reindex();
        }
    }
}

/// Equal when the same fields are in the same order (the index is only a
/// cache of the entries).
impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        *self.entries == *other.entries
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<FieldName>> Extend<(K, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        let more = iter.size_hint().0;
        self.entries.owned_with_room(more).reserve(more);
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Into<FieldName>> FromIterator<(K, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut f = Fields::new();
        f.extend(iter);
        f
    }
}

impl IntoIterator for Fields {
    type Item = (FieldName, Value);
    type IntoIter = std::vec::IntoIter<(FieldName, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a FieldName, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (FieldName, Value)>,
        fn(&'a (FieldName, Value)) -> (&'a FieldName, &'a Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl serde::Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.entries.iter().map(|(k, v)| (k.as_str(), v)))
    }
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Fields, A::Error> {
                read_map(a)
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads a serde map into `Fields`; a repeated name keeps its first place
/// and its last value.
pub(super) fn read_map<'de, A: serde::de::MapAccess<'de>>(mut a: A) -> Result<Fields, A::Error> {
    let mut m = Fields::with_capacity(a.size_hint().unwrap_or(0).min(64));
    while let Some((k, v)) = a.next_entry::<std::borrow::Cow<'de, str>, Value>()? {
        m.insert(FieldName::from(k.as_ref()), v);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insertion_order_and_replacement() {
        let mut f = Fields::new();
        assert_eq!(f.insert("b", Value::Integer(1)), None);
        f.insert("a", Value::Integer(2));
        assert_eq!(f.insert("b", Value::Integer(3)), Some(Value::Integer(1)));
        let keys: Vec<&str> = f.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(f.remove("b"), Some(Value::Integer(3)));
        assert_eq!(f.len(), 1);
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"a":2}"#);
        let back: Fields = serde_json::from_str(r#"{"x":"y","n":[1,2]}"#).unwrap();
        assert_eq!(back.get("x").and_then(Value::as_str), Some("y"));
    }

    /// The indexed map behaves exactly like a plain list of pairs, across
    /// the size where the index appears and disappears.
    #[test]
    fn a_large_map_agrees_with_a_linear_model() {
        let mut f = Fields::new();
        let mut model: Vec<(String, i64)> = Vec::new();
        let mut x = 7u64;
        let mut indexed_steps = 0;
        for step in 0..4000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let name = format!("k{}", x % 80);
            let found = model.iter().position(|(k, _)| *k == name);
            match x % 5 {
                0 => {
                    let got = f.remove(&name);
                    let want = found.map(|i| model.remove(i).1);
                    assert_eq!(got, want.map(Value::Integer));
                }
                1 => {
                    f.retain(|k, _| !k.ends_with('3'));
                    model.retain(|(k, _)| !k.ends_with('3'));
                }
                _ => {
                    let old = f.insert(name.as_str(), Value::Integer(step));
                    assert_eq!(old, found.map(|i| Value::Integer(model[i].1)));
                    match found {
                        Some(i) => model[i].1 = step,
                        None => model.push((name, step)),
                    }
                }
            }
            let keys: Vec<&str> = f.keys().map(|k| k.as_str()).collect();
            let want: Vec<&str> = model.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, want, "step {step}");
            for (k, v) in &model {
                assert_eq!(f.get(k), Some(&Value::Integer(*v)), "step {step}");
            }
            assert_eq!(f.get("absent"), None);
            assert_eq!(f.index.is_some(), f.len() >= INDEXED_FROM, "step {step}");
            indexed_steps += usize::from(f.index.is_some());
        }
        assert!((100..3900).contains(&indexed_steps), "{indexed_steps}");
    }

    #[test]
    fn twenty_thousand_fields_keep_their_order_and_the_last_duplicate() {
        let mut text = String::from("{");
        for i in 0..20_000 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str("\"k5\":-1}");
        let f: Fields = serde_json::from_str(&text).unwrap();
        assert_eq!(f.len(), 20_000);
        assert_eq!(f.get("k5"), Some(&Value::Integer(-1)));
        assert_eq!(f.get("k19999"), Some(&Value::Integer(19_999)));
        assert_eq!(f.keys().nth(6).map(|k| k.as_str()), Some("k6"));
        assert_eq!(f.deep_len(), 20_000);
    }

    #[test]
    fn the_index_does_not_grow_values() {
        assert_eq!(std::mem::size_of::<Fields>(), 32);
        assert!(std::mem::size_of::<Value>() <= 40);
    }

    #[test]
    fn a_shared_map_is_copied_on_its_first_change_only() {
        let mut one = Fields::new();
        one.insert("file", Value::from("/var/log/a.log"));
        let one = one.into_shared();
        let mut two = one.clone();
        let three = two.clone();
        assert_eq!(two, one);
        two.insert("n", Value::Integer(1));
        *two.get_mut("file").unwrap() = Value::from("b");
        assert_eq!(two.len(), 2);
        assert_eq!(two.get("file").and_then(Value::as_str), Some("b"));
        assert_eq!(one.len(), 1);
        assert_eq!(
            three.get("file").and_then(Value::as_str),
            Some("/var/log/a.log")
        );
        let pairs: Vec<(FieldName, Value)> = three.into_iter().collect();
        assert_eq!(pairs, [("file".into(), Value::from("/var/log/a.log"))]);
        let mut four = one.clone();
        assert_eq!(
            four.remove("file")
                .and_then(|v| v.as_str().map(String::from)),
            Some("/var/log/a.log".into())
        );
        assert!(four.is_empty());
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn the_last_holder_of_a_shared_map_changes_it_in_place() {
        // Room for what is added below: taking the list back must not move it.
        let mut one = Fields::with_capacity(8);
        one.insert("file", Value::from("a.log"));
        let mut one = one.into_shared();
        let two = one.clone();
        drop(two);
        // No other holder: the list is taken back, not copied.
        let before = one.entries.as_ptr();
        one.insert("n", Value::Integer(1));
        assert_eq!(one.entries.as_ptr(), before);
        assert_eq!(one.get("file").and_then(Value::as_str), Some("a.log"));
        assert_eq!(one.get("n"), Some(&Value::Integer(1)));
        // With another holder, the change is the changer's alone.
        let mut three = one.into_shared();
        let four = three.clone();
        three.insert("n", Value::Integer(2));
        assert_eq!(four.get("n"), Some(&Value::Integer(1)));
        assert_eq!(three.get("n"), Some(&Value::Integer(2)));
        let pairs: Vec<(FieldName, Value)> = four.into_iter().collect();
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn extend_distinct_replaces_old_fields_and_appends_new_ones() {
        let mut f = Fields::new();
        f.insert("b", Value::Integer(1));
        f.insert("file", Value::Integer(2));
        let f = f.into_shared();
        let mut g = f.clone();
        g.extend_distinct([
            ("a".into(), Value::Integer(3)),
            ("b".into(), Value::Integer(4)),
        ]);
        let pairs: Vec<(FieldName, Value)> = g.into_iter().collect();
        let want: Vec<(FieldName, Value)> = vec![
            ("b".into(), Value::Integer(4)),
            ("file".into(), Value::Integer(2)),
            ("a".into(), Value::Integer(3)),
        ];
        assert_eq!(pairs, want);
        assert_eq!(f.get("b"), Some(&Value::Integer(1)));
        let mut big = Fields::new();
        big.extend_distinct((0..40).map(|i| (FieldName::from(format!("k{i}")), Value::Integer(i))));
        assert_eq!(big.len(), 40);
        assert!(big.index.is_some());
        assert_eq!(big.get("k39"), Some(&Value::Integer(39)));
    }

    #[test]
    fn deep_len_counts_nested_map_fields() {
        let f: Fields =
            serde_json::from_str(r#"{"a":1,"b":{"c":2,"d":[{"e":3},4,[{"f":5}]]}}"#).unwrap();
        assert_eq!(f.deep_len(), 6);
        assert_eq!(Fields::new().deep_len(), 0);
    }
}
