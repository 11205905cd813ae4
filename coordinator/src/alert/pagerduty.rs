//! PagerDuty Events API v2: `trigger` (also for updates and reminders, which PagerDuty folds
//! into the open incident by `dedup_key`) and `resolve`. The `dedup_key` is the incident id.

use serde_json::json;

use super::{Alert, AlertEvent, IncidentState, Receiver};
use crate::consensus::vendor::VendorState;

/// The request body for `alert`.
pub fn render(alert: &Alert, receiver: &Receiver, _now_ms: i64) -> Result<Vec<u8>, String> {
    let key = receiver
        .routing_key
        .as_ref()
        .ok_or("the pagerduty receiver has no routing key")?;
    let action = if alert.event == AlertEvent::Resolve {
        "resolve"
    } else {
        "trigger"
    };
    let severity = match alert.subject.state {
        IncidentState::Vendor(VendorState::HardDown) => "critical",
        IncidentState::Vendor(VendorState::ApiDown) => "error",
        IncidentState::Vendor(VendorState::LimitedVisibility | VendorState::Degraded) => "warning",
        _ => "info",
    };
    let body = json!({
        "routing_key": key.expose(),
        "event_action": action,
        "dedup_key": alert.incident_id.to_string(),
        "payload": {
            "summary": alert.summary,
            "source": "vantage",
            "severity": severity,
            "timestamp": alert.at,
            "component": alert.subject.id,
            "group": alert.subject.kind,
            "class": alert.subject.state,
            "custom_details": alert,
        },
    });
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}
