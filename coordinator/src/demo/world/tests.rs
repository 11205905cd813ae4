//! The shipped demo checks, run by the probe's own executors against a world on ephemeral
//! ports: healthy, every check passes; each fault breaks what it should, and only that.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use vantage_checks::exec::{RunEnv, run_check};
use vantage_checks::model::{Check, CheckSet, Role};
use vantage_checks::result::{CacheStatus, CheckResult, Facts, FailureKind, Status};

use super::*;
use crate::demo::checks_for;

/// A probe in region 1 and one in region 3, as the demo numbers them.
const EU: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1));
const AP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 3, 1));

struct Fixture {
    world: World,
    set: CheckSet,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Self {
        let world = World::start(Layout::ephemeral()).await.expect("world");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(crate::demo::CA_FILE), world.ca_pem()).expect("ca");
        let text = checks_for(&world.addrs(), dir.path()).expect("checks");
        let set = vantage_checks::config::parse_str(&text)
            .unwrap_or_else(|d| panic!("the demo checks are invalid:\n{}", d.render()));
        Self {
            world,
            set,
            _dir: dir,
        }
    }

    fn check(&self, id: &str) -> &Check {
        self.set
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check `{id}` in deploy/demo/checks.toml"))
    }

    async fn run(&self, id: &str, from: IpAddr) -> CheckResult {
        let env = RunEnv {
            probe_id: "test".into(),
            boot_id: "boot".into(),
            source_address: Some(from),
        };
        run_check(self.check(id), &env, 0).await
    }
}

fn ok(r: &CheckResult) {
    assert_eq!(
        r.status,
        Status::Ok,
        "{} from the world: {:?} {:?}",
        r.check_id,
        r.failure,
        r.message
    );
}

fn failed(r: &CheckResult, kind: FailureKind) {
    assert_eq!(
        (r.status, r.failure),
        (Status::Fail, Some(kind)),
        "{}: {:?}",
        r.check_id,
        r.message
    );
}

fn http(r: &CheckResult) -> &vantage_checks::result::HttpFacts {
    match &r.facts {
        Facts::Http(h) => h,
        other => panic!("{}: HTTP facts expected, got {other:?}", r.check_id),
    }
}

#[tokio::test]
async fn every_demo_check_passes_against_a_healthy_world_and_every_kind_and_role_is_there() {
    let f = Fixture::start().await;
    let mut kinds = std::collections::BTreeSet::new();
    let mut roles = std::collections::BTreeSet::new();
    for c in &f.set.checks {
        kinds.insert(c.kind().as_label());
        roles.insert(format!("{:?}", c.role));
        ok(&f.run(&c.id, EU).await);
        ok(&f.run(&c.id, AP).await);
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["cdn", "dns", "http", "tcp", "tls"]
    );
    assert_eq!(roles.len(), 3, "data, control and telemetry: {roles:?}");
    assert!(f.set.checks.iter().any(|c| c.role == Role::Telemetry));
}

#[tokio::test]
async fn dns_answers_are_authoritative_and_the_drift_makes_ns2_the_laggard() {
    let f = Fixture::start().await;
    let r = f.run("www-a", EU).await;
    ok(&r);
    let Facts::Dns(dns) = &r.facts else {
        panic!("DNS facts expected: {:?}", r.facts)
    };
    let nsids: Vec<Option<&str>> = dns.servers.iter().map(|s| s.nsid.as_deref()).collect();
    assert_eq!(nsids, [Some("ns1.demo"), Some("ns2.demo")]);
    assert!(dns.servers.iter().all(|s| s.authoritative == Some(true)));
    assert!(
        dns.servers
            .iter()
            .all(|s| s.soa_serial == Some(SERIAL) && s.answers.len() == 2)
    );

    f.world.set_soa_drift(true);
    let r = f.run("www-a", EU).await;
    failed(&r, FailureKind::SoaSerialMismatch);
    let Facts::Dns(dns) = &r.facts else {
        panic!("DNS facts expected")
    };
    let ns2 = f.world.addrs().ns[1];
    assert_eq!(dns.laggards.len(), 1, "{:?}", dns.laggards);
    assert!(
        dns.laggards[0].contains(&ns2.to_string()),
        "{:?}",
        dns.laggards
    );
    assert_eq!(dns.servers[1].soa_serial, Some(SERIAL - 1));
    assert_eq!(
        dns.servers[0].soa_serial,
        Some(SERIAL),
        "ns1 does not drift"
    );

    f.world.heal();
    ok(&f.run("www-a", EU).await);
}

#[tokio::test]
async fn the_regional_fault_hits_only_the_sources_it_names() {
    let f = Fixture::start().await;
    f.world
        .set_edge_fault(Edge::One, Sources::Only([AP].into()), EdgeFault::Error);
    let r = f.run("edge1-css", AP).await;
    failed(&r, FailureKind::HttpStatus);
    assert_eq!(http(&r).status, Some(503));
    assert_eq!(
        http(&r).vendor_header.as_deref(),
        Some("edge-1"),
        "the edge said it"
    );
    failed(&f.run("home", AP).await, FailureKind::HttpStatus);
    ok(&f.run("edge1-css", EU).await);
    ok(&f.run("home", EU).await);
    ok(&f.run("edge2-css", AP).await);

    f.world.clear_edge_fault(Edge::One);
    ok(&f.run("edge1-css", AP).await);
}

#[tokio::test]
async fn a_slow_edge_is_slow_not_failing() {
    let f = Fixture::start().await;
    f.world.set_edge_fault(
        Edge::Two,
        Sources::All,
        EdgeFault::Slow(Duration::from_millis(800)),
    );
    let r = f.run("edge2-css", EU).await;
    ok(&r);
    assert!(r.slow, "800 ms is over the check's 400 ms: {:?}", r.timings);
    assert!(r.timings.total_ms >= 800.0, "{:?}", r.timings);
    let r = f.run("edge1-css", EU).await;
    ok(&r);
    assert!(!r.slow, "edge-1 is not slowed: {:?}", r.timings);
}

#[tokio::test]
async fn the_edge_caches_gzips_and_lets_cache_busters_through_to_the_origin() {
    let f = Fixture::start().await;
    let first = f.run("edge1-css", EU).await;
    let second = f.run("edge1-css", EU).await;
    for r in [&first, &second] {
        ok(r);
        let h = http(r);
        assert_eq!(h.cache, CacheStatus::Miss, "cache-busted: {h:?}");
        assert_eq!(h.content_encoding.as_deref(), Some("gzip"));
    }
    let busted: Vec<String> = f
        .world
        .origin_requests()
        .into_iter()
        .filter(|t| t.starts_with("/css/site.css?vantage_cb="))
        .collect();
    assert_eq!(busted.len(), 2, "each cache buster reached the origin");
    assert_ne!(busted[0], busted[1]);

    // The page is not cache-busted: the second fetch, and its assets, come from the cache.
    ok(&f.run("home", EU).await);
    let at_origin = f.world.origin_requests().len();
    let r = f.run("home", EU).await;
    ok(&r);
    let h = http(&r);
    assert_eq!(h.cache, CacheStatus::Hit, "{h:?}");
    assert!(h.age.is_some(), "{h:?}");
    assert_eq!(h.assets.len(), 3, "{:?}", h.assets);
    assert_eq!(
        f.world.origin_requests().len(),
        at_origin,
        "nothing reached the origin"
    );
}

#[tokio::test]
async fn the_api_goes_down_alone_and_logs_go_stale() {
    let f = Fixture::start().await;
    f.world.set_api_down(true);
    failed(&f.run("cdn-api", EU).await, FailureKind::HttpStatus);
    ok(&f.run("cdn-api-cert", EU).await);
    ok(&f.run("cdn-logs", EU).await);
    f.world.set_api_down(false);
    ok(&f.run("cdn-api", EU).await);

    f.world.set_logs_stale(true);
    failed(&f.run("cdn-logs", EU).await, FailureKind::StaleData);
    f.world.heal();
    ok(&f.run("cdn-logs", EU).await);
}

#[test]
fn the_demo_checks_name_the_demo_layout_and_get_an_absolute_ca() {
    let dir = std::path::Path::new("/tmp/vantage-demo-x");
    let text = checks_for(&Layout::DEMO, dir).expect("checks");
    let set = vantage_checks::config::parse_str(&text).expect("valid");
    let ca_files: Vec<_> = set
        .checks
        .iter()
        .filter_map(|c| match &c.spec {
            vantage_checks::model::CheckSpec::Http(h) => h.ca_file.clone(),
            vantage_checks::model::CheckSpec::Tls(t) => t.ca_file.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(ca_files.len(), 2, "the API check and its certificate check");
    assert!(
        ca_files
            .iter()
            .all(|p| p == &dir.join(crate::demo::CA_FILE))
    );
    for addr in [Layout::DEMO.ns[0], Layout::DEMO.edges[1], Layout::DEMO.api] {
        assert!(text.contains(&addr.to_string()), "{addr}");
    }
}
