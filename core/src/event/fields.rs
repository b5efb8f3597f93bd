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

use std::fmt;

use super::Value;

/// A field name: inline up to 23 bytes, cheap to clone.
pub type FieldName = smol_str::SmolStr;

/// An event's fields (or a nested map), in insertion order, names unique.
#[derive(Clone, Default, PartialEq)]
pub struct Fields {
    entries: Vec<(FieldName, Value)>,
}

impl Fields {
    /// An empty map (allocates nothing).
    pub const fn new() -> Self {
        Fields {
            entries: Vec::new(),
        }
    }

    /// An empty map with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Fields {
            entries: Vec::with_capacity(n),
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

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k.as_str() == name)
    }

    /// The value of field `name` (not a dotted path: see [`get_path`](super::get_path)).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v)
    }

    /// The value of field `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v)
    }

    /// Whether field `name` exists.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets field `name`, returning the old value. A new field goes last; an
    /// existing one keeps its place.
    pub fn insert(&mut self, name: impl Into<FieldName>, value: Value) -> Option<Value> {
        let name = name.into();
        match self.position(&name) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.entries.push((name, value));
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
            None => {
                self.entries.push((name, make()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }

    /// Removes field `name`, keeping the order of the others.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.position(name)?;
        Some(self.entries.remove(i).1)
    }

    /// Keeps the fields for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&FieldName, &mut Value) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// The fields in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&FieldName, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The fields in order, values mutable.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (&FieldName, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
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

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<FieldName>> Extend<(K, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.entries.reserve(iter.size_hint().0);
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
        self.entries.into_iter()
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
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Fields, A::Error> {
                let mut m = Fields::with_capacity(a.size_hint().unwrap_or(0).min(64));
                while let Some((k, v)) = a.next_entry::<std::borrow::Cow<'de, str>, Value>()? {
                    m.insert(FieldName::from(k.as_ref()), v);
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
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
}
