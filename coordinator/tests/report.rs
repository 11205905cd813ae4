//! End-to-end tests of SLA reports: `GET /api/v1/reports/sla` on a real coordinator process,
//! and `vantage-coordinator report sla` on the same data directory, which must agree.
//! The numbers themselves are pinned by the hand-computed fixture in `src/report/tests.rs`;
//! here the results go in over HTTP and come back out through the API and the CLI.

use std::process::Command;

use http::{Method, StatusCode};
use hyper::body::Bytes;
use time::OffsetDateTime;
use vantage_checks::result::{CheckResult, FailureKind, Status};

mod support;

use support::*;

const TOKEN: &str = "reader-token-for-the-report-tests-01";

const CHECKS: &str = r#"
[[vendor]]
id = "acme"
name = "Acme CDN"
sla = { availability = "99.5%", latency_p95 = "400ms" }

[[vendor]]
id = "quiet"
name = "Quiet"

[[check]]
id = "www"
vendor = "acme"
kind = "tcp"
target = "192.0.2.1:443"

[[check]]
id = "purge-api"
vendor = "acme"
role = "control"
kind = "tcp"
target = "192.0.2.2:443"
"#;

fn run(probe: &str, seq: u64, check: &str, at: OffsetDateTime, status: Status) -> CheckResult {
    let mut r = result(probe, seq, check, "acme", at);
    r.status = status;
    r.failure = (status == Status::Fail).then_some(FailureKind::ConnectTimeout);
    r.message = None;
    // 40 ms: histogram bucket 11, whose upper bound is 2^5.5 = 45.25 ms.
    r.timings.total_ms = 40.0;
    r
}

fn cli(c: &Coordinator, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["report", "sla"])
        .args(args)
        .args(c.config_args())
        .arg("--checks")
        .arg(c.path("checks.toml"))
        .output()
        .expect("run report sla")
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "report sla failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn sla_report_over_the_api_and_the_cli_agree_and_refuse_bad_windows() {
    // Reads need the reader token once one is set: reports too.
    let mut c = Coordinator::new("[api]\ntoken_file = \"api.token\"\n", Some(CHECKS));
    std::fs::write(c.path("api.token"), format!("{TOKEN}\n")).expect("token file");
    let eu = c.add_probe("fra-1", "eu-west");
    let us = c.add_probe("iad-1", "us-east");
    c.start().await;
    let now = OffsetDateTime::now_utc();
    let base = now - time::Duration::minutes(50);
    let minute = |m: i64| base + time::Duration::minutes(m);
    // eu: 10 runs of www, 2 failed, 1 probe error; 2 runs of the control check, 1 failed.
    let mut batch: Vec<CheckResult> = (0..10)
        .map(|i| {
            let status = match i {
                3 | 7 => Status::Fail,
                5 => Status::ProbeError,
                _ => Status::Ok,
            };
            run("fra-1", i, "www", minute(i as i64), status)
        })
        .collect();
    batch.push(run("fra-1", 10, "purge-api", minute(1), Status::Fail));
    batch.push(run("fra-1", 11, "purge-api", minute(2), Status::Ok));
    assert_eq!(post_batch(c.addr, &eu, &batch).await.ack().accepted, 12);
    // us: 5 runs of www, all good.
    let batch: Vec<CheckResult> = (0..5)
        .map(|i| run("iad-1", i, "www", minute(20 + i as i64), Status::Ok))
        .collect();
    assert_eq!(post_batch(c.addr, &us, &batch).await.ack().accepted, 5);

    // The window ends before either report is made, so nothing in it depends on when: the
    // API's and the CLI's must be equal but for `generated_at`.
    let (from, to) = (rfc(now - time::Duration::hours(2)), rfc(now));
    let path = format!("/api/v1/reports/sla?vendor=acme&from={from}&to={to}");
    let reply = get(c.addr, &path, Some(TOKEN), &[]).await.expect("report");
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let api = reply.json();
    // Data plane (www): 15 runs, 1 probe error, 14 valid, 2 failed, 12 good.
    let g = &api["global"];
    assert_eq!(
        (
            &g["runs"],
            &g["valid"],
            &g["good"],
            &g["failed"],
            &g["probe_errors"]
        ),
        (&15.into(), &14.into(), &12.into(), &2.into(), &1.into()),
        "{g}"
    );
    assert_eq!(g["availability"], 12.0 / 14.0);
    assert_eq!(g["latency_ms"]["p95"], 2f64.powf(5.5));
    assert_eq!(g["contract"]["breach"], true);
    assert_eq!(g["contract"]["broken"], serde_json::json!(["availability"]));
    let eu_r = &api["regions"]["eu-west"];
    assert_eq!(
        (&eu_r["valid"], &eu_r["good"]),
        (&9.into(), &7.into()),
        "{eu_r}"
    );
    assert_eq!(api["regions"]["us-east"]["availability"], 1.0);
    assert_eq!(api["roles"]["control"]["availability"], 0.5);
    assert_eq!(api["checks"][0]["check"], "www");
    assert_eq!(api["sla"]["availability"], 0.995);
    assert_eq!(api["sla"]["latency_p95_ms"], 400.0);

    // Without a window: the last 30 days, which hold the same runs.
    let reply = get(c.addr, "/api/v1/reports/sla?vendor=acme", Some(TOKEN), &[])
        .await
        .expect("default window");
    let dflt = reply.json();
    assert_eq!(dflt["global"]["runs"], 15);
    let span_ms = |r: &serde_json::Value| r["window_minutes"].as_f64().expect("minutes");
    assert_eq!(span_ms(&dflt), 30.0 * 24.0 * 60.0);

    // The CLI, on the same store, while the coordinator runs.
    let out = cli(
        &c,
        &[
            "--vendor", "acme", "--from", &from, "--to", &to, "--format", "json",
        ],
    );
    let mut from_cli: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("CLI JSON");
    let mut from_api = api.clone();
    for v in [&mut from_cli, &mut from_api] {
        v["generated_at"] = serde_json::Value::Null;
    }
    assert_eq!(from_cli, from_api, "the CLI's JSON is the API's");

    let csv = stdout(&cli(
        &c,
        &[
            "--vendor", "acme", "--from", &from, "--to", &to, "--format", "csv",
        ],
    ));
    let lines: Vec<&str> = csv.lines().collect();
    // Header, global, two regions, three roles, two checks.
    assert_eq!(lines.len(), 1 + 1 + 2 + 3 + 2, "{csv}");
    assert!(
        lines[0].starts_with("vendor,from,to,scope,name,runs,valid,good"),
        "{csv}"
    );
    let global: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(&global[3..8], ["global", "", "15", "14", "12"], "{csv}");
    assert_eq!(global[11], (12.0f64 / 14.0).to_string(), "{csv}");
    assert_eq!(global[15], "true", "breach: {csv}");
    assert!(lines[2].contains(",region,eu-west,"), "{csv}");

    let table = stdout(&cli(
        &c,
        &["--vendor", "acme", "--from", &from, "--to", &to],
    ));
    for want in [
        "SLA report for Acme CDN (acme)",
        "contract  availability 99.5000%, latency p95 400 ms",
        "verdict   BREACH (availability)",
        "eu-west",
        "85.7143%",
        "MINUTES IN STATE",
        "INCIDENTS (0)",
    ] {
        assert!(
            table.contains(want),
            "the table should show {want:?}:\n{table}"
        );
    }

    // A month with no data is an empty report, not an error.
    let month = stdout(&cli(
        &c,
        &["--vendor", "acme", "--month", "2020-02", "--format", "json"],
    ));
    let month: serde_json::Value = serde_json::from_str(&month).expect("month JSON");
    assert_eq!(month["from"], "2020-02-01T00:00:00Z");
    assert_eq!(month["to"], "2020-03-01T00:00:00Z");
    assert_eq!(month["global"]["runs"], 0);
    assert_eq!(month["global"]["contract"]["breach"], false);

    // CLI refusals.
    for (args, want) in [
        (
            vec!["--vendor", "nope"],
            "no vendor `nope` in the check files (known: acme, quiet)",
        ),
        (
            vec!["--vendor", "acme", "--month", "2026-13"],
            "a month is written YYYY-MM",
        ),
        (
            vec!["--vendor", "acme", "--from", "yesterday"],
            "--from must be an RFC 3339 time",
        ),
        (
            vec![
                "--vendor",
                "acme",
                "--from",
                "2024-01-01T00:00:00Z",
                "--to",
                "2026-01-01T00:00:00Z",
            ],
            "at most 400 days",
        ),
    ] {
        let out = cli(&c, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }

    get(c.addr, "/api/v1/reports/sla?vendor=acme", None, &[])
        .await
        .expect("without token")
        .assert_refused(StatusCode::UNAUTHORIZED, "Authorization: Bearer");
    // API refusals: each a 4xx saying what is wrong.
    let cases = [
        (
            "/api/v1/reports/sla",
            StatusCode::BAD_REQUEST,
            "name the vendor",
        ),
        (
            "/api/v1/reports/sla?vendor=nope",
            StatusCode::NOT_FOUND,
            "no vendor `nope`",
        ),
        (
            "/api/v1/reports/sla?vendor=acme&from=yesterday",
            StatusCode::BAD_REQUEST,
            "`from` must be an RFC 3339 time",
        ),
        (
            "/api/v1/reports/sla?vendor=acme&from=2026-10-02T00:00:00Z&to=2026-10-01T00:00:00Z",
            StatusCode::BAD_REQUEST,
            "must be before",
        ),
        (
            "/api/v1/reports/sla?vendor=acme&from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            StatusCode::BAD_REQUEST,
            "at most 400 days",
        ),
        (
            "/api/v1/reports/sla?vendor=acme&from=-1&to=5",
            StatusCode::BAD_REQUEST,
            "between 1970 and 9999",
        ),
        (
            "/api/v1/reports/sla?vendor=acme&region=eu",
            StatusCode::BAD_REQUEST,
            "unknown query parameter `region`",
        ),
    ];
    for (path, status, want) in cases {
        get(c.addr, path, Some(TOKEN), &[])
            .await
            .expect(path)
            .assert_refused(status, want);
    }
    send(
        c.addr,
        Method::POST,
        "/api/v1/reports/sla?vendor=acme",
        Some(TOKEN),
        &[],
        Bytes::from_static(b"{}"),
    )
    .await
    .expect("POST")
    .assert_refused(StatusCode::METHOD_NOT_ALLOWED, "not allowed");
    // A vendor without data or a contract: a report of nothing, judged on nothing.
    let quiet = get(c.addr, "/api/v1/reports/sla?vendor=quiet", Some(TOKEN), &[])
        .await
        .expect("quiet")
        .json();
    assert_eq!(quiet["global"]["runs"], 0);
    assert_eq!(
        quiet["global"]["contract"]["objectives"],
        serde_json::json!([])
    );
    c.assert_alive("the report requests").await;

    // The running coordinator records the vendor's state (unknown: two probes are short of
    // the quorum of three) in the history: once it has, the report's unknown minutes are no
    // longer all unrecorded.
    let open_ended = format!(
        "/api/v1/reports/sla?vendor=acme&from={from}&to={}",
        rfc(now + time::Duration::hours(1))
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = get(c.addr, &open_ended, Some(TOKEN), &[])
            .await
            .expect("open-ended report")
            .json();
        let g = &r["global"];
        let unknown = g["minutes_in_state"]["unknown"].as_f64().expect("unknown");
        let unrecorded = g["unrecorded_minutes"].as_f64().expect("unrecorded");
        if unknown > unrecorded {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no vendor state recorded in the history: {g}\n{}",
            c.log()
        );
        // Polling interval, not a wait for an event.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The CLI refuses a data directory without a store rather than reporting on nothing.
    let empty = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["report", "sla", "--vendor", "acme", "--data-dir"])
        .arg(empty.path())
        .arg("--checks")
        .arg(c.path("checks.toml"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no store at"),
        "{err}"
    );
}

fn rfc(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .expect("whole second")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}
