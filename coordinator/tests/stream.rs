//! End-to-end tests of the live stream (`GET /api/v1/stream`) on a real coordinator process.
//!
//! Six registered probes in three regions "push" results the test makes up, while several
//! consumers read the stream at once: one takes everything, four take filtered views, and one
//! is a raw TCP socket with a small receive buffer that sends its request and then stops
//! reading. Ingest must not notice the stalled one; it must be dropped with a last event that
//! says why, and a consumer that never reads again must be cut off. Nothing sleeps to wait:
//! every wait polls with a deadline while the probes keep pushing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vantage_checks::result::{CheckResult, FailureKind, Status};

mod support;

use support::*;

/// The reader token of the first test's coordinator.
const API_TOKEN: &str = "t0ken-for-the-live-stream-readers-0123";

const SETTLE: Duration = Duration::from_secs(30);

/// One Server-Sent Event.
#[derive(Clone, Debug, PartialEq)]
struct Sse {
    id: Option<u64>,
    event: String,
    data: Value,
}

/// Splits complete events off the front of `buf`; comments (keepalives) are skipped.
fn parse_events(buf: &mut String) -> Vec<Sse> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let (mut id, mut event, mut data) = (None, String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().expect("numeric id"));
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            } else {
                assert!(
                    line.is_empty() || line.starts_with(':'),
                    "not an SSE line: {line:?}"
                );
            }
        }
        if !event.is_empty() {
            let data = serde_json::from_str(&data).unwrap_or_else(|e| {
                panic!("data of `{event}` is not one JSON object ({e}): {data}")
            });
            out.push(Sse { id, event, data });
        }
    }
    out
}

/// A consumer reading the stream over hyper, as fast as it comes.
struct Consumer {
    query: String,
    events: Arc<Mutex<Vec<Sse>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Consumer {
    async fn connect(addr: SocketAddr, query: &str, token: Option<&str>) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut req =
            Request::get(format!("/api/v1/stream{query}")).header(header::HOST, addr.to_string());
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = sender
            .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
            .await
            .expect("GET /api/v1/stream");
        assert_eq!(resp.status(), StatusCode::OK, "GET /api/v1/stream{query}");
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        let events: Arc<Mutex<Vec<Sse>>> = Arc::default();
        let sink = Arc::clone(&events);
        let mut body = resp.into_body();
        // The subscription exists once the headers are here: the handler subscribes first.
        let reader = tokio::spawn(async move {
            let _sender = sender;
            let mut buf = String::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    buf.push_str(std::str::from_utf8(&data).expect("utf-8"));
                    let parsed = parse_events(&mut buf);
                    sink.lock().expect("lock").extend(parsed);
                }
            }
        });
        Self {
            query: query.to_owned(),
            events,
            reader,
        }
    }

    fn events(&self) -> Vec<Sse> {
        self.events.lock().expect("lock").clone()
    }

    fn results(&self) -> usize {
        let events = self.events.lock().expect("lock");
        events.iter().filter(|e| e.event == "result").count()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A consumer that sends its request, reads the response head and then stops reading, with
/// a receive buffer as small as the kernel allows.
struct Stalled {
    socket: tokio::net::TcpStream,
    read: Vec<u8>,
}

impl Stalled {
    async fn connect(addr: SocketAddr, token: Option<&str>) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let mut socket = socket.connect(addr).await.expect("connect");
        let auth = token.map_or_else(String::new, |t| format!("authorization: Bearer {t}\r\n"));
        let req = format!("GET /api/v1/stream HTTP/1.1\r\nhost: {addr}\r\n{auth}\r\n");
        socket
            .write_all(req.as_bytes())
            .await
            .expect("send request");
        let mut s = Self {
            socket,
            read: Vec::new(),
        };
        let deadline = Instant::now() + SETTLE;
        while !s.read.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 512];
            let n = tokio::time::timeout_at(deadline.into(), s.socket.read(&mut chunk))
                .await
                .expect("the response head in time")
                .expect("read");
            assert!(n > 0, "closed before the response head");
            s.read.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&s.read).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        s
    }

    /// Reads on until the server closes the connection; returns the body's events and
    /// whether the chunked body ended properly.
    async fn read_to_end(mut self, within: Duration) -> (Vec<Sse>, bool) {
        let deadline = Instant::now() + within;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::time::timeout_at(deadline.into(), self.socket.read(&mut chunk))
                .await
                .expect("the server closes the stalled consumer's connection");
            match n {
                Ok(0) | Err(_) => break,
                Ok(n) => self.read.extend_from_slice(&chunk[..n]),
            }
        }
        let at = self
            .read
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head")
            + 4;
        let (body, complete) = dechunk(&self.read[at..]);
        let mut text = String::from_utf8(body).expect("utf-8");
        (parse_events(&mut text), complete)
    }
}

/// The payload of a chunked body, and whether its last chunk arrived.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .expect("chunk size");
        raw = &raw[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        if raw.len() < size + 2 {
            return (out, false);
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// The world: a coordinator, six registered probes and their tokens, what was pushed.
struct World {
    coordinator: Coordinator,
    tokens: BTreeMap<&'static str, String>,
    token: Option<&'static str>,
    seq: u64,
    /// Runs per probe and check in one pushed batch (as from a probe that was briefly cut
    /// off), so that a few pushes fill a stalled consumer's buffers.
    runs: usize,
    pushed: Vec<(String, CheckResult)>,
    posts: usize,
}

impl World {
    async fn start(config: &str, token: Option<&'static str>) -> Self {
        // These tests push far more runs a minute than any probe makes: no cap on them.
        let config = if config.contains("[limits]\n") {
            config.replace("[limits]\n", "[limits]\nmax_runs_per_interval = 0\n")
        } else {
            format!("{config}\n[limits]\nmax_runs_per_interval = 0\n")
        };
        let coordinator = Coordinator::new(&config, Some(&two_vendor_checks("1s")));
        if let Some(t) = token {
            std::fs::write(coordinator.path("api.token"), format!("{t}\n")).expect("token");
        }
        let tokens = PROBES
            .iter()
            .map(|(p, r)| (*p, coordinator.add_probe(p, r)))
            .collect();
        let mut w = Self {
            coordinator,
            tokens,
            token,
            seq: 0,
            runs: 4,
            pushed: Vec::new(),
            posts: 0,
        };
        w.coordinator.start().await;
        w
    }

    /// One round: every probe pushes `runs` runs of every check; `fails(probe, check)`
    /// decides. Every push must be acknowledged.
    async fn round(&mut self, fails: impl Fn(&str, &str) -> bool) {
        let now = OffsetDateTime::now_utc();
        for (probe, region) in PROBES {
            let mut batch = Vec::new();
            for (check, vendor) in [("acme-www", "acme"), ("fast-css", "fastcdn")] {
                for run in 0..self.runs {
                    self.seq += 1;
                    let at = now - time::Duration::milliseconds(10 * run as i64);
                    let mut r: CheckResult = result(probe, self.seq, check, vendor, at);
                    if fails(probe, check) {
                        r.status = Status::Fail;
                        r.failure = Some(FailureKind::ConnectTimeout);
                        r.message = Some("connecting took longer than 800ms".into());
                    } else {
                        r.status = Status::Ok;
                        r.failure = None;
                        r.message = None;
                    }
                    batch.push(r);
                }
            }
            let reply = post_batch(self.coordinator.addr, &self.tokens[probe], &batch).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "push from {probe}: {:?}",
                reply.body
            );
            self.posts += 1;
            self.pushed
                .extend(batch.into_iter().map(|r| (region.to_owned(), r)));
        }
    }

    async fn metrics(&self) -> String {
        let r = get(self.coordinator.addr, "/metrics", self.token, &[])
            .await
            .expect("GET /metrics");
        String::from_utf8_lossy(&r.body).into_owned()
    }

    /// The value of one sample in `/metrics`.
    async fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample `{sample}` in:\n{text}"))
    }

    /// Waits until `consumer` has a result event for everything pushed so far.
    async fn until_streamed(&self, consumer: &Consumer) {
        let deadline = Instant::now() + SETTLE;
        while consumer.results() < self.pushed.len() {
            assert!(
                Instant::now() < deadline,
                "{}: {} of {} results streamed",
                consumer.query,
                consumer.results(),
                self.pushed.len()
            );
            // Polling interval, not a wait for an event.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A pushed result as its `result` event must show it.
fn expected_event(region: &str, r: &CheckResult) -> Value {
    serde_json::json!({
        "check": r.check_id,
        "vendor": r.vendor,
        "region": region,
        "probe": r.probe_id,
        "status": r.status.as_label(),
        "failure": r.failure.map(|f| f.as_label()),
        "total_ms": r.timings.total_ms,
        "started_at": r
            .started_at
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format"),
    })
}

/// `started_at` as an instant, so that the test does not depend on how many digits of the
/// fraction the server writes.
fn normalized(mut v: Value) -> Value {
    let at = v["started_at"]
        .as_str()
        .map(|s| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .expect("started_at is RFC 3339")
        })
        .expect("started_at");
    v["started_at"] = Value::from(at.unix_timestamp_nanos().to_string());
    v
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|e| e.to_string());
    v
}

fn assert_ids_increase(who: &str, events: &[Sse]) {
    let ids: Vec<u64> = events.iter().filter_map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "{who}: ids do not increase: {ids:?}"
    );
}

fn never(_: &str, _: &str) -> bool {
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_one_stalled_filters_and_auth() {
    // A generous request_timeout: the stalled consumer is read again long after it stalled,
    // and must still be connected then to show its last event.
    let config = "[api]\ntoken_file = \"api.token\"\n\n[limits]\nrequest_timeout = \"120s\"\n";
    let mut w = World::start(config, Some(API_TOKEN)).await;
    let addr = w.coordinator.addr;
    // The kernel takes megabytes for a stalled loopback peer before the server sees it stall.
    w.runs = 20;

    // Auth like the rest of /api/v1, and filters that say what is wrong.
    for token in [None, Some("wrong")] {
        let r = get(addr, "/api/v1/stream", token, &[]).await.expect("GET");
        r.assert_refused(StatusCode::UNAUTHORIZED, "Authorization: Bearer");
    }
    for (query, want) in [
        ("?types=result,bogus", "unknown event type `bogus`"),
        ("?probe=a1", "unknown query parameter `probe`"),
        ("?vendor=", "`vendor` must not be empty"),
    ] {
        let r = get(
            addr,
            &format!("/api/v1/stream{query}"),
            Some(API_TOKEN),
            &[],
        )
        .await
        .expect("GET");
        r.assert_refused(StatusCode::BAD_REQUEST, want);
    }

    let token = w.token;
    let all = Consumer::connect(addr, "", token).await;
    let filtered = [
        Consumer::connect(addr, "?vendor=acme", token).await,
        Consumer::connect(addr, "?check=fast-css", token).await,
        Consumer::connect(addr, "?region=b", token).await,
        Consumer::connect(addr, "?types=vendor,transition", token).await,
    ];
    let stalled = Stalled::connect(addr, token).await;

    // Push until the stalled consumer is dropped, and a few rounds more.
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let dropped = "vantage_stream_dropped_consumers_total{reason=\"queue_full\"}";
    while w.metric(dropped).await < 1.0 {
        w.round(never).await;
        assert!(
            Instant::now() < deadline,
            "the stalled consumer was not dropped after {} results:\n{}",
            w.pushed.len(),
            w.coordinator.log()
        );
    }
    for _ in 0..3 {
        w.round(never).await;
    }
    let took = started.elapsed();
    println!(
        "stream: {} pushes ({} results) acknowledged in {:.2}s with a stalled consumer ({:.0} results/s)",
        w.posts,
        w.pushed.len(),
        took.as_secs_f64(),
        w.pushed.len() as f64 / took.as_secs_f64()
    );

    // The healthy consumer has every result, exactly as pushed.
    w.until_streamed(&all).await;
    let got: Vec<Value> = all
        .events()
        .into_iter()
        .filter(|e| e.event == "result")
        .map(|e| normalized(e.data))
        .collect();
    let want: Vec<Value> = w
        .pushed
        .iter()
        .map(|(region, r)| normalized(expected_event(region, r)))
        .collect();
    assert_eq!(got.len(), want.len(), "one event per result");
    assert_eq!(sorted(got), sorted(want), "the events show the results");

    // The stalled consumer, read at last: what it was sent in order, then why it was
    // dropped, then the end of the response and of the connection.
    let (events, complete) = stalled.read_to_end(SETTLE).await;
    let (last, before) = events.split_last().expect("some events");
    assert_eq!(last.event, "dropped", "last: {last:?}");
    let reason = last.data["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("slow consumer: "), "{reason}");
    assert!(complete, "the response ended properly after the last event");
    let full = all.events();
    assert!(
        !before.is_empty() && before.len() < full.len(),
        "{} events before the drop",
        before.len()
    );
    assert!(
        before == &full[..before.len()],
        "the stalled consumer got the same events in the same order until it was dropped"
    );
    println!(
        "stream: the stalled consumer read {} events, then: {reason}",
        before.len()
    );

    // A vendor goes down: the transitions, the vendor's new state and the incident follow.
    let acme_down = |_: &str, check: &str| check == "acme-www";
    let deadline = Instant::now() + SETTLE;
    loop {
        w.round(acme_down).await;
        let events = all.events();
        let vendor_down = events.iter().any(|e| {
            e.event == "vendor"
                && e.data["vendor"] == "acme"
                && e.data["region"].is_null()
                && e.data["to"] == "hard_down"
        });
        let incident = events.iter().any(|e| {
            e.event == "incident" && e.data["vendor"] == "acme" && e.data["kind"] == "opened"
        });
        if vendor_down && incident {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acme's fall was not streamed: {:?}\n{}",
            events
                .iter()
                .filter(|e| e.event != "result")
                .collect::<Vec<_>>(),
            w.coordinator.log()
        );
        // The probes' cadence, not a wait for an event.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    w.until_streamed(&all).await;
    let events = all.events();
    assert_ids_increase("all", &events);
    assert!(events.iter().all(|e| e.event != "dropped"));
    let transition = events
        .iter()
        .find(|e| {
            e.event == "transition"
                && e.data["check"] == "acme-www"
                && e.data["scope"] == "global"
                && e.data["to"] == "failing"
        })
        .unwrap_or_else(|| panic!("no global transition of acme-www to failing: {events:?}"));
    assert_eq!(transition.data["vendor"], "acme");
    // From passing, or from unknown when the probes fell silent while the test read.
    assert!(transition.data["from"].is_string());
    assert!(transition.data["region"].is_null());
    assert!(transition.data["at"].is_string());
    let vendor = events
        .iter()
        .find(|e| e.event == "vendor" && e.data["to"] == "hard_down" && e.data["region"].is_null())
        .expect("the vendor event");
    assert_eq!(
        vendor.data["conditions"][0]["kind"], "hard_down",
        "{vendor:?}"
    );
    assert_eq!(
        vendor.data["conditions"][0]["checks"],
        serde_json::json!(["acme-www"])
    );
    let failed = events
        .iter()
        .rfind(|e| e.event == "result" && e.data["check"] == "acme-www")
        .expect("a result of acme-www");
    assert_eq!(failed.data["status"], "fail");
    assert_eq!(failed.data["failure"], "connect_timeout");

    // Every filtered consumer has exactly the events of the full stream that match it, up to
    // the last event the full stream had.
    let last_id = events.iter().filter_map(|e| e.id).max().expect("ids");
    type Rule = fn(&Sse) -> bool;
    let rules: [Rule; 4] = [
        |e| e.data["vendor"] == "acme",
        |e| e.data["check"] == "fast-css",
        |e| e.data["region"] == "b",
        |e| e.event == "vendor" || e.event == "transition",
    ];
    for (consumer, rule) in filtered.iter().zip(rules) {
        let want: Vec<Sse> = events.iter().filter(|e| rule(e)).cloned().collect();
        assert!(!want.is_empty(), "{}: nothing to compare", consumer.query);
        let deadline = Instant::now() + SETTLE;
        let got = loop {
            let got: Vec<Sse> = consumer
                .events()
                .into_iter()
                .filter(|e| e.id.is_some_and(|id| id <= last_id))
                .collect();
            if got.len() >= want.len() || Instant::now() >= deadline {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_ids_increase(&consumer.query, &consumer.events());
        assert_eq!(
            got.len(),
            want.len(),
            "{}: {} events, the full stream has {} that match",
            consumer.query,
            got.len(),
            want.len()
        );
        assert!(got == want, "{}: not the same events", consumer.query);
        println!("stream: {} got its {} events", consumer.query, got.len());
    }
    let kinds = |c: &Consumer, kind: &str| c.events().iter().filter(|e| e.event == kind).count();
    assert!(kinds(&filtered[0], "result") > 0 && kinds(&filtered[0], "incident") > 0);
    assert!(kinds(&filtered[3], "vendor") > 0 && kinds(&filtered[3], "result") == 0);
    w.coordinator.assert_alive("the stream test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_never_reads_again_is_cut_off() {
    let config = "[limits]\nrequest_timeout = \"3s\"\n";
    let mut w = World::start(config, None).await;
    w.runs = 40;
    let addr = w.coordinator.addr;
    let all = Consumer::connect(addr, "", None).await;
    let stalled = Stalled::connect(addr, None).await;
    let dropped = "vantage_stream_dropped_consumers_total{reason=\"queue_full\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.metric(dropped).await < 1.0 {
        w.round(never).await;
        assert!(
            Instant::now() < deadline,
            "the stalled consumer was not dropped:\n{}",
            w.coordinator.log()
        );
    }
    // Its last event cannot be written while it does not read; the server lets go of it
    // anyway, within the write-stall deadline.
    let since = Instant::now();
    let deadline = since + SETTLE;
    while w.metric("vantage_stream_consumers").await > 1.0 {
        assert!(
            Instant::now() < deadline,
            "the stalled consumer still holds its place {SETTLE:?} after it was dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "stream: a consumer that stopped reading was let go {:.1}s after it was dropped",
        since.elapsed().as_secs_f64()
    );
    // The connection is closed: reading what the kernel kept ends at once.
    let (events, _) = stalled.read_to_end(Duration::from_secs(5)).await;
    assert!(!events.is_empty(), "it got some events before it stalled");
    // Ingest and the healthy consumer carried on.
    w.round(never).await;
    w.until_streamed(&all).await;
    w.coordinator.assert_alive("cutting a consumer off").await;
}

#[test]
fn dechunk_and_parse() {
    let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
    let raw = [
        chunk(": hello\n\nid: 1\n"),
        chunk("event: x\ndata: {\"a\": 1}\n\n"),
        "0\r\n\r\n".to_owned(),
    ]
    .concat();
    let (body, complete) = dechunk(raw.as_bytes());
    assert!(complete);
    let mut text = String::from_utf8(body).expect("utf-8");
    let events = parse_events(&mut text);
    assert_eq!(
        events,
        [Sse {
            id: Some(1),
            event: "x".into(),
            data: serde_json::json!({"a": 1}),
        }]
    );
    assert!(!dechunk(b"5\r\nab").1, "a cut chunk is incomplete");
}
