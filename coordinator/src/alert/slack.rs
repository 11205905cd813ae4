//! Slack incoming webhook: one message per event, in Slack's `text` format.

use serde_json::json;

use super::{Alert, Receiver};

/// The request body for `alert`.
pub fn render(alert: &Alert, _receiver: &Receiver, _now_ms: i64) -> Result<Vec<u8>, String> {
    let (mark, word) = match alert.event.as_str() {
        "resolve" => (":white_check_mark:", "RESOLVED"),
        "update" => (":arrows_counterclockwise:", "UPDATE"),
        "reminder" => (":bell:", "STILL OPEN"),
        _ => (":rotating_light:", "FIRING"),
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
