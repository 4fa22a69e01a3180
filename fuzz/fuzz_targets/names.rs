//! Operation and project names: parsing never panics; what parses is canonical (parsing
//! its own form gives it back), never holds an empty or dot segment, and keeps its project.

#![no_main]

use libfuzzer_sys::fuzz_target;
use longrun_types::{Name, Project};

fuzz_target!(|text: &str| {
    if let Ok(name) = Name::parse(text) {
        assert_eq!(Name::parse(name.as_str()).as_ref(), Ok(&name), "{text}");
        assert!(
            name.id()
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."),
            "{text} -> {name}"
        );
        let again = Name::new(&name.project(), name.id()).expect("a canonical id is valid");
        assert_eq!(again, name);
    }
    if let Ok(project) = Project::parse(text) {
        assert_eq!(Project::parse(project.as_str()).as_ref(), Ok(&project));
        assert!(project.as_str() != "." && project.as_str() != "..");
    }
});
