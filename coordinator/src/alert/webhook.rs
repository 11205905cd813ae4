//! The generic JSON webhook: the [`Alert`] as it is, POSTed to the receiver's URL.

use super::{Alert, Receiver};

/// The request body for `alert`.
pub fn render(alert: &Alert, _receiver: &Receiver, _now_ms: i64) -> Result<Vec<u8>, String> {
    serde_json::to_vec(alert).map_err(|e| e.to_string())
}
