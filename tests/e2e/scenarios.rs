//! The scenario corpus (ARCHITECTURE §9): scripted faults against real processes on loopback,
//! with the states, alerts and detection times they must produce.
//!
//! The world of every scenario: a coordinator; six probes, two in each of regions `a`, `b`
//! and `c`, each leaving from its own loopback source (`127.0.<region>.<n>`); two NSD
//! instances authoritative for `acme.test` (vendor `acme`); nginx as FastCDN's edge in front
//! of an origin, with per-source faults (vendor `fastcdn`: a CDN object, a control API and a
//! telemetry feed); a real Prometheus Alertmanager; and a webhook sink that records what the
//! coordinator (and Alertmanager) send. Faults are made by stopping or reconfiguring those
//! servers, or by putting a probe in a network namespace of its own.
//!
//! Scenarios run one at a time (they share the machine's two cores). Detection times are
//! printed next to the bound `K·I/(N+1) + (confirm−1)·I + timeout + push + eval + for`.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_e2e::alertmanager::Alertmanager;
use vantage_e2e::cdn::{self, Cdn, Fault};
use vantage_e2e::dns::{Nsd, Zone};
use vantage_e2e::fleet::{Coordinator, Fleet, Probe, ProbeOptions, http_get};
use vantage_e2e::free_port;
use vantage_e2e::netns::BrokenNet;
use vantage_e2e::relay::Relay;
use vantage_e2e::sink::{Recorded, Sink};

/// One scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const ZONE: &str = "acme.test";
const SERIAL_NOW: u32 = 2026112302;
const SERIAL_OLD: u32 = 2026112301;

/// Consensus settings of the corpus: interval 2 s, six probes, K = 3 failing votes.
const INTERVAL_S: f64 = 2.0;
const TIMEOUT_S: f64 = 1.0;
const FOR_S: f64 = 2.0;
const RECOVER_S: f64 = 4.0;
const PUSH_S: f64 = 1.0;
const EVAL_S: f64 = 0.1;
const PROBES: usize = 6;

/// Long enough for any state change here; polls end as soon as it happens.
const WITHIN: Duration = Duration::from_secs(60);

fn zone(serial: u32) -> Zone {
    Zone::new(
        ZONE,
        serial,
        "@ IN NS ns1\n@ IN NS ns2\nns1 IN A 127.0.0.1\nns2 IN A 127.0.0.1\nwww IN A 192.0.2.10\n",
    )
}

fn checks(ns: [SocketAddr; 2], cdn: &Cdn, defaults: &str) -> String {
    let ca = cdn.ca_file().display().to_string();
    format!(
        r#"
[defaults]
interval = "2s"
timeout = "1s"
retry = "off"
window = "6s"
quorum = 3
failing = "50%"
regions = 2
region_quorum = 2
confirm = 1
for = "2s"
recover_for = "4s"
failing_interval = "1s"
{defaults}

[[vendor]]
id = "acme"
name = "Acme DNS"

[[vendor]]
id = "fastcdn"
name = "FastCDN"

[[check]]
id = "acme-www"
vendor = "acme"
kind = "dns"
zone = "{ZONE}"
query = {{ name = "www.{ZONE}", type = "A" }}
servers = ["{ns0}", "{ns1}"]
expect = {{ answers = ["192.0.2.10"], authoritative = true }}
consistent_soa = true

[[check]]
id = "fast-css"
vendor = "fastcdn"
kind = "cdn"
url = "https://{host}/css/site.css"
edge = "{edge}"
ca = "{ca}"
slow = "400ms"

[[check]]
id = "fast-api"
vendor = "fastcdn"
role = "control"
kind = "http"
url = "http://{host}/api/health.json"
edge = "{plain}"
cache_bust = true

[[check]]
id = "fast-logs"
vendor = "fastcdn"
role = "telemetry"
kind = "http"
url = "http://{host}/logs/latest.json"
edge = "{plain}"
cache_bust = true
expect = {{ fresh = {{ json_pointer = "/last_event_at", max_age = "10m" }} }}
"#,
        ns0 = ns[0],
        ns1 = ns[1],
        host = cdn::HOST,
        edge = cdn.edge,
        plain = cdn.edge_plain,
    )
}

fn coordinator_toml(sink: &Sink, am: &Alertmanager) -> String {
    format!(
        r#"
[quarantine]
readmit_after = "6s"

[[receiver]]
name = "hook"
kind = "webhook"
url = "{hook}"

[[receiver]]
name = "am"
kind = "alertmanager"
url = "{am}"
resend = "5s"

[[receiver]]
name = "probes"
kind = "webhook"
url = "{probes}"

[[route]]
receivers = ["hook", "am"]
states = ["hard_down", "api_down", "limited_visibility", "degraded"]

[[route]]
receivers = ["probes"]
states = ["probe_quarantined"]
"#,
        hook = sink.url("/hook"),
        am = am.url(),
        probes = sink.url("/probes"),
    )
}

/// Everything a scenario runs against.
struct World {
    // Field order is drop order: probes before the coordinator before the servers.
    probes: Vec<Probe>,
    relays: Vec<Relay>,
    coordinator: Coordinator,
    _am: Alertmanager,
    sink: Sink,
    cdn: Cdn,
    ns: [Option<Nsd>; 2],
    ns_addr: [SocketAddr; 2],
    fleet: Fleet,
}

impl World {
    /// Starts the world with `probes` of the six (`["a1", …]`), extra `[defaults]` lines, and
    /// waits until both vendors are operational (or, with fewer than a quorum, reporting).
    fn start(probes: &[&str], defaults: &str) -> Self {
        Self::start_with(probes, defaults, &[])
    }

    /// Like [`World::start`]; `via_relay` probes reach the coordinator through a [`Relay`]
    /// (returned in the same order) that the scenario can pause.
    fn start_with(probes: &[&str], defaults: &str, via_relay: &[&str]) -> Self {
        let fleet = Fleet::new();
        let ns_addr = [
            SocketAddr::from(([127, 0, 0, 1], free_port())),
            SocketAddr::from(([127, 0, 0, 1], free_port())),
        ];
        let ns = [
            Some(Nsd::start("ns1", &ns_addr[..1], &[zone(SERIAL_NOW)])),
            Some(Nsd::start("ns2", &ns_addr[1..], &[zone(SERIAL_NOW)])),
        ];
        let cdn = Cdn::start();
        cdn.put("api/health.json", "{\"status\": \"ok\"}");
        cdn.put(
            "logs/latest.json",
            "{\"last_event_at\": \"2999-01-01T00:00:00Z\"}",
        );
        let sink = Sink::start();
        let am = Alertmanager::start(&sink.url("/am"));
        let coordinator = fleet.coordinator_with(
            &checks(ns_addr, &cdn, defaults),
            Some(&coordinator_toml(&sink, &am)),
        );
        let mut relays = Vec::new();
        let probes = probes
            .iter()
            .map(|id| {
                let relay = via_relay
                    .contains(id)
                    .then(|| Relay::start(coordinator.addr));
                let probe = Self::start_probe(&fleet, &coordinator, id, relay.as_ref());
                relays.extend(relay);
                probe
            })
            .collect();
        let w = Self {
            relays,
            probes,
            coordinator,
            _am: am,
            sink,
            cdn,
            ns,
            ns_addr,
            fleet,
        };
        if w.probes.len() >= 3 {
            w.wait_state("acme", "operational");
            w.wait_state("fastcdn", "operational");
        }
        w
    }

    fn start_probe(
        fleet: &Fleet,
        coordinator: &Coordinator,
        id: &str,
        relay: Option<&Relay>,
    ) -> Probe {
        let region = &id[..1];
        let r = 1 + (region.as_bytes()[0] - b'a');
        let n: u8 = id[1..].parse().expect("probe number");
        let source = cdn::probe_source(r, n);
        fleet.probe_with(
            coordinator,
            id,
            region,
            ProbeOptions {
                args: vec!["--source-address".into(), source.to_string()],
                coordinator: relay.map(Relay::addr),
                ..ProbeOptions::default()
            },
        )
    }

    fn vendor(&self, id: &str) -> Value {
        match http_get(self.coordinator.addr, &format!("/api/v1/vendors/{id}")) {
            Ok((200, body)) => serde_json::from_str(&body).expect("vendor JSON"),
            other => panic!("GET /api/v1/vendors/{id}: {other:?}"),
        }
    }

    /// Polls until `vendor`'s global state is `state`; returns how long it took.
    fn wait_state(&self, vendor: &str, state: &str) -> Duration {
        self.wait(&format!("{vendor} {state}"), || {
            self.vendor(vendor)["global"]["state"] == state
        })
    }

    fn wait(&self, what: &str, mut done: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if done() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < WITHIN,
                "{what}: not within {WITHIN:?}\nhook: {:?}\ncoordinator log:\n{}",
                self.hook()
                    .iter()
                    .map(Recorded::summary)
                    .collect::<Vec<_>>(),
                tail(&self.coordinator.log())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn hook(&self) -> Vec<Recorded> {
        self.sink.requests_to("/hook")
    }

    /// The webhook events (`trigger`, `resolve`; updates left out) about `subject`, with
    /// when they arrived.
    fn events(&self, path: &str, subject: &str) -> Vec<(String, Instant, Value)> {
        self.sink
            .requests_to(path)
            .iter()
            .filter_map(|r| {
                let body = r.json();
                (body["id"] == subject && body["event"] != "update").then(|| {
                    (
                        body["event"].as_str().unwrap_or_default().to_owned(),
                        r.at,
                        body,
                    )
                })
            })
            .collect()
    }

    fn triggers(&self, subject: &str) -> Vec<(String, Instant, Value)> {
        self.events("/hook", subject)
            .into_iter()
            .filter(|(e, ..)| e == "trigger")
            .collect()
    }

    /// Waits for the first trigger about `subject` at the webhook; returns when it arrived.
    fn wait_trigger(&self, subject: &str) -> (Instant, Value) {
        self.wait(&format!("a trigger for {subject}"), || {
            !self.triggers(subject).is_empty()
        });
        let (_, at, body) = self.triggers(subject).remove(0);
        (at, body)
    }

    fn wait_resolve(&self, subject: &str) -> Instant {
        self.wait(&format!("a resolve for {subject}"), || {
            self.events("/hook", subject)
                .iter()
                .any(|(e, ..)| e == "resolve")
        });
        self.events("/hook", subject)
            .into_iter()
            .find(|(e, ..)| e == "resolve")
            .map(|(_, at, _)| at)
            .expect("resolve")
    }

    fn stop_dns(&mut self) {
        for ns in &mut self.ns {
            if let Some(mut n) = ns.take() {
                n.stop();
            }
        }
    }

    fn start_dns(&mut self, serials: [u32; 2]) {
        for (i, serial) in serials.into_iter().enumerate() {
            if let Some(mut n) = self.ns[i].take() {
                n.stop();
            }
            let addr = [self.ns_addr[i]];
            self.ns[i] = Some(Nsd::start(&format!("ns{}", i + 1), &addr, &[zone(serial)]));
        }
    }

    /// Keeps the world running for `d` (probes keep probing), checking nothing.
    fn run_for(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            // Letting time pass is the scenario, not a wait for an event.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn tail(log: &str) -> &str {
    let start = log.len().saturating_sub(6000);
    let start = (start..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(0);
    &log[start..]
}

const SIX: [&str; 6] = ["a1", "a2", "b1", "b2", "c1", "c2"];

/// The detection bound for `k` failing votes needed, in seconds.
fn bound(k: usize) -> f64 {
    k as f64 * INTERVAL_S / (PROBES as f64 + 1.0) + TIMEOUT_S + PUSH_S + EVAL_S + FOR_S
}

fn report(scenario: &str, detected: Duration, k: usize) {
    let b = bound(k);
    let d = detected.as_secs_f64();
    println!(
        "detection: {scenario:<28} {d:>6.2} s   bound {b:>5.2} s   ratio {:>4.2}   target <= 1.2 x bound + 1 s = {:>5.2} s: {}",
        d / b,
        1.2 * b + 1.0,
        if d <= 1.2 * b + 1.0 { "met" } else { "NOT met" }
    );
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn s01_hard_down_everywhere_pages_once_and_s12_resolves_within_recover_for() {
    let _serial = lock();
    let mut w = World::start(&SIX, "");
    let fault = Instant::now();
    w.stop_dns();
    let (at, body) = w.wait_trigger("acme");
    report("1 hard down (DNS)", at - fault, 3);
    assert_eq!(body["state"], "hard_down", "{body}");
    assert_eq!(body["scope"], "global", "{body}");
    assert_eq!(w.vendor("acme")["global"]["state"], "hard_down");
    assert_eq!(w.vendor("fastcdn")["global"]["state"], "operational");
    // Alertmanager got it and notified its own receiver.
    w.wait("Alertmanager firing", || {
        w.sink.requests_to("/am").iter().any(|r| {
            let b = r.json();
            b["status"] == "firing" && b["alerts"][0]["labels"]["vendor"] == "acme"
        })
    });

    w.run_for(Duration::from_secs(4));
    assert_eq!(w.triggers("acme").len(), 1, "paged more than once");

    // Scenario 12: the resolve arrives within recover_for plus one evaluation (and the
    // probes' next run and push) of the fix.
    w.start_dns([SERIAL_NOW, SERIAL_NOW]);
    let fixed = Instant::now();
    let resolved = w.wait_resolve("acme");
    let took = (resolved - fixed).as_secs_f64();
    let limit = RECOVER_S + INTERVAL_S + PUSH_S + EVAL_S + 1.0;
    println!(
        "recovery: resolve {took:.2} s after the fix (recover_for {RECOVER_S} s + interval + push + eval = {limit:.1} s)"
    );
    assert!(took <= limit + 2.0, "the resolve took {took:.2} s");
    assert_eq!(
        w.events("/hook", "acme")
            .iter()
            .map(|(e, ..)| e.as_str())
            .collect::<Vec<_>>(),
        ["trigger", "resolve"]
    );
    w.wait("Alertmanager resolved", || {
        w.sink.requests_to("/am").iter().any(|r| {
            let b = r.json();
            b["status"] == "resolved" && b["alerts"][0]["labels"]["vendor"] == "acme"
        })
    });
    assert!(
        w.sink.requests_to("/probes").is_empty(),
        "no probe was blamed"
    );
}

#[test]
fn s02_outage_in_one_region_is_regional_not_global() {
    let _serial = lock();
    let w = World::start(&SIX, "");
    let fault = Instant::now();
    w.cdn.set_faults(&[(&cdn::region_sources(3), Fault::Error)]);
    let (at, body) = w.wait_trigger("fastcdn");
    report("2 regional outage (CDN)", at - fault, 2);
    assert_eq!(body["scope"], "regional", "{body}");
    assert_eq!(body["regions"], serde_json::json!(["c"]), "{body}");
    assert_eq!(body["state"], "hard_down", "{body}");
    let v = w.vendor("fastcdn");
    assert_eq!(v["regions"]["c"]["state"], "hard_down", "{v}");
    assert_eq!(v["global"]["state"], "operational", "no global outage: {v}");
    w.run_for(Duration::from_secs(4));
    assert!(
        w.events("/hook", "fastcdn")
            .iter()
            .all(|(_, _, b)| b["scope"] == "regional"),
        "a global page for a regional outage"
    );
}

#[test]
fn s03_a_probe_with_a_broken_network_is_quarantined_not_paged() {
    let _serial = lock();
    let w = World::start(&SIX, "");
    let net = BrokenNet::new(w.coordinator.addr.port());
    let broken = w.fleet.probe_with(
        &w.coordinator,
        "a3",
        "a",
        ProbeOptions {
            netns: Some(net.name().to_owned()),
            ..ProbeOptions::default()
        },
    );
    w.wait("the quarantine alert", || {
        w.events("/probes", "a3")
            .iter()
            .any(|(e, ..)| e == "trigger")
    });
    w.run_for(Duration::from_secs(4));
    assert!(
        w.hook().is_empty(),
        "a broken probe paged: {:?}",
        w.hook().iter().map(Recorded::summary).collect::<Vec<_>>()
    );
    let probes: Value = match http_get(w.coordinator.addr, "/api/v1/probes") {
        Ok((200, body)) => serde_json::from_str(&body).expect("JSON"),
        other => panic!("GET /api/v1/probes: {other:?}"),
    };
    let a3 = probes
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == "a3"))
        .cloned()
        .expect("a3 listed");
    assert_eq!(a3["healthy"], false, "{a3}");
    drop(broken);
}

#[test]
fn s04_a_slow_cdn_is_degraded() {
    let _serial = lock();
    let w = World::start(&SIX, "");
    let fault = Instant::now();
    // Most probes (regions a and b, and c1) see every response held 600 ms.
    w.cdn.set_faults(&[
        (
            &cdn::region_sources(1),
            Fault::Slow(Duration::from_millis(600)),
        ),
        (
            &cdn::region_sources(2),
            Fault::Slow(Duration::from_millis(600)),
        ),
        ("127.0.3.1/32", Fault::Slow(Duration::from_millis(600))),
    ]);
    let (at, body) = w.wait_trigger("fastcdn");
    report("4 CDN slow", at - fault, 3);
    assert_eq!(body["state"], "degraded", "{body}");
    assert_eq!(body["scope"], "global", "{body}");
    assert_eq!(w.vendor("fastcdn")["global"]["state"], "degraded");
}

#[test]
fn s05_control_api_down_data_plane_up_is_api_down() {
    let _serial = lock();
    let w = World::start(&SIX, "");
    std::fs::remove_file(w.cdn.www().join("api/health.json")).expect("remove the health file");
    let (_, body) = w.wait_trigger("fastcdn");
    assert_eq!(body["state"], "api_down", "{body}");
    let v = w.vendor("fastcdn");
    assert_eq!(v["global"]["state"], "api_down", "{v}");
    let kinds: Vec<&str> = v["global"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["api_down"], "the data plane is up: {v}");
}

#[test]
fn s06_stale_reporting_is_limited_visibility() {
    let _serial = lock();
    let w = World::start(&SIX, "");
    w.cdn.put(
        "logs/latest.json",
        "{\"last_event_at\": \"2020-01-01T00:00:00Z\"}",
    );
    let (_, body) = w.wait_trigger("fastcdn");
    assert_eq!(body["state"], "limited_visibility", "{body}");
    let v = w.vendor("fastcdn");
    assert_eq!(
        v["global"]["conditions"][0]["failures"],
        serde_json::json!(["stale_data"]),
        "{v}"
    );
}

#[test]
fn s07_an_old_soa_serial_is_a_data_consistency_condition_naming_the_server() {
    let _serial = lock();
    let mut w = World::start(&SIX, "");
    w.start_dns([SERIAL_NOW, SERIAL_OLD]);
    w.wait("the data consistency condition", || {
        let v = w.vendor("acme");
        v["global"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["kind"] == "data_consistency"))
    });
    let v = w.vendor("acme");
    let cond = v["global"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["kind"] == "data_consistency"))
        .cloned()
        .expect("condition");
    let laggard = w.ns_addr[1].to_string();
    assert!(
        cond["detail"].to_string().contains(&laggard),
        "the condition names {laggard}: {cond}"
    );
    assert_eq!(v["global"]["state"], "degraded", "{v}");
}

#[test]
fn s09_a_coordinator_killed_mid_incident_pages_once_and_still_resolves() {
    let _serial = lock();
    let mut w = World::start(&SIX, "");
    w.stop_dns();
    w.wait_trigger("acme");
    w.coordinator.kill();
    w.coordinator.restart();
    w.run_for(Duration::from_secs(5));
    assert_eq!(w.vendor("acme")["global"]["state"], "hard_down");
    assert_eq!(w.triggers("acme").len(), 1, "paged again after the restart");
    w.start_dns([SERIAL_NOW, SERIAL_NOW]);
    w.wait_resolve("acme");
    assert_eq!(
        w.events("/hook", "acme")
            .iter()
            .map(|(e, ..)| e.as_str())
            .collect::<Vec<_>>(),
        ["trigger", "resolve"]
    );
}

#[test]
fn s11_two_probes_with_a_quorum_of_three_is_unknown_and_pages_nobody() {
    let _serial = lock();
    let mut w = World::start(&["a1", "b1"], "");
    w.wait("both probes reporting", || {
        w.vendor("acme")["checks"][0]["evidence"]["global"]["fresh"] == 2
    });
    w.stop_dns();
    w.wait("failing votes", || {
        w.vendor("acme")["checks"][0]["evidence"]["global"]["failing"] == 2
    });
    w.run_for(Duration::from_secs(5));
    assert_eq!(w.vendor("acme")["global"]["state"], "unknown");
    assert!(w.hook().is_empty(), "paged without a quorum");
}

/// How long scenario 8 flaps (`VANTAGE_FLAP_SECS`, default 300 as the corpus asks).
fn flap_for() -> Duration {
    Duration::from_secs(
        std::env::var("VANTAGE_FLAP_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
    )
}

#[test]
fn s08_a_check_flapping_every_interval_for_five_minutes_is_one_incident() {
    let _serial = lock();
    let w = World::start(&SIX, "");
    let every = Duration::from_secs_f64(INTERVAL_S);
    let until = Instant::now() + flap_for();
    let mut broken = false;
    let mut flips = 0;
    while Instant::now() < until {
        broken = !broken;
        flips += 1;
        if broken {
            w.cdn.set_faults(&[("127.0.0.0/8", Fault::Error)]);
        } else {
            w.cdn.clear_faults();
        }
        // The flapping's own rhythm: one interval broken, one interval fine.
        std::thread::sleep(every);
    }
    w.cdn.clear_faults();
    let events: Vec<String> = w
        .events("/hook", "fastcdn")
        .into_iter()
        .map(|(e, ..)| e)
        .collect();
    println!(
        "flapping: {flips} flips over {:?}: events {events:?}",
        flap_for()
    );
    assert_eq!(
        events,
        ["trigger"],
        "flapping must be one open incident, not many"
    );
    w.wait_resolve("fastcdn");
    let incidents: Value = match http_get(w.coordinator.addr, "/api/v1/incidents?subject=fastcdn") {
        Ok((200, body)) => serde_json::from_str(&body).expect("JSON"),
        other => panic!("GET /api/v1/incidents: {other:?}"),
    };
    assert_eq!(incidents.as_array().map(Vec::len), Some(1), "{incidents}");
}

#[test]
fn s10_a_probe_cut_off_for_two_minutes_pages_nobody_and_delivers_its_spool() {
    let _serial = lock();
    let w = World::start_with(&SIX, "", &["a1"]);
    let relay = &w.relays[0];
    let cut = Duration::from_secs(
        std::env::var("VANTAGE_CUTOFF_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    );
    let from = time::OffsetDateTime::now_utc();
    relay.pause();
    w.run_for(cut);
    let to = time::OffsetDateTime::now_utc();
    assert!(
        w.hook().is_empty(),
        "a silent probe paged: {:?}",
        w.hook().iter().map(Recorded::summary).collect::<Vec<_>>()
    );
    assert_eq!(w.vendor("acme")["global"]["state"], "operational");
    assert_eq!(w.vendor("fastcdn")["global"]["state"], "operational");
    relay.resume();
    let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    // Four checks every interval, less a run or two at the edges.
    let expected = (cut.as_secs_f64() / INTERVAL_S) as usize * 4 - 8;
    w.wait("the cut-off probe's spooled results", || {
        w.coordinator
            .results(&format!(
                "probe=a1&since={}&until={}&limit=10000",
                ms(from),
                ms(to)
            ))
            .len()
            >= expected
    });
    assert!(w.hook().is_empty(), "the spooled results paged");
}
