//! Millisecond-precision UTC timestamps, written the way the Earth Engine clients parse them:
//! RFC 3339 with exactly three fractional digits and a `Z` suffix.

use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// Largest value that still formats as a four-digit year (9999-12-31T23:59:59.999Z).
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub fn now() -> Timestamp {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp((nanos / 1_000_000) as i64)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, millis: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(millis))
    }

    /// Parses any RFC 3339 timestamp (offsets allowed); sub-millisecond digits are truncated.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))?;
        let millis = parsed.unix_timestamp_nanos().div_euclid(1_000_000) as i64;
        if !(0..=MAX_MILLIS).contains(&millis) {
            return Err(format!("`{text}` is out of range"));
        }
        Ok(Timestamp(millis))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.clamp(0, MAX_MILLIS);
        let t = OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
            .expect("clamped into the representable range");
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_exactly_three_digits_and_z() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_795_868_141_123).to_string(),
            "2026-11-28T12:15:41.123Z"
        );
        assert_eq!(Timestamp(5).to_string(), "1970-01-01T00:00:00.005Z");
    }

    #[test]
    fn parses_offsets_and_round_trips() {
        let t = Timestamp::parse("2026-11-28T12:15:41.123Z").unwrap();
        assert_eq!(t, Timestamp(1_795_868_141_123));
        assert_eq!(
            Timestamp::parse("2026-11-28T13:15:41.123456+01:00").unwrap(),
            t
        );
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        assert!(Timestamp::parse("2026-11-28").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
