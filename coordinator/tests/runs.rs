//! Issue 13, part 1: on-demand runs through the coordinator's API, with results pushed by
//! hand (the probes' side is in `tests/e2e/runs.rs`): a run is resolved and refused as it
//! should be, a waiting long poll hears of it at once, its results are stored with it and
//! nowhere else, and results that answer no run of this probe are refused alone.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use hyper::body::Bytes;
use time::OffsetDateTime;
use vantage_checks::result::CheckResult;
use vantage_checks::wire::{RefusalReason, RunOrders};

mod support;

use support::*;

const TOKEN: &str = "operator-t0ken-for-the-runs-tests-0001";

const CONFIG: &str = "[api]\ntoken_file = \"api.token\"\n";

/// fastcdn: `www` (scheduled), `img` and `js` (suite `static`, on demand), `eu-only` (only
/// probes in eu); acme: `api`.
const CHECKS: &str = r#"
[[vendor]]
id = "fastcdn"
name = "FastCDN"

[[vendor]]
id = "acme"
name = "Acme"

[[check]]
id = "www"
vendor = "fastcdn"
kind = "tcp"
target = "127.0.0.1:9"

[[check]]
id = "img"
vendor = "fastcdn"
kind = "tcp"
target = "127.0.0.1:9"
suite = "static"
on_demand = true

[[check]]
id = "js"
vendor = "fastcdn"
kind = "tcp"
target = "127.0.0.1:9"
suites = ["static", "scripts"]
on_demand = true

[[check]]
id = "eu-only"
vendor = "fastcdn"
kind = "tcp"
target = "127.0.0.1:9"
probes = { regions = ["eu"] }

[[check]]
id = "api"
vendor = "acme"
kind = "tcp"
target = "127.0.0.1:9"
"#;

async fn post_run(c: &Coordinator, body: &str, token: Option<&str>) -> Reply {
    send(
        c.addr,
        Method::POST,
        "/api/v1/runs",
        token,
        &[],
        Bytes::from(body.to_owned()),
    )
    .await
    .expect("POST /api/v1/runs")
}

async fn poll(c: &Coordinator, token: &str, query: &str) -> (RunOrders, Duration) {
    let started = Instant::now();
    let r = get(
        c.addr,
        &format!("/api/v1/probe/runs?{query}"),
        Some(token),
        &[],
    )
    .await
    .expect("GET /api/v1/probe/runs");
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    (
        serde_json::from_slice(&r.body).expect("run orders"),
        started.elapsed(),
    )
}

fn answer(probe: &str, seq: u64, check: &str, run: i64) -> CheckResult {
    let mut r = result(probe, seq, check, "fastcdn", OffsetDateTime::now_utc());
    r.run = Some(run);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_runs_reach_waiting_probes_at_once_and_keep_their_results_apart() {
    let mut c = Coordinator::new(CONFIG, Some(CHECKS));
    std::fs::write(c.path("api.token"), TOKEN).expect("write the token");
    let eu1 = c.add_probe("eu-1", "eu");
    let eu2 = c.add_probe("eu-2", "eu");
    let us1 = c.add_probe("us-1", "us");
    let never = c.add_probe("never-seen", "us");
    c.start().await;
    // A probe is live once it pulled its config; `never-seen` never does.
    for t in [&eu1, &eu2, &us1] {
        let r = get(c.addr, "/api/v1/probe/config", Some(t), &[])
            .await
            .expect("config");
        assert_eq!(r.status, StatusCode::OK);
    }
    let _ = never;

    // Refusals: no token, bad bodies, unknown names, nothing selected.
    let r = post_run(&c, r#"{"vendor": "fastcdn"}"#, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    let cases = [
        ("not json", StatusCode::BAD_REQUEST, "not a run request"),
        (
            r#"{"vendor": "fastcdn", "probes": ["eu-1"]}"#,
            StatusCode::BAD_REQUEST,
            "unknown field `probes`",
        ),
        (r#"{"vendor": ""}"#, StatusCode::BAD_REQUEST, "`vendor`"),
        (
            r#"{"vendor": "nope"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no vendor `nope`; the vendors are: fastcdn, acme",
        ),
        (
            r#"{"vendor": "fastcdn", "checks": ["api"]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "check `api` belongs to another vendor",
        ),
        (
            r#"{"vendor": "fastcdn", "checks": ["ghost"]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no check `ghost`",
        ),
        (
            r#"{"vendor": "fastcdn", "suite": "css"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "its suites are: scripts, static",
        ),
        (
            r#"{"vendor": "fastcdn", "regions": ["mars"]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no probe is registered in region `mars`",
        ),
        (
            r#"{"vendor": "fastcdn", "checks": ["eu-only"], "regions": ["us"]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no probe selected",
        ),
        (
            r#"{"vendor": "fastcdn", "wait": "2h"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "`wait` must be from 1s to 10m",
        ),
    ];
    for (body, status, says) in cases {
        post_run(&c, body, Some(TOKEN))
            .await
            .assert_refused(status, says);
    }

    // A long poll that waits hears of a run as soon as it is stored.
    let waiting = {
        let (addr, token) = (c.addr, us1.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = get(
                addr,
                "/api/v1/probe/runs?after=0&wait=20",
                Some(&token),
                &[],
            )
            .await
            .expect("long poll");
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posted = Instant::now();
    let r = post_run(
        &c,
        r#"{"vendor": "fastcdn", "suite": "static", "label": "before <the> change", "wait": "30s"}"#,
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let run = r.json();
    let id = run["id"].as_i64().expect("run id");
    assert_eq!(
        r.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/api/v1/runs/{id}").as_str())
    );
    assert_eq!(run["state"], "running");
    assert_eq!(run["checks"], serde_json::json!(["img", "js"]));
    assert_eq!(run["label"], "before <the> change");
    // Live probes only: `never-seen` never pulled its config.
    let probes: Vec<&str> = run["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(probes, ["eu-1", "eu-2", "us-1"]);
    assert_eq!(run["missing"], serde_json::json!(["eu-1", "eu-2", "us-1"]));
    assert_eq!(run["results"].as_array().map(Vec::len), Some(6));
    let (woke, waited) = waiting.await.expect("the poll");
    let heard = posted.elapsed();
    assert_eq!(woke.status, StatusCode::OK);
    let orders: RunOrders = serde_json::from_slice(&woke.body).expect("orders");
    assert_eq!(orders.runs.len(), 1);
    assert_eq!(orders.runs[0].id, id);
    assert_eq!(orders.runs[0].checks, ["img", "js"]);
    assert!(
        heard < Duration::from_secs(5) && waited < Duration::from_secs(10),
        "the waiting poll answered {heard:?} after the POST ({waited:?} in all): it must not wait out its 20 s"
    );

    // Results: eu-1 answers both, eu-2 one; a scheduled result of an on-demand check, a result
    // for a run that did not ask the probe for it, and one for no run are refused alone.
    let ack = post_batch(
        c.addr,
        &eu1,
        &[answer("eu-1", 0, "img", id), answer("eu-1", 1, "js", id)],
    )
    .await
    .ack();
    assert_eq!((ack.accepted, ack.refused.len()), (2, 0), "{ack:?}");
    let mut scheduled = answer("eu-2", 1, "img", id);
    scheduled.run = None;
    let ack = post_batch(
        c.addr,
        &eu2,
        &[
            answer("eu-2", 0, "img", id),
            scheduled,
            answer("eu-2", 2, "www", id),
            answer("eu-2", 3, "js", id + 100),
        ],
    )
    .await
    .ack();
    assert_eq!(ack.accepted, 1, "{ack:?}");
    let refused: Vec<(usize, RefusalReason, &str)> = ack
        .refused
        .iter()
        .map(|r| (r.index, r.reason, r.message.as_str()))
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused[0].2.contains("must name its run"), "{refused:?}");
    assert!(
        refused[1]
            .2
            .contains("did not ask this probe for check `www`"),
        "{refused:?}"
    );
    assert!(
        refused[2].2.contains(&format!("no run {}", id + 100)),
        "{refused:?}"
    );
    assert!(refused.iter().all(|r| r.1 == RefusalReason::NotSelected));
    // Sent again: a duplicate, not a second result.
    let ack = post_batch(c.addr, &eu1, &[answer("eu-1", 0, "img", id)])
        .await
        .ack();
    assert_eq!((ack.accepted, ack.duplicates), (0, 1));

    // A poll now names only what each probe still owes.
    let (orders, _) = poll(&c, &eu2, "after=0&wait=0").await;
    assert_eq!(orders.runs[0].checks, ["js"]);
    let (orders, _) = poll(&c, &eu1, "after=0&wait=0").await;
    assert!(orders.runs.is_empty(), "eu-1 owes nothing: {orders:?}");
    let (orders, waited) = poll(&c, &us1, &format!("after={id}&wait=1")).await;
    assert!(orders.runs.is_empty() && waited >= Duration::from_millis(900));

    let view = get(c.addr, &format!("/api/v1/runs/{id}"), Some(TOKEN), &[])
        .await
        .expect("GET run")
        .json();
    assert_eq!(view["state"], "running");
    assert_eq!(view["reported"], serde_json::json!(["eu-1"]));
    assert_eq!(view["missing"], serde_json::json!(["eu-2", "us-1"]));
    let got: Vec<bool> = view["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|p| !p["result"].is_null())
        .collect();
    // By check then probe: img eu-1, eu-2, us-1; js eu-1, eu-2, us-1.
    assert_eq!(got, [true, true, false, true, false, false]);

    // The rest arrives: done.
    post_batch(c.addr, &eu2, &[answer("eu-2", 4, "js", id)])
        .await
        .ack();
    post_batch(
        c.addr,
        &us1,
        &[answer("us-1", 0, "img", id), answer("us-1", 1, "js", id)],
    )
    .await
    .ack();
    let view = get(c.addr, &format!("/api/v1/runs/{id}"), Some(TOKEN), &[])
        .await
        .expect("GET run")
        .json();
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(view["missing"], serde_json::json!([]));

    // Stored with the run, never with the scheduled results.
    let of_run = get(
        c.addr,
        &format!("/api/v1/results?run={id}"),
        Some(TOKEN),
        &[],
    )
    .await
    .expect("GET")
    .results();
    assert_eq!(of_run.len(), 6);
    assert!(of_run.iter().all(|r| r.run == Some(id)));
    let of_run_img = get(
        c.addr,
        &format!("/api/v1/results?run={id}&check=img&probe=us-1"),
        Some(TOKEN),
        &[],
    )
    .await
    .expect("GET")
    .results();
    assert_eq!(of_run_img.len(), 1);
    let scheduled = get(
        c.addr,
        "/api/v1/results?vendor=fastcdn&limit=1000",
        Some(TOKEN),
        &[],
    )
    .await
    .expect("GET")
    .results();
    assert!(scheduled.is_empty(), "run results leaked: {scheduled:?}");
    get(c.addr, "/api/v1/results?run=1&since=0", Some(TOKEN), &[])
        .await
        .expect("GET")
        .assert_refused(StatusCode::BAD_REQUEST, "does not go with `run`");
    get(c.addr, "/api/v1/runs/999", Some(TOKEN), &[])
        .await
        .expect("GET")
        .assert_refused(StatusCode::NOT_FOUND, "no run 999");

    // Listed newest first, by vendor and suite.
    let second = post_run(
        &c,
        r#"{"vendor": "fastcdn", "checks": ["www"], "wait": "1s"}"#,
        Some(TOKEN),
    )
    .await
    .json()["id"]
        .as_i64()
        .expect("id");
    let list = get(
        c.addr,
        "/api/v1/runs?vendor=fastcdn&limit=1",
        Some(TOKEN),
        &[],
    )
    .await
    .expect("GET")
    .json();
    assert_eq!(list[0]["id"], second);
    let list = get(
        c.addr,
        "/api/v1/runs?vendor=fastcdn&suite=static",
        Some(TOKEN),
        &[],
    )
    .await
    .expect("GET")
    .json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["id"], id);
    // Nobody answers the second: it times out, naming who did not report.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let view = get(c.addr, &format!("/api/v1/runs/{second}"), Some(TOKEN), &[])
        .await
        .expect("GET run")
        .json();
    assert_eq!(view["state"], "timed_out", "{view}");
    assert_eq!(view["missing"], serde_json::json!(["eu-1", "eu-2", "us-1"]));
    c.assert_alive("the runs").await;
}

/// On a shared PostgreSQL store, any coordinator takes the run and any serves it: a probe long
/// polling another coordinator hears of the run within that one's half-second look at the
/// store, pushes its results there, and the first coordinator shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_a_run_taken_by_one_coordinator_reaches_a_probe_polling_another() {
    let pg = vantage_e2e::postgres::Postgres::start();
    let url = pg.create_database("runs_ha");
    let config = format!("{CONFIG}[store]\nurl = \"{url}\"\n");
    let mut a = Coordinator::new(&config, Some(CHECKS));
    let mut b = Coordinator::new(&config, Some(CHECKS));
    for c in [&a, &b] {
        std::fs::write(c.path("api.token"), TOKEN).expect("write the token");
    }
    let probe = a.add_probe("eu-1", "eu");
    a.start().await;
    b.start().await;
    let r = get(b.addr, "/api/v1/probe/config", Some(&probe), &[])
        .await
        .expect("config");
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the probe is known to b: {:?}",
        r.body
    );

    let waiting = {
        let (addr, token) = (b.addr, probe.clone());
        tokio::spawn(async move {
            get(
                addr,
                "/api/v1/probe/runs?after=0&wait=20",
                Some(&token),
                &[],
            )
            .await
            .expect("long poll")
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posted = Instant::now();
    let r = post_run(
        &a,
        r#"{"vendor": "fastcdn", "checks": ["img"]}"#,
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let id = r.json()["id"].as_i64().expect("id");
    let woke = waiting.await.expect("the poll");
    let heard = posted.elapsed();
    let orders: RunOrders = serde_json::from_slice(&woke.body).expect("orders");
    assert_eq!(orders.runs.iter().map(|o| o.id).collect::<Vec<_>>(), [id]);
    assert!(
        heard < Duration::from_secs(5),
        "b's poll answered {heard:?} after the POST to a"
    );
    let ack = post_batch(b.addr, &probe, &[answer("eu-1", 0, "img", id)])
        .await
        .ack();
    assert_eq!(ack.accepted, 1, "{ack:?}");
    let view = get(a.addr, &format!("/api/v1/runs/{id}"), Some(TOKEN), &[])
        .await
        .expect("GET run")
        .json();
    assert_eq!(view["state"], "done", "{view}");
    a.assert_alive("the run").await;
    b.assert_alive("the run").await;
}
