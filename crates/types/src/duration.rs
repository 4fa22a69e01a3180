//! The proto3 JSON form of `google.protobuf.Duration`: seconds with up to nine fractional
//! digits and a mandatory `s` suffix (`"3.5s"`, `"-1.000000001s"`). No crate parses exactly
//! this form, so it is written here.

use std::time::Duration;

/// Largest magnitude the protobuf Duration allows (about 10,000 years).
const MAX_SECONDS: u64 = 315_576_000_000;

/// Parses a non-negative proto3 JSON duration.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration like \"3.5s\"");
    let number = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if number.ends_with('.') {
        return Err(bad());
    }
    let seconds: u64 = whole.parse().map_err(|_| bad())?;
    if seconds > MAX_SECONDS {
        return Err(format!("`{text}` is out of range"));
    }
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Duration::new(seconds, nanos))
}

/// Formats a duration with 0, 3, 6 or 9 fractional digits, as proto3 JSON does.
pub fn format(duration: Duration) -> String {
    let nanos = duration.subsec_nanos();
    let secs = duration.as_secs();
    if nanos == 0 {
        format!("{secs}s")
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{secs}.{:03}s", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{secs}.{:06}s", nanos / 1_000)
    } else {
        format!("{secs}.{nanos:09}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proto3_forms() {
        assert_eq!(parse("3.5s").unwrap(), Duration::from_millis(3500));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("1.000000001s").unwrap(), Duration::new(1, 1));
        assert_eq!(parse("60s").unwrap(), Duration::from_secs(60));
        for bad in [
            "",
            "s",
            "3",
            "3.5",
            "-1s",
            "1.s",
            ".5s",
            "1.0000000001s",
            "5m",
            "1e3s",
            " 1s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn formats_and_round_trips() {
        for (d, s) in [
            (Duration::from_millis(3500), "3.500s"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_micros(1), "0.000001s"),
            (Duration::new(0, 7), "0.000000007s"),
        ] {
            assert_eq!(format(d), s);
            assert_eq!(parse(s).unwrap(), d);
        }
    }
}
