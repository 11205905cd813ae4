//! The HTTP API under `/api/v1`, plus `/healthz` and `/readyz`; the status page's paths are
//! routed to `crate::page`, which answers HTML.
//!
//! Every API answer is JSON; every refusal is a 4xx with `{"error": "…"}` saying what was wrong.
//! Nothing a client sends can cause a 5xx other than the store failing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use serde::Serialize;
use time::OffsetDateTime;
use vantage_checks::wire::{ApiError, BatchAck};

mod report;
mod runs;
mod state;
mod stream;

pub use self::state::{SilenceRequest, silence_row};
use crate::access::Need;
use crate::alert::Alerting;
use crate::auth;
use crate::catalog::Catalogs;
use crate::config::Limits;
use crate::engine::Engine;
use crate::ingest::{self, SubmitError, Writer};
use crate::metrics::{Metrics, ProbeGauge, RejectReason, Scrape};
use crate::store::{ProbeRecord, ResultQuery, Store, StoreError};

/// Default and largest `limit` of `GET /api/v1/results`.
const RESULTS_DEFAULT_LIMIT: u32 = 100;
const RESULTS_MAX_LIMIT: u32 = 10_000;

/// What every request handler shares.
pub struct AppState {
    /// The store (reads).
    pub store: Arc<dyn Store>,
    /// This coordinator among those sharing the store: its node id and leases.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// The writer (ingest).
    pub writer: Writer,
    /// The check catalog.
    pub catalogs: Arc<Catalogs>,
    /// Request limits.
    pub limits: Limits,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The consensus engine.
    pub engine: Arc<Engine>,
    /// Receivers, routes and configured silences.
    pub alerting: Arc<Alerting>,
    /// Who may read, change and scrape (`[api]`).
    pub access: crate::access::Access,
    /// The coordinator serves TLS: the status page's session cookie is `Secure`.
    pub secure_cookies: bool,
    /// The probes' endpoints need a verified client certificate ([`ClientCert`]).
    pub probe_client_certs: bool,
    /// Runs of a check a probe may store per minute.
    pub(crate) run_cap: Arc<crate::ingest::RunCap>,
    /// The live stream (`GET /api/v1/stream`).
    pub stream: Arc<crate::stream::Hub>,
    /// Sign-in attempts per client address.
    pub(crate) logins: crate::page::limit::LoginLimiter,
    /// The newest on-demand run: the probes' long polls wait on it.
    pub runs: Arc<crate::runs::Board>,
    /// Raw result queries running at once ([`RESULTS_QUERIES`]).
    pub(crate) result_reads: Arc<tokio::sync::Semaphore>,
}

/// Raw result queries (`GET /api/v1/results`) at once; more get `429`.
pub const RESULTS_QUERIES: usize = 4;
/// How long one raw result query may run.
pub const RESULTS_DEADLINE: Duration = Duration::from_secs(10);

/// The client's address, put in every request's extensions by the server.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

/// The client showed a certificate that the probes' client CA signed (mutual TLS), put in the
/// request's extensions by the server.
#[derive(Clone, Copy, Debug)]
pub struct ClientCert;

/// The body of every response: a whole buffer, or a stream (Server-Sent Events).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The response type of every handler.
pub type Resp = Response<Body>;

/// A body that is one buffer.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// Routes one request.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    // Probes authenticate with their own tokens; everything else under /api/v1 is a read or
    // a change, and /metrics has its own rule.
    // (Other methods on the results path are not changes: the router answers 405.)
    let probes_own = (path == "/api/v1/results" && method != Method::GET)
        || path == "/api/v1/probe/config"
        || path == "/api/v1/probe/runs";
    let need = if path == "/metrics" {
        Some(Need::Metrics)
    } else if path.starts_with("/api/v1/") && !probes_own {
        Some(if method == Method::GET {
            Need::Read
        } else {
            Need::Change
        })
    } else {
        None
    };
    if let Some(need) = need
        && let Some(resp) = authorize(&state, &req, need)
    {
        return resp;
    }
    let (collection, item) = match path.strip_prefix("/api/v1/") {
        Some(rest) => match rest.split_once('/') {
            Some((c, id)) if !id.is_empty() && !id.contains('/') => (c, Some(id.to_owned())),
            _ => (rest, None),
        },
        None => ("", None),
    };
    let resp = match (method.clone(), path.as_str(), collection, item.as_deref()) {
        (Method::GET, "/healthz", ..) => text(StatusCode::OK, "ok\n"),
        (Method::GET, "/readyz", ..) => readyz(&state).await,
        (Method::GET, "/metrics", ..) => metrics(&state).await,
        (Method::GET, "/api/v1/probe/config", ..) => probe_config(&state, &req).await,
        (Method::GET, "/api/v1/probe/runs", ..) => runs::poll(&state, &req).await,
        (Method::POST, "/api/v1/results", ..) => post_results(&state, req).await,
        (Method::GET, "/api/v1/results", ..) => get_results(&state, &req).await,
        (Method::GET, "/api/v1/reports/sla", ..) => report::sla(&state, &req).await,
        (Method::GET, _, "vendors", None) => state::vendors(&state).await,
        (Method::GET, _, "vendors", Some(id)) => state::vendor(&state, id).await,
        (Method::GET, _, "incidents", None) => state::incidents(&state, &req).await,
        (Method::GET, _, "incidents", Some(id)) => state::incident(&state, id).await,
        (Method::GET, _, "probes", None) => state::probes(&state).await,
        (Method::POST, _, "runs", None) => runs::start(&state, req).await,
        (Method::GET, _, "runs", None) => runs::list(&state, &req).await,
        (Method::GET, _, "runs", Some(id)) => runs::get(&state, id).await,
        (Method::GET, _, "silences", None) => state::silences(&state, &req).await,
        (Method::GET, "/api/v1/stream", ..) => stream::stream(&state, &req),
        (Method::POST, _, "silences", None) => state::add_silence(&state, req).await,
        (Method::DELETE, _, "silences", Some(id)) => state::remove_silence(&state, id).await,
        (_, p, ..) if crate::page::serves(p) => crate::page::handle(&state, req).await,
        (
            _,
            "/healthz"
            | "/readyz"
            | "/api/v1/probe/config"
            | "/api/v1/probe/runs"
            | "/api/v1/results"
            | "/api/v1/reports/sla"
            | "/api/v1/stream",
            ..,
        )
        | (_, _, "vendors" | "incidents" | "probes" | "silences" | "runs", _) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}"),
        ),
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
    };
    if resp.status().is_client_error() {
        tracing::debug!(%method, %path, status = resp.status().as_u16(), "request refused");
    }
    resp
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode: {e}\"}}").into_bytes());
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut resp = Response::new(full(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn error(status: StatusCode, message: impl Into<String>) -> Resp {
    json(
        status,
        &ApiError {
            error: message.into(),
        },
    )
}

fn retry_after(mut resp: Resp, secs: u64) -> Resp {
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

fn store_error(e: &StoreError) -> Resp {
    tracing::error!(error = %e, "store error while serving a request");
    retry_after(
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unavailable; retry later",
        ),
        5,
    )
}

/// Runs a blocking store call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .unwrap_or_else(|e| Err(StoreError::Corrupt(format!("store task failed: {e}"))))
}

/// Checks the reader/operator token. Without a configured token the read API is open (the
/// coordinator listens on loopback by default) but nothing can be changed over it. A status
/// page session cookie (`/login`) counts for reads, so the page's live stream works; changes
/// need the bearer token. Returns the refusal, if any.
/// The refusal for a request that lacks the token `need` asks for, if it does. A status page
/// session (its cookie) reads, and never changes anything.
fn authorize<B>(state: &AppState, req: &Request<B>, need: Need) -> Option<Resp> {
    let bearer = auth::bearer(req.headers().get(header::AUTHORIZATION));
    if state.access.allows(need, bearer.as_ref()) {
        return None;
    }
    if need == Need::Read && crate::page::session::signed_in_any(req.headers(), &state.access) {
        return None;
    }
    if need == Need::Change && state.access.operator.is_none() {
        return Some(error(
            StatusCode::FORBIDDEN,
            "changes over the API need the operator token: set `[api] token_file` in coordinator.toml, or use `vantage-coordinator silence add`",
        ));
    }
    let reads = bearer.is_some() && state.access.allows(Need::Read, bearer.as_ref());
    let (status, message) = match (need, reads) {
        (Need::Change, true) => (
            StatusCode::FORBIDDEN,
            "this token may read, not change: changes need the operator token",
        ),
        (Need::Metrics, _) => (
            StatusCode::UNAUTHORIZED,
            "missing or wrong `Authorization: Bearer <metrics, reader or operator token>`",
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            "missing or wrong `Authorization: Bearer <api token>`",
        ),
    };
    let mut r = error(status, message);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"vantage\""),
        );
    }
    Some(r)
}

/// The probe a bearer token belongs to, or the 401 to answer.
async fn authenticate_probe<B>(state: &AppState, req: &Request<B>) -> Result<ProbeRecord, Resp> {
    let unauthorized = |m: &str| {
        let mut r = error(StatusCode::UNAUTHORIZED, m);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"vantage\""),
        );
        r
    };
    if state.probe_client_certs && req.extensions().get::<ClientCert>().is_none() {
        return Err(unauthorized(
            "this coordinator needs probes to show a client certificate from its probes' CA \
             ([tls] client_ca), as well as a token: set the probe's client_cert and client_key",
        ));
    }
    let Some(token) = auth::bearer(req.headers().get(header::AUTHORIZATION)) else {
        return Err(unauthorized(
            "missing `Authorization: Bearer <probe token>`",
        ));
    };
    let hash = token.hash();
    match blocking(&state.store, move |s| s.probe_by_token(&hash)).await {
        Ok(Some(probe)) => Ok(probe),
        Ok(None) => Err(unauthorized(
            "the probe token is not valid, or its probe was revoked",
        )),
        Err(e) => Err(store_error(&e)),
    }
}

async fn readyz(state: &AppState) -> Resp {
    #[derive(Serialize)]
    struct Ready {
        ready: bool,
        store: &'static str,
        checks: usize,
        checks_error: Option<String>,
        queued_batches: usize,
        /// This coordinator's node id.
        node: String,
        /// The partitions it evaluates now (all of them when it is alone).
        leases: Vec<u32>,
        /// Lease passes that failed in a row (the store unreachable).
        lease_failures: u64,
    }
    let store_ok = blocking(&state.store, |s| s.size_bytes()).await.is_ok();
    let catalog = state.catalogs.current();
    let body = Ready {
        ready: store_ok,
        store: if store_ok { "ok" } else { "unreachable" },
        checks: catalog.checks.checks.len(),
        checks_error: state.catalogs.last_error(),
        queued_batches: state.writer.queued(),
        node: state.cluster.node.node.clone(),
        leases: state.cluster.held().iter().map(|l| l.part).collect(),
        lease_failures: state.cluster.failures(),
    };
    json(
        if store_ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )
}

async fn metrics(state: &AppState) -> Resp {
    let store_bytes = blocking(&state.store, |s| s.size_bytes())
        .await
        .unwrap_or(0);
    let probes = blocking(&state.store, |s| s.list_probes())
        .await
        .unwrap_or_default();
    let health = state.engine.probe_health().await;
    let probes = probes
        .into_iter()
        .filter(|p| p.revoked_ms.is_none())
        .map(|p| ProbeGauge {
            quarantined: health.get(&p.id).is_some_and(|h| h.quarantined),
            last_seen_ms: p.last_seen_ms,
            id: p.id,
        })
        .collect();
    let vendors = state
        .engine
        .vendors()
        .await
        .into_iter()
        .map(|v| (v.id, v.status))
        .collect();
    let scrape = Scrape {
        checks_loaded: state.catalogs.current().checks.checks.len(),
        config_error: state.catalogs.last_error().is_some(),
        reload_failures: state.catalogs.reload_failures(),
        writer_queue: state.writer.queued(),
        store_bytes,
        alerts_pending: blocking(&state.store, |s| s.outbox_pending())
            .await
            .unwrap_or(0),
        probes_quarantined: health.values().filter(|h| h.quarantined).count(),
        suspects: state
            .engine
            .suspects()
            .await
            .into_iter()
            .map(|s| (s.probe, s.check))
            .collect(),
        vendors,
        verdicts: state.engine.verdicts().await,
        probes,
        receivers: state
            .alerting
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        stream_consumers: state.stream.consumers(),
    };
    let body = state.metrics.render(&scrape);
    let mut resp = Response::new(full(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

async fn probe_config<B>(state: &AppState, req: &Request<B>) -> Resp {
    let probe = match authenticate_probe(state, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let (id, now) = (probe.id.clone(), ingest::unix_ms(OffsetDateTime::now_utc()));
    if let Err(e) = blocking(&state.store, move |s| s.touch_probe(&id, now)).await {
        return store_error(&e);
    }
    let catalog = state.catalogs.current();
    let doc = catalog.for_probe(&probe);
    let etag = &doc.etag;
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*");
    let mut resp = if matches {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(full(catalog.encode(&probe, &doc)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// Reads a whole body within the size limit and the request deadline.
pub(crate) async fn read_body(
    body: Incoming,
    limit: u64,
    deadline: Duration,
) -> Result<Bytes, Resp> {
    let collected =
        tokio::time::timeout(deadline, Limited::new(body, limit as usize).collect()).await;
    match collected {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {}s",
                deadline.as_secs()
            ),
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes: send smaller batches"),
        )),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("the request body broke off: {e}"),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

async fn post_results(state: &AppState, req: Request<Incoming>) -> Resp {
    let (resp, reason) = ingest_batch(state, req).await;
    if let Some(reason) = reason {
        state.metrics.rejected(reason);
    }
    resp
}

/// Ingests one batch; returns the answer and, for a refusal, why.
async fn ingest_batch(state: &AppState, req: Request<Incoming>) -> (Resp, Option<RejectReason>) {
    let probe = match authenticate_probe(state, &req).await {
        Ok(p) => p,
        Err(resp) => {
            let reason = if resp.status() == StatusCode::UNAUTHORIZED {
                RejectReason::unauthorized
            } else {
                RejectReason::store
            };
            return (resp, Some(reason));
        }
    };
    let limit = state.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return (
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes: send smaller batches"),
            ),
            Some(RejectReason::too_large),
        );
    }
    let body = match read_body(req.into_body(), limit, state.limits.request_timeout).await {
        Ok(b) => b,
        Err(resp) => {
            let reason = match resp.status() {
                StatusCode::PAYLOAD_TOO_LARGE => RejectReason::too_large,
                StatusCode::REQUEST_TIMEOUT => RejectReason::timeout,
                _ => RejectReason::bad_request,
            };
            return (resp, Some(reason));
        }
    };
    let batch = match vantage_checks::wire::decode_batch(&body) {
        Ok(b) => b,
        Err(e) => {
            let message = format!(
                "the body is not a valid result batch (JSON `{{\"results\": [...]}}`): {e}"
            );
            return (
                error(StatusCode::BAD_REQUEST, message),
                Some(RejectReason::bad_request),
            );
        }
    };
    if batch.unknown_fields > 0 {
        // A newer probe's fields: ignored, the results stored all the same.
        state.metrics.unknown_fields(batch.unknown_fields);
    }
    if let Some(counters) = &batch.counters {
        state.metrics.probe_counters(&probe.id, counters);
    }
    let catalog = state.catalogs.current();
    let checked = match ingest::validate_batch(
        batch.results,
        &probe,
        &catalog,
        &state.limits,
        OffsetDateTime::now_utc(),
    ) {
        Ok(c) => c,
        Err(rejected) => {
            tracing::warn!(probe = %probe.id, reason = %rejected, "result batch refused whole");
            return (
                error(StatusCode::PAYLOAD_TOO_LARGE, rejected.0),
                Some(RejectReason::too_large),
            );
        }
    };
    let mut checked = checked;
    // Results of on-demand runs go with their runs: never the rollups, consensus or the
    // runs an interval allows.
    let of_runs = checked.take_runs();
    let (run_outcome, run_refused) = match runs::ingest(state, &probe, of_runs).await {
        Ok(r) => r,
        Err(e) => return (store_error(&e), Some(RejectReason::store)),
    };
    checked.refused.extend(run_refused);
    checked.refused.sort_by_key(|r| r.index);
    state.run_cap.admit(
        &mut checked,
        &catalog,
        state.limits.max_runs_per_interval,
        OffsetDateTime::now_utc(),
    );
    drop(catalog);
    let refused = checked.refused;
    if let Some(first) = refused.first() {
        for r in &refused {
            state.metrics.refused(r.reason);
        }
        tracing::warn!(probe = %probe.id, refused = refused.len(), stored = checked.rows.len(), first = %first.message, "results refused; the rest of the batch is stored");
    }
    let rows = checked.rows;
    if rows.is_empty() {
        let ack = BatchAck {
            accepted: run_outcome.inserted,
            duplicates: run_outcome.duplicates,
            failing_checks: state.engine.failing_checks(),
            refused,
        };
        return (json(StatusCode::OK, &ack), None);
    }
    // The engine sees the rows only once they are committed; duplicates are harmless to it
    // (the same run lands in the same place).
    let observed = rows.clone();
    match state.writer.submit(&probe.id, rows).await {
        Ok(outcome) => {
            state.metrics.ingested(outcome.inserted, outcome.duplicates);
            // A batch the store had whole already is not news. (One re-sent in part is
            // streamed whole: the store does not say which of its results were new.)
            // On a shared store, the other coordinators get them from its feed.
            if outcome.inserted > 0 {
                state.stream.results(&observed);
            }
            state
                .engine
                .observe(&observed, ingest::unix_ms(OffsetDateTime::now_utc()))
                .await;
            let ack = BatchAck {
                accepted: outcome.inserted + run_outcome.inserted,
                duplicates: outcome.duplicates + run_outcome.duplicates,
                failing_checks: state.engine.failing_checks(),
                refused,
            };
            (json(StatusCode::OK, &ack), None)
        }
        Err(SubmitError::Busy(n)) => {
            tracing::warn!(probe = %probe.id, queued = n, "ingest overloaded; answering 429");
            let resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("the coordinator is busy ({n} batches queued); retry later"),
            );
            (retry_after(resp, 1), Some(RejectReason::busy))
        }
        Err(SubmitError::OverShare { held }) => {
            tracing::warn!(probe = %probe.id, held, "a probe holds its share of the writer's queue; answering it 429");
            let resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this probe has {held} batches waiting to be written, its share of the queue; retry later"
                ),
            );
            (retry_after(resp, 1), Some(RejectReason::over_share))
        }
        Err(SubmitError::Store(e)) => (store_error(&e), Some(RejectReason::store)),
    }
}

/// The request's query parameters (the last of a repeated one wins).
pub fn query(req: &Request<impl Sized>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// A 400 naming the first parameter not in `allowed`, if any.
pub(super) fn unknown_params(params: &HashMap<String, String>, allowed: &[&str]) -> Option<Resp> {
    params
        .keys()
        .find(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            error(
                StatusCode::BAD_REQUEST,
                format!("unknown query parameter `{k}`; use {}", allowed.join(", ")),
            )
        })
}

async fn get_results<B>(state: &AppState, req: &Request<B>) -> Resp {
    let params = query(req);
    if params.contains_key("run") {
        return runs::results(state, &params).await;
    }
    if let Some(refused) = unknown_params(
        &params,
        &[
            "check", "probe", "vendor", "region", "since", "until", "limit", "run",
        ],
    ) {
        return refused;
    }
    let time = |key: &str| -> Result<Option<i64>, String> {
        params
            .get(key)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    format!("`{key}` must be an RFC 3339 time (2026-11-23T10:00:00Z) or Unix milliseconds; got `{v}`")
                })
            })
            .transpose()
    };
    let (since_ms, until_ms) = match (time("since"), time("until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(m), _) | (_, Err(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let limit = match params.get("limit").map(|l| l.parse::<u32>()) {
        None => RESULTS_DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=RESULTS_MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`limit` must be from 1 to {RESULTS_MAX_LIMIT}"),
            );
        }
    };
    // A few at once, each under a deadline, each stopped when its client goes away: raw
    // result queries read the biggest table, and must not starve ingest's reads.
    let Ok(permit) = Arc::clone(&state.result_reads).try_acquire_owned() else {
        return retry_after(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{RESULTS_QUERIES} raw result queries are running; retry later"),
            ),
            1,
        );
    };
    let stop = crate::store::Stop::new(Some(std::time::Instant::now() + RESULTS_DEADLINE));
    // Dropped with this handler's future, also when the client goes away mid-query.
    struct CancelOnDrop(crate::store::Stop);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    let _cancel = CancelOnDrop(stop.clone());
    let query = ResultQuery {
        check: params.get("check").cloned(),
        probe: params.get("probe").cloned(),
        vendor: params.get("vendor").cloned(),
        region: params.get("region").cloned(),
        since_ms,
        until_ms,
        limit,
        stop,
    };
    match blocking(&state.store, move |s| s.query_results(&query)).await {
        Ok(results) => {
            // The permit goes with the answer until it is sent: a big answer to a slow reader
            // is one of the four.
            let bytes = match serde_json::to_vec(&results) {
                Ok(b) => b,
                Err(e) => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot encode: {e}"),
                    );
                }
            };
            let body = crate::conn::Chunked::new(Bytes::from(bytes), 64 * 1024);
            let mut resp = Response::new(crate::conn::Tracked::new(body, permit).boxed_unsync());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(StoreError::Stopped(why)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the query was stopped: {why} ({}s); narrow it with check=, probe=, since= or a smaller limit",
                RESULTS_DEADLINE.as_secs()
            ),
        ),
        Err(e) => store_error(&e),
    }
}

pub fn parse_time(v: &str) -> Option<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(ingest::unix_ms)
}
