//! What the agent tells a user who got something wrong: every problem of a
//! pipeline file at once, without errors that only follow from another, in
//! the user's words; a re-run that has nothing to read; a log level that is
//! not one; `sluice top` without an API; `--help`.

use std::time::Duration;

use crate::util::*;

const T: Duration = Duration::from_secs(60);

/// `sluice validate bad.yaml` with `env` set: stderr lines (exit code 2).
fn problems(yaml: &str, env: &[(&str, &str)]) -> Vec<String> {
    let d = Dir::new();
    d.write("bad.yaml", yaml);
    let mut c = d.sluice(&["validate", "bad.yaml"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run sluice");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    stderr(&o).lines().map(String::from).collect()
}

const GOOD: &str = "sources:\n  gen:\n    type: generator\n    count: 10\n    channels: [main]\nchannels:\n  main:\n    type: memory\nsinks:\n  out:\n    type: console\n    channel: main\n";

#[test]
fn a_misspelt_channel_is_reported_together_with_an_option_error_of_the_same_component() {
    let yaml = GOOD
        .replace("    count: 10\n", "    count: 10\n    rate: fast\n")
        .replace("channels: [main]", "channels: [mian]");
    let lines = problems(&yaml, &[]);
    assert_eq!(
        lines,
        [
            "bad.yaml:5:11: source `gen`: `rate` must be a whole number above 0, found the text `fast`",
            "bad.yaml:6:16: source `gen` refers to channel `mian`, which is not declared: did you mean `main`?",
            "bad.yaml: 2 problems",
        ]
    );
}

#[test]
fn a_bad_channel_option_does_not_make_its_channel_undeclared() {
    let yaml = GOOD.replace("    type: memory\n", "    type: memory\n    capacity: 0\n");
    let lines = problems(&yaml, &[]);
    assert_eq!(
        lines,
        [
            "bad.yaml:9:15: channel `main`: `capacity` must be a whole number above 0, found `0`",
            "bad.yaml: 1 problem",
        ]
    );
    let yaml = GOOD.replace("    type: memory\n", "    type: memory\n    capacity: -3\n");
    let lines = problems(&yaml, &[]);
    assert_eq!(
        lines[0],
        "bad.yaml:9:15: channel `main`: `capacity` must be a whole number above 0, found `-3`"
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
}

#[test]
fn a_misspelt_channels_key_does_not_also_report_the_channel_as_unwritten() {
    let yaml = GOOD.replace("    channels: [main]\n", "    chanels: [main]\n");
    let lines = problems(&yaml, &[]);
    assert_eq!(
        lines,
        [
            "bad.yaml:5:5: source `gen`: unknown option `chanels`: did you mean `channels`?",
            "bad.yaml: 1 problem",
        ]
    );
}

#[test]
fn an_unset_variable_is_named_and_what_follows_from_it_is_not_reported() {
    let yaml = GOOD
        .replace("count: 10", "count: ${SLUICE_TEST_UNSET_COUNT}")
        .replace(
            "    type: memory\n",
            "    type: memory\n    capacity: \"${SLUICE_TEST_UNSET_CAP}\"\n",
        );
    let lines = problems(&yaml, &[]);
    assert_eq!(
        lines,
        [
            "bad.yaml:4:12: environment variable `SLUICE_TEST_UNSET_COUNT` is not set and has no default (write `${SLUICE_TEST_UNSET_COUNT:-default}` to give one)",
            "bad.yaml:9:15: environment variable `SLUICE_TEST_UNSET_CAP` is not set and has no default (write `${SLUICE_TEST_UNSET_CAP:-default}` to give one)",
            "bad.yaml: 2 problems",
        ]
    );
}

#[test]
fn an_unquoted_variable_in_a_flow_collection_gets_a_hint_to_quote_it() {
    let yaml = GOOD.replace("channels: [main]", "channels: [${CHANNEL}]");
    let lines = problems(&yaml, &[("CHANNEL", "main")]);
    assert!(
        lines[0].starts_with("bad.yaml:5:")
            && lines[0].contains("YAML syntax error")
            && lines[0].contains("hint: inside `[...]` or `{...}`, quote a variable: `\"${VAR}\"`"),
        "{lines:?}"
    );
    // Quoted, it is fine.
    let d = Dir::new();
    d.write(
        "ok.yaml",
        &GOOD.replace("channels: [main]", "channels: [\"${CHANNEL}\"]"),
    );
    let o = d
        .sluice(&["validate", "ok.yaml"])
        .env("CHANNEL", "main")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_log_level_that_is_not_a_level_is_refused() {
    let d = Dir::new();
    d.write("p.yaml", GOOD);
    for (how, level) in [("env", "verbose"), ("flag", "sluice_core=loud")] {
        let mut c = d.sluice(&["validate", "p.yaml"]);
        match how {
            "env" => c.env("SLUICE_LOG_LEVEL", level),
            _ => c.args(["--log-level", level]),
        };
        let o = c.output().expect("run");
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("log level `{level}`"))
                && err.contains("use one of off, error, warn, info, debug, trace"),
            "{err}"
        );
    }
    for level in ["debug", "sluice_core=debug,warn", "INFO"] {
        let o = d
            .sluice(&["validate", "p.yaml"])
            .env("SLUICE_LOG_LEVEL", level)
            .output()
            .expect("run");
        assert!(o.status.success(), "{level}: {}", stderr(&o));
    }
}

#[test]
fn help_lists_global_options_apart_from_the_subcommands_own() {
    let d = Dir::new();
    let o = d.run(&["run", "--help"], T);
    assert!(o.status.success());
    let help = stdout(&o);
    let (own, global) = help
        .split_once("Global options:")
        .unwrap_or_else(|| panic!("no `Global options:` section in\n{help}"));
    assert!(
        own.contains("--drain-timeout") && own.contains("--from-start"),
        "{help}"
    );
    for flag in ["--settings", "--log-level", "--log-format"] {
        assert!(
            global.contains(flag),
            "{flag} under global options:\n{help}"
        );
        assert!(!own.contains(flag), "{flag} not among run's own:\n{help}");
    }
}

#[test]
fn top_without_an_api_says_how_to_add_one_and_does_not_use_8686() {
    let d = Dir::new();
    let o = d.run(&["top", "--help"], T);
    let help = stdout(&o);
    assert!(
        help.contains("http://127.0.0.1:7583") && !help.contains("8686"),
        "{help}"
    );
    // Nothing listens on a port that was free a moment ago.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let o = d.run(&["top", "--once", "--api", &url], T);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let hint = err
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or_else(|| panic!("no hint in\n{err}"));
    assert!(
        hint.contains(&format!("`api: {{address: 127.0.0.1:{port}}}`")),
        "{hint}"
    );
    let o = d.run(&["tap", "src", "--api", &url], T);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("hint: add `api:"), "{}", stderr(&o));
}

#[test]
fn a_bounded_rerun_over_read_files_says_why_it_reads_nothing_and_from_start_reads_again() {
    let d = Dir::new();
    d.write("in/a.log", "one\ntwo\nthree\n");
    d.write(
        "p.yaml",
        "sources:\n  app:\n    type: file\n    include: [./in/*.log]\n    read_from: beginning\n    follow: false\n    channels: [main]\nchannels:\n  main: {type: memory}\nsinks:\n  out: {type: file, channel: main, path: ./out/a.log}\n",
    );
    let o = d.run(&["run", "--quiet", "p.yaml"], T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.lines("out/a.log").len(), 3);
    assert!(!stderr(&o).contains("nothing to read"), "{}", stderr(&o));

    let o = d.run(&["run", "--quiet", "p.yaml"], T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.lines("out/a.log").len(), 3, "nothing read again");
    let err = stderr(&o);
    assert!(
        err.contains("nothing to read: every matched file was read to its end by an earlier run")
            && err.contains("--from-start"),
        "{err}"
    );

    let o = d.run(&["run", "--quiet", "--from-start", "p.yaml"], T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.lines("out/a.log").len(), 6, "read again from the start");
    assert!(!stderr(&o).contains("nothing to read"), "{}", stderr(&o));
}
