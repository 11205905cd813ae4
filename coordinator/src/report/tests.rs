//! The SLA report against a hand-computed fixture: results go in through the store's real
//! writer path (so all three rollup tiers are the writer's), the state history through
//! `record_vendor_status` and incidents through `write_incident`; every number of the report
//! is compared with the values worked out by hand in the comments.
//!
//! Fixture: vendor `acme`, contract availability 99%, p50 50 ms, p95 400 ms, p99 1000 ms.
//! Checks `www` and `cdn` (data), `api` (control), `logs` (telemetry). Probes p1 and p2 in
//! `eu`, p3 in `us`. Days are UTC: D0 = 2026-10-01, D1 = 2026-10-02, D2 = 2026-10-03.
//!
//! Window: from D0 22:30:30 to D2 01:15:10, now D2 02:00. The minutes counted are those that
//! start in the window: D0 22:31 to D2 01:15 included. The store reads them as the minutes
//! [D0 22:31, D0 23:00), the hour D0 23:00, the day D1, the hour D2 00:00, and the minutes
//! [D2 01:00, D2 01:16).
//!
//! Latency buckets (upper bounds `2^(i/2)` ms): 3 ms is bucket 4; 40 ms bucket 11
//! (32 to 45.25 ms); 100 ms bucket 14 (90.51 to 128 ms); 300 ms bucket 17 (256 to
//! 362.04 ms); 1000 ms bucket 20 (724.08 to 1024 ms).

use crate::alert::{IncidentState, Label as _, SubjectKind};
use std::collections::BTreeMap;
use std::time::Duration;

use vantage_checks::model::{CheckKind, Role, Sla, Vendor};
use vantage_checks::result::{
    CheckResult, Facts, FailureKind, RESULT_SCHEMA_VERSION, Status, TcpFacts, Timings,
};

use super::sla::{self, IncidentSpan, ObjectiveStatus, ScopeReport, SlaReport};
use super::{Window, parse_instant};
use crate::store::report::{ReportStore, Totals};
use crate::store::state::{IncidentWrite, StateStore};
use crate::store::{IngestRow, SqliteStore, Store, Synchronous, latency_bucket_upper};

const MIN: i64 = 60_000;

fn at(text: &str) -> i64 {
    parse_instant(text).expect("fixture time")
}

/// Builds results with a sequence number per probe.
#[derive(Default)]
struct Runs {
    rows: Vec<IngestRow>,
    seq: BTreeMap<String, u64>,
}

impl Runs {
    fn add(&mut self, check: &str, probe: &str, when: i64, status: Status, latency_ms: f64) {
        let seq = self.seq.entry(probe.to_owned()).or_default();
        *seq += 1;
        let region = if probe == "p3" { "us" } else { "eu" };
        self.rows.push(IngestRow {
            region: region.into(),
            received_ms: when + 5,
            result: CheckResult {
                v: RESULT_SCHEMA_VERSION,
                check_id: check.into(),
                vendor: if check == "other" { "else" } else { "acme" }.into(),
                kind: CheckKind::Tcp,
                probe_id: probe.into(),
                boot_id: "boot".into(),
                seq: *seq,
                started_at: time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(when) * 1_000_000,
                )
                .expect("time"),
                status,
                failure: (status == Status::Fail).then_some(FailureKind::ConnectTimeout),
                message: None,
                slow: false,
                retried: false,
                timings: Timings {
                    total_ms: latency_ms,
                    ..Timings::default()
                },
                facts: Facts::Tcp(TcpFacts::default()),
                truncated: None,
                run: None,
            },
        });
    }
}

use Status::{Fail, Ok as Pass, ProbeError};

fn vendor() -> Vendor {
    Vendor {
        id: "acme".into(),
        name: "Acme".into(),
        sla: Sla {
            availability: Some(0.99),
            latency_p50: Some(Duration::from_millis(50)),
            latency_p95: Some(Duration::from_millis(400)),
            latency_p99: Some(Duration::from_millis(1000)),
        },
    }
}

fn checks() -> Vec<(String, Role)> {
    vec![
        ("www".into(), Role::Data),
        ("cdn".into(), Role::Data),
        ("api".into(), Role::Control),
        ("logs".into(), Role::Telemetry),
    ]
}

/// The fixture's store.
fn fixture() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("v.db"), Synchronous::Normal).expect("open");
    let d1 = at("2026-10-02T00:00:00Z");
    let mut r = Runs::default();
    // Outside the window: the minute D0 22:30 starts before `from`, D2 01:16 after `to`.
    r.add("www", "p1", at("2026-10-01T22:30:10Z"), Fail, 1000.0);
    r.add("www", "p3", at("2026-10-03T01:16:05Z"), Fail, 1000.0);
    r.add("www", "p1", at("2026-10-01T21:59:00Z"), Fail, 1000.0);
    r.add("www", "p1", at("2026-10-03T02:00:00Z"), Fail, 1000.0);
    // Another vendor's check, inside the window.
    r.add("other", "p1", at("2026-10-02T10:00:00Z"), Fail, 1000.0);
    // Minute edge [D0 22:31, D0 23:00).
    r.add("www", "p1", at("2026-10-01T22:31:00Z"), Pass, 40.0); // A1
    r.add("www", "p2", at("2026-10-01T22:45:30Z"), Fail, 1000.0); // A2
    r.add("www", "p3", at("2026-10-01T22:59:59Z"), Pass, 40.0); // A3
    r.add("www", "p1", at("2026-10-01T22:50:00Z"), ProbeError, 3.0); // A4
    // Hour D0 23:00.
    r.add("cdn", "p3", at("2026-10-01T23:10:00Z"), Pass, 100.0); // B1
    r.add("cdn", "p1", at("2026-10-01T23:59:59.999Z"), Pass, 100.0); // B2
    // Day D1.
    for i in 0..76 {
        r.add("www", "p1", d1 + i * 15 * MIN, Pass, 40.0);
    }
    for i in 0..10 {
        r.add("www", "p3", d1 + 12 * 60 * MIN + i * MIN, Fail, 1000.0);
    }
    for i in 0..6 {
        r.add("cdn", "p2", d1 + i * 4 * 60 * MIN, Pass, 300.0);
    }
    r.add("www", "p2", d1 + 3 * 60 * MIN, ProbeError, 3.0);
    r.add("www", "p2", d1 + 3 * 60 * MIN + MIN, ProbeError, 3.0);
    r.add("api", "p1", d1 + 12 * 60 * MIN, Fail, 100.0); // F1
    r.add("api", "p3", d1 + 12 * 60 * MIN + MIN, Pass, 100.0); // F2
    r.add("logs", "p2", d1 + 6 * 60 * MIN, Pass, 40.0); // G1
    // Hour D2 00:00.
    r.add("www", "p3", at("2026-10-03T00:30:00Z"), Pass, 40.0); // D1
    // Minute edge [D2 01:00, D2 01:16).
    r.add("www", "p1", at("2026-10-03T01:15:00Z"), Pass, 40.0); // E1
    r.add("cdn", "p2", at("2026-10-03T01:00:00Z"), Fail, 1000.0); // E2

    // Many small commits in a scrambled order, so every minute, hour and day row is merged
    // across commits; one group commit of two batches, and every batch delivered twice:
    // duplicates must not count twice in any tier.
    let n = r.rows.len();
    let mut rows = r.rows.clone();
    rows.sort_by_key(|row| {
        (row.result.seq * 7919 + row.result.probe_id.len() as u64 * 31) % n as u64
    });
    for (i, chunk) in rows.chunks(3).enumerate() {
        if i % 5 == 0 {
            store
                .insert_batches(&[chunk[..1].to_vec(), chunk[1..].to_vec()])
                .expect("group commit");
        } else {
            store.insert_results(chunk).expect("insert");
        }
        let again = store.insert_results(chunk).expect("re-delivery");
        assert_eq!(again.inserted, 0);
    }

    // State history. Each call is a vendor status as the engine derives it.
    let g = |s: &str| (None, s.to_owned());
    let reg = |r: &str, s: &str| (Some(r.to_owned()), s.to_owned());
    let history = [
        (
            "2026-10-01T20:00:00Z",
            vec![
                g("operational"),
                reg("eu", "operational"),
                reg("us", "operational"),
            ],
        ),
        // Conditions changed, states did not: nothing is appended.
        (
            "2026-10-01T21:00:00Z",
            vec![
                g("operational"),
                reg("eu", "operational"),
                reg("us", "operational"),
            ],
        ),
        (
            "2026-10-02T06:00:00Z",
            vec![
                g("degraded"),
                reg("eu", "degraded"),
                reg("us", "operational"),
            ],
        ),
        (
            "2026-10-02T06:30:00Z",
            vec![
                g("operational"),
                reg("eu", "operational"),
                reg("us", "operational"),
                reg("ap", "operational"),
            ],
        ),
        (
            "2026-10-02T12:00:00Z",
            vec![
                g("hard_down"),
                reg("eu", "operational"),
                reg("us", "hard_down"),
                reg("ap", "operational"),
            ],
        ),
        (
            "2026-10-02T12:45:00Z",
            vec![
                g("operational"),
                reg("eu", "operational"),
                reg("us", "operational"),
                reg("ap", "operational"),
            ],
        ),
        // `us` drops out of the status: recorded as unknown.
        (
            "2026-10-03T01:00:00Z",
            vec![
                g("unknown"),
                reg("eu", "operational"),
                reg("ap", "operational"),
            ],
        ),
        // After the window.
        (
            "2026-10-03T01:30:00Z",
            vec![
                g("hard_down"),
                reg("eu", "hard_down"),
                reg("ap", "operational"),
            ],
        ),
    ];
    for (when, states) in history {
        store
            .record_vendor_status("acme", "{}", &states, at(when))
            .expect("record");
    }
    store
        .record_vendor_status("else", "{}", &[g("hard_down")], at("2026-10-02T00:00:00Z"))
        .expect("record");

    // Incidents, oldest first (one open per subject at a time).
    let incident = |subject_kind: &str,
                    subject: &str,
                    state: &str,
                    scope: &str,
                    regions: &[&str],
                    opened: &str,
                    resolved: Option<&str>| {
        let detail = serde_json::json!({
            "subject": { "kind": subject_kind, "id": subject, "scope": scope, "regions": regions },
            "summary": format!("{subject} is {state}"),
        })
        .to_string();
        let write = |id, at_ms, resolve| IncidentWrite {
            id,
            subject_kind: SubjectKind::from_label(subject_kind).expect("a subject kind"),
            subject: subject.into(),
            state: IncidentState::from_label(state).expect("a state"),
            summary: format!("{subject} is {state}"),
            detail: detail.clone(),
            at_ms,
            resolve,
            events: vec![],
            deliveries: vec![],
            ..IncidentWrite::default()
        };
        let id = store
            .write_incident(&write(None, at(opened), false))
            .expect("open");
        if let Some(r) = resolved {
            store
                .write_incident(&write(Some(id), at(r), true))
                .expect("resolve");
        }
        id
    };
    // I4: over before the window.
    incident(
        "vendor",
        "acme",
        "hard_down",
        "global",
        &[],
        "2026-10-01T10:00:00Z",
        Some("2026-10-01T11:00:00Z"),
    );
    // I2: regional, eu, 22:00 to 23:00 on D0: 60 min, of which 29.5 (from 22:30:30) inside.
    let i2 = incident(
        "vendor",
        "acme",
        "hard_down",
        "regional",
        &["eu"],
        "2026-10-01T22:00:00Z",
        Some("2026-10-01T23:00:00Z"),
    );
    // I1: global, D1 12:00:20 to 12:45:50: 45.5 min, all inside.
    let i1 = incident(
        "vendor",
        "acme",
        "hard_down",
        "global",
        &[],
        "2026-10-02T12:00:20Z",
        Some("2026-10-02T12:45:50Z"),
    );
    // I5: opens exactly at `to`: outside.
    incident(
        "vendor",
        "acme",
        "degraded",
        "global",
        &[],
        "2026-10-03T01:15:10Z",
        Some("2026-10-03T01:20:00Z"),
    );
    // Another vendor's, and a probe's: not acme's.
    incident(
        "vendor",
        "else",
        "hard_down",
        "global",
        &[],
        "2026-10-02T00:00:00Z",
        None,
    );
    incident(
        "probe",
        "acme",
        "probe_quarantined",
        "regional",
        &["eu"],
        "2026-10-02T00:00:00Z",
        None,
    );
    // I3: open since D2 01:10: 50 min until now (02:00), 5 min 10 s inside the window.
    let i3 = incident(
        "vendor",
        "acme",
        "api_down",
        "global",
        &[],
        "2026-10-03T01:10:00Z",
        None,
    );
    assert_eq!((i2, i1, i3), (2, 3, 7), "incident ids as written");
    (dir, store)
}

fn window() -> Window {
    Window::new(at("2026-10-01T22:30:30Z"), at("2026-10-03T01:15:10Z")).expect("window")
}

fn report(store: &SqliteStore) -> SlaReport {
    sla::sla_report(
        store,
        &vendor(),
        &checks(),
        window(),
        at("2026-10-03T02:00:00Z"),
    )
    .expect("report")
}

/// Bucket upper bounds.
fn b(i: usize) -> f64 {
    latency_bucket_upper(i)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn minutes_in(scope: &ScopeReport) -> Vec<(&str, f64)> {
    scope
        .minutes_in_state
        .iter()
        .filter(|(_, m)| **m != 0.0)
        .map(|(s, m)| (s.as_str(), *m))
        .collect()
}

fn statuses(scope: &ScopeReport) -> Vec<(&str, ObjectiveStatus)> {
    scope
        .contract
        .objectives
        .iter()
        .map(|o| (o.objective.as_str(), o.status))
        .collect()
}

#[test]
fn availability_latency_and_contract_match_the_hand_computed_fixture() {
    let (_dir, store) = fixture();
    let r = report(&store);
    assert_eq!(r.from, "2026-10-01T22:30:30Z");
    assert_eq!(r.to, "2026-10-03T01:15:10Z");
    // 26 h 44 min 40 s.
    assert_eq!(r.window_minutes, 96_280_000.0 / 60_000.0);

    // Global data plane (www + cdn), window part by part:
    //   minutes D0: A1 ok, A2 fail, A3 ok, A4 probe error  → 4 runs, 1 probe error, 1 fail
    //   hour D0 23: B1 ok, B2 ok                           → 2 runs
    //   day D1: 76 ok + 10 fail + 6 ok + 2 probe errors    → 94 runs, 2 probe errors, 10 fail
    //   hour D2 00: D1 ok                                  → 1 run
    //   minutes D2: E1 ok, E2 fail                         → 2 runs, 1 fail
    // runs 103, probe errors 3, valid 100, failed 12, good 88: availability 88/100.
    let g = &r.global.sli;
    assert_eq!(
        (g.runs, g.valid, g.good, g.failed, g.probe_errors),
        (103, 100, 88, 12, 3)
    );
    assert_eq!(g.availability, Some(0.88));
    // Latencies of the 100 valid runs: 80 × 40 ms (bucket 11), 2 × 100 ms (14), 6 × 300 ms
    // (17), 12 × 1000 ms (20). p50 is rank 50 → bucket 11; p95 rank 95 and p99 rank 99 lie
    // past 80 + 2 + 6 = 88 → bucket 20.
    let p = g.latency_ms.expect("latency");
    assert_eq!((p.p50, p.p95, p.p99), (b(11), b(20), b(20)));
    assert!(close(p.p50, 45.254_833_995_939), "{}", p.p50);
    assert_eq!(p.p95, 1024.0);
    // Contract: 0.88 < 0.99 breached; p50 45.25 ≤ 50 met; p95 in [724.08, 1024) > 400
    // breached; p99's bucket [724.08, 1024) holds 1000: inconclusive.
    assert_eq!(
        statuses(&r.global),
        vec![
            ("availability", ObjectiveStatus::Breached),
            ("latency_p50", ObjectiveStatus::Met),
            ("latency_p95", ObjectiveStatus::Breached),
            ("latency_p99", ObjectiveStatus::Inconclusive),
        ]
    );
    assert!(r.global.contract.breach);
    assert_eq!(r.global.contract.broken, ["availability", "latency_p95"]);
    // Budget: (1 - 0.88) / (1 - 0.99) = 12: twelve times the budget.
    let budget = r.global.contract.error_budget_used.expect("budget");
    assert!(close(budget, 12.0), "{budget}");

    // eu: A1 ok, A2 fail, A4 probe error; B2 ok; D1 day 76 ok + 6 ok + 2 probe errors;
    // E1 ok, E2 fail → runs 90, probe errors 3, valid 87, failed 2, good 85.
    let eu = &r.regions["eu"];
    assert_eq!(
        (
            eu.sli.runs,
            eu.sli.valid,
            eu.sli.good,
            eu.sli.failed,
            eu.sli.probe_errors
        ),
        (90, 87, 85, 2, 3)
    );
    assert_eq!(eu.sli.availability, Some(85.0 / 87.0));
    // 87 latencies: 78 × 40 ms, 1 × 100 ms, 6 × 300 ms, 2 × 1000 ms. p50 rank 44 → bucket 11;
    // p95 rank ceil(82.65) = 83 > 79 → bucket 17; p99 rank ceil(86.13) = 87 → bucket 20.
    let p = eu.sli.latency_ms.expect("eu latency");
    assert_eq!((p.p50, p.p95, p.p99), (b(11), b(17), b(20)));
    // p95 362.04 ≤ 400 met; availability 0.977 < 0.99 breached.
    assert_eq!(
        statuses(eu),
        vec![
            ("availability", ObjectiveStatus::Breached),
            ("latency_p50", ObjectiveStatus::Met),
            ("latency_p95", ObjectiveStatus::Met),
            ("latency_p99", ObjectiveStatus::Inconclusive),
        ]
    );
    // Budget: (2/87) / 0.01.
    let budget = eu.contract.error_budget_used.expect("eu budget");
    assert!(close(budget, (2.0 / 87.0) / 0.01), "{budget}");

    // us: A3 ok; B1 ok; 10 fail on D1; D1 ok → runs 13, good 3, failed 10.
    let us = &r.regions["us"];
    assert_eq!(
        (us.sli.runs, us.sli.valid, us.sli.good, us.sli.failed),
        (13, 13, 3, 10)
    );
    assert_eq!(us.sli.availability, Some(3.0 / 13.0));
    // 13 latencies: 2 × 40, 1 × 100, 10 × 1000. p50 rank 7 > 3 → bucket 20, and so on.
    let p = us.sli.latency_ms.expect("us latency");
    assert_eq!((p.p50, p.p95, p.p99), (b(20), b(20), b(20)));
    assert_eq!(
        us.contract.broken,
        ["availability", "latency_p50", "latency_p95"]
    );

    // ap has states but no runs: nothing to judge, no breach.
    let ap = &r.regions["ap"];
    assert_eq!((ap.sli.runs, ap.sli.availability), (0, None));
    assert!(!ap.contract.breach);
    assert!(
        ap.contract
            .objectives
            .iter()
            .all(|o| o.status == ObjectiveStatus::NoData)
    );
    assert_eq!(ap.contract.error_budget_used, None);
    assert_eq!(
        r.regions.keys().collect::<Vec<_>>(),
        ["ap", "eu", "us"],
        "regions from the runs and from the history"
    );

    // Roles over all regions: data = the global figures; control (api): F1 fail, F2 ok;
    // telemetry (logs): G1 ok.
    assert_eq!(r.roles["data"], *g);
    assert_eq!(
        (
            r.roles["control"].runs,
            r.roles["control"].good,
            r.roles["control"].availability
        ),
        (2, 1, Some(0.5))
    );
    assert_eq!(r.roles["telemetry"].availability, Some(1.0));
    // Per check: www = A1..A4, 76 + 10 + 2 on D1, D1, E1 → 94 runs, 3 probe errors, 11 fail;
    // cdn = B1, B2, 6 on D1, E2 → 9 runs, 1 fail.
    let www = &r.checks[0];
    assert_eq!(
        (
            www.check.as_str(),
            www.role.as_str(),
            www.sli.runs,
            www.sli.probe_errors,
            www.sli.failed,
            www.sli.good
        ),
        ("www", "data", 94, 3, 11, 80)
    );
    let cdn = &r.checks[1];
    assert_eq!((cdn.sli.runs, cdn.sli.failed, cdn.sli.good), (9, 1, 8));
    assert_eq!(
        r.checks
            .iter()
            .map(|c| c.check.as_str())
            .collect::<Vec<_>>(),
        ["www", "cdn", "api", "logs"]
    );
}

#[test]
fn minutes_in_each_state_come_from_the_history_clipped_to_the_window() {
    let (_dir, store) = fixture();
    let r = report(&store);
    let window_min = 96_280_000.0 / 60_000.0;
    // Global: operational at `from` (recorded D0 20:00); degraded D1 06:00–06:30 (30 min);
    // hard_down D1 12:00–12:45 (45 min); unknown from D2 01:00 to `to` (15 min 10 s);
    // operational the rest: 89.5 + 360 + 330 + 735 = 1514.5 min.
    assert_eq!(
        minutes_in(&r.global),
        vec![
            ("degraded", 30.0),
            ("hard_down", 45.0),
            ("operational", 1514.5),
            ("unknown", 910_000.0 / 60_000.0),
        ]
    );
    assert_eq!(r.global.unrecorded_minutes, 0.0);
    let total: f64 = r.global.minutes_in_state.values().sum();
    assert!(close(total, window_min), "{total}");
    // eu: degraded for 30 min, operational otherwise (the change after `to` is cut off).
    let eu = minutes_in(&r.regions["eu"]);
    assert_eq!(eu.len(), 2, "{eu:?}");
    assert_eq!(eu[0], ("degraded", 30.0));
    assert!(close(eu[1].1, window_min - 30.0), "{eu:?}");
    // us: hard_down 45 min, then unknown from D2 01:00 when it dropped out of the status.
    let us = minutes_in(&r.regions["us"]);
    assert_eq!(us[0], ("hard_down", 45.0));
    assert!(close(us[1].1, 1544.5), "{us:?}");
    assert_eq!(us[2], ("unknown", 910_000.0 / 60_000.0));
    // ap: no record before D1 06:30: 7 h 59 min 30 s unrecorded, counted as unknown.
    let ap = &r.regions["ap"];
    assert_eq!(ap.unrecorded_minutes, 479.5);
    assert_eq!(ap.minutes_in_state["unknown"], 479.5);
    assert!(close(
        ap.minutes_in_state["operational"],
        window_min - 479.5
    ));
    // Every state is listed, zeros included.
    assert_eq!(r.global.minutes_in_state.len(), 6);

    // The history the store returns: per scope the change in force at `from`, then those in
    // the window; the repeated status at D0 21:00 appended nothing.
    let h = store
        .vendor_history("acme", window().from_ms, window().to_ms)
        .expect("history");
    let global: Vec<(&str, i64)> = h
        .iter()
        .filter(|c| c.region.is_none())
        .map(|c| (c.state.as_str(), c.at_ms))
        .collect();
    assert_eq!(
        global,
        vec![
            ("operational", at("2026-10-01T20:00:00Z")),
            ("degraded", at("2026-10-02T06:00:00Z")),
            ("operational", at("2026-10-02T06:30:00Z")),
            ("hard_down", at("2026-10-02T12:00:00Z")),
            ("operational", at("2026-10-02T12:45:00Z")),
            ("unknown", at("2026-10-03T01:00:00Z")),
        ]
    );
}

#[test]
fn incidents_overlapping_the_window_with_whole_and_clipped_durations() {
    let (_dir, store) = fixture();
    let r = report(&store);
    fn span(i: &IncidentSpan) -> (i64, &str, &str, f64, f64, bool) {
        (
            i.id,
            i.state.as_label(),
            i.scope.as_label(),
            i.duration_minutes,
            i.in_window_minutes,
            i.ongoing,
        )
    }
    // I4 ended before `from`, I5 opens at `to`, others are another vendor's or a probe's.
    assert_eq!(
        r.global.incidents.iter().map(span).collect::<Vec<_>>(),
        vec![
            (2, "hard_down", "regional", 60.0, 29.5, false),
            (3, "hard_down", "global", 45.5, 45.5, false),
            (7, "api_down", "global", 50.0, 310_000.0 / 60_000.0, true),
        ]
    );
    let i2 = &r.global.incidents[0];
    assert_eq!(i2.regions, ["eu"]);
    assert_eq!(i2.opened_at, "2026-10-01T22:00:00Z");
    assert_eq!(i2.resolved_at.as_deref(), Some("2026-10-01T23:00:00Z"));
    assert_eq!(r.global.incidents[2].resolved_at, None);
    // Regions: the regional incident only where it was; global ones everywhere.
    let ids = |s: &ScopeReport| s.incidents.iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(&r.regions["eu"]), [2, 3, 7]);
    assert_eq!(ids(&r.regions["us"]), [3, 7]);
    assert_eq!(ids(&r.regions["ap"]), [3, 7]);
}

#[test]
fn the_tiers_agree_with_each_other_and_with_the_raw_results() {
    let (_dir, store) = fixture();
    let ids: Vec<String> = ["www", "cdn", "api", "logs", "other"]
        .map(str::to_owned)
        .to_vec();
    let sum = |from: i64, to: i64| {
        let mut t = Totals::default();
        for row in store.rollup_totals(&ids, from, to).expect("totals") {
            t.add(&row.totals);
        }
        t
    };
    // Every result of the fixture, each once: 4 outside the window + 1 of another vendor,
    // 4 + 2 around D0's end, 94 + 2 (api) + 1 (logs) on D1, 1 + 2 on D2 = 111 runs; failures
    // 5 + 1 + 10 + 1 (api) + 1 = 18; probe errors 3. Aligned on days: the day tier alone.
    let days = sum(at("2026-10-01T00:00:00Z"), at("2026-10-04T00:00:00Z"));
    assert_eq!((days.runs, days.failures, days.probe_errors), (111, 18, 3));
    // From D0 00:00:00.001 to D2 23:29:59.999: minutes [00:01, 01:00) and hours of D0, the
    // day D1, hours of D2 to 23:00 and minutes [23:00, 23:30). Nothing ran in the parts left
    // out, so the sums are equal, histograms included.
    let ragged = sum(
        at("2026-10-01T00:00:00Z") + 1,
        at("2026-10-04T00:00:00Z") - 30 * MIN - 1,
    );
    assert_eq!(ragged, days);
    // Minute rollups of www agree with the hourly tier for D1 12:00: 10 failures of p3 from
    // 12:00 to 12:09 and p1's runs at 12:00, 12:15, 12:30, 12:45.
    let minute: u64 = store
        .rollups(
            "www",
            at("2026-10-02T12:00:00Z"),
            at("2026-10-02T13:00:00Z"),
        )
        .expect("minutes")
        .iter()
        .map(|r| r.count)
        .sum();
    assert_eq!(minute, 10 + 4);
    let hour = store
        .rollup_totals(
            &["www".to_owned()],
            at("2026-10-02T12:00:00Z"),
            at("2026-10-02T13:00:00Z"),
        )
        .expect("hour");
    assert_eq!(hour.iter().map(|r| r.totals.runs).sum::<u64>(), 14);
}

#[test]
fn latency_series_reads_the_tier_that_fits_a_bucket() {
    let (_dir, store) = fixture();
    let point = |p: &sla::SeriesPoint| {
        (
            p.start_ms,
            p.region.clone(),
            p.runs,
            p.availability,
            p.p50_ms,
            p.p95_ms,
        )
    };
    // Hourly buckets from D0 23:30: the minutes 23:30–23:59 (B2 at 23:59:59.999; B1 at 23:10
    // is before the window), the hours of D1 (six runs of 300 ms, 4 h apart), D2 00:00, and
    // the minutes 01:00–01:29 (E2, failed, 1000 ms).
    let w = Window::new(at("2026-10-01T23:30:00Z"), at("2026-10-03T01:30:00Z")).expect("w");
    let s = sla::latency_series(&store, "cdn", w, Duration::from_secs(3600)).expect("series");
    let mut want = vec![(
        at("2026-10-01T23:00:00Z"),
        "eu".to_owned(),
        1,
        Some(1.0),
        Some(b(14)),
        Some(b(14)),
    )];
    for i in 0..6 {
        want.push((
            at("2026-10-02T00:00:00Z") + i * 4 * 60 * MIN,
            "eu".to_owned(),
            1,
            Some(1.0),
            Some(b(17)),
            Some(b(17)),
        ));
    }
    want.push((
        at("2026-10-03T01:00:00Z"),
        "eu".to_owned(),
        1,
        Some(0.0),
        Some(b(20)),
        Some(b(20)),
    ));
    assert_eq!(s.iter().map(point).collect::<Vec<_>>(), want);

    // Daily buckets over three aligned days: the day tier only.
    let w = Window::new(at("2026-10-01T00:00:00Z"), at("2026-10-04T00:00:00Z")).expect("w");
    let s = sla::latency_series(&store, "cdn", w, Duration::from_secs(86_400)).expect("days");
    assert_eq!(
        s.iter().map(point).collect::<Vec<_>>(),
        vec![
            (
                at("2026-10-01T00:00:00Z"),
                "eu".to_owned(),
                1,
                Some(1.0),
                Some(b(14)),
                Some(b(14))
            ),
            (
                at("2026-10-01T00:00:00Z"),
                "us".to_owned(),
                1,
                Some(1.0),
                Some(b(14)),
                Some(b(14))
            ),
            (
                at("2026-10-02T00:00:00Z"),
                "eu".to_owned(),
                6,
                Some(1.0),
                Some(b(17)),
                Some(b(17))
            ),
            (
                at("2026-10-03T00:00:00Z"),
                "eu".to_owned(),
                1,
                Some(0.0),
                Some(b(20)),
                Some(b(20))
            ),
        ]
    );

    // Five-minute buckets: minute rollups. B1 at 23:10 falls in the 23:10 bucket.
    let w = Window::new(at("2026-10-01T23:00:00Z"), at("2026-10-01T23:30:00Z")).expect("w");
    let s = sla::latency_series(&store, "cdn", w, Duration::from_secs(300)).expect("minutes");
    assert_eq!(
        s.iter().map(point).collect::<Vec<_>>(),
        vec![(
            at("2026-10-01T23:10:00Z"),
            "us".to_owned(),
            1,
            Some(1.0),
            Some(b(14)),
            Some(b(14))
        )]
    );

    // Buckets must be whole minutes, not absurdly long, and not too many.
    for bad in [
        Duration::from_secs(30),
        Duration::from_secs(90),
        Duration::MAX,
    ] {
        let e = sla::latency_series(&store, "cdn", w, bad)
            .expect_err("bad bucket")
            .to_string();
        assert!(e.contains("whole number of minutes"), "{e}");
    }
    let long = Window::new(at("2026-01-01T00:00:00Z"), at("2026-12-01T00:00:00Z")).expect("w");
    let e = sla::latency_series(&store, "cdn", long, Duration::from_secs(60))
        .expect_err("too many")
        .to_string();
    assert!(e.contains("too many"), "{e}");
}

#[test]
fn pruning_keeps_the_state_in_force() {
    let (_dir, store) = fixture();
    // Prune everything before D1 12:30: the daily and hourly rows of D0 and D1 go, and of the
    // history only the last change per scope before the cutoff stays.
    store
        .prune_tiers(at("2026-10-02T12:30:00Z"), at("2026-10-02T12:30:00Z"))
        .expect("prune");
    let h = store
        .vendor_history(
            "acme",
            at("2026-10-02T12:30:00Z"),
            at("2026-10-02T12:31:00Z"),
        )
        .expect("history");
    let mut got: Vec<(Option<&str>, &str)> = h
        .iter()
        .map(|c| (c.region.as_deref(), c.state.as_str()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (None, "hard_down"),
            (Some("ap"), "operational"),
            (Some("eu"), "operational"),
            (Some("us"), "hard_down"),
        ]
    );
    let days = store
        .rollup_totals(
            &["www".to_owned()],
            at("2026-10-01T00:00:00Z"),
            at("2026-10-03T00:00:00Z"),
        )
        .expect("totals");
    assert!(days.is_empty(), "{days:?}");
}

#[test]
fn large_reports_read_on_several_threads_and_agree_with_check_by_check_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("v.db"), Synchronous::Normal).expect("open");
    // 300 checks, enough for several reader threads; check i has i % 7 + 1 runs spread over
    // two days, every fifth failing.
    let d0 = at("2026-10-01T00:00:00Z");
    let mut r = Runs::default();
    let ids: Vec<String> = (0..300).map(|i| format!("c{i:03}")).collect();
    for (i, id) in ids.iter().enumerate() {
        for k in 0..(i % 7 + 1) {
            let when = d0 + (i as i64 * 7 + k as i64 * 331) * MIN;
            let status = if (i + k) % 5 == 0 { Fail } else { Pass };
            r.add(
                id,
                ["p1", "p2", "p3"][k % 3],
                when,
                status,
                40.0 + k as f64 * 100.0,
            );
        }
    }
    for chunk in r.rows.chunks(100) {
        store.insert_results(chunk).expect("insert");
    }
    let (from, to) = (d0 + 17 * MIN + 5, d0 + 2 * 86_400_000 - 3 * MIN);
    let together = store.rollup_totals(&ids, from, to).expect("together");
    let apart: Vec<_> = ids
        .iter()
        .flat_map(|id| {
            store
                .rollup_totals(std::slice::from_ref(id), from, to)
                .expect("one check")
        })
        .collect();
    assert_eq!(together, apart, "same rows, in check order");
    let runs: u64 = together.iter().map(|t| t.totals.runs).sum();
    let want = r
        .rows
        .iter()
        .filter(|row| {
            let ms = crate::ingest::unix_ms(row.result.started_at);
            // Minutes that start in the window.
            let minute = ms - ms.rem_euclid(MIN);
            minute >= from && minute < to
        })
        .count() as u64;
    assert_eq!(runs, want);
    assert!(want > 500, "the window holds most runs: {want}");
}
