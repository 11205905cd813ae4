//! Prometheus Alertmanager: `POST /api/v2/alerts` with one alert whose labels stay the same for
//! the incident's life (so Alertmanager sees one alert), re-sent while firing with `endsAt`
//! a few resend intervals ahead, and finally with `endsAt` at the resolve time.
//!
//! The labels are the alert name, the incident and its subject, and a `severity` from the state
//! the incident opened with: a label that followed the current state would make Alertmanager
//! see a second alert (and leave the first firing) when an incident moves between states. The
//! current state, scope and regions are annotations.

use serde_json::json;

use super::{Alert, IncidentState, Label as _, Receiver, SubjectKind, rfc3339};
use crate::consensus::vendor::VendorState;

/// The path under the receiver's base URL.
pub const PATH: &str = "/api/v2/alerts";

/// The request body for `alert`.
pub fn render(alert: &Alert, receiver: &Receiver, now_ms: i64) -> Result<Vec<u8>, String> {
    let alertname = if alert.subject.kind == SubjectKind::Probe {
        "VantageProbeQuarantined"
    } else {
        "VantageVendorState"
    };
    let ends_at = match &alert.resolved_at {
        Some(at) => at.clone(),
        None => rfc3339(now_ms + 4 * receiver.resend.as_millis() as i64),
    };
    let body = json!([{
        "labels": {
            "alertname": alertname,
            "incident": alert.incident_id.to_string(),
            alert.subject.kind.as_label(): alert.subject.id,
            "severity": severity(alert),
        },
        "annotations": {
            "summary": alert.summary,
            "state": alert.subject.state,
            "scope": alert.subject.scope,
            "regions": alert.subject.regions.join(","),
        },
        "startsAt": alert.opened_at,
        "endsAt": ends_at,
    }]);
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// `critical` for an incident that opened `hard_down`, else `warning`.
fn severity(alert: &Alert) -> &'static str {
    let opened = alert.opened_state.unwrap_or(alert.subject.state);
    if opened == IncidentState::Vendor(VendorState::HardDown) {
        "critical"
    } else {
        "warning"
    }
}
