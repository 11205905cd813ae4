//! The content-profile assertions of an HTTP check's `expect` ([`CdnExpect`]).
//!
//! Two halves. The pure half judges one response: its caching headers (`Cache-Control`
//! directives, `Age`, `Vary`, `Expires` against `Date`, `ETag`, `Last-Modified`) and its
//! protocol (HTTP and TLS versions). The other half makes the extra requests that only a
//! sequence can answer, each recorded in the facts' `extra_requests`, all within the run's
//! deadline:
//! - a warm-up request of the same URL just before the measured one (`cache`), so that the
//!   measured request shows what a cached object looks like;
//! - after the measured request, the same URL with one more query parameter (`cache_key`):
//!   a hit means the query string is not in the cache key, a miss that it is;
//! - an error page of the same origin, once, or twice to see whether the edge cached it
//!   (`negative`).

use std::time::{Duration, Instant};

use http::HeaderMap;
use http::header::{CACHE_CONTROL, DATE, ETAG, EXPIRES, LAST_MODIFIED, VARY};
use time::OffsetDateTime;
use url::Url;

use super::super::{ExecError, cache_status};
use super::fetch::{Client, FetchError, Response, follow};
use crate::model::{
    Bounds, CacheControlExpect, CdnExpect, HttpMethod, NegativeExpect, QueryKey, StatusExpect,
};
use crate::result::{
    CacheStatus, ExtraRequest, FailureKind, HttpFacts, RequestPurpose, TlsFacts, millis,
};

/// The query parameter added for `cache_key` (and the prefix of a random `negative` path).
const KEY_PARAM: &str = "vantage_key";

/// Every value of a list-valued header, joined with `, ` as one field (RFC 9110 §5.3).
pub(super) fn joined(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn first(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
}

/// Records the caching headers of the measured response in its facts.
pub(super) fn record(facts: &mut HttpFacts, headers: &HeaderMap) {
    facts.cache_control = joined(headers, &CACHE_CONTROL);
    facts.vary = joined(headers, &VARY);
    facts.expires = first(headers, &EXPIRES);
    facts.etag = first(headers, &ETAG);
    facts.last_modified = first(headers, &LAST_MODIFIED);
}

/// `Cache-Control` directives: lowercase names, values unquoted.
struct Directives(Vec<(String, Option<String>)>);

impl Directives {
    fn parse(value: &str) -> Self {
        let mut out = Vec::new();
        // A quoted value may hold a comma (`no-cache="set-cookie, x-id"`): split outside quotes.
        let mut part = String::new();
        let mut quoted = false;
        let mut parts = Vec::new();
        for c in value.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    part.push(c);
                }
                ',' if !quoted => parts.push(std::mem::take(&mut part)),
                _ => part.push(c),
            }
        }
        parts.push(part);
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v.trim().trim_matches('"').to_owned())),
                None => (p, None),
            };
            out.push((name.trim().to_ascii_lowercase(), value));
        }
        Self(out)
    }

    /// The first directive of this name: `Some(value)` when present.
    fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }
}

/// A duration as a check file would write it, in days at most (`30d`, `1h 1s`): cache
/// lifetimes are set in seconds and read in days, never in months of 30.44 days.
fn show(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return crate::duration::format(d);
    }
    let parts = [
        (s / 86_400, "d"),
        (s / 3600 % 24, "h"),
        (s / 60 % 60, "m"),
        (s % 60, "s"),
    ];
    let shown: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    shown.join(" ")
}

/// Why `d` is outside `bounds`, as "<what> is 1m, expected at least 1h".
fn outside(what: &str, d: Duration, bounds: &Bounds) -> Option<String> {
    if bounds.contains(d) {
        return None;
    }
    let want = match (bounds.min, bounds.max) {
        (Some(lo), Some(hi)) => format!("between {} and {}", show(lo), show(hi)),
        (Some(lo), None) => format!("at least {}", show(lo)),
        (None, Some(hi)) => format!("at most {}", show(hi)),
        (None, None) => return None,
    };
    Some(format!("{what} is {}, expected {want}", show(d)))
}

/// Why the `Cache-Control` of `headers` breaks `expect`, if it does.
pub(super) fn judge_cache_control(
    expect: &CacheControlExpect,
    headers: &HeaderMap,
) -> Option<String> {
    if expect.is_empty() {
        return None;
    }
    let raw = joined(headers, &CACHE_CONTROL);
    let shown = match &raw {
        Some(v) => format!("Cache-Control `{v}`"),
        None => "the response has no Cache-Control, so it".to_owned(),
    };
    let d = Directives::parse(raw.as_deref().unwrap_or(""));
    for (name, bounds) in [("max-age", &expect.max_age), ("s-maxage", &expect.s_maxage)] {
        let Some(bounds) = bounds else { continue };
        let secs = match d.get(name) {
            None => return Some(format!("{shown} has no `{name}`")),
            Some(v) => v.and_then(|v| v.parse::<u64>().ok()),
        };
        let Some(secs) = secs else {
            return Some(format!(
                "{shown} has a `{name}` that is not a number of seconds"
            ));
        };
        if let Some(why) = outside(name, Duration::from_secs(secs), bounds) {
            return Some(format!("{shown}: {why}"));
        }
    }
    for (name, want) in expect.flags() {
        match (want, d.get(name).is_some()) {
            (Some(true), false) => return Some(format!("{shown} lacks `{name}`")),
            (Some(false), true) => {
                return Some(format!("{shown} has `{name}`, which the check forbids"));
            }
            _ => {}
        }
    }
    None
}

/// Reads an HTTP date (RFC 9110 §5.6.7) in its preferred form, IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`). The obsolete forms read as invalid, which a cache
/// takes as a time in the past (RFC 9111 §5.3), and so does this.
pub(super) fn http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// Why the caching headers of `headers` break `expect` (all but `Cache-Control`, which
/// [`judge_cache_control`] reads). `now` stands in for a missing or invalid `Date`.
pub(super) fn judge_headers(
    expect: &CdnExpect,
    headers: &HeaderMap,
    age: Option<u64>,
    now: OffsetDateTime,
) -> Option<String> {
    if let Some(why) = judge_cache_control(&expect.cache_control, headers) {
        return Some(why);
    }
    if let Some(bounds) = &expect.age {
        match age {
            None => {
                return Some(
                    "the response has no Age header (or not a number of seconds)".to_owned(),
                );
            }
            Some(a) => {
                if let Some(why) = outside("Age", Duration::from_secs(a), bounds) {
                    return Some(why);
                }
            }
        }
    }
    if !expect.vary.is_empty() {
        let vary = joined(headers, &VARY);
        let listed: Vec<String> = vary
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|v| v.trim().to_ascii_lowercase())
            .collect();
        for want in &expect.vary {
            if !listed.iter().any(|l| l == want) {
                return Some(match &vary {
                    Some(v) => format!("Vary `{v}` does not list `{want}`"),
                    None => {
                        format!("the response has no Vary header, expected one listing `{want}`")
                    }
                });
            }
        }
    }
    if let Some(bounds) = &expect.expires {
        let Some(text) = first(headers, &EXPIRES) else {
            return Some("the response has no Expires header".to_owned());
        };
        let Some(expires) = http_date(&text) else {
            return Some(format!(
                "Expires `{text}` is not an HTTP date, so the response counts as already expired"
            ));
        };
        let date = first(headers, &DATE).and_then(|d| http_date(&d));
        let (reference, what) = match date {
            Some(d) => (d, "the response's Date"),
            None => (now, "the probe's clock"),
        };
        let ahead = expires - reference;
        if !ahead.is_positive() {
            return Some(format!("Expires `{text}` is not in the future of {what}"));
        }
        let ahead = Duration::try_from(ahead).unwrap_or(Duration::MAX);
        if let Some(why) = outside(&format!("Expires, ahead of {what},"), ahead, bounds) {
            return Some(why);
        }
    }
    for (header, want) in [(&ETAG, expect.etag), (&LAST_MODIFIED, expect.last_modified)] {
        match (want, first(headers, header)) {
            (Some(true), None) => return Some(format!("the response has no {header} header")),
            (Some(false), Some(v)) => {
                return Some(format!(
                    "the response has a {header} header (`{v}`), which the check forbids"
                ));
            }
            _ => {}
        }
    }
    None
}

/// Why the negotiated protocol breaks `expect`: the HTTP version as the facts name it
/// (`HTTP/2`), and the TLS session, if any.
pub(super) fn judge_protocol(
    expect: &CdnExpect,
    http_version: &str,
    tls: Option<&TlsFacts>,
) -> Option<String> {
    if !expect.http_version.is_empty()
        && !expect
            .http_version
            .iter()
            .any(|v| v.as_fact() == http_version)
    {
        let want: Vec<&str> = expect.http_version.iter().map(|v| v.as_fact()).collect();
        return Some(format!(
            "the response came over {http_version}, expected {}",
            want.join(" or ")
        ));
    }
    if !expect.tls_version.is_empty() {
        let got = tls.and_then(|t| t.protocol.as_deref());
        if !expect.tls_version.iter().any(|v| Some(v.as_fact()) == got) {
            let want: Vec<String> = expect
                .tls_version
                .iter()
                .map(|v| format!("TLS {}", v.as_label()))
                .collect();
            return Some(format!(
                "{} was negotiated, expected {}",
                got.unwrap_or("no TLS version"),
                want.join(" or ")
            ));
        }
    }
    None
}

/// One extra request: what the facts record of it, and its response or why there was none.
pub(super) struct Extra {
    pub(super) record: ExtraRequest,
    pub(super) response: Result<Response, (FailureKind, String)>,
}

/// Makes one extra request (redirects followed, except to a status `keep` accepts).
pub(super) async fn request(
    client: &Client,
    method: HttpMethod,
    purpose: RequestPurpose,
    url: Url,
    keep: impl Fn(u16) -> bool,
    deadline: Instant,
) -> Result<Extra, ExecError> {
    let start = Instant::now();
    let mut record = ExtraRequest {
        purpose,
        url: url.to_string(),
        status: None,
        cache: CacheStatus::Unknown,
        age: None,
        cache_control: None,
        failure: None,
        total_ms: 0.0,
    };
    let followed = follow(client, method, url, keep, deadline).await;
    record.total_ms = millis(start.elapsed());
    let response = match followed.result {
        Ok(r) => {
            let info = cache_status::normalise(&r.headers);
            record.status = Some(r.status);
            record.cache = info.status;
            record.age = info.age;
            record.cache_control = joined(&r.headers, &CACHE_CONTROL);
            Ok(r)
        }
        Err(FetchError::Probe(e)) => return Err(e),
        Err(FetchError::Fail { kind, message, .. }) => {
            record.failure = Some(kind);
            Err((kind, message))
        }
    };
    Ok(Extra { record, response })
}

fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A name no object has, beside the check URL's own and with its extension (CDN rules often
/// go by directory and extension): `vantage-negative-<random>.png` for `/img/logo.png`.
fn random_sibling(url: &Url) -> String {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    let ext = last
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()));
    match ext {
        Some(ext) => format!("vantage-negative-{}.{ext}", token()),
        None => format!("vantage-negative-{}", token()),
    }
}

fn statuses(list: &[u16]) -> String {
    let list: Vec<String> = list.iter().map(u16::to_string).collect();
    list.join(" or ")
}

/// The extra requests after the measured one passed: the cache key, then the error page.
/// Returns the first failure, with every request made recorded in `facts`.
pub(super) async fn after(
    client: &Client,
    method: HttpMethod,
    status: &StatusExpect,
    expect: &CdnExpect,
    url: &Url,
    deadline: Instant,
    facts: &mut HttpFacts,
) -> Result<Option<(FailureKind, String)>, ExecError> {
    if let Some(key) = expect.cache_key {
        let mut other = url.clone();
        other.query_pairs_mut().append_pair(KEY_PARAM, &token());
        let keep = |s: u16| matches!(status, StatusExpect::OneOf(list) if list.contains(&s));
        let extra = request(
            client,
            method,
            RequestPurpose::CacheKey,
            other,
            keep,
            deadline,
        )
        .await?;
        let problem = judge_cache_key(key, status, &extra);
        facts.extra_requests.push(extra.record);
        if problem.is_some() {
            return Ok(problem);
        }
    }
    if let Some(negative) = &expect.negative {
        return error_page(client, method, negative, url, deadline, facts).await;
    }
    Ok(None)
}

/// What the cache-key request says about the query string in the cache key.
fn judge_cache_key(
    key: QueryKey,
    status: &StatusExpect,
    extra: &Extra,
) -> Option<(FailureKind, String)> {
    let url = &extra.record.url;
    let response = match &extra.response {
        Ok(r) => r,
        Err((kind, message)) => {
            return Some((*kind, format!("the cache-key request failed: {message}")));
        }
    };
    if !status.accepts(response.status) {
        return Some((
            FailureKind::CacheKeyMismatch,
            format!(
                "`{url}` (the URL with another query string) answered {}, unlike the URL itself",
                response.status
            ),
        ));
    }
    let got = extra.record.cache;
    let (want, meaning) = match key {
        QueryKey::Ignored => (
            CacheStatus::Hit,
            "the query string should not be in the cache key",
        ),
        QueryKey::Included => (
            CacheStatus::Miss,
            "the query string should be in the cache key",
        ),
    };
    (got != want).then(|| {
        (
            FailureKind::CacheKeyMismatch,
            format!(
                "`{url}`, the URL just fetched with another query string, was a {}, expected a {}: {meaning}",
                got.as_label(),
                want.as_label()
            ),
        )
    })
}

/// `negative`: the error page's status and cache policy, then whether a second request hits.
async fn error_page(
    client: &Client,
    method: HttpMethod,
    negative: &NegativeExpect,
    url: &Url,
    deadline: Instant,
    facts: &mut HttpFacts,
) -> Result<Option<(FailureKind, String)>, ExecError> {
    let path = negative.path.clone().unwrap_or_else(|| random_sibling(url));
    let Ok(page) = url.join(&path) else {
        return Err(ExecError::Internal(format!(
            "negative path `{path}` does not join `{url}`"
        )));
    };
    let keep = |s: u16| negative.status.contains(&s);
    let mismatch = |message: String| -> Result<Option<(FailureKind, String)>, ExecError> {
        Ok(Some((FailureKind::NegativeCacheMismatch, message)))
    };
    let first = request(
        client,
        method,
        RequestPurpose::Negative,
        page.clone(),
        keep,
        deadline,
    )
    .await?;
    facts.extra_requests.push(first.record.clone());
    let response = match first.response {
        Ok(r) => r,
        Err((kind, message)) => {
            return Ok(Some((
                kind,
                format!("the error page request failed: {message}"),
            )));
        }
    };
    if !negative.status.contains(&response.status) {
        return mismatch(format!(
            "the error page `{page}` answered {}, expected {}",
            response.status,
            statuses(&negative.status)
        ));
    }
    if let Some(why) = judge_cache_control(&negative.cache_control, &response.headers) {
        return mismatch(format!(
            "the error page `{page}` ({}): {why}",
            response.status
        ));
    }
    let Some(cached) = negative.cached else {
        return Ok(None);
    };
    let second = request(
        client,
        method,
        RequestPurpose::NegativeRepeat,
        page.clone(),
        keep,
        deadline,
    )
    .await?;
    facts.extra_requests.push(second.record.clone());
    let response = match second.response {
        Ok(r) => r,
        Err((kind, message)) => {
            return Ok(Some((
                kind,
                format!("the second error page request failed: {message}"),
            )));
        }
    };
    if !negative.status.contains(&response.status) {
        return mismatch(format!(
            "the error page `{page}` answered {} the second time, expected {}",
            response.status,
            statuses(&negative.status)
        ));
    }
    let got = second.record.cache;
    if cached && got != CacheStatus::Hit {
        return mismatch(format!(
            "a second request for the error page `{page}` ({}) was a {}, expected a hit: the edge should cache it",
            response.status,
            got.as_label()
        ));
    }
    if !cached && got == CacheStatus::Hit {
        return mismatch(format!(
            "a second request for the error page `{page}` ({}) was a hit: the edge should not cache it",
            response.status
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HttpVersion, TlsVersion};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn bounds(min: Option<u64>, max: Option<u64>) -> Bounds {
        Bounds {
            min: min.map(Duration::from_secs),
            max: max.map(Duration::from_secs),
        }
    }

    #[test]
    fn directives_are_parsed_outside_quotes() {
        let d = Directives::parse(
            "Public, MAX-AGE=60 , no-cache=\"set-cookie, x-id\", s-maxage=\"120\",immutable",
        );
        assert_eq!(d.get("public"), Some(None));
        assert_eq!(d.get("max-age"), Some(Some("60")));
        assert_eq!(d.get("no-cache"), Some(Some("set-cookie, x-id")));
        assert_eq!(d.get("s-maxage"), Some(Some("120")));
        assert_eq!(d.get("immutable"), Some(None));
        assert_eq!(d.get("x-id\""), None);
        assert_eq!(d.get("private"), None);
    }

    #[test]
    fn cache_control_table() {
        let long = CacheControlExpect {
            max_age: Some(bounds(Some(3600), Some(30 * 86_400))),
            immutable: Some(true),
            no_store: Some(false),
            private: Some(false),
            ..CacheControlExpect::default()
        };
        let shared = CacheControlExpect {
            s_maxage: Some(bounds(None, Some(300))),
            ..CacheControlExpect::default()
        };
        let none = CacheControlExpect::default();
        type Row<'a> = (
            &'a CacheControlExpect,
            &'a [(&'a str, &'a str)],
            Option<&'a str>,
        );
        let table: &[Row<'_>] = &[
            (
                &long,
                &[("cache-control", "public, max-age=86400, immutable")],
                None,
            ),
            // Split over two fields, as a list header may be.
            (
                &long,
                &[
                    ("cache-control", "public, max-age=86400"),
                    ("cache-control", "immutable"),
                ],
                None,
            ),
            (&long, &[("cache-control", "max-age=3600, immutable")], None),
            (
                &long,
                &[("cache-control", "max-age=2592000, immutable")],
                None,
            ),
            (
                &long,
                &[("cache-control", "max-age=2592001, immutable")],
                Some(
                    "Cache-Control `max-age=2592001, immutable`: max-age is 30d 1s, expected between 1h and 30d",
                ),
            ),
            (
                &long,
                &[("cache-control", "max-age=60, immutable")],
                Some(
                    "Cache-Control `max-age=60, immutable`: max-age is 1m, expected between 1h and 30d",
                ),
            ),
            (
                &long,
                &[("cache-control", "max-age=86400")],
                Some("Cache-Control `max-age=86400` lacks `immutable`"),
            ),
            (
                &long,
                &[("cache-control", "immutable")],
                Some("Cache-Control `immutable` has no `max-age`"),
            ),
            (
                &long,
                &[("cache-control", "max-age=soon, immutable")],
                Some(
                    "Cache-Control `max-age=soon, immutable` has a `max-age` that is not a number of seconds",
                ),
            ),
            (
                &long,
                &[("cache-control", "max-age=86400, immutable, no-store")],
                Some(
                    "Cache-Control `max-age=86400, immutable, no-store` has `no-store`, which the check forbids",
                ),
            ),
            (
                &long,
                &[("cache-control", "private, max-age=86400, immutable")],
                Some(
                    "Cache-Control `private, max-age=86400, immutable` has `private`, which the check forbids",
                ),
            ),
            (
                &long,
                &[],
                Some("the response has no Cache-Control, so it has no `max-age`"),
            ),
            (
                &shared,
                &[("cache-control", "max-age=9999, s-maxage=300")],
                None,
            ),
            (
                &shared,
                &[("cache-control", "max-age=60, s-maxage=301")],
                Some(
                    "Cache-Control `max-age=60, s-maxage=301`: s-maxage is 5m 1s, expected at most 5m",
                ),
            ),
            (&none, &[], None),
        ];
        for (expect, h, want) in table {
            assert_eq!(
                judge_cache_control(expect, &headers(h)).as_deref(),
                *want,
                "{expect:?} {h:?}"
            );
        }
    }

    #[test]
    fn http_dates() {
        let t = http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("IMF-fixdate");
        assert_eq!(t.unix_timestamp(), 784_111_777);
        assert_eq!(http_date("0"), None);
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    #[test]
    fn age_vary_expires_etag_last_modified() {
        let now = http_date("Sun, 06 Dec 2026 07:00:00 GMT").expect("date");
        let date = ("date", "Sun, 06 Dec 2026 07:00:00 GMT");
        let in_a_day = ("expires", "Mon, 07 Dec 2026 07:00:00 GMT");
        let e = |f: &dyn Fn(&mut CdnExpect)| {
            let mut e = CdnExpect::default();
            f(&mut e);
            e
        };
        let age = e(&|e| e.age = Some(bounds(None, Some(3600))));
        let vary = e(&|e| e.vary = vec!["accept-encoding".into(), "origin".into()]);
        let expires = e(&|e| e.expires = Some(bounds(Some(3600), None)));
        let future = e(&|e| e.expires = Some(Bounds::default()));
        let validators = e(&|e| {
            e.etag = Some(true);
            e.last_modified = Some(false);
        });
        type Row<'a> = (
            &'a CdnExpect,
            &'a [(&'a str, &'a str)],
            Option<u64>,
            Option<&'a str>,
        );
        let table: &[Row<'_>] = &[
            (&age, &[], Some(60), None),
            (
                &age,
                &[],
                Some(3601),
                Some("Age is 1h 1s, expected at most 1h"),
            ),
            (
                &age,
                &[],
                None,
                Some("the response has no Age header (or not a number of seconds)"),
            ),
            (
                &vary,
                &[("vary", "Accept-Encoding"), ("vary", "Origin")],
                None,
                None,
            ),
            (
                &vary,
                &[("vary", "accept-encoding")],
                None,
                Some("Vary `accept-encoding` does not list `origin`"),
            ),
            (
                &vary,
                &[],
                None,
                Some("the response has no Vary header, expected one listing `accept-encoding`"),
            ),
            (&expires, &[date, in_a_day], None, None),
            (&expires, &[in_a_day], None, None),
            (
                &expires,
                &[date, ("expires", "Sun, 06 Dec 2026 07:30:00 GMT")],
                None,
                Some("Expires, ahead of the response's Date, is 30m, expected at least 1h"),
            ),
            (
                &future,
                &[date, ("expires", "Sun, 06 Dec 2026 07:00:01 GMT")],
                None,
                None,
            ),
            (
                &future,
                &[date, ("expires", "Sun, 06 Dec 2026 07:00:00 GMT")],
                None,
                Some(
                    "Expires `Sun, 06 Dec 2026 07:00:00 GMT` is not in the future of the response's Date",
                ),
            ),
            (
                &future,
                &[("expires", "Sat, 05 Dec 2026 07:00:00 GMT")],
                None,
                Some(
                    "Expires `Sat, 05 Dec 2026 07:00:00 GMT` is not in the future of the probe's clock",
                ),
            ),
            (
                &future,
                &[date, ("expires", "0")],
                None,
                Some("Expires `0` is not an HTTP date, so the response counts as already expired"),
            ),
            (
                &future,
                &[date],
                None,
                Some("the response has no Expires header"),
            ),
            (&validators, &[("etag", "\"abc\"")], None, None),
            (
                &validators,
                &[],
                None,
                Some("the response has no etag header"),
            ),
            (
                &validators,
                &[
                    ("etag", "\"abc\""),
                    ("last-modified", "Sun, 06 Dec 2026 07:00:00 GMT"),
                ],
                None,
                Some(
                    "the response has a last-modified header (`Sun, 06 Dec 2026 07:00:00 GMT`), which the check forbids",
                ),
            ),
        ];
        for (expect, h, age, want) in table {
            assert_eq!(
                judge_headers(expect, &headers(h), *age, now).as_deref(),
                *want,
                "{expect:?} {h:?} {age:?}"
            );
        }
    }

    #[test]
    fn a_random_error_page_sits_beside_the_url_with_its_extension() {
        let page = |u: &str| {
            let url = Url::parse(u).expect("url");
            let joined = url.join(&random_sibling(&url)).expect("join");
            let pattern = regex::Regex::new(r"vantage-negative-[0-9a-f]{16}").expect("regex");
            pattern.replace(joined.as_str(), "X").into_owned()
        };
        assert_eq!(
            page("https://s.example.com/img/logo.png?v=1"),
            "https://s.example.com/img/X.png"
        );
        assert_eq!(
            page("https://s.example.com/img/"),
            "https://s.example.com/img/X"
        );
        assert_eq!(
            page("https://s.example.com/js/app.min.js"),
            "https://s.example.com/js/X.js"
        );
        assert_eq!(
            page("https://s.example.com/api/v1.2/status"),
            "https://s.example.com/api/v1.2/X"
        );
        assert_eq!(page("https://s.example.com"), "https://s.example.com/X");
    }

    #[test]
    fn protocol() {
        let expect = CdnExpect {
            http_version: vec![HttpVersion::Http2],
            tls_version: vec![TlsVersion::Tls13],
            ..CdnExpect::default()
        };
        let tls = |p: &str| TlsFacts {
            protocol: Some(p.to_owned()),
            ..TlsFacts::default()
        };
        assert_eq!(
            judge_protocol(&expect, "HTTP/2", Some(&tls("TLSv1_3"))),
            None
        );
        assert_eq!(
            judge_protocol(&expect, "HTTP/1.1", Some(&tls("TLSv1_3"))).as_deref(),
            Some("the response came over HTTP/1.1, expected HTTP/2")
        );
        assert_eq!(
            judge_protocol(&expect, "HTTP/2", Some(&tls("TLSv1_2"))).as_deref(),
            Some("TLSv1_2 was negotiated, expected TLS 1.3")
        );
        assert_eq!(
            judge_protocol(&expect, "HTTP/2", None).as_deref(),
            Some("no TLS version was negotiated, expected TLS 1.3")
        );
        assert_eq!(
            judge_protocol(&CdnExpect::default(), "HTTP/1.0", None),
            None
        );
    }
}
