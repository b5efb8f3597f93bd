//! k-means with linfa-clustering; the score of a point is its Euclidean
//! distance to the nearest centroid.

use linfa::prelude::*;
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

/// Fitted centroids, one per row.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Centroids {
    /// Row-major centroids.
    pub centroids: Vec<Vec<f64>>,
}

/// Fitting parameters.
#[derive(Clone, Copy, Debug)]
pub struct KMeansParams {
    /// Number of clusters (at most the rows given).
    pub clusters: usize,
    /// Iterations per run.
    pub max_iterations: u64,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Centroids {
    /// Fits k-means on the rows of `data`.
    ///
    /// # Errors
    ///
    /// What linfa reports (too few rows, for instance).
    pub fn fit(data: ArrayView2<'_, f64>, p: KMeansParams) -> Result<Self, String> {
        let k = p.clusters.min(data.nrows()).max(1);
        let dataset = DatasetBase::from(data.to_owned());
        let rng = Xoshiro256Plus::seed_from_u64(p.seed);
        let model = KMeans::params_with_rng(k, rng)
            .max_n_iterations(p.max_iterations)
            .tolerance(1e-6)
            .fit(&dataset)
            .map_err(|e| format!("k-means: {e}"))?;
        let c: &Array2<f64> = model.centroids();
        Ok(Centroids {
            centroids: c.rows().into_iter().map(|r| r.to_vec()).collect(),
        })
    }

    /// Half the least distance between two distinct centroids: a point
    /// closer than that to a centroid is nearer to it than to any other.
    /// Centroids within rounding error of each other (more clusters than
    /// distinct points) count as one. `None` with fewer than two distinct
    /// centroids.
    pub fn half_least_separation(&self) -> Option<f64> {
        let mut least = f64::INFINITY;
        for (i, a) in self.centroids.iter().enumerate() {
            let scale = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1.0);
            for b in &self.centroids[i + 1..] {
                let d = squared_distance(a, b).sqrt();
                if d > 1e-9 * scale {
                    least = least.min(d);
                }
            }
        }
        least.is_finite().then_some(least / 2.0)
    }

    /// The centroid nearest to `x`.
    pub fn nearest(&self, x: &[f64]) -> Option<&[f64]> {
        self.centroids
            .iter()
            .map(|c| (squared_distance(c, x), c))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| c.as_slice())
    }

    /// Distance from `x` to the nearest centroid.
    pub fn score(&self, x: &[f64]) -> f64 {
        self.centroids
            .iter()
            .map(|c| squared_distance(c, x))
            .fold(f64::INFINITY, f64::min)
            .sqrt()
    }
}

/// The squared Euclidean distance between two vectors of one length.
fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_blobs_and_a_far_point() {
        let mut data = Array2::<f64>::zeros((40, 2));
        for i in 0..40 {
            let base = if i < 20 { 0.0 } else { 10.0 };
            data[[i, 0]] = base + (i % 5) as f64 * 0.1;
            data[[i, 1]] = base - (i % 3) as f64 * 0.1;
        }
        let p = KMeansParams {
            clusters: 2,
            max_iterations: 100,
            seed: 3,
        };
        let c = Centroids::fit(data.view(), p).unwrap();
        assert_eq!(c.centroids.len(), 2);
        assert!(c.score(&[0.2, -0.1]) < 0.5);
        assert!(c.score(&[10.2, 9.9]) < 0.5);
        assert!(c.score(&[5.0, 5.0]) > 5.0);
        let half = c.half_least_separation().unwrap();
        assert!((half - 10.0 * 2f64.sqrt() / 2.0).abs() < 0.3, "{half}");
        let one = Centroids {
            centroids: vec![vec![1.0, 2.0]; 2],
        };
        assert_eq!(one.half_least_separation(), None);
    }
}
