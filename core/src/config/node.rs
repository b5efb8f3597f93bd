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
    /// Whether reading stopped here (a syntax error, a limit): nothing
    /// after it was read, so no further check can run.
    pub fatal: bool,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// How deeply sequences and mappings may nest. Deeper trees would make
/// the recursive walks over them (drop, canonical form, deserializing) use
/// unbounded stack; no pipeline needs more than a handful of levels.
pub const MAX_DEPTH: usize = 64;

/// Nodes that anchors and aliases may copy (each anchored node is kept
/// apart to be copied, and each alias copies it): this many, plus one per
/// byte of the file. A string counts as one node plus one per 64 bytes of
/// its text.
pub const ALIAS_BUDGET: u64 = 100_000;

/// A string counts as one node plus one per this many bytes of text, so
/// that aliasing a long string many times is bounded too.
const BYTES_PER_NODE: u64 = 64;

/// What a node costs against the alias budget, itself only (its children
/// are counted as they are attached).
fn own_weight(kind: &NodeKind) -> u64 {
    match kind {
        NodeKind::Str(s) => 1 + s.len() as u64 / BYTES_PER_NODE,
        _ => 1,
    }
}

/// A sequence or mapping being read, with its weight so far.
struct Open {
    node: Node,
    pending_key: Option<Node>,
    anchor: usize,
    weight: u64,
}

/// Parses one YAML document. `env` looks up `${VAR}`s. Every problem found
/// (syntax error, unset variable) is returned at once; a fatal one stops
/// the parse, so it is the last one.
///
/// Hostile input is refused, each with its position: anchors and aliases
/// that would copy more than [`ALIAS_BUDGET`] plus one node per byte of `text` (an
/// "alias bomb" otherwise takes gigabytes from a few hundred bytes),
/// nesting deeper than [`MAX_DEPTH`], and a second document in the same
/// text (it would otherwise be ignored without a word). A leading UTF-8
/// byte order mark is skipped.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Node, Vec<ParseProblem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::new_from_str(text);
    let mut problems = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, (Node, u64)> = Default::default();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let budget = ALIAS_BUDGET.saturating_add(text.len() as u64);
    // Nodes copied so far: into an anchor's table entry, or for an alias.
    let mut copied = 0u64;

    let fatal = |problems: &mut Vec<ParseProblem>, pos: Pos, message: String| {
        problems.push(ParseProblem {
            pos,
            message,
            fatal: true,
        });
    };
    // Charges a copy of `weight` nodes; `false` (reported) past the budget.
    let mut charge = |problems: &mut Vec<ParseProblem>, weight: u64, pos: Pos| {
        copied = copied.saturating_add(weight);
        if copied > budget {
            fatal(problems, pos, format!(
                "anchors and aliases copy more than {budget} nodes ({ALIAS_BUDGET} plus one per byte of the file): refused, as an alias bomb would take unbounded memory"
            ));
            return false;
        }
        true
    };

    // Pushes a finished node into its parent (or makes it the root).
    fn attach(stack: &mut [Open], root: &mut Option<Node>, node: Node, weight: u64) {
        match stack.last_mut() {
            None => {
                if root.is_none() {
                    *root = Some(node);
                }
            }
            Some(open) => {
                open.weight = open.weight.saturating_add(weight);
                match &mut open.node.kind {
                    NodeKind::Seq(items) => items.push(node),
                    NodeKind::Map(entries) => match open.pending_key.take() {
                        None => open.pending_key = Some(node),
                        Some(k) => entries.push((k, node)),
                    },
                    _ => {}
                }
            }
        }
    }

    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(ev) => ev,
            Err(e) => {
                let m = e.marker();
                let pos = Pos {
                    line: m.line(),
                    col: m.col() + 1,
                };
                fatal(
                    &mut problems,
                    pos,
                    format!(
                        "YAML syntax error: {}{}",
                        e.info(),
                        unquoted_variable_hint(text, pos.line)
                    ),
                );
                return Err(problems);
            }
        };
        let pos = pos_of(&span);
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    fatal(&mut problems, pos, "a second YAML document starts here: a pipeline file holds one document (remove the `---` and what follows, or merge it into the first)".into());
                    return Err(problems);
                }
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let node = scalar(&value, style, pos, env, &mut problems);
                let w = own_weight(&node.kind);
                if anchor > 0 {
                    if !charge(&mut problems, w, pos) {
                        return Err(problems);
                    }
                    anchors.insert(anchor, (node.clone(), w));
                }
                attach(&mut stack, &mut root, node, w);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    fatal(
                        &mut problems,
                        pos,
                        format!("lists and mappings nest deeper than {MAX_DEPTH} levels here"),
                    );
                    return Err(problems);
                }
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    NodeKind::Seq(Vec::new())
                } else {
                    NodeKind::Map(Vec::new())
                };
                stack.push(Open {
                    node: Node { kind, pos },
                    pending_key: None,
                    anchor,
                    weight: 1,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = stack.pop() {
                    if open.anchor > 0 {
                        if !charge(&mut problems, open.weight, open.node.pos) {
                            return Err(problems);
                        }
                        anchors.insert(open.anchor, (open.node.clone(), open.weight));
                    }
                    attach(&mut stack, &mut root, open.node, open.weight);
                }
            }
            Event::Alias(id) => {
                let Some((anchored, w)) = anchors.get(&id) else {
                    problems.push(ParseProblem {
                        pos,
                        message: "unknown alias".into(),
                        fatal: false,
                    });
                    let null = Node {
                        kind: NodeKind::Null,
                        pos,
                    };
                    attach(&mut stack, &mut root, null, 1);
                    continue;
                };
                let w = *w;
                if !charge(&mut problems, w, pos) {
                    return Err(problems);
                }
                let node = anchored.clone();
                attach(&mut stack, &mut root, node, w);
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

/// A hint for a syntax error at `line` (1-based) when it, or the line
/// before, holds an unquoted `${VAR}`: inside `[...]` or `{...}`, YAML reads
/// its `{` as the start of a mapping.
fn unquoted_variable_hint(text: &str, line: usize) -> &'static str {
    let unquoted = |l: &str| {
        l.match_indices("${")
            .any(|(i, _)| !matches!(l[..i].chars().last(), Some('"' | '\'')))
    };
    let lines: Vec<&str> = text
        .lines()
        .skip(line.saturating_sub(2))
        .take(if line >= 2 { 2 } else { 1 })
        .collect();
    if lines.iter().any(|l| unquoted(l)) {
        " (hint: inside `[...]` or `{...}`, quote a variable: `\"${VAR}\"`)"
    } else {
        ""
    }
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
            problems.push(ParseProblem {
                pos,
                message: msg,
                fatal: false,
            });
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

    /// Nine levels of nine aliases: 9^9 nodes if expanded.
    pub(crate) fn alias_bomb() -> String {
        let mut t = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 9].join(",");
            t.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        t
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly_at_the_alias_that_exceeds_the_budget() {
        let text = alias_bomb();
        let start = std::time::Instant::now();
        let err = parse(&text, &env).unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(err.len(), 1);
        assert!(err[0].fatal);
        assert!(
            err[0]
                .message
                .starts_with("anchors and aliases copy more than"),
            "{}",
            err[0].message
        );
        // The budget runs out at the anchor of `e`: 9^4 nodes copied by its
        // aliases, as many again to keep it.
        assert_eq!(err[0].pos.line, 5, "{:?}", err[0]);
        // A long string aliased many times counts by its length.
        let long = "x".repeat(100_000);
        let many = vec!["*s"; 200].join(", ");
        let err = parse(&format!("s: &s {long}\nl: [{many}]\n"), &env).unwrap_err();
        assert!(
            err[0].message.starts_with("anchors and aliases copy"),
            "{:?}",
            err[0]
        );
        // Anchors nested around a large list copy it once per level, with
        // no alias at all: charged too.
        let items = vec!["x"; 3000].join(", ");
        let nested: String = (0..60)
            .map(|i| format!("{}k{i}: &k{i}\n", " ".repeat(2 * i)))
            .collect();
        let text = format!("{nested}{}l: [{items}]\n", " ".repeat(120));
        let err = parse(&text, &env).unwrap_err();
        assert!(
            err[0].message.starts_with("anchors and aliases copy"),
            "{:?}",
            err[0]
        );
        // Ordinary reuse is fine.
        let many = vec!["*t"; 200].join(", ");
        assert!(parse(
            &format!("t: &t {{cert: a.pem, key: b.pem}}\nl: [{many}]\n"),
            &env
        )
        .is_ok());
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let n = parse("\u{feff}a: 1\n", &env).unwrap();
        assert_eq!(n.get("a").unwrap().kind, NodeKind::Int(1));
    }

    #[test]
    fn a_second_document_is_refused_where_it_starts() {
        let err = parse("a: 1\n---\nb: 2\n", &env).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].pos, Pos { line: 2, col: 1 });
        assert!(
            err[0].message.contains("second YAML document"),
            "{}",
            err[0].message
        );
        // One document with explicit markers is fine.
        assert!(parse("---\na: 1\n...\n", &env).is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok, &env).is_ok());
        let block: String = (0..MAX_DEPTH + 10)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let err = parse(&block, &env).unwrap_err();
        assert_eq!(err[0].pos.line, MAX_DEPTH + 1, "{:?}", err[0]);
        assert!(err[0].message.contains("deeper than"), "{}", err[0].message);
        // Deep flow nesting stops the parse too (the parser's own limit
        // may come first).
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse(&deep, &env).unwrap_err();
        assert!(err[0].fatal && err[0].pos.col <= 1000, "{:?}", err[0]);
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
