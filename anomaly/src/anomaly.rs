//! `anomaly`: scores each event's feature vector and flags the anomalies.
//!
//! The model is learned from the first `training_size` vectors (they are
//! held back meanwhile, then scored and passed on with the rest; at end of
//! input a model is learned from whatever was held), or read from
//! `model_path` (a file written by `sluice train`). With `retrain_interval`,
//! a reservoir sample of `reservoir_size` recent events is kept and a new
//! model is trained on it on a background thread, then swapped in without
//! stopping the stream. Each training logs its figures (samples, features,
//! threshold).
//!
//! Each event gets `anomaly_score` (a float) and `anomaly` (a bool: score
//! above the threshold). An event without its vector (the `features` map
//! missing) is reported as failed and passes on without a score.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::explain;
use crate::model::{Algorithm, Model, Spec, Threshold};
use crate::report::{lock, report, AnomalyLog, Names, Shared};
use crate::vectorize::{Input, Normalize};

fn default_algorithm() -> Algorithm {
    Algorithm::IsolationForest
}
fn default_log_counts() -> bool {
    true
}
fn default_trees() -> usize {
    100
}
fn default_sample_size() -> usize {
    256
}
fn default_clusters() -> usize {
    8
}
fn default_max_iterations() -> u64 {
    100
}
fn default_seed() -> u64 {
    42
}
fn default_training_size() -> usize {
    1000
}
fn default_reservoir() -> usize {
    10_000
}
fn default_score_field() -> String {
    "anomaly_score".into()
}
fn default_flag_field() -> String {
    "anomaly".into()
}
/// The report log of a detector with `spec` that writes the templates'
/// text to `texts` and its drivers to `drivers`.
fn new_log(spec: &Spec, texts: &str, drivers: Option<&str>) -> Shared<AnomalyLog> {
    let features = match &spec.input {
        Input::Sparse(f) => Some(f.clone()),
        Input::Fields(_) => None,
    };
    Shared::new(
        AnomalyLog::new(Names {
            features,
            texts: texts.to_string(),
            drivers: drivers.map(str::to_string),
        })
        .into(),
    )
}

fn default_explain_field() -> Option<String> {
    Some("anomaly_drivers".into())
}
fn default_explain_top() -> usize {
    3
}
fn default_texts_field() -> String {
    "templates".into()
}

/// Options of the `anomaly` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `isolation_forest` (score 0 to 1) or `kmeans` (distance to the
    /// nearest centroid).
    #[serde(default = "default_algorithm")]
    pub algorithm: Algorithm,
    /// The field holding a map of counts (from `session` or `window`);
    /// `features` unless `fields` is set.
    #[serde(default)]
    pub features: Option<String>,
    /// Numeric fields (dotted paths) forming the vector, instead of a map.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Each count `n` of the map becomes `ln(1 + n)`: a template seen 300
    /// times weighs about twice one seen 15 times, not twenty times.
    #[serde(default = "default_log_counts")]
    pub log_counts: bool,
    /// Weight counts by inverse document frequency.
    #[serde(default)]
    pub tfidf: bool,
    /// `none`, `l2` (unit length) or `zscore` (per dimension). Default:
    /// `none` with the isolation forest; with k-means, `l2` for a map of
    /// counts and `zscore` for numeric `fields`.
    #[serde(default)]
    pub normalize: Option<Normalize>,
    /// Isolation forest: number of trees.
    #[serde(default = "default_trees")]
    pub trees: usize,
    /// Isolation forest: rows each tree is grown on.
    #[serde(default = "default_sample_size")]
    pub sample_size: usize,
    /// k-means: number of clusters.
    #[serde(default = "default_clusters")]
    pub clusters: usize,
    /// k-means: iterations at most.
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u64,
    /// Seed of the random generators: the same data trains the same model.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Vectors learned from before scoring starts.
    #[serde(default = "default_training_size")]
    pub training_size: usize,
    /// A fixed threshold: scores above it are anomalies.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The expected fraction of anomalies: the threshold flags this share
    /// of the training vectors (default 0.05 when `threshold` is unset).
    #[serde(default)]
    pub contamination: Option<f64>,
    /// A model file written by `sluice train`: no training at start-up.
    #[serde(default)]
    pub model_path: Option<std::path::PathBuf>,
    /// Retrain on a reservoir sample this often, in the background.
    #[serde(default)]
    pub retrain_interval: Option<Duration>,
    /// Events kept in the reservoir sample for retraining.
    #[serde(default = "default_reservoir")]
    pub reservoir_size: usize,
    /// Field that gets the score.
    #[serde(default = "default_score_field")]
    pub score_field: String,
    /// Field that gets the flag.
    #[serde(default = "default_flag_field")]
    pub flag_field: String,
    /// Field that gets, on flagged events only, the templates that drove
    /// the score with their text (see docs/anomaly.md); `null` turns it off.
    #[serde(default = "default_explain_field")]
    pub explain_field: Option<String>,
    /// Drivers listed at most.
    #[serde(default = "default_explain_top")]
    pub explain_top: usize,
    /// The field of feature events that maps template ids to their text
    /// (a `session` or `window` writes `templates`).
    #[serde(default = "default_texts_field")]
    pub texts_field: String,
}

impl Config {
    /// The scaling, explicit or by default: `none` for the isolation forest
    /// (each split looks at one dimension, so scale does not matter to it,
    /// and unit length would make short sessions look odd); for k-means,
    /// `l2` on a map of counts (the mix of templates matters, not the
    /// session's length) and `zscore` on numeric fields (distances across
    /// units).
    pub fn normalize(&self) -> Normalize {
        match (self.normalize, self.algorithm, self.fields.is_empty()) {
            (Some(n), _, _) => n,
            (None, Algorithm::IsolationForest, _) => Normalize::None,
            (None, Algorithm::Kmeans, true) => Normalize::L2,
            (None, Algorithm::Kmeans, false) => Normalize::Zscore,
        }
    }

    /// The training spec these options describe.
    pub fn spec(&self) -> Spec {
        let input = if self.fields.is_empty() {
            Input::Sparse(self.features.clone().unwrap_or_else(|| "features".into()))
        } else {
            Input::Fields(self.fields.clone())
        };
        Spec {
            algorithm: self.algorithm,
            log_counts: self.log_counts && self.fields.is_empty(),
            input,
            tfidf: self.tfidf,
            normalize: self.normalize(),
            trees: self.trees,
            sample_size: self.sample_size,
            clusters: self.clusters,
            max_iterations: self.max_iterations,
            seed: self.seed,
            threshold: match self.threshold {
                Some(t) => Threshold::Fixed(t),
                None => Threshold::Contamination(self.contamination.unwrap_or(0.05)),
            },
            texts_field: Some(self.texts_field.clone()),
        }
    }
}

impl ProcessorConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.features.is_some() && !self.fields.is_empty() {
            p.push(Problem::new(
                "set `features` (a map of counts) or `fields`, not both",
            ));
        }
        if self.algorithm == Algorithm::IsolationForest {
            // A forest splits one dimension at a time at a uniform point
            // between its least and greatest value: scaling a dimension by
            // a positive factor or shifting it grows the same trees.
            if self.normalize == Some(Normalize::Zscore) {
                p.push(Problem::at(
                    "normalize",
                    "zscore scales each dimension on its own, which cannot change an isolation forest's result (it splits one dimension at a time): remove it, or use l2",
                ));
            }
            if self.tfidf && self.normalize() != Normalize::L2 {
                p.push(Problem::at(
                    "tfidf",
                    "tf-idf weighs each dimension by a constant, which cannot change an isolation forest's result unless `normalize: l2` follows it: remove it, or use l2",
                ));
            }
        }
        if self.threshold.is_some() && self.contamination.is_some() {
            p.push(Problem::new("set `threshold` or `contamination`, not both"));
        }
        if self.contamination.is_some_and(|c| !(c > 0.0 && c < 1.0)) {
            p.push(Problem::at(
                "contamination",
                "a fraction above 0 and below 1",
            ));
        }
        for (key, v) in [
            ("trees", self.trees),
            ("sample_size", self.sample_size),
            ("clusters", self.clusters),
            ("training_size", self.training_size),
            ("reservoir_size", self.reservoir_size),
            ("explain_top", self.explain_top),
        ] {
            if v == 0 {
                p.push(Problem::at(key, "must be at least 1"));
            }
        }
        if self.retrain_interval.is_some_and(|d| d.get().is_zero()) {
            p.push(Problem::at("retrain_interval", "must be above zero"));
        }
        p
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(self.detector()?))
    }
}

impl Config {
    /// The processor these options describe.
    ///
    /// # Errors
    ///
    /// When the model file cannot be read.
    pub fn detector(&self) -> Result<Detector, BuildError> {
        let model = match &self.model_path {
            Some(path) => {
                let m = Model::load(path).map_err(BuildError::Other)?;
                tracing::info!(
                    samples = m.stats.samples,
                    features = m.stats.features,
                    threshold = m.threshold,
                    "anomaly model loaded from {}: {}",
                    path.display(),
                    m.describe()
                );
                Some(Arc::new(m))
            }
            None => None,
        };
        Ok(Detector {
            spec: self.spec(),
            model,
            training_size: self.training_size,
            held: Vec::new(),
            retrain_every: self.retrain_interval.map(Duration::get),
            last_retrain: Instant::now(),
            reservoir: Vec::new(),
            reservoir_size: self.reservoir_size,
            seen: 0,
            rng: Xoshiro256PlusPlus::seed_from_u64(self.seed),
            pending: None,
            score_field: self.score_field.clone(),
            flag_field: self.flag_field.clone(),
            explain_field: self.explain_field.clone(),
            explain_top: self.explain_top,
            texts_field: self.texts_field.clone(),
            buf: Vec::new(),
            rows: Vec::new(),
            scored: Vec::new(),
            scores: Vec::new(),
            log: new_log(
                &self.spec(),
                &self.texts_field,
                self.explain_field.as_deref(),
            ),
            reported: false,
        })
    }
}

/// The `anomaly` processor.
pub struct Detector {
    spec: Spec,
    model: Option<Arc<Model>>,
    training_size: usize,
    /// Events held while the first model is learned.
    held: Vec<Event>,
    retrain_every: Option<std::time::Duration>,
    last_retrain: Instant,
    /// A uniform sample of the events seen (for retraining).
    reservoir: Vec<Event>,
    reservoir_size: usize,
    seen: u64,
    rng: Xoshiro256PlusPlus,
    /// A model being trained in the background.
    pending: Option<Receiver<Result<Model, String>>>,
    score_field: String,
    flag_field: String,
    /// Where flagged events get their drivers (none: not explained), how
    /// many, and the field naming the templates' texts.
    explain_field: Option<String>,
    explain_top: usize,
    texts_field: String,
    /// The vector of the event at hand, the batch's vectors, which events
    /// have one, and their scores: reused from batch to batch.
    buf: Vec<f64>,
    rows: Vec<f64>,
    scored: Vec<usize>,
    scores: Vec<f64>,
    /// The latest scores and flagged groups, as the API's `anomalies`
    /// report shows them, and whether that report was offered.
    log: Shared<AnomalyLog>,
    reported: bool,
}

fn log_trained(m: &Model, what: &str) {
    tracing::info!(
        samples = m.stats.samples,
        features = m.stats.features,
        threshold = m.threshold,
        flagged = m.stats.flagged,
        "{what}: {}",
        m.describe()
    );
}

impl Detector {
    /// A detector with a trained model, outside any pipeline (benches).
    pub fn with_model(model: Model) -> Self {
        let c: Config = match sluice_core::config::from_yaml_str("{}") {
            Ok(c) => c,
            Err(e) => panic!("default anomaly options: {e}"),
        };
        let log = new_log(&c.spec(), &c.texts_field, c.explain_field.as_deref());
        Detector {
            log,
            spec: c.spec(),
            model: Some(Arc::new(model)),
            training_size: c.training_size,
            held: Vec::new(),
            retrain_every: None,
            last_retrain: Instant::now(),
            reservoir: Vec::new(),
            reservoir_size: c.reservoir_size,
            seen: 0,
            rng: Xoshiro256PlusPlus::seed_from_u64(c.seed),
            pending: None,
            score_field: c.score_field,
            flag_field: c.flag_field,
            explain_field: c.explain_field,
            explain_top: c.explain_top,
            texts_field: c.texts_field,
            buf: Vec::new(),
            rows: Vec::new(),
            scored: Vec::new(),
            scores: Vec::new(),
            reported: false,
        }
    }

    fn train_now(&mut self) {
        let n = self.held.len().min(self.training_size);
        match Model::train(&self.spec, &self.held[..n]) {
            Ok(m) => {
                log_trained(&m, "anomaly model trained");
                self.model = Some(Arc::new(m));
                self.last_retrain = Instant::now();
            }
            Err(e) => tracing::warn!("cannot train the anomaly model yet: {e}"),
        }
    }

    fn score_all(&mut self, events: &mut [Event], cx: &mut ProcessContext, offset: usize) {
        let Some(model) = self.model.clone() else {
            return;
        };
        // All vectors first, then all scores: a forest scores a whole batch
        // tree by tree.
        let dims = model.vectorizer.dims();
        self.rows.clear();
        self.scored.clear();
        for (i, e) in events.iter().enumerate() {
            match model.vectorizer.vector(e, &mut self.buf) {
                Ok(()) => {
                    self.rows.extend_from_slice(&self.buf);
                    self.scored.push(i);
                }
                Err(err) => cx.fail(offset + i, err),
            }
        }
        model
            .detector
            .score_many(&self.rows, dims, &mut self.scores);
        let log = self.log.clone();
        let mut log = lock(&log);
        log.set_threshold(model.threshold);
        for (k, (&i, &s)) in self.scored.iter().zip(&self.scores).enumerate() {
            let e = &mut events[i];
            let flagged = s > model.threshold;
            e.insert(&self.score_field, Value::Float(s));
            e.insert(&self.flag_field, Value::Bool(flagged));
            if let (true, Some(f)) = (flagged, &self.explain_field) {
                let x = &self.rows[k * dims..(k + 1) * dims];
                let why = explain::drivers(&model, e, x, &self.texts_field, self.explain_top);
                e.insert(f, why);
            }
            log.record(e, s, flagged);
        }
    }

    fn sample(&mut self, events: &[Event]) {
        if self.retrain_every.is_none() {
            return;
        }
        for e in events {
            self.seen += 1;
            if self.reservoir.len() < self.reservoir_size {
                self.reservoir.push(e.clone());
            } else {
                let j = self.rng.gen_range(0..self.seen);
                if (j as usize) < self.reservoir_size {
                    self.reservoir[j as usize] = e.clone();
                }
            }
        }
    }

    fn poll_retrain(&mut self) {
        if let Some(rx) = &self.pending {
            match rx.try_recv() {
                Ok(Ok(m)) => {
                    log_trained(&m, "anomaly model retrained and swapped in");
                    self.model = Some(Arc::new(m));
                    self.pending = None;
                }
                Ok(Err(e)) => {
                    tracing::warn!("retraining failed, the model in use stays: {e}");
                    self.pending = None;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.pending = None,
            }
        }
        let Some(every) = self.retrain_every else {
            return;
        };
        if self.pending.is_some()
            || self.model.is_none()
            || self.reservoir.is_empty()
            || self.last_retrain.elapsed() < every
        {
            return;
        }
        self.last_retrain = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let spec = self.spec.clone();
        let sample = self.reservoir.clone();
        let spawned = std::thread::Builder::new()
            .name("anomaly-retrain".into())
            .spawn(move || {
                let _ = tx.send(Model::train(&spec, &sample));
            });
        match spawned {
            Ok(_) => self.pending = Some(rx),
            Err(e) => tracing::warn!("cannot start retraining: {e}"),
        }
    }
}

impl Processor for Detector {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        if !self.reported {
            cx.set_report("anomalies", report(&self.log, AnomalyLog::render));
            self.reported = true;
        }
        self.poll_retrain();
        self.sample(&batch.events);
        if self.model.is_none() {
            self.held.append(&mut batch.events);
            if self.held.len() < self.training_size {
                return;
            }
            self.train_now();
            if self.model.is_none() {
                // Nothing trainable yet: let the events go on unscored.
                batch.events.append(&mut self.held);
                return;
            }
            let mut held = std::mem::take(&mut self.held);
            self.score_all(&mut held, cx, 0);
            batch.events = held;
            return;
        }
        let mut events = std::mem::take(&mut batch.events);
        self.score_all(&mut events, cx, 0);
        batch.events = events;
    }

    fn finish(&mut self, out: &mut Batch) {
        if self.model.is_none() && !self.held.is_empty() {
            self.train_now();
            let mut held = std::mem::take(&mut self.held);
            let mut cx = ProcessContext::new();
            self.score_all(&mut held, &mut cx, 0);
            if !cx.failures().is_empty() {
                tracing::warn!(
                    failed = cx.failures().len(),
                    "held events without a feature vector pass on unscored"
                );
            }
            out.events.append(&mut held);
        }
    }

    fn tick_interval(&self) -> Option<std::time::Duration> {
        self.retrain_every
            .map(|d| (d / 4).max(std::time::Duration::from_millis(50)))
    }

    fn tick(&mut self, _now: Timestamp, _out: &mut Batch) {
        self.poll_retrain();
    }
}

#[cfg(test)]
#[path = "anomaly_tests.rs"]
mod tests;
