//! Page tokens: decoding arbitrary text never panics and yields nothing unless it is a
//! token this key made for this parent and filter; a token made here decodes to its cursor,
//! and altering any of its characters refuses it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use longrun_engine::PageTokens;
use longrun_store::Cursor;
use longrun_types::{Name, Timestamp};

fuzz_target!(|data: &[u8]| {
    let tokens = PageTokens::new(b"fuzzing key of at least 32 bytes!");
    let text = String::from_utf8_lossy(data);
    assert_eq!(tokens.decode("projects/p", "", &text), None, "{text}");
    let (Some(time), Some(rest)) = (data.get(..8), data.get(8..)) else {
        return;
    };
    let Ok(name) = Name::parse(&String::from_utf8_lossy(rest)) else {
        return;
    };
    let cursor = Cursor {
        create_time: Timestamp(i64::from_be_bytes(time.try_into().unwrap())),
        name,
    };
    let parent = cursor.name.project().resource_name();
    let token = tokens.encode(&parent, "done = false", &cursor);
    assert_eq!(tokens.decode(&parent, "done = false", &token), Some(cursor));
    assert_eq!(tokens.decode(&parent, "done = true", &token), None);
    let mut altered = token.into_bytes();
    let at = usize::from(data[0]) % altered.len();
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert_eq!(tokens.decode(&parent, "done = false", &altered), None);
});
