//! The harness pieces of the scenario corpus, each proven on its own: the webhook sink, a real
//! Alertmanager notifying it, the pausable relay that cuts a probe off its coordinator, the
//! network namespace of a broken probe, and per-source faults on the nginx edge.
//!
//! Everything binds to loopback or lives in a network namespace the test makes. Nothing sleeps
//! to wait: every wait polls with a deadline.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vantage_checks::result::{FailureKind, Status};
use vantage_e2e::alertmanager::{Alertmanager, RECEIVER};
use vantage_e2e::cdn::{Cdn, Fault, HOST, probe_source, region_sources};
use vantage_e2e::fleet::{Fleet, ProbeOptions, http_get, http_post};
use vantage_e2e::netns::BrokenNet;
use vantage_e2e::relay::Relay;
use vantage_e2e::sink::{Recorded, Reply, Sink};
use vantage_e2e::wait_until;

/// How long a receiver notification may take to arrive.
const NOTIFY_WITHIN: Duration = Duration::from_secs(20);

// ---- helpers ---------------------------------------------------------------------------

/// Writes one keep-alive HTTP/1.1 request on `stream` and reads one response (head and a
/// `Content-Length` body): the status and the body.
fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<(u16, String)> {
    stream.write_all(request)?;
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if raw.len() > 64 * 1024 || stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "no complete response head: {:?}",
                    String::from_utf8_lossy(&raw)
                ),
            ));
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn connect(addr: SocketAddr, read_timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(read_timeout))
        .expect("set a read timeout");
    stream
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: sink\r\n\r\n").into_bytes()
}

fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .expect("format a timestamp")
}

fn paths(requests: &[Recorded]) -> Vec<String> {
    requests.iter().map(|r| r.path.clone()).collect()
}

/// curl's exit code and its `-w` output.
fn curl_result(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

// ---- the sink ----------------------------------------------------------------------------

#[test]
fn sink_records_keep_alive_content_length_and_chunked_requests_in_order() {
    let sink = Sink::start();
    let mut conn = connect(sink.addr(), Duration::from_secs(5));
    let first = b"POST /webhook?x=1 HTTP/1.1\r\nHost: sink\r\nContent-Type: application/json\r\n\
                  X-Vantage: one\r\nContent-Length: 13\r\n\r\n{\"state\":\"a\"}";
    assert_eq!(exchange(&mut conn, first).expect("first").0, 200);
    // The same connection again, with a chunked body split over two chunks and a trailer.
    let second = b"POST /slack HTTP/1.1\r\nHost: sink\r\nTransfer-Encoding: chunked\r\n\r\n\
                   5\r\n{\"tex\r\n8;ext=1\r\nt\":\"hi\"}\r\n0\r\nX-Trailer: t\r\n\r\n";
    assert_eq!(exchange(&mut conn, second).expect("second").0, 200);
    // And a third, asking for 100-continue as curl does for larger bodies.
    conn.write_all(
        b"PUT /pagerduty HTTP/1.1\r\nHost: sink\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    )
    .expect("write the head");
    let mut interim = [0u8; 25];
    conn.read_exact(&mut interim).expect("read 100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(exchange(&mut conn, b"{}").expect("third").0, 200);
    drop(conn);

    let all = sink.requests();
    assert_eq!(
        paths(&all),
        ["/webhook", "/slack", "/pagerduty"],
        "{all:#?}"
    );
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2]);
    let webhook = &all[0];
    assert_eq!(webhook.method, "POST");
    assert_eq!(webhook.target, "/webhook?x=1");
    assert_eq!(webhook.header("x-vantage"), Some("one"));
    assert_eq!(webhook.header("Content-Type"), Some("application/json"));
    assert_eq!(webhook.json(), json!({"state": "a"}));
    assert_eq!(all[1].json(), json!({"text": "hi"}));
    assert_eq!(all[2].method, "PUT");
    assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(all.iter().all(|r| r.replied == Some(200)));
    assert_eq!(sink.requests_to("/slack").len(), 1);
    assert_eq!(sink.url("/slack"), format!("http://{}/slack", sink.addr()));
}

#[test]
fn sink_fails_the_next_n_then_answers_as_set_with_delays_and_hang_ups() {
    let sink = Sink::start();
    sink.set_reply(
        "/pagerduty",
        Reply::new(202).with_body("{\"status\":\"success\"}"),
    );
    sink.fail_next("/pagerduty", 2, 500);
    let answers: Vec<u16> = (0..4)
        .map(|_| http_post(sink.addr(), "/pagerduty", "{}").expect("post").0)
        .collect();
    assert_eq!(answers, [500, 500, 202, 202]);
    let (_, body) = http_post(sink.addr(), "/pagerduty", "{}").expect("post");
    assert_eq!(body, "{\"status\":\"success\"}");
    // Other paths are untouched.
    assert_eq!(
        http_post(sink.addr(), "/webhook", "{}").expect("post").0,
        200
    );
    let recorded: Vec<Option<u16>> = sink
        .requests_to("/pagerduty")
        .iter()
        .map(|r| r.replied)
        .collect();
    assert_eq!(
        recorded,
        [Some(500), Some(500), Some(202), Some(202), Some(202)]
    );

    // A delayed answer: the request is recorded on arrival, the answer comes later.
    let delay = Duration::from_millis(400);
    sink.reply_next("/slow", 1, Reply::new(200).with_delay(delay));
    let addr = sink.addr();
    let started = Instant::now();
    let waiter = std::thread::spawn(move || http_get(addr, "/slow"));
    let seen = sink.wait_for(|r| r.path == "/slow", Duration::from_secs(5));
    let answer = waiter
        .join()
        .expect("the client thread")
        .expect("get /slow");
    let took = started.elapsed();
    assert_eq!(answer.0, 200);
    assert!(
        took >= delay,
        "answered after {took:?}, before the {delay:?} delay"
    );
    assert!(seen[0].at < started + took);

    // A hang-up: no answer at all.
    sink.reply_next("/crash", 1, Reply::hang_up());
    let crashed = http_get(sink.addr(), "/crash");
    assert!(crashed.is_err(), "expected no answer, got {crashed:?}");
    assert_eq!(http_get(sink.addr(), "/crash").expect("get").0, 200);
    assert_eq!(
        sink.requests_to("/crash")
            .iter()
            .map(|r| r.replied)
            .collect::<Vec<_>>(),
        [None, Some(200)]
    );

    // wait_for_n counts, and a wait that fails lists every request.
    assert_eq!(
        sink.wait_for_n(5, |r| r.path == "/pagerduty", Duration::from_secs(1))
            .len(),
        5
    );
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sink.wait_for(|r| r.path == "/never", Duration::from_millis(100))
    }))
    .expect_err("waiting for a request that never comes must panic");
    let text = vantage_e2e::panic_text(&*failed);
    assert!(text.contains("POST /pagerduty -> 500"), "{text}");
    assert!(text.contains("GET /crash -> hung up"), "{text}");
}

// ---- Alertmanager ----------------------------------------------------------------------------

#[test]
fn alertmanager_notifies_the_sink_firing_then_resolved() {
    let sink = Sink::start();
    let am = Alertmanager::start(&sink.url("/alertmanager"));
    // A receiver that fails twice: Alertmanager retries until it gets through.
    sink.fail_next("/alertmanager", 2, 500);
    let labels = json!({"alertname": "VantageTest", "vendor": "acme", "severity": "page"});
    let starts = SystemTime::now() - Duration::from_secs(1);
    let posted = Instant::now();
    am.post_alerts(&json!([{
        "labels": labels,
        "annotations": {"summary": "acme is hard down", "incident": "inc-1"},
        "startsAt": rfc3339(starts),
    }]));
    let held = am.alerts();
    assert_eq!(held.as_array().map(Vec::len), Some(1), "{held:#}");
    assert_eq!(held[0]["labels"]["vendor"], "acme", "{held:#}");

    let firing = sink.wait_for(
        |r| r.path == "/alertmanager" && r.json()["status"] == "firing" && r.replied == Some(200),
        NOTIFY_WITHIN,
    );
    let fired_after = firing[0].at - posted;
    let held = am.alerts();
    assert_eq!(held[0]["status"]["state"], "active", "{held:#}");
    let note = firing[0].json();
    assert_eq!(note["receiver"], RECEIVER, "{note:#}");
    assert_eq!(note["groupLabels"]["vendor"], "acme", "{note:#}");
    assert_eq!(note["alerts"][0]["labels"], labels, "{note:#}");
    assert_eq!(note["alerts"][0]["status"], "firing", "{note:#}");
    assert_eq!(
        note["alerts"][0]["annotations"]["incident"], "inc-1",
        "{note:#}"
    );

    // The same alert with endsAt in the past: resolved.
    let resolving = Instant::now();
    am.post_alerts(&json!([{
        "labels": labels,
        "annotations": {"summary": "acme is hard down", "incident": "inc-1"},
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(SystemTime::now() - Duration::from_secs(1)),
    }]));
    let resolved = sink.wait_for(
        |r| r.path == "/alertmanager" && r.json()["status"] == "resolved",
        NOTIFY_WITHIN,
    );
    let resolved_after = resolved[0].at - resolving;
    let note = resolved[0].json();
    assert_eq!(note["alerts"][0]["status"], "resolved", "{note:#}");
    assert_eq!(note["alerts"][0]["labels"], labels, "{note:#}");
    assert!(resolved[0].seq > firing[0].seq);
    // Two failed attempts, then one of each: the 1 h repeat interval sends nothing again.
    let notes = sink.requests_to("/alertmanager");
    let answered: Vec<(String, Option<u16>)> = notes
        .iter()
        .map(|r| {
            (
                r.json()["status"].as_str().unwrap_or("?").to_owned(),
                r.replied,
            )
        })
        .collect();
    assert_eq!(
        answered,
        [
            ("firing".to_owned(), Some(500)),
            ("firing".to_owned(), Some(500)),
            ("firing".to_owned(), Some(200)),
            ("resolved".to_owned(), Some(200)),
        ],
        "{:#?}",
        notes.iter().map(Recorded::summary).collect::<Vec<_>>()
    );
    assert!(am.log().contains("will retry later"), "{}", am.log());
    eprintln!(
        "alertmanager: firing notified {fired_after:?} after the post, resolved {resolved_after:?} after the resolving post"
    );
}

// ---- the relay ----------------------------------------------------------------------------

#[test]
fn relay_pause_cuts_and_stalls_connections_and_resume_restores_them() {
    let sink = Sink::start();
    let relay = Relay::start(sink.addr());
    assert_eq!(
        http_get(relay.addr(), "/before")
            .expect("through the relay")
            .0,
        200
    );
    let mut held = connect(relay.addr(), Duration::from_secs(5));
    assert_eq!(
        exchange(&mut held, &get_request("/held")).expect("held").0,
        200
    );

    relay.pause();
    assert!(relay.is_paused());
    // The open connection is cut...
    let cut = exchange(&mut held, &get_request("/held-again"));
    assert!(
        cut.is_err(),
        "a connection open across the pause answered: {cut:?}"
    );
    // ...and a new one is accepted but never answered: the client times out.
    let mut stalled = connect(relay.addr(), Duration::from_millis(500));
    let started = Instant::now();
    let silent = exchange(&mut stalled, &get_request("/during"));
    let err = silent.expect_err("a paused relay answered");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "expected a read timeout, got {err:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));

    relay.resume();
    // The connection stalled during the pause is closed, not forwarded late.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    let mut rest = Vec::new();
    let closed = stalled.read_to_end(&mut rest);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "the stalled connection got {closed:?}: {rest:?}"
    );
    let _ = held.shutdown(Shutdown::Both);
    assert_eq!(
        http_get(relay.addr(), "/after").expect("after resume").0,
        200
    );
    assert_eq!(paths(&sink.requests()), ["/before", "/held", "/after"]);
    assert_eq!(relay.accepted(), 4);
}

// ---- the broken probe's network namespace --------------------------------------------

#[test]
fn broken_net_reaches_the_coordinator_and_nothing_else_and_is_gone_after_drop() {
    let coordinator = Sink::start();
    let vendor = Sink::start();
    let net = BrokenNet::new(coordinator.addr().port());
    let curl = |url: &str| {
        net.command("curl")
            .args([
                "-sS",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ])
            .output()
            .unwrap_or_else(|e| panic!("run curl in {}: {e}", net.name()))
    };

    let config = curl(&format!("{}/api/v1/probe/config", net.coordinator_url()));
    assert_eq!(
        curl_result(&config),
        (Some(0), "200".to_owned()),
        "{config:?}\nsocat: {}",
        net.log()
    );
    coordinator.wait_for(|r| r.path == "/api/v1/probe/config", Duration::from_secs(5));
    assert!(net.relayed() >= 1);

    // The vendor listens on the host's loopback: not reachable as 127.0.0.1 from inside,
    // nor at the host side of the veth. curl's 7 is "could not connect".
    let port = vendor.addr().port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://{}:{port}/", net.host_ip()),
        format!("http://127.0.0.2:{port}/"),
    ] {
        let out = curl(&url);
        assert_eq!(
            curl_result(&out),
            (Some(7), "000".to_owned()),
            "{url}: {out:?}"
        );
    }
    // Nor anything else: no route but the /30 (and no default route).
    let routes = std::process::Command::new("ip")
        .args(["-n", net.name(), "-4", "route", "show"])
        .output()
        .expect("ip route show");
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(routes.contains("/30 dev vantage"), "{routes}");
    assert!(vendor.requests().is_empty(), "{:?}", vendor.requests());
    // From the host, the vendor is there.
    assert_eq!(http_get(vendor.addr(), "/").expect("host to vendor").0, 200);

    let name = net.name().to_owned();
    let host_ip = net.host_ip().to_string();
    drop(net);
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&name),
        "{name} is still there"
    );
    let addrs = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("ip addr show");
    assert!(
        !String::from_utf8_lossy(&addrs.stdout).contains(&format!(" {host_ip}/")),
        "the host side of the veth ({host_ip}) is still there"
    );
}

/// A real probe in the namespace: its results reach the coordinator, and every check of a
/// vendor on the host's loopback fails, while a probe outside passes the same check.
#[test]
fn probe_in_a_broken_net_reports_every_check_failing_while_another_passes() {
    let vendor = Sink::start();
    let fleet = Fleet::new();
    let mut coordinator = fleet.coordinator(&format!(
        r#"[defaults]
interval = "2s"
timeout = "1s"
retry = "off"
window = "10s"

[[vendor]]
id = "loopvendor"
name = "Loopback vendor"

[[check]]
id = "vendor-tcp"
vendor = "loopvendor"
kind = "tcp"
target = "{}"
"#,
        vendor.addr()
    ));
    let net = BrokenNet::new(coordinator.addr.port());
    let mut home = fleet.probe(&coordinator, "home-1", "home");
    let mut broken = fleet.probe_with(
        &coordinator,
        "broken-1",
        "away",
        ProbeOptions {
            netns: Some(net.name().to_owned()),
            ..ProbeOptions::default()
        },
    );
    wait_until(
        "two results from each probe",
        Duration::from_secs(30),
        || {
            coordinator.assert_running();
            home.assert_running();
            broken.assert_running();
            coordinator.results_of("home-1").len() >= 2
                && coordinator.results_of("broken-1").len() >= 2
        },
    );
    for r in coordinator.results_of("home-1") {
        assert_eq!(r.status, Status::Ok, "{r:#?}");
    }
    for r in coordinator.results_of("broken-1") {
        assert_eq!(r.status, Status::Fail, "{r:#?}");
        assert_eq!(r.failure, Some(FailureKind::ConnectRefused), "{r:#?}");
    }
    broken.kill();
    home.kill();
}

// ---- regional faults on the CDN edge ----------------------------------------------------

/// One HTTPS GET of `/css/site.css` on the TLS edge from `source`: curl's exit code, the
/// status (0 without an answer), the seconds it took and the cache status.
fn fetch_from(cdn: &Cdn, source: std::net::Ipv4Addr) -> (Option<i32>, u16, f64, String) {
    let port = cdn.edge.port();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-m", "10", "-o", "/dev/null"])
        .args(["--interface", &source.to_string()])
        .arg("--cacert")
        .arg(cdn.ca_file())
        .args(["--resolve", &format!("{HOST}:{port}:127.0.0.1")])
        .args(["-w", "%{http_code} %{time_total} %header{x-cache-status}"])
        .arg(format!("https://{HOST}:{port}/css/site.css"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut f = text.split_whitespace();
    let status = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let secs = f.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    let cache = f.next().unwrap_or_default().to_owned();
    (out.status.code(), status, secs, cache)
}

#[test]
fn cdn_faults_hit_only_their_sources_and_clear() {
    let cdn = Cdn::start();
    let hold = Duration::from_millis(800);
    let (eu_1, eu_2, us_3, us_4, ap_5, ap_9) = (
        probe_source(1, 1),
        probe_source(2, 5),
        probe_source(3, 3),
        probe_source(3, 4),
        probe_source(4, 5),
        probe_source(4, 9),
    );
    for source in [eu_1, eu_2, us_3, ap_5] {
        let got = fetch_from(&cdn, source);
        assert_eq!(
            (got.0, got.1),
            (Some(0), 200),
            "{source} before faults: {got:?}"
        );
    }

    cdn.set_faults(&[
        (&region_sources(2), Fault::Error),
        ("127.0.3.3/32", Fault::Drop),
        (&region_sources(4), Fault::Slow(hold)),
        ("127.0.4.9/32", Fault::Ok),
    ]);
    let error = fetch_from(&cdn, eu_2);
    assert_eq!((error.0, error.1), (Some(0), 503), "{error:?}");
    let dropped = fetch_from(&cdn, us_3);
    assert_eq!(dropped.1, 0, "{dropped:?}");
    assert_ne!(
        dropped.0,
        Some(0),
        "a dropped request must fail: {dropped:?}"
    );
    let neighbour = fetch_from(&cdn, us_4);
    assert_eq!((neighbour.0, neighbour.1), (Some(0), 200), "{neighbour:?}");
    let fine = fetch_from(&cdn, eu_1);
    assert_eq!((fine.0, fine.1), (Some(0), 200), "{fine:?}");
    let exempt = fetch_from(&cdn, ap_9);
    assert_eq!((exempt.0, exempt.1), (Some(0), 200), "{exempt:?}");
    // Slow holds every request, a cache hit as much as a miss.
    let slow = fetch_from(&cdn, ap_5);
    assert_eq!(
        (slow.0, slow.1, slow.3.as_str()),
        (Some(0), 200, "HIT"),
        "{slow:?}"
    );
    let hold_s = hold.as_secs_f64();
    assert!(
        slow.2 >= hold_s,
        "a slow source took {}s, under {hold_s}s",
        slow.2
    );
    for quick in [&fine, &exempt, &neighbour] {
        assert!(
            quick.2 < hold_s,
            "an unfaulted source took {}s: {quick:?}",
            quick.2
        );
    }
    // Every edge listener applies the table: the plain-HTTP one too.
    let plain = std::process::Command::new("curl")
        .args(["-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"])
        .args([
            "--interface",
            &eu_2.to_string(),
            "-H",
            &format!("Host: {HOST}"),
        ])
        .arg(format!("http://{}/css/site.css", cdn.edge_plain))
        .output()
        .expect("run curl");
    assert_eq!(
        curl_result(&plain),
        (Some(0), "503".to_owned()),
        "{plain:?}"
    );

    // Flaky: about half of one source's requests get a 503, at random; its neighbours none.
    let flaky = probe_source(5, 1);
    cdn.set_faults(&[(&format!("{flaky}/32"), Fault::Flaky)]);
    let statuses: Vec<u16> = (0..40).map(|_| fetch_from(&cdn, flaky).1).collect();
    let errors = statuses.iter().filter(|s| **s == 503).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    // Binomial(40, 0.5): outside 6..=34 once in about 10^7 runs.
    assert!(
        (6..=34).contains(&errors),
        "{errors} of 40 failed: {statuses:?}"
    );
    let neighbour = fetch_from(&cdn, probe_source(5, 2));
    assert_eq!(neighbour.1, 200, "{neighbour:?}");

    cdn.clear_faults();
    assert_eq!(cdn.faults(), "");
    for source in [eu_2, us_3, ap_5, flaky] {
        let got = fetch_from(&cdn, source);
        assert_eq!(
            (got.0, got.1),
            (Some(0), 200),
            "{source} after clearing: {got:?}"
        );
        assert!(
            got.2 < hold_s,
            "{source} still slow after clearing: {got:?}"
        );
    }
}
