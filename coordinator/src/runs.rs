//! On-demand regression runs (`POST /api/v1/runs`): which checks and probes a request selects,
//! how probes hear of a new run at once, and what a run looks like to its reader.
//!
//! **How a probe hears of a run: a long poll.** Each probe keeps one
//! `GET /api/v1/probe/runs?after=ID&wait=20` open. The coordinator answers it as soon as a run
//! owes results from that probe, or with no runs after `wait`. A run reaches a probe within
//! milliseconds of its `POST` on the same coordinator ([`Board`] wakes every waiting poll), and
//! within [`FOLLOW_EVERY`] when another coordinator on a shared store took the `POST`. A long
//! poll is an ordinary request: it goes through the probe's HTTPS client, its failover list
//! and any proxy unchanged, and needs no state on the coordinator. A push ack would come only
//! as fast as the probe's next batch of results (an interval away for a probe with slow
//! checks); a stream would need the same reconnect and failover logic as the poll, for no gain
//! at this rate of runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;
use vantage_checks::model::CheckSet;
use vantage_checks::result::CheckResult;

use crate::store::run::{NewRun, RunProbe, RunRecord, RunResultRow};
use crate::store::{ProbeRecord, Store};

/// How often a coordinator on a shared store looks for runs that others took.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// A run waits this long for its results unless the request says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// The shortest and longest wait a request may ask for.
pub const WAIT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));
/// A probe is selected only when it was heard from this recently: one that stopped long ago
/// would only make every run time out.
pub const LIVE_WITHIN: Duration = Duration::from_secs(120);
/// The longest label.
pub const MAX_LABEL: usize = 200;
/// The most checks one request may name.
pub const MAX_CHECKS: usize = 1000;

/// The newest run id this coordinator knows of; long polls wait on it.
#[derive(Debug)]
pub struct Board {
    latest: watch::Sender<i64>,
}

impl Board {
    /// A board that knows of runs up to `latest`.
    pub fn new(latest: i64) -> Self {
        Self {
            latest: watch::Sender::new(latest),
        }
    }

    /// A run `id` exists: wakes the long polls if it is new.
    pub fn announce(&self, id: i64) {
        self.latest.send_if_modified(|v| {
            let newer = id > *v;
            if newer {
                *v = id;
            }
            newer
        });
    }

    /// Notified at each new run.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }
}

/// Follows the runs other coordinators store (a shared store): every [`FOLLOW_EVERY`].
pub async fn follow(board: Arc<Board>, store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || s.last_run_id()).await {
            Ok(Ok(id)) => board.announce(id),
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot look for new runs"),
            Err(_) => {}
        }
    }
}

/// The body of `POST /api/v1/runs`. Absent options are left out when written (the CLI), so
/// that the coordinator applies its own defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The vendor (required).
    pub vendor: String,
    /// Checks by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// A suite: the vendor's checks in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// Only probes in these regions (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How long the run waits for its results (`"60s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
}

/// Resolves a request against the checks and the probes: the run to store, or why the request
/// cannot be run (a 422: an unknown vendor, check, suite or region, or no probe selected).
///
/// Checks: those named, plus those of the suite; neither given, every check of the vendor
/// (`on_demand` ones included). Probes: live ones (heard from within [`LIVE_WITHIN`], not
/// revoked) in the regions asked for, each with the selected checks that select it.
pub fn select(
    req: &RunRequest,
    set: &CheckSet,
    probes: &[ProbeRecord],
    now_ms: i64,
) -> Result<NewRun, String> {
    let vendor = set.vendor(&req.vendor).ok_or_else(|| {
        let known: Vec<&str> = set.vendors.iter().map(|v| v.id.as_str()).collect();
        format!(
            "no vendor `{}`; the vendors are: {}",
            req.vendor,
            known.join(", ")
        )
    })?;
    if req.checks.len() > MAX_CHECKS {
        return Err(format!(
            "{} checks named; at most {MAX_CHECKS}",
            req.checks.len()
        ));
    }
    if let Some(label) = &req.label
        && label.chars().count() > MAX_LABEL
    {
        return Err(format!("`label` is longer than {MAX_LABEL} characters"));
    }
    let wait = match &req.wait {
        None => DEFAULT_WAIT,
        Some(w) => vantage_checks::duration::parse(w)
            .map_err(|e| format!("`wait`: {e}"))
            .and_then(|d| {
                if (WAIT_RANGE.0..=WAIT_RANGE.1).contains(&d) {
                    Ok(d)
                } else {
                    Err(format!(
                        "`wait` must be from {} to {}; got `{w}`",
                        vantage_checks::duration::format(WAIT_RANGE.0),
                        vantage_checks::duration::format(WAIT_RANGE.1)
                    ))
                }
            })?,
    };
    let of_vendor = |id: &str| {
        set.checks
            .iter()
            .find(|c| c.id == id && c.vendor == vendor.id)
    };
    let mut checks = BTreeSet::new();
    for id in &req.checks {
        match of_vendor(id) {
            Some(c) => {
                checks.insert(c.id.clone());
            }
            None if set.check(id).is_some() => {
                return Err(format!(
                    "check `{id}` belongs to another vendor, not `{}`",
                    vendor.id
                ));
            }
            None => return Err(format!("no check `{id}`")),
        }
    }
    if let Some(suite) = &req.suite {
        let mut any = false;
        for c in set.checks.iter().filter(|c| c.vendor == vendor.id) {
            if c.suites.iter().any(|s| s == suite) {
                checks.insert(c.id.clone());
                any = true;
            }
        }
        if !any {
            let mut suites: BTreeSet<&str> = BTreeSet::new();
            for c in set.checks.iter().filter(|c| c.vendor == vendor.id) {
                suites.extend(c.suites.iter().map(String::as_str));
            }
            return Err(format!(
                "no check of `{}` is in suite `{suite}`; its suites are: {}",
                vendor.id,
                if suites.is_empty() {
                    "(none)".to_owned()
                } else {
                    suites.into_iter().collect::<Vec<_>>().join(", ")
                }
            ));
        }
    }
    if req.checks.is_empty() && req.suite.is_none() {
        checks.extend(
            set.checks
                .iter()
                .filter(|c| c.vendor == vendor.id)
                .map(|c| c.id.clone()),
        );
    }
    if checks.is_empty() {
        return Err(format!("vendor `{}` has no checks", vendor.id));
    }
    let live: Vec<&ProbeRecord> = probes
        .iter()
        .filter(|p| p.revoked_ms.is_none())
        .filter(|p| {
            p.last_seen_ms
                .is_some_and(|seen| now_ms - seen <= LIVE_WITHIN.as_millis() as i64)
        })
        .collect();
    let regions: BTreeSet<&str> = req.regions.iter().map(String::as_str).collect();
    let known: BTreeSet<&str> = probes
        .iter()
        .filter(|p| p.revoked_ms.is_none())
        .map(|p| p.region.as_str())
        .collect();
    if let Some(r) = regions.iter().find(|r| !known.contains(*r)) {
        return Err(format!(
            "no probe is registered in region `{r}`; the regions are: {}",
            known.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    // The selected checks, looked up once (by id order), not once a probe.
    let mut chosen: Vec<&vantage_checks::model::Check> = set
        .checks
        .iter()
        .filter(|c| checks.contains(&c.id))
        .collect();
    chosen.sort_by(|a, b| a.id.cmp(&b.id));
    let mut selected = Vec::new();
    for p in live {
        if !regions.is_empty() && !regions.contains(p.region.as_str()) {
            continue;
        }
        let mine: Vec<String> = chosen
            .iter()
            .filter(|c| c.probes.selects(&p.region, &p.labels))
            .map(|c| c.id.clone())
            .collect();
        if !mine.is_empty() {
            selected.push(RunProbe {
                id: p.id.clone(),
                region: p.region.clone(),
                checks: mine,
            });
        }
    }
    if selected.is_empty() {
        return Err(format!(
            "no probe selected: no live probe (heard from in the last {}){} runs {}",
            vantage_checks::duration::format(LIVE_WITHIN),
            if regions.is_empty() {
                String::new()
            } else {
                format!(" in {}", regions.into_iter().collect::<Vec<_>>().join(", "))
            },
            if checks.len() == 1 {
                "that check"
            } else {
                "any of those checks"
            }
        ));
    }
    selected.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(NewRun {
        vendor: vendor.id.clone(),
        label: req.label.clone(),
        suite: req.suite.clone(),
        checks: checks.into_iter().collect(),
        regions: req.regions.clone(),
        probes: selected,
        created_ms: now_ms,
        deadline_ms: now_ms + wait.as_millis() as i64,
    })
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for results, before its deadline.
    Running,
    /// Every (check, probe) reported.
    Done,
    /// The deadline passed first.
    TimedOut,
}

impl RunState {
    /// The stable label, as in the API.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::TimedOut => "timed_out",
        }
    }
}

/// A probe of a run, as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewProbe {
    /// Probe id.
    pub id: String,
    /// Its region.
    pub region: String,
}

/// One (check, probe) of a run and its result, if it came.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Check id.
    pub check: String,
    /// Probe id.
    pub probe: String,
    /// The probe's region.
    pub region: String,
    /// The result; `null` while it is missing.
    pub result: Option<CheckResult>,
}

/// A run as `GET /api/v1/runs/{id}` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// Run id.
    pub id: i64,
    /// Vendor.
    pub vendor: String,
    /// Label, if any.
    #[serde(default)]
    pub label: Option<String>,
    /// Suite, if asked for by one.
    #[serde(default)]
    pub suite: Option<String>,
    /// The checks.
    pub checks: Vec<String>,
    /// The regions asked for (empty: all).
    pub regions: Vec<String>,
    /// The probes selected.
    pub probes: Vec<ViewProbe>,
    /// When it was asked for (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// When it stops waiting (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// Where it stands.
    pub state: RunState,
    /// Probes that have sent every result the run asks of them.
    #[serde(default)]
    pub reported: Vec<String>,
    /// Probes that still owe a result.
    #[serde(default)]
    pub missing: Vec<String>,
    /// Every (check, probe), by check then probe.
    pub results: Vec<Pair>,
}

/// A Unix millisecond as a time.
fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The view of a run and the results it has, at `now_ms`.
pub fn view(rec: &RunRecord, results: Vec<RunResultRow>, now_ms: i64) -> RunView {
    let mut got: BTreeMap<(String, String), CheckResult> = results
        .into_iter()
        .map(|r| {
            (
                (r.result.check_id.clone(), r.result.probe_id.clone()),
                r.result,
            )
        })
        .collect();
    let mut pairs = Vec::new();
    let mut missing = BTreeSet::new();
    for check in &rec.run.checks {
        for p in &rec.run.probes {
            if !p.checks.contains(check) {
                continue;
            }
            let result = got.remove(&(check.clone(), p.id.clone()));
            if result.is_none() {
                missing.insert(p.id.clone());
            }
            pairs.push(Pair {
                check: check.clone(),
                probe: p.id.clone(),
                region: p.region.clone(),
                result,
            });
        }
    }
    let state = if missing.is_empty() {
        RunState::Done
    } else if now_ms >= rec.run.deadline_ms {
        RunState::TimedOut
    } else {
        RunState::Running
    };
    RunView {
        id: rec.id,
        vendor: rec.run.vendor.clone(),
        label: rec.run.label.clone(),
        suite: rec.run.suite.clone(),
        checks: rec.run.checks.clone(),
        regions: rec.run.regions.clone(),
        probes: rec
            .run
            .probes
            .iter()
            .map(|p| ViewProbe {
                id: p.id.clone(),
                region: p.region.clone(),
            })
            .collect(),
        created: at(rec.run.created_ms),
        deadline: at(rec.run.deadline_ms),
        state,
        reported: rec
            .run
            .probes
            .iter()
            .filter(|p| !missing.contains(&p.id))
            .map(|p| p.id.clone())
            .collect(),
        missing: missing.into_iter().collect(),
        results: pairs,
    }
}
