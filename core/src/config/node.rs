//! A YAML document as a tree of [`Node`]s that remember where they were
//! written, so that every config error can name its line and column.
//!
//! The tree is built from the event stream of `saphyr-parser` (a maintained
//! YAML 1.2 parser). `${VAR}` and `${VAR:-default}` in scalars are replaced
//! from the environment while the tree is built; a plain scalar is typed
//! (null, bool, integer, float, string) after substitution, so
//! `count: ${N}` is an integer when `N=10`.

use std::borrow::Cow;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A position in the pipeline file (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A YAML value with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where it starts.
    pub pos: Pos,
}

/// The value of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Any other scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The string, if this node is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, if this node is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items, if this node is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key`, if this node is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The key node for `key` (to point errors at the key itself).
    pub fn key(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k)
    }

    /// The value in a canonical text form that leaves out positions and the
    /// order of mapping keys: two nodes with the same canonical form say the
    /// same thing. Hot reload compares components with it.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out
    }

    fn write_canonical(&self, out: &mut String) {
        use std::fmt::Write;
        match &self.kind {
            NodeKind::Null => out.push('~'),
            NodeKind::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            NodeKind::Int(i) => {
                let _ = write!(out, "{i}");
            }
            NodeKind::Float(f) => {
                let _ = write!(out, "{f:?}");
            }
            NodeKind::Str(s) => {
                let _ = write!(out, "{s:?}");
            }
            NodeKind::Seq(items) => {
                out.push('[');
                for i in items {
                    i.write_canonical(out);
                    out.push(',');
                }
                out.push(']');
            }
            NodeKind::Map(entries) => {
                let mut pairs: Vec<(String, String)> = entries
                    .iter()
                    .map(|(k, v)| (k.canonical(), v.canonical()))
                    .collect();
                pairs.sort();
                out.push('{');
                for (k, v) in pairs {
                    let _ = write!(out, "{k}:{v},");
                }
                out.push('}');
            }
        }
    }

    /// A name for the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a float",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// An error found while reading the file, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseProblem {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// Parses one YAML document. `env` looks up `${VAR}`s. Every problem found
/// (syntax error, unset variable) is returned at once; a syntax error stops
/// the parse, so it is the last one.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Node, Vec<ParseProblem>> {
    let mut parser = Parser::new_from_str(text);
    let mut problems = Vec::new();
    let mut stack: Vec<(Node, Option<Node>)> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = Default::default();
    let mut anchor_ids: Vec<usize> = Vec::new();
    let mut root: Option<Node> = None;

    // Pushes a finished node into its parent (or makes it the root).
    fn attach(stack: &mut [(Node, Option<Node>)], root: &mut Option<Node>, node: Node) {
        match stack.last_mut() {
            None => {
                if root.is_none() {
                    *root = Some(node);
                }
            }
            Some((parent, pending_key)) => match &mut parent.kind {
                NodeKind::Seq(items) => items.push(node),
                NodeKind::Map(entries) => match pending_key.take() {
                    None => *pending_key = Some(node),
                    Some(k) => entries.push((k, node)),
                },
                _ => {}
            },
        }
    }

    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(ev) => ev,
            Err(e) => {
                let m = e.marker();
                problems.push(ParseProblem {
                    pos: Pos {
                        line: m.line(),
                        col: m.col() + 1,
                    },
                    message: format!("YAML syntax error: {}", e.info()),
                });
                return Err(problems);
            }
        };
        let pos = pos_of(&span);
        match event {
            Event::StreamEnd => break,
            Event::Scalar(value, style, anchor, _tag) => {
                let node = scalar(&value, style, pos, env, &mut problems);
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                attach(&mut stack, &mut root, node);
            }
            Event::SequenceStart(anchor, _) => {
                anchor_ids.push(anchor);
                stack.push((
                    Node {
                        kind: NodeKind::Seq(Vec::new()),
                        pos,
                    },
                    None,
                ));
            }
            Event::MappingStart(anchor, _) => {
                anchor_ids.push(anchor);
                stack.push((
                    Node {
                        kind: NodeKind::Map(Vec::new()),
                        pos,
                    },
                    None,
                ));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let anchor = anchor_ids.pop().unwrap_or(0);
                if let Some((node, _)) = stack.pop() {
                    if anchor > 0 {
                        anchors.insert(anchor, node.clone());
                    }
                    attach(&mut stack, &mut root, node);
                }
            }
            Event::Alias(id) => {
                let node = match anchors.get(&id) {
                    Some(n) => n.clone(),
                    None => {
                        problems.push(ParseProblem {
                            pos,
                            message: "unknown alias".into(),
                        });
                        Node {
                            kind: NodeKind::Null,
                            pos,
                        }
                    }
                };
                attach(&mut stack, &mut root, node);
            }
            _ => {}
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(root.unwrap_or(Node {
        kind: NodeKind::Null,
        pos: Pos { line: 1, col: 1 },
    }))
}

fn scalar(
    raw: &str,
    style: ScalarStyle,
    pos: Pos,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<ParseProblem>,
) -> Node {
    let text: Cow<str> = match substitute(raw, env) {
        Ok(t) => t,
        Err(msg) => {
            problems.push(ParseProblem { pos, message: msg });
            Cow::Borrowed(raw)
        }
    };
    let kind = if style == ScalarStyle::Plain {
        resolve_plain(&text)
    } else {
        NodeKind::Str(text.into_owned())
    };
    Node { kind, pos }
}

/// Types a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(s: &str) -> NodeKind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        ".inf" | "+.inf" | ".Inf" => return NodeKind::Float(f64::INFINITY),
        "-.inf" | "-.Inf" => return NodeKind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" => return NodeKind::Float(f64::NAN),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = s.parse::<i64>() {
            return NodeKind::Int(i);
        }
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return NodeKind::Int(i);
        }
    }
    let looks_float = digits.bytes().all(|b| {
        b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'-' || b == b'+'
    }) && digits
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().any(|b| b.is_ascii_digit());
    if looks_float {
        if let Ok(f) = s.parse::<f64>() {
            return NodeKind::Float(f);
        }
    }
    NodeKind::Str(s.to_string())
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
pub fn substitute<'a>(
    s: &'a str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cow<'a, str>, String> {
    if !s.contains('$') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut missing = Vec::new();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(format!("unclosed `${{` in `{s}`"));
            };
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!("invalid variable name `{name}` in `${{{expr}}}`"));
            }
            match (
                env(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => missing.push(name.to_string()),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if !missing.is_empty() {
        return Err(format!(
            "environment variable {} is not set and has no default (write `${{{}:-default}}` to give one)",
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
            missing[0]
        ));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "N" => Some("10".into()),
            "HOME_DIR" => Some("/home/x".into()),
            _ => None,
        }
    }

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nb:\n  c: [x, y]\n", &env).unwrap();
        assert_eq!(n.get("a").unwrap().pos, Pos { line: 1, col: 4 });
        assert_eq!(n.key("b").unwrap().pos, Pos { line: 2, col: 1 });
        let c = n.get("b").unwrap().get("c").unwrap();
        assert_eq!(c.as_seq().unwrap()[1].pos, Pos { line: 3, col: 10 });
    }

    #[test]
    fn scalars_are_typed_after_substitution() {
        let n = parse(
            "a: ${N}\nb: '${N}'\nc: ${MISSING:-x}\nd: 1.5\ne: true\nf: ~\n",
            &env,
        )
        .unwrap();
        assert_eq!(n.get("a").unwrap().kind, NodeKind::Int(10));
        assert_eq!(n.get("b").unwrap().kind, NodeKind::Str("10".into()));
        assert_eq!(n.get("c").unwrap().kind, NodeKind::Str("x".into()));
        assert_eq!(n.get("d").unwrap().kind, NodeKind::Float(1.5));
        assert_eq!(n.get("e").unwrap().kind, NodeKind::Bool(true));
        assert_eq!(n.get("f").unwrap().kind, NodeKind::Null);
    }

    #[test]
    fn unset_variables_are_reported_with_position() {
        let err = parse("a: 1\nb: x${NOPE}y\nc: ${ALSO_NOPE}\n", &env).unwrap_err();
        assert_eq!(err.len(), 2);
        assert_eq!(err[0].pos, Pos { line: 2, col: 4 });
        assert!(err[0].message.contains("`NOPE`"), "{}", err[0].message);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n", &env).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].message.starts_with("YAML syntax error"));
        assert!(err[0].pos.line >= 1);
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        let n = parse("base: &b {capacity: 5}\none: *b\n", &env).unwrap();
        assert_eq!(
            n.get("one").unwrap().get("capacity").unwrap().kind,
            NodeKind::Int(5)
        );
    }

    #[test]
    fn canonical_forms_ignore_positions_and_key_order_only() {
        let c = |t: &str| parse(t, &env).unwrap().canonical();
        let a = c("x:\n  type: file\n  path: ./a\n  n: ${N}\n");
        assert_eq!(a, c("\n\nx:\n  n: 10\n  path: ./a\n  type: file\n"));
        assert_ne!(a, c("x: {type: file, path: ./b, n: 10}\n"));
        // The type of a scalar counts: `10` is not `'10'`.
        assert_ne!(a, c("x: {type: file, path: ./a, n: '10'}\n"));
        // List order counts.
        assert_ne!(c("c: [a, b]\n"), c("c: [b, a]\n"));
    }
}
