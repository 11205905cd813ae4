//! What SLA reports and charts read: rollup totals over any window, the vendor state history
//! and the incidents that overlap a window.
//!
//! Rollups come in three tiers, all kept by the writer in the same transaction as the raw
//! results they count, so they always agree:
//!
//! | tier | key | rows for 30 days of 1,000 checks |
//! | --- | --- | --- |
//! | minute | (check, probe, minute) | ~43 M per probe |
//! | hour | (check, region, UTC hour) | ~0.7 M per region |
//! | day | (check, region, UTC day) | ~30 k per region |
//!
//! A window `[from, to)` counts the minutes whose start lies in it, exactly as the minute tier
//! alone would, but [`plan`] reads whole days from the day tier, whole hours from the hour tier
//! and only the ragged ends (at most 59 minutes on each side) from the minute tier. A 30-day
//! report for 1,000 checks thus reads about 0.1 M coarse rows plus the edges, instead of
//! tens of millions of minute rows.

use vantage_checks::result::{CheckResult, Status};

use super::state::IncidentRow;
use super::{LATENCY_BUCKETS, StoreError, latency_bucket};

/// A rollup tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Per (check, probe, minute).
    Minute,
    /// Per (check, region, UTC hour).
    Hour,
    /// Per (check, region, UTC day).
    Day,
}

impl Tier {
    /// The length of one unit of the tier, in milliseconds.
    pub const fn ms(self) -> i64 {
        match self {
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    /// The coarsest tier whose unit divides `ms`, so that every row of it falls in one bucket
    /// of that length (buckets aligned on the Unix epoch, hence on UTC days).
    pub fn coarsest_dividing(ms: i64) -> Self {
        [Self::Day, Self::Hour]
            .into_iter()
            .find(|t| ms > 0 && ms % t.ms() == 0)
            .unwrap_or(Self::Minute)
    }
}

/// One stretch of a window and the tier that serves it: units starting in `[from_ms, to_ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The tier to read.
    pub tier: Tier,
    /// First unit start (inclusive, aligned on the tier).
    pub from_ms: i64,
    /// Last unit start (exclusive, aligned on the tier).
    pub to_ms: i64,
}

fn floor(ms: i64, unit: i64) -> i64 {
    ms - ms.rem_euclid(unit)
}

fn ceil(ms: i64, unit: i64) -> i64 {
    let f = floor(ms, unit);
    if f == ms { ms } else { f.saturating_add(unit) }
}

/// Splits `[from_ms, to_ms)` into stretches served by the coarsest tier possible, at most
/// `coarsest`: the minutes whose start lies in the window, as whole days, whole hours and
/// ragged minute ends. Empty stretches are left out; the result is in time order.
pub fn plan(from_ms: i64, to_ms: i64, coarsest: Tier) -> Vec<Span> {
    // A minute counts when its start lies in the window: [ceil(from), ceil(to)) in minutes.
    let (from, to) = (
        ceil(from_ms, Tier::Minute.ms()),
        ceil(to_ms, Tier::Minute.ms()),
    );
    let mut out = Vec::with_capacity(5);
    if from >= to {
        return out;
    }
    let mut push = |tier, a: i64, b: i64| {
        if a < b {
            out.push(Span {
                tier,
                from_ms: a,
                to_ms: b,
            });
        }
    };
    let whole = |tier: Tier| (ceil(from, tier.ms()), floor(to, tier.ms()));
    let (h0, h1) = whole(Tier::Hour);
    let (d0, d1) = whole(Tier::Day);
    if coarsest == Tier::Day && d0 < d1 {
        push(Tier::Minute, from, h0);
        push(Tier::Hour, h0, d0);
        push(Tier::Day, d0, d1);
        push(Tier::Hour, d1, h1);
        push(Tier::Minute, h1, to);
    } else if coarsest >= Tier::Hour && h0 < h1 {
        push(Tier::Minute, from, h0);
        push(Tier::Hour, h0, h1);
        push(Tier::Minute, h1, to);
    } else {
        push(Tier::Minute, from, to);
    }
    out
}

/// Run counts and a latency histogram, summed over rollups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    /// Runs, probe errors included.
    pub runs: u64,
    /// Runs that failed (`status = "fail"`): the vendor's fault.
    pub failures: u64,
    /// Runs the probe could not carry out (`status = "probe_error"`): not valid runs.
    pub probe_errors: u64,
    /// Passing runs that were slow.
    pub slow: u64,
    /// Latency histogram of every run the vendor answered (failures included, probe errors
    /// not), see [`super::latency_bucket`].
    pub latency: [u64; LATENCY_BUCKETS],
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            runs: 0,
            failures: 0,
            probe_errors: 0,
            slow: 0,
            latency: [0; LATENCY_BUCKETS],
        }
    }
}

impl Totals {
    /// Counts one run.
    pub fn add_result(&mut self, r: &CheckResult) {
        self.runs += 1;
        match r.status {
            Status::Fail => self.failures += 1,
            Status::ProbeError => self.probe_errors += 1,
            Status::Ok => {}
        }
        if r.slow {
            self.slow += 1;
        }
        // Latency describes what the vendor served; probe errors measured nothing.
        if r.status != Status::ProbeError {
            self.latency[latency_bucket(r.timings.total_ms)] += 1;
        }
    }

    /// Adds another total to this one.
    pub fn add(&mut self, o: &Totals) {
        self.runs += o.runs;
        self.failures += o.failures;
        self.probe_errors += o.probe_errors;
        self.slow += o.slow;
        for (a, b) in self.latency.iter_mut().zip(o.latency) {
            *a += b;
        }
    }

    /// Adds a stored histogram (see [`decode_buckets`]).
    pub fn add_latency_blob(&mut self, blob: &[u8]) -> Result<(), StoreError> {
        for (a, b) in self.latency.iter_mut().zip(decode_buckets(blob)?) {
            *a += b;
        }
        Ok(())
    }

    /// Runs that say something about the vendor: all but probe errors.
    pub fn valid(&self) -> u64 {
        self.runs.saturating_sub(self.probe_errors)
    }

    /// Valid runs that passed.
    pub fn good(&self) -> u64 {
        self.valid().saturating_sub(self.failures)
    }
}

/// The totals of one check in one region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRegionTotals {
    /// Check id.
    pub check_id: String,
    /// Probe region.
    pub region: String,
    /// Summed rollups.
    pub totals: Totals,
}

/// One bucket of a check's series in one region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesRow {
    /// Start of the bucket (Unix ms, a multiple of the bucket length).
    pub start_ms: i64,
    /// Probe region.
    pub region: String,
    /// Summed rollups of the bucket (clipped to the window).
    pub totals: Totals,
}

/// A vendor's state in one scope from a point in time on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The region, or `None` for the global state.
    pub region: Option<String>,
    /// The state label (`operational`, `hard_down`, …).
    pub state: String,
    /// In force from (Unix ms) until the scope's next change.
    pub at_ms: i64,
}

/// The state label a scope takes when it drops out of a vendor's status.
pub const UNKNOWN_STATE: &str = "unknown";

/// What [`ReportStore::record_vendor_status`] appends to the history: each scope of `states`
/// (`None`: global, stored as `""`) whose state differs from its `last` recorded one, and
/// [`UNKNOWN_STATE`] for each scope in `last` that `states` no longer has. (scope, state).
pub fn history_changes<'a>(
    last: &'a std::collections::HashMap<String, String>,
    states: &'a [(Option<String>, String)],
) -> Vec<(&'a str, &'a str)> {
    let mut changes: Vec<(&str, &str)> = Vec::new();
    for (region, state) in states {
        let region = region.as_deref().unwrap_or("");
        if last.get(region).map(String::as_str) != Some(state.as_str()) {
            changes.push((region, state));
        }
    }
    for (region, state) in last {
        let gone = !states
            .iter()
            .any(|(r, _)| r.as_deref().unwrap_or("") == region.as_str());
        if gone && state != UNKNOWN_STATE {
            changes.push((region, UNKNOWN_STATE));
        }
    }
    changes
}

/// Reads for SLA reports and charts, and the vendor state history they need.
pub trait ReportStore {
    /// Rollups of `checks` summed per (check, region) over the minutes starting in
    /// `[from_ms, to_ms)`, read tier by tier (see [`plan`]). Pairs without rollups are absent.
    fn rollup_totals(
        &self,
        checks: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<CheckRegionTotals>, StoreError>;

    /// Rollups of one check summed per (bucket, region) over `[from_ms, to_ms)`, buckets of
    /// `bucket_ms` aligned on the Unix epoch, read from the coarsest tier that fits in a
    /// bucket. In time order.
    fn rollup_series(
        &self,
        check: &str,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<SeriesRow>, StoreError>;

    /// Saves a vendor's status (JSON) and appends to its state history, in one transaction,
    /// each scope whose state differs from its last recorded one; `states` lists the global
    /// state (region `None`) and each region's. A region that had a state and is missing from
    /// `states` is recorded as [`UNKNOWN_STATE`].
    fn record_vendor_status(
        &self,
        vendor: &str,
        status: &str,
        states: &[(Option<String>, String)],
        at_ms: i64,
    ) -> Result<(), StoreError>;

    /// For each scope of a vendor, the last state change before `from_ms` (the state in force
    /// at `from_ms`), then every change in `[from_ms, to_ms)`; in time order.
    fn vendor_history(
        &self,
        vendor: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StateChange>, StoreError>;

    /// Incidents about a subject that overlap `[from_ms, to_ms)` (opened before `to_ms`, not
    /// resolved by `from_ms`), oldest first, at most `limit`.
    fn incidents_overlapping(
        &self,
        subject_kind: super::state::SubjectKind,
        subject: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<IncidentRow>, StoreError>;

    /// Deletes hourly rollups before `hourly_before_ms`, and daily rollups and vendor state
    /// history before `daily_before_ms` (keeping, per scope, the last change before it: the
    /// state still in force).
    fn prune_tiers(&self, hourly_before_ms: i64, daily_before_ms: i64) -> Result<(), StoreError>;
}

/// A latency histogram as both backends store it: `LATENCY_BUCKETS` little-endian u32
/// counts (a count past `u32::MAX` is kept at `u32::MAX`).
pub fn encode_buckets(b: &[u64]) -> Vec<u8> {
    b.iter()
        .flat_map(|&n| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes())
        .collect()
}

/// The histogram of a stored blob; a blob of the wrong length is [`StoreError::Corrupt`].
pub fn decode_buckets(bytes: &[u8]) -> Result<Vec<u64>, StoreError> {
    if bytes.len() != LATENCY_BUCKETS * 4 {
        return Err(StoreError::Corrupt(format!(
            "rollup latency has {} bytes, expected {}",
            bytes.len(),
            LATENCY_BUCKETS * 4
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const H: i64 = 3_600_000;
    const D: i64 = 86_400_000;

    fn span(tier: Tier, from_ms: i64, to_ms: i64) -> Span {
        Span {
            tier,
            from_ms,
            to_ms,
        }
    }

    #[test]
    fn plans_read_whole_days_and_hours_and_the_ragged_minutes() {
        use Tier::*;
        let day = 20_000 * D;
        let cases = [
            (
                "ragged both ends over two days",
                day + 22 * H + 30 * M + 30_000,
                day + 2 * D + H + 15 * M + 10_000,
                Day,
                vec![
                    // 22:30:30 → the first whole minute is 22:31.
                    span(Minute, day + 22 * H + 31 * M, day + 23 * H),
                    span(Hour, day + 23 * H, day + D),
                    span(Day, day + D, day + 2 * D),
                    span(Hour, day + 2 * D, day + 2 * D + H),
                    // 01:15:10 → the minute 01:15 starts before `to` and counts.
                    span(Minute, day + 2 * D + H, day + 2 * D + H + 16 * M),
                ],
            ),
            (
                "aligned month: days only",
                day,
                day + 31 * D,
                Day,
                vec![span(Day, day, day + 31 * D)],
            ),
            (
                "same day: hours and minutes",
                day + 5 * H + 59 * M,
                day + 9 * H + 1,
                Day,
                vec![
                    span(Minute, day + 5 * H + 59 * M, day + 6 * H),
                    span(Hour, day + 6 * H, day + 9 * H),
                    span(Minute, day + 9 * H, day + 9 * H + M),
                ],
            ),
            (
                "within an hour: minutes",
                day + 10 * M,
                day + 50 * M,
                Day,
                vec![span(Minute, day + 10 * M, day + 50 * M)],
            ),
            (
                "two days but at most hours",
                day + 30 * M,
                day + 2 * D,
                Hour,
                vec![
                    span(Minute, day + 30 * M, day + H),
                    span(Hour, day + H, day + 2 * D),
                ],
            ),
            ("empty", day + 10, day + 20, Day, vec![]),
            ("inverted", day + D, day, Day, vec![]),
        ];
        for (name, from, to, coarsest, want) in cases {
            assert_eq!(plan(from, to, coarsest), want, "{name}");
        }
    }

    #[test]
    fn the_coarsest_tier_fits_in_a_bucket() {
        assert_eq!(Tier::coarsest_dividing(D), Tier::Day);
        assert_eq!(Tier::coarsest_dividing(7 * D), Tier::Day);
        assert_eq!(Tier::coarsest_dividing(6 * H), Tier::Hour);
        assert_eq!(Tier::coarsest_dividing(36 * H), Tier::Hour);
        assert_eq!(Tier::coarsest_dividing(5 * M), Tier::Minute);
        assert_eq!(Tier::coarsest_dividing(0), Tier::Minute);
    }

    #[test]
    fn totals_count_probe_errors_apart() {
        let mut t = Totals {
            runs: 10,
            failures: 2,
            probe_errors: 3,
            ..Totals::default()
        };
        assert_eq!((t.valid(), t.good()), (7, 5));
        let mut blob = vec![0u8; LATENCY_BUCKETS * 4];
        blob[4..8].copy_from_slice(&7u32.to_le_bytes());
        t.add_latency_blob(&blob).expect("blob");
        assert_eq!(t.latency[1], 7);
        assert!(t.add_latency_blob(&blob[..8]).is_err());
    }
}
