//! The status page over HTTP, without a browser: what the server renders, what it refuses, and
//! the sign-in with a reader token. (`tests/e2e/status_page.rs` looks at it in Chromium.)

use http::{Method, StatusCode, header};
use hyper::body::Bytes;

mod support;

use support::*;

const CHECKS: &str = r#"
[[vendor]]
id = "acme"
name = "Acme <b>DNS</b>"

[[check]]
id = "www"
vendor = "acme"
kind = "tcp"
target = "192.0.2.2:443"
"#;

const TOKEN: &str = "page-reader-token-0123456789abcdef";

fn body(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn header(r: &Reply, name: header::HeaderName) -> &str {
    r.headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_open_page_is_rendered_on_the_server_and_mistakes_are_refused() {
    let mut c = Coordinator::new("", Some(CHECKS));
    c.add_probe("fra-1", "eu-west");
    c.start().await;
    let addr = c.addr;

    let r = get(addr, "/", None, &[]).await.expect("GET /");
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    assert_eq!(header(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert!(header(&r, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
    assert_eq!(header(&r, header::CACHE_CONTROL), "no-store");
    let html = body(&r);
    // No result yet: unknown, in the probe's region and globally, named in text.
    assert!(
        html.contains(r#"data-vendor="acme" data-region="eu-west" data-state="unknown""#),
        "{html}"
    );
    assert!(html.contains(r#"data-region="global" data-state="unknown""#));
    assert!(html.contains("Acme &lt;b&gt;DNS&lt;/b&gt;") && !html.contains("<b>DNS"));
    assert!(html.contains(r#"<noscript><meta http-equiv="refresh" content="30"></noscript>"#));
    assert!(html.contains(r#"<figure class="chart" data-check="www">"#));
    assert!(!html.contains("/logout"), "nothing to sign out of");

    let r = get(addr, "/?partial=main", None, &[])
        .await
        .expect("partial");
    assert_eq!(r.status, StatusCode::OK);
    assert!(body(&r).starts_with("<main id=\"main\""), "{}", body(&r));

    for (path, status) in [
        ("/?partial=all", StatusCode::BAD_REQUEST),
        ("/?refresh=1", StatusCode::BAD_REQUEST),
        ("/vendors/nope", StatusCode::NOT_FOUND),
        ("/vendors/%FF", StatusCode::NOT_FOUND),
        ("/static/nothing.txt", StatusCode::NOT_FOUND),
    ] {
        let r = get(addr, path, None, &[]).await.expect(path);
        assert_eq!(r.status, status, "{path}: {}", body(&r));
    }
    let r = send(addr, Method::PUT, "/", None, &[], Bytes::new())
        .await
        .expect("PUT /");
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // Other paths keep the API's JSON 404.
    get(addr, "/nope", None, &[])
        .await
        .expect("GET /nope")
        .assert_refused(StatusCode::NOT_FOUND, "no such endpoint: /nope");

    let r = get(addr, "/vendors/acme", None, &[]).await.expect("vendor");
    assert_eq!(r.status, StatusCode::OK);
    let html = body(&r);
    assert_eq!(
        html.matches(r#"<svg class="chart-svg""#).count(),
        2,
        "hour and day"
    );
    assert!(html.contains(r#"data-partial="/vendors/acme?partial=main""#));

    // With no token there is nothing to sign in to.
    let r = get(addr, "/login", None, &[]).await.expect("login");
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&r, header::LOCATION), "/");

    let js = html_asset(
        &body(&get(addr, "/", None, &[]).await.expect("GET /")),
        ".js",
    );
    let r = get(addr, &js, None, &[]).await.expect("script");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        header(&r, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert!(body(&r).contains("EventSource"));
}

/// The URL of the page's asset ending in `ext`.
fn html_asset(html: &str, ext: &str) -> String {
    html.split('"')
        .find(|s| s.starts_with("/static/") && s.ends_with(ext))
        .unwrap_or_else(|| panic!("no {ext} asset in {html}"))
        .to_owned()
}

#[tokio::test]
async fn with_a_token_the_page_needs_a_sign_in_whose_cookie_only_reads() {
    let mut c = Coordinator::new("[api]\ntoken_file = \"api.token\"\n", Some(CHECKS));
    std::fs::write(c.path("api.token"), format!("{TOKEN}\n")).expect("write the token");
    c.start().await;
    let addr = c.addr;
    let form = |token: &str| Bytes::from(format!("token={token}&next=%2Fvendors%2Facme"));
    let login = |b: Bytes, headers: Vec<(&'static str, &'static str)>| async move {
        send(addr, Method::POST, "/login", None, &headers, b)
            .await
            .expect("POST /login")
    };

    let r = get(addr, "/", None, &[]).await.expect("GET /");
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&r, header::LOCATION), "/login?next=%2F");
    let r = get(addr, "/?partial=main", None, &[])
        .await
        .expect("partial");
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = get(addr, "/login", None, &[]).await.expect("GET /login");
    assert_eq!(r.status, StatusCode::OK);
    assert!(body(&r).contains(r#"type="password""#));

    let r = login(form("wrong"), vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(body(&r).contains("not the reader token"));
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    let r = login(form(TOKEN), vec![("origin", "https://evil.example")]).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a sign-in from another site"
    );

    let r = login(form(TOKEN), vec![]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", body(&r));
    assert_eq!(header(&r, header::LOCATION), "/vendors/acme");
    let set = header(&r, header::SET_COOKIE).to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"));
    assert!(!set.contains(TOKEN));
    let cookie = set.split(';').next().expect("name=value").to_owned();

    let r = get(addr, "/", None, &[("cookie", &cookie)])
        .await
        .expect("GET /");
    assert_eq!(r.status, StatusCode::OK);
    assert!(body(&r).contains("action=\"/logout\""));
    assert!(!body(&r).contains(TOKEN));
    // The bearer token reads the page too (for tools).
    let r = get(addr, "/", Some(TOKEN), &[])
        .await
        .expect("GET / bearer");
    assert_eq!(r.status, StatusCode::OK);
    // The cookie reads the API (the page's live stream needs that) but changes nothing.
    let r = get(addr, "/api/v1/vendors", None, &[("cookie", &cookie)])
        .await
        .expect("vendors");
    assert_eq!(r.status, StatusCode::OK);
    send(
        addr,
        Method::POST,
        "/api/v1/silences",
        None,
        &[("cookie", &cookie)],
        Bytes::from_static(br#"{"vendor":"acme","duration":"1h","comment":"x"}"#),
    )
    .await
    .expect("POST silences")
    .assert_refused(StatusCode::UNAUTHORIZED, "Bearer");
    // A forged or altered cookie reads nothing.
    let forged = format!("{}x", cookie);
    let r = get(addr, "/api/v1/vendors", None, &[("cookie", &forged)])
        .await
        .expect("vendors");
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = send(addr, Method::POST, "/logout", None, &[], Bytes::new())
        .await
        .expect("logout");
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&r, header::LOCATION), "/login");
    assert!(header(&r, header::SET_COOKIE).contains("Max-Age=0"));

    // r12: ten tries a minute per address (three so far), then 429 with Retry-After, right
    // token or not; the page itself still reads with the bearer token.
    for n in 3..10 {
        let r = login(form("wrong"), vec![]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "try {n}");
    }
    for token in ["wrong", TOKEN] {
        let r = login(form(token), vec![]).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", body(&r));
        let wait: u64 = header(&r, header::RETRY_AFTER)
            .parse()
            .expect("Retry-After");
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(body(&r).contains("Too many sign-in tries"), "{}", body(&r));
    }
    let r = get(addr, "/", Some(TOKEN), &[]).await.expect("GET /");
    assert_eq!(r.status, StatusCode::OK);
}
