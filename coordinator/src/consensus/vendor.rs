//! Vendor state: what the settled verdicts of a vendor's checks mean, by role.
//!
//! | state | when |
//! | --- | --- |
//! | `operational` | every check passes |
//! | `degraded` | data-plane checks pass, but slow votes reach consensus (or data consistency) |
//! | `limited_visibility` | a `telemetry` check fails |
//! | `api_down` | a `control` check fails |
//! | `hard_down` | a data-plane check fails by consensus |
//! | `unknown` | no quorum, and nothing else is wrong |
//!
//! Conditions coexist; the headline is the worst. The same derivation runs per region.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vantage_checks::model::Role;

use super::{CheckState, Evidence, Scope, Verdict};

/// A vendor's headline state, in order of severity.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum VendorState {
    /// Every check passes.
    Operational,
    /// Not enough fresh probes to judge, and nothing is known to be wrong.
    #[default]
    Unknown,
    /// Slow, or serving inconsistent data, but up.
    Degraded,
    /// Reporting or log delivery is down or stale.
    LimitedVisibility,
    /// The control plane is down; the data plane is up.
    ApiDown,
    /// The data plane fails by consensus.
    HardDown,
}

impl VendorState {
    /// Every state, least severe first.
    pub const ALL: [VendorState; 6] = [
        Self::Operational,
        Self::Unknown,
        Self::Degraded,
        Self::LimitedVisibility,
        Self::ApiDown,
        Self::HardDown,
    ];

    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Operational => "operational",
            Self::Unknown => "unknown",
            Self::Degraded => "degraded",
            Self::LimitedVisibility => "limited_visibility",
            Self::ApiDown => "api_down",
            Self::HardDown => "hard_down",
        }
    }

    /// Parses a label.
    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_label() == s)
    }

    /// True for the states that mean something is wrong (worth an incident).
    pub fn is_bad(self) -> bool {
        self > Self::Unknown
    }
}

/// One thing wrong with a vendor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// A data-plane check fails.
    HardDown,
    /// A control check fails.
    ApiDown,
    /// A telemetry check fails.
    LimitedVisibility,
    /// A data-plane check is slow.
    Degraded,
    /// Servers disagree on the data (DNS SOA serials, delegation).
    DataConsistency,
}

impl ConditionKind {
    /// The state this condition puts the vendor in.
    pub fn state(self) -> VendorState {
        match self {
            Self::HardDown => VendorState::HardDown,
            Self::ApiDown => VendorState::ApiDown,
            Self::LimitedVisibility => VendorState::LimitedVisibility,
            Self::Degraded | Self::DataConsistency => VendorState::Degraded,
        }
    }

    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::HardDown => "hard_down",
            Self::ApiDown => "api_down",
            Self::LimitedVisibility => "limited_visibility",
            Self::Degraded => "degraded",
            Self::DataConsistency => "data_consistency",
        }
    }
}

/// An active condition: what, which checks, and the details the votes give.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// What is wrong.
    pub kind: ConditionKind,
    /// The checks that show it.
    pub checks: Vec<String>,
    /// The main failure labels of those checks.
    #[serde(default)]
    pub failures: Vec<String>,
    /// What the failing probes said (for data consistency: the servers that lag).
    #[serde(default)]
    pub detail: Vec<String>,
}

/// A vendor's state in one scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeStatus {
    /// The worst active condition's state, or unknown/operational.
    pub state: VendorState,
    /// Every active condition, worst first.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Something is wrong, and every check behind it is waiting out `recover_for`: the raw
    /// votes are already fine. A narrower page now would be noise just before the resolve.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clearing: bool,
}

/// A vendor's state, globally and per region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorStatus {
    /// Across regions.
    pub global: ScopeStatus,
    /// Per region.
    #[serde(default)]
    pub regions: BTreeMap<String, ScopeStatus>,
    /// Some check's global verdict is about to turn failing or slow: a region that already
    /// has is likely the start of a global problem, so a regional incident waits for it.
    #[serde(default)]
    pub global_pending: bool,
}

impl VendorStatus {
    /// The regions whose state is bad and worse than the global one: a regional outage.
    pub fn regional_outages(&self) -> Vec<(&str, VendorState)> {
        self.regions
            .iter()
            .filter(|(_, s)| s.state.is_bad() && s.state > self.global.state)
            .map(|(r, s)| (r.as_str(), s.state))
            .collect()
    }

    /// The worst state in any scope.
    pub fn worst(&self) -> VendorState {
        self.regions
            .values()
            .map(|s| s.state)
            .chain([self.global.state])
            .max()
            .unwrap_or_default()
    }
}

/// One check's settled state and evidence, as the vendor derivation needs it.
#[derive(Clone, Copy, Debug)]
pub struct CheckView<'a> {
    /// The check id.
    pub check: &'a str,
    /// Its role.
    pub role: Role,
    /// Its settled state.
    pub state: &'a CheckState,
    /// The latest votes.
    pub evidence: &'a Evidence,
}

/// Failure labels that mean the servers disagree, not that they are down.
const CONSISTENCY_FAILURES: [&str; 2] = ["soa_serial_mismatch", "delegation_mismatch"];

/// True when `previous` shows `check` behind a data consistency condition.
fn was_consistency(previous: Option<&ScopeStatus>, check: &str) -> bool {
    previous.is_some_and(|p| {
        p.conditions.iter().any(|c| {
            c.kind == ConditionKind::DataConsistency && c.checks.iter().any(|x| x == check)
        })
    })
}

fn scope_status(
    checks: &[CheckView<'_>],
    scope: &Scope,
    previous: Option<&ScopeStatus>,
) -> Option<ScopeStatus> {
    let mut by_kind: BTreeMap<ConditionKind, Condition> = BTreeMap::new();
    let mut any = false;
    let mut unknown = false;
    let mut all_recovering = true;
    for c in checks {
        if let Scope::Region(r) = scope
            && !c.state.regions.contains_key(r)
        {
            continue;
        }
        any = true;
        let tally = match scope {
            Scope::Global => Some(&c.evidence.global),
            Scope::Region(r) => c.evidence.regions.get(r),
        };
        let main_failure = tally.and_then(|t| {
            t.failures
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(l, _)| l.clone())
        });
        let kind = match (c.state.scope(scope).verdict, c.role) {
            (Verdict::Unknown, _) => {
                unknown = true;
                continue;
            }
            (Verdict::Passing, _) => continue,
            (Verdict::Slow, Role::Data) => ConditionKind::Degraded,
            (Verdict::Slow, _) => continue,
            (Verdict::Failing, Role::Data)
                if main_failure
                    .as_deref()
                    .is_some_and(|f| CONSISTENCY_FAILURES.contains(&f)) =>
            {
                ConditionKind::DataConsistency
            }
            // Recovering (still failing until `recover_for` has passed, but no failing vote
            // left to say why): it stays what it was, rather than turn into an outage.
            (Verdict::Failing, Role::Data)
                if main_failure.is_none() && was_consistency(previous, c.check) =>
            {
                ConditionKind::DataConsistency
            }
            (Verdict::Failing, Role::Data) => ConditionKind::HardDown,
            (Verdict::Failing, Role::Control) => ConditionKind::ApiDown,
            (Verdict::Failing, Role::Telemetry) => ConditionKind::LimitedVisibility,
        };
        all_recovering &= recovering(c.state.scope(scope));
        let cond = by_kind.entry(kind).or_insert_with(|| Condition {
            kind,
            checks: Vec::new(),
            failures: Vec::new(),
            detail: Vec::new(),
        });
        cond.checks.push(c.check.to_owned());
        if let Some(f) = main_failure
            && !cond.failures.contains(&f)
        {
            cond.failures.push(f);
        }
        for m in c.evidence.failing_messages(5) {
            let in_scope = match scope {
                Scope::Global => true,
                Scope::Region(r) => c
                    .evidence
                    .votes
                    .iter()
                    .any(|v| &v.region == r && v.message.as_deref() == Some(m.as_str())),
            };
            if in_scope && !cond.detail.contains(&m) {
                cond.detail.push(m);
            }
        }
    }
    if !any {
        return None;
    }
    let mut conditions: Vec<Condition> = by_kind.into_values().collect();
    conditions.sort_by_key(|c| std::cmp::Reverse(c.kind.state()));
    let state = conditions
        .iter()
        .map(|c| c.kind.state())
        .max()
        .unwrap_or(if unknown {
            VendorState::Unknown
        } else {
            VendorState::Operational
        });
    let clearing = !conditions.is_empty() && all_recovering;
    Some(ScopeStatus {
        state,
        conditions,
        clearing,
    })
}

/// True when a bad settled verdict is on its way out: the raw verdict is already better and
/// only the hysteresis holds it.
fn recovering(s: super::ScopeState) -> bool {
    s.pending.is_some_and(|p| match s.verdict {
        Verdict::Failing => p.verdict != Verdict::Failing,
        Verdict::Slow => !matches!(p.verdict, Verdict::Slow | Verdict::Failing),
        Verdict::Passing | Verdict::Unknown => false,
    })
}

/// Derives a vendor's state from its checks.
pub fn derive(checks: &[CheckView<'_>]) -> VendorStatus {
    derive_after(None, checks)
}

/// Derives a vendor's state from its checks, given its previous state: a check that is
/// recovering keeps the condition it had (a data consistency problem clearing is not an
/// outage), since its votes no longer say why it failed.
pub fn derive_after(previous: Option<&VendorStatus>, checks: &[CheckView<'_>]) -> VendorStatus {
    let regions: BTreeSet<&String> = checks.iter().flat_map(|c| c.state.regions.keys()).collect();
    let global_pending = checks.iter().any(|c| {
        c.state.global.pending.is_some_and(|p| {
            matches!(p.verdict, Verdict::Failing | Verdict::Slow)
                && p.verdict != c.state.global.verdict
        })
    });
    VendorStatus {
        global_pending,
        global: scope_status(checks, &Scope::Global, previous.map(|p| &p.global))
            .unwrap_or_default(),
        regions: regions
            .into_iter()
            .filter_map(|r| {
                let before = previous.and_then(|p| p.regions.get(r));
                scope_status(checks, &Scope::Region(r.clone()), before).map(|s| (r.clone(), s))
            })
            .collect(),
    }
}
