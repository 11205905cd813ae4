//! Coordinators sharing one PostgreSQL store (issue 14, ARCHITECTURE §8): who holds which
//! partition's lease, as each coordinator's `/readyz` says, and [`Cluster`], the HA tests' and
//! the failover benchmark's world: three coordinators on a real PostgreSQL, six probes in
//! three regions listing all three, one vendor (`tcpco`) with one TCP check on a [`Service`]
//! the test takes down, and a webhook sink.
//!
//! A coordinator evaluates a vendor (records its states, opens and resolves its incidents)
//! only while it holds the lease of the vendor's partition; on gaining a lease it reconciles
//! that partition's incidents at once. So "who evaluates `tcpco` now" is "whose `/readyz`
//! lists partition [`vendor_part`]`("tcpco")`".

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fleet::{Coordinator, Fleet, Probe, ProbeOptions, http_get};
use crate::postgres::Postgres;
use crate::relay::Relay;
use crate::sink::Sink;
use crate::world::CORPUS_DEFAULTS;

/// The cluster's vendor.
pub const VENDOR: &str = "tcpco";

/// The lease of the HA tests: a dead coordinator's partitions move within 3 s plus a
/// balancing pass (a third of it).
pub const LEASE: &str = "3s";

/// Long enough for any state change here; polls end as soon as it happens.
pub const WITHIN: Duration = Duration::from_secs(90);

/// The `[store]` and `[cluster]` tables of a coordinator sharing the PostgreSQL store at
/// `url`, with leases of `lease` (`"3s"`).
pub fn shared_store(url: &str, lease: &str) -> String {
    format!("[store]\nurl = \"{url}\"\n\n[cluster]\nlease = \"{lease}\"\n")
}

/// The partition of vendor `id`, as the coordinator computes it (`part_of` in
/// `coordinator/src/store/lease.rs`: FNV-1a of `vendor:<id>`, mod 16).
pub fn vendor_part(id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in format!("vendor:{id}").bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % 16
}

/// A coordinator's `/readyz` (200 when ready, 503 when its store is out of reach), or `None`
/// when it does not answer.
pub fn readyz(addr: SocketAddr) -> Option<Value> {
    match http_get(addr, "/readyz") {
        Ok((_, body)) => serde_json::from_str(&body).ok(),
        Err(_) => None,
    }
}

/// The partitions a coordinator's `/readyz` says it holds now (none when it does not answer).
pub fn leases(addr: SocketAddr) -> Vec<u32> {
    readyz(addr)
        .and_then(|r| {
            r["leases"].as_array().map(|l| {
                l.iter()
                    .filter_map(|p| p.as_u64().and_then(|p| u32::try_from(p).ok()))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The coordinator (index) among the live ones whose `/readyz` lists partition `part`.
pub fn holder(coordinators: &[Coordinator], alive: &[bool], part: u32) -> Option<usize> {
    coordinators
        .iter()
        .enumerate()
        .position(|(i, c)| alive[i] && leases(c.addr).contains(&part))
}

/// Polls `done` every 100 ms until it holds, or panics after [`WITHIN`]; says how long it took.
pub fn wait(what: &str, mut done: impl FnMut() -> bool) {
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

/// A TCP service that accepts while it is up and refuses (its listener closed) while down.
#[derive(Debug)]
pub struct Service {
    /// Where it listens.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
}

impl Service {
    /// Starts it on a free loopback port, up.
    pub fn start() -> Self {
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

    /// Takes it down: its listener closes.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Brings it up again on the same port.
    pub fn up(&self) {
        let listener = TcpListener::bind(self.addr).expect("bind the service again");
        self.up.store(true, Ordering::SeqCst);
        self.serve(listener);
    }
}

/// Three coordinators on one PostgreSQL, six probes in three regions listing all three (each
/// preferring a different one), the vendor operational everywhere.
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: probes, then coordinators, then the servers.
    /// The probes: `eu-1`, `eu-2`, `us-1`, `us-2`, `ap-1`, `ap-2`.
    pub probes: Vec<Probe>,
    /// The coordinators, each in its own [`Fleet`].
    pub coordinators: Vec<Coordinator>,
    /// Which coordinators run (not killed).
    pub alive: Vec<bool>,
    /// Each coordinator's directory; probe `i` is registered in fleet `i % 3`.
    pub fleets: Vec<Fleet>,
    /// Each coordinator reaches PostgreSQL through its own relay, to cut it off alone.
    pub links: Vec<Relay>,
    /// The webhook sink (`/hook`).
    pub sink: Sink,
    /// The vendor's service.
    pub service: Service,
    /// The store.
    pub pg: Postgres,
}

impl Cluster {
    /// Starts the cluster on database `db` with the HA tests' [`LEASE`], and waits until every
    /// coordinator says the vendor is operational.
    pub fn start(db: &str) -> Self {
        Self::start_with_lease(db, LEASE)
    }

    /// [`Cluster::start`] with leases of `lease` (`"10s"`).
    pub fn start_with_lease(db: &str, lease: &str) -> Self {
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
                "{}\n[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
                shared_store(
                    &url.replace(&pg_addr.to_string(), &link.addr().to_string()),
                    lease
                ),
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
            alive: vec![true; 3],
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
                match http_get(co.addr, &format!("/api/v1/vendors/{VENDOR}")) {
                    Ok((200, body)) => serde_json::from_str::<Value>(&body)
                        .is_ok_and(|v| v["global"]["state"] == "operational"),
                    _ => false,
                }
            })
        });
        c
    }

    /// The coordinator evaluating the vendor now (waits until one holds its lease).
    pub fn owner(&self) -> usize {
        let mut found = None;
        wait("a coordinator holding the vendor's lease", || {
            found = holder(&self.coordinators, &self.alive, vendor_part(VENDOR));
            found.is_some()
        });
        found.expect("an owner")
    }

    /// Kills coordinator `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.coordinators[i].kill();
        self.alive[i] = false;
    }

    /// Starts killed coordinator `i` again, on the same store and port (a new node).
    pub fn restart(&mut self, i: usize) {
        self.coordinators[i].restart();
        self.alive[i] = true;
    }

    /// The webhook alerts about the vendor so far: (event, incident id).
    pub fn alerts(&self) -> Vec<(String, i64)> {
        self.sink
            .requests_to("/hook")
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

    /// How many webhook alerts about the vendor were `event` (`trigger`, `resolve`).
    pub fn count(&self, event: &str) -> usize {
        self.alerts().iter().filter(|(e, _)| e == event).count()
    }

    /// Asserts one trigger and one resolve, under one incident id, and every probe running.
    pub fn assert_paged_once(&mut self) {
        let got = self.alerts();
        let last = self.alive.iter().position(|a| *a).expect("one left");
        let count = |event: &str| got.iter().filter(|(e, _)| e == event).count();
        assert_eq!(
            (count("trigger"), count("resolve")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_partitions_are_pinned() {
        // The coordinator's `part_of` must give the same (a change would also move every
        // vendor's lease in a rolling upgrade).
        assert_eq!(vendor_part(VENDOR), 8);
        assert_eq!(vendor_part("acme"), 1);
        assert_eq!(vendor_part("fastcdn"), 4);
    }
}
