//! The probe's footprint against Prometheus blackbox_exporter (ARCHITECTURE.md §7): CPU
//! seconds and peak RSS per 1,000 check runs, and idle RSS with 1,000 checks loaded.
//!
//! Run it:
//!
//! ```sh
//! cargo bench -p vantage-e2e --bench footprint
//! ```
//!
//! It first builds what it measures, as an operator deploys it: the probe with the workspace's
//! `probe` profile (`target/probe/vantage-probe`, built for size) and the coordinator with
//! `release`.
//!
//! Needs `nsd`, `nginx-light` and `prometheus-blackbox-exporter` (Debian). Takes about three
//! and a half minutes; `FOOTPRINT_WINDOW_SECS` (10, 20, … 600; default 60) sets the windows.
//!
//! One NSD serves a zone with 1,000 names and one nginx serves the CDN harness's plain-HTTP
//! edge, all on loopback. Then, one after the other:
//! 1. **idle**: a coordinator serving 1,000 DNS checks at `interval = "1h"` and one
//!    `vantage-probe run`; once the probe has applied them and settled, its `VmRSS`;
//! 2. **vantage**: a fresh coordinator serving 1,000 DNS and 200 HTTP checks every 10 s
//!    (120 runs a second) and a fresh probe; after one interval of warm-up, the probe's
//!    utime+stime over the window, the runs stored by the coordinator that started in the
//!    window, and the probe's `VmHWM`;
//! 3. **blackbox**: blackbox_exporter with a module per DNS name (the same 1,000 queries) and
//!    an `http_2xx` module, driven from this process at the same 120 `/probe` requests a
//!    second over keep-alive connections (the same 1,200 targets, each once per 10 s); after
//!    the same warm-up, its CPU over the window, the requests that started in it, its
//!    `VmHWM`, and, before any probing, its `VmRSS` with the modules loaded.
//!
//! Only the probe and the exporter are measured: neither the coordinator (which stores the
//! probe's results) nor the driver (which plays Prometheus) is counted. Both sides do plain
//! HTTP to the same edge, with the same Host, no compression, a fresh connection per run.
//! The figures are printed; nothing timed is asserted (a shared, noisy machine), but a
//! broken world (runs failing, a process dying) panics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use vantage_e2e::blackbox::{self, BlackboxExporter, ProcSample, http_get, query_value};
use vantage_e2e::cdn::{Cdn, HOST};
use vantage_e2e::dns::{Nsd, Zone};
use vantage_e2e::{ServerProcess, free_port};

/// DNS checks, and DNS names in the zone.
const DNS_CHECKS: usize = 1_000;
/// HTTP checks.
const HTTP_CHECKS: usize = 200;
/// Every check's interval: 1,200 checks every 10 s is 120 runs a second.
const INTERVAL: Duration = Duration::from_secs(10);
/// Unmeasured time before each window: one interval, so every check has run once.
const WARMUP: Duration = INTERVAL;
/// Default measured window of each side.
const WINDOW: Duration = Duration::from_secs(60);
/// How long the idle probe settles after applying its checks before it is read.
const IDLE_SETTLE: Duration = Duration::from_secs(5);
/// Most `/probe` requests in flight from the driver.
const DRIVER_CONCURRENCY: usize = 32;
/// The zone the DNS checks query.
const ZONE: &str = "bench.vantage.test";
/// Each run's timeout, on both sides.
const TIMEOUT: &str = "4s";

fn main() {
    let window = window();
    let start_load = load_average();
    let coordinator_bin = vantage_e2e::build_binary("vantage-coordinator", "release");
    let probe_bin = vantage_e2e::build_binary("vantage-probe", "probe");
    blackbox::binary();
    let ticks = blackbox::clock_ticks_per_second();
    let dir = tempfile::Builder::new()
        .prefix("vantage-footprint-")
        .tempdir()
        .expect("create a temporary directory");
    let bins = Bins {
        coordinator: coordinator_bin,
        probe: probe_bin,
    };

    let records: String = (0..DNS_CHECKS)
        .map(|i| format!("{} IN A 192.0.2.{}\n", qname_label(i), i % 250 + 1))
        .collect();
    let nsd = Nsd::start(
        "footprint",
        &[SocketAddr::from(([127, 0, 0, 1], free_port()))],
        &[Zone::new(ZONE, 1, &records)],
    );
    let mut cdn = Cdn::start();
    let world = World {
        dns: nsd.addr(),
        edge: cdn.edge_plain,
    };
    eprintln!(
        "footprint: NSD on {}, nginx edge on {}, window {window:?}",
        world.dns, world.edge
    );

    let idle = measure_idle(&bins, dir.path(), &world);
    let vantage = measure_vantage(&bins, dir.path(), &world, window, ticks);
    let blackbox = measure_blackbox(&world, window, ticks);
    cdn.assert_running();
    drop(nsd);

    print_report(&Report {
        window,
        start_load,
        end_load: load_average(),
        idle,
        vantage,
        blackbox,
    });
}

/// The measured window, from `FOOTPRINT_WINDOW_SECS` or [`WINDOW`]: a whole number of
/// intervals, so every check is due the same number of times in it.
fn window() -> Duration {
    match std::env::var("FOOTPRINT_WINDOW_SECS") {
        Ok(v) => {
            let secs: u64 = v
                .parse()
                .ok()
                .filter(|s| (10..=600).contains(s) && s % INTERVAL.as_secs() == 0)
                .unwrap_or_else(|| {
                    panic!(
                        "FOOTPRINT_WINDOW_SECS must be a multiple of 10 from 10 to 600 (so that every \
                         check is due the same number of times), e.g. `30`; got `{v}`"
                    )
                });
            Duration::from_secs(secs)
        }
        Err(_) => WINDOW,
    }
}

struct Bins {
    coordinator: PathBuf,
    probe: PathBuf,
}

/// The servers both sides probe.
struct World {
    dns: SocketAddr,
    edge: SocketAddr,
}

fn qname_label(i: usize) -> String {
    format!("q{i}")
}

fn qname(i: usize) -> String {
    format!("{}.{ZONE}", qname_label(i))
}

fn http_path(i: usize) -> String {
    format!("/index.html?n={i}")
}

/// A Vantage check file: `dns` DNS checks and `http` HTTP checks at `interval`.
fn checks_file(world: &World, dns: usize, http: usize, interval: &str) -> String {
    let mut text = format!(
        "[defaults]\ninterval = \"{interval}\"\nwindow = \"{interval}\"\ntimeout = \"{TIMEOUT}\"\n\
         retry = \"off\"\n\n[[vendor]]\nid = \"bench\"\n"
    );
    for i in 0..dns {
        text.push_str(&format!(
            "\n[[check]]\nid = \"dns-{i:04}\"\nvendor = \"bench\"\nkind = \"dns\"\n\
             query = {{ name = \"{}\", type = \"A\" }}\nservers = [\"{}\"]\n",
            qname(i),
            world.dns
        ));
    }
    for i in 0..http {
        text.push_str(&format!(
            "\n[[check]]\nid = \"http-{i:03}\"\nvendor = \"bench\"\nkind = \"http\"\n\
             url = \"http://{HOST}{}\"\nedge = \"{}\"\n",
            http_path(i),
            world.edge
        ));
    }
    text
}

/// `log` without ANSI colour sequences (`ESC [ … m`), should a process colour its log.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut rest = log;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// A coordinator and one probe registered with it, both killed when dropped.
struct Network {
    coordinator: SocketAddr,
    probe_id: String,
    probe_pid: u32,
    probe_log: PathBuf,
    state_dir: PathBuf,
    // Dropped in this order: the probe first.
    probe: ServerProcess,
    coordinator_process: ServerProcess,
}

impl Network {
    /// Starts a coordinator serving `checks` under `dir/name`, registers probe `name`, starts
    /// it, and waits until it has applied `expect` checks.
    fn start(bins: &Bins, dir: &Path, name: &str, checks: &str, expect: usize) -> Self {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).expect("create the network's directory");
        let checks_path = home.join("checks.toml");
        std::fs::write(&checks_path, checks).expect("write checks.toml");
        let data_dir = home.join("coordinator");
        let log = home.join("coordinator.log");
        let (coordinator, coordinator_process) = (0..5)
            .find_map(|_| {
                let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
                let mut cmd = Command::new(&bins.coordinator);
                cmd.arg("serve")
                    .arg("--data-dir")
                    .arg(&data_dir)
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--checks")
                    .arg(&checks_path)
                    .env("RUST_LOG", "info")
                    .env("NO_COLOR", "1")
                    .env_remove("VANTAGE_CONFIG");
                let log_before = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
                let mut process = ServerProcess::spawn("vantage-coordinator", cmd, &log);
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    if matches!(http_get(addr, "/healthz"), Ok((200, _))) {
                        return Some((addr, process));
                    }
                    // A port found free may be taken before the coordinator binds it.
                    if process
                        .log()
                        .get(log_before..)
                        .is_some_and(|l| l.contains("cannot listen on"))
                    {
                        process.stop();
                        return None;
                    }
                    process.assert_running();
                    assert!(
                        Instant::now() < deadline,
                        "the coordinator did not answer /healthz on {addr}; its log:\n{}",
                        process.log()
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .expect("the coordinator could not bind a port in 5 attempts");

        let token_file = home.join("probe.token");
        let out = Command::new(&bins.coordinator)
            .args(["probe", "add", name, "--region", "bench", "--token-file"])
            .arg(&token_file)
            .arg("--data-dir")
            .arg(&data_dir)
            .env_remove("VANTAGE_CONFIG")
            .output()
            .expect("run vantage-coordinator probe add");
        assert!(
            out.status.success(),
            "`probe add {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let state_dir = home.join("probe-state");
        let probe_log = home.join("probe.log");
        let mut cmd = Command::new(&bins.probe);
        cmd.arg("run")
            .arg("--coordinator")
            .arg(format!("http://{coordinator}"))
            .arg("--token-file")
            .arg(&token_file)
            .arg("--state-dir")
            .arg(&state_dir)
            .args(["--probe-id", name, "--region", "bench"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("VANTAGE_PROBE_CONFIG")
            .env_remove("VANTAGE_PROBE_TOKEN");
        let mut probe = ServerProcess::spawn("vantage-probe", cmd, &probe_log);
        let applied = format!("checks={expect}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !plain(&probe.log())
            .lines()
            .any(|l| l.contains("config applied") && l.contains(&applied))
        {
            probe.assert_running();
            assert!(
                Instant::now() < deadline,
                "probe `{name}` did not apply {expect} checks within 60 s; its log:\n{}\nthe coordinator's log:\n{}",
                probe.log(),
                coordinator_process.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let probe_pid = blackbox::child_pid(&state_dir.to_string_lossy())
            .expect("the probe runs but is not a child of this process");
        Self {
            coordinator,
            probe_id: name.to_owned(),
            probe_pid,
            probe_log,
            state_dir,
            probe,
            coordinator_process,
        }
    }

    /// Stored results of the probe that started in `[since_ms, until_ms)`.
    /// The probe's stored results that started in `[since_ms, until_ms)`, read in 30 s slices:
    /// a slice holds at most 3,600 runs at 120 a second, within the API's `limit` of 10,000.
    fn results(&self, since_ms: i64, until_ms: i64) -> Vec<serde_json::Value> {
        const SLICE_MS: i64 = 30_000;
        const LIMIT: usize = 10_000;
        let mut all = Vec::new();
        let mut from = since_ms;
        while from < until_ms {
            let to = (from + SLICE_MS).min(until_ms);
            let path = format!(
                "/api/v1/results?probe={}&since={from}&until={to}&limit={LIMIT}",
                self.probe_id
            );
            let slice: Vec<serde_json::Value> = match http_get(self.coordinator, &path) {
                Ok((200, body)) => serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("GET {path}: not a JSON array ({e})")),
                Ok((status, body)) => panic!("GET {path}: {status} {body}"),
                Err(e) => panic!("GET {path}: {e}"),
            };
            assert!(
                slice.len() < LIMIT,
                "GET {path}: {} results, the most one answer holds; slice the window finer",
                slice.len()
            );
            all.extend(slice);
            from = to;
        }
        all
    }

    fn assert_running(&mut self) {
        self.probe.assert_running();
        self.coordinator_process.assert_running();
    }
}

struct Idle {
    probe: ProcSample,
}

/// Idle RSS: 1,000 DNS checks loaded, each due once an hour.
fn measure_idle(bins: &Bins, dir: &Path, world: &World) -> Idle {
    eprintln!("footprint: idle probe with {DNS_CHECKS} DNS checks at interval 1h");
    let mut net = Network::start(
        bins,
        dir,
        "idle",
        &checks_file(world, DNS_CHECKS, 0, "1h"),
        DNS_CHECKS,
    );
    std::thread::sleep(IDLE_SETTLE);
    net.assert_running();
    Idle {
        probe: ProcSample::read(net.probe_pid),
    }
}

/// One side's figures over the window.
struct Side {
    runs: usize,
    ok: usize,
    cpu_s: f64,
    /// At the window's start and end.
    before: ProcSample,
    after: ProcSample,
    /// Anything worth a line under the table.
    notes: Vec<String>,
}

impl Side {
    fn cpu_per_1000(&self) -> f64 {
        self.cpu_s * 1000.0 / self.runs.max(1) as f64
    }
}

fn unix_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn measure_vantage(bins: &Bins, dir: &Path, world: &World, window: Duration, ticks: u64) -> Side {
    let total = DNS_CHECKS + HTTP_CHECKS;
    eprintln!(
        "footprint: vantage probe with {DNS_CHECKS} DNS + {HTTP_CHECKS} HTTP checks every {INTERVAL:?}"
    );
    let mut net = Network::start(
        bins,
        dir,
        "busy",
        &checks_file(world, DNS_CHECKS, HTTP_CHECKS, "10s"),
        total,
    );
    std::thread::sleep(WARMUP);
    net.assert_running();
    let spool_before = blackbox::dir_bytes(&net.state_dir.join("spool"));
    let since_ms = unix_ms();
    let before = ProcSample::read(net.probe_pid);
    std::thread::sleep(window);
    let after = ProcSample::read(net.probe_pid);
    let until_ms = unix_ms();
    let spool_after = blackbox::dir_bytes(&net.state_dir.join("spool"));
    net.assert_running();

    // Runs that started just before the end are pushed within about a second (the shipper's
    // linger); wait until the count stops growing.
    let mut results = net.results(since_ms, until_ms);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let again = net.results(since_ms, until_ms);
        let settled = again.len() == results.len();
        results = again;
        if settled || Instant::now() > deadline {
            break;
        }
    }

    let mut notes = Vec::new();
    let mut per_check: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        let id = r["check_id"].as_str().unwrap_or("?").to_owned();
        *per_check.entry(id).or_default() += 1;
        if r["status"] != "ok" {
            let why = format!(
                "{} {}",
                r["status"].as_str().unwrap_or("?"),
                r["failure"].as_str().unwrap_or("-")
            );
            *failures.entry(why).or_default() += 1;
        }
    }
    let ok = results.iter().filter(|r| r["status"] == "ok").count();
    let expected = total as f64 * window.as_secs_f64() / INTERVAL.as_secs_f64();
    notes.push(format!(
        "vantage: {} runs stored of {expected:.0} due in the window ({:.1}%); {} of {total} checks ran, {} to {} times each",
        results.len(),
        100.0 * results.len() as f64 / expected,
        per_check.len(),
        per_check.values().min().unwrap_or(&0),
        per_check.values().max().unwrap_or(&0),
    ));
    if !failures.is_empty() {
        notes.push(format!("vantage: failed runs by kind: {failures:?}"));
    }
    notes.push(format!(
        "vantage: spool {} KiB at the window's start, {} KiB at its end",
        spool_before / 1024,
        spool_after / 1024
    ));
    let log = plain(&std::fs::read_to_string(&net.probe_log).unwrap_or_default());
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    if !warnings.is_empty() {
        notes.push(format!(
            "vantage: the probe logged {} warnings or errors; the first: {}",
            warnings.len(),
            warnings[0]
        ));
    }
    assert!(
        ok * 10 >= results.len() * 9 && !results.is_empty(),
        "most vantage runs should pass against a healthy world: {ok} of {} did; failures: {failures:?}",
        results.len()
    );
    Side {
        runs: results.len(),
        ok,
        cpu_s: (after.cpu_ticks - before.cpu_ticks) as f64 / ticks as f64,
        before,
        after,
        notes,
    }
}

/// blackbox_exporter's config: one DNS module per name (a module fixes its query name), and
/// one HTTP module; both IPv4, the DNS one without recursion, the HTTP one with the edge's
/// Host and no compression, like the Vantage checks.
fn blackbox_config() -> String {
    let mut text = format!(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: {TIMEOUT}\n    http:\n      \
         preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n      headers:\n        \
         Host: {HOST}\n        Accept-Encoding: identity\n"
    );
    for i in 0..DNS_CHECKS {
        text.push_str(&format!(
            "  dns_{i}:\n    prober: dns\n    timeout: {TIMEOUT}\n    dns:\n      query_name: {}\n      \
             query_type: A\n      transport_protocol: udp\n      preferred_ip_protocol: ip4\n      \
             ip_protocol_fallback: false\n      recursion_desired: false\n      \
             valid_rcodes: [NOERROR]\n",
            qname(i)
        ));
    }
    text
}

/// The `/probe` request paths of the 1,200 targets, the HTTP ones spread among the DNS ones
/// (every sixth), as the probe's phase offsets spread its checks.
fn blackbox_targets(world: &World) -> Vec<String> {
    let stride = (DNS_CHECKS + HTTP_CHECKS) / HTTP_CHECKS;
    let dns_target = query_value(&world.dns.to_string());
    let (mut dns, mut http) = (0, 0);
    let mut targets = Vec::with_capacity(DNS_CHECKS + HTTP_CHECKS);
    for slot in 0..DNS_CHECKS + HTTP_CHECKS {
        if slot % stride == stride - 1 && http < HTTP_CHECKS {
            let url = format!("http://{}{}", world.edge, http_path(http));
            targets.push(format!(
                "/probe?module=http_2xx&target={}",
                query_value(&url)
            ));
            http += 1;
        } else {
            targets.push(format!("/probe?module=dns_{dns}&target={dns_target}"));
            dns += 1;
        }
    }
    debug_assert_eq!((dns, http), (DNS_CHECKS, HTTP_CHECKS));
    targets
}

/// What one `/probe` request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// 200 with `probe_success 1`.
    Success,
    /// 200 with `probe_success 0`.
    ProbeFailed,
    /// No answer, or not a 200.
    Error,
}

async fn probe_once(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    uri: hyper::Uri,
) -> Outcome {
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let resp = client.get(uri).await.ok()?;
        let status = resp.status();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    })
    .await;
    match answer {
        Ok(Some((status, body))) if status == hyper::StatusCode::OK => {
            let text = String::from_utf8_lossy(&body);
            if text.lines().any(|l| l == "probe_success 1") {
                Outcome::Success
            } else {
                Outcome::ProbeFailed
            }
        }
        _ => Outcome::Error,
    }
}

/// Requests `targets` round and round, one every `INTERVAL / targets.len()`, at most
/// [`DRIVER_CONCURRENCY`] at once, until `stop`; returns when each request started and how
/// it ended, and how many times the schedule slipped because every slot was busy.
async fn drive(
    addr: SocketAddr,
    targets: Vec<String>,
    stop: Arc<AtomicBool>,
) -> (Vec<(Instant, Outcome)>, usize) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(DRIVER_CONCURRENCY)
        .build_http();
    let permits = Arc::new(tokio::sync::Semaphore::new(DRIVER_CONCURRENCY));
    let period = INTERVAL / targets.len() as u32;
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut done = Vec::new();
    let mut slipped = 0;
    for (n, path) in (0u32..).zip(targets.iter().cycle()) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep_until(start + period * n).await;
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                slipped += 1;
                Arc::clone(&permits)
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        let uri: hyper::Uri = format!("http://{addr}{path}")
            .parse()
            .expect("a valid /probe URI");
        let client = client.clone();
        tasks.spawn(async move {
            let began = Instant::now();
            let outcome = probe_once(&client, uri).await;
            drop(permit);
            (began, outcome)
        });
        while let Some(r) = tasks.try_join_next() {
            done.push(r.expect("a driver task"));
        }
    }
    while let Some(r) = tasks.join_next().await {
        done.push(r.expect("a driver task"));
    }
    (done, slipped)
}

struct Blackbox {
    side: Side,
    idle: ProcSample,
}

fn measure_blackbox(world: &World, window: Duration, ticks: u64) -> Blackbox {
    eprintln!(
        "footprint: blackbox_exporter, {DNS_CHECKS} DNS + {HTTP_CHECKS} HTTP targets every {INTERVAL:?}"
    );
    let mut exporter = BlackboxExporter::start(&blackbox_config());
    let pid = exporter.pid();
    std::thread::sleep(IDLE_SETTLE);
    let idle = ProcSample::read(pid);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the driver");
    let stop = Arc::new(AtomicBool::new(false));
    let driver = runtime.spawn(drive(
        exporter.addr,
        blackbox_targets(world),
        Arc::clone(&stop),
    ));
    std::thread::sleep(WARMUP);
    exporter.assert_running();
    let t0 = Instant::now();
    let before = ProcSample::read(pid);
    std::thread::sleep(window);
    let after = ProcSample::read(pid);
    let t1 = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let (done, slipped) = runtime.block_on(driver).expect("the driver");
    exporter.assert_running();

    let in_window: Vec<Outcome> = done
        .iter()
        .filter(|(began, _)| *began >= t0 && *began < t1)
        .map(|&(_, o)| o)
        .collect();
    let count = |o| in_window.iter().filter(|&&x| x == o).count();
    let (ok, failed, errors) = (
        count(Outcome::Success),
        count(Outcome::ProbeFailed),
        count(Outcome::Error),
    );
    let expected =
        (DNS_CHECKS + HTTP_CHECKS) as f64 * window.as_secs_f64() / INTERVAL.as_secs_f64();
    let mut notes = vec![format!(
        "blackbox: {} requests started in the window of {expected:.0} due ({:.1}%): {ok} succeeded, {failed} probes failed, {errors} requests failed; the schedule slipped {slipped} times (all {DRIVER_CONCURRENCY} slots busy)",
        in_window.len(),
        100.0 * in_window.len() as f64 / expected,
    )];
    let log = exporter.log();
    if !log.trim().is_empty() {
        notes.push(format!(
            "blackbox: its log has {} lines; the first: {}",
            log.lines().count(),
            log.lines().next().unwrap_or_default()
        ));
    }
    assert!(
        ok * 10 >= in_window.len() * 9 && !in_window.is_empty(),
        "most blackbox probes should pass against a healthy world: {ok} of {} did",
        in_window.len()
    );
    Blackbox {
        side: Side {
            runs: in_window.len(),
            ok,
            cpu_s: (after.cpu_ticks - before.cpu_ticks) as f64 / ticks as f64,
            before,
            after,
            notes,
        },
        idle,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

struct Report {
    window: Duration,
    start_load: String,
    end_load: String,
    idle: Idle,
    vantage: Side,
    blackbox: Blackbox,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[allow(clippy::print_stdout)]
fn print_report(r: &Report) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    let (v, b) = (&r.vantage, &r.blackbox.side);
    let rate = (DNS_CHECKS + HTTP_CHECKS) as f64 / INTERVAL.as_secs_f64();
    println!();
    println!(
        "footprint: {DNS_CHECKS} DNS + {HTTP_CHECKS} HTTP checks every {INTERVAL:?} ({rate:.0} runs/s), \
         {:?} window after {WARMUP:?} warm-up; NSD and nginx (plain-HTTP edge) on loopback",
        r.window
    );
    println!(
        "machine: {cores} cores, Linux {kernel}, load average {} at start, {} at end",
        r.start_load, r.end_load
    );
    println!();
    println!(
        "{:<20} {:>6} {:>6} {:>16} {:>13} {:>12} {:>17} {:>7}",
        "",
        "runs",
        "ok",
        "CPU s/1000 runs",
        "peak RSS MiB",
        "end RSS MiB",
        "anon+file MiB",
        "threads"
    );
    for (name, s) in [("vantage-probe", v), ("blackbox_exporter", b)] {
        println!(
            "{:<20} {:>6} {:>6} {:>16.3} {:>13.1} {:>12.1} {:>17} {:>7}",
            name,
            s.runs,
            s.ok,
            s.cpu_per_1000(),
            mib(s.after.peak_rss_kib),
            mib(s.after.rss_kib),
            format!("{:.1}+{:.1}", mib(s.after.anon_kib), mib(s.after.file_kib)),
            s.after.threads
        );
    }
    println!(
        "{:<20} {:>6} {:>6} {:>15.2}x {:>12.2}x {:>11.2}x",
        "vantage/blackbox",
        "",
        "",
        v.cpu_per_1000() / b.cpu_per_1000(),
        v.after.peak_rss_kib as f64 / b.after.peak_rss_kib as f64,
        v.after.rss_kib as f64 / b.after.rss_kib as f64,
    );
    println!(
        "{:<20} {:>6} {:>6} {:>16} {:>13}",
        "target", "", "", "<= 0.50x", "<= 0.50x"
    );
    println!();
    let (vi, bi) = (&r.idle.probe, &r.blackbox.idle);
    println!(
        "idle RSS, {DNS_CHECKS} DNS checks loaded at interval 1h: vantage-probe {:.1} MiB \
         (anon {:.1} + file {:.1}; {} threads); target < 20 MB ({:.1} MiB)",
        mib(vi.rss_kib),
        mib(vi.anon_kib),
        mib(vi.file_kib),
        vi.threads,
        20e6 / (1024.0 * 1024.0),
    );
    println!(
        "for scale: blackbox_exporter with {DNS_CHECKS} DNS modules loaded, before any probe: \
         {:.1} MiB (anon {:.1} + file {:.1})",
        mib(bi.rss_kib),
        mib(bi.anon_kib),
        mib(bi.file_kib),
    );
    println!(
        "RSS over the window: vantage-probe {:.1} -> {:.1} MiB, blackbox_exporter {:.1} -> {:.1} MiB",
        mib(v.before.rss_kib),
        mib(v.after.rss_kib),
        mib(b.before.rss_kib),
        mib(b.after.rss_kib),
    );
    println!(
        "CPU is utime+stime of the measured process only (not the coordinator, not the driver)."
    );
    for note in v.notes.iter().chain(&b.notes) {
        println!("{note}");
    }
}
