//! The list filter (AIP-160 subset): parsing never panics or overflows the stack; what
//! parses can be evaluated (the reference semantics) and translated to SQL.

#![no_main]

use libfuzzer_sys::fuzz_target;
use longrun_types::{Name, Operation, Project, Timestamp, filter};

fuzz_target!(|text: &str| {
    let Ok(Some(expr)) = filter::parse(text) else {
        return;
    };
    let name = Name::new(&Project::parse("p").unwrap(), "a/b").unwrap();
    let mut op = Operation::new(name, "EXPORT_IMAGE".into(), Timestamp(1_000));
    op.description = "nightly export".into();
    let _ = expr.matches(&op);
    let (mut sql, mut params) = (String::new(), Vec::new());
    longrun_store::sql::condition(&expr, &mut sql, &mut params);
    assert!(!sql.is_empty());
});
