//! Alerts to on-call: routes choose receivers, silences suppress pages, and a persisted outbox
//! delivers them.
//!
//! An incident change becomes one receiver-neutral [`Alert`] per receiver, queued in the
//! store's outbox in the same transaction as the change. The dispatcher ([`outbox`]) sends,
//! per (incident, receiver), the oldest undelivered alert first, retrying with backoff, so a
//! resolve never overtakes its trigger and a restart loses nothing.
//!
//! Layout: [`config`] (receivers, routes, silences as written); one file per receiver kind,
//! each with a `render` function ([`webhook`], [`slack`], [`pagerduty`], [`alertmanager`]);
//! [`outbox`] the dispatcher.

pub mod alertmanager;
pub mod config;
pub mod outbox;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::config::{Alerting, Receiver, ReceiverKind, Route, Secret};
use crate::consensus::vendor::VendorState;
use crate::store::state::SilenceRow;

/// The state name of probe-health incidents, for routes.
pub const PROBE_STATE: &str = "probe_quarantined";

/// Parses a stored or received label into one of the enums below.
pub trait Label: Sized + Copy + 'static {
    /// Every value.
    const ALL: &'static [Self];
    /// Its label, as stored, sent and matched.
    fn as_label(self) -> &'static str;
    /// The value of a label.
    fn from_label(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_label() == s)
    }
}

/// Serde as the label, for the enums below.
macro_rules! label_serde {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_label())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                <$t>::from_label(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("unknown ", $what, " `{}`"), s))
                })
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_label())
            }
        }
    };
}

/// What an incident is about: a vendor, or a probe (its quarantine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    /// A vendor's state.
    #[default]
    Vendor,
    /// A probe's health.
    Probe,
}

impl Label for SubjectKind {
    const ALL: &'static [Self] = &[Self::Vendor, Self::Probe];
    fn as_label(self) -> &'static str {
        match self {
            Self::Vendor => "vendor",
            Self::Probe => "probe",
        }
    }
}
label_serde!(SubjectKind, "subject kind");

/// How much of the world an incident covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectScope {
    /// Everywhere (a vendor's global state).
    #[default]
    Global,
    /// Some regions only (listed with it).
    Regional,
}

impl Label for SubjectScope {
    const ALL: &'static [Self] = &[Self::Global, Self::Regional];
    fn as_label(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Regional => "regional",
        }
    }
}
label_serde!(SubjectScope, "scope");

/// The state an incident names: a vendor's, or a probe's quarantine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IncidentState {
    /// A vendor state (`hard_down`, `degraded_performance`, …).
    Vendor(VendorState),
    /// A probe quarantined for disagreeing with its peers.
    ProbeQuarantined,
}

impl Default for IncidentState {
    fn default() -> Self {
        Self::Vendor(VendorState::Operational)
    }
}

impl IncidentState {
    /// Its label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Vendor(v) => v.as_label(),
            Self::ProbeQuarantined => PROBE_STATE,
        }
    }

    /// The state of a label.
    pub fn from_label(s: &str) -> Option<Self> {
        if s == PROBE_STATE {
            Some(Self::ProbeQuarantined)
        } else {
            VendorState::from_label(s).map(Self::Vendor)
        }
    }

    /// The vendor state, for a vendor's incident.
    pub fn vendor(self) -> Option<VendorState> {
        match self {
            Self::Vendor(v) => Some(v),
            Self::ProbeQuarantined => None,
        }
    }
}
label_serde!(IncidentState, "incident state");

/// What an alert says of its incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertEvent {
    /// The incident opened (or a silence holding it back ended).
    Trigger,
    /// The incident changed: state, scope or summary.
    Update,
    /// The incident resolved.
    Resolve,
    /// Still open: a reminder (or Alertmanager's re-send).
    Reminder,
}

impl Label for AlertEvent {
    const ALL: &'static [Self] = &[Self::Trigger, Self::Update, Self::Resolve, Self::Reminder];
    fn as_label(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Update => "update",
            Self::Resolve => "resolve",
            Self::Reminder => "reminder",
        }
    }
}
label_serde!(AlertEvent, "alert event");

impl AlertEvent {
    /// What queueing this event at `at_ms` marks on its receiver's delivery record: (when
    /// triggered, when resolved).
    pub fn delivery_marks(self, at_ms: i64) -> (Option<i64>, Option<i64>) {
        match self {
            Self::Trigger => (Some(at_ms), None),
            Self::Resolve => (None, Some(at_ms)),
            Self::Update | Self::Reminder => (None, None),
        }
    }
}

/// What an incident is about, as routes and silences see it. Stored with the incident.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// `vendor` or `probe`.
    pub kind: SubjectKind,
    /// Vendor or probe id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// State label (`hard_down`, …, or `probe_quarantined`).
    pub state: IncidentState,
    /// `global` or `regional`.
    pub scope: SubjectScope,
    /// Regions affected (for a regional incident; for a probe, its region).
    pub regions: Vec<String>,
    /// Checks involved.
    pub checks: Vec<String>,
    /// Labels routes can match (vendor, probe, state, scope, probe labels…).
    pub labels: BTreeMap<String, String>,
}

/// One alert, receiver-neutral: what the generic webhook receives as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Payload version.
    pub version: u32,
    /// `trigger`, `update`, `resolve` or `reminder`.
    pub event: AlertEvent,
    /// The incident (the PagerDuty `dedup_key`). Filled in when sent.
    #[serde(default)]
    pub incident_id: i64,
    /// What it is about.
    #[serde(flatten)]
    pub subject: Subject,
    /// One line for people.
    pub summary: String,
    /// Opened (RFC 3339).
    pub opened_at: String,
    /// The state the incident opened with; receivers that need one identity for the whole
    /// incident (Alertmanager's labels) take its severity from this, not from `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_state: Option<IncidentState>,
    /// This event (RFC 3339).
    pub at: String,
    /// Resolved (RFC 3339), for a resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// The conditions and evidence behind it.
    pub detail: serde_json::Value,
}

/// RFC 3339 of Unix ms.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Route {
    /// True when this route takes incidents about `s`.
    pub fn matches(&self, s: &Subject) -> bool {
        let vendor = s.labels.get("vendor");
        (self.vendors.is_empty() || vendor.is_some_and(|v| self.vendors.contains(v)))
            && (self.states.is_empty() || self.states.contains(&s.state))
            && (self.regions.is_empty()
                || s.scope == SubjectScope::Global
                || s.regions.iter().any(|r| self.regions.contains(r)))
            && self.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
    }
}

impl Alerting {
    /// The receivers routes send `s` to, each with the shortest reminder interval asked.
    /// With no routes at all, every receiver takes everything.
    pub fn targets(&self, s: &Subject) -> BTreeMap<String, Option<std::time::Duration>> {
        let mut out: BTreeMap<String, Option<std::time::Duration>> = BTreeMap::new();
        if self.routes.is_empty() {
            for r in &self.receivers {
                out.insert(r.name.clone(), None);
            }
            return out;
        }
        for route in self.routes.iter().filter(|r| r.matches(s)) {
            for name in &route.receivers {
                let e = out.entry(name.clone()).or_insert(route.repeat);
                *e = match (*e, route.repeat) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        out
    }
}

/// True when `silence` covers an incident about `s`.
pub fn silenced_by(silence: &SilenceRow, s: &Subject) -> bool {
    let vendor_ok = match &silence.vendor {
        None => true,
        Some(v) => s.kind == SubjectKind::Vendor && &s.id == v,
    };
    let check_ok = match &silence.check_id {
        None => true,
        Some(c) => s.checks.contains(c),
    };
    // A region silence covers what happens in that region, not a global outage.
    let region_ok = match &silence.region {
        None => true,
        Some(r) => s.scope != SubjectScope::Global && s.regions.iter().all(|x| x == r),
    };
    vendor_ok && check_ok && region_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(scope: SubjectScope, regions: &[&str]) -> Subject {
        Subject {
            kind: SubjectKind::Vendor,
            id: "fastcdn".into(),
            name: "FastCDN".into(),
            state: IncidentState::Vendor(VendorState::HardDown),
            scope,
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            checks: vec!["static-css".into()],
            labels: [("vendor", "fastcdn"), ("state", "hard_down")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    #[test]
    fn routes_match_vendor_state_region_and_labels() {
        let base = Route {
            receivers: vec!["r".into()],
            ..Route::default()
        };
        let global = subject(SubjectScope::Global, &[]);
        let eu = subject(SubjectScope::Regional, &["eu"]);
        let cases: Vec<(&str, Route, &Subject, bool)> = vec![
            ("catch-all", base.clone(), &global, true),
            (
                "vendor",
                Route {
                    vendors: vec!["other".into()],
                    ..base.clone()
                },
                &global,
                false,
            ),
            (
                "state",
                Route {
                    states: vec![IncidentState::Vendor(VendorState::ApiDown)],
                    ..base.clone()
                },
                &global,
                false,
            ),
            (
                "region: a global outage touches every region",
                Route {
                    regions: vec!["us".into()],
                    ..base.clone()
                },
                &global,
                true,
            ),
            (
                "region: a regional outage elsewhere",
                Route {
                    regions: vec!["us".into()],
                    ..base.clone()
                },
                &eu,
                false,
            ),
            (
                "labels",
                Route {
                    labels: [("vendor".to_owned(), "fastcdn".to_owned())].into(),
                    ..base.clone()
                },
                &eu,
                true,
            ),
        ];
        for (name, route, s, want) in cases {
            assert_eq!(route.matches(s), want, "{name}");
        }
    }

    #[test]
    fn silences_match_vendor_check_and_region() {
        let s = SilenceRow {
            id: 1,
            vendor: Some("fastcdn".into()),
            check_id: None,
            region: Some("eu".into()),
            starts_ms: 0,
            ends_ms: 1,
            comment: String::new(),
            created_by: "test".into(),
            created_ms: 0,
        };
        assert!(silenced_by(&s, &subject(SubjectScope::Regional, &["eu"])));
        assert!(!silenced_by(&s, &subject(SubjectScope::Global, &[])));
        assert!(!silenced_by(
            &s,
            &subject(SubjectScope::Regional, &["eu", "us"])
        ));
        let by_check = SilenceRow {
            vendor: None,
            region: None,
            check_id: Some("other".into()),
            ..s
        };
        assert!(!silenced_by(&by_check, &subject(SubjectScope::Global, &[])));
    }
}

#[cfg(test)]
mod render_tests {
    use std::time::Duration;

    use super::*;

    fn receiver(kind: ReceiverKind) -> Receiver {
        Receiver {
            name: "r".into(),
            kind,
            url: Secret::new("https://hooks.example/T0/B0/SECRET"),
            routing_key: Some(Secret::new("KEY")),
            timeout: Duration::from_secs(10),
            resend: Duration::from_secs(60),
            max_attempts: 3,
        }
    }

    fn alert(event: AlertEvent) -> Alert {
        Alert {
            version: 1,
            event,
            incident_id: 42,
            subject: Subject {
                kind: SubjectKind::Vendor,
                id: "fastcdn".into(),
                name: "FastCDN".into(),
                state: IncidentState::Vendor(VendorState::HardDown),
                scope: SubjectScope::Regional,
                regions: vec!["eu".into()],
                checks: vec!["static-css".into()],
                labels: BTreeMap::new(),
            },
            summary: "FastCDN is hard_down in eu".into(),
            opened_at: rfc3339(0),
            opened_state: Some(IncidentState::Vendor(VendorState::HardDown)),
            at: rfc3339(60_000),
            resolved_at: (event == AlertEvent::Resolve).then(|| rfc3339(60_000)),
            detail: serde_json::Value::Null,
        }
    }

    fn json(bytes: Result<Vec<u8>, String>) -> serde_json::Value {
        serde_json::from_slice(&bytes.expect("render")).expect("JSON")
    }

    #[test]
    fn each_receiver_renders_its_own_format() {
        let now = 60_000;
        let hook = json(webhook::render(
            &alert(AlertEvent::Trigger),
            &receiver(ReceiverKind::Webhook),
            now,
        ));
        assert_eq!(hook["incident_id"], 42);
        assert_eq!(hook["id"], "fastcdn");
        assert_eq!(hook["regions"], serde_json::json!(["eu"]));

        let slack = json(slack::render(
            &alert(AlertEvent::Resolve),
            &receiver(ReceiverKind::Slack),
            now,
        ));
        let text = slack["text"].as_str().expect("text");
        assert!(
            text.contains("RESOLVED") && text.contains("FastCDN is hard_down in eu"),
            "{text}"
        );
        assert!(!text.contains("SECRET"), "the URL never reaches a payload");

        let pd = json(pagerduty::render(
            &alert(AlertEvent::Update),
            &receiver(ReceiverKind::Pagerduty),
            now,
        ));
        assert_eq!(
            pd["event_action"], "trigger",
            "updates fold into the open PagerDuty incident"
        );
        assert_eq!(pd["dedup_key"], "42");
        assert_eq!(pd["routing_key"], "KEY");
        assert_eq!(pd["payload"]["severity"], "critical");
        let pd = json(pagerduty::render(
            &alert(AlertEvent::Resolve),
            &receiver(ReceiverKind::Pagerduty),
            now,
        ));
        assert_eq!(pd["event_action"], "resolve");

        let am = json(alertmanager::render(
            &alert(AlertEvent::Trigger),
            &receiver(ReceiverKind::Alertmanager),
            now,
        ));
        assert_eq!(am[0]["labels"]["alertname"], "VantageVendorState");
        assert_eq!(am[0]["labels"]["incident"], "42");
        assert_eq!(am[0]["labels"]["vendor"], "fastcdn");
        assert_eq!(
            am[0]["endsAt"],
            rfc3339(now + 240_000),
            "firing: ends 4 resends ahead"
        );
        let am = json(alertmanager::render(
            &alert(AlertEvent::Resolve),
            &receiver(ReceiverKind::Alertmanager),
            now,
        ));
        assert_eq!(
            am[0]["endsAt"],
            rfc3339(60_000),
            "resolved: ends at the resolve"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let r = receiver(ReceiverKind::Pagerduty);
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("KEY\""),
            "{shown}"
        );
    }
}
