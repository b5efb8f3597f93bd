//! Templates for paths and names, rendered per event.
//!
//! A [`Template`] is text with two kinds of placeholders:
//!
//! * **strftime specifiers** (`%Y-%m-%d`, `%H`, any specifier chrono's
//!   [`strftime`](chrono::format::strftime) knows), rendered from the
//!   **event's** timestamp in UTC, not from the wall clock: an event from
//!   yesterday that arrives late still goes to yesterday's file;
//! * **field placeholders** `{field}` or `{a.b}` (a dotted path into nested
//!   maps), rendered with [`Value::to_text`]. A missing field renders as the
//!   empty string: a template never fails at run time.
//!
//! `%%` is a literal `%`; `{{` is a literal `{`; a `}` outside a placeholder is
//! literal. An unclosed `{`, an empty `{}` and an unknown strftime specifier
//! are rejected when the template is parsed, so a bad template is a config
//! error, never a run-time one.
//!
//! The template is parsed once into parts; strftime text is parsed once into
//! chrono [`Item`]s, so rendering neither re-parses nor allocates beyond the
//! output string (and what [`Value::to_text`] needs for non-strings).
//!
//! ```
//! use sluice_core::prelude::*;
//! use sluice_core::template::Template;
//!
//! let t = Template::parse("./out/{app}/%Y-%m-%d.log").unwrap();
//! let mut e = Event::new("hello", Timestamp(0));
//! e.insert("app", "web");
//! let mut path = String::new();
//! t.render(&e, &mut path);
//! assert_eq!(path, "./out/web/1970-01-01.log");
//! ```

use std::fmt::{self, Write as _};

use chrono::format::{Fixed, Item, Numeric, StrftimeItems};

use crate::event::{Event, Value};

/// Why a template was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("unclosed `{{` at byte {at} in template `{template}`: close it with `}}`, or write `{{{{` for a literal `{{`")]
    Unclosed {
        /// The template text.
        template: String,
        /// Byte offset of the `{`.
        at: usize,
    },
    /// `{}` or `{ }`.
    #[error("empty placeholder `{{}}` at byte {at} in template `{template}`: name a field, such as `{{host}}`")]
    EmptyField {
        /// The template text.
        template: String,
        /// Byte offset of the `{`.
        at: usize,
    },
    /// A strftime specifier chrono does not know (or a lone `%` at the end).
    #[error("invalid strftime specifier in `{text}` (template `{template}`): use specifiers such as `%Y`, `%m`, `%d`, `%H`, or `%%` for a literal `%`")]
    Strftime {
        /// The template text.
        template: String,
        /// The literal run that holds the bad specifier.
        text: String,
    },
}

/// One parsed piece of a template.
#[derive(Clone, Debug, PartialEq)]
enum Part {
    /// Text copied as is.
    Literal(String),
    /// Text with strftime specifiers, pre-parsed.
    Time(Vec<Item<'static>>),
    /// A field looked up by its dotted path.
    Field(String),
}

/// A parsed template (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// The text the template was parsed from, for messages and `Display`.
    source: String,
    /// The pieces, in order.
    parts: Vec<Part>,
    /// Whether some strftime specifier shows less than a second (`%f`,
    /// `%.3f`, `%+`...): then two events in the same second may render
    /// differently.
    subsecond: bool,
}

impl Template {
    /// Parses a template.
    ///
    /// # Errors
    ///
    /// An unclosed `{`, an empty `{}`, or an invalid strftime specifier.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(i) = rest.find('{') {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('{') {
                text.push('{');
                offset += i + 2;
                rest = stripped;
                continue;
            }
            let Some(close) = after.find('}') else {
                return Err(TemplateError::Unclosed {
                    template: source.to_string(),
                    at: offset + i,
                });
            };
            let name = after[..close].trim();
            if name.is_empty() {
                return Err(TemplateError::EmptyField {
                    template: source.to_string(),
                    at: offset + i,
                });
            }
            push_text(&mut parts, std::mem::take(&mut text), source)?;
            parts.push(Part::Field(name.to_string()));
            offset += i + 1 + close + 1;
            rest = &after[close + 1..];
        }
        text.push_str(rest);
        push_text(&mut parts, text, source)?;
        let subsecond = parts.iter().any(|p| match p {
            Part::Time(items) => items.iter().any(is_subsecond),
            _ => false,
        });
        Ok(Template {
            source: source.to_string(),
            parts,
            subsecond,
        })
    }

    /// Appends the template rendered for `event` to `out` (which is not
    /// cleared). Missing fields render as the empty string.
    pub fn render(&self, event: &Event, out: &mut String) {
        self.render_inner(event, out, false);
    }

    /// Like [`render`](Self::render), for file paths: in field values, `/`,
    /// `\` and NUL become `_`, and a value of `.` or `..` becomes `_`, so
    /// data from an event can never add path components or climb out of the
    /// directory the template names. Literal text and strftime output are
    /// kept as written.
    pub fn render_path(&self, event: &Event, out: &mut String) {
        self.render_inner(event, out, true);
    }

    /// The template rendered for `event`, as a new string.
    pub fn render_to_string(&self, event: &Event) -> String {
        let mut out = String::new();
        self.render(event, &mut out);
        out
    }

    fn render_inner(&self, event: &Event, out: &mut String, path_safe: bool) {
        let mut datetime = None;
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Time(items) => {
                    let dt = *datetime.get_or_insert_with(|| event.timestamp.to_datetime());
                    // Writing into a String cannot fail, and chrono only
                    // fails on items that cannot apply to a UTC date-time,
                    // which parse() already excluded.
                    let _ = write!(out, "{}", dt.format_with_items(items.iter()));
                }
                Part::Field(path) => {
                    let Some(value) = event.get(path) else {
                        continue;
                    };
                    if path_safe {
                        push_path_safe(out, value);
                    } else {
                        value.write_text(out);
                    }
                }
            }
        }
    }

    /// Whether the template has no placeholders at all: it renders the same
    /// for every event, so render it once.
    pub fn is_static(&self) -> bool {
        !self.has_fields() && !self.has_time()
    }

    /// Whether the template has `{field}` placeholders.
    pub fn has_fields(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// Whether the template has strftime specifiers.
    pub fn has_time(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Time(_)))
    }

    /// Whether some strftime specifier shows fractions of a second. When it
    /// does not (and there are no fields), two events whose timestamps fall
    /// in the same second render the same, which callers may use to cache.
    pub fn has_subsecond(&self) -> bool {
        self.subsecond
    }

    /// The text the template was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Adds a run of literal text (which may hold strftime specifiers).
fn push_text(parts: &mut Vec<Part>, text: String, source: &str) -> Result<(), TemplateError> {
    if text.is_empty() {
        return Ok(());
    }
    if !text.contains('%') {
        parts.push(Part::Literal(text));
        return Ok(());
    }
    let items =
        StrftimeItems::new(&text)
            .parse_to_owned()
            .map_err(|_| TemplateError::Strftime {
                template: source.to_string(),
                text: text.clone(),
            })?;
    // `%%` alone, or text whose specifiers are all literal, needs no clock.
    if items
        .iter()
        .all(|i| matches!(i, Item::Literal(_) | Item::OwnedLiteral(_)))
    {
        let mut lit = String::new();
        for i in &items {
            match i {
                Item::Literal(s) => lit.push_str(s),
                Item::OwnedLiteral(s) => lit.push_str(s),
                _ => {}
            }
        }
        parts.push(Part::Literal(lit));
    } else {
        parts.push(Part::Time(items));
    }
    Ok(())
}

fn is_subsecond(item: &Item<'_>) -> bool {
    matches!(
        item,
        Item::Numeric(Numeric::Nanosecond, _)
            | Item::Fixed(
                Fixed::Nanosecond
                    | Fixed::Nanosecond3
                    | Fixed::Nanosecond6
                    | Fixed::Nanosecond9
                    | Fixed::RFC3339
                    | Fixed::Internal(_)
            )
    )
}

fn push_path_safe(out: &mut String, value: &Value) {
    let start = out.len();
    value.write_text(out);
    let text = &out[start..];
    if text == "." || text == ".." {
        out.truncate(start);
        out.push('_');
        return;
    }
    if text.contains(['/', '\\', '\0']) {
        let safe = text.replace(['/', '\\', '\0'], "_");
        out.truncate(start);
        out.push_str(&safe);
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Template {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Template;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a template string such as `./out/{app}-%Y-%m-%d.log`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Template, E> {
                Template::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    /// 2026-11-26T04:43:11.123456789Z
    const TS: Timestamp = Timestamp(1_795_668_191_123_456_789);

    fn event() -> Event {
        let mut e = Event::new("body", TS);
        e.insert("app", "web");
        e.insert("http.status", 200i64);
        e
    }

    fn render(t: &str, e: &Event) -> String {
        Template::parse(t).unwrap().render_to_string(e)
    }

    #[test]
    fn literal_is_static() {
        let t = Template::parse("/var/log/out.log").unwrap();
        assert!(t.is_static());
        assert!(!t.has_fields() && !t.has_time());
        assert_eq!(t.render_to_string(&event()), "/var/log/out.log");
        assert_eq!(t.to_string(), "/var/log/out.log");
    }

    #[test]
    fn strftime_uses_event_timestamp_in_utc() {
        let e = event();
        assert_eq!(TS.to_string(), "2026-11-26T04:43:11.123456Z");
        assert_eq!(render("out-%Y-%m-%d/%H.log", &e), "out-2026-11-26/04.log");
        assert_eq!(render("%s", &e), "1795668191");
        assert_eq!(render("%b %e %z", &e), "Nov 26 +0000");
        let t = Template::parse("x-%Y").unwrap();
        assert!(t.has_time() && !t.has_fields() && !t.is_static() && !t.has_subsecond());
    }

    #[test]
    fn subsecond_specifiers_are_flagged() {
        for s in ["%f", "%.3f", "%3f", "%+", "%.f"] {
            assert!(Template::parse(s).unwrap().has_subsecond(), "{s}");
        }
        assert_eq!(render("%.3f", &event()), ".123");
    }

    #[test]
    fn fields_render_with_to_text_and_missing_is_empty() {
        let e = event();
        assert_eq!(render("{app}-{http.status}.log", &e), "web-200.log");
        assert_eq!(render("a{missing}b{http.nope}c", &e), "abc");
        assert_eq!(render("{ app }", &e), "web");
        assert_eq!(render("{http}", &e), r#"{"status":200}"#);
        let t = Template::parse("{app}").unwrap();
        assert!(t.has_fields() && !t.has_time() && !t.is_static());
    }

    #[test]
    fn mixed_fields_and_time() {
        assert_eq!(
            render("./out/{app}/%Y/%m/{app}-%d.log", &event()),
            "./out/web/2026/11/web-26.log"
        );
    }

    #[test]
    fn escapes() {
        let e = event();
        assert_eq!(render("100%% {{app}} }", &e), "100% {app}} }");
        assert!(Template::parse("100%%").unwrap().is_static());
        assert_eq!(render("{{{app}}}", &e), "{web}}");
    }

    #[test]
    fn render_appends() {
        let t = Template::parse("{app}").unwrap();
        let mut out = String::from("x:");
        t.render(&event(), &mut out);
        assert_eq!(out, "x:web");
    }

    #[test]
    fn render_path_keeps_fields_inside_their_segment() {
        let mut e = event();
        e.insert("app", "../../etc/passwd");
        let t = Template::parse("./out/{app}.log").unwrap();
        let mut out = String::new();
        t.render_path(&e, &mut out);
        assert_eq!(out, "./out/.._.._etc_passwd.log");
        e.insert("app", "..");
        out.clear();
        t.render_path(&e, &mut out);
        assert_eq!(out, "./out/_.log");
        assert_eq!(t.render_to_string(&e), "./out/...log");
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Template::parse("a{b"),
            Err(TemplateError::Unclosed { at: 1, .. })
        ));
        assert!(matches!(
            Template::parse("{{x}{y"),
            Err(TemplateError::Unclosed { at: 4, .. })
        ));
        assert!(matches!(
            Template::parse("a{ }"),
            Err(TemplateError::EmptyField { at: 1, .. })
        ));
        let e = Template::parse("{app}-%Q").unwrap_err();
        assert!(matches!(e, TemplateError::Strftime { .. }));
        assert!(e.to_string().contains("%Q"), "{e}");
        assert!(Template::parse("trailing %").is_err());
    }

    #[test]
    fn deserializes_from_a_string() {
        #[derive(serde::Deserialize)]
        struct C {
            path: Template,
        }
        let c: C = crate::config::from_yaml_str("path: ./out/{app}-%Y.log\n").unwrap();
        assert_eq!(c.path.as_str(), "./out/{app}-%Y.log");
        let e = crate::config::from_yaml_str::<C>("path: ./out/%Q.log\n")
            .err()
            .unwrap();
        assert!(e.message.contains("invalid strftime"), "{}", e.message);
        assert!(e.pos.is_some());
    }
}
