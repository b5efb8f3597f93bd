//! Runs a pipeline's processors synchronously over the events of a test,
//! and records what comes out of every component.
//!
//! Nothing is started: no source reads, no channel is built, no sink
//! writes. The processors are built with the pipeline's own configs (the
//! registry's `build`, with a data directory of the test's own), and events
//! travel the graph the way the runtime sends them: a source's inline
//! processors, its selector, the channels it names; a channel feeds every
//! stage and sink that reads it; a stage runs its processor, then its
//! selector. Failed events go to the processor's `dead_letter` channel when
//! it has one (tagged `error` and `component`, as the runtime does), else
//! they pass on unchanged. After the last input every processor that was
//! fed is finished (`finish`), upstream first, and what it releases
//! travels on. Processors get no ticks.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use sluice_core::event::{Batch, Event};
use sluice_core::processor::{ProcessContext, Processor};
use sluice_core::registry::BuildContext;
use sluice_runtime::pipeline::{Pipeline, SelectorSpec};

/// The kinds of component a test may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A source (what it emits after its inline processors).
    Source,
    /// A processor (inline or a stage).
    Processor,
    /// A channel (what is put into it).
    Channel,
    /// A sink (what reaches it).
    Sink,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Processor => "processor",
            Kind::Channel => "channel",
            Kind::Sink => "sink",
        }
    }
}

/// A component of the pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Its kind.
    pub kind: Kind,
    /// Its id.
    pub id: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind.name(), self.id)
    }
}

/// Finds the component `name` among `kinds`. `name` is an id, or
/// `kind:id` (`sink:errors`) when several kinds have a component of that id.
///
/// # Errors
///
/// When no component or more than one has that name, or an inline
/// processor is listed by several sources (where it is inserted would be
/// ambiguous).
pub fn resolve(
    p: &Pipeline,
    name: &str,
    kinds: &[Kind],
    inserting: bool,
) -> Result<Target, String> {
    let (wanted, id): (Vec<Kind>, &str) = match name.split_once(':') {
        Some((k, id)) if kinds.iter().any(|x| x.name() == k) => (
            kinds.iter().copied().filter(|x| x.name() == k).collect(),
            id,
        ),
        _ => (kinds.to_vec(), name),
    };
    let exists = |k: Kind| match k {
        Kind::Source => p.sources.iter().any(|s| s.id == id),
        Kind::Processor => p.processors.iter().any(|s| s.id == id),
        Kind::Channel => p.channels.iter().any(|s| s.id == id),
        Kind::Sink => p.sinks.iter().any(|s| s.id == id),
    };
    let found: Vec<Kind> = wanted.into_iter().filter(|k| exists(*k)).collect();
    let kinds_text = || {
        let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    };
    let target = match found.as_slice() {
        [] => return Err(format!("`{name}` names no {}", kinds_text())),
        [k] => Target {
            kind: *k,
            id: id.to_string(),
        },
        many => {
            let options: Vec<String> = many
                .iter()
                .map(|k| format!("`{}:{id}`", k.name()))
                .collect();
            return Err(format!(
                "`{name}` is ambiguous: write {}",
                options.join(" or ")
            ));
        }
    };
    if inserting && target.kind == Kind::Processor {
        let users = sources_listing(p, id);
        if users.len() > 1 {
            return Err(format!(
                "processor `{id}` runs inline in several sources ({}): insert at one of them instead",
                users.join(", ")
            ));
        }
    }
    Ok(target)
}

fn sources_listing(p: &Pipeline, processor: &str) -> Vec<String> {
    p.sources
        .iter()
        .filter(|s| s.processors.iter().any(|x| x == processor))
        .map(|s| s.id.clone())
        .collect()
}

/// Who runs an inline chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Owner {
    /// A source's `processors:`.
    Source(String),
    /// An inline processor that no source lists, fed on its own.
    Alone(String),
}

/// One processor instance of a chain.
struct Link {
    id: String,
    processor: Box<dyn Processor>,
}

/// The run of one test: built processors and what came out where.
pub struct Harness<'p> {
    p: &'p Pipeline,
    /// The test's own data directory (processors keeping state use it).
    data_dir: PathBuf,
    /// Inline chains, built on first use.
    chains: BTreeMap<Owner, Vec<Link>>,
    /// Stages, built on first use.
    stages: HashMap<String, Box<dyn Processor>>,
    /// Every event that came out of each component, in order.
    pub seen: HashMap<Target, Vec<Event>>,
    /// Things worth knowing when a test fails: failed events passed on,
    /// events no selector mapping took.
    pub notes: Vec<String>,
}

impl<'p> Harness<'p> {
    /// A harness over `p`, whose processors keep their state under `data_dir`.
    pub fn new(p: &'p Pipeline, data_dir: PathBuf) -> Self {
        Harness {
            p,
            data_dir,
            chains: BTreeMap::new(),
            stages: HashMap::new(),
            seen: HashMap::new(),
            notes: Vec::new(),
        }
    }

    fn build(&self, id: &str) -> Result<Box<dyn Processor>, String> {
        let spec = self
            .p
            .processor(id)
            .ok_or_else(|| format!("processor `{id}` is not declared"))?;
        let cx = BuildContext {
            id: id.to_string(),
            pipeline_data_dir: self.data_dir.clone(),
            data_dir: self.data_dir.join("processors").join(id),
            durable_input: false,
        };
        spec.config
            .build(&cx)
            .map_err(|e| format!("cannot build processor `{id}`: {e}"))
    }

    fn record(&mut self, kind: Kind, id: &str, batch: &Batch) {
        let events = self
            .seen
            .entry(Target {
                kind,
                id: id.to_string(),
            })
            .or_default();
        events.extend(batch.iter().cloned());
    }

    /// Feeds `events` into `at` as one batch.
    ///
    /// # Errors
    ///
    /// When a processor cannot be built.
    pub fn insert(&mut self, at: &Target, events: Vec<Event>) -> Result<(), String> {
        let batch = Batch::from(events);
        match at.kind {
            Kind::Source => self.run_chain(Owner::Source(at.id.clone()), 0, batch),
            Kind::Channel => self.push_channel(&at.id, batch),
            Kind::Sink => {
                self.record(Kind::Sink, &at.id, &batch);
                Ok(())
            }
            Kind::Processor => {
                let is_stage = self.p.processor(&at.id).is_some_and(|s| s.input.is_some());
                if is_stage {
                    return self.run_stage(&at.id, batch);
                }
                let owner = match sources_listing(self.p, &at.id).first() {
                    Some(s) => Owner::Source(s.clone()),
                    None => Owner::Alone(at.id.clone()),
                };
                let chain = self.chain_ids(&owner);
                let from = chain.iter().position(|x| *x == at.id).unwrap_or(0);
                self.run_chain(owner, from, batch)
            }
        }
    }

    fn chain_ids(&self, owner: &Owner) -> Vec<String> {
        match owner {
            Owner::Source(s) => self
                .p
                .sources
                .iter()
                .find(|x| x.id == *s)
                .map(|x| x.processors.clone())
                .unwrap_or_default(),
            Owner::Alone(id) => vec![id.clone()],
        }
    }

    /// The chain of `owner`, built when first needed, taken out of the map
    /// (put it back with [`Self::put_chain`]).
    fn take_chain(&mut self, owner: &Owner) -> Result<Vec<Link>, String> {
        if let Some(chain) = self.chains.remove(owner) {
            return Ok(chain);
        }
        self.chain_ids(owner)
            .into_iter()
            .map(|id| {
                let processor = self.build(&id)?;
                Ok(Link { id, processor })
            })
            .collect()
    }

    /// Runs `link` over `batch`; failed events are split off into the
    /// returned dead-letter batch (with its channel) when the processor has
    /// one, else noted and left in.
    fn run_link(&mut self, id: &str, processor: &mut dyn Processor, batch: &mut Batch) -> Dead {
        let mut cx = ProcessContext::new();
        processor.process(batch, &mut cx);
        let dead = self.failures(id, batch, cx.take_failures());
        self.record(Kind::Processor, id, batch);
        dead
    }

    fn failures(
        &mut self,
        id: &str,
        batch: &mut Batch,
        mut failures: Vec<(usize, String)>,
    ) -> Dead {
        if failures.is_empty() {
            return None;
        }
        failures.sort_by_key(|(i, _)| *i);
        failures.dedup_by_key(|(i, _)| *i);
        let dead_letter = self.p.processor(id).and_then(|s| s.dead_letter.clone());
        let Some(dlq) = dead_letter else {
            let (i, reason) = &failures[0];
            let body = batch
                .events
                .get(*i)
                .map(|e| String::from_utf8_lossy(&e.body).into_owned())
                .unwrap_or_default();
            self.notes.push(format!(
                "processor `{id}` failed {} event(s), passed on unchanged; the first: {reason} (body {body:?})",
                failures.len()
            ));
            return None;
        };
        let mut dead = Batch::with_capacity(failures.len());
        let mut kept = Vec::with_capacity(batch.len());
        let mut fi = failures.into_iter().peekable();
        for (i, mut event) in std::mem::take(&mut batch.events).into_iter().enumerate() {
            match fi.next_if(|(j, _)| *j == i) {
                Some((_, reason)) => {
                    event.insert("error", reason);
                    event.insert("component", id);
                    dead.push(event);
                }
                None => kept.push(event),
            }
        }
        batch.events = kept;
        Some((dlq, dead))
    }

    /// Runs the chain of `owner` from link `from` over `batch`, then (for a
    /// source) records and routes what is left.
    fn run_chain(&mut self, owner: Owner, from: usize, mut batch: Batch) -> Result<(), String> {
        let mut chain = self.take_chain(&owner)?;
        let mut dead = Vec::new();
        for link in chain.iter_mut().skip(from) {
            dead.extend(self.run_link(&link.id, link.processor.as_mut(), &mut batch));
            if batch.is_empty() {
                break;
            }
        }
        self.chains.insert(owner.clone(), chain);
        self.after_chain(&owner, batch, dead)
    }

    fn after_chain(
        &mut self,
        owner: &Owner,
        batch: Batch,
        dead: Vec<(String, Batch)>,
    ) -> Result<(), String> {
        for (ch, b) in dead {
            self.push_channel(&ch, b)?;
        }
        let Owner::Source(id) = owner else {
            return Ok(());
        };
        let Some(spec) = self.p.sources.iter().find(|s| s.id == *id) else {
            return Ok(());
        };
        if batch.is_empty() {
            return Ok(());
        }
        self.record(Kind::Source, id, &batch);
        self.route(id, &spec.selector, &spec.channels, batch)
    }

    fn run_stage(&mut self, id: &str, mut batch: Batch) -> Result<(), String> {
        let mut processor = match self.stages.remove(id) {
            Some(p) => p,
            None => self.build(id)?,
        };
        let dead = self.run_link(id, processor.as_mut(), &mut batch);
        self.stages.insert(id.to_string(), processor);
        self.after_stage(id, batch, dead)
    }

    fn after_stage(&mut self, id: &str, batch: Batch, dead: Dead) -> Result<(), String> {
        if let Some((ch, b)) = dead {
            self.push_channel(&ch, b)?;
        }
        let Some(spec) = self.p.processor(id) else {
            return Ok(());
        };
        self.route(id, &spec.selector, &spec.channels, batch)
    }

    /// Sends `batch` where `selector` says among `channels`.
    fn route(
        &mut self,
        owner: &str,
        selector: &SelectorSpec,
        channels: &[String],
        batch: Batch,
    ) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        match selector {
            SelectorSpec::Replicating => {
                for ch in channels {
                    self.push_channel(ch, batch.clone())?;
                }
            }
            SelectorSpec::Multiplexing {
                field,
                mapping,
                default,
            } => {
                let mut per: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
                let mut unrouted = 0;
                let mut key = String::new();
                for event in batch {
                    // As the runtime's selector: the field's text, else `default`.
                    let targets = match event.get(field) {
                        None => default,
                        Some(v) => {
                            key.clear();
                            v.write_text(&mut key);
                            mapping.get(key.as_str()).unwrap_or(default)
                        }
                    };
                    if targets.is_empty() {
                        unrouted += 1;
                    }
                    for t in targets {
                        per.entry(t.as_str()).or_default().push(event.clone());
                    }
                }
                if unrouted > 0 {
                    self.notes.push(format!(
                        "{unrouted} event(s) of `{owner}` matched no selector mapping and there is no default: discarded"
                    ));
                }
                for (ch, events) in per {
                    self.push_channel(ch, Batch::from(events))?;
                }
            }
        }
        Ok(())
    }

    /// Puts `batch` into channel `ch`: every sink and stage reading it gets it.
    fn push_channel(&mut self, ch: &str, batch: Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        self.record(Kind::Channel, ch, &batch);
        let p = self.p;
        for sink in p.sinks.iter().filter(|s| s.channel == ch) {
            self.record(Kind::Sink, &sink.id, &batch);
        }
        for stage in p
            .processors
            .iter()
            .filter(|s| s.input.as_deref() == Some(ch))
        {
            self.run_stage(&stage.id, batch.clone())?;
        }
        Ok(())
    }

    /// End of input: finishes every processor that was fed, upstream first,
    /// sending what each releases on through the graph.
    ///
    /// # Errors
    ///
    /// When a processor downstream cannot be built.
    pub fn finish(&mut self) -> Result<(), String> {
        let owners: Vec<Owner> = self.chains.keys().cloned().collect();
        for owner in owners {
            let Some(mut chain) = self.chains.remove(&owner) else {
                continue;
            };
            let mut outs = Vec::new();
            for i in 0..chain.len() {
                let mut out = Batch::new();
                chain[i].processor.finish(&mut out);
                let mut dead = Vec::new();
                if !out.is_empty() {
                    self.record(Kind::Processor, &chain[i].id, &out);
                }
                for link in chain.iter_mut().skip(i + 1) {
                    if out.is_empty() {
                        break;
                    }
                    dead.extend(self.run_link(&link.id, link.processor.as_mut(), &mut out));
                }
                outs.push((out, dead));
            }
            self.chains.insert(owner.clone(), chain);
            for (out, dead) in outs {
                self.after_chain(&owner, out, dead)?;
            }
        }
        for id in self.stage_order() {
            let Some(mut processor) = self.stages.remove(&id) else {
                continue;
            };
            let mut out = Batch::new();
            processor.finish(&mut out);
            self.stages.insert(id.clone(), processor);
            if !out.is_empty() {
                self.record(Kind::Processor, &id, &out);
                self.after_stage(&id, out, None)?;
            }
        }
        Ok(())
    }

    /// The stages, each after every stage that writes (through channels)
    /// into its input.
    fn stage_order(&self) -> Vec<String> {
        fn depth(p: &Pipeline, id: &str, memo: &mut HashMap<String, usize>, guard: usize) -> usize {
            if let Some(d) = memo.get(id) {
                return *d;
            }
            let Some(input) = p.processor(id).and_then(|s| s.input.clone()) else {
                return 0;
            };
            // The graph is checked for cycles when loaded; the guard only
            // bounds the walk should one slip through.
            if guard > p.processors.len() {
                return 0;
            }
            let writers: Vec<String> = p
                .processors
                .iter()
                .filter(|s| {
                    s.input.is_some()
                        && (s.channels.contains(&input) || s.dead_letter.as_ref() == Some(&input))
                })
                .map(|s| s.id.clone())
                .collect();
            let d = 1 + writers
                .iter()
                .map(|w| depth(p, w, memo, guard + 1))
                .max()
                .unwrap_or(0);
            memo.insert(id.to_string(), d);
            d
        }
        let mut memo = HashMap::new();
        let mut stages: Vec<(usize, usize, String)> = self
            .p
            .processors
            .iter()
            .enumerate()
            .filter(|(_, s)| s.input.is_some())
            .map(|(i, s)| (depth(self.p, &s.id, &mut memo, 0), i, s.id.clone()))
            .collect();
        stages.sort();
        stages.into_iter().map(|(_, _, id)| id).collect()
    }
}

/// Failed events bound for a dead-letter channel: (channel, events).
type Dead = Option<(String, Batch)>;

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::event::Timestamp;
    use sluice_runtime::pipeline::parse_pipeline;

    const PIPELINE: &str = r#"
sources:
  a: { type: stdin, processors: [parse, keep], channels: [errors] }
  b: { type: stdin, processors: [keep], channels: [errors] }
processors:
  parse: { type: parse_json }
  keep: { type: filter, condition: '.level == "error"' }
  mark:
    type: add_fields
    input: errors
    channels: [marked]
    fields: { seen: true }
channels:
  errors: { type: memory }
  marked: { type: memory }
sinks:
  errors: { type: console, channel: marked }
"#;

    fn pipeline() -> Pipeline {
        parse_pipeline(
            std::path::Path::new("p.yaml"),
            PIPELINE,
            &crate::registry(),
            &|_| None,
        )
        .expect("valid")
    }

    fn ev(body: &str) -> Event {
        Event::new(body.to_string(), Timestamp(0))
    }

    #[test]
    fn names_resolve_by_kind_and_ambiguity_is_refused() {
        let p = pipeline();
        let all = [Kind::Source, Kind::Processor, Kind::Channel, Kind::Sink];
        let t = resolve(&p, "mark", &all, false).unwrap();
        assert_eq!((t.kind, t.id.as_str()), (Kind::Processor, "mark"));
        let e = resolve(&p, "errors", &all, false).unwrap_err();
        assert_eq!(
            e,
            "`errors` is ambiguous: write `channel:errors` or `sink:errors`"
        );
        let t = resolve(&p, "sink:errors", &all, false).unwrap();
        assert_eq!(t.kind, Kind::Sink);
        let e = resolve(&p, "nope", &[Kind::Source, Kind::Channel], false).unwrap_err();
        assert_eq!(e, "`nope` names no source or channel");
        // `keep` runs in two sources: inserting there would be a guess.
        let e = resolve(&p, "keep", &all, true).unwrap_err();
        assert!(e.contains("runs inline in several sources (a, b)"), "{e}");
        assert!(resolve(&p, "keep", &all, false).is_ok());
    }

    #[test]
    fn events_travel_chains_selectors_channels_and_stages() {
        let p = pipeline();
        let dir = tempfile::tempdir().unwrap();
        let mut h = Harness::new(&p, dir.path().to_path_buf());
        let at = resolve(&p, "a", &[Kind::Source], true).unwrap();
        h.insert(
            &at,
            vec![
                ev(r#"{"level":"error"}"#),
                ev(r#"{"level":"info"}"#),
                ev("{"),
            ],
        )
        .unwrap();
        // Inserted at `parse`: the rest of source `a`'s chain runs too.
        let parse = resolve(&p, "parse", &[Kind::Processor], true).unwrap();
        h.insert(&parse, vec![ev(r#"{"level":"error","n":2}"#)])
            .unwrap();
        h.finish().unwrap();
        let seen = |kind, id: &str| {
            h.seen
                .get(&Target {
                    kind,
                    id: id.to_string(),
                })
                .map_or(0, Vec::len)
        };
        assert_eq!(seen(Kind::Processor, "parse"), 4);
        assert_eq!(seen(Kind::Processor, "keep"), 2);
        assert_eq!(seen(Kind::Source, "a"), 2);
        assert_eq!(seen(Kind::Channel, "errors"), 2);
        assert_eq!(seen(Kind::Processor, "mark"), 2);
        assert_eq!(seen(Kind::Sink, "errors"), 2);
        assert_eq!(seen(Kind::Source, "b"), 0);
        let marked = &h.seen[&Target {
            kind: Kind::Sink,
            id: "errors".into(),
        }];
        assert!(marked.iter().all(|e| e.get("seen") == Some(&true.into())));
        // The broken line failed in `parse` (no dead letter: passed on,
        // then dropped by the filter) and is noted for the report.
        assert_eq!(h.notes.len(), 1, "{:?}", h.notes);
        assert!(h.notes[0].starts_with("processor `parse` failed 1 event(s)"));
    }
}
