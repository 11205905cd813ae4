//! Reports over stored history: the SLA report of a vendor ([`sla`]), its table and CSV forms
//! ([`format`](mod@format)), and the latency series for charts ([`sla::latency_series`]).
//!
//! The API (`GET /api/v1/reports/sla`) and the CLI (`vantage-coordinator report sla`) share
//! [`Window`]'s rules and the same report.

pub mod format;
pub mod sla;
#[cfg(test)]
mod tests;

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::store::StoreError;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The request breaks a rule (window, bucket); the message says which.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest window a report covers (a little over a year: a year-on-year look at a month).
pub const MAX_WINDOW: Duration = Duration::from_secs(400 * 86_400);

/// The window of a report when none is given: the last 30 days.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// Latest instant a window may reach: the end of year 9999, as RFC 3339 can write it.
const MAX_MS: i64 = 253_402_300_799_999;

/// A report's window `[from_ms, to_ms)`, in Unix milliseconds: from before to, at most
/// [`MAX_WINDOW`] long, between 1970 and 9999.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Start (inclusive).
    pub from_ms: i64,
    /// End (exclusive).
    pub to_ms: i64,
}

impl Window {
    /// A window between two instants.
    pub fn new(from_ms: i64, to_ms: i64) -> Result<Self, ReportError> {
        if !(0..=MAX_MS).contains(&from_ms) || !(0..=MAX_MS).contains(&to_ms) {
            return Err(ReportError::Invalid(
                "times must lie between 1970 and 9999, e.g. `2026-10-01T00:00:00Z`".into(),
            ));
        }
        if from_ms >= to_ms {
            return Err(ReportError::Invalid(format!(
                "`from` ({}) must be before `to` ({})",
                crate::alert::rfc3339(from_ms),
                crate::alert::rfc3339(to_ms)
            )));
        }
        if to_ms - from_ms > MAX_WINDOW.as_millis() as i64 {
            return Err(ReportError::Invalid(format!(
                "the window is {:.1} days long; at most {} days are allowed: ask for a shorter one, e.g. one month",
                (to_ms - from_ms) as f64 / 86_400_000.0,
                MAX_WINDOW.as_secs() / 86_400
            )));
        }
        Ok(Self { from_ms, to_ms })
    }

    /// The `length` before `to_ms`.
    pub fn before(to_ms: i64, length: Duration) -> Result<Self, ReportError> {
        // `to` comes from a query string: saturate, and let `new` refuse what is out of range.
        let length = i64::try_from(length.as_millis()).unwrap_or(i64::MAX);
        Self::new(to_ms.saturating_sub(length), to_ms)
    }

    /// A calendar month in UTC, written `YYYY-MM` (`2026-10`).
    pub fn month(text: &str) -> Result<Self, ReportError> {
        let bad = || {
            ReportError::Invalid(format!(
                "a month is written YYYY-MM, e.g. `2026-10`; got `{text}`"
            ))
        };
        let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        let month = time::Month::try_from(month).map_err(|_| bad())?;
        let start = time::Date::from_calendar_date(year, month, 1).map_err(|_| bad())?;
        let (ny, nm) = if month == time::Month::December {
            (year + 1, time::Month::January)
        } else {
            (year, month.next())
        };
        let end = time::Date::from_calendar_date(ny, nm, 1).map_err(|_| bad())?;
        let ms = |d: time::Date| d.midnight().assume_utc().unix_timestamp() * 1000;
        Self::new(ms(start), ms(end))
    }
}

/// Parses an instant: RFC 3339 (`2026-10-01T00:00:00Z`) or Unix milliseconds.
pub fn parse_instant(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod window_tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse_instant(text).expect("instant")
    }

    #[test]
    fn windows_follow_the_rules() {
        let w = Window::month("2026-10").expect("month");
        assert_eq!(
            (w.from_ms, w.to_ms),
            (ms("2026-10-01T00:00:00Z"), ms("2026-11-01T00:00:00Z"))
        );
        let dec = Window::month("2026-12").expect("december");
        assert_eq!(dec.to_ms, ms("2027-01-01T00:00:00Z"));
        let feb = Window::month("2028-02").expect("leap february");
        assert_eq!(feb.to_ms - feb.from_ms, 29 * 86_400_000);
        for bad in ["2026-13", "2026-1", "26-10", "2026/10", "", "2026-00"] {
            let e = Window::month(bad).expect_err(bad).to_string();
            assert!(e.contains("YYYY-MM"), "{bad}: {e}");
        }
        let e = Window::new(ms("2026-10-02T00:00:00Z"), ms("2026-10-01T00:00:00Z"))
            .expect_err("inverted")
            .to_string();
        assert!(e.contains("must be before"), "{e}");
        let e = Window::new(ms("2025-01-01T00:00:00Z"), ms("2026-10-01T00:00:00Z"))
            .expect_err("too long")
            .to_string();
        assert!(e.contains("at most 400 days"), "{e}");
        assert!(Window::new(-5, 10).is_err());
        assert!(Window::new(0, i64::MAX).is_err());
        let last = Window::before(ms("2026-10-31T00:00:00Z"), DEFAULT_WINDOW).expect("30 days");
        assert_eq!(last.from_ms, ms("2026-10-01T00:00:00Z"));
        assert_eq!(parse_instant("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_instant("yesterday"), None);
    }

    /// Found by the `api_params` fuzz target: `GET /api/v1/reports/sla?vendor=v&to=-9223372036854775807`
    /// (no `from`) subtracted 30 days from the smallest i64 and panicked on the overflow.
    #[test]
    fn r12_a_window_before_the_smallest_instant_is_refused_not_an_overflow() {
        let e = Window::before(i64::MIN + 1, DEFAULT_WINDOW)
            .expect_err("out of range")
            .to_string();
        assert!(e.contains("between 1970 and 9999"), "{e}");
        assert!(Window::before(0, Duration::MAX).is_err());
    }
}
