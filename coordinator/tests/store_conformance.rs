//! One conformance suite for every `Store` backend: each test runs against SQLite (a file in
//! a temporary directory) and against a real PostgreSQL (a cluster this test binary starts,
//! a fresh database per test), and expects the same answers from both.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use time::OffsetDateTime;
use vantage_checks::result::{CheckResult, FailureKind, Status};
use vantage_coordinator::consensus::vendor::VendorState;
use vantage_coordinator::store::report::UNKNOWN_STATE;
use vantage_coordinator::store::state::{
    AlertEvent, DeliveryRow, IncidentQuery, IncidentState, IncidentWrite, NewDelivery, SilenceRow,
    SubjectKind, TransitionRecord,
};
use vantage_coordinator::store::{
    IngestRow, PostgresStore, ProbeRecord, ResultQuery, SqliteStore, Stop, Store, StoreError,
    Synchronous, latency_bucket,
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
});

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
        let due = s.outbox_due(T0 + 10, 10).expect("due");
        let events: Vec<(&str, AlertEvent)> =
            due.iter().map(|r| (r.receiver.as_str(), r.event)).collect();
        assert_eq!(
            events,
            [
                ("pager", AlertEvent::Trigger),
                ("chat", AlertEvent::Trigger)
            ]
        );
        assert_eq!(due[0].payload, "{\"n\":1}");
        assert_eq!(
            (due[0].incident_id, due[0].attempts, due[0].created_ms),
            (id, 0, T0)
        );
        assert!(
            s.outbox_due(T0 - 1, 10).expect("due").is_empty(),
            "not due yet"
        );

        s.outbox_delivered(due[0].id, T0 + 20).expect("delivered");
        s.outbox_retry(due[1].id, "503", T0 + 1000).expect("retry");
        let due = s.outbox_due(T0 + 20, 10).expect("due");
        let events: Vec<(&str, AlertEvent)> =
            due.iter().map(|r| (r.receiver.as_str(), r.event)).collect();
        assert_eq!(
            events,
            [("pager", AlertEvent::Resolve)],
            "the chat trigger waits for its retry"
        );
        let later = s.outbox_due(T0 + 1000, 10).expect("due");
        let chat = later
            .iter()
            .find(|r| r.receiver == "chat")
            .expect("chat again");
        assert_eq!(chat.attempts, 1);

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
