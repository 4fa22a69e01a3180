//! Parser tests: the accepted language, the errors, and fuzzing with arbitrary input.

use super::*;
use crate::{Name, Operation, Project};
use proptest::prelude::*;

fn op(state: State, ty: &str, desc: &str, priority: i32) -> Operation {
    let name = Name::new(&Project::parse("p").unwrap(), "x").unwrap();
    let mut op = Operation::new(name, ty.into(), Timestamp(1_000));
    op.description = desc.into();
    op.priority = priority;
    op.state = state;
    op
}

fn cmp(field: Field, op: Op, value: Value) -> Expr {
    Expr::Compare { field, op, value }
}

#[test]
fn empty_filter_matches_everything() {
    assert_eq!(parse("").unwrap(), None);
    assert_eq!(parse("   ").unwrap(), None);
}

#[test]
fn or_binds_tighter_than_and() {
    let e = parse("done = true AND metadata.priority > 5 OR metadata.priority < 2").unwrap();
    assert_eq!(
        e,
        Some(Expr::And(vec![
            cmp(Field::Done, Op::Eq, Value::Bool(true)),
            Expr::Or(vec![
                cmp(Field::Priority, Op::Gt, Value::Int(5)),
                cmp(Field::Priority, Op::Lt, Value::Int(2)),
            ]),
        ]))
    );
}

#[test]
fn negation_parentheses_and_juxtaposition() {
    let e = parse("-(metadata.state = RUNNING) NOT done=false metadata.type:EXPORT_IMAGE")
        .unwrap()
        .unwrap();
    let Expr::And(items) = e else { panic!("{e:?}") };
    assert_eq!(items.len(), 3);
    assert!(matches!(items[0], Expr::Not(_)));
    assert!(matches!(items[1], Expr::Not(_)));
}

#[test]
fn wildcards_and_escapes() {
    let e = parse(r#"metadata.description = "*nightly*""#)
        .unwrap()
        .unwrap();
    assert!(e.matches(&op(State::Pending, "T", "the nightly export", 1)));
    assert!(!e.matches(&op(State::Pending, "T", "daily", 1)));
    let e = parse(r#"metadata.description = "a\*""#).unwrap().unwrap();
    assert!(e.matches(&op(State::Pending, "T", "a*", 1)));
    assert!(!e.matches(&op(State::Pending, "T", "ab", 1)));
    let e = parse("metadata.description != exp*").unwrap().unwrap();
    assert!(!e.matches(&op(State::Pending, "T", "export", 1)));
    assert!(e.matches(&op(State::Pending, "T", "import", 1)));
}

#[test]
fn evaluates_states_times_and_absent_fields() {
    let running = op(State::Running, "EXPORT_IMAGE", "", 7);
    let parsed = |f: &str| parse(f).unwrap().unwrap();
    assert!(parsed("metadata.state = RUNNING AND metadata.priority >= 7").matches(&running));
    assert!(!parsed("done = true").matches(&running));
    assert!(parsed("metadata.createTime < \"1970-01-01T00:00:02Z\"").matches(&running));
    assert!(parsed("metadata.createTime >= 1970-01-01T00:00:01Z").matches(&running));
    // Absent fields compare false, for != as well; NOT negates the whole comparison.
    assert!(!parsed("metadata.startTime != 1970-01-01T00:00:01Z").matches(&running));
    assert!(!parsed("error.code != 1").matches(&running));
    assert!(parsed("NOT error.code = 1").matches(&running));
    assert!(!parsed("error.code:*").matches(&running));
    assert!(!parsed("metadata.description:*").matches(&running));
    assert!(parsed("metadata.type:*").matches(&running));
}

#[test]
fn errors_say_where_and_why() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "metadata.colour = red",
            0,
            "unknown field `metadata.colour`",
        ),
        ("done", 4, "expected a comparison operator"),
        ("done = maybe", 7, "takes true or false"),
        ("done < true", 5, "operator is not supported"),
        ("metadata.state = SLEEPING", 17, "is not a state"),
        ("metadata.priority = high", 20, "takes an integer"),
        ("metadata.createTime > yesterday", 22, "RFC 3339"),
        ("(done = true", 0, "never closed"),
        ("done = true)", 11, "unbalanced"),
        ("done = true AND", 12, "needs a condition after"),
        ("done = true OR", 14, "needs a condition after"),
        ("metadata.description = \"abc", 23, "unterminated"),
        ("()", 1, "empty parentheses"),
        ("metadata.type <", 15, "expected a value"),
        ("metadata.type < ab*", 16, "wildcards"),
        ("= 3", 0, "expected a field name"),
        ("metadata.type = \"a\0b\"", 18, "U+0000"),
    ];
    for (text, position, needle) in cases {
        let err = parse(text).expect_err(text);
        assert_eq!(err.position, *position, "{text}: {err}");
        assert!(err.message.contains(needle), "{text}: {err}");
    }
}

#[test]
fn deep_nesting_and_long_input_are_refused_not_overflowed() {
    let deep = format!("{}done = true{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse(&deep).is_err());
    let negations = format!("{}done = true", "-".repeat(10_000));
    assert!(parse(&negations).is_err());
    assert!(parse(&"a".repeat(MAX_LEN + 1)).is_err());
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn filter_shaped_text_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("done"), Just("metadata.state"), Just("metadata.priority"),
                Just("metadata.description"), Just("metadata.createTime"), Just("error.code"),
                Just("="), Just("!="), Just("<="), Just(":"), Just(">"), Just("AND"), Just("OR"),
                Just("NOT"), Just("-"), Just("("), Just(")"), Just("\""), Just("*"), Just("true"),
                Just("RUNNING"), Just("42"), Just("2026-01-01T00:00:00Z"), Just(" "), Just("\\"),
            ],
            0..30,
        )
    ) {
        let text = parts.join(" ");
        let _ = parse(&text);
        let text = parts.concat();
        let _ = parse(&text);
    }
}

#[test]
fn name_literals_take_the_canonical_form_of_names() {
    let text = |text: &str, any_prefix: bool, any_suffix: bool| {
        Value::Text(Pattern {
            text: text.into(),
            any_prefix,
            any_suffix,
        })
    };
    for (filter, expected) in [
        (
            "name = \"projects/p/operations/café\"",
            cmp(
                Field::Name,
                Op::Eq,
                text("projects/p/operations/caf%C3%A9", false, false),
            ),
        ),
        (
            "name:\"*caf%c3%a9\"",
            cmp(Field::Name, Op::Has, text("caf%C3%A9", true, false)),
        ),
        (
            "name = \"projects/p/operations/été/*\"",
            cmp(
                Field::Name,
                Op::Eq,
                text("projects/p/operations/%C3%A9t%C3%A9/", false, true),
            ),
        ),
        (
            "metadata.retryOf = \"projects/p/operations/café\"",
            cmp(
                Field::RetryOf,
                Op::Eq,
                text("projects/p/operations/caf%C3%A9", false, false),
            ),
        ),
        // Other text fields keep the literal as written.
        (
            "metadata.description = \"café\"",
            cmp(Field::Description, Op::Eq, text("café", false, false)),
        ),
    ] {
        assert_eq!(parse(filter).unwrap(), Some(expected), "{filter}");
    }
    let named = |id: &str| {
        let mut op = op(State::Pending, "T", "", 1);
        op.name = Name::new(&Project::parse("p").unwrap(), id).unwrap();
        op
    };
    let typed = parse("name = \"projects/p/operations/a b/ü\"")
        .unwrap()
        .unwrap();
    assert!(typed.matches(&named("a b/ü")));
    assert!(typed.matches(&named("a%20b/%C3%BC")));
    assert!(!typed.matches(&named("a b")));
    // An operation that retries none has `""` as its retryOf.
    let retries = parse("metadata.retryOf = \"projects/p/operations/a b/ü\"")
        .unwrap()
        .unwrap();
    let mut retry = named("r");
    assert!(!retries.matches(&retry));
    assert!(
        parse("NOT metadata.retryOf:*")
            .unwrap()
            .unwrap()
            .matches(&retry)
    );
    retry.retry_of = Some(named("a b/ü").name);
    assert!(retries.matches(&retry));
}

#[test]
fn schedule_fields_and_waiting_reasons() {
    let parsed = |f: &str| parse(f).unwrap().unwrap();
    let mut scheduled = op(State::Pending, "T", "", 1);
    scheduled.schedule_time = Some(Timestamp(5_000));
    scheduled.start_timeout_ms = Some(30_000);
    let plain = op(State::Pending, "T", "", 1);
    let e = parsed("metadata.scheduleTime > 1970-01-01T00:00:04Z");
    assert!(e.matches(&scheduled) && !e.matches(&plain));
    assert!(parsed("metadata.scheduleTime:*").matches(&scheduled));
    assert!(!parsed("metadata.scheduleTime:*").matches(&plain));
    let e = parsed("metadata.startTimeout = \"30s\"");
    assert!(e.matches(&scheduled) && !e.matches(&plain));
    assert!(parsed("metadata.startTimeout < 31s").matches(&scheduled));
    // Storage sees no reason; the engine passes the one it computed.
    let e = parsed("metadata.waitingReason = KEY_LIMIT");
    assert!(!e.matches(&plain));
    assert!(e.matches_waiting(&plain, "KEY_LIMIT"));
    assert!(!e.matches_waiting(&plain, "QUEUED"));
    assert!(parsed("NOT metadata.waitingReason:*").matches(&plain));
    for (filter, message) in [
        ("metadata.waitingReason = WAITING", "not a waiting reason"),
        (
            "metadata.waitingReason > QUEUED",
            "operator is not supported",
        ),
        ("metadata.startTimeout = 5m", "takes a duration"),
    ] {
        let error = parse(filter).unwrap_err();
        assert!(error.message.contains(message), "{filter}: {error}");
    }
}

#[test]
fn storage_gets_a_superset_of_a_waiting_reason_filter() {
    let parsed = |f: &str| parse(f).unwrap().unwrap();
    assert_eq!(
        parsed("metadata.waitingReason = KEY_LIMIT AND metadata.type = T").without_waiting_reason(),
        Some(parsed("metadata.type = T AND metadata.state = PENDING"))
    );
    assert_eq!(
        parsed("metadata.waitingReason = QUEUED").without_waiting_reason(),
        Some(parsed("metadata.state = PENDING"))
    );
    assert_eq!(
        parsed("metadata.waitingReason != QUEUED").without_waiting_reason(),
        None
    );
    assert_eq!(
        parsed("metadata.waitingReason = QUEUED OR done = true").without_waiting_reason(),
        None
    );
}

#[test]
fn description_has_matches_whole_words_case_insensitively() {
    let e = parse("metadata.description:\"Nightly EXPORT*\"")
        .unwrap()
        .unwrap();
    assert_eq!(
        e,
        cmp(
            Field::Description,
            Op::Has,
            Value::Words(Words {
                words: vec!["nightly".into(), "export".into()],
                prefix: true,
            })
        )
    );
    let matches = |filter: &str, desc: &str| {
        parse(filter)
            .unwrap()
            .unwrap()
            .matches(&op(State::Pending, "T", desc, 0))
    };
    assert!(matches("metadata.description:needle", "a Needle, in hay"));
    assert!(matches(
        "metadata.description:\"hay needle\"",
        "needle in the hay"
    ));
    assert!(matches("metadata.description:\"été\"", "l'été_2026"));
    assert!(matches("metadata.description:\"nee*\"", "needle"));
    assert!(!matches("metadata.description:need", "needle"));
    assert!(!matches(
        "metadata.description:\"hay straw\"",
        "needle in the hay"
    ));
    // `=` keeps comparing the whole text.
    assert!(!matches("metadata.description = needle", "a needle"));
    assert!(matches("metadata.description:*", "a needle"));
    for bad in [
        "metadata.description:\"*dle\"",
        "metadata.description:\"--\"",
    ] {
        let error = parse(bad).unwrap_err();
        assert!(error.message.contains("metadata.description"), "{error}");
    }
}
