use crate::drain::{tokenize, Drain, DrainParams};
use crate::eval::{csv_column, grouping_accuracy};
use crate::mask::{BuiltinMask, Masker};

struct Sys {
    name: &'static str,
    header: &'static str,
    patterns: &'static [&'static str],
    builtins: &'static [BuiltinMask],
    similarity: f64,
    depth: usize,
    floor: f64,
}

const IPV4: BuiltinMask = BuiltinMask::Ipv4;

fn systems() -> Vec<Sys> {
    vec![
        Sys {
            name: "HDFS",
            header: r"^(?P<date>.*?)\s+(?P<time>.*?)\s+(?P<pid>.*?)\s+(?P<level>.*?)\s+(?P<component>.*?):\s+(?P<content>.*?)$",
            patterns: &[r"blk_-?\d+"],
            builtins: &[IPV4],
            similarity: 0.5,
            depth: 4,
            floor: 0.9975,
        },
        Sys {
            name: "BGL",
            header: r"^(?P<label>.*?)\s+(?P<ts>.*?)\s+(?P<date>.*?)\s+(?P<node>.*?)\s+(?P<time>.*?)\s+(?P<noderepeat>.*?)\s+(?P<type>.*?)\s+(?P<component>.*?)\s+(?P<level>.*?)\s+(?P<content>.*?)$",
            patterns: &[r"core\.\d+"],
            builtins: &[],
            similarity: 0.5,
            depth: 4,
            floor: 0.9625,
        },
        Sys {
            name: "Thunderbird",
            header: r"^(?P<label>.*?)\s+(?P<ts>.*?)\s+(?P<date>.*?)\s+(?P<user>.*?)\s+(?P<month>.*?)\s+(?P<day>.*?)\s+(?P<time>.*?)\s+(?P<location>.*?)\s+(?P<component>.*?)(\[(?P<pid>.*?)\])?:\s+(?P<content>.*?)$",
            patterns: &[],
            builtins: &[IPV4],
            similarity: 0.5,
            depth: 4,
            floor: 0.955,
        },
        Sys {
            name: "OpenSSH",
            header: r"^(?P<date>.*?)\s+(?P<day>.*?)\s+(?P<time>.*?)\s+(?P<component>.*?)\s+sshd\[(?P<pid>.*?)\]:\s+(?P<content>.*?)$",
            patterns: &[r"([\w-]+\.){2,}[\w-]+"],
            builtins: &[IPV4],
            similarity: 0.6,
            depth: 5,
            floor: 0.7875,
        },
        Sys {
            name: "OpenSSH",
            header: r"^(?P<date>.*?)\s+(?P<day>.*?)\s+(?P<time>.*?)\s+(?P<component>.*?)\s+sshd\[(?P<pid>.*?)\]:\s+(?P<content>.*?)$",
            patterns: &[r"([\w-]+\.){2,}[\w-]+"],
            builtins: &[IPV4, BuiltinMask::Number],
            similarity: 0.6,
            depth: 5,
            floor: 0.7875,
        },
        Sys {
            name: "OpenSSH",
            header: r"^(?P<date>.*?)\s+(?P<day>.*?)\s+(?P<time>.*?)\s+(?P<component>.*?)\s+sshd\[(?P<pid>.*?)\]:\s+(?P<content>.*?)$",
            patterns: &[r"([\w-]+\.){2,}[\w-]+"],
            builtins: &[IPV4, BuiltinMask::Number],
            similarity: 0.5,
            depth: 4,
            floor: 0.7875,
        },
        Sys {
            name: "Apache",
            header: r"^\[(?P<time>.*?)\]\s+\[(?P<level>.*?)\]\s+(?P<content>.*?)$",
            patterns: &[],
            builtins: &[IPV4],
            similarity: 0.5,
            depth: 4,
            floor: 1.0,
        },
        Sys {
            name: "Linux",
            header: r"^(?P<month>.*?)\s+(?P<date>.*?)\s+(?P<time>.*?)\s+(?P<level>.*?)\s+(?P<component>.*?)(\[(?P<pid>.*?)\])?:\s+(?P<content>.*?)$",
            patterns: &[r"\d{2}:\d{2}:\d{2}"],
            builtins: &[IPV4],
            similarity: 0.39,
            depth: 6,
            floor: 0.69,
        },
        Sys {
            name: "Linux",
            header: r"^(?P<month>.*?)\s+(?P<date>.*?)\s+(?P<time>.*?)\s+(?P<level>.*?)\s+(?P<component>.*?)(\[(?P<pid>.*?)\])?:\s+(?P<content>.*?)$",
            patterns: &[r"\d{2}:\d{2}:\d{2}"],
            builtins: &[IPV4, BuiltinMask::Number],
            similarity: 0.39,
            depth: 6,
            floor: 0.69,
        },
        Sys {
            name: "Linux",
            header: r"^(?P<month>.*?)\s+(?P<date>.*?)\s+(?P<time>.*?)\s+(?P<level>.*?)\s+(?P<component>.*?)(\[(?P<pid>.*?)\])?:\s+(?P<content>.*?)$",
            patterns: &[r"\d{2}:\d{2}:\d{2}"],
            builtins: &[IPV4, BuiltinMask::Number],
            similarity: 0.5,
            depth: 4,
            floor: 0.69,
        },
    ]
}

#[test]
fn loghub_grouping_accuracy_direct() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/loghub_2k");
    let mut report = String::new();
    let mut all = systems();
    if let Ok(sweep) = std::env::var("SWEEP") {
        let base: Vec<Sys> = systems().into_iter().filter(|s| s.name == sweep).collect();
        all.clear();
        for b in base {
            for depth in [4usize, 5, 6, 7] {
                for st in [0.3, 0.35, 0.39, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8] {
                    all.push(Sys {
                        name: b.name,
                        header: b.header,
                        patterns: b.patterns,
                        builtins: b.builtins,
                        similarity: st,
                        depth,
                        floor: b.floor,
                    });
                }
            }
        }
    }
    for s in all {
        let log = std::fs::read_to_string(format!("{dir}/{}_2k.log", s.name)).unwrap();
        let csv =
            std::fs::read_to_string(format!("{dir}/{}_2k.log_structured.csv", s.name)).unwrap();
        let truth = csv_column(&csv, "EventId").unwrap();
        let header = regex::Regex::new(s.header).unwrap();
        let pats: Vec<String> = s.patterns.iter().map(|p| p.to_string()).collect();
        let masker = Masker::new(&pats, s.builtins).unwrap();
        let mut d = Drain::new(DrainParams {
            depth: s.depth,
            similarity: s.similarity,
            max_children: 100,
        });
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        let mut ids = Vec::new();
        for line in log.lines() {
            let line = line.trim_end_matches('\r');
            let content = header
                .captures(line)
                .and_then(|c| c.name("content"))
                .map(|m| m.as_str())
                .unwrap_or(line);
            let masked = masker.apply(content.as_bytes(), &mut buf);
            tokenize(masked, &mut ranges);
            let (ci, _) = d.add(masked, &ranges);
            ids.push(d.clusters()[ci].id);
        }
        let dump: String = ids
            .iter()
            .zip(&truth)
            .map(|(a, b)| format!("{a}\t{b}\n"))
            .collect();
        std::fs::write(
            format!("/tmp/ga_{}_{}_{}.tsv", s.name, s.depth, s.builtins.len()),
            dump,
        )
        .unwrap();
        let tl: String = d
            .clusters()
            .iter()
            .map(|c| format!("{}\t{}\n", c.id, String::from_utf8_lossy(&c.text)))
            .collect();
        std::fs::write(
            format!("/tmp/tpl_{}_{}_{}.tsv", s.name, s.depth, s.builtins.len()),
            tl,
        )
        .unwrap();
        let ga = grouping_accuracy(&ids, &truth);
        report.push_str(&format!(
            "{} st {} d {} b {}: GA {ga:.4} (floor {}) clusters {}\n",
            s.name,
            s.similarity,
            s.depth,
            s.builtins.len(),
            s.floor,
            d.clusters().len()
        ));
    }
    println!("{report}");
}
