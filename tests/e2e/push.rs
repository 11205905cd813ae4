//! The real probe (`vantage-probe run`) pushing to a fake coordinator that refuses: the test
//! sink serves the probe its config and answers its pushes as each test says (issue 12, "never
//! lose results"). Fault injection against the real agent: what it keeps, what it drops, and
//! that it drops nothing else.
//!
//! Every result a probe makes carries its `seq` (0, 1, 2 … within its boot), so what reached
//! the fake is checked against everything the probe made: a hole is a lost result.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use vantage_e2e::sink::{Recorded, Reply, Sink};
use vantage_e2e::{ServerProcess, wait_until, workspace_binary};

/// The fake coordinator's probe id and region.
const PROBE: &str = "p1";

/// A TCP port that accepts (and drops) connections, for a TCP check to pass.
fn open_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    port
}

/// The config document the fake serves: `n` TCP checks every second against `port`.
fn config(port: u16, n: usize) -> String {
    let mut toml = String::from(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\nretry = \"off\"\nwindow = \"5s\"\n\n[[vendor]]\nid = \"v\"\n",
    );
    for i in 0..n {
        toml.push_str(&format!(
            "\n[[check]]\nid = \"c{i}\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:{port}\"\n"
        ));
    }
    let set = vantage_checks::config::parse_str(&toml).expect("valid checks");
    serde_json::to_string(&vantage_checks::wire::ProbeConfig {
        probe_id: PROBE.into(),
        region: "r".into(),
        labels: Default::default(),
        checks: set.checks,
    })
    .expect("encode the config")
}

/// The seqs of the results in a push (none for another request).
fn seqs(r: &Recorded) -> Vec<u64> {
    if r.path != "/api/v1/results" {
        return Vec::new();
    }
    r.json()["results"]
        .as_array()
        .map(|l| l.iter().filter_map(|x| x["seq"].as_u64()).collect())
        .unwrap_or_default()
}

fn ack(accepted: usize, refused: Vec<Value>) -> Reply {
    Reply::new(200).with_body(
        &json!({ "accepted": accepted, "duplicates": 0, "failing_checks": [], "refused": refused })
            .to_string(),
    )
}

/// The probe agent, against the sink.
struct Agent {
    process: ServerProcess,
}

impl Agent {
    /// Starts it with its state in `dir/state` and its log in `dir/probe.log`.
    fn start(sink: &Sink, dir: &std::path::Path) -> Self {
        Self::start_with(&sink.url("/"), dir)
    }

    /// Starts it with `--coordinator coordinators` (a comma-separated list).
    fn start_with(coordinators: &str, dir: &std::path::Path) -> Self {
        let mut cmd = Command::new(workspace_binary("vantage-probe"));
        cmd.arg("run")
            .arg("--coordinator")
            .arg(coordinators)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env(
                "VANTAGE_PROBE_TOKEN",
                "probe-token-for-the-fake-coordinator",
            )
            .env("RUST_LOG", "info")
            .env_remove("VANTAGE_PROBE_CONFIG")
            .env_remove("VANTAGE_TOKEN_FILE");
        let process = ServerProcess::spawn("vantage-probe", cmd, &dir.join("probe.log"));
        Self { process }
    }

    /// Stops it with SIGTERM (it flushes what it can), then returns its log.
    fn stop(mut self) -> String {
        assert!(
            self.process.terminate(Duration::from_secs(15)),
            "the probe did not stop on SIGTERM"
        );
        self.process.log()
    }
}

fn sink_with_config(checks: usize) -> Sink {
    let sink = Sink::start();
    let port = open_port();
    sink.set_reply(
        "/api/v1/probe/config",
        Reply::new(200).with_body(&config(port, checks)),
    );
    sink
}

/// Waits until the probe has pushed results up to `seq`, whatever was answered.
fn wait_for_seq(sink: &Sink, seq: u64) {
    sink.wait_for(
        |r| r.path == "/api/v1/results" && seqs(r).iter().any(|s| *s >= seq),
        Duration::from_secs(60),
    );
}

/// The seqs of the pushes the fake answered 200, except those it refused in the answer.
fn stored(sink: &Sink, refused_in_answer: &Mutex<BTreeSet<(usize, u64)>>) -> Vec<u64> {
    let refused = refused_in_answer.lock().expect("lock").clone();
    let mut out = Vec::new();
    for r in sink.requests_to("/api/v1/results") {
        if r.replied != Some(200) {
            continue;
        }
        for s in seqs(&r) {
            if !refused.contains(&(r.seq, s)) {
                out.push(s);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Issue 12: an older coordinator refuses a whole batch (`422`) for one result in it. The
/// probe halves the batch until the refused result is alone, and drops only that one: every
/// other result is stored, exactly once.
#[test]
fn r12_a_batch_refused_whole_for_one_result_loses_only_that_result() {
    let sink = sink_with_config(3);
    // Every result whose seq is 3 mod 7 is "bad": a batch holding one is refused whole.
    sink.set_responder("/api/v1/results", |r| {
        let s = seqs(r);
        match s.iter().position(|seq| seq % 7 == 3) {
            Some(i) => Reply::new(422).with_body(
                &json!({ "error": format!("results[{i}] (seq {}): refused by the test", s[i]) })
                    .to_string(),
            ),
            None => ack(s.len(), vec![]),
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&sink, dir.path());
    wait_for_seq(&sink, 60);
    let log = agent.stop();
    let none = Mutex::new(BTreeSet::new());
    let stored = stored(&sink, &none);
    let max = *stored.last().expect("some stored");
    let want: Vec<u64> = (0..=max).filter(|s| s % 7 != 3).collect();
    let got: Vec<u64> = stored.iter().copied().filter(|s| *s <= max).collect();
    assert_eq!(
        got, want,
        "every good result stored once, and only those\n{log}"
    );
    let dropped = log
        .matches("the coordinator refused a result; it is dropped")
        .count();
    assert!(
        dropped >= (max / 7) as usize,
        "{dropped} drops logged up to seq {max}\n{log}"
    );
}

/// Issue 12: a result refused for clock skew is kept and sent again (it becomes acceptable as
/// time passes), never dropped, and the probe logs its clock's offset from the coordinator's
/// `Date`.
#[test]
fn r12_results_refused_for_clock_skew_are_sent_again_and_the_offset_is_logged() {
    let sink = sink_with_config(2);
    let seen: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let refused: Arc<Mutex<BTreeSet<(usize, u64)>>> = Arc::default();
    let (seen_in, refused_in) = (Arc::clone(&seen), Arc::clone(&refused));
    // The coordinator's clock is five minutes behind the probe's.
    let date = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(300));
    sink.set_responder("/api/v1/results", move |r| {
        let mut seen = seen_in.lock().expect("lock");
        let mut refused_list = Vec::new();
        for (i, s) in seqs(r).into_iter().enumerate() {
            // The first time a result comes, it is "in the future"; the second time, fine.
            if seen.insert(s) {
                refused_in.lock().expect("lock").insert((r.seq, s));
                refused_list.push(json!({
                    "index": i, "seq": s, "reason": "clock_skew",
                    "message": "started_at is 300s in the future",
                }));
            }
        }
        ack(seqs(r).len() - refused_list.len(), refused_list).with_header("Date", &date)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&sink, dir.path());
    wait_for_seq(&sink, 20);
    // Every result up to 20 has come back, and been stored.
    wait_until(
        "every refused result sent again",
        Duration::from_secs(120),
        || {
            let s = stored(&sink, &refused);
            (0..=20).all(|x| s.contains(&x))
        },
    );
    let log = agent.stop();
    let stored = stored(&sink, &refused);
    for s in 0..=20u64 {
        assert_eq!(
            stored.iter().filter(|x| **x == s).count(),
            1,
            "seq {s} stored once\n{log}"
        );
    }
    let plain = regex::Regex::new("\x1b\\[[0-9;]*m")
        .expect("regex")
        .replace_all(&log, "")
        .into_owned();
    assert!(
        plain.contains("clock_offset_s=Some(30"),
        "the offset from the coordinator's Date (300 s, and a few more as the test runs) is logged\n{log}"
    );
    assert!(!log.contains("it is dropped"), "{log}");
}

/// Issue 12: a batch larger than the coordinator takes (`413`) is split and sent again,
/// never dropped; and the probe packs batches by bytes, not only by count.
#[test]
fn r12_a_batch_too_large_for_the_coordinator_is_split_not_dropped() {
    let sink = sink_with_config(4);
    // This coordinator takes bodies up to 3 KB (about six results), and is down at first
    // so that a backlog of results builds up in the spool.
    let limit = 3 * 1024;
    sink.set_reply("/api/v1/results", Reply::new(503));
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&sink, dir.path());
    wait_for_seq(&sink, 30);
    sink.set_responder("/api/v1/results", move |r| {
        if r.body.len() > limit {
            Reply::new(413).with_body("{\"error\":\"the request body is larger than 3072 bytes\"}")
        } else {
            ack(seqs(r).len(), vec![])
        }
    });
    sink.wait_for(
        |r| r.replied == Some(200) && seqs(r).iter().any(|s| *s >= 60),
        Duration::from_secs(90),
    );
    let log = agent.stop();
    let none = Mutex::new(BTreeSet::new());
    let stored = stored(&sink, &none);
    let max = 60;
    let got: Vec<u64> = stored.iter().copied().filter(|s| *s <= max).collect();
    assert_eq!(
        got,
        (0..=max).collect::<Vec<_>>(),
        "every result stored once\n{log}"
    );
    let split = sink
        .requests_to("/api/v1/results")
        .iter()
        .any(|r| r.replied == Some(413));
    assert!(
        split,
        "the backlog was sent in one batch too large at first"
    );
}

/// The probe's counters in the last push the fake got.
fn last_counters(sink: &Sink) -> Value {
    sink.requests_to("/api/v1/results")
        .last()
        .map(|r| r.json()["counters"].clone())
        .unwrap_or_default()
}

/// Issue 12: a probe whose spool's disk is full keeps running: new results are dropped and
/// counted, the spooled (oldest) ones kept; once there is room again it spools again, and
/// everything it kept is delivered. A real full filesystem: a small tmpfs.
#[test]
fn r12_a_full_spool_disk_drops_new_results_counted_and_recovers() {
    let sink = sink_with_config(2);
    // The coordinator is down at first: results pile up in the spool.
    sink.set_reply("/api/v1/results", Reply::new(503));
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = vantage_e2e::tmpfs::Tmpfs::mount(&dir.path().join("state"), 8 << 20);
    let mut agent = Agent::start(&sink, dir.path());
    wait_for_seq(&sink, 10);
    disk.fill();
    let full_from = sink
        .requests_to("/api/v1/results")
        .iter()
        .flat_map(seqs)
        .max()
        .unwrap_or(0);
    // Runs go on while nothing can be spooled; the probe must neither stop nor stall.
    wait_until(
        "results dropped for the full disk",
        Duration::from_secs(30),
        || {
            last_counters(&sink)["dropped"]
                .as_u64()
                .is_some_and(|d| d >= 4)
        },
    );
    agent.process.assert_running();
    disk.free();
    sink.set_responder("/api/v1/results", |r| ack(seqs(r).len(), vec![]));
    let none = Mutex::new(BTreeSet::new());
    // Results made after the room came back are spooled and delivered again.
    let dropped = last_counters(&sink)["dropped"].as_u64().unwrap_or(0);
    wait_until(
        "new results after the disk has room",
        Duration::from_secs(60),
        || {
            stored(&sink, &none)
                .last()
                .is_some_and(|s| *s > full_from + dropped + 6)
        },
    );
    let log = agent.stop();
    let stored = stored(&sink, &none);
    for s in 0..=full_from {
        assert!(
            stored.contains(&s),
            "seq {s}, spooled before the disk filled, was lost\n{log}"
        );
    }
    assert!(
        log.contains("cannot write results to the spool (disk full?)"),
        "{log}"
    );
    assert!(log.contains("the spool is written again"), "{log}");
    drop(disk);
}

/// Issue 14: a probe listing several coordinators moves to the next on a `503` or a
/// connection refused, within the same push, and stays with the one that answers; when that
/// one fails in turn it moves on again. No result is lost or stored twice on the way.
#[test]
fn r14_a_probe_fails_over_between_its_coordinators() {
    let port = open_port();
    let config = config(port, 2);
    // Two fake coordinators sharing a store (a set of seqs); `a_up` says which one answers.
    let a = Sink::start();
    let c = Sink::start();
    let a_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (sink, up_when) in [(&a, true), (&c, false)] {
        for path in ["/api/v1/probe/config", "/api/v1/results"] {
            let a_up = Arc::clone(&a_up);
            let config = config.clone();
            sink.set_responder(path, move |r| {
                if a_up.load(std::sync::atomic::Ordering::SeqCst) != up_when {
                    return Reply::new(503).with_body(r#"{"error":"the store is unavailable"}"#);
                }
                if r.path == "/api/v1/probe/config" {
                    Reply::new(200).with_body(&config)
                } else {
                    ack(seqs(r).len(), vec![])
                }
            });
        }
    }
    // Nothing listens on the second: a connection refused.
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/", dead.local_addr().expect("addr"));
    drop(dead);
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start_with(
        &format!("{},{dead_url},{}", a.url("/"), c.url("/")),
        dir.path(),
    );
    wait_for_seq(&c, 10);
    // It stays with the one that answers: the first is not asked again while c answers.
    let asked_a = a.requests().len();
    assert!(asked_a >= 1, "the first coordinator was tried first");
    wait_for_seq(&c, 20);
    assert_eq!(
        a.requests().len(),
        asked_a,
        "a failing coordinator is not asked again while another answers"
    );
    // c fails and a is back: the probe moves on, past the dead one, to a.
    a_up.store(true, std::sync::atomic::Ordering::SeqCst);
    let before = seqs_answered(&c).last().copied().unwrap_or(0);
    wait_for_seq(&a, before + 10);
    let log = agent.stop();
    let mut stored: Vec<u64> = seqs_answered(&a);
    stored.extend(seqs_answered(&c));
    stored.sort_unstable();
    let max = *stored.last().expect("some stored");
    let unique: BTreeSet<u64> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "a result stored twice\n{log}");
    assert_eq!(
        unique,
        (0..=max).collect::<BTreeSet<u64>>(),
        "every result stored once, whichever coordinator took it\n{log}"
    );
    assert!(
        log.contains("coordinator unavailable; trying the next"),
        "the failover is logged\n{log}"
    );
}

/// The seqs of the pushes a sink answered `200`, in order.
fn seqs_answered(sink: &Sink) -> Vec<u64> {
    let mut out: Vec<u64> = sink
        .requests_to("/api/v1/results")
        .iter()
        .filter(|r| r.replied == Some(200))
        .flat_map(seqs)
        .collect();
    out.sort_unstable();
    out
}
