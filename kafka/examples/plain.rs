//! A plain librdkafka client, the baseline of `benches/kafka.sh`: the same
//! work as Sluice's `kafka` sink and source, with nothing around it.
//!
//! ```text
//! plain create  BROKERS TOPIC PARTITIONS
//! plain produce BROKERS TOPIC COUNT          # apache-style lines, lz4, idempotent, acks=all
//! plain consume BROKERS TOPIC GROUP COUNT OUT  # writes each value and a newline to OUT
//! ```
//!
//! Prints `events bytes seconds` on standard output.

use std::io::Write as _;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::ClientConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("usage: plain create|produce|consume BROKERS TOPIC ...");
            std::process::exit(2)
        })
    };
    let number = |i: usize| -> u64 {
        arg(i).parse().unwrap_or_else(|_| {
            eprintln!("`{}` is not a number", arg(i));
            std::process::exit(2)
        })
    };
    let result = match arg(0) {
        "create" => create(arg(1), arg(2), number(3) as i32),
        "produce" => produce(arg(1), arg(2), number(3)),
        "consume" => consume(arg(1), arg(2), arg(3), number(4), arg(5)),
        other => Err(format!("unknown command `{other}`")),
    };
    if let Err(e) = result {
        eprintln!("plain: {e}");
        std::process::exit(1);
    }
}

fn create(brokers: &str, topic: &str, partitions: i32) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let res = rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .map_err(|e| e.to_string())?;
    for r in res {
        r.map_err(|(t, e)| format!("{t}: {e}"))?;
    }
    Ok(())
}

fn produce(brokers: &str, topic: &str, count: u64) -> Result<(), String> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.size", "1048576")
        .create()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut line = String::new();
    for i in 0..count {
        line.clear();
        // The shape of the generator's `apache_common` lines.
        use std::fmt::Write as _;
        let _ = write!(
            line,
            "10.0.{}.{} - frank [26/Nov/2026:04:43:11 +0000] \"GET /api/v1/orders/{i} HTTP/1.1\" 200 {}",
            i % 7,
            i % 250,
            i % 9000 + 100
        );
        bytes += line.len() as u64;
        loop {
            match producer.send(BaseRecord::<(), _>::to(topic).payload(line.as_bytes())) {
                Ok(()) => break,
                Err((e, _)) => {
                    if e.rdkafka_error_code() != Some(rdkafka::error::RDKafkaErrorCode::QueueFull) {
                        return Err(e.to_string());
                    }
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    println!("{count} {bytes} {:.3}", start.elapsed().as_secs_f64());
    Ok(())
}

fn consume(brokers: &str, topic: &str, group: &str, count: u64, out: &str) -> Result<(), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()
        .map_err(|e| e.to_string())?;
    consumer.subscribe(&[topic]).map_err(|e| e.to_string())?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| e.to_string())?);
    let mut start = None;
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < count {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                start.get_or_insert_with(Instant::now);
                let v = m.payload().unwrap_or_default();
                file.write_all(v).map_err(|e| e.to_string())?;
                file.write_all(b"\n").map_err(|e| e.to_string())?;
                bytes += v.len() as u64;
                n += 1;
            }
            Some(Err(e)) => eprintln!("plain: {e}"),
            None => {}
        }
    }
    file.flush().map_err(|e| e.to_string())?;
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("{n} {bytes} {secs:.3}");
    Ok(())
}
