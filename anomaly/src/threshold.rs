//! Placing the threshold from the training scores (`contamination`).
//!
//! Scores above the threshold are anomalies. With a contamination `c`, the
//! threshold is the training score at rank `ceil((1 - c) n)` (ascending):
//! at most `floor(c n)` training vectors score above it. Ties never push
//! that share up: when the cut falls inside a run of equal scores, the
//! whole run stays below the threshold, so fewer are flagged, never more.
//!
//! A threshold equal to the least training score would flag every vector
//! that scores even slightly above the bulk of the training data: with
//! k-means on template counts, most training vectors often sit exactly on
//! a centroid (score 0), and any vector not seen in training would be
//! flagged. That case is never taken silently: the threshold moves half-way
//! from the tied least score to the next greater training score (the same
//! training vectors are flagged, and a new vector must be at least half as
//! far out as the least unusual of them), or, when every training score is
//! the same, to the fallback the detector gives (k-means: half the least
//! distance between two centroids), and a warning says so.

/// The threshold chosen, and why it is not the plain quantile.
#[derive(Clone, Debug, PartialEq)]
pub struct Chosen {
    /// The threshold.
    pub value: f64,
    /// Set when the quantile was degenerate and a fallback was used (or
    /// none was possible): the text of the warning.
    pub warning: Option<String>,
}

/// The threshold for contamination `c` over `sorted` training scores
/// (ascending, at least one). `all_tied` is the detector's fallback when
/// every training score is equal.
pub fn from_contamination(sorted: &[f64], c: f64, all_tied: Option<f64>) -> Chosen {
    let n = sorted.len();
    if n == 0 {
        return Chosen {
            value: 0.0,
            warning: Some("no training score".into()),
        };
    }
    let keep = ((1.0 - c) * n as f64).ceil() as usize;
    let q = sorted[keep.clamp(1, n) - 1];
    // Scores this close count as equal: a vector on a centroid scores a
    // rounding error, not exactly 0.
    let tol = 1e-9 * sorted[n - 1].abs().max(1.0);
    if q > sorted[0] + tol {
        return Chosen {
            value: q,
            warning: None,
        };
    }
    let q = sorted[0] + tol;
    let tied = sorted.iter().take_while(|s| **s <= q).count();
    if let Some(&next) = sorted.iter().find(|s| **s > q) {
        let value = sorted[0] + (next - sorted[0]) / 2.0;
        return Chosen {
            value,
            warning: Some(format!(
                "{tied} of {n} training vectors share the least score {}: a threshold there would flag \
                 every vector scoring above them; the threshold is half-way to the next score \
                 {next}: {value}",
                sorted[0]
            )),
        };
    }
    let q = sorted[0];
    match all_tied {
        Some(value) if value > q => Chosen {
            value,
            warning: Some(format!(
                "every training vector scores {q}: the threshold falls back to {value} \
                 (half the least distance between two centroids)"
            )),
        },
        _ => Chosen {
            value: q,
            warning: Some(format!(
                "every training vector scores {q}: the model cannot tell them apart and every \
                 vector scoring above {q} is flagged; train on more varied data or set `threshold`"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantile_flags_at_most_the_share_even_with_ties() {
        let mut s: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let t = from_contamination(&s, 0.05, None);
        assert_eq!((t.value, t.warning.is_none()), (94.0, true));
        assert_eq!(s.iter().filter(|x| **x > t.value).count(), 5);
        // Ten vectors tie at the top: flagging them all would be 10%.
        s = [vec![0.3; 50], vec![0.4; 40], vec![0.6; 10]].concat();
        let t = from_contamination(&s, 0.05, None);
        let flagged = s.iter().filter(|x| **x > t.value).count();
        assert!(flagged <= 5, "{flagged}");
        assert_eq!(t.value, 0.6);
        assert!(t.warning.is_none());
    }

    #[test]
    fn a_threshold_at_the_least_score_falls_back_with_a_warning() {
        // 98 training vectors on a centroid, 2 off it.
        let s = [vec![0.0; 98], vec![0.5, 2.0]].concat();
        let t = from_contamination(&s, 0.02, None);
        assert_eq!(t.value, 0.25);
        assert!(t
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("98 of 100")));
        assert_eq!(s.iter().filter(|x| **x > t.value).count(), 2);
        // Rounding errors are ties too.
        let s = [vec![1e-16; 50], vec![2e-15; 48], vec![0.5, 2.0]].concat();
        let t = from_contamination(&s, 0.02, None);
        assert!((t.value - 0.25).abs() < 1e-12, "{}", t.value);
        // All equal: the detector's fallback, or a warning that keeps it.
        let t = from_contamination(&[0.0; 10], 0.05, Some(0.7));
        assert_eq!(t.value, 0.7);
        assert!(t.warning.is_some());
        let t = from_contamination(&[0.4; 10], 0.05, None);
        assert_eq!(t.value, 0.4);
        assert!(t.warning.is_some());
    }
}
