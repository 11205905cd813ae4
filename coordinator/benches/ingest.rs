//! Ingest benchmark (ARCHITECTURE §7): sustained results per second through the real
//! coordinator, against the raw batched-insert rate of the same rows into the same schema on the
//! same machine, in one run. It prints figures and asserts nothing timed.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p vantage-coordinator --bench ingest
//! ```
//!
//! `VANTAGE_BENCH_PROBES` (default 20), `VANTAGE_BENCH_BATCH` (200) and `VANTAGE_BENCH_RESULTS`
//! (200000) change the shape. For each `synchronous` setting (`full`, then `normal`) it:
//! 1. starts the release `vantage-coordinator` as a child process on loopback with a fresh data
//!    directory and a catalog of the 25 checks the results report on (so the consensus engine
//!    records and evaluates every result, as in production), registers the probes with
//!    `probe add`, and has every probe POST its batches
//!    back to back on its own keep-alive connection, all probes at once: results/s over the
//!    whole run, and p50/p99 of the time from sending a batch to its acknowledgement;
//! 2. inserts the same rows, in batches of the same size, single-threaded, with
//!    `SqliteStore::insert_batches` on a fresh file (the store's own path, rollups included);
//! 3. inserts the same rows with a bare prepared `INSERT` into `results`, one transaction per
//!    batch, JSON bodies encoded beforehand (the floor: no rollups, no encoding).
//!
//! Then the same into PostgreSQL (a server the bench starts, as the tests do; skip it with
//! `VANTAGE_BENCH_POSTGRES=0`): HTTP ingest through one coordinator and through three sharing
//! the store (probes spread over them, each coordinator's engine following the store's feed),
//! `PostgresStore::insert_batches`, and a raw binary `COPY` of the same rows into `results`.
//! `VANTAGE_BENCH_SQLITE=0` skips the SQLite part.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use vantage_checks::model::CheckKind;
use vantage_checks::result::{
    CheckResult, Facts, FailureKind, HttpFacts, RESULT_SCHEMA_VERSION, Status, Timings,
};
use vantage_checks::wire::{BatchAck, ResultBatch};
use vantage_coordinator::store::{IngestRow, SqliteStore, Store, Synchronous};

const BIN: &str = env!("CARGO_BIN_EXE_vantage-coordinator");

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn main() {
    let probes = env_or("VANTAGE_BENCH_PROBES", 20);
    let batch = env_or("VANTAGE_BENCH_BATCH", 200);
    let total = env_or("VANTAGE_BENCH_RESULTS", 200_000);
    let per_probe = total.div_ceil(probes).div_ceil(batch);
    let total = probes * per_probe * batch;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ingest: {probes} probes x {per_probe} batches x {batch} results = {total} results; {cores} cores"
    );
    let work = Workload::new(probes, per_probe, batch);
    println!(
        "        {:.0} bytes of JSON per result on the wire",
        work.bodies.iter().flatten().map(Bytes::len).sum::<usize>() as f64 / total as f64
    );
    let sqlite = std::env::var_os("VANTAGE_BENCH_SQLITE").is_none_or(|v| v != "0");
    if !sqlite {
        println!("\nSQLite: skipped (VANTAGE_BENCH_SQLITE=0)");
    }
    for sync in [Synchronous::Full, Synchronous::Normal]
        .into_iter()
        .filter(|_| sqlite)
    {
        let label = match sync {
            Synchronous::Full => "full",
            Synchronous::Normal => "normal",
        };
        println!("\nsynchronous = {label}");
        let ingest = ingest_over_http(&work, label);
        println!(
            "  HTTP ingest, coordinator child    {:>9.0} results/s  ack p50 {:>6.1} ms  p99 {:>6.1} ms  ({:.2}s, {} answered 429 and were resent)",
            ingest.rate, ingest.p50_ms, ingest.p99_ms, ingest.secs, ingest.shed
        );
        println!(
            "  consensus running: {} of {} acks named failing checks",
            ingest.acks_failing,
            work.bodies.iter().map(Vec::len).sum::<usize>()
        );
        assert!(
            ingest.acks_failing > 0,
            "the consensus engine judged no run: is the checks catalog loaded?"
        );
        let store = store_inserts(&work, sync);
        println!("  SqliteStore::insert_batches        {store:>9.0} results/s  (1 thread)");
        let bare = bare_inserts(&work, sync);
        println!("  bare rusqlite INSERT               {bare:>9.0} results/s  (1 thread)");
        println!(
            "  ratio ingest/store {:.2}, ingest/bare {:.2}  (target >= 0.5)",
            ingest.rate / store,
            ingest.rate / bare
        );
    }
    if std::env::var_os("VANTAGE_BENCH_POSTGRES").is_some_and(|v| v == "0") {
        println!("\nPostgreSQL: skipped (VANTAGE_BENCH_POSTGRES=0)");
        return;
    }
    postgres(&work);
}

/// The same workload into PostgreSQL (a server of the bench's own, `fsync = off`): through one
/// coordinator and through three sharing the store, against the store's own inserts and a raw
/// binary `COPY` of the same rows into the same table.
fn postgres(work: &Workload) {
    let pg = vantage_e2e::postgres::Postgres::start();
    println!("\nPostgreSQL (fsync off; one server on this machine)");
    let mut rates = Vec::new();
    for n in [1, 3] {
        let url = pg.create_database(&format!("bench_http_{n}"));
        let ingest = ingest_over_http_with(work, &format!("url = \"{url}\""), n);
        rates.push(ingest.rate);
        println!(
            "  HTTP ingest, {n} coordinator(s)      {:>9.0} results/s  ack p50 {:>6.1} ms  p99 {:>6.1} ms  ({:.2}s, {} answered 429 and were resent)",
            ingest.rate, ingest.p50_ms, ingest.p99_ms, ingest.secs, ingest.shed
        );
        assert!(
            ingest.acks_failing > 0,
            "the consensus engine judged no run"
        );
    }
    let url = pg.create_database("bench_store");
    let store = vantage_coordinator::store::PostgresStore::open(&url, None).expect("open");
    let batches = work.rows();
    let started = Instant::now();
    let mut inserted = 0;
    for b in &batches {
        let out = store
            .insert_batches(std::slice::from_ref(b))
            .expect("insert");
        inserted += out.iter().map(|o| o.inserted).sum::<u64>();
    }
    let store_rate = work.total as f64 / started.elapsed().as_secs_f64();
    assert_eq!(inserted, work.total as u64);
    drop(store);
    println!("  PostgresStore::insert_batches      {store_rate:>9.0} results/s  (1 thread)");
    let copy = raw_copy(work, &pg.create_database("bench_copy"));
    println!("  raw binary COPY into results       {copy:>9.0} results/s  (1 connection)");
    println!(
        "  ratio ingest/COPY: 1 coordinator {:.2}, 3 coordinators {:.2}  (target >= 0.5)",
        rates[0] / copy,
        rates[1] / copy
    );
}

/// One row of `results`, its columns in order.
type Columns = (
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    &'static str,
    Option<&'static str>,
    f64,
    String,
);

/// Every batch's rows as the bare inserts write them: columns in order, bodies encoded.
fn columns(work: &Workload) -> Vec<Vec<Columns>> {
    let received_ms = unix_ms(OffsetDateTime::now_utc());
    work.rows()
        .into_iter()
        .map(|rows| {
            rows.into_iter()
                .map(|row| {
                    let r = &row.result;
                    (
                        r.probe_id.clone(),
                        r.boot_id.clone(),
                        r.seq as i64,
                        r.check_id.clone(),
                        r.vendor.clone(),
                        row.region.clone(),
                        unix_ms(r.started_at),
                        received_ms,
                        r.status.as_label(),
                        r.failure.map(|f| f.as_label()),
                        r.timings.total_ms,
                        serde_json::to_string(r).expect("encode"),
                    )
                })
                .collect()
        })
        .collect()
}

/// A binary `COPY` of the rows into `results`, one transaction per batch (the floor: no
/// rollups, no duplicate check, bodies encoded beforehand).
fn raw_copy(work: &Workload, url: &str) -> f64 {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};
    // The store creates the schema.
    drop(vantage_coordinator::store::PostgresStore::open(url, None).expect("schema"));
    let batches = columns(work);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let types = [
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::FLOAT8,
            Type::TEXT,
        ];
        let started = Instant::now();
        for b in &batches {
            let tx = client.transaction().await.expect("begin");
            let sink = tx
                .copy_in(
                    "COPY results (probe_id, boot_id, seq, check_id, vendor, region, started_ms, received_ms, status, failure, total_ms, body) FROM STDIN BINARY",
                )
                .await
                .expect("copy");
            let writer = BinaryCopyInWriter::new(sink, &types);
            let mut writer = std::pin::pin!(writer);
            for r in b {
                let row: [&(dyn ToSql + Sync); 12] = [
                    &r.0, &r.1, &r.2, &r.3, &r.4, &r.5, &r.6, &r.7, &r.8, &r.9, &r.10, &r.11,
                ];
                writer.as_mut().write(&row).await.expect("row");
            }
            writer.finish().await.expect("finish");
            tx.commit().await.expect("commit");
        }
        work.total as f64 / started.elapsed().as_secs_f64()
    })
}

/// Every probe's batches, as result values and as encoded request bodies.
struct Workload {
    probes: Vec<String>,
    results: Vec<Vec<Vec<CheckResult>>>,
    bodies: Vec<Vec<Bytes>>,
    regions: Vec<String>,
    total: usize,
}

impl Workload {
    fn new(probes: usize, per_probe: usize, batch: usize) -> Self {
        // Fresh runs, so they fall inside the consensus window (10 minutes here) and vote, as live
        // results do: each check's runs a second apart (its interval; the coordinator refuses
        // more runs a minute than that allows), the 25 checks a millisecond apart, the last a few
        // seconds ago.
        let runs_per_check = (per_probe * batch).div_ceil(25) as i64;
        let start = OffsetDateTime::now_utc() - time::Duration::seconds(runs_per_check + 5);
        let ids: Vec<String> = (0..probes).map(|p| format!("probe-{p:02}")).collect();
        let regions: Vec<String> = (0..probes).map(|p| format!("region-{}", p % 4)).collect();
        let results: Vec<Vec<Vec<CheckResult>>> = ids
            .iter()
            .map(|id| {
                (0..per_probe)
                    .map(|b| {
                        (0..batch)
                            .map(|i| {
                                let seq = (b * batch + i) as u64;
                                let at = start
                                    + time::Duration::seconds((seq / 25) as i64)
                                    + time::Duration::milliseconds((seq % 25) as i64);
                                result(id, seq, at)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let bodies = results
            .iter()
            .map(|batches| {
                batches
                    .iter()
                    .map(|rs| {
                        Bytes::from(
                            serde_json::to_vec(&ResultBatch {
                                results: rs.clone(),
                                counters: None,
                            })
                            .expect("encode a batch"),
                        )
                    })
                    .collect()
            })
            .collect();
        Self {
            probes: ids,
            results,
            bodies,
            regions,
            total: probes * per_probe * batch,
        }
    }

    /// The rows of every batch, as the store receives them.
    fn rows(&self) -> Vec<Vec<IngestRow>> {
        let received_ms = unix_ms(OffsetDateTime::now_utc());
        self.results
            .iter()
            .zip(&self.regions)
            .flat_map(|(batches, region)| {
                batches.iter().map(move |rs| {
                    rs.iter()
                        .map(|r| IngestRow {
                            region: region.clone(),
                            received_ms,
                            result: r.clone(),
                        })
                        .collect()
                })
            })
            .collect()
    }
}

/// The catalog the coordinator serves: the 25 checks of 5 vendors that [`result`] reports on, so
/// every ingested result is also recorded and evaluated by the consensus engine, as in production.
fn checks_toml() -> String {
    let mut t = String::from(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\nretry = \"off\"\nwindow = \"10m\"\nquorum = 3\nregions = 2\n",
    );
    for v in 0..5 {
        t.push_str(&format!("\n[[vendor]]\nid = \"vendor-{v}\"\n"));
    }
    for c in 0..25 {
        t.push_str(&format!(
            "\n[[check]]\nid = \"check-{c:02}\"\nvendor = \"vendor-{}\"\nkind = \"http\"\nurl = \"https://www.example.com/assets/{c}.css\"\n",
            c % 5
        ));
    }
    t
}

/// A plausible HTTP check result: 25 checks of 5 vendors, one run in ten failing.
fn result(probe: &str, seq: u64, at: OffsetDateTime) -> CheckResult {
    let check = seq % 25;
    let fail = seq.is_multiple_of(10);
    CheckResult {
        v: RESULT_SCHEMA_VERSION,
        check_id: format!("check-{check:02}"),
        vendor: format!("vendor-{}", check % 5),
        kind: CheckKind::Http,
        probe_id: probe.to_owned(),
        boot_id: "3f2a9c1e-boot".to_owned(),
        seq,
        started_at: at,
        status: if fail { Status::Fail } else { Status::Ok },
        failure: fail.then_some(FailureKind::HttpStatus),
        message: fail.then(|| "status 503, expected 200".to_owned()),
        slow: false,
        retried: false,
        timings: Timings {
            resolve_ms: Some(0.8),
            connect_ms: Some(4.25),
            tls_ms: Some(9.5),
            first_byte_ms: Some(31.0 + (seq % 17) as f64),
            total_ms: 42.0 + (seq % 97) as f64,
        },
        facts: Facts::Http(HttpFacts {
            url: format!("https://www.example.com/assets/{check}.css"),
            status: Some(if fail { 503 } else { 200 }),
            http_version: Some("HTTP/2".to_owned()),
            content_encoding: Some("br".to_owned()),
            bytes: 18_304,
            ..HttpFacts::default()
        }),
        truncated: None,
        run: None,
    }
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

struct IngestFigures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    secs: f64,
    shed: usize,
    /// Acknowledgements that named failing checks: proof the consensus engine judged the runs.
    acks_failing: usize,
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

fn register(dir: &Path, config: &Path, id: &str, region: &str) -> String {
    let token_file = dir.join(format!("{id}.token"));
    let out = Command::new(BIN)
        .args(["probe", "add", id, "--region", region, "--token-file"])
        .arg(&token_file)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run probe add");
    assert!(
        out.status.success(),
        "probe add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&token_file)
        .expect("token file")
        .trim()
        .to_owned()
}

async fn start(dir: &Path, config: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = std::fs::File::create(dir.join("coordinator.log")).expect("log file");
    let child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(addr.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn coordinator");
    let mut server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            panic!(
                "coordinator exited with {status}: {}",
                std::fs::read_to_string(dir.join("coordinator.log")).unwrap_or_default()
            );
        }
        if healthy(addr).await {
            return server;
        }
        assert!(Instant::now() < deadline, "coordinator did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn healthy(addr: SocketAddr) -> bool {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(conn);
    let req = Request::get("/healthz")
        .header(header::HOST, "vantage")
        .body(Full::new(Bytes::new()))
        .expect("request");
    sender
        .send_request(req)
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
}

fn ingest_over_http(work: &Workload, sync: &str) -> IngestFigures {
    ingest_over_http_with(work, &format!("synchronous = \"{sync}\""), 1)
}

/// HTTP ingest into `coordinators` coordinators sharing the store that `store_toml` (the
/// `[store]` table's body) names, the probes spread over them.
fn ingest_over_http_with(work: &Workload, store_toml: &str, coordinators: usize) -> IngestFigures {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("coordinator.toml");
    let checks = dir.path().join("checks.toml");
    std::fs::write(&checks, checks_toml()).expect("write checks");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\nchecks = [{checks:?}]\n[store]\n{store_toml}\n[limits]\nmax_result_age = \"1d\"\n"
        ),
    )
    .expect("write config");
    let tokens: Vec<String> = work
        .probes
        .iter()
        .zip(&work.regions)
        .map(|(id, region)| register(dir.path(), &config, id, region))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut servers = Vec::with_capacity(coordinators);
        for i in 0..coordinators {
            let own = dir.path().join(format!("c{i}"));
            std::fs::create_dir_all(&own).expect("coordinator dir");
            servers.push(start(&own, &config).await);
        }
        let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (bodies, token)) in work.bodies.iter().zip(tokens).enumerate() {
            let bodies = bodies.clone();
            let addr = addrs[i % addrs.len()];
            tasks.spawn(async move { one_probe(addr, token, bodies).await });
        }
        let mut latencies = Vec::with_capacity(work.bodies.iter().map(Vec::len).sum());
        let (mut accepted, mut shed, mut acks_failing) = (0, 0, 0);
        while let Some(done) = tasks.join_next().await {
            let (lat, acc, s, f) = done.expect("probe task");
            latencies.extend(lat);
            accepted += acc;
            shed += s;
            acks_failing += f;
        }
        let secs = started.elapsed().as_secs_f64();
        drop(servers);
        assert_eq!(
            accepted, work.total as u64,
            "every result is accepted exactly once"
        );
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
        IngestFigures {
            rate: work.total as f64 / secs,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            secs,
            shed,
            acks_failing,
        }
    })
}

/// One probe sending its batches back to back on one keep-alive connection: the latency of
/// each acknowledgement (ms), results accepted, 429s resent, and acks naming failing checks.
async fn one_probe(
    addr: SocketAddr,
    token: String,
    bodies: Vec<Bytes>,
) -> (Vec<f64>, u64, usize, usize) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let (mut latencies, mut accepted, mut shed, mut failing) = (Vec::new(), 0, 0, 0);
    for body in bodies {
        loop {
            sender.ready().await.expect("connection ready");
            let req = Request::builder()
                .method(Method::POST)
                .uri("/api/v1/results")
                .header(header::HOST, "vantage")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .expect("request");
            let sent = Instant::now();
            let resp = sender.send_request(req).await.expect("POST");
            let status = resp.status();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            if status == StatusCode::TOO_MANY_REQUESTS {
                shed += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(
                status,
                StatusCode::OK,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            let ack: BatchAck = serde_json::from_slice(&bytes).expect("ack");
            accepted += ack.accepted;
            failing += usize::from(!ack.failing_checks.is_empty());
            break;
        }
    }
    (latencies, accepted, shed, failing)
}

fn store_inserts(work: &Workload, sync: Synchronous) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("store.db"), sync).expect("open store");
    let batches: Vec<Vec<IngestRow>> = work.rows();
    let started = Instant::now();
    let mut inserted = 0;
    for b in &batches {
        let out = store
            .insert_batches(std::slice::from_ref(b))
            .expect("insert");
        inserted += out.iter().map(|o| o.inserted).sum::<u64>();
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(inserted, work.total as u64);
    work.total as f64 / secs
}

fn bare_inserts(work: &Workload, sync: Synchronous) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("bare.db");
    // The store creates the schema; then a plain connection does the inserting.
    drop(SqliteStore::open(&path, sync).expect("create schema"));
    let mut conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {};",
        match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    ))
    .expect("pragmas");
    let batches = columns(work);
    let started = Instant::now();
    for b in &batches {
        let tx = conn.transaction().expect("begin");
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO results (probe_id, boot_id, seq, check_id, vendor, region, started_ms, received_ms, status, failure, total_ms, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .expect("prepare");
            for r in b {
                insert
                    .execute(rusqlite::params![
                        r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11
                    ])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    work.total as f64 / started.elapsed().as_secs_f64()
}
