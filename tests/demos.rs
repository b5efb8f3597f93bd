//! Every compose file under demos/ holds together without Docker: it parses,
//! every service names an image or builds one (a `sluice:*` image is always
//! built, never pulled), what it builds has its Dockerfile, each Sluice
//! service runs a pipeline file that exists and passes `sluice validate`
//! with the service's environment, and publishes that pipeline's API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sluice_core::config::node::{parse, Node, NodeKind};

use crate::util::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `docker-compose.yml` / `compose.yaml` under demos/.
fn compose_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for demo in std::fs::read_dir(root().join("demos")).expect("demos/") {
        let dir = demo.expect("entry").path();
        for name in [
            "docker-compose.yml",
            "docker-compose.yaml",
            "compose.yml",
            "compose.yaml",
        ] {
            if dir.join(name).is_file() {
                out.push(dir.join(name));
            }
        }
    }
    out.sort();
    out
}

/// A mapping's entries with YAML merge keys (`<<: *anchor`) resolved: the
/// merged mapping's entries first, overridden by the mapping's own.
fn entries(n: &Node) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let Some(map) = n.as_map() else { return out };
    if let Some((_, merged)) = map.iter().find(|(k, _)| k.as_str() == Some("<<")) {
        out.extend(entries(merged));
    }
    for (k, v) in map {
        if let Some(k) = k.as_str().filter(|k| *k != "<<") {
            out.insert(k.to_string(), v.clone());
        }
    }
    out
}

fn text(n: &Node) -> Option<String> {
    match &n.kind {
        NodeKind::Str(s) => Some(s.clone()),
        NodeKind::Int(i) => Some(i.to_string()),
        NodeKind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Compose's own `${VAR:-default}` in a value: the default (no variable
/// of the host is assumed).
fn compose_value(v: &str) -> String {
    match v
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|r| r.split_once(":-"))
    {
        Some((_, default)) => default.to_string(),
        None => v.to_string(),
    }
}

/// Where a container path comes from on the host, by the service's bind
/// mounts (`./pipelines:/etc/sluice:ro`).
fn host_path(dir: &Path, volumes: &[String], in_container: &str) -> Option<PathBuf> {
    volumes.iter().find_map(|v| {
        let mut parts = v.split(':');
        let (host, target) = (parts.next()?, parts.next()?);
        if !host.starts_with('.') && !host.starts_with('/') {
            return None; // a named volume
        }
        let rest = in_container.strip_prefix(target)?.trim_start_matches('/');
        Some(dir.join(host).join(rest))
    })
}

#[test]
fn every_compose_file_builds_its_images_and_runs_pipelines_that_validate() {
    let files = compose_files();
    assert!(files.len() >= 2, "compose files found: {files:?}");
    let d = Dir::new();
    let mut sluice_services = 0;
    for file in &files {
        let dir = file.parent().expect("dir");
        let yaml = std::fs::read_to_string(file).expect("read");
        let doc = parse(&yaml, &|_| None)
            .unwrap_or_else(|e| panic!("{}: not YAML: {:?}", file.display(), e[0].message));
        let services = doc
            .get("services")
            .map(entries)
            .unwrap_or_else(|| panic!("{}: no `services`", file.display()));
        assert!(!services.is_empty(), "{}: no services", file.display());
        for (name, service) in &services {
            let at = format!("{} service `{name}`", file.display());
            let s = entries(service);
            let image = s.get("image").and_then(text);
            let build = s.get("build");
            assert!(
                image.is_some() || build.is_some(),
                "{at}: neither `image` nor `build`"
            );
            if let Some(build) = build {
                let (context, dockerfile) = match text(build) {
                    Some(context) => (context, "Dockerfile".to_string()),
                    None => {
                        let b = entries(build);
                        (
                            b.get("context").and_then(text).expect("build.context"),
                            b.get("dockerfile")
                                .and_then(text)
                                .unwrap_or_else(|| "Dockerfile".into()),
                        )
                    }
                };
                let path = dir.join(&context).join(&dockerfile);
                assert!(path.is_file(), "{at}: no Dockerfile at {}", path.display());
            }
            let image = image.unwrap_or_default();
            if !image.starts_with("sluice:") {
                continue;
            }
            // Our image exists nowhere to pull from: it must be built here.
            assert!(build.is_some(), "{at}: image `{image}` has no `build:`");
            sluice_services += 1;

            let command: Vec<String> = s
                .get("command")
                .and_then(Node::as_seq)
                .unwrap_or_else(|| panic!("{at}: `command` is not a list"))
                .iter()
                .filter_map(text)
                .collect();
            assert_eq!(command.first().map(String::as_str), Some("run"), "{at}");
            let pipeline = command.last().expect("a pipeline file");
            let volumes: Vec<String> = s
                .get("volumes")
                .and_then(Node::as_seq)
                .unwrap_or(&[])
                .iter()
                .filter_map(text)
                .collect();
            let on_host = host_path(dir, &volumes, pipeline)
                .unwrap_or_else(|| panic!("{at}: {pipeline} is not in a mounted directory"));
            assert!(on_host.is_file(), "{at}: {} is missing", on_host.display());

            let env: BTreeMap<String, String> = s
                .get("environment")
                .map(entries)
                .unwrap_or_default()
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), compose_value(&text(v)?))))
                .collect();
            let o = d
                .sluice(&["validate"])
                .arg(&on_host)
                .envs(&env)
                .output()
                .expect("run sluice validate");
            assert!(
                o.status.success(),
                "{at}: {} does not validate with {env:?}:\n{}",
                on_host.display(),
                stderr(&o)
            );

            // Its API is on and published.
            let pipeline_doc = parse(&std::fs::read_to_string(&on_host).expect("read"), &|k| {
                env.get(k).cloned()
            })
            .expect("parses");
            let address = pipeline_doc
                .get("api")
                .and_then(|a| a.get("address"))
                .and_then(text)
                .unwrap_or_else(|| panic!("{at}: {} has no `api:`", on_host.display()));
            let port = address.rsplit(':').next().expect("port");
            let ports: Vec<String> = s
                .get("ports")
                .and_then(Node::as_seq)
                .unwrap_or(&[])
                .iter()
                .filter_map(text)
                .collect();
            assert!(
                ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
                "{at}: the API port {port} is not published ({ports:?})"
            );
        }
    }
    assert!(sluice_services >= 6, "{sluice_services} Sluice services");
}
