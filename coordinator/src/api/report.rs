//! `GET /api/v1/reports/sla?vendor=&from=&to=`: a vendor's SLA report (see
//! [`crate::report::sla`]).

use http::{Request, StatusCode};
use tokio::sync::Semaphore;

use super::{AppState, Resp, blocking, error, json, query, store_error, unknown_params};
use crate::report::{self, DEFAULT_WINDOW, Window, sla};

/// Reports computed at once; more are refused with 429 rather than piling up blocking threads
/// (a 30-day report of a large vendor reads for up to about a second).
const CONCURRENT_REPORTS: usize = 4;

static REPORTS: Semaphore = Semaphore::const_new(CONCURRENT_REPORTS);

/// `GET /api/v1/reports/sla`.
pub(super) async fn sla<B>(state: &AppState, req: &Request<B>) -> Resp {
    let params = query(req);
    if let Some(refused) = unknown_params(&params, &["vendor", "from", "to"]) {
        return refused;
    }
    let Some(vendor_id) = params.get("vendor").filter(|v| !v.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "name the vendor: `?vendor=ID`, e.g. `/api/v1/reports/sla?vendor=fastcdn&from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z`",
        );
    };
    // The error is the message; the answer is built once, below.
    let time = |key: &str| -> Result<Option<i64>, String> {
        params
            .get(key)
            .map(|v| {
                report::parse_instant(v).ok_or_else(|| {
                    format!("`{key}` must be an RFC 3339 time (2026-10-01T00:00:00Z) or Unix milliseconds; got `{v}`")
                })
            })
            .transpose()
    };
    let (from, to) = match (time("from"), time("to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(m), _) | (_, Err(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
    let to = to.unwrap_or(now);
    let window = match from {
        Some(from) => Window::new(from, to),
        None => Window::before(to, DEFAULT_WINDOW),
    };
    let window = match window {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let catalog = state.catalogs.current();
    let Some(vendor) = catalog.checks.vendor(vendor_id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no vendor `{vendor_id}` in the check files"),
        );
    };
    let checks: Vec<(String, vantage_checks::model::Role)> = catalog
        .checks
        .checks
        .iter()
        // `on_demand` checks are never a sample of the schedule.
        .filter(|c| c.vendor == vendor.id && !c.on_demand)
        .map(|c| (c.id.clone(), c.role))
        .collect();
    drop(catalog);
    let Ok(permit) = REPORTS.try_acquire() else {
        return super::retry_after(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{CONCURRENT_REPORTS} reports are being computed; retry in a moment"),
            ),
            1,
        );
    };
    let made = blocking(&state.store, move |s| {
        sla::sla_report(s, &vendor, &checks, window, now)
    })
    .await;
    drop(permit);
    match made {
        Ok(report) => json(StatusCode::OK, &report),
        Err(e) => store_error(&e),
    }
}
