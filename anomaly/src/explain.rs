//! Why a vector was flagged, in terms a person reads: the templates that
//! drove its score, with their text.
//!
//! * Isolation forest: the event's templates, rarest first: a template
//!   seen in few training sessions (or none: never seen) is what a random
//!   split isolates quickly. Each driver gives `seen_in`, the share of
//!   training vectors holding that template; one held by every training
//!   vector is not listed.
//! * k-means: the dimensions furthest from the nearest centroid, largest
//!   squared difference first. Each driver gives `deviation`, the vector's
//!   value minus the centroid's: positive when the template occurs more
//!   than usual (or is new), negative when it occurs less or is missing (a
//!   block never stored).
//!
//! A driver is a map: `id` (the template id, or the field with numeric
//! `fields`), `count` (its count in the event), `text` (the template's text,
//! from the event's own map of texts, else from the training events) and
//! the measure above.

use sluice_core::prelude::*;

use crate::model::{Detector, Model};
use crate::vectorize::Input;

/// A driver before it becomes a map.
struct Driver {
    id: String,
    count: f64,
    /// `seen_in` (forest) or `deviation` (k-means).
    measure: (&'static str, f64),
    /// The sort key: larger drives more.
    weight: f64,
}

/// The `top` drivers of the score of `e`, whose final vector is `x`;
/// `texts_field` names the event's map of template ids to text.
pub fn drivers(model: &Model, e: &Event, x: &[f64], texts_field: &str, top: usize) -> Value {
    let v = &model.vectorizer;
    let mut found: Vec<Driver> = Vec::new();
    match (&v.input, &model.detector) {
        (Input::Sparse(f), Detector::IsolationForest(_)) => {
            let Some(Value::Map(m)) = e.get(f) else {
                return Value::Array(Vec::new());
            };
            for (k, n) in m.iter() {
                let count = n.as_f64().unwrap_or(0.0);
                if count <= 0.0 {
                    continue;
                }
                let seen = v
                    .dimension(k.as_str())
                    .and_then(|j| v.share.get(j).copied())
                    .unwrap_or(0.0);
                if seen >= 1.0 {
                    // In every training vector: it isolates nothing.
                    continue;
                }
                found.push(Driver {
                    id: k.to_string(),
                    count,
                    measure: ("seen_in", seen),
                    weight: 1.0 - seen,
                });
            }
        }
        (input, Detector::Kmeans(c)) => {
            let Some(centroid) = c.nearest(x) else {
                return Value::Array(Vec::new());
            };
            let map = match input {
                Input::Sparse(f) => match e.get(f) {
                    Some(Value::Map(m)) => Some(m),
                    _ => None,
                },
                Input::Fields(_) => None,
            };
            for (j, (a, b)) in x.iter().zip(centroid).enumerate() {
                let d = a - b;
                if d == 0.0 {
                    continue;
                }
                match input {
                    Input::Fields(fields) => {
                        let id = fields.get(j).cloned().unwrap_or_default();
                        let count = e.get(&id).and_then(Value::as_f64).unwrap_or(0.0);
                        found.push(Driver {
                            id,
                            count,
                            measure: ("deviation", d),
                            weight: d * d,
                        });
                    }
                    Input::Sparse(_) if j < v.vocabulary.len() => {
                        let id = &v.vocabulary[j];
                        let count = map
                            .and_then(|m| m.get(id.as_str()))
                            .and_then(Value::as_f64)
                            .unwrap_or(0.0);
                        found.push(Driver {
                            id: id.clone(),
                            count,
                            measure: ("deviation", d),
                            weight: d * d,
                        });
                    }
                    // The dimension of templates unseen in training: each
                    // of them drives it.
                    Input::Sparse(_) => {
                        for (k, n) in map.into_iter().flat_map(|m| m.iter()) {
                            if v.dimension(k.as_str()).is_none() {
                                found.push(Driver {
                                    id: k.to_string(),
                                    count: n.as_f64().unwrap_or(0.0),
                                    measure: ("deviation", d),
                                    weight: d * d,
                                });
                            }
                        }
                    }
                }
            }
        }
        (Input::Fields(_), Detector::IsolationForest(_)) => {}
    }
    // Largest weight first; ties: the larger count, then the id.
    found.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(b.count.total_cmp(&a.count))
            .then_with(|| a.id.cmp(&b.id))
    });
    found.truncate(top);
    let texts = match e.get(texts_field) {
        Some(Value::Map(m)) => Some(m),
        _ => None,
    };
    Value::Array(
        found
            .into_iter()
            .map(|d| {
                let mut m = Fields::with_capacity(4);
                let text = texts
                    .and_then(|t| t.get(d.id.as_str()))
                    .cloned()
                    .or_else(|| {
                        let j = v.dimension(&d.id)?;
                        let t = v.texts.get(j).filter(|t| !t.is_empty())?;
                        Some(Value::from(t.as_str()))
                    });
                m.insert("id", Value::from(d.id.as_str()));
                m.insert(
                    "count",
                    if d.count.fract() == 0.0 {
                        Value::Integer(d.count as i64)
                    } else {
                        Value::Float(d.count)
                    },
                );
                if let Some(t) = text {
                    m.insert("text", t);
                }
                m.insert(d.measure.0, Value::Float(d.measure.1));
                Value::Map(m)
            })
            .collect(),
    )
}
