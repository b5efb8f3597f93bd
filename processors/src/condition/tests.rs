use super::*;

fn event() -> Event {
    let mut e = Event::new(
        "GET /index.html took 1.5s: timeout",
        Timestamp(1_000_000_000),
    );
    e.insert("level", "error");
    e.insert("status", 504i64);
    e.insert("ratio", 0.25f64);
    e.insert("ok", false);
    e.insert("flag", true);
    e.insert("http.method", "GET");
    e.insert("http.path", "/index.html");
    e.insert("odd key", "x");
    e.insert("message", "field called message");
    e.fields.insert(
        "tags",
        Value::Array(vec![Value::from("a"), Value::from("b")]),
    );
    e
}

fn t(src: &str) -> bool {
    match Condition::parse(src) {
        Ok(c) => c.matches(&event()),
        Err(e) => panic!("{src}: {e}"),
    }
}

fn err(src: &str) -> ConditionError {
    match Condition::parse(src) {
        Ok(c) => panic!("{src} parsed as {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn equality_and_types() {
    assert!(t(r#".level == "error""#));
    assert!(!t(r#".level == "warn""#));
    assert!(t(r#".level != "warn""#));
    assert!(t(".status == 504"));
    assert!(t(".status == 504.0"), "int and float compare numerically");
    assert!(t(".ratio == 0.25"));
    assert!(!t(r#".status == "504""#), "a string is not a number");
    assert!(t(r#".status != "504""#));
    assert!(t(".ok == false && .flag == true"));
    assert!(t(r#".http.method == "GET""#));
    assert!(t(r#"."odd key" == "x""#));
    assert!(t(r#".http."path" == "/index.html""#));
}

#[test]
fn message_timestamp_and_quoted_message_field() {
    assert!(t(r#".message == "GET /index.html took 1.5s: timeout""#));
    assert!(t(r#"."message" == "field called message""#));
    assert!(t(".timestamp == 1000000000"));
    assert!(t(r#".timestamp == "1970-01-01T00:00:01Z""#));
    assert!(t(r#".timestamp < "1970-01-01T00:00:02Z""#));
    assert!(t(".timestamp > 0"));
}

#[test]
fn ordering() {
    assert!(t(
        ".status > 500 && .status >= 504 && .status <= 504 && .status < 505"
    ));
    assert!(t(".status > 503.5"));
    assert!(t(".ratio < 1"));
    assert!(t(r#".level > "debug" && .level < "info""#));
    assert!(!t(r#".status > "a""#), "mixed types never order");
    assert!(!t(".missing < 1") && !t(".missing > 1"));
    assert!(t("-1 < 0 && 1e3 == 1000"));
}

#[test]
fn missing_fields_are_null() {
    assert!(t(".missing == null"));
    assert!(t(".a.b.c == null"));
    assert!(t(".status != null"));
    assert!(!t(r#".missing == """#));
    assert!(t(r#".missing != "x""#));
    assert!(
        !t(".level.sub == \"x\""),
        "a path through a string is missing"
    );
}

#[test]
fn regex() {
    assert!(t(r#".message =~ "time(out|d)""#));
    assert!(t(r#".message =~ "^GET \\S+""#));
    assert!(!t(r#".message =~ "^POST""#));
    assert!(t(r#".message !~ "^POST""#));
    assert!(!t(r#".missing =~ ".*""#), "non-strings never match");
    assert!(t(r#".missing !~ "x""#));
    assert!(!t(r#".status =~ "5""#));
}

#[test]
fn in_lists() {
    assert!(t(r#".level in ["warn", "error"]"#));
    assert!(!t(r#".level in ["warn", "info",]"#));
    assert!(t(".status in [500, 504]"));
    assert!(t(".status in [504.0]"));
    assert!(t(".missing in [null]"));
    assert!(!t(".status in []"));
}

#[test]
fn boolean_logic_and_precedence() {
    assert!(t(r#".level == "x" || .status == 504 && .ok == false"#));
    assert!(!t(r#"(.level == "x" || .status == 504) && .ok == true"#));
    assert!(
        t(r#"!.level == "warn""#),
        "! applies to the whole comparison"
    );
    assert!(!t(r#"!(.level == "error")"#));
    assert!(t("!!.flag"));
    assert!(t(".flag") && !t(".ok") && !t(".missing") && !t(".level"));
    assert!(t("!.ok && !.missing"));
    assert!(t("true || .x.y == 1") && !t("false && true"));
}

#[test]
fn functions() {
    assert!(t(
        "exists(.level) && exists(.http.method) && !exists(.nope)"
    ));
    assert!(t("exists(.message) && exists(.timestamp)"));
    assert!(t(
        r#"contains(.message, "index") && !contains(.message, "nope")"#
    ));
    assert!(t(r#"contains(.tags, "b") && !contains(.tags, "c")"#));
    assert!(t(
        r#"starts_with(.http.path, "/") && ends_with(.message, "timeout")"#
    ));
    assert!(!t(r#"starts_with(.status, "5")"#));
    assert!(t("len(.level) == 5 && len(.tags) == 2 && len(.http) == 2"));
    assert!(t("len(.missing) == null"));
    assert!(t("len(.message) > 10"));
}

#[test]
fn string_escapes() {
    let mut e = Event::new("say \"hi\"\n\\", Timestamp(0));
    e.insert("a", "b");
    let c = Condition::parse(r#".message == "say \"hi\"\n\\""#).unwrap();
    assert!(c.matches(&e));
}

#[test]
fn errors_name_the_column() {
    let e = err(".status == ");
    assert_eq!(e.offset, 11);
    assert_eq!(
        e.to_string(),
        "expected a value after '==', found end of condition at column 12"
    );
    let e = err(".a == 1 &&");
    assert!(e.message.contains("expected a value"), "{e}");
    assert_eq!(err(r#".a =~ "(""#).offset, 6);
    assert!(err(r#".a =~ "(""#).message.starts_with("invalid regex"));
    assert!(err(".a =~ 3").message.contains("regex string"));
    assert!(err(".a == 1 == 2").message.contains("unexpected '=='"));
    assert!(err("(.a == 1").message.contains("expected ')'"));
    assert!(err(r#".a == "open"#).message.contains("unterminated"));
    assert!(err("level == 1").message.contains("unknown word 'level'"));
    assert!(err(". == 1").message.contains("field name"));
    assert!(err(".a in [.b]").message.contains("literals only"));
    assert!(err("exists(\"x\")").message.contains("takes a path"));
    assert!(err(".message.x == 1").message.contains("no sub-fields"));
    assert!(
        t(r#".message =~ "\d\.\ds""#),
        "unknown escapes are kept for regexes"
    );
    assert!(err(".a == 12x").message.contains("invalid number"));
    assert!(err("").message.contains("expected a value"));
    assert!(err(&"(".repeat(10_000))
        .message
        .contains("nested more than"));
    assert!(err(&"!".repeat(10_000))
        .message
        .contains("nested more than"));
    assert!(err(&"len(".repeat(10_000))
        .message
        .contains("nested more than"));
    assert!(t(&format!("{}.flag{}", "(".repeat(60), ")".repeat(60))));
    // Offsets count characters, not bytes.
    assert_eq!(err(r#".é == "é" &&"#).offset, 12);
}

#[test]
fn deserializes_from_a_string() {
    #[derive(serde::Deserialize)]
    struct C {
        condition: Condition,
    }
    let c: C = sluice_core::config::from_yaml_str("condition: '.status >= 500'").unwrap();
    assert!(c.condition.matches(&event()));
    assert_eq!(c.condition.to_string(), ".status >= 500");
    let e = sluice_core::config::from_yaml_str::<C>("condition: '.status >='")
        .err()
        .unwrap();
    assert!(e.message.contains("at column 11"), "{e}");
    assert!(e.pos.is_some());
}
