//! The `null` sink: accepts every batch and discards it.
//!
//! Useful to measure a pipeline without a destination's cost, and as a
//! placeholder while a pipeline is being written. The runtime counts what a
//! sink takes, so discarded events still show in the metrics.

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;

/// The `null` sink takes no options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl SinkConfig for Config {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(NullSink))
    }
}

/// Discards everything it is given.
#[derive(Debug, Default)]
pub struct NullSink;

#[async_trait]
impl Sink for NullSink {
    async fn write(&mut self, _batch: &Batch) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::config::from_yaml_str;

    #[test]
    fn config_takes_no_options() {
        let c: Config = from_yaml_str("{}\n").unwrap();
        assert!(c.validate().is_empty());
        let e = from_yaml_str::<Config>("path: x\n").err().unwrap();
        assert!(e.message.contains("takes no options"), "{}", e.message);
    }

    #[tokio::test]
    async fn discards_and_succeeds() {
        let mut s = NullSink;
        let batch = Batch::from(vec![Event::new("x", Timestamp(0))]);
        s.write(&batch).await.unwrap();
        s.write(&Batch::new()).await.unwrap();
        s.flush().await.unwrap();
    }
}
