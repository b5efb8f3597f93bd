//! The Drain log-template miner: a fixed-depth parse tree over token
//! sequences.
//!
//! A line is split on ASCII whitespace into tokens. The tree's first level
//! is the number of tokens; the next `depth - 3` levels are the leading
//! tokens (a token holding a digit goes under the wildcard `<*>`, and a node
//! with `max_children` children sends further new tokens to `<*>`); the
//! leaves hold clusters. In a leaf the line joins the cluster whose template
//! shares the largest fraction of its tokens (wildcards do not count; ties
//! go to the template with more wildcards), if that fraction reaches
//! `similarity`; the template then turns every position where they differ
//! into `<*>`. Otherwise the line starts a new cluster.
//!
//! Cluster ids are given in order of creation from 1 and never change, so
//! a line's id is stable even when its cluster's template later becomes
//! more general. [`Drain::state`] and [`Drain::from_state`] save and restore
//! the whole miner, ids included.
//!
//! The similarity is the reference one: a template position that is `<*>`
//! (masked in the line that made it, or made so by a merge) never counts
//! as equal. Beyond the reference, a line below the similarity still joins
//! a cluster of its leaf whose template it fits entirely (every position
//! equal, or `<*>` by a merge, or masked in both): the reference makes a
//! new cluster with the very same template instead, so a kind of line that
//! is mostly masked (`BLOCK* ask <*> to delete <*> <*> ...`) added one
//! cluster per line, and a leaf, its memory and every search in it grew
//! with the input. [`DrainParams::match_masked`] turns on a variant where a
//! position masked in both the template and the line counts as equal: it
//! helps where masks hide the only variable parts of short messages that
//! must still group (`<*> closed`, `<*> opened`), and harms where messages
//! differ only in words that are masked (two different errors, each with an
//! address and a number, become one template). One more detail goes beyond
//! the reference description: a line shorter than the tree's depth is still
//! filed under its own leaf, so short lines group as well.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The wildcard token.
pub const WILDCARD: &[u8] = b"<*>";

/// Drain's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct DrainParams {
    /// Depth of the parse tree, counting the root, the length level and the
    /// leaves: `depth - 3` levels of leading tokens. At least 3.
    pub depth: usize,
    /// Minimum fraction of equal tokens for a line to join a cluster.
    pub similarity: f64,
    /// Children of an inner node before new tokens share the wildcard child.
    pub max_children: usize,
    /// Whether a position masked (`<*>`) in both the template and the line
    /// counts as equal in the similarity. Off in reference Drain.
    pub match_masked: bool,
    /// Most clusters in all; past it a line that would start one joins the
    /// nearest cluster of its leaf (see [`Drain::add`]).
    pub max_clusters: usize,
}

/// Most clusters in one leaf: a line is compared with every cluster of its
/// leaf, so this bounds the work per line whatever the input.
pub const LEAF_CLUSTERS: usize = 1000;

/// The miner is full: the line fits no cluster, may not start one, and its
/// leaf holds none to join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// Clusters held.
    pub clusters: usize,
}

impl Default for DrainParams {
    fn default() -> Self {
        DrainParams {
            depth: 4,
            similarity: 0.5,
            max_children: 100,
            match_masked: false,
            max_clusters: 100_000,
        }
    }
}

/// One template: its tokens (`None` is the wildcard) and how many lines
/// joined it.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The stable id, from 1.
    pub id: u64,
    /// The template's tokens; `None` is `<*>`.
    pub tokens: Vec<Option<Box<[u8]>>>,
    /// Lines that joined this cluster.
    pub count: u64,
    /// The template as text (tokens joined by one space), rebuilt only when
    /// the template changes: events share it.
    pub text: Bytes,
    /// The tree path under the length node, kept to restore the tree.
    path: Vec<Box<[u8]>>,
}

impl Cluster {
    fn render(tokens: &[Option<Box<[u8]>>]) -> Bytes {
        let mut s = Vec::with_capacity(tokens.len() * 8);
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 {
                s.push(b' ');
            }
            s.extend_from_slice(t.as_deref().unwrap_or(WILDCARD));
        }
        Bytes::from(s)
    }

    /// Whether position `i` of the template is a wildcard (made by a merge,
    /// or masked).
    pub fn is_wildcard(&self, i: usize) -> bool {
        self.tokens
            .get(i)
            .is_some_and(|t| t.as_deref().is_none_or(|t| t == WILDCARD))
    }
}

enum Node {
    Inner(HashMap<Box<[u8]>, Node>),
    /// Indexes into `Drain::clusters`.
    Leaf(Vec<usize>),
}

impl Node {
    /// A new, empty node: a leaf when `leaf`, else an inner node.
    fn empty(leaf: bool) -> Node {
        if leaf {
            Node::Leaf(Vec::new())
        } else {
            Node::Inner(HashMap::new())
        }
    }
}

/// What [`Drain::add`] did with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new cluster was made.
    Created,
    /// Joined a cluster whose template became more general.
    Changed,
    /// Joined a cluster as it was.
    Matched,
}

/// The miner.
pub struct Drain {
    params: DrainParams,
    /// By number of tokens.
    root: HashMap<usize, Node>,
    clusters: Vec<Cluster>,
}

fn has_digit(t: &[u8]) -> bool {
    t.iter().any(u8::is_ascii_digit)
}

/// Splits `line` on ASCII whitespace into `out` as byte ranges.
pub fn tokenize(line: &[u8], out: &mut Vec<(u32, u32)>) {
    out.clear();
    let mut start = None;
    for (i, b) in line.iter().enumerate() {
        if b.is_ascii_whitespace() {
            if let Some(s) = start.take() {
                out.push((s as u32, i as u32));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s as u32, line.len() as u32));
    }
}

/// What a search of the tree found for a line.
struct Found {
    /// The cluster the line joins.
    hit: Option<usize>,
    /// The most similar cluster of its leaf, whatever the similarity.
    nearest: Option<usize>,
    /// Clusters in its leaf.
    leaf: usize,
}

impl Drain {
    /// An empty miner.
    pub fn new(params: DrainParams) -> Self {
        Drain {
            params,
            root: HashMap::new(),
            clusters: Vec::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &DrainParams {
        &self.params
    }

    /// Every cluster, in order of id.
    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// The cluster with `id`.
    pub fn cluster(&self, id: u64) -> Option<&Cluster> {
        self.clusters.get((id as usize).checked_sub(1)?)
    }

    fn token_levels(&self, len: usize) -> usize {
        self.params.depth.saturating_sub(3).min(len)
    }

    /// Files the line whose tokens are `ranges` of `line` and returns its
    /// cluster's index and what happened.
    ///
    /// A line that joins no cluster starts one, unless the miner holds
    /// `max_clusters` or its leaf [`LEAF_CLUSTERS`]: then it joins the most
    /// similar cluster of its leaf whatever the similarity (the template
    /// becomes more general), so that neither the memory nor the work per
    /// line grows with the input.
    ///
    /// # Errors
    ///
    /// [`Full`] when the miner holds `max_clusters` and the line's leaf
    /// holds no cluster.
    pub fn add(&mut self, line: &[u8], ranges: &[(u32, u32)]) -> Result<(usize, Outcome), Full> {
        let tok = |i: usize| &line[ranges[i].0 as usize..ranges[i].1 as usize];
        let len = ranges.len();
        let levels = self.token_levels(len);
        let found = self.search(line, ranges, levels);
        let full = self.clusters.len() >= self.params.max_clusters || found.leaf >= LEAF_CLUSTERS;
        let joined = match found.hit {
            Some(ci) => Some(ci),
            None if full => Some(found.nearest.ok_or(Full {
                clusters: self.clusters.len(),
            })?),
            None => None,
        };
        if let Some(ci) = joined {
            let c = &mut self.clusters[ci];
            c.count += 1;
            let mut changed = false;
            for (i, t) in c.tokens.iter_mut().enumerate() {
                if t.as_deref().is_some_and(|x| x != tok(i)) {
                    *t = None;
                    changed = true;
                }
            }
            if changed {
                c.text = Cluster::render(&c.tokens);
                return Ok((ci, Outcome::Changed));
            }
            return Ok((ci, Outcome::Matched));
        }
        let tokens: Vec<Option<Box<[u8]>>> = (0..len).map(|i| Some(tok(i).into())).collect();
        let ci = self.clusters.len();
        let path = self.insert(&tokens, levels, ci);
        self.clusters.push(Cluster {
            id: ci as u64 + 1,
            text: Cluster::render(&tokens),
            tokens,
            count: 1,
            path,
        });
        Ok((ci, Outcome::Created))
    }

    fn search(&self, line: &[u8], ranges: &[(u32, u32)], levels: usize) -> Found {
        let none = Found {
            hit: None,
            nearest: None,
            leaf: 0,
        };
        let Some(mut node) = self.root.get(&ranges.len()) else {
            return none;
        };
        for r in &ranges[..levels] {
            let Node::Inner(children) = node else {
                return none;
            };
            let t = &line[r.0 as usize..r.1 as usize];
            match children.get(t).or_else(|| children.get(WILDCARD)) {
                Some(n) => node = n,
                None => return none,
            }
        }
        let Node::Leaf(ids) = node else {
            return none;
        };
        let mut best: Option<(usize, f64, usize)> = None;
        // The first cluster whose template the line fits entirely.
        let mut fits: Option<usize> = None;
        let match_masked = self.params.match_masked;
        for &ci in ids {
            let c = &self.clusters[ci];
            let (mut same, mut wild, mut differ) = (0usize, 0usize, false);
            for (t, r) in c.tokens.iter().zip(ranges) {
                let tok = &line[r.0 as usize..r.1 as usize];
                match t {
                    None => wild += 1,
                    Some(t) if !match_masked && **t == *WILDCARD => {
                        wild += 1;
                        differ |= tok != WILDCARD;
                    }
                    Some(t) if **t == *tok => same += 1,
                    Some(_) => differ = true,
                }
            }
            if !differ && fits.is_none() {
                fits = Some(ci);
            }
            let sim = if c.tokens.is_empty() {
                1.0
            } else {
                same as f64 / c.tokens.len() as f64
            };
            if best.is_none_or(|(_, s, w)| sim > s || (sim == s && wild > w)) {
                best = Some((ci, sim, wild));
            }
        }
        Found {
            hit: best
                .filter(|b| b.1 >= self.params.similarity)
                .map(|b| b.0)
                .or(fits),
            nearest: best.map(|b| b.0),
            leaf: ids.len(),
        }
    }

    /// Adds a new cluster to the tree; returns the path it took.
    fn insert(&mut self, tokens: &[Option<Box<[u8]>>], levels: usize, ci: usize) -> Vec<Box<[u8]>> {
        let max = self.params.max_children;
        let first_leaf = levels == 0;
        let mut node = self
            .root
            .entry(tokens.len())
            .or_insert_with(|| Node::empty(first_leaf));
        let mut path = Vec::with_capacity(levels);
        for (level, t) in tokens[..levels].iter().enumerate() {
            let t = t.as_deref().unwrap_or(WILDCARD);
            let Node::Inner(children) = node else {
                break;
            };
            let key: &[u8] = if children.contains_key(t) {
                t
            } else if has_digit(t) {
                WILDCARD
            } else if children.contains_key(WILDCARD) {
                if children.len() < max {
                    t
                } else {
                    WILDCARD
                }
            } else if children.len() + 1 < max {
                t
            } else {
                WILDCARD
            };
            path.push(Box::<[u8]>::from(key));
            let leaf_next = level + 1 == levels;
            node = children
                .entry(key.into())
                .or_insert_with(|| Node::empty(leaf_next));
        }
        if let Node::Leaf(ids) = node {
            ids.push(ci);
        }
        path
    }

    /// The whole miner as a serializable value.
    pub fn state(&self) -> DrainState {
        DrainState {
            version: 1,
            clusters: self
                .clusters
                .iter()
                .map(|c| ClusterState {
                    id: c.id,
                    count: c.count,
                    text: String::from_utf8_lossy(&c.text).into_owned(),
                    template: c
                        .tokens
                        .iter()
                        .map(|t| {
                            t.as_deref()
                                .map(|b| String::from_utf8_lossy(b).into_owned())
                        })
                        .collect(),
                    path: c
                        .path
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect(),
                })
                .collect(),
        }
    }

    /// Restores a miner saved with [`state`](Self::state).
    ///
    /// # Errors
    ///
    /// When the ids are not 1, 2, 3... in order, or a path does not fit.
    pub fn from_state(params: DrainParams, state: DrainState) -> Result<Self, String> {
        let mut d = Drain::new(params);
        for (i, c) in state.clusters.into_iter().enumerate() {
            if c.id != i as u64 + 1 {
                return Err(format!(
                    "cluster {} is out of order (expected {})",
                    c.id,
                    i + 1
                ));
            }
            let tokens: Vec<Option<Box<[u8]>>> = c
                .template
                .into_iter()
                .map(|t| t.map(|s| s.into_bytes().into_boxed_slice()))
                .collect();
            let levels = d.token_levels(tokens.len());
            if c.path.len() != levels {
                return Err(format!(
                    "cluster {}: saved with another tree depth ({} levels, now {levels})",
                    c.id,
                    c.path.len()
                ));
            }
            let path: Vec<Option<Box<[u8]>>> = c
                .path
                .into_iter()
                .map(|s| Some(s.into_bytes().into_boxed_slice()))
                .collect();
            // Follow the saved path exactly.
            let first_leaf = levels == 0;
            let mut node = d
                .root
                .entry(tokens.len())
                .or_insert_with(|| Node::empty(first_leaf));
            for (level, key) in path.iter().enumerate() {
                let key = key.as_deref().unwrap_or(WILDCARD);
                let Node::Inner(children) = node else {
                    return Err(format!("cluster {}: bad tree path", c.id));
                };
                let leaf_next = level + 1 == levels;
                node = children
                    .entry(key.into())
                    .or_insert_with(|| Node::empty(leaf_next));
            }
            match node {
                Node::Leaf(ids) => ids.push(i),
                Node::Inner(_) => return Err(format!("cluster {}: bad tree path", c.id)),
            }
            d.clusters.push(Cluster {
                id: c.id,
                text: Cluster::render(&tokens),
                tokens,
                count: c.count,
                path: path.into_iter().flatten().collect(),
            });
        }
        Ok(d)
    }
}

/// The saved form of a miner.
#[derive(Debug, Serialize, Deserialize)]
pub struct DrainState {
    /// Format version.
    pub version: u32,
    /// Every cluster, by id.
    pub clusters: Vec<ClusterState>,
}

impl ClusterState {
    /// The template as text: `text` when saved, else made from the tokens
    /// (a state saved before `text` existed).
    pub fn text(&self) -> String {
        if !self.text.is_empty() || self.template.is_empty() {
            return self.text.clone();
        }
        let words: Vec<&str> = self
            .template
            .iter()
            .map(|t| t.as_deref().unwrap_or("<*>"))
            .collect();
        words.join(" ")
    }
}

/// The saved form of a cluster.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterState {
    /// Its id.
    pub id: u64,
    /// Lines that joined it.
    pub count: u64,
    /// The template as text (`<*>` for each wildcard), for people and
    /// tools; the tokens below are what a restart reads.
    #[serde(default)]
    pub text: String,
    /// Template tokens; `null` is the wildcard.
    pub template: Vec<Option<String>>,
    /// Its path in the tree.
    pub path: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(d: &mut Drain, line: &str) -> (u64, Outcome) {
        let mut r = Vec::new();
        tokenize(line.as_bytes(), &mut r);
        let (ci, o) = d.add(line.as_bytes(), &r).expect("room");
        (d.clusters()[ci].id, o)
    }

    #[test]
    fn similar_lines_share_a_template_and_its_id() {
        let mut d = Drain::new(DrainParams::default());
        assert_eq!(
            add(&mut d, "connection from alice closed"),
            (1, Outcome::Created)
        );
        assert_eq!(
            add(&mut d, "connection from bob closed"),
            (1, Outcome::Changed)
        );
        assert_eq!(
            add(&mut d, "connection from carol closed"),
            (1, Outcome::Matched)
        );
        assert_eq!(add(&mut d, "disk full on sda"), (2, Outcome::Created));
        assert_eq!(&d.clusters()[0].text[..], b"connection from <*> closed");
        assert_eq!(d.clusters()[0].count, 3);
        // A different length never joins.
        assert_eq!(add(&mut d, "connection from alice closed now").0, 3);
    }

    #[test]
    fn a_mostly_masked_line_joins_the_template_it_fits_instead_of_copying_it() {
        let mut d = Drain::new(DrainParams::default());
        // 4 words of 10: under the similarity, every time.
        let line = "BLOCK* ask <*> to delete <*> <*> <*> <*> <*>";
        assert_eq!(add(&mut d, line), (1, Outcome::Created));
        for _ in 0..100 {
            assert_eq!(add(&mut d, line), (1, Outcome::Matched));
        }
        assert_eq!(d.clusters().len(), 1, "one template, not one per line");
        assert_eq!(d.clusters()[0].count, 101);
        // A word where the template has a masked position does not fit,
        // nor does another word: both start their own cluster.
        let other = "BLOCK* ask <*> to delete <*> <*> <*> <*> blk";
        assert_eq!(add(&mut d, other).0, 2);
        let third = "BLOCK* ask <*> to remove <*> <*> <*> <*> <*>";
        assert_eq!(add(&mut d, third).0, 3);
    }

    #[test]
    fn past_max_clusters_a_line_joins_the_nearest_of_its_leaf_or_fails() {
        let mut d = Drain::new(DrainParams {
            max_clusters: 2,
            ..DrainParams::default()
        });
        assert_eq!(add(&mut d, "disk sda full now"), (1, Outcome::Created));
        // 1 word of 4 in common: a cluster of its own while there is room.
        assert_eq!(add(&mut d, "disk sdb empty later"), (2, Outcome::Created));
        assert_eq!(add(&mut d, "disk sdc gone soon"), (1, Outcome::Changed));
        assert_eq!(&d.clusters()[0].text[..], b"disk <*> <*> <*>");
        assert_eq!(d.clusters().len(), 2);
        // Another length is another leaf, with nothing to join.
        let mut r = Vec::new();
        tokenize(b"net down", &mut r);
        assert_eq!(d.add(b"net down", &r), Err(Full { clusters: 2 }));
    }

    #[test]
    fn a_leaf_holds_at_most_leaf_clusters_whatever_the_input() {
        let mut d = Drain::new(DrainParams::default());
        // Same length and first word, nothing else in common: each would
        // start a cluster of the same leaf.
        for i in 0..LEAF_CLUSTERS + 100 {
            let line = format!("k a{i}x b{i}y c{i}z");
            add(&mut d, &line);
        }
        assert_eq!(d.clusters().len(), LEAF_CLUSTERS);
    }

    #[test]
    fn masked_positions_count_only_in_the_variant() {
        // Two messages that differ only where the masks did not reach.
        let lines = [
            "<*> connect to <*> <*> via SOCKS5",
            "<*> connect to <*> <*> via HTTPS",
        ];
        let mut reference = Drain::new(DrainParams::default());
        let ids: Vec<u64> = lines.iter().map(|l| add(&mut reference, l).0).collect();
        // 3 equal words of 7 (`connect`, `to`, `via`): under 0.5.
        assert_eq!(ids, vec![1, 2], "reference Drain keeps them apart");
        let mut variant = Drain::new(DrainParams {
            match_masked: true,
            ..DrainParams::default()
        });
        let ids: Vec<u64> = lines.iter().map(|l| add(&mut variant, l).0).collect();
        // 6 of 7 with the masked positions counted: merged.
        assert_eq!(ids, vec![1, 1], "the variant merges them");
        assert_eq!(
            &variant.clusters()[0].text[..],
            b"<*> connect to <*> <*> via <*>"
        );
    }

    #[test]
    fn short_lines_group_too() {
        let mut d = Drain::new(DrainParams {
            depth: 6,
            ..DrainParams::default()
        });
        assert_eq!(add(&mut d, "ready").0, 1);
        assert_eq!(add(&mut d, "ready").0, 1);
        assert_eq!(add(&mut d, "a b").0, 2);
        assert_eq!(add(&mut d, "a b").0, 2);
    }

    #[test]
    fn state_round_trips_with_ids_and_tree() {
        let mut d = Drain::new(DrainParams::default());
        for l in [
            "x 1 y",
            "x 2 y",
            "open file a",
            "open file b",
            "42 is the answer",
        ] {
            add(&mut d, l);
        }
        let json = serde_json::to_string(&d.state()).unwrap();
        assert!(json.contains(r#""text":"x <*> y""#), "{json}");
        let mut e = Drain::from_state(DrainParams::default(), serde_json::from_str(&json).unwrap())
            .unwrap();
        assert_eq!(add(&mut e, "open file c"), (2, Outcome::Matched));
        assert_eq!(add(&mut e, "x 3 y"), (1, Outcome::Matched));
        assert_eq!(add(&mut e, "17 is the answer").0, 3);
        assert_eq!(add(&mut e, "something new").0, 4);
        let wrong_depth = DrainParams {
            depth: 6,
            ..DrainParams::default()
        };
        assert!(Drain::from_state(wrong_depth, serde_json::from_str(&json).unwrap()).is_err());
    }
}
