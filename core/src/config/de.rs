//! A serde `Deserializer` over [`Node`]: turns a component's YAML mapping into
//! its typed config, and tags every error with the position of the node at
//! fault (the unknown key, the mistyped value, the mapping missing a field).

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::node::{Node, NodeKind, Pos};
use super::suggest::nearest;

/// A config error: where and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// Where, when known.
    pub pos: Option<Pos>,
    /// What is wrong.
    pub message: String,
    /// Whether `message` already names the option at fault (so an
    /// enclosing mapping does not name another).
    named: bool,
}

impl ConfigError {
    /// An error at `pos`.
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        ConfigError {
            pos: Some(pos),
            message: message.into(),
            named: false,
        }
    }

    /// Names the option `key` whose value is at fault, unless a nested
    /// option is already named: "`capacity` must be a whole number above 0".
    fn in_option(mut self, key: &Node) -> Self {
        if self.named {
            return self;
        }
        let key = match &key.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Int(i) => i.to_string(),
            _ => return self,
        };
        self.message = if self.message.starts_with("must ") {
            format!("`{key}` {}", self.message)
        } else {
            format!("`{key}`: {}", self.message)
        };
        self.named = true;
        self
    }

    fn or_at(mut self, pos: Pos) -> Self {
        if self.pos.is_none() {
            self.pos = Some(pos);
        }
        self
    }
}

impl de::Error for ConfigError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ConfigError {
            pos: None,
            message: msg.to_string(),
            named: false,
        }
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        ConfigError::custom(format!(
            "must be {}, found {}",
            expected_words(&exp.to_string()),
            unexpected_words(&unexp)
        ))
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut message = format!("unknown option `{field}`");
        if let Some(s) = nearest(field, expected.iter().copied()) {
            message.push_str(&format!(": did you mean `{s}`?"));
        } else if expected.is_empty() {
            message.push_str(": this component takes no options");
        } else {
            message.push_str(&format!(
                " (valid options: {})",
                expected
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        ConfigError::custom(message)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let list = expected
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut message = format!("unknown value `{variant}`, expected one of {list}");
        if let Some(s) = nearest(variant, expected.iter().copied()) {
            message =
                format!("unknown value `{variant}`: did you mean `{s}`? (expected one of {list})");
        }
        ConfigError::custom(message)
    }

    fn missing_field(field: &'static str) -> Self {
        ConfigError::custom(format!("missing required option `{field}`"))
    }
}

/// What serde's "expected ..." says, in a user's words: `a nonzero usize`
/// becomes `a whole number above 0`.
fn expected_words(exp: &str) -> String {
    let e = exp.trim_start_matches("a ").trim_start_matches("an ");
    let unsigned = ["u8", "u16", "u32", "u64", "u128", "usize"];
    let signed = ["i8", "i16", "i32", "i64", "i128", "isize"];
    if let Some(t) = e.strip_prefix("nonzero ") {
        if unsigned.contains(&t) || signed.contains(&t) {
            return "a whole number above 0".into();
        }
    }
    match e {
        t if unsigned.contains(&t) => "a whole number (0 or more)".into(),
        t if signed.contains(&t) => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "boolean" => "`true` or `false`".into(),
        "string" | "borrowed string" => "text".into(),
        "character" => "one character".into(),
        "sequence" => "a list (`[a, b]`)".into(),
        "map" => "a mapping (`{key: value}`)".into(),
        t if t.starts_with("struct ") => "a mapping of options (`{key: value}`)".into(),
        _ => exp.to_string(),
    }
}

/// What was found, in a user's words.
fn unexpected_words(u: &de::Unexpected) -> String {
    use de::Unexpected as U;
    match u {
        U::Unit => "nothing (an empty value)".into(),
        U::Bool(b) => format!("`{b}`"),
        U::Unsigned(n) => format!("`{n}`"),
        U::Signed(n) => format!("`{n}`"),
        U::Float(f) => format!("`{f}`"),
        U::Char(c) => format!("`{c}`"),
        U::Str("") => "empty text".into(),
        U::Str(s) => format!("the text `{s}`"),
        U::Seq => "a list".into(),
        U::Map => "a mapping".into(),
        other => other.to_string(),
    }
}

/// Deserializes `T` from a node.
pub fn from_node<T: de::DeserializeOwned>(node: &Node) -> Result<T, ConfigError> {
    T::deserialize(NodeDe(node))
}

/// The option names of a config struct (empty for non-structs).
pub fn field_names<T: de::DeserializeOwned>() -> &'static [&'static str] {
    let mut out: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut out));
    out
}

struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = ConfigError;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ConfigError> {
        Err(de::Error::custom("not a struct"))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, ConfigError> {
        *self.0 = fields;
        Err(de::Error::custom("captured"))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[derive(Clone, Copy)]
struct NodeDe<'a>(&'a Node);

impl NodeDe<'_> {
    fn text(&self) -> Option<String> {
        match &self.0.kind {
            NodeKind::Str(s) => Some(s.clone()),
            NodeKind::Int(i) => Some(i.to_string()),
            NodeKind::Float(f) => Some(f.to_string()),
            NodeKind::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = ConfigError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let pos = self.0.pos;
        let r = match &self.0.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Int(i) => visitor.visit_i64(*i),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::Str(s) => visitor.visit_str(s),
            NodeKind::Seq(items) => visitor.visit_seq(SeqAcc { iter: items.iter() }),
            NodeKind::Map(entries) => visitor.visit_map(MapAcc {
                iter: entries.iter(),
                value: None,
            }),
        };
        r.map_err(|e| e.or_at(pos))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.0.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.text() {
            Some(s) => visitor
                .visit_string(s)
                .map_err(|e: ConfigError| e.or_at(self.0.pos)),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match &self.0.kind {
            NodeKind::Str(s) if s == "true" || s == "false" => visitor
                .visit_bool(s == "true")
                .map_err(|e: ConfigError| e.or_at(self.0.pos)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.number(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.number(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.number(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.number(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.number(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.number(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.number(visitor)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.number(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let pos = self.0.pos;
        let r = match &self.0.kind {
            NodeKind::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            NodeKind::Map(entries) if entries.len() == 1 => visitor.visit_enum(EnumAcc {
                key: &entries[0].0,
                value: &entries[0].1,
            }),
            _ => Err(<ConfigError as de::Error>::custom(format!(
                "expected a string naming a variant, found {}",
                self.0.type_name()
            ))),
        };
        r.map_err(|e| e.or_at(pos))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i128 u128 char
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier
    }
}

impl NodeDe<'_> {
    /// A number option also accepts a quoted number (`count: "${N}"`, which
    /// flow mappings need).
    fn number<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        use de::Deserializer as _;
        if let NodeKind::Str(s) = &self.0.kind {
            let pos = self.0.pos;
            if let Ok(i) = s.trim().parse::<i64>() {
                return visitor.visit_i64(i).map_err(|e: ConfigError| e.or_at(pos));
            }
            if let Ok(f) = s.trim().parse::<f64>() {
                return visitor.visit_f64(f).map_err(|e: ConfigError| e.or_at(pos));
            }
        }
        self.deserialize_any(visitor)
    }
}

struct SeqAcc<'a> {
    iter: std::slice::Iter<'a, Node>,
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'_> {
    type Error = ConfigError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ConfigError> {
        match self.iter.next() {
            Some(n) => seed
                .deserialize(NodeDe(n))
                .map(Some)
                .map_err(|e| e.or_at(n.pos)),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapAcc<'a> {
    iter: std::slice::Iter<'a, (Node, Node)>,
    /// The value of the key just read, and that key.
    value: Option<(&'a Node, &'a Node)>,
}

impl<'de> de::MapAccess<'de> for MapAcc<'_> {
    type Error = ConfigError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ConfigError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some((k, v));
                seed.deserialize(NodeDe(k))
                    .map(Some)
                    .map_err(|e| e.or_at(k.pos))
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ConfigError> {
        match self.value.take() {
            Some((k, v)) => seed
                .deserialize(NodeDe(v))
                .map_err(|e| e.or_at(v.pos).in_option(k)),
            None => Err(<ConfigError as de::Error>::custom("value without a key")),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct EnumAcc<'a> {
    key: &'a Node,
    value: &'a Node,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumAcc<'a> {
    type Error = ConfigError;
    type Variant = NodeDe<'a>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'a>), ConfigError> {
        let v = seed
            .deserialize(NodeDe(self.key))
            .map_err(|e| e.or_at(self.key.pos))?;
        Ok((v, NodeDe(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'_> {
    type Error = ConfigError;
    fn unit_variant(self) -> Result<(), ConfigError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ConfigError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::parse;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        path: String,
        #[serde(default)]
        count: Option<u64>,
        format: Format,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Format {
        Text,
        Json,
    }

    fn de(yaml: &str) -> Result<Cfg, ConfigError> {
        from_node(&parse(yaml, &|_| None).unwrap())
    }

    #[test]
    fn typed_config_parses() {
        let c = de("path: /x\ncount: 3\nformat: json\ntags: [a, 1]\n").unwrap();
        assert_eq!(c.count, Some(3));
        assert_eq!(c.format, Format::Json);
        assert_eq!(c.tags, vec!["a".to_string(), "1".to_string()]);
    }

    #[test]
    fn unknown_key_points_at_key_and_suggests() {
        let e = de("path: /x\nformat: json\ncuont: 3\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 3, col: 1 }));
        assert!(e.message.contains("did you mean `count`"), "{}", e.message);
    }

    #[test]
    fn wrong_type_points_at_value() {
        let e = de("path: /x\nformat: json\ncount: lots\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 3, col: 8 }));
        assert_eq!(
            e.message,
            "`count` must be a whole number (0 or more), found the text `lots`"
        );
    }

    #[test]
    fn serde_words_become_user_words() {
        assert_eq!(expected_words("a nonzero usize"), "a whole number above 0");
        assert_eq!(expected_words("u64"), "a whole number (0 or more)");
        assert_eq!(expected_words("a boolean"), "`true` or `false`");
        assert_eq!(expected_words("a sequence"), "a list (`[a, b]`)");
        assert_eq!(unexpected_words(&de::Unexpected::Str("")), "empty text");
        assert_eq!(
            unexpected_words(&de::Unexpected::Unit),
            "nothing (an empty value)"
        );
    }

    #[test]
    fn bad_variant_suggests() {
        let e = de("path: /x\nformat: jsn\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 2, col: 9 }));
        assert!(e.message.contains("did you mean `json`"), "{}", e.message);
    }

    #[test]
    fn missing_field_points_at_mapping() {
        let e = de("format: text\n").unwrap_err();
        assert!(e.message.contains("missing required option `path`"));
        assert_eq!(e.pos, Some(Pos { line: 1, col: 1 }));
    }

    #[test]
    fn field_names_are_captured() {
        assert_eq!(field_names::<Cfg>(), &["path", "count", "format", "tags"]);
    }
}
