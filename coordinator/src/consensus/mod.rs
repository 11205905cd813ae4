//! Consensus windows: the pure core that turns raw results into per-check verdicts.
//!
//! [`evaluate`] is a plain function of the previous [`CheckState`], the fresh observations and
//! `now` (Unix milliseconds). It reads no clock and does no I/O, so every rule of ARCHITECTURE
//! §4 is table-tested with explicit time in `tests.rs`. The engine (`crate::engine`) keeps the
//! observations and calls it on every ingested batch and on a timer tick.
//!
//! The rules, per check:
//! 1. A probe is **fresh** if its latest result (ignoring `probe_error`s, which are the probe's
//!    fault) started within `window`; otherwise it is **silent** and does not vote.
//! 2. A fresh probe votes **failing** if its last `confirm` results failed, **slow** if its
//!    latest passed slower than `slow`, else **passing**. A quarantined probe does not vote.
//! 3. A region fails when at least `region_quorum` of its probes are fresh and failing votes
//!    reach `failing`.
//! 4. Globally the check fails when at least `quorum` probes are fresh, failing votes reach
//!    `failing`, and they come from at least `regions` regions (capped at the number of regions
//!    the check runs in). Fewer fresh probes than the quorum is **unknown**, never down.
//! 5. **No single vantage point decides.** In every scope, global or regional, a failing (or
//!    slow) verdict needs failing (slow) votes from at least two distinct probes, whatever the
//!    share or count says, and a scope with fewer than two fresh probes is unknown. One failing
//!    probe of two in a region is a suspect probe ([`suspect`]), not a regional outage: a probe
//!    whose own path to a vendor is bad (one ISP, one PoP) is the everyday case, and it must
//!    not page. `lone_probe_pages = true` lifts the rule for a check, for a region that has
//!    only one probe, at the price of paging on that probe's own trouble.
//! 6. Hysteresis: a new verdict must hold for `for` before the state takes it, and a failing
//!    state clears only after `recover_for` without a failing verdict. (The incident layer adds
//!    the flap window on top: a vendor failing again soon after clearing is the same incident.)
//!
//! Layout: [`quarantine`] sets broken probes aside; [`suspect`] names a probe that fails a
//! check alone; [`vendor`] derives vendor states from the verdicts of a vendor's checks.

pub mod quarantine;
pub mod suspect;
pub mod vendor;

#[cfg(test)]
pub(crate) mod props;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vantage_checks::model::{Settings, Threshold};
use vantage_checks::result::FailureKind;

/// Unix milliseconds.
pub type Ms = i64;

/// A check's verdict in one scope (globally or in one region).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Too few fresh probes to say anything.
    #[default]
    Unknown,
    /// The check passes.
    Passing,
    /// The check passes, but slow votes reach consensus.
    Slow,
    /// Failing votes reach consensus.
    Failing,
}

impl Verdict {
    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Passing => "passing",
            Self::Slow => "slow",
            Self::Failing => "failing",
        }
    }
}

/// What one run said, as consensus needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Passed in time.
    Ok,
    /// Passed, slower than the check's `slow`.
    Slow,
    /// The vendor failed the check.
    Fail(FailureKind),
    /// The probe could not test; never counts for or against the vendor.
    ProbeError,
}

/// One run of a check from one probe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Run {
    /// When it started (Unix ms).
    pub started_ms: Ms,
    /// Its outcome.
    pub outcome: Outcome,
    /// Its total time (ms).
    pub total_ms: f32,
}

/// The recent runs of one check from one probe.
#[derive(Clone, Copy, Debug)]
pub struct ProbeRuns<'a> {
    /// The probe.
    pub probe: &'a str,
    /// Its region.
    pub region: &'a str,
    /// Its runs, oldest first.
    pub runs: &'a [Run],
    /// The message of its latest run, if any (names the laggard servers, the bad status…).
    pub message: Option<&'a str>,
    /// Its votes are set aside ([`quarantine`]).
    pub quarantined: bool,
}

/// How one probe voted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// Fresh and passing.
    Passing,
    /// Fresh, passing, but slow.
    Slow,
    /// Fresh and failing (`confirm` failures in a row).
    Failing,
    /// No result within the window: does not vote.
    Silent,
    /// Only probe errors within the window: does not vote.
    ProbeError,
    /// Quarantined: its vote is set aside.
    Quarantined,
}

impl Vote {
    fn is_fresh(self) -> bool {
        matches!(self, Self::Passing | Self::Slow | Self::Failing)
    }
}

/// One probe's vote and what it rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeVote {
    /// The probe.
    pub probe: String,
    /// Its region.
    pub region: String,
    /// Its vote.
    pub vote: Vote,
    /// The failure kind of its latest failed run, when it votes failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// Start of its latest run (Unix ms), if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<Ms>,
    /// Total time of its latest run (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f32>,
    /// The message of its latest run, when it votes failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The count of votes behind a verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Fresh, voting probes.
    pub fresh: u32,
    /// Of which failing.
    pub failing: u32,
    /// Of which slow.
    pub slow: u32,
    /// Regions with at least one failing vote.
    pub failing_regions: BTreeSet<String>,
    /// Failing votes by failure label.
    pub failures: BTreeMap<String, u32>,
}

/// Why a check is judged as it is: every probe's vote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The global tally.
    pub global: Tally,
    /// The tally in each region.
    pub regions: BTreeMap<String, Tally>,
    /// Every probe's vote, by probe id.
    pub votes: Vec<ProbeVote>,
}

impl Evidence {
    /// The failure kind most failing votes give, if any vote fails.
    pub fn main_failure(&self) -> Option<&str> {
        let mut best: Option<(&str, u32)> = None;
        for (label, &n) in &self.global.failures {
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((label, n));
            }
        }
        best.map(|(l, _)| l)
    }

    /// The distinct messages of failing votes (in probe order, at most `max`).
    pub fn failing_messages(&self, max: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in &self.votes {
            if v.vote == Vote::Failing
                && let Some(m) = &v.message
                && !out.contains(m)
            {
                out.push(m.clone());
                if out.len() == max {
                    break;
                }
            }
        }
        out
    }
}

/// Where a verdict applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "region")]
pub enum Scope {
    /// Every region together.
    Global,
    /// One region.
    Region(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Global => f.write_str("global"),
            Self::Region(r) => write!(f, "region {r}"),
        }
    }
}

/// A verdict waiting out its hysteresis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The verdict the raw votes give.
    pub verdict: Verdict,
    /// Since when (Unix ms) the raw votes have left the state's verdict.
    pub since_ms: Ms,
}

/// The state of a check in one scope: its settled verdict and what is pending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeState {
    /// The verdict after hysteresis.
    pub verdict: Verdict,
    /// Since when (Unix ms) the verdict holds.
    pub since_ms: Ms,
    /// A different raw verdict waiting for `for` or `recover_for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// A check's state: globally and per region. Persisted, so a restart resumes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    /// Across regions.
    pub global: ScopeState,
    /// Per region.
    #[serde(default)]
    pub regions: BTreeMap<String, ScopeState>,
}

impl CheckState {
    /// The state in one scope (unknown for a region never seen).
    pub fn scope(&self, scope: &Scope) -> ScopeState {
        match scope {
            Scope::Global => self.global,
            Scope::Region(r) => self.regions.get(r).copied().unwrap_or_default(),
        }
    }

    /// True when the check fails anywhere, or the raw votes say it is about to.
    pub fn failing_anywhere(&self) -> bool {
        std::iter::once(&self.global)
            .chain(self.regions.values())
            .any(|s| {
                s.verdict == Verdict::Failing
                    || s.pending.is_some_and(|p| p.verdict == Verdict::Failing)
            })
    }
}

/// A settled verdict change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Where.
    pub scope: Scope,
    /// From this verdict.
    pub from: Verdict,
    /// To this one.
    pub to: Verdict,
    /// When (Unix ms).
    pub at_ms: Ms,
}

/// What one evaluation found.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The new state (persist it when it differs from the old).
    pub state: CheckState,
    /// The raw verdicts before hysteresis, by scope.
    pub raw: BTreeMap<Scope, Verdict>,
    /// Settled changes, global first.
    pub transitions: Vec<Transition>,
    /// The votes behind the verdicts.
    pub evidence: Evidence,
    /// Some fresh probe votes failing: probes should run the check at `failing_interval`.
    pub any_failing_vote: bool,
}

/// One probe's vote on a check at `now`.
pub fn vote(settings: &Settings, runs: &ProbeRuns<'_>, now: Ms) -> ProbeVote {
    let window_start = now - settings.window.as_millis() as Ms;
    // Newest first, probe errors aside: they are the probe's fault, not a vote.
    let mut judged = runs
        .runs
        .iter()
        .rev()
        .filter(|r| r.outcome != Outcome::ProbeError);
    let latest_any = runs.runs.last();
    let latest = judged.clone().next();
    let mut out = ProbeVote {
        probe: runs.probe.to_owned(),
        region: runs.region.to_owned(),
        vote: Vote::Silent,
        failure: None,
        started_ms: latest_any.map(|r| r.started_ms),
        total_ms: latest_any.map(|r| r.total_ms),
        message: None,
    };
    let fresh = latest.is_some_and(|r| r.started_ms >= window_start && r.started_ms <= now);
    if !fresh {
        let probe_errors_only = latest_any
            .is_some_and(|r| r.outcome == Outcome::ProbeError && r.started_ms >= window_start);
        out.vote = if probe_errors_only {
            Vote::ProbeError
        } else {
            Vote::Silent
        };
        return out;
    }
    if runs.quarantined {
        out.vote = Vote::Quarantined;
        return out;
    }
    let confirm = settings.confirm.max(1) as usize;
    let failed_in_a_row = judged
        .by_ref()
        .take(confirm)
        .take_while(|r| matches!(r.outcome, Outcome::Fail(_)))
        .count();
    let latest = latest.copied();
    out.started_ms = latest.map(|r| r.started_ms);
    out.total_ms = latest.map(|r| r.total_ms);
    out.vote = match latest.map(|r| r.outcome) {
        Some(Outcome::Fail(kind)) if failed_in_a_row >= confirm => {
            out.failure = Some(kind);
            out.message = runs.message.map(str::to_owned);
            Vote::Failing
        }
        Some(Outcome::Slow) => Vote::Slow,
        _ => Vote::Passing,
    };
    out
}

fn tally<'a>(votes: impl Iterator<Item = &'a ProbeVote>) -> Tally {
    let mut t = Tally::default();
    for v in votes.filter(|v| v.vote.is_fresh()) {
        t.fresh += 1;
        match v.vote {
            Vote::Failing => {
                t.failing += 1;
                t.failing_regions.insert(v.region.clone());
                if let Some(kind) = v.failure {
                    *t.failures.entry(kind.as_label().to_owned()).or_default() += 1;
                }
            }
            Vote::Slow => t.slow += 1,
            _ => {}
        }
    }
    t
}

/// The raw global verdict of a tally. `expected_regions` is how many regions run the check.
pub fn global_verdict(settings: &Settings, t: &Tally, expected_regions: u32) -> Verdict {
    if t.fresh < settings.quorum.max(settings.min_voters()) {
        return Verdict::Unknown;
    }
    let regions_needed = settings.regions.min(expected_regions.max(1)) as usize;
    let enough_regions = t.failing_regions.len() >= regions_needed;
    judge(settings, settings.failing, t, enough_regions)
}

/// The raw verdict of one region's tally.
pub fn region_verdict(settings: &Settings, t: &Tally) -> Verdict {
    if t.fresh < settings.region_quorum.max(settings.min_voters()) {
        return Verdict::Unknown;
    }
    // A count larger than the region cannot be reached there; cap it at the region's size.
    let threshold = match settings.failing {
        Threshold::Count(n) => Threshold::Count(n.min(t.fresh)),
        share => share,
    };
    judge(settings, threshold, t, true)
}

/// Failing, slow or passing, once the scope has its quorum: the share or count of failing
/// (slow) votes must be reached, and by at least [`Settings::min_voters`] distinct probes.
fn judge(settings: &Settings, threshold: Threshold, t: &Tally, enough_regions: bool) -> Verdict {
    let voters = settings.min_voters();
    if t.failing >= voters && threshold.reached(t.failing, t.fresh) && enough_regions {
        Verdict::Failing
    } else if t.slow >= voters && threshold.reached(t.slow, t.fresh) {
        Verdict::Slow
    } else {
        Verdict::Passing
    }
}

/// Applies hysteresis to one scope: returns the new state and, if the verdict settled on a
/// new value, the transition.
pub fn settle(
    settings: &Settings,
    prev: ScopeState,
    raw: Verdict,
    scope: &Scope,
    now: Ms,
) -> (ScopeState, Option<Transition>) {
    if raw == prev.verdict {
        return (
            ScopeState {
                pending: None,
                ..prev
            },
            None,
        );
    }
    let leaving_failure = prev.verdict == Verdict::Failing;
    let since_ms = match prev.pending {
        // Recovery counts from the first moment the failing verdict was absent, whatever
        // non-failing verdicts came since; any other change must hold as one verdict.
        Some(p) if leaving_failure || p.verdict == raw => p.since_ms,
        _ => now,
    };
    let hold = if leaving_failure || (prev.verdict == Verdict::Slow && raw != Verdict::Failing) {
        settings.recover_for
    } else {
        settings.hold_for
    };
    if now - since_ms >= hold.as_millis() as Ms {
        let next = ScopeState {
            verdict: raw,
            since_ms: now,
            pending: None,
        };
        let t = Transition {
            scope: scope.clone(),
            from: prev.verdict,
            to: raw,
            at_ms: now,
        };
        (next, Some(t))
    } else {
        let next = ScopeState {
            pending: Some(Pending {
                verdict: raw,
                since_ms,
            }),
            ..prev
        };
        (next, None)
    }
}

/// Evaluates one check at `now`.
///
/// `probes` are the probes that ran the check recently (silent ones included, so that their
/// region is known); `expected_regions` is how many regions have probes selected to run it.
pub fn evaluate(
    settings: &Settings,
    prev: &CheckState,
    probes: &[ProbeRuns<'_>],
    expected_regions: u32,
    now: Ms,
) -> Evaluation {
    let votes: Vec<ProbeVote> = probes.iter().map(|p| vote(settings, p, now)).collect();
    let global = tally(votes.iter());
    let mut regions: BTreeMap<String, Tally> = BTreeMap::new();
    for region in votes.iter().map(|v| v.region.as_str()) {
        if !regions.contains_key(region) {
            let t = tally(votes.iter().filter(|v| v.region == region));
            regions.insert(region.to_owned(), t);
        }
    }
    let mut raw = BTreeMap::new();
    raw.insert(
        Scope::Global,
        global_verdict(settings, &global, expected_regions),
    );
    for (region, t) in &regions {
        raw.insert(Scope::Region(region.clone()), region_verdict(settings, t));
    }
    // Regions in the old state with no probe left are unknown now.
    for region in prev.regions.keys() {
        raw.entry(Scope::Region(region.clone()))
            .or_insert(Verdict::Unknown);
    }

    let mut state = CheckState::default();
    let mut transitions = Vec::new();
    for (scope, &verdict) in &raw {
        let (next, t) = settle(settings, prev.scope(scope), verdict, scope, now);
        match scope {
            Scope::Global => state.global = next,
            Scope::Region(r) => {
                state.regions.insert(r.clone(), next);
            }
        }
        transitions.extend(t);
    }
    let any_failing_vote = global.failing > 0;
    Evaluation {
        state,
        raw,
        transitions,
        evidence: Evidence {
            global,
            regions,
            votes,
        },
        any_failing_vote,
    }
}
