//! The outbox dispatcher: sends queued alerts, oldest first per (incident, receiver), and
//! retries failures with exponential backoff and jitter. Delivery is at least once: an alert
//! is marked delivered only after a 2xx, so a crash in between sends it again (PagerDuty and
//! Alertmanager de-duplicate by incident; the webhook carries the incident id and event).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;

use super::{Alert, Alerting, ReceiverKind, alertmanager, pagerduty, slack, webhook};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::state::OutboxRow;

/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Sends in flight at once.
const PARALLEL: usize = 16;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client() -> Result<HttpClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
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
    loop {
        let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
        let s = Arc::clone(&store);
        let due = tokio::task::spawn_blocking(move || s.outbox_due(now, PARALLEL as u32))
            .await
            .ok()
            .and_then(|r| {
                r.map_err(|e| tracing::error!(error = %e, "cannot read the outbox"))
                    .ok()
            })
            .unwrap_or_default();
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
            match outcome {
                Ok(()) => {
                    tracing::info!(receiver = %row.receiver, incident = row.incident_id, event = %row.event, attempts = row.attempts + 1, "alert delivered");
                    metrics.alert_sent(&row.receiver, true);
                    let _ =
                        tokio::task::spawn_blocking(move || s.outbox_delivered(row.id, now)).await;
                }
                Err(e) => {
                    let wait = backoff(row.attempts);
                    tracing::warn!(receiver = %row.receiver, incident = row.incident_id, event = %row.event, attempts = row.attempts + 1, retry_in_ms = wait.as_millis() as u64, error = %e, "alert delivery failed; will retry");
                    metrics.alert_sent(&row.receiver, false);
                    let next = now + wait.as_millis() as i64;
                    let _ =
                        tokio::task::spawn_blocking(move || s.outbox_retry(row.id, &e, next)).await;
                }
            }
        }
    }
}
