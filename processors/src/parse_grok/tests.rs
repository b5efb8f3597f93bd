use super::*;
use crate::test_util::*;

fn s(e: &Event, k: &str) -> Option<String> {
    e.get(k).map(|v| v.to_text().into_owned())
}

/// Every pattern of the library expands into a regex the `regex` crate
/// accepts (checked by its parser: building all 320 is slow in a debug
/// build; the patterns used below are built for real).
#[test]
fn every_library_pattern_expands_to_a_valid_regex() {
    let none = BTreeMap::new();
    let mut failing = Vec::new();
    for (name, _) in grok::patterns() {
        let result = expand(&format!("%{{{name}:x}}"), &none).and_then(|(text, _)| {
            regex_syntax::ParserBuilder::new()
                .build()
                .parse(&text)
                .map_err(|e| e.to_string())
        });
        if let Err(m) = result {
            failing.push(format!("{name}: {m}"));
        }
    }
    assert!(grok::patterns().len() > 300);
    assert!(failing.is_empty(), "{}", failing.join("\n"));
}

#[test]
fn config_parses_and_rejects_unknown_keys() {
    let c: Config = config("pattern: '%{IP:client} %{NUMBER:took:float}'\ntypes: {client: bool}");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    assert!(!examples::<Config>("parse_grok").is_empty());
    let e = unknown_key::<Config>("pattern: '%{IP:a}'\nmatch: x");
    assert!(e.contains("unknown option `match`"), "{e}");
}

#[test]
fn validate_finds_every_problem() {
    let c: Config = config("{}");
    assert_eq!(c.validate().len(), 1);
    let c: Config = config("pattern: '%{IP:a}'\npatterns: ['%{IP:b}']");
    assert_eq!(c.validate().len(), 1);
    let cases = [
        ("pattern: '%{NOPE:a}'", "unknown grok pattern `NOPE`"),
        ("pattern: '%{IP} %{WORD}'", "names no part"),
        ("pattern: '%{IP:a:number}'", "unknown conversion `number`"),
        (
            "pattern: '%{LOOP:a}'\ndefinitions: {LOOP: '%{LOOP}'}",
            "cycle",
        ),
        ("pattern: '%{IP:a} (x'", "does not compile"),
        (
            "pattern: '%{IP:a}'\ntypes: {b: integer}",
            "`b` is not a named part",
        ),
    ];
    for (yaml, want) in cases {
        let c: Config = config(yaml);
        let p = c.validate();
        assert!(p.iter().any(|p| p.message.contains(want)), "{yaml}: {p:?}");
    }
}

#[test]
fn combined_apache_log() {
    let mut p = build::<Config>("pattern: '%{COMBINEDAPACHELOG}'\ntypes: {response: integer}");
    let line = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;
    let mut b = batch(&[line, "not an access line"]);
    let f = run(p.as_mut(), &mut b);
    assert_eq!(f, [(1, "the pattern did not match".to_string())]);
    let e = &b.events[0];
    for (k, v) in [
        ("clientip", "127.0.0.1"),
        ("ident", "-"),
        ("auth", "frank"),
        ("timestamp", "10/Oct/2000:13:55:36 -0700"),
        ("verb", "GET"),
        ("request", "/apache_pb.gif"),
        ("httpversion", "1.0"),
        ("bytes", "2326"),
        ("referrer", "\"http://www.example.com/start.html\""),
        ("agent", "\"Mozilla/4.08 [en] (Win98; I ;Nav)\""),
    ] {
        assert_eq!(s(e, k).as_deref(), Some(v), "{k}");
    }
    assert_eq!(e.get("response"), Some(&Value::Integer(200)));
    assert!(
        e.get("rawrequest").is_none(),
        "a part that did not match adds nothing"
    );
    let body = e.body.as_ptr_range();
    let verb = e.get("verb").and_then(Value::as_bytes).map(<[u8]>::as_ptr);
    assert!(verb.is_some_and(|p| body.contains(&p)), "zero-copy");
    assert!(b.events[1].fields.is_empty());
}

#[test]
fn syslog_line_with_nested_names_and_conversions() {
    let mut p = build::<Config>("patterns:\n  - '%{SYSLOGLINE}'\nfield: line\ntarget: sys");
    let mut b = batch(&["x"]);
    b.events[0].insert(
        "line",
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
    );
    assert!(run(p.as_mut(), &mut b).is_empty());
    let e = &b.events[0];
    assert_eq!(s(e, "sys.timestamp").as_deref(), Some("Dec 10 06:55:46"));
    assert_eq!(s(e, "sys.logsource").as_deref(), Some("LabSZ"));
    assert_eq!(s(e, "sys.program").as_deref(), Some("sshd"));
    assert_eq!(s(e, "sys.pid").as_deref(), Some("24200"));
    assert_eq!(
        s(e, "sys.message").as_deref(),
        Some("Invalid user webmaster from 173.234.31.186")
    );
    let mut p = build::<Config>(
        "patterns:\n  - 'took=%{NUMBER:[http][took]:float} status=%{INT:http.status:int}'\n  - '%{USER:[user][name]} %{ANSWER:answer}'\ndefinitions: {ANSWER: 'yes|no'}",
    );
    let mut b = batch(&[
        "took=0.5 status=201",
        "alice yes",
        "took=x",
        "took=1 status=99999999999999999999",
    ]);
    let f = run(p.as_mut(), &mut b);
    assert_eq!(f.iter().map(|f| f.0).collect::<Vec<_>>(), [2, 3], "{f:?}");
    assert!(f[0].1.contains("none of the 2 patterns"), "{f:?}");
    assert!(f[1].1.contains("not an integer"), "{f:?}");
    assert!(
        b.events[3].fields.is_empty(),
        "a failed conversion adds nothing"
    );
    assert_eq!(b.events[0].get("http.took"), Some(&Value::Float(0.5)));
    assert_eq!(b.events[0].get("http.status"), Some(&Value::Integer(201)));
    assert_eq!(s(&b.events[1], "user.name").as_deref(), Some("alice"));
    assert_eq!(s(&b.events[1], "answer").as_deref(), Some("yes"));
}
