//! `sluice templates DIR`: the templates a `template` processor mined, with
//! their ids, line counts and text, read from its saved state.
//!
//! DIR is a pipeline's `data_dir` (every `processors/<id>/templates.json`
//! under it is listed), a processor's directory, or a `templates.json` file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use sluice_anomaly::drain::DrainState;

use super::{EXIT_FAILED, EXIT_OK};

/// Options of `sluice templates`.
#[derive(Args)]
pub struct TemplatesArgs {
    /// A pipeline's data_dir, a template processor's directory, or a templates.json file.
    dir: PathBuf,
    /// Most frequent first (default: by id).
    #[arg(long)]
    by_count: bool,
}

/// The saved states under `dir`, by path.
fn find(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let own = dir.join("templates.json");
    if own.is_file() {
        return Ok(vec![own]);
    }
    let processors = dir.join("processors");
    let mut found = Vec::new();
    if processors.is_dir() {
        for entry in
            std::fs::read_dir(&processors).with_context(|| format!("{}", processors.display()))?
        {
            let path = entry?.path().join("templates.json");
            if path.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        anyhow::bail!(
            "{}: no templates.json here nor under processors/*/ (is it the pipeline's data_dir, and does its template processor persist?)",
            dir.display()
        );
    }
    Ok(found)
}

fn print(path: &Path, by_count: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let state: DrainState = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a saved template miner", path.display()))?;
    let mut rows: Vec<(u64, u64, String)> = state
        .clusters
        .iter()
        .map(|c| (c.id, c.count, c.text()))
        .collect();
    if by_count {
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    }
    let lines: u64 = rows.iter().map(|r| r.1).sum();
    println!(
        "{}: {} templates, {lines} lines",
        path.display(),
        rows.len()
    );
    println!("{:>6}  {:>10}  template", "id", "count");
    for (id, count, text) in rows {
        println!("{id:>6}  {count:>10}  {text}");
    }
    Ok(())
}

/// Runs `sluice templates`.
pub fn run(args: &TemplatesArgs) -> i32 {
    let result = find(&args.dir).and_then(|paths| {
        for (i, p) in paths.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print(p, args.by_count)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_FAILED
        }
    }
}
