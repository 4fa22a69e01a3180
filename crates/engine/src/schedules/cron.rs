//! Fire times: a cron pattern (5 fields, or 6 with a leading seconds field) read on the
//! wall clock of an IANA time zone, as pure functions of a given instant (docs/schedules.md).
//!
//! The pattern is matched on civil (wall-clock) times by `croner`, and each matching civil
//! time is placed in the zone by `jiff`: a wall time that does not exist that day (in the gap
//! of a spring-forward change) is skipped; one that happens twice (in the fold of a fall-back
//! change) fires once, at its first occurrence.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use longrun_types::Timestamp;

/// A parsed pattern in its time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    pattern: croner::Cron,
    zone: TimeZone,
}

/// How many civil candidates are looked at before giving up (a pattern whose every match
/// falls in gaps, which no real zone has).
const MAX_CANDIDATES: usize = 1000;

/// Why a pattern or a zone was refused: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Cron {
    /// Parses `pattern` (5 or 6 fields) and the time zone `zone` (an IANA name).
    pub fn parse(pattern: &str, zone: &str) -> Result<Cron, Invalid> {
        let fields = pattern.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(Invalid {
                field: "cron",
                message: format!(
                    "cron `{pattern}` has {fields} fields; it takes 5 (minute hour day month \
                     weekday) or 6 (seconds first)"
                ),
            });
        }
        let parsed = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|e| Invalid {
                field: "cron",
                message: format!("cron `{pattern}` does not parse: {e}"),
            })?;
        let zone = TimeZone::get(zone).map_err(|_| Invalid {
            field: "timeZone",
            message: format!("timeZone `{zone}` is not an IANA time zone"),
        })?;
        Ok(Cron {
            pattern: parsed,
            zone,
        })
    }

    /// The instant of a matching wall time, if it fires: `None` in a gap; the first
    /// occurrence in a fold.
    fn place(&self, civil: DateTime) -> Option<Timestamp> {
        let ambiguous = self.zone.to_ambiguous_timestamp(civil);
        let offset = match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { offset } => offset,
            AmbiguousOffset::Gap { .. } => return None,
            // The earlier offset is the one before the change: the first occurrence.
            AmbiguousOffset::Fold { before, .. } => before,
        };
        let instant = offset.to_timestamp(civil).ok()?;
        Some(Timestamp(instant.as_millisecond()))
    }

    fn civil(&self, at: Timestamp) -> Option<DateTime> {
        let instant = jiff::Timestamp::from_millisecond(at.millis()).ok()?;
        Some(self.zone.to_datetime(instant))
    }

    /// The first fire time strictly after `after`; `None` when there is none (a pattern
    /// that never matches again, like February 30th).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let mut civil = self.civil(after)?;
        for _ in 0..MAX_CANDIDATES {
            civil = self.pattern.find_next_occurrence(&civil, false).ok()?;
            match self.place(civil) {
                Some(instant) if instant > after => return Some(instant),
                // In a gap, or the second pass of a fold whose first pass came before.
                _ => continue,
            }
        }
        None
    }

    /// The latest fire time at or before `at`, if any.
    pub fn latest_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let mut civil = self.civil(at)?;
        let mut inclusive = true;
        for _ in 0..MAX_CANDIDATES {
            civil = self
                .pattern
                .find_previous_occurrence(&civil, inclusive)
                .ok()?;
            inclusive = false;
            match self.place(civil) {
                Some(instant) if instant <= at => return Some(instant),
                _ => continue,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp(text.parse::<jiff::Timestamp>().unwrap().as_millisecond())
    }

    fn show(t: Timestamp) -> String {
        jiff::Timestamp::from_millisecond(t.millis())
            .unwrap()
            .to_string()
    }

    /// The next `n` fire times after `from`.
    fn fires(cron: &Cron, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        (0..n)
            .map(|_| {
                t = cron.next_after(t).unwrap();
                show(t)
            })
            .collect()
    }

    #[test]
    fn five_and_six_fields_in_utc() {
        let daily = Cron::parse("0 3 * * *", "UTC").unwrap();
        assert_eq!(
            fires(&daily, "2026-01-01T03:00:00Z", 2),
            ["2026-01-02T03:00:00Z", "2026-01-03T03:00:00Z"]
        );
        let every_second = Cron::parse("* * * * * *", "UTC").unwrap();
        assert_eq!(
            fires(&every_second, "2026-01-01T00:00:00.500Z", 2),
            ["2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]
        );
        let every_ten = Cron::parse("*/10 * * * * *", "UTC").unwrap();
        assert_eq!(
            fires(&every_ten, "2026-01-01T00:00:10Z", 1),
            ["2026-01-01T00:00:20Z"]
        );
    }

    #[test]
    fn a_zone_puts_the_wall_time_in_place() {
        let paris = Cron::parse("0 3 * * *", "Europe/Paris").unwrap();
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(
            fires(&paris, "2026-01-10T00:00:00Z", 1),
            ["2026-01-10T02:00:00Z"]
        );
        assert_eq!(
            fires(&paris, "2026-07-10T00:00:00Z", 1),
            ["2026-07-10T01:00:00Z"]
        );
    }

    #[test]
    fn a_wall_time_that_does_not_exist_that_day_is_skipped() {
        // Paris springs forward on 2026-03-29 at 02:00 (to 03:00): 02:30 does not exist.
        let cron = Cron::parse("30 2 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            fires(&cron, "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-30T00:30:00Z", // 02:30 CEST; the 29th has none
                "2026-03-31T00:30:00Z",
            ]
        );
        // Every minute through the change: 01:59 CET then 03:00 CEST, one minute apart.
        let minutely = Cron::parse("* * * * *", "Europe/Paris").unwrap();
        assert_eq!(
            fires(&minutely, "2026-03-29T00:58:30Z", 2),
            ["2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z"]
        );
    }

    #[test]
    fn a_wall_time_that_happens_twice_fires_once() {
        // Paris falls back on 2026-10-25 at 03:00 CEST (to 02:00 CET): 02:30 happens twice.
        let cron = Cron::parse("30 2 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            fires(&cron, "2026-10-24T12:00:00Z", 2),
            [
                "2026-10-25T00:30:00Z", // the first 02:30 (CEST)
                "2026-10-26T01:30:00Z", // the next day's, not the second 02:30 (01:30Z)
            ]
        );
        // Asked from between the two 02:30s: the next is the next day's.
        assert_eq!(
            fires(&cron, "2026-10-25T01:00:00Z", 1),
            ["2026-10-26T01:30:00Z"]
        );
        // Hourly: the repeated hour fires once.
        let hourly = Cron::parse("0 * * * *", "Europe/Paris").unwrap();
        assert_eq!(
            fires(&hourly, "2026-10-24T23:30:00Z", 3),
            [
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T02:00:00Z", // 03:00 CET (02:00 CET, 01:00Z, is the repeat)
                "2026-10-25T03:00:00Z",
            ]
        );
    }

    #[test]
    fn the_latest_fire_time_at_or_before_an_instant() {
        let cron = Cron::parse("0 3 * * *", "UTC").unwrap();
        assert_eq!(
            cron.latest_at_or_before(at("2026-01-05T12:00:00Z"))
                .map(show),
            Some("2026-01-05T03:00:00Z".into())
        );
        assert_eq!(
            cron.latest_at_or_before(at("2026-01-05T03:00:00Z"))
                .map(show),
            Some("2026-01-05T03:00:00Z".into())
        );
        // Across a gap and a fold, the same rules as forward.
        let paris = Cron::parse("30 2 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            paris
                .latest_at_or_before(at("2026-03-29T12:00:00Z"))
                .map(show),
            Some("2026-03-28T01:30:00Z".into())
        );
        assert_eq!(
            paris
                .latest_at_or_before(at("2026-10-25T01:45:00Z"))
                .map(show),
            Some("2026-10-25T00:30:00Z".into())
        );
    }

    #[test]
    fn bad_patterns_and_zones_name_their_field() {
        for bad in ["", "* * * *", "* * * * * * *", "61 * * * *", "x * * * *"] {
            assert_eq!(Cron::parse(bad, "UTC").unwrap_err().field, "cron", "{bad}");
        }
        assert_eq!(
            Cron::parse("* * * * *", "Mars/Olympus").unwrap_err().field,
            "timeZone"
        );
        assert!(
            Cron::parse("0 0 30 2 *", "UTC")
                .unwrap()
                .next_after(Timestamp(0))
                .is_none()
        );
    }
}
