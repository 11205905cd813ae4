//! A coordinator whose data disk fills up (issue 12): a real filesystem, a small tmpfs under its
//! data directory, with real probes pushing to it.
//!
//! While the disk is full, ingest answers `503` with `Retry-After` (so the probes keep their
//! results spooled), reads go on being served, and once there is room again the coordinator
//! takes results without a restart and the probes deliver what they kept.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use vantage_e2e::fleet::{Fleet, http_get};
use vantage_e2e::tmpfs::Tmpfs;
use vantage_e2e::wait_until;

fn checks(port: u16) -> String {
    format!(
        r#"
[defaults]
interval = "1s"
timeout = "500ms"
retry = "off"
window = "4s"
quorum = 2
region_quorum = 2
regions = 1
for = "1s"
recover_for = "1s"

[[vendor]]
id = "v"
name = "Vendor"

[[check]]
id = "port"
vendor = "v"
kind = "tcp"
target = "127.0.0.1:{port}"
"#
    )
}

fn unix_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A metric's value in the coordinator's `/metrics` (0 when absent).
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn r12_a_full_data_disk_answers_503_serves_reads_and_recovers_without_a_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let fleet = Fleet::new();
    let disk = Tmpfs::mount(&fleet.path().join("coordinator"), 64 << 20);
    let mut coordinator = fleet.coordinator(&checks(port));
    let mut probes: Vec<_> = ["a1", "a2", "a3"]
        .iter()
        .map(|p| fleet.probe(&coordinator, p, "a"))
        .collect();
    let addr = coordinator.addr;
    let vendor_state = || {
        http_get(addr, "/api/v1/vendors/v")
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .map(|v| v["global"]["state"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    wait_until("the vendor operational", Duration::from_secs(60), || {
        vendor_state() == "operational"
    });

    let filled = disk.fill();
    let full_at = time::OffsetDateTime::now_utc();
    let rejected = || {
        let (_, text) = http_get(addr, "/metrics").expect("GET /metrics");
        metric(&text, "vantage_batches_rejected_total{reason=\"store\"}")
    };
    wait_until(
        "pushes refused for the full disk",
        Duration::from_secs(30),
        || rejected() >= 3.0,
    );
    // The probes were told to come back later, and keep their results.
    let plain = regex::Regex::new("\x1b\\[[0-9;]*m").expect("regex");
    wait_until(
        "a probe told 503 and Retry-After",
        Duration::from_secs(30),
        || {
            probes.iter().any(|p| {
                let log = plain.replace_all(&p.log(), "").into_owned();
                log.contains("503 Service Unavailable") && log.contains("retry_in_ms=5000")
            })
        },
    );
    // Reads go on: the API, the page, the metrics.
    for path in [
        "/api/v1/vendors",
        "/api/v1/results?limit=5",
        "/",
        "/metrics",
        "/readyz",
    ] {
        let (status, body) = http_get(addr, path).expect("GET");
        assert_eq!(status, 200, "GET {path} while the disk is full: {body}");
    }
    coordinator.assert_running();
    let full_for = Duration::from_secs(5);
    let until = Instant::now() + full_for;
    while Instant::now() < until {
        // The disk stays full this long: the scenario, not a wait for an event.
        std::thread::sleep(Duration::from_millis(200));
    }
    let freed_at = time::OffsetDateTime::now_utc();
    disk.free();

    // Without a restart, results are stored again, and the ones made while the disk was full
    // arrive from the probes' spools.
    let (from, to) = (unix_ms(full_at), unix_ms(freed_at));
    let expected = 3 * (full_for.as_secs() as usize).saturating_sub(1);
    wait_until(
        "the spooled results of the full period",
        Duration::from_secs(60),
        || {
            coordinator
                .results(&format!("since={from}&until={to}&limit=10000"))
                .len()
                >= expected
        },
    );
    wait_until(
        "the vendor operational again",
        Duration::from_secs(60),
        || vendor_state() == "operational",
    );
    // The probes fell silent while the disk was full (unknown), and that change of state
    // could not be recorded then: it was tried again until it was.
    let (_, text) = http_get(addr, "/metrics").expect("GET /metrics");
    assert!(
        metric(&text, "vantage_store_errors_total{op=\"record_change\"}") >= 1.0,
        "{text}"
    );
    for p in &mut probes {
        p.assert_running();
    }
    coordinator.assert_running();
    println!(
        "full disk: filled with {filled} bytes; {} results of the full period arrived",
        coordinator
            .results(&format!("since={from}&until={to}&limit=10000"))
            .len()
    );
}
