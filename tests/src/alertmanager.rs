//! Prometheus Alertmanager on loopback, as the coordinator's Alertmanager receiver
//! (`POST /api/v2/alerts`, ARCHITECTURE.md §4), notifying a webhook (usually a
//! [`crate::sink::Sink`]) so that a test sees what it would page.
//!
//! [`Alertmanager::start`] runs Debian's `prometheus-alertmanager` in the foreground with a
//! generated `alertmanager.yml`: one route to one `webhook_configs` receiver with
//! `send_resolved: true`, short grouping timers ([`Routing::default`]), its own
//! `--storage.path` in a temporary directory, and clustering off (`--cluster.listen-address=`
//! empty: no gossip port, no peers). It returns once `GET /-/ready` answers 200; if the
//! process exits or never gets ready, it panics with Alertmanager's log. Killed when dropped.
//!
//! What a scenario must know about Alertmanager's timing (0.25, seen with this harness):
//! - a group's first notification waits `group_wait`, counted from the alert's `startsAt`,
//!   not from its arrival: an alert whose `startsAt` is already `group_wait` old is notified
//!   at once (within a few ms here);
//! - later changes to a group (a new alert, a resolve) go out at its next `group_interval`
//!   tick: a resolve arrives about 1 s after it is posted with the default [`Routing`];
//! - an alert that fires and resolves before its group's first notification is never
//!   notified at all, not even as resolved (nothing was sent for it to resolve);
//! - an alert posted without `endsAt` resolves by itself `resolve_timeout` (5 min) after the
//!   last post: a sender must re-post firing alerts, or set `endsAt` itself;
//! - a webhook that answers 5xx is retried with backoff (about 0.5 to 1 s apart here), and
//!   the log says `Notify attempt failed, will retry later`; it is the same notification, so
//!   the sink sees it again, not a new one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fleet::{http_get, http_post};
use crate::{ServerProcess, find_binary, free_port};

/// Where Debian's package installs Alertmanager.
pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";
/// The receiver's name in the generated config (`receiver` in notifications).
pub const RECEIVER: &str = "vantage-sink";
/// How long Alertmanager may take to get ready.
const START_WITHIN: Duration = Duration::from_secs(20);
/// How many free ports to try before giving up.
const START_ATTEMPTS: usize = 5;

/// The route's grouping and timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routing {
    /// `group_by`: labels that make a group; `["..."]` makes every alert its own group.
    pub group_by: Vec<String>,
    /// `group_wait`: how long a new group waits before its first notification.
    pub group_wait: Duration,
    /// `group_interval`: how often a group's changes are notified.
    pub group_interval: Duration,
    /// `repeat_interval`: how often an unchanged firing group is notified again.
    pub repeat_interval: Duration,
}

impl Default for Routing {
    /// Grouped by `alertname` and `vendor`; 1 s, 1 s, 1 h.
    fn default() -> Self {
        Self {
            group_by: vec!["alertname".to_owned(), "vendor".to_owned()],
            group_wait: Duration::from_secs(1),
            group_interval: Duration::from_secs(1),
            repeat_interval: Duration::from_secs(3600),
        }
    }
}

/// A running Alertmanager, killed when dropped.
#[derive(Debug)]
pub struct Alertmanager {
    addr: SocketAddr,
    config: PathBuf,
    process: ServerProcess,
    // Dropped after the process.
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager notifying `webhook_url`, with [`Routing::default`].
    pub fn start(webhook_url: &str) -> Self {
        Self::start_with(webhook_url, &Routing::default())
    }

    /// Starts Alertmanager notifying `webhook_url`, grouped and timed by `routing`.
    pub fn start_with(webhook_url: &str, routing: &Routing) -> Self {
        let bin = find_binary("prometheus-alertmanager", "prometheus-alertmanager");
        let dir = tempfile::Builder::new()
            .prefix("vantage-alertmanager-")
            .tempdir()
            .expect("create a temporary directory for Alertmanager");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yaml(webhook_url, routing)).expect("write alertmanager.yml");
        check_config(&config);
        let storage = dir.path().join("data");
        let log = dir.path().join("alertmanager.log");
        for _ in 0..START_ATTEMPTS {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", storage.display()))
                .arg(format!("--web.listen-address={addr}"))
                // Empty: no cluster listener, no gossip with anything else on the machine.
                .arg("--cluster.listen-address=")
                .arg("--log.level=debug");
            let log_before = std::fs::read_to_string(&log).map_or(0, |l| l.len());
            let mut process = ServerProcess::spawn("alertmanager", cmd, &log);
            let deadline = Instant::now() + START_WITHIN;
            loop {
                if matches!(http_get(addr, "/-/ready"), Ok((200, _))) {
                    return Self {
                        addr,
                        config,
                        process,
                        _dir: dir,
                    };
                }
                // A port found free may be taken before Alertmanager binds it: try another.
                let fresh = process
                    .log()
                    .get(log_before..)
                    .unwrap_or_default()
                    .to_owned();
                if fresh.contains("address already in use") {
                    process.stop();
                    break;
                }
                process.assert_running();
                assert!(
                    Instant::now() < deadline,
                    "Alertmanager did not answer /-/ready on {addr} within {START_WITHIN:?}; its log:\n{}",
                    process.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "Alertmanager could not bind a port in {START_ATTEMPTS} attempts; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The base URL, e.g. `http://127.0.0.1:PORT`; alerts go to `<url>/api/v2/alerts`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The generated config file.
    pub fn config_file(&self) -> PathBuf {
        self.config.clone()
    }

    /// `POST /api/v2/alerts` with `alerts` (a JSON array of alerts), as a sender would.
    /// Panics with the answer unless it is 200.
    pub fn post_alerts(&self, alerts: &serde_json::Value) {
        match http_post(self.addr, "/api/v2/alerts", &alerts.to_string()) {
            Ok((200, _)) => {}
            Ok((status, body)) => panic!(
                "POST /api/v2/alerts: {status} {body}\nAlertmanager's log:\n{}",
                self.log()
            ),
            Err(e) => panic!("POST /api/v2/alerts on {}: {e}", self.addr),
        }
    }

    /// `GET /api/v2/alerts`: the alerts Alertmanager holds (active, silenced and inhibited;
    /// resolved ones are gone), as JSON. Panics on anything but a 200 with JSON.
    pub fn alerts(&self) -> serde_json::Value {
        match http_get(self.addr, "/api/v2/alerts") {
            Ok((200, body)) => serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("GET /api/v2/alerts: not JSON ({e}): {body}")),
            Ok((status, body)) => panic!("GET /api/v2/alerts: {status} {body}"),
            Err(e) => panic!("GET /api/v2/alerts on {}: {e}", self.addr),
        }
    }

    /// Alertmanager's log so far (debug level: every notification attempt is in it).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Panics with the log if Alertmanager has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}

fn seconds(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

fn config_yaml(webhook_url: &str, routing: &Routing) -> String {
    let group_by: Vec<String> = routing.group_by.iter().map(|l| format!("'{l}'")).collect();
    format!(
        "# Generated by vantage-e2e for one test.
route:
  receiver: {RECEIVER}
  group_by: [{group_by}]
  group_wait: {wait}
  group_interval: {interval}
  repeat_interval: {repeat}
receivers:
  - name: {RECEIVER}
    webhook_configs:
      - url: '{webhook_url}'
        send_resolved: true
",
        group_by = group_by.join(", "),
        wait = seconds(routing.group_wait),
        interval = seconds(routing.group_interval),
        repeat = seconds(routing.repeat_interval),
    )
}

/// Checks the config with `amtool check-config` when amtool is there (the same package ships
/// it): its message is clearer than a process that exits.
fn check_config(config: &std::path::Path) {
    let amtool = PathBuf::from("/usr/bin/amtool");
    if !amtool.is_file() {
        return;
    }
    let out = Command::new(&amtool)
        .arg("check-config")
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", amtool.display()));
    assert!(
        out.status.success(),
        "amtool rejects the generated config: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(config).unwrap_or_default()
    );
}
