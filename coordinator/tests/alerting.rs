//! End-to-end tests of consensus, incidents and alert delivery on a real coordinator process.
//!
//! Six registered probes in three regions "push" results the test makes up (each round, one
//! result per probe and check, started now), so every fault is exact and the timing is the
//! coordinator's own. Alerts go to an in-process webhook sink that records what it receives
//! and can refuse requests to simulate a failing receiver. Nothing sleeps to wait: every wait
//! polls with a deadline while the probes keep pushing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use time::OffsetDateTime;
use vantage_checks::result::{CheckResult, FailureKind, Status};

mod support;

use support::*;

/// One request the sink received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    body: Value,
}

/// An HTTP sink on loopback recording every POST; answers 500 to the next `fail` requests,
/// and always to the paths in `broken`.
#[derive(Clone)]
struct Sink {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    fail: Arc<AtomicUsize>,
    broken: Arc<Mutex<Vec<String>>>,
}

impl Sink {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let sink = Self {
            addr: listener.local_addr().expect("sink addr"),
            received: Arc::default(),
            fail: Arc::default(),
            broken: Arc::default(),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let s = s.clone();
                            async move {
                                let path = req.uri().path().to_owned();
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let refuse = s.broken.lock().expect("sink lock").contains(&path)
                                    || s.fail
                                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                            n.checked_sub(1)
                                        })
                                        .is_ok();
                                let status = if refuse {
                                    StatusCode::INTERNAL_SERVER_ERROR
                                } else {
                                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                    s.received
                                        .lock()
                                        .expect("sink lock")
                                        .push(Received { path, body });
                                    StatusCode::OK
                                };
                                let mut resp =
                                    http::Response::new(Full::new(Bytes::from_static(b"{}")));
                                *resp.status_mut() = status;
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        sink
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn at(&self, path: &str) -> Vec<Value> {
        self.received
            .lock()
            .expect("sink lock")
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.body.clone())
            .collect()
    }

    /// Events (`trigger`, `resolve`, …) the webhook at `path` received for `subject`.
    /// Updates (a regional outage that became global, say) are left out: they page nobody.
    fn events(&self, path: &str, subject: &str) -> Vec<String> {
        self.at(path)
            .iter()
            .filter(|b| b["id"] == subject && b["event"] != "update")
            .map(|b| b["event"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// Both vendors' checks, held for 2 s before a state changes.
fn checks() -> String {
    two_vendor_checks("2s")
}

fn config(sink: &Sink, extra: &str) -> String {
    format!(
        r#"
[quarantine]
readmit_after = "2s"

[api]
token_file = "api.token"
reader_token_file = "reader.token"

[[receiver]]
name = "hook"
kind = "webhook"
url = "{hook}"

[[receiver]]
name = "pd"
kind = "pagerduty"
url = "{pd}"
routing_key_file = "pd.key"

[[receiver]]
name = "probes"
kind = "webhook"
url = "{probes}"

[[route]]
receivers = ["hook", "pd"]
states = ["hard_down", "api_down", "limited_visibility", "degraded"]

[[route]]
receivers = ["probes"]
states = ["probe_quarantined"]
{extra}
"#,
        extra = extra.replace("SINK", &sink.url("")),
        hook = sink.url("/hook"),
        pd = sink.url("/pd"),
        probes = sink.url("/probes"),
    )
}

/// The world: a coordinator, six registered probes and their tokens, the sink.
struct World {
    coordinator: Coordinator,
    tokens: BTreeMap<&'static str, String>,
    sink: Sink,
    seq: u64,
}

impl World {
    async fn start(extra_config: &str) -> Self {
        let sink = Sink::start().await;
        let coordinator = Coordinator::new(&config(&sink, extra_config), Some(&checks()));
        std::fs::write(coordinator.path("pd.key"), "R0UT1NGKEY\n").expect("write pd key");
        std::fs::write(coordinator.path("api.token"), format!("{API_TOKEN}\n"))
            .expect("write api token");
        std::fs::write(
            coordinator.path("reader.token"),
            format!("{READER_TOKEN}\n"),
        )
        .expect("write the reader token");
        let tokens = PROBES
            .iter()
            .map(|(p, r)| (*p, coordinator.add_probe(p, r)))
            .collect();
        let mut w = Self {
            coordinator,
            tokens,
            sink,
            seq: 0,
        };
        w.coordinator.start().await;
        w
    }

    /// One round: every probe pushes one result per check; `fails(probe, check)` decides.
    /// Returns the checks the last answer lists as failing anywhere.
    async fn round(&mut self, fails: impl Fn(&str, &str) -> bool) -> Vec<String> {
        let mut failing = Vec::new();
        let now = OffsetDateTime::now_utc();
        for (probe, _) in PROBES {
            let mut batch = Vec::new();
            for (check, vendor) in [("acme-www", "acme"), ("fast-css", "fastcdn")] {
                self.seq += 1;
                let mut r: CheckResult = result(probe, self.seq, check, vendor, now);
                if fails(probe, check) {
                    r.status = Status::Fail;
                    r.failure = Some(FailureKind::ConnectTimeout);
                    r.message = Some(format!("{probe}: connecting took longer than 800ms"));
                } else {
                    r.status = Status::Ok;
                    r.failure = None;
                    r.message = None;
                }
                batch.push(r);
            }
            let reply = post_batch(self.coordinator.addr, &self.tokens[probe], &batch).await;
            assert_eq!(reply.status, StatusCode::OK, "push from {probe}");
            failing = reply.ack().failing_checks;
        }
        failing
    }

    /// Pushes rounds (every 250 ms) for `d`, checking nothing.
    async fn rounds_for(&mut self, d: Duration, fails: impl Fn(&str, &str) -> bool) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.round(&fails).await;
            // The probes' cadence, not a wait for an event.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Pushes rounds (every 250 ms) until `done` holds, or panics after `within`.
    async fn until(
        &mut self,
        what: &str,
        within: Duration,
        fails: impl Fn(&str, &str) -> bool,
        mut done: impl FnMut(&Self) -> bool,
    ) {
        let deadline = Instant::now() + within;
        loop {
            self.round(&fails).await;
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}\nhook: {:?}\nprobes: {:?}\n{}",
                self.sink.at("/hook"),
                self.sink.at("/probes"),
                self.coordinator.log()
            );
            // The probes' cadence, not a wait for an event.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Pushes rounds (every 250 ms) until `GET path` answers something `done` likes; returns
    /// it, or panics after `within`.
    async fn until_api(
        &mut self,
        what: &str,
        within: Duration,
        fails: impl Fn(&str, &str) -> bool,
        path: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            self.round(&fails).await;
            let v = self.api(path).await;
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}\nlast {path}: {v}\nhook: {:?}\n{}",
                self.sink.at("/hook"),
                self.coordinator.log()
            );
            // The probes' cadence, not a wait for an event.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Pushes rounds until `vendor`'s global state is `state`.
    async fn until_state(&mut self, vendor: &str, state: &str, fails: impl Fn(&str, &str) -> bool) {
        let path = format!("/api/v1/vendors/{vendor}");
        self.until_api(&format!("{vendor} {state}"), SETTLE, fails, &path, |v| {
            v["global"]["state"] == state
        })
        .await;
    }

    async fn api(&self, path: &str) -> Value {
        let r = get(self.coordinator.addr, path, Some(API_TOKEN), &[])
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {:?}", r.body);
        serde_json::from_slice(&r.body).expect("JSON")
    }

    async fn vendor_state(&self, id: &str) -> String {
        let v = self.api(&format!("/api/v1/vendors/{id}")).await;
        v["global"]["state"].as_str().unwrap_or_default().to_owned()
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_vantage-coordinator"))
            .args(args)
            .args(self.coordinator.config_args())
            .output()
            .expect("run the CLI");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

const SETTLE: Duration = Duration::from_secs(30);

/// The reader/operator token of the coordinators here.
const API_TOKEN: &str = "operator-t0ken-for-the-alerting-tests";
/// The reader token: reads only.
const READER_TOKEN: &str = "reader-t0ken-for-the-alerting-tests-01";

fn never(_: &str, _: &str) -> bool {
    false
}

fn acme_everywhere(_: &str, check: &str) -> bool {
    check == "acme-www"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_down_pages_once_and_resolves_once_across_a_kill_9() {
    let mut w = World::start("").await;
    let mut ready = false;
    for _ in 0..200 {
        w.round(never).await;
        if w.vendor_state("acme").await == "operational" {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        ready,
        "acme never became operational:\n{}",
        w.coordinator.log()
    );

    // The fault: every probe fails acme's check.
    w.until("the trigger", SETTLE, acme_everywhere, |w| {
        w.sink.events("/hook", "acme") == ["trigger"] && !w.sink.at("/pd").is_empty()
    })
    .await;
    assert_eq!(w.vendor_state("acme").await, "hard_down");
    assert_eq!(w.vendor_state("fastcdn").await, "operational");
    // The probes are told to run it at failing_interval.
    assert_eq!(w.round(acme_everywhere).await, ["acme-www"]);
    let detail = w.api("/api/v1/vendors/acme").await;
    let incident_id = detail["open_incident"]["id"]
        .as_i64()
        .expect("open incident");
    let check = &detail["checks"][0];
    assert_eq!(check["state"]["global"]["verdict"], "failing");
    assert_eq!(
        check["evidence"]["global"]["failures"]["connect_timeout"], 6,
        "evidence names every failing vote: {check}"
    );
    let pd = w.sink.at("/pd");
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["dedup_key"], incident_id.to_string());
    assert_eq!(pd[0]["routing_key"], "R0UT1NGKEY");

    // kill -9 mid-incident, restart, keep failing: no second page.
    w.coordinator.kill();
    w.coordinator.start().await;
    w.rounds_for(Duration::from_secs(4), acme_everywhere).await;
    assert_eq!(w.sink.events("/hook", "acme"), ["trigger"], "paged twice");
    assert_eq!(w.vendor_state("acme").await, "hard_down");

    // Recovery: one resolve, after the trigger, to both receivers.
    w.until("the resolve", SETTLE, never, |w| {
        w.sink.events("/hook", "acme").len() == 2
    })
    .await;
    assert_eq!(w.sink.events("/hook", "acme"), ["trigger", "resolve"]);
    let pd: Vec<Value> = w.sink.at("/pd");
    // PagerDuty gets updates as triggers with the same dedup_key (no new page); the resolve
    // comes last.
    let actions: Vec<&str> = pd
        .iter()
        .filter_map(|b| b["event_action"].as_str())
        .collect();
    assert_eq!(actions.first(), Some(&"trigger"));
    assert_eq!(
        actions.iter().filter(|a| **a == "resolve").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(actions.last(), Some(&"resolve"));
    let key = incident_id.to_string();
    assert!(
        pd.iter()
            .all(|b| b["dedup_key"].as_str() == Some(key.as_str()))
    );
    let incident = w.api(&format!("/api/v1/incidents/{incident_id}")).await;
    assert!(incident["resolved_ms"].is_i64(), "{incident}");
    let kinds: Vec<&str> = incident["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"opened"));
    assert_eq!(kinds.last(), Some(&"resolved"));
    assert!(w.sink.at("/probes").is_empty(), "no probe was blamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_failing_every_vendor_is_quarantined_not_paged() {
    let mut w = World::start("").await;
    let broken = |probe: &str, _: &str| probe == "a1";
    w.until("the quarantine alert", SETTLE, broken, |w| {
        w.sink.events("/probes", "a1") == ["trigger"]
    })
    .await;
    // Keep it broken a while: still no vendor page, and the probe is reported unhealthy.
    w.rounds_for(Duration::from_secs(3), broken).await;
    assert!(
        w.sink.at("/hook").is_empty(),
        "a broken probe paged: {:?}",
        w.sink.at("/hook")
    );
    let probes = w.api("/api/v1/probes").await;
    let a1 = probes
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == "a1")
        .expect("a1")
        .clone();
    assert_eq!(a1["healthy"], false, "{a1}");
    assert_eq!(
        a1["quarantine"]["vendors"],
        serde_json::json!(["acme", "fastcdn"])
    );
    // Region a has one voting probe left: unknown there, not down.
    let acme = w.api("/api/v1/vendors/acme").await;
    assert_ne!(acme["regions"]["a"]["state"], "hard_down", "{acme}");

    // Fixed: readmitted after agreeing for readmit_after, and the alert resolves.
    w.until("readmission", SETTLE, never, |w| {
        w.sink.events("/probes", "a1") == ["trigger", "resolve"]
    })
    .await;
    assert!(w.sink.at("/hook").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_holds_the_page_back_but_keeps_the_incident() {
    let mut w = World::start("").await;
    let id = w.cli(&[
        "silence",
        "add",
        "--vendor",
        "fastcdn",
        "--duration",
        "1h",
        "--comment",
        "vendor maintenance",
    ]);
    let id = id.trim().to_owned();
    let cdn_down = |_: &str, check: &str| check == "fast-css";
    let mut open = Value::Null;
    for _ in 0..200 {
        w.round(cdn_down).await;
        let list = w.api("/api/v1/incidents?subject=fastcdn&open=true").await;
        if let Some(first) = list.as_array().and_then(|l| l.first()) {
            open = first.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let incident = open["id"]
        .as_i64()
        .expect("an open incident while silenced");
    let detail = w.api(&format!("/api/v1/incidents/{incident}")).await;
    assert!(
        detail["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|e| e["kind"] == "suppressed"),
        "{detail}"
    );
    assert!(
        w.sink.events("/hook", "fastcdn").is_empty(),
        "a silenced incident paged"
    );

    // The silence ends while the vendor is still down: the page goes out then.
    w.cli(&["silence", "remove", &id]);
    w.until("the trigger after the silence", SETTLE, cdn_down, |w| {
        w.sink.events("/hook", "fastcdn") == ["trigger"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_trigger_then_the_resolve() {
    let mut w = World::start("").await;
    w.sink.fail.store(4, Ordering::SeqCst);
    w.until(
        "the trigger through retries",
        Duration::from_secs(60),
        acme_everywhere,
        |w| w.sink.events("/hook", "acme") == ["trigger"],
    )
    .await;
    w.until("the resolve", SETTLE, never, |w| {
        w.sink.events("/hook", "acme") == ["trigger", "resolve"]
    })
    .await;
    assert_eq!(
        w.sink.fail.load(Ordering::SeqCst),
        0,
        "the receiver refused some requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_silences_need_the_token_and_routes_can_remind() {
    let mut w = World::start(
        "[[route]]\nreceivers = [\"hook\"]\nvendors = [\"fastcdn\"]\nrepeat = \"2s\"\n",
    )
    .await;
    let addr = w.coordinator.addr;
    let body = Bytes::from_static(
        b"{\"vendor\": \"acme\", \"duration\": \"1h\", \"comment\": \"maintenance\"}",
    );
    let path = "/api/v1/silences";
    for token in [None, Some("wrong")] {
        let r = send(addr, Method::POST, path, token, &[], body.clone())
            .await
            .expect("POST");
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    let r = get(addr, "/api/v1/vendors", None, &[]).await.expect("GET");
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "reads need the token once it is set"
    );
    // r12: every read needs a token once tokens are set (raw results and /metrics too), the
    // reader token reads and never changes, and the operator token does both.
    for path in ["/api/v1/results?limit=1", "/metrics", "/api/v1/probes"] {
        let r = get(addr, path, None, &[]).await.expect("GET");
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "GET {path} without a token"
        );
        for token in [READER_TOKEN, API_TOKEN] {
            let r = get(addr, path, Some(token), &[]).await.expect("GET");
            assert_eq!(r.status, StatusCode::OK, "GET {path}");
        }
    }
    let r = send(
        addr,
        Method::POST,
        path,
        Some(READER_TOKEN),
        &[],
        body.clone(),
    )
    .await
    .expect("POST");
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the reader token changes nothing"
    );
    let bad = Bytes::from_static(b"{\"duration\": \"1h\", \"comment\": \"everything\"}");
    let r = send(addr, Method::POST, path, Some(API_TOKEN), &[], bad)
        .await
        .expect("POST");
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a silence of everything"
    );
    let r = send(addr, Method::POST, path, Some(API_TOKEN), &[], body)
        .await
        .expect("POST");
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let created: Value = serde_json::from_slice(&r.body).expect("JSON");
    let id = created["id"].as_i64().expect("id");
    let active = w.api("/api/v1/silences?active=true").await;
    assert_eq!(active[0]["id"], id, "{active}");

    // Both vendors fail: acme is silenced, fastcdn pages and then reminds every 2 s.
    let both = |_: &str, _: &str| true;
    w.until("fastcdn reminders", SETTLE, both, |w| {
        w.sink
            .events("/hook", "fastcdn")
            .iter()
            .filter(|e| *e == "reminder")
            .count()
            >= 2
    })
    .await;
    assert_eq!(w.sink.events("/hook", "fastcdn")[0], "trigger");
    assert!(
        w.sink.events("/hook", "acme").is_empty(),
        "a silenced vendor paged"
    );

    // Lifting the silence while acme is still down sends its page.
    let r = send(
        addr,
        Method::DELETE,
        &format!("{path}/{id}"),
        Some(API_TOKEN),
        &[],
        Bytes::new(),
    )
    .await
    .expect("DELETE");
    assert_eq!(r.status, StatusCode::OK);
    w.until("acme's page after the silence", SETTLE, both, |w| {
        w.sink
            .events("/hook", "acme")
            .first()
            .is_some_and(|e| e == "trigger")
    })
    .await;
}

/// Issue 11: a vendor that fails again after it cleared, within the flap window (three times
/// `recover_for`, 6 s here), is the same incident: one trigger, one resolve, every flap on
/// the timeline, one dedup key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_a_vendor_flapping_after_it_cleared_is_one_incident_with_one_trigger_and_one_resolve() {
    let mut w = World::start("").await;
    w.until_state("acme", "operational", never).await;
    for _ in 0..3 {
        w.until_state("acme", "hard_down", acme_everywhere).await;
        // Clear (after recover_for), but only for a moment: well within the flap window.
        // The global state can read operational while one region still waits out its
        // recover_for; the incident clears only when every scope has, so wait for that.
        w.until_state("acme", "operational", never).await;
        w.until_api(
            "acme's incident clearing",
            SETTLE,
            never,
            "/api/v1/incidents?subject=acme&open=true",
            |open| open[0]["clear_since_ms"].is_i64(),
        )
        .await;
    }
    let cleared = Instant::now();
    let open = w.api("/api/v1/incidents?subject=acme&open=true").await;
    assert!(
        open[0]["clear_since_ms"].is_i64(),
        "clearing, not resolved: {open}"
    );
    w.until("the resolve", SETTLE, never, |w| {
        w.sink.events("/hook", "acme").len() >= 2
    })
    .await;
    let waited = cleared.elapsed();
    assert_eq!(w.sink.events("/hook", "acme"), ["trigger", "resolve"]);
    // The resolve waits out the flap window (6 s) from the moment the vendor cleared.
    assert!(
        waited >= Duration::from_secs(5),
        "resolved {waited:?} after clearing, before the flap window"
    );
    let pd = w.sink.at("/pd");
    let actions: Vec<&str> = pd
        .iter()
        .filter_map(|b| b["event_action"].as_str())
        .collect();
    // PagerDuty: one incident (updates fold into it as triggers with its dedup_key), one
    // resolve, last.
    assert_eq!(actions.first(), Some(&"trigger"), "{actions:?}");
    assert_eq!(actions.last(), Some(&"resolve"), "{actions:?}");
    assert_eq!(
        actions.iter().filter(|a| **a == "resolve").count(),
        1,
        "{actions:?}"
    );
    assert!(pd.iter().all(|b| b["dedup_key"] == pd[0]["dedup_key"]));
    let all = w.api("/api/v1/incidents?subject=acme").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1), "one incident: {all}");
    let id = all[0]["id"].as_i64().expect("id");
    assert_eq!(all[0]["flaps"], 2, "{all}");
    let incident = w.api(&format!("/api/v1/incidents/{id}")).await;
    // The probes push one after another: when the engine evaluates between them, a flap
    // comes back in one region before the others, and the incident records that scope
    // (`changed`) and then the wider one. Those updates are not what this test is about.
    let kinds: Vec<&str> = incident["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| *k != "changed")
        .collect();
    assert_eq!(
        kinds,
        [
            "opened", "cleared", "flapped", "cleared", "flapped", "cleared", "resolved"
        ],
        "{incident}"
    );
}

/// Issue 11: while an incident clears region by region, the moment when only the last region
/// is still (settled) down is not a new page: it is recorded, and the resolve follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_an_update_that_only_narrows_a_clearing_incident_is_not_sent() {
    let mut w = World::start("").await;
    w.until_state("acme", "operational", never).await;
    w.until("the trigger", SETTLE, acme_everywhere, |w| {
        w.sink.events("/hook", "acme") == ["trigger"]
    })
    .await;
    // Regions a and b recover first, c 1.2 s later: for that long after the global verdict
    // clears, acme is hard_down in c alone while c waits out recover_for.
    let fixed = Instant::now();
    let c_lags = move |probe: &str, check: &str| {
        check == "acme-www"
            && probe.starts_with('c')
            && fixed.elapsed() < Duration::from_millis(1200)
    };
    w.until("the resolve", SETTLE, c_lags, |w| {
        w.sink.events("/hook", "acme").len() >= 2
    })
    .await;
    let all: Vec<String> = w
        .sink
        .at("/hook")
        .iter()
        .filter(|b| b["id"] == "acme")
        .filter_map(|b| b["event"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(all, ["trigger", "resolve"], "no update before the resolve");
    let list = w.api("/api/v1/incidents?subject=acme").await;
    let id = list[0]["id"].as_i64().expect("id");
    let incident = w.api(&format!("/api/v1/incidents/{id}")).await;
    let narrowed = incident["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["kind"] == "changed")
        .cloned()
        .unwrap_or_else(|| panic!("the narrowing is on the timeline: {incident}"));
    let detail = &narrowed["detail"];
    assert!(detail["not_paged"].is_string(), "{detail}");
    assert_eq!(
        detail["subject"]["regions"],
        serde_json::json!(["c"]),
        "{detail}"
    );
}

/// Issue 11: one probe failing one vendor's check alone (its own path to that vendor) pages
/// nobody, not even regionally in its two-probe region; it is shown suspect on that check (API
/// and metric) while it keeps voting, and the mark clears once it agrees again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_a_probe_failing_one_check_alone_is_suspect_and_pages_nobody() {
    let mut w = World::start("").await;
    w.until_state("acme", "operational", never).await;
    let a1_acme = |probe: &str, check: &str| probe == "a1" && check == "acme-www";
    let probes = w
        .until_api("a1 suspect", SETTLE, a1_acme, "/api/v1/probes", |v| {
            v.as_array().is_some_and(|l| {
                l.iter().any(|p| {
                    p["id"] == "a1" && p["suspect"].as_array().is_some_and(|s| !s.is_empty())
                })
            })
        })
        .await;
    let a1 = probes
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == "a1"))
        .cloned()
        .expect("a1");
    assert_eq!(a1["suspect"][0]["check"], "acme-www", "{a1}");
    assert_eq!(a1["suspect"][0]["vendor"], "acme", "{a1}");
    assert_eq!(a1["suspect"][0]["dissent"], "failing", "{a1}");
    assert_eq!(a1["healthy"], true, "suspect is not quarantined: {a1}");
    let since = a1["suspect"][0]["dissenting_since_ms"]
        .as_i64()
        .expect("since");
    let marked = a1["suspect"][0]["suspect_since_ms"]
        .as_i64()
        .expect("marked");
    assert!(
        marked - since > 4000,
        "suspect only after the 4 s window: {a1}"
    );
    let metrics = get(w.coordinator.addr, "/metrics", Some(API_TOKEN), &[])
        .await
        .expect("GET /metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("vantage_probe_suspect{probe=\"a1\",check=\"acme-www\"} 1"),
        "{text}"
    );
    // It still votes: acme's evidence counts its failing vote.
    let acme = w.api("/api/v1/vendors/acme").await;
    assert_eq!(
        acme["checks"][0]["evidence"]["global"]["failing"], 1,
        "{acme}"
    );
    assert_eq!(acme["regions"]["a"]["state"], "operational", "{acme}");
    // A while longer: nobody is paged, nowhere is down.
    w.rounds_for(Duration::from_secs(4), a1_acme).await;
    assert!(
        w.sink.at("/hook").is_empty(),
        "a lone probe paged: {:?}",
        w.sink.at("/hook")
    );
    assert!(
        w.sink.at("/probes").is_empty(),
        "one check is not quarantine"
    );
    // Healed: the mark clears once a window passes without its lone failure.
    w.until_api(
        "a1 no longer suspect",
        SETTLE,
        never,
        "/api/v1/probes",
        |v| {
            v.as_array().is_some_and(|l| {
                l.iter()
                    .all(|p| p["suspect"].as_array().is_some_and(Vec::is_empty))
            })
        },
    )
    .await;
}

/// Issue 12: a receiver that fails every attempt it allows (`max_attempts`) gets its alert
/// given up: a dead letter, on the incident's timeline (`undeliverable`) and in
/// `vantage_alert_dead_letters_total`, instead of being retried for ever; the other receivers
/// are paged as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_an_alert_failing_every_allowed_attempt_is_a_dead_letter() {
    let mut w = World::start(
        "[[receiver]]\nname = \"dead\"\nkind = \"webhook\"\nurl = \"SINK/dead\"\nmax_attempts = 2\n\n[[route]]\nreceivers = [\"dead\"]\nvendors = [\"acme\"]\n",
    )
    .await;
    w.sink.broken.lock().expect("lock").push("/dead".into());
    w.until_state("acme", "operational", never).await;
    w.until("the trigger", SETTLE, acme_everywhere, |w| {
        w.sink.events("/hook", "acme") == ["trigger"]
    })
    .await;
    let list = w.api("/api/v1/incidents?subject=acme").await;
    let id = list[0]["id"].as_i64().expect("id");
    let incident = w
        .until_api(
            "the dead letter",
            SETTLE,
            acme_everywhere,
            &format!("/api/v1/incidents/{id}"),
            |v| {
                v["timeline"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|e| e["kind"] == "undeliverable"))
            },
        )
        .await;
    let dead = incident["timeline"]
        .as_array()
        .and_then(|t| t.iter().find(|e| e["kind"] == "undeliverable").cloned())
        .expect("undeliverable");
    assert_eq!(dead["detail"]["receiver"], "dead", "{dead}");
    assert_eq!(dead["detail"]["attempts"], 2, "{dead}");
    assert!(
        dead["detail"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{dead}"
    );
    let metrics = get(w.coordinator.addr, "/metrics", Some(API_TOKEN), &[])
        .await
        .expect("GET /metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("vantage_alert_dead_letters_total{receiver=\"dead\"} 1"),
        "{text}"
    );
    // Given up, it is tried no more.
    w.rounds_for(Duration::from_secs(4), acme_everywhere).await;
    assert_eq!(
        w.sink.at("/dead").len(),
        0,
        "the broken receiver's requests are refused, never recorded"
    );
    let attempts = w
        .coordinator
        .log()
        .matches("alert delivery failed; will retry")
        .count();
    assert_eq!(attempts, 1, "one retry, then given up");
}
