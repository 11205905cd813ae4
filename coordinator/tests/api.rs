//! End-to-end tests of the coordinator's HTTP API.
//!
//! Each test starts the real `vantage-coordinator` binary on loopback with a fresh data
//! directory, registers probes with `vantage-coordinator probe add`, and talks to it over HTTP:
//! through hyper's client connection API, or over a raw TCP stream where the test needs control
//! of every byte (slow clients, bodies larger than the limit). Nothing sleeps to wait: readiness
//! and reloads are polled with a deadline.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{Method, StatusCode, header};
use hyper::body::Bytes;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vantage_checks::model::CheckSpec;
use vantage_checks::result::CheckResult;
use vantage_checks::wire::{ProbeConfig, RefusalReason};

mod support;

use support::*;

/// A raw exchange: what came back before the server closed the connection (or the deadline).
struct RawReply {
    /// Everything read.
    bytes: Vec<u8>,
    /// The connection ended (EOF or reset) before the deadline.
    closed: bool,
    /// When the reading stopped.
    elapsed: Duration,
}

impl RawReply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn status(&self) -> Option<u16> {
        let text = self.text();
        let line = text.lines().next()?;
        line.split(' ').nth(1)?.parse().ok()
    }

    /// The message of the JSON error body.
    fn error(&self) -> String {
        let text = self.text();
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("not a JSON error body ({e}): {text}"));
        v["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Writes `head` and then `body` in pieces of `piece` bytes, `pause` apart, on a fresh
/// connection, while reading what the server sends until it closes or `deadline` passes.
/// Write errors are expected once the server has answered and closed, and are ignored.
async fn raw(
    addr: SocketAddr,
    head: Vec<u8>,
    head_piece: usize,
    body: Vec<u8>,
    piece: usize,
    pause: Duration,
    deadline: Duration,
) -> RawReply {
    let start = Instant::now();
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        for part in head.chunks(head_piece.max(1)) {
            if wr.write_all(part).await.is_err() {
                return;
            }
            if head_piece < head.len() {
                // Pacing a deliberately slow client.
                tokio::time::sleep(pause).await;
            }
        }
        for part in body.chunks(piece.max(1)) {
            if wr.write_all(part).await.is_err() {
                return;
            }
            if piece < body.len() {
                tokio::time::sleep(pause).await;
            }
        }
        // Keep the write half open: closing it would end the request early.
        std::future::pending::<()>().await;
    });
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(deadline, read_all).await.is_ok();
    writer.abort();
    RawReply {
        bytes,
        closed,
        elapsed: start.elapsed(),
    }
}

/// The request head of a `POST /api/v1/results`.
fn post_head(token: &str, framing: &str) -> Vec<u8> {
    format!(
        "POST /api/v1/results HTTP/1.1\r\nHost: vantage\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nConnection: close\r\n{framing}\r\n\r\n"
    )
    .into_bytes()
}

/// `body` in HTTP/1.1 chunked encoding.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 1000 + 16);
    for c in body.chunks(16 * 1024) {
        write!(out, "{:x}\r\n", c.len()).expect("write to vec");
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

const LIMITS_CONFIG: &str = "[limits]\nmax_body_bytes = 2097152\nrequest_timeout = \"2s\"\n";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How much later than `request_timeout` a cut-off may come.
const MARGIN: Duration = Duration::from_secs(3);

#[tokio::test]
async fn results_round_trip_once_and_filter() {
    let mut c = Coordinator::new("", None);
    let t1 = c.add_probe("fra-1", "eu-west");
    let t2 = c.add_probe("iad-1", "us-east");
    c.start().await;
    let now = OffsetDateTime::now_utc();
    let at = |i: u64| now - time::Duration::seconds(i as i64 * 10);
    // fra-1: 12 results over two checks of two vendors; iad-1: 4 results of one check.
    let fra: Vec<CheckResult> = (0..12)
        .map(|i| {
            let (check, vendor) = if i % 2 == 0 {
                ("www", "fastcdn")
            } else {
                ("api", "acme")
            };
            result("fra-1", i, check, vendor, at(i))
        })
        .collect();
    let iad: Vec<CheckResult> = (0..4)
        .map(|i| result("iad-1", i, "www", "fastcdn", at(i)))
        .collect();

    let ack = post_batch(c.addr, &t1, &fra).await.ack();
    assert_eq!((ack.accepted, ack.duplicates), (12, 0));
    let ack = post_batch(c.addr, &t1, &fra).await.ack();
    assert_eq!(
        (ack.accepted, ack.duplicates),
        (0, 12),
        "a re-delivery is counted as duplicates"
    );
    let ack = post_batch(c.addr, &t2, &iad).await.ack();
    assert_eq!((ack.accepted, ack.duplicates), (4, 0));

    let query = |q: String| {
        let addr = c.addr;
        async move {
            get(addr, &format!("/api/v1/results?{q}"), None, &[])
                .await
                .expect("GET /api/v1/results")
                .results()
        }
    };
    let mut stored = query("probe=fra-1&limit=1000".into()).await;
    keys(&stored);
    stored.sort_by_key(|r| r.seq);
    assert_eq!(stored, fra, "results come back exactly once, as sent");

    let ids = |rs: &[CheckResult]| -> Vec<(String, u64)> {
        rs.iter().map(|r| (r.probe_id.clone(), r.seq)).collect()
    };
    let www = query("check=www".into()).await;
    assert_eq!(www.len(), 6 + 4);
    assert!(www.iter().all(|r| r.check_id == "www"));
    let acme = query("vendor=acme".into()).await;
    assert_eq!(acme.len(), 6);
    assert!(acme.iter().all(|r| r.vendor == "acme"));
    let us = query("region=us-east".into()).await;
    assert_eq!(keys(&us).len(), 4);
    assert!(us.iter().all(|r| r.probe_id == "iad-1"));
    let both = query("check=www&region=eu-west".into()).await;
    assert_eq!(both.len(), 6);
    assert!(both.iter().all(|r| r.probe_id == "fra-1"));

    // since is inclusive, until exclusive: results 2..=5 of fra-1 started in [at(5), at(1)).
    let window = query(format!(
        "probe=fra-1&since={}&until={}",
        ms(at(5)),
        ms(at(1))
    ))
    .await;
    assert_eq!(
        ids(&window),
        (2..=5).map(|i| ("fra-1".to_owned(), i)).collect::<Vec<_>>(),
        "newest first"
    );
    let rfc3339 = at(3)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let since = query(format!(
        "probe=fra-1&since={}",
        url_escape(&rfc3339) // `+` of an offset must not become a space
    ))
    .await;
    assert_eq!(since.len(), 4, "since as RFC 3339");
    let limited = query("probe=fra-1&limit=3".into()).await;
    assert_eq!(
        ids(&limited),
        (0..3).map(|i| ("fra-1".to_owned(), i)).collect::<Vec<_>>(),
        "the newest three"
    );

    // Bad filters are refused, not ignored.
    let r = get(c.addr, "/api/v1/results?probes=fra-1", None, &[])
        .await
        .expect("GET");
    r.assert_refused(StatusCode::BAD_REQUEST, "unknown query parameter `probes`");
    let r = get(c.addr, "/api/v1/results?since=yesterday", None, &[])
        .await
        .expect("GET");
    r.assert_refused(StatusCode::BAD_REQUEST, "`since` must be an RFC 3339 time");
    let r = get(c.addr, "/api/v1/results?limit=0", None, &[])
        .await
        .expect("GET");
    r.assert_refused(StatusCode::BAD_REQUEST, "`limit` must be from 1");
    c.assert_alive("the queries").await;
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_4xx() {
    let mut c = Coordinator::new(LIMITS_CONFIG, None);
    let token = c.add_probe("fra-1", "eu-west");
    let revoked = c.add_probe("ams-1", "eu-west");
    c.add_probe("lhr-1", "eu-west");
    c.start().await;
    let addr = c.addr;
    let now = OffsetDateTime::now_utc();
    let good = vec![result("fra-1", 0, "www", "fastcdn", now)];

    // Not JSON, and JSON that is not a batch.
    post_body(addr, Some(&token), b"{\"results\": [".to_vec())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, "not a valid result batch");
    c.assert_alive("garbage JSON").await;
    post_body(addr, Some(&token), b"\x00\xff\xfe garbage".to_vec())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, "not a valid result batch");
    post_body(addr, Some(&token), b"{\"checks\": []}".to_vec())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, "missing field `results`");
    post_body(addr, Some(&token), b"[1, 2, 3]".to_vec())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, "not a valid result batch");
    // r12: a result that cannot be read is refused alone; the rest of its batch is stored.
    let mut half = serde_json::to_value(&good[0]).expect("to value");
    half.as_object_mut().expect("object").remove("started_at");
    let whole = serde_json::to_value(result("fra-1", 10, "www", "fastcdn", now)).expect("value");
    let ack = post_body(
        addr,
        Some(&token),
        serde_json::to_vec(&serde_json::json!({ "results": [half, whole] })).expect("encode"),
    )
    .await
    .ack();
    assert_eq!(ack.accepted, 1, "{ack:?}");
    assert_eq!(ack.refused.len(), 1, "{ack:?}");
    assert_eq!(ack.refused[0].index, 0);
    assert_eq!(ack.refused[0].reason, RefusalReason::Invalid);
    assert!(
        ack.refused[0]
            .message
            .contains("missing field `started_at`"),
        "{ack:?}"
    );
    // r12: a newer probe's fields (in the batch, a result and its facts) are ignored and
    // counted, and the result is stored.
    let mut newer =
        serde_json::to_value(result("fra-1", 11, "www", "fastcdn", now)).expect("value");
    newer["from_the_future"] = serde_json::json!({"nested": true});
    newer["facts"]["also_new"] = serde_json::json!(1);
    let ack = post_body(
        addr,
        Some(&token),
        serde_json::to_vec(&serde_json::json!({ "results": [newer], "envelope_field": 1 }))
            .expect("encode"),
    )
    .await
    .ack();
    assert_eq!((ack.accepted, ack.refused.len()), (1, 0), "{ack:?}");
    let metrics = get(addr, "/metrics", None, &[])
        .await
        .expect("GET /metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("vantage_result_unknown_fields_total 3"),
        "{text}"
    );
    c.assert_alive("JSON that is not a batch").await;

    // Larger than max_body_bytes, with a truthful Content-Length and chunked.
    let big = body_of(
        &(0..6000)
            .map(|i| result("fra-1", i, "www", "fastcdn", now))
            .collect::<Vec<_>>(),
    );
    assert!(big.len() > 2_097_152, "{} bytes", big.len());
    let r = raw(
        addr,
        post_head(&token, &format!("Content-Length: {}", big.len())),
        usize::MAX,
        big.clone(),
        usize::MAX,
        Duration::ZERO,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(r.status(), Some(413), "{}", r.text());
    assert!(
        r.error().contains("larger than 2097152 bytes"),
        "{}",
        r.error()
    );
    c.assert_alive("an oversized body with Content-Length")
        .await;
    let r = raw(
        addr,
        post_head(&token, "Transfer-Encoding: chunked"),
        usize::MAX,
        chunked(&big),
        usize::MAX,
        Duration::ZERO,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(r.status(), Some(413), "{}", r.text());
    assert!(
        r.error().contains("larger than 2097152 bytes"),
        "{}",
        r.error()
    );
    c.assert_alive("an oversized chunked body").await;

    // Tokens: missing, wrong, revoked while the server runs.
    let r = post_body(addr, None, body_of(&good)).await;
    r.assert_refused(
        StatusCode::UNAUTHORIZED,
        "missing `Authorization: Bearer <probe token>`",
    );
    assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
    post_body(addr, Some("vtp_not-a-real-token"), body_of(&good))
        .await
        .assert_refused(StatusCode::UNAUTHORIZED, "the probe token is not valid");
    let ams = vec![result("ams-1", 0, "www", "fastcdn", now)];
    assert_eq!(post_batch(addr, &revoked, &ams).await.ack().accepted, 1);
    c.revoke_probe("ams-1");
    post_batch(addr, &revoked, &ams)
        .await
        .assert_refused(StatusCode::UNAUTHORIZED, "revoked");
    get(addr, "/api/v1/probe/config", Some(&revoked), &[])
        .await
        .expect("GET config")
        .assert_refused(StatusCode::UNAUTHORIZED, "revoked");
    c.assert_alive("bad tokens").await;

    // r12: each bad result is refused alone, with its index and why, and every good one in
    // the same batch is stored: a clock an hour ahead, a 1 MB message, another probe's result,
    // a check this probe does not run.
    let mut huge = result("fra-1", 2, "www", "fastcdn", now);
    huge.message = Some("x".repeat(1 << 20));
    let batch = [
        result("fra-1", 1, "www", "fastcdn", now + time::Duration::hours(1)),
        result("fra-1", 3, "www", "fastcdn", now),
        huge,
        result("lhr-1", 0, "www", "fastcdn", now),
        result("fra-1", 4, "nope", "fastcdn", now),
        result("fra-1", 5, "www", "fastcdn", now),
    ];
    let ack = post_batch(addr, &token, &batch).await.ack();
    assert_eq!(ack.accepted, 2, "{ack:?}");
    let refused: Vec<(usize, RefusalReason)> =
        ack.refused.iter().map(|r| (r.index, r.reason)).collect();
    assert_eq!(
        refused,
        [
            (0, RefusalReason::ClockSkew),
            (2, RefusalReason::TooLarge),
            (3, RefusalReason::WrongProbe),
            (4, RefusalReason::NotSelected),
        ]
    );
    let say = |i: usize| ack.refused[i].message.clone();
    assert!(say(0).contains("clock skew"), "{}", say(0));
    assert!(
        say(1).contains("message is 1048576 bytes; at most 4096"),
        "{}",
        say(1)
    );
    assert!(
        say(2).contains(
            "results[3] (check `www`, seq 0): probe_id `lhr-1` is not the probe this token belongs to (`fra-1`)"
        ),
        "{}",
        say(2)
    );
    assert!(say(3).contains("no check by this id"), "{}", say(3));
    c.assert_alive("a batch of bad results").await;

    // More results than a batch may hold: refused whole, as too large, so the probe splits it.
    let many: Vec<CheckResult> = (100..1101)
        .map(|i| result("fra-1", i, "www", "fastcdn", now))
        .collect();
    post_batch(addr, &token, &many)
        .await
        .assert_refused(StatusCode::PAYLOAD_TOO_LARGE, "at most 1000 are allowed");

    // Wrong method and path.
    get(addr, "/api/v1/nope", None, &[])
        .await
        .expect("GET")
        .assert_refused(StatusCode::NOT_FOUND, "no such endpoint: /api/v1/nope");
    send(
        addr,
        Method::DELETE,
        "/api/v1/results",
        Some(&token),
        &[],
        Bytes::new(),
    )
    .await
    .expect("DELETE")
    .assert_refused(StatusCode::METHOD_NOT_ALLOWED, "DELETE is not allowed");

    // Only the good results of those batches were stored; the good one still goes through.
    let stored = get(addr, "/api/v1/results?probe=fra-1", None, &[])
        .await
        .expect("GET")
        .results();
    let mut seqs: Vec<u64> = stored.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [3, 5, 10, 11], "stored: {stored:?}");
    let ack = post_batch(addr, &token, &good).await.ack();
    assert_eq!(ack.accepted, 1);
    c.assert_alive("all the bad input").await;
}

#[tokio::test]
async fn slow_headers_are_cut_off_while_others_are_served() {
    let mut c = Coordinator::new(LIMITS_CONFIG, None);
    let token = c.add_probe("fra-1", "eu-west");
    c.start().await;
    let addr = c.addr;
    let head = post_head(&token, "Content-Length: 2");
    assert!(
        head.len() > 60,
        "the head takes a minute at a byte a second"
    );
    let slow = tokio::spawn(raw(
        addr,
        head,
        1,
        b"{}".to_vec(),
        1,
        Duration::from_secs(1),
        REQUEST_TIMEOUT + MARGIN,
    ));
    // The same, for the second request on a kept-alive connection.
    let second = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: vantage\r\n\r\n")
            .await
            .expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.ends_with(b"ok\n") {
            let n = stream.read(&mut buf).await.expect("read the first answer");
            assert!(n > 0, "closed before answering: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
        let start = Instant::now();
        let (mut rd, mut wr) = stream.into_split();
        let trickle = tokio::spawn(async move {
            for b in b"GET /healthz HTTP/1.1\r\nHost: vantage\r\nX-Padding: slowly\r\n\r\n" {
                if wr.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            std::future::pending::<()>().await;
        });
        let closed = tokio::time::timeout(REQUEST_TIMEOUT + MARGIN, async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok();
        trickle.abort();
        (closed, start.elapsed())
    });
    // Meanwhile, other clients are served.
    let now = OffsetDateTime::now_utc();
    for seq in 0..3 {
        let ack = post_batch(addr, &token, &[result("fra-1", seq, "www", "fastcdn", now)])
            .await
            .ack();
        assert_eq!(ack.accepted, 1);
    }
    let slow = slow.await.expect("slow client task");
    assert!(
        slow.closed,
        "the server kept a client sending a byte a second for {:?}",
        slow.elapsed
    );
    assert!(
        slow.elapsed >= REQUEST_TIMEOUT - Duration::from_millis(200),
        "closed after {:?}, before the request timeout",
        slow.elapsed
    );
    assert_ne!(slow.status(), Some(200), "{}", slow.text());
    let (closed, elapsed) = second.await.expect("keep-alive client task");
    assert!(
        closed,
        "the server kept a second request arriving a byte a second for {elapsed:?}"
    );
    c.assert_alive("a slow client").await;
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    // Slowloris without a single byte: the connection must not be held forever.
    let mut c = Coordinator::new(LIMITS_CONFIG, None);
    c.start().await;
    let silent = raw(
        c.addr,
        Vec::new(),
        usize::MAX,
        Vec::new(),
        usize::MAX,
        Duration::ZERO,
        REQUEST_TIMEOUT + MARGIN,
    )
    .await;
    assert!(
        silent.closed,
        "a connection that sent nothing was kept for {:?}",
        silent.elapsed
    );
    assert!(silent.bytes.is_empty(), "{}", silent.text());
    // The HTTP/2 preface a byte a second: the protocol is not even known yet.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    let slow = raw(
        c.addr,
        preface,
        1,
        Vec::new(),
        usize::MAX,
        Duration::from_secs(1),
        REQUEST_TIMEOUT + MARGIN,
    )
    .await;
    assert!(
        slow.closed,
        "a client sending the HTTP/2 preface a byte a second was kept for {:?}",
        slow.elapsed
    );
    c.assert_alive("a silent client").await;
}

#[tokio::test]
async fn a_slow_body_gets_408() {
    let mut c = Coordinator::new(LIMITS_CONFIG, None);
    let token = c.add_probe("fra-1", "eu-west");
    c.start().await;
    let body = body_of(&[result(
        "fra-1",
        0,
        "www",
        "fastcdn",
        OffsetDateTime::now_utc(),
    )]);
    let r = raw(
        c.addr,
        post_head(&token, &format!("Content-Length: {}", body.len())),
        usize::MAX,
        body,
        1,
        Duration::from_secs(1),
        REQUEST_TIMEOUT + MARGIN,
    )
    .await;
    assert!(r.closed, "still open after {:?}", r.elapsed);
    assert_eq!(r.status(), Some(408), "{}", r.text());
    assert!(
        r.error()
            .contains("the request body did not arrive within 2s"),
        "{}",
        r.error()
    );
    c.assert_alive("a slow body").await;
}

const CHECKS: &str = r#"
[[vendor]]
id = "acme"
name = "Acme"

[[check]]
id = "eu-db"
vendor = "acme"
kind = "tcp"
target = "192.0.2.1:5432"
probes = { regions = ["eu-west"] }

[[check]]
id = "everywhere"
vendor = "acme"
kind = "tcp"
target = "192.0.2.2:443"
"#;

/// The ids of the checks in a probe's config, in order.
fn ids(doc: &ProbeConfig) -> Vec<&str> {
    doc.checks.iter().map(|c| c.id.as_str()).collect()
}

#[tokio::test]
async fn probe_config_has_an_etag_and_hot_reloads() {
    let mut c = Coordinator::new("", Some(CHECKS));
    let eu = c.add_probe("fra-1", "eu-west");
    let us = c.add_probe("iad-1", "us-east");
    c.start().await;
    let addr = c.addr;
    let config = |token: String, etag: Option<String>| async move {
        let headers: Vec<(&str, &str)> = match &etag {
            Some(e) => vec![("if-none-match", e.as_str())],
            None => Vec::new(),
        };
        get(addr, "/api/v1/probe/config", Some(&token), &headers)
            .await
            .expect("GET /api/v1/probe/config")
    };
    let etag_of = |r: &Reply| -> String {
        r.headers
            .get(header::ETAG)
            .expect("an ETag")
            .to_str()
            .expect("ascii")
            .to_owned()
    };

    let r = config(eu.clone(), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.error());
    let doc: ProbeConfig = serde_json::from_slice(&r.body).expect("probe config");
    assert_eq!(
        (doc.probe_id.as_str(), doc.region.as_str()),
        ("fra-1", "eu-west")
    );
    assert_eq!(ids(&doc), ["eu-db", "everywhere"]);
    let etag = etag_of(&r);
    let r = config(us.clone(), None).await;
    let doc: ProbeConfig = serde_json::from_slice(&r.body).expect("probe config");
    assert_eq!(ids(&doc), ["everywhere"], "eu-db is for eu-west only");
    // Sent resolved: the built-in defaults are applied, the target parsed.
    let everywhere = &doc.checks[0];
    assert_eq!(everywhere.settings.interval, Duration::from_secs(10));
    assert!(
        matches!(&everywhere.spec, CheckSpec::Tcp(t) if t.target.to_string() == "192.0.2.2:443"),
        "{everywhere:?}"
    );
    let us_etag = etag_of(&r);
    assert_ne!(us_etag, etag, "each probe's document has its own tag");

    let r = config(eu.clone(), Some(etag.clone())).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(etag_of(&r), etag);
    config(eu.clone(), None)
        .await
        .headers
        .get(header::ETAG)
        .filter(|e| **e == *etag)
        .expect("the same document has the same tag");
    get(addr, "/api/v1/probe/config", None, &[])
        .await
        .expect("GET")
        .assert_refused(StatusCode::UNAUTHORIZED, "missing `Authorization");

    // A good edit is served within a few seconds.
    let edited = format!(
        "{CHECKS}\n[[check]]\nid = \"eu-api\"\nvendor = \"acme\"\nkind = \"tcp\"\ntarget = \"192.0.2.3:443\"\nprobes = {{ regions = [\"eu-west\"] }}\n"
    );
    std::fs::write(c.path("checks.toml"), &edited).expect("edit checks");
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = config(eu.clone(), Some(etag.clone())).await;
        if r.status != StatusCode::NOT_MODIFIED {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the edit was not picked up:\n{}",
            c.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(r.status, StatusCode::OK);
    let doc: ProbeConfig = serde_json::from_slice(&r.body).expect("probe config");
    assert_eq!(ids(&doc), ["eu-db", "everywhere", "eu-api"]);
    let new_etag = etag_of(&r);
    assert_ne!(new_etag, etag);
    assert_eq!(
        config(us.clone(), Some(us_etag.clone())).await.status,
        StatusCode::NOT_MODIFIED,
        "a check for eu-west only changes nothing for a probe in us-east"
    );

    // A bad edit keeps the last good checks and says why on /readyz.
    std::fs::write(c.path("checks.toml"), format!("{edited}\n[[check]\nid = ")).expect("break");
    let deadline = Instant::now() + Duration::from_secs(15);
    let ready = loop {
        let r = get(addr, "/readyz", None, &[]).await.expect("GET /readyz");
        let v = r.json();
        if !v["checks_error"].is_null() {
            assert_eq!(r.status, StatusCode::OK, "the old checks still serve");
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the bad edit was not reported: {v}\n{}",
            c.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let why = ready["checks_error"].as_str().expect("a message");
    assert!(why.contains("checks.toml"), "names the file: {why}");
    assert_eq!(ready["checks"], 3, "{ready}");
    // …and in a metric, for alerting on a coordinator stuck on old checks.
    let metrics = get(addr, "/metrics", None, &[])
        .await
        .expect("GET /metrics");
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    for line in [
        "vantage_checks_config_error 1",
        "vantage_checks_loaded 3",
        "vantage_checks_reload_failures_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}`:\n{text}");
    }
    let r = config(eu.clone(), Some(new_etag.clone())).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_MODIFIED,
        "still the last good checks"
    );
    let r = config(eu.clone(), None).await;
    let doc: ProbeConfig = serde_json::from_slice(&r.body).expect("probe config");
    assert_eq!(ids(&doc), ["eu-db", "everywhere", "eu-api"]);

    // Fixing the file clears the error.
    std::fs::write(c.path("checks.toml"), CHECKS).expect("fix");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = get(addr, "/readyz", None, &[])
            .await
            .expect("readyz")
            .json();
        if v["checks_error"].is_null() && v["checks"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the fix was not picked up: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = config(eu.clone(), Some(etag.clone())).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_MODIFIED,
        "the same checks give the same tag again"
    );
    c.assert_alive("reloads").await;
}

#[tokio::test]
async fn acknowledged_results_survive_kill_9() {
    let mut c = Coordinator::new("", None);
    let token = c.add_probe("fra-1", "eu-west");
    c.start().await;
    let now = OffsetDateTime::now_utc();
    let sent: Vec<CheckResult> = (0..1000)
        .map(|i| {
            result(
                "fra-1",
                i,
                &format!("check-{}", i % 7),
                "acme",
                // Each check's runs 70 s apart: no more than its interval allows.
                now - time::Duration::seconds(10 * i as i64),
            )
        })
        .collect();
    for batch in sent.chunks(100) {
        let ack = post_batch(c.addr, &token, batch).await.ack();
        assert_eq!(ack.accepted, 100);
    }
    // The last 200 has just arrived: no time for anything to be flushed later.
    c.kill();
    c.start().await;
    let stored = get(c.addr, "/api/v1/results?probe=fra-1&limit=10000", None, &[])
        .await
        .expect("GET")
        .results();
    assert_eq!(
        stored.len(),
        sent.len(),
        "every acknowledged result is there"
    );
    assert_eq!(keys(&stored), keys(&sent), "each exactly once");
    let ack = post_batch(c.addr, &token, &sent[900..]).await.ack();
    assert_eq!((ack.accepted, ack.duplicates), (0, 100));
    c.assert_alive("the restart").await;
}

/// Issue 12: runs of one check past what its interval allows, all started in one minute (a
/// stolen token replaying backdated failures), are refused one by one; the rest are stored.
#[tokio::test]
async fn r12_a_replay_past_the_runs_an_interval_allows_is_capped() {
    let mut c = Coordinator::new("", None);
    let token = c.add_probe("fra-1", "eu-west");
    c.start().await;
    let addr = c.addr;
    let now = OffsetDateTime::now_utc();
    let minute_ago = now - time::Duration::seconds(60 + now.second() as i64);
    let flood: Vec<CheckResult> = (0..600)
        .map(|i| {
            let mut r = result("fra-1", 1000 + i, "api", "acme", minute_ago);
            r.started_at += time::Duration::milliseconds(i as i64 * 50);
            r
        })
        .collect();
    let ack = post_batch(addr, &token, &flood).await.ack();
    assert!(ack.accepted > 0 && ack.accepted < 600, "{ack:?}");
    assert_eq!(ack.accepted as usize + ack.refused.len(), 600);
    assert!(
        ack.refused
            .iter()
            .all(|r| r.reason == RefusalReason::RateLimited),
        "{:?}",
        ack.refused.first()
    );
    let stored = get(addr, "/api/v1/results?probe=fra-1&limit=10000", None, &[])
        .await
        .expect("GET")
        .results();
    assert_eq!(stored.len() as u64, ack.accepted);
    c.assert_alive("a replay").await;
}

/// Issue 12: raw result queries are four at once, counting an answer until it is sent; a
/// fifth gets `429` with `Retry-After` at once. Four readers that ask for a big answer and
/// never read it hold the four; when they go, queries are answered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_raw_result_queries_past_four_at_once_get_429() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut c = Coordinator::new("[limits]\nrequest_timeout = \"60s\"\n", None);
    let token = c.add_probe("fra-1", "eu-west");
    c.start().await;
    let now = OffsetDateTime::now_utc();
    // 6,000 results of 3 KB each: an answer of about 20 MB, more than loopback buffers hold.
    let results: Vec<CheckResult> = (0..6000)
        .map(|i| {
            let mut r = result(
                "fra-1",
                i,
                &format!("check-{}", i % 20),
                "acme",
                now - time::Duration::seconds(i as i64),
            );
            r.message = Some("x".repeat(3000));
            r
        })
        .collect();
    for batch in results.chunks(1000) {
        assert_eq!(post_batch(c.addr, &token, batch).await.ack().accepted, 1000);
    }
    // Four readers whose answers have begun (a `200` status line read, nothing more), so
    // that each surely holds a place before the fifth asks.
    let mut stalled = Vec::new();
    while stalled.len() < 4 {
        let mut s = tokio::net::TcpStream::connect(c.addr)
            .await
            .expect("connect");
        s.write_all(
            format!(
                "GET /api/v1/results?limit=10000 HTTP/1.1\r\nHost: {}\r\n\r\n",
                c.addr
            )
            .as_bytes(),
        )
        .await
        .expect("send");
        let mut status = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut status))
            .await
            .expect("an answer within 30 s")
            .expect("read the status line");
        assert_eq!(
            &status, b"HTTP/1.1 200",
            "a stalled reader's query was refused"
        );
        stalled.push(s);
    }
    // Their answers are made and stuck in the sockets: the fifth is turned away.
    let r = get(c.addr, "/api/v1/results?limit=1", None, &[])
        .await
        .expect("GET");
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.error());
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert!(
        r.error().contains("raw result queries are running"),
        "{}",
        r.error()
    );
    // Not only while the four queries run: for as long as their answers are not taken.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = get(c.addr, "/api/v1/results?limit=1", None, &[])
        .await
        .expect("GET");
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.error());
    // Readers that go away give their places back.
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(c.addr, "/api/v1/results?limit=1", None, &[])
            .await
            .expect("GET");
        if r.status == StatusCode::OK {
            assert_eq!(r.results().len(), 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {}: {}",
            r.status,
            r.error()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.assert_alive("stalled readers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_429_and_retry_after() {
    const REQUESTS: usize = 200;
    const CONCURRENCY: usize = 16;
    const BATCH: u64 = 500;
    let mut c = Coordinator::new("[limits]\nqueue_batches = 1\n", None);
    let token = c.add_probe("fra-1", "eu-west");
    c.start().await;
    let now = OffsetDateTime::now_utc();
    // Every request a distinct batch, pre-encoded so the clients are quick.
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..REQUESTS as u64)
            .map(|n| {
                let rs: Vec<CheckResult> = (0..BATCH)
                    .map(|i| {
                        // A second apart: each check's runs 20 s apart, as its interval allows.
                        let seq = n * BATCH + i;
                        result(
                            "fra-1",
                            seq,
                            &format!("check-{}", i % 20),
                            "acme",
                            now - time::Duration::seconds(seq as i64),
                        )
                    })
                    .collect();
                Bytes::from(body_of(&rs))
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (bodies, next, token, addr) = (
            Arc::clone(&bodies),
            Arc::clone(&next),
            token.clone(),
            c.addr,
        );
        workers.spawn(async move {
            let mut answers = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(n) else {
                    return answers;
                };
                let r = send(
                    addr,
                    Method::POST,
                    "/api/v1/results",
                    Some(&token),
                    &[],
                    body.clone(),
                )
                .await;
                answers.push((n, r));
            }
        });
    }
    let (mut ok, mut shed, mut accepted) = (0, 0, 0);
    while let Some(answers) = workers.join_next().await {
        for (n, r) in answers.expect("worker") {
            let r = r.unwrap_or_else(|e| panic!("request {n}: the connection failed: {e}"));
            match r.status {
                StatusCode::OK => {
                    ok += 1;
                    accepted += r.ack().accepted;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    shed += 1;
                    let retry: u64 = r
                        .headers
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or_else(|| panic!("request {n}: a 429 without Retry-After"));
                    assert!(retry >= 1);
                    // One probe alone: its share of the queue, or the whole queue, is full.
                    assert!(
                        r.error().contains("busy") || r.error().contains("its share"),
                        "{}",
                        r.error()
                    );
                }
                s => panic!("request {n}: {s}: {}", String::from_utf8_lossy(&r.body)),
            }
        }
    }
    eprintln!("{ok} batches committed, {shed} shed with 429");
    assert_eq!(ok + shed, REQUESTS);
    assert!(ok > 0, "nothing got through");
    assert_eq!(accepted, ok as u64 * BATCH);
    // What was acknowledged is what is stored: count it in the database itself.
    let db = rusqlite::Connection::open_with_flags(
        c.path("data").join("vantage.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the store");
    let stored: i64 = db
        .query_row(
            "SELECT count(*) FROM results WHERE probe_id = 'fra-1'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(u64::try_from(stored).ok(), Some(accepted));
    c.assert_alive("the overload").await;
}

/// One HTTP/1.1 POST of a batch from `source` (a loopback address of its own).
async fn post_from(
    source: [u8; 4],
    addr: SocketAddr,
    token: &str,
    results: &[CheckResult],
) -> StatusCode {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind the source address");
    let stream = socket.connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::post("/api/v1/results")
        .header(header::HOST, addr.to_string())
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(Bytes::from(body_of(results))))
        .expect("request");
    sender.send_request(req).await.expect("POST").status()
}

/// Issue 12: a few hundred HTTP/2 connections from one address neither keep a probe's push
/// out nor stay open: those past the address's share are closed on arrival (the server never
/// stops accepting), the rest once idle for `idle_timeout` after their last request, and a
/// probe on another address pushes all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_idle_http2_connections_are_shed_or_closed_while_a_probe_pushes() {
    let mut c = Coordinator::new(
        "[limits]\nidle_timeout = \"2s\"\nmax_connections_per_address = 100\n",
        None,
    );
    let token = c.add_probe("fra-1", "eu-west");
    c.start().await;
    let addr = c.addr;
    // Each: an HTTP/2 handshake (prior knowledge), one request, then silence until the
    // server closes it. Returns (served, seconds from the answer to the close).
    let mut idle = tokio::task::JoinSet::new();
    for _ in 0..300 {
        idle.spawn(async move {
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                return (false, 0.0);
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            let Ok((mut sender, conn)) = hyper::client::conn::http2::handshake::<
                _,
                _,
                http_body_util::Empty<Bytes>,
            >(hyper_util::rt::TokioExecutor::new(), io)
            .await
            else {
                return (false, 0.0);
            };
            let conn = tokio::spawn(conn);
            let req = http::Request::get(format!("http://{addr}/healthz"))
                .body(http_body_util::Empty::new())
                .expect("request");
            if !sender
                .send_request(req)
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
            {
                return (false, 0.0);
            }
            let answered = Instant::now();
            // Held open by the client; only the server ends it.
            match tokio::time::timeout(Duration::from_secs(30), conn).await {
                Ok(_) => (true, answered.elapsed().as_secs_f64()),
                Err(_) => (true, f64::INFINITY),
            }
        });
    }
    // Meanwhile a probe on another address pushes.
    let now = OffsetDateTime::now_utc();
    for seq in 0..5 {
        let status = post_from(
            [127, 0, 0, 2],
            addr,
            &token,
            &[result("fra-1", seq, "www", "fastcdn", now)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "push {seq}");
    }
    let mut served = Vec::new();
    let mut shed = 0;
    while let Some(done) = idle.join_next().await {
        match done.expect("connection task") {
            (true, closed_after) => served.push(closed_after),
            (false, _) => shed += 1,
        }
    }
    assert!(
        served.len() <= 100,
        "{} served past the share of 100",
        served.len()
    );
    assert!(shed >= 200, "{shed} shed");
    assert!(
        served.iter().all(|s| (1.0..=5.0).contains(s)),
        "idle connections closed about 2 s after their last request: {served:?}"
    );
    let metrics = get(addr, "/metrics", None, &[])
        .await
        .expect("GET /metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    let per_address = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("vantage_connections_shed_total{reason=\"per_address\"} ")?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    assert!(per_address >= 200.0, "{text}");
    c.assert_alive("hundreds of idle connections").await;
}
