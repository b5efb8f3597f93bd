//! From events to dense vectors: the vocabulary of a sparse count map, or
//! chosen numeric fields; then optional tf-idf weighting and normalisation.
//!
//! With a sparse map (`features` of a session or window), the vocabulary is
//! the keys seen in the training vectors, in order of first appearance; one
//! last dimension counts what falls outside it (templates never seen in
//! training, often the very thing to find). With numeric fields, each field
//! is one dimension and a missing one counts as 0.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sluice_core::prelude::*;

/// Where a vector comes from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// A map of counts in this field.
    Sparse(String),
    /// These numeric fields.
    Fields(Vec<String>),
}

/// How vectors are scaled after weighting.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// As they are.
    #[default]
    None,
    /// Each vector to unit length.
    L2,
    /// Each dimension to mean 0 and standard deviation 1 (training figures).
    Zscore,
}

/// The fitted vectorizer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Vectorizer {
    /// The input.
    pub input: Input,
    /// Sparse keys, by dimension.
    pub vocabulary: Vec<String>,
    /// Whether each count `n` of a sparse map becomes `ln(1 + n)`.
    #[serde(default)]
    pub log_counts: bool,
    /// Inverse document frequency per dimension, when tf-idf is on.
    pub idf: Option<Vec<f64>>,
    /// The scaling.
    pub normalize: Normalize,
    /// Per dimension, the share of training vectors where it is above 0:
    /// how common a template is (explanations name the rarest).
    #[serde(default)]
    pub share: Vec<f64>,
    /// Per sparse key, its text (a template's) when training events named
    /// it, else empty: explanations show it.
    #[serde(default)]
    pub texts: Vec<String>,
    /// Per-dimension mean and standard deviation (z-score).
    pub mean: Vec<f64>,
    /// See `mean`.
    pub std: Vec<f64>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

/// Why an event has no vector.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// The sparse field is missing or not a map.
    #[error("field `{0}` is missing or not a map of counts")]
    NotAMap(String),
}

impl Vectorizer {
    /// Learns the vocabulary (and idf, mean, std) from `events`.
    pub fn fit(
        input: Input,
        log_counts: bool,
        tfidf: bool,
        normalize: Normalize,
        events: &[Event],
    ) -> Self {
        let mut v = Vectorizer {
            input,
            log_counts,
            vocabulary: Vec::new(),
            idf: None,
            normalize,
            share: Vec::new(),
            texts: Vec::new(),
            mean: Vec::new(),
            std: Vec::new(),
            index: HashMap::new(),
        };
        if let Input::Sparse(f) = &v.input {
            for e in events {
                if let Some(Value::Map(m)) = e.get(f) {
                    for (k, _) in m.iter() {
                        if !v.index.contains_key(k.as_str()) {
                            v.index.insert(k.to_string(), v.vocabulary.len());
                            v.vocabulary.push(k.to_string());
                        }
                    }
                }
            }
        }
        let dims = v.dims();
        let mut raw = vec![0.0; dims];
        let rows: Vec<Vec<f64>> = events
            .iter()
            .filter_map(|e| v.raw(e, &mut raw).ok().map(|()| raw.clone()))
            .collect();
        let n = rows.len().max(1) as f64;
        v.share = (0..dims)
            .map(|j| rows.iter().filter(|r| r[j] > 0.0).count() as f64 / n)
            .collect();
        if tfidf {
            let n = rows.len() as f64;
            let idf = (0..dims)
                .map(|j| {
                    let df = rows.iter().filter(|r| r[j] > 0.0).count() as f64;
                    ((1.0 + n) / (1.0 + df)).ln() + 1.0
                })
                .collect();
            v.idf = Some(idf);
        }
        if normalize == Normalize::Zscore {
            let n = rows.len().max(1) as f64;
            let mut weighted = vec![0.0; dims];
            let (mut mean, mut sq) = (vec![0.0; dims], vec![0.0; dims]);
            for r in &rows {
                weighted.copy_from_slice(r);
                v.weight(&mut weighted);
                for j in 0..dims {
                    mean[j] += weighted[j];
                    sq[j] += weighted[j] * weighted[j];
                }
            }
            for j in 0..dims {
                mean[j] /= n;
                let var = (sq[j] / n - mean[j] * mean[j]).max(0.0);
                sq[j] = var.sqrt();
            }
            v.mean = mean;
            v.std = sq;
        }
        v
    }

    /// Learns the text of each sparse key from the maps of id to text in
    /// the field `field` of `events` (a session's `templates`).
    pub fn learn_texts(&mut self, field: &str, events: &[Event]) {
        self.texts = vec![String::new(); self.vocabulary.len()];
        for e in events {
            if let Some(Value::Map(m)) = e.get(field) {
                for (k, t) in m.iter() {
                    if let (Some(&j), Some(t)) = (self.index.get(k.as_str()), t.as_str()) {
                        self.texts[j] = t.to_string();
                    }
                }
            }
        }
    }

    /// The dimension of sparse key `k`: `None` outside the vocabulary.
    pub fn dimension(&self, k: &str) -> Option<usize> {
        self.index.get(k).copied()
    }

    /// Rebuilds the lookup index after deserializing.
    pub fn reindex(&mut self) {
        self.index = self
            .vocabulary
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
    }

    /// Number of dimensions.
    pub fn dims(&self) -> usize {
        match &self.input {
            Input::Sparse(_) => self.vocabulary.len() + 1,
            Input::Fields(f) => f.len(),
        }
    }

    /// The unweighted vector of `e` into `out` (of length `dims()`).
    fn raw(&self, e: &Event, out: &mut [f64]) -> Result<(), VectorError> {
        out.fill(0.0);
        match &self.input {
            Input::Sparse(f) => {
                let Some(Value::Map(m)) = e.get(f) else {
                    return Err(VectorError::NotAMap(f.clone()));
                };
                let unseen = out.len() - 1;
                for (k, val) in m.iter() {
                    let n = val.as_f64().unwrap_or(0.0);
                    match self.index.get(k.as_str()) {
                        Some(&j) => out[j] += n,
                        None => out[unseen] += n,
                    }
                }
                if self.log_counts {
                    for x in out.iter_mut() {
                        *x = x.max(0.0).ln_1p();
                    }
                }
            }
            Input::Fields(fields) => {
                for (slot, f) in out.iter_mut().zip(fields) {
                    *slot = e.get(f).and_then(Value::as_f64).unwrap_or(0.0);
                }
            }
        }
        Ok(())
    }

    fn weight(&self, out: &mut [f64]) {
        if let Some(idf) = &self.idf {
            for (x, w) in out.iter_mut().zip(idf) {
                *x *= w;
            }
        }
    }

    /// The final vector of `e` into `out` (resized to `dims()`).
    ///
    /// # Errors
    ///
    /// When the event lacks the sparse map.
    pub fn vector(&self, e: &Event, out: &mut Vec<f64>) -> Result<(), VectorError> {
        out.resize(self.dims(), 0.0);
        self.raw(e, out)?;
        for x in out.iter_mut().filter(|x| !x.is_finite()) {
            *x = 0.0;
        }
        self.weight(out);
        match self.normalize {
            Normalize::None => {}
            Normalize::L2 => {
                let norm = out.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm > 0.0 {
                    out.iter_mut().for_each(|x| *x /= norm);
                }
            }
            Normalize::Zscore => {
                for ((x, m), s) in out.iter_mut().zip(&self.mean).zip(&self.std) {
                    *x = if *s > 0.0 { (*x - m) / s } else { *x - m };
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fe(pairs: &[(&str, i64)]) -> Event {
        let mut e = Event::new("", Timestamp(0));
        let m: Fields = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::Integer(*v)))
            .collect();
        e.insert("features", Value::Map(m));
        e
    }

    #[test]
    fn vocabulary_unseen_dimension_and_tfidf() {
        let train = [fe(&[("1", 2), ("2", 1)]), fe(&[("1", 1)])];
        let v = Vectorizer::fit(
            Input::Sparse("features".into()),
            false,
            true,
            Normalize::None,
            &train,
        );
        assert_eq!(v.vocabulary, vec!["1", "2"]);
        let mut out = Vec::new();
        v.vector(&fe(&[("1", 1), ("9", 3)]), &mut out).unwrap();
        // idf("1") = ln(3/3) + 1 = 1; unseen dim never seen: ln(3/1) + 1.
        assert_eq!(out[0], 1.0);
        assert!((out[2] - 3.0 * (3f64.ln() + 1.0)).abs() < 1e-12);
        let l2 = Vectorizer::fit(
            Input::Sparse("features".into()),
            false,
            false,
            Normalize::L2,
            &train,
        );
        l2.vector(&fe(&[("1", 3), ("2", 4)]), &mut out).unwrap();
        assert_eq!(out, vec![0.6, 0.8, 0.0]);
        assert!(v.vector(&Event::new("", Timestamp(0)), &mut out).is_err());
    }
}
