//! The miner on the Loghub samples, without the pipeline around it: the
//! published Drain settings reproduce the published grouping accuracy with
//! the reference rule (the default), and the `match_masked` variant reaches
//! the figures docs/anomaly.md gives for it. (tests/anomaly.rs checks the
//! published figures through the real binary.)

use crate::drain::{tokenize, Drain, DrainParams};
use crate::eval::{csv_column, grouping_accuracy};
use crate::mask::{BuiltinMask, Masker};

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    /// Everything before the content, as in the published header formats.
    header: &'static str,
    patterns: &'static [&'static str],
    ipv4: bool,
    similarity: f64,
    depth: usize,
    /// The variant rule (a position masked in both counts as equal).
    match_masked: bool,
    ga: f64,
}

const HDFS: &str = r"^.*?\s+.*?\s+.*?\s+.*?\s+.*?:\s+(?P<content>.*?)$";
const BGL: &str = r"^.*?\s+.*?\s+.*?\s+.*?\s+.*?\s+.*?\s+.*?\s+.*?\s+.*?\s+(?P<content>.*?)$";
const THUNDERBIRD: &str =
    r"^.*?\s+.*?\s+.*?\s+.*?\s+.*?\s+.*?\s+.*?\s+.*?\s+.*?(\[.*?\])?:\s+(?P<content>.*?)$";
const OPENSSH: &str = r"^.*?\s+.*?\s+.*?\s+.*?\s+sshd\[.*?\]:\s+(?P<content>.*?)$";
const APACHE: &str = r"^\[.*?\]\s+\[.*?\]\s+(?P<content>.*?)$";
const LINUX: &str = r"^.*?\s+.*?\s+.*?\s+.*?\s+.*?(\[.*?\])?:\s+(?P<content>.*?)$";
const HOST: &str = r"([\w-]+\.){2,}[\w-]+";
const TIME: &str = r"\d{2}:\d{2}:\d{2}";

fn cases() -> Vec<Case> {
    let c = |name, header, patterns, ipv4, similarity, depth, ga| Case {
        name,
        header,
        patterns,
        ipv4,
        similarity,
        depth,
        match_masked: false,
        ga,
    };
    let variant = |c: Case| Case {
        match_masked: true,
        ..c
    };
    vec![
        // The published settings and figures, with the reference rule.
        c("HDFS", HDFS, &[r"blk_-?\d+"], true, 0.5, 4, 0.9975),
        c("BGL", BGL, &[r"core\.\d+"], false, 0.5, 4, 0.9625),
        c("Thunderbird", THUNDERBIRD, &[], true, 0.5, 4, 0.955),
        c("OpenSSH", OPENSSH, &[HOST], true, 0.6, 5, 0.7875),
        c("Apache", APACHE, &[], true, 0.5, 4, 1.0),
        c("Linux", LINUX, &[TIME], true, 0.39, 6, 0.69),
        // The `match_masked` variant with a higher similarity, where it
        // does better on one sample; docs/anomaly.md shows it does worse on
        // others (BGL, Thunderbird at 0.7), so it is not a default.
        variant(c("OpenSSH", OPENSSH, &[HOST], true, 0.7, 5, 0.9945)),
        variant(c("Linux", LINUX, &[TIME], true, 0.5, 6, 0.6925)),
    ]
}

/// The grouping accuracy of `case`, with the masked-match rule on or off.
fn accuracy(case: &Case, match_masked: bool) -> f64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/loghub_2k");
    {
        let log = std::fs::read_to_string(format!("{dir}/{}_2k.log", case.name)).unwrap();
        let csv =
            std::fs::read_to_string(format!("{dir}/{}_2k.log_structured.csv", case.name)).unwrap();
        let truth = csv_column(&csv, "EventId").unwrap();
        let header = regex::Regex::new(case.header).unwrap();
        let patterns: Vec<String> = case.patterns.iter().map(|p| p.to_string()).collect();
        let builtins: &[BuiltinMask] = if case.ipv4 { &[BuiltinMask::Ipv4] } else { &[] };
        let masker = Masker::new(&patterns, builtins).unwrap();
        let mut drain = Drain::new(DrainParams {
            depth: case.depth,
            similarity: case.similarity,
            max_children: 100,
            match_masked,
            ..DrainParams::default()
        });
        let (mut buf, mut ranges, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for line in log.lines() {
            let line = line.trim_end_matches('\r');
            let content = header
                .captures(line)
                .and_then(|c| c.name("content"))
                .map_or(line, |m| m.as_str());
            let masked = masker.apply(content.as_bytes(), &mut buf);
            tokenize(masked, &mut ranges);
            let (ci, _) = drain.add(masked, &ranges).expect("room");
            ids.push(drain.clusters()[ci].id);
        }
        grouping_accuracy(&ids, &truth)
    }
}

#[test]
fn loghub_grouping_accuracy() {
    let mut report = Vec::new();
    for case in cases() {
        let ga = accuracy(&case, case.match_masked);
        report.push(format!(
            "{} similarity {} depth {} match_masked {}: {ga:.4}",
            case.name, case.similarity, case.depth, case.match_masked
        ));
        assert!(
            ga + 1e-9 >= case.ga,
            "{} at similarity {}: {ga} < {}",
            case.name,
            case.similarity,
            case.ga
        );
    }
    println!("{}", report.join("\n"));
}
