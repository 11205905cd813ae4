//! What SLA reports and charts read: rollup totals over any window, the vendor state history
//! and the incidents that overlap a window.
//!
//! Rollups come in four tiers, all kept by the writer in the same transaction as the raw
//! results they count, so they always agree:
//!
//! | tier | key | rows for 30 days of 1,000 checks |
//! | --- | --- | --- |
//! | minute | (check, minute, probe) | ~43 M per probe |
//! | ten minutes | (check, UTC 10-minute period, region) | ~4.3 M per region |
//! | hour | (check, UTC hour, region) | ~0.7 M per region |
//! | day | (check, UTC day, region) | ~30 k per region |
//!
//! A window `[from, to)` counts the minutes whose start lies in it, exactly as the minute tier
//! alone would, but [`plan`] reads whole days from the day tier, whole hours and whole
//! 10-minute periods at the ends from theirs, and only the ragged minutes (at most 9 on each
//! side) from the minute tier. A 30-day report for 1,000 checks thus reads about 0.1 M coarse
//! rows and a few rows a check at each end, instead of tens of millions of minute rows. Every
//! key starts with (check, time), so each (check, stretch) is one range of it.

use vantage_checks::result::{CheckResult, Status};

use super::state::IncidentRow;
use super::{LATENCY_BUCKETS, StoreError, latency_bucket};

/// A rollup tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Per (check, minute, probe).
    Minute,
    /// Per (check, UTC 10-minute period, region); pruned with the minute tier.
    TenMinutes,
    /// Per (check, UTC hour, region).
    Hour,
    /// Per (check, region, UTC day).
    Day,
}

impl Tier {
    /// Every tier, finest first: `tier as usize` is a tier's place in it, so tables of
    /// statements can be indexed by tier.
    pub const ALL: [Self; 4] = [Self::Minute, Self::TenMinutes, Self::Hour, Self::Day];

    /// The length of one unit of the tier, in milliseconds.
    pub const fn ms(self) -> i64 {
        match self {
            Self::Minute => 60_000,
            Self::TenMinutes => 600_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    /// The rollup table of the tier, named the same on both backends.
    pub const fn table(self) -> &'static str {
        match self {
            Self::Minute => "rollups",
            Self::TenMinutes => "rollups_10min",
            Self::Hour => "rollups_hourly",
            Self::Day => "rollups_daily",
        }
    }

    /// The column of [`table`](Self::table) that holds the start of a row's unit (Unix ms).
    pub const fn unit(self) -> &'static str {
        match self {
            Self::Minute => "minute_ms",
            Self::TenMinutes => "start_ms",
            Self::Hour => "hour_ms",
            Self::Day => "day_ms",
        }
    }

    /// The coarsest tier whose unit divides `ms`, so that every row of it falls in one bucket
    /// of that length (buckets aligned on the Unix epoch, hence on UTC days).
    pub fn coarsest_dividing(ms: i64) -> Self {
        [Self::Day, Self::Hour, Self::TenMinutes]
            .into_iter()
            .find(|t| ms > 0 && ms % t.ms() == 0)
            .unwrap_or(Self::Minute)
    }
}

const _: () = {
    let mut i = 0;
    while i < Tier::ALL.len() {
        assert!(
            Tier::ALL[i] as usize == i,
            "Tier::ALL is in declaration order"
        );
        i += 1;
    }
};

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
/// `coarsest`: the minutes whose start lies in the window, as whole days, then whole hours,
/// whole 10-minute periods and ragged minutes at each end. Empty stretches are left out; the
/// result is in time order.
pub fn plan(from_ms: i64, to_ms: i64, coarsest: Tier) -> Vec<Span> {
    // A minute counts when its start lies in the window: [ceil(from), ceil(to)) in minutes.
    let (from, to) = (
        ceil(from_ms, Tier::Minute.ms()),
        ceil(to_ms, Tier::Minute.ms()),
    );
    let mut out = Vec::with_capacity(7);
    split(from, to, coarsest, &mut out);
    out
}

/// Appends the stretches of `[from, to)` (aligned on minutes) to `out`: the whole units of the
/// coarsest tier (at most `coarsest`) that has one in it, and each end split the same way
/// with the finer tiers.
fn split(from: i64, to: i64, coarsest: Tier, out: &mut Vec<Span>) {
    if from >= to {
        return;
    }
    const FINE_TO_COARSE: [Tier; 4] = [Tier::Minute, Tier::TenMinutes, Tier::Hour, Tier::Day];
    for (i, &tier) in FINE_TO_COARSE.iter().enumerate().rev() {
        if tier > coarsest {
            continue;
        }
        let (a, b) = (ceil(from, tier.ms()), floor(to, tier.ms()));
        if tier == Tier::Minute {
            out.push(Span {
                tier,
                from_ms: from,
                to_ms: to,
            });
            return;
        }
        if a < b {
            let finer = FINE_TO_COARSE[i - 1];
            split(from, a, finer, out);
            out.push(Span {
                tier,
                from_ms: a,
                to_ms: b,
            });
            split(b, to, finer, out);
            return;
        }
    }
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
        // Into a copy, so that a malformed blob leaves the totals as they were.
        let mut latency = self.latency;
        each_bucket(blob, |i, n| latency[i] += n)?;
        self.latency = latency;
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

/// The largest count one bucket of one stored row may hold: more is corruption (a day of
/// one check in one region at one run a second from a thousand probes is under 2^27). The
/// bound keeps every sum a report makes far from overflowing.
pub const MAX_BUCKET_COUNT: u64 = 1 << 40;

/// Length of the legacy dense form: `LATENCY_BUCKETS` little-endian u32 counts.
const DENSE_LEN: usize = LATENCY_BUCKETS * 4;

/// Encodes a latency histogram for storage, compactly: each non-empty bucket as its index
/// (one byte, strictly increasing) and its count as an unsigned LEB128 varint. A minute of
/// one probe fills a handful of the 40 buckets, so a row's histogram takes a few bytes
/// instead of the dense form's 160, and the rollup tables (and every page a cold report
/// reads) shrink to about a third.
///
/// The dense form, exactly `LATENCY_BUCKETS * 4` bytes, is what SQLite stores before schema 8 wrote and is
/// still read. A compact blob never has that length: one that would is written with one
/// redundant varint byte.
pub fn encode_buckets(b: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    for (i, &n) in b.iter().enumerate().take(LATENCY_BUCKETS) {
        if n == 0 {
            continue;
        }
        out.push(i as u8);
        let mut n = n.min(MAX_BUCKET_COUNT);
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    if out.len() == DENSE_LEN {
        // Stretch the last varint by one byte: its last group gains a continuation bit and
        // a zero group follows, which decodes to the same count.
        let last = out.len() - 1;
        out[last] |= 0x80;
        out.push(0);
    }
    out
}

/// Calls `f(bucket, count)` for each bucket a stored histogram counts (see
/// [`encode_buckets`]); a malformed blob is [`StoreError::Corrupt`].
fn each_bucket(bytes: &[u8], mut f: impl FnMut(usize, u64)) -> Result<(), StoreError> {
    let corrupt = |why: &str| Err(StoreError::Corrupt(format!("rollup latency: {why}")));
    if bytes.len() == DENSE_LEN {
        for (i, c) in bytes.chunks_exact(4).enumerate() {
            f(i, u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        }
        return Ok(());
    }
    let mut at = 0;
    let mut next = 0;
    while at < bytes.len() {
        let i = usize::from(bytes[at]);
        if i >= LATENCY_BUCKETS {
            return corrupt(&format!("bucket {i} of {LATENCY_BUCKETS}"));
        }
        if i < next {
            return corrupt("buckets out of order");
        }
        at += 1;
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let Some(&byte) = bytes.get(at) else {
                return corrupt("truncated count");
            };
            at += 1;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            // MAX_BUCKET_COUNT needs 6 groups; one redundant group is allowed.
            if shift > 42 {
                return corrupt("count too long");
            }
        }
        if n > MAX_BUCKET_COUNT {
            return corrupt(&format!("count {n} in bucket {i}"));
        }
        f(i, n);
        next = i + 1;
    }
    Ok(())
}

/// The histogram of a stored blob (see [`encode_buckets`]); a malformed one is
/// [`StoreError::Corrupt`].
pub fn decode_buckets(bytes: &[u8]) -> Result<Vec<u64>, StoreError> {
    let mut out = vec![0; LATENCY_BUCKETS];
    each_bucket(bytes, |i, n| out[i] = n)?;
    Ok(out)
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
    fn plans_read_whole_days_hours_and_ten_minutes_and_the_ragged_minutes() {
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
                    span(Minute, day + 22 * H + 31 * M, day + 22 * H + 40 * M),
                    span(TenMinutes, day + 22 * H + 40 * M, day + 23 * H),
                    span(Hour, day + 23 * H, day + D),
                    span(Day, day + D, day + 2 * D),
                    span(Hour, day + 2 * D, day + 2 * D + H),
                    span(TenMinutes, day + 2 * D + H, day + 2 * D + H + 10 * M),
                    // 01:15:10 → the minute 01:15 starts before `to` and counts.
                    span(Minute, day + 2 * D + H + 10 * M, day + 2 * D + H + 16 * M),
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
                "within an hour: ten minutes and minutes",
                day + 3 * M,
                day + 47 * M + 1,
                Day,
                vec![
                    span(Minute, day + 3 * M, day + 10 * M),
                    span(TenMinutes, day + 10 * M, day + 40 * M),
                    span(Minute, day + 40 * M, day + 48 * M),
                ],
            ),
            (
                "within ten minutes: minutes",
                day + 11 * M,
                day + 19 * M,
                Day,
                vec![span(Minute, day + 11 * M, day + 19 * M)],
            ),
            (
                "whole ten minutes at most",
                day + 10 * M,
                day + 2 * H + 50 * M,
                TenMinutes,
                vec![span(TenMinutes, day + 10 * M, day + 2 * H + 50 * M)],
            ),
            (
                "two days but at most hours",
                day + 30 * M,
                day + 2 * D,
                Hour,
                vec![
                    span(TenMinutes, day + 30 * M, day + H),
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
        assert_eq!(Tier::coarsest_dividing(30 * M), Tier::TenMinutes);
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

    #[test]
    fn histograms_are_stored_compactly_and_legacy_dense_ones_still_read() {
        let mut h = vec![0u64; LATENCY_BUCKETS];
        assert_eq!(encode_buckets(&h), Vec::<u8>::new());
        h[0] = 1;
        h[3] = 300;
        h[39] = MAX_BUCKET_COUNT;
        let blob = encode_buckets(&h);
        // 1 + 1, 1 + 2 (300 = 0b10_0101100), 1 + 6.
        assert_eq!(&blob[..5], &[0, 1, 3, 0xac, 0x02]);
        assert_eq!(blob.len(), 12);
        assert_eq!(decode_buckets(&blob).expect("compact"), h);
        // More than the bound is clamped, as the dense form clamped to u32.
        h[39] = u64::MAX;
        assert_eq!(
            decode_buckets(&encode_buckets(&h)).expect("clamped")[39],
            MAX_BUCKET_COUNT
        );

        // SQLite stores before schema 8 wrote 40 little-endian u32s.
        let mut dense = vec![0u8; DENSE_LEN];
        dense[8..12].copy_from_slice(&7u32.to_le_bytes());
        dense[156..160].copy_from_slice(&u32::MAX.to_le_bytes());
        let d = decode_buckets(&dense).expect("dense");
        assert_eq!(
            (d[2], d[39], d.iter().filter(|&&n| n > 0).count()),
            (7, u64::from(u32::MAX), 2)
        );
        let mut t = Totals::default();
        t.add_latency_blob(&dense).expect("dense");
        t.add_latency_blob(&encode_buckets(&d)).expect("compact");
        assert_eq!(t.latency[2], 14);
    }

    #[test]
    fn a_compact_histogram_never_takes_the_dense_length() {
        // 40 buckets of 3-byte varints (1 + 3 = 4 bytes each) would be exactly 160 bytes.
        let h = vec![1u64 << 14; LATENCY_BUCKETS];
        let blob = encode_buckets(&h);
        assert_eq!(blob.len(), DENSE_LEN + 1);
        assert_eq!(decode_buckets(&blob).expect("stretched"), h);
        // One bucket fewer is 156 bytes, written as is.
        let mut h = h;
        h[0] = 0;
        assert_eq!(encode_buckets(&h).len(), DENSE_LEN - 4);
    }

    #[test]
    fn malformed_histograms_are_corrupt_and_change_nothing() {
        let bad: [&[u8]; 6] = [
            &[40, 1],                                          // no bucket 40
            &[3, 1, 2, 1],                                     // out of order
            &[3, 1, 3, 1],                                     // twice
            &[3],                                              // no count
            &[3, 0x80],                                        // truncated count
            &[3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1], // too long
        ];
        for blob in bad {
            let mut t = Totals::default();
            t.add_latency_blob(&[1, 5]).expect("good");
            let err = t.add_latency_blob(blob).expect_err("corrupt");
            assert!(matches!(err, StoreError::Corrupt(_)), "{blob:?}: {err}");
            assert!(decode_buckets(blob).is_err(), "{blob:?}");
            assert_eq!(t.latency[1], 5, "{blob:?}");
            assert_eq!(t.latency.iter().sum::<u64>(), 5, "{blob:?}");
        }
        // Above the bound: 2^41 in 7 groups.
        let mut over = vec![0u8];
        over.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
        assert!(decode_buckets(&over).is_err());
    }
}
