//! The `elasticsearch` source and the API's `_search`, driven by the
//! official Elasticsearch Python client (`elasticsearch` 9.5.1 from PyPI,
//! installed by `scripts/services.sh up python`): a client nobody here
//! wrote bulk-indexes 100,000 documents and a body with bad items, then
//! searches them back; `testdata/elasticsearch_client.py` says what it
//! checks.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

const CLIENT_LIMIT: Duration = Duration::from_secs(600);

/// Where the pinned client is installed; fails (never skips) without it.
fn client_path() -> String {
    let path = std::env::var("SLUICE_TEST_ES_PYTHONPATH").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_ES_PYTHONPATH is not set: run `scripts/services.sh up python` and `eval \"$(scripts/services.sh env)\"`, or scripts/test.sh"
        )
    });
    assert!(
        std::path::Path::new(&path).join("elasticsearch").is_dir(),
        "no elasticsearch client in SLUICE_TEST_ES_PYTHONPATH={path}: run `scripts/services.sh up python`"
    );
    path
}

#[test]
fn the_official_python_client_bulk_indexes_and_searches_back() {
    let pythonpath = client_path();
    let d = Dir::new();
    d.write("token", "es-test-token\n");
    d.write(
        "p.yaml",
        r#"api:
  address: 127.0.0.1:0
  token: {file: ./token}
sources:
  es:
    type: elasticsearch
    address: 127.0.0.1:0
    token: {file: ./token}
    channels: [main]
channels:
  main: {type: memory, capacity: 20000}
sinks:
  store: {type: store, channel: main, path: ./store, batch_size: 5000}
"#,
    );
    let mut agent = Agent::start_json(&d, &["run", "p.yaml"]);
    let ingest = agent.listening("es");
    let api = agent.api_port();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/elasticsearch_client.py");
    let child = Command::new("python3")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{ingest}"))
        .arg(format!("http://127.0.0.1:{api}"))
        .arg("es-test-token")
        .env("PYTHONPATH", &pythonpath)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let o = wait_output(child, CLIENT_LIMIT);
    assert!(
        o.status.success(),
        "the client failed:\n{}{}\nagent log:\n{}",
        stdout(&o),
        stderr(&o),
        agent.log()
    );
    // The measurements, for whoever reads the test's output.
    eprintln!("{}", stdout(&o).trim());
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    let counts = final_counts(&log);
    // 100,000 documents and the two good ones of the raw body; its five bad
    // items count as errors.
    assert_eq!(counts["es"]["events_out"].as_u64(), Some(100_002));
    assert_eq!(counts["es"]["errors"].as_u64(), Some(5));
    assert_eq!(counts["store"]["events_out"].as_u64(), Some(100_002));
}
