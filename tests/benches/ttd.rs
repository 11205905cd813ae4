//! Time to detect and time to resolve (ARCHITECTURE.md §7), measured end to end: the real
//! coordinator and six probes (two in each of three regions) against real NSD and nginx, with
//! the scenario corpus' settings (interval 2 s, timeout 1 s, `for` 2 s, `recover_for` 4 s,
//! flap window 12 s, K = 3 failing votes of N = 6).
//!
//! Run it:
//!
//! ```sh
//! cargo bench -p vantage-e2e --bench ttd
//! ```
//!
//! It first builds the coordinator and the probe with `release`. Then, `TTD_RUNS` times
//! (default 20), after a random pause (so that the fault lands at a random phase of the
//! probes' schedules): both of Acme's authoritative name servers stop (a global outage of a
//! vendor with one check, so the page is `hard_down` and nothing else), and the time from
//! the fault to the trigger at the webhook sink is one time to detect; the servers start
//! again, and the times from the fix to the vendor's state turning operational and to the
//! resolve at the sink are one time to resolve each. The clocks start before the servers
//! are told to stop or start, so their own stop and start times count against Vantage.
//!
//! It prints p50, p95 and max of each against its bound:
//! - detect: `K·I/(N+1) + (confirm−1)·I + timeout + push + eval + for`, target p95 ≤ 1.2 ×
//!   bound + 1 s;
//! - state clear: `recover_for + I + push + eval`;
//! - resolve page: the same plus the flap window (the resolve waits for the vendor to stay
//!   clear that long) and the incident timer's period (2 s).
//!
//! Nothing timed is asserted (a shared, noisy machine); a broken world panics. About 30 s a
//! run: ten minutes for the default 20.

use std::time::{Duration, Instant};

use rand::Rng;
use vantage_e2e::world::*;

/// The incident task's timer: a resolve goes out at its first tick after the flap window.
const RECONCILE_S: f64 = 2.0;

fn runs() -> usize {
    match std::env::var("TTD_RUNS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .unwrap_or_else(|| {
                panic!("TTD_RUNS must be a number from 1 to 500, e.g. `20`; got `{v}`")
            }),
        Err(_) => 20,
    }
}

/// Nearest-rank percentile of sorted `xs`.
fn percentile(xs: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * xs.len() as f64).ceil().max(1.0) as usize;
    xs[rank.min(xs.len()) - 1]
}

fn line(what: &str, mut xs: Vec<f64>, bound: f64, target: Option<f64>) {
    xs.sort_by(f64::total_cmp);
    let (p50, p95, max) = (
        percentile(&xs, 50.0),
        percentile(&xs, 95.0),
        xs[xs.len() - 1],
    );
    let verdict = target.map_or(String::new(), |t| {
        format!(
            "   target p95 <= {t:.2} s: {}",
            if p95 <= t { "met" } else { "NOT met" }
        )
    });
    println!(
        "{what:<14} p50 {p50:>6.2} s   p95 {p95:>6.2} s   max {max:>6.2} s   bound {bound:>6.2} s   p95/bound {:>4.2}{verdict}",
        p95 / bound
    );
}

fn main() {
    vantage_e2e::build_binary("vantage-coordinator", "release");
    vantage_e2e::build_binary("vantage-probe", "release");
    let n = runs();
    let mut w = World::start(&SIX, "");
    let mut rng = rand::rng();
    let (mut detect, mut clear, mut resolve) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=n {
        // A random phase against the probes' schedules (and the tick).
        let pause = Duration::from_millis(rng.random_range(0..(INTERVAL_S * 1000.0) as u64))
            + Duration::from_secs(1);
        w.run_for(pause);
        let triggers_before = w.triggers("acme").len();
        let fault = Instant::now();
        w.stop_dns();
        w.wait(&format!("run {run}: the trigger"), || {
            w.triggers("acme").len() > triggers_before
        });
        let (_, paged, body) = w.triggers("acme").remove(triggers_before);
        assert_eq!(body["state"], "hard_down", "{body}");
        assert_eq!(body["scope"], "global", "{body}");
        let resolves_before = w
            .events("/hook", "acme")
            .iter()
            .filter(|(e, ..)| e == "resolve")
            .count();
        let fixed = Instant::now();
        w.start_dns([SERIAL_NOW, SERIAL_NOW]);
        let cleared = fixed.elapsed() + w.wait_state("acme", "operational");
        w.wait(&format!("run {run}: the resolve"), || {
            w.events("/hook", "acme")
                .iter()
                .filter(|(e, ..)| e == "resolve")
                .count()
                > resolves_before
        });
        let resolved = w
            .events("/hook", "acme")
            .into_iter()
            .filter(|(e, ..)| e == "resolve")
            .nth(resolves_before)
            .map(|(_, at, _)| at)
            .expect("the resolve");
        let (d, c, r) = (
            (paged - fault).as_secs_f64(),
            cleared.as_secs_f64(),
            (resolved - fixed).as_secs_f64(),
        );
        eprintln!(
            "ttd: run {run:>3}/{n}: detect {d:5.2} s, state clear {c:5.2} s, resolve page {r:5.2} s"
        );
        detect.push(d);
        clear.push(c);
        resolve.push(r);
    }
    let k = 3;
    let detect_bound = bound(k, PROBES);
    let clear_bound = RECOVER_S + INTERVAL_S + PUSH_S + EVAL_S;
    let flap = 3.0 * RECOVER_S;
    println!(
        "\ntime to detect and resolve: {n} global outages of Acme's DNS (both authoritative servers stopped), six probes in three regions"
    );
    println!(
        "settings: interval {INTERVAL_S} s, timeout {TIMEOUT_S} s, for {FOR_S} s, recover_for {RECOVER_S} s, flap window {flap} s, confirm 1, K = {k} of N = {PROBES}, push {PUSH_S} s, eval {EVAL_S} s"
    );
    line(
        "detect",
        detect,
        detect_bound,
        Some(1.2 * detect_bound + 1.0),
    );
    line("state clear", clear, clear_bound, None);
    line(
        "resolve page",
        resolve,
        clear_bound + flap + RECONCILE_S,
        None,
    );
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
