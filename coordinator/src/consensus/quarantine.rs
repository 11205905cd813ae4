//! Probe quarantine: a broken vantage point must not page anyone.
//!
//! A probe that votes failing on checks of several unrelated vendors at once, while the other
//! probes running those checks mostly see them pass, is most likely broken itself (its
//! network, its resolver, its clock). [`assess`] sets such a probe aside: its votes stop
//! counting until it has agreed with its peers again for `readmit_after`.
//!
//! Pure, like the rest of consensus: previous health, this round's votes and `now` in,
//! the new health and the changes out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Ms, ProbeVote, Vote};

/// Quarantine settings (`[quarantine]` in coordinator.toml).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineSettings {
    /// A probe disagreeing with its peers on checks of at least this many vendors is
    /// quarantined.
    pub min_vendors: usize,
    /// A quarantined probe is readmitted after agreeing with its peers this long.
    pub readmit_after: Duration,
}

impl Default for QuarantineSettings {
    fn default() -> Self {
        Self {
            min_vendors: 2,
            readmit_after: Duration::from_secs(30),
        }
    }
}

/// The votes on one check, computed with nobody quarantined.
#[derive(Clone, Copy, Debug)]
pub struct CheckVotes<'a> {
    /// The check.
    pub check: &'a str,
    /// Its vendor.
    pub vendor: &'a str,
    /// Every probe's vote.
    pub votes: &'a [ProbeVote],
}

/// A probe's health as consensus sees it. Persisted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeHealth {
    /// Its votes are set aside.
    pub quarantined: bool,
    /// Since when (Unix ms) the probe is quarantined, or healthy.
    pub since_ms: Ms,
    /// While quarantined: since when it has agreed with its peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreeing_since_ms: Option<Ms>,
    /// The vendors it disagreed on when it was quarantined (or last round, while quarantined).
    #[serde(default)]
    pub vendors: Vec<String>,
    /// The checks it disagreed on.
    #[serde(default)]
    pub checks: Vec<String>,
}

/// A change of a probe's health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthChange {
    /// The probe.
    pub probe: String,
    /// Quarantined (true) or readmitted (false).
    pub quarantined: bool,
    /// When.
    pub at_ms: Ms,
    /// The vendors it disagreed on.
    pub vendors: Vec<String>,
    /// The checks it disagreed on.
    pub checks: Vec<String>,
}

/// What each probe disagrees on: vendors and checks where it votes failing while fewer than
/// half of its fresh peers do. Probes with a fresh vote and no disagreement map to empty sets.
fn disagreements(
    checks: &[CheckVotes<'_>],
) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for c in checks {
        let fresh: Vec<&ProbeVote> = c.votes.iter().filter(|v| v.vote.is_fresh()).collect();
        let failing = fresh.iter().filter(|v| v.vote == Vote::Failing).count();
        for v in &fresh {
            let entry = out.entry(v.probe.clone()).or_default();
            if v.vote != Vote::Failing {
                continue;
            }
            let peers = fresh.len() - 1;
            let peers_failing = failing - 1;
            // The peers see the check fine: there are some, and fewer than half fail it.
            if peers > 0 && peers_failing * 2 < peers {
                entry.0.insert(c.vendor.to_owned());
                entry.1.insert(c.check.to_owned());
            }
        }
    }
    out
}

/// Updates every probe's health from this round's votes.
pub fn assess(
    settings: &QuarantineSettings,
    prev: &BTreeMap<String, ProbeHealth>,
    checks: &[CheckVotes<'_>],
    now: Ms,
) -> (BTreeMap<String, ProbeHealth>, Vec<HealthChange>) {
    let found = disagreements(checks);
    let mut next = prev.clone();
    let mut changes = Vec::new();
    let readmit = settings.readmit_after.as_millis() as Ms;
    for (probe, (vendors, checks)) in found {
        let health = next.entry(probe.clone()).or_default();
        if !health.quarantined {
            if vendors.len() >= settings.min_vendors.max(1) {
                *health = ProbeHealth {
                    quarantined: true,
                    since_ms: now,
                    agreeing_since_ms: None,
                    vendors: vendors.iter().cloned().collect(),
                    checks: checks.iter().cloned().collect(),
                };
                changes.push(HealthChange {
                    probe,
                    quarantined: true,
                    at_ms: now,
                    vendors: health.vendors.clone(),
                    checks: health.checks.clone(),
                });
            }
            continue;
        }
        if !vendors.is_empty() {
            health.agreeing_since_ms = None;
            continue;
        }
        let since = *health.agreeing_since_ms.get_or_insert(now);
        if now - since >= readmit {
            changes.push(HealthChange {
                probe: probe.clone(),
                quarantined: false,
                at_ms: now,
                vendors: health.vendors.clone(),
                checks: health.checks.clone(),
            });
            *health = ProbeHealth {
                quarantined: false,
                since_ms: now,
                ..ProbeHealth::default()
            };
        }
    }
    (next, changes)
}
