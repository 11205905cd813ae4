//! Vendor states, incidents, probe health and silences: `/api/v1/vendors`, `/api/v1/incidents`,
//! `/api/v1/probes`, `/api/v1/silences`.

use http::{Request, StatusCode, header};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::{AppState, Resp, blocking, error, json, query, read_body, store_error, unknown_params};
use crate::store::state::{IncidentEventRow, IncidentQuery, IncidentRow, SilenceRow};

/// `GET /api/v1/vendors`.
pub(super) async fn vendors(state: &AppState) -> Resp {
    json(StatusCode::OK, &state.engine.vendors().await)
}

/// `GET /api/v1/vendors/{id}`.
pub(super) async fn vendor(state: &AppState, id: &str) -> Resp {
    let Some(mut detail) = state.engine.vendor(id).await else {
        return error(StatusCode::NOT_FOUND, format!("no vendor `{id}`"));
    };
    let vendor = id.to_owned();
    match blocking(&state.store, move |s| s.transitions(&vendor, 100)).await {
        Ok(stored) => {
            detail.transitions = stored
                .iter()
                .filter_map(|b| serde_json::from_str(b).ok())
                .collect();
        }
        Err(e) => return store_error(&e),
    }
    let open = {
        let vendor = id.to_owned();
        blocking(&state.store, move |s| {
            s.open_incident(crate::alert::SubjectKind::Vendor, &vendor)
        })
        .await
    };
    #[derive(Serialize)]
    struct Body {
        #[serde(flatten)]
        detail: crate::engine::VendorDetail,
        open_incident: Option<IncidentView>,
    }
    match open {
        Ok(open) => json(
            StatusCode::OK,
            &Body {
                detail,
                open_incident: open.map(IncidentView::from),
            },
        ),
        Err(e) => store_error(&e),
    }
}

/// An incident for the API: the stored row with its JSON detail unpacked.
#[derive(Serialize)]
pub(super) struct IncidentView {
    #[serde(flatten)]
    row: IncidentRow,
    #[serde(rename = "detail")]
    detail_json: serde_json::Value,
}

impl From<IncidentRow> for IncidentView {
    fn from(mut row: IncidentRow) -> Self {
        let detail_json = serde_json::from_str(&row.detail).unwrap_or_default();
        row.detail = String::new();
        Self { row, detail_json }
    }
}

/// `GET /api/v1/incidents?subject=&open=true&limit=`.
pub(super) async fn incidents(state: &AppState, req: &Request<Incoming>) -> Resp {
    let params = query(req);
    if let Some(resp) = unknown_params(&params, &["subject", "vendor", "open", "limit"]) {
        return resp;
    }
    let open_only = match params.get("open").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`open` must be true or false; got `{v}`"),
            );
        }
    };
    let limit = match params.get("limit").map(|l| l.parse::<u32>()) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "`limit` must be from 1 to 1000"),
    };
    let q = IncidentQuery {
        subject: params.get("subject").or(params.get("vendor")).cloned(),
        open_only,
        limit,
    };
    match blocking(&state.store, move |s| s.incidents(&q)).await {
        Ok(rows) => json(
            StatusCode::OK,
            &rows.into_iter().map(IncidentView::from).collect::<Vec<_>>(),
        ),
        Err(e) => store_error(&e),
    }
}

/// `GET /api/v1/incidents/{id}`.
pub(super) async fn incident(state: &AppState, id: &str) -> Resp {
    let Ok(n) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("incident ids are numbers; got `{id}`"),
        );
    };
    #[derive(Serialize)]
    struct Event {
        #[serde(flatten)]
        row: IncidentEventRow,
        #[serde(rename = "detail")]
        detail_json: serde_json::Value,
    }
    #[derive(Serialize)]
    struct Body {
        #[serde(flatten)]
        incident: IncidentView,
        timeline: Vec<Event>,
        deliveries: Vec<crate::store::state::DeliveryRow>,
    }
    match blocking(&state.store, move |s| s.incident(n)).await {
        Ok(Some((row, events, deliveries))) => json(
            StatusCode::OK,
            &Body {
                incident: row.into(),
                timeline: events
                    .into_iter()
                    .map(|mut e| {
                        let detail_json = serde_json::from_str(&e.detail).unwrap_or_default();
                        e.detail = String::new();
                        Event {
                            row: e,
                            detail_json,
                        }
                    })
                    .collect(),
                deliveries,
            },
        ),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no incident {n}")),
        Err(e) => store_error(&e),
    }
}

/// `GET /api/v1/probes`: registered probes with their health.
pub(super) async fn probes(state: &AppState) -> Resp {
    #[derive(Serialize)]
    struct Probe {
        #[serde(flatten)]
        record: crate::store::ProbeRecord,
        healthy: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        quarantine: Option<crate::consensus::quarantine::ProbeHealth>,
        /// Checks it alone fails (or is alone slow on) while its peers see them fine; it
        /// still votes, and cannot page alone.
        suspect: Vec<crate::engine::SuspectView>,
    }
    let health = state.engine.probe_health().await;
    let suspects = state.engine.suspects().await;
    match blocking(&state.store, |s| s.list_probes()).await {
        Ok(list) => json(
            StatusCode::OK,
            &list
                .into_iter()
                .map(|record| {
                    let h = health.get(&record.id).filter(|h| h.quarantined).cloned();
                    Probe {
                        healthy: h.is_none(),
                        quarantine: h,
                        suspect: suspects
                            .iter()
                            .filter(|s| s.probe == record.id)
                            .cloned()
                            .collect(),
                        record,
                    }
                })
                .collect::<Vec<_>>(),
        ),
        Err(e) => store_error(&e),
    }
}

/// `GET /api/v1/silences?active=true`.
pub(super) async fn silences(state: &AppState, req: &Request<Incoming>) -> Resp {
    let params = query(req);
    if let Some(resp) = unknown_params(&params, &["active"]) {
        return resp;
    }
    let at = match params.get("active").map(String::as_str) {
        None | Some("false") => None,
        Some("true") => Some(crate::ingest::unix_ms(time::OffsetDateTime::now_utc())),
        Some(v) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`active` must be true or false; got `{v}`"),
            );
        }
    };
    let configured: Vec<SilenceRow> = state.alerting.silences_at(at).cloned().collect();
    match blocking(&state.store, move |s| s.silences(at)).await {
        Ok(mut rows) => {
            rows.extend(configured);
            json(StatusCode::OK, &rows)
        }
        Err(e) => store_error(&e),
    }
}

/// A silence as asked for: the body of `POST /api/v1/silences`, and the CLI's flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// Only this vendor.
    pub vendor: Option<String>,
    /// Only incidents involving this check.
    pub check: Option<String>,
    /// Only this region.
    pub region: Option<String>,
    /// RFC 3339; default now.
    pub starts: Option<String>,
    /// RFC 3339; or `duration`.
    pub ends: Option<String>,
    /// e.g. `"2h"`, from `starts`.
    pub duration: Option<String>,
    /// Why.
    pub comment: String,
    /// Who, for the record.
    pub created_by: Option<String>,
}

/// Turns a silence request into a row; the API and the CLI use the same rules.
pub fn silence_row(
    req: SilenceRequest,
    created_by: String,
    now_ms: i64,
) -> Result<SilenceRow, String> {
    let SilenceRequest {
        vendor,
        check,
        region,
        starts,
        ends,
        duration,
        comment,
        ..
    } = req;
    let (starts, ends, duration) = (starts.as_deref(), ends.as_deref(), duration.as_deref());
    let time = |key: &str, v: &str| {
        super::parse_time(v).ok_or_else(|| {
            format!("`{key}` must be an RFC 3339 time like \"2026-11-23T22:00:00Z\"; got `{v}`")
        })
    };
    let starts_ms = starts
        .map(|s| time("starts", s))
        .transpose()?
        .unwrap_or(now_ms);
    let ends_ms = match (ends, duration) {
        (Some(e), None) => time("ends", e)?,
        (None, Some(d)) => {
            let d = vantage_checks::duration::parse(d)
                .map_err(|why| format!("`duration` must be like \"2h\"; got `{d}`, which {why}"))?;
            starts_ms + d.as_millis() as i64
        }
        _ => {
            return Err(
                "give exactly one of `ends` and `duration`, e.g. \"duration\": \"2h\"".into(),
            );
        }
    };
    if ends_ms <= starts_ms {
        return Err("the silence must end after it starts".into());
    }
    if vendor.is_none() && check.is_none() && region.is_none() {
        return Err("a silence must name a vendor, a check or a region; silencing everything is not allowed".into());
    }
    if comment.trim().is_empty() {
        return Err("say why in `comment`, e.g. \"vendor maintenance, ticket 1234\"".into());
    }
    Ok(SilenceRow {
        id: 0,
        vendor,
        check_id: check,
        region,
        starts_ms,
        ends_ms,
        comment,
        created_by,
        created_ms: now_ms,
    })
}

/// `POST /api/v1/silences`.
pub(super) async fn add_silence(state: &AppState, req: Request<Incoming>) -> Resp {
    if req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.starts_with("application/json"))
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the silence as application/json",
        );
    }
    let body = match read_body(req.into_body(), 64 * 1024, state.limits.request_timeout).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let new: SilenceRequest = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not a silence (e.g. {{\"vendor\": \"fastcdn\", \"duration\": \"2h\", \"comment\": \"maintenance\"}}): {e}"
                ),
            );
        }
    };
    let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
    let who = new
        .created_by
        .clone()
        .map_or_else(|| "api".to_owned(), |w| format!("api:{w}"));
    let row = match silence_row(new, who, now) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::UNPROCESSABLE_ENTITY, m),
    };
    let stored = row.clone();
    match blocking(&state.store, move |s| s.add_silence(&stored)).await {
        Ok(id) => {
            tracing::info!(silence = id, vendor = ?row.vendor, check = ?row.check_id, region = ?row.region, "silence added");
            json(StatusCode::CREATED, &SilenceRow { id, ..row })
        }
        Err(e) => store_error(&e),
    }
}

/// `DELETE /api/v1/silences/{id}`.
pub(super) async fn remove_silence(state: &AppState, id: &str) -> Resp {
    let Ok(n) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("silence ids are numbers; got `{id}`"),
        );
    };
    match blocking(&state.store, move |s| s.remove_silence(n)).await {
        Ok(true) => {
            tracing::info!(silence = n, "silence removed");
            json(StatusCode::OK, &serde_json::json!({ "removed": n }))
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("no silence {n} (silences from coordinator.toml are removed there)"),
        ),
        Err(e) => store_error(&e),
    }
}
