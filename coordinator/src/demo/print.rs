//! The demo's output: one timestamped line per event, readable in a terminal.
//!
//! ```text
//! 14:03:07.512  ▶      injecting: regional CDN outage in ap-south (edge-1 answers 503 to ap-south's probes)
//! 14:03:11.020  STATE  demo-cdn in ap-south: operational → hard_down  [hard_down: edge1-css, home (http_status)]
//! 14:03:11.418  ALERT  trigger demo-cdn hard_down regional: ap-south — Demo CDN is hard_down in ap-south (incident 3)
//! ```
//!
//! The formatting is pure ([`state_changes`], [`alert_line`]); [`Printer`] adds the time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use time::OffsetDateTime;

use super::observe::VendorSeen;
use crate::alert::Alert;
use crate::consensus::vendor::{ScopeStatus, VendorState};

/// What a line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    /// The script: what it injects, what it saw.
    Script,
    /// A vendor state changed.
    State,
    /// An alert arrived at the webhook receiver.
    Alert,
    /// Anything else worth a line.
    Info,
}

impl Tag {
    fn label(self) -> &'static str {
        match self {
            Self::Script => "▶",
            Self::State => "STATE",
            Self::Alert => "ALERT",
            Self::Info => "",
        }
    }
}

/// Writes lines to standard output, each with the time (UTC).
#[derive(Debug, Default)]
pub(crate) struct Printer;

impl Printer {
    /// Prints `text` as one line (or several, if it holds newlines) tagged `tag`.
    pub(crate) fn line(&self, tag: Tag, text: &str) {
        let now = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:02}:{:02}:{:02}.{:03}",
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond()
        );
        let mut out = std::io::stdout().lock();
        // A closed stdout (piped into `head`) must not stop the demo.
        let _ = writeln!(out, "{stamp}  {:<5}  {text}", tag.label());
        let _ = out.flush();
    }

    /// Prints `text` as it is, without time or tag (the banner).
    pub(crate) fn plain(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// The conditions of a scope, for people: `[hard_down: edge1-css, home (http_status)]`.
pub(crate) fn conditions(s: &ScopeStatus) -> String {
    if s.conditions.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = s
        .conditions
        .iter()
        .map(|c| {
            let mut part = format!("{}: {}", c.kind.as_label(), c.checks.join(", "));
            if !c.failures.is_empty() {
                part.push_str(&format!(" ({})", c.failures.join(", ")));
            }
            if let Some(first) = c.detail.first() {
                part.push_str(&format!(" — {}", shorten(first, 200)));
            }
            part
        })
        .collect();
    format!("[{}]", parts.join("; "))
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// What a scope looks like for change detection: its state and the kinds of its conditions.
fn shape(s: Option<&ScopeStatus>) -> (VendorState, Vec<&'static str>) {
    match s {
        None => (VendorState::Unknown, Vec::new()),
        Some(s) => (
            s.state,
            s.conditions.iter().map(|c| c.kind.as_label()).collect(),
        ),
    }
}

/// One line per change between two polls: every global change, and the regional changes that
/// differ from the global one (so a global outage is one line, a regional one names its region).
pub(crate) fn state_changes(
    old: &BTreeMap<String, VendorSeen>,
    new: &BTreeMap<String, VendorSeen>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (id, v) in new {
        let before = old.get(id);
        let (g0, gc0) = shape(before.map(|b| &b.status.global));
        let (g1, gc1) = shape(Some(&v.status.global));
        if (g0, &gc0) != (g1, &gc1) {
            lines.push(format!(
                "{id} globally: {} → {}  {}",
                g0.as_label(),
                g1.as_label(),
                conditions(&v.status.global)
            ));
        }
        let regions: BTreeSet<&String> = v
            .status
            .regions
            .keys()
            .chain(before.iter().flat_map(|b| b.status.regions.keys()))
            .collect();
        for r in regions {
            let (r0, rc0) = shape(before.and_then(|b| b.status.regions.get(r)));
            let now = v.status.regions.get(r);
            let (r1, rc1) = shape(now);
            let changed = (r0, &rc0) != (r1, &rc1);
            // A region that moves with the global state, or first reports what the global
            // state already says, adds nothing.
            let like_global = (r0 == g0 || r0 == VendorState::Unknown) && r1 == g1;
            if changed && !like_global {
                lines.push(format!(
                    "{id} in {r}: {} → {}  {}",
                    r0.as_label(),
                    r1.as_label(),
                    now.map(conditions).unwrap_or_default()
                ));
            }
        }
    }
    lines.iter().map(|l| l.trim_end().to_owned()).collect()
}

/// An alert as one line: `trigger demo-cdn hard_down regional: ap-south — Demo CDN is
/// hard_down in ap-south (incident 3)`.
pub(crate) fn alert_line(a: &Alert) -> String {
    let scope = if a.subject.scope == crate::alert::SubjectScope::Regional {
        format!("regional: {}", a.subject.regions.join(", "))
    } else {
        a.subject.scope.to_string()
    };
    format!(
        "{} {} {} {scope} — {} (incident {})",
        a.event, a.subject.id, a.subject.state, a.summary, a.incident_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Subject;
    use crate::consensus::vendor::{Condition, ConditionKind, VendorStatus};

    fn scope(state: VendorState, conditions: Vec<Condition>) -> ScopeStatus {
        ScopeStatus {
            state,
            conditions,
            clearing: false,
        }
    }

    fn hard_down(checks: &[&str]) -> Condition {
        Condition {
            kind: ConditionKind::HardDown,
            checks: checks.iter().map(|c| (*c).to_owned()).collect(),
            failures: vec!["http_status".into()],
            detail: Vec::new(),
        }
    }

    fn vendor(
        global: ScopeStatus,
        regions: &[(&str, ScopeStatus)],
    ) -> BTreeMap<String, VendorSeen> {
        let v = VendorSeen {
            id: "demo-cdn".into(),
            name: "Demo CDN".into(),
            status: VendorStatus {
                global,
                regions: regions
                    .iter()
                    .map(|(r, s)| ((*r).to_owned(), s.clone()))
                    .collect(),
                global_pending: false,
            },
        };
        [(v.id.clone(), v)].into()
    }

    fn ok() -> ScopeStatus {
        scope(VendorState::Operational, Vec::new())
    }

    #[test]
    fn a_regional_outage_is_one_line_naming_the_region_and_its_conditions() {
        let before = vendor(ok(), &[("eu-west", ok()), ("ap-south", ok())]);
        let after = vendor(
            ok(),
            &[
                ("eu-west", ok()),
                (
                    "ap-south",
                    scope(
                        VendorState::HardDown,
                        vec![hard_down(&["edge1-css", "home"])],
                    ),
                ),
            ],
        );
        assert_eq!(
            state_changes(&before, &after),
            [
                "demo-cdn in ap-south: operational → hard_down  [hard_down: edge1-css, home (http_status)]"
            ]
        );
        assert!(
            state_changes(&after, &after).is_empty(),
            "no change, no line"
        );
    }

    #[test]
    fn a_global_change_is_one_line_and_regions_that_follow_it_are_quiet() {
        let before = vendor(ok(), &[("eu-west", ok()), ("us-east", ok())]);
        let slow = || {
            scope(
                VendorState::Degraded,
                vec![Condition {
                    kind: ConditionKind::Degraded,
                    checks: vec!["edge2-css".into()],
                    failures: Vec::new(),
                    detail: Vec::new(),
                }],
            )
        };
        let after = vendor(slow(), &[("eu-west", slow()), ("us-east", slow())]);
        assert_eq!(
            state_changes(&before, &after),
            ["demo-cdn globally: operational → degraded  [degraded: edge2-css]"]
        );
        // The first poll: unknown before, so every vendor's arrival is a line.
        assert_eq!(
            state_changes(&BTreeMap::new(), &before),
            ["demo-cdn globally: unknown → operational"]
        );
    }

    #[test]
    fn alerts_read_as_one_line() {
        let alert = Alert {
            version: 1,
            event: crate::alert::AlertEvent::Trigger,
            incident_id: 3,
            subject: Subject {
                kind: crate::alert::SubjectKind::Vendor,
                id: "demo-cdn".into(),
                name: "Demo CDN".into(),
                state: crate::alert::IncidentState::Vendor(
                    crate::consensus::vendor::VendorState::HardDown,
                ),
                scope: crate::alert::SubjectScope::Regional,
                regions: vec!["ap-south".into()],
                checks: vec!["edge1-css".into()],
                labels: BTreeMap::new(),
            },
            summary: "Demo CDN is hard_down in ap-south".into(),
            opened_at: String::new(),
            opened_state: None,
            at: String::new(),
            resolved_at: None,
            detail: serde_json::Value::Null,
        };
        assert_eq!(
            alert_line(&alert),
            "trigger demo-cdn hard_down regional: ap-south — Demo CDN is hard_down in ap-south (incident 3)"
        );
    }
}
