//! The simulated vendor world of `vantage-coordinator demo`, in this process, on loopback:
//!
//! - **Demo DNS**: two authoritative servers for [`ZONE`] (UDP and TCP, AA set, no recursion,
//!   EDNS with NSID), serving its SOA, NS and A records;
//! - **Demo CDN**: two edges (plain HTTP) with a small cache in front of one origin, saying
//!   `x-cache: HIT|MISS`, `age` and a vendor header, gzipping text when asked, passing
//!   cache-busting query strings on to the origin; the vendor's control API over HTTPS (a
//!   certificate from a throwaway CA made at start) and its log-freshness endpoint.
//!
//! Faults are switched on and off while it runs: an edge that answers 503, or holds every
//! response, to chosen client source addresses (probes leave from a source address of their
//! own, so a fault can hit one region); an older SOA serial on the second name server; the
//! control API answering 503; log delivery stalled.
//!
//! Nothing in the coordinator's or the probe's own code uses this: it is the demo's, and tests
//! may start one too ([`World::start`] with [`Layout::ephemeral`]).
//!
//! Layout: `dns` the name servers, `http` the edges, origin, API and logs, `pki` the CA.

mod dns;
mod http;
mod pki;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinSet;

/// The demo zone.
pub const ZONE: &str = "demo.vantage.test";
/// The zone's SOA serial; with [`World::set_soa_drift`], the second server serves one less.
pub const SERIAL: u32 = 2026112302;
/// The A records of `www.` in the zone.
pub const WWW_ADDRESSES: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 11)];
/// The host the CDN serves, as the checks' URLs name it.
pub const SITE_HOST: &str = "static.demo.vantage.test";
/// The host of the vendor's control API (the name on its certificate).
pub const API_HOST: &str = "api.demo.vantage.test";
/// The host of the vendor's log-freshness endpoint.
pub const LOGS_HOST: &str = "logs.demo.vantage.test";
/// The vendor header every edge adds, with the edge's name as its value (`edge-1`, `edge-2`).
pub const VENDOR_HEADER: &str = "x-demo-cdn";
/// How long ago the last log event was when log delivery is stalled.
pub const STALE_BY: Duration = Duration::from_secs(600);

/// Where each simulated server listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The zone's two authoritative servers, UDP and TCP on the same port.
    pub ns: [SocketAddr; 2],
    /// The CDN's two edges (plain HTTP).
    pub edges: [SocketAddr; 2],
    /// The origin behind the edges (plain HTTP).
    pub origin: SocketAddr,
    /// The vendor's control API (HTTPS).
    pub api: SocketAddr,
    /// The vendor's log-freshness endpoint (plain HTTP).
    pub logs: SocketAddr,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port))
}

impl Layout {
    /// The addresses `deploy/demo/checks.toml` names: `127.77.x.y` (all of 127.0.0.0/8 is
    /// local on Linux) on ports that need no privileges.
    pub const DEMO: Layout = Layout {
        ns: [v4(127, 77, 0, 1, 17753), v4(127, 77, 0, 2, 17753)],
        edges: [v4(127, 77, 1, 1, 17780), v4(127, 77, 1, 2, 17780)],
        origin: v4(127, 77, 1, 10, 17780),
        api: v4(127, 77, 2, 1, 17743),
        logs: v4(127, 77, 3, 1, 17780),
    };

    /// Every server on 127.0.0.1 on a port the system picks, for tests that run side by side.
    pub fn ephemeral() -> Layout {
        let any = v4(127, 0, 0, 1, 0);
        Layout {
            ns: [any; 2],
            edges: [any; 2],
            origin: any,
            api: any,
            logs: any,
        }
    }
}

/// One of the CDN's two edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// `edge-1`.
    One,
    /// `edge-2`.
    Two,
}

impl Edge {
    fn index(self) -> usize {
        match self {
            Self::One => 0,
            Self::Two => 1,
        }
    }

    /// Its name, as the vendor header says it.
    pub fn name(self) -> &'static str {
        match self {
            Self::One => "edge-1",
            Self::Two => "edge-2",
        }
    }
}

/// What an edge does to the requests a fault covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeFault {
    /// Answer 503 at once, without asking the origin.
    Error,
    /// Hold every response this long, then serve it as usual.
    Slow(Duration),
}

/// Which clients a fault hits, by the source address they connect from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sources {
    /// Everyone.
    All,
    /// Only these addresses.
    Only(BTreeSet<IpAddr>),
}

impl Sources {
    /// True when a client at `peer` is hit.
    pub fn covers(&self, peer: IpAddr) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(&peer),
        }
    }
}

/// The faults in force.
#[derive(Clone, Debug, Default)]
struct Faults {
    edges: [Option<(Sources, EdgeFault)>; 2],
    soa_drift: bool,
    api_down: bool,
    logs_stale: bool,
}

/// Requests the origin answered, newest last, at most this many.
const ORIGIN_LOG: usize = 256;

/// What the servers share with the [`World`] handle.
#[derive(Debug, Default)]
struct Shared {
    faults: Mutex<Faults>,
    origin_log: Mutex<std::collections::VecDeque<String>>,
}

impl Shared {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn edge_fault(&self, edge: usize, peer: IpAddr) -> Option<EdgeFault> {
        match &self.faults().edges.get(edge) {
            Some(Some((sources, fault))) if sources.covers(peer) => Some(*fault),
            _ => None,
        }
    }

    fn log_origin(&self, target: String) {
        let mut log = self.origin_log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == ORIGIN_LOG {
            log.pop_front();
        }
        log.push_back(target);
    }
}

/// Why the world could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// A server could not bind its address.
    #[error(
        "the simulated {what} cannot listen on {addr}: {why}{}",
        bind_hint(why)
    )]
    Bind {
        /// Which server.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        why: std::io::Error,
    },
    /// The zone could not be built.
    #[error("cannot build the simulated zone: {0}")]
    Zone(String),
    /// The throwaway certificates could not be made.
    #[error("cannot make the simulated vendor's certificates: {0}")]
    Pki(String),
}

fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (is another `vantage-coordinator demo` running? Stop it first)"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            " (the demo needs all of 127.0.0.0/8 on the loopback interface, as Linux has it)"
        }
        _ => "",
    }
}

/// The running world. Dropping it stops every server.
#[derive(Debug)]
pub struct World {
    addrs: Layout,
    ca_pem: String,
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

impl World {
    /// Starts every server at `layout`'s addresses, healthy.
    pub async fn start(layout: Layout) -> Result<Self, WorldError> {
        let shared = Arc::new(Shared::default());
        let pki = pki::generate(API_HOST)?;
        let mut tasks = JoinSet::new();
        let mut ns = layout.ns;
        let mut sockets = Vec::new();
        for (i, addr) in layout.ns.iter().enumerate() {
            let (udp, tcp) = dns::bind(*addr).await.map_err(|why| WorldError::Bind {
                what: if i == 0 {
                    "name server ns1"
                } else {
                    "name server ns2"
                },
                addr: *addr,
                why,
            })?;
            ns[i] = udp.local_addr().unwrap_or(*addr);
            sockets.push((udp, tcp));
        }
        let zone = Arc::new(dns::Zone::new(&Layout { ns, ..layout })?);
        for (i, (udp, tcp)) in sockets.into_iter().enumerate() {
            let server = Arc::new(dns::Server {
                nsid: if i == 0 { "ns1.demo" } else { "ns2.demo" },
                second: i == 1,
                shared: Arc::clone(&shared),
                zone: Arc::clone(&zone),
            });
            tasks.spawn(dns::serve_udp(udp, Arc::clone(&server)));
            tasks.spawn(dns::serve_tcp(tcp, server));
        }
        let origin = http::bind("origin", layout.origin).await?;
        let origin_addr = origin.local_addr().unwrap_or(layout.origin);
        let mut edges = layout.edges;
        let mut edge_listeners = Vec::new();
        for (i, addr) in layout.edges.iter().enumerate() {
            let what = if i == 0 { "CDN edge-1" } else { "CDN edge-2" };
            let l = http::bind(what, *addr).await?;
            edges[i] = l.local_addr().unwrap_or(*addr);
            edge_listeners.push(l);
        }
        let api = http::bind("vendor API", layout.api).await?;
        let logs = http::bind("log-freshness endpoint", layout.logs).await?;
        let addrs = Layout {
            ns,
            edges,
            origin: origin_addr,
            api: api.local_addr().unwrap_or(layout.api),
            logs: logs.local_addr().unwrap_or(layout.logs),
        };
        tasks.spawn(http::serve(
            origin,
            http::Role::Origin,
            Arc::clone(&shared),
            None,
        ));
        for (i, l) in edge_listeners.into_iter().enumerate() {
            let edge = http::EdgeState::new(i, origin_addr);
            tasks.spawn(http::serve(
                l,
                http::Role::Edge(Arc::new(edge)),
                Arc::clone(&shared),
                None,
            ));
        }
        tasks.spawn(http::serve(
            api,
            http::Role::Api,
            Arc::clone(&shared),
            Some(pki.acceptor),
        ));
        tasks.spawn(http::serve(
            logs,
            http::Role::Logs,
            Arc::clone(&shared),
            None,
        ));
        Ok(Self {
            addrs,
            ca_pem: pki.ca_pem,
            shared,
            tasks,
        })
    }

    /// Where the servers listen (with the ports picked, for [`Layout::ephemeral`]).
    pub fn addrs(&self) -> Layout {
        self.addrs
    }

    /// The CA that signed the API's certificate (PEM), for a check's `ca`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Makes `edge` do `fault` to clients from `sources`, replacing its previous fault.
    pub fn set_edge_fault(&self, edge: Edge, sources: Sources, fault: EdgeFault) {
        self.shared.faults().edges[edge.index()] = Some((sources, fault));
    }

    /// Lets `edge` serve everyone as usual again.
    pub fn clear_edge_fault(&self, edge: Edge) {
        self.shared.faults().edges[edge.index()] = None;
    }

    /// The second name server serves the previous SOA serial (a zone transfer that lags).
    pub fn set_soa_drift(&self, on: bool) {
        self.shared.faults().soa_drift = on;
    }

    /// The control API answers 503.
    pub fn set_api_down(&self, on: bool) {
        self.shared.faults().api_down = on;
    }

    /// Log delivery is stalled: the freshness endpoint's last event is [`STALE_BY`] old.
    pub fn set_logs_stale(&self, on: bool) {
        self.shared.faults().logs_stale = on;
    }

    /// Clears every fault.
    pub fn heal(&self) {
        *self.shared.faults() = Faults::default();
    }

    /// The request targets (path and query) the origin answered, oldest first, the last
    /// `ORIGIN_LOG` at most.
    pub fn origin_requests(&self) -> Vec<String> {
        self.shared
            .origin_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Stops every server and waits until they are gone.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

#[cfg(test)]
mod tests;
