//! What a user building Sluice relies on: the stated toolchain floor holds for
//! every locked dependency, and the images build with a toolchain that meets it.

use std::process::Command;

/// `1.89`, `1.89.0` → (1, 89, 0).
fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Every locked package, those of other platforms too (they are downloaded
/// from the registry when missing: a user on another platform builds them).
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The workspace's `rust-version` and the README's stated minimum are at least
/// the `rust-version` of every locked dependency, so a user with exactly that
/// toolchain can build.
#[test]
fn the_stated_rust_version_covers_every_locked_dependency() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let ours = packages
        .iter()
        .find(|p| p["name"] == "sluice")
        .and_then(|p| p["rust_version"].as_str())
        .expect("the sluice package declares rust-version");
    let floor = version(ours);
    let too_new: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let rv = p["rust_version"].as_str()?;
            (version(rv) > floor).then(|| format!("{} {} needs {rv}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "rust-version {ours} is below what locked dependencies need: {too_new:?}"
    );

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let stated = format!("Rust toolchain ({ours} or newer)");
    assert!(readme.contains(&stated), "README must say `{stated}`");

    // Every Dockerfile that pins a Rust image pins one at least that new.
    for file in ["Dockerfile", "demos/edge-aggregator/Dockerfile"] {
        let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR")))
            .expect("Dockerfile");
        for line in text.lines().filter(|l| l.starts_with("FROM rust:")) {
            let tag = line["FROM rust:".len()..].split('-').next().unwrap_or("");
            if tag.contains('.') {
                assert!(
                    version(tag) >= floor,
                    "{file} pins rust:{tag}, below rust-version {ours}"
                );
            }
        }
    }
}
