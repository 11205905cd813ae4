//! High availability on PostgreSQL (issue 14): three coordinators on one real PostgreSQL,
//! six probes in three regions listing all three, a vendor whose service goes down. The
//! coordinator that evaluates the vendor is killed with SIGKILL before the page, and the next
//! one mid-incident: exactly one trigger and one resolve reach the webhook sink, under one
//! incident id.

use std::time::Duration;

use vantage_e2e::cluster::{Cluster, readyz, wait};

#[test]
fn three_coordinators_page_once_through_kill_9_of_the_owner_twice() {
    let mut c = Cluster::start("ha_kill");
    let first = c.owner();
    // The service goes down, and its evaluator dies before it can page.
    c.service.down();
    c.kill(first);
    wait("one trigger at the webhook", || c.count("trigger") >= 1);
    // The next evaluator dies mid-incident.
    let second = c.owner();
    c.kill(second);
    c.service.up();
    wait("one resolve at the webhook", || c.count("resolve") >= 1);
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
    wait("one trigger at the webhook", || c.count("trigger") >= 1);
    let taker = c.owner();
    assert_ne!(taker, frozen, "another coordinator took the lease");
    // Woken mid-incident; then the vendor recovers.
    c.coordinators[frozen].resume();
    std::thread::sleep(Duration::from_secs(5));
    c.service.up();
    wait("one resolve at the webhook", || c.count("resolve") >= 1);
    std::thread::sleep(Duration::from_secs(10));
    c.assert_paged_once();
    let log = c.coordinators[frozen].log();
    let woken = &log[log.find("resumed (SIGCONT)").expect("resumed")..];
    assert!(
        !woken.contains("incident opened"),
        "the woken coordinator opened nothing:\n{woken}"
    );
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
            readyz(c.coordinators[cut].addr)
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
    wait("one trigger at the webhook", || c.count("trigger") >= 1);
    assert_ne!(c.owner(), cut, "another coordinator evaluates the vendor");
    c.links[cut].resume();
    wait("the cut coordinator back, holding leases again", || {
        readyz(c.coordinators[cut].addr).is_some_and(|r| {
            r["ready"] == true && r["leases"].as_array().is_some_and(|l| !l.is_empty())
        })
    });
    c.service.up();
    wait("one resolve at the webhook", || c.count("resolve") >= 1);
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
