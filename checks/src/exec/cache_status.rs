//! Normalises CDN cache headers into one [`CacheStatus`], the edge PoP and the CDN that served
//! the response.
//!
//! Each CDN speaks its own dialect: Cloudflare `cf-cache-status: HIT` and `cf-ray: …-FRA`,
//! CloudFront `x-cache: Hit from cloudfront` and `x-amz-cf-pop: FRA56-P1`, Fastly
//! `x-cache: MISS, HIT` and `x-served-by: cache-fra-1234-FRA`, Akamai
//! `x-cache: TCP_HIT from …`, nginx (by convention) `x-cache-status: HIT`, Bunny
//! `cdn-cache: HIT`. This module is pure: headers in, [`CacheInfo`] out.

use http::HeaderMap;

use crate::result::CacheStatus;

/// What the cache headers of one response say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheInfo {
    /// The normalised cache status.
    pub status: CacheStatus,
    /// The edge PoP, when a header names it.
    pub pop: Option<String>,
    /// The CDN that served the response (`fastly`, `cloudflare`, `cloudfront`, `akamai`,
    /// `bunny`, `varnish`, `nginx`), when its headers tell.
    pub served_by: Option<String>,
    /// The `Age` header, in seconds.
    pub age: Option<u64>,
}

/// Reads the cache status, PoP, vendor and age from response headers.
pub fn normalise(headers: &HeaderMap) -> CacheInfo {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let age = get("age").and_then(|a| a.parse::<u64>().ok());
    // The most specific header wins: a vendor's own before the shared conventions.
    let status = ["cf-cache-status", "x-cache-status", "x-cache", "cdn-cache"]
        .iter()
        .find_map(|name| get(name).and_then(status_of_list))
        // An object older than zero seconds came out of a cache, whatever else is missing.
        .or_else(|| age.filter(|&a| a > 0).map(|_| CacheStatus::Hit))
        .unwrap_or_default();
    let pop = get("cf-ray")
        .and_then(cf_ray_pop)
        .or_else(|| get("x-amz-cf-pop").map(|p| first_item(p).to_owned()))
        .or_else(|| get("x-served-by").and_then(fastly_pop));
    CacheInfo {
        status,
        pop,
        served_by: vendor_of(&get).map(str::to_owned),
        age,
    }
}

/// The status told by a header that may list several caches, outermost last (Fastly with
/// shielding says `MISS, HIT`: the shield missed, the edge hit).
///
/// A hit in any layer means the origin was not asked, and [`CacheStatus::Miss`] promises
/// that it was, so any hit counts as a hit. Otherwise the edge (last) entry tells.
fn status_of_list(value: &str) -> Option<CacheStatus> {
    let all: Vec<CacheStatus> = value.split(',').filter_map(status_of).collect();
    if all.contains(&CacheStatus::Hit) {
        return Some(CacheStatus::Hit);
    }
    all.last().copied()
}

/// The status told by one token: `HIT`, `TCP_MISS from …`, `RefreshHit from cloudfront`.
fn status_of(token: &str) -> Option<CacheStatus> {
    let word = token
        .split_whitespace()
        .next()?
        .trim_matches(|c: char| c == '"' || c == ';')
        .to_ascii_uppercase();
    let word = word.strip_prefix("TCP_").unwrap_or(&word);
    let status = match word {
        // Served, but only after revalidating or refreshing an old entry, or served stale.
        w if w.contains("REFRESH") => CacheStatus::Expired,
        "EXPIRED" | "STALE" | "UPDATING" | "REVALIDATED" | "HIT-STALE" => CacheStatus::Expired,
        w if w.contains("HIT") => CacheStatus::Hit,
        w if w.contains("MISS") => CacheStatus::Miss,
        "BYPASS" | "DYNAMIC" | "PASS" | "NO-CACHE" | "NOCACHE" | "UNCACHEABLE" => {
            CacheStatus::Bypass
        }
        _ => return None,
    };
    Some(status)
}

/// Cloudflare's `cf-ray: 8a1b2c3d4e5f6789-FRA` ends with the PoP's airport code.
fn cf_ray_pop(ray: &str) -> Option<String> {
    let (_, pop) = ray.rsplit_once('-')?;
    is_pop_code(pop).then(|| pop.to_owned())
}

/// Fastly's `x-served-by: cache-fra-1234-FRA` (with shielding, a list ending with the edge).
fn fastly_pop(served_by: &str) -> Option<String> {
    let edge = served_by.rsplit(',').next()?.trim();
    if !edge.starts_with("cache-") {
        return None;
    }
    let (_, pop) = edge.rsplit_once('-')?;
    is_pop_code(pop).then(|| pop.to_owned())
}

fn is_pop_code(s: &str) -> bool {
    (3..=5).contains(&s.len()) && s.chars().all(|c| c.is_ascii_uppercase())
}

fn first_item(value: &str) -> &str {
    value.split(',').next().unwrap_or(value).trim()
}

/// Which CDN the headers name. Vendor-specific headers decide first; `Server` and `Via` come
/// later because CDNs such as CloudFront and Fastly pass the origin's `Server` through.
fn vendor_of<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Option<&'static str> {
    let has = |name: &str| get(name).is_some();
    let lower = |name: &str| get(name).map(str::to_ascii_lowercase).unwrap_or_default();
    if has("cf-ray") || has("cf-cache-status") {
        return Some("cloudflare");
    }
    if has("x-amz-cf-pop") || has("x-amz-cf-id") || lower("via").contains("cloudfront") {
        return Some("cloudfront");
    }
    let x_cache = lower("x-cache");
    if has("akamai-grn")
        || has("x-akamai-request-id")
        || x_cache.contains("akamai")
        || lower("server").contains("akamaighost")
    {
        return Some("akamai");
    }
    // Fastly always adds x-served-by `cache-…` together with x-cache and x-timer.
    let fastly_served = get("x-served-by").is_some_and(|v| first_item(v).starts_with("cache-"));
    if has("x-fastly-request-id")
        || (fastly_served && (has("x-cache") || has("x-timer") || has("x-cache-hits")))
    {
        return Some("fastly");
    }
    let server = lower("server");
    if server.contains("bunnycdn") || has("cdn-pullzone") {
        return Some("bunny");
    }
    if server == "cloudflare" {
        return Some("cloudflare");
    }
    if has("x-varnish") || lower("via").contains("varnish") || server.contains("varnish") {
        return Some("varnish");
    }
    if server.starts_with("nginx") || has("x-cache-status") {
        return Some("nginx");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pairs: &[(&str, &str)]) -> CacheInfo {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                http::HeaderValue::from_str(value).expect("header value"),
            );
        }
        normalise(&headers)
    }

    #[test]
    fn status_table() {
        use CacheStatus::*;
        let table: &[(&[(&str, &str)], CacheStatus)] = &[
            (&[("x-cache", "HIT")], Hit),
            (&[("x-cache", "MISS")], Miss),
            (&[("x-cache", "EXPIRED")], Expired),
            (&[("x-cache", "Hit from cloudfront")], Hit),
            (&[("x-cache", "Miss from cloudfront")], Miss),
            (&[("x-cache", "RefreshHit from cloudfront")], Expired),
            (&[("x-cache", "Error from cloudfront")], Unknown),
            (
                &[(
                    "x-cache",
                    "TCP_HIT from a1-2-3-4.deploy.akamaitechnologies.com",
                )],
                Hit,
            ),
            (
                &[(
                    "x-cache",
                    "TCP_MEM_HIT from a1.deploy.akamaitechnologies.com",
                )],
                Hit,
            ),
            (
                &[("x-cache", "TCP_MISS from a1.deploy.akamaitechnologies.com")],
                Miss,
            ),
            (
                &[(
                    "x-cache",
                    "TCP_REFRESH_MISS from a1.deploy.akamaitechnologies.com",
                )],
                Expired,
            ),
            // Fastly with shielding: any layer's hit kept the request from the origin.
            (&[("x-cache", "HIT, MISS")], Hit),
            (&[("x-cache", "MISS, HIT")], Hit),
            (&[("x-cache", "MISS, MISS")], Miss),
            (&[("x-cache", "MISS, PASS")], Bypass),
            (&[("cf-cache-status", "HIT")], Hit),
            (&[("cf-cache-status", "MISS")], Miss),
            (&[("cf-cache-status", "EXPIRED")], Expired),
            (&[("cf-cache-status", "STALE")], Expired),
            (&[("cf-cache-status", "REVALIDATED")], Expired),
            (&[("cf-cache-status", "UPDATING")], Expired),
            (&[("cf-cache-status", "BYPASS")], Bypass),
            (&[("cf-cache-status", "DYNAMIC")], Bypass),
            (&[("x-cache-status", "HIT")], Hit),
            (&[("x-cache-status", "MISS")], Miss),
            (&[("x-cache-status", "BYPASS")], Bypass),
            (&[("x-cache-status", "STALE")], Expired),
            (&[("cdn-cache", "HIT")], Hit),
            (&[("cdn-cache", "MISS")], Miss),
            // The vendor's own header beats the shared convention.
            (&[("x-cache", "MISS"), ("cf-cache-status", "HIT")], Hit),
            (&[("x-cache", "HIT"), ("x-cache-status", "MISS")], Miss),
            // Age alone says a cache served it; zero says nothing.
            (&[("age", "42")], Hit),
            (&[("age", "0")], Unknown),
            (&[("age", "soon")], Unknown),
            (&[("x-cache", "MISS"), ("age", "42")], Miss),
            (&[("x-cache", "something odd")], Unknown),
            (&[("x-cache", "")], Unknown),
            (&[], Unknown),
        ];
        for (headers, want) in table {
            assert_eq!(info(headers).status, *want, "headers {headers:?}");
        }
    }

    #[test]
    fn pop_and_vendor_table() {
        type Row<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, Option<&'a str>);
        let table: &[Row<'_>] = &[
            (
                &[
                    ("cf-ray", "8a1b2c3d4e5f6789-FRA"),
                    ("cf-cache-status", "HIT"),
                ],
                Some("FRA"),
                Some("cloudflare"),
            ),
            (
                &[
                    ("x-amz-cf-pop", "FRA56-P1"),
                    ("x-cache", "Hit from cloudfront"),
                ],
                Some("FRA56-P1"),
                Some("cloudfront"),
            ),
            (
                &[("via", "1.1 abc.cloudfront.net (CloudFront)")],
                None,
                Some("cloudfront"),
            ),
            (
                &[
                    ("x-served-by", "cache-fra-1234-FRA"),
                    ("x-cache", "HIT"),
                    ("server", "nginx"),
                ],
                Some("FRA"),
                Some("fastly"),
            ),
            (
                &[
                    ("x-served-by", "cache-iad-kiad7000-IAD, cache-fra19127-FRA"),
                    ("x-timer", "S1,VS0,VE1"),
                ],
                Some("FRA"),
                Some("fastly"),
            ),
            (
                &[(
                    "x-cache",
                    "TCP_HIT from a1.deploy.akamaitechnologies.com (AkamaiGHost/10.1)",
                )],
                None,
                Some("akamai"),
            ),
            (
                &[("server", "BunnyCDN-DE1-1234"), ("cdn-cache", "HIT")],
                None,
                Some("bunny"),
            ),
            (
                &[("x-varnish", "123 456"), ("age", "3")],
                None,
                Some("varnish"),
            ),
            (
                &[("via", "1.1 varnish (Varnish/7.1)")],
                None,
                Some("varnish"),
            ),
            // nginx as an edge: a Fastly-looking PoP name but no Fastly headers.
            (
                &[
                    ("server", "nginx/1.22.1"),
                    ("x-cache-status", "HIT"),
                    ("x-served-by", "cache-lo1-LOOP"),
                ],
                Some("LOOP"),
                Some("nginx"),
            ),
            (&[("x-cache-status", "MISS")], None, Some("nginx")),
            (&[("cf-ray", "no-pop-here")], None, Some("cloudflare")),
            (&[("x-served-by", "web-1")], None, None),
            (&[("server", "Apache")], None, None),
        ];
        for (headers, pop, vendor) in table {
            let got = info(headers);
            assert_eq!(got.pop.as_deref(), *pop, "pop of {headers:?}");
            assert_eq!(got.served_by.as_deref(), *vendor, "vendor of {headers:?}");
        }
    }

    #[test]
    fn age_is_parsed() {
        assert_eq!(info(&[("age", "17")]).age, Some(17));
        assert_eq!(info(&[("age", "-1")]).age, None);
    }
}
