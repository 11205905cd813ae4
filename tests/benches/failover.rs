//! Failover (issue 14, ARCHITECTURE.md §8): how long a vendor goes unevaluated when the
//! coordinator evaluating it dies. Three coordinators share one real PostgreSQL, six probes in
//! three regions list all three ([`vantage_e2e::cluster::Cluster`], the HA tests' world), and
//! vendor `tcpco` sits in partition 8.
//!
//! Run it:
//!
//! ```sh
//! cargo bench -p vantage-e2e --bench failover
//! ```
//!
//! It first builds the coordinator and the probe with `release`. Then, for each lease in
//! `FAILOVER_LEASES` (default `3s,10s`: the HA tests' and the built-in default), on a fresh
//! cluster, `FAILOVER_KILLS` times (default 20): once the leases have settled (every
//! coordinator holding its share, all 16 partitions held) and after a random pause of up to a
//! balancing period (a third of the lease, so that the kill lands at a random phase of the
//! owner's renewals), the coordinator whose `/readyz` lists partition 8 is killed with
//! SIGKILL; the others' `/readyz` are polled every 50 ms until one lists it. That is when it
//! evaluates the vendor again (a coordinator reconciles a partition's incidents as soon as it
//! gains its lease), and the time from the kill is one failover. The killed coordinator is
//! then started again on the same store, so that there are always three.
//!
//! It prints p50, p95 and max against the target p95 ≤ lease + 2 s, and the bound the lease
//! design gives: the owner renews every third of the lease, so its lease outlives it by at
//! most the lease, and a survivor takes it at its next balancing pass, at most a third of the
//! lease later. Nothing timed is asserted (a shared, noisy machine); a broken cluster panics.
//! About 9 s a kill with a 3 s lease, 25 s with 10 s: eleven minutes for the defaults, after
//! the release builds.

use std::time::{Duration, Instant};

use rand::Rng;
use vantage_e2e::cluster::{Cluster, VENDOR, holder, leases, vendor_part};

/// Partitions, and each coordinator's share of them with three alive.
const PARTS: usize = 16;
const SHARE_OF_THREE: usize = PARTS.div_ceil(3);
/// How often the survivors' `/readyz` are asked.
const POLL: Duration = Duration::from_millis(50);
/// Longer than any failover or settling here.
const WITHIN: Duration = Duration::from_secs(90);

fn kills() -> usize {
    match std::env::var("FAILOVER_KILLS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .unwrap_or_else(|| {
                panic!("FAILOVER_KILLS must be a number from 1 to 200, e.g. `20`; got `{v}`")
            }),
        Err(_) => 20,
    }
}

/// The leases to measure, in whole seconds.
fn lease_secs() -> Vec<u64> {
    let v = std::env::var("FAILOVER_LEASES").unwrap_or_else(|_| "3s,10s".to_owned());
    v.split(',')
        .map(|l| {
            l.trim()
                .strip_suffix('s')
                .and_then(|n| n.parse().ok())
                .filter(|n| (1..=60).contains(n))
                .unwrap_or_else(|| {
                    panic!(
                        "FAILOVER_LEASES must be leases in whole seconds from 1s to 60s, e.g. `3s,10s`; got `{v}`"
                    )
                })
        })
        .collect()
}

/// Nearest-rank percentile of sorted `xs`.
fn percentile(xs: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * xs.len() as f64).ceil().max(1.0) as usize;
    xs[rank.min(xs.len()) - 1]
}

/// Polls until every live coordinator holds its share at most and at least one lease, and
/// every partition is held: the cluster as it runs, not mid-rebalance.
fn wait_settled(c: &Cluster, what: &str) {
    let start = Instant::now();
    loop {
        let held: Vec<Vec<u32>> = c.coordinators.iter().map(|co| leases(co.addr)).collect();
        let total: usize = held.iter().map(Vec::len).sum();
        if total == PARTS && held.iter().all(|h| (1..=SHARE_OF_THREE).contains(&h.len())) {
            return;
        }
        assert!(
            start.elapsed() < WITHIN,
            "{what}: the leases did not settle within {WITHIN:?}: {held:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// `kills` failovers with leases of `lease_s`; the failover times in seconds.
fn measure(lease_s: u64, kills: usize) -> Vec<f64> {
    let lease = Duration::from_secs(lease_s);
    let mut c = Cluster::start_with_lease(&format!("failover_{lease_s}s"), &format!("{lease_s}s"));
    let part = vendor_part(VENDOR);
    let mut rng = rand::rng();
    let mut times = Vec::new();
    for k in 1..=kills {
        wait_settled(&c, &format!("lease {lease_s} s, kill {k}"));
        std::thread::sleep(Duration::from_millis(
            rng.random_range(0..lease.as_millis() as u64 / 3),
        ));
        let owner = holder(&c.coordinators, &c.alive, part)
            .unwrap_or_else(|| panic!("kill {k}: nobody holds partition {part}"));
        let killed = Instant::now();
        c.kill(owner);
        let taker = loop {
            if let Some(t) = holder(&c.coordinators, &c.alive, part) {
                break t;
            }
            assert!(
                killed.elapsed() < WITHIN,
                "kill {k}: nobody took partition {part} within {WITHIN:?}"
            );
            std::thread::sleep(POLL);
        };
        let took = killed.elapsed().as_secs_f64();
        eprintln!(
            "failover: lease {lease_s} s, kill {k:>3}/{kills}: coordinator {owner} killed, coordinator {taker} holds partition {part} after {took:5.2} s"
        );
        times.push(took);
        c.restart(owner);
    }
    times
}

fn main() {
    vantage_e2e::build_binary("vantage-coordinator", "release");
    vantage_e2e::build_binary("vantage-probe", "release");
    let kills = kills();
    let mut lines = Vec::new();
    for lease_s in lease_secs() {
        let mut xs = measure(lease_s, kills);
        xs.sort_by(f64::total_cmp);
        let (p50, p95, max) = (
            percentile(&xs, 50.0),
            percentile(&xs, 95.0),
            xs[xs.len() - 1],
        );
        let lease = lease_s as f64;
        let target = lease + 2.0;
        lines.push(format!(
            "lease {lease:>4.0} s   p50 {p50:>6.2} s   p95 {p95:>6.2} s   max {max:>6.2} s   bound lease + lease/3 = {:>5.2} s   target p95 <= lease + 2 s = {target:>5.2} s: {}",
            lease * 4.0 / 3.0,
            if p95 <= target { "met" } else { "NOT met" }
        ));
    }
    println!(
        "\nfailover: {kills} kills -9 of the coordinator holding {VENDOR}'s partition ({}) per lease, three coordinators on one PostgreSQL, six probes; time until another's /readyz lists the partition (polled every {} ms)",
        vendor_part(VENDOR),
        POLL.as_millis()
    );
    for l in lines {
        println!("{l}");
    }
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
