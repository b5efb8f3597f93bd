//! `sluice train` and `sluice evaluate`: the offline side of the `anomaly`
//! processor.
//!
//! Both read JSON lines: either events as the file sink writes them
//! (`{"message": .., "timestamp": .., "fields": {..}}`, the fields are used)
//! or plain JSON objects (taken as the fields).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sluice_anomaly::eval::Confusion;
use sluice_anomaly::model::Model;
use sluice_core::event::{Event, Timestamp, Value};

use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};

/// Options of `sluice train`.
#[derive(Args)]
pub struct TrainArgs {
    /// JSON lines of feature events (the output of a `session` or `window` processor).
    input: PathBuf,
    /// Where to write the model file.
    #[arg(long, short)]
    output: PathBuf,
    /// A YAML file of `anomaly` processor options (algorithm, tfidf, contamination...); defaults otherwise.
    #[arg(long, value_name = "FILE")]
    options: Option<PathBuf>,
}

/// Options of `sluice evaluate`.
#[derive(Args)]
pub struct EvaluateArgs {
    /// JSON lines of scored events (the output of an `anomaly` processor).
    input: PathBuf,
    /// The field holding the label: anomalous when present and not one of the normal values.
    #[arg(long, value_name = "FIELD")]
    label_field: String,
    /// Label values that mean normal.
    #[arg(long = "normal", value_name = "VALUE", default_values = ["-", "", "normal", "0", "false"])]
    normal: Vec<String>,
    /// The boolean field holding the flag.
    #[arg(long, value_name = "FIELD", default_value = "anomaly")]
    flag_field: String,
}

/// Reads JSON lines into events.
fn read_events(path: &PathBuf) -> anyhow::Result<Vec<Event>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut events = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let json: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a JSON object", path.display(), n + 1))?;
        let serde_json::Value::Object(mut obj) = json else {
            anyhow::bail!("{}:{}: not a JSON object", path.display(), n + 1);
        };
        let message = match obj.get("message") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let fields = match obj.remove("fields") {
            Some(f @ serde_json::Value::Object(_)) => f,
            Some(other) => {
                obj.insert("fields".into(), other);
                serde_json::Value::Object(obj)
            }
            None => serde_json::Value::Object(obj),
        };
        let mut e = Event::new(message, Timestamp(0));
        if let Value::Map(m) = Value::from(fields) {
            e.fields = m;
        }
        events.push(e);
    }
    Ok(events)
}

/// `sluice train`.
pub fn train(args: &TrainArgs) -> i32 {
    let options = match &args.options {
        None => "{}".to_string(),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return EXIT_CONFIG;
            }
        },
    };
    let config: sluice_anomaly::anomaly::Config = match sluice_core::config::from_yaml_str(&options)
    {
        Ok(c) => c,
        Err(e) => {
            let name = args
                .options
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            eprintln!(
                "{name}:{}: {}",
                e.pos
                    .map(|p| format!("{}:{}", p.line, p.col))
                    .unwrap_or_default(),
                e.message
            );
            return EXIT_CONFIG;
        }
    };
    use sluice_core::registry::ProcessorConfig;
    let problems = config.validate();
    if !problems.is_empty() {
        for p in problems {
            eprintln!(
                "error: {}{}",
                p.key.map(|k| format!("{k}: ")).unwrap_or_default(),
                p.message
            );
        }
        return EXIT_CONFIG;
    }
    let run = || -> anyhow::Result<Model> {
        let events = read_events(&args.input)?;
        let model = Model::train(&config.spec(), &events).map_err(anyhow::Error::msg)?;
        model.save(&args.output).map_err(anyhow::Error::msg)?;
        Ok(model)
    };
    match run() {
        Ok(m) => {
            println!("{}", m.describe());
            println!("model written to {}", args.output.display());
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_FAILED
        }
    }
}

/// `sluice evaluate`.
pub fn evaluate(args: &EvaluateArgs) -> i32 {
    let events = match read_events(&args.input) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_FAILED;
        }
    };
    let mut c = Confusion::default();
    let mut unscored = 0;
    for e in &events {
        let anomalous = match e.get(&args.label_field) {
            None | Some(Value::Null) => false,
            Some(v) => !args.normal.iter().any(|n| *n == v.to_text()),
        };
        let flagged = match e.get(&args.flag_field) {
            Some(Value::Bool(b)) => *b,
            _ => {
                unscored += 1;
                false
            }
        };
        c.add(flagged, anomalous);
    }
    println!(
        "events {}  labelled anomalous {}  flagged {}  unscored {}",
        events.len(),
        c.true_positives + c.false_negatives,
        c.true_positives + c.false_positives,
        unscored
    );
    println!(
        "true positives {}  false positives {}  false negatives {}  true negatives {}",
        c.true_positives, c.false_positives, c.false_negatives, c.true_negatives
    );
    println!(
        "precision {:.4}  recall {:.4}  f1 {:.4}",
        c.precision(),
        c.recall(),
        c.f1()
    );
    EXIT_OK
}
