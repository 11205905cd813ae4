//! `kind = "cdn"` and `kind = "http"`: one request over a fresh connection (through the vendor's
//! edge when `edge` is set, keeping the URL's Host and SNI), redirects followed up to a cap, the
//! body read up to a cap, then the assertions, in order: status, protocol, encoding, vendor
//! header, headers, cache policy, cache status, body, child assets, cache key, error page.
//! A check that asserts the cache status after a warm-up (`expect.cache`) requests its URL
//! once before the measured request; the cache key and the error page need requests of
//! their own after it. Every request of a run shares its deadline.
//!
//! Layout:
//! - [`fetch`]: one exchange over HTTP/1.1 or HTTP/2 (by ALPN), and redirect following;
//! - [`body`]: content decoding and the body assertions;
//! - [`assets`]: child assets of an HTML page;
//! - [`cache`]: the content-profile assertions and their extra requests;
//! - the cache status is read by [`super::cache_status`].

pub(crate) mod assets;
pub(crate) mod body;
mod cache;
mod fetch;
#[cfg(test)]
mod tests;

pub use self::body::{DECODED_BODY_FACTOR, DecodeError, MAX_CONTENT_CODINGS, decode_body};

use std::net::IpAddr;
use std::time::{Duration, Instant};

use http::HeaderValue;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use time::OffsetDateTime;

use self::fetch::{Client, FetchError, Phases, follow};
use super::tls::TlsClient;
use super::{ExecError, Observation, cache_status};
use crate::model::{HttpCheck, HttpMethod, StatusExpect};
use crate::result::{Facts, FailureKind, HttpFacts, RequestPurpose, Timings, millis};

/// Offered by `kind = "cdn"` checks that list no encodings.
const CDN_ACCEPT_ENCODING: &str = "br, gzip";

pub(crate) async fn run(
    check: &HttpCheck,
    timeout: Duration,
    source: Option<IpAddr>,
) -> Result<Observation, ExecError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let client = Client {
        tls: TlsClient::new(check.ca_file.as_deref(), &check.ca_cache)?,
        check_url: check.url.clone(),
        edge: check.edge.clone(),
        headers: check.headers.clone(),
        accept_encoding: accept_encoding(check),
        max_body_bytes: check.max_body_bytes,
        max_redirects: check.max_redirects,
        source,
        resolver: check.resolver,
    };
    let mut url = check.url.clone();
    url.set_fragment(None);
    if check.cache_bust {
        let token = format!("{:016x}", rand::random::<u64>());
        url.query_pairs_mut().append_pair("vantage_cb", &token);
    }
    let mut facts = HttpFacts {
        url: url.to_string(),
        ..HttpFacts::default()
    };
    // A redirect the check expects (`status = 301`) is the answer, not a hop.
    let keep =
        |status: u16| matches!(&check.status, StatusExpect::OneOf(list) if list.contains(&status));
    let profile = check.cdn_expect.as_deref();
    if let Some(p) = profile
        && !p.cache.is_empty()
    {
        // Recorded, not judged: a warm-up that fails fails the measured request too.
        let warm = cache::request(
            &client,
            check.method,
            RequestPurpose::WarmUp,
            url.clone(),
            keep,
            deadline,
        )
        .await?;
        facts.extra_requests.push(warm.record);
    }
    let followed = follow(&client, check.method, url.clone(), keep, deadline).await;
    let mut timings = timings_of(followed.phases);
    facts.redirects = followed.redirects;
    let fail = |kind: FailureKind, message: String, mut timings: Timings, facts: HttpFacts| {
        timings.total_ms = millis(start.elapsed());
        Ok(Observation::fail(
            kind,
            message,
            timings,
            Facts::Http(facts),
        ))
    };
    let mut response = match followed.result {
        Ok(r) => r,
        Err(FetchError::Probe(e)) => return Err(e),
        Err(FetchError::Fail {
            kind,
            message,
            remote_addr,
            tls,
        }) => {
            facts.remote_addr = remote_addr;
            facts.tls = tls.map(|t| *t);
            return fail(kind, message, timings, facts);
        }
    };

    let cache = cache_status::normalise(&response.headers);
    let header = |name: &http::HeaderName| {
        response
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    facts.remote_addr = Some(response.remote_addr);
    facts.status = Some(response.status);
    facts.http_version = Some(response.version.to_owned());
    facts.cache = cache.status;
    facts.pop = cache.pop;
    facts.served_by = cache.served_by;
    facts.age = cache.age;
    facts.content_encoding = header(&CONTENT_ENCODING);
    facts.bytes = response.body.len() as u64;
    facts.tls = response.tls.clone();
    if let Some(vh) = &check.vendor_header {
        facts.vendor_header = header(&vh.name);
    }
    cache::record(&mut facts, &response.headers);

    if let Some((kind, message)) = judge_head(check, &response, &facts, OffsetDateTime::now_utc()) {
        return fail(kind, message, timings, facts);
    }

    let is_html = header(&CONTENT_TYPE).is_some_and(|t| t.to_ascii_lowercase().contains("html"));
    let want_assets = check.assets && check.method == HttpMethod::Get && is_html;
    if body::has_assertions(check) || want_assets {
        // Decoded bodies may be larger than encoded ones, within reason.
        let cap = check.max_body_bytes.saturating_mul(DECODED_BODY_FACTOR);
        let raw = std::mem::take(&mut response.body);
        let decoded = body::decode_off_runtime(raw, facts.content_encoding.clone(), cap)
            .await
            .map_err(|e| ExecError::Internal(format!("the body decoding task failed: {e}")))?;
        let decoded = match decoded {
            Ok(b) => b,
            Err(DecodeError::TooLarge { cap }) => {
                let message = format!(
                    "the decoded body of `{}` is larger than {cap} bytes ({DECODED_BODY_FACTOR} × \
                     max_body_bytes); decoding stopped there",
                    response.url
                );
                return fail(FailureKind::BodyTooLarge, message, timings, facts);
            }
            Err(DecodeError::Corrupt(why)) => {
                let message = format!("the body of `{}` is {why}", response.url);
                return fail(FailureKind::HttpProtocol, message, timings, facts);
            }
            Err(DecodeError::Unsupported(why)) => return Err(ExecError::Unsupported(why)),
        };
        if let Some((kind, message)) = body::check(check, &decoded, OffsetDateTime::now_utc()) {
            return fail(kind, message, timings, facts);
        }
        if want_assets {
            let html = String::from_utf8_lossy(&decoded);
            let urls = assets::extract(&html, &response.url, check.max_assets);
            facts.assets = assets::fetch_all(&client, urls, deadline).await?;
            let failed: Vec<String> = facts
                .assets
                .iter()
                .filter_map(|a| {
                    a.failure.map(|f| match a.status {
                        Some(s) => format!("{} ({f}, {s})", a.url),
                        None => format!("{} ({f})", a.url),
                    })
                })
                .collect();
            if !failed.is_empty() {
                let message = format!(
                    "{} of {} assets failed: {}",
                    failed.len(),
                    facts.assets.len(),
                    failed.join(", ")
                );
                return fail(FailureKind::AssetErrors, message, timings, facts);
            }
        }
    }
    if let Some(p) = profile
        && let Some((kind, message)) = cache::after(
            &client,
            check.method,
            &check.status,
            p,
            &url,
            deadline,
            &mut facts,
        )
        .await?
    {
        return fail(kind, message, timings, facts);
    }
    timings.total_ms = millis(start.elapsed());
    Ok(Observation::ok(timings, Facts::Http(facts)))
}

/// The assertions on the measured response's status and headers, in order (status, protocol,
/// encoding, vendor header, headers, cache policy, cache status after the warm-up): the
/// first that fails. Pure: `facts` are the response's as recorded, `now` stands in for a
/// missing `Date`.
fn judge_head(
    check: &HttpCheck,
    response: &fetch::Response,
    facts: &HttpFacts,
    now: OffsetDateTime,
) -> Option<(FailureKind, String)> {
    let profile = check.cdn_expect.as_deref();
    if !check.status.accepts(response.status) {
        let message = format!(
            "`{}` answered {}, expected {}",
            response.url,
            response.status,
            expected_status(&check.status)
        );
        return Some((FailureKind::HttpStatus, message));
    }
    if let Some(p) = profile
        && let Some(why) = cache::judge_protocol(p, response.version, response.tls.as_ref())
    {
        return Some((FailureKind::ProtocolMismatch, why));
    }
    if !check.encoding.is_empty() {
        let got = facts
            .content_encoding
            .as_deref()
            .map(|e| e.trim().to_ascii_lowercase())
            .unwrap_or_else(|| "identity".to_owned());
        if !check.encoding.iter().any(|e| e.as_label() == got) {
            let want: Vec<&str> = check.encoding.iter().map(|e| e.as_label()).collect();
            let message = format!(
                "the response's content encoding is `{got}`, expected one of {}",
                want.join(", ")
            );
            return Some((FailureKind::EncodingMismatch, message));
        }
    }
    if let Some(vh) = &check.vendor_header {
        let problem = match &facts.vendor_header {
            None => Some(format!("the response has no `{}` header", vh.name)),
            Some(v) if !vh.matches.is_match(v) => Some(format!(
                "the `{}` header is `{v}`, which does not match `{}`",
                vh.name,
                vh.matches.as_str()
            )),
            Some(_) => None,
        };
        if let Some(message) = problem {
            return Some((FailureKind::VendorHeaderMismatch, message));
        }
    }
    for (name, re) in &check.header_matches {
        let value = response
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let problem = match value {
            None => Some(format!("the response has no `{name}` header")),
            Some(v) if !re.is_match(&v) => Some(format!(
                "the `{name}` header is `{v}`, which does not match `{}`",
                re.as_str()
            )),
            Some(_) => None,
        };
        if let Some(message) = problem {
            return Some((FailureKind::HeaderMismatch, message));
        }
    }
    if let Some(p) = profile {
        if let Some(why) = cache::judge_headers(p, &response.headers, facts.age, now) {
            let message = format!("`{}`: {why}", response.url);
            return Some((FailureKind::CachePolicyMismatch, message));
        }
        if !p.cache.is_empty() && !p.cache.contains(&facts.cache) {
            let want: Vec<&str> = p.cache.iter().map(|c| c.as_label()).collect();
            let message = format!(
                "right after a warm-up request, `{}` was a {}, expected {}",
                response.url,
                facts.cache.as_label(),
                want.join(" or ")
            );
            return Some((FailureKind::CacheStatusMismatch, message));
        }
    }
    None
}

/// The `Accept-Encoding` a check sends: its `encoding` list, or `br, gzip` for a CDN check.
fn accept_encoding(check: &HttpCheck) -> Option<HeaderValue> {
    if check.encoding.is_empty() {
        return check
            .cdn
            .then(|| HeaderValue::from_static(CDN_ACCEPT_ENCODING));
    }
    let list: Vec<&str> = check.encoding.iter().map(|e| e.as_label()).collect();
    HeaderValue::from_str(&list.join(", ")).ok()
}

fn expected_status(expect: &StatusExpect) -> String {
    match expect {
        StatusExpect::Success => "a 2xx status".to_owned(),
        StatusExpect::OneOf(list) => {
            let list: Vec<String> = list.iter().map(u16::to_string).collect();
            list.join(" or ")
        }
    }
}

fn timings_of(p: Phases) -> Timings {
    Timings {
        resolve_ms: p.resolve.map(millis),
        connect_ms: p.connect.map(millis),
        tls_ms: p.tls.map(millis),
        first_byte_ms: p.first_byte.map(millis),
        total_ms: 0.0,
    }
}
