//! SLA report and vendor state query benchmark (ARCHITECTURE §7: "vendor state queries p99
//! under 10 ms, and a 30-day SLA report under 1 s, on a store with 30 days of rollups for
//! 1,000 checks"). It prints figures next to the targets and asserts nothing timed.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p vantage-coordinator --bench sla
//! ```
//!
//! It generates a store as the coordinator's writer would leave it after 30 days, for one
//! large vendor of `VANTAGE_BENCH_CHECKS` (1000) checks and five typical vendors of 10 checks,
//! each check run every 10 s by `VANTAGE_BENCH_PROBES` (6) probes in 3 regions, over
//! `VANTAGE_BENCH_DAYS` (30) days: every hourly and daily rollup row, the vendor state history
//! (a change every few hours), incidents and check transitions. Runs fail now and then, probe
//! errors happen, and the large vendor has a 40-minute outage in one region.
//!
//! The minute and 10-minute tiers are generated only for the `VANTAGE_BENCH_MINUTE_HOURS` (6)
//! hours at each end of the data: a report reads at most the 9 minutes and 50 minutes at each
//! end of its window from them, by primary-key range, and a full 30-day minute tier (~270 M
//! rows, ~20 GB) does not fit this machine. Range seeks cost the B-tree's depth, which grows
//! with the log of its size. Rows are written in key order, as a live store receives them;
//! on PostgreSQL they lie in key order too, as `migrate` copies them, where a live store's lie
//! in time order.
//!
//! Then it times, on that store:
//! 1. 30-day reports through the library (`report::sla::sla_report` on a fresh `SqliteStore`):
//!    the large vendor and a typical one, cold (OS file cache dropped for the database with
//!    `dd iflag=nocache`, new connections) and warm (median of 5), for three windows: the last
//!    30 days (the API's default), 30 days ragged at both ends (9 minutes on each side from
//!    the minute tier, 50 from the 10-minute one, then hours to the day boundaries: the worst
//!    case), and whole UTC days
//!    (as `report sla --month` asks: the daily tier only);
//! 2. the same reports over HTTP from the release `vantage-coordinator` serving that store,
//!    cold (file cache dropped before the request) and warm (median of 5);
//! 3. `GET /api/v1/vendors` and `GET /api/v1/vendors/{id}` (typical and large vendor),
//!    `VANTAGE_BENCH_REQUESTS` (2000) each, back to back on one keep-alive connection: p50
//!    and p99;
//! 4. the library reports of 1. on PostgreSQL (skip with `VANTAGE_BENCH_POSTGRES=0`): the
//!    store copied with `vantage-coordinator migrate` into a server the bench starts, cold
//!    (server restarted, the OS file cache of its data directory dropped) and warm.
//!
//! `VANTAGE_BENCH_KEEP=FILE` keeps a copy of the generated SQLite store there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rusqlite::params;
use vantage_checks::model::{Role, Sla, Vendor};
use vantage_coordinator::consensus::vendor::{ScopeStatus, VendorState, VendorStatus};
use vantage_coordinator::consensus::{Evidence, ProbeVote, Scope, Transition, Verdict, Vote};
use vantage_coordinator::engine::CheckTransition;
use vantage_coordinator::report::{Window, sla};
use vantage_coordinator::store::report::encode_buckets;
use vantage_coordinator::store::state::{
    IncidentState, IncidentWrite, StateStore, SubjectKind, TransitionRecord,
};
use vantage_coordinator::store::{LATENCY_BUCKETS, ReportStore, SqliteStore, Store, Synchronous};

const BIN: &str = env!("CARGO_BIN_EXE_vantage-coordinator");

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
const TYPICAL_VENDORS: usize = 5;
const TYPICAL_CHECKS: usize = 10;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// A check of the generated catalog.
struct GenCheck {
    id: String,
    vendor: String,
    role: Role,
}

/// What the bench generates.
struct Shape {
    checks: Vec<GenCheck>,
    vendors: Vec<Vendor>,
    probes: usize,
    days: i64,
    minute_hours: i64,
    /// The present: data ends here.
    now_ms: i64,
    /// First minute with data.
    first_ms: i64,
    /// The large vendor's outage in us-east.
    outage: (i64, i64),
}

impl Shape {
    fn new(big: usize, probes: usize, days: i64, minute_hours: i64) -> Self {
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let mut vendors = vec![Vendor {
            id: "bigcdn".into(),
            name: "Big CDN".into(),
            sla: Sla {
                availability: Some(0.9995),
                latency_p50: Some(Duration::from_millis(50)),
                latency_p95: Some(Duration::from_millis(200)),
                latency_p99: Some(Duration::from_millis(400)),
            },
        }];
        let mut checks: Vec<GenCheck> = (0..big)
            .map(|i| GenCheck {
                id: format!("big-{i:04}"),
                vendor: "bigcdn".into(),
                role: match i % 50 {
                    0 => Role::Control,
                    1 => Role::Telemetry,
                    _ => Role::Data,
                },
            })
            .collect();
        for v in 0..TYPICAL_VENDORS {
            let id = format!("vendor-{v}");
            vendors.push(Vendor {
                id: id.clone(),
                name: format!("Vendor {v}"),
                sla: Sla {
                    availability: Some(0.999),
                    latency_p95: Some(Duration::from_millis(300)),
                    ..Sla::default()
                },
            });
            checks.extend((0..TYPICAL_CHECKS).map(|i| GenCheck {
                id: format!("{id}-{i:02}"),
                vendor: id.clone(),
                role: if i == 0 { Role::Control } else { Role::Data },
            }));
        }
        let first_ms = floor(now_ms - days * DAY, HOUR) - HOUR;
        let outage_start = floor(now_ms - days * DAY / 2, HOUR) + 10 * MIN;
        Self {
            checks,
            vendors,
            probes,
            days,
            minute_hours,
            now_ms,
            first_ms,
            outage: (outage_start, outage_start + 40 * MIN),
        }
    }

    fn region(&self, probe: usize) -> usize {
        probe % REGIONS.len()
    }

    fn checks_toml(&self) -> String {
        let mut out = String::new();
        for v in &self.vendors {
            out.push_str(&format!(
                "[[vendor]]\nid = \"{}\"\nname = \"{}\"\nsla = {{ availability = \"{}%\"",
                v.id,
                v.name,
                v.sla.availability.unwrap_or(1.0) * 100.0
            ));
            for (k, d) in [
                ("latency_p50", v.sla.latency_p50),
                ("latency_p95", v.sla.latency_p95),
                ("latency_p99", v.sla.latency_p99),
            ] {
                if let Some(d) = d {
                    out.push_str(&format!(", {k} = \"{}ms\"", d.as_millis()));
                }
            }
            out.push_str(" }\n\n");
        }
        for (i, c) in self.checks.iter().enumerate() {
            out.push_str(&format!(
                "[[check]]\nid = \"{}\"\nvendor = \"{}\"\nrole = \"{}\"\nkind = \"tcp\"\ntarget = \"192.0.2.{}:443\"\n\n",
                c.id,
                c.vendor,
                c.role.as_label(),
                i % 250 + 1
            ));
        }
        out
    }
}

fn floor(ms: i64, unit: i64) -> i64 {
    ms - ms.rem_euclid(unit)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Counts of one rollup row.
#[derive(Clone, Copy)]
struct Row {
    runs: u64,
    failures: u64,
    probe_errors: u64,
    latency: [u64; LATENCY_BUCKETS],
}

impl Default for Row {
    fn default() -> Self {
        Self {
            runs: 0,
            failures: 0,
            probe_errors: 0,
            latency: [0; LATENCY_BUCKETS],
        }
    }
}

impl Row {
    fn add(&mut self, o: &Row) {
        self.runs += o.runs;
        self.failures += o.failures;
        self.probe_errors += o.probe_errors;
        for (a, b) in self.latency.iter_mut().zip(o.latency) {
            *a += b;
        }
    }

    fn blob(&self) -> Vec<u8> {
        encode_buckets(&self.latency)
    }
}

/// One probe's minute of one check: 6 runs, now and then a failure or a probe error; the
/// large vendor's us-east outage fails every run at about 1 s.
fn minute_row(shape: &Shape, check: usize, big: bool, probe: usize, minute: i64) -> Row {
    let mut r = Row {
        runs: 6,
        ..Row::default()
    };
    let in_outage = big
        && REGIONS[shape.region(probe)] == "us-east"
        && (shape.outage.0..shape.outage.1).contains(&minute);
    if in_outage {
        r.failures = 6;
        r.latency[20] = 6;
        return r;
    }
    let h = splitmix(((check as u64) << 40) ^ ((probe as u64) << 32) ^ (minute / MIN) as u64);
    r.probe_errors = u64::from(h % 2000 == 1);
    r.failures = u64::from(h.is_multiple_of(700));
    // Latency: four runs near the check's usual time, one a bit slower, one in the tail.
    let base = 10 + check % 6;
    r.latency[base] = 4 - r.probe_errors;
    r.latency[base + 1] = 1;
    r.latency[base + 3] = 1;
    r
}

/// The insert of one row into the coarse rollup tier `table` (10-minute, hourly or daily), whose
/// rows start at `start_column`: the tiers differ only in those two names.
fn tier_insert<'c>(
    tx: &'c rusqlite::Transaction<'_>,
    table: &'static str,
    start_column: &str,
) -> impl FnMut(&str, i64, usize, &Row) + 'c {
    let mut insert = tx
        .prepare_cached(&format!(
            "INSERT INTO {table} (check_id, {start_column}, region, count, failures, probe_errors, slow, latency)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)"
        ))
        .expect("prepare");
    move |check, start, region, row| {
        insert
            .execute(params![
                check,
                start,
                REGIONS[region],
                row.runs as i64,
                row.failures as i64,
                row.probe_errors as i64,
                row.blob()
            ])
            .unwrap_or_else(|e| panic!("a row of {table}: {e}"));
    }
}

struct Generated {
    minute_rows: u64,
    hour_rows: u64,
    day_rows: u64,
    secs: f64,
}

/// Fills the store's rollup tiers the way the writer would have.
fn generate(path: &Path, shape: &Shape) -> Generated {
    let started = Instant::now();
    drop(SqliteStore::open(path, Synchronous::Normal).expect("create the store"));
    let mut conn = rusqlite::Connection::open(path).expect("open");
    // A bulk load: no journal, no fsync; the store's own settings come back after.
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
    )
    .expect("bulk load pragmas");
    let end_minute = floor(shape.now_ms, MIN);
    let minutes = (end_minute - shape.first_ms) / MIN;
    let hours = (minutes + 59) / 60;
    let keep_minutes = shape.minute_hours * 60;
    let (mut minute_rows, mut hour_rows, mut day_rows) = (0, 0, 0);
    for (c, check) in shape.checks.iter().enumerate() {
        let big = check.vendor == "bigcdn";
        let tx = conn.transaction().expect("begin");
        {
            let mut ins_minute = tx
                .prepare_cached(
                    "INSERT INTO rollups (check_id, probe_id, minute_ms, region, count, failures, slow, by_kind, latency, probe_errors)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9)",
                )
                .expect("prepare");
            let mut hourly = vec![[Row::default(); 3]; hours as usize];
            // The 10-minute tier goes with the minute tier: where it is kept.
            let mut tens: BTreeMap<(i64, usize), Row> = BTreeMap::new();
            let probes: Vec<String> = (0..shape.probes).map(|p| format!("probe-{p:02}")).collect();
            // In key order, (minute, probe), as a live store receives them.
            for m in 0..minutes {
                let minute = shape.first_ms + m * MIN;
                for (p, probe) in probes.iter().enumerate() {
                    let region = shape.region(p);
                    let row = minute_row(shape, c, big, p, minute);
                    hourly[(m / 60) as usize][region].add(&row);
                    if m < keep_minutes || m >= minutes - keep_minutes {
                        tens.entry((floor(minute, 10 * MIN), region))
                            .or_default()
                            .add(&row);
                        let by_kind = if row.failures > 0 {
                            format!("{{\"connect_timeout\":{}}}", row.failures)
                        } else {
                            "{}".to_owned()
                        };
                        ins_minute
                            .execute(params![
                                check.id,
                                probe,
                                minute,
                                REGIONS[region],
                                row.runs as i64,
                                row.failures as i64,
                                by_kind,
                                row.blob(),
                                row.probe_errors as i64
                            ])
                            .expect("minute row");
                        minute_rows += 1;
                    }
                }
            }
            let mut ins_ten = tier_insert(&tx, "rollups_10min", "start_ms");
            for (&(start, r), row) in &tens {
                ins_ten(&check.id, start, r, row);
            }
            let mut ins_hour = tier_insert(&tx, "rollups_hourly", "hour_ms");
            let mut daily: BTreeMap<(i64, usize), Row> = BTreeMap::new();
            for (h, regions) in hourly.iter().enumerate() {
                let hour = shape.first_ms + h as i64 * HOUR;
                for (r, row) in regions.iter().enumerate() {
                    if row.runs == 0 {
                        continue;
                    }
                    ins_hour(&check.id, hour, r, row);
                    hour_rows += 1;
                    daily.entry((floor(hour, DAY), r)).or_default().add(row);
                }
            }
            let mut ins_day = tier_insert(&tx, "rollups_daily", "day_ms");
            for (&(day, r), row) in &daily {
                ins_day(&check.id, day, r, row);
                day_rows += 1;
            }
        }
        tx.commit().expect("commit");
    }
    conn.execute_batch("PRAGMA journal_mode = WAL;")
        .expect("back to WAL");
    drop(conn);
    history(path, shape);
    Generated {
        minute_rows,
        hour_rows,
        day_rows,
        secs: started.elapsed().as_secs_f64(),
    }
}

/// Vendor state history, incidents and check transitions, through the store.
fn history(path: &Path, shape: &Shape) {
    let store = SqliteStore::open(path, Synchronous::Normal).expect("open");
    let states = [
        VendorState::Operational,
        VendorState::Degraded,
        VendorState::HardDown,
        VendorState::ApiDown,
    ];
    for (vi, v) in shape.vendors.iter().enumerate() {
        // A change every 3 to 6 hours: mostly operational, sometimes not, per scope.
        let mut at = shape.first_ms;
        let mut n = 0u64;
        while at < shape.now_ms {
            let h = splitmix((vi as u64) << 32 | n);
            let pick = |k: u64| {
                if (h >> k).is_multiple_of(4) {
                    states[((h >> (k + 2)) % 4) as usize]
                } else {
                    VendorState::Operational
                }
            };
            let status = VendorStatus {
                global: ScopeStatus {
                    state: pick(0),
                    conditions: vec![],
                    clearing: false,
                },
                regions: REGIONS
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        (
                            (*r).to_owned(),
                            ScopeStatus {
                                state: pick(8 + 8 * i as u64),
                                conditions: vec![],
                                clearing: false,
                            },
                        )
                    })
                    .collect(),
                global_pending: false,
            };
            let scopes: Vec<(Option<String>, String)> =
                std::iter::once((None, status.global.state))
                    .chain(
                        status
                            .regions
                            .iter()
                            .map(|(r, s)| (Some(r.clone()), s.state)),
                    )
                    .map(|(r, s)| (r, s.as_label().to_owned()))
                    .collect();
            let json = serde_json::to_string(&status).expect("status");
            store
                .record_vendor_status(&v.id, &json, &scopes, at)
                .expect("history");
            at += (3 + (h % 4) as i64) * HOUR;
            n += 1;
        }
        // Incidents: 40 for the large vendor, 5 for the others, 10 to 70 minutes long; the
        // large vendor has one still open.
        let count = if vi == 0 { 40 } else { 5 };
        for i in 0..count {
            let opened = shape.first_ms + (i * 7 + 3) * (shape.days * DAY / (count * 7 + 7));
            let resolved = opened + (10 + (i * 13) % 60) * MIN;
            let regional = i % 3 == 0;
            let detail = serde_json::json!({
                "subject": {
                    "kind": "vendor", "id": v.id, "name": v.name, "state": "hard_down",
                    "scope": if regional { "regional" } else { "global" },
                    "regions": if regional { vec!["us-east"] } else { vec![] },
                },
                "summary": format!("{} is hard_down", v.name),
            })
            .to_string();
            let write = |id, at_ms, resolve| IncidentWrite {
                id,
                subject_kind: SubjectKind::Vendor,
                subject: v.id.clone(),
                state: IncidentState::Vendor(VendorState::HardDown),
                summary: format!("{} is hard_down", v.name),
                detail: detail.clone(),
                at_ms,
                resolve,
                events: vec![("opened".into(), "{}".into())],
                deliveries: vec![],
                ..IncidentWrite::default()
            };
            let id = store
                .write_incident(&write(None, opened, false))
                .expect("open incident");
            if !(vi == 0 && i == count - 1) {
                store
                    .write_incident(&write(Some(id), resolved, true))
                    .expect("resolve incident");
            }
        }
        // 150 settled check transitions with six probes' votes each.
        let transitions: Vec<TransitionRecord> = (0..150)
            .map(|i| {
                let check = shape
                    .checks
                    .iter()
                    .filter(|c| c.vendor == v.id)
                    .nth(i % TYPICAL_CHECKS)
                    .map_or_else(String::new, |c| c.id.clone());
                let at_ms = shape.first_ms + i as i64 * (shape.days * DAY / 150);
                let t = CheckTransition {
                    check: check.clone(),
                    vendor: v.id.clone(),
                    transition: Transition {
                        scope: Scope::Global,
                        from: Verdict::Passing,
                        to: if i % 2 == 0 {
                            Verdict::Failing
                        } else {
                            Verdict::Passing
                        },
                        at_ms,
                    },
                    evidence: Evidence {
                        votes: (0..shape.probes)
                            .map(|p| ProbeVote {
                                probe: format!("probe-{p:02}"),
                                region: REGIONS[shape.region(p)].to_owned(),
                                vote: Vote::Failing,
                                failure: None,
                                started_ms: Some(at_ms - 3_000),
                                total_ms: Some(1_000.0),
                                message: Some("connect timed out after 1s".into()),
                            })
                            .collect(),
                        ..Evidence::default()
                    },
                };
                TransitionRecord {
                    check_id: check,
                    vendor: v.id.clone(),
                    at_ms,
                    body: serde_json::to_string(&t).expect("transition"),
                }
            })
            .collect();
        store
            .save_check_states(&[], &transitions, shape.now_ms)
            .expect("transitions");
    }
}

/// The same reports on PostgreSQL: the store copied with `vantage-coordinator migrate` into a
/// server the bench starts (as the tests do); cold = the server restarted (its shared buffers
/// empty) with the OS file cache of its data directory dropped, and a new store.
fn postgres(data: &Path, shape: &Shape, windows: &[(&str, Window)]) {
    let mut pg = vantage_e2e::postgres::Postgres::start();
    let url = pg.create_database("sla");
    let t = Instant::now();
    let out = Command::new(BIN)
        .arg("migrate")
        .arg("--data-dir")
        .arg(data)
        .args(["--to", &url])
        .output()
        .expect("run migrate");
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = ms_since(t) / 1000.0;
    // As autovacuum would have, over 30 days of writes.
    pg.psql("sla", "VACUUM ANALYZE").expect("vacuum");
    let size = pg
        .psql("sla", "SELECT pg_database_size('sla')")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0);
    println!(
        "\nPostgreSQL: copied with `vantage-coordinator migrate` in {copied:.0} s, {:.2} GB; 30-day SLA report through the library (target < 1000 ms); cold = server restarted, its files' cache dropped, new connections",
        size / 1e9
    );
    for (name, window) in windows {
        for vendor in [&shape.vendors[0], &shape.vendors[1]] {
            pg.stop();
            let dropped = drop_dir_cache(pg.dir());
            pg.restart();
            let store = vantage_coordinator::store::PostgresStore::open(&url, None).expect("open");
            let (cold, warm, report) = time_report(&store, shape, vendor, *window);
            print_report(name, vendor, cold, warm, &report);
            if !dropped {
                println!("    (the file cache could not be dropped)");
            }
        }
    }
}

/// Drops the OS file cache of every file under `dir`; false when `dd` cannot.
fn drop_dir_cache(dir: &Path) -> bool {
    let mut ok = true;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            ok &= drop_dir_cache(&p);
        } else if p.is_file() {
            ok &= drop_file_cache(&p);
        }
    }
    ok
}

/// Drops the OS file cache of the database files; false when `dd` cannot.
fn drop_file_cache(path: &Path) -> bool {
    let mut ok = true;
    for p in [path.to_owned(), path.with_extension("db-wal")] {
        if !p.exists() {
            continue;
        }
        ok &= Command::new("dd")
            .arg(format!("if={}", p.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status()
            .is_ok_and(|s| s.success());
    }
    ok
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn vendor_checks(shape: &Shape, vendor: &str) -> Vec<(String, Role)> {
    shape
        .checks
        .iter()
        .filter(|c| c.vendor == vendor)
        .map(|c| (c.id.clone(), c.role))
        .collect()
}

/// Times library reports on `store`, opened cold: the first, then the median of 5 warm.
fn time_report(
    store: &dyn Store,
    shape: &Shape,
    vendor: &Vendor,
    window: Window,
) -> (f64, f64, sla::SlaReport) {
    let checks = vendor_checks(shape, &vendor.id);
    let t = Instant::now();
    let report = sla::sla_report(store, vendor, &checks, window, shape.now_ms).expect("report");
    let cold = ms_since(t);
    let warm = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                sla::sla_report(store, vendor, &checks, window, shape.now_ms).expect("report");
                ms_since(t)
            })
            .collect(),
    );
    (cold, warm, report)
}

/// One line of library report figures.
fn print_report(name: &str, vendor: &Vendor, cold: f64, warm: f64, report: &sla::SlaReport) {
    println!(
        "  {name:<15} {:<9} {:>4} checks  cold {cold:>7.1} ms  warm {warm:>7.1} ms  ({} runs, availability {:.5}, {} incidents, breach {})",
        vendor.id,
        report.checks.len(),
        report.global.sli.runs,
        report.global.sli.availability.unwrap_or(f64::NAN),
        report.global.incidents.len(),
        report.global.contract.breach
    );
}

fn rfc(ms: i64) -> String {
    vantage_coordinator::alert::rfc3339(ms)
}

fn main() {
    let big = env_or("VANTAGE_BENCH_CHECKS", 1000);
    let probes = env_or("VANTAGE_BENCH_PROBES", 6);
    let days = env_or("VANTAGE_BENCH_DAYS", 30) as i64;
    let minute_hours = env_or("VANTAGE_BENCH_MINUTE_HOURS", 6) as i64;
    let requests = env_or("VANTAGE_BENCH_REQUESTS", 2000);
    let shape = Shape::new(big, probes, days, minute_hours);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let db = data.join("vantage.db");
    println!(
        "sla: {} checks ({big} of one vendor, {TYPICAL_VENDORS} vendors of {TYPICAL_CHECKS}), {probes} probes in {} regions, one run each 10 s, {days} days",
        shape.checks.len(),
        REGIONS.len()
    );
    let g = generate(&db, &shape);
    if let Some(keep) = std::env::var_os("VANTAGE_BENCH_KEEP") {
        std::fs::copy(&db, &keep).expect("keep a copy of the generated store");
        println!("  (a copy kept at {})", Path::new(&keep).display());
    }
    let size = std::fs::metadata(&db).map_or(0, |m| m.len());
    println!(
        "  generated in {:.0} s: {} hourly + {} daily rollup rows, {} minute rows ({} h at each end), {:.2} GB on disk",
        g.secs,
        g.hour_rows,
        g.day_rows,
        g.minute_rows,
        minute_hours,
        size as f64 / 1e9
    );

    let last_30 = Window::new(shape.now_ms - days * DAY, shape.now_ms).expect("window");
    // Ragged at both ends: 9 minutes on each side from the minute tier and 50 from the
    // 10-minute one, then hours up to the day boundaries from the hourly tier (how many
    // depends on the time of day).
    let top = floor(shape.now_ms, HOUR) - HOUR;
    let ragged = Window::new(top - days * DAY + HOUR + MIN, top + 59 * MIN).expect("ragged");
    // Whole UTC days, as `report sla --month` asks: the daily tier only.
    let aligned = Window::new(
        floor(shape.now_ms, DAY) - (days - 1) * DAY,
        floor(shape.now_ms, DAY),
    )
    .expect("aligned");
    let windows = [
        ("last 30 days", last_30),
        ("ragged 30 days", ragged),
        ("whole days", aligned),
    ];
    let dropped = drop_file_cache(&db);
    println!(
        "\n30-day SLA report through the library (target < 1000 ms); cold = {}",
        if dropped {
            "database file cache dropped (dd iflag=nocache), new connections"
        } else {
            "new connections (could not drop the file cache)"
        }
    );
    let typical = &shape.vendors[1];
    for (name, window) in windows {
        for vendor in [&shape.vendors[0], typical] {
            drop_file_cache(&db);
            let store = SqliteStore::open(&db, Synchronous::Normal).expect("open");
            let (cold, warm, report) = time_report(&store, &shape, vendor, window);
            print_report(name, vendor, cold, warm, &report);
        }
    }
    for (name, w) in &windows {
        println!("  ({name}: {} to {})", rfc(w.from_ms), rfc(w.to_ms));
    }
    if std::env::var_os("VANTAGE_BENCH_POSTGRES").is_some_and(|v| v == "0") {
        println!("\nPostgreSQL: skipped (VANTAGE_BENCH_POSTGRES=0)");
    } else {
        postgres(&data, &shape, &windows);
    }

    std::fs::write(dir.path().join("checks.toml"), shape.checks_toml()).expect("checks");
    std::fs::write(
        dir.path().join("coordinator.toml"),
        "data_dir = \"data\"\nchecks = [\"checks.toml\"]\n[store]\nsynchronous = \"normal\"\n",
    )
    .expect("config");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        drop_file_cache(&db);
        let server = start(dir.path()).await;
        let mut client = Client::connect(server.addr).await;
        println!(
            "\nthe same over HTTP, GET /api/v1/reports/sla (release coordinator; cold = file cache dropped before the request)"
        );
        for (name, window) in windows {
            for vendor in [&shape.vendors[0], typical] {
                let path = format!(
                    "/api/v1/reports/sla?vendor={}&from={}&to={}",
                    vendor.id, window.from_ms, window.to_ms
                );
                drop_file_cache(&db);
                let t = Instant::now();
                let (status, bytes) = client.get(&path).await;
                let cold = ms_since(t);
                assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
                let mut warm = Vec::new();
                for _ in 0..5 {
                    let t = Instant::now();
                    let (status, _) = client.get(&path).await;
                    warm.push(ms_since(t));
                    assert_eq!(status, StatusCode::OK);
                }
                println!(
                    "  {name:<15} {:<9} cold {cold:>7.1} ms  warm {:>7.1} ms  ({} KB of JSON)",
                    vendor.id,
                    median(warm),
                    bytes.len() / 1024
                );
            }
        }

        println!(
            "\nvendor state queries, {requests} each, back to back on one keep-alive connection (target p99 < 10 ms)"
        );
        for path in [
            "/api/v1/vendors".to_owned(),
            format!("/api/v1/vendors/{}", typical.id),
            format!("/api/v1/vendors/{}", shape.vendors[0].id),
        ] {
            let mut lat = Vec::with_capacity(requests);
            let mut size = 0;
            for _ in 0..requests {
                let t = Instant::now();
                let (status, bytes) = client.get(&path).await;
                lat.push(ms_since(t));
                assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
                size = bytes.len();
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "  GET {path:<30} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} KB)",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                lat[lat.len() - 1],
                size / 1024
            );
        }
        drop(server);
    });
}

/// A coordinator child process; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(dir: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = std::fs::File::create(dir.join("coordinator.log")).expect("log file");
    let child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(dir.join("coordinator.toml"))
        .arg("--listen")
        .arg(addr.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn coordinator");
    let mut server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            panic!(
                "coordinator exited with {status}: {}",
                std::fs::read_to_string(dir.join("coordinator.log")).unwrap_or_default()
            );
        }
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            drop(stream);
            let mut c = Client::connect(addr).await;
            if c.get("/readyz").await.0 == StatusCode::OK {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "coordinator did not start");
        // Polling interval while the process starts.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Self { sender }
    }

    async fn get(&mut self, path: &str) -> (StatusCode, Bytes) {
        self.sender.ready().await.expect("connection ready");
        let req = Request::get(path)
            .header(header::HOST, "vantage")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = self.sender.send_request(req).await.expect("GET");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    }
}
