//! Suspect probes: a probe that fails a check alone is shown, not believed.
//!
//! The two-probe rule (rule 5 in [`super`]) keeps one probe's failures from ever making a
//! verdict. They are still worth seeing: a probe whose own path to one vendor is bad (its ISP,
//! the PoP it lands on) is the everyday case, and the SRE wants to know which probe it is and
//! on which check, without being paged for it.
//!
//! A probe is the **lone dissenter** on a check when, within the check's `window`, it has
//! failed (or been slow) while at least two other fresh probes have not; or it has failed at
//! least twice while each other probe did at most once, a blip that says nothing (a loaded
//! host's one timeout must not hide the probe that fails every other run). Dissenting for
//! longer than `window` makes it **suspect** on that check. Breaks shorter than a window do
//! not end a dissent (a lucky run of passes), so a probe that fails half its runs at random
//! stays suspect for as long as it keeps doing so; it stops being suspect once it has not
//! dissented for a whole window.
//!
//! Suspicion is a label, not a penalty: the probe's results are still stored and still vote.
//! Quarantine ([`super::quarantine`]), which sets votes aside, keeps its own rule: failures
//! across several vendors at once.
//!
//! Pure, like the rest of consensus: the previous marks, this round's findings and `now` in,
//! the new marks and the changes out. Marks live in memory only; after a restart they come back
//! one window later, from the raw results the engine resumes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vantage_checks::model::Settings;

use super::{Ms, Outcome, ProbeRuns};

/// How a lone dissenter dissents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dissent {
    /// It has failed runs within the window; nobody else does.
    Failing,
    /// It has slow (but no failed) runs within the window; nobody else has slow or failed ones.
    Slow,
}

impl Dissent {
    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Failing => "failing",
            Self::Slow => "slow",
        }
    }
}

/// The fewest other fresh probes, all seeing the check fine, that make one probe's failures a
/// dissent. With one peer it is one probe's word against another's: nobody is singled out.
pub const MIN_PEERS: usize = 2;

/// Failed or slow runs within the window that make a probe's trouble more than a blip, when
/// other probes have blips too.
pub const MIN_TROUBLE: usize = 2;

/// The lone dissenter on one check at `now`, if there is one.
pub fn lone_dissenter<'a>(
    settings: &Settings,
    probes: &[ProbeRuns<'a>],
    now: Ms,
) -> Option<(&'a str, Dissent)> {
    let window_start = now - settings.window.as_millis() as Ms;
    let in_window = |started: Ms| started >= window_start && started <= now;
    // Each fresh probe's failed and slow runs in the window.
    let mut troubled: Vec<(&'a str, usize, Dissent)> = Vec::new();
    let mut fresh = 0usize;
    for p in probes {
        let (mut runs, mut failed, mut slow) = (0usize, 0usize, 0usize);
        for r in p.runs.iter().filter(|r| in_window(r.started_ms)) {
            match r.outcome {
                Outcome::ProbeError => continue,
                Outcome::Fail(_) => failed += 1,
                Outcome::Slow => slow += 1,
                Outcome::Ok => {}
            }
            runs += 1;
        }
        if runs == 0 {
            continue;
        }
        fresh += 1;
        if failed + slow > 0 {
            let dissent = if failed > 0 {
                Dissent::Failing
            } else {
                Dissent::Slow
            };
            troubled.push((p.probe, failed + slow, dissent));
        }
    }
    if fresh <= MIN_PEERS {
        return None;
    }
    let lone = match troubled.as_slice() {
        [only] => Some(only),
        more => {
            // Blips aside, is one probe alone in its trouble?
            let mut real = more.iter().filter(|(_, n, _)| *n >= MIN_TROUBLE);
            match (real.next(), real.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        }
    };
    lone.map(|(p, _, d)| (*p, *d))
}

/// One probe dissenting on one check. The key of the map is (probe, check).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dissenting {
    /// The check's vendor.
    pub vendor: String,
    /// How it dissents now.
    pub dissent: Dissent,
    /// Since when (Unix ms) it has dissented, without a break longer than the window.
    pub since_ms: Ms,
    /// When (Unix ms) it last dissented.
    pub last_ms: Ms,
    /// Since when (Unix ms) it is suspect: it has dissented for longer than the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect_since_ms: Option<Ms>,
}

/// What one check's evaluation found.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The check.
    pub check: String,
    /// Its vendor.
    pub vendor: String,
    /// Its window (ms): dissent must last longer than this to make a probe suspect.
    pub window_ms: Ms,
    /// Its lone dissenter now, if any.
    pub dissenter: Option<(String, Dissent)>,
}

/// A probe became suspect on a check, or stopped being so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectChange {
    /// The probe.
    pub probe: String,
    /// The check.
    pub check: String,
    /// The check's vendor.
    pub vendor: String,
    /// Suspect now (true) or no longer (false).
    pub suspect: bool,
    /// How it dissents (or last dissented).
    pub dissent: Dissent,
    /// When.
    pub at_ms: Ms,
}

/// The marks, by (probe, check).
pub type Marks = BTreeMap<(String, String), Dissenting>;

/// Updates the marks from this round's findings. A mark whose probe has not dissented for a
/// whole window (or whose check is gone from `findings`) is dropped.
pub fn assess(prev: &Marks, findings: &[Finding], now: Ms) -> (Marks, Vec<SuspectChange>) {
    let mut next = Marks::new();
    let mut changes = Vec::new();
    let windows: BTreeMap<&str, Ms> = findings
        .iter()
        .map(|f| (f.check.as_str(), f.window_ms))
        .collect();
    // Marks still within a window of their last dissent carry over, as they were.
    for (key, d) in prev {
        if windows
            .get(key.1.as_str())
            .is_some_and(|w| now - d.last_ms <= *w)
        {
            next.insert(key.clone(), d.clone());
        }
    }
    for f in findings {
        let Some((probe, dissent)) = &f.dissenter else {
            continue;
        };
        let dissent = *dissent;
        let key = (probe.clone(), f.check.clone());
        let (since_ms, was_suspect) = next
            .get(&key)
            .map_or((now, None), |d| (d.since_ms, d.suspect_since_ms));
        let suspect_since_ms =
            was_suspect.or_else(|| (now - since_ms > f.window_ms).then_some(now));
        if was_suspect.is_none() && suspect_since_ms.is_some() {
            changes.push(SuspectChange {
                probe: key.0.clone(),
                check: key.1.clone(),
                vendor: f.vendor.clone(),
                suspect: true,
                dissent,
                at_ms: now,
            });
        }
        next.insert(
            key,
            Dissenting {
                vendor: f.vendor.clone(),
                dissent,
                since_ms,
                last_ms: now,
                suspect_since_ms,
            },
        );
    }
    for ((probe, check), d) in prev {
        if d.suspect_since_ms.is_some() && !next.contains_key(&(probe.clone(), check.clone())) {
            changes.push(SuspectChange {
                probe: probe.clone(),
                check: check.clone(),
                vendor: d.vendor.clone(),
                suspect: false,
                dissent: d.dissent,
                at_ms: now,
            });
        }
    }
    (next, changes)
}
