//! `kind = "cdn"` and `kind = "http"`: the keys of an HTTP check and their validation, and
//! `[[profile]]` tables, whose `expect` an HTTP check names with `profile = "…"`.
//!
//! An `expect` table, a check's or a profile's, is validated on its own into a
//! [`PartialExpect`], every key optional, so that a profile's errors are located in the
//! profile. A check's own `expect` then goes over its profile's key by key (as a check's
//! settings go over `[defaults]`): `cache_control` directive by directive, `headers` header by
//! header, every other key whole. Defaults are applied after the merge.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Ctx;
use crate::model::{
    Bounds, CacheControlExpect, CdnExpect, Encoding, FreshExpect, HttpCheck, HttpMethod,
    HttpVersion, JsonExpect, NegativeExpect, QueryKey, StatusExpect, TlsVersion, VendorHeader,
};
use crate::result::CacheStatus;

/// Validated profiles by id; `None` for a profile whose `expect` is invalid (already
/// reported, so a check naming it adds no error of its own).
pub(crate) type Profiles = HashMap<String, Option<PartialExpect>>;

/// The keys of a `kind = "cdn"` or `kind = "http"` check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpCheckConfig {
    /// The URL (`http` or `https`); its host is sent as Host and SNI.
    url: Spanned<String>,
    /// Connect to this vendor edge (`host`, `host:port`, `ip:port`) while keeping Host and SNI.
    edge: Option<Spanned<String>>,
    /// `GET` (default) or `HEAD`.
    method: Option<Spanned<String>>,
    /// Extra request headers.
    headers: Option<Spanned<BTreeMap<String, String>>>,
    /// Add a unique query parameter per run, so the edge must go to origin; default false.
    cache_bust: Option<bool>,
    /// Fetch the page's scripts, stylesheets and images too; default false.
    assets: Option<bool>,
    /// At most this many child assets (default 50).
    max_assets: Option<Spanned<i64>>,
    /// Redirects followed at most (default 5; 0 to follow none).
    max_redirects: Option<Spanned<i64>>,
    /// Body bytes read at most (default 10485760).
    max_body_bytes: Option<Spanned<i64>>,
    /// PEM file of CA certificates to trust besides the system roots; relative to the check file.
    ca: Option<Spanned<String>>,
    /// The DNS server that resolves host names (`"ip"` or `"ip:port"`); default the system's.
    resolver: Option<Spanned<String>>,
    /// The `id` of a `[[profile]]` whose `expect` lies under the check's own.
    profile: Option<Spanned<String>>,
    /// What the response must be.
    expect: Option<super::Table<HttpExpectConfig>>,
}

/// `expect = { status = 200, … }` of an HTTP check or a `[[profile]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpExpectConfig {
    /// A status or a list of them; default any 2xx.
    status: Option<Spanned<toml::Value>>,
    /// Response headers that must be present and match a regex.
    headers: Option<BTreeMap<String, Spanned<String>>>,
    /// The body must contain this text.
    body_contains: Option<String>,
    /// The body must match this regex.
    body_matches: Option<Spanned<String>>,
    /// `json = { pointer = "/status", equals = "ok" }`.
    json: Option<super::Table<JsonConfig>>,
    /// `fresh = { json_pointer = "/last_event_at", max_age = "5m" }`.
    fresh: Option<super::Table<FreshConfig>>,
    /// Accepted content encodings, also offered in Accept-Encoding (cdn default: br, gzip offered, any accepted).
    encoding: Option<Spanned<Vec<String>>>,
    /// `vendor_header = { name = "x-served-by", matches = "^cache-" }`.
    vendor_header: Option<super::Table<VendorHeaderConfig>>,
    /// `cache_control = { max_age = { min = "1h" }, immutable = true, … }`.
    cache_control: Option<super::Table<CacheControlConfig>>,
    /// `age = { max = "1h" }`: `Age` present, within the bounds.
    age: Option<super::Table<BoundsConfig>>,
    /// `vary = ["accept-encoding"]`: header names `Vary` must list.
    vary: Option<Spanned<Vec<String>>>,
    /// `expires = { min = "1d" }`: `Expires` present and ahead of `Date`, within the bounds.
    expires: Option<super::Table<BoundsConfig>>,
    /// `ETag` present (`true`) or absent (`false`).
    etag: Option<bool>,
    /// `Last-Modified` present (`true`) or absent (`false`).
    last_modified: Option<bool>,
    /// `"1.1"`, `"2"`, or a list of them.
    http_version: Option<Spanned<toml::Value>>,
    /// `"1.2"`, `"1.3"`, or a list of them.
    tls_version: Option<Spanned<toml::Value>>,
    /// Cache status after a warm-up request: `"hit"`, or a list.
    cache: Option<Spanned<toml::Value>>,
    /// `cache_key = { query = "ignored" }` or `"included"`.
    cache_key: Option<super::Table<CacheKeyConfig>>,
    /// `negative = { status = 404, cache_control = { … }, cached = true }`.
    negative: Option<super::Table<NegativeConfig>>,
}

/// `cache_control = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheControlConfig {
    /// `max-age` present, within the bounds.
    max_age: Option<super::Table<BoundsConfig>>,
    /// `s-maxage` present, within the bounds.
    s_maxage: Option<super::Table<BoundsConfig>>,
    /// `no-store` present or absent.
    no_store: Option<bool>,
    /// `no-cache` present or absent.
    no_cache: Option<bool>,
    /// `private` present or absent.
    private: Option<bool>,
    /// `public` present or absent.
    public: Option<bool>,
    /// `immutable` present or absent.
    immutable: Option<bool>,
    /// `must-revalidate` present or absent.
    must_revalidate: Option<bool>,
}

/// `{ min = "1h", max = "30d" }`, either optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BoundsConfig {
    /// The least duration accepted.
    min: Option<Spanned<String>>,
    /// The greatest duration accepted.
    max: Option<Spanned<String>>,
}

/// `cache_key = { query = "ignored" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheKeyConfig {
    /// `ignored` or `included`.
    query: Spanned<String>,
}

/// `negative = { … }`: an error page of the same origin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NegativeConfig {
    /// Path (and query) on the check URL's origin; default: a new random name each run,
    /// beside the URL's last segment and with its extension.
    path: Option<Spanned<String>>,
    /// Its status, or a list; default 404.
    status: Option<Spanned<toml::Value>>,
    /// Its `Cache-Control`.
    cache_control: Option<super::Table<CacheControlConfig>>,
    /// A second request must be a hit (`true`) or must not (`false`).
    cached: Option<bool>,
}

/// A JSON pointer assertion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonConfig {
    /// RFC 6901 pointer.
    pointer: Spanned<String>,
    /// Value the pointer must hold; it must merely exist when absent.
    equals: Option<toml::Value>,
}

/// A freshness assertion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreshConfig {
    /// RFC 6901 pointer to an RFC 3339 timestamp or Unix seconds.
    json_pointer: Spanned<String>,
    /// Oldest acceptable age.
    max_age: Spanned<String>,
}

/// The header naming the vendor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorHeaderConfig {
    /// Header name.
    name: Spanned<String>,
    /// Regex its value must match; default: any value.
    matches: Option<Spanned<String>>,
}

pub(crate) fn validate(
    ctx: &mut Ctx<'_>,
    raw: &HttpCheckConfig,
    cdn: bool,
    profiles: &Profiles,
) -> Option<HttpCheck> {
    let mut ok = true;
    let url = match url::Url::parse(raw.url.get_ref()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
        Ok(u) => {
            ctx.error(raw.url.span(), format!("url must be an http or https URL with a host, e.g. `url = \"https://static.example.com/site.css\"`; got scheme `{}`", u.scheme()));
            None
        }
        Err(e) => {
            ctx.error(raw.url.span(), format!("url must be an absolute URL, e.g. `url = \"https://static.example.com/site.css\"`; `{:?}` is not: {e}", raw.url.get_ref()));
            None
        }
    };
    let default_port = url.as_ref().and_then(|u| u.port_or_known_default());
    let edge = raw.edge.as_ref().and_then(|e| {
        let hp = ctx.host_port(
            e,
            "edge",
            default_port.or(Some(443)),
            "\"example.edge.fastcdn.net\"",
        );
        ok &= hp.is_some();
        hp
    });
    let method = match raw
        .method
        .as_ref()
        .map(|m| (m, m.get_ref().to_ascii_uppercase()))
    {
        None => HttpMethod::Get,
        Some((_, m)) if m == "GET" => HttpMethod::Get,
        Some((_, m)) if m == "HEAD" => HttpMethod::Head,
        Some((m, _)) => {
            ctx.error(
                m.span(),
                format!(
                    "method must be `GET` or `HEAD`, e.g. `method = \"HEAD\"`; got `{:?}`",
                    m.get_ref()
                ),
            );
            ok = false;
            HttpMethod::Get
        }
    };
    let mut headers = Vec::new();
    if let Some(h) = &raw.headers {
        for (name, value) in h.get_ref() {
            match (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                (Ok(n), Ok(v)) => headers.push((n, v)),
                _ => {
                    ctx.error(h.span(), format!("headers entry `{name:?} = {value:?}` is not a valid HTTP header, e.g. `headers = {{ \"user-agent\" = \"vantage\" }}`"));
                    ok = false;
                }
            }
        }
    }
    let max_assets = raw
        .max_assets
        .as_ref()
        .map(|v| ctx.integer(v, "max_assets", 1..=500, "50"));
    let max_redirects = raw
        .max_redirects
        .as_ref()
        .map(|v| ctx.integer(v, "max_redirects", 0..=20, "5"));
    let max_body = raw
        .max_body_bytes
        .as_ref()
        .map(|v| ctx.integer(v, "max_body_bytes", 1024..=1_073_741_824, "1048576"));
    ok &= ![
        max_assets.is_some_and(|v| v.is_none()),
        max_redirects.is_some_and(|v| v.is_none()),
        max_body.is_some_and(|v| v.is_none()),
    ]
    .contains(&true);
    let ca_file = raw.ca.as_ref().map(|c| ctx.path(c.get_ref()));
    let resolver = super::resolver(ctx, raw.resolver.as_ref());
    ok &= resolver.is_some();

    let own = match &raw.expect {
        Some(e) => validate_expect(ctx, e),
        None => Some(PartialExpect::default()),
    };
    let base = match &raw.profile {
        None => Some(PartialExpect::default()),
        Some(p) => match profiles.get(p.get_ref()) {
            Some(expect) => expect.clone(),
            None => {
                let mut known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                known.sort_unstable();
                let hint = if known.is_empty() {
                    "no `[[profile]]` is defined; add one, e.g. `[[profile]]` with `id = \"static-image\"` and `expect = { … }`".to_owned()
                } else {
                    let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                    format!("known profiles: {}", known.join(", "))
                };
                ctx.error(
                    p.span(),
                    format!(
                        "check names profile `{}`, which no `[[profile]]` defines; {hint}",
                        p.get_ref()
                    ),
                );
                None
            }
        },
    };
    let e = own?.over(base?);
    if !e.tls_version.is_empty()
        && let Some(u) = url.as_ref().filter(|u| u.scheme() != "https")
    {
        let from = match &raw.profile {
            Some(p) if raw.expect.as_ref().is_none_or(|x| x.tls_version.is_none()) => {
                format!(" (from profile `{}`)", p.get_ref())
            }
            _ => String::new(),
        };
        ctx.error(raw.url.span(), format!("expect.tls_version{from} needs an https url, since a plain http request negotiates no TLS; got `{u}`"));
        ok = false;
    }
    if !ok {
        return None;
    }
    let cdn_expect = CdnExpect {
        cache_control: e.cache_control,
        age: e.age,
        vary: e.vary.unwrap_or_default(),
        expires: e.expires,
        etag: e.etag,
        last_modified: e.last_modified,
        http_version: e.http_version.unwrap_or_default(),
        tls_version: e.tls_version,
        cache: e.cache.unwrap_or_default(),
        cache_key: e.cache_key,
        negative: e.negative,
    };
    Some(HttpCheck {
        cdn,
        url: url?,
        edge,
        method,
        headers,
        cache_bust: raw.cache_bust.unwrap_or(false),
        assets: raw.assets.unwrap_or(false),
        max_assets: max_assets.flatten().unwrap_or(50) as usize,
        max_redirects: max_redirects.flatten().unwrap_or(5),
        max_body_bytes: u64::from(max_body.flatten().unwrap_or(10 * 1024 * 1024)),
        resolver: resolver.flatten(),
        ca_file,
        ca_cache: crate::model::CaCache::default(),
        status: e.status.unwrap_or(StatusExpect::Success),
        header_matches: e.headers,
        body_contains: e.body_contains,
        body_matches: e.body_matches,
        json: e.json,
        fresh: e.fresh,
        encoding: e.encoding.unwrap_or_default(),
        vendor_header: e.vendor_header,
        profile: raw.profile.as_ref().map(|p| p.get_ref().clone()),
        cdn_expect: (!cdn_expect.is_empty()).then(|| Box::new(cdn_expect)),
    })
}

/// A validated `expect` table, every key optional: a check's own, or a profile's.
#[derive(Clone, Debug, Default)]
pub(crate) struct PartialExpect {
    status: Option<StatusExpect>,
    headers: Vec<(http::HeaderName, regex::Regex)>,
    body_contains: Option<String>,
    body_matches: Option<regex::Regex>,
    json: Option<JsonExpect>,
    fresh: Option<FreshExpect>,
    encoding: Option<Vec<Encoding>>,
    vendor_header: Option<VendorHeader>,
    cache_control: CacheControlExpect,
    age: Option<Bounds>,
    vary: Option<Vec<String>>,
    expires: Option<Bounds>,
    etag: Option<bool>,
    last_modified: Option<bool>,
    http_version: Option<Vec<HttpVersion>>,
    tls_version: Vec<TlsVersion>,
    cache: Option<Vec<CacheStatus>>,
    cache_key: Option<QueryKey>,
    negative: Option<NegativeExpect>,
}

impl PartialExpect {
    /// This expect over `base` (a profile's): key by key, `cache_control` directive by
    /// directive and `headers` header by header.
    fn over(self, base: PartialExpect) -> PartialExpect {
        let mut headers: Vec<(http::HeaderName, regex::Regex)> = base
            .headers
            .into_iter()
            .filter(|(name, _)| !self.headers.iter().any(|(own, _)| own == name))
            .collect();
        headers.extend(self.headers);
        PartialExpect {
            status: self.status.or(base.status),
            headers,
            body_contains: self.body_contains.or(base.body_contains),
            body_matches: self.body_matches.or(base.body_matches),
            json: self.json.or(base.json),
            fresh: self.fresh.or(base.fresh),
            encoding: self.encoding.or(base.encoding),
            vendor_header: self.vendor_header.or(base.vendor_header),
            cache_control: self.cache_control.over(&base.cache_control),
            age: self.age.or(base.age),
            vary: self.vary.or(base.vary),
            expires: self.expires.or(base.expires),
            etag: self.etag.or(base.etag),
            last_modified: self.last_modified.or(base.last_modified),
            http_version: self.http_version.or(base.http_version),
            tls_version: if self.tls_version.is_empty() {
                base.tls_version
            } else {
                self.tls_version
            },
            cache: self.cache.or(base.cache),
            cache_key: self.cache_key.or(base.cache_key),
            negative: self.negative.or(base.negative),
        }
    }
}

/// Validates an `expect` table on its own; `None` when any of it is invalid (reported).
pub(crate) fn validate_expect(ctx: &mut Ctx<'_>, e: &HttpExpectConfig) -> Option<PartialExpect> {
    let mut ok = true;
    let status = e.status.as_ref().map(|v| status(ctx, v));
    ok &= !status.as_ref().is_some_and(Option::is_none);
    let mut header_matches = Vec::new();
    for (name, re) in e.headers.iter().flatten() {
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            ctx.regex(re, "expect.headers value"),
        ) {
            (Ok(n), Some(r)) => header_matches.push((n, r)),
            (Err(_), _) => {
                ctx.error(re.span(), format!("`{name:?}` is not a valid header name, e.g. `headers = {{ \"x-cache\" = \"^HIT\" }}`"));
                ok = false;
            }
            (_, None) => ok = false,
        }
    }
    let body_matches = e
        .body_matches
        .as_ref()
        .map(|r| ctx.regex(r, "body_matches"));
    ok &= !body_matches.as_ref().is_some_and(Option::is_none);
    let json = e.json.as_ref().map(|j| {
        let pointer = pointer(ctx, &j.pointer, "pointer")?;
        let equals = match &j.equals {
            None => None,
            Some(v) => match serde_json::to_value(v) {
                Ok(v) => Some(v),
                Err(err) => {
                    ctx.error(
                        j.pointer.span(),
                        format!("json equals value cannot be compared with JSON: {err}"),
                    );
                    return None;
                }
            },
        };
        Some(JsonExpect { pointer, equals })
    });
    ok &= !json.as_ref().is_some_and(Option::is_none);
    let fresh = e.fresh.as_ref().map(|f| {
        let p = pointer(ctx, &f.json_pointer, "json_pointer");
        let age = ctx.duration(&f.max_age, "max_age", Duration::from_secs(1), "\"5m\"");
        Some(FreshExpect {
            pointer: p?,
            max_age: age?,
        })
    });
    ok &= !fresh.as_ref().is_some_and(Option::is_none);
    let encoding = e.encoding.as_ref().map(|list| {
        let mut out = Vec::new();
        for enc in list.get_ref() {
            let parsed = match enc.trim().to_ascii_lowercase().as_str() {
                "br" => Some(Encoding::Br),
                "gzip" => Some(Encoding::Gzip),
                "zstd" => Some(Encoding::Zstd),
                "deflate" => Some(Encoding::Deflate),
                "identity" => Some(Encoding::Identity),
                _ => None,
            };
            match parsed {
                Some(p) => out.push(p),
                None => {
                    ctx.error(list.span(), format!("encoding `{enc:?}` is not one of br, gzip, zstd, deflate, identity, e.g. `encoding = [\"br\", \"gzip\"]`"));
                    return None;
                }
            }
        }
        Some(out)
    });
    ok &= !encoding.as_ref().is_some_and(Option::is_none);
    let vendor_header = e.vendor_header.as_ref().map(|v| {
        let name = http::HeaderName::from_bytes(v.name.get_ref().as_bytes()).ok();
        if name.is_none() {
            ctx.error(v.name.span(), format!("vendor_header name must be an HTTP header name, e.g. `name = \"x-served-by\"`; got `{:?}`", v.name.get_ref()));
        }
        let matches = match &v.matches {
            Some(m) => ctx.regex(m, "vendor_header matches"),
            None => regex::Regex::new("").ok(),
        };
        Some(VendorHeader { name: name?, matches: matches? })
    });
    ok &= !vendor_header.as_ref().is_some_and(Option::is_none);

    let cache_control = e
        .cache_control
        .as_ref()
        .map(|c| cache_control(ctx, c))
        .unwrap_or(Some(CacheControlExpect::default()));
    ok &= cache_control.is_some();
    let age = e.age.as_ref().map(|b| bounds(ctx, b, "age"));
    ok &= !age.as_ref().is_some_and(Option::is_none);
    let expires = e.expires.as_ref().map(|b| bounds(ctx, b, "expires"));
    ok &= !expires.as_ref().is_some_and(Option::is_none);
    let vary = e.vary.as_ref().map(|list| {
        let mut names = Vec::new();
        for name in list.get_ref() {
            match http::HeaderName::from_bytes(name.trim().as_bytes()) {
                Ok(n) => names.push(n.as_str().to_owned()),
                Err(_) => {
                    ctx.error(list.span(), format!("vary must list header names, e.g. `vary = [\"accept-encoding\"]`; `{name:?}` is not one"));
                    return None;
                }
            }
        }
        Some(names)
    });
    ok &= !vary.as_ref().is_some_and(Option::is_none);
    let http_version = e.http_version.as_ref().map(|v| {
        one_or_list(
            ctx,
            v,
            "http_version",
            &HttpVersion::ALL,
            HttpVersion::as_label,
            "\"2\"",
        )
    });
    ok &= !http_version.as_ref().is_some_and(Option::is_none);
    let tls_version = e.tls_version.as_ref().map(|v| {
        one_or_list(
            ctx,
            v,
            "tls_version",
            &TlsVersion::ALL,
            TlsVersion::as_label,
            "\"1.3\"",
        )
    });
    ok &= !tls_version.as_ref().is_some_and(Option::is_none);
    const STATUSES: [CacheStatus; 4] = [
        CacheStatus::Hit,
        CacheStatus::Miss,
        CacheStatus::Expired,
        CacheStatus::Bypass,
    ];
    let cache = e
        .cache
        .as_ref()
        .map(|v| one_or_list(ctx, v, "cache", &STATUSES, CacheStatus::as_label, "\"hit\""));
    ok &= !cache.as_ref().is_some_and(Option::is_none);
    let cache_key = e.cache_key.as_ref().map(|k| {
        match k.query.get_ref().as_str() {
            "ignored" => Some(QueryKey::Ignored),
            "included" => Some(QueryKey::Included),
            other => {
                ctx.error(k.query.span(), format!("cache_key query must be `ignored` or `included`, e.g. `cache_key = {{ query = \"ignored\" }}`; got `{other:?}`"));
                None
            }
        }
    });
    ok &= !cache_key.as_ref().is_some_and(Option::is_none);
    let negative = e.negative.as_ref().map(|n| negative(ctx, n));
    ok &= !negative.as_ref().is_some_and(Option::is_none);
    if !ok {
        return None;
    }
    Some(PartialExpect {
        status: status.flatten(),
        headers: header_matches,
        body_contains: e.body_contains.clone(),
        body_matches: body_matches.flatten(),
        json: json.flatten(),
        fresh: fresh.flatten(),
        encoding: encoding.flatten(),
        vendor_header: vendor_header.flatten(),
        cache_control: cache_control.unwrap_or_default(),
        age: age.flatten(),
        vary: vary.flatten(),
        expires: expires.flatten(),
        etag: e.etag,
        last_modified: e.last_modified,
        http_version: http_version.flatten(),
        tls_version: tls_version.flatten().unwrap_or_default(),
        cache: cache.flatten(),
        cache_key: cache_key.flatten(),
        negative: negative.flatten(),
    })
}

fn cache_control(ctx: &mut Ctx<'_>, c: &CacheControlConfig) -> Option<CacheControlExpect> {
    let max_age = c.max_age.as_ref().map(|b| bounds(ctx, b, "max_age"));
    let s_maxage = c.s_maxage.as_ref().map(|b| bounds(ctx, b, "s_maxage"));
    if max_age.as_ref().is_some_and(Option::is_none)
        || s_maxage.as_ref().is_some_and(Option::is_none)
    {
        return None;
    }
    Some(CacheControlExpect {
        max_age: max_age.flatten(),
        s_maxage: s_maxage.flatten(),
        no_store: c.no_store,
        no_cache: c.no_cache,
        private: c.private,
        public: c.public,
        immutable: c.immutable,
        must_revalidate: c.must_revalidate,
    })
}

/// `{ min = "1h", max = "30d" }` of `key`: each a duration, and min at most max.
fn bounds(ctx: &mut Ctx<'_>, b: &BoundsConfig, key: &str) -> Option<Bounds> {
    let zero = Duration::ZERO;
    let min = b
        .min
        .as_ref()
        .map(|v| ctx.duration(v, "min", zero, "\"1h\""));
    let max = b
        .max
        .as_ref()
        .map(|v| ctx.duration(v, "max", zero, "\"30d\""));
    if min.as_ref().is_some_and(Option::is_none) || max.as_ref().is_some_and(Option::is_none) {
        return None;
    }
    let (min, max) = (min.flatten(), max.flatten());
    if let (Some(lo), Some(hi), Some(at), Some(from)) = (min, max, b.max.as_ref(), b.min.as_ref())
        && lo > hi
    {
        ctx.error(
            at.span(),
            format!(
                "{key} max ({:?}) must not be below its min ({:?}), e.g. `{key} = {{ min = \"1h\", max = \"30d\" }}`",
                at.get_ref(),
                from.get_ref()
            ),
        );
        return None;
    }
    Some(Bounds { min, max })
}

fn negative(ctx: &mut Ctx<'_>, n: &NegativeConfig) -> Option<NegativeExpect> {
    let path = match &n.path {
        None => Some(None),
        Some(p) if p.get_ref().starts_with('/') && !p.get_ref().contains('#') => {
            Some(Some(p.get_ref().clone()))
        }
        Some(p) => {
            ctx.error(p.span(), format!("negative path must be a path on the check's origin starting with `/`, without a fragment, e.g. `path = \"/no-such-page\"`; got `{:?}`", p.get_ref()));
            None
        }
    };
    let status = match &n.status {
        None => Some(vec![404]),
        Some(v) => match status(ctx, v) {
            Some(StatusExpect::OneOf(list)) => Some(list),
            _ => None,
        },
    };
    let cache_control = match &n.cache_control {
        None => Some(CacheControlExpect::default()),
        Some(c) => cache_control(ctx, c),
    };
    Some(NegativeExpect {
        path: path?,
        status: status?,
        cache_control: cache_control?,
        cached: n.cached,
    })
}

/// A value of `allowed` (by its label), or a non-empty list of them.
fn one_or_list<T: Copy>(
    ctx: &mut Ctx<'_>,
    v: &Spanned<toml::Value>,
    key: &str,
    allowed: &[T],
    label: fn(T) -> &'static str,
    example: &str,
) -> Option<Vec<T>> {
    let one = |x: &toml::Value| {
        x.as_str()
            .and_then(|s| allowed.iter().copied().find(|a| label(*a) == s.trim()))
    };
    let list: Option<Vec<T>> = match v.get_ref() {
        toml::Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        single => one(single).map(|t| vec![t]),
    };
    if list.is_none() {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| format!("`\"{}\"`", label(*a)))
            .collect();
        ctx.error(
            v.span(),
            format!(
                "{key} must be one of {} or a list of them, e.g. `{key} = {example}`; got `{}`",
                names.join(", "),
                v.get_ref()
            ),
        );
    }
    list
}

fn status(ctx: &mut Ctx<'_>, v: &Spanned<toml::Value>) -> Option<StatusExpect> {
    let one = |x: &toml::Value| {
        x.as_integer()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (100..=599).contains(n))
    };
    let list: Option<Vec<u16>> = match v.get_ref() {
        toml::Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        single => one(single).map(|s| vec![s]),
    };
    if list.is_none() {
        ctx.error(v.span(), format!("status must be an HTTP status from 100 to 599 or a list of them, e.g. `status = 200` or `status = [200, 304]`; got `{}`", v.get_ref()));
    }
    list.map(StatusExpect::OneOf)
}

fn pointer(ctx: &mut Ctx<'_>, v: &Spanned<String>, key: &str) -> Option<String> {
    let p = v.get_ref();
    if p.is_empty() || p.starts_with('/') {
        Some(p.clone())
    } else {
        ctx.error(v.span(), format!("{key} must be a JSON pointer (RFC 6901) starting with `/`, e.g. `{key} = \"/last_event_at\"`; got `{p:?}`"));
        None
    }
}
