//! Time arguments (`--at`, `--since`, `--until`): an RFC 3339 instant or a duration relative to
//! now.
//!
//! A relative form points the way the flag reads: `--since 2h` is two hours ago, `--at 2h` two
//! hours from now. The parsers are clap value parsers, so a bad value is reported by clap with
//! the flag's name (`invalid value '5x' for '--since <TIME>': …`).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Which way a relative duration points from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Past,
    Future,
}

/// Value parser for flags where `2h` means two hours ago (`--since`, `--until`).
pub fn parse_past(text: &str) -> Result<DateTime<Utc>, String> {
    resolve(text, Utc::now(), Direction::Past)
}

/// Value parser for flags where `2h` means two hours from now (`--at`).
pub fn parse_future(text: &str) -> Result<DateTime<Utc>, String> {
    resolve(text, Utc::now(), Direction::Future)
}

/// The instant `text` names, relative durations counted from `now`.
///
/// Fails with a message meant to follow clap's "invalid value … for '--flag'" when `text` is
/// neither RFC 3339 nor a duration, or the result is out of range.
pub fn resolve(
    text: &str,
    now: DateTime<Utc>,
    direction: Direction,
) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    // Durations never contain '-' or ':', RFC 3339 always does; that decides which error to
    // show for a typo.
    if text.contains(['-', ':']) {
        return DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|e| {
                format!("not an RFC 3339 time ({e}); use e.g. 2026-11-24T15:00:00Z or +08:00")
            });
    }
    let duration = duration(text).map_err(|problem| problem.explain(TIME_OR_DURATION))?;
    let delta = TimeDelta::from_std(duration).map_err(|_| format!("{text} is too long"))?;
    match direction {
        Direction::Past => now.checked_sub_signed(delta),
        Direction::Future => now.checked_add_signed(delta),
    }
    .ok_or_else(|| format!("{text} is too long"))
}

/// Parses a duration of one or more `<number><unit>` parts, units `s`, `m`, `h`, `d`, `w`
/// (`90s`, `15m`, `1h30m`, `1w 2d`).
///
/// Fails on an empty text, a part without a number or unit, an unknown unit, or an overflow.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration(text).map_err(|problem| problem.explain(DURATION))
}

const DURATION: &str = "a duration such as 30s, 15m, 2h, 3d, 1w or 1h30m";
const TIME_OR_DURATION: &str =
    "an RFC 3339 time (2026-11-24T15:00:00Z) or a duration such as 30s, 15m, 2h, 3d, 1w or 1h30m";

/// Why a text is not a duration; worded by the caller, which knows what else it would accept.
enum Problem {
    /// What was found instead of a `<number><unit>` part.
    Found(String),
    TooLong(String),
}

impl Problem {
    fn explain(self, expected: &str) -> String {
        match self {
            Problem::Found(found) => format!("expected {expected}, found {found}"),
            Problem::TooLong(text) => format!("{text} is too long"),
        }
    }
}

fn duration(text: &str) -> Result<Duration, Problem> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(Problem::Found("an empty value".into()));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(Problem::Found(format!("{rest:?}, which lacks a number")));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds_per_unit: u64 = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            "" => return Err(Problem::Found(format!("{number} without a unit"))),
            _ => return Err(Problem::Found(format!("the unknown unit {unit:?}"))),
        };
        let seconds = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds_per_unit))
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| Problem::TooLong(text.trim().to_string()))?;
        total = seconds;
        rest = after.trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// The instant as a protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .expect("fixture")
            .with_timezone(&Utc)
    }

    fn past(text: &str) -> Result<String, String> {
        resolve(text, now(), Direction::Past).map(|t| t.to_rfc3339())
    }

    fn future(text: &str) -> Result<String, String> {
        resolve(text, now(), Direction::Future).map(|t| t.to_rfc3339())
    }

    #[test]
    fn rfc3339_in_utc_and_with_an_offset() {
        assert_eq!(
            past("2026-11-24T15:00:00Z").as_deref(),
            Ok("2026-11-24T15:00:00+00:00")
        );
        assert_eq!(
            future("2026-11-24T15:00:00+08:00").as_deref(),
            Ok("2026-11-24T07:00:00+00:00")
        );
        assert_eq!(
            past("2026-11-24T15:00:00.250-05:00").as_deref(),
            Ok("2026-11-24T20:00:00.250+00:00")
        );
    }

    #[test]
    fn rfc3339_ignores_the_direction() {
        assert_eq!(past("2026-01-01T00:00:00Z"), future("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn each_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(259_200)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn combinations_add_up() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(
            parse_duration("1w2d3h4m5s"),
            Ok(Duration::from_secs(
                604_800 + 2 * 86_400 + 3 * 3_600 + 4 * 60 + 5
            ))
        );
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5_400)));
    }

    #[test]
    fn relative_since_is_ago_and_at_is_ahead() {
        assert_eq!(past("2h").as_deref(), Ok("2026-11-24T10:00:00+00:00"));
        assert_eq!(future("2h").as_deref(), Ok("2026-11-24T14:00:00+00:00"));
        assert_eq!(past("1d").as_deref(), Ok("2026-11-23T12:00:00+00:00"));
        assert_eq!(future("1h30m").as_deref(), Ok("2026-11-24T13:30:00+00:00"));
    }

    #[test]
    fn garbage_is_refused_with_what_was_expected() {
        for text in [
            "", "  ", "5x", "h", "5", "1h30", "ms", "1.5h", "-5m", "2 weeks", "soon",
        ] {
            let error = past(text).expect_err(text);
            assert!(
                error.contains("expected") || error.contains("RFC 3339"),
                "{text:?}: {error}"
            );
        }
        assert!(past("5x").expect_err("5x").contains("unknown unit \"x\""));
        assert!(past("5").expect_err("5").contains("5 without a unit"));
    }

    #[test]
    fn a_plain_duration_does_not_offer_a_time() {
        assert_eq!(
            parse_duration("2x"),
            Err(
                "expected a duration such as 30s, 15m, 2h, 3d, 1w or 1h30m, found the unknown \
                 unit \"x\""
                    .to_string()
            )
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("2026-11-24T15:00:00Z").is_err());
    }

    #[test]
    fn a_broken_rfc3339_time_says_so() {
        let error = past("2026-13-01T00:00:00Z").expect_err("month 13");
        assert!(error.starts_with("not an RFC 3339 time"), "{error}");
        let error = past("2026-11-24T15:00:00").expect_err("no offset");
        assert!(error.starts_with("not an RFC 3339 time"), "{error}");
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(past("99999999999999999999s").is_err());
        assert!(past("9999999999999w").is_err());
        assert!(future("9999999999999w").is_err());
    }

    #[test]
    fn timestamps_keep_seconds_and_nanos() {
        let time = DateTime::parse_from_rfc3339("1970-01-01T00:00:01.5Z")
            .expect("fixture")
            .with_timezone(&Utc);
        assert_eq!(
            timestamp(time),
            prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
    }
}
