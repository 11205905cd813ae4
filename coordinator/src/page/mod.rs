//! The status page: `GET /`, a vendor's page `GET /vendors/{id}`, their live partials, the
//! sign-in (`/login`, `/logout`) and the page's own CSS and script under `/static/`.
//!
//! Everything is rendered on the server; the grid, the incidents and the charts (inline SVG)
//! work without JavaScript, and a `<noscript>` refresh reloads the page every 30 s. With
//! JavaScript, a small script listens to `GET /api/v1/stream` and swaps in a fresh partial
//! (`?partial=main`) when something changes; when the stream is unavailable it refreshes
//! the partial every 30 s. Nothing is loaded from anywhere but the coordinator, and the
//! `Content-Security-Policy` allows nothing else, inline scripts included.
//!
//! Every text that comes from check files, probes or results is escaped (maud escapes every
//! splice). When a reader token is configured, the pages need a session cookie from
//! `/login` ([`session`]) or the bearer token.
//!
//! Layout: this file routes, authorizes and reads the data; [`render`] writes the HTML;
//! [`chart`] merges rollups into percentiles and draws them; [`session`] signs browsers in.

pub(crate) mod chart;
pub(crate) mod limit;
mod render;
pub(crate) mod session;

use crate::alert::SubjectKind;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::{Bytes, Incoming};
use maud::Markup;
use sha2::{Digest, Sha256};

use crate::api::{AppState, Resp, blocking, full, read_body};
use crate::consensus::Ms;
use crate::consensus::quarantine::ProbeHealth;
use crate::engine::{CheckDetail, CheckTransition, VendorDetail, VendorView};
use crate::store::state::{IncidentEventRow, IncidentQuery, IncidentRow};
use crate::store::{ProbeRecord, Rollup, StoreError};

use self::chart::{RegionSeries, Span};

const CSS: &str = include_str!("assets/vantage.css");
const JS: &str = include_str!("assets/vantage.js");

/// The page's policy: only this origin, no inline script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// Largest body `POST /login` reads.
const LOGIN_BODY_LIMIT: u64 = 4096;
/// Incidents resolved this recently are listed under the open ones.
const RESOLVED_WITHIN_MS: Ms = 24 * 3_600_000;

/// True for the paths this module serves.
pub(crate) fn serves(path: &str) -> bool {
    matches!(path, "/" | "/login" | "/logout")
        || path.starts_with("/static/")
        || path.starts_with("/vendors/")
}

/// A versioned asset: its URL carries a hash of its content, so it can be cached for good.
struct Asset {
    url: String,
    body: &'static str,
    content_type: &'static str,
}

fn asset_of(name: &str, ext: &str, body: &'static str, content_type: &'static str) -> Asset {
    let digest = Sha256::digest(body.as_bytes());
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    Asset {
        url: format!("/static/{name}.{hash}.{ext}"),
        body,
        content_type,
    }
}

fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        [
            asset_of("vantage", "css", CSS, "text/css; charset=utf-8"),
            asset_of("vantage", "js", JS, "text/javascript; charset=utf-8"),
        ]
    })
}

/// URLs of the stylesheet and the script.
pub(crate) fn asset_urls() -> (&'static str, &'static str) {
    let [css, js] = assets();
    (&css.url, &js.url)
}

/// Serves one request for a path [`serves`] accepts.
pub(crate) async fn handle(state: &AppState, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/") => overview(state, &req).await,
        (Method::GET, "/login") => login_form(state, &req),
        (Method::POST, "/login") => login(state, req).await,
        (Method::POST, "/logout") => logout(state, &req),
        (Method::GET, p) if p.starts_with("/static/") => asset(p),
        (Method::GET, p) if p.starts_with("/vendors/") => {
            let raw = &p["/vendors/".len()..];
            match percent_encoding::percent_decode_str(raw).decode_utf8() {
                Ok(id) if !id.is_empty() && !id.contains('/') => {
                    vendor_page(state, &req, &id).await
                }
                _ => page_error(StatusCode::NOT_FOUND, "No such vendor page."),
            }
        }
        (m, p) => page_error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{m} is not allowed on {p}."),
        ),
    }
}

/// Adds the headers every page answer carries.
fn secure_headers(resp: &mut Resp) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn html(status: StatusCode, markup: Markup) -> Resp {
    let mut resp = Response::new(full(markup.into_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure_headers(&mut resp);
    resp
}

/// True when the client takes gzip (`Accept-Encoding: gzip`, not refused with `q=0`).
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let gzip = parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"));
            let q = parts
                .find_map(|p| p.strip_prefix("q="))
                .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
            gzip && q > 0.0
        })
}

/// A page, gzipped when the client takes it: the overview is mostly SVG coordinates and
/// tables, and shrinks several times.
fn html_for<B>(req: &Request<B>, status: StatusCode, markup: Markup) -> Resp {
    if !accepts_gzip(req.headers()) {
        return html(status, markup);
    }
    let text = markup.into_string();
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let body = std::io::Write::write_all(&mut gz, text.as_bytes())
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    let mut resp = html(status, maud::PreEscaped(String::new()));
    *resp.body_mut() = full(body);
    resp.headers_mut()
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    resp
}

fn redirect(to: &str, cookie: Option<String>) -> Resp {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure_headers(&mut resp);
    resp
}

fn page_error(status: StatusCode, message: &str) -> Resp {
    html(status, render::error_page(status, message))
}

fn store_failed(e: &StoreError) -> Resp {
    tracing::error!(error = %e, "store error while rendering the status page");
    let mut r = page_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The store is unavailable; this page refreshes by itself.",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(5));
    r
}

fn asset(path: &str) -> Resp {
    let name = &path["/static/".len()..];
    // `vantage.<hash>.css`: the current file whatever the hash, cached for good only when the
    // hash is the current one (a page from before an upgrade still gets today's file).
    let Some(asset) = assets().iter().find(|a| {
        let ext = a.url.rsplit('.').next().unwrap_or_default();
        name.starts_with("vantage.") && name.ends_with(&format!(".{ext}"))
    }) else {
        let mut r = Response::new(full("no such file\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return r;
    };
    let mut r = Response::new(full(Bytes::from_static(asset.body.as_bytes())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    let cache = if asset.url == path {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Who is reading: `Ok(true)` when signed in with the cookie (the page offers to sign out),
/// `Ok(false)` when open or with the bearer token, `Err` when a token is needed.
fn reader<B>(state: &AppState, req: &Request<B>) -> Result<bool, ()> {
    if state.access.reads_open() {
        return Ok(false);
    }
    if session::signed_in_any(req.headers(), &state.access) {
        return Ok(true);
    }
    let bearer = crate::auth::bearer(req.headers().get(header::AUTHORIZATION));
    if state
        .access
        .allows(crate::access::Need::Read, bearer.as_ref())
    {
        return Ok(false);
    }
    Err(())
}

/// The refusal for a reader who is not signed in: the login page for a navigation, a bare
/// 401 for the script's partial (which then reloads the page, and lands on the login).
fn needs_login(path: &str, partial: bool) -> Resp {
    if partial {
        let mut r = Response::new(full("sign in at /login\n"));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return r;
    }
    let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    redirect(&format!("/login?next={next}"), None)
}

/// `?partial=main` or nothing; anything else is a mistake worth saying.
fn partial_param<B>(req: &Request<B>) -> Result<bool, String> {
    let mut partial = false;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("partial", "main") => partial = true,
            ("partial", other) => {
                return Err(format!("`partial` can only be `main`; got `{other}`"));
            }
            (other, _) => return Err(format!("unknown query parameter `{other}`")),
        }
    }
    Ok(partial)
}

fn now_ms() -> Ms {
    crate::ingest::unix_ms(time::OffsetDateTime::now_utc())
}

/// One check's charts.
pub(crate) struct CheckCharts {
    /// Check id.
    pub(crate) check: String,
    /// Its vendor's id.
    pub(crate) vendor: String,
    /// Its kind label.
    pub(crate) kind: &'static str,
    /// p50/p95 by region over the last hour.
    pub(crate) hour: Vec<RegionSeries>,
    /// And over the last day, on the vendor's page.
    pub(crate) day: Option<Vec<RegionSeries>>,
}

/// An incident with its timeline.
pub(crate) struct IncidentCard {
    /// The incident.
    pub(crate) row: IncidentRow,
    /// Its timeline, oldest first.
    pub(crate) events: Vec<IncidentEventRow>,
}

/// Something that needs attention: a vendor with active conditions (and its incident, if one
/// is open), or a quarantined probe.
pub(crate) struct Attention {
    /// The vendor (with its state), for a vendor.
    pub(crate) vendor: Option<VendorDetail>,
    /// The probe and its health, for a probe.
    pub(crate) probe: Option<(String, ProbeHealth)>,
    /// The open incident.
    pub(crate) incident: Option<IncidentCard>,
    /// Settled transitions of the vendor's checks since the incident opened (or recently),
    /// newest first.
    pub(crate) transitions: Vec<CheckTransition>,
}

/// A probe as listed.
pub(crate) struct ProbeLine {
    /// The registration.
    pub(crate) record: ProbeRecord,
    /// Its health, when quarantined.
    pub(crate) quarantine: Option<ProbeHealth>,
    /// The checks it is suspect on (the lone dissenter for longer than their window).
    pub(crate) suspect: Vec<crate::engine::SuspectView>,
}

/// Everything the overview shows, read at one moment.
pub(crate) struct Overview {
    /// When it was read.
    pub(crate) now_ms: Ms,
    /// Every vendor's state.
    pub(crate) vendors: Vec<VendorView>,
    /// The grid's columns after `global`.
    pub(crate) regions: Vec<String>,
    /// Active conditions, open incidents and quarantined probes, worst first.
    pub(crate) attention: Vec<Attention>,
    /// Incidents resolved within the last day, newest first.
    pub(crate) resolved: Vec<IncidentRow>,
    /// Registered probes.
    pub(crate) probes: Vec<ProbeLine>,
    /// Last hour's latency per check.
    pub(crate) charts: Vec<CheckCharts>,
}

/// One vendor's page.
pub(crate) struct VendorPage {
    /// When it was read.
    pub(crate) now_ms: Ms,
    /// State, checks with evidence, recent transitions.
    pub(crate) detail: VendorDetail,
    /// Regions to show.
    pub(crate) regions: Vec<String>,
    /// The open incident.
    pub(crate) incident: Option<IncidentCard>,
    /// Last hour's and last day's latency per check.
    pub(crate) charts: Vec<CheckCharts>,
}

/// What the page chrome needs besides the content.
pub(crate) struct Chrome {
    /// Offer to sign out.
    pub(crate) signed_in: bool,
}

fn regions_of(
    probes: &[ProbeRecord],
    vendors: &[&crate::consensus::vendor::VendorStatus],
) -> Vec<String> {
    let mut set: BTreeSet<String> = probes
        .iter()
        .filter(|p| p.revoked_ms.is_none())
        .map(|p| p.region.clone())
        .collect();
    set.extend(vendors.iter().flat_map(|v| v.regions.keys().cloned()));
    set.into_iter().collect()
}

fn parse_transitions(bodies: &[String]) -> Vec<CheckTransition> {
    bodies
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect()
}

/// Reads everything the overview shows.
async fn read_overview(state: &AppState) -> Result<Overview, StoreError> {
    let now = now_ms();
    let vendors = state.engine.vendors().await;
    let health = state.engine.probe_health().await;
    let suspects = state.engine.suspects().await;
    let catalog = state.catalogs.current();
    let checks: Vec<(String, String, &'static str)> = catalog
        .checks
        .checks
        .iter()
        .filter(|c| !c.on_demand)
        .map(|c| (c.id.clone(), c.vendor.clone(), c.kind().as_label()))
        .collect();
    let span = Span::last_hour(now);
    let ids: Vec<String> = checks.iter().map(|c| c.0.clone()).collect();
    let (probes, open, recent, rollups) = blocking(&state.store, move |s| {
        let probes = s.list_probes()?;
        let mut open = Vec::new();
        for row in s.open_incidents()? {
            let events = s.incident(row.id)?.map(|(_, e, _)| e).unwrap_or_default();
            let transitions = if row.subject_kind == SubjectKind::Vendor {
                s.transitions(&row.subject, 20)?
            } else {
                Vec::new()
            };
            open.push((IncidentCard { row, events }, transitions));
        }
        let recent = s.incidents(&IncidentQuery {
            subject: None,
            open_only: false,
            limit: 20,
        })?;
        let mut rollups: Vec<Vec<Rollup>> = Vec::with_capacity(ids.len());
        for id in &ids {
            rollups.push(s.rollups(id, span.from_ms, span.end_ms())?);
        }
        Ok((probes, open, recent, rollups))
    })
    .await?;

    // Vendors that need attention: something bad anywhere, or an open incident.
    let mut open_by_subject: BTreeMap<(SubjectKind, String), (IncidentCard, Vec<String>)> = open
        .into_iter()
        .map(|(card, t)| ((card.row.subject_kind, card.row.subject.clone()), (card, t)))
        .collect();
    let mut attention = Vec::new();
    for v in &vendors {
        let key = (SubjectKind::Vendor, v.id.clone());
        let incident = open_by_subject.remove(&key);
        if !v.status.worst().is_bad() && incident.is_none() {
            continue;
        }
        let Some(detail) = state.engine.vendor(&v.id).await else {
            continue;
        };
        let (incident, transitions) = match incident {
            Some((card, t)) => {
                let since = card.row.opened_ms;
                let t = parse_transitions(&t)
                    .into_iter()
                    .filter(|t| t.transition.at_ms >= since)
                    .collect();
                (Some(card), t)
            }
            None => (None, Vec::new()),
        };
        attention.push(Attention {
            vendor: Some(detail),
            probe: None,
            incident,
            transitions,
        });
    }
    for (probe, h) in health.iter().filter(|(_, h)| h.quarantined) {
        let incident = open_by_subject
            .remove(&(SubjectKind::Probe, probe.clone()))
            .map(|(c, _)| c);
        attention.push(Attention {
            vendor: None,
            probe: Some((probe.clone(), h.clone())),
            incident,
            transitions: Vec::new(),
        });
    }
    // Open incidents whose subject is gone from the catalog or healthy again (about to resolve).
    for (_, (card, _)) in open_by_subject {
        attention.push(Attention {
            vendor: None,
            probe: None,
            incident: Some(card),
            transitions: Vec::new(),
        });
    }
    attention.sort_by_key(|a| std::cmp::Reverse(render::severity(a)));

    let statuses: Vec<_> = vendors.iter().map(|v| &v.status).collect();
    let regions = regions_of(&probes, &statuses);
    let probes = probes
        .into_iter()
        .map(|record| ProbeLine {
            quarantine: health.get(&record.id).filter(|h| h.quarantined).cloned(),
            suspect: suspects
                .iter()
                .filter(|s| s.probe == record.id)
                .cloned()
                .collect(),
            record,
        })
        .collect();
    let resolved = recent
        .into_iter()
        .filter(|i| i.resolved_ms.is_some_and(|r| now - r <= RESOLVED_WITHIN_MS))
        .take(5)
        .collect();
    let charts = checks
        .into_iter()
        .zip(rollups)
        .map(|((check, vendor, kind), r)| CheckCharts {
            check,
            vendor,
            kind,
            hour: chart::series(&r, span),
            day: None,
        })
        .collect();
    Ok(Overview {
        now_ms: now,
        vendors,
        regions,
        attention,
        resolved,
        probes,
        charts,
    })
}

/// Reads one vendor's page; `None` for an unknown vendor.
async fn read_vendor(state: &AppState, id: &str) -> Result<Option<VendorPage>, StoreError> {
    let now = now_ms();
    let Some(mut detail) = state.engine.vendor(id).await else {
        return Ok(None);
    };
    let kinds: Vec<(String, &'static str)> = detail
        .checks
        .iter()
        .map(|c| (c.id.clone(), c.kind))
        .collect();
    let hour = Span::last_hour(now);
    let day = Span::last_day(now);
    let vendor = id.to_owned();
    let ids: Vec<String> = kinds.iter().map(|k| k.0.clone()).collect();
    let (probes, transitions, incident, rollups) = blocking(&state.store, move |s| {
        let probes = s.list_probes()?;
        let transitions = s.transitions(&vendor, 50)?;
        let incident = match s.open_incident(SubjectKind::Vendor, &vendor)? {
            Some(row) => {
                let events = s.incident(row.id)?.map(|(_, e, _)| e).unwrap_or_default();
                Some(IncidentCard { row, events })
            }
            None => None,
        };
        let mut rollups = Vec::with_capacity(ids.len());
        for id in &ids {
            rollups.push(s.rollups(id, day.from_ms, day.end_ms())?);
        }
        Ok((probes, transitions, incident, rollups))
    })
    .await?;
    detail.transitions = parse_transitions(&transitions);
    let regions = regions_of(&probes, &[&detail.vendor.status]);
    let charts = kinds
        .into_iter()
        .zip(rollups)
        .map(|((check, kind), r)| CheckCharts {
            check,
            vendor: id.to_owned(),
            kind,
            hour: chart::series(&r, hour),
            day: Some(chart::series(&r, day)),
        })
        .collect();
    Ok(Some(VendorPage {
        now_ms: now,
        detail,
        regions,
        incident,
        charts,
    }))
}

async fn overview(state: &AppState, req: &Request<Incoming>) -> Resp {
    let partial = match partial_param(req) {
        Ok(p) => p,
        Err(m) => return page_error(StatusCode::BAD_REQUEST, &m),
    };
    let Ok(signed_in) = reader(state, req) else {
        return needs_login("/", partial);
    };
    let started = std::time::Instant::now();
    let data = match read_overview(state).await {
        Ok(d) => d,
        Err(e) => return store_failed(&e),
    };
    let main = render::overview(&data);
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        partial,
        "status page rendered"
    );
    if partial {
        return html_for(req, StatusCode::OK, main);
    }
    html_for(
        req,
        StatusCode::OK,
        render::layout("Vantage status", &Chrome { signed_in }, true, main),
    )
}

async fn vendor_page(state: &AppState, req: &Request<Incoming>, id: &str) -> Resp {
    let partial = match partial_param(req) {
        Ok(p) => p,
        Err(m) => return page_error(StatusCode::BAD_REQUEST, &m),
    };
    let Ok(signed_in) = reader(state, req) else {
        return needs_login(req.uri().path(), partial);
    };
    let data = match read_vendor(state, id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return page_error(
                StatusCode::NOT_FOUND,
                &format!("There is no vendor `{id}` in the check files."),
            );
        }
        Err(e) => return store_failed(&e),
    };
    let main = render::vendor(&data);
    if partial {
        return html_for(req, StatusCode::OK, main);
    }
    let title = format!("{} · Vantage status", data.detail.vendor.name);
    html_for(
        req,
        StatusCode::OK,
        render::layout(&title, &Chrome { signed_in }, true, main),
    )
}

/// Where to go after signing in: only this page's own paths, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n == "/" || (n.starts_with("/vendors/") && !n.contains("//")) => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn query_value<B>(req: &Request<B>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn login_form(state: &AppState, req: &Request<Incoming>) -> Resp {
    let next = safe_next(query_value(req, "next").as_deref());
    if state.access.reads_open() {
        // Nothing to sign in to: the page is open.
        return redirect(&next, None);
    }
    html(StatusCode::OK, render::login(&next, None))
}

/// Refuses a POST sent from another site's page: browsers say where a request comes from in
/// `Sec-Fetch-Site`, and send `Origin` on every POST (the page's `same-origin` referrer policy
/// keeps it for its own forms).
fn cross_site<B>(req: &Request<B>) -> bool {
    if let Some(site) = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
    {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return false;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    host.is_none_or(|h| h != origin_host)
}

async fn login(state: &AppState, req: Request<Incoming>) -> Resp {
    if state.access.reads_open() {
        return redirect("/", None);
    }
    if let Some(crate::api::Peer(peer)) = req.extensions().get::<crate::api::Peer>()
        && let Err(wait) = state.logins.attempt(peer.ip(), std::time::Instant::now())
    {
        tracing::warn!(%peer, retry_after_s = wait, "status page sign-in refused: too many tries from this address");
        let mut r = page_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many sign-in tries from your address ({} a minute); try again in {wait} s.",
                limit::TRIES
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return r;
    }
    if cross_site(&req) {
        return page_error(
            StatusCode::FORBIDDEN,
            "Sign in from this coordinator's own login page.",
        );
    }
    let body = match read_body(
        req.into_body(),
        LOGIN_BODY_LIMIT,
        state.limits.request_timeout,
    )
    .await
    {
        Ok(b) => b,
        Err(_) => {
            return html(
                StatusCode::BAD_REQUEST,
                render::login("/", Some("The form could not be read; try again.")),
            );
        }
    };
    let mut token = None;
    let mut next = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "token" => token = Some(v.into_owned()),
            "next" => next = Some(v.into_owned()),
            _ => {}
        }
    }
    let next = safe_next(next.as_deref());
    let given = token
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .map(crate::auth::Token::new);
    let key = given.as_ref().and_then(|t| state.access.sign_in(t));
    let Some(want) = key else {
        tracing::info!("status page sign-in refused: wrong token");
        return html(
            StatusCode::UNAUTHORIZED,
            render::login(
                &next,
                Some("That token is not the reader token. Try again."),
            ),
        );
    };
    let value = session::issue(want, session::now_s());
    redirect(
        &next,
        Some(session::set_cookie(&value, state.secure_cookies)),
    )
}

fn logout(state: &AppState, req: &Request<Incoming>) -> Resp {
    if cross_site(req) {
        return page_error(
            StatusCode::FORBIDDEN,
            "Sign out from this coordinator's own page.",
        );
    }
    let to = if state.access.reads_open() {
        "/"
    } else {
        "/login"
    };
    redirect(to, Some(session::clear_cookie(state.secure_cookies)))
}

/// The verdicts of a check, by scope label (`global` or a region).
pub(crate) fn check_scopes(c: &CheckDetail) -> BTreeMap<String, crate::consensus::ScopeState> {
    let mut out: BTreeMap<String, crate::consensus::ScopeState> = c
        .state
        .regions
        .iter()
        .map(|(r, s)| (r.clone(), *s))
        .collect();
    out.insert("global".to_owned(), c.state.global);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_versioned_by_content() {
        let (css, js) = asset_urls();
        assert!(
            css.starts_with("/static/vantage.") && css.ends_with(".css"),
            "{css}"
        );
        assert!(
            js.starts_with("/static/vantage.") && js.ends_with(".js"),
            "{js}"
        );
        let r = asset(css);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        let stale = asset("/static/vantage.000000000000.js");
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(stale.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(asset("/static/other.txt").status(), StatusCode::NOT_FOUND);
        assert_eq!(asset("/static/").status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn gzip_is_used_when_accepted() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("header"),
            );
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&h("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br, identity")));
        assert!(!accepts_gzip(&http::HeaderMap::new()));
        let req = Request::builder()
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(())
            .expect("request");
        let r = html_for(&req, StatusCode::OK, maud::html! { p { "hello" } });
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::VARY], "Accept-Encoding");
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }

    #[test]
    fn the_page_owns_its_paths_only() {
        for p in [
            "/",
            "/login",
            "/logout",
            "/static/vantage.1.css",
            "/vendors/acme",
        ] {
            assert!(serves(p), "{p}");
        }
        for p in [
            "/api/v1/vendors",
            "/healthz",
            "/metrics",
            "/index.html",
            "/vendors",
        ] {
            assert!(!serves(p), "{p}");
        }
    }

    #[test]
    fn only_own_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/")), "/");
        assert_eq!(safe_next(Some("/vendors/acme")), "/vendors/acme");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/vendors//evil",
            "/api/v1/x",
            "javascript:1",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
    }

    #[test]
    fn the_partial_parameter_is_strict() {
        let req = |q: &str| {
            Request::builder()
                .uri(format!("/{q}"))
                .body(())
                .expect("request")
        };
        assert_eq!(partial_param(&req("")), Ok(false));
        assert_eq!(partial_param(&req("?partial=main")), Ok(true));
        assert!(partial_param(&req("?partial=all")).is_err());
        assert!(partial_param(&req("?x=1")).is_err());
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let req = |origin: Option<&str>| {
            let mut b = Request::builder()
                .method(Method::POST)
                .uri("/login")
                .header(header::HOST, "127.0.0.1:7470");
            if let Some(o) = origin {
                b = b.header(header::ORIGIN, o);
            }
            b.body(()).expect("request")
        };
        assert!(!cross_site(&req(None)));
        assert!(!cross_site(&req(Some("http://127.0.0.1:7470"))));
        assert!(cross_site(&req(Some("https://evil.example"))));
        assert!(cross_site(&req(Some("null"))));
        let fetched = |site: &str| {
            Request::builder()
                .method(Method::POST)
                .uri("/logout")
                .header("sec-fetch-site", site)
                .body(())
                .expect("request")
        };
        assert!(!cross_site(&fetched("same-origin")));
        assert!(cross_site(&fetched("cross-site")));
        assert!(cross_site(&fetched("same-site")));
    }
}
