//! Incidents: a vendor's (or probe's) state change opens, updates or resolves one, with a
//! timeline and evidence, and queues the alerts its routes ask for.
//!
//! [`plan`] is the pure part: open incident + what is true now → what to do. [`run`] is the
//! task that receives the engine's changes in order, persists them, and writes each incident
//! change together with its alerts in one transaction. A timer reconciles open incidents
//! with routes and silences (a trigger held back by a silence that has ended goes out then),
//! sends reminders, re-sends firing alerts to Alertmanager, and resolves incidents whose
//! subject has stayed clear for the flap window.
//!
//! **A flapping vendor is one incident.** When a vendor clears, its incident does not resolve
//! at once: it is *clearing* (a `cleared` entry on its timeline, no page) and resolves only
//! after the vendor has stayed clear for the flap window (the longest `flap_window` of its
//! checks; by default three times `recover_for`). A vendor that fails again within that
//! window *flaps*: the same incident goes on, with a `flapped` entry on its timeline and no
//! new trigger, so PagerDuty's `dedup_key`, Alertmanager's labels and the webhook's
//! `incident_id` stay the same for the whole episode: one trigger, one resolve.
//!
//! **No noise while clearing.** A change that only narrows an incident (a milder state, or
//! fewer regions) while every check behind what remains is already waiting out
//! `recover_for` is written to the timeline but not paged: the resolve follows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Notify, mpsc};

use crate::alert::{
    self, Alert, AlertEvent, Alerting, IncidentState, Label as _, PROBE_STATE, ReceiverKind,
    Subject, SubjectKind, SubjectScope, rfc3339,
};
use crate::catalog::Catalogs;
use crate::consensus::Ms;
use crate::consensus::vendor::{VendorState, VendorStatus};
use crate::engine::Change;
use crate::metrics::{Metrics, StoreOp};
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
    /// Something is wrong, but every check behind it is already recovering (its votes are
    /// fine, `recover_for` holds the state): a narrower page now would be noise.
    pub clearing: bool,
    /// How long the subject must stay clear before its incident resolves (ms); failing again
    /// within it is a flap of the same incident. Zero resolves at once.
    pub flap_window_ms: Ms,
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
    /// The open incident changed (state, scope or summary). `page` is false for a change
    /// that only narrows it while it is clearing: recorded, not sent.
    Change {
        /// Send the update.
        page: bool,
    },
    /// The subject is clear: the incident waits out the flap window before it resolves.
    Clear,
    /// The subject fails again within the flap window: the same incident goes on. `changed`:
    /// it is worse or wider than before, so receivers get an update (failing again as badly or
    /// less keeps what the incident says).
    Flap {
        /// Send an update, and record the new state.
        changed: bool,
    },
    /// Resolve the open incident.
    Resolve,
}

/// Decides what `now` means at `at` for the open incident, if any.
pub fn plan(open: Option<&IncidentRow>, now: &Now, at: Ms) -> Option<Plan> {
    let Some(i) = open else {
        return (now.bad && !now.defer_open).then_some(Plan::Open);
    };
    let changed = i.state != now.subject.state || i.summary != now.summary;
    if now.clear {
        return match i.clear_since_ms {
            _ if now.flap_window_ms <= 0 => Some(Plan::Resolve),
            None => Some(Plan::Clear),
            Some(since) if at - since >= now.flap_window_ms => Some(Plan::Resolve),
            Some(_) => None,
        };
    }
    if !now.bad {
        // Unknown: nothing to say either way; a clearing incident keeps waiting.
        return None;
    }
    if i.clear_since_ms.is_some() {
        // Failing again as badly or less: the same episode, nothing new to page. Worse or
        // wider: an update.
        return Some(Plan::Flap {
            changed: changed && !narrows(i, now),
        });
    }
    changed.then(|| Plan::Change {
        page: !(now.clearing && narrows(i, now)),
    })
}

/// True when `now` is no worse than the open incident and inside its scope: a milder (or the
/// same) state, in the same or fewer regions.
fn narrows(open: &IncidentRow, now: &Now) -> bool {
    let milder = match (now.subject.state.vendor(), open.state.vendor()) {
        (Some(new), Some(old)) => new <= old,
        _ => false,
    };
    let before = serde_json::from_str::<serde_json::Value>(&open.detail)
        .ok()
        .and_then(|v| serde_json::from_value::<Subject>(v["subject"].clone()).ok());
    let inside = before.is_some_and(|b| {
        b.scope == SubjectScope::Global
            || (now.subject.scope != SubjectScope::Global
                && now.subject.regions.iter().all(|r| b.regions.contains(r)))
    });
    milder && inside
}

/// The facts of a vendor's status; `flap_window_ms` is the vendor's flap window.
pub fn vendor_now(id: &str, name: &str, status: &VendorStatus, flap_window_ms: Ms) -> Now {
    let outages = status.regional_outages();
    let (state, scope, regions): (VendorState, SubjectScope, Vec<String>) =
        if status.global.state.is_bad() || outages.is_empty() {
            (status.global.state, SubjectScope::Global, Vec::new())
        } else {
            let worst = outages.iter().map(|(_, s)| *s).max().unwrap_or_default();
            let regions = outages
                .iter()
                .filter(|(_, s)| *s == worst)
                .map(|(r, _)| (*r).to_owned())
                .collect();
            (worst, SubjectScope::Regional, regions)
        };
    let conditions = if scope == SubjectScope::Global {
        status.global.conditions.clone()
    } else {
        regions
            .iter()
            .filter_map(|r| status.regions.get(r))
            .flat_map(|s| s.conditions.clone())
            .collect()
    };
    let clearing = if scope == SubjectScope::Global {
        status.global.clearing
    } else {
        regions
            .iter()
            .all(|r| status.regions.get(r).is_some_and(|s| s.clearing))
    };
    let checks: BTreeSet<String> = conditions.iter().flat_map(|c| c.checks.clone()).collect();
    let mut kinds: Vec<&str> = conditions.iter().map(|c| c.kind.as_label()).collect();
    kinds.dedup();
    kinds.sort_unstable();
    kinds.dedup();
    let summary = if scope == SubjectScope::Global {
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
        ("scope", scope.as_label()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Now {
        subject: Subject {
            kind: SubjectKind::Vendor,
            id: id.to_owned(),
            name: name.to_owned(),
            state: IncidentState::Vendor(state),
            scope,
            regions,
            checks: checks.into_iter().collect(),
            labels,
        },
        bad: state.is_bad(),
        clear: status.global.state == VendorState::Operational && !status.worst().is_bad(),
        defer_open: scope == SubjectScope::Regional && status.global_pending,
        clearing,
        flap_window_ms,
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
            kind: SubjectKind::Probe,
            id: change.probe.clone(),
            name: change.probe.clone(),
            state: IncidentState::ProbeQuarantined,
            scope: SubjectScope::Regional,
            regions: vec![region],
            checks: change.checks.clone(),
            labels,
        },
        bad: change.quarantined,
        clear: !change.quarantined,
        defer_open: false,
        clearing: false,
        // Readmission already waits out `readmit_after`.
        flap_window_ms: 0,
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
    /// This coordinator's leases: it decides only for the subjects whose partition it holds,
    /// and writes under their fence.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// Notified when this coordinator takes a partition: its incidents are reconciled at once.
    pub lease_gained: Arc<Notify>,
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
    /// Every vendor's latest state (seeded with the engine's at start), so that the timer can
    /// resolve an incident whose vendor has stayed clear, with no new change to wake it.
    pub vendors: std::sync::Mutex<BTreeMap<String, VendorStatus>>,
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
        event: AlertEvent,
        row: Option<&IncidentRow>,
        now: &Now,
        at: Ms,
        resolved: bool,
    ) -> String {
        let a = Alert {
            version: 1,
            event,
            incident_id: row.map_or(0, |r| r.id),
            subject: now.subject.clone(),
            summary: now.summary.clone(),
            opened_at: rfc3339(row.map_or(at, |r| r.opened_ms)),
            opened_state: Some(row.map_or(now.subject.state, |r| r.opened_state)),
            at: rfc3339(at),
            // It resolved when its subject cleared for good, not when the flap window ended.
            resolved_at: resolved
                .then(|| rfc3339(row.and_then(|r| r.clear_since_ms).unwrap_or(at))),
            detail: now.detail.clone(),
        };
        serde_json::to_string(&a).unwrap_or_default()
    }

    /// Triggers for the receivers routes choose (none while a silence holds), updates for
    /// those already triggered; the silence, when one holds, for the timeline.
    fn pages(
        &self,
        open: Option<&IncidentRow>,
        triggered: &BTreeSet<&str>,
        now: &Now,
        at: Ms,
    ) -> Result<(Vec<NewDelivery>, Option<SilenceRow>), StoreError> {
        let silence = self.silenced(&now.subject, at)?;
        let targets = self.alerting.targets(&now.subject);
        let mut names: BTreeSet<&str> = targets.keys().map(String::as_str).collect();
        names.extend(triggered.iter().copied());
        let mut deliveries = Vec::new();
        for name in names {
            let was_triggered = triggered.contains(name);
            if !was_triggered && (!targets.contains_key(name) || silence.is_some()) {
                continue;
            }
            let event = if was_triggered {
                AlertEvent::Update
            } else {
                AlertEvent::Trigger
            };
            deliveries.push(NewDelivery {
                receiver: name.to_owned(),
                event,
                payload: self.alert(event, open, now, at, false),
            });
        }
        Ok((deliveries, silence))
    }

    /// Applies what is now true of a subject: opens, changes, clears, flaps or resolves its
    /// incident.
    fn apply(&self, now: &Now, at: Ms) -> Result<(), StoreError> {
        // Another coordinator evaluates it (or none, until a lease is taken): nothing to do.
        let Some(fence) = self.cluster.fence(now.subject.kind, &now.subject.id) else {
            return Ok(());
        };
        let open = self
            .store
            .open_incident(now.subject.kind, &now.subject.id)?;
        let Some(plan) = plan(open.as_ref(), now, at) else {
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
        let clear_since = open.as_ref().and_then(|i| i.clear_since_ms);
        let flaps = open.as_ref().map_or(0, |i| i.flaps);
        let page = match plan {
            Plan::Open | Plan::Change { page: true } | Plan::Flap { changed: true } => true,
            Plan::Change { page: false } | Plan::Flap { changed: false } => false,
            Plan::Clear | Plan::Resolve => false,
        };
        match plan {
            Plan::Open => events.push(("opened".to_owned(), detail.clone())),
            Plan::Change { page } => {
                let mut d = json!({ "subject": now.subject, "summary": now.summary, "detail": now.detail });
                if !page {
                    d["not_paged"] = json!("it only narrows an incident that is clearing");
                }
                events.push(("changed".to_owned(), d.to_string()));
            }
            Plan::Flap { .. } => events.push((
                "flapped".to_owned(),
                json!({
                    "flap": flaps + 1,
                    "cleared_at": clear_since.map(rfc3339),
                    "subject": now.subject,
                    "summary": now.summary,
                    "detail": now.detail,
                })
                .to_string(),
            )),
            Plan::Clear => events.push((
                "cleared".to_owned(),
                json!({
                    "resolves_at": rfc3339(at + now.flap_window_ms),
                    "flap_window_ms": now.flap_window_ms,
                    "why": "it resolves once clear for the flap window; failing again before then is a flap of this incident",
                })
                .to_string(),
            )),
            Plan::Resolve => {
                events.push(("resolved".to_owned(), detail.clone()));
                for name in &triggered {
                    deliveries.push(NewDelivery {
                        receiver: (*name).to_owned(),
                        event: AlertEvent::Resolve,
                        payload: self.alert(AlertEvent::Resolve, open.as_ref(), now, at, true),
                    });
                }
            }
        }
        if page {
            let (pages, silence) = self.pages(open.as_ref(), &triggered, now, at)?;
            deliveries.extend(pages);
            if let Some(s) = silence {
                events.push((
                    "suppressed".to_owned(),
                    json!({ "silence": s.id, "comment": s.comment, "created_by": s.created_by })
                        .to_string(),
                ));
            }
        }
        let (state, summary, detail) = match (&open, plan) {
            // A clearing or resolved incident keeps the state it reached in its name, and
            // what it was about (its reminders follow the same routes while it clears).
            (Some(i), Plan::Clear | Plan::Flap { changed: false }) => {
                (i.state, i.summary.clone(), i.detail.clone())
            }
            (Some(i), Plan::Resolve) => (i.state, i.summary.clone(), detail),
            _ => (now.subject.state, now.summary.clone(), detail),
        };
        let queued = !deliveries.is_empty();
        let recorded_state = state;
        let id = self.store.write_incident(&IncidentWrite {
            id: open.as_ref().map(|i| i.id),
            subject_kind: now.subject.kind,
            subject: now.subject.id.clone(),
            state,
            summary,
            detail,
            at_ms: at,
            resolve: plan == Plan::Resolve,
            clear_since_ms: match plan {
                Plan::Clear => Some(at),
                Plan::Resolve => clear_since,
                _ => None,
            },
            flap: matches!(plan, Plan::Flap { .. }),
            events,
            deliveries,
            fence: Some(fence),
            expect_version: open.as_ref().map(|i| i.version),
        })?;
        let kind = match plan {
            Plan::Open => "opened",
            Plan::Change { .. } => "changed",
            Plan::Clear => "cleared",
            Plan::Flap { .. } => "flapped",
            Plan::Resolve => "resolved",
        };
        self.stream.incident(
            id,
            now.subject.kind,
            &now.subject.id,
            kind,
            recorded_state,
            at,
        );
        match plan {
            Plan::Open => {
                tracing::warn!(incident = id, subject = %now.subject.id, state = %now.subject.state, summary = %now.summary, "incident opened");
                self.metrics.incident_opened(now.subject.state.as_label());
            }
            Plan::Change { page } => {
                tracing::warn!(incident = id, subject = %now.subject.id, state = %now.subject.state, summary = %now.summary, paged = page, "incident changed")
            }
            Plan::Clear => {
                tracing::info!(incident = id, subject = %now.subject.id, flap_window_ms = now.flap_window_ms, "incident clearing: it resolves if it stays clear for the flap window")
            }
            Plan::Flap { changed } => {
                tracing::warn!(incident = id, subject = %now.subject.id, state = %now.subject.state, flaps = flaps + 1, paged = changed, "incident flapped: failing again within the flap window, same incident")
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
        // The vendors' states against their incidents: opens, resolves or changes what a lost
        // change left behind (the plans are no-ops when they agree), and resolves a clearing
        // incident once its flap window has passed.
        let vendors: Vec<(String, VendorStatus)> = self
            .vendors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(v, s)| (v.clone(), s.clone()))
            .collect();
        for (vendor, status) in &vendors {
            match self.apply(&self.vendor_facts(vendor, status), at) {
                // The partition moved, or another write came first: the next pass decides
                // again from what is stored then.
                Err(StoreError::Fenced(_) | StoreError::Conflict(_)) => continue,
                other => other?,
            }
        }
        for incident in self.store.open_incidents()? {
            let Some(fence) = self.cluster.fence(incident.subject_kind, &incident.subject) else {
                continue;
            };
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
                clearing: false,
                flap_window_ms: 0,
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
                    // A trigger held back by a silence goes out when it ends, unless the
                    // vendor has cleared meanwhile.
                    None if silence.is_none() && incident.clear_since_ms.is_none() => {
                        AlertEvent::Trigger
                    }
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
                            AlertEvent::Reminder
                        } else {
                            continue;
                        }
                    }
                };
                deliveries.push(NewDelivery {
                    receiver: name.clone(),
                    event,
                    payload: self.alert(event, Some(&incident), &now, at, false),
                });
            }
            if deliveries.is_empty() {
                continue;
            }
            let events = deliveries
                .iter()
                .filter(|d| d.event == AlertEvent::Trigger)
                .map(|d| ("notified".to_owned(), json!({ "receiver": d.receiver, "why": "no silence holds it back any more" }).to_string()))
                .collect();
            let written = self.store.write_incident(&IncidentWrite {
                id: Some(incident.id),
                subject_kind: incident.subject_kind,
                subject: incident.subject.clone(),
                state: incident.state,
                summary: incident.summary.clone(),
                detail: incident.detail.clone(),
                at_ms: at,
                resolve: false,
                clear_since_ms: incident.clear_since_ms,
                flap: false,
                events,
                deliveries,
                fence: Some(fence),
                expect_version: Some(incident.version),
            });
            match written {
                Err(StoreError::Fenced(_) | StoreError::Conflict(_)) => continue,
                other => other?,
            };
            self.wake.notify_one();
        }
        Ok(())
    }

    /// What a vendor's status means for its incident, with its name and flap window (the
    /// longest of its checks').
    fn vendor_facts(&self, vendor: &str, status: &VendorStatus) -> Now {
        let catalog = self.catalogs.current();
        let name = catalog
            .checks
            .vendor(vendor)
            .map_or_else(|| vendor.to_owned(), |v| v.name.clone());
        let flap_window = catalog
            .checks
            .checks
            .iter()
            .filter(|c| c.vendor == vendor)
            .map(|c| c.settings.flap_window())
            .max()
            .unwrap_or_default();
        vendor_now(vendor, &name, status, flap_window.as_millis() as Ms)
    }

    fn handle(&self, change: Change) -> Result<(), StoreError> {
        match change {
            Change::Checks {
                states,
                transitions,
            } => {
                // Only the checks of the vendors evaluated here: each coordinator runs the
                // engine on every result, and the owner alone records.
                let catalog = self.catalogs.current();
                let owned = |check: &str| {
                    catalog
                        .checks
                        .checks
                        .iter()
                        .find(|c| c.id == check)
                        .is_some_and(|c| self.cluster.holds(SubjectKind::Vendor, &c.vendor))
                };
                let states: Vec<(String, String)> = states
                    .iter()
                    .filter(|(id, _)| owned(id))
                    .map(|(id, s)| (id.clone(), serde_json::to_string(s).unwrap_or_default()))
                    .collect();
                let transitions: Vec<TransitionRecord> = transitions
                    .iter()
                    .filter(|t| self.cluster.holds(SubjectKind::Vendor, &t.vendor))
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
                if states.is_empty() && transitions.is_empty() {
                    return Ok(());
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
                self.vendors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(vendor.clone(), status.clone());
                if !self.cluster.holds(SubjectKind::Vendor, &vendor) {
                    return Ok(());
                }
                self.store.record_vendor_status(
                    &vendor,
                    &serde_json::to_string(&status).unwrap_or_default(),
                    &states,
                    at_ms,
                )?;
                self.apply(&self.vendor_facts(&vendor, &status), at_ms)
            }
            Change::Probe { change, health } => {
                // The registry is read only for probe changes (rare), for the probe's region
                // and labels.
                let probes = self.store.list_probes()?;
                let record = probes.iter().find(|p| p.id == change.probe);
                self.stream
                    .probe(&change, record.map(|p| p.region.as_str()));
                if !self.cluster.holds(SubjectKind::Probe, &change.probe) {
                    return Ok(());
                }
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
///
/// A change that cannot be recorded (a full disk, an I/O error) is never only logged: it is
/// tried again, with backoff, until it is, and the changes after it wait their turn (they
/// build on it). The timer goes on meanwhile, and its reconcile pass opens or resolves
/// whatever the vendors' states and the open incidents disagree on.
pub async fn run(incidents: Arc<Incidents>, mut changes: mpsc::Receiver<Change>) {
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = changes.recv() => {
                let Some(change) = change else { break };
                // The live stream hears of it first, once: the store writes may take a while.
                incidents.stream.change(&change);
                record(&incidents, change).await;
            }
            () = incidents.lease_gained.notified() => {
                let inc = Arc::clone(&incidents);
                let outcome = tokio::task::spawn_blocking(move || inc.reconcile(now_ms())).await;
                if let Ok(Err(e)) = outcome {
                    incidents.metrics.store_error(StoreOp::Reconcile);
                    tracing::error!(error = %e, "cannot reconcile the incidents of partitions taken; trying again at the next tick");
                }
            }
            _ = reconcile.tick() => {
                let inc = Arc::clone(&incidents);
                let outcome = tokio::task::spawn_blocking(move || inc.reconcile(now_ms())).await;
                if let Ok(Err(e)) = outcome {
                    incidents.metrics.store_error(StoreOp::Reconcile);
                    tracing::error!(error = %e, "cannot reconcile open incidents; trying again at the next tick");
                }
            }
        }
    }
}

/// Shortest and longest pause between attempts to record a change.
const RECORD_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(30));

/// Records one change, trying again with backoff until it is recorded. Every step of a change
/// is idempotent (upserts, and incident plans made from what is stored), so a change half
/// written by a failed attempt is completed, not doubled, by the next.
async fn record(incidents: &Arc<Incidents>, change: Change) {
    let mut wait = RECORD_BACKOFF.0;
    for attempt in 1u32.. {
        let inc = Arc::clone(incidents);
        let c = change.clone();
        match tokio::task::spawn_blocking(move || inc.handle(c)).await {
            Ok(Ok(())) => {
                if attempt > 1 {
                    tracing::info!(
                        attempts = attempt,
                        "recorded a consensus change after store errors"
                    );
                }
                return;
            }
            Ok(Err(StoreError::Fenced(why))) => {
                // Another coordinator took the partition meanwhile: it decides now.
                tracing::info!(%why, "a change was not recorded here: its partition moved to another coordinator");
                return;
            }
            Ok(Err(e)) => {
                incidents.metrics.store_error(StoreOp::RecordChange);
                tracing::error!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "cannot record a consensus change (vendor state, incident or alert); trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECORD_BACKOFF.1);
            }
            Err(e) => {
                // A panic is a bug, not a store error: trying again would panic again.
                tracing::error!(error = %e, "recording a consensus change panicked; it is recomputed at the next start");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::consensus::vendor::{Condition, ConditionKind, ScopeStatus};
    use crate::store::StateStore as _;

    const FLAP: Ms = 90_000;

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
            clearing: false,
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

    /// An open incident about what `now` says, as `apply` would have stored it.
    fn row(now: &Now, clear_since_ms: Option<Ms>) -> IncidentRow {
        IncidentRow {
            id: 7,
            subject_kind: SubjectKind::Vendor,
            subject: "v".into(),
            state: now.subject.state,
            summary: now.summary.clone(),
            opened_ms: 0,
            updated_ms: 0,
            resolved_ms: None,
            detail: json!({ "subject": now.subject, "summary": now.summary }).to_string(),
            opened_state: now.subject.state,
            clear_since_ms,
            flaps: 0,
            version: 0,
        }
    }

    fn now_of(status: &VendorStatus) -> Now {
        vendor_now("v", "V", status, FLAP)
    }

    #[test]
    fn plans() {
        use VendorState::*;
        let down = now_of(&status(HardDown, &[]));
        let regional = now_of(&status(
            Operational,
            &[("eu", HardDown), ("us", Operational)],
        ));
        let fine = now_of(&status(Operational, &[("eu", Operational)]));
        let unknown = now_of(&status(Unknown, &[]));
        let mut starting = status(Operational, &[("eu", HardDown)]);
        starting.global_pending = true;
        let starting = now_of(&starting);
        let mut degraded = status(Degraded, &[]);
        degraded.global.conditions[0].kind = ConditionKind::Degraded;
        let degraded = now_of(&degraded);
        let mut clearing = status(Operational, &[("eu", HardDown), ("us", Operational)]);
        if let Some(eu) = clearing.regions.get_mut("eu") {
            eu.clearing = true;
        }
        let clearing = now_of(&clearing);
        assert_eq!(regional.subject.scope, SubjectScope::Regional);
        assert_eq!(regional.subject.regions, vec!["eu"]);
        assert_eq!(regional.summary, "V is hard_down in eu");
        assert_eq!(down.summary, "V is hard_down");
        assert!(clearing.clearing && !regional.clearing);
        let open = row(&down, None);
        let open_eu = row(&regional, None);
        let cleared_at = 1_000;
        let clearing_row = row(&down, Some(cleared_at));
        let at = cleared_at + 10_000;
        let cases = [
            ("opens", None, &down, at, Some(Plan::Open)),
            ("regional opens too", None, &regional, at, Some(Plan::Open)),
            (
                "regional waits while the global verdict is pending",
                None,
                &starting,
                at,
                None,
            ),
            ("nothing wrong", None, &fine, at, None),
            ("unknown opens nothing", None, &unknown, at, None),
            ("same state: nothing", Some(&open), &down, at, None),
            (
                "global to regional: an update",
                Some(&open),
                &regional,
                at,
                Some(Plan::Change { page: true }),
            ),
            (
                "r11: global to regional while that region is clearing: not paged",
                Some(&open),
                &clearing,
                at,
                Some(Plan::Change { page: false }),
            ),
            (
                "milder but wider is paged, clearing or not",
                Some(&open_eu),
                &degraded,
                at,
                Some(Plan::Change { page: true }),
            ),
            (
                "regional to global is paged",
                Some(&open_eu),
                &down,
                at,
                Some(Plan::Change { page: true }),
            ),
            ("unknown keeps it open", Some(&open), &unknown, at, None),
            (
                "operational starts the flap window",
                Some(&open),
                &fine,
                at,
                Some(Plan::Clear),
            ),
            (
                "still clear within the flap window: wait",
                Some(&clearing_row),
                &fine,
                cleared_at + FLAP - 1,
                None,
            ),
            (
                "clear for the whole flap window: resolve",
                Some(&clearing_row),
                &fine,
                cleared_at + FLAP,
                Some(Plan::Resolve),
            ),
            (
                "unknown while clearing: wait",
                Some(&clearing_row),
                &unknown,
                cleared_at + 2 * FLAP,
                None,
            ),
            (
                "r11: failing again within the flap window: a flap, same incident, no page",
                Some(&clearing_row),
                &down,
                at,
                Some(Plan::Flap { changed: false }),
            ),
            (
                "a flap narrower than the incident: nothing new",
                Some(&clearing_row),
                &regional,
                at,
                Some(Plan::Flap { changed: false }),
            ),
            (
                "a flap wider than the incident: an update",
                Some(&row(&regional, Some(cleared_at))),
                &down,
                at,
                Some(Plan::Flap { changed: true }),
            ),
        ];
        for (name, open, now, at, want) in cases {
            assert_eq!(plan(open, now, at), want, "{name}");
        }
        // With no flap window (probe incidents), clear resolves at once.
        let probe_fine = Now {
            flap_window_ms: 0,
            ..fine.clone()
        };
        assert_eq!(plan(Some(&open), &probe_fine, at), Some(Plan::Resolve));
    }

    proptest! {
        #![proptest_config(crate::consensus::props::config())]

        /// A vendor that fails again less than the flap window after it cleared is still in
        /// the same incident: no second trigger; and an incident resolves only once its vendor
        /// has been clear for the whole flap window. Readings are the vendor's state at each
        /// moment the incident task looks (a change, or its timer).
        #[test]
        fn a_flapping_vendor_is_one_incident(
            readings in prop::collection::vec((0u8..3, 100i64..40_000), 1..80),
            flap in 0i64..120_000,
        ) {
            let mut open: Option<IncidentRow> = None;
            let mut opened = 0;
            let mut at: Ms = 0;
            // The last bad reading, and the first clear reading after it.
            let mut last_bad: Option<Ms> = None;
            let mut clear_after_bad: Option<Ms> = None;
            for (kind, dt) in readings {
                at += dt;
                let state = [VendorState::HardDown, VendorState::Operational, VendorState::Unknown]
                    [kind as usize];
                let now = vendor_now("v", "V", &status(state, &[]), flap);
                let p = plan(open.as_ref(), &now, at);
                match p {
                    Some(Plan::Open) => {
                        prop_assert!(open.is_none());
                        if last_bad.is_some() {
                            let gap = clear_after_bad.map(|c| at - c);
                            prop_assert!(
                                gap.is_some_and(|g| g >= flap),
                                "a new incident {gap:?} ms after clearing, within the flap window {flap}"
                            );
                        }
                        opened += 1;
                        open = Some(IncidentRow {
                            id: opened,
                            subject_kind: SubjectKind::Vendor,
                            subject: "v".into(),
                            state: now.subject.state,
                            summary: now.summary.clone(),
                            opened_ms: at,
                            updated_ms: at,
                            resolved_ms: None,
                            detail: json!({ "subject": now.subject }).to_string(),
                            opened_state: now.subject.state,
                            clear_since_ms: None,
                            flaps: 0,
                            version: 0,
                        });
                    }
                    Some(Plan::Clear) => {
                        if let Some(i) = open.as_mut() {
                            i.clear_since_ms = Some(at);
                        }
                    }
                    Some(Plan::Flap { .. }) => {
                        if let Some(i) = open.as_mut() {
                            i.clear_since_ms = None;
                            i.flaps += 1;
                        }
                    }
                    Some(Plan::Resolve) => {
                        let since = open.as_ref().and_then(|i| i.clear_since_ms);
                        prop_assert!(now.clear);
                        prop_assert!(flap == 0 || since.is_some_and(|c| at - c >= flap));
                        open = None;
                    }
                    Some(Plan::Change { .. }) | None => {}
                }
                if now.bad {
                    prop_assert!(open.is_some(), "bad and no incident open");
                    last_bad = Some(at);
                    clear_after_bad = None;
                } else if now.clear && clear_after_bad.is_none() {
                    clear_after_bad = Some(at);
                }
            }
        }
    }

    /// An incident task over a real SQLite store in `dir`, one vendor `v` with one check, one
    /// webhook receiver taking everything.
    fn incidents(dir: &std::path::Path) -> (Arc<Incidents>, Arc<crate::store::SqliteStore>) {
        let checks = dir.join("checks.toml");
        std::fs::write(
            &checks,
            "[defaults]\nrecover_for = \"1s\"\n[[vendor]]\nid = \"v\"\nname = \"V\"\n[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\n",
        )
        .expect("write checks");
        let store = Arc::new(
            crate::store::SqliteStore::open(
                &dir.join("vantage.db"),
                crate::store::Synchronous::Normal,
            )
            .expect("open the store"),
        );
        let alerting = crate::alert::Alerting {
            receivers: vec![crate::alert::Receiver {
                name: "hook".into(),
                kind: ReceiverKind::Webhook,
                url: crate::alert::Secret::new("http://127.0.0.1:9/hook"),
                routing_key: None,
                timeout: Duration::from_secs(1),
                resend: Duration::from_secs(60),
                max_attempts: 3,
            }],
            routes: vec![],
            silences: vec![],
        };
        // A lone coordinator: it takes every lease.
        let cluster = Arc::new(crate::cluster::Cluster::new(
            "127.0.0.1:0".into(),
            crate::cluster::DEFAULT_LEASE,
        ));
        cluster.balance(&*store).expect("take the leases");
        let inc = Arc::new(Incidents {
            store: Arc::clone(&store) as Arc<dyn Store>,
            cluster,
            lease_gained: Arc::new(Notify::new()),
            alerting: Arc::new(alerting),
            catalogs: Arc::new(Catalogs::load(vec![checks]).expect("load checks")),
            wake: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::new()),
            stream: Arc::new(crate::stream::Hub::new()),
            vendors: std::sync::Mutex::new(BTreeMap::new()),
        });
        (inc, store)
    }

    /// Issue 12: a vendor going down while the store refuses writes (a full disk) still
    /// opens its incident and queues its page, once the store takes writes again; the
    /// failures are counted.
    #[tokio::test]
    async fn r12_a_change_the_store_refuses_is_recorded_once_it_can_be() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (inc, store) = incidents(dir.path());
        store.fail_next_writes(3);
        let change = Change::Vendor {
            vendor: "v".into(),
            status: status(VendorState::HardDown, &[]),
            previous: VendorStatus::default(),
            at_ms: now_ms(),
        };
        record(&inc, change).await;
        let open = store
            .open_incident(SubjectKind::Vendor, "v")
            .expect("read")
            .expect("the incident is open");
        assert_eq!(open.state, IncidentState::Vendor(VendorState::HardDown));
        assert_eq!(
            store.outbox_pending().expect("read"),
            1,
            "the trigger is queued"
        );
        let text = inc.metrics.render(&crate::metrics::Scrape::default());
        assert!(
            text.contains("vantage_store_errors_total{op=\"record_change\"} 3"),
            "{text}"
        );
    }

    /// Issue 12: when a change was lost for good (the process stopped while the store
    /// refused it), the timer's reconcile pass opens the incident the vendor's state calls for,
    /// and later resolves it.
    #[tokio::test]
    async fn r12_reconcile_opens_and_resolves_what_the_vendor_state_calls_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (inc, store) = incidents(dir.path());
        inc.vendors
            .lock()
            .expect("lock")
            .insert("v".into(), status(VendorState::HardDown, &[]));
        let t0 = now_ms();
        inc.reconcile(t0).expect("reconcile");
        assert!(
            store
                .open_incident(SubjectKind::Vendor, "v")
                .expect("read")
                .is_some()
        );
        inc.reconcile(t0 + 1000).expect("reconcile");
        assert_eq!(
            store.outbox_pending().expect("read"),
            1,
            "one trigger, not two"
        );
        inc.vendors
            .lock()
            .expect("lock")
            .insert("v".into(), status(VendorState::Operational, &[]));
        // Clear, then resolved once the flap window (3 x recover_for = 3 s) has passed.
        inc.reconcile(t0 + 2000).expect("reconcile");
        assert!(
            store
                .open_incident(SubjectKind::Vendor, "v")
                .expect("read")
                .is_some()
        );
        inc.reconcile(t0 + 6000).expect("reconcile");
        assert!(
            store
                .open_incident(SubjectKind::Vendor, "v")
                .expect("read")
                .is_none()
        );
    }
}
