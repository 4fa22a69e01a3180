//! Page tokens: the list cursor, bound to the parent and filter by an HMAC so that a token
//! that was altered, or used with another parent or filter, is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use longrun_store::Cursor;
use longrun_types::{Name, Timestamp};
use sha2::Sha256;

const MAC_LEN: usize = 16;
const VERSION: u8 = 1;

#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl PageTokens {
    pub fn new(key: &[u8]) -> PageTokens {
        PageTokens { key: key.to_vec() }
    }

    fn mac(&self, parent: &str, filter: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        for part in [parent.as_bytes(), filter.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(payload);
        mac
    }

    pub fn encode(&self, parent: &str, filter: &str, cursor: &Cursor) -> String {
        let mut payload = vec![VERSION];
        payload.extend_from_slice(&cursor.create_time.millis().to_be_bytes());
        payload.extend_from_slice(cursor.name.as_str().as_bytes());
        let tag = self.mac(parent, filter, &payload).finalize().into_bytes();
        payload.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(payload)
    }

    /// The cursor in `token`, if the token is intact and was made for this parent and filter.
    pub fn decode(&self, parent: &str, filter: &str, token: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() < 1 + 8 + MAC_LEN || bytes[0] != VERSION {
            return None;
        }
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        self.mac(parent, filter, payload)
            .verify_truncated_left(tag)
            .ok()?;
        let create_time = i64::from_be_bytes(payload[1..9].try_into().ok()?);
        let name = Name::parse(std::str::from_utf8(&payload[9..]).ok()?).ok()?;
        Some(Cursor {
            create_time: Timestamp(create_time),
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn garbage_is_refused_never_a_panic(text in "\\PC{0,120}", bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let tokens = PageTokens::new(b"secret");
            prop_assert_eq!(tokens.decode("projects/p", "", &text), None);
            prop_assert_eq!(tokens.decode("projects/p", "", &URL_SAFE_NO_PAD.encode(&bytes)), None);
        }
    }

    fn cursor() -> Cursor {
        Cursor {
            create_time: Timestamp(1_795_868_141_123),
            name: Name::parse("projects/p/operations/a/b%2Fc").unwrap(),
        }
    }

    #[test]
    fn round_trips_and_is_url_safe() {
        let tokens = PageTokens::new(b"secret");
        let token = tokens.encode("projects/p", "done = true", &cursor());
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(
            tokens.decode("projects/p", "done = true", &token),
            Some(cursor())
        );
    }

    #[test]
    fn refuses_other_parents_filters_keys_and_any_altered_byte() {
        let tokens = PageTokens::new(b"secret");
        let token = tokens.encode("projects/p", "", &cursor());
        assert_eq!(tokens.decode("projects/q", "", &token), None);
        assert_eq!(tokens.decode("projects/p", "done = true", &token), None);
        assert_eq!(
            PageTokens::new(b"other").decode("projects/p", "", &token),
            None
        );
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            let mut altered = raw.clone();
            altered[i] ^= 0x01;
            let altered = URL_SAFE_NO_PAD.encode(altered);
            assert_eq!(tokens.decode("projects/p", "", &altered), None, "byte {i}");
        }
        for junk in ["", "x", "!!!!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            assert_eq!(tokens.decode("projects/p", "", junk), None);
        }
    }
}
