//! `sluice test FILE...`: the unit tests of pipelines (see docs/testing.md).
//!
//! A test feeds events into a component and checks, with conditions, what
//! comes out of others. The tests live in the pipeline file under `tests:`,
//! or in a file of their own that names its pipeline with `pipeline:`.
//! [`spec`] reads them, [`harness`] runs the pipeline's real processors
//! over the events, without starting anything, and this module checks the
//! outputs and prints the report.

mod diff;
mod harness;
mod spec;

use std::path::{Path, PathBuf};

use sluice_core::event::{Event, Timestamp};
use sluice_core::registry::Registry;
use sluice_processors::condition::Condition;
use sluice_runtime::pipeline::{Diagnostic, Pipeline};

use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};
use harness::{resolve, Harness, Kind, Target};
use spec::TestSpec;

/// Arguments of `sluice test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// Pipeline files with a `tests:` list, or test files naming their
    /// pipeline with `pipeline:`.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// At most this many events are shown for one output of a failed test.
const SHOWN: usize = 10;

/// Counts over every file.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    /// Files or tests that could not be read or run (config problems).
    errors: usize,
}

/// Runs every test of every file; returns the exit code: 0 when all
/// passed, 1 when one failed, 2 when a file or a test is invalid.
pub fn run(registry: &Registry, args: &TestArgs) -> i32 {
    let mut tally = Tally::default();
    for file in &args.files {
        run_file(registry, file, &mut tally);
    }
    let verdict = if tally.failed + tally.errors == 0 {
        "ok"
    } else {
        "FAILED"
    };
    println!(
        "\ntest result: {verdict}. {} passed; {} failed; {} invalid ({} file{})",
        tally.passed,
        tally.failed,
        tally.errors,
        args.files.len(),
        if args.files.len() == 1 { "" } else { "s" }
    );
    if tally.errors > 0 {
        EXIT_CONFIG
    } else if tally.failed > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn print_diags(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

fn run_file(registry: &Registry, file: &Path, tally: &mut Tally) {
    let tests = match spec::read(file) {
        Ok(t) => t,
        Err(diags) => {
            print_diags(&diags);
            tally.errors += 1;
            return;
        }
    };
    let pipeline = match super::load_checked(&tests.pipeline, registry) {
        Ok(p) => p,
        Err(diags) => {
            print_diags(&diags);
            eprintln!(
                "{}: the pipeline has {} problem{}; its tests were not run",
                tests.pipeline.display(),
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            tally.errors += 1;
            return;
        }
    };
    for node in &tests.tests {
        let test = match spec::parse_test(file, node) {
            Ok(t) => t,
            Err(d) => {
                eprintln!("{d}");
                tally.errors += 1;
                continue;
            }
        };
        let plan = match Plan::new(&pipeline, &test, file, node) {
            Ok(p) => p,
            Err(diags) => {
                print_diags(&diags);
                tally.errors += 1;
                continue;
            }
        };
        let label = format!("test `{}` ({})", test.name, file.display());
        match plan.run(&pipeline) {
            Ok(()) => {
                println!("{label} ... ok");
                tally.passed += 1;
            }
            Err(report) => {
                println!("{label} ... FAILED");
                for line in report {
                    println!("  {line}");
                }
                tally.failed += 1;
            }
        }
    }
}

/// A test with its component names resolved.
struct Plan<'t> {
    test: &'t TestSpec,
    inputs: Vec<(Target, Vec<Event>)>,
    outputs: Vec<Target>,
    none_from: Vec<Target>,
}

impl<'t> Plan<'t> {
    /// Resolves the names of `test` in `p`; every problem at once.
    fn new(
        p: &Pipeline,
        test: &'t TestSpec,
        file: &Path,
        node: &sluice_core::config::Node,
    ) -> Result<Self, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let mut problem = |key: &str, i: usize, message: String| {
            diags.push(Diagnostic {
                file: file.to_path_buf(),
                pos: spec::item_pos(node, key, i),
                message: format!("test `{}`: {message}", test.name),
            })
        };
        let now = Timestamp::now();
        let mut inputs = Vec::new();
        for (i, input) in test.inputs.iter().enumerate() {
            let at = resolve(
                p,
                &input.insert_at,
                &[Kind::Source, Kind::Processor, Kind::Channel],
                true,
            );
            let events = spec::events_of(input, now);
            match (at, events) {
                (Ok(at), Ok(events)) => inputs.push((at, events)),
                (Err(e), _) => problem("inputs", i, format!("`insert_at`: {e}")),
                (_, Err(e)) => problem("inputs", i, e),
            }
        }
        let all = [Kind::Source, Kind::Processor, Kind::Channel, Kind::Sink];
        let mut outputs = Vec::new();
        for (i, out) in test.outputs.iter().enumerate() {
            match resolve(p, &out.extract_from, &all, false) {
                Ok(t) => outputs.push(t),
                Err(e) => problem("outputs", i, format!("`extract_from`: {e}")),
            }
        }
        let mut none_from = Vec::new();
        for (i, name) in test.no_outputs_from.iter().enumerate() {
            match resolve(p, name, &all, false) {
                Ok(t) => none_from.push(t),
                Err(e) => problem("no_outputs_from", i, format!("`no_outputs_from`: {e}")),
            }
        }
        if diags.is_empty() {
            Ok(Plan {
                test,
                inputs,
                outputs,
                none_from,
            })
        } else {
            Err(diags)
        }
    }

    /// Runs the test; on failure, the lines that explain it.
    fn run(self, p: &Pipeline) -> Result<(), Vec<String>> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-test-")
            .tempdir()
            .map_err(|e| vec![format!("cannot create a data directory for the test: {e}")])?;
        let mut h = Harness::new(p, dir.path().to_path_buf());
        for (at, events) in self.inputs {
            h.insert(&at, events).map_err(|e| vec![e])?;
        }
        h.finish().map_err(|e| vec![e])?;
        let mut report = Vec::new();
        let empty = Vec::new();
        for (target, spec) in self.outputs.iter().zip(&self.test.outputs) {
            let events = h.seen.get(target).unwrap_or(&empty);
            let mut problems = check(
                events,
                spec.count,
                &spec.conditions,
                &spec.every_event,
                spec.events.is_some(),
            );
            if let Some(expected) = &spec.events {
                problems.extend(diff::compare(expected, events));
            }
            if !problems.is_empty() {
                report.extend(problems.into_iter().map(|m| format!("{target}: {m}")));
                report.extend(show(target, events));
            }
        }
        for target in &self.none_from {
            if let Some(events) = h.seen.get(target).filter(|e| !e.is_empty()) {
                report.push(format!(
                    "{target}: expected no output, {} event{} came out",
                    events.len(),
                    plural(events.len())
                ));
                report.extend(show(target, events));
            }
        }
        if report.is_empty() {
            return Ok(());
        }
        report.extend(h.notes.iter().map(|n| format!("note: {n}")));
        Err(report)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// What is wrong with the `events` that came out of one component.
fn check(
    events: &[Event],
    count: Option<usize>,
    conditions: &[Condition],
    every: &[Condition],
    expects_events: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    match count {
        Some(n) if n != events.len() => problems.push(format!(
            "expected {n} event{}, {} came out",
            plural(n),
            events.len()
        )),
        None if events.is_empty() && !expects_events => {
            problems.push("no event came out".to_string());
            return problems;
        }
        _ => {}
    }
    for c in conditions {
        if !events.iter().any(|e| c.matches(e)) {
            problems.push(format!("no event matched `{c}`"));
        }
    }
    for c in every {
        let failing: Vec<String> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| !c.matches(e))
            .map(|(i, _)| format!("#{}", i + 1))
            .collect();
        if !failing.is_empty() {
            problems.push(format!(
                "`{c}` does not hold for event{} {} of {}",
                plural(failing.len()),
                failing.join(", "),
                events.len()
            ));
        }
    }
    problems
}

/// The events that came out of `target`, one JSON line each (the first
/// [`SHOWN`]).
fn show(target: &Target, events: &[Event]) -> Vec<String> {
    if events.is_empty() {
        return vec![format!("nothing came out of {target}")];
    }
    let mut out = vec![format!(
        "{} event{} came out of {target}:",
        events.len(),
        plural(events.len())
    )];
    for (i, e) in events.iter().take(SHOWN).enumerate() {
        out.push(format!("  #{} {}", i + 1, to_json(e)));
    }
    if events.len() > SHOWN {
        out.push(format!("  ... and {} more", events.len() - SHOWN));
    }
    out
}

/// An event as the `file` sink's nested JSON shows it.
fn to_json(e: &Event) -> String {
    let message = serde_json::to_string(&String::from_utf8_lossy(&e.body)).unwrap_or_default();
    if e.fields.is_empty() {
        format!(
            "{{\"timestamp\":\"{}\",\"message\":{message}}}",
            e.timestamp
        )
    } else {
        let fields = serde_json::to_string(&e.fields).unwrap_or_default();
        format!(
            "{{\"timestamp\":\"{}\",\"message\":{message},\"fields\":{fields}}}",
            e.timestamp
        )
    }
}
