//! Measures: grouping accuracy of a template miner against ground truth,
//! and precision, recall and F1 of anomaly flags against labels.

use std::collections::HashMap;
use std::hash::Hash;

/// Grouping accuracy: the fraction of lines whose mined group holds exactly
/// the lines of their true group. `parsed[i]` and `truth[i]` are line `i`'s
/// mined and true group.
///
/// A mined group counts (all its lines) only when all its lines share one
/// true group and that true group has no other lines.
pub fn grouping_accuracy<A: Eq + Hash, B: Eq + Hash>(parsed: &[A], truth: &[B]) -> f64 {
    let n = parsed.len().min(truth.len());
    if n == 0 {
        return 0.0;
    }
    let mut truth_size: HashMap<&B, usize> = HashMap::new();
    for t in &truth[..n] {
        *truth_size.entry(t).or_default() += 1;
    }
    // Per mined group: its size and its true group, or None once mixed.
    let mut groups: HashMap<&A, (usize, Option<&B>, bool)> = HashMap::new();
    for i in 0..n {
        let g = groups
            .entry(&parsed[i])
            .or_insert((0, Some(&truth[i]), true));
        g.0 += 1;
        if g.1 != Some(&truth[i]) {
            g.2 = false;
        }
    }
    let correct: usize = groups
        .values()
        .filter(|(size, t, pure)| *pure && t.and_then(|t| truth_size.get(t)) == Some(size))
        .map(|(size, _, _)| size)
        .sum();
    correct as f64 / n as f64
}

/// Counts of a binary detector against labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Flagged and labelled anomalous.
    pub true_positives: u64,
    /// Flagged but labelled normal.
    pub false_positives: u64,
    /// Not flagged but labelled anomalous.
    pub false_negatives: u64,
    /// Not flagged and labelled normal.
    pub true_negatives: u64,
}

impl Confusion {
    /// Adds one prediction.
    pub fn add(&mut self, flagged: bool, anomalous: bool) {
        match (flagged, anomalous) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_positives += 1,
            (false, true) => self.false_negatives += 1,
            (false, false) => self.true_negatives += 1,
        }
    }

    /// TP / (TP + FP); 0 when nothing was flagged.
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// TP / (TP + FN); 0 when nothing is anomalous.
    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// The harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Splits one CSV record (RFC 4180 quoting, no newlines inside fields).
pub fn csv_record(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The values of column `name` of a CSV text with a header line.
///
/// # Errors
///
/// When the header has no such column.
pub fn csv_column(text: &str, name: &str) -> Result<Vec<String>, String> {
    let mut lines = text.lines();
    let header = csv_record(lines.next().unwrap_or_default());
    let col = header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| format!("no column `{name}` in the header ({})", header.join(",")))?;
    Ok(lines
        .filter(|l| !l.is_empty())
        .map(|l| csv_record(l).get(col).cloned().unwrap_or_default())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_accuracy_counts_only_exact_groups() {
        // Truth: a a b b c; mined: 1 1 2 2 2 (b and c merged).
        let truth = ["a", "a", "b", "b", "c"];
        assert_eq!(grouping_accuracy(&[1, 1, 2, 2, 2], &truth), 0.4);
        // Split a true group: neither half counts.
        assert_eq!(grouping_accuracy(&[1, 9, 2, 2, 3], &truth), 0.6);
        assert_eq!(grouping_accuracy(&[5, 5, 6, 6, 7], &truth), 1.0);
    }

    #[test]
    fn precision_recall_f1() {
        let mut c = Confusion::default();
        for (f, a) in [
            (true, true),
            (true, false),
            (false, true),
            (false, false),
            (true, true),
        ] {
            c.add(f, a);
        }
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.f1() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(Confusion::default().f1(), 0.0);
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(
            csv_record(r#"1,"a, ""b""",c"#),
            vec!["1".to_string(), r#"a, "b""#.into(), "c".into()]
        );
    }
}
