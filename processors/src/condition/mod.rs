//! Conditions: a small boolean expression language over events.
//!
//! A [`Condition`] is parsed once (at config time) and evaluated per event by
//! [`Condition::matches`], the hot path of `filter` and routing. Evaluation
//! borrows everything it looks at: strings are compared as borrowed bytes,
//! numbers without going through text, regexes are compiled at parse time, so
//! the common cases allocate nothing per event.
//!
//! ```text
//! .level == "error" && .http.status >= 500
//! .message =~ "timeout|refused" || !exists(.user)
//! .method in ["GET", "HEAD"] && len(.message) < 1024
//! ```
//!
//! * `.message` is the event body, `.timestamp` the event timestamp; every
//!   other path names a field (`.a.b` is field `b` inside map `a`). A quoted
//!   segment (`."odd key"`, `."message"`) always names a field.
//! * Literals: `"strings"` (escapes `\"`, `\\`, `\n`, `\t`, `\r`; any other
//!   backslash is kept, so `"\d+"` is the regex `\d+`), integers,
//!   floats, `true`, `false`, `null`.
//! * Comparisons `==`, `!=`, `<`, `<=`, `>`, `>=`; `=~` / `!~` with a string
//!   literal regex; `x in [lit, ...]`. A missing field is `null`.
//! * `!`, `&&`, `||` (in rising order of looseness: `!` applies to a whole
//!   comparison, so `!.a == 1` means `!(.a == 1)`), parentheses.
//! * Functions `exists(.path)`, `contains(x, "s")`, `starts_with(x, "s")`,
//!   `ends_with(x, "s")`, `len(x)`.
//! * An expression that is not a comparison (a bare path) holds when its value
//!   is boolean `true`.
//!
//! The full reference is `docs/conditions.md`.
//!
//! ```
//! use sluice_processors::condition::Condition;
//! use sluice_core::prelude::*;
//!
//! let c = Condition::parse(r#".status >= 500 && .message =~ "timeout""#).unwrap();
//! let mut e = Event::new("upstream timeout", Timestamp(0));
//! e.insert("status", 504i64);
//! assert!(c.matches(&e));
//! ```

use std::cmp::Ordering;
use std::fmt;

use regex::bytes::Regex;

use sluice_core::event::{Event, Fields, Timestamp, Value};

/// A condition that does not parse: what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {}", .offset + 1)]
pub struct ConditionError {
    /// 0-based offset, in characters, of the place at fault (shown 1-based,
    /// as a column, in the message).
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed condition; see the [module docs](self) for the language.
#[derive(Clone)]
pub struct Condition {
    source: String,
    expr: Expr,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Condition {
    /// Parses a condition.
    ///
    /// # Errors
    ///
    /// A [`ConditionError`] naming the first problem and its column.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        let mut p = Parser {
            src: source,
            pos: 0,
            depth: 0,
        };
        let expr = p.or()?;
        p.skip_ws();
        if p.pos < source.len() {
            return Err(p.err_here(format!("unexpected {}", p.describe_next())));
        }
        Ok(Condition {
            source: source.to_string(),
            expr,
        })
    }

    /// The text the condition was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `event` satisfies the condition.
    pub fn matches(&self, event: &Event) -> bool {
        self.expr.holds(event)
    }
}

impl<'de> serde::Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Condition;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition such as `.level == \"error\"`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Condition, E> {
                Condition::parse(s).map_err(|e| E::custom(format!("invalid condition: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}

// ---------------------------------------------------------------- the tree

#[derive(Clone, Debug)]
enum Path {
    /// `.message`: the body.
    Message,
    /// `.timestamp`: the event timestamp.
    Timestamp,
    /// Any other path: a field, by segments.
    Field(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug)]
enum StrFn {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Clone, Debug)]
enum Expr {
    Lit(Value),
    Path(Path),
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Box<Expr>, CmpOp, Box<Expr>),
    Regex(Box<Expr>, Regex, bool),
    In(Box<Expr>, Vec<Value>),
    Exists(Path),
    Str(StrFn, Box<Expr>, Vec<u8>),
    Len(Box<Expr>),
}

/// A value seen during evaluation: borrowed from the event or the condition.
#[derive(Clone, Copy, Debug)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a [u8]),
    Ts(Timestamp),
    Array(&'a [Value]),
    Map(&'a Fields),
}

impl<'a> Val<'a> {
    fn of(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Integer(i) => Val::Int(*i),
            Value::Float(f) => Val::Float(*f),
            Value::String(s) => Val::Str(s),
            Value::Timestamp(t) => Val::Ts(*t),
            Value::Array(a) => Val::Array(a),
            Value::Map(m) => Val::Map(m),
        }
    }
}

fn lookup<'a>(path: &Path, e: &'a Event) -> Option<Val<'a>> {
    match path {
        Path::Message => Some(Val::Str(&e.body)),
        Path::Timestamp => Some(Val::Ts(e.timestamp)),
        Path::Field(segs) => {
            let (first, rest) = segs.split_first()?;
            let mut cur = e.fields.get(first.as_str())?;
            for s in rest {
                match cur {
                    Value::Map(m) => cur = m.get(s.as_str())?,
                    _ => return None,
                }
            }
            Some(Val::of(cur))
        }
    }
}

/// Parses an RFC 3339 text (for comparing a timestamp with a string).
fn ts_of(s: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(s).ok()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| Timestamp::from_datetime(&d))
}

fn equal(a: Val, b: Val) -> bool {
    use Val::*;
    match (a, b) {
        (Null, Null) => true,
        (Bool(x), Bool(y)) => x == y,
        (Int(x), Int(y)) => x == y,
        (Int(x), Float(y)) | (Float(y), Int(x)) => x as f64 == y,
        (Float(x), Float(y)) => x == y,
        (Str(x), Str(y)) => x == y,
        (Ts(x), Ts(y)) => x == y,
        (Ts(t), Int(n)) | (Int(n), Ts(t)) => t.0 == n,
        (Ts(t), Str(s)) | (Str(s), Ts(t)) => ts_of(s) == Some(t),
        (Array(x), Array(y)) => x == y,
        (Map(x), Map(y)) => x == y,
        _ => false,
    }
}

fn order(a: Val, b: Val) -> Option<Ordering> {
    use Val::*;
    match (a, b) {
        (Int(x), Int(y)) => Some(x.cmp(&y)),
        (Int(x), Float(y)) => (x as f64).partial_cmp(&y),
        (Float(x), Int(y)) => x.partial_cmp(&(y as f64)),
        (Float(x), Float(y)) => x.partial_cmp(&y),
        (Str(x), Str(y)) => Some(x.cmp(y)),
        (Bool(x), Bool(y)) => Some(x.cmp(&y)),
        (Ts(x), Ts(y)) => Some(x.cmp(&y)),
        (Ts(t), Int(n)) => Some(t.0.cmp(&n)),
        (Int(n), Ts(t)) => Some(n.cmp(&t.0)),
        (Ts(t), Str(s)) => ts_of(s).map(|u| t.cmp(&u)),
        (Str(s), Ts(t)) => ts_of(s).map(|u| u.cmp(&t)),
        _ => None,
    }
}

impl Expr {
    fn holds(&self, e: &Event) -> bool {
        matches!(self.eval(e), Val::Bool(true))
    }

    fn eval<'a>(&'a self, e: &'a Event) -> Val<'a> {
        match self {
            Expr::Lit(v) => Val::of(v),
            Expr::Path(p) => lookup(p, e).unwrap_or(Val::Null),
            Expr::Or(a, b) => Val::Bool(a.holds(e) || b.holds(e)),
            Expr::And(a, b) => Val::Bool(a.holds(e) && b.holds(e)),
            Expr::Not(a) => Val::Bool(!a.holds(e)),
            Expr::Cmp(a, op, b) => {
                let (a, b) = (a.eval(e), b.eval(e));
                Val::Bool(match op {
                    CmpOp::Eq => equal(a, b),
                    CmpOp::Ne => !equal(a, b),
                    CmpOp::Lt => order(a, b) == Some(Ordering::Less),
                    CmpOp::Le => matches!(order(a, b), Some(Ordering::Less | Ordering::Equal)),
                    CmpOp::Gt => order(a, b) == Some(Ordering::Greater),
                    CmpOp::Ge => {
                        matches!(order(a, b), Some(Ordering::Greater | Ordering::Equal))
                    }
                })
            }
            Expr::Regex(a, re, negate) => {
                let m = match a.eval(e) {
                    Val::Str(s) => re.is_match(s),
                    _ => false,
                };
                Val::Bool(m != *negate)
            }
            Expr::In(a, list) => {
                let a = a.eval(e);
                Val::Bool(list.iter().any(|l| equal(a, Val::of(l))))
            }
            Expr::Exists(p) => Val::Bool(lookup(p, e).is_some()),
            Expr::Str(f, a, needle) => Val::Bool(match (f, a.eval(e)) {
                (StrFn::Contains, Val::Str(s)) => memchr::memmem::find(s, needle).is_some(),
                (StrFn::Contains, Val::Array(items)) => items
                    .iter()
                    .any(|v| v.as_bytes() == Some(needle.as_slice())),
                (StrFn::StartsWith, Val::Str(s)) => s.starts_with(needle),
                (StrFn::EndsWith, Val::Str(s)) => s.ends_with(needle),
                _ => false,
            }),
            Expr::Len(a) => match a.eval(e) {
                Val::Str(s) => Val::Int(s.len() as i64),
                Val::Array(x) => Val::Int(x.len() as i64),
                Val::Map(m) => Val::Int(m.len() as i64),
                _ => Val::Null,
            },
        }
    }
}

// ---------------------------------------------------------------- the parser

struct Parser<'s> {
    src: &'s str,
    /// Byte position in `src`.
    pos: usize,
    /// Nesting of `(` and `!`, bounded so that a hostile condition cannot
    /// overflow the stack.
    depth: usize,
}

/// How deep `(` and `!` may nest.
const MAX_DEPTH: usize = 64;

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'@') || c >= 0x80
}

impl Parser<'_> {
    fn err_at(&self, byte_pos: usize, message: impl Into<String>) -> ConditionError {
        let end = byte_pos.min(self.src.len());
        ConditionError {
            offset: self.src.get(..end).map_or(0, |s| s.chars().count()),
            message: message.into(),
        }
    }

    fn enter(&mut self) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_here(format!("nested more than {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    fn err_here(&self, message: impl Into<String>) -> ConditionError {
        self.err_at(self.pos, message)
    }

    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, then consumes `tok` if the input continues with it.
    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    /// Consumes the keyword `kw` if it stands alone (not the start of a longer word).
    fn eat_word(&mut self, kw: &str) -> bool {
        self.skip_ws();
        let r = self.rest().as_bytes();
        if r.starts_with(kw.as_bytes()) && !r.get(kw.len()).is_some_and(|c| is_ident(*c)) {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn describe_next(&self) -> String {
        match self.rest().chars().next() {
            None => "end of condition".into(),
            Some(_) => {
                let word: String = self
                    .rest()
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .take(12)
                    .collect();
                format!("'{word}'")
            }
        }
    }

    fn expect(&mut self, tok: &str, context: &str) -> Result<(), ConditionError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.err_here(format!(
                "expected '{tok}' {context}, found {}",
                self.describe_next()
            )))
        }
    }

    fn or(&mut self) -> Result<Expr, ConditionError> {
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut left = self.not()?;
        while self.eat("&&") {
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ConditionError> {
        self.skip_ws();
        if self.rest().starts_with('!')
            && !self.rest().starts_with("!=")
            && !self.rest().starts_with("!~")
        {
            self.enter()?;
            self.pos += 1;
            let e = Expr::Not(Box::new(self.not()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ConditionError> {
        let left = self.primary("")?;
        const OPS: [(&str, Option<CmpOp>); 8] = [
            ("==", Some(CmpOp::Eq)),
            ("!=", Some(CmpOp::Ne)),
            ("<=", Some(CmpOp::Le)),
            (">=", Some(CmpOp::Ge)),
            ("=~", None),
            ("!~", None),
            ("<", Some(CmpOp::Lt)),
            (">", Some(CmpOp::Gt)),
        ];
        for (tok, op) in OPS {
            if !self.eat(tok) {
                continue;
            }
            let after = format!("after '{tok}'");
            return Ok(match op {
                Some(op) => Expr::Cmp(Box::new(left), op, Box::new(self.primary(&after)?)),
                None => {
                    self.skip_ws();
                    let at = self.pos;
                    let pattern = self.string_lit(&format!("a regex string {after}"))?;
                    let pattern = String::from_utf8(pattern)
                        .map_err(|_| self.err_at(at, "a regex must be valid UTF-8"))?;
                    let re = Regex::new(&pattern)
                        .map_err(|e| self.err_at(at, format!("invalid regex: {e}")))?;
                    Expr::Regex(Box::new(left), re, tok == "!~")
                }
            });
        }
        if self.eat_word("in") {
            self.expect("[", "after 'in'")?;
            let mut list = Vec::new();
            loop {
                if self.eat("]") {
                    break;
                }
                self.skip_ws();
                let at = self.pos;
                match self.primary("in the list")? {
                    Expr::Lit(v) => list.push(v),
                    _ => return Err(self.err_at(at, "an 'in' list holds literals only")),
                }
                if !self.eat(",") {
                    self.expect("]", "to close the 'in' list")?;
                    break;
                }
            }
            return Ok(Expr::In(Box::new(left), list));
        }
        Ok(left)
    }

    /// A path, literal, function call or parenthesised expression.
    fn primary(&mut self, context: &str) -> Result<Expr, ConditionError> {
        self.skip_ws();
        let start = self.pos;
        let missing = |p: &Self| {
            let ctx = if context.is_empty() {
                String::new()
            } else {
                format!(" {context}")
            };
            p.err_at(
                start,
                format!("expected a value{ctx}, found {}", p.describe_next()),
            )
        };
        let Some(c) = self.peek() else {
            return Err(missing(self));
        };
        match c {
            b'(' => {
                self.enter()?;
                self.pos += 1;
                let e = self.or()?;
                self.expect(")", "to close '('")?;
                self.depth -= 1;
                Ok(e)
            }
            b'.' => Ok(Expr::Path(self.path()?)),
            b'"' => Ok(Expr::Lit(Value::from(bytes::Bytes::from(
                self.string_lit("")?,
            )))),
            b'-' | b'0'..=b'9' => self.number(),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = self
                    .rest()
                    .bytes()
                    .position(|c| !is_ident(c))
                    .map_or(self.src.len(), |n| self.pos + n);
                let word = &self.src[self.pos..end];
                let lit = match word {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    "null" => Some(Value::Null),
                    _ => None,
                };
                if let Some(v) = lit {
                    self.pos = end;
                    return Ok(Expr::Lit(v));
                }
                match word {
                    "exists" | "contains" | "starts_with" | "ends_with" | "len" => {
                        self.pos = end;
                        self.call(word)
                    }
                    _ => Err(self.err_at(
                        start,
                        format!(
                            "unknown word '{word}': paths start with '.', strings are quoted, \
                             functions are exists, contains, starts_with, ends_with, len"
                        ),
                    )),
                }
            }
            _ => Err(missing(self)),
        }
    }

    fn call(&mut self, name: &str) -> Result<Expr, ConditionError> {
        self.expect("(", &format!("after '{name}'"))?;
        self.enter()?;
        self.skip_ws();
        let arg_at = self.pos;
        let e = match name {
            "exists" => match self.primary(&format!("in '{name}('"))? {
                Expr::Path(p) => Expr::Exists(p),
                _ => return Err(self.err_at(arg_at, "exists() takes a path such as .user")),
            },
            "len" => Expr::Len(Box::new(self.or()?)),
            _ => {
                let x = self.or()?;
                self.expect(",", &format!("between the arguments of '{name}'"))?;
                self.skip_ws();
                let needle =
                    self.string_lit(&format!("a string as the second argument of '{name}'"))?;
                let f = match name {
                    "contains" => StrFn::Contains,
                    "starts_with" => StrFn::StartsWith,
                    _ => StrFn::EndsWith,
                };
                Expr::Str(f, Box::new(x), needle)
            }
        };
        self.expect(")", &format!("to close '{name}('"))?;
        self.depth -= 1;
        Ok(e)
    }

    fn path(&mut self) -> Result<Path, ConditionError> {
        let start = self.pos;
        let mut segs: Vec<(String, bool)> = Vec::new();
        while self.peek() == Some(b'.') {
            self.pos += 1;
            match self.peek() {
                Some(b'"') => {
                    let s = self.string_lit("")?;
                    let s = String::from_utf8(s)
                        .map_err(|_| self.err_at(start, "a field name must be valid UTF-8"))?;
                    segs.push((s, true));
                }
                Some(c) if is_ident(c) => {
                    let n = self.rest().bytes().take_while(|c| is_ident(*c)).count();
                    segs.push((self.src[self.pos..self.pos + n].to_string(), false));
                    self.pos += n;
                }
                _ => {
                    return Err(self.err_here(
                        "expected a field name after '.' (quote odd names: .\"my key\")",
                    ))
                }
            }
        }
        Ok(match segs.as_slice() {
            [(s, false)] if s == "message" => Path::Message,
            [(s, false)] if s == "timestamp" => Path::Timestamp,
            [(s, false), ..] if s == "message" || s == "timestamp" => {
                return Err(self.err_at(
                    start,
                    format!(
                    ".{s} is the event {s} and has no sub-fields; quote it (.\"{s}\") for a field"
                ),
                ))
            }
            _ => Path::Field(segs.into_iter().map(|(s, _)| s).collect()),
        })
    }

    /// A double-quoted string at the current position (whitespace skipped).
    fn string_lit(&mut self, what: &str) -> Result<Vec<u8>, ConditionError> {
        if self.peek() != Some(b'"') {
            let what = if what.is_empty() { "a string" } else { what };
            return Err(self.err_here(format!("expected {what}, found {}", self.describe_next())));
        }
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err_at(start, "unterminated string"));
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(esc) = self.peek() else {
                        return Err(self.err_at(start, "unterminated string"));
                    };
                    self.pos += 1;
                    match esc {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        // Any other escape is kept as written, so that regexes
                        // read naturally: "\d+" is the regex \d+.
                        other => out.extend_from_slice(&[b'\\', other]),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn number(&mut self) -> Result<Expr, ConditionError> {
        let start = self.pos;
        let b = self.src.as_bytes();
        let mut end = start;
        if b.get(end) == Some(&b'-') {
            end += 1;
        }
        while end < b.len()
            && (b[end].is_ascii_alphanumeric() || matches!(b[end], b'.' | b'_' | b'+' | b'-'))
        {
            // Exponent signs belong to the number; other signs end it.
            if matches!(b[end], b'+' | b'-') && !matches!(b[end - 1], b'e' | b'E') {
                break;
            }
            end += 1;
        }
        let text = &self.src[start..end];
        self.pos = end;
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Expr::Lit(Value::Integer(i)));
        }
        match text.parse::<f64>() {
            Ok(f)
                if text.bytes().any(|c| c.is_ascii_digit())
                    && !text.contains("inf")
                    && !text.contains("nan") =>
            {
                Ok(Expr::Lit(Value::Float(f)))
            }
            _ => Err(self.err_at(start, format!("invalid number '{text}'"))),
        }
    }
}

#[cfg(test)]
mod tests;
