use super::*;
use crate::test_util::*;

fn fe(counts: &[(&str, i64)]) -> Event {
    let mut e = Event::new("", Timestamp(0));
    let m: Fields = counts
        .iter()
        .map(|(k, v)| (k.to_string(), Value::Integer(*v)))
        .collect();
    e.insert("features", Value::Map(m));
    e
}

/// 200 ordinary sessions (open, write 1-3 times, close), one odd one.
fn sessions() -> Vec<Event> {
    let mut v: Vec<Event> = (0..200)
        .map(|i| fe(&[("1", 1), ("2", 1 + i % 3), ("3", 1)]))
        .collect();
    v.insert(50, fe(&[("1", 1), ("9", 4)]));
    v
}

fn flags(b: &Batch) -> Vec<bool> {
    b.events
        .iter()
        .map(|e| e.get("anomaly") == Some(&Value::Bool(true)))
        .collect()
}

#[test]
fn isolation_forest_holds_the_training_vectors_then_flags_the_odd_session() {
    let mut p = build::<Config>("training_size: 100\ncontamination: 0.01\ntfidf: true");
    let events = sessions();
    let mut first: Batch = events[..60].to_vec().into();
    assert!(run(p.as_mut(), &mut first).is_empty());
    assert!(first.is_empty(), "held until 100 vectors");
    let mut second: Batch = events[60..].to_vec().into();
    assert!(run(p.as_mut(), &mut second).is_empty());
    assert_eq!(second.len(), 201);
    let f = flags(&second);
    assert!(f[50], "the odd session is flagged");
    assert!(f.iter().filter(|x| **x).count() <= 4, "{f:?}");
    assert!(second
        .events
        .iter()
        .all(|e| e.get("anomaly_score").is_some()));
}

#[test]
fn kmeans_on_numeric_fields_and_a_fixed_threshold() {
    let mut p = build::<Config>(
        "algorithm: kmeans\nfields: [ms]\nclusters: 2\ntraining_size: 50\nthreshold: 100",
    );
    let mut b = Batch::new();
    for i in 0..60 {
        let mut e = Event::new("", Timestamp(0));
        e.insert("ms", if i % 2 == 0 { 10 + i % 5 } else { 500 + i % 7 });
        b.push(e);
    }
    let mut e = Event::new("", Timestamp(0));
    e.insert("ms", 5000i64);
    b.push(e);
    run(p.as_mut(), &mut b);
    let f = flags(&b);
    assert_eq!(f.iter().filter(|x| **x).count(), 1);
    assert!(f[60]);
}

#[test]
fn end_of_input_trains_on_what_was_held_and_a_missing_map_fails() {
    let mut p = build::<Config>("training_size: 1000");
    let mut b: Batch = sessions().into();
    run(p.as_mut(), &mut b);
    assert!(b.is_empty());
    let mut out = Batch::new();
    p.finish(&mut out);
    assert_eq!(out.len(), 201);
    let mut b = batch(&["no features"]);
    assert_eq!(run(p.as_mut(), &mut b).len(), 1);
}

#[test]
fn a_model_file_is_loaded_and_retraining_swaps_a_model_in() {
    let dir = tempfile::tempdir().unwrap();
    let c: Config = config("contamination: 0.01");
    let m = Model::train(&c.spec(), &sessions()).unwrap();
    let path = dir.path().join("m.json");
    m.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.stats, m.stats);
    let c: Config = config(&format!(
        "model_path: {}\nretrain_interval: 10ms\nreservoir_size: 50",
        path.display()
    ));
    let mut p = c.detector().unwrap();
    let mut b: Batch = sessions().into();
    run(&mut p, &mut b);
    assert_eq!(b.len(), 201, "a loaded model scores at once");
    assert!(flags(&b)[50]);
    // After the interval a background training starts, then is swapped in.
    std::thread::sleep(std::time::Duration::from_millis(20));
    p.tick(Timestamp::now(), &mut Batch::new());
    let mut swapped = false;
    for _ in 0..200 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        let mut b: Batch = vec![fe(&[("1", 1)])].into();
        run(&mut p, &mut b);
        if p.model.as_ref().is_some_and(|m| m.stats.samples == 50) {
            swapped = true;
            break;
        }
    }
    assert!(swapped, "the retrained model (50 samples) is in use");
    let bad: Config = config("threshold: 1\ncontamination: 0.1\ntrees: 0");
    assert_eq!(bad.validate().len(), 2);
}

#[test]
fn a_model_file_whose_trees_are_not_trees_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let c: Config = config("contamination: 0.01");
    let m = Model::train(&c.spec(), &sessions()).unwrap();
    let path = dir.path().join("m.json");
    m.save(&path).unwrap();
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // Rewrites the root split of the first tree and loads the result.
    let load_with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        edit(&mut v["detector"]["trees"][0]["nodes"][0]["Split"]);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        Model::load(&path).unwrap_err()
    };
    // A child that is the root: a cycle, which used to overflow the stack.
    let e = load_with(&|s| s["left"] = 0.into());
    assert!(
        e.contains("not a usable model: tree 0: node 0 has child 0, which is already in the tree"),
        "{e}"
    );
    let e = load_with(&|s| s["right"] = 4_000_000_000u32.into());
    assert!(
        e.contains("tree 0: node 0 has child 4000000000, but the tree has"),
        "{e}"
    );
    let e = load_with(&|s| s["feature"] = 4_000_000_000u32.into());
    assert!(e.contains("tree 0: node 0 tests feature 4000000000"), "{e}");
    // A deep chain: split `i` goes left to split `i + 1`, right to a leaf.
    let mut v = good.clone();
    let n = 1000u32;
    let chain: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"Split": {"feature": 0, "threshold": 0.5, "left": i + 1, "right": n + 1 + i}})
        })
        .chain((0..=n).map(|_| serde_json::json!({"Leaf": {"size": 1}})))
        .collect();
    v["detector"]["trees"][0]["nodes"] = chain.into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = Model::load(&path).unwrap_err();
    assert!(
        e.contains("tree 0: node 64 is deeper than 64 levels"),
        "{e}"
    );
    // The processor does not start on it, and says why.
    let c: Config = config(&format!("model_path: {}", path.display()));
    let err = c.detector().err().expect("refused").to_string();
    assert!(err.contains("not a usable model"), "{err}");
    // The file as trained still loads.
    std::fs::write(&path, serde_json::to_vec(&good).unwrap()).unwrap();
    assert!(Model::load(&path).is_ok());
}
