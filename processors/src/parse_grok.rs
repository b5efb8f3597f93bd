//! `parse_grok`: named grok patterns (`%{COMBINEDAPACHELOG}`,
//! `%{SYSLOGLINE}`, `%{IP:client} %{NUMBER:took:float}`) into fields.
//!
//! The standard pattern library (the one Logstash ships: grok, httpd,
//! linux-syslog, java, haproxy, ...) and the grok syntax parser come from
//! the `grok` crate. Expansion into one regex is done here, so that the
//! regex runs on bytes with reused capture slots and every capture is a
//! slice of the text's own buffer, as in `parse_regex`. The regex is the
//! `regex` crate's (linear time, no backtracking); the few library patterns
//! written with look-around or atomic groups, which it does not support,
//! are replaced by equivalents without them ([`OVERRIDES`]).
//!
//! As in Logstash, only named parts (`%{PATTERN:name}`) become fields; a
//! name may be a dotted path or `[a][b]`, and a third part converts the
//! value (`%{NUMBER:bytes:int}`: `int`, `float` or `bool`).

use std::collections::{BTreeMap, HashMap};

use grok::parser::{grok_split, GrokComponent};
use regex::bytes::{CaptureLocations, Regex, RegexBuilder};
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::parse_regex::{convert, Kind};

/// Library patterns rewritten for the `regex` crate: look-behind,
/// look-ahead and atomic groups removed (a word boundary stands in where
/// one keeps a number from starting or ending inside another).
pub const OVERRIDES: &[(&str, &str)] = &[
    ("BASE10NUM", r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"),
    ("BASE16NUM", r"[+-]?(?:0x)?[0-9A-Fa-f]+"),
    (
        "BASE16FLOAT",
        r"\b[+-]?(?:0x)?(?:[0-9A-Fa-f]+(?:\.[0-9A-Fa-f]*)?|\.[0-9A-Fa-f]+)\b",
    ),
    (
        "QUOTEDSTRING",
        r#""(?:\\.|[^\\"])*"|'(?:\\.|[^\\'])*'|`(?:\\.|[^\\`])*`"#,
    ),
    (
        "IPV4",
        r"\b(?:(?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])[.](?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])[.](?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])[.](?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]))\b",
    ),
    // Unbounded instead of `{1,64}`/`{0,63}`/`{0,62}`: bounded repetitions
    // are copied out state by state, and these two alone made
    // `%{COMBINEDAPACHELOG}` (through `HTTPDUSER`) a machine of some 10,000
    // states, matched several times slower. Label lengths are not checked.
    (
        "EMAILLOCALPART",
        r"[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~]+)*",
    ),
    (
        "HOSTNAME",
        r"\b[0-9A-Za-z][0-9A-Za-z-]*(?:\.[0-9A-Za-z][0-9A-Za-z-]*)*(\.?|\b)",
    ),
    ("WINPATH", r"(?:[A-Za-z]+:|\\)(?:\\[^\\?*]*)+"),
    ("YEAR", r"(?:\d\d){1,2}"),
    ("TIME", r"%{HOUR}:%{MINUTE}(?::%{SECOND})"),
    (
        "HAPROXYTIME",
        r"%{HOUR:haproxy_hour}:%{MINUTE:haproxy_minute}(?::%{SECOND:haproxy_second})",
    ),
    ("IPTABLES4_FRAG", r"(?:(?:CE|DF|MF)(?: (?:CE|DF|MF))*)?"),
    (
        "CISCO_TAGGED_SYSLOG",
        r"^<%{POSINT:syslog_pri}>%{CISCOTIMESTAMP:timestamp}( %{SYSLOGHOST:sysloghost})? ?: \x25%{CISCOTAG:ciscotag}:",
    ),
    ("RUUID", r"[0-9A-Fa-f]{32}"),
    ("MONGO_QUERY", r"\{ .* \}"),
    (
        "RPROCESSING",
        r"\W*Processing by %{RCONTROLLER} as (?<format>\S+)(?:\W*Parameters: \{%{DATA:params}\}\W*)?",
    ),
    (
        "SYSLOGPAMSESSION",
        r"%{SYSLOGBASE} %{WORD:pam_module}\(%{DATA:pam_caller}\): session %{WORD:pam_session_state} for user %{USERNAME:username}(?: by %{GREEDYDATA:pam_by})?",
    ),
];

/// How deep patterns may refer to patterns (the library goes about 8 deep).
const MAX_DEPTH: usize = 64;

/// The largest compiled regex accepted (`%{IPV6}` alone is large).
const SIZE_LIMIT: usize = 64 << 20;

/// Options of the `parse_grok` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// One grok pattern, such as `%{COMBINEDAPACHELOG}`.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Several patterns, tried in order; the first that matches wins.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Patterns of your own by name, usable as `%{NAME}` (they may refer to
    /// the library and to each other; they take precedence over the
    /// library).
    #[serde(default)]
    pub definitions: BTreeMap<String, String>,
    /// The field (dotted path) to match; the body when unset.
    #[serde(default)]
    pub field: Option<String>,
    /// Put the captures in a map under this field (dotted path) instead of
    /// at the top level.
    #[serde(default)]
    pub target: Option<String>,
    /// Conversions by field name: `integer`, `float` or `bool` (as the third
    /// part of `%{NUMBER:bytes:int}` does).
    #[serde(default)]
    pub types: BTreeMap<String, Kind>,
}

/// One named part of a compiled pattern.
#[derive(Clone, Debug)]
struct Capture {
    /// The regex group.
    group: usize,
    /// The field: a plain name, or a dotted path when `nested`.
    name: FieldName,
    nested: bool,
    kind: Option<Kind>,
}

/// A compiled pattern.
struct Compiled {
    regex: Regex,
    locations: CaptureLocations,
    captures: Vec<Capture>,
}

/// Expands grok references into one regex.
struct Expander<'a> {
    definitions: &'a BTreeMap<String, String>,
    library: HashMap<&'static str, &'static str>,
    out: String,
    /// Group name → (field, conversion named in the pattern).
    named: Vec<(String, String, Option<Kind>)>,
}

fn kind_of(s: &str) -> Result<Option<Kind>, String> {
    match s {
        "" => Ok(None),
        "int" | "integer" | "long" => Ok(Some(Kind::Integer)),
        "float" | "double" => Ok(Some(Kind::Float)),
        "bool" | "boolean" => Ok(Some(Kind::Bool)),
        other => Err(format!(
            "unknown conversion `{other}`: use int, float or bool"
        )),
    }
}

/// `[a][b]` → `a.b`; other names as written.
fn field_path(alias: &str) -> String {
    if alias.starts_with('[') && alias.ends_with(']') {
        alias[1..alias.len() - 1].replace("][", ".")
    } else {
        alias.to_string()
    }
}

impl<'a> Expander<'a> {
    fn new(definitions: &'a BTreeMap<String, String>) -> Self {
        let mut library: HashMap<&'static str, &'static str> =
            grok::patterns().iter().copied().collect();
        library.extend(OVERRIDES.iter().copied());
        Expander {
            definitions,
            library,
            out: String::new(),
            named: Vec::new(),
        }
    }

    fn lookup(&self, name: &str) -> Option<&str> {
        self.definitions
            .get(name)
            .map(String::as_str)
            .or_else(|| self.library.get(name).copied())
    }

    fn expand(&mut self, pattern: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "patterns refer to patterns more than {MAX_DEPTH} deep: is there a cycle?"
            ));
        }
        for part in grok_split(pattern) {
            match part {
                GrokComponent::RegularExpression { string, .. } => self.out.push_str(string),
                GrokComponent::GrokPattern {
                    name,
                    alias,
                    extract,
                    definition,
                    ..
                } => {
                    let body = if definition.is_empty() {
                        self.lookup(name)
                            .ok_or_else(|| format!("unknown grok pattern `{name}`"))?
                            .to_string()
                    } else {
                        definition.to_string()
                    };
                    if alias.is_empty() {
                        self.out.push_str("(?:");
                    } else {
                        let group = format!("g{}__", self.named.len());
                        let kind = kind_of(extract)
                            .map_err(|m| format!("`%{{{name}:{alias}:{extract}}}`: {m}"))?;
                        self.named.push((group.clone(), field_path(alias), kind));
                        self.out.push_str("(?P<");
                        self.out.push_str(&group);
                        self.out.push('>');
                    }
                    self.expand(&body, depth + 1)?;
                    self.out.push(')');
                }
                GrokComponent::PatternError(e) => {
                    return Err(format!("invalid grok syntax in `{pattern}`: {e:?}"))
                }
            }
        }
        Ok(())
    }
}

/// What a grok pattern expands to: the regex, and for each group it names,
/// the field and conversion.
type Expanded = (String, Vec<(String, String, Option<Kind>)>);

/// Expands one grok pattern into a regex.
fn expand(pattern: &str, definitions: &BTreeMap<String, String>) -> Result<Expanded, String> {
    // The grok syntax reader is third-party code fed with user text: a bug
    // there is a config error, not a crash.
    std::panic::catch_unwind(|| {
        let mut x = Expander::new(definitions);
        x.expand(pattern, 0).map(|()| (x.out, x.named))
    })
    .map_err(|_| format!("could not read the grok pattern `{pattern}`"))?
}

/// Compiles one grok pattern.
fn compile(
    pattern: &str,
    definitions: &BTreeMap<String, String>,
    types: &BTreeMap<String, Kind>,
) -> Result<Compiled, String> {
    let (regex_text, named) = expand(pattern, definitions)?;
    // ASCII classes, as Logstash's engine has them: `\d`, `\w`, `\s` and
    // `\b` over Unicode would make `%{IPV6}` alone a machine of thousands
    // of states, and matching several times slower.
    let regex = RegexBuilder::new(&regex_text)
        .unicode(false)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| format!("the pattern does not compile: {e}"))?;
    let by_group: HashMap<&str, &(String, String, Option<Kind>)> =
        named.iter().map(|n| (n.0.as_str(), n)).collect();
    let mut captures = Vec::new();
    for (group, name) in regex.capture_names().enumerate() {
        let Some(name) = name else { continue };
        // A group from the pattern or a raw `(?P<name>...)` of the user.
        let (field, kind) = match by_group.get(name) {
            Some((_, field, kind)) => (field.as_str(), *kind),
            None => (name, None),
        };
        captures.push(Capture {
            group,
            name: FieldName::from(field),
            nested: field.contains('.'),
            kind: types.get(field).copied().or(kind),
        });
    }
    if captures.is_empty() {
        return Err(format!(
            "`{pattern}` names no part, so it would extract nothing: name parts like %{{IP:client}}"
        ));
    }
    let locations = regex.capture_locations();
    Ok(Compiled {
        regex,
        locations,
        captures,
    })
}

impl Config {
    fn all_patterns(&self) -> impl Iterator<Item = &String> {
        self.pattern.iter().chain(&self.patterns)
    }

    fn compile_all(&self) -> Result<Vec<Compiled>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut out = Vec::new();
        let key = if self.pattern.is_some() {
            "pattern"
        } else {
            "patterns"
        };
        for p in self.all_patterns() {
            match compile(p, &self.definitions, &self.types) {
                Ok(c) => out.push(c),
                Err(m) => problems.push(Problem::at(key, m)),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        match (self.pattern.is_some(), self.patterns.is_empty()) {
            (false, true) => problems.push(Problem::new(
                "give a grok `pattern` (such as `%{COMBINEDAPACHELOG}`) or a list of `patterns`",
            )),
            (true, false) => problems.push(Problem::at(
                "patterns",
                "give either `pattern` or `patterns`, not both",
            )),
            _ => {}
        }
        match self.compile_all() {
            Ok(compiled) => {
                for name in self.types.keys() {
                    let known = compiled
                        .iter()
                        .flat_map(|c| &c.captures)
                        .any(|c| c.name == *name);
                    if !known {
                        problems.push(Problem::at(
                            "types",
                            format!("`{name}` is not a named part of the patterns"),
                        ));
                    }
                }
            }
            Err(p) => problems.extend(p),
        }
        for (key, path) in [("field", &self.field), ("target", &self.target)] {
            problems.extend(path.as_deref().and_then(|p| crate::check_path(key, p)));
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        let patterns = self.compile_all().map_err(|p| {
            BuildError::Other(
                p.into_iter()
                    .map(|p| p.message)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Ok(Box::new(ParseGrok {
            patterns,
            field: self.field.clone(),
            target: self.target.clone(),
        }))
    }
}

/// The `parse_grok` processor.
struct ParseGrok {
    patterns: Vec<Compiled>,
    field: Option<String>,
    target: Option<String>,
}

impl ParseGrok {
    fn parse(&mut self, e: &mut Event) -> Result<(), String> {
        let text = crate::input_text(e, self.field.as_deref())?;
        let Some(c) = self.patterns.iter_mut().find_map(|c| {
            c.regex
                .captures_read(&mut c.locations, &text)
                .is_some()
                .then_some(c)
        }) else {
            return Err(if self.patterns.len() == 1 {
                "the pattern did not match".into()
            } else {
                format!("none of the {} patterns matched", self.patterns.len())
            });
        };
        let mut fields = Fields::new();
        let mut nested = Vec::new();
        for cap in &c.captures {
            let Some((a, z)) = c.locations.get(cap.group) else {
                continue;
            };
            let value = convert(&cap.name, &text.slice(a..z), cap.kind)?;
            if cap.nested {
                nested.push((cap.name.clone(), value));
            } else {
                fields.insert(cap.name.clone(), value);
            }
        }
        match &self.target {
            Some(t) => {
                let mut map = Event {
                    fields,
                    ..Event::default()
                };
                for (path, v) in nested {
                    map.insert(&path, v);
                }
                e.insert(t, Value::Map(map.fields));
            }
            None => {
                e.fields.extend(fields);
                for (path, v) in nested {
                    e.insert(&path, v);
                }
            }
        }
        Ok(())
    }
}

impl Processor for ParseGrok {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        for (i, e) in batch.events.iter_mut().enumerate() {
            if let Err(m) = self.parse(e) {
                cx.fail(i, m);
            }
        }
    }
}

#[cfg(test)]
mod tests;
