//! Adding your own source and sink to Sluice.
//!
//! This program is the whole `sluice` CLI plus two components of its own:
//!
//! * source `fizzbuzz`: emits "1", "2", "Fizz", "4", "Buzz", ... up to `count`;
//! * sink `tally`: counts the events per body and, when the run ends, writes
//!   the counts as JSON to `path`.
//!
//! Run it like `sluice`:
//!
//! ```text
//! cargo run --example custom_components -- run examples/custom_components.yaml
//! ```

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;

/// Options of the `fizzbuzz` source.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FizzBuzzConfig {
    /// How many numbers to play.
    count: NonZeroU64,
}

impl SourceConfig for FizzBuzzConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(FizzBuzz {
            count: self.count.get(),
        }))
    }
}

struct FizzBuzz {
    count: u64,
}

#[async_trait]
impl Source for FizzBuzz {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), ComponentError> {
        let mut n = 1;
        while n <= self.count && !cx.shutdown.is_cancelled() {
            let now = Timestamp::now();
            let mut batch = Batch::with_capacity(100);
            for i in n..(n + 100).min(self.count + 1) {
                let body = match (i % 3, i % 5) {
                    (0, 0) => "FizzBuzz".to_string(),
                    (0, _) => "Fizz".to_string(),
                    (_, 0) => "Buzz".to_string(),
                    _ => i.to_string(),
                };
                batch.push(Event::new(body, now));
            }
            n += batch.len() as u64;
            // Waits while the channel is full: backpressure.
            cx.emit(batch).await?;
        }
        Ok(())
    }
}

/// Options of the `tally` sink.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TallyConfig {
    /// Where to write the counts when the run ends.
    path: PathBuf,
}

impl SinkConfig for TallyConfig {
    fn validate(&self) -> Vec<Problem> {
        if self.path.as_os_str().is_empty() {
            return vec![Problem::at("path", "must not be empty")];
        }
        Vec::new()
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Tally {
            path: self.path.clone(),
            counts: BTreeMap::new(),
        }))
    }
}

struct Tally {
    path: PathBuf,
    counts: BTreeMap<String, u64>,
}

#[async_trait]
impl Sink for Tally {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        for e in batch {
            let key = match e.body.as_ref() {
                b"Fizz" | b"Buzz" | b"FizzBuzz" => String::from_utf8_lossy(&e.body).into_owned(),
                _ => "number".to_string(),
            };
            *self.counts.entry(key).or_default() += 1;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        let json = serde_json::to_string_pretty(&self.counts)
            .map_err(|e| SinkError::Fatal(e.to_string()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.path, json)?;
        Ok(())
    }
}

fn main() {
    let mut registry = sluice::registry();
    if let Err(e) = registry
        .add_source::<FizzBuzzConfig>("fizzbuzz")
        .and_then(|()| registry.add_sink::<TallyConfig>("tally"))
    {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    std::process::exit(sluice::cli::main(registry));
}
