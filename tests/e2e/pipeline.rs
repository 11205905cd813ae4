//! The whole pipeline end to end, as real processes on loopback: NSD and nginx as the vendors,
//! one `vantage-coordinator serve` on SQLite, and `vantage-probe run` agents in two regions
//! pushing through their disk spools (ARCHITECTURE.md §3, §4, §6).
//!
//! What is proven here, each from the coordinator's API (`GET /api/v1/results`):
//! - a fleet of three probes in two regions runs every check it is given, on the grid of the
//!   check's interval shifted by the stable per-(probe, check) phase offset, and a probe outside
//!   a check's `probes.regions` never runs it;
//! - kill -9 of the coordinator while probes push, then a restart on the same data: every
//!   `(probe_id, boot_id, seq)` is stored exactly once, with no gap;
//! - the coordinator unreachable for a minute: the probes keep running and spooling, and every
//!   result arrives exactly once after the restart;
//! - kill -9 of a probe with a full spool: every result the spool held arrives exactly once,
//!   unchanged;
//! - a config change that cuts runs short leaves no hole in a probe's seqs (a regression).
//!
//! Checks run every 2 s (timeout 1 s, no retry) so that the tests are quick. Nothing sleeps to
//! wait for something: every wait polls with a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use vantage_checks::result::{CheckResult, Status};
use vantage_e2e::cdn::{Cdn, HOST};
use vantage_e2e::dns::{Nsd, Zone};
use vantage_e2e::fleet::{Coordinator, Fleet, Probe, ProbeOptions, http_get, http_post_json};
use vantage_e2e::free_port;
use vantage_probe::schedule::phase_offset;
use vantage_probe::spool::{Spool, SpoolConfig};

/// Every check's interval.
const INTERVAL: Duration = Duration::from_secs(2);
const INTERVAL_MS: i64 = 2_000;
/// How far a run may start from its slot on the grid.
const GRID_TOLERANCE_MS: i64 = 200;
/// How often the tests look at the API or the spools.
const POLL: Duration = Duration::from_millis(100);

const ZONE: &str = "example.vantage.test";
const WWW: [&str; 2] = ["192.0.2.10", "192.0.2.11"];
/// The DNS check, run by every probe.
const DNS_CHECK: &str = "www-a";
/// The TCP check, run by every probe.
const TCP_CHECK: &str = "edge-tcp";
/// The CDN check, run by the probes of region `eu` only.
const EU_CHECK: &str = "static-css";

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// NSD serving the test zone on two ports of 127.0.0.1.
fn start_nsd() -> Nsd {
    let records = format!(
        "@ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A {}\nwww IN A {}\n",
        WWW[0], WWW[1]
    );
    Nsd::start(
        "pipeline",
        &[loopback(free_port()), loopback(free_port())],
        &[Zone::new(ZONE, 2026112301, &records)],
    )
}

/// `[defaults]`, the vendors, a DNS check asking both NSD addresses, and a TCP check of
/// `tcp_target`; `extra` is appended (more checks).
fn checks_toml(nsd: &Nsd, tcp_target: SocketAddr, extra: &str) -> String {
    let servers: Vec<String> = nsd.addrs().iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"[defaults]
interval = "2s"
timeout = "1s"
retry = "off"
window = "10s"

[[vendor]]
id = "acme-dns"
name = "Acme DNS"

[[vendor]]
id = "loopcdn"
name = "Loopback CDN"

[[check]]
id = "{DNS_CHECK}"
vendor = "acme-dns"
kind = "dns"
query = {{ name = "www.{ZONE}", type = "A" }}
servers = [{servers}]
expect = {{ rcode = "NOERROR", authoritative = true, answers = ["{a}", "{b}"] }}

[[check]]
id = "{TCP_CHECK}"
vendor = "loopcdn"
kind = "tcp"
target = "{tcp_target}"
{extra}"#,
        servers = servers.join(", "),
        a = WWW[0],
        b = WWW[1],
    )
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

fn started_ms(r: &CheckResult) -> i64 {
    unix_ms(r.started_at)
}

type Key = (String, String, u64);

fn key(r: &CheckResult) -> Key {
    (r.probe_id.clone(), r.boot_id.clone(), r.seq)
}

/// Polls `f` every [`POLL`] until it returns `Ok`, and returns its value with the time taken.
/// Panics after `within` with the last reason `f` gave.
fn wait_for<T>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return (v, start.elapsed()),
            Err(why) if start.elapsed() >= within => {
                panic!("{what}: not done within {within:?}: {why}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Panics if any `(probe_id, boot_id, seq)` appears more than once.
#[track_caller]
fn assert_each_once(results: &[CheckResult]) {
    let mut seen = BTreeMap::new();
    for r in results {
        if let Some(first) = seen.insert(key(r), r) {
            panic!(
                "({}, {}, {}) is stored twice:\n{first:#?}\n{r:#?}",
                r.probe_id, r.boot_id, r.seq
            );
        }
    }
}

/// Sequence numbers by boot id, sorted.
fn seqs_by_boot(results: &[CheckResult]) -> BTreeMap<String, Vec<u64>> {
    let mut boots: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in results {
        boots.entry(r.boot_id.clone()).or_default().push(r.seq);
    }
    for seqs in boots.values_mut() {
        seqs.sort_unstable();
    }
    boots
}

/// The numbers missing from `0..=max` of sorted `seqs`.
fn gaps(seqs: &[u64]) -> Vec<u64> {
    let have: BTreeSet<u64> = seqs.iter().copied().collect();
    let max = seqs.last().copied().unwrap_or(0);
    (0..=max).filter(|s| !have.contains(s)).collect()
}

/// `Ok` when every boot of `probe` but those in `except` holds exactly the seqs `0..=max`,
/// each once, and the probe's newest result started at or after `after_ms`. Otherwise why not.
fn delivered(
    coordinator: &Coordinator,
    probe: &str,
    except: &[&str],
    after_ms: i64,
) -> Result<Vec<CheckResult>, String> {
    let results = coordinator.results_of(probe);
    let mut keys = BTreeSet::new();
    for r in &results {
        if !keys.insert(key(r)) {
            return Err(format!(
                "{probe}: seq {} of boot {} twice",
                r.seq, r.boot_id
            ));
        }
    }
    for (boot, seqs) in seqs_by_boot(&results) {
        let missing = gaps(&seqs);
        if !except.contains(&boot.as_str()) && !missing.is_empty() {
            return Err(format!(
                "{probe}: boot {boot} misses seqs {missing:?} of 0..={}",
                seqs.last().copied().unwrap_or(0)
            ));
        }
    }
    let newest = results.iter().map(started_ms).max();
    match newest {
        Some(t) if t >= after_ms => Ok(results),
        _ => Err(format!(
            "{probe}: newest result started at {newest:?}, not yet at {after_ms}"
        )),
    }
}

/// The circular distance between two instants modulo the interval.
fn phase_distance(a_ms: i64, b_ms: i64) -> i64 {
    let d = (a_ms - b_ms).rem_euclid(INTERVAL_MS);
    d.min(INTERVAL_MS - d)
}

/// The expected phase offset of `check` on `probe`, in ms.
fn expected_offset(probe: &str, check: &str) -> i64 {
    phase_offset(probe, check, INTERVAL).as_millis() as i64
}

/// Asserts that `probe`'s runs of `check` in `results` (one boot) start on the check's grid at
/// the probe's phase offset, one interval apart: none missing, none extra. Returns how many.
#[track_caller]
fn assert_on_grid(results: &[CheckResult], probe: &str, check: &str) -> usize {
    let mut starts: Vec<i64> = results
        .iter()
        .filter(|r| r.probe_id == probe && r.check_id == check)
        .map(started_ms)
        .collect();
    starts.sort_unstable();
    let offset = expected_offset(probe, check);
    for &t in &starts {
        let off = phase_distance(t, offset);
        assert!(
            off <= GRID_TOLERANCE_MS,
            "{probe} ran {check} at {t} ({} ms into the interval), {off} ms from its phase offset {offset} ms",
            t.rem_euclid(INTERVAL_MS)
        );
    }
    for pair in starts.windows(2) {
        let apart = pair[1] - pair[0];
        assert!(
            (apart - INTERVAL_MS).abs() <= GRID_TOLERANCE_MS,
            "{probe} ran {check} at {} and then at {}: {apart} ms apart, not one interval ({INTERVAL_MS} ms); starts: {starts:?}",
            pair[0],
            pair[1]
        );
    }
    starts.len()
}

/// Asserts that the coordinator and every probe still run.
#[track_caller]
fn assert_all_running(coordinator: &mut Coordinator, probes: &mut [Probe]) {
    coordinator.assert_running();
    for p in probes {
        p.assert_running();
    }
}

/// Waits until every probe has at least `n` results stored.
fn wait_for_results(coordinator: &mut Coordinator, probes: &mut [Probe], n: usize) {
    wait_for(
        &format!("{n} results stored from every probe"),
        Duration::from_secs(30),
        || {
            assert_all_running(coordinator, probes);
            for p in probes.iter() {
                let have = coordinator.results_of(&p.id).len();
                if have < n {
                    return Err(format!("{} has {have}", p.id));
                }
            }
            Ok(())
        },
    );
}

/// Three probes: two in `eu`, one in `us`.
/// A sample's value from a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The probe's own counters from its `--metrics-listen` endpoint.
fn probe_metrics(addr: SocketAddr) -> String {
    match http_get(addr, "/metrics") {
        Ok((200, body)) => body,
        other => panic!("GET http://{addr}/metrics: {other:?}"),
    }
}

fn three_probes(fleet: &Fleet, coordinator: &Coordinator) -> Vec<Probe> {
    [("eu-1", "eu"), ("eu-2", "eu"), ("us-1", "us")]
        .into_iter()
        .map(|(id, region)| fleet.probe(coordinator, id, region))
        .collect()
}

#[test]
fn fleet_in_two_regions_runs_every_check_on_its_phase_grid() {
    let nsd = start_nsd();
    let mut cdn = Cdn::start();
    let eu_check = format!(
        r#"
[[check]]
id = "{EU_CHECK}"
vendor = "loopcdn"
kind = "cdn"
url = "https://{HOST}/css/site.css"
edge = "{edge}"
ca = "{ca}"
cache_bust = true
expect = {{ status = 200, vendor_header = {{ name = "x-served-by", matches = "^cache-" }} }}
probes = {{ regions = ["eu"] }}
"#,
        edge = cdn.edge,
        ca = cdn.ca_file().display(),
    );
    let fleet = Fleet::new();
    let mut coordinator = fleet.coordinator(&checks_toml(&nsd, cdn.edge, &eu_check));
    let mut probes = three_probes(&fleet, &coordinator);
    let runs: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("eu-1", vec![DNS_CHECK, TCP_CHECK, EU_CHECK]),
        ("eu-2", vec![DNS_CHECK, TCP_CHECK, EU_CHECK]),
        ("us-1", vec![DNS_CHECK, TCP_CHECK]),
    ]);
    // The phase assertions can only tell the probes apart if their offsets differ.
    for check in [DNS_CHECK, TCP_CHECK, EU_CHECK] {
        let offsets: Vec<(&str, i64)> = runs
            .iter()
            .filter(|(_, checks)| checks.contains(&check))
            .map(|(p, _)| (*p, expected_offset(p, check)))
            .collect();
        for (i, a) in offsets.iter().enumerate() {
            for b in &offsets[i + 1..] {
                assert!(
                    phase_distance(a.1, b.1) > 2 * GRID_TOLERANCE_MS,
                    "pick other ids: the phase offsets of {check} on {a:?} and {b:?} are too close to tell apart"
                );
            }
        }
    }

    // Four runs of every (probe, check) that should run: 6 to 8 s.
    let (by_probe, took) = wait_for(
        "four results of every (probe, check) that should run",
        Duration::from_secs(40),
        || {
            assert_all_running(&mut coordinator, &mut probes);
            let mut by_probe = BTreeMap::new();
            for (probe, checks) in &runs {
                let results = coordinator.results_of(probe);
                for check in checks {
                    let n = results.iter().filter(|r| r.check_id == *check).count();
                    if n < 4 {
                        return Err(format!("{probe} has {n} results of {check}"));
                    }
                }
                by_probe.insert(*probe, results);
            }
            Ok(by_probe)
        },
    );
    println!("fleet: four runs of every (probe, check) stored after {took:.1?}");

    for (probe, results) in &by_probe {
        let expected = &runs[probe];
        assert_each_once(results);
        let boots = seqs_by_boot(results);
        assert_eq!(boots.len(), 1, "{probe} never restarted: {boots:?}");
        for r in results {
            assert_eq!(&r.probe_id, probe, "{r:#?}");
            assert!(
                expected.contains(&r.check_id.as_str()),
                "{probe} (region {}) ran {}, which it must not run: {r:#?}",
                if probe.starts_with("eu") { "eu" } else { "us" },
                r.check_id
            );
            assert_eq!(
                r.status,
                Status::Ok,
                "every vendor on loopback is healthy: {r:#?}"
            );
        }
        let mut offsets = Vec::new();
        for check in expected {
            let n = assert_on_grid(results, probe, check);
            assert!(n >= 4, "{probe} ran {check} {n} times");
            let observed: Vec<i64> = results
                .iter()
                .filter(|r| r.check_id == *check)
                .map(|r| started_ms(r).rem_euclid(INTERVAL_MS))
                .collect();
            offsets.push(format!(
                "{check}: expected {} ms, observed {observed:?}",
                expected_offset(probe, check)
            ));
        }
        println!("fleet: {probe} phase offsets: {}", offsets.join("; "));
    }
    // The region filter holds in the store too: the us probe never ran the eu-only check.
    assert_eq!(
        coordinator
            .results(&format!("probe=us-1&check={EU_CHECK}&limit=10000"))
            .len(),
        0
    );
    assert_eq!(
        coordinator
            .results(&format!("region=us&check={EU_CHECK}&limit=10000"))
            .len(),
        0
    );
    let eu = coordinator.results(&format!("region=eu&check={EU_CHECK}&limit=10000"));
    assert!(
        eu.len() >= 8 && eu.iter().all(|r| r.probe_id.starts_with("eu-")),
        "{eu:#?}"
    );
    assert_all_running(&mut coordinator, &mut probes);
    cdn.assert_running();
}

/// What a pusher sent: each batch's seqs, and whether the coordinator acknowledged it (200)
/// or why not.
#[derive(Debug, Default)]
struct Pushed {
    batches: Vec<(Vec<u64>, Result<(), String>)>,
}

/// Pushes batches of [`PUSH_BATCH`] synthetic results as probe [`PUSHER`] back to back, each on
/// a new connection, until `stop`; the results are copies of `template` with seqs from
/// `next_seq` on. Load for the kills to land in: the writer is almost always committing.
fn push_until(
    addr: SocketAddr,
    token: &str,
    template: &CheckResult,
    next_seq: &mut u64,
    stop: &AtomicBool,
) -> Pushed {
    let mut pushed = Pushed::default();
    while !stop.load(Ordering::Relaxed) {
        let seqs: Vec<u64> = (*next_seq..*next_seq + PUSH_BATCH).collect();
        *next_seq += PUSH_BATCH;
        let results: Vec<CheckResult> = seqs
            .iter()
            .map(|&seq| CheckResult {
                probe_id: PUSHER.to_owned(),
                boot_id: PUSHER_BOOT.to_owned(),
                seq,
                started_at: OffsetDateTime::now_utc(),
                ..template.clone()
            })
            .collect();
        let body = serde_json::json!({ "results": results }).to_string();
        let outcome = match http_post_json(addr, "/api/v1/results", token, &body) {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(format!("{status} {body}")),
            Err(e) => Err(e.to_string()),
        };
        if outcome.is_err() {
            // The coordinator is down: do not spin.
            std::thread::sleep(Duration::from_millis(5));
        }
        pushed.batches.push((seqs, outcome));
    }
    pushed
}

/// The synthetic probe that pushes load during the kills.
const PUSHER: &str = "pusher";
const PUSHER_BOOT: &str = "pusher-boot";
const PUSH_BATCH: u64 = 2;

#[test]
fn kill_9_coordinator_while_probes_push_stores_every_result_once() {
    const KILLS: usize = 5;
    let nsd = start_nsd();
    let fleet = Fleet::new();
    // The pusher is load, not a probe: it sends runs far faster than any interval allows, so
    // the coordinator's cap on runs a minute is off here.
    let mut coordinator = fleet.coordinator_with(
        &checks_toml(&nsd, nsd.addrs()[0], ""),
        Some("[limits]\nmax_runs_per_interval = 0\n"),
    );
    let mut probes = three_probes(&fleet, &coordinator);
    let token = fleet.register(&coordinator, PUSHER, "us");
    wait_for_results(&mut coordinator, &mut probes, 2);
    let template = coordinator.results_of("us-1").remove(0);

    let mut last_restart_ms = 0;
    let mut next_seq = 0;
    let mut pushed = Pushed::default();
    let failed_pushes = |probes: &[Probe]| -> usize {
        probes
            .iter()
            .map(|p| p.log().matches("push failed").count())
            .sum()
    };
    for round in 1..=KILLS {
        let before: Vec<usize> = probes
            .iter()
            .map(|p| coordinator.results_of(&p.id).len())
            .collect();
        // Every probe delivers to the restarted coordinator before the next kill.
        wait_for(
            &format!("new results from every probe before kill {round}"),
            Duration::from_secs(30),
            || {
                assert_all_running(&mut coordinator, &mut probes);
                for (p, n) in probes.iter().zip(&before) {
                    let now = coordinator.results_of(&p.id).len();
                    if now < n + 2 {
                        return Err(format!("{} has {now} results, {n} before", p.id));
                    }
                }
                Ok(())
            },
        );
        let stop = AtomicBool::new(false);
        let addr = coordinator.addr;
        let failed_before = failed_pushes(&probes);
        let pushed_before = coordinator.results_of(PUSHER).len();
        let (restart_ms, restarted, first) = std::thread::scope(|s| {
            let pusher = s.spawn(|| push_until(addr, &token, &template, &mut next_seq, &stop));
            // The pusher's batches are being committed when the kill comes.
            wait_for(
                "the pusher's first batches",
                Duration::from_secs(10),
                || {
                    let n = coordinator.results_of(PUSHER).len();
                    if n >= pushed_before + 3 * PUSH_BATCH as usize {
                        Ok(())
                    } else {
                        Err(format!("{n} pushed results stored, {pushed_before} before"))
                    }
                },
            );
            coordinator.kill();
            // Down until some probe's push has met the dead coordinator.
            wait_for(
                "a probe noticing the dead coordinator",
                Duration::from_secs(10),
                || {
                    for p in probes.iter_mut() {
                        p.assert_running();
                    }
                    if failed_pushes(&probes) > failed_before {
                        Ok(())
                    } else {
                        Err("no probe has failed a push yet".into())
                    }
                },
            );
            let restarted = coordinator_restart(&mut coordinator, &mut probes);
            stop.store(true, Ordering::Relaxed);
            let batches = pusher.join().expect("the pusher thread").batches;
            pushed.batches.extend(batches);
            restarted
        });
        last_restart_ms = restart_ms;
        println!(
            "kill -9 {round}: restarted in {restarted:.1?}; first new result stored {first:.1?} after the restart"
        );
    }

    // Every probe's one boot holds 0..=max, each once, up to runs started after the last restart.
    let (all, took) = wait_for(
        "every result stored once after the last restart",
        Duration::from_secs(30),
        || {
            assert_all_running(&mut coordinator, &mut probes);
            probes
                .iter()
                .map(|p| delivered(&coordinator, &p.id, &[], last_restart_ms + INTERVAL_MS))
                .collect::<Result<Vec<_>, _>>()
        },
    );
    println!("kill -9: every probe's results complete {took:.1?} after the last restart's checks");
    for (probe, results) in probes.iter().zip(&all) {
        assert_each_once(results);
        let boots = seqs_by_boot(results);
        assert_eq!(boots.len(), 1, "{} never restarted: {boots:?}", probe.id);
        // The probes went on through every crash: no run is missing from the grid.
        for check in [DNS_CHECK, TCP_CHECK] {
            let n = assert_on_grid(results, &probe.id, check);
            assert!(n >= 5, "{} ran {check} {n} times", probe.id);
        }
    }

    // The pusher: every acknowledged batch is stored, each result once; a batch the kill cut
    // off is stored whole or not at all.
    let stored = coordinator.results_of(PUSHER);
    assert!(
        stored.len() < 10_000,
        "push fewer results: the API returns at most 10,000"
    );
    assert_each_once(&stored);
    let stored: BTreeSet<u64> = stored.iter().map(|r| r.seq).collect();
    let (mut acked, mut cut, mut refused) = (0, 0, 0);
    for (seqs, outcome) in &pushed.batches {
        let n = seqs.iter().filter(|s| stored.contains(s)).count();
        match outcome {
            Ok(()) => {
                acked += 1;
                assert_eq!(
                    n,
                    seqs.len(),
                    "acknowledged batch {seqs:?} is not all stored"
                );
            }
            Err(why) => {
                if why.contains("refused") {
                    refused += 1;
                } else {
                    cut += 1;
                }
                assert!(
                    n == 0 || n == seqs.len(),
                    "batch {seqs:?} ({why}) is stored in part: {n} of {}",
                    seqs.len()
                );
            }
        }
    }
    // The pusher is in a request nearly all the time; a kill that never cut one proves little.
    assert!(
        cut > 0,
        "no kill cut off a push in flight ({acked} acknowledged, {refused} refused)"
    );
    println!(
        "kill -9: pusher: {acked} batches acknowledged, {cut} cut off by a kill, {refused} refused while down; probes: {} failed pushes in {KILLS} kills",
        failed_pushes(&probes)
    );
    assert_all_running(&mut coordinator, &mut probes);
}

/// Restarts a killed coordinator; returns when it restarted (Unix ms), how long the restart
/// took, and how long until the first result of a probe was stored after it.
fn coordinator_restart(
    coordinator: &mut Coordinator,
    probes: &mut [Probe],
) -> (i64, Duration, Duration) {
    let start = Instant::now();
    coordinator.restart();
    let restarted = start.elapsed();
    let restart_ms = now_ms();
    let count = |c: &Coordinator, probes: &[Probe]| -> usize {
        probes.iter().map(|p| c.results_of(&p.id).len()).sum()
    };
    let before = count(coordinator, probes);
    let (_, first) = wait_for(
        "a new result after the restart",
        Duration::from_secs(30),
        || {
            assert_all_running(coordinator, probes);
            let n = count(coordinator, probes);
            if n > before {
                Ok(())
            } else {
                Err(format!("still {n} results"))
            }
        },
    );
    (restart_ms, restarted, first)
}

#[test]
fn coordinator_unreachable_for_a_minute_then_every_result_arrives_once() {
    const OUTAGE: Duration = Duration::from_secs(60);
    let nsd = start_nsd();
    let fleet = Fleet::new();
    let mut coordinator = fleet.coordinator(&checks_toml(&nsd, nsd.addrs()[0], ""));
    let mut probes = three_probes(&fleet, &coordinator);
    // A fourth probe serves its own counters: the only view of it while the coordinator is down.
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    probes.push(fleet.probe_with(
        &coordinator,
        "us-2",
        "us",
        ProbeOptions {
            args: vec!["--metrics-listen".into(), metrics.to_string()],
            ..ProbeOptions::default()
        },
    ));
    wait_for_results(&mut coordinator, &mut probes, 2);
    let before = probe_metrics(metrics);
    assert_eq!(
        sample(&before, "vantage_probe_checks"),
        Some(2.0),
        "{before}"
    );

    coordinator.kill();
    let down = Instant::now();
    let down_ms = now_ms();
    // Watch every spool grow for the whole outage: the probes keep running, and spool.
    let mut last: Vec<(u64, Instant)> = probes
        .iter()
        .map(|p| (p.spool_bytes(), Instant::now()))
        .collect();
    let mut growths = vec![0usize; probes.len()];
    while down.elapsed() < OUTAGE {
        for (i, p) in probes.iter_mut().enumerate() {
            p.assert_running();
            let bytes = p.spool_bytes();
            if bytes > last[i].0 {
                last[i] = (bytes, Instant::now());
                growths[i] += 1;
            }
            assert!(
                last[i].1.elapsed() < 3 * INTERVAL,
                "{}'s spool stopped growing at {} bytes {:.1?} into the outage; its log:\n{}",
                p.id,
                last[i].0,
                down.elapsed(),
                p.log()
            );
        }
        std::thread::sleep(POLL);
    }
    // The probe's own /metrics tells the outage: runs go on, results wait in the spool.
    let during = probe_metrics(metrics);
    let value = |text: &str, name: &str| {
        sample(text, name).unwrap_or_else(|| panic!("no `{name}` in:\n{text}"))
    };
    let runs =
        value(&during, "vantage_probe_runs_total") - value(&before, "vantage_probe_runs_total");
    assert!(
        runs >= 50.0,
        "{runs} runs counted during the outage:\n{during}"
    );
    let waiting = value(&during, "vantage_probe_spool_pending_results");
    assert!(
        waiting >= 50.0,
        "{waiting} results pending after the outage:\n{during}"
    );
    assert!(
        value(&during, "vantage_probe_spool_bytes") > 0.0,
        "{during}"
    );
    assert!(
        value(&during, "vantage_probe_pushes_retried_total") >= 1.0,
        "pushes were retried:\n{during}"
    );
    for (p, n) in probes.iter().zip(&growths) {
        // Two checks every 2 s for 60 s: about 60 appends.
        assert!(
            *n >= 40,
            "{}'s spool grew only {n} times in {OUTAGE:?}",
            p.id
        );
    }
    println!(
        "outage: spools after {OUTAGE:?}: {:?} bytes, {growths:?} appends seen",
        probes
            .iter()
            .map(|p| (p.id.as_str(), p.spool_bytes()))
            .collect::<Vec<_>>()
    );

    let restart = Instant::now();
    coordinator.restart();
    let restart_ms = now_ms();
    // The probes back off up to 60 s between pushes: delivery may take that long.
    let mut delivered_after = BTreeMap::new();
    let (all, took) = wait_for(
        "every spooled result delivered after the outage",
        Duration::from_secs(90),
        || {
            assert_all_running(&mut coordinator, &mut probes);
            let mut all = Vec::new();
            let mut pending = Vec::new();
            for p in &probes {
                match delivered(&coordinator, &p.id, &[], restart_ms) {
                    Ok(results) => {
                        delivered_after
                            .entry(p.id.clone())
                            .or_insert_with(|| restart.elapsed());
                        all.push(results);
                    }
                    Err(why) => pending.push(why),
                }
            }
            if pending.is_empty() {
                Ok(all)
            } else {
                Err(pending.join("; "))
            }
        },
    );
    println!(
        "outage: every result delivered {took:.1?} after the restart; by probe: {delivered_after:.1?}"
    );
    // …and its spool empties once the coordinator has them.
    let (after, _) = wait_for(
        "us-2's /metrics shows an empty spool",
        Duration::from_secs(10),
        || {
            let text = probe_metrics(metrics);
            if sample(&text, "vantage_probe_spool_pending_results") == Some(0.0) {
                Ok(text)
            } else {
                Err(text)
            }
        },
    );
    let sent = value(&after, "vantage_probe_results_sent_total");
    let us2 = all[3].len() as f64;
    assert!(
        sent >= us2,
        "{sent} results sent, {us2} delivered:\n{after}"
    );
    assert_eq!(value(&after, "vantage_probe_results_rejected_total"), 0.0);
    for (probe, results) in probes.iter().zip(&all) {
        assert_each_once(results);
        let boots = seqs_by_boot(results);
        assert_eq!(boots.len(), 1, "{} never restarted: {boots:?}", probe.id);
        for check in [DNS_CHECK, TCP_CHECK] {
            // None of the runs during the outage is missing.
            assert_on_grid(results, &probe.id, check);
            let during = results
                .iter()
                .filter(|r| r.check_id == check)
                .filter(|r| (down_ms..restart_ms).contains(&started_ms(r)))
                .count();
            let expected = OUTAGE.as_millis() as usize / INTERVAL_MS as usize;
            assert!(
                during >= expected,
                "{} ran {check} {during} times while the coordinator was down; at least {expected} expected",
                probe.id
            );
        }
    }
    assert_all_running(&mut coordinator, &mut probes);
}

#[test]
fn kill_9_probe_with_a_full_spool_delivers_every_held_result_once() {
    let nsd = start_nsd();
    let fleet = Fleet::new();
    let mut coordinator = fleet.coordinator(&checks_toml(&nsd, nsd.addrs()[0], ""));
    let mut probes = vec![fleet.probe(&coordinator, "eu-1", "eu")];
    wait_for_results(&mut coordinator, &mut probes, 2);
    let old_boot = coordinator.results_of("eu-1")[0].boot_id.clone();

    // Cut the coordinator off, and let the probe spool for a few intervals.
    coordinator.kill();
    let coordinator_down_ms = now_ms();
    let mut bytes = probes[0].spool_bytes();
    let mut appends = 0;
    wait_for(
        "the probe spooling 6 batches",
        Duration::from_secs(30),
        || {
            probes[0].assert_running();
            let now = probes[0].spool_bytes();
            if now > bytes {
                bytes = now;
                appends += 1;
            }
            if appends >= 6 {
                Ok(())
            } else {
                Err(format!("{appends} appends seen"))
            }
        },
    );
    probes[0].kill();

    // With the probe down, open its spool and list what it holds.
    let held: BTreeMap<Key, CheckResult> = {
        let mut spool = Spool::open(SpoolConfig {
            dir: probes[0].spool_dir(),
            max_bytes: 256 * 1024 * 1024,
            max_age: Duration::from_secs(86_400),
        })
        .expect("open the killed probe's spool");
        let pending = spool.peek(100_000).expect("read the spool");
        assert_eq!(spool.corrupt(), 0, "{spool:?}");
        assert_eq!(pending.len() as u64, spool.pending(), "{spool:?}");
        println!(
            "kill -9 probe: its spool holds {} results ({} bytes, {} torn tails cut)",
            pending.len(),
            spool.bytes(),
            spool.recovered_torn()
        );
        let n = pending.len();
        let held: BTreeMap<Key, CheckResult> = pending
            .into_iter()
            .map(|p| (key(&p.result), p.result))
            .collect();
        assert_eq!(held.len(), n, "the spool holds a result twice");
        held
    };
    assert!(
        held.len() >= 6,
        "the spool should hold every run since the coordinator went down: {} results",
        held.len()
    );
    for (k, r) in &held {
        assert_eq!(
            (k.0.as_str(), k.1.as_str()),
            ("eu-1", old_boot.as_str()),
            "{r:#?}"
        );
    }

    // The probe restarts while the coordinator is still down: it runs from its last good
    // config on disk and spools on top of what the old boot left.
    probes[0].start();
    let before = probes[0].spool_bytes();
    wait_for(
        "the restarted probe spooling without its coordinator",
        Duration::from_secs(15),
        || {
            probes[0].assert_running();
            if probes[0].spool_bytes() > before {
                Ok(())
            } else {
                Err("no new results in the spool".into())
            }
        },
    );
    let restart = Instant::now();
    coordinator.restart();
    let restart_ms = now_ms();

    let (results, took) = wait_for(
        "every held result, and the new boot's, delivered",
        Duration::from_secs(60),
        || {
            assert_all_running(&mut coordinator, &mut probes);
            let results = delivered(&coordinator, "eu-1", &[], restart_ms)?;
            let stored: BTreeSet<Key> = results.iter().map(key).collect();
            match held.keys().find(|k| !stored.contains(*k)) {
                Some(k) => Err(format!("held seq {} not stored yet", k.2)),
                None => Ok(results),
            }
        },
    );
    println!(
        "kill -9 probe: every held result stored {took:.1?} after the coordinator's restart ({:.1?} since)",
        restart.elapsed()
    );

    assert_each_once(&results);
    let stored: BTreeMap<Key, &CheckResult> = results.iter().map(|r| (key(r), r)).collect();
    // Exactly what the spool held, unchanged.
    for (k, r) in &held {
        assert_eq!(stored.get(k).copied(), Some(r), "held result {k:?}");
    }
    // The old boot: what it pushed before the outage plus what it held, and nothing else.
    // Results are numbered as they are spooled, so a run the kill cut short left no hole.
    let old: Vec<&CheckResult> = results.iter().filter(|r| r.boot_id == old_boot).collect();
    for r in &old {
        assert!(
            started_ms(r) < coordinator_down_ms || held.contains_key(&key(r)),
            "seq {} started after the coordinator went down, yet was not in the spool: {r:#?}",
            r.seq
        );
    }
    let mut old_seqs: Vec<u64> = old.iter().map(|r| r.seq).collect();
    old_seqs.sort_unstable();
    assert_eq!(gaps(&old_seqs), Vec::<u64>::new(), "the old boot's seqs");
    assert_eq!(
        old_seqs.last(),
        held.keys().map(|k| &k.2).max(),
        "the spool held the old boot's last results"
    );
    // The new boot ran from the config on disk before the coordinator came back.
    let new: Vec<&CheckResult> = results.iter().filter(|r| r.boot_id != old_boot).collect();
    let boots: BTreeSet<&str> = new.iter().map(|r| r.boot_id.as_str()).collect();
    assert_eq!(boots.len(), 1, "one new boot: {boots:?}");
    assert!(
        new.iter().any(|r| started_ms(r) < restart_ms),
        "the restarted probe ran nothing while the coordinator was down"
    );
    for check in [DNS_CHECK, TCP_CHECK] {
        let of_new: Vec<CheckResult> = new.iter().map(|r| (*r).clone()).collect();
        assert_on_grid(&of_new, "eu-1", check);
    }
    assert_all_running(&mut coordinator, &mut probes);
}

/// Regression: a config change restarts a probe's check tasks; a run cut short by that must not
/// leave a hole in the probe's seqs, or the coordinator could not tell it from a lost result.
#[test]
fn config_change_mid_run_leaves_no_seq_gap() {
    // A DNS server that never answers: every run of these checks lasts about 800 ms (the DNS
    // executor's share of the 1 s timeout), and their phases cover the whole interval, so
    // some run is always in flight when the plan changes.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a silent UDP port");
    let silent = silent.local_addr().expect("its address");
    let mut checks = String::from(
        "[defaults]\ninterval = \"2s\"\ntimeout = \"1s\"\nretry = \"off\"\nwindow = \"10s\"\n\n\
         [[vendor]]\nid = \"acme-dns\"\nname = \"Acme DNS\"\n",
    );
    const SILENT: usize = 8;
    let offsets: Vec<i64> = (1..=SILENT)
        .map(|i| expected_offset("eu-1", &format!("silent-{i}")))
        .collect();
    let uncovered = (0..INTERVAL_MS).step_by(5).find(|t| {
        !offsets
            .iter()
            .any(|o| (50..=650).contains(&(t - o).rem_euclid(INTERVAL_MS)))
    });
    assert_eq!(
        uncovered, None,
        "pick other ids: no run is in flight at that ms of the interval: {offsets:?}"
    );
    for i in 1..=SILENT {
        checks.push_str(&format!(
            "\n[[check]]\nid = \"silent-{i}\"\nvendor = \"acme-dns\"\nkind = \"dns\"\n\
             query = {{ name = \"www.{ZONE}\", type = \"A\" }}\nservers = [\"{silent}\"]\n"
        ));
    }
    let fleet = Fleet::new();
    let mut coordinator = fleet.coordinator(&checks);
    let mut probes = vec![fleet.probe(&coordinator, "eu-1", "eu")];
    wait_for_results(&mut coordinator, &mut probes, 6);

    let added = format!(
        "{checks}\n[[check]]\nid = \"{TCP_CHECK}\"\nvendor = \"acme-dns\"\nkind = \"tcp\"\ntarget = \"{}\"\n",
        coordinator.addr
    );
    coordinator.set_checks(&added);
    let changed = Instant::now();
    let (_, took) = wait_for(
        "the probe running the new check",
        Duration::from_secs(30),
        || {
            assert_all_running(&mut coordinator, &mut probes);
            let n = coordinator
                .results(&format!("probe=eu-1&check={TCP_CHECK}&limit=10"))
                .len();
            if n >= 2 {
                Ok(())
            } else {
                Err(format!("{n} results of the new check"))
            }
        },
    );
    println!("config change: the probe ran the new check {took:.1?} after the edit");
    let after = now_ms();
    let (results, _) = wait_for(
        "every seq of the probe's boot stored",
        Duration::from_secs(15),
        || delivered(&coordinator, "eu-1", &[], after),
    );
    assert_each_once(&results);
    assert!(
        results
            .iter()
            .all(|r| r.check_id == TCP_CHECK || r.status == Status::Fail),
        "the silent server cannot pass a check"
    );
    println!(
        "config change: {} results, no seq missing, {:.1?} after the edit",
        results.len(),
        changed.elapsed()
    );
    assert_all_running(&mut coordinator, &mut probes);
}
