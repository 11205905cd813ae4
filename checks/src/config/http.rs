//! `kind = "cdn"` and `kind = "http"`: the keys of an HTTP check and their validation.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::Ctx;
use crate::model::{
    Encoding, FreshExpect, HttpCheck, HttpMethod, JsonExpect, StatusExpect, VendorHeader,
};

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
    /// What the response must be.
    expect: Option<super::Table<HttpExpectConfig>>,
}

/// `expect = { status = 200, … }` of an HTTP check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpExpectConfig {
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

pub(crate) fn validate(ctx: &mut Ctx<'_>, raw: &HttpCheckConfig, cdn: bool) -> Option<HttpCheck> {
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

    let e = raw.expect.as_ref();
    let status = match e.and_then(|e| e.status.as_ref()) {
        None => Some(StatusExpect::Success),
        Some(v) => status(ctx, v),
    };
    let mut header_matches = Vec::new();
    for (name, re) in e.and_then(|e| e.headers.as_ref()).into_iter().flatten() {
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
        .and_then(|e| e.body_matches.as_ref())
        .map(|r| ctx.regex(r, "body_matches"));
    ok &= !body_matches.as_ref().is_some_and(Option::is_none);
    let json = e.and_then(|e| e.json.as_ref()).map(|j| {
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
    let fresh = e.and_then(|e| e.fresh.as_ref()).map(|f| {
        let p = pointer(ctx, &f.json_pointer, "json_pointer");
        let age = ctx.duration(
            &f.max_age,
            "max_age",
            std::time::Duration::from_secs(1),
            "\"5m\"",
        );
        Some(FreshExpect {
            pointer: p?,
            max_age: age?,
        })
    });
    ok &= !fresh.as_ref().is_some_and(Option::is_none);
    let mut encoding = Vec::new();
    if let Some(list) = e.and_then(|e| e.encoding.as_ref()) {
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
                Some(p) => encoding.push(p),
                None => {
                    ctx.error(list.span(), format!("encoding `{enc:?}` is not one of br, gzip, zstd, deflate, identity, e.g. `encoding = [\"br\", \"gzip\"]`"));
                    ok = false;
                }
            }
        }
    }
    let vendor_header = e.and_then(|e| e.vendor_header.as_ref()).map(|v| {
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
    let resolver = super::resolver(ctx, raw.resolver.as_ref());
    ok &= resolver.is_some();
    if !ok {
        return None;
    }
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
        status: status?,
        header_matches,
        body_contains: e.and_then(|e| e.body_contains.clone()),
        body_matches: body_matches.flatten(),
        json: json.flatten(),
        fresh: fresh.flatten(),
        encoding,
        vendor_header: vendor_header.flatten(),
    })
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
