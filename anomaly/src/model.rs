//! A trained model: the vectorizer, the detector and the threshold, with
//! the figures of its training. Written to and read from a JSON file (the
//! `sluice train` command writes one; the `anomaly` processor reads it).

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sluice_core::prelude::*;

use crate::iforest::{ForestParams, IsolationForest};
use crate::kmeans::{Centroids, KMeansParams};
use crate::vectorize::{Input, Normalize, Vectorizer};

/// Which detector.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Isolation forest: score from 0 to 1.
    IsolationForest,
    /// k-means: score is the distance to the nearest centroid.
    Kmeans,
}

/// Where the threshold comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// Scores above this value are anomalies.
    Fixed(f64),
    /// The threshold that flags this fraction of the training vectors.
    Contamination(f64),
}

/// Everything needed to train.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The detector.
    pub algorithm: Algorithm,
    /// Where vectors come from.
    pub input: Input,
    /// Sparse counts `n` become `ln(1 + n)`.
    pub log_counts: bool,
    /// Weight sparse counts by inverse document frequency.
    pub tfidf: bool,
    /// Scaling.
    pub normalize: Normalize,
    /// Isolation forest: trees.
    pub trees: usize,
    /// Isolation forest: rows per tree.
    pub sample_size: usize,
    /// k-means: clusters.
    pub clusters: usize,
    /// k-means: iterations.
    pub max_iterations: u64,
    /// Seed.
    pub seed: u64,
    /// Threshold.
    pub threshold: Threshold,
    /// The field of feature events that maps template ids to their text.
    pub texts_field: Option<String>,
}

/// The fitted detector.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "algorithm")]
pub enum Detector {
    /// See [`IsolationForest`].
    IsolationForest(IsolationForest),
    /// See [`Centroids`].
    Kmeans(Centroids),
}

/// Figures of a training run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainStats {
    /// Vectors trained on.
    pub samples: usize,
    /// Dimensions of each vector.
    pub features: usize,
    /// The threshold chosen.
    pub threshold: f64,
    /// Training vectors above the threshold.
    pub flagged: usize,
    /// Least, median and greatest training score.
    pub score_min: f64,
    /// See `score_min`.
    pub score_median: f64,
    /// See `score_min`.
    pub score_max: f64,
}

/// A trained model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    /// Format version.
    pub version: u32,
    /// Events to vectors.
    pub vectorizer: Vectorizer,
    /// Vectors to scores.
    pub detector: Detector,
    /// Scores above it are anomalies.
    pub threshold: f64,
    /// How it was trained.
    pub stats: TrainStats,
}

impl Model {
    /// Trains on `events` (those without a vector are left out).
    ///
    /// # Errors
    ///
    /// When no event has a vector, or k-means fails.
    pub fn train(spec: &Spec, events: &[Event]) -> Result<Model, String> {
        let mut vectorizer = Vectorizer::fit(
            spec.input.clone(),
            spec.log_counts,
            spec.tfidf,
            spec.normalize,
            events,
        );
        if let Some(f) = &spec.texts_field {
            vectorizer.learn_texts(f, events);
        }
        let dims = vectorizer.dims();
        let mut rows = Vec::with_capacity(events.len() * dims);
        let mut v = Vec::with_capacity(dims);
        let mut n = 0;
        for e in events {
            if vectorizer.vector(e, &mut v).is_ok() {
                rows.extend_from_slice(&v);
                n += 1;
            }
        }
        if n == 0 {
            return Err("no training event has a feature vector".into());
        }
        let data = Array2::from_shape_vec((n, dims), rows).map_err(|e| e.to_string())?;
        let detector = match spec.algorithm {
            Algorithm::IsolationForest => Detector::IsolationForest(IsolationForest::fit(
                data.view(),
                ForestParams {
                    trees: spec.trees,
                    sample_size: spec.sample_size,
                    seed: spec.seed,
                },
            )),
            Algorithm::Kmeans => Detector::Kmeans(Centroids::fit(
                data.view(),
                KMeansParams {
                    clusters: spec.clusters,
                    max_iterations: spec.max_iterations,
                    seed: spec.seed,
                },
            )?),
        };
        let mut scores: Vec<f64> = data
            .rows()
            .into_iter()
            .map(|r| detector.score(r.as_slice().unwrap_or(&[])))
            .collect();
        scores.sort_by(f64::total_cmp);
        let threshold = match spec.threshold {
            Threshold::Fixed(t) => t,
            Threshold::Contamination(c) => {
                let all_tied = match &detector {
                    Detector::Kmeans(k) => k.half_least_separation(),
                    Detector::IsolationForest(_) => None,
                };
                let chosen = crate::threshold::from_contamination(&scores, c, all_tied);
                if let Some(w) = &chosen.warning {
                    tracing::warn!("anomaly threshold: {w}");
                }
                chosen.value
            }
        };
        let flagged = scores.iter().filter(|s| **s > threshold).count();
        let stats = TrainStats {
            samples: n,
            features: dims,
            threshold,
            flagged,
            score_min: scores[0],
            score_median: scores[n / 2],
            score_max: scores[n - 1],
        };
        Ok(Model {
            version: 1,
            vectorizer,
            detector,
            threshold,
            stats,
        })
    }

    /// The score of `e`, using `buf` for its vector; `None` when it has none.
    pub fn score(&self, e: &Event, buf: &mut Vec<f64>) -> Option<f64> {
        self.vectorizer.vector(e, buf).ok()?;
        Some(self.detector.score(buf))
    }

    /// Reads a model file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is not a model.
    pub fn load(path: &std::path::Path) -> Result<Model, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut m: Model = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a model file: {e}", path.display()))?;
        m.vectorizer.reindex();
        m.check()
            .map_err(|e| format!("{}: not a usable model: {e}", path.display()))?;
        Ok(m)
    }

    /// Checks that the detector fits the vectorizer and, for a forest, that
    /// its trees are trees (see [`crate::iforest::Tree::check`]).
    ///
    /// # Errors
    ///
    /// What is wrong.
    pub fn check(&self) -> Result<(), String> {
        let dims = self.vectorizer.dims();
        match &self.detector {
            Detector::IsolationForest(f) => f.check(dims),
            Detector::Kmeans(c) => match c.centroids.iter().position(|x| x.len() != dims) {
                Some(i) => Err(format!(
                    "centroid {i} has {} values, but vectors have {dims}",
                    c.centroids[i].len()
                )),
                None => Ok(()),
            },
        }
    }

    /// Writes the model file.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn save(&self, path: &std::path::Path) -> Result<(), String> {
        let text = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// One line describing the model.
    pub fn describe(&self) -> String {
        let s = &self.stats;
        let algo = match &self.detector {
            Detector::IsolationForest(f) => {
                format!(
                    "isolation_forest ({} trees of {} rows)",
                    f.trees.len(),
                    f.sample_size
                )
            }
            Detector::Kmeans(c) => format!("kmeans ({} centroids)", c.centroids.len()),
        };
        format!(
            "{algo}: {} samples, {} features, threshold {:.6}, {} training vectors flagged, scores min {:.6} median {:.6} max {:.6}",
            s.samples, s.features, s.threshold, s.flagged, s.score_min, s.score_median, s.score_max
        )
    }
}

impl Detector {
    /// The scores of many vectors (`rows`, `dims` values each) into `out`.
    pub fn score_many(&self, rows: &[f64], dims: usize, out: &mut Vec<f64>) {
        match self {
            Detector::IsolationForest(f) => f.score_many(rows, dims, out),
            Detector::Kmeans(c) => {
                out.clear();
                if dims > 0 {
                    out.extend(rows.chunks_exact(dims).map(|x| c.score(x)));
                }
            }
        }
    }

    /// The score of a vector.
    pub fn score(&self, x: &[f64]) -> f64 {
        match self {
            Detector::IsolationForest(f) => f.score(x),
            Detector::Kmeans(c) => c.score(x),
        }
    }
}
