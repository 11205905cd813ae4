//! On-demand regression runs: `POST /api/v1/runs` (operator), `GET /api/v1/runs[/{id}]`
//! (reader), the probes' long poll `GET /api/v1/probe/runs`, and the results of runs as they
//! are pushed. See [`crate::runs`].

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use time::OffsetDateTime;
use vantage_checks::wire::{RefusalReason, Refused, RunOrder, RunOrders};

use super::{
    AppState, Resp, authenticate_probe, blocking, error, json, query, read_body, store_error,
    unknown_params,
};
use crate::ingest::{self, Checked};
use crate::runs::{self, RunRequest};
use crate::store::run::RunRecord;
use crate::store::{InsertOutcome, ProbeRecord, StoreError};

/// Largest body of `POST /api/v1/runs`.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// Default and longest wait of the probes' long poll (seconds).
const POLL_WAIT: (u64, u64) = (20, 30);
/// Default and largest `limit` of `GET /api/v1/runs`.
const LIST_LIMIT: (u32, u32) = (20, 100);

fn now_ms() -> i64 {
    ingest::unix_ms(OffsetDateTime::now_utc())
}

/// `POST /api/v1/runs`: resolves the request and stores the run; `202` with the run.
pub(super) async fn start(state: &AppState, req: Request<Incoming>) -> Resp {
    let body = match read_body(
        req.into_body(),
        MAX_REQUEST_BYTES,
        state.limits.request_timeout,
    )
    .await
    {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request: RunRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not a run request (JSON `{{\"vendor\": \"…\", \"checks\": […], \"suite\": \"…\", \"regions\": […], \"label\": \"…\", \"wait\": \"60s\"}}`): {e}"
                ),
            );
        }
    };
    if request.vendor.is_empty() {
        return error(StatusCode::BAD_REQUEST, "`vendor` must not be empty");
    }
    let probes = match blocking(&state.store, |s| s.list_probes()).await {
        Ok(p) => p,
        Err(e) => return store_error(&e),
    };
    let now = now_ms();
    let catalog = state.catalogs.current();
    let run = match runs::select(&request, &catalog.checks, &probes, now) {
        Ok(r) => r,
        Err(why) => return error(StatusCode::UNPROCESSABLE_ENTITY, why),
    };
    drop(catalog);
    let stored = run.clone();
    let id = match blocking(&state.store, move |s| s.create_run(&stored)).await {
        Ok(id) => id,
        Err(e) => return store_error(&e),
    };
    state.runs.announce(id);
    tracing::info!(
        run = id,
        vendor = %run.vendor,
        checks = run.checks.len(),
        probes = run.probes.len(),
        label = run.label.as_deref().unwrap_or(""),
        "on-demand run started"
    );
    let view = runs::view(&RunRecord { id, run }, Vec::new(), now);
    let mut resp = json(StatusCode::ACCEPTED, &view);
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/runs/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `GET /api/v1/runs/{id}`.
pub(super) async fn get(state: &AppState, id: &str) -> Resp {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no run `{id}`: run ids are numbers"),
        );
    };
    let read = blocking(&state.store, move |s| {
        let Some(rec) = s.run(id)? else {
            return Ok(None);
        };
        let results = s.run_results(id, None)?;
        Ok(Some((rec, results)))
    })
    .await;
    match read {
        Ok(Some((rec, results))) => json(StatusCode::OK, &runs::view(&rec, results, now_ms())),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no run {id}")),
        Err(e) => store_error(&e),
    }
}

/// `GET /api/v1/runs?vendor=&suite=&limit=`: runs newest first, with their results.
pub(super) async fn list<B>(state: &AppState, req: &Request<B>) -> Resp {
    let params = query(req);
    if let Some(refused) = unknown_params(&params, &["vendor", "suite", "limit"]) {
        return refused;
    }
    let limit = match params.get("limit").map(|l| l.parse::<u32>()) {
        None => LIST_LIMIT.0,
        Some(Ok(n)) if (1..=LIST_LIMIT.1).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`limit` must be from 1 to {}", LIST_LIMIT.1),
            );
        }
    };
    let (vendor, suite) = (params.get("vendor").cloned(), params.get("suite").cloned());
    let read = blocking(&state.store, move |s| {
        let recs = s.runs(vendor.as_deref(), suite.as_deref(), limit)?;
        recs.into_iter()
            .map(|r| {
                let results = s.run_results(r.id, None)?;
                Ok((r, results))
            })
            .collect::<Result<Vec<_>, StoreError>>()
    })
    .await;
    match read {
        Ok(runs) => {
            let now = now_ms();
            let views: Vec<_> = runs
                .into_iter()
                .map(|(rec, results)| runs::view(&rec, results, now))
                .collect();
            json(StatusCode::OK, &views)
        }
        Err(e) => store_error(&e),
    }
}

/// `GET /api/v1/results?run=ID[&check=][&probe=]`: the results of one run.
pub(super) async fn results(state: &AppState, params: &HashMap<String, String>) -> Resp {
    let Some(Ok(id)) = params.get("run").map(|r| r.parse::<i64>()) else {
        return error(StatusCode::BAD_REQUEST, "`run` must be a run id (a number)");
    };
    if let Some(k) = params
        .keys()
        .find(|k| !["run", "check", "probe"].contains(&k.as_str()))
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{k}` does not go with `run`: a run's results filter by check and probe"),
        );
    }
    let probe = params.get("probe").cloned();
    let read = blocking(&state.store, move |s| {
        if s.run(id)?.is_none() {
            return Ok(None);
        }
        s.run_results(id, probe.as_deref()).map(Some)
    })
    .await;
    match read {
        Ok(Some(rows)) => {
            let results: Vec<_> = rows
                .into_iter()
                .map(|r| r.result)
                .filter(|r| params.get("check").is_none_or(|c| *c == r.check_id))
                .collect();
            json(StatusCode::OK, &results)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no run {id}")),
        Err(e) => store_error(&e),
    }
}

/// What `probe` still owes of the open runs after `after`.
fn orders(
    probe: &str,
    after: i64,
) -> impl FnOnce(&dyn crate::store::Store) -> Result<Vec<RunOrder>, StoreError> + Send + 'static {
    let probe = probe.to_owned();
    move |s| {
        let mut out = Vec::new();
        for rec in s.open_runs(after, now_ms())? {
            let Some(mine) = rec.run.probes.iter().find(|p| p.id == probe) else {
                continue;
            };
            let done: Vec<String> = s
                .run_results(rec.id, Some(&probe))?
                .into_iter()
                .map(|r| r.result.check_id)
                .collect();
            let owed: Vec<String> = mine
                .checks
                .iter()
                .filter(|c| !done.contains(c))
                .cloned()
                .collect();
            if owed.is_empty() {
                continue;
            }
            let deadline = OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(rec.run.deadline_ms) * 1_000_000,
            )
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            out.push(RunOrder {
                id: rec.id,
                checks: owed,
                deadline,
            });
        }
        Ok(out)
    }
}

/// `GET /api/v1/probe/runs?after=ID&wait=SECONDS`: the probes' long poll. Answers as soon as
/// a run after `after` owes results from this probe, or with none after `wait`.
pub(super) async fn poll<B>(state: &AppState, req: &Request<B>) -> Resp {
    let probe = match authenticate_probe(state, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let params = query(req);
    if let Some(refused) = unknown_params(&params, &["after", "wait"]) {
        return refused;
    }
    let after = match params.get("after").map(|a| a.parse::<i64>()) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "`after` must be a run id (a number, 0 for all)",
            );
        }
    };
    let wait = match params.get("wait").map(|w| w.parse::<u64>()) {
        None => POLL_WAIT.0,
        Some(Ok(n)) if n <= POLL_WAIT.1 => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`wait` must be seconds, from 0 to {}", POLL_WAIT.1),
            );
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut news = state.runs.subscribe();
    loop {
        // Marked seen before the read: a run announced meanwhile wakes the next wait.
        news.borrow_and_update();
        match blocking(&state.store, orders(&probe.id, after)).await {
            Ok(runs) if !runs.is_empty() => return json(StatusCode::OK, &RunOrders { runs }),
            Ok(_) => {}
            Err(e) => return store_error(&e),
        }
        match tokio::time::timeout_at(deadline, news.changed()).await {
            Ok(Ok(())) => continue,
            // Past the wait, or the board is gone (shutting down).
            _ => return json(StatusCode::OK, &RunOrders::default()),
        }
    }
}

/// Checks the results of runs in a batch against their runs, and stores those that answer
/// one. A result for no run, a run that did not ask this probe, or a check the run did not ask
/// it for, is refused alone (`not_selected`).
pub(super) async fn ingest(
    state: &AppState,
    probe: &ProbeRecord,
    checked: Checked,
) -> Result<(InsertOutcome, Vec<Refused>), StoreError> {
    if checked.rows.is_empty() {
        return Ok((InsertOutcome::default(), Vec::new()));
    }
    let ids: Vec<i64> = {
        let mut ids: Vec<i64> = checked.rows.iter().filter_map(|r| r.result.run).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let runs: BTreeMap<i64, RunRecord> = blocking(&state.store, move |s| {
        let mut out = BTreeMap::new();
        for id in ids {
            if let Some(r) = s.run(id)? {
                out.insert(id, r);
            }
        }
        Ok(out)
    })
    .await?;
    let mut rows = Vec::with_capacity(checked.rows.len());
    let mut refused = Vec::new();
    for (row, index) in checked.rows.into_iter().zip(checked.indices) {
        let run = row.result.run.unwrap_or_default();
        let why = match runs.get(&run) {
            None => Some(format!("no run {run}")),
            Some(rec) => match rec.run.probes.iter().find(|p| p.id == probe.id) {
                None => Some(format!("run {run} did not ask this probe")),
                Some(p) if !p.checks.contains(&row.result.check_id) => Some(format!(
                    "run {run} did not ask this probe for check `{}`",
                    row.result.check_id
                )),
                Some(_) => None,
            },
        };
        match why {
            None => rows.push(row),
            Some(what) => refused.push(Refused {
                index,
                seq: Some(row.result.seq),
                reason: RefusalReason::NotSelected,
                message: format!("results[{index}] (check `{}`): {what}", row.result.check_id),
            }),
        }
    }
    if rows.is_empty() {
        return Ok((InsertOutcome::default(), refused));
    }
    let outcome = blocking(&state.store, move |s| s.insert_run_results(&rows)).await?;
    Ok((outcome, refused))
}
