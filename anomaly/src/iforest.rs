//! Isolation forest (Liu, Ting and Zhou, 2008) on ndarray.
//!
//! Each tree is grown on a subsample of `sample_size` rows drawn without
//! replacement, to a height limit of `ceil(log2(sample_size))`: a node picks
//! a feature at random among those not constant on its rows, and a
//! threshold uniformly between their least and greatest value; rows with a
//! value `<=` the threshold go left. A node with one row, with constant
//! rows, or at the height limit is a leaf and remembers its row count.
//!
//! The path length of a point in a tree is the depth of the leaf it reaches
//! plus `c(size)`, the average path length of an unsuccessful search in a
//! binary search tree of the leaf's size:
//! `c(n) = 2 (ln(n - 1) + γ) - 2 (n - 1) / n` for `n > 2`, `c(2) = 1`,
//! `c(n) = 0` for `n <= 1`. The score is `2^(-E[h(x)] / c(sample_size))`,
//! from 0 to 1: near 1 for points isolated quickly (anomalies), well under
//! 0.5 for ordinary ones. It is the negation of scikit-learn's
//! `IsolationForest.score_samples` for the same trees.
//!
//! Training is seeded: the same data and seed grow the same forest.

use ndarray::ArrayView2;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// Euler's constant.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// `c(n)`: the average path length of an unsuccessful search in a binary
/// search tree of `n` points.
pub fn average_path_length(n: f64) -> f64 {
    if n <= 1.0 {
        0.0
    } else if n <= 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
    }
}

/// A node of a tree, stored flat.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum Node {
    /// Rows with `x[feature] <= threshold` go to `left`, the others to `right`.
    Split {
        /// The feature tested.
        feature: u32,
        /// The threshold.
        threshold: f64,
        /// Index of the left child.
        left: u32,
        /// Index of the right child.
        right: u32,
    },
    /// A leaf holding `size` training rows.
    Leaf {
        /// Training rows that reached it.
        size: u32,
    },
}

/// One isolation tree; node 0 is the root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Tree {
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The path length of `x`: leaf depth plus `c(leaf size)`.
    pub fn path_length(&self, x: &[f64]) -> f64 {
        self.path_length_with(x, &|n| average_path_length(n as f64))
    }

    /// As [`path_length`](Self::path_length), with `c` given.
    fn path_length_with<C: Fn(u32) -> f64>(&self, x: &[f64], c: &C) -> f64 {
        let mut i = 0usize;
        let mut depth = 0u32;
        loop {
            match self.nodes.get(i) {
                Some(Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                }) => {
                    let v = x.get(*feature as usize).copied().unwrap_or(0.0);
                    i = if v <= *threshold { *left } else { *right } as usize;
                    depth += 1;
                }
                Some(Node::Leaf { size }) => return depth as f64 + c(*size),
                None => return depth as f64,
            }
        }
    }
}

/// The forest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IsolationForest {
    /// The trees.
    pub trees: Vec<Tree>,
    /// Rows each tree was grown on: the normaliser `c(sample_size)`.
    pub sample_size: usize,
    /// `c(n)` for every leaf size `n` up to `sample_size`, computed once.
    #[serde(skip)]
    c_table: std::sync::OnceLock<Vec<f64>>,
    /// The trees laid out for scoring, built once: see [`Flat`].
    #[serde(skip)]
    flat: std::sync::OnceLock<Vec<FlatTree>>,
}

/// A node laid out for scoring. Nodes are in pre-order, so a split's left
/// child is the next node. A leaf points to itself (`right`) with a
/// threshold of minus infinity, so walking a fixed number of steps (the
/// tree's height) stays on it: rows are walked in lockstep without a branch
/// on where they go. A leaf's `value` is its whole path length, depth plus
/// `c(size)`. Vectors hold no NaN (the vectorizer makes them 0).
#[derive(Clone, Copy, Debug)]
struct Flat {
    threshold: f64,
    value: f64,
    feature: u32,
    right: u32,
}

/// A tree laid out for scoring, with its height.
#[derive(Clone, Debug)]
struct FlatTree {
    nodes: Vec<Flat>,
    height: u32,
    /// The greatest feature index a node reads.
    max_feature: usize,
}

/// Appends the subtree of `tree.nodes[i]`, at `depth`, to `out` in
/// pre-order; returns its height.
fn flatten(tree: &Tree, i: usize, depth: u32, out: &mut Vec<Flat>) -> u32 {
    let me = out.len();
    match tree.nodes.get(i) {
        Some(Node::Split {
            feature,
            threshold,
            left,
            right,
        }) => {
            out.push(Flat {
                threshold: *threshold,
                value: 0.0,
                feature: *feature,
                right: 0,
            });
            let l = flatten(tree, *left as usize, depth + 1, out);
            out[me].right = out.len() as u32;
            let r = flatten(tree, *right as usize, depth + 1, out);
            1 + l.max(r)
        }
        leaf => {
            let size = match leaf {
                Some(Node::Leaf { size }) => *size,
                _ => 0,
            };
            out.push(Flat {
                threshold: f64::NEG_INFINITY,
                value: depth as f64 + average_path_length(size as f64),
                feature: 0,
                right: me as u32,
            });
            0
        }
    }
}

/// Rows walked through a tree together.
const LANES: usize = 8;

/// Adds the path length of each row of `rows` (`dims` values each, at most
/// [`LANES`] rows) in `tree` to `acc`.
fn add_path_lengths(tree: &FlatTree, rows: &[f64], dims: usize, acc: &mut [f64]) {
    let n = acc.len().min(LANES);
    let mut at = [0usize; LANES];
    let nodes = &tree.nodes[..];
    if n == LANES && rows.len() >= LANES * dims && tree.max_feature < dims {
        // Full lanes: every index is in range (node indices by
        // construction, features checked just above), so the walk runs
        // without bounds checks.
        for _ in 0..tree.height {
            for (k, i) in at.iter_mut().enumerate() {
                // SAFETY: `*i` is a node index of this tree (pre-order
                // layout: `i + 1` of a split and every `right` are nodes,
                // and a leaf stays put); `k * dims + feature` is below
                // `LANES * dims <= rows.len()` since `feature <= max_feature < dims`.
                let node = unsafe { *nodes.get_unchecked(*i) };
                let v = unsafe { *rows.get_unchecked(k * dims + node.feature as usize) };
                // A select, not a branch: which way a row goes is unpredictable.
                *i = if v > node.threshold {
                    node.right as usize
                } else {
                    *i + 1
                };
            }
        }
    } else {
        for _ in 0..tree.height {
            for (k, i) in at.iter_mut().enumerate().take(n) {
                let node = nodes[*i];
                let v = rows[k * dims + node.feature as usize];
                *i = if v > node.threshold {
                    node.right as usize
                } else {
                    *i + 1
                };
            }
        }
    }
    for (a, i) in acc.iter_mut().zip(at) {
        *a += nodes[i].value;
    }
}

/// Leaf sizes whose `c(n)` is kept in a table.
const C_TABLE_MAX: usize = 1 << 16;

/// The tallest tree a model file may hold. Grown trees are at most
/// `ceil(log2(sample_size))` tall, so 64 for any sample size; laying a tree
/// out for scoring recurses once per level.
pub const MAX_HEIGHT: usize = 64;

impl Tree {
    /// Checks that the nodes form a tree rooted at node 0 that scoring can
    /// walk: every child index names a node, no node is reached twice (so
    /// there is no cycle and no shared subtree), it is at most
    /// [`MAX_HEIGHT`] tall, and splits test features below `dims`. A model
    /// file is read from disk: without this a cycle would make laying the
    /// tree out recurse until the stack overflows.
    ///
    /// # Errors
    ///
    /// The first fault, naming the node.
    pub fn check(&self, dims: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("the tree has no nodes".into());
        }
        let mut reached = vec![false; self.nodes.len()];
        reached[0] = true;
        // Iterative: (node, depth).
        let mut todo = vec![(0usize, 0usize)];
        while let Some((i, depth)) = todo.pop() {
            let Some(Node::Split {
                feature,
                left,
                right,
                ..
            }) = self.nodes.get(i)
            else {
                continue;
            };
            if *feature as usize >= dims {
                return Err(format!(
                    "node {i} tests feature {feature}, but vectors have {dims}"
                ));
            }
            if depth + 1 > MAX_HEIGHT {
                return Err(format!("node {i} is deeper than {MAX_HEIGHT} levels"));
            }
            for child in [*left, *right] {
                let c = child as usize;
                match reached.get_mut(c) {
                    None => {
                        return Err(format!(
                            "node {i} has child {c}, but the tree has {} nodes",
                            self.nodes.len()
                        ))
                    }
                    Some(true) => {
                        return Err(format!(
                            "node {i} has child {c}, which is already in the tree (a cycle or a shared subtree)"
                        ))
                    }
                    Some(seen) => *seen = true,
                }
                todo.push((c, depth + 1));
            }
        }
        Ok(())
    }
}

/// Growing parameters.
#[derive(Clone, Copy, Debug)]
pub struct ForestParams {
    /// Number of trees.
    pub trees: usize,
    /// Rows per tree (at most the rows given).
    pub sample_size: usize,
    /// Seed of the random generator.
    pub seed: u64,
}

impl PartialEq for IsolationForest {
    /// The same trees grown on the same number of rows.
    fn eq(&self, other: &Self) -> bool {
        self.trees == other.trees && self.sample_size == other.sample_size
    }
}

impl IsolationForest {
    /// Grows a forest on the rows of `data`.
    pub fn fit(data: ArrayView2<'_, f64>, p: ForestParams) -> Self {
        let n = data.nrows();
        let psi = p.sample_size.min(n).max(1);
        let limit = (psi as f64).log2().ceil().max(0.0) as u32;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
        let mut trees = Vec::with_capacity(p.trees);
        let mut features = Vec::new();
        for _ in 0..p.trees {
            let mut rows: Vec<usize> = if n == 0 {
                Vec::new()
            } else {
                sample(&mut rng, n, psi).into_vec()
            };
            let mut nodes = Vec::new();
            grow(
                data,
                &mut rows,
                0,
                limit,
                &mut rng,
                &mut nodes,
                &mut features,
            );
            trees.push(Tree { nodes });
        }
        IsolationForest::new(trees, psi)
    }

    /// Checks every tree (see [`Tree::check`]) for vectors of `dims` values.
    ///
    /// # Errors
    ///
    /// The first fault, naming the tree and node.
    pub fn check(&self, dims: usize) -> Result<(), String> {
        for (t, tree) in self.trees.iter().enumerate() {
            tree.check(dims).map_err(|e| format!("tree {t}: {e}"))?;
        }
        Ok(())
    }

    /// A forest of given trees grown on `sample_size` rows.
    pub fn new(trees: Vec<Tree>, sample_size: usize) -> Self {
        IsolationForest {
            trees,
            sample_size,
            c_table: std::sync::OnceLock::new(),
            flat: std::sync::OnceLock::new(),
        }
    }

    /// Scores many vectors at once: `rows` holds them one after another,
    /// `dims` values each; the scores go to `out`. The same numbers as
    /// [`score`](Self::score), faster: each tree is walked for every row
    /// while it is in cache.
    pub fn score_many(&self, rows: &[f64], dims: usize, out: &mut Vec<f64>) {
        out.clear();
        if dims == 0 {
            return;
        }
        let n = rows.len() / dims;
        out.resize(n, 0.0);
        let flat = self.flat.get_or_init(|| {
            self.trees
                .iter()
                .map(|t| {
                    let mut nodes = Vec::with_capacity(t.nodes.len());
                    let height = flatten(t, 0, 0, &mut nodes);
                    let max_feature = nodes.iter().map(|n| n.feature as usize).max().unwrap_or(0);
                    FlatTree {
                        nodes,
                        height,
                        max_feature,
                    }
                })
                .collect()
        });
        for tree in flat {
            for (acc, chunk) in out.chunks_mut(LANES).zip(rows.chunks(LANES * dims)) {
                add_path_lengths(tree, chunk, dims, acc);
            }
        }
        let c = average_path_length(self.sample_size as f64);
        let trees = self.trees.len().max(1) as f64;
        for o in out.iter_mut() {
            *o = if c == 0.0 {
                0.5
            } else {
                2f64.powf(-*o / trees / c)
            };
        }
    }

    /// The mean path length of `x` over the trees.
    pub fn mean_path_length(&self, x: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.0;
        }
        // Bounded: a model file may name any sample size; larger leaves
        // (there are few) are computed when met.
        let table = self.c_table.get_or_init(|| {
            (0..=self.sample_size.min(C_TABLE_MAX))
                .map(|n| average_path_length(n as f64))
                .collect()
        });
        let c = |n: u32| {
            table
                .get(n as usize)
                .copied()
                .unwrap_or_else(|| average_path_length(n as f64))
        };
        self.trees
            .iter()
            .map(|t| t.path_length_with(x, &c))
            .sum::<f64>()
            / self.trees.len() as f64
    }

    /// The anomaly score of `x`, from 0 to 1 (higher: more anomalous).
    pub fn score(&self, x: &[f64]) -> f64 {
        let c = average_path_length(self.sample_size as f64);
        if c == 0.0 {
            return 0.5;
        }
        2f64.powf(-self.mean_path_length(x) / c)
    }
}

/// Grows the subtree of `rows` at `depth`; returns its node index.
fn grow(
    data: ArrayView2<'_, f64>,
    rows: &mut [usize],
    depth: u32,
    limit: u32,
    rng: &mut Xoshiro256PlusPlus,
    nodes: &mut Vec<Node>,
    features: &mut Vec<(u32, f64, f64)>,
) -> u32 {
    let me = nodes.len() as u32;
    nodes.push(Node::Leaf {
        size: rows.len() as u32,
    });
    if rows.len() <= 1 || depth >= limit {
        return me;
    }
    features.clear();
    for f in 0..data.ncols() {
        let col = data.column(f);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &r in rows.iter() {
            let v = col[r];
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi > lo {
            features.push((f as u32, lo, hi));
        }
    }
    if features.is_empty() {
        return me;
    }
    let (feature, lo, hi) = features[rng.gen_range(0..features.len())];
    let mut threshold = lo + rng.gen::<f64>() * (hi - lo);
    if threshold >= hi {
        threshold = lo;
    }
    // Partition rows: `<= threshold` first.
    let mut split = 0;
    for i in 0..rows.len() {
        if data[[rows[i], feature as usize]] <= threshold {
            rows.swap(i, split);
            split += 1;
        }
    }
    let (l, r) = rows.split_at_mut(split);
    let left = grow(data, l, depth + 1, limit, rng, nodes, features);
    let right = grow(data, r, depth + 1, limit, rng, nodes, features);
    nodes[me as usize] = Node::Split {
        feature,
        threshold,
        left,
        right,
    };
    me
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn c_of_n_matches_known_values() {
        assert_eq!(average_path_length(0.0), 0.0);
        assert_eq!(average_path_length(1.0), 0.0);
        assert_eq!(average_path_length(2.0), 1.0);
        // 2 (ln 2 + γ) - 4/3
        assert!((average_path_length(3.0) - 1.207_392_357_589_623).abs() < 1e-9);
        // The usual normaliser for 256 rows.
        assert!((average_path_length(256.0) - 10.244_770_920_119_917).abs() < 1e-9);
    }

    #[test]
    fn the_score_formula_on_fixed_trees() {
        // One tree: x0 <= 0.5 -> leaf of 1 row; else x1 <= 2 -> leaves of 2 and 1 rows.
        let tree = Tree {
            nodes: vec![
                Node::Split {
                    feature: 0,
                    threshold: 0.5,
                    left: 1,
                    right: 2,
                },
                Node::Leaf { size: 1 },
                Node::Split {
                    feature: 1,
                    threshold: 2.0,
                    left: 3,
                    right: 4,
                },
                Node::Leaf { size: 2 },
                Node::Leaf { size: 1 },
            ],
        };
        let forest = IsolationForest::new(vec![tree.clone(), tree], 4);
        // Depths: [0,0] -> 1; [1,1] -> 2 + c(2) = 3; [1,3] -> 2.
        assert_eq!(forest.mean_path_length(&[0.0, 0.0]), 1.0);
        assert_eq!(forest.mean_path_length(&[1.0, 1.0]), 3.0);
        // score = 2^(-E[h]/c(4)); c(4) = 2 (ln 3 + γ) - 1.5. The same
        // number scikit-learn's score_samples gives, negated.
        let c4 = 2.0 * (3f64.ln() + EULER_GAMMA) - 1.5;
        assert!((forest.score(&[0.0, 0.0]) - 2f64.powf(-1.0 / c4)).abs() < 1e-12);
        assert!((forest.score(&[1.0, 1.0]) - 2f64.powf(-3.0 / c4)).abs() < 1e-12);
        // The batch path gives the same numbers.
        let mut many = Vec::new();
        forest.score_many(&[0.0, 0.0, 1.0, 1.0, 1.0, 3.0], 2, &mut many);
        let want = [1.0, 3.0, 2.0].map(|h: f64| 2f64.powf(-h / c4));
        for (a, b) in many.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{many:?}");
        }
        assert!((c4 - 1.851_655_907_139_285_5).abs() < 1e-9);
    }

    #[test]
    fn a_clear_outlier_scores_highest_and_training_is_seeded() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut data = Array2::<f64>::zeros((501, 2));
        for i in 0..500 {
            data[[i, 0]] = rng.gen_range(-1.0..1.0);
            data[[i, 1]] = rng.gen_range(-1.0..1.0);
        }
        data[[500, 0]] = 8.0;
        data[[500, 1]] = -8.0;
        let p = ForestParams {
            trees: 100,
            sample_size: 256,
            seed: 1,
        };
        let f = IsolationForest::fit(data.view(), p);
        let outlier = f.score(&[8.0, -8.0]);
        let inlier = f.score(&[0.0, 0.0]);
        assert!(outlier > 0.7, "{outlier}");
        assert!(inlier < 0.5, "{inlier}");
        for i in 0..500 {
            assert!(f.score(data.row(i).as_slice().unwrap()) < outlier);
        }
        assert_eq!(f, IsolationForest::fit(data.view(), p));
        let mut many = Vec::new();
        f.score_many(data.as_slice().unwrap(), 2, &mut many);
        for (i, s) in many.iter().enumerate() {
            assert!((s - f.score(data.row(i).as_slice().unwrap())).abs() < 1e-12);
        }
    }
}
