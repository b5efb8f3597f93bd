//! `template`: online log-template mining with Drain.
//!
//! Each event's text (the body, or a field) is masked, split into tokens and
//! filed into the Drain tree (see [`crate::drain`]). The event gets the id of
//! its template (an integer, stable across restarts), the template's text,
//! and optionally the parameters: the event's own tokens where the template
//! has `<*>`.
//!
//! The miner's state is saved as JSON under the processor's directory in
//! `data_dir` (`templates.json`): every `save_interval` when it changed, and
//! at the end of the run; it is loaded at start-up.
//!
//! ```yaml
//! processors:
//!   templates:
//!     type: template
//!     field: content
//!     similarity: 0.5
//!     depth: 4
//!     masks: [ipv4]
//!     mask_patterns: ['blk_-?\d+']
//! ```

use std::path::PathBuf;

use bytes::Bytes;
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::drain::{tokenize, Drain, DrainParams, DrainState, Outcome};
use crate::mask::{BuiltinMask, Masker};
use crate::report::{lock, report, Shared, TemplateBook};

fn default_depth() -> usize {
    4
}
fn default_similarity() -> f64 {
    0.5
}
fn default_max_children() -> usize {
    100
}
fn default_max_templates() -> usize {
    DrainParams::default().max_clusters
}
fn default_masks() -> Vec<BuiltinMask> {
    vec![BuiltinMask::Ipv4, BuiltinMask::Uuid, BuiltinMask::Hex]
}
fn default_id_field() -> String {
    "template_id".into()
}
fn default_template_field() -> String {
    "template".into()
}
fn default_save_interval() -> Duration {
    Duration(std::time::Duration::from_secs(10))
}
fn default_persist() -> bool {
    true
}

/// Options of the `template` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field (dotted path) holding the text to mine; the body when unset.
    #[serde(default)]
    pub field: Option<String>,
    /// Depth of the parse tree: `depth - 3` levels of leading tokens under
    /// the length level. At least 3.
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Fraction of equal tokens (0 to 1) a line needs to join a template.
    #[serde(default = "default_similarity")]
    pub similarity: f64,
    /// Children per tree node before new tokens share the wildcard.
    #[serde(default = "default_max_children")]
    pub max_children: usize,
    /// Count a position masked (`<*>`) in both the template and the line as
    /// equal in the similarity. Off: reference Drain, where a `<*>` never
    /// counts (see docs/anomaly.md for when the variant helps).
    #[serde(default)]
    pub match_masked: bool,
    /// Most templates kept; past it a line that fits none joins the most
    /// similar one of its tree leaf (which becomes more general).
    #[serde(default = "default_max_templates")]
    pub max_templates: usize,
    /// Built-in masks: `ipv4` (ASCII digits, with `:port`), `hex` (`0x..`), `uuid`,
    /// `number` (a number standing alone).
    #[serde(default = "default_masks")]
    pub masks: Vec<BuiltinMask>,
    /// Extra mask regexes, tried before the built-in ones.
    #[serde(default)]
    pub mask_patterns: Vec<String>,
    /// Field that gets the template id.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Field that gets the template text.
    #[serde(default = "default_template_field")]
    pub template_field: String,
    /// Field that gets the parameters (an array of strings); none when unset.
    #[serde(default)]
    pub params_field: Option<String>,
    /// Keep the miner's state under `data_dir` across restarts.
    #[serde(default = "default_persist")]
    pub persist: bool,
    /// How often a changed state is saved.
    #[serde(default = "default_save_interval")]
    pub save_interval: Duration,
}

impl Config {
    fn params(&self) -> DrainParams {
        DrainParams {
            depth: self.depth,
            similarity: self.similarity,
            max_children: self.max_children,
            match_masked: self.match_masked,
            max_clusters: self.max_templates,
        }
    }
}

impl ProcessorConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.depth < 3 {
            p.push(Problem::at("depth", "the depth must be at least 3"));
        }
        if !(0.0..=1.0).contains(&self.similarity) {
            p.push(Problem::at(
                "similarity",
                "the similarity is a fraction from 0 to 1",
            ));
        }
        if self.max_templates < 1 {
            p.push(Problem::at(
                "max_templates",
                "max_templates must be at least 1",
            ));
        }
        if self.max_children < 2 {
            p.push(Problem::at(
                "max_children",
                "max_children must be at least 2",
            ));
        }
        if let Err(e) = Masker::new(&self.mask_patterns, &self.masks) {
            p.push(Problem::at("mask_patterns", e));
        }
        if self.save_interval.get().is_zero() {
            p.push(Problem::at(
                "save_interval",
                "the save interval must be above zero",
            ));
        }
        p
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        let masker = Masker::new(&self.mask_patterns, &self.masks).map_err(BuildError::Other)?;
        let path = self.persist.then(|| cx.data_dir.join("templates.json"));
        let drain = match &path {
            Some(p) if p.exists() => load(p, self.params())?,
            _ => Drain::new(self.params()),
        };
        if !drain.clusters().is_empty() {
            tracing::info!(
                templates = drain.clusters().len(),
                "template miner state loaded"
            );
        }
        let mut book = TemplateBook::default();
        book.fill(drain.clusters());
        Ok(Box::new(TemplateMiner {
            book: Shared::new(book.into()),
            reported: false,
            drain,
            masker,
            field: self.field.clone(),
            id_field: self.id_field.clone(),
            template_field: self.template_field.clone(),
            params_field: self.params_field.clone(),
            path,
            save_interval: self.save_interval.get(),
            dirty: false,
            masked: Vec::new(),
            ranges: Vec::new(),
            raw_ranges: Vec::new(),
        }))
    }
}

fn load(path: &std::path::Path, params: DrainParams) -> Result<Drain, BuildError> {
    let text = std::fs::read_to_string(path)?;
    let state: DrainState = serde_json::from_str(&text).map_err(|e| {
        BuildError::Other(format!(
            "{}: not a saved template miner: {e}",
            path.display()
        ))
    })?;
    Drain::from_state(params, state).map_err(|e| {
        BuildError::Other(format!(
            "{}: {e}; remove the file to start afresh",
            path.display()
        ))
    })
}

/// The `template` processor.
pub struct TemplateMiner {
    drain: Drain,
    masker: Masker,
    field: Option<String>,
    id_field: String,
    template_field: String,
    params_field: Option<String>,
    /// Where the state is saved; `None` when not persisted.
    path: Option<PathBuf>,
    save_interval: std::time::Duration,
    /// Whether the state changed since it was last saved.
    dirty: bool,
    /// Reused buffers: the masked line and its token ranges, and the raw
    /// line's token ranges (for parameters).
    masked: Vec<u8>,
    ranges: Vec<(u32, u32)>,
    raw_ranges: Vec<(u32, u32)>,
    /// The templates as the API's `templates` report lists them, and
    /// whether that report was offered.
    book: Shared<TemplateBook>,
    reported: bool,
}

impl TemplateMiner {
    /// A miner outside any pipeline (benches, tools).
    pub fn new(drain: Drain, masker: Masker) -> Self {
        let mut book = TemplateBook::default();
        book.fill(drain.clusters());
        TemplateMiner {
            book: Shared::new(book.into()),
            reported: false,
            drain,
            masker,
            field: None,
            id_field: default_id_field(),
            template_field: default_template_field(),
            params_field: None,
            path: None,
            save_interval: std::time::Duration::from_secs(10),
            dirty: false,
            masked: Vec::new(),
            ranges: Vec::new(),
            raw_ranges: Vec::new(),
        }
    }

    /// The miner.
    pub fn drain(&self) -> &Drain {
        &self.drain
    }

    /// Mines one text; returns the index of its cluster.
    ///
    /// # Errors
    ///
    /// When the miner holds `max_templates` and the text's leaf has none
    /// to join: what to tell the user.
    pub fn mine(&mut self, text: &[u8]) -> Result<usize, String> {
        let masked = self.masker.apply(text, &mut self.masked);
        tokenize(masked, &mut self.ranges);
        let (ci, outcome) = self.drain.add(masked, &self.ranges).map_err(|f| {
            format!(
                "the miner holds max_templates ({}) templates and none has this line's length and first words; raise max_templates or mask more",
                f.clusters
            )
        })?;
        if outcome != Outcome::Matched {
            self.dirty = true;
        }
        Ok(ci)
    }

    fn save(&mut self) {
        let Some(path) = &self.path else {
            return;
        };
        if !self.dirty {
            return;
        }
        let result = (|| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            let text = serde_json::to_vec(&self.drain.state()).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)
        })();
        match result {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!(path = %path.display(), "cannot save the template miner: {e}"),
        }
    }
}

impl Processor for TemplateMiner {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        if !self.reported {
            cx.set_report("templates", report(&self.book, TemplateBook::render));
            self.reported = true;
        }
        let book = self.book.clone();
        let mut book = lock(&book);
        for (i, event) in batch.events.iter_mut().enumerate() {
            let text: Bytes = match &self.field {
                None => event.body.clone(),
                Some(f) => match event.get(f) {
                    Some(Value::String(b)) => b.clone(),
                    Some(other) => {
                        cx.fail(i, format!("field `{f}` holds a {}, not text", other.kind()));
                        continue;
                    }
                    None => {
                        cx.fail(i, format!("no field `{f}` to mine"));
                        continue;
                    }
                },
            };
            let ci = match self.mine(&text) {
                Ok(ci) => ci,
                Err(m) => {
                    cx.fail(i, m);
                    continue;
                }
            };
            let cluster = &self.drain.clusters()[ci];
            book.touch(ci, cluster);
            event.insert(&self.id_field, Value::Integer(cluster.id as i64));
            event.insert(&self.template_field, Value::String(cluster.text.clone()));
            if let Some(pf) = &self.params_field {
                tokenize(&text, &mut self.raw_ranges);
                let params: Vec<Value> = if self.raw_ranges.len() == cluster.tokens.len() {
                    self.raw_ranges
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| cluster.is_wildcard(*j))
                        .map(|(_, r)| Value::String(text.slice(r.0 as usize..r.1 as usize)))
                        .collect()
                } else {
                    // A mask spanned whitespace: the masked tokens stand in.
                    self.ranges
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| cluster.is_wildcard(*j))
                        .map(|(_, r)| {
                            Value::String(Bytes::copy_from_slice(
                                &self.masked[r.0 as usize..r.1 as usize],
                            ))
                        })
                        .collect()
                };
                event.insert(pf, Value::Array(params));
            }
        }
    }

    fn finish(&mut self, _out: &mut Batch) {
        self.save();
        tracing::info!(
            templates = self.drain.clusters().len(),
            "template miner finished"
        );
    }

    fn tick_interval(&self) -> Option<std::time::Duration> {
        self.path.as_ref().map(|_| self.save_interval)
    }

    fn tick(&mut self, _now: Timestamp, _out: &mut Batch) {
        self.save();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn events_get_id_template_and_params() {
        let mut p = build::<Config>("params_field: params\npersist: false\nmasks: [number]");
        let mut b = batch(&[
            "user alice logged in after 3 tries",
            "user bob logged in after 5 tries",
            "disk sda is full",
        ]);
        assert!(run(p.as_mut(), &mut b).is_empty());
        let e = &b.events;
        assert_eq!(e[0].get("template_id"), Some(&Value::Integer(1)));
        assert_eq!(e[1].get("template_id"), Some(&Value::Integer(1)));
        assert_eq!(e[2].get("template_id"), Some(&Value::Integer(2)));
        assert_eq!(
            e[1].get("template").and_then(Value::as_str),
            Some("user <*> logged in after <*> tries")
        );
        assert_eq!(
            e[1].get("params"),
            Some(&Value::Array(vec!["bob".into(), "5".into()]))
        );
    }

    #[test]
    fn a_full_miner_fails_a_line_with_nothing_to_join_and_names_the_option() {
        let mut p = build::<Config>("max_templates: 1\npersist: false\nmasks: []");
        let mut b = batch(&["user alice logged in", "disk full", "user bob logged in"]);
        let failed = run(p.as_mut(), &mut b);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, 1);
        assert!(failed[0].1.contains("max_templates (1)"), "{}", failed[0].1);
        assert_eq!(b.events[2].get("template_id"), Some(&Value::Integer(1)));
        let c: Config = config("max_templates: 0");
        assert!(c
            .validate()
            .iter()
            .any(|p| p.message.contains("max_templates")));
    }

    #[test]
    fn a_missing_field_fails_the_event() {
        let mut p = build::<Config>("field: content\npersist: false");
        let mut b = batch(&["x"]);
        assert_eq!(run(p.as_mut(), &mut b).len(), 1);
    }

    #[test]
    fn ids_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut cx = cx();
        cx.data_dir = dir.path().join("p");
        let c: Config = config("{}");
        let mut p = c.build(&cx).unwrap();
        let mut b = batch(&["alpha one", "beta two three", "alpha two"]);
        run(p.as_mut(), &mut b);
        p.finish(&mut Batch::new());
        let mut q = c.build(&cx).unwrap();
        let mut b = batch(&["beta two four", "gamma", "alpha three"]);
        run(q.as_mut(), &mut b);
        let ids: Vec<_> = b
            .events
            .iter()
            .map(|e| e.get("template_id").cloned())
            .collect();
        assert_eq!(
            ids,
            vec![
                Some(Value::Integer(2)),
                Some(Value::Integer(3)),
                Some(Value::Integer(1))
            ]
        );
        let bad: Config = config("depth: 6");
        assert!(
            bad.build(&cx).is_err(),
            "another depth cannot reuse the state"
        );
    }

    #[test]
    fn bad_options_are_reported() {
        let c: Config = config("depth: 2\nsimilarity: 1.5\nmask_patterns: ['(']");
        assert_eq!(c.validate().len(), 3);
        assert!(unknown_key::<Config>("depht: 4").contains("depht"));
    }
}
