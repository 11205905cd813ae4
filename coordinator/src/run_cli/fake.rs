//! The shell of `run` against a fake coordinator in this process, on `127.0.0.1:0`: a hyper
//! server whose answers each test writes and whose request log it reads. It pins what the
//! real runs API cannot yet: the order of requests (the baseline before the run), the
//! token on each, the body sent, and the exit code of every way a request can end.

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use vantage_checks::result::FailureKind;

use super::fixtures::{fail, ok, run as view};
use super::view::RunState;
use super::{Baseline, Exit, Format, Options, run};
use crate::alert::Secret;

/// One request the fake saw.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    /// `POST /api/v1/runs`, with the query if any.
    request: String,
    authorization: Option<String>,
    body: String,
}

/// What the fake answers: from the request and how many identical ones came before it.
type Responder = dyn Fn(&Seen, usize) -> (u16, serde_json::Value) + Send + Sync;

struct Fake {
    url: url::Url,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: JoinSet<()>,
}

impl Fake {
    async fn start(
        respond: impl Fn(&Seen, usize) -> (u16, serde_json::Value) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"))
            .parse()
            .expect("a URL");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let mut task = JoinSet::new();
        let log = Arc::clone(&seen);
        task.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (log, respond) = (Arc::clone(&log), Arc::clone(&respond));
                conns.spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (log, respond) = (Arc::clone(&log), Arc::clone(&respond));
                        async move {
                            let request = format!(
                                "{} {}",
                                req.method(),
                                req.uri().path_and_query().map_or("", |p| p.as_str())
                            );
                            let authorization = req
                                .headers()
                                .get(http::header::AUTHORIZATION)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body = req.into_body().collect().await.expect("a body");
                            let seen = Seen {
                                request,
                                authorization,
                                body: String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                            };
                            let before = {
                                let mut log = log.lock().expect("the log");
                                let n = log.iter().filter(|s| s.request == seen.request).count();
                                log.push(seen.clone());
                                n
                            };
                            let (status, json) = respond(&seen, before);
                            let mut resp =
                                hyper::Response::new(Full::new(Bytes::from(json.to_string())));
                            *resp.status_mut() =
                                http::StatusCode::from_u16(status).expect("a status");
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            seen,
            _task: task,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .expect("the log")
            .iter()
            .map(|s| s.request.clone())
            .collect()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the log").clone()
    }
}

fn options(url: url::Url, dir: &Path, format: Format, baseline: Option<Baseline>) -> Options {
    Options {
        coordinator: url,
        token_file: None,
        token_env: Some(Secret::new("t0ken")),
        ca_file: None,
        vendor: "fastcdn".into(),
        checks: vec![],
        suite: Some("cdn-static".into()),
        regions: vec![],
        label: Some("before".into()),
        wait: Duration::from_secs(5),
        format,
        output: Some(dir.join("report")),
        baseline,
    }
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serializes")
}

fn error(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

#[tokio::test]
async fn the_last_baseline_is_read_first_then_the_run_is_started_polled_and_reported() {
    let base = view(
        5,
        RunState::Done,
        vec![
            ("img", "p1", Some(ok("img", "p1", 100.0))),
            ("img", "p2", Some(ok("img", "p2", 100.0))),
        ],
    );
    let started = view(
        7,
        RunState::Running,
        vec![("img", "p1", None), ("img", "p2", None)],
    );
    let partial = view(
        7,
        RunState::Running,
        vec![
            ("img", "p1", Some(ok("img", "p1", 100.0))),
            ("img", "p2", None),
        ],
    );
    let done = view(
        7,
        RunState::Done,
        vec![
            ("img", "p1", Some(ok("img", "p1", 100.0))),
            (
                "img",
                "p2",
                Some(fail("img", "p2", FailureKind::HttpStatus)),
            ),
        ],
    );
    let fake = Fake::start(move |seen, n| match seen.request.as_str() {
        "GET /api/v1/runs?vendor=fastcdn&suite=cdn-static&limit=1" => (200, json(&[&base])),
        "POST /api/v1/runs" => (202, json(&started)),
        "GET /api/v1/runs/7" if n == 0 => (200, json(&partial)),
        "GET /api/v1/runs/7" => (200, json(&done)),
        _ => (404, error("no such path")),
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exit = run(options(
        fake.url.clone(),
        dir.path(),
        Format::Json,
        Some(Baseline::Last),
    ))
    .await;
    assert_eq!(exit, Exit::Failed, "p2 failed, and regressed");
    assert_eq!(
        fake.requests(),
        vec![
            "GET /api/v1/runs?vendor=fastcdn&suite=cdn-static&limit=1",
            "POST /api/v1/runs",
            "GET /api/v1/runs/7",
            "GET /api/v1/runs/7",
        ]
    );
    let seen = fake.seen();
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer t0ken")),
        "{seen:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&seen[1].body).expect("a JSON body");
    assert_eq!(
        body,
        serde_json::json!({"vendor": "fastcdn", "suite": "cdn-static", "label": "before", "wait": "5s"})
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report")).expect("the report"))
            .expect("JSON");
    assert_eq!(report["baseline"], 5);
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["run"]["state"], "done");
    assert_eq!(report["summary"]["regressed"], 1);
}

#[tokio::test]
async fn a_timed_out_run_is_exit_3_and_its_junit_report_names_the_missing_probe() {
    let fake = Fake::start(|seen, _| match seen.request.as_str() {
        "POST /api/v1/runs" => (
            202,
            json(&view(
                7,
                RunState::Running,
                vec![("img", "p1", None), ("img", "p2", None)],
            )),
        ),
        _ => (
            200,
            json(&view(
                7,
                RunState::TimedOut,
                vec![
                    ("img", "p1", Some(ok("img", "p1", 100.0))),
                    ("img", "p2", None),
                ],
            )),
        ),
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exit = run(options(fake.url.clone(), dir.path(), Format::Junit, None)).await;
    assert_eq!(exit, Exit::TimedOut);
    let xml = std::fs::read_to_string(dir.path().join("report")).expect("the report");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit");
    assert_eq!(doc.root_element().attribute("errors"), Some("1"));
    assert!(
        xml.contains("no result: probe p2 (us) did not report"),
        "{xml}"
    );
}

#[tokio::test]
async fn refusals_are_invalid_requests_and_start_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (what, the fake's answer to everything, --baseline, the requests it should see)
    type Case = (
        &'static str,
        u16,
        serde_json::Value,
        Option<Baseline>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "an unknown vendor",
            422,
            error("unknown vendor `fastcdn`"),
            None,
            vec!["POST /api/v1/runs"],
        ),
        (
            "a refused token",
            403,
            error("an operator token is needed"),
            None,
            vec!["POST /api/v1/runs"],
        ),
        (
            "no earlier run for --baseline last",
            200,
            serde_json::json!([]),
            Some(Baseline::Last),
            vec!["GET /api/v1/runs?vendor=fastcdn&suite=cdn-static&limit=1"],
        ),
        (
            "no run 42 for --baseline 42",
            404,
            error("no run 42"),
            Some(Baseline::Run(42)),
            vec!["GET /api/v1/runs/42"],
        ),
    ];
    for (what, status, answer, baseline, want) in cases {
        let fake = Fake::start(move |_, _| (status, answer.clone())).await;
        let exit = run(options(
            fake.url.clone(),
            dir.path(),
            Format::Table,
            baseline,
        ))
        .await;
        assert_eq!(exit, Exit::Invalid, "{what}");
        assert_eq!(fake.requests(), want, "{what}");
        assert!(
            !dir.path().join("report").exists(),
            "{what}: the report file this command created is removed"
        );
    }

    // A baseline of another vendor.
    let other = {
        let mut v = view(
            42,
            RunState::Done,
            vec![("img", "p1", Some(ok("img", "p1", 1.0)))],
        );
        v.vendor = "othercdn".into();
        v
    };
    let fake = Fake::start(move |_, _| (200, json(&other))).await;
    let exit = run(options(
        fake.url.clone(),
        dir.path(),
        Format::Table,
        Some(Baseline::Run(42)),
    ))
    .await;
    assert_eq!(exit, Exit::Invalid);
    assert_eq!(fake.requests(), vec!["GET /api/v1/runs/42"]);

    // No token: nothing is asked at all, and an earlier report is left whole.
    std::fs::write(dir.path().join("report"), "an earlier report").expect("write");
    let mut o = options(fake.url.clone(), dir.path(), Format::Table, None);
    o.token_env = None;
    assert_eq!(run(o).await, Exit::Invalid);
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report")).expect("read"),
        "an earlier report"
    );
}

#[tokio::test]
async fn an_unreachable_or_failing_coordinator_is_exit_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on any more.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        format!("http://{}", l.local_addr().expect("address"))
            .parse()
            .expect("a URL")
    };
    assert_eq!(
        run(options(closed, dir.path(), Format::Table, None)).await,
        Exit::Unavailable
    );
    for status in [500, 503, 429] {
        let fake = Fake::start(move |_, _| (status, error("down"))).await;
        let exit = run(options(fake.url.clone(), dir.path(), Format::Table, None)).await;
        assert_eq!(exit, Exit::Unavailable, "{status}");
    }
    // An answer that is not a run.
    let fake = Fake::start(|_, _| (202, serde_json::json!({"id": "seven"}))).await;
    let exit = run(options(fake.url.clone(), dir.path(), Format::Table, None)).await;
    assert_eq!(exit, Exit::Unavailable);
    assert!(!dir.path().join("report").exists());
}
