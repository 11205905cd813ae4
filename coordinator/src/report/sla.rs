//! The SLA report of one vendor over a window: what the rollups, the vendor state history and
//! the incidents say, against the contract in the vendor's `sla` block.
//!
//! [`compute`] is pure: inputs read from the store, plus `now`, give the report. [`sla_report`]
//! does the reading.
//!
//! Definitions, per scope (globally, and per probe region):
//! - **Availability** is an SLI over runs of the vendor's `data` checks: good runs / valid
//!   runs. A valid run is one the probe carried out (`probe_error` runs are the probe's fault
//!   and say nothing about the vendor); a good run is a valid run that did not fail. Every run
//!   weighs the same, so a check run by more probes weighs more. Control and telemetry checks
//!   get their own figures under `roles`, and every check its own under `checks`, but the
//!   contract is judged on the data plane.
//! - **Latency** percentiles come from the merged histograms of the data checks' runs that the
//!   vendor answered (failures included: a timeout is what users saw). The histogram buckets
//!   are about 41% wide, and each percentile is reported as the **upper bound** of the bucket
//!   holding it, so the true value is at most the figure and more than the bucket below's.
//! - **Minutes in each state** come from the vendor state history, clipped to the window (and
//!   to `now` for a window that ends in the future); the state in force at `from` is the last
//!   one recorded before it. Time before the first record is counted as `unknown`, and shown
//!   apart as `unrecorded_minutes`. So is time in which no coordinator was evaluating the
//!   vendor (no one held its partition's lease: every coordinator down, or cut off from the
//!   store), shown apart as `unevaluated_minutes`: the last recorded state says nothing then,
//!   and counting it would hide an outage that nobody was watching.
//! - **Incidents** overlapping the window, with their whole duration (until now while they
//!   are open) and the part inside the window.
//! - **Contract**: availability against `sla.availability`, and each latency percentile
//!   against its objective. A latency objective that falls inside the percentile's bucket is
//!   `inconclusive`: the histogram cannot tell, so it is neither met nor breached. `breach` is
//!   true when any objective is certainly broken, and `broken` names them. The error budget
//!   used is `(1 - availability) / (1 - objective)`: 1.0 means the whole budget is spent.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vantage_checks::model::{Role, Vendor};

use super::{ReportError, Window};
use crate::alert::{IncidentState, Label as _, SubjectKind, SubjectScope, rfc3339};
use crate::consensus::vendor::VendorState;
use crate::store::lease::part_of;
use crate::store::report::{CheckRegionTotals, ReportStore, StateChange, Tier, Totals};
use crate::store::state::IncidentRow;
use crate::store::{LATENCY_BUCKETS, Store, StoreError, latency_bucket_upper};

/// Most incidents a report lists.
pub const MAX_INCIDENTS: u32 = 10_000;

/// Most points a latency series returns.
pub const MAX_SERIES_BUCKETS: i64 = 10_000;

/// What the latency figures mean, repeated in every report so a reader of the JSON knows.
pub const LATENCY_NOTE: &str = "latency_ms figures are the upper bound of the histogram bucket holding the percentile (buckets are about 41% wide): the true value is at most that";

/// One SLA report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaReport {
    /// Vendor id.
    pub vendor: String,
    /// Vendor name.
    pub name: String,
    /// Start of the window (RFC 3339).
    pub from: String,
    /// End of the window, exclusive (RFC 3339).
    pub to: String,
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// Length of the window, in minutes.
    pub window_minutes: f64,
    /// What the latency figures mean.
    pub latency_note: String,
    /// The contract, from the vendor's `sla` block.
    pub sla: SlaTargets,
    /// Across regions.
    pub global: ScopeReport,
    /// Per probe region.
    pub regions: BTreeMap<String, ScopeReport>,
    /// Per check role (`data`, `control`, `telemetry`), across regions.
    pub roles: BTreeMap<String, Sli>,
    /// Per check, across regions, in catalog order.
    pub checks: Vec<CheckSli>,
}

/// The contract's objectives; absent ones are not judged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlaTargets {
    /// Availability objective, as a fraction (0.9995).
    pub availability: Option<f64>,
    /// p50 latency objective (ms).
    pub latency_p50_ms: Option<f64>,
    /// p95 latency objective (ms).
    pub latency_p95_ms: Option<f64>,
    /// p99 latency objective (ms).
    pub latency_p99_ms: Option<f64>,
}

impl SlaTargets {
    /// The objectives of a vendor's `sla` block.
    pub fn of(vendor: &Vendor) -> Self {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        Self {
            availability: vendor.sla.availability,
            latency_p50_ms: ms(vendor.sla.latency_p50),
            latency_p95_ms: ms(vendor.sla.latency_p95),
            latency_p99_ms: ms(vendor.sla.latency_p99),
        }
    }
}

/// Runs, availability and latency of a set of checks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sli {
    /// Every run, probe errors included.
    pub runs: u64,
    /// Runs the probe carried out.
    pub valid: u64,
    /// Valid runs that passed.
    pub good: u64,
    /// Valid runs that failed.
    pub failed: u64,
    /// Runs the probe could not carry out (not valid).
    pub probe_errors: u64,
    /// Passing runs slower than the check's `slow`.
    pub slow: u64,
    /// good / valid; absent without valid runs.
    pub availability: Option<f64>,
    /// Latency percentiles (bucket upper bounds); absent without runs.
    pub latency_ms: Option<Percentiles>,
}

/// Latency percentiles, each the upper bound (ms) of the histogram bucket holding it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One scope of the report: the data plane's SLI, time in each state, incidents, contract.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScopeReport {
    /// The data checks' SLI.
    #[serde(flatten)]
    pub sli: Sli,
    /// Minutes in each vendor state (every state listed; unrecorded time is `unknown`).
    pub minutes_in_state: BTreeMap<String, f64>,
    /// Minutes of the window (up to now) with no recorded state, included in `unknown`.
    pub unrecorded_minutes: f64,
    /// Minutes of the window (up to now) in which no coordinator was evaluating the vendor,
    /// included in `unknown`.
    pub unevaluated_minutes: f64,
    /// Incidents that overlap the window and touch this scope (global incidents touch every
    /// region).
    pub incidents: Vec<IncidentSpan>,
    /// The SLI against the contract.
    pub contract: ContractResult,
}

/// Whether an objective holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveStatus {
    /// Met for certain.
    Met,
    /// Broken for certain.
    Breached,
    /// The objective falls inside the percentile's histogram bucket.
    Inconclusive,
    /// No runs to judge.
    NoData,
}

/// One objective judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveResult {
    /// `availability`, `latency_p50`, `latency_p95` or `latency_p99`.
    pub objective: String,
    /// The objective (a fraction, or ms).
    pub target: f64,
    /// The measured value (a fraction, or the bucket's upper bound in ms).
    pub actual: Option<f64>,
    /// Verdict.
    pub status: ObjectiveStatus,
}

/// The contract's verdict for one scope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContractResult {
    /// Some objective is certainly broken.
    pub breach: bool,
    /// The broken objectives.
    pub broken: Vec<String>,
    /// Every objective of the contract, judged.
    pub objectives: Vec<ObjectiveResult>,
    /// (1 - availability) / (1 - objective): 1.0 spends the whole budget. Absent without an
    /// availability objective or valid runs, or when the objective is 100% and was missed.
    pub error_budget_used: Option<f64>,
}

/// An incident overlapping the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentSpan {
    /// Incident id.
    pub id: i64,
    /// Its (worst) state.
    pub state: IncidentState,
    /// One line for people.
    pub summary: String,
    /// `global` or `regional`.
    pub scope: SubjectScope,
    /// The regions of a regional incident.
    pub regions: Vec<String>,
    /// Opened (RFC 3339).
    pub opened_at: String,
    /// Resolved (RFC 3339), if resolved.
    pub resolved_at: Option<String>,
    /// Still open now.
    pub ongoing: bool,
    /// Whole duration, until now while open (minutes).
    pub duration_minutes: f64,
    /// The part inside the window (minutes).
    pub in_window_minutes: f64,
}

/// One check's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckSli {
    /// Check id.
    pub check: String,
    /// Its role.
    pub role: String,
    /// Its SLI across regions.
    #[serde(flatten)]
    pub sli: Sli,
}

/// Everything [`compute`] needs.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The vendor.
    pub vendor: &'a Vendor,
    /// Its checks and their roles, in catalog order.
    pub checks: &'a [(String, Role)],
    /// The window.
    pub window: Window,
    /// Rollup totals per (check, region) over the window.
    pub totals: &'a [CheckRegionTotals],
    /// State history: per scope the change in force at `from`, then the changes in the window.
    pub history: &'a [StateChange],
    /// Incidents overlapping the window.
    pub incidents: &'a [IncidentRow],
    /// When a coordinator was evaluating the vendor (spans, Unix ms, any order); `None`:
    /// always (no record of coverage to go by).
    pub coverage: Option<&'a [(i64, i64)]>,
    /// Now (Unix ms).
    pub now_ms: i64,
}

/// Reads what a report needs from the store and computes it.
pub fn sla_report(
    store: &dyn Store,
    vendor: &Vendor,
    checks: &[(String, Role)],
    window: Window,
    now_ms: i64,
) -> Result<SlaReport, StoreError> {
    let ids: Vec<String> = checks.iter().map(|(id, _)| id.clone()).collect();
    let totals = store.rollup_totals(&ids, window.from_ms, window.to_ms)?;
    let history = store.vendor_history(&vendor.id, window.from_ms, window.to_ms)?;
    let incidents = store.incidents_overlapping(
        SubjectKind::Vendor,
        &vendor.id,
        window.from_ms,
        window.to_ms,
        MAX_INCIDENTS,
    )?;
    let coverage = store.coverage(
        part_of(SubjectKind::Vendor, &vendor.id),
        window.from_ms,
        window.to_ms,
    )?;
    Ok(compute(&Inputs {
        vendor,
        checks,
        window,
        totals: &totals,
        history: &history,
        incidents: &incidents,
        coverage: Some(&coverage),
        now_ms,
    }))
}

fn minutes(ms: i64) -> f64 {
    ms as f64 / 60_000.0
}

/// The percentile `permille`/1000 of a histogram: the upper bound of the bucket holding the
/// run of rank ceil(p·n), and that bucket's index.
fn percentile(hist: &[u64; LATENCY_BUCKETS], permille: u64) -> Option<(usize, f64)> {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = (permille * n).div_ceil(1000).max(1);
    let mut seen = 0;
    for (i, c) in hist.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some((i, latency_bucket_upper(i)));
        }
    }
    None
}

/// The SLI of summed totals.
pub fn sli(t: &Totals) -> Sli {
    let valid = t.valid();
    let good = t.good();
    let p = |m| percentile(&t.latency, m).map(|(_, v)| v);
    Sli {
        runs: t.runs,
        valid,
        good,
        failed: valid - good,
        probe_errors: t.probe_errors,
        slow: t.slow,
        availability: (valid > 0).then(|| good as f64 / valid as f64),
        latency_ms: match (p(500), p(950), p(990)) {
            (Some(p50), Some(p95), Some(p99)) => Some(Percentiles { p50, p95, p99 }),
            _ => None,
        },
    }
}

/// Judges a scope's data-plane totals against the contract.
pub fn judge(t: &Totals, targets: &SlaTargets) -> ContractResult {
    let mut out = ContractResult::default();
    let valid = t.valid();
    let availability = (valid > 0).then(|| t.good() as f64 / valid as f64);
    if let Some(objective) = targets.availability {
        // Objectives are parsed from decimal text; compare with a hair of slack so that
        // 19,990 good runs of 20,000 meet "99.95%".
        let status = match availability {
            None => ObjectiveStatus::NoData,
            Some(a) if a < objective - 1e-12 => ObjectiveStatus::Breached,
            Some(_) => ObjectiveStatus::Met,
        };
        out.objectives.push(ObjectiveResult {
            objective: "availability".into(),
            target: objective,
            actual: availability,
            status,
        });
        let budget = 1.0 - objective;
        out.error_budget_used = availability.and_then(|a| {
            if budget > 1e-12 {
                Some(((1.0 - a) / budget).max(0.0))
            } else {
                (a >= 1.0).then_some(0.0)
            }
        });
    }
    for (name, permille, target) in [
        ("latency_p50", 500, targets.latency_p50_ms),
        ("latency_p95", 950, targets.latency_p95_ms),
        ("latency_p99", 990, targets.latency_p99_ms),
    ] {
        let Some(target) = target else { continue };
        let found = percentile(&t.latency, permille);
        let status = match found {
            None => ObjectiveStatus::NoData,
            Some((i, upper)) => {
                let lower = if i == 0 {
                    0.0
                } else {
                    latency_bucket_upper(i - 1)
                };
                if upper <= target {
                    ObjectiveStatus::Met
                } else if lower > target {
                    ObjectiveStatus::Breached
                } else {
                    ObjectiveStatus::Inconclusive
                }
            }
        };
        out.objectives.push(ObjectiveResult {
            objective: name.into(),
            target,
            actual: found.map(|(_, v)| v),
            status,
        });
    }
    out.broken = out
        .objectives
        .iter()
        .filter(|o| o.status == ObjectiveStatus::Breached)
        .map(|o| o.objective.clone())
        .collect();
    out.breach = !out.broken.is_empty();
    out
}

/// Minutes in each state of one scope over `[from, end)`, and the unrecorded part.
fn state_minutes(
    changes: &[&StateChange],
    coverage: Option<&[(i64, i64)]>,
    from_ms: i64,
    end_ms: i64,
) -> (BTreeMap<String, f64>, f64, f64) {
    let mut ms: BTreeMap<String, i64> = VendorState::ALL
        .iter()
        .map(|s| (s.as_label().to_owned(), 0))
        .collect();
    let unknown = VendorState::Unknown.as_label();
    let (mut unrecorded, mut unevaluated) = (0, 0);
    let covered = coverage.map(merged);
    let mut current: Option<&str> = None;
    let mut since = from_ms;
    let mut credit = |state: Option<&str>, a: i64, b: i64| {
        let (a, b) = (a.max(from_ms), b.min(end_ms));
        if b <= a {
            return;
        }
        let Some(s) = state else {
            unrecorded += b - a;
            *ms.entry(unknown.to_owned()).or_default() += b - a;
            return;
        };
        // The part of [a, b) some coordinator evaluated keeps the recorded state; the rest
        // is unknown.
        let seen = covered.as_ref().map_or(b - a, |c| overlap(c, a, b));
        *ms.entry(s.to_owned()).or_default() += seen;
        unevaluated += (b - a) - seen;
        *ms.entry(unknown.to_owned()).or_default() += (b - a) - seen;
    };
    for c in changes {
        let at = c.at_ms.max(from_ms);
        credit(current, since, at);
        current = Some(&c.state);
        since = at;
    }
    credit(current, since, end_ms);
    (
        ms.into_iter().map(|(k, v)| (k, minutes(v))).collect(),
        minutes(unrecorded),
        minutes(unevaluated),
    )
}

/// Spans sorted and merged where they touch or overlap.
fn merged(spans: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut s: Vec<(i64, i64)> = spans.iter().copied().filter(|(a, b)| b > a).collect();
    s.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(s.len());
    for (a, b) in s {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// How much of `[a, b)` merged spans cover.
fn overlap(spans: &[(i64, i64)], a: i64, b: i64) -> i64 {
    spans
        .iter()
        .map(|&(x, y)| (y.min(b) - x.max(a)).max(0))
        .sum()
}

/// Scope and regions of an incident, from its stored detail (what it is about now).
fn incident_scope(row: &IncidentRow) -> (SubjectScope, Vec<String>) {
    let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or_default();
    let subject = &detail["subject"];
    let scope = subject["scope"]
        .as_str()
        .and_then(SubjectScope::from_label)
        .unwrap_or_default();
    let regions = subject["regions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (scope, regions)
}

fn incident_span(row: &IncidentRow, window: Window, now_ms: i64) -> IncidentSpan {
    let (scope, regions) = incident_scope(row);
    let end = row.resolved_ms.unwrap_or(now_ms.max(row.opened_ms));
    let clipped = end.min(window.to_ms) - row.opened_ms.max(window.from_ms);
    IncidentSpan {
        id: row.id,
        state: row.state,
        summary: row.summary.clone(),
        scope,
        regions,
        opened_at: rfc3339(row.opened_ms),
        resolved_at: row.resolved_ms.map(rfc3339),
        ongoing: row.resolved_ms.is_none(),
        duration_minutes: minutes(end - row.opened_ms),
        in_window_minutes: minutes(clipped.max(0)),
    }
}

/// Computes a report from what the store holds.
pub fn compute(inp: &Inputs<'_>) -> SlaReport {
    let targets = SlaTargets::of(inp.vendor);
    let role_of: BTreeMap<&str, Role> = inp.checks.iter().map(|(c, r)| (c.as_str(), *r)).collect();
    let mut global = Totals::default();
    let mut regions: BTreeMap<String, Totals> = BTreeMap::new();
    let mut roles: BTreeMap<String, Totals> = [Role::Data, Role::Control, Role::Telemetry]
        .iter()
        .map(|r| (r.as_label().to_owned(), Totals::default()))
        .collect();
    let mut per_check: BTreeMap<&str, Totals> = BTreeMap::new();
    for t in inp.totals {
        let Some(role) = role_of.get(t.check_id.as_str()) else {
            continue;
        };
        per_check
            .entry(t.check_id.as_str())
            .or_default()
            .add(&t.totals);
        roles
            .entry(role.as_label().to_owned())
            .or_default()
            .add(&t.totals);
        let region = regions.entry(t.region.clone()).or_default();
        if *role == Role::Data {
            region.add(&t.totals);
            global.add(&t.totals);
        }
    }
    // Regions also come from the state history: a region with states but no data runs.
    for c in inp.history {
        if let Some(r) = &c.region {
            regions.entry(r.clone()).or_default();
        }
    }
    let window = inp.window;
    let end = window.to_ms.min(inp.now_ms.max(window.from_ms));
    let spans: Vec<IncidentSpan> = inp
        .incidents
        .iter()
        .map(|row| incident_span(row, window, inp.now_ms))
        .collect();
    let scope_report = |totals: &Totals, region: Option<&str>| {
        let changes: Vec<&StateChange> = inp
            .history
            .iter()
            .filter(|c| c.region.as_deref() == region)
            .collect();
        let (minutes_in_state, unrecorded_minutes, unevaluated_minutes) =
            state_minutes(&changes, inp.coverage, window.from_ms, end);
        let incidents = spans
            .iter()
            .filter(|s| match region {
                None => true,
                Some(r) => s.scope != SubjectScope::Regional || s.regions.iter().any(|x| x == r),
            })
            .cloned()
            .collect();
        ScopeReport {
            sli: sli(totals),
            minutes_in_state,
            unrecorded_minutes,
            unevaluated_minutes,
            incidents,
            contract: judge(totals, &targets),
        }
    };
    SlaReport {
        vendor: inp.vendor.id.clone(),
        name: inp.vendor.name.clone(),
        from: rfc3339(window.from_ms),
        to: rfc3339(window.to_ms),
        generated_at: rfc3339(inp.now_ms),
        window_minutes: minutes(window.to_ms - window.from_ms),
        latency_note: LATENCY_NOTE.to_owned(),
        global: scope_report(&global, None),
        regions: regions
            .iter()
            .map(|(r, t)| (r.clone(), scope_report(t, Some(r))))
            .collect(),
        roles: roles.iter().map(|(r, t)| (r.clone(), sli(t))).collect(),
        checks: inp
            .checks
            .iter()
            .map(|(id, role)| CheckSli {
                check: id.clone(),
                role: role.as_label().to_owned(),
                sli: sli(&per_check.get(id.as_str()).copied().unwrap_or_default()),
            })
            .collect(),
        sla: targets,
    }
}

/// One point of a latency series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Start of the bucket (Unix ms).
    pub start_ms: i64,
    /// Probe region.
    pub region: String,
    /// Runs in the bucket.
    pub runs: u64,
    /// good / valid runs; absent without valid runs.
    pub availability: Option<f64>,
    /// Median latency (bucket upper bound, ms).
    pub p50_ms: Option<f64>,
    /// 95th percentile latency (bucket upper bound, ms).
    pub p95_ms: Option<f64>,
}

/// Latency p50 and p95 (and availability) of one check per region per time bucket, for
/// charts: buckets of `bucket` aligned on the Unix epoch (so on UTC days for a bucket of whole
/// days), clipped to the window, read from the coarsest rollup tier that fits in a bucket.
pub fn latency_series(
    store: &dyn ReportStore,
    check: &str,
    window: Window,
    bucket: Duration,
) -> Result<Vec<SeriesPoint>, ReportError> {
    let bucket_ms = i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX);
    if bucket_ms < Tier::Minute.ms()
        || bucket_ms % Tier::Minute.ms() != 0
        || bucket > super::MAX_WINDOW
    {
        return Err(ReportError::Invalid(format!(
            "the bucket must be a whole number of minutes up to {} days, e.g. \"5m\" or \"1h\"; got {}",
            super::MAX_WINDOW.as_secs() / 86_400,
            vantage_checks::duration::format(bucket)
        )));
    }
    let first = window.from_ms - window.from_ms.rem_euclid(bucket_ms);
    let n = (window.to_ms - first + bucket_ms - 1) / bucket_ms;
    if n > MAX_SERIES_BUCKETS {
        return Err(ReportError::Invalid(format!(
            "{n} buckets of {} is too many; at most {MAX_SERIES_BUCKETS}: use larger buckets",
            vantage_checks::duration::format(bucket)
        )));
    }
    let rows = store.rollup_series(check, window.from_ms, window.to_ms, bucket_ms)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let s = sli(&r.totals);
            SeriesPoint {
                start_ms: r.start_ms,
                region: r.region,
                runs: s.runs,
                availability: s.availability,
                p50_ms: s.latency_ms.map(|p| p.p50),
                p95_ms: s.latency_ms.map(|p| p.p95),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(state: &str, at_ms: i64) -> StateChange {
        StateChange {
            region: None,
            state: state.to_owned(),
            at_ms,
        }
    }

    /// Issue 14: time in which no coordinator evaluated the vendor is unknown, whatever state
    /// was last recorded: a coordinator down for ten minutes of an operational hour leaves 50
    /// operational minutes and 10 unknown, not 60 operational.
    #[test]
    fn time_nobody_evaluated_counts_as_unknown() {
        const MIN: i64 = 60_000;
        let ok = change("operational", 0);
        let changes = vec![&ok];
        // Evaluated for the first 20 minutes and the last 30, by two coordinators whose
        // spans overlap a little; nobody between minute 20 and 30.
        let coverage = [(0, 15 * MIN), (10 * MIN, 20 * MIN), (30 * MIN, 60 * MIN)];
        let (minutes, unrecorded, unevaluated) =
            state_minutes(&changes, Some(&coverage), 0, 60 * MIN);
        assert_eq!(minutes["operational"], 50.0);
        assert_eq!(minutes["unknown"], 10.0);
        assert_eq!((unrecorded, unevaluated), (0.0, 10.0));
        // With no record of coverage (`None`), the recorded state holds throughout.
        let (minutes, _, unevaluated) = state_minutes(&changes, None, 0, 60 * MIN);
        assert_eq!((minutes["operational"], unevaluated), (60.0, 0.0));
        // Unrecorded time is unknown once, not also unevaluated.
        let late = change("hard_down", 40 * MIN);
        let (minutes, unrecorded, unevaluated) =
            state_minutes(&[&late], Some(&coverage), 0, 60 * MIN);
        assert_eq!((unrecorded, unevaluated), (40.0, 0.0));
        assert_eq!(minutes["hard_down"], 20.0);
        assert_eq!(minutes["unknown"], 40.0);
    }
}
