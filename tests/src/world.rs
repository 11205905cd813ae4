//! The world of the scenario corpus (ARCHITECTURE §9) and the time-to-detect benchmark: a
//! coordinator (or three sharing one PostgreSQL store, [`Backend::Postgres`]); probes in
//! regions `a`, `b` and `c`, each leaving from its own loopback source (`127.0.<region>.<n>`);
//! two NSD instances authoritative for `acme.test` (vendor `acme`); nginx as FastCDN's edge in
//! front of an origin, with per-source faults (vendor `fastcdn`: a CDN object, a control API
//! and a telemetry feed); a real Prometheus Alertmanager; and a webhook sink that records what
//! the coordinators (and Alertmanager) send.
//!
//! The corpus' consensus settings ([`CORPUS_DEFAULTS`]) are fast: interval 2 s, window 6 s,
//! K = 3 failing votes of six probes. [`World::start_with`] takes any `[defaults]`, the
//! README's built-in ones included (an empty string).
//!
//! On PostgreSQL the coordinators have the same checks and receivers, plus the store's URL and
//! leases of [`LEASE`] (3 s); every probe lists all of them, each preferring another. The
//! API is served by each, so the world asks the first that answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::alertmanager::Alertmanager;
use crate::cdn::{self, Cdn};
use crate::cluster::{LEASE, shared_store};
use crate::dns::{Nsd, Zone};
use crate::fleet::{Coordinator, Fleet, Probe, ProbeOptions, http_get};
use crate::free_port;
use crate::postgres::Postgres;
use crate::relay::Relay;
use crate::sink::{Recorded, Sink};

/// The zone the vendor `acme` serves.
pub const ZONE: &str = "acme.test";
/// The zone's serial.
pub const SERIAL_NOW: u32 = 2026112302;
/// An older serial, for SOA drift.
pub const SERIAL_OLD: u32 = 2026112301;

/// Consensus settings of the corpus: interval 2 s, six probes, K = 3 failing votes.
pub const INTERVAL_S: f64 = 2.0;
pub const TIMEOUT_S: f64 = 1.0;
pub const FOR_S: f64 = 2.0;
pub const RECOVER_S: f64 = 4.0;
pub const PUSH_S: f64 = 1.0;
pub const EVAL_S: f64 = 0.1;
pub const PROBES: usize = 6;

/// Long enough for any state change here; polls end as soon as it happens.
pub const WITHIN: Duration = Duration::from_secs(60);

/// The `acme.test` zone with `serial`.
pub fn zone(serial: u32) -> Zone {
    Zone::new(
        ZONE,
        serial,
        "@ IN NS ns1\n@ IN NS ns2\nns1 IN A 127.0.0.1\nns2 IN A 127.0.0.1\nwww IN A 192.0.2.10\n",
    )
}

/// The `[defaults]` of the scenario corpus: fast, so that a scenario takes seconds.
pub const CORPUS_DEFAULTS: &str = r#"interval = "2s"
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
"#;

/// The check file: both vendors' checks under `[defaults]` `defaults`.
pub fn checks(ns: [SocketAddr; 2], cdn: &Cdn, defaults: &str) -> String {
    let ca = cdn.ca_file().display().to_string();
    format!(
        r#"
[defaults]
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

/// Receivers (the webhook sink, Alertmanager) and routes (probe alerts apart).
pub fn coordinator_toml(sink: &Sink, am: &Alertmanager) -> String {
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

/// Where the world's coordinators keep their state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One coordinator, SQLite in its data directory.
    Sqlite,
    /// Coordinators sharing one PostgreSQL store of the world's own, with leases of [`LEASE`].
    Postgres {
        /// How many.
        coordinators: usize,
    },
}

/// Everything a scenario runs against.
pub struct World {
    // Field order is drop order: probes before the coordinators before the servers.
    /// The probes, in the order given.
    pub probes: Vec<Probe>,
    /// The relays of the probes started behind one, in the order given.
    pub relays: Vec<Relay>,
    /// The coordinator (on PostgreSQL, the first; the probes' first choice is spread).
    pub coordinator: Coordinator,
    /// The other coordinators sharing its PostgreSQL store; none on SQLite.
    pub peers: Vec<Coordinator>,
    /// Alertmanager, notifying the sink at `/am`.
    pub am: Alertmanager,
    /// The webhook sink: `/hook` (vendor pages), `/probes` (probe alerts), `/am`.
    pub sink: Sink,
    /// FastCDN's edge and origin.
    pub cdn: Cdn,
    ns: [Option<Nsd>; 2],
    /// The two name servers' addresses.
    pub ns_addr: [SocketAddr; 2],
    /// Where the processes' files live.
    pub fleet: Fleet,
    /// The PostgreSQL store, on [`Backend::Postgres`]; dropped (stopped) last.
    _pg: Option<Postgres>,
}

impl World {
    /// Starts the world with `probes` (`["a1", …]`: region letter, number), the corpus'
    /// settings plus `extra` `[defaults]` lines, and waits until both vendors are operational
    /// (with fewer than three probes, only until they report).
    pub fn start(probes: &[&str], extra: &str) -> Self {
        Self::start_with(probes, &format!("{CORPUS_DEFAULTS}{extra}"), &[])
    }

    /// Like [`World::start`] with the whole `[defaults]` table given (`""`: the built-in
    /// defaults); `via_relay` probes reach the coordinator through a [`Relay`] (returned in
    /// the same order) that the scenario can pause.
    pub fn start_with(probes: &[&str], defaults: &str, via_relay: &[&str]) -> Self {
        Self::start_on(Backend::Sqlite, probes, defaults, via_relay)
    }

    /// Like [`World::start_with`], on `backend`. On PostgreSQL no probe can be behind a relay
    /// (they list every coordinator).
    pub fn start_on(backend: Backend, probes: &[&str], defaults: &str, via_relay: &[&str]) -> Self {
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
        let checks = checks(ns_addr, &cdn, defaults);
        let receivers = coordinator_toml(&sink, &am);
        let (pg, mut coordinators) = match backend {
            Backend::Sqlite => (
                None,
                vec![fleet.coordinator_with(&checks, Some(&receivers))],
            ),
            Backend::Postgres { coordinators: n } => {
                assert!(via_relay.is_empty(), "no relays on PostgreSQL");
                let pg = Postgres::start();
                let config = format!(
                    "{}{receivers}",
                    shared_store(&pg.create_database("vantage"), LEASE)
                );
                let coordinators = (1..=n)
                    .map(|i| {
                        fleet.coordinator_named(&format!("coordinator-{i}"), &checks, Some(&config))
                    })
                    .collect();
                (Some(pg), coordinators)
            }
        };
        let urls: Vec<String> = match backend {
            Backend::Sqlite => Vec::new(),
            Backend::Postgres { .. } => coordinators.iter().map(Coordinator::url).collect(),
        };
        let mut relays = Vec::new();
        let probes = probes
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let relay = via_relay
                    .contains(id)
                    .then(|| Relay::start(coordinators[0].addr));
                // Each prefers another coordinator, as a fleet spread over them would.
                let mut list = urls.clone();
                let n = list.len().max(1);
                list.rotate_left(i % n);
                let probe = Self::start_probe(&fleet, &coordinators[0], id, relay.as_ref(), list);
                relays.extend(relay);
                probe
            })
            .collect();
        let coordinator = coordinators.remove(0);
        let w = Self {
            relays,
            probes,
            coordinator,
            peers: coordinators,
            am,
            sink,
            cdn,
            ns,
            ns_addr,
            fleet,
            _pg: pg,
        };
        if w.probes.len() >= 3 {
            // Every coordinator follows every result, so each says so.
            for c in w.coordinators() {
                for vendor in ["acme", "fastcdn"] {
                    w.wait(&format!("{vendor} operational on {}", c.addr), || {
                        get_json(c.addr, &format!("/api/v1/vendors/{vendor}"))
                            .is_some_and(|v| v["global"]["state"] == "operational")
                    });
                }
            }
        }
        w
    }

    /// Starts probe `id` (`a1`: region `a`, source `127.0.1.1`), optionally behind `relay`,
    /// listing `coordinators` (URLs, in order of preference) if any, else `coordinator` alone.
    pub fn start_probe(
        fleet: &Fleet,
        coordinator: &Coordinator,
        id: &str,
        relay: Option<&Relay>,
        coordinators: Vec<String>,
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
                coordinators,
                ..ProbeOptions::default()
            },
        )
    }

    /// The coordinator, then its peers.
    pub fn coordinators(&self) -> impl Iterator<Item = &Coordinator> {
        std::iter::once(&self.coordinator).chain(&self.peers)
    }

    /// `GET path` on the first coordinator that answers (every one serves the API).
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut last = None;
        for c in self.coordinators() {
            match http_get(c.addr, path) {
                Ok(answer) => return Ok(answer),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one coordinator"))
    }

    /// `GET /api/v1/vendors/{id}`.
    pub fn vendor(&self, id: &str) -> Value {
        match self.get(&format!("/api/v1/vendors/{id}")) {
            Ok((200, body)) => serde_json::from_str(&body).expect("vendor JSON"),
            other => panic!("GET /api/v1/vendors/{id}: {other:?}"),
        }
    }

    /// Polls until `vendor`'s global state is `state`; returns how long it took.
    pub fn wait_state(&self, vendor: &str, state: &str) -> Duration {
        self.wait(&format!("{vendor} {state}"), || {
            self.vendor(vendor)["global"]["state"] == state
        })
    }

    /// Polls `done` until it holds (within [`WITHIN`]); returns how long it took.
    pub fn wait(&self, what: &str, done: impl FnMut() -> bool) -> Duration {
        self.wait_within(what, WITHIN, done)
    }

    /// Polls `done` until it holds, or panics after `within`; returns how long it took.
    pub fn wait_within(
        &self,
        what: &str,
        within: Duration,
        mut done: impl FnMut() -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if done() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{what}: not within {within:?}\nhook: {:?}\n{}",
                self.hook()
                    .iter()
                    .map(Recorded::summary)
                    .collect::<Vec<_>>(),
                self.coordinators()
                    .map(|c| format!("log of the coordinator on {}:\n{}", c.addr, tail(&c.log())))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` on a coordinator as JSON; panics on anything but a 200.
    pub fn api(&self, path: &str) -> Value {
        match self.get(path) {
            Ok((200, body)) => serde_json::from_str(&body).expect("JSON"),
            other => panic!("GET {path}: {other:?}"),
        }
    }

    /// `GET path` on a coordinator as text (the status page, `/metrics`).
    pub fn text(&self, path: &str) -> String {
        match self.get(path) {
            Ok((200, body)) => body,
            other => panic!("GET {path}: {other:?}"),
        }
    }

    /// The checks probe `id` is suspect on (`GET /api/v1/probes`).
    pub fn suspect_checks(&self, id: &str) -> Vec<String> {
        self.api("/api/v1/probes")
            .as_array()
            .and_then(|l| l.iter().find(|p| p["id"] == id))
            .and_then(|p| p["suspect"].as_array())
            .map(|s| {
                s.iter()
                    .filter_map(|x| x["check"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every scope (`global`, or a region) of `vendor` whose state is `state` now.
    pub fn scopes_in(&self, vendor: &str, state: &str) -> Vec<String> {
        let v = self.vendor(vendor);
        let mut out = Vec::new();
        if v["global"]["state"] == state {
            out.push("global".to_owned());
        }
        if let Some(regions) = v["regions"].as_object() {
            for (r, s) in regions {
                if s["state"] == state {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    /// The vendor pages (`/hook`).
    pub fn hook(&self) -> Vec<Recorded> {
        self.sink.requests_to("/hook")
    }

    /// The webhook events (`trigger`, `resolve`; updates left out) about `subject`, with
    /// when they arrived.
    pub fn events(&self, path: &str, subject: &str) -> Vec<(String, Instant, Value)> {
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

    /// The triggers about `subject` at the webhook, with when they arrived.
    pub fn triggers(&self, subject: &str) -> Vec<(String, Instant, Value)> {
        self.events("/hook", subject)
            .into_iter()
            .filter(|(e, ..)| e == "trigger")
            .collect()
    }

    /// Waits for the first trigger about `subject` at the webhook; returns when it arrived.
    pub fn wait_trigger(&self, subject: &str) -> (Instant, Value) {
        self.wait(&format!("a trigger for {subject}"), || {
            !self.triggers(subject).is_empty()
        });
        let (_, at, body) = self.triggers(subject).remove(0);
        (at, body)
    }

    /// Waits for the resolve about `subject` at the webhook; returns when it arrived.
    pub fn wait_resolve(&self, subject: &str) -> Instant {
        self.wait_resolve_within(subject, WITHIN)
    }

    /// [`World::wait_resolve`], waiting up to `within`.
    pub fn wait_resolve_within(&self, subject: &str, within: Duration) -> Instant {
        self.wait_within(&format!("a resolve for {subject}"), within, || {
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

    /// Stops both name servers.
    pub fn stop_dns(&mut self) {
        for ns in &mut self.ns {
            if let Some(mut n) = ns.take() {
                n.stop();
            }
        }
    }

    /// (Re)starts both name servers, serving the zone with these serials.
    pub fn start_dns(&mut self, serials: [u32; 2]) {
        for (i, serial) in serials.into_iter().enumerate() {
            if let Some(mut n) = self.ns[i].take() {
                n.stop();
            }
            let addr = [self.ns_addr[i]];
            self.ns[i] = Some(Nsd::start(&format!("ns{}", i + 1), &addr, &[zone(serial)]));
        }
    }

    /// Keeps the world running for `d` (probes keep probing), checking nothing.
    pub fn run_for(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            // Letting time pass is the scenario, not a wait for an event.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn get_json(addr: SocketAddr, path: &str) -> Option<Value> {
    match http_get(addr, path) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// The last few kilobytes of a log.
pub fn tail(log: &str) -> &str {
    let start = log.len().saturating_sub(6000);
    let start = (start..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(0);
    &log[start..]
}

/// The six probes of the corpus, two in each region.
pub const SIX: [&str; 6] = ["a1", "a2", "b1", "b2", "c1", "c2"];
/// Seven probes, a common layout: three in one region, two in each of two others.
pub const SEVEN: [&str; 7] = ["a1", "a2", "a3", "b1", "b2", "c1", "c2"];

/// The corpus' detection bound `K·I/(N+1) + (confirm−1)·I + timeout + push + eval + for`
/// for `k` failing votes needed of `n` probes (confirm = 1), in seconds.
pub fn bound(k: usize, n: usize) -> f64 {
    k as f64 * INTERVAL_S / (n as f64 + 1.0) + TIMEOUT_S + PUSH_S + EVAL_S + FOR_S
}

/// Prints a detection time against the corpus' bound for `k` votes of `n` probes.
pub fn report(scenario: &str, detected: Duration, k: usize, n: usize) {
    let b = bound(k, n);
    let d = detected.as_secs_f64();
    println!(
        "detection: {scenario:<28} {d:>6.2} s   bound {b:>5.2} s   ratio {:>4.2}   target <= 1.2 x bound + 1 s = {:>5.2} s: {}",
        d / b,
        1.2 * b + 1.0,
        if d <= 1.2 * b + 1.0 { "met" } else { "NOT met" }
    );
}
