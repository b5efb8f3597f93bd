//! "Did you mean …?" for misspelt keys and values.

/// Levenshtein distance between two short strings.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Words longer than this get no suggestion: the distance costs the
/// product of the lengths.
const LONGEST: usize = 64;

/// Candidates compared with a word: a pipeline with more names than this
/// gets suggestions from the first ones only, so that many misspelt
/// references cost time linear in the file, not quadratic.
const CANDIDATES: usize = 5_000;

/// The candidate closest to `word`, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    if len > LONGEST {
        return None;
    }
    let limit = (len / 3).max(2);
    candidates
        .into_iter()
        .take(CANDIDATES)
        .filter(|c| c.len() <= 4 * (len + limit) && c.chars().count().abs_diff(len) <= limit)
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= limit && *d < word.chars().count() && *d < c.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_only() {
        assert_eq!(
            nearest("capacty", ["capacity", "max_bytes"]),
            Some("capacity")
        );
        assert_eq!(nearest("xyzzy", ["capacity", "max_bytes"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
