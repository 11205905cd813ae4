//! Incidents: a vendor's (or probe's) state change opens, updates or resolves one, with a
//! timeline and evidence, and queues the alerts its routes ask for.
//!
//! [`plan`] is the pure part: open incident + what is true now → what to do. [`run`] is the
//! task that receives the engine's changes in order, persists them, and writes each incident
//! change together with its alerts in one transaction. A timer reconciles open incidents
//! with routes and silences (a trigger held back by a silence that has ended goes out then),
//! sends reminders, and re-sends firing alerts to Alertmanager.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Notify, mpsc};

use crate::alert::{self, Alert, Alerting, PROBE_STATE, ReceiverKind, Subject, rfc3339};
use crate::catalog::Catalogs;
use crate::consensus::Ms;
use crate::consensus::vendor::{VendorState, VendorStatus};
use crate::engine::Change;
use crate::metrics::Metrics;
use crate::store::state::{IncidentRow, IncidentWrite, NewDelivery, SilenceRow, TransitionRecord};
use crate::store::{ProbeRecord, Store, StoreError};

/// How often open incidents are reconciled with routes, silences and reminders.
const RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// What is true of a subject now.
#[derive(Clone, Debug, PartialEq)]
pub struct Now {
    /// Routing facts.
    pub subject: Subject,
    /// Something is wrong: an incident should be open.
    pub bad: bool,
    /// Everything is known to be fine: an open incident may resolve.
    pub clear: bool,
    /// Do not open an incident yet: a regional problem while the global verdict is about to
    /// change is likely the start of a global one, and the first page should say so.
    pub defer_open: bool,
    /// One line for people.
    pub summary: String,
    /// Conditions and evidence.
    pub detail: serde_json::Value,
}

/// What to do with an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Open a new incident.
    Open,
    /// The open incident changed (state, scope or summary).
    Change,
    /// Resolve the open incident.
    Resolve,
}

/// Decides what `now` means for the open incident, if any.
pub fn plan(open: Option<&IncidentRow>, now: &Now) -> Option<Plan> {
    match open {
        None if now.bad && !now.defer_open => Some(Plan::Open),
        None => None,
        Some(_) if now.clear => Some(Plan::Resolve),
        Some(i) if now.bad && (i.state != now.subject.state || i.summary != now.summary) => {
            Some(Plan::Change)
        }
        Some(_) => None,
    }
}

/// The facts of a vendor's status.
pub fn vendor_now(id: &str, name: &str, status: &VendorStatus) -> Now {
    let outages = status.regional_outages();
    let (state, scope, regions): (VendorState, &str, Vec<String>) =
        if status.global.state.is_bad() || outages.is_empty() {
            (status.global.state, "global", Vec::new())
        } else {
            let worst = outages.iter().map(|(_, s)| *s).max().unwrap_or_default();
            let regions = outages
                .iter()
                .filter(|(_, s)| *s == worst)
                .map(|(r, _)| (*r).to_owned())
                .collect();
            (worst, "regional", regions)
        };
    let conditions = if scope == "global" {
        status.global.conditions.clone()
    } else {
        regions
            .iter()
            .filter_map(|r| status.regions.get(r))
            .flat_map(|s| s.conditions.clone())
            .collect()
    };
    let checks: BTreeSet<String> = conditions.iter().flat_map(|c| c.checks.clone()).collect();
    let mut kinds: Vec<&str> = conditions.iter().map(|c| c.kind.as_label()).collect();
    kinds.dedup();
    kinds.sort_unstable();
    kinds.dedup();
    let summary = if scope == "global" {
        format!("{name} is {}", state.as_label())
    } else {
        format!("{name} is {} in {}", state.as_label(), regions.join(", "))
    };
    let summary = if kinds.len() > 1 {
        format!("{summary} ({})", kinds.join(", "))
    } else {
        summary
    };
    let labels: BTreeMap<String, String> = [
        ("subject_kind", "vendor"),
        ("vendor", id),
        ("state", state.as_label()),
        ("scope", scope),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Now {
        subject: Subject {
            kind: "vendor".into(),
            id: id.to_owned(),
            name: name.to_owned(),
            state: state.as_label().to_owned(),
            scope: scope.to_owned(),
            regions,
            checks: checks.into_iter().collect(),
            labels,
        },
        bad: state.is_bad(),
        clear: status.global.state == VendorState::Operational && !status.worst().is_bad(),
        defer_open: scope == "regional" && status.global_pending,
        summary,
        detail: json!({ "status": status }),
    }
}

/// The facts of a probe's health.
pub fn probe_now(
    change: &crate::consensus::quarantine::HealthChange,
    probe: Option<&ProbeRecord>,
) -> Now {
    let region = probe.map(|p| p.region.clone()).unwrap_or_default();
    let mut labels: BTreeMap<String, String> = probe.map(|p| p.labels.clone()).unwrap_or_default();
    labels.insert("subject_kind".into(), "probe".into());
    labels.insert("probe".into(), change.probe.clone());
    labels.insert("state".into(), PROBE_STATE.into());
    labels.insert("region".into(), region.clone());
    Now {
        subject: Subject {
            kind: "probe".into(),
            id: change.probe.clone(),
            name: change.probe.clone(),
            state: PROBE_STATE.into(),
            scope: "regional".into(),
            regions: vec![region],
            checks: change.checks.clone(),
            labels,
        },
        bad: change.quarantined,
        clear: !change.quarantined,
        defer_open: false,
        summary: format!(
            "probe {} is quarantined: it fails {} while its peers see them fine",
            change.probe,
            change.vendors.join(", ")
        ),
        detail: json!({ "health": change }),
    }
}

/// The incident task's shared parts.
pub struct Incidents {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Receivers, routes, configured silences.
    pub alerting: Arc<Alerting>,
    /// Vendor names.
    pub catalogs: Arc<Catalogs>,
    /// Woken when alerts are queued.
    pub wake: Arc<Notify>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The live stream: transitions, vendor and probe changes, incident events.
    pub stream: Arc<crate::stream::Hub>,
}

fn now_ms() -> Ms {
    crate::ingest::unix_ms(time::OffsetDateTime::now_utc())
}

impl Incidents {
    fn silenced(&self, subject: &Subject, at: Ms) -> Result<Option<SilenceRow>, StoreError> {
        let mut all = self.store.silences(Some(at))?;
        all.extend(self.alerting.silences_at(Some(at)).cloned());
        Ok(all.into_iter().find(|s| alert::silenced_by(s, subject)))
    }

    fn alert(
        &self,
        event: &str,
        row: Option<&IncidentRow>,
        now: &Now,
        at: Ms,
        resolved: bool,
    ) -> String {
        let a = Alert {
            version: 1,
            event: event.to_owned(),
            incident_id: row.map_or(0, |r| r.id),
            subject: now.subject.clone(),
            summary: now.summary.clone(),
            opened_at: rfc3339(row.map_or(at, |r| r.opened_ms)),
            at: rfc3339(at),
            resolved_at: resolved.then(|| rfc3339(at)),
            detail: now.detail.clone(),
        };
        serde_json::to_string(&a).unwrap_or_default()
    }

    /// Applies what is now true of a subject: opens, changes or resolves its incident.
    fn apply(&self, now: &Now, at: Ms) -> Result<(), StoreError> {
        let open = self
            .store
            .open_incident(&now.subject.kind, &now.subject.id)?;
        let Some(plan) = plan(open.as_ref(), now) else {
            return Ok(());
        };
        let delivered = match &open {
            Some(i) => self.store.deliveries(i.id)?,
            None => Vec::new(),
        };
        let triggered: BTreeSet<&str> = delivered
            .iter()
            .filter(|d| d.triggered_ms.is_some() && d.resolved_ms.is_none())
            .map(|d| d.receiver.as_str())
            .collect();
        let mut events = Vec::new();
        let mut deliveries = Vec::new();
        let detail = serde_json::to_string(
            &json!({ "subject": now.subject, "summary": now.summary, "detail": now.detail }),
        )
        .unwrap_or_default();
        match plan {
            Plan::Open | Plan::Change => {
                events.push((
                    if plan == Plan::Open {
                        "opened"
                    } else {
                        "changed"
                    }
                    .to_owned(),
                    detail.clone(),
                ));
                let silence = self.silenced(&now.subject, at)?;
                let targets = self.alerting.targets(&now.subject);
                let mut names: BTreeSet<&str> = targets.keys().map(String::as_str).collect();
                names.extend(triggered.iter().copied());
                for name in names {
                    let was_triggered = triggered.contains(name);
                    if !was_triggered && !targets.contains_key(name) {
                        continue;
                    }
                    if !was_triggered && silence.is_some() {
                        continue;
                    }
                    let event = if was_triggered { "update" } else { "trigger" };
                    deliveries.push(NewDelivery {
                        receiver: name.to_owned(),
                        event: event.to_owned(),
                        payload: self.alert(event, open.as_ref(), now, at, false),
                    });
                }
                if let Some(s) = silence {
                    events.push((
                        "suppressed".to_owned(),
                        json!({ "silence": s.id, "comment": s.comment, "created_by": s.created_by }).to_string(),
                    ));
                }
            }
            Plan::Resolve => {
                events.push(("resolved".to_owned(), detail.clone()));
                for name in &triggered {
                    deliveries.push(NewDelivery {
                        receiver: (*name).to_owned(),
                        event: "resolve".to_owned(),
                        payload: self.alert("resolve", open.as_ref(), now, at, true),
                    });
                }
            }
        }
        let (state, summary) = match (&open, plan) {
            // A resolved incident keeps the worst state it reached in its name.
            (Some(i), Plan::Resolve) => (i.state.clone(), i.summary.clone()),
            _ => (now.subject.state.clone(), now.summary.clone()),
        };
        let queued = !deliveries.is_empty();
        let recorded_state = state.clone();
        let id = self.store.write_incident(&IncidentWrite {
            id: open.as_ref().map(|i| i.id),
            subject_kind: now.subject.kind.clone(),
            subject: now.subject.id.clone(),
            state,
            summary,
            detail,
            at_ms: at,
            resolve: plan == Plan::Resolve,
            events,
            deliveries,
        })?;
        let kind = match plan {
            Plan::Open => "opened",
            Plan::Change => "changed",
            Plan::Resolve => "resolved",
        };
        self.stream.incident(
            id,
            &now.subject.kind,
            &now.subject.id,
            kind,
            &recorded_state,
            at,
        );
        match plan {
            Plan::Open => {
                tracing::warn!(incident = id, subject = %now.subject.id, state = %now.subject.state, summary = %now.summary, "incident opened");
                if let Some(s) = VendorState::from_label(&now.subject.state) {
                    self.metrics.incident_opened(s.as_label());
                } else {
                    self.metrics.incident_opened(PROBE_STATE);
                }
            }
            Plan::Change => {
                tracing::warn!(incident = id, subject = %now.subject.id, state = %now.subject.state, summary = %now.summary, "incident changed")
            }
            Plan::Resolve => {
                tracing::info!(incident = id, subject = %now.subject.id, "incident resolved")
            }
        }
        if queued {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Sends held-back triggers whose silence ended, reminders and Alertmanager re-sends.
    fn reconcile(&self, at: Ms) -> Result<(), StoreError> {
        for incident in self.store.open_incidents()? {
            let Ok(saved) = serde_json::from_str::<serde_json::Value>(&incident.detail) else {
                continue;
            };
            let Ok(subject) = serde_json::from_value::<Subject>(saved["subject"].clone()) else {
                continue;
            };
            let now = Now {
                subject,
                bad: true,
                clear: false,
                defer_open: false,
                summary: incident.summary.clone(),
                detail: saved["detail"].clone(),
            };
            let delivered = self.store.deliveries(incident.id)?;
            let targets = self.alerting.targets(&now.subject);
            let silence = self.silenced(&now.subject, at)?;
            let mut deliveries = Vec::new();
            for (name, repeat) in &targets {
                let d = delivered.iter().find(|d| &d.receiver == name);
                let event = match d.and_then(|d| d.triggered_ms) {
                    None if silence.is_none() => "trigger",
                    None => continue,
                    Some(_) => {
                        let last = d.and_then(|d| d.last_sent_ms).unwrap_or(incident.opened_ms);
                        let resend = self
                            .alerting
                            .receiver(name)
                            .filter(|r| r.kind == ReceiverKind::Alertmanager)
                            .map(|r| r.resend);
                        let due = |every: Option<Duration>| {
                            every.is_some_and(|e| at - last >= e.as_millis() as Ms)
                        };
                        if silence.is_none() && (due(*repeat) || due(resend)) {
                            "reminder"
                        } else {
                            continue;
                        }
                    }
                };
                deliveries.push(NewDelivery {
                    receiver: name.clone(),
                    event: event.to_owned(),
                    payload: self.alert(event, Some(&incident), &now, at, false),
                });
            }
            if deliveries.is_empty() {
                continue;
            }
            let events = deliveries
                .iter()
                .filter(|d| d.event == "trigger")
                .map(|d| ("notified".to_owned(), json!({ "receiver": d.receiver, "why": "no silence holds it back any more" }).to_string()))
                .collect();
            self.store.write_incident(&IncidentWrite {
                id: Some(incident.id),
                subject_kind: incident.subject_kind.clone(),
                subject: incident.subject.clone(),
                state: incident.state.clone(),
                summary: incident.summary.clone(),
                detail: incident.detail.clone(),
                at_ms: at,
                resolve: false,
                events,
                deliveries,
            })?;
            self.wake.notify_one();
        }
        Ok(())
    }

    fn handle(&self, change: Change) -> Result<(), StoreError> {
        // The live stream hears of it first: the store writes below may take a while.
        self.stream.change(&change);
        match change {
            Change::Checks {
                states,
                transitions,
            } => {
                let states: Vec<(String, String)> = states
                    .iter()
                    .map(|(id, s)| (id.clone(), serde_json::to_string(s).unwrap_or_default()))
                    .collect();
                let transitions: Vec<TransitionRecord> = transitions
                    .iter()
                    .map(|t| TransitionRecord {
                        check_id: t.check.clone(),
                        vendor: t.vendor.clone(),
                        at_ms: t.transition.at_ms,
                        body: serde_json::to_string(t).unwrap_or_default(),
                    })
                    .collect();
                for t in &transitions {
                    tracing::info!(check = %t.check_id, vendor = %t.vendor, "check verdict changed");
                }
                self.store
                    .save_check_states(&states, &transitions, now_ms())
            }
            Change::Vendor {
                vendor,
                status,
                at_ms,
                ..
            } => {
                // The status and, when a scope's state changed, the SLA reports' state history.
                let states: Vec<(Option<String>, String)> =
                    std::iter::once((None, status.global.state))
                        .chain(
                            status
                                .regions
                                .iter()
                                .map(|(r, s)| (Some(r.clone()), s.state)),
                        )
                        .map(|(r, s)| (r, s.as_label().to_owned()))
                        .collect();
                self.store.record_vendor_status(
                    &vendor,
                    &serde_json::to_string(&status).unwrap_or_default(),
                    &states,
                    at_ms,
                )?;
                let catalog = self.catalogs.current();
                let name = catalog
                    .checks
                    .vendor(&vendor)
                    .map_or_else(|| vendor.clone(), |v| v.name.clone());
                self.apply(&vendor_now(&vendor, &name, &status), at_ms)
            }
            Change::Probe { change, health } => {
                // The registry is read only for probe changes (rare), for the probe's region
                // and labels.
                let probes = self.store.list_probes()?;
                let record = probes.iter().find(|p| p.id == change.probe);
                self.stream
                    .probe(&change, record.map(|p| p.region.as_str()));
                self.store.save_probe_health(
                    &change.probe,
                    &serde_json::to_string(&health).unwrap_or_default(),
                    change.at_ms,
                )?;
                self.apply(&probe_now(&change, record), change.at_ms)
            }
        }
    }
}

/// Runs the incident task until the engine's sender is dropped.
pub async fn run(incidents: Arc<Incidents>, mut changes: mpsc::Receiver<Change>) {
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = changes.recv() => {
                let Some(change) = change else { break };
                let inc = Arc::clone(&incidents);
                let outcome = tokio::task::spawn_blocking(move || inc.handle(change)).await;
                if let Ok(Err(e)) = outcome {
                    tracing::error!(error = %e, "cannot record a consensus change; it is recomputed at the next start");
                }
            }
            _ = reconcile.tick() => {
                let inc = Arc::clone(&incidents);
                let outcome = tokio::task::spawn_blocking(move || inc.reconcile(now_ms())).await;
                if let Ok(Err(e)) = outcome {
                    tracing::error!(error = %e, "cannot reconcile open incidents");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::vendor::{Condition, ConditionKind, ScopeStatus};

    fn status(global: VendorState, regions: &[(&str, VendorState)]) -> VendorStatus {
        let scope = |s: VendorState| ScopeStatus {
            state: s,
            conditions: if s.is_bad() {
                vec![Condition {
                    kind: ConditionKind::HardDown,
                    checks: vec!["c".into()],
                    failures: vec![],
                    detail: vec![],
                }]
            } else {
                vec![]
            },
        };
        VendorStatus {
            global_pending: false,
            global: scope(global),
            regions: regions
                .iter()
                .map(|(r, s)| ((*r).to_owned(), scope(*s)))
                .collect(),
        }
    }

    fn row(state: &str, summary: &str) -> IncidentRow {
        IncidentRow {
            id: 7,
            subject_kind: "vendor".into(),
            subject: "v".into(),
            state: state.into(),
            summary: summary.into(),
            opened_ms: 0,
            updated_ms: 0,
            resolved_ms: None,
            detail: "{}".into(),
        }
    }

    #[test]
    fn plans() {
        use VendorState::*;
        let down = vendor_now("v", "V", &status(HardDown, &[]));
        let regional = vendor_now(
            "v",
            "V",
            &status(Operational, &[("eu", HardDown), ("us", Operational)]),
        );
        let fine = vendor_now("v", "V", &status(Operational, &[("eu", Operational)]));
        let unknown = vendor_now("v", "V", &status(Unknown, &[]));
        let mut starting = status(Operational, &[("eu", HardDown)]);
        starting.global_pending = true;
        let starting = vendor_now("v", "V", &starting);
        assert_eq!(regional.subject.scope, "regional");
        assert_eq!(regional.subject.regions, vec!["eu"]);
        assert_eq!(regional.summary, "V is hard_down in eu");
        assert_eq!(down.summary, "V is hard_down");
        let open = row("hard_down", "V is hard_down");
        let cases = [
            ("opens", None, &down, Some(Plan::Open)),
            ("regional opens too", None, &regional, Some(Plan::Open)),
            (
                "regional waits while the global verdict is pending",
                None,
                &starting,
                None,
            ),
            ("nothing wrong", None, &fine, None),
            ("unknown opens nothing", None, &unknown, None),
            ("same state: nothing", Some(&open), &down, None),
            (
                "global to regional: change",
                Some(&open),
                &regional,
                Some(Plan::Change),
            ),
            ("unknown keeps it open", Some(&open), &unknown, None),
            (
                "operational resolves",
                Some(&open),
                &fine,
                Some(Plan::Resolve),
            ),
        ];
        for (name, open, now, want) in cases {
            assert_eq!(plan(open, now), want, "{name}");
        }
    }
}
