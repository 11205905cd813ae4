//! The outbox dispatcher: sends queued alerts, oldest first per (incident, receiver), and
//! retries failures with exponential backoff and jitter. Delivery is at least once: an alert
//! is marked delivered only after a 2xx, so a crash in between sends it again (PagerDuty and
//! Alertmanager de-duplicate by incident; the webhook carries the incident id and event).
//!
//! Each alert is claimed (for a minute) before it is sent, so that of several coordinators on
//! one store one sends it; one that dies holding a claim leaves the alert to the others when the
//! claim ends. That is the one case where an alert can go out twice: sent, then the sender died
//! before marking it delivered. PagerDuty and Alertmanager fold the second into the first by
//! the incident; the webhook's `incident_id` and `event` let a receiver do the same.
//!
//! An alert that fails every attempt its receiver allows (`max_attempts`) is given up: a dead
//! letter, on its incident's timeline (`undeliverable`) and in
//! `vantage_alert_dead_letters_total`, so that it no longer holds back the alerts after it.
//! When the store itself fails (a full disk), the dispatcher backs off instead of spinning,
//! and an alert already delivered is never sent again only because its mark could not be
//! written: the mark is tried again first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;

use super::{Alert, Alerting, ReceiverKind, alertmanager, pagerduty, slack, webhook};
use crate::metrics::{Metrics, StoreOp};
use crate::store::Store;
use crate::store::state::OutboxRow;

/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Sends in flight at once.
const PARALLEL: usize = 16;
/// How long a claimed alert is this coordinator's to send; a coordinator that dies holding
/// claims leaves them to the others after this. Longer than any receiver's timeout.
const CLAIM: Duration = Duration::from_secs(60);
/// Shortest and longest pause after the store failed.
const STORE_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(30));

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client() -> Result<HttpClient, String> {
    let tls = vantage_checks::pem::client_config(vantage_checks::pem::native_roots())
        .map_err(|e| e.to_string())?
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector))
}

/// The wait before attempt `attempts + 1`: 1 s doubling to 5 min, ±20% jitter.
pub fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1 << attempts.min(16));
    let base = base.min(MAX_BACKOFF);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    base.mul_f64(jitter)
}

/// Sends one queued alert; `Err` says why it failed, without the URL (a secret).
async fn send(
    client: &HttpClient,
    alerting: &Alerting,
    row: &OutboxRow,
    now_ms: i64,
) -> Result<(), String> {
    let receiver = alerting
        .receiver(&row.receiver)
        .ok_or_else(|| format!("receiver `{}` is no longer configured", row.receiver))?;
    let mut alert: Alert =
        serde_json::from_str(&row.payload).map_err(|e| format!("corrupt queued alert: {e}"))?;
    alert.incident_id = row.incident_id;
    let body = match receiver.kind {
        ReceiverKind::Webhook => webhook::render(&alert, receiver, now_ms),
        ReceiverKind::Slack => slack::render(&alert, receiver, now_ms),
        ReceiverKind::Pagerduty => pagerduty::render(&alert, receiver, now_ms),
        ReceiverKind::Alertmanager => alertmanager::render(&alert, receiver, now_ms),
    }?;
    let mut url = receiver.url.expose().trim_end_matches('/').to_owned();
    if receiver.kind == ReceiverKind::Alertmanager {
        url.push_str(alertmanager::PATH);
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "the receiver URL is not valid".to_owned())?;
    let req = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("vantage-coordinator/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(receiver.timeout, client.request(req))
        .await
        .map_err(|_| format!("no answer within {:?}", receiver.timeout))?
        // hyper's errors name the failing step, not the URL.
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    let body = tokio::time::timeout(receiver.timeout, resp.into_body().collect())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if status.is_success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Err(format!("answered {}: {}", status.as_u16(), text.trim()))
    }
}

/// Runs the dispatcher until the task is aborted. `wake` is notified when alerts are queued.
pub async fn run(
    store: Arc<dyn Store>,
    node: String,
    alerting: Arc<Alerting>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
) {
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the alert HTTP client; alerts stay queued");
            return;
        }
    };
    // Alerts delivered whose `delivered` mark the store refused: (id, when delivered).
    let mut unmarked: HashMap<i64, i64> = HashMap::new();
    let mut store_wait = STORE_BACKOFF.0;
    loop {
        let mut store_failed = false;
        if !unmarked.is_empty() {
            let marks: Vec<(i64, i64)> = unmarked.iter().map(|(id, at)| (*id, *at)).collect();
            let s = Arc::clone(&store);
            let still: Vec<i64> = tokio::task::spawn_blocking(move || {
                marks
                    .into_iter()
                    .filter(|(id, at)| s.outbox_delivered(*id, *at).is_err())
                    .map(|(id, _)| id)
                    .collect()
            })
            .await
            .unwrap_or_else(|_| unmarked.keys().copied().collect());
            unmarked.retain(|id, _| still.contains(id));
            store_failed = !unmarked.is_empty();
        }
        let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
        let due = if store_failed {
            Vec::new()
        } else {
            let s = Arc::clone(&store);
            let node = node.clone();
            let claim = CLAIM.as_millis() as i64;
            match tokio::task::spawn_blocking(move || {
                s.outbox_claim(&node, now, claim, PARALLEL as u32)
            })
            .await
            {
                Ok(Ok(due)) => due,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    store_failed = true;
                    Vec::new()
                }
                Err(_) => Vec::new(),
            }
        };
        if store_failed {
            metrics.store_error(StoreOp::Outbox);
            tracing::warn!(
                unmarked = unmarked.len(),
                retry_in_ms = store_wait.as_millis() as u64,
                "the store fails: the alert dispatcher waits"
            );
            tokio::time::sleep(store_wait).await;
            store_wait = (store_wait * 2).min(STORE_BACKOFF.1);
            continue;
        }
        store_wait = STORE_BACKOFF.0;
        if due.is_empty() {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        }
        let mut sends = tokio::task::JoinSet::new();
        for row in due {
            let client = client.clone();
            let alerting = Arc::clone(&alerting);
            sends.spawn(async move {
                let outcome = send(&client, &alerting, &row, now).await;
                (row, outcome)
            });
        }
        while let Some(done) = sends.join_next().await {
            let Ok((row, outcome)) = done else { continue };
            let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
            let s = Arc::clone(&store);
            let id = row.id;
            let written = match outcome {
                Ok(()) => {
                    tracing::info!(receiver = %row.receiver, incident = row.incident_id, event = %row.event, attempts = row.attempts + 1, "alert delivered");
                    metrics.alert_sent(&row.receiver, true);
                    let marked =
                        tokio::task::spawn_blocking(move || s.outbox_delivered(id, now)).await;
                    if !matches!(marked, Ok(Ok(()))) {
                        // Delivered: never sent again only because the store failed.
                        unmarked.insert(id, now);
                    }
                    marked
                }
                Err(e) => {
                    metrics.alert_sent(&row.receiver, false);
                    let allowed = alerting
                        .receiver(&row.receiver)
                        .map_or(super::config::DEFAULT_MAX_ATTEMPTS, |r| r.max_attempts);
                    if row.attempts + 1 >= allowed {
                        tracing::error!(receiver = %row.receiver, incident = row.incident_id, event = %row.event, attempts = row.attempts + 1, error = %e, "alert undeliverable: every attempt failed; it is given up (a dead letter on the incident's timeline)");
                        metrics.dead_letter(&row.receiver);
                        tokio::task::spawn_blocking(move || s.outbox_dead(id, &e, now)).await
                    } else {
                        let wait = backoff(row.attempts);
                        tracing::warn!(receiver = %row.receiver, incident = row.incident_id, event = %row.event, attempts = row.attempts + 1, retry_in_ms = wait.as_millis() as u64, error = %e, "alert delivery failed; will retry");
                        let next = now + wait.as_millis() as i64;
                        tokio::task::spawn_blocking(move || s.outbox_retry(id, &e, next)).await
                    }
                }
            };
            if let Ok(Err(e)) = &written {
                tracing::error!(error = %e, outbox = id, "cannot record an alert's outcome in the outbox");
            }
        }
    }
}
