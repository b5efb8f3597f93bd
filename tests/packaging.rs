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

/// Runs `dpkg-deb ARGS` and returns its standard output.
fn dpkg_deb(args: &[&str]) -> String {
    let o = Command::new("dpkg-deb")
        .args(args)
        .output()
        .expect("dpkg-deb (Debian's package tool) runs");
    assert!(
        o.status.success(),
        "dpkg-deb {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// packaging/build-deb.sh packs the binary the tests already built (no
/// second build) into a .deb holding the agent, its systemd unit (with a
/// reload), the pipeline it runs, its state and config directories; the
/// unpacked agent accepts the packaged pipeline.
#[test]
fn the_debian_package_holds_the_agent_its_unit_config_and_state_dirs() {
    let d = crate::util::Dir::new();
    let root = env!("CARGO_MANIFEST_DIR");
    let o = Command::new(format!("{root}/packaging/build-deb.sh"))
        .arg(crate::util::sluice_bin())
        .arg(d.join("deb"))
        .env("DEB_COMPRESSION", "none")
        .output()
        .expect("run build-deb.sh");
    assert!(
        o.status.success(),
        "build-deb.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let deb = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let name = format!("sluice_{}_", env!("CARGO_PKG_VERSION"));
    assert!(deb.contains(&name) && deb.ends_with(".deb"), "{deb}");

    let info = dpkg_deb(&["-I", &deb]);
    for want in [
        "Package: sluice".to_string(),
        format!("Version: {}", env!("CARGO_PKG_VERSION")),
        "Depends: libc6, zlib1g".to_string(),
    ] {
        assert!(info.contains(&want), "{want} in\n{info}");
    }
    assert_eq!(dpkg_deb(&["-f", &deb, "Package"]).trim(), "sluice");

    // `dpkg-deb -c`: mode, owner, size, date, time, path.
    let listing = dpkg_deb(&["-c", &deb]);
    let entry = |path: &str| -> Vec<String> {
        listing
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|w| w.last().map(String::as_str) == Some(path))
            .unwrap_or_else(|| panic!("no {path} in\n{listing}"))
    };
    assert_eq!(entry("./usr/bin/sluice")[0], "-rwxr-xr-x");
    assert_eq!(entry("./usr/bin/sluice")[1], "root/root");
    assert_eq!(
        entry("./lib/systemd/system/sluice.service")[0],
        "-rw-r--r--"
    );
    assert_eq!(entry("./etc/sluice/pipeline.yaml")[0], "-rw-r--r--");
    assert!(entry("./etc/sluice/")[0].starts_with('d'));
    assert!(entry("./var/lib/sluice/")[0].starts_with('d'));
    assert_eq!(entry("./")[0], "drwxr-xr-x", "{listing}");

    // Unpacked: the unit runs the installed binary and reloads with SIGHUP;
    // the pipeline is a conffile and passes validation by that binary.
    let tree = d.join("tree");
    dpkg_deb(&["-x", &deb, tree.to_str().expect("utf-8 path")]);
    let unit =
        std::fs::read_to_string(tree.join("lib/systemd/system/sluice.service")).expect("unit");
    let lines: Vec<&str> = unit.lines().collect();
    for want in [
        "ExecStart=/usr/bin/sluice run /etc/sluice/pipeline.yaml",
        "ExecStartPre=/usr/bin/sluice validate /etc/sluice/pipeline.yaml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=sluice",
    ] {
        assert!(lines.contains(&want), "{want} in\n{unit}");
    }
    assert!(!unit.contains("/usr/local/bin"), "{unit}");
    let control = d.join("control");
    dpkg_deb(&["-e", &deb, control.to_str().expect("utf-8 path")]);
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).expect("conffiles"),
        "/etc/sluice/pipeline.yaml\n"
    );
    let o = Command::new(tree.join("usr/bin/sluice"))
        .arg("validate")
        .arg(tree.join("etc/sluice/pipeline.yaml"))
        .output()
        .expect("run the packaged agent");
    assert!(
        o.status.success(),
        "the packaged pipeline: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The dependency rule of docs/architecture.md, read from the manifests:
/// the contract crate depends on no other crate of the workspace, the
/// runtime on the contract only, a component crate on the contract only,
/// the API on the contract, the runtime and the listener plumbing; only
/// the binary knows every crate. Dev-dependencies are not counted.
#[test]
fn crates_depend_the_way_the_architecture_says() {
    let meta = metadata();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let mut wrong = Vec::new();
    for p in meta["packages"].as_array().expect("packages") {
        let id = p["id"].as_str().unwrap_or_default();
        if !members.contains(&id) {
            continue;
        }
        let name = p["name"].as_str().unwrap_or_default();
        let ours: Vec<&str> = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| d.starts_with("sluice"))
            .collect();
        let allowed: &[&str] = match name {
            "sluice" => continue,
            "sluice-core" => &[],
            "sluice-api" => &["sluice-core", "sluice-runtime", "sluice-net"],
            _ => &["sluice-core"],
        };
        for d in ours {
            if !allowed.contains(&d) {
                wrong.push(format!("{name} depends on {d}"));
            }
        }
    }
    assert!(wrong.is_empty(), "against the dependency rule: {wrong:?}");
}
