//! Consensus cost benchmark (issue: consensus windows): what judging costs per ingested result
//! with 1,000 checks × 100 probes, next to what storing the same results costs, in one run.
//! It prints figures and asserts nothing timed.
//!
//! ```text
//! cargo bench -p vantage-coordinator --bench consensus
//! ```
//!
//! 1,000 `tcp` checks of 10 vendors; 100 probes in 5 regions; `VANTAGE_BENCH_ROUNDS` (default
//! 6) rounds in which every probe pushes one batch holding one result per check, 10 s apart in
//! result time, a tenth of them failing from round 3 on. It measures:
//! 1. `Engine::observe` on every batch, the pushes of a round arriving 10 ms apart (record the
//!    runs; evaluate the touched checks at most every `COALESCE_MS`, derive vendor states):
//!    µs per result;
//! 2. `Engine::tick` (quarantine over every check's votes, then every check again);
//! 3. `SqliteStore::insert_batches` of the same batches (`synchronous = normal`), the cost the
//!    ingest path pays anyway: consensus as a share of it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use vantage_checks::model::CheckKind;
use vantage_checks::result::{
    CheckResult, Facts, FailureKind, RESULT_SCHEMA_VERSION, Status, Timings,
};
use vantage_coordinator::catalog::Catalogs;
use vantage_coordinator::engine::{Engine, Resume};
use vantage_coordinator::store::{IngestRow, ProbeRecord, SqliteStore, Store, Synchronous};

const CHECKS: usize = 1000;
const PROBES: usize = 100;
const REGIONS: usize = 5;

fn main() {
    let rounds = std::env::var("VANTAGE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(6);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from(
        "[defaults]\ninterval = \"10s\"\ntimeout = \"4s\"\nwindow = \"60s\"\nquorum = 3\nregions = 2\n",
    );
    for v in 0..10 {
        text.push_str(&format!(
            "[[vendor]]\nid = \"v{v}\"\nname = \"Vendor {v}\"\n"
        ));
    }
    for c in 0..CHECKS {
        text.push_str(&format!(
            "[[check]]\nid = \"c{c}\"\nvendor = \"v{}\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\n",
            c % 10
        ));
    }
    let path = dir.path().join("checks.toml");
    std::fs::write(&path, text).expect("write checks");
    let catalogs = Arc::new(Catalogs::load(vec![path]).expect("load checks"));
    let probes: Vec<ProbeRecord> = (0..PROBES)
        .map(|p| ProbeRecord {
            id: format!("p{p}"),
            region: format!("r{}", p % REGIONS),
            labels: BTreeMap::new(),
            created_ms: 0,
            revoked_ms: None,
            last_seen_ms: None,
        })
        .collect();

    let base = OffsetDateTime::now_utc() - time::Duration::seconds(10 * rounds as i64);
    let mut batches: Vec<(i64, Vec<IngestRow>)> = Vec::new();
    for round in 0..rounds {
        let at = base + time::Duration::seconds(10 * round as i64);
        for (p, probe) in probes.iter().enumerate() {
            let rows = (0..CHECKS)
                .map(|c| {
                    let fail = round >= 3 && c % 10 == 0;
                    let started =
                        at + time::Duration::milliseconds(((p * 97 + c * 13) % 10_000) as i64);
                    IngestRow {
                        region: probe.region.clone(),
                        received_ms: 0,
                        result: CheckResult {
                            v: RESULT_SCHEMA_VERSION,
                            check_id: format!("c{c}"),
                            vendor: format!("v{}", c % 10),
                            kind: CheckKind::Tcp,
                            probe_id: probe.id.clone(),
                            boot_id: "b".into(),
                            seq: (round * CHECKS + c) as u64,
                            started_at: started,
                            status: if fail { Status::Fail } else { Status::Ok },
                            failure: fail.then_some(FailureKind::ConnectTimeout),
                            message: fail.then(|| "connecting took longer than 4s".to_owned()),
                            slow: false,
                            retried: false,
                            timings: Timings {
                                total_ms: 3.5,
                                ..Timings::default()
                            },
                            facts: Facts::None,
                            truncated: None,
                            run: None,
                        },
                    }
                })
                .collect();
            let now =
                ((at + time::Duration::seconds(10)).unix_timestamp_nanos() / 1_000_000) as i64;
            batches.push((now, rows));
        }
    }
    let results: usize = batches.iter().map(|(_, b)| b.len()).sum();
    println!(
        "consensus: {CHECKS} checks x {PROBES} probes in {REGIONS} regions, {rounds} rounds = {results} results"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (observe, tick, changes) = rt.block_on(async {
        let (engine, mut rx) = Engine::new(
            Arc::clone(&catalogs),
            Default::default(),
            probes.clone(),
            Resume::default(),
            Arc::new(vantage_coordinator::metrics::Metrics::new()),
        );
        let drain = tokio::spawn(async move {
            let mut n = 0usize;
            while rx.recv().await.is_some() {
                n += 1;
            }
            n
        });
        let start = Instant::now();
        for (now, rows) in &batches {
            engine.observe(rows, *now).await;
        }
        let last = batches.last().map_or(0, |(n, _)| *n);
        engine.flush(last + 1000).await;
        let observe = start.elapsed();
        let mut ticks = Vec::new();
        for i in 0..5 {
            let t = Instant::now();
            engine.tick(last + i * 1000, None).await;
            ticks.push(t.elapsed());
        }
        ticks.sort();
        let failing = engine.failing_checks().len();
        drop(engine);
        let changes = drain.await.unwrap_or(0);
        println!(
            "  failing checks at the end: {failing} (expected {})",
            CHECKS / 10
        );
        (observe, ticks[ticks.len() / 2], changes)
    });

    let store =
        SqliteStore::open(&dir.path().join("bench.db"), Synchronous::Normal).expect("store");
    let start = Instant::now();
    for (_, rows) in &batches {
        store
            .insert_batches(std::slice::from_ref(rows))
            .expect("insert");
    }
    let insert = start.elapsed();

    let per = |d: Duration| d.as_secs_f64() * 1e6 / results as f64;
    println!(
        "  observe (record every batch, evaluate coalesced): {:.2} us/result ({:.0} results/s), {changes} changes sent",
        per(observe),
        results as f64 / observe.as_secs_f64()
    );
    println!(
        "  tick (quarantine + every check): {:.1} ms median of 5",
        tick.as_secs_f64() * 1e3
    );
    println!(
        "  baseline, SqliteStore::insert_batches of the same batches (synchronous = normal): {:.2} us/result",
        per(insert)
    );
    println!(
        "  consensus / store cost per result: {:.2}",
        observe.as_secs_f64() / insert.as_secs_f64()
    );
}
