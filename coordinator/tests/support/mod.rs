//! Shared by the coordinator's end-to-end tests: a coordinator process with its own
//! directory, HTTP requests over fresh connections, and plausible results.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use vantage_checks::model::CheckKind;
use vantage_checks::result::{
    CheckResult, Facts, FailureKind, HttpFacts, RESULT_SCHEMA_VERSION, Status, Timings,
};
use vantage_checks::wire::{BatchAck, ResultBatch};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_vantage-coordinator");

/// How long a coordinator gets to answer `/healthz` after it is started.
pub(crate) const STARTUP: Duration = Duration::from_secs(30);

/// A coordinator process with its own directory: `coordinator.toml`, `checks.toml`, `data/`,
/// token files and the process's log.
pub(crate) struct Coordinator {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) with_checks: bool,
    pub(crate) child: Option<Child>,
    pub(crate) addr: SocketAddr,
}

impl Coordinator {
    /// A coordinator configured by `config` (the text of `coordinator.toml`), serving
    /// `checks` (the text of `checks.toml`), or [`default_checks`]. Not started yet.
    pub(crate) fn new(config: &str, checks: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("coordinator.toml"), config).expect("write config");
        let checks = checks.map_or_else(default_checks, str::to_owned);
        std::fs::write(dir.path().join("checks.toml"), checks).expect("write checks");
        Self {
            dir,
            with_checks: true,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The common `--config` and `--data-dir` arguments.
    pub(crate) fn config_args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.path("coordinator.toml").display().to_string(),
            "--data-dir".into(),
            self.path("data").display().to_string(),
        ]
    }

    /// Registers a probe with the CLI and returns its token.
    pub(crate) fn add_probe(&self, id: &str, region: &str) -> String {
        let token_file = self.path(&format!("{id}.token"));
        let out = Command::new(BIN)
            .args(["probe", "add", id, "--region", region, "--token-file"])
            .arg(&token_file)
            .args(self.config_args())
            .output()
            .expect("run probe add");
        assert!(
            out.status.success(),
            "probe add {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = std::fs::read_to_string(&token_file).expect("read token file");
        token.trim().to_owned()
    }

    /// Revokes a probe with the CLI (the server may be running).
    pub(crate) fn revoke_probe(&self, id: &str) {
        let out = Command::new(BIN)
            .args(["probe", "revoke", id])
            .args(self.config_args())
            .output()
            .expect("run probe revoke");
        assert!(
            out.status.success(),
            "probe revoke {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What the process has logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.path("coordinator.log")).unwrap_or_default()
    }

    /// Starts `serve` on a free loopback port and waits until `/healthz` answers.
    pub(crate) async fn start(&mut self) {
        // The port is free when chosen; another process may take it before the coordinator
        // binds, so a failed bind is retried on a new port.
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            self.addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path("coordinator.log"))
                .expect("open log");
            let mut cmd = Command::new(BIN);
            cmd.arg("serve")
                .args(self.config_args())
                .arg("--listen")
                .arg(self.addr.to_string())
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            if self.with_checks {
                cmd.arg("--checks").arg(self.path("checks.toml"));
            }
            let mut child = cmd.spawn().expect("spawn coordinator");
            let deadline = Instant::now() + STARTUP;
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    if self.log().contains("cannot listen") {
                        break;
                    }
                    panic!("coordinator exited with {status}:\n{}", self.log());
                }
                if let Ok(r) = get(self.addr, "/healthz", None, &[]).await
                    && r.status == StatusCode::OK
                {
                    self.child = Some(child);
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "coordinator did not answer /healthz within {STARTUP:?}:\n{}",
                    self.log()
                );
                // Polling interval, not a wait for an event.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("could not find a free port:\n{}", self.log());
    }

    /// kill -9: no shutdown, no flush.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    /// Asserts that the process is still running and answers `/healthz`.
    pub(crate) async fn assert_alive(&mut self, after: &str) {
        let child = self.child.as_mut().expect("started");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "coordinator died after {after}:\n{}",
            self.log()
        );
        let r = get(self.addr, "/healthz", None, &[])
            .await
            .unwrap_or_else(|e| panic!("/healthz after {after}: {e}"));
        assert_eq!(r.status, StatusCode::OK, "/healthz after {after}");
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A whole response.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The message of an `{"error": "…"}` body.
    pub(crate) fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{} without an error message: {:?}", self.status, self.body))
            .to_owned()
    }

    pub(crate) fn ack(&self) -> BatchAck {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).expect("batch ack")
    }

    pub(crate) fn results(&self) -> Vec<CheckResult> {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).expect("results")
    }

    /// Asserts a refusal: its status, and that its message contains `want`.
    pub(crate) fn assert_refused(&self, status: StatusCode, want: &str) {
        assert_eq!(
            self.status,
            status,
            "expected {status} saying {want:?}; got {}",
            String::from_utf8_lossy(&self.body)
        );
        let message = self.error();
        assert!(
            message.contains(want),
            "the message should say {want:?}: {message}"
        );
    }
}

/// One request on a fresh HTTP/1.1 connection.
pub(crate) async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("response body: {e}"))?
        .to_bytes();
    drop(sender);
    conn.abort();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

pub(crate) async fn get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    send(addr, Method::GET, path, token, headers, Bytes::new()).await
}

pub(crate) async fn post_batch(addr: SocketAddr, token: &str, results: &[CheckResult]) -> Reply {
    post_body(addr, Some(token), body_of(results)).await
}

pub(crate) async fn post_body(addr: SocketAddr, token: Option<&str>, body: Vec<u8>) -> Reply {
    send(
        addr,
        Method::POST,
        "/api/v1/results",
        token,
        &[],
        Bytes::from(body),
    )
    .await
    .expect("POST /api/v1/results")
}

pub(crate) fn body_of(results: &[CheckResult]) -> Vec<u8> {
    serde_json::to_vec(&ResultBatch {
        results: results.to_vec(),
        counters: None,
    })
    .expect("encode batch")
}

/// A plausible HTTP check result.
pub(crate) fn result(
    probe: &str,
    seq: u64,
    check: &str,
    vendor: &str,
    at: OffsetDateTime,
) -> CheckResult {
    let fail = seq.is_multiple_of(3);
    CheckResult {
        v: RESULT_SCHEMA_VERSION,
        check_id: check.into(),
        vendor: vendor.into(),
        kind: CheckKind::Http,
        probe_id: probe.into(),
        boot_id: format!("{probe}-boot"),
        seq,
        started_at: at,
        status: if fail { Status::Fail } else { Status::Ok },
        failure: fail.then_some(FailureKind::HttpStatus),
        message: fail.then(|| "status 503, expected 200".to_owned()),
        slow: false,
        retried: false,
        timings: Timings {
            connect_ms: Some(1.25),
            first_byte_ms: Some(10.5),
            total_ms: 12.0 + seq as f64,
            ..Timings::default()
        },
        facts: Facts::Http(HttpFacts {
            url: format!("https://www.example.com/{check}"),
            status: Some(if fail { 503 } else { 200 }),
            bytes: 1024,
            ..HttpFacts::default()
        }),
        truncated: None,
        run: None,
    }
}

/// `(boot_id, seq)` of each result, checking that none repeats.
pub(crate) fn keys(results: &[CheckResult]) -> BTreeSet<(String, u64)> {
    let set: BTreeSet<(String, u64)> = results.iter().map(|r| (r.boot_id.clone(), r.seq)).collect();
    assert_eq!(
        set.len(),
        results.len(),
        "a result is stored more than once"
    );
    set
}

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The checks of a coordinator given none: `www` (fastcdn), `api` and `check-0` to
/// `check-19` (acme). The results the tests make up name them, and a coordinator refuses
/// results for a check it does not have.
pub(crate) fn default_checks() -> String {
    let check = |id: &str, vendor: &str| {
        format!(
            "\n[[check]]\nid = \"{id}\"\nvendor = \"{vendor}\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\n"
        )
    };
    let mut out = String::from(
        "[[vendor]]\nid = \"fastcdn\"\nname = \"FastCDN\"\n\n[[vendor]]\nid = \"acme\"\nname = \"Acme\"\n",
    );
    out.push_str(&check("www", "fastcdn"));
    out.push_str(&check("api", "acme"));
    for i in 0..20 {
        out.push_str(&check(&format!("check-{i}"), "acme"));
    }
    out
}

/// Six probes, two in each of regions a, b and c.
pub(crate) const PROBES: [(&str, &str); 6] = [
    ("a1", "a"),
    ("a2", "a"),
    ("b1", "b"),
    ("b2", "b"),
    ("c1", "c"),
    ("c2", "c"),
];

/// Two vendors (`acme`, `fastcdn`) with one TCP check each, judged by the six [`PROBES`]
/// (quorum 3 from 2 regions, 1 s interval), a new verdict held for `hold` before it counts.
pub(crate) fn two_vendor_checks(hold: &str) -> String {
    format!(
        r#"
[defaults]
interval = "1s"
timeout = "800ms"
retry = "off"
window = "4s"
quorum = 3
failing = "50%"
regions = 2
region_quorum = 2
confirm = 1
for = "{hold}"
recover_for = "2s"

[[vendor]]
id = "acme"
name = "Acme DNS"

[[vendor]]
id = "fastcdn"
name = "FastCDN"

[[check]]
id = "acme-www"
vendor = "acme"
kind = "tcp"
target = "127.0.0.1:9"

[[check]]
id = "fast-css"
vendor = "fastcdn"
kind = "tcp"
target = "127.0.0.1:9"
"#,
    )
}
