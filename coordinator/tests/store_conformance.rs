//! One conformance suite for every `Store` backend: each test runs against SQLite (a file in
//! a temporary directory) and against a real PostgreSQL (a cluster this test binary starts,
//! a fresh database per test), and expects the same answers from both.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use time::OffsetDateTime;
use vantage_checks::result::{CheckResult, FailureKind, Status};
use vantage_coordinator::consensus::vendor::VendorState;
use vantage_coordinator::store::lease::{Fence, Node, PARTS};
use vantage_coordinator::store::report::UNKNOWN_STATE;
use vantage_coordinator::store::run::{NewRun, RunProbe, RunRecord};
use vantage_coordinator::store::state::{
    AlertEvent, DeliveryRow, IncidentQuery, IncidentState, IncidentWrite, NewDelivery, SilenceRow,
    SubjectKind, TransitionRecord,
};
use vantage_coordinator::store::{
    IngestRow, LATENCY_BUCKETS, PostgresStore, ProbeRecord, ResultQuery, SqliteStore, Stop, Store,
    StoreError, Synchronous, latency_bucket,
};
use vantage_e2e::postgres::Postgres;

/// The suite's PostgreSQL server, started once per test binary (its watchdog stops it when
/// the binary exits).
fn server() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(Postgres::start)
}

/// A store of each backend, empty.
enum Backend {
    Sqlite,
    Postgres,
}

struct Fixture {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

fn open(backend: Backend, test: &str) -> Fixture {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SqliteStore::open(&dir.path().join("v.db"), Synchronous::Normal)
                .expect("open sqlite");
            Fixture {
                store: Arc::new(store),
                _dir: Some(dir),
            }
        }
        Backend::Postgres => {
            let url = server().create_database(test);
            let store = PostgresStore::open(&url, None).expect("open postgresql");
            Fixture {
                store: Arc::new(store),
                _dir: None,
            }
        }
    }
}

/// `conformance!(name, |store| body)`: the test `name` once per backend.
macro_rules! conformance {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn sqlite() {
                let f = open(Backend::Sqlite, stringify!($name));
                ($body)(&*f.store);
            }

            #[test]
            fn postgres() {
                let f = open(Backend::Postgres, stringify!($name));
                ($body)(&*f.store);
            }
        }
    };
}

/// A minute boundary an hour and a bit into a UTC day, so that tiers can be told apart.
const T0: i64 = 1_764_547_200_000 + 3_600_000; // 2025-12-01T01:00:00Z

const HARD_DOWN: IncidentState = IncidentState::Vendor(VendorState::HardDown);

/// How long an outbox claim lasts in these tests.
const CLAIM: i64 = 60_000;

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("a time")
}

fn row(probe: &str, region: &str, seq: u64, check: &str, vendor: &str, ms: i64) -> IngestRow {
    let mut r: CheckResult = support::result(probe, seq, check, vendor, at(ms));
    r.timings.total_ms = 10.0 * (seq as f64 + 1.0);
    IngestRow {
        region: region.into(),
        received_ms: ms + 5,
        result: r,
    }
}

fn query(f: impl FnOnce(&mut ResultQuery)) -> ResultQuery {
    let mut q = ResultQuery {
        limit: 1000,
        ..ResultQuery::default()
    };
    f(&mut q);
    q
}

fn probe(id: &str, region: &str) -> ProbeRecord {
    ProbeRecord {
        id: id.into(),
        region: region.into(),
        labels: BTreeMap::from([("isp".to_owned(), "acme".to_owned())]),
        created_ms: T0,
        revoked_ms: None,
        last_seen_ms: None,
    }
}

conformance!(results_are_stored_once_and_filtered, |s: &dyn Store| {
    let a: Vec<IngestRow> = (0..6)
        .map(|i| row("fra-1", "eu", i, "c1", "v1", T0 + i as i64 * 1000))
        .collect();
    let b: Vec<IngestRow> = vec![
        row("fra-1", "eu", 2, "c1", "v1", T0 + 2000), // a duplicate of a's
        row("nyc-1", "us", 0, "c2", "v2", T0 + 500),
        row("nyc-1", "us", 0, "c2", "v2", T0 + 500), // a duplicate within the batch
    ];
    let out = s.insert_batches(&[a, b]).expect("insert");
    assert_eq!(
        (
            out[0].inserted,
            out[0].duplicates,
            out[1].inserted,
            out[1].duplicates
        ),
        (6, 0, 1, 2)
    );
    // Sent again later: all duplicates.
    let again = s
        .insert_results(&[row("fra-1", "eu", 0, "c1", "v1", T0)])
        .expect("insert");
    assert_eq!((again.inserted, again.duplicates), (0, 1));

    let all = s.query_results(&query(|_| {})).expect("query");
    assert_eq!(all.len(), 7);
    let starts: Vec<OffsetDateTime> = all.iter().map(|r| r.started_at).collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(
        all[0],
        support::result("fra-1", 5, "c1", "v1", at(T0 + 5000)).with_total(60.0)
    );

    let count = |f: &dyn Fn(&mut ResultQuery)| s.query_results(&query(f)).expect("query").len();
    assert_eq!(count(&|q| q.check = Some("c2".into())), 1);
    assert_eq!(count(&|q| q.probe = Some("fra-1".into())), 6);
    assert_eq!(count(&|q| q.vendor = Some("v1".into())), 6);
    assert_eq!(count(&|q| q.region = Some("us".into())), 1);
    assert_eq!(count(&|q| q.since_ms = Some(T0 + 3000)), 3);
    assert_eq!(count(&|q| q.until_ms = Some(T0 + 1000)), 2);
    assert_eq!(count(&|q| q.limit = 2), 2);

    // A query whose client went away stops.
    let stop = Stop::default();
    stop.cancel();
    let stopped = s.query_results(&ResultQuery {
        limit: 10,
        stop,
        ..ResultQuery::default()
    });
    assert!(
        matches!(stopped, Err(StoreError::Stopped(_))),
        "{stopped:?}"
    );
});

trait WithTotal {
    fn with_total(self, ms: f64) -> Self;
}

impl WithTotal for CheckResult {
    fn with_total(mut self, ms: f64) -> Self {
        self.timings.total_ms = ms;
        self
    }
}

conformance!(rollups_add_up_across_commits_and_tiers, |s: &dyn Store| {
    // Two commits into the same minute of one (check, probe), one into the next hour.
    s.insert_results(&[
        row("fra-1", "eu", 0, "c1", "v1", T0 + 1000), // fails (seq % 3 == 0)
        row("fra-1", "eu", 1, "c1", "v1", T0 + 2000),
    ])
    .expect("insert");
    let mut probe_error = row("fra-1", "eu", 2, "c1", "v1", T0 + 3000);
    probe_error.result.status = Status::ProbeError;
    probe_error.result.failure = Some(FailureKind::ConnectRefused);
    let mut slow = row("fra-1", "eu", 4, "c1", "v1", T0 + 4000);
    slow.result.slow = true;
    s.insert_results(&[probe_error, slow]).expect("insert");
    s.insert_results(&[row("ams-1", "eu", 7, "c1", "v1", T0 + 3_600_000)])
        .expect("insert");

    let minutes = s.rollups("c1", T0, T0 + 60_000).expect("rollups");
    assert_eq!(minutes.len(), 1, "{minutes:?}");
    let m = &minutes[0];
    assert_eq!(
        (
            m.check_id.as_str(),
            m.probe_id.as_str(),
            m.region.as_str(),
            m.minute_ms
        ),
        ("c1", "fra-1", "eu", T0)
    );
    assert_eq!((m.count, m.failures, m.probe_errors, m.slow), (4, 1, 1, 1));
    assert_eq!(
        m.failures_by_kind,
        BTreeMap::from([("http_status".to_owned(), 1)])
    );
    let mut want = vec![0u64; m.latency_buckets.len()];
    for ms in [10.0, 20.0, 50.0] {
        want[latency_bucket(ms)] += 1;
    }
    assert_eq!(m.latency_buckets, want, "probe errors measured nothing");
    assert!(
        s.rollups("c1", T0 + 60_000, T0 + 120_000)
            .expect("rollups")
            .is_empty()
    );

    // The same runs read from the minute, hour and day tiers.
    for (from, to) in [
        (T0, T0 + 7_200_000),
        (T0 - 3_600_000, T0 + 86_400_000),
        (T0 - 3_600_000 - 86_400_000, T0 + 2 * 86_400_000),
        (T0, T0 + 3_600_000 + 60_000),
    ] {
        let totals = s
            .rollup_totals(&["c1".into(), "c9".into()], from, to)
            .expect("totals");
        assert_eq!(totals.len(), 1, "one (check, region): {totals:?}");
        let t = &totals[0];
        assert_eq!((t.check_id.as_str(), t.region.as_str()), ("c1", "eu"));
        assert_eq!(
            (
                t.totals.runs,
                t.totals.failures,
                t.totals.probe_errors,
                t.totals.slow
            ),
            (5, 1, 1, 1),
            "from {from} to {to}"
        );
        assert_eq!(t.totals.latency.iter().sum::<u64>(), 4);
    }
    let series = s
        .rollup_series("c1", T0 - 3_600_000, T0 + 7_200_000, 3_600_000)
        .expect("series");
    let per_hour: Vec<(i64, u64)> = series.iter().map(|r| (r.start_ms, r.totals.runs)).collect();
    assert_eq!(per_hour, vec![(T0, 4), (T0 + 3_600_000, 1)]);

    // Pruning: the raw results and minute rollups before the cut go.
    let gone = s.prune(T0 + 3_000_000, T0 + 3_000_000).expect("prune");
    assert_eq!(gone, 4);
    assert!(
        s.rollups("c1", T0, T0 + 60_000)
            .expect("rollups")
            .is_empty()
    );
    assert_eq!(s.query_results(&query(|_| {})).expect("query").len(), 1);
    s.prune_tiers(T0 + 7_200_000, T0 - 86_400_000)
        .expect("prune tiers");
    let left = s
        .rollup_series("c1", T0 - 3_600_000, T0 + 7_200_000, 3_600_000)
        .expect("series");
    assert!(
        left.is_empty(),
        "hourly rollups before the cut are gone: {left:?}"
    );

    // One commit adding to several rows of each tier keeps each row's own counts.
    s.insert_results(&[
        row("fra-1", "eu", 100, "c3", "v1", T0 + 5000),
        row("ams-1", "eu", 5, "c3", "v1", T0 + 6000),
        row("lon-1", "uk", 102, "c3", "v1", T0 + 65_000), // fails
    ])
    .expect("insert");
    let hist = |ms: &[f64]| {
        let mut h = vec![0u64; LATENCY_BUCKETS];
        for &ms in ms {
            h[latency_bucket(ms)] += 1;
        }
        h
    };
    /// A minute row: probe, minute from T0, failures, histogram, failures by kind.
    type MinuteRow = (String, i64, u64, Vec<u64>, BTreeMap<String, u64>);
    let mut minutes: Vec<MinuteRow> = s
        .rollups("c3", T0, T0 + 120_000)
        .expect("rollups")
        .into_iter()
        .map(|m| {
            (
                m.probe_id,
                m.minute_ms - T0,
                m.failures,
                m.latency_buckets,
                m.failures_by_kind,
            )
        })
        .collect();
    minutes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        minutes,
        vec![
            ("ams-1".into(), 0, 0, hist(&[60.0]), BTreeMap::new()),
            ("fra-1".into(), 0, 0, hist(&[1010.0]), BTreeMap::new()),
            (
                "lon-1".into(),
                60_000,
                1,
                hist(&[1030.0]),
                BTreeMap::from([("http_status".to_owned(), 1)])
            ),
        ]
    );
    let mut hours: Vec<(String, u64, Vec<u64>)> = s
        .rollup_totals(&["c3".into()], T0, T0 + 3_600_000)
        .expect("totals")
        .into_iter()
        .map(|t| (t.region, t.totals.runs, t.totals.latency.to_vec()))
        .collect();
    hours.sort();
    assert_eq!(
        hours,
        vec![
            ("eu".into(), 2, hist(&[60.0, 1010.0])),
            ("uk".into(), 1, hist(&[1030.0])),
        ]
    );
});

conformance!(
    any_window_counts_the_minutes_that_start_in_it,
    |s: &dyn Store| {
        // Runs in the first 50 minutes after T0 from three probes in two regions, some failing,
        // several commits adding to the same rows, latencies spread over the buckets.
        const M: i64 = 60_000;
        let probes = [("fra-1", "eu"), ("ams-1", "eu"), ("lon-1", "uk")];
        let mut all = Vec::new();
        for minute in 0..50i64 {
            for (p, (probe, region)) in probes.iter().enumerate() {
                if (minute + p as i64) % 7 == 3 {
                    continue; // a gap now and then
                }
                let seq = (minute * 3 + p as i64) as u64;
                let mut r = row(
                    probe,
                    region,
                    seq,
                    "c5",
                    "v1",
                    T0 + minute * M + 1000 * p as i64,
                );
                r.result.timings.total_ms = 1.5f64.powi((seq % 30) as i32);
                if seq.is_multiple_of(5) {
                    r.result.status = Status::Fail;
                    r.result.failure = Some(FailureKind::HttpStatus);
                }
                all.push(r);
            }
        }
        for commit in all.chunks(17) {
            s.insert_results(commit).expect("insert");
        }
        let want = |from: i64, to: i64| {
            let mut by_region: BTreeMap<String, (u64, u64, Vec<u64>)> = BTreeMap::new();
            for r in &all {
                let started = r.result.started_at.unix_timestamp_nanos() as i64 / 1_000_000;
                let minute = started - started.rem_euclid(M);
                if minute >= from && minute < to {
                    let e = by_region
                        .entry(r.region.clone())
                        .or_insert_with(|| (0, 0, vec![0; LATENCY_BUCKETS]));
                    e.0 += 1;
                    e.1 += u64::from(r.result.status == Status::Fail);
                    e.2[latency_bucket(r.result.timings.total_ms)] += 1;
                }
            }
            by_region
        };
        let got = |from: i64, to: i64| -> BTreeMap<String, (u64, u64, Vec<u64>)> {
            s.rollup_totals(&["c5".into()], from, to)
                .expect("totals")
                .into_iter()
                .map(|t| {
                    (
                        t.region,
                        (t.totals.runs, t.totals.failures, t.totals.latency.to_vec()),
                    )
                })
                .collect()
        };
        // Windows ragged and aligned on minutes and 10-minute periods, at both ends.
        for from in [0, 1, 9, 10, 11, 19, 20, 33] {
            for to in [from + 1, from + 9, 30, 31, 39, 40, 49, 50, 61] {
                let (f, t) = (T0 + from * M, T0 + to * M);
                assert_eq!(got(f, t), want(f, t), "minutes {from} to {to}");
                // A window that starts or ends within a minute counts the minutes starting in it.
                assert_eq!(
                    got(f - 30_000, t - 1),
                    want(f, t),
                    "minutes {from} to {to}, shifted"
                );
            }
        }
        // 10-minute buckets read from the 10-minute tier, 5-minute ones from the minutes.
        for (bucket, from, to) in [(10 * M, 0, 50), (5 * M, 3, 47), (20 * M, 0, 60)] {
            let series = s
                .rollup_series("c5", T0 + from * M, T0 + to * M, bucket)
                .expect("series");
            for r in &series {
                let start = r.start_ms.max(T0 + from * M);
                let end = (r.start_ms + bucket).min(T0 + to * M);
                let w = &want(start, end)[&r.region];
                assert_eq!(
                    (r.totals.runs, r.totals.failures),
                    (w.0, w.1),
                    "{bucket} at {}",
                    r.start_ms
                );
            }
            let runs: u64 = series.iter().map(|r| r.totals.runs).sum();
            let all_runs: u64 = want(T0 + from * M, T0 + to * M).values().map(|w| w.0).sum();
            assert_eq!(runs, all_runs, "{bucket}");
        }
        // Pruning takes the minutes before the cut and the 10-minute periods whose every minute
        // is gone: whatever the window, what is left counts from the cut on.
        s.prune(T0, T0 + 30 * M).expect("prune");
        for (from, to) in [(0, 50), (20, 40), (25, 41), (29, 31), (30, 50), (33, 47)] {
            let (f, t) = (T0 + from * M, T0 + to * M);
            assert_eq!(
                got(f, t),
                want(f.max(T0 + 30 * M), t),
                "minutes {from} to {to} after the cut"
            );
        }
    }
);

conformance!(probes_are_registered_found_and_revoked, |s: &dyn Store| {
    let hash = [7u8; 32];
    s.add_probe(&probe("fra-1", "eu"), &hash).expect("add");
    assert!(matches!(
        s.add_probe(&probe("fra-1", "eu"), &[8u8; 32]),
        Err(StoreError::ProbeExists(id)) if id == "fra-1"
    ));
    s.add_probe(&probe("ams-1", "eu"), &[9u8; 32]).expect("add");
    let ids: Vec<String> = s
        .list_probes()
        .expect("list")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["ams-1", "fra-1"]);
    assert_eq!(
        s.probe_by_token(&hash).expect("by token"),
        Some(probe("fra-1", "eu"))
    );
    assert_eq!(s.probe_by_token(&[0u8; 32]).expect("by token"), None);

    s.touch_probe("fra-1", T0 + 10).expect("touch");
    s.insert_results(&[row("fra-1", "eu", 0, "c1", "v1", T0)])
        .expect("insert");
    let seen = s.probe_by_token(&hash).expect("by token").expect("live");
    assert_eq!(
        seen.last_seen_ms,
        Some(T0 + 10),
        "a push never moves last seen back"
    );
    s.insert_results(&[row("fra-1", "eu", 1, "c1", "v1", T0 + 100)])
        .expect("insert");
    let seen = s.probe_by_token(&hash).expect("by token").expect("live");
    assert_eq!(seen.last_seen_ms, Some(T0 + 105));

    s.revoke_probe("fra-1", T0 + 200).expect("revoke");
    assert_eq!(s.probe_by_token(&hash).expect("by token"), None);
    let listed = s.list_probes().expect("list");
    assert_eq!(listed[1].revoked_ms, Some(T0 + 200));
    s.set_probe_token("fra-1", &[5u8; 32]).expect("new token");
    assert_eq!(
        s.probe_by_token(&hash).expect("by token"),
        None,
        "the old token is dead"
    );
    let back = s
        .probe_by_token(&[5u8; 32])
        .expect("by token")
        .expect("live again");
    assert_eq!(back.revoked_ms, None);
    assert!(matches!(
        s.revoke_probe("nope", 0),
        Err(StoreError::NoSuchProbe(_))
    ));
    assert!(matches!(
        s.set_probe_token("nope", &hash),
        Err(StoreError::NoSuchProbe(_))
    ));
    assert!(s.size_bytes().expect("size") > 0);
});

conformance!(consensus_state_round_trips, |s: &dyn Store| {
    s.save_check_states(
        &[
            ("c1".into(), "{\"a\":1}".into()),
            ("c2".into(), "{\"b\":2}".into()),
        ],
        &[
            TransitionRecord {
                check_id: "c1".into(),
                vendor: "v1".into(),
                at_ms: T0,
                body: "first".into(),
            },
            TransitionRecord {
                check_id: "c2".into(),
                vendor: "v1".into(),
                at_ms: T0 + 1,
                body: "second".into(),
            },
        ],
        T0,
    )
    .expect("save");
    s.save_check_states(&[("c1".into(), "{\"a\":3}".into())], &[], T0 + 2)
        .expect("save");
    s.save_vendor_state("v1", "{\"v\":1}", T0).expect("vendor");
    s.save_probe_health("fra-1", "{\"h\":1}", T0)
        .expect("health");
    let mut c = s.load_consensus().expect("load");
    c.checks.sort();
    assert_eq!(
        c.checks,
        [
            ("c1".to_owned(), "{\"a\":3}".to_owned()),
            ("c2".to_owned(), "{\"b\":2}".to_owned())
        ]
    );
    assert_eq!(c.vendors, [("v1".to_owned(), "{\"v\":1}".to_owned())]);
    assert_eq!(c.probes, [("fra-1".to_owned(), "{\"h\":1}".to_owned())]);
    assert_eq!(
        s.transitions("v1", 10).expect("transitions"),
        ["second", "first"]
    );
    assert_eq!(s.transitions("v1", 1).expect("transitions"), ["second"]);
    assert!(s.transitions("v2", 10).expect("transitions").is_empty());

    s.insert_results(&[
        row("fra-1", "eu", 1, "c1", "v1", T0 + 2000),
        row("nyc-1", "us", 1, "c1", "v1", T0 + 1000),
    ])
    .expect("insert");
    let recent = s.recent_results(T0 + 1500).expect("recent");
    assert_eq!(recent.len(), 1);
    assert_eq!(
        (recent[0].probe_id.as_str(), recent[0].region.as_str()),
        ("fra-1", "eu")
    );
    let body: CheckResult = serde_json::from_str(&recent[0].body).expect("a result");
    assert_eq!(body.seq, 1);
    let two = s.recent_results(0).expect("recent");
    assert_eq!(two[0].started_ms, T0 + 1000, "oldest first");
});

fn open_write(subject: &str) -> IncidentWrite {
    IncidentWrite {
        subject_kind: SubjectKind::Vendor,
        subject: subject.into(),
        state: HARD_DOWN,
        summary: "down".into(),
        detail: "{}".into(),
        at_ms: T0,
        events: vec![("opened".into(), "{}".into())],
        deliveries: vec![
            NewDelivery {
                receiver: "pager".into(),
                event: AlertEvent::Trigger,
                payload: "{\"n\":1}".into(),
            },
            NewDelivery {
                receiver: "chat".into(),
                event: AlertEvent::Trigger,
                payload: "{\"n\":2}".into(),
            },
        ],
        ..IncidentWrite::default()
    }
}

conformance!(incidents_open_change_and_resolve, |s: &dyn Store| {
    let id = s.write_incident(&open_write("v1")).expect("open");
    let open = s
        .open_incident(SubjectKind::Vendor, "v1")
        .expect("read")
        .expect("open");
    assert_eq!(
        (open.id, open.state, open.opened_state, open.flaps),
        (id, HARD_DOWN, HARD_DOWN, 0)
    );
    assert_eq!(
        s.open_incident(SubjectKind::Probe, "v1").expect("read"),
        None
    );
    s.write_incident(&IncidentWrite {
        id: Some(id),
        state: IncidentState::Vendor(VendorState::Degraded),
        at_ms: T0 + 60_000,
        clear_since_ms: Some(T0 + 60_000),
        flap: true,
        events: vec![
            ("changed".into(), "{}".into()),
            ("flapped".into(), "{}".into()),
        ],
        deliveries: vec![NewDelivery {
            receiver: "pager".into(),
            event: AlertEvent::Update,
            payload: "{}".into(),
        }],
        ..open_write("v1")
    })
    .expect("change");
    let other = s.write_incident(&open_write("v2")).expect("open another");
    assert_ne!(other, id);
    assert_eq!(s.open_incidents().expect("open").len(), 2);

    s.write_incident(&IncidentWrite {
        id: Some(id),
        resolve: true,
        at_ms: T0 + 300_000,
        clear_since_ms: Some(T0 + 120_000),
        events: vec![("resolved".into(), "{}".into())],
        deliveries: vec![NewDelivery {
            receiver: "pager".into(),
            event: AlertEvent::Resolve,
            payload: "{}".into(),
        }],
        ..open_write("v1")
    })
    .expect("resolve");
    assert_eq!(
        s.open_incident(SubjectKind::Vendor, "v1").expect("read"),
        None
    );
    let (row, events, deliveries) = s.incident(id).expect("read").expect("exists");
    assert_eq!(
        row.resolved_ms,
        Some(T0 + 120_000),
        "resolved as of when it cleared"
    );
    assert_eq!(row.flaps, 1);
    assert_eq!(
        row.opened_state, HARD_DOWN,
        "what the first page said stays"
    );
    let kinds: Vec<(i64, &str)> = events.iter().map(|e| (e.seq, e.kind.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (1, "opened"),
            (2, "changed"),
            (3, "flapped"),
            (4, "resolved")
        ]
    );
    let delivery = |receiver: &str, triggered_ms, resolved_ms, last_sent_ms| DeliveryRow {
        receiver: receiver.into(),
        triggered_ms,
        resolved_ms,
        last_sent_ms,
    };
    assert_eq!(
        deliveries,
        [
            delivery("chat", Some(T0), None, Some(T0)),
            delivery("pager", Some(T0), Some(T0 + 300_000), Some(T0 + 300_000)),
        ]
    );
    assert_eq!(s.incident(id + other + 1000).expect("read"), None);

    let q = |subject: Option<&str>, open_only: bool, limit: u32| {
        s.incidents(&IncidentQuery {
            subject: subject.map(str::to_owned),
            open_only,
            limit,
        })
        .expect("incidents")
        .into_iter()
        .map(|r| r.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(q(None, false, 10), [other, id], "newest first");
    assert_eq!(q(None, true, 10), [other]);
    assert_eq!(q(Some("v1"), false, 10), [id]);
    assert_eq!(q(None, false, 1), [other]);
    let overlapping = |from, to| {
        s.incidents_overlapping(SubjectKind::Vendor, "v1", from, to, 10)
            .expect("overlapping")
            .len()
    };
    assert_eq!(overlapping(T0 - 10, T0 + 1), 1);
    assert_eq!(
        overlapping(T0 + 120_001, T0 + 999_999),
        0,
        "resolved before"
    );
    assert_eq!(overlapping(T0 - 100, T0), 0, "opened after");
});

conformance!(
    the_outbox_sends_in_order_retries_and_gives_up,
    |s: &dyn Store| {
        let id = s.write_incident(&open_write("v1")).expect("open");
        s.write_incident(&IncidentWrite {
            id: Some(id),
            at_ms: T0 + 10,
            events: vec![],
            deliveries: vec![NewDelivery {
                receiver: "pager".into(),
                event: AlertEvent::Resolve,
                payload: "{}".into(),
            }],
            ..open_write("v1")
        })
        .expect("queue a resolve");
        assert_eq!(s.outbox_pending().expect("pending"), 3);
        // Per (incident, receiver) only the oldest: the resolve waits for its trigger.
        let due = s.outbox_claim("a", T0 + 10, CLAIM, 10).expect("due");
        let events: Vec<(&str, AlertEvent)> =
            due.iter().map(|r| (r.receiver.as_str(), r.event)).collect();
        assert_eq!(
            events,
            [
                ("pager", AlertEvent::Trigger),
                ("chat", AlertEvent::Trigger)
            ]
        );
        // Claimed by `a`: another coordinator gets none of them.
        assert!(
            s.outbox_claim("b", T0 + 10, CLAIM, 10)
                .expect("due")
                .is_empty(),
            "claimed rows go to one coordinator"
        );
        assert_eq!(due[0].payload, "{\"n\":1}");
        assert_eq!(
            (due[0].incident_id, due[0].attempts, due[0].created_ms),
            (id, 0, T0)
        );
        assert!(
            s.outbox_claim("a", T0 - 1, CLAIM, 10)
                .expect("due")
                .is_empty(),
            "not due yet"
        );

        s.outbox_delivered(due[0].id, T0 + 20).expect("delivered");
        s.outbox_retry(due[1].id, "503", T0 + 1000).expect("retry");
        let due = s.outbox_claim("a", T0 + 20, CLAIM, 10).expect("due");
        let events: Vec<(&str, AlertEvent)> =
            due.iter().map(|r| (r.receiver.as_str(), r.event)).collect();
        assert_eq!(
            events,
            [("pager", AlertEvent::Resolve)],
            "the chat trigger waits for its retry"
        );
        let later = s.outbox_claim("a", T0 + 1000, CLAIM, 10).expect("due");
        let chat = later
            .iter()
            .find(|r| r.receiver == "chat")
            .expect("chat again");
        assert_eq!(chat.attempts, 1);
        assert_eq!(later.len(), 1, "the resolve is still `a`'s: {later:?}");
        // `a` died holding its claims: once they end, `b` takes both.
        let taken = s
            .outbox_claim("b", T0 + 1000 + CLAIM, CLAIM, 10)
            .expect("due");
        assert_eq!(taken.len(), 2, "{taken:?}");

        s.outbox_dead(chat.id, "410 gone", T0 + 1001).expect("dead");
        s.outbox_dead(chat.id, "410 gone", T0 + 1002)
            .expect("dead twice is once");
        assert_eq!(s.outbox_pending().expect("pending"), 1);
        let (_, timeline, _) = s.incident(id).expect("read").expect("exists");
        let dead: Vec<&str> = timeline
            .iter()
            .filter(|e| e.kind == "undeliverable")
            .map(|e| e.detail.as_str())
            .collect();
        assert_eq!(dead.len(), 1, "{timeline:?}");
        let detail: serde_json::Value = serde_json::from_str(dead[0]).expect("json");
        assert_eq!(
            (detail["receiver"].as_str(), detail["attempts"].as_i64()),
            (Some("chat"), Some(2))
        );
    }
);

conformance!(silences_are_stored_listed_and_removed, |s: &dyn Store| {
    let silence = |vendor: Option<&str>, starts_ms, ends_ms| SilenceRow {
        id: 0,
        vendor: vendor.map(str::to_owned),
        check_id: None,
        region: Some("eu".into()),
        starts_ms,
        ends_ms,
        comment: "maintenance".into(),
        created_by: "api".into(),
        created_ms: T0,
    };
    let a = s
        .add_silence(&silence(Some("v1"), T0, T0 + 100))
        .expect("add");
    let b = s
        .add_silence(&silence(None, T0 + 50, T0 + 200))
        .expect("add");
    assert_ne!(a, b);
    let all = s.silences(None).expect("all");
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0],
        SilenceRow {
            id: a,
            ..silence(Some("v1"), T0, T0 + 100)
        }
    );
    let ids = |at| -> Vec<i64> {
        s.silences(Some(at))
            .expect("at")
            .iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids(T0 + 10), [a]);
    assert_eq!(ids(T0 + 60), [a, b]);
    assert_eq!(ids(T0 + 100), [b], "ends are exclusive");
    assert!(s.remove_silence(a).expect("remove"));
    assert!(!s.remove_silence(a).expect("remove again"));
    assert_eq!(s.silences(None).expect("all").len(), 1);
});

conformance!(vendor_history_records_changes_only, |s: &dyn Store| {
    let eu = || Some("eu".to_owned());
    s.record_vendor_status(
        "v1",
        "{}",
        &[(None, "operational".into()), (eu(), "operational".into())],
        T0,
    )
    .expect("record");
    s.record_vendor_status(
        "v1",
        "{}",
        &[(None, "operational".into()), (eu(), "hard_down".into())],
        T0 + 1000,
    )
    .expect("record");
    // Nothing changed: nothing recorded.
    s.record_vendor_status(
        "v1",
        "{}",
        &[(None, "operational".into()), (eu(), "hard_down".into())],
        T0 + 2000,
    )
    .expect("record");
    // The region drops out of the status: unknown.
    s.record_vendor_status(
        "v1",
        "{\"last\":true}",
        &[(None, "degraded".into())],
        T0 + 3000,
    )
    .expect("record");
    let h = s
        .vendor_history("v1", T0 + 500, T0 + 10_000)
        .expect("history");
    let got: Vec<(Option<&str>, &str, i64)> = h
        .iter()
        .map(|c| (c.region.as_deref(), c.state.as_str(), c.at_ms))
        .collect();
    assert_eq!(
        got,
        [
            (None, "operational", T0),
            (Some("eu"), "operational", T0),
            (Some("eu"), "hard_down", T0 + 1000),
            (None, "degraded", T0 + 3000),
            (Some("eu"), UNKNOWN_STATE, T0 + 3000),
        ]
    );
    let c = s.load_consensus().expect("load");
    assert_eq!(c.vendors, [("v1".to_owned(), "{\"last\":true}".to_owned())]);
    assert!(
        s.vendor_history("v2", 0, i64::MAX)
            .expect("history")
            .is_empty()
    );

    // Pruning keeps, per scope, the state in force at the cut.
    s.prune_tiers(0, T0 + 2000).expect("prune");
    let h = s.vendor_history("v1", 0, i64::MAX).expect("history");
    let got: Vec<(Option<&str>, &str)> = h
        .iter()
        .map(|c| (c.region.as_deref(), c.state.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (None, "operational"),
            (Some("eu"), "hard_down"),
            (None, "degraded"),
            (Some("eu"), UNKNOWN_STATE),
        ]
    );
});

fn node(id: &str) -> Node {
    Node {
        node: id.into(),
        address: "127.0.0.1:7470".into(),
        version: "test".into(),
        started_ms: T0,
    }
}

fn parts(held: &[vantage_coordinator::store::lease::Lease]) -> Vec<u32> {
    held.iter().map(|l| l.part).collect()
}

conformance!(leases_are_shared_fenced_and_taken_over, |s: &dyn Store| {
    const TTL: i64 = 1_500;
    let a = s.balance_leases(&node("a"), TTL).expect("balance");
    let first = a.now_ms;
    assert_eq!(
        (a.held.len(), a.live),
        (PARTS as usize, 1),
        "alone, it takes all"
    );
    assert!(a.held.iter().all(|l| l.epoch == 1));
    // A second coordinator: nothing is free yet; the first gives up what is above its share,
    // and the second takes it.
    let b = s.balance_leases(&node("b"), TTL).expect("balance");
    assert_eq!((b.held.len(), b.live), (0, 2));
    let a = s.balance_leases(&node("a"), TTL).expect("balance");
    assert_eq!(parts(&a.held), (0..8).collect::<Vec<u32>>());
    let b = s.balance_leases(&node("b"), TTL).expect("balance");
    assert_eq!(parts(&b.held), (8..16).collect::<Vec<u32>>());
    assert!(
        b.held.iter().all(|l| l.epoch == 2),
        "a new holder, a new epoch: {b:?}"
    );

    // A write under a fence the writer no longer holds is refused; under the holder's, it goes.
    let fenced = |node: &str, part: u32, epoch: i64| IncidentWrite {
        fence: Some(Fence {
            node: node.into(),
            part,
            epoch,
        }),
        ..open_write("v1")
    };
    let stale = s.write_incident(&fenced("a", 15, 1));
    assert!(matches!(stale, Err(StoreError::Fenced(_))), "{stale:?}");
    assert_eq!(
        s.open_incident(SubjectKind::Vendor, "v1").expect("read"),
        None,
        "nothing written"
    );
    s.write_incident(&fenced("b", 15, 2))
        .expect("the holder writes");

    // `a` stops renewing (dead, or paused): once its leases run out, `b` takes them, at a new
    // epoch, and `a`'s fences are refused.
    std::thread::sleep(std::time::Duration::from_millis(TTL as u64 + 200));
    let b = s.balance_leases(&node("b"), TTL).expect("balance");
    assert_eq!((b.held.len(), b.live), (PARTS as usize, 1));
    let p0 = b.held.iter().find(|l| l.part == 0).expect("part 0");
    assert_eq!(p0.epoch, 2);
    let late = s.write_incident(&IncidentWrite {
        subject: "v2".into(),
        ..fenced("a", 0, 1)
    });
    assert!(matches!(late, Err(StoreError::Fenced(_))), "{late:?}");
    let (nodes, leases) = s.cluster(TTL).expect("cluster");
    assert_eq!(
        nodes
            .iter()
            .map(|n| n.node.node.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert!(leases.iter().all(|l| l.holder.as_deref() == Some("b")));
    // Coverage: `a`'s span of partition 0, then `b`'s, with the gap between.
    let spans = s.coverage(0, first - 1, i64::MAX).expect("coverage");
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(
        spans[0].1 < spans[1].0,
        "a gap while nobody held it: {spans:?}"
    );

    // A graceful stop frees everything at once.
    s.release_leases("b").expect("release");
    let (nodes, leases) = s.cluster(TTL).expect("cluster");
    assert!(nodes.is_empty());
    assert!(leases.iter().all(|l| l.holder.is_none()));
    let c = s.balance_leases(&node("c"), TTL).expect("balance");
    assert_eq!(c.held.len(), PARTS as usize);
});

conformance!(incident_writes_are_compare_and_set, |s: &dyn Store| {
    let id = s.write_incident(&open_write("v1")).expect("open");
    let again = s.write_incident(&open_write("v1"));
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "one open incident per subject: {again:?}"
    );
    let change = |expect_version| IncidentWrite {
        id: Some(id),
        expect_version,
        events: vec![],
        deliveries: vec![],
        ..open_write("v1")
    };
    s.write_incident(&change(Some(0))).expect("from version 0");
    let stale = s.write_incident(&change(Some(0)));
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    s.write_incident(&change(Some(1))).expect("from version 1");
    s.write_incident(&change(None)).expect("unchecked");
    let row = s
        .open_incident(SubjectKind::Vendor, "v1")
        .expect("read")
        .expect("open");
    assert_eq!(row.version, 3);
});

/// SQLite has one coordinator, which feeds its engine in process; PostgreSQL has a feed.
#[test]
fn only_a_shared_store_has_a_feed() {
    let f = open(Backend::Sqlite, "feed_sqlite");
    assert!(f.store.feed().is_none());
    let f = open(Backend::Postgres, "feed_postgres");
    assert!(f.store.feed().is_some());
}

/// The feed never skips a result committed late: a transaction that began first but commits
/// last holds back what came after it until it commits, then both come, in order. A handle's
/// feed passes over the results it wrote itself.
#[test]
fn the_postgres_feed_waits_for_a_transaction_that_commits_late() {
    let url = server().create_database("feed_order");
    let store = PostgresStore::open(&url, None).expect("open postgresql");
    let feed = store.feed().expect("a feed");
    let start = feed.feed_start().expect("start");
    let late = row("fra-1", "eu", 1, "c1", "v1", T0);
    let body = serde_json::to_string(&late.result).expect("json");
    // A writer that inserts, then holds its transaction open for two seconds.
    let sql = format!(
        "BEGIN; INSERT INTO results (probe_id, boot_id, seq, check_id, vendor, region, started_ms, received_ms, status, total_ms, body) \
         VALUES ('fra-1', 'fra-1-boot', 1, 'c1', 'v1', 'eu', {T0}, {}, 'ok', 20, '{}'); SELECT pg_sleep(2); COMMIT;",
        T0 + 5,
        body.replace('\'', "''")
    );
    let writer = std::thread::spawn(move || server().psql("feed_order", &sql));
    // Its insert is in (it holds the row's key) before the second one commits.
    vantage_e2e::wait_until(
        "the slow transaction's insert",
        std::time::Duration::from_secs(10),
        || {
            server()
            .psql(
                "feed_order",
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'BEGIN; INSERT INTO results%' AND state = 'active'",
            )
            .is_ok_and(|n| n == "1")
        },
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Another coordinator's store handle.
    let other = PostgresStore::open(&url, None).expect("open postgresql");
    other
        .insert_results(&[row("ams-1", "eu", 2, "c1", "v1", T0 + 1000)])
        .expect("insert");
    let (early, at) = feed.feed_after(start, 100).expect("feed");
    assert!(
        early.is_empty(),
        "nothing passes a transaction still running: {early:?}"
    );
    assert_eq!(at, start);
    writer
        .join()
        .expect("writer")
        .expect("the slow transaction commits");
    let (rows, end) = feed.feed_after(start, 100).expect("feed");
    let got: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r.result.probe_id.as_str(), r.result.seq))
        .collect();
    assert_eq!(got, [("fra-1", 1), ("ams-1", 2)], "commit-safe order");
    assert!(end > start);
    let (none, same) = feed.feed_after(end, 100).expect("feed");
    assert!(none.is_empty());
    assert_eq!(same, end);

    // What this handle writes itself, its writer has already: the feed passes over it, but
    // moves on past it.
    store
        .insert_results(&[row("lon-1", "uk", 3, "c1", "v1", T0 + 2000)])
        .expect("insert");
    let (own, past) = feed.feed_after(end, 100).expect("feed");
    assert!(own.is_empty(), "{own:?}");
    assert!(past > end, "the cursor moves past the handle's own results");
    let (others, _) = other
        .feed()
        .expect("a feed")
        .feed_after(end, 100)
        .expect("feed");
    let got: Vec<&str> = others.iter().map(|r| r.result.probe_id.as_str()).collect();
    assert_eq!(got, ["lon-1"], "another handle sees it");
}

fn new_run(vendor: &str, suite: Option<&str>, created_ms: i64) -> NewRun {
    NewRun {
        vendor: vendor.into(),
        label: Some("before <the> change".into()),
        suite: suite.map(str::to_owned),
        checks: vec!["c1".into(), "c2".into()],
        regions: vec![],
        probes: vec![
            RunProbe {
                id: "fra-1".into(),
                region: "eu".into(),
                checks: vec!["c1".into(), "c2".into()],
            },
            RunProbe {
                id: "iad-1".into(),
                region: "us".into(),
                checks: vec!["c2".into()],
            },
        ],
        created_ms,
        deadline_ms: created_ms + 60_000,
    }
}

conformance!(
    runs_keep_their_results_apart_from_the_schedule,
    |s: &dyn Store| {
        assert_eq!(s.last_run_id().expect("last"), 0);
        let first = s
            .create_run(&new_run("v1", Some("static"), T0))
            .expect("run");
        let second = s.create_run(&new_run("v1", None, T0 + 1000)).expect("run");
        let other = s
            .create_run(&new_run("v2", Some("static"), T0 + 2000))
            .expect("run");
        assert!(first < second && second < other, "ids grow");
        assert_eq!(s.last_run_id().expect("last"), other);
        let got = s.run(first).expect("read").expect("the run");
        assert_eq!(got.run, new_run("v1", Some("static"), T0));
        assert!(s.run(other + 100).expect("read").is_none());

        let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.runs(Some("v1"), None, 10).expect("list")),
            [second, first]
        );
        assert_eq!(ids(s.runs(Some("v1"), None, 1).expect("list")), [second]);
        assert_eq!(
            ids(s.runs(None, Some("static"), 10).expect("list")),
            [other, first]
        );
        assert_eq!(
            ids(s.runs(None, None, 10).expect("list")),
            [other, second, first]
        );
        // Open: after an id, before the deadline.
        assert_eq!(
            ids(s.open_runs(first, T0 + 30_000).expect("open")),
            [second, other]
        );
        assert_eq!(
            ids(s.open_runs(0, T0 + 60_500).expect("open")),
            [second, other]
        );
        assert!(s.open_runs(0, T0 + 70_000).expect("open").is_empty());

        let tagged = |probe: &str, region: &str, seq: u64, check: &str, run: i64| {
            let mut r = row(probe, region, seq, check, "v1", T0 + 500);
            r.result.run = Some(run);
            r
        };
        let batch = vec![
            tagged("iad-1", "us", 7, "c2", first),
            tagged("fra-1", "eu", 8, "c2", first),
            tagged("fra-1", "eu", 9, "c1", first),
            tagged("fra-1", "eu", 10, "c1", second),
        ];
        let out = s.insert_run_results(&batch).expect("insert");
        assert_eq!((out.inserted, out.duplicates), (4, 0));
        // The same (run, check, probe) again, even under a new seq, is a duplicate.
        let again = s
            .insert_run_results(&[tagged("fra-1", "eu", 11, "c1", first)])
            .expect("insert");
        assert_eq!((again.inserted, again.duplicates), (0, 1));
        let results = s.run_results(first, None).expect("results");
        let pairs: Vec<(&str, &str)> = results
            .iter()
            .map(|r| (r.result.check_id.as_str(), r.result.probe_id.as_str()))
            .collect();
        assert_eq!(pairs, [("c1", "fra-1"), ("c2", "fra-1"), ("c2", "iad-1")]);
        assert_eq!(results[0].result, batch[2].result, "stored as sent");
        assert_eq!(results[2].region, "us");
        assert_eq!(
            s.run_results(first, Some("iad-1")).expect("results").len(),
            1
        );
        assert_eq!(s.run_results(other, None).expect("results").len(), 0);

        // Never a scheduled result: not in the raw results, not in the rollups.
        assert!(s.query_results(&query(|_| ())).expect("query").is_empty());
        assert!(
            s.rollups("c1", 0, T0 + 3_600_000)
                .expect("rollups")
                .is_empty()
        );

        // Pruned with the raw results: a run created before the cut goes, with its results.
        s.prune(T0 + 500, 0).expect("prune");
        assert!(s.run(first).expect("read").is_none());
        assert!(s.run_results(first, None).expect("results").is_empty());
        assert!(s.run(second).expect("read").is_some());
        assert_eq!(s.run_results(second, None).expect("results").len(), 1);
    }
);
