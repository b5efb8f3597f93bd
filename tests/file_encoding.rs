//! The `file` sink's JSON encoding options, through the real binary: the
//! written files are read back and their shape checked.

use std::time::Duration;

use crate::util::*;

const T: Duration = Duration::from_secs(120);

/// Apache lines, parsed, written by three sinks with different encodings.
fn pipeline(encodings: &[(&str, &str)]) -> String {
    let mut yaml = String::from(
        r#"
sources:
  gen:
    type: generator
    format: apache_common
    count: 50
    processors: [parse]
    channels: [CHANNELS]
processors:
  parse:
    type: parse_regex
    pattern: '^(?P<client>\S+) \S+ (?P<user>\S+) \[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+|-)$'
    types: { status: integer }
channels:
"#,
    );
    for (id, _) in encodings {
        yaml.push_str(&format!("  {id}: {{ type: memory }}\n"));
    }
    yaml.push_str("sinks:\n");
    for (id, encoding) in encodings {
        yaml.push_str(&format!(
            "  {id}:\n    type: file\n    channel: {id}\n    path: ./out/{id}.json\n    format: json\n{encoding}"
        ));
    }
    let ids: Vec<&str> = encodings.iter().map(|(id, _)| *id).collect();
    yaml.replace("CHANNELS", &ids.join(", "))
}

/// Each line's top-level keys in the order written, and its value.
fn json_lines(d: &Dir, name: &str) -> Vec<(Vec<String>, serde_json::Value)> {
    let lines = d.lines(name);
    assert_eq!(lines.len(), 50, "{name}");
    lines
        .iter()
        .map(|l| {
            let v = serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}"));
            let k: Keys = serde_json::from_str(l).expect("keys");
            (k.0, v)
        })
        .collect()
}

/// The keys of a JSON object in the order written (`serde_json::Value`
/// sorts them).
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

#[test]
fn flat_nested_only_except_and_timestamp_formats_shape_the_written_lines() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        &pipeline(&[
            ("nested", ""),
            (
                "flat",
                "    encoding:\n      layout: flat\n      timestamp_format: unix_ms\n",
            ),
            (
                "only",
                "    encoding:\n      layout: flat\n      only_fields: [timestamp, status, path]\n      timestamp_format: '%Y-%m-%d %H:%M:%S'\n",
            ),
            (
                "except",
                "    encoding:\n      except_fields: [message, user, bytes]\n      timestamp_format: unix\n",
            ),
        ]),
    );
    let o = d.run(&["run", "--quiet", "p.yaml"], T);
    assert!(o.status.success(), "{}", stderr(&o));

    // Nested, the default: as before.
    for (keys, v) in json_lines(&d, "out/nested.json") {
        assert_eq!(keys, ["timestamp", "message", "fields"], "{v}");
        assert!(
            v["timestamp"].as_str().expect("string").ends_with('Z'),
            "{v}"
        );
        assert!(v["fields"]["status"].is_i64(), "{v}");
    }
    // Flat: the fields beside timestamp and message, in the order parsed.
    for (keys, v) in json_lines(&d, "out/flat.json") {
        assert_eq!(
            keys,
            [
                "timestamp",
                "message",
                "client",
                "user",
                "method",
                "path",
                "status",
                "bytes"
            ],
            "{v}"
        );
        let ms = v["timestamp"].as_i64().expect("unix_ms is a number");
        assert!(ms > 1_700_000_000_000, "{v}");
        assert!(v["status"].is_i64(), "{v}");
    }
    // only_fields, with a strftime pattern.
    for (keys, v) in json_lines(&d, "out/only.json") {
        assert_eq!(keys, ["timestamp", "path", "status"], "{v}");
        let ts = v["timestamp"].as_str().expect("string");
        assert!(
            chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S").is_ok(),
            "{v}"
        );
    }
    // except_fields in the nested layout: `message` names the body, the
    // rest name fields.
    for (keys, v) in json_lines(&d, "out/except.json") {
        assert_eq!(keys, ["timestamp", "fields"], "{v}");
        assert!(v["timestamp"].is_i64(), "{v}");
        assert_eq!(
            // (`Value` sorts keys: compared as a set.)
            v["fields"]
                .as_object()
                .expect("fields")
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["client", "method", "path", "status"],
            "{v}"
        );
    }
}

#[test]
fn encoding_mistakes_are_config_errors() {
    let d = Dir::new();
    let mut yaml = pipeline(&[(
        "out",
        "    encoding:\n      layout: flat\n      only_fields: [status]\n      except_fields: [path]\n",
    )]);
    d.write("both.yaml", &yaml);
    yaml = pipeline(&[("out", "    encoding:\n      timestamp_format: epoch\n")]);
    d.write("format.yaml", &yaml);
    d.write(
        "text.yaml",
        &pipeline(&[("out", "    encoding:\n      layout: flat\n")])
            .replace("format: json", "format: text"),
    );
    let o = d.run(&["validate", "both.yaml", "format.yaml", "text.yaml"], T);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("set `only_fields` or `except_fields`, not both"),
        "{err}"
    );
    assert!(err.contains("unknown timestamp format `epoch`"), "{err}");
    assert!(err.contains("applies to `format: json` only"), "{err}");
}
