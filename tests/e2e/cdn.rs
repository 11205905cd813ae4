//! `kind = "cdn"` and `kind = "http"` end to end: nginx as a caching edge (`proxy_cache`) in
//! front of an nginx origin, on loopback, with certificates from a throwaway CA. Checks are
//! written in TOML and run through `exec::run_check`.
//!
//! Check URLs name `static.vantage.test`, which does not resolve: every check reaches nginx
//! through `edge = "127.0.0.1:<port>"`, so a passing check shows that `edge` connects to the
//! proxy while Host and SNI stay those of the URL.

use vantage_checks::model::Check;
use vantage_checks::result::{
    CacheStatus, CheckResult, Facts, FailureKind, HttpFacts, RequestPurpose, Status,
};
use vantage_e2e::cdn::{Cdn, HOST, PROFILE_IMAGES, PROFILE_SCRIPTS, SERVED_BY};

/// One check of `kind` from its TOML keys (timeout 4s, no retry, so a failure is the first
/// attempt's).
fn check(kind: &str, keys: &str) -> Check {
    vantage_e2e::check_from_toml(kind, "4s", keys)
}

/// A check of `path` on the TLS edge, trusting the test CA, plus `keys`.
fn edge_check(cdn: &Cdn, kind: &str, path: &str, keys: &str) -> Check {
    check(
        kind,
        &format!(
            "url = \"https://{HOST}{path}\"\nedge = \"{}\"\nca = \"{}\"\n{keys}",
            cdn.edge,
            cdn.ca_file().display()
        ),
    )
}

fn run(check: &Check) -> CheckResult {
    vantage_e2e::run_once(check)
}

fn http(result: &CheckResult) -> &HttpFacts {
    match &result.facts {
        Facts::Http(f) => f,
        other => panic!("expected http facts, got {other:?} in {result:#?}"),
    }
}

#[track_caller]
fn assert_ok(result: &CheckResult) {
    assert_eq!(result.status, Status::Ok, "{result:#?}");
}

#[track_caller]
fn assert_fails(result: &CheckResult, kind: FailureKind) {
    assert_eq!(result.status, Status::Fail, "{result:#?}");
    assert_eq!(result.failure, Some(kind), "{result:#?}");
}

#[test]
fn miss_then_hit_on_the_same_url() {
    let cdn = Cdn::start();
    let c = edge_check(&cdn, "cdn", "/css/site.css", "");
    let first = run(&c);
    assert_ok(&first);
    let second = run(&c);
    assert_ok(&second);
    assert_eq!(http(&first).cache, CacheStatus::Miss, "{first:#?}");
    assert_eq!(http(&second).cache, CacheStatus::Hit, "{second:#?}");
    for r in [&first, &second] {
        let f = http(r);
        assert_eq!(f.status, Some(200));
        assert_eq!(f.pop.as_deref(), Some("LOOP"));
        assert_eq!(f.served_by.as_deref(), Some("nginx"));
        assert_eq!(f.remote_addr, Some(cdn.edge));
        assert!(f.bytes > 0, "{r:#?}");
        let t = &r.timings;
        assert!(
            t.connect_ms.is_some() && t.tls_ms.is_some() && t.first_byte_ms.is_some(),
            "{t:?}"
        );
    }
    assert_eq!(
        cdn.wait_for_origin_hits("/css/site.css", 1),
        1,
        "the hit must not reach the origin"
    );
}

#[test]
fn cache_bust_always_reaches_the_origin() {
    let cdn = Cdn::start();
    let c = edge_check(&cdn, "cdn", "/css/site.css", "cache_bust = true");
    let mut urls = Vec::new();
    for n in 1..=3 {
        let r = run(&c);
        assert_ok(&r);
        let f = http(&r);
        assert_eq!(f.cache, CacheStatus::Miss, "{r:#?}");
        assert!(f.url.contains("vantage_cb="), "{}", f.url);
        assert_eq!(cdn.wait_for_origin_hits("/css/site.css?vantage_cb=", n), n);
        urls.push(f.url.clone());
    }
    urls.sort();
    urls.dedup();
    assert_eq!(
        urls.len(),
        3,
        "every run must bust the cache with its own query: {urls:?}"
    );
}

#[test]
fn content_encoding_is_recorded_and_checked() {
    let cdn = Cdn::start();
    let ok = run(&edge_check(
        &cdn,
        "cdn",
        "/css/site.css",
        "expect = { encoding = [\"br\", \"gzip\"], body_contains = \"font-family\" }",
    ));
    assert_ok(&ok);
    assert_eq!(http(&ok).content_encoding.as_deref(), Some("gzip"));
    // nginx-light has no brotli: a check that insists on it must fail.
    let br_only = run(&edge_check(
        &cdn,
        "cdn",
        "/css/site.css",
        "expect = { encoding = [\"br\"] }",
    ));
    assert_fails(&br_only, FailureKind::EncodingMismatch);
    // A plain http check offers no encoding, and gets none.
    let plain = run(&edge_check(&cdn, "http", "/css/site.css", ""));
    assert_ok(&plain);
    assert_eq!(http(&plain).content_encoding, None);
}

#[test]
fn vendor_header_is_checked() {
    let cdn = Cdn::start();
    let ok = run(&edge_check(
        &cdn,
        "cdn",
        "/css/site.css",
        "expect = { vendor_header = { name = \"x-served-by\", matches = \"^cache-\" } }",
    ));
    assert_ok(&ok);
    assert_eq!(http(&ok).vendor_header.as_deref(), Some(SERVED_BY));
    let other = run(&edge_check(
        &cdn,
        "cdn",
        "/css/site.css",
        "expect = { vendor_header = { name = \"x-served-by\", matches = \"^fastly-\" } }",
    ));
    assert_fails(&other, FailureKind::VendorHeaderMismatch);
    assert_eq!(http(&other).vendor_header.as_deref(), Some(SERVED_BY));
    let missing = run(&edge_check(
        &cdn,
        "cdn",
        "/css/site.css",
        "expect = { vendor_header = { name = \"x-vendor\" } }",
    ));
    assert_fails(&missing, FailureKind::VendorHeaderMismatch);
}

#[test]
fn origin_503_is_http_status() {
    let cdn = Cdn::start();
    let r = run(&edge_check(&cdn, "cdn", "/unavailable", ""));
    assert_fails(&r, FailureKind::HttpStatus);
    assert_eq!(http(&r).status, Some(503));
    // The same endpoint passes when 503 is what the check expects.
    assert_ok(&run(&edge_check(
        &cdn,
        "cdn",
        "/unavailable",
        "expect = { status = 503 }",
    )));
}

#[test]
fn page_assets_are_fetched_and_a_missing_one_fails() {
    let cdn = Cdn::start();
    let ok = run(&edge_check(&cdn, "http", "/index.html", "assets = true"));
    assert_ok(&ok);
    let fetched: Vec<&str> = http(&ok).assets.iter().map(|a| a.url.as_str()).collect();
    assert_eq!(
        fetched,
        [
            "https://static.vantage.test/js/app.js",
            "https://static.vantage.test/css/site.css",
            "https://static.vantage.test/img/logo.svg",
        ]
    );
    assert!(http(&ok).assets.iter().all(|a| a.status == Some(200)));

    let broken = run(&edge_check(&cdn, "http", "/broken.html", "assets = true"));
    assert_fails(&broken, FailureKind::AssetErrors);
    let message = broken.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("https://static.vantage.test/img/missing.png"),
        "{message}"
    );
    assert!(!message.contains("site.css"), "{message}");
    let missing = http(&broken)
        .assets
        .iter()
        .find(|a| a.url.ends_with("/img/missing.png"))
        .unwrap_or_else(|| panic!("{broken:#?}"));
    assert_eq!(missing.status, Some(404));
    assert_eq!(missing.failure, Some(FailureKind::HttpStatus));
    assert_eq!(http(&broken).assets.len(), 3);
}

#[test]
fn edge_keeps_the_urls_host_and_sni() {
    let cdn = Cdn::start();
    let tls = run(&edge_check(
        &cdn,
        "cdn",
        "/js/app.js",
        "expect = { headers = { \"x-edge-sni\" = \"^static\\\\.vantage\\\\.test$\", \"x-edge-host\" = \"^static\\\\.vantage\\\\.test$\" } }",
    ));
    assert_ok(&tls);
    assert_eq!(http(&tls).http_version.as_deref(), Some("HTTP/2"));
    assert_eq!(
        http(&tls).tls.as_ref().and_then(|t| t.alpn.as_deref()),
        Some("h2")
    );
    let plain = run(&check(
        "cdn",
        &format!(
            "url = \"http://{HOST}/js/app.js?plain\"\nedge = \"{}\"",
            cdn.edge_plain
        ),
    ));
    assert_ok(&plain);
    assert_eq!(http(&plain).http_version.as_deref(), Some("HTTP/1.1"));
    assert_eq!(http(&plain).remote_addr, Some(cdn.edge_plain));

    let over_tls = cdn.wait_for_edge_log("/js/app.js");
    assert_eq!(over_tls.host, HOST);
    assert_eq!(over_tls.sni, HOST);
    assert_eq!(over_tls.protocol, "HTTP/2.0");
    let over_http = cdn.wait_for_edge_log("/js/app.js?plain");
    assert_eq!(over_http.host, HOST);
    assert_eq!(over_http.protocol, "HTTP/1.1");
    // Wrong expectations about what the edge saw must fail.
    let wrong = run(&edge_check(
        &cdn,
        "cdn",
        "/js/app.js",
        "expect = { headers = { \"x-edge-sni\" = \"^127\\\\.0\\\\.0\\\\.1$\" } }",
    ));
    assert_fails(&wrong, FailureKind::HeaderMismatch);
}

#[test]
fn certificate_failures_over_http() {
    let cdn = Cdn::start();
    let at = |edge: std::net::SocketAddr| {
        check(
            "cdn",
            &format!(
                "url = \"https://{HOST}/css/site.css\"\nedge = \"{edge}\"\nca = \"{}\"",
                cdn.ca_file().display()
            ),
        )
    };
    let expired = run(&at(cdn.expired));
    assert_fails(&expired, FailureKind::CertExpired);
    let tls = http(&expired)
        .tls
        .as_ref()
        .expect("tls facts of the expired cert");
    assert!(tls.days_left.is_some_and(|d| d < 0), "{tls:?}");
    assert_eq!(http(&expired).remote_addr, Some(cdn.expired));

    assert_fails(&run(&at(cdn.wrong_name)), FailureKind::CertNameMismatch);
    assert_fails(&run(&at(cdn.untrusted)), FailureKind::CertUntrusted);
    // Without the test CA, even the good certificate is untrusted.
    let no_ca = run(&check(
        "cdn",
        &format!(
            "url = \"https://{HOST}/css/site.css\"\nedge = \"{}\"",
            cdn.edge
        ),
    ));
    assert_fails(&no_ca, FailureKind::CertUntrusted);
}

#[test]
fn tls_only_servers_this_probe_refuses_are_probe_errors() {
    let cdn = Cdn::start();
    for edge in [cdn.legacy_tls, cdn.legacy_cipher] {
        let legacy = run(&check(
            "cdn",
            &format!(
                "url = \"https://{HOST}/css/site.css\"\nedge = \"{edge}\"\nca = \"{}\"",
                cdn.ca_file().display()
            ),
        ));
        assert_eq!(legacy.status, Status::ProbeError, "{legacy:#?}");
        assert_eq!(legacy.failure, Some(FailureKind::TlsUnsupportedProtocol));
    }

    let missing_ca = run(&check(
        "cdn",
        &format!(
            "url = \"https://{HOST}/\"\nedge = \"{}\"\nca = \"{}/nonexistent.pem\"",
            cdn.edge,
            cdn.www().display()
        ),
    ));
    assert_eq!(missing_ca.status, Status::ProbeError, "{missing_ca:#?}");
    assert_eq!(missing_ca.failure, Some(FailureKind::ProbeInternal));
}

#[test]
fn redirects_are_followed_up_to_the_cap() {
    let cdn = Cdn::start();
    let moved = run(&edge_check(
        &cdn,
        "http",
        "/moved",
        "expect = { body_contains = \"font-family\" }",
    ));
    assert_ok(&moved);
    assert_eq!(http(&moved).redirects, 1);
    assert_eq!(http(&moved).status, Some(200));
    let kept = run(&edge_check(
        &cdn,
        "http",
        "/moved",
        "expect = { status = 301 }",
    ));
    assert_ok(&kept);
    assert_eq!(http(&kept).redirects, 0);
    let looping = run(&edge_check(&cdn, "http", "/loop", "max_redirects = 2"));
    assert_fails(&looping, FailureKind::TooManyRedirects);
    assert_eq!(http(&looping).redirects, 2);
}

#[test]
fn body_larger_than_the_cap_fails() {
    let cdn = Cdn::start();
    cdn.put("big.bin", &"x".repeat(4096));
    assert_fails(
        &run(&edge_check(
            &cdn,
            "http",
            "/big.bin",
            "max_body_bytes = 1024",
        )),
        FailureKind::BodyTooLarge,
    );
    assert_ok(&run(&edge_check(
        &cdn,
        "http",
        "/big.bin",
        "max_body_bytes = 8192",
    )));
}

#[test]
fn json_and_freshness_of_an_origin_endpoint() {
    let cdn = Cdn::start();
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format a timestamp")
    };
    cdn.put(
        "api/fresh.json",
        &format!(
            "{{\"status\":\"ok\",\"last_event_at\":\"{}\"}}",
            rfc3339(now - time::Duration::seconds(30))
        ),
    );
    cdn.put(
        "api/stale.json",
        &format!(
            "{{\"status\":\"ok\",\"last_event_at\":{}}}",
            (now - time::Duration::hours(2)).unix_timestamp()
        ),
    );
    let fresh = "expect = { json = { pointer = \"/status\", equals = \"ok\" }, fresh = { json_pointer = \"/last_event_at\", max_age = \"5m\" } }";
    let ok = run(&edge_check(&cdn, "http", "/api/fresh.json", fresh));
    assert_ok(&ok);
    let stale = run(&edge_check(&cdn, "http", "/api/stale.json", fresh));
    assert_fails(&stale, FailureKind::StaleData);
    let wrong = run(&edge_check(
        &cdn,
        "http",
        "/api/fresh.json",
        "expect = { json = { pointer = \"/status\", equals = \"down\" } }",
    ));
    assert_fails(&wrong, FailureKind::BodyMismatch);
    // JSON through the CDN check arrives gzipped and is decoded before the assertions.
    let cdn_kind = run(&edge_check(&cdn, "cdn", "/api/fresh.json", fresh));
    assert_ok(&cdn_kind);
    assert_eq!(http(&cdn_kind).content_encoding.as_deref(), Some("gzip"));
}

/// Issue 13, part 2: two content profiles, as the edge serves them (see `vantage_e2e::cdn`):
/// images keep the query string out of the cache key, are not compressed and have their 404s
/// cached; scripts key on the query string, are gzipped and have no 404 cached. The same
/// profiles are written as `[[profile]]` tables and the checks name them.
const CONTENT_PROFILES: &str = r#"
[[profile]]
id = "static-image"
[profile.expect]
status = 200
encoding = ["identity"]
cache_control = { max_age = { min = "7d", max = "30d" }, public = true, immutable = true, private = false, no_store = false }
expires = { min = "7d" }
etag = true
last_modified = true
http_version = "2"
tls_version = "1.3"
cache = "hit"
cache_key = { query = "ignored" }
negative = { status = 404, cache_control = { max_age = { min = "10s", max = "5m" } }, cached = true }

[[profile]]
id = "javascript"
[profile.expect]
status = 200
encoding = ["br", "gzip"]
vary = ["accept-encoding"]
cache_control = { max_age = { min = "30d" }, immutable = false, no_store = false }
cache = "hit"
cache_key = { query = "included" }
negative = { status = 404, cached = false }
"#;

/// The checks of a file holding [`CONTENT_PROFILES`], a vendor and `checks` (each `[[check]]`
/// given its url on the TLS edge, the test CA, a 4 s timeout and no retry).
fn profiled_checks(cdn: &Cdn, checks: &[(&str, &str, &str)]) -> Vec<Check> {
    let mut text = format!("[[vendor]]\nid = \"e2e\"\n{CONTENT_PROFILES}");
    for (id, path, keys) in checks {
        text.push_str(&format!(
            "\n[[check]]\nid = \"{id}\"\nvendor = \"e2e\"\nkind = \"cdn\"\ntimeout = \"4s\"\nretry = \"off\"\n\
             url = \"https://{HOST}{path}\"\nedge = \"{}\"\nca = \"{}\"\n{keys}\n",
            cdn.edge,
            cdn.ca_file().display()
        ));
    }
    vantage_checks::config::parse_str(&text)
        .unwrap_or_else(|d| panic!("invalid test checks:\n{}\n{text}", d.render()))
        .checks
}

fn purposes(facts: &HttpFacts) -> Vec<RequestPurpose> {
    facts.extra_requests.iter().map(|r| r.purpose).collect()
}

#[test]
fn r13_content_profiles_pass_against_an_edge_configured_for_them() {
    let cdn = Cdn::start();
    let logo = format!("{PROFILE_IMAGES}logo.png");
    let script = format!("{PROFILE_SCRIPTS}app.js?v=1");
    let checks = profiled_checks(
        &cdn,
        &[
            (
                "logo",
                logo.as_str(),
                "headers = { \"accept-encoding\" = \"gzip, br\" }\nprofile = \"static-image\"",
            ),
            (
                "app-js",
                script.as_str(),
                "profile = \"javascript\"\nexpect = { http_version = \"2\" }",
            ),
        ],
    );

    let image = run(&checks[0]);
    assert_ok(&image);
    let f = http(&image);
    use RequestPurpose::*;
    assert_eq!(
        purposes(f),
        [WarmUp, CacheKey, Negative, NegativeRepeat],
        "{image:#?}"
    );
    assert_eq!(f.cache, CacheStatus::Hit, "after the warm-up");
    assert_eq!(
        f.content_encoding, None,
        "offered gzip, the edge must not compress images"
    );
    assert_eq!(f.http_version.as_deref(), Some("HTTP/2"));
    assert_eq!(
        f.tls.as_ref().and_then(|t| t.protocol.as_deref()),
        Some("TLSv1_3")
    );
    let cc = f.cache_control.as_deref().unwrap_or_default();
    assert!(
        cc.contains("max-age=2592000") && cc.contains("immutable"),
        "{cc}"
    );
    assert!(
        f.expires.is_some() && f.etag.is_some() && f.last_modified.is_some(),
        "{f:#?}"
    );
    let key = &f.extra_requests[1];
    assert_eq!(
        (key.status, key.cache),
        (Some(200), CacheStatus::Hit),
        "{key:?}"
    );
    assert!(key.url.contains("?vantage_key="), "{key:?}");
    let (miss, hit) = (&f.extra_requests[2], &f.extra_requests[3]);
    assert_eq!(
        (miss.status, miss.cache),
        (Some(404), CacheStatus::Miss),
        "{miss:?}"
    );
    assert_eq!(
        (hit.status, hit.cache),
        (Some(404), CacheStatus::Hit),
        "{hit:?}"
    );
    assert_eq!(miss.url, hit.url);
    assert!(
        miss.url
            .starts_with(&format!("https://{HOST}{PROFILE_IMAGES}vantage-negative-"))
            && miss.url.ends_with(".png"),
        "{miss:?}"
    );
    assert_eq!(miss.cache_control.as_deref(), Some("public, max-age=60"));
    // The warm-up and, once, the error page reached the origin; the other query string did not.
    assert_eq!(cdn.wait_for_origin_hits(&logo, 1), 1);
    assert_eq!(cdn.origin_hits(&format!("{logo}?vantage_key=")), 0);
    assert_eq!(
        cdn.origin_hits(&format!("{PROFILE_IMAGES}vantage-negative-")),
        1
    );

    let js = run(&checks[1]);
    assert_ok(&js);
    let f = http(&js);
    assert_eq!(
        purposes(f),
        [WarmUp, CacheKey, Negative, NegativeRepeat],
        "{js:#?}"
    );
    assert_eq!(f.cache, CacheStatus::Hit);
    assert_eq!(f.content_encoding.as_deref(), Some("gzip"));
    assert!(
        f.vary
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("accept-encoding")),
        "{f:#?}"
    );
    let key = &f.extra_requests[1];
    assert_eq!(
        (key.status, key.cache),
        (Some(200), CacheStatus::Miss),
        "{key:?}"
    );
    assert_eq!(
        f.extra_requests[3].cache,
        CacheStatus::Miss,
        "no 404 is cached"
    );
    assert_eq!(
        cdn.wait_for_origin_hits(&format!("{PROFILE_SCRIPTS}app.js?v=1&vantage_key="), 1),
        1
    );
    assert_eq!(
        cdn.wait_for_origin_hits(&format!("{PROFILE_SCRIPTS}vantage-negative-"), 2),
        2
    );
}

#[test]
fn r13_a_changed_content_profile_assertion_fails_with_its_kind() {
    let cdn = Cdn::start();
    let logo = format!("{PROFILE_IMAGES}logo.png");
    let script = format!("{PROFILE_SCRIPTS}app.js");
    let offer_gzip = "headers = { \"accept-encoding\" = \"gzip\" }\nprofile = \"static-image\"";
    let cases: &[(&str, &str, FailureKind, &str)] = &[
        // Scripts key on the query string: a check that says it is ignored must fail.
        (
            "javascript",
            "expect = { cache_key = { query = \"ignored\" } }",
            FailureKind::CacheKeyMismatch,
            "was a miss, expected a hit: the query string should not be in the cache key",
        ),
        (
            "static-image",
            "expect = { cache_key = { query = \"included\" } }",
            FailureKind::CacheKeyMismatch,
            "was a hit, expected a miss: the query string should be in the cache key",
        ),
        (
            "static-image",
            "expect = { cache_control = { max_age = { min = \"60d\" } } }",
            FailureKind::CachePolicyMismatch,
            "max-age is 30d, expected at least 60d",
        ),
        (
            "javascript",
            "expect = { negative = { status = 404, cached = true } }",
            FailureKind::NegativeCacheMismatch,
            "was a miss, expected a hit: the edge should cache it",
        ),
        (
            "static-image",
            "expect = { tls_version = \"1.2\" }",
            FailureKind::ProtocolMismatch,
            "TLSv1_3 was negotiated, expected TLS 1.2",
        ),
    ];
    for (profile, keys, kind, says) in cases {
        let (path, extra) = if *profile == "javascript" {
            (script.as_str(), "profile = \"javascript\"")
        } else {
            (logo.as_str(), offer_gzip)
        };
        let keys_all = format!("{extra}\n{keys}");
        let checks = profiled_checks(&cdn, &[("changed", path, keys_all.as_str())]);
        let r = run(&checks[0]);
        assert_fails(&r, *kind);
        let message = r.message.as_deref().unwrap_or_default();
        assert!(message.contains(says), "{profile} with {keys}: {message}");
    }
}
