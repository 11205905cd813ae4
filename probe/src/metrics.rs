//! The probe's own counters: sent with every batch (the coordinator's
//! `vantage_probe_*{probe}` metrics), and with `metrics_listen` on a local Prometheus
//! `/metrics` endpoint, so a probe cut off from its coordinator can still be watched.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use vantage_checks::wire::ProbeCounters;

/// A scrape's whole request must arrive within this; a connection lasts at most
/// [`CONNECTION_LIMIT`].
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTION_LIMIT: Duration = Duration::from_secs(60);

/// The probe's own counters since boot.
#[derive(Debug, Default)]
pub struct Counters {
    /// Check runs started.
    pub runs: Counter,
    /// Results acknowledged by the coordinator.
    pub sent: Counter,
    /// Pushes retried (network errors, 5xx, 429).
    pub retried: Counter,
    /// Results refused by the coordinator with a 4xx (not retried).
    pub rejected: Counter,
    /// Results dropped at the spool's bounds (size or age).
    pub dropped: Counter,
    /// Results in the spool waiting for acknowledgement.
    pub pending: Gauge,
    /// Bytes the spool holds on disk.
    pub spool_bytes: Gauge,
    /// Checks of the config run on the schedule (`on_demand` checks are not).
    pub checks: Gauge,
}

impl Counters {
    /// A registry exposing every counter under `vantage_probe_`.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("vantage_probe");
        r.register("runs", "Check runs started since boot", self.runs.clone());
        r.register(
            "results_sent",
            "Results acknowledged by the coordinator since boot",
            self.sent.clone(),
        );
        r.register(
            "pushes_retried",
            "Pushes of results retried since boot (network errors, 5xx, 429)",
            self.retried.clone(),
        );
        r.register(
            "results_rejected",
            "Results refused by the coordinator with a 4xx since boot (not retried)",
            self.rejected.clone(),
        );
        r.register(
            "results_dropped",
            "Results dropped at the spool's size or age bound since boot",
            self.dropped.clone(),
        );
        r.register(
            "spool_pending_results",
            "Results in the spool waiting for the coordinator's acknowledgement",
            self.pending.clone(),
        );
        r.register(
            "spool_bytes",
            "Bytes the spool holds on disk",
            self.spool_bytes.clone(),
        );
        r.register(
            "checks",
            "Checks of the config run on the schedule (on-demand checks excluded)",
            self.checks.clone(),
        );
        r
    }

    /// Records the spool's figures: results waiting, results dropped at its bounds since
    /// boot (a running total), and bytes on disk.
    pub fn spool(&self, pending: u64, dropped_total: u64, bytes: u64) {
        self.pending.set(gauge(pending));
        // The spool's own total only grows; fetch_max keeps the counter right when the
        // spooler and the shipper report at once (the in-process probe runs multi-threaded).
        self.dropped
            .inner()
            .fetch_max(dropped_total, std::sync::atomic::Ordering::Relaxed);
        self.spool_bytes.set(gauge(bytes));
    }

    /// The counters as sent with a batch.
    pub fn wire(&self) -> ProbeCounters {
        ProbeCounters {
            runs: self.runs.get(),
            pending: self.pending.get().max(0) as u64,
            sent: self.sent.get(),
            retried: self.retried.get(),
            dropped: self.dropped.get(),
            rejected: self.rejected.get(),
            spool_bytes: self.spool_bytes.get().max(0) as u64,
        }
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Serves `GET /metrics` (Prometheus text format) on `listener`, until dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "metrics endpoint cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = answer(&registry, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIMIT, conn).await;
        });
    }
}

fn answer(registry: &Registry, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        r
    };
    if path != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the probe serves only /metrics\n".into(),
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed: use GET\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut body = String::new();
    if let Err(e) = encode(&mut body, registry) {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("cannot encode metrics: {e}\n"),
        );
    }
    reply(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_total_of_drops_becomes_a_counter_and_the_rest_gauges() {
        let c = Counters::default();
        c.runs.inc_by(7);
        c.spool(5, 3, 4096);
        c.spool(2, 3, 1024);
        c.spool(2, 10, 1024);
        assert_eq!(
            c.wire(),
            ProbeCounters {
                runs: 7,
                pending: 2,
                dropped: 10,
                spool_bytes: 1024,
                ..ProbeCounters::default()
            }
        );
        let registry = c.registry();
        let ok = answer(&registry, &Method::GET, "/metrics");
        assert_eq!(ok.status(), StatusCode::OK);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        for line in [
            "vantage_probe_runs_total 7",
            "vantage_probe_results_dropped_total 10",
            "vantage_probe_spool_pending_results 2",
            "vantage_probe_spool_bytes 1024",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}`:\n{text}");
        }
        assert_eq!(
            answer(&registry, &Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            answer(&registry, &Method::GET, "/").status(),
            StatusCode::NOT_FOUND
        );
    }
}
