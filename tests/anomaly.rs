//! Template mining, sessions and anomaly scoring, end to end: the real
//! binary on the Loghub samples in testdata/loghub_2k.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_anomaly::eval::{csv_column, grouping_accuracy, Confusion};

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(120);

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn loghub() -> String {
    repo("testdata/loghub_2k").display().to_string()
}

fn run_ok(d: &Dir, args: &[&str]) -> std::process::Output {
    let o = d
        .sluice(args)
        .env("LOGHUB", loghub())
        .output()
        .expect("run sluice");
    assert!(
        o.status.success(),
        "sluice {args:?} failed:\n{}",
        stderr(&o)
    );
    o
}

fn json_lines(d: &Dir, path: &str) -> Vec<serde_json::Value> {
    d.lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Grouping accuracy floors: the published Drain figure on each sample,
/// which the pipelines (published settings, reference Drain rule) reach.
const FLOORS: [(&str, f64); 6] = [
    ("HDFS", 0.9975),
    ("BGL", 0.9625),
    ("Thunderbird", 0.955),
    ("OpenSSH", 0.7875),
    ("Apache", 1.0),
    ("Linux", 0.69),
];

#[test]
fn template_mining_reaches_the_drain_grouping_accuracy_on_every_loghub_sample() {
    let mut report = Vec::new();
    for (system, published) in FLOORS {
        let d = Dir::new();
        let yaml = std::fs::read_to_string(repo(&format!("pipelines/loghub/{system}.yaml")))
            .expect("pipeline");
        d.write("p.yaml", &yaml);
        run_ok(&d, &["run", "p.yaml"]);
        let mined = json_lines(&d, &format!("out/loghub-{system}.json"));
        let csv = std::fs::read_to_string(repo(&format!(
            "testdata/loghub_2k/{system}_2k.log_structured.csv"
        )))
        .expect("ground truth");
        let truth = csv_column(&csv, "EventId").expect("EventId column");
        assert_eq!(mined.len(), truth.len(), "{system}: one event per line");
        let ids: Vec<i64> = mined
            .iter()
            .map(|v| {
                v["fields"]["template_id"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{system}: no template_id in {v}"))
            })
            .collect();
        // Lines come out in order: the header was parsed off each one.
        let contents = csv_column(&csv, "Content").expect("Content column");
        for (v, c) in mined.iter().zip(&contents).take(50) {
            assert_eq!(
                v["fields"]["content"].as_str().map(str::trim),
                Some(c.trim())
            );
        }
        let ga = grouping_accuracy(&ids, &truth);
        report.push(format!("{system}: {ga:.4} (published {published})"));
        assert!(
            ga + 1e-9 >= published,
            "{system}: GA {ga} under the published {published}"
        );
    }
    println!("{}", report.join("\n"));
}

#[test]
fn bgl_windows_flag_alerts_with_precision_and_recall_above_the_floors() {
    let d = Dir::new();
    let yaml = std::fs::read_to_string(repo("pipelines/anomaly-bgl.yaml")).expect("pipeline");
    d.write("p.yaml", &yaml);
    let o = run_ok(&d, &["run", "p.yaml"]);
    // The training figures are logged.
    let err = stderr(&o);
    assert!(err.contains("anomaly model trained"), "{err}");
    assert!(err.contains("samples=100"), "{err}");
    let windows = json_lines(&d, "out/bgl-windows.json");
    assert_eq!(windows.len(), 100, "2,000 lines in windows of 20");
    let total: i64 = windows
        .iter()
        .map(|w| w["fields"]["event_count"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(total, 2000);
    let mut c = Confusion::default();
    for w in &windows {
        let flagged = w["fields"]["anomaly"].as_bool().expect("anomaly flag");
        assert!(w["fields"]["anomaly_score"].as_f64().is_some());
        c.add(flagged, w["fields"]["alert"].is_string());
    }
    let flagged = json_lines(&d, "out/bgl-anomalies.json");
    assert_eq!(
        flagged.len() as u64,
        c.true_positives + c.false_positives,
        "the flagged windows, and only those, are routed to their own file"
    );
    assert!(flagged.iter().all(|w| w["fields"]["anomaly"] == true));
    // 28 of the 100 windows hold an alert line: flagging a random quarter
    // would give precision 0.28 and recall 0.25.
    assert_eq!(c.true_positives + c.false_negatives, 28);
    assert!(c.precision() >= 0.5, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.45, "recall {:.3}", c.recall());
    // `sluice evaluate` says the same.
    let o = run_ok(
        &d,
        &["evaluate", "out/bgl-windows.json", "--label-field", "alert"],
    );
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "precision {:.4}  recall {:.4}",
            c.precision(),
            c.recall()
        )),
        "{out}"
    );
}

#[test]
fn hdfs_block_sessions_hold_every_line_of_their_block() {
    let d = Dir::new();
    let yaml = std::fs::read_to_string(repo("pipelines/anomaly-hdfs.yaml")).expect("pipeline");
    d.write("p.yaml", &yaml);
    run_ok(&d, &["run", "p.yaml"]);
    let sessions = json_lines(&d, "out/hdfs-sessions.json");
    // Each line counts once in every block it names.
    let log = std::fs::read_to_string(repo("testdata/loghub_2k/HDFS_2k.log")).expect("log");
    let re = regex_lite_blocks(&log);
    let mut per_block: std::collections::HashMap<String, i64> = Default::default();
    for blocks in re {
        for b in blocks {
            *per_block.entry(b).or_default() += 1;
        }
    }
    let mut seen: std::collections::HashMap<String, i64> = Default::default();
    for s in &sessions {
        let key = s["fields"]["key"].as_str().expect("key").to_string();
        assert_eq!(s["message"].as_str(), Some(key.as_str()));
        let n = s["fields"]["event_count"].as_i64().expect("count");
        let by_template: i64 = s["fields"]["features"]
            .as_object()
            .expect("features")
            .values()
            .map(|v| v.as_i64().unwrap_or(0))
            .sum();
        assert_eq!(by_template, n, "{s}");
        assert!(s["fields"]["anomaly_score"].as_f64().is_some());
        *seen.entry(key).or_default() += n;
    }
    assert_eq!(seen, per_block);
    assert!(!d.lines("out/hdfs-anomalies.json").is_empty());
}

/// The distinct block ids of each line.
fn regex_lite_blocks(log: &str) -> Vec<Vec<String>> {
    log.lines()
        .map(|l| {
            let mut out: Vec<String> = Vec::new();
            let mut rest = l;
            while let Some(i) = rest.find("blk_") {
                let tail = &rest[i + 4..];
                let len = tail
                    .char_indices()
                    .take_while(|(j, c)| c.is_ascii_digit() || (*j == 0 && *c == '-'))
                    .count();
                let id = format!("blk_{}", &tail[..len]);
                if len > 0 && !out.contains(&id) {
                    out.push(id);
                }
                rest = &tail[len..];
            }
            out
        })
        .collect()
}

#[test]
fn template_ids_stay_the_same_across_restarts() {
    let d = Dir::new();
    d.write(
        "logs/app.log",
        "user alice logged in\nuser bob logged in\ndisk sda full\n",
    );
    d.write(
        "p.yaml",
        "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    follow: false\n    processors: [t]\n    channels: [main]\nprocessors:\n  t: {type: template}\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/t.json, format: json}\n",
    );
    run_ok(&d, &["run", "p.yaml"]);
    d.append(
        "logs/app.log",
        "disk sdb full\nservice started\nuser carol logged in\n",
    );
    run_ok(&d, &["run", "p.yaml"]);
    let ids: Vec<i64> = json_lines(&d, "out/t.json")
        .iter()
        .map(|v| v["fields"]["template_id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, vec![1, 1, 2, 2, 3, 1]);
    assert!(d.join(".sluice/p/processors/t/templates.json").exists());
}

#[test]
fn an_idle_session_closes_while_the_agent_runs() {
    let inline = "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    poll_interval: 50ms\n    processors: [t, s]\n    channels: [main]\nprocessors:\n  t: {type: template, persist: false}\n  s:\n    type: session\n    key_pattern: 'req-\\d+'\n    inactivity_timeout: 300ms\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/s.json, format: json}\n";
    // The same with the session processor as a stage of its own.
    let stage = inline
        .replace(
            "processors: [t, s]\n    channels: [main]",
            "processors: [t]\n    channels: [raw]",
        )
        .replace(
            "    type: session\n",
            "    type: session\n    input: raw\n    channels: [main]\n",
        )
        .replace(
            "  main: {type: memory}\n",
            "  main: {type: memory}\n  raw: {type: memory}\n",
        );
    assert!(stage.contains("input: raw") && stage.contains("processors: [t]\n"));
    for yaml in [inline.to_string(), stage] {
        let d = Dir::new();
        d.write("logs/app.log", "");
        d.write("p.yaml", &yaml);
        let child = d.start(&["run", "p.yaml"]);
        d.append(
            "logs/app.log",
            "start req-1\nstart req-2\nread req-1 row 5\nend req-1\n",
        );
        // No more lines arrive: the sessions close on the processor's tick.
        wait_for(Duration::from_secs(30), "two closed sessions", || {
            d.lines("out/s.json").len() >= 2
        });
        signal(&child, libc::SIGTERM);
        let o = wait_output(child, Duration::from_secs(30));
        assert!(o.status.success(), "{yaml}\n{}", stderr(&o));
        let sessions = json_lines(&d, "out/s.json");
        assert_eq!(sessions.len(), 2, "{yaml}");
        let mut counts: Vec<(String, i64)> = sessions
            .iter()
            .map(|s| {
                (
                    s["fields"]["key"].as_str().unwrap_or_default().to_string(),
                    s["fields"]["event_count"].as_i64().unwrap_or_default(),
                )
            })
            .collect();
        counts.sort();
        assert_eq!(
            counts,
            vec![("req-1".into(), 3), ("req-2".into(), 1)],
            "{yaml}"
        );
    }
}

#[test]
fn train_writes_a_model_that_a_pipeline_loads_and_evaluate_reports() {
    let d = Dir::new();
    // Feature events from BGL windows, without scoring.
    let yaml = std::fs::read_to_string(repo("pipelines/anomaly-bgl.yaml"))
        .expect("pipeline")
        .replace(
            "processors: [header, templates, windows, detect]",
            "processors: [header, templates, windows]",
        );
    let features = yaml
        .split("  detect:")
        .next()
        .unwrap_or_default()
        .to_string()
        + yaml.split("    seed: 7\n").nth(1).unwrap_or_default();
    d.write("features.yaml", &features);
    run_ok(&d, &["run", "features.yaml"]);
    d.write(
        "model.yaml",
        "algorithm: kmeans\nclusters: 4\ntfidf: true\ncontamination: 0.25\n",
    );
    let o = run_ok(
        &d,
        &[
            "train",
            "out/bgl-windows.json",
            "--options",
            "model.yaml",
            "-o",
            "model.json",
        ],
    );
    let out = stdout(&o);
    assert!(out.contains("kmeans (4 centroids): 100 samples"), "{out}");
    assert!(d.join("model.json").exists());
    // A pipeline scoring with the trained model from its first window on.
    let scoring = std::fs::read_to_string(repo("pipelines/anomaly-bgl.yaml"))
        .expect("pipeline")
        .replace(
            "data_dir: ./.sluice/anomaly-bgl",
            "data_dir: ./.sluice/scored",
        )
        .replace("bgl-windows.json", "scored.json")
        .replace("bgl-anomalies.json", "scored-anomalies.json")
        .replace(
            "    algorithm: isolation_forest\n",
            "    model_path: ./model.json\n",
        )
        .replace("    tfidf: true\n", "")
        .replace("    training_size: 100\n", "")
        .replace("    contamination: 0.25\n", "")
        .replace("    seed: 7\n", "");
    d.write("scoring.yaml", &scoring);
    let o = run_ok(&d, &["run", "scoring.yaml"]);
    assert!(
        stderr(&o).contains("anomaly model loaded"),
        "{}",
        stderr(&o)
    );
    let scored = json_lines(&d, "out/scored.json");
    assert_eq!(scored.len(), 100);
    let flagged = scored
        .iter()
        .filter(|w| w["fields"]["anomaly"] == true)
        .count();
    assert!((20..=30).contains(&flagged), "{flagged} flagged");
    let o = run_ok(
        &d,
        &["evaluate", "out/scored.json", "--label-field", "alert"],
    );
    let out = stdout(&o);
    assert!(out.contains("events 100  labelled anomalous 28"), "{out}");
    assert!(out.contains(&format!("flagged {flagged}")), "{out}");
    // A bad option file names the option.
    d.write("bad.yaml", "algoritm: kmeans\n");
    let o = d
        .sluice(&[
            "train",
            "out/bgl-windows.json",
            "--options",
            "bad.yaml",
            "-o",
            "m.json",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("algoritm"), "{}", stderr(&o));
}

#[test]
fn the_loghub_pipelines_validate() {
    let d = Dir::new();
    let mut args = vec!["validate".to_string()];
    for s in FLOORS.map(|f| f.0) {
        args.push(
            repo(&format!("pipelines/loghub/{s}.yaml"))
                .display()
                .to_string(),
        );
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&d, &args);
    d.write(
        "bad.yaml",
        "sources:\n  gen: {type: generator, count: 1, processors: [s], channels: [m]}\nprocessors:\n  s: {type: session, inactivity_timeout: 1s}\nchannels:\n  m: {type: memory}\nsinks:\n  o: {type: \"null\", channel: m}\n",
    );
    let o = d.run(&["validate", "bad.yaml"], LIMIT);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a session needs a key"),
        "{}",
        stderr(&o)
    );
}

/// Thirty blocks written the same way, except `blk_17`, whose writes fail.
fn blocks_log() -> String {
    let mut log = String::new();
    for b in 1..=30 {
        log += &format!("allocate blk_{b} on 10.0.0.{}\n", b % 4);
        for r in 0..3 {
            log += &format!("receiving blk_{b} from 10.0.1.{r}:50010\n");
        }
        if b == 17 {
            log += "exception writing blk_17: connection reset by peer\n";
            log += "exception writing blk_17: connection reset by peer\n";
        } else {
            log += &format!("blk_{b} stored size 67108864\n");
        }
    }
    log
}

#[test]
fn a_flagged_session_shows_its_template_texts_and_sluice_templates_lists_them() {
    let d = Dir::new();
    d.write("app.log", &blocks_log());
    d.write(
        "p.yaml",
        r#"data_dir: ./state
sources:
  app:
    type: file
    include: [./app.log]
    read_from: beginning
    follow: false
    processors: [templates, blocks, detect]
    channels: [all, flagged]
    selector: {type: multiplexing, field: anomaly, mapping: {"true": [all, flagged]}, default: [all]}
processors:
  templates: {type: template, masks: [ipv4], mask_patterns: ['blk_-?\d+']}
  blocks: {type: session, key_pattern: 'blk_-?\d+'}
  detect: {type: anomaly, training_size: 30}
channels:
  all: {type: memory}
  flagged: {type: memory}
sinks:
  sessions: {type: file, channel: all, path: ./out/sessions.json, format: json}
  anomalies: {type: file, channel: flagged, path: ./out/anomalies.json, format: json}
"#,
    );
    run_ok(&d, &["run", "p.yaml"]);
    assert_eq!(json_lines(&d, "out/sessions.json").len(), 30);
    let flagged = json_lines(&d, "out/anomalies.json");
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    let f = &flagged[0]["fields"];
    assert_eq!(f["key"], "blk_17");
    let error = "exception writing <*>: connection reset by peer";
    // Every template of the session, by id, with its text.
    let texts = f["templates"].as_object().expect("templates");
    let mut shown: Vec<&str> = texts.values().filter_map(|v| v.as_str()).collect();
    shown.sort();
    assert_eq!(
        shown,
        vec!["allocate <*> on <*>", error, "receiving <*> from <*>"]
    );
    // What drove the score: the template no other session has, first.
    let top = &f["anomaly_drivers"][0];
    assert_eq!(top["text"], error, "{f}");
    assert_eq!(top["count"], 2);
    // Trained on all 30 sessions: this one alone holds it.
    let seen = top["seen_in"].as_f64().expect("seen_in");
    assert!((seen - 1.0 / 30.0).abs() < 1e-9, "{top}");
    let error_id = top["id"].as_str().expect("id").to_string();
    assert_eq!(f["features"][&error_id], 2);

    // `sluice templates DIR` lists ids, counts and texts.
    let o = run_ok(&d, &["templates", "state"]);
    let out = stdout(&o);
    let rows: Vec<Vec<String>> = out
        .lines()
        .skip(2)
        .map(|l| {
            let mut it = l.split_whitespace();
            let id = it.next().unwrap_or_default().to_string();
            let count = it.next().unwrap_or_default().to_string();
            vec![id, count, it.collect::<Vec<_>>().join(" ")]
        })
        .collect();
    let want = |id: &str, count: &str, text: &str| -> Vec<String> {
        vec![id.into(), count.into(), text.into()]
    };
    assert_eq!(
        rows,
        vec![
            want("1", "30", "allocate <*> on <*>"),
            want("2", "90", "receiving <*> from <*>"),
            want("3", "29", "<*> stored size 67108864"),
            want(&error_id, "2", error),
        ],
        "{out}"
    );
    assert!(
        out.starts_with("state/processors/templates/templates.json: 4 templates, 151 lines"),
        "{out}"
    );
    let o = d.sluice(&["templates", "nowhere"]).output().expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no templates.json"), "{}", stderr(&o));
}
