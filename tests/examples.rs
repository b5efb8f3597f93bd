//! The custom-components example: a user's own source and sink, registered
//! next to the built-ins, run from YAML.

use std::process::Command;
use std::time::Duration;

use crate::util::*;

#[test]
fn custom_source_and_sink_run_from_yaml() {
    // `cargo test` builds examples next to the test binaries.
    let exe = sluice_bin()
        .parent()
        .expect("bin dir")
        .join("examples")
        .join("custom_components");
    assert!(exe.exists(), "example binary missing at {}", exe.display());
    let d = Dir::new();
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/custom_components.yaml"),
    )
    .expect("yaml");
    d.write("p.yaml", &yaml);
    let child = Command::new(&exe)
        .args(["run", "p.yaml"])
        .current_dir(d.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let o = wait_output(child, Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    let tally: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/tally.json")).expect("tally"))
            .expect("json");
    // 1..=1500: multiples of 15: 100; of 3 only: 400; of 5 only: 200.
    assert_eq!(tally["FizzBuzz"], 100);
    assert_eq!(tally["Fizz"], 400);
    assert_eq!(tally["Buzz"], 200);
    assert_eq!(tally["number"], 800);
    let lines = d.lines("out/fizzbuzz.log");
    assert_eq!(lines.len(), 1500);
    assert_eq!(&lines[..5], ["1", "2", "Fizz", "4", "Buzz"]);
    // The custom types are validated like built-ins.
    d.write("bad.yaml", &yaml.replace("count: 1500", "count: 0"));
    let o = Command::new(&exe)
        .args(["validate", "bad.yaml"])
        .current_dir(d.path())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.yaml:6:12: source `game`:"),
        "{}",
        stderr(&o)
    );
}
