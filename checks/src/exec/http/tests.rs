//! The executor against in-process HTTP/1.1 servers on loopback whose answers and request
//! log the test controls.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::model::CheckSpec;
use crate::result::Status;

/// One answer: status, headers, body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Each request a server received: its path and its headers (names lowercased).
type Log = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

/// Serves `answer(path)` on `ip:0`, one request per connection, logging every request.
async fn server(
    ip: [u8; 4],
    answer: impl Fn(&str) -> Answer + Send + Sync + 'static,
) -> (SocketAddr, Log) {
    let listener = TcpListener::bind(SocketAddr::from((ip, 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log: Log = Arc::default();
    let seen = log.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let mut lines = text.split("\r\n");
                let path = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .unwrap_or("/")
                    .to_owned();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                seen.lock().expect("log").push((path.clone(), headers));
                let (status, extra, body) = answer(&path);
                let mut out = format!("HTTP/1.1 {status} X\r\n");
                for (n, v) in extra {
                    out.push_str(&format!("{n}: {v}\r\n"));
                }
                out.push_str(&format!(
                    "content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                ));
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&body);
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, log)
}

fn http_check(extra: &str) -> HttpCheck {
    let text = format!(
        "[[vendor]]\nid = \"v\"\nname = \"V\"\n[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"http\"\n{extra}\n"
    );
    let set = crate::config::parse_str(&text).expect("valid check");
    match set.checks.into_iter().next().map(|c| c.spec) {
        Some(CheckSpec::Http(h)) => *h,
        other => panic!("expected an http check, got {other:?}"),
    }
}

const SECRET_HEADERS: &str =
    "headers = { authorization = \"Bearer s3cret\", \"x-api-key\" = \"k3y\" }";

fn has_secrets(headers: &BTreeMap<String, String>) -> bool {
    headers.get("authorization").map(String::as_str) == Some("Bearer s3cret")
        && headers.get("x-api-key").map(String::as_str) == Some("k3y")
}

fn carries_none(headers: &BTreeMap<String, String>) -> bool {
    !headers.contains_key("authorization") && !headers.contains_key("x-api-key")
}

/// Issue 12, item 11: a check's headers follow a redirect on its own origin, but never to
/// another host or port.
#[tokio::test]
async fn r12_headers_are_not_sent_to_another_origin_on_a_redirect() {
    let (other, other_log) = server([127, 0, 0, 2], |_| (200, vec![], b"elsewhere".to_vec())).await;
    let (own, own_log) = server([127, 0, 0, 1], move |path| match path {
        "/" => (302, vec![("location".into(), "/moved".into())], vec![]),
        "/moved" => (
            302,
            vec![("location".into(), format!("http://{other}/landing"))],
            vec![],
        ),
        _ => (404, vec![], vec![]),
    })
    .await;
    let check = http_check(&format!("url = \"http://{own}/\"\n{SECRET_HEADERS}"));
    let observed = run(&check, Duration::from_secs(5), None)
        .await
        .expect("run");
    assert_eq!(observed.status, Status::Ok, "{observed:?}");

    let own_log = own_log.lock().expect("log").clone();
    assert_eq!(own_log.len(), 2, "{own_log:?}");
    for (path, headers) in &own_log {
        assert!(
            has_secrets(headers),
            "{path} on the check's origin: {headers:?}"
        );
    }
    let other_log = other_log.lock().expect("log").clone();
    assert_eq!(other_log.len(), 1, "{other_log:?}");
    assert!(
        carries_none(&other_log[0].1),
        "the other origin saw the check's headers: {:?}",
        other_log[0].1
    );
}

/// Issue 12, item 11: a page's own assets get the check's headers; a third party's do not.
#[tokio::test]
async fn r12_headers_are_not_sent_to_third_party_assets() {
    let (third, third_log) = server([127, 0, 0, 2], |_| (200, vec![], b"js".to_vec())).await;
    let (own, own_log) = server([127, 0, 0, 1], move |path| match path {
        "/" => (
            200,
            vec![("content-type".into(), "text/html".into())],
            format!(
                "<html><img src=\"/own.png\"><script src=\"http://{third}/third.js\"></script></html>"
            )
            .into_bytes(),
        ),
        _ => (200, vec![], b"png".to_vec()),
    })
    .await;
    let check = http_check(&format!(
        "url = \"http://{own}/\"\nassets = true\n{SECRET_HEADERS}"
    ));
    let observed = run(&check, Duration::from_secs(5), None)
        .await
        .expect("run");
    assert_eq!(observed.status, Status::Ok, "{observed:?}");

    let own_log = own_log.lock().expect("log").clone();
    let paths: Vec<&str> = own_log.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    for (path, headers) in &own_log {
        assert!(
            has_secrets(headers),
            "{path} on the page's origin: {headers:?}"
        );
    }
    let third_log = third_log.lock().expect("log").clone();
    assert_eq!(third_log.len(), 1, "{third_log:?}");
    assert!(
        carries_none(&third_log[0].1),
        "the third party saw the check's headers: {:?}",
        third_log[0].1
    );
}

#[test]
fn same_origin_is_scheme_host_and_port() {
    let url = |s: &str| url::Url::parse(s).expect("url");
    let check = url("http://api.example.com/v1");
    for (to, same) in [
        ("http://api.example.com/v2?x=1", true),
        ("http://API.example.com:80/", true),
        ("https://api.example.com/", true),
        ("https://api.example.com:8443/", false),
        ("http://api.example.com:8080/", false),
        ("http://evil.example.com/", false),
        ("http://example.com/", false),
    ] {
        assert_eq!(fetch::same_origin(&check, &url(to)), same, "{to}");
    }
    let check = url("https://api.example.com/");
    assert!(!fetch::same_origin(&check, &url("http://api.example.com/")));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// Issue 12, item 11: a body that decodes to ten times `max_body_bytes` is `body_too_large`
/// (the cap is [`DECODED_BODY_FACTOR`] times it), and says where decoding stopped.
#[tokio::test]
async fn r12_a_decompression_bomb_is_body_too_large() {
    let bomb = gzip(&vec![b'a'; 10 * 65536]);
    assert!(bomb.len() < 65536);
    let (own, _) = server([127, 0, 0, 1], move |_| {
        (
            200,
            vec![("content-encoding".into(), "gzip".into())],
            bomb.clone(),
        )
    })
    .await;
    let check = http_check(&format!(
        "url = \"http://{own}/\"\nmax_body_bytes = 65536\nexpect = {{ body_contains = \"a\" }}"
    ));
    let observed = run(&check, Duration::from_secs(5), None)
        .await
        .expect("run");
    assert_eq!(
        observed.failure,
        Some(FailureKind::BodyTooLarge),
        "{observed:?}"
    );
    let message = observed.message.unwrap_or_default();
    assert!(
        message
            .ends_with("is larger than 524288 bytes (8 × max_body_bytes); decoding stopped there"),
        "{message}"
    );
}

/// A fake caching edge: `/img/` is cached by path alone (its 404s too, for a minute), `/js/`
/// by path and query (no 404s). Answers `x-cache-status: HIT` for what it has seen before.
async fn caching_edge() -> (SocketAddr, Log) {
    let seen: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    server([127, 0, 0, 1], move |path| {
        let plain = path.split_once('?').map_or(path, |(p, _)| p);
        let img = plain.starts_with("/img/");
        let exists = matches!(plain, "/img/logo.png" | "/js/app.js");
        let key = if img { plain } else { path };
        let cacheable = exists || img;
        let hit = cacheable && !seen.lock().expect("cache").insert(key.to_owned());
        let mut headers = vec![(
            "x-cache-status".to_owned(),
            if hit { "HIT" } else { "MISS" }.to_owned(),
        )];
        if exists {
            headers.push(("cache-control".into(), "public, max-age=86400".into()));
        } else if img {
            headers.push(("cache-control".into(), "max-age=60".into()));
        }
        (if exists { 200 } else { 404 }, headers, b"x".to_vec())
    })
    .await
}

fn extra(observed: &Observation) -> Vec<(RequestPurpose, Option<u16>, crate::result::CacheStatus)> {
    match &observed.facts {
        Facts::Http(f) => f
            .extra_requests
            .iter()
            .map(|r| (r.purpose, r.status, r.cache))
            .collect(),
        other => panic!("http facts, got {other:?}"),
    }
}

/// Issue 13, part 2: the warm-up, the cache-key request and the error page requests, in
/// order, each recorded with what it saw; the paths the edge treats otherwise fail with
/// their own kinds.
#[tokio::test]
async fn r13_content_profile_requests() {
    use crate::result::CacheStatus::{Hit, Miss};
    use RequestPurpose::*;
    let (edge, log) = caching_edge().await;
    let img = http_check(&format!(
        "url = \"http://{edge}/img/logo.png\"\nexpect = {{ cache = \"hit\", cache_key = {{ query = \"ignored\" }}, \
         negative = {{ cached = true, cache_control = {{ max_age = {{ max = \"5m\" }} }} }} }}"
    ));
    let observed = run(&img, Duration::from_secs(5), None).await.expect("run");
    assert_eq!(observed.status, Status::Ok, "{observed:?}");
    assert_eq!(
        extra(&observed),
        [
            (WarmUp, Some(200), Miss),
            (CacheKey, Some(200), Hit),
            (Negative, Some(404), Miss),
            (NegativeRepeat, Some(404), Hit)
        ]
    );
    let paths: Vec<String> = log
        .lock()
        .expect("log")
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(paths.len(), 5, "{paths:?}");
    assert_eq!(paths[..2], ["/img/logo.png", "/img/logo.png"]);
    assert!(
        paths[2].starts_with("/img/logo.png?vantage_key="),
        "{paths:?}"
    );
    assert!(
        paths[3].starts_with("/img/vantage-negative-") && paths[3].ends_with(".png"),
        "{paths:?}"
    );
    assert_eq!(paths[3], paths[4]);

    let js = http_check(&format!(
        "url = \"http://{edge}/js/app.js?v=1\"\nexpect = {{ cache = \"hit\", cache_key = {{ query = \"included\" }}, \
         negative = {{ path = \"/js/missing.js\", cached = false }} }}"
    ));
    let observed = run(&js, Duration::from_secs(5), None).await.expect("run");
    assert_eq!(observed.status, Status::Ok, "{observed:?}");
    assert_eq!(
        extra(&observed),
        [
            (WarmUp, Some(200), Miss),
            (CacheKey, Some(200), Miss),
            (Negative, Some(404), Miss),
            (NegativeRepeat, Some(404), Miss)
        ]
    );

    let cases = [
        (
            "/js/app.js",
            "cache_key = { query = \"ignored\" }",
            FailureKind::CacheKeyMismatch,
            1,
        ),
        (
            "/img/logo.png",
            "cache_key = { query = \"included\" }",
            FailureKind::CacheKeyMismatch,
            1,
        ),
        (
            "/img/logo.png",
            "negative = { cached = false }",
            FailureKind::NegativeCacheMismatch,
            2,
        ),
        (
            "/js/app.js",
            "negative = { cached = true }",
            FailureKind::NegativeCacheMismatch,
            2,
        ),
        (
            "/js/app.js",
            "negative = { status = 410 }",
            FailureKind::NegativeCacheMismatch,
            1,
        ),
        (
            "/img/logo.png",
            "negative = { cache_control = { no_store = true } }",
            FailureKind::NegativeCacheMismatch,
            1,
        ),
        (
            "/img/logo.png",
            "cache = \"miss\"",
            FailureKind::CacheStatusMismatch,
            1,
        ),
        (
            "/img/logo.png",
            "cache_control = { max_age = { min = \"2d\" } }",
            FailureKind::CachePolicyMismatch,
            0,
        ),
        (
            "/img/logo.png",
            "http_version = \"2\"",
            FailureKind::ProtocolMismatch,
            0,
        ),
    ];
    for (path, expect, kind, requests) in cases {
        let check = http_check(&format!(
            "url = \"http://{edge}{path}\"\nexpect = {{ {expect} }}"
        ));
        let observed = run(&check, Duration::from_secs(5), None)
            .await
            .expect("run");
        assert_eq!(observed.failure, Some(kind), "{expect}: {observed:?}");
        assert_eq!(extra(&observed).len(), requests, "{expect}: {observed:?}");
    }
}

/// Issue 13, part 2: the extra requests share the run's deadline. An edge that never
/// answers the error page fails the run `timeout` within the check's timeout, and the facts
/// say which request it was.
#[tokio::test]
async fn r13_an_extra_request_that_never_answers_ends_at_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let edge = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if String::from_utf8_lossy(&head).contains("vantage-negative-") {
                    // Hold the connection open and say nothing, for as long as the test runs.
                    std::future::pending::<()>().await;
                }
                let answer = "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    let check = http_check(&format!(
        "url = \"http://{edge}/a.png\"\nexpect = {{ negative = {{ cached = true }} }}"
    ));
    let timeout = Duration::from_millis(800);
    let started = std::time::Instant::now();
    let observed = run(&check, timeout, None).await.expect("run");
    let took = started.elapsed();
    assert_eq!(observed.failure, Some(FailureKind::Timeout), "{observed:?}");
    assert!(took < timeout + Duration::from_millis(400), "took {took:?}");
    let message = observed.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("the error page request failed: a response from `http://"),
        "{message}"
    );
    match &observed.facts {
        Facts::Http(f) => {
            assert_eq!(f.status, Some(200), "the measured request passed");
            assert_eq!(f.extra_requests.len(), 1, "{f:?}");
            assert_eq!(f.extra_requests[0].purpose, RequestPurpose::Negative);
            assert_eq!(f.extra_requests[0].failure, Some(FailureKind::Timeout));
        }
        other => panic!("http facts, got {other:?}"),
    }
}
