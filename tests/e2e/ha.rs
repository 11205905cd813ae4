//! High availability on PostgreSQL (issue 14): three coordinators on one real PostgreSQL,
//! six probes in three regions listing all three, a vendor whose service goes down. The
//! coordinator that evaluates the vendor is killed with SIGKILL before the page, and the next
//! one mid-incident: exactly one trigger and one resolve reach the webhook sink, under one
//! incident id.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_e2e::fleet::{Coordinator, Fleet, Probe, ProbeOptions, http_get};
use vantage_e2e::postgres::Postgres;
use vantage_e2e::relay::Relay;
use vantage_e2e::sink::Sink;
use vantage_e2e::world::CORPUS_DEFAULTS;

const VENDOR: &str = "tcpco";

/// Long enough for any state change here; polls end as soon as it happens.
const WITHIN: Duration = Duration::from_secs(90);

/// A TCP service that accepts while it is up and refuses (its listener closed) while down.
struct Service {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
}

impl Service {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let service = Self {
            addr,
            up: Arc::clone(&up),
        };
        service.serve(listener);
        service
    }

    fn serve(&self, listener: TcpListener) {
        let up = Arc::clone(&self.up);
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            // The listener closes here: connections are refused.
        });
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
    }

    fn up(&self) {
        let listener = TcpListener::bind(self.addr).expect("bind the service again");
        self.up.store(true, Ordering::SeqCst);
        self.serve(listener);
    }
}

/// The vendor's partition, as the coordinator computes it (FNV-1a of `vendor:id`, mod 16;
/// pinned by the coordinator's own unit test).
fn part(vendor: &str) -> u64 {
    let mut h: u32 = 0x811c_9dc5;
    for b in format!("vendor:{vendor}").bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    u64::from(h % 16)
}

fn get_json(addr: SocketAddr, path: &str) -> Option<Value> {
    match http_get(addr, path) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// The coordinator (index) whose `/readyz` lists the vendor's partition among its leases.
fn owner(coordinators: &[Coordinator], alive: &[bool]) -> Option<usize> {
    let p = part(VENDOR);
    coordinators.iter().enumerate().position(|(i, c)| {
        alive[i]
            && get_json(c.addr, "/readyz").is_some_and(|r| {
                r["leases"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x.as_u64() == Some(p)))
            })
    })
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < WITHIN {
        if done() {
            eprintln!("{what}: after {:.1?}", start.elapsed());
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within {WITHIN:?}");
}

/// The webhook alerts about the vendor so far: (event, incident id).
fn alerts(sink: &Sink) -> Vec<(String, i64)> {
    sink.requests_to("/hook")
        .iter()
        .map(|r| r.json())
        .filter(|a| a["id"] == VENDOR)
        .map(|a| {
            (
                a["event"].as_str().unwrap_or_default().to_owned(),
                a["incident_id"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

fn count(alerts: &[(String, i64)], event: &str) -> usize {
    alerts.iter().filter(|(e, _)| e == event).count()
}

/// Three coordinators on one PostgreSQL with a lease of 3 s, six probes in three regions
/// listing all three (each preferring a different one), the vendor operational everywhere.
struct Cluster {
    // Field order is drop order: probes, then coordinators, then the servers.
    probes: Vec<Probe>,
    coordinators: Vec<Coordinator>,
    alive: [bool; 3],
    fleets: Vec<Fleet>,
    /// Each coordinator reaches PostgreSQL through its own relay, to cut it off alone.
    links: Vec<Relay>,
    sink: Sink,
    service: Service,
    pg: Postgres,
}

impl Cluster {
    fn start(db: &str) -> Self {
        let pg = Postgres::start();
        let url = pg.create_database(db);
        let sink = Sink::start();
        let service = Service::start();
        let checks = format!(
            "[defaults]\n{CORPUS_DEFAULTS}\n[[vendor]]\nid = \"{VENDOR}\"\nname = \"TCP Co\"\n\n\
             [[check]]\nid = \"tcp-svc\"\nvendor = \"{VENDOR}\"\nkind = \"tcp\"\ntarget = \"{}\"\n",
            service.addr
        );
        let pg_addr = SocketAddr::from(([127, 0, 0, 1], pg.port()));
        let links: Vec<Relay> = (0..3).map(|_| Relay::start(pg_addr)).collect();
        let config = |link: &Relay| {
            format!(
                "[store]\nurl = \"{}\"\n\n[cluster]\nlease = \"3s\"\n\n\
                 [[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
                url.replace(&pg_addr.to_string(), &link.addr().to_string()),
                sink.url("/hook")
            )
        };
        let fleets: Vec<Fleet> = (0..3).map(|_| Fleet::new()).collect();
        let coordinators: Vec<Coordinator> = fleets
            .iter()
            .zip(&links)
            .map(|(f, link)| f.coordinator_with(&checks, Some(&config(link))))
            .collect();
        let urls: Vec<String> = coordinators.iter().map(Coordinator::url).collect();
        let probes: Vec<Probe> = [
            ("eu-1", "eu"),
            ("eu-2", "eu"),
            ("us-1", "us"),
            ("us-2", "us"),
            ("ap-1", "ap"),
            ("ap-2", "ap"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (id, region))| {
            let mut list = urls.clone();
            list.rotate_left(i % 3);
            fleets[i % 3].probe_with(
                &coordinators[i % 3],
                id,
                region,
                ProbeOptions {
                    coordinators: list,
                    ..ProbeOptions::default()
                },
            )
        })
        .collect();
        let c = Self {
            probes,
            coordinators,
            alive: [true; 3],
            fleets,
            links,
            sink,
            service,
            pg,
        };
        // Every coordinator sees every probe's results (the store's feed): all say
        // operational.
        wait("the vendor operational on every coordinator", || {
            c.coordinators.iter().all(|co| {
                get_json(co.addr, &format!("/api/v1/vendors/{VENDOR}"))
                    .is_some_and(|v| v["global"]["state"] == "operational")
            })
        });
        c
    }

    /// The coordinator evaluating the vendor now (waits until one holds its lease).
    fn owner(&self) -> usize {
        let mut found = None;
        wait("a coordinator holding the vendor's lease", || {
            found = owner(&self.coordinators, &self.alive);
            found.is_some()
        });
        found.expect("an owner")
    }

    fn kill(&mut self, i: usize) {
        self.coordinators[i].kill();
        self.alive[i] = false;
    }

    /// Asserts one trigger and one resolve, under one incident id.
    fn assert_paged_once(&mut self) {
        let got = alerts(&self.sink);
        let last = self.alive.iter().position(|a| *a).expect("one left");
        assert_eq!(
            (count(&got, "trigger"), count(&got, "resolve")),
            (1, 1),
            "exactly one trigger and one resolve: {got:?}\nlog of a live coordinator:\n{}",
            self.coordinators[last].log()
        );
        let ids: std::collections::BTreeSet<i64> = got.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids.len(), 1, "one incident throughout: {got:?}");
        for p in &mut self.probes {
            p.assert_running();
        }
    }
}

#[test]
fn three_coordinators_page_once_through_kill_9_of_the_owner_twice() {
    let mut c = Cluster::start("ha_kill");
    let first = c.owner();
    // The service goes down, and its evaluator dies before it can page.
    c.service.down();
    c.kill(first);
    wait("one trigger at the webhook", || {
        count(&alerts(&c.sink), "trigger") >= 1
    });
    // The next evaluator dies mid-incident.
    let second = c.owner();
    c.kill(second);
    c.service.up();
    wait("one resolve at the webhook", || {
        count(&alerts(&c.sink), "resolve") >= 1
    });
    // Long enough for a second page to show, if one were coming: leases move within 4 s.
    std::thread::sleep(Duration::from_secs(10));
    c.assert_paged_once();
}

/// The evaluator is frozen (SIGSTOP) for longer than its lease while the vendor goes down,
/// then woken: the coordinator that took its lease pages once, and the woken one, which may
/// still believe it owns the vendor, writes and sends nothing stale (its writes are fenced).
#[test]
fn a_frozen_owner_woken_after_its_lease_sends_nothing_stale() {
    let mut c = Cluster::start("ha_freeze");
    let frozen = c.owner();
    c.coordinators[frozen].pause();
    c.service.down();
    wait("one trigger at the webhook", || {
        count(&alerts(&c.sink), "trigger") >= 1
    });
    let taker = c.owner();
    assert_ne!(taker, frozen, "another coordinator took the lease");
    // Woken mid-incident; then the vendor recovers.
    c.coordinators[frozen].resume();
    std::thread::sleep(Duration::from_secs(5));
    c.service.up();
    wait("one resolve at the webhook", || {
        count(&alerts(&c.sink), "resolve") >= 1
    });
    std::thread::sleep(Duration::from_secs(10));
    c.assert_paged_once();
    let log = c.coordinators[frozen].log();
    let woken = &log[log.find("resumed (SIGCONT)").expect("resumed")..];
    assert!(
        !woken.contains("incident opened"),
        "the woken coordinator opened nothing:\n{woken}"
    );
}

fn ready(c: &Coordinator) -> Option<Value> {
    match http_get(c.addr, "/readyz") {
        Ok((_, body)) => serde_json::from_str(&body).ok(),
        Err(_) => None,
    }
}

/// The evaluator is cut off from PostgreSQL (its link blackholed) while the vendor goes down:
/// it says so on `/readyz`, answers ingest with `503` (the probes go elsewhere), gives up its
/// leases; another coordinator pages once. When the link returns it rejoins and takes leases
/// again, and the resolve still comes once.
#[test]
fn a_coordinator_cut_from_postgres_steps_aside_and_rejoins() {
    let mut c = Cluster::start("ha_cut");
    let cut = c.owner();
    c.links[cut].pause();
    c.service.down();
    wait(
        "the cut coordinator to say its store is unreachable",
        || {
            ready(&c.coordinators[cut])
                .is_some_and(|r| r["ready"] == false && r["leases"] == serde_json::json!([]))
        },
    );
    let token = std::fs::read_to_string(c.fleets[0].path().join("eu-1.token")).expect("token");
    let push = vantage_e2e::fleet::http_post_json(
        c.coordinators[cut].addr,
        "/api/v1/results",
        token.trim(),
        r#"{"results":[]}"#,
    );
    assert!(
        matches!(push, Ok((503, _))),
        "ingest is refused with 503 while the store is out of reach: {push:?}"
    );
    wait("one trigger at the webhook", || {
        count(&alerts(&c.sink), "trigger") >= 1
    });
    assert_ne!(c.owner(), cut, "another coordinator evaluates the vendor");
    c.links[cut].resume();
    wait("the cut coordinator back, holding leases again", || {
        ready(&c.coordinators[cut]).is_some_and(|r| {
            r["ready"] == true && r["leases"].as_array().is_some_and(|l| !l.is_empty())
        })
    });
    c.service.up();
    wait("one resolve at the webhook", || {
        count(&alerts(&c.sink), "resolve") >= 1
    });
    std::thread::sleep(Duration::from_secs(10));
    c.assert_paged_once();
}

/// PostgreSQL restarts while six probes push to three coordinators: the coordinators
/// reconnect, and no result a probe made is lost (each probe's results are stored without a
/// hole), since nothing is acknowledged before it is committed.
#[test]
fn a_postgres_restart_mid_ingest_loses_nothing_acknowledged() {
    let mut c = Cluster::start("ha_restart");
    std::thread::sleep(Duration::from_secs(3));
    c.pg.restart();
    // Ingest resumes: results made after the restart are stored.
    let resumed = SystemTimeMs::now();
    wait("results stored again after the restart", || {
        c.coordinators[0]
            .results("limit=1")
            .first()
            .is_some_and(|r| unix_ms(r.started_at) > resumed.0 + 2_000)
    });
    std::thread::sleep(Duration::from_secs(3));
    for p in &mut c.probes {
        p.assert_running();
    }
    for p in &c.probes {
        let seqs: std::collections::BTreeSet<u64> = c.coordinators[1]
            .results_of(&p.id)
            .iter()
            .map(|r| r.seq)
            .collect();
        let max = *seqs.last().expect("some results");
        let stored_before_the_last_push = (0..max).filter(|s| !seqs.contains(s)).count();
        assert_eq!(
            stored_before_the_last_push, 0,
            "probe {}: a hole in seqs 0..{max}: every result before the last is stored",
            p.id
        );
    }
}

struct SystemTimeMs(i64);

impl SystemTimeMs {
    fn now() -> Self {
        Self(unix_ms(time::OffsetDateTime::now_utc()))
    }
}

fn unix_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}
