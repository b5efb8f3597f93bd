//! What a test file says: the `tests:` list, read from a pipeline file or
//! from a file of its own that names its pipeline with `pipeline:`.
//!
//! Every test is parsed on its own, so that one broken test is reported
//! with its position and the others still run.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_core::config::from_node;
use sluice_core::config::node::{self, Node, NodeKind, Pos};
use sluice_core::event::{Event, Timestamp, Value};
use sluice_processors::condition::Condition;
use sluice_runtime::pipeline::Diagnostic;

/// One test, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Shown in the report.
    pub name: String,
    /// What is fed in, in order: one batch per entry.
    pub inputs: Vec<InputSpec>,
    /// What must come out, and where.
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    /// Components from which nothing may come out.
    #[serde(default)]
    pub no_outputs_from: Vec<String>,
}

/// A batch fed into one component.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The source, processor or channel that receives the events.
    pub insert_at: String,
    /// Event bodies, as a source reads lines: no fields, stamped now.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Events with fields and a timestamp of their own.
    #[serde(default)]
    pub events: Vec<EventSpec>,
}

/// One event of an input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// The body.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 (`2026-12-03T10:00:00Z`); default: now.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// The event's fields (a mapping, nested as it likes).
    #[serde(default)]
    pub fields: Option<Value>,
}

/// What must come out of one component.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The source (after its processors), processor, channel or sink.
    pub extract_from: String,
    /// Each must hold for at least one event that came out.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Each must hold for every event that came out.
    #[serde(default)]
    pub every_event: Vec<Condition>,
    /// How many events must come out, exactly.
    #[serde(default)]
    pub count: Option<usize>,
    /// The events that must come out, in order: each one's `message` and
    /// `timestamp` when given, and every field it lists (others may exist).
    #[serde(default)]
    pub events: Option<Vec<ExpectedEvent>>,
}

/// An event expected at an output: only what is given is compared.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedEvent {
    /// The body, exactly.
    #[serde(default)]
    pub message: Option<String>,
    /// The timestamp, RFC 3339.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Fields that must be there with these values; a mapping is compared
    /// the same way (its listed keys only).
    #[serde(default)]
    pub fields: Option<Value>,
}

/// A test file read: the pipeline to load, and its tests with their nodes
/// (for positions).
pub struct TestFile {
    /// The pipeline the tests run against (the file itself, or the one its
    /// `pipeline:` names, relative to the test file).
    pub pipeline: PathBuf,
    /// Each test's node, in file order.
    pub tests: Vec<Node>,
}

fn diag(file: &Path, pos: Pos, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        pos,
        message: message.into(),
    }
}

/// Reads `file`: a pipeline with a `tests:` list, or a test file with
/// `pipeline:` and `tests:`.
///
/// # Errors
///
/// When the file cannot be read or parsed, or `tests:` is missing or not
/// a list.
pub fn read(file: &Path) -> Result<TestFile, Vec<Diagnostic>> {
    let start = Pos { line: 1, col: 1 };
    let text = std::fs::read_to_string(file)
        .map_err(|e| vec![diag(file, start, format!("cannot read the file: {e}"))])?;
    let env = |name: &str| std::env::var(name).ok();
    let root = node::parse(&text, &env).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| diag(file, p.pos, p.message))
            .collect::<Vec<_>>()
    })?;
    let Some(entries) = root.as_map() else {
        return Err(vec![diag(
            file,
            root.pos,
            format!(
                "a test file must be a mapping with `tests:`, found {}",
                root.type_name()
            ),
        )]);
    };
    let pipeline = match root.get("pipeline") {
        None => file.to_path_buf(),
        Some(n) => {
            let Some(p) = n.as_str().filter(|s| !s.is_empty()) else {
                return Err(vec![diag(
                    file,
                    n.pos,
                    format!("`pipeline` must be a path, found {}", n.type_name()),
                )]);
            };
            // A separate test file holds tests only.
            let mut problems = Vec::new();
            for (k, _) in entries {
                if !matches!(k.as_str(), Some("pipeline" | "tests")) {
                    problems.push(diag(
                        file,
                        k.pos,
                        format!(
                            "unknown key `{}` in a test file: it takes `pipeline` and `tests` \
                             (components belong in the pipeline file)",
                            k.as_str().unwrap_or("?")
                        ),
                    ));
                }
            }
            if !problems.is_empty() {
                return Err(problems);
            }
            let dir = file.parent().unwrap_or(Path::new(""));
            dir.join(p)
        }
    };
    let Some(tests) = root.get("tests") else {
        return Err(vec![diag(
            file,
            root.pos,
            "no tests: add a `tests:` list (see docs/testing.md)",
        )]);
    };
    let pos = root.key("tests").map_or(root.pos, |k| k.pos);
    let tests = match &tests.kind {
        NodeKind::Seq(items) if !items.is_empty() => items.clone(),
        NodeKind::Seq(_) | NodeKind::Null => {
            return Err(vec![diag(file, pos, "`tests` is empty: add a test")])
        }
        _ => {
            return Err(vec![diag(
                file,
                tests.pos,
                format!(
                    "`tests` must be a list of tests, found {}",
                    tests.type_name()
                ),
            )])
        }
    };
    Ok(TestFile { pipeline, tests })
}

/// Parses one test's node.
///
/// # Errors
///
/// The first problem, with its position.
pub fn parse_test(file: &Path, node: &Node) -> Result<TestSpec, Diagnostic> {
    let test: TestSpec =
        from_node(node).map_err(|e| diag(file, e.pos.unwrap_or(node.pos), e.message))?;
    if test.inputs.is_empty() {
        return Err(diag(
            file,
            node.key("inputs").map_or(node.pos, |k| k.pos),
            format!(
                "test `{}`: `inputs` is empty: feed it some events",
                test.name
            ),
        ));
    }
    if test.outputs.is_empty() && test.no_outputs_from.is_empty() {
        return Err(diag(
            file,
            node.pos,
            format!(
                "test `{}` checks nothing: add `outputs` or `no_outputs_from`",
                test.name
            ),
        ));
    }
    for (i, input) in test.inputs.iter().enumerate() {
        if input.lines.is_empty() && input.events.is_empty() {
            return Err(diag(
                file,
                item_pos(node, "inputs", i),
                format!(
                    "test `{}`: input at `{}` has neither `lines` nor `events`",
                    test.name, input.insert_at
                ),
            ));
        }
    }
    Ok(test)
}

/// The position of item `i` of list `key` of `node` (else of `node`).
pub fn item_pos(node: &Node, key: &str, i: usize) -> Pos {
    node.get(key)
        .and_then(Node::as_seq)
        .and_then(|s| s.get(i))
        .map_or(node.pos, |n| n.pos)
}

/// The events of one input, stamped `now` unless they say otherwise.
///
/// # Errors
///
/// A timestamp that is not RFC 3339, or `fields` that is not a mapping.
pub fn events_of(input: &InputSpec, now: Timestamp) -> Result<Vec<Event>, String> {
    let mut out = Vec::with_capacity(input.lines.len() + input.events.len());
    for line in &input.lines {
        out.push(Event::new(line.clone(), now));
    }
    for e in &input.events {
        let ts = match &e.timestamp {
            None => now,
            Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| Timestamp::from_datetime(&d))
                .map_err(|err| {
                    format!("timestamp `{t}` is not RFC 3339 (`2026-12-03T10:00:00Z`): {err}")
                })?,
        };
        let mut event = Event::new(e.message.clone(), ts);
        match &e.fields {
            None | Some(Value::Null) => {}
            Some(Value::Map(m)) => event.fields = m.clone(),
            Some(v) => return Err(format!("`fields` must be a mapping, found {}", v.kind())),
        }
        out.push(event);
    }
    Ok(out)
}
