//! Status page benchmark: what the page costs to serve with 20 checks (5 vendors) and 6 probes
//! in 3 regions, and a full day of per-minute rollups behind every chart. It prints figures and
//! asserts nothing timed.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p vantage-coordinator --bench page
//! ```
//!
//! It fills a fresh store with one result per minute per (probe, check) over the last 24 hours
//! (172,800 results, with one vendor failing in one region for the last minutes, so that an
//! incident with its evidence is on the page), starts the built `vantage-coordinator` on it,
//! waits for the incident, and then times, over HTTP on loopback, `VANTAGE_BENCH_PAGES`
//! (default 50) sequential requests each of: the overview (`GET /`: grid, incident, probes, the
//! last hour of 20 charts), its live partial (`GET /?partial=main`), and a vendor page with 4
//! checks (`GET /vendors/{id}`: the last hour and the last day of each); each plain and with
//! `Accept-Encoding: gzip`. It also times the store's rollup reads behind the charts alone.

use std::time::{Duration, Instant};

use http::StatusCode;
use time::OffsetDateTime;
use vantage_checks::result::{FailureKind, Status};
use vantage_coordinator::store::{IngestRow, SqliteStore, Store, Synchronous};

#[path = "../tests/support/mod.rs"]
mod support;

use support::{Coordinator, get, result};

const VENDORS: usize = 5;
const CHECKS_PER_VENDOR: usize = 4;
const PROBES: [(&str, &str); 6] = [
    ("a1", "a"),
    ("a2", "a"),
    ("b1", "b"),
    ("b2", "b"),
    ("c1", "c"),
    ("c2", "c"),
];
/// Minutes of history.
const MINUTES: i64 = 24 * 60;
/// The last minutes in which vendor-0 fails in region b.
const FAILING_MINUTES: i64 = 5;

fn checks_toml() -> String {
    let mut s = String::from(
        "[defaults]\ninterval = \"60s\"\nwindow = \"150s\"\nquorum = 3\nregions = 2\nregion_quorum = 2\nfor = \"1s\"\nrecover_for = \"1s\"\n",
    );
    for v in 0..VENDORS {
        s.push_str(&format!(
            "\n[[vendor]]\nid = \"vendor-{v}\"\nname = \"Vendor {v}\"\n"
        ));
        for c in 0..CHECKS_PER_VENDOR {
            s.push_str(&format!(
                "\n[[check]]\nid = \"check-{v}-{c}\"\nvendor = \"vendor-{v}\"\nkind = \"tcp\"\ntarget = \"192.0.2.{}:443\"\n",
                c + 1
            ));
        }
    }
    s
}

fn fill(store: &SqliteStore) -> usize {
    let now = OffsetDateTime::now_utc();
    let mut seq = 0u64;
    let mut total = 0;
    for m in (0..MINUTES).rev() {
        let at = now - time::Duration::minutes(m) - time::Duration::seconds(5);
        let mut batch = Vec::new();
        for (probe, region) in PROBES {
            for v in 0..VENDORS {
                for c in 0..CHECKS_PER_VENDOR {
                    seq += 1;
                    let check = format!("check-{v}-{c}");
                    let vendor = format!("vendor-{v}");
                    let mut r = result(probe, seq, &check, &vendor, at);
                    r.boot_id = format!("{probe}-bench");
                    r.timings.total_ms = 10.0 + (seq % 97) as f64 * 1.7;
                    let fail = v == 0 && region == "b" && m < FAILING_MINUTES;
                    r.status = if fail { Status::Fail } else { Status::Ok };
                    r.failure = fail.then_some(FailureKind::ConnectTimeout);
                    r.message = fail.then(|| format!("{probe}: connect timed out"));
                    batch.push(IngestRow {
                        region: region.to_owned(),
                        received_ms: support::ms(at),
                        result: r,
                    });
                }
            }
        }
        total += batch.len();
        store
            .insert_results(&batch)
            .expect("insert a minute of results");
    }
    total
}

/// What the pages' rollup reads cost on their own, straight from the store.
fn store_reads(store: &SqliteStore) {
    let now = support::ms(OffsetDateTime::now_utc());
    let runs = 10;
    let t = Instant::now();
    let mut rows = 0;
    for _ in 0..runs {
        for v in 0..VENDORS {
            for c in 0..CHECKS_PER_VENDOR {
                rows += store
                    .rollups(&format!("check-{v}-{c}"), now - 3_600_000, now)
                    .expect("rollups")
                    .len();
            }
        }
    }
    println!(
        "  store: the last hour of 20 checks' rollups: {:.1} ms ({} rows)",
        t.elapsed().as_secs_f64() * 1000.0 / f64::from(runs),
        rows / runs as usize
    );
    let t = Instant::now();
    let mut rows = 0;
    for _ in 0..runs {
        for c in 0..CHECKS_PER_VENDOR {
            rows += store
                .rollups(&format!("check-0-{c}"), now - 86_400_000, now)
                .expect("rollups")
                .len();
        }
    }
    println!(
        "  store: the last day of 4 checks' rollups: {:.1} ms ({} rows)",
        t.elapsed().as_secs_f64() * 1000.0 / f64::from(runs),
        rows / runs as usize
    );
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

async fn time_path(c: &Coordinator, path: &str, gzip: bool, n: usize) {
    let headers: &[(&str, &str)] = if gzip {
        &[("accept-encoding", "gzip")]
    } else {
        &[]
    };
    let mut ms = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = get(c.addr, path, None, headers).await.expect("GET");
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status, StatusCode::OK, "{path}");
        bytes = r.body.len();
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "  {path:<20} {:<5} p50 {:>6.1} ms  p99 {:>6.1} ms  mean {:>6.1} ms  {:>7} bytes",
        if gzip { "gzip" } else { "plain" },
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.iter().sum::<f64>() / n as f64,
        bytes
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("VANTAGE_BENCH_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(50);
    let mut c = Coordinator::new("", Some(&checks_toml()));
    for (probe, region) in PROBES {
        c.add_probe(probe, region);
    }
    let t = Instant::now();
    let store = SqliteStore::open(&c.path("data").join("vantage.db"), Synchronous::Normal)
        .expect("open the store");
    let total = fill(&store);
    store_reads(&store);
    drop(store);
    println!(
        "page: {} checks of {VENDORS} vendors, {} probes in 3 regions; {total} results over {} h stored in {:.1}s",
        VENDORS * CHECKS_PER_VENDOR,
        PROBES.len(),
        MINUTES / 60,
        t.elapsed().as_secs_f64()
    );
    c.start().await;
    // The engine resumes from the stored results; wait for vendor-0's incident.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(c.addr, "/api/v1/incidents?open=true", None, &[])
            .await
            .expect("incidents");
        if r.json().as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no incident opened:\n{}",
            c.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Warm the page cache of SQLite and the process.
    for path in ["/", "/vendors/vendor-0"] {
        get(c.addr, path, None, &[]).await.expect("warm up");
    }
    println!("{n} sequential requests each, over HTTP on loopback:");
    for path in ["/", "/?partial=main", "/vendors/vendor-0"] {
        for gzip in [false, true] {
            time_path(&c, path, gzip, n).await;
        }
    }
}
