//! The toolkit at the bottom of the server, which every feature and both adapters may use
//! and which uses nothing of theirs: the error envelope (`error`), JSON answers (`json`),
//! request bodies and query strings (`body`), the wire form of an operation (`render`),
//! names as they arrive (`names`), the method table's types (`method`) and the config's
//! durations (`config_duration`).

pub mod body;
pub mod config_duration;
pub mod error;
pub mod json;
pub mod method;
pub mod names;
pub mod render;
