//! `vantage-coordinator migrate --to`: a SQLite store filled through the `Store` trait is
//! copied by the binary into a real PostgreSQL (a cluster this test binary starts), and every
//! read through the trait answers the same from both; then the copy is written to (ids and
//! sequences), a second copy into it is refused, and so are a running coordinator's store and
//! targets that cannot be reached.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use time::OffsetDateTime;
use vantage_checks::model::{Role, Sla, Vendor};
use vantage_checks::result::{CheckResult, Status};
use vantage_coordinator::consensus::vendor::VendorState;
use vantage_coordinator::report::{Window, sla};
use vantage_coordinator::store::lease::{Node, PARTS, part_of};
use vantage_coordinator::store::run::{NewRun, RunProbe};
use vantage_coordinator::store::state::{
    AlertEvent, IncidentQuery, IncidentState, IncidentWrite, NewDelivery, SilenceRow, SubjectKind,
    TransitionRecord,
};
use vantage_coordinator::store::{
    IngestRow, PostgresStore, ProbeRecord, ResultQuery, SqliteStore, Store, Synchronous,
};
use vantage_e2e::postgres::Postgres;

fn server() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(Postgres::start)
}

const MIN: i64 = 60_000;
/// 2026-11-30T22:00:00Z: the data's first minute, two hours before a UTC day ends, so that
/// minute, hour and day rollups all hold rows.
const T0: i64 = 1_796_076_000_000 - 2 * 3_600_000;
const VENDOR: &str = "acme";
const CHECKS: [&str; 2] = ["www", "api"];

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("a time")
}

fn migrate(data_dir: &Path, to: &str) -> Output {
    Command::new(support::BIN)
        .arg("migrate")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--to", to])
        .env_remove("VANTAGE_CONFIG")
        .output()
        .expect("run migrate")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn probe(id: &str, region: &str) -> ProbeRecord {
    ProbeRecord {
        id: id.into(),
        region: region.into(),
        labels: BTreeMap::from([("network".to_owned(), "eyeball".to_owned())]),
        created_ms: T0 - MIN,
        revoked_ms: None,
        last_seen_ms: None,
    }
}

fn incident(subject: &str, at_ms: i64) -> IncidentWrite {
    IncidentWrite {
        subject_kind: SubjectKind::Vendor,
        subject: subject.into(),
        state: IncidentState::Vendor(VendorState::HardDown),
        summary: format!("{subject} is down"),
        detail: "{\"checks\":[\"www\"]}".into(),
        at_ms,
        events: vec![("opened".into(), "{}".into())],
        deliveries: ["pager", "chat"]
            .into_iter()
            .map(|receiver| NewDelivery {
                receiver: receiver.into(),
                event: AlertEvent::Trigger,
                payload: format!("{{\"to\":\"{receiver}\"}}"),
            })
            .collect(),
        ..IncidentWrite::default()
    }
}

/// A store with some of everything: two probes (one revoked) in two regions, 3 hours of
/// results of two checks (failures and probe errors among them), consensus state and
/// transitions, vendor state history, an incident resolved and one open with a timeline,
/// deliveries and queued alerts (delivered, retried, dead, pending), two silences (one
/// removed), and coverage from two lease epochs.
fn fill(s: &dyn Store) {
    s.add_probe(&probe("fra-1", "eu-west"), &[1; 32])
        .expect("add probe");
    s.add_probe(&probe("iad-1", "us-east"), &[2; 32])
        .expect("add probe");
    s.add_probe(&probe("old-1", "eu-west"), &[3; 32])
        .expect("add probe");
    s.revoke_probe("old-1", T0).expect("revoke");
    let mut seq = 0;
    for minute in 0..180 {
        let rows: Vec<IngestRow> = [("fra-1", "eu-west"), ("iad-1", "us-east")]
            .into_iter()
            .flat_map(|(p, region)| CHECKS.map(|c| (p, region, c)))
            .map(|(p, region, c)| {
                seq += 1;
                let started = T0 + minute * MIN + 7_000;
                let mut r: CheckResult = support::result(p, seq, c, VENDOR, at(started));
                if seq % 17 == 0 {
                    r.status = Status::ProbeError;
                    r.failure = None;
                }
                r.timings.total_ms = 5.0 + (seq % 40) as f64 * 3.5;
                IngestRow {
                    region: region.into(),
                    received_ms: started + 150,
                    result: r,
                }
            })
            .collect();
        s.insert_results(&rows).expect("insert");
    }
    s.save_check_states(
        &[
            ("www".into(), "{\"verdict\":\"fail\"}".into()),
            ("api".into(), "{\"verdict\":\"pass\"}".into()),
        ],
        &[TransitionRecord {
            check_id: "www".into(),
            vendor: VENDOR.into(),
            at_ms: T0 + 30 * MIN,
            body: "{\"to\":\"fail\"}".into(),
        }],
        T0 + 30 * MIN,
    )
    .expect("check states");
    s.save_vendor_state(
        VENDOR,
        "{\"global\":{\"state\":\"hard_down\"}}",
        T0 + 30 * MIN,
    )
    .expect("vendor state");
    s.save_probe_health("fra-1", "{\"quarantined\":false}", T0)
        .expect("probe health");
    for (m, global, eu) in [
        (0, "operational", "operational"),
        (30, "hard_down", "hard_down"),
        (50, "operational", "degraded"),
        (120, "hard_down", "hard_down"),
    ] {
        s.record_vendor_status(
            VENDOR,
            "{}",
            &[(None, global.into()), (Some("eu-west".into()), eu.into())],
            T0 + m * MIN,
        )
        .expect("vendor history");
    }
    // Resolved: opened, changed, resolved, with its alerts delivered.
    let first = s
        .write_incident(&incident(VENDOR, T0 + 30 * MIN))
        .expect("open");
    s.write_incident(&IncidentWrite {
        id: Some(first),
        resolve: true,
        at_ms: T0 + 50 * MIN,
        events: vec![("resolved".into(), "{}".into())],
        deliveries: vec![NewDelivery {
            receiver: "pager".into(),
            event: AlertEvent::Resolve,
            payload: "{\"resolved\":true}".into(),
        }],
        ..incident(VENDOR, T0 + 30 * MIN)
    })
    .expect("resolve");
    for row in s
        .outbox_claim("old-node", T0 + 60 * MIN, MIN, 10)
        .expect("claim")
    {
        s.outbox_delivered(row.id, T0 + 60 * MIN)
            .expect("delivered");
    }
    // Open, flapping, with alerts pending: one retried, one given up, one claimed by the old
    // coordinator when it stopped, one new.
    let open = s
        .write_incident(&incident(VENDOR, T0 + 120 * MIN))
        .expect("open again");
    s.write_incident(&IncidentWrite {
        id: Some(open),
        flap: true,
        at_ms: T0 + 150 * MIN,
        events: vec![("flapped".into(), "{}".into())],
        deliveries: vec![NewDelivery {
            receiver: "pager".into(),
            event: AlertEvent::Update,
            payload: "{\"flap\":1}".into(),
        }],
        ..incident(VENDOR, T0 + 120 * MIN)
    })
    .expect("flap");
    let due = s
        .outbox_claim("old-node", T0 + 150 * MIN, MIN, 10)
        .expect("claim");
    assert_eq!(
        due.len(),
        3,
        "the first one's resolve, the triggers: {due:?}"
    );
    let chat = due
        .iter()
        .find(|r| r.receiver == "chat" && r.incident_id == open)
        .expect("chat");
    s.outbox_retry(chat.id, "503 from chat", T0 + 151 * MIN)
        .expect("retry");
    s.outbox_dead(chat.id, "410 gone", T0 + 152 * MIN)
        .expect("dead");
    s.write_incident(&IncidentWrite {
        id: Some(open),
        at_ms: T0 + 170 * MIN,
        events: vec![("reminded".into(), "{}".into())],
        deliveries: vec![NewDelivery {
            receiver: "chat".into(),
            event: AlertEvent::Reminder,
            payload: "{\"remind\":1}".into(),
        }],
        ..incident(VENDOR, T0 + 120 * MIN)
    })
    .expect("remind");
    let silence = |comment: &str| SilenceRow {
        id: 0,
        vendor: Some(VENDOR.into()),
        check_id: None,
        region: Some("eu-west".into()),
        starts_ms: T0 + 100 * MIN,
        ends_ms: T0 + 110 * MIN,
        comment: comment.into(),
        created_by: "cli:sre".into(),
        created_ms: T0 + 90 * MIN,
    };
    s.add_silence(&silence("maintenance, ticket 1234"))
        .expect("silence");
    let gone = s.add_silence(&silence("a mistake")).expect("silence");
    assert!(s.remove_silence(gone).expect("remove"));
    // Two on-demand runs, one with results; the copy keeps their ids and the next run's id
    // follows them.
    let run = |label: &str| NewRun {
        vendor: VENDOR.into(),
        label: Some(label.into()),
        suite: Some("static".into()),
        checks: vec!["a".into()],
        regions: vec![],
        probes: vec![RunProbe {
            id: "p1".into(),
            region: "eu-west".into(),
            checks: vec!["a".into()],
        }],
        created_ms: T0 + 95 * MIN,
        deadline_ms: T0 + 96 * MIN,
    };
    let before = s.create_run(&run("before")).expect("run");
    s.create_run(&run("after")).expect("run");
    let mut answer = support::result("p1", 9_999, "a", VENDOR, at(T0 + 95 * MIN));
    answer.run = Some(before);
    s.insert_run_results(&[IngestRow {
        region: "eu-west".into(),
        received_ms: T0 + 95 * MIN + 10,
        result: answer,
    }])
    .expect("run result");
    // Two runs of the old coordinator, each stopped cleanly: coverage from epochs 1 and 2.
    for run in ["old-node-1", "old-node-2"] {
        let node = Node {
            node: run.into(),
            address: "127.0.0.1:7470".into(),
            version: "0.1.0".into(),
            started_ms: T0,
        };
        s.balance_leases(&node, 10_000).expect("leases");
        s.release_leases(run).expect("release");
    }
}

fn results(s: &dyn Store) -> Vec<String> {
    s.query_results(&ResultQuery {
        limit: 10_000,
        ..ResultQuery::default()
    })
    .expect("results")
    .iter()
    .map(|r| serde_json::to_string(r).expect("json"))
    .collect()
}

/// Everything the coordinator reads, through the trait, as text to compare.
fn reads(s: &dyn Store, now_ms: i64) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    let mut put = |k: &'static str, v: String| {
        out.insert(k, v);
    };
    put("probes", format!("{:?}", s.list_probes().expect("probes")));
    put(
        "token",
        format!("{:?}", s.probe_by_token(&[1; 32]).expect("by token")),
    );
    let all = results(s);
    assert_eq!(all.len(), 180 * 4);
    put("results", all.join("\n"));
    put(
        "results of one check and region",
        format!(
            "{:?}",
            s.query_results(&ResultQuery {
                check: Some("www".into()),
                region: Some("us-east".into()),
                since_ms: Some(T0 + 10 * MIN),
                until_ms: Some(T0 + 20 * MIN),
                limit: 100,
                ..ResultQuery::default()
            })
            .expect("results")
            .iter()
            .map(|r| (r.probe_id.clone(), r.seq))
            .collect::<Vec<_>>()
        ),
    );
    for c in CHECKS {
        put(
            if c == "www" {
                "rollups www"
            } else {
                "rollups api"
            },
            format!("{:?}", s.rollups(c, T0, T0 + 180 * MIN).expect("rollups")),
        );
    }
    let checks: Vec<String> = CHECKS.map(str::to_owned).to_vec();
    put(
        "rollup totals (minutes, hours, days)",
        format!(
            "{:?}",
            s.rollup_totals(&checks, T0 - 86_400_000, T0 + 86_400_000)
                .expect("totals")
        ),
    );
    put(
        "rollup series",
        format!(
            "{:?}",
            s.rollup_series("www", T0, T0 + 180 * MIN, 3_600_000)
                .expect("series")
        ),
    );
    let vendor = Vendor {
        id: VENDOR.into(),
        name: "Acme".into(),
        sla: Sla {
            availability: Some(0.995),
            ..Sla::default()
        },
    };
    let report = sla::sla_report(
        s,
        &vendor,
        &[("www".into(), Role::Data), ("api".into(), Role::Control)],
        Window::new(T0, T0 + 180 * MIN).expect("window"),
        now_ms,
    )
    .expect("sla report");
    put("sla report", format!("{report:?}"));
    // Keyed records: neither backend promises an order.
    let mut c = s.load_consensus().expect("consensus");
    for records in [&mut c.checks, &mut c.vendors, &mut c.probes] {
        records.sort();
    }
    put(
        "consensus",
        format!("{:?} {:?} {:?}", c.checks, c.vendors, c.probes),
    );
    put(
        "transitions",
        format!("{:?}", s.transitions(VENDOR, 10).expect("transitions")),
    );
    put(
        "vendor history",
        format!(
            "{:?}",
            s.vendor_history(VENDOR, T0 + 40 * MIN, T0 + 180 * MIN)
                .expect("history")
        ),
    );
    let incidents = s
        .incidents(&IncidentQuery {
            limit: 10,
            ..IncidentQuery::default()
        })
        .expect("incidents");
    assert_eq!(incidents.len(), 2);
    let records: Vec<_> = incidents
        .iter()
        .map(|i| s.incident(i.id).expect("incident"))
        .collect();
    put("incidents", format!("{incidents:?} {records:?}"));
    put(
        "open incidents",
        format!("{:?}", s.open_incidents().expect("open")),
    );
    put(
        "silences",
        format!("{:?}", s.silences(None).expect("silences")),
    );
    let runs = s.runs(None, None, 100).expect("runs");
    let run_results: Vec<_> = runs
        .iter()
        .map(|r| s.run_results(r.id, None).expect("run results"))
        .collect();
    put("runs", format!("{runs:?} {run_results:?}"));
    put(
        "outbox pending",
        s.outbox_pending().expect("pending").to_string(),
    );
    let coverage: Vec<_> = (0..PARTS)
        .map(|p| s.coverage(p, 0, i64::MAX).expect("coverage"))
        .collect();
    put("coverage", format!("{coverage:?}"));
    out
}

/// The queued alerts a coordinator would send next (claimed far in the future, past any
/// claim and retry): this mutates the store, so it is read last.
fn due(s: &dyn Store) -> Vec<(i64, i64, String, AlertEvent, String, u32, i64)> {
    s.outbox_claim("checker", T0 + 10_000 * MIN, MIN, 100)
        .expect("claim")
        .into_iter()
        .map(|r| {
            (
                r.id,
                r.incident_id,
                r.receiver,
                r.event,
                r.payload,
                r.attempts,
                r.created_ms,
            )
        })
        .collect()
}

#[test]
fn migrate_copies_a_store_that_reads_back_the_same_and_takes_new_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("vantage.db");
    fill(&SqliteStore::open(&db, Synchronous::Normal).expect("open sqlite"));
    let url = server().create_database("migrate_copies");
    // A coordinator already following the target's feed (its schema made, its tables empty)
    // must not see the copied history as new results.
    let early: Box<dyn Store> = Box::new(PostgresStore::open(&url, None).expect("open postgresql"));
    let early_cursor = early
        .feed()
        .expect("postgresql has a feed")
        .feed_start()
        .expect("feed start");

    let out = migrate(dir.path(), &url);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "migrate failed: {stderr}\n{stdout}");
    println!("{stdout}");
    let line = |table: &str| {
        stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&table))
            .unwrap_or_default()
    };
    assert_eq!(line("results"), ["results", "720", "rows"], "{stdout}");
    assert_eq!(line("silences"), ["silences", "1", "rows"], "{stdout}");
    assert!(stdout.contains("verified:"), "{stdout}");

    let now_ms = T0 + 1_000 * MIN;
    let sqlite: Box<dyn Store> =
        Box::new(SqliteStore::open(&db, Synchronous::Normal).expect("open sqlite"));
    let pg: Box<dyn Store> = Box::new(PostgresStore::open(&url, None).expect("open postgresql"));
    let (before, after) = (reads(&*sqlite, now_ms), reads(&*pg, now_ms));
    for (k, v) in &before {
        assert_eq!(
            Some(v),
            after.get(k),
            "{k} reads differently after migrating"
        );
    }
    assert_eq!(due(&*sqlite), due(&*pg), "the queued alerts");

    // Engines following the feed, from before the copy or after it, are not fed the history.
    let feed = pg.feed().expect("postgresql has a feed");
    let start = feed.feed_start().expect("feed start");
    for cursor in [early_cursor, start] {
        assert_eq!(
            feed.feed_after(cursor, 1000).expect("feed").0.len(),
            0,
            "copied results are not in the feed"
        );
    }
    drop(early);

    // The old coordinator's leases are not, but their epochs are: a new coordinator's first
    // lease takes the next epoch, so its coverage does not stretch the old span.
    let (nodes, leases) = pg.cluster(i64::MAX / 2).expect("cluster");
    assert!(nodes.is_empty(), "{nodes:?}");
    assert!(
        leases.iter().all(|l| l.holder.is_none() && l.epoch == 2),
        "{leases:?}"
    );
    let part = part_of(SubjectKind::Vendor, VENDOR);
    let old_coverage = pg.coverage(part, 0, i64::MAX).expect("coverage");
    let node = Node {
        node: "new-node".into(),
        address: "127.0.0.1:7471".into(),
        version: "0.2.0".into(),
        started_ms: now_ms,
    };
    let state = pg.balance_leases(&node, 10_000).expect("leases");
    assert!(state.held.iter().all(|l| l.epoch == 3), "{:?}", state.held);
    let coverage = pg.coverage(part, 0, i64::MAX).expect("coverage");
    assert_eq!(coverage[..old_coverage.len()], old_coverage[..]);
    assert_eq!(coverage.len(), old_coverage.len() + 1, "{coverage:?}");

    // New rows take ids past the copied ones (and past a removed silence's).
    let silences = pg.silences(None).expect("silences");
    let silence = pg
        .add_silence(&SilenceRow {
            id: 0,
            ..silences[0].clone()
        })
        .expect("a silence after migrating");
    assert_eq!(
        silence,
        silences[0].id + 2,
        "the removed silence's id is not reused"
    );
    let runs = pg.runs(None, None, 10).expect("runs");
    let next_run = pg
        .create_run(&NewRun {
            label: Some("after migrating".into()),
            ..runs[0].run.clone()
        })
        .expect("a run after migrating");
    assert_eq!(
        next_run,
        runs[0].id + 1,
        "run ids go on after the copied ones"
    );
    let max_incident = pg
        .incidents(&IncidentQuery {
            limit: 1,
            ..IncidentQuery::default()
        })
        .expect("incidents")[0]
        .id;
    let open = pg
        .open_incident(SubjectKind::Vendor, VENDOR)
        .expect("open")
        .expect("an open incident");
    pg.write_incident(&IncidentWrite {
        id: Some(open.id),
        resolve: true,
        at_ms: now_ms,
        events: vec![("resolved".into(), "{}".into())],
        deliveries: vec![NewDelivery {
            receiver: "pager".into(),
            event: AlertEvent::Resolve,
            payload: "{}".into(),
        }],
        expect_version: Some(open.version),
        ..incident(VENDOR, now_ms)
    })
    .expect("resolve the copied incident");
    let new = pg
        .write_incident(&incident("other", now_ms))
        .expect("a new incident");
    assert!(new > max_incident, "{new} after {max_incident}");
    // The new incident's alerts are queued after every copied one (1 to 7) and the copied
    // incident's resolve (8, which waits behind its trigger, claimed above).
    let queued = due(&*pg);
    assert_eq!(
        queued.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        [(9, new), (10, new)],
        "{queued:?}"
    );
    pg.save_check_states(
        &[],
        &[TransitionRecord {
            check_id: "www".into(),
            vendor: VENDOR.into(),
            at_ms: now_ms,
            body: "{\"to\":\"pass\"}".into(),
        }],
        now_ms,
    )
    .expect("a transition after migrating");
    pg.record_vendor_status(VENDOR, "{}", &[(None, "operational".into())], now_ms)
        .expect("a vendor state after migrating");
    let fresh = IngestRow {
        region: "eu-west".into(),
        received_ms: now_ms,
        result: support::result("fra-1", 100_000, "www", VENDOR, at(now_ms)),
    };
    // Stored by another coordinator's handle: a handle's feed passes over its own results.
    let other = PostgresStore::open(&url, None).expect("open postgresql");
    assert_eq!(other.insert_results(&[fresh]).expect("insert").inserted, 1);
    assert_eq!(
        feed.feed_after(early_cursor, 1000).expect("feed").0.len(),
        1,
        "a result stored after migrating is in the feed"
    );

    // A second copy into the same database is refused, and changes nothing.
    let out = migrate(dir.path(), &url);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "a second migrate succeeded: {stdout}"
    );
    assert!(
        stderr.contains("already holds data (in probes, results,"),
        "{stderr}"
    );
    assert_eq!(results(&*pg).len(), 180 * 4 + 1);
}

#[test]
fn migrate_refuses_a_running_coordinator_and_targets_it_cannot_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("vantage.db");

    let out = migrate(dir.path(), "postgresql://vantage@127.0.0.1:1/vantage");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("no SQLite store at"), "{stderr}");

    let store: Box<dyn Store> =
        Box::new(SqliteStore::open(&db, Synchronous::Normal).expect("open sqlite"));
    store
        .add_probe(&probe("fra-1", "eu-west"), &[1; 32])
        .expect("add probe");
    let node = Node {
        node: "running-node".into(),
        address: "127.0.0.1:7470".into(),
        version: "0.1.0".into(),
        started_ms: T0,
    };
    store.balance_leases(&node, 60_000).expect("leases");
    let out = migrate(dir.path(), "postgresql://vantage@127.0.0.1:1/vantage");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("a coordinator (`running-node`) is using")
            && stderr.contains("stop it first"),
        "{stderr}"
    );
    store.release_leases("running-node").expect("release");

    // Nothing listens on port 1: a clear error, quickly, without the password.
    let started = std::time::Instant::now();
    let out = migrate(
        dir.path(),
        "postgresql://vantage:hunter2@127.0.0.1:1/vantage",
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("cannot connect to postgresql://vantage@127.0.0.1:1/vantage: ")
            && stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2") && !stdout.contains("hunter2"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    let out = migrate(
        dir.path(),
        "postgresql://vantage:hunter2@127.0.0.1:port/vantage",
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--to is not a PostgreSQL URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
