//! Slack incoming webhook: one message per event, in Slack's `text` format.

use serde_json::json;

use super::{Alert, AlertEvent, Receiver};

/// The request body for `alert`.
pub fn render(alert: &Alert, _receiver: &Receiver, _now_ms: i64) -> Result<Vec<u8>, String> {
    let (mark, word) = match alert.event {
        AlertEvent::Resolve => (":white_check_mark:", "RESOLVED"),
        AlertEvent::Update => (":arrows_counterclockwise:", "UPDATE"),
        AlertEvent::Reminder => (":bell:", "STILL OPEN"),
        AlertEvent::Trigger => (":rotating_light:", "FIRING"),
    };
    let text = format!(
        "{mark} *[{word}] {}* (incident {})\nstate: `{}`, scope: {}{}",
        alert.summary,
        alert.incident_id,
        alert.subject.state,
        alert.subject.scope,
        if alert.subject.regions.is_empty() {
            String::new()
        } else {
            format!(" ({})", alert.subject.regions.join(", "))
        }
    );
    serde_json::to_vec(&json!({ "text": text })).map_err(|e| e.to_string())
}
