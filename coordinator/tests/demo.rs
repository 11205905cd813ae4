//! `vantage-coordinator demo`, the real binary: the script plays every fault, each one gives
//! its state and its page, then resolves; `--no-faults` stays operational and pages nobody;
//! Ctrl-C (SIGINT) exits 0 and removes the demo's directory.
//!
//! The demo's world listens on fixed addresses (127.77.x.y), so these tests run one at a time.
#![cfg(feature = "demo")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vantage-coordinator");

/// One demo at a time: they share the world's addresses.
static SERIAL: Mutex<()> = Mutex::new(());

/// Warm-up, five faults and their recoveries take about 80 s here; this bounds a stuck run.
const SCRIPT_WITHIN: Duration = Duration::from_secs(420);
/// The warm-up alone.
const WARM_UP_WITHIN: Duration = Duration::from_secs(120);
/// From SIGINT to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(40);

/// A running demo; killed if the test fails before it stops it.
struct Demo {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
    _stderr_dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Demo {
    fn start(extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr = dir.path().join("stderr.log");
        let mut child = Command::new(BIN)
            .arg("demo")
            .arg("--listen")
            .arg(addr.to_string())
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn the demo");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            _stderr_dir: dir,
            addr,
        }
    }

    fn context(&self) -> String {
        format!(
            "output so far:\n{}\nstderr:\n{}",
            self.seen.join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Reads lines until one contains `text`; returns it. Panics after `deadline`.
    fn until(&mut self, text: &str, deadline: Instant) -> String {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line with `{text}` in time; {}", self.context())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the demo exited before printing `{text}`; {}",
                        self.context()
                    )
                }
            }
        }
    }

    /// The lines printed from the one holding `from` (the last one) up to the next holding
    /// `to`, both included.
    fn block(&mut self, from: &str, to: &str, deadline: Instant) -> Vec<String> {
        self.until(from, deadline);
        let start = self.seen.len() - 1;
        self.until(to, deadline);
        self.seen[start..].to_vec()
    }

    /// SIGINT, as Ctrl-C sends; returns the exit status and the rest of the output.
    fn interrupt(&mut self) -> (std::process::ExitStatus, Vec<String>) {
        let sent = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -INT failed");
        let deadline = Instant::now() + EXIT_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The reader thread ends at the pipe's end of file, after the last line.
                let mut rest = Vec::new();
                while let Ok(line) = self.lines.recv_timeout(EXIT_WITHIN) {
                    rest.push(line);
                }
                self.seen.extend(rest.iter().cloned());
                return (status, rest);
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not exit within {EXIT_WITHIN:?} of SIGINT; {}",
                self.context()
            );
            // Polling the process, not waiting for time to pass.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The demo's data directory, from its banner.
    fn data_dir(&self) -> PathBuf {
        let line = self
            .seen
            .iter()
            .find(|l| l.trim_start().starts_with("data "))
            .unwrap_or_else(|| panic!("no data line in the banner; {}", self.context()));
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("no path in `{line}`"));
        PathBuf::from(path)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` over a fresh connection: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// One scripted fault: the line announcing it, the state and page it must lead to, and
/// what must not be said while it lasts and clears.
struct Expected {
    injecting: &'static str,
    state: &'static str,
    alert: &'static str,
    never: &'static [&'static str],
}

const SCRIPT: [Expected; 5] = [
    Expected {
        injecting: "injecting: regional CDN outage in ap-south",
        state: "STATE  demo-cdn in ap-south: operational → hard_down",
        alert: "ALERT  trigger demo-cdn hard_down regional: ap-south",
        never: &["demo-cdn globally", "demo-dns"],
    },
    Expected {
        injecting: "injecting: slow CDN edge",
        state: "STATE  demo-cdn globally: operational → degraded  [degraded: edge2-css",
        alert: "ALERT  trigger demo-cdn degraded global",
        never: &["hard_down", "demo-dns"],
    },
    Expected {
        injecting: "injecting: SOA drift",
        state: "STATE  demo-dns globally: operational → degraded  [data_consistency: www-a (soa_serial_mismatch)",
        alert: "ALERT  trigger demo-dns degraded global",
        // Regression: while the drift cleared (recover_for), the failing check had no failing
        // votes left, so its condition fell back to hard_down and paged an update.
        never: &["hard_down", "demo-cdn"],
    },
    Expected {
        injecting: "injecting: CDN control API down",
        state: "STATE  demo-cdn globally: operational → api_down  [api_down: cdn-api (http_status)",
        alert: "ALERT  trigger demo-cdn api_down global",
        never: &["hard_down", "demo-dns"],
    },
    Expected {
        injecting: "injecting: CDN log delivery stalled",
        state: "STATE  demo-cdn globally: operational → limited_visibility  [limited_visibility: cdn-logs (stale_data)",
        alert: "ALERT  trigger demo-cdn limited_visibility global",
        never: &["hard_down", "demo-dns"],
    },
];

#[test]
fn the_script_plays_every_fault_each_is_seen_paged_and_resolved_and_ctrl_c_exits_cleanly() {
    let _serial = lock();
    let mut demo = Demo::start(&["--hold", "0s"]);
    let deadline = Instant::now() + SCRIPT_WITHIN;
    let url = demo.until("status page", deadline);
    assert!(
        url.trim_end().ends_with(&format!("http://{}/", demo.addr)),
        "{url}"
    );
    demo.until("✓ every vendor operational", deadline);
    let (status, body) = get(demo.addr, "/api/v1/vendors");
    assert_eq!(status, 200, "{body}");
    for e in &SCRIPT {
        let block = demo.block(e.injecting, "✓ recovered", deadline);
        let has = |text: &str| block.iter().any(|l| l.contains(text));
        let text = block.join("\n");
        assert!(has(e.state), "`{}` not among:\n{text}", e.state);
        assert!(has(e.alert), "`{}` not among:\n{text}", e.alert);
        assert!(has("✓ detected"), "{text}");
        assert!(has("ALERT  resolve"), "{text}");
        assert!(!has("✗"), "{text}");
        for word in e.never {
            assert!(!has(word), "`{word}` while {}:\n{text}", e.injecting);
        }
        let triggers = block
            .iter()
            .filter(|l| l.contains("ALERT  trigger"))
            .count();
        assert_eq!(triggers, 1, "one page per fault:\n{text}");
    }
    demo.until("script done", deadline);
    let dir = demo.data_dir();
    assert!(dir.is_dir(), "{} exists while the demo runs", dir.display());

    let (status, rest) = demo.interrupt();
    assert!(status.success(), "exit {status}; {}", demo.context());
    assert!(
        rest.iter()
            .any(|l| l.contains(&format!("removed {}", dir.display()))),
        "{rest:?}"
    );
    assert!(!dir.exists(), "{} is removed", dir.display());
}

#[test]
fn without_faults_the_world_stays_operational_and_pages_nobody() {
    let _serial = lock();
    let mut demo = Demo::start(&["--no-faults"]);
    let deadline = Instant::now() + WARM_UP_WITHIN;
    demo.until("✓ every vendor operational", deadline);
    demo.until("no faults (--no-faults)", deadline);
    let since = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    // Six probes, eight checks every 2 s: 400 results is more than three intervals of every
    // check from every probe.
    let wanted = 400;
    let waited_from = Instant::now();
    loop {
        let (status, body) = get(
            demo.addr,
            &format!("/api/v1/results?since={since}&limit=10000"),
        );
        assert_eq!(status, 200, "{body}");
        let results: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON");
        if results.len() >= wanted {
            let failed: Vec<&serde_json::Value> =
                results.iter().filter(|r| r["status"] != "ok").collect();
            assert!(failed.is_empty(), "a healthy world failed: {failed:?}");
            break;
        }
        assert!(
            waited_from.elapsed() < WARM_UP_WITHIN,
            "only {} results in {WARM_UP_WITHIN:?}; {}",
            results.len(),
            demo.context()
        );
        // Polling the API, not waiting for time to pass.
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = get(demo.addr, "/api/v1/vendors");
    assert_eq!(status, 200);
    let vendors: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON");
    assert_eq!(vendors.len(), 2, "{body}");
    for v in &vendors {
        assert_eq!(v["global"]["state"], "operational", "{v}");
    }

    let (status, _) = demo.interrupt();
    assert!(status.success(), "exit {status}; {}", demo.context());
    let alerts: Vec<&String> = demo.seen.iter().filter(|l| l.contains("ALERT")).collect();
    assert!(alerts.is_empty(), "a healthy world paged: {alerts:?}");
    let bad: Vec<&String> = demo
        .seen
        .iter()
        .filter(|l| l.contains("STATE") && !l.ends_with("→ operational"))
        .collect();
    assert!(bad.is_empty(), "a healthy world changed state: {bad:?}");
}
