//! "Did you mean …?" for misspelt keys and values.

/// Levenshtein distance between two short strings.
pub fn distance(a: &str, b: &str) -> usize {
    distance_in(a, b, &mut Vec::new(), &mut Vec::new())
}

/// [`distance`] with its rows in buffers the caller reuses: no allocation
/// per candidate once they have grown.
fn distance_in(a: &str, b: &str, prev: &mut Vec<usize>, cur: &mut Vec<usize>) -> usize {
    let n = b.chars().count();
    prev.clear();
    prev.extend(0..=n);
    cur.clear();
    cur.resize(n + 1, 0);
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.chars().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(prev, cur);
    }
    prev[n]
}

/// Words longer than this get no suggestion: the distance costs the
/// product of the lengths.
const LONGEST: usize = 64;

/// The candidate closest to `word`, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    if len > LONGEST {
        return None;
    }
    let limit = (len / 3).max(2);
    let (mut prev, mut cur) = (Vec::new(), Vec::new());
    candidates
        .into_iter()
        .filter(|c| c.len() <= 4 * (len + limit) && c.chars().count().abs_diff(len) <= limit)
        .map(|c| (distance_in(word, c, &mut prev, &mut cur), c))
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
