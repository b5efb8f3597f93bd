//! The `generator` source: synthetic events for tests, demos and benchmarks.
//!
//! It writes the bodies of a whole batch into one buffer, freezes it once and
//! slices one [`Bytes`] per event out of it; every event of a batch shares one
//! [`Timestamp::now`]. Content is deterministic: event `N` always has the same
//! body apart from the time stamp written into `apache_common` and `syslog`
//! lines.
//!
//! With `resume: true` it saves the number of the next event in its
//! checkpoint store after each batch the channels accepted, and starts from
//! it after a restart: with a durable channel, a crash repeats at most that
//! one batch and skips nothing.
//!
//! ```yaml
//! sources:
//!   gen:
//!     type: generator
//!     count: 1000000
//!     rate: 50000
//!     format: apache_common
//!     channels: [main]
//! ```

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use sluice_core::prelude::*;

/// The `generator` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many events to generate before stopping; absent: never stop.
    #[serde(default)]
    pub count: Option<u64>,
    /// Events per second at most; absent: as fast as the channels accept them.
    #[serde(default)]
    pub rate: Option<NonZeroU64>,
    /// What the bodies look like.
    #[serde(default)]
    pub format: Format,
    /// Events per batch at most.
    #[serde(default = "sluice_core::defaults::batch_size")]
    pub batch_size: NonZeroUsize,
    /// Save the next event number after every batch the channels accepted,
    /// and continue from it after a restart (`count` then counts from 0
    /// across runs).
    #[serde(default)]
    pub resume: bool,
}

/// What a resuming generator keeps in its checkpoint store.
#[derive(serde::Serialize, Deserialize)]
struct Checkpoint {
    /// The number of the next event to generate.
    next: u64,
}

/// The shape of generated bodies.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `0`, `1`, `2`, ...: the sequence number only.
    #[default]
    Sequence,
    /// Apache common log format access lines.
    ApacheCommon,
    /// RFC 3164 style syslog lines.
    Syslog,
    /// One JSON object per event with `seq`, `level`, `service`, `message`.
    Json,
}

/// How often a rate-limited generator emits, at most.
const TICKS_PER_SECOND: u64 = 10;

impl SourceConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        Vec::new()
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(Generator {
            config: self.clone(),
        }))
    }
}

/// The running `generator` source.
pub struct Generator {
    config: Config,
}

#[async_trait]
impl Source for Generator {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), ComponentError> {
        let config = self.config;
        let batch_size = config.batch_size.get() as u64;
        // With a rate: `per_tick` events every `period`, about ten ticks a second.
        let (per_tick, mut ticker) = match config.rate {
            Some(rate) => {
                let rate = rate.get();
                let per_tick = (rate / TICKS_PER_SECOND).clamp(1, batch_size);
                let period = StdDuration::from_secs_f64(per_tick as f64 / rate as f64);
                let mut interval = tokio::time::interval(period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                (per_tick, Some(interval))
            }
            None => (batch_size, None),
        };
        if let Some(count) = config.count {
            cx.metrics.set_progress_total(count, false);
        }
        let mut writer = BodyWriter::new(config.format);
        let mut next: u64 = 0;
        if config.resume {
            let store = cx.checkpoints.clone();
            let saved = tokio::task::spawn_blocking(move || store.load::<Checkpoint>())
                .await
                .map_err(|e| ComponentError::Other(format!("checkpoint task: {e}")))??;
            if let Some(cp) = saved {
                tracing::info!(next = cp.next, "resuming from the checkpoint");
                next = cp.next;
                cx.metrics.add_progress(next);
            }
        }
        loop {
            let remaining = config.count.map_or(u64::MAX, |c| c.saturating_sub(next));
            if remaining == 0 || cx.shutdown.is_cancelled() {
                break;
            }
            if let Some(ticker) = ticker.as_mut() {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = cx.shutdown.cancelled() => break,
                }
            }
            let n = per_tick.min(remaining);
            let batch = writer.batch(next, n as usize, Timestamp::now());
            next += n;
            cx.emit(batch).await?;
            cx.metrics.add_progress(n);
            if config.resume {
                // Only now that the channels accepted the batch.
                let store = cx.checkpoints.clone();
                tokio::task::spawn_blocking(move || store.save(&Checkpoint { next }))
                    .await
                    .map_err(|e| ComponentError::Other(format!("checkpoint task: {e}")))??;
            }
            if ticker.is_none() {
                // A channel that never makes us wait would otherwise keep this
                // worker thread forever; one yield per batch costs nothing.
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }
}

/// Writes the bodies of a batch into one buffer; reused between batches.
struct BodyWriter {
    format: Format,
    /// End offset of each body in the buffer.
    ends: Vec<usize>,
}

const HOSTS: [&str; 6] = [
    "127.0.0.1",
    "10.0.0.12",
    "10.0.3.7",
    "192.168.1.20",
    "172.16.4.2",
    "203.0.113.9",
];
const USERS: [&str; 4] = ["-", "frank", "alice", "bob"];
const METHODS: [&str; 5] = ["GET", "GET", "GET", "POST", "PUT"];
const PATHS: [&str; 6] = [
    "/",
    "/index.html",
    "/apache_pb.gif",
    "/api/v1/orders",
    "/login",
    "/static/app.js",
];
const STATUSES: [&str; 7] = ["200", "200", "200", "304", "404", "500", "201"];
const SYSLOG_HOSTS: [&str; 3] = ["web01", "web02", "db01"];
const APPS: [(&str, &str); 4] = [
    ("nginx", "1021"),
    ("sshd", "882"),
    ("cron", "4417"),
    ("app", "123"),
];
const PRIORITIES: [&str; 4] = ["<34>", "<38>", "<86>", "<14>"];
const LEVELS: [&str; 6] = ["info", "info", "info", "debug", "warn", "error"];
const SERVICES: [&str; 3] = ["checkout", "search", "auth"];

impl BodyWriter {
    fn new(format: Format) -> Self {
        BodyWriter {
            format,
            ends: Vec::new(),
        }
    }

    /// A batch of `n` events numbered from `first`, all stamped `now`.
    fn batch(&mut self, first: u64, n: usize, now: Timestamp) -> Batch {
        let per_event = match self.format {
            Format::Sequence => 8,
            Format::ApacheCommon => 110,
            Format::Syslog => 60,
            Format::Json => 100,
        };
        let mut buf = BytesMut::with_capacity(n * per_event);
        self.ends.clear();
        let time = match self.format {
            Format::ApacheCommon => now
                .to_datetime()
                .format("%d/%b/%Y:%H:%M:%S +0000")
                .to_string(),
            Format::Syslog => now.to_datetime().format("%b %e %H:%M:%S").to_string(),
            Format::Sequence | Format::Json => String::new(),
        };
        for seq in first..first + n as u64 {
            self.write(&mut buf, seq, &time);
            self.ends.push(buf.len());
        }
        let all: Bytes = buf.freeze();
        let mut batch = Batch::with_capacity(n);
        let mut start = 0;
        for &end in &self.ends {
            batch.push(Event::new(all.slice(start..end), now));
            start = end;
        }
        batch
    }

    fn write(&self, buf: &mut BytesMut, seq: u64, time: &str) {
        let h = mix(seq);
        let pick = |shift: u32, len: usize| ((h >> shift) % len as u64) as usize;
        match self.format {
            Format::Sequence => put_u64(buf, seq),
            Format::ApacheCommon => {
                for part in [
                    HOSTS[pick(0, HOSTS.len())],
                    " - ",
                    USERS[pick(8, USERS.len())],
                    " [",
                    time,
                    "] \"",
                    METHODS[pick(16, METHODS.len())],
                    " ",
                    PATHS[pick(24, PATHS.len())],
                    " HTTP/1.1\" ",
                    STATUSES[pick(32, STATUSES.len())],
                    " ",
                ] {
                    buf.put_slice(part.as_bytes());
                }
                put_u64(buf, 100 + (h >> 40) % 9900);
            }
            Format::Syslog => {
                let (app, pid) = APPS[pick(8, APPS.len())];
                for part in [
                    PRIORITIES[pick(0, PRIORITIES.len())],
                    time,
                    " ",
                    SYSLOG_HOSTS[pick(16, SYSLOG_HOSTS.len())],
                    " ",
                    app,
                    "[",
                    pid,
                    "]: message ",
                ] {
                    buf.put_slice(part.as_bytes());
                }
                put_u64(buf, seq);
            }
            Format::Json => {
                buf.put_slice(b"{\"seq\":");
                put_u64(buf, seq);
                for part in [
                    ",\"level\":\"",
                    LEVELS[pick(0, LEVELS.len())],
                    "\",\"service\":\"",
                    SERVICES[pick(8, SERVICES.len())],
                    "\",\"latency_ms\":",
                ] {
                    buf.put_slice(part.as_bytes());
                }
                put_u64(buf, 1 + (h >> 16) % 500);
                buf.put_slice(b",\"message\":\"request ");
                put_u64(buf, seq);
                buf.put_slice(b" handled\"}");
            }
        }
    }
}

/// A cheap, well-mixed hash of the sequence number (splitmix64's finalizer):
/// picks the varying parts of a body deterministically.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes `n` in decimal without going through `fmt`.
fn put_u64(buf: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::testing::{source_context, Collector};
    use tokio_util::sync::CancellationToken;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = sluice_core::config::from_yaml_str(
            "count: 10\nrate: 5000\nformat: apache_common\nbatch_size: 100\n",
        )
        .unwrap();
        assert_eq!(c.count, Some(10));
        assert_eq!(c.rate.map(NonZeroU64::get), Some(5000));
        assert_eq!(c.format, Format::ApacheCommon);
        assert_eq!(c.batch_size.get(), 100);
        let d: Config = sluice_core::config::from_yaml_str("{}").unwrap();
        assert_eq!(
            (d.count, d.rate, d.format, d.batch_size.get()),
            (None, None, Format::Sequence, 1000)
        );
        let err = sluice_core::config::from_yaml_str::<Config>("cout: 10\n").unwrap_err();
        assert!(
            err.message.contains("did you mean `count`"),
            "{}",
            err.message
        );
        let err = sluice_core::config::from_yaml_str::<Config>("format: sislog\n").unwrap_err();
        assert!(
            err.message.contains("did you mean `syslog`"),
            "{}",
            err.message
        );
        assert!(sluice_core::config::from_yaml_str::<Config>("batch_size: 0\n").is_err());
    }

    async fn run(config: Config) -> std::sync::Arc<Collector> {
        let dir = tempfile::tempdir().unwrap();
        let out = Collector::new();
        let cx = source_context("gen", dir.path(), out.clone(), CancellationToken::new());
        let source = config.build(&build_cx()).unwrap();
        source.run(cx).await.unwrap();
        out
    }

    fn build_cx() -> BuildContext {
        BuildContext {
            id: "gen".into(),
            pipeline_data_dir: "/nonexistent".into(),
            data_dir: "/nonexistent".into(),
            durable_input: false,
        }
    }

    fn config(yaml: &str) -> Config {
        sluice_core::config::from_yaml_str(yaml).unwrap()
    }

    #[tokio::test]
    async fn sequence_count_is_exact() {
        let out = run(config("count: 2503\nbatch_size: 1000\n")).await;
        let bodies = out.bodies();
        let expected: Vec<String> = (0..2503).map(|i| i.to_string()).collect();
        assert_eq!(bodies, expected);
    }

    #[tokio::test]
    async fn resume_continues_after_the_last_accepted_batch() {
        let dir = tempfile::tempdir().unwrap();
        let out = Collector::new();
        let cx = source_context("gen", dir.path(), out.clone(), CancellationToken::new());
        let store = cx.checkpoints.clone();
        let c = config("count: 2500\nbatch_size: 1000\nresume: true\n");
        // A run that stopped after 1200 accepted events.
        store.save(&Checkpoint { next: 1200 }).unwrap();
        c.build(&build_cx()).unwrap().run(cx).await.unwrap();
        let expected: Vec<String> = (1200..2500).map(|i| i.to_string()).collect();
        assert_eq!(out.bodies(), expected);
        assert_eq!(
            store.load::<Checkpoint>().unwrap().map(|c| c.next),
            Some(2500)
        );
        // Done: a further run emits nothing.
        let out = Collector::new();
        let cx = source_context("gen", dir.path(), out.clone(), CancellationToken::new());
        c.build(&build_cx()).unwrap().run(cx).await.unwrap();
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn formats_look_right() {
        let out = run(config("count: 50\nformat: apache_common\n")).await;
        for b in out.bodies() {
            let (host, rest) = b.split_once(" - ").unwrap();
            assert!(HOSTS.contains(&host), "{b}");
            assert!(
                rest.contains(" +0000] \"") && rest.contains(" HTTP/1.1\" "),
                "{b}"
            );
        }
        let out = run(config("count: 50\nformat: syslog\n")).await;
        for (i, b) in out.bodies().iter().enumerate() {
            assert!(
                b.starts_with('<') && b.ends_with(&format!("]: message {i}")),
                "{b}"
            );
        }
        let out = run(config("count: 50\nformat: json\n")).await;
        for (i, b) in out.bodies().iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(b).unwrap();
            assert_eq!(v["seq"], i as u64);
            assert!(v["level"].is_string() && v["message"].is_string());
        }
        // Deterministic apart from the time.
        let a = run(config("count: 20\nformat: json\n")).await.bodies();
        let b = run(config("count: 20\nformat: json\n")).await.bodies();
        assert_eq!(a, b);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let out = Collector::new();
        let shutdown = CancellationToken::new();
        let cx = source_context("gen", dir.path(), out.clone(), shutdown.clone());
        let source = config("rate: 100\n").build(&build_cx()).unwrap();
        let task = tokio::spawn(source.run(cx));
        tokio::time::sleep(StdDuration::from_millis(2050)).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
        // 10 events every 100ms, the first at once: 21 ticks in 2.05s.
        assert_eq!(out.len(), 210);
    }

    #[tokio::test]
    async fn endless_generator_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let out = Collector::new();
        let shutdown = CancellationToken::new();
        let cx = source_context("gen", dir.path(), out.clone(), shutdown.clone());
        let source = config("batch_size: 10\n").build(&build_cx()).unwrap();
        let task = tokio::spawn(source.run(cx));
        while out.len() < 100 {
            tokio::task::yield_now().await;
        }
        shutdown.cancel();
        tokio::time::timeout(StdDuration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let n = out.len();
        assert_eq!(n % 10, 0);
        assert_eq!(out.bodies().last().unwrap(), &(n - 1).to_string());
    }
}
