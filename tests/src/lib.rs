//! End-to-end test harness: real servers (NSD, nginx, Alertmanager) started on loopback ports
//! with generated configuration, in-process fakes, and helpers to wait for them without
//! sleeping blindly.
//!
//! Layout:
//! - this file: ports, process guards, waiting with deadlines, finding server binaries;
//! - [`dns`]: authoritative DNS servers (NSD) with generated zones, signed with `ldns-signzone`
//!   for the DNSSEC tests;
//! - [`pki`]: a throwaway test CA and server certificates;
//! - [`cdn`]: nginx as a caching edge in front of an origin, with per-source faults;
//! - [`fleet`]: a coordinator and probes as real processes;
//! - [`alertmanager`]: Prometheus Alertmanager as an alert receiver, notifying a webhook;
//! - [`sink`]: an in-process HTTP server that records every request (webhooks, Slack,
//!   PagerDuty) and answers as the test says;
//! - [`relay`]: an in-process TCP relay that can be paused, to cut a probe off its coordinator;
//! - [`netns`]: a network namespace that reaches only the coordinator, for a broken probe;
//! - [`blackbox`]: Prometheus blackbox_exporter, for the footprint benchmark;
//! - [`browser`]: headless Chromium over WebDriver (ChromeDriver), screenshots as artefacts;
//! - [`postgres`]: a PostgreSQL cluster of the test's own (initdb), for the PostgreSQL store;
//! - [`cluster`]: coordinators sharing a PostgreSQL store, who holds which lease, and the HA
//!   tests' and failover benchmark's three-coordinator world;
//! - [`tmpfs`]: a small tmpfs of the test's own, for a disk that fills up;
//! - [`world`]: the scenario corpus' world (all of the above, two vendors, six or seven
//!   probes in three regions, on SQLite or on PostgreSQL with three coordinators), shared by
//!   the scenarios and the time-to-detect benchmark.
//!
//! A server that cannot start fails the test loudly: nothing here skips.

pub mod alertmanager;
pub mod blackbox;
pub mod browser;
pub mod cdn;
pub mod cluster;
pub mod dns;
pub mod fleet;
pub mod netns;
pub mod pki;
pub mod postgres;
pub mod relay;
pub mod sink;
pub mod tmpfs;
pub mod world;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One check of `kind` from its TOML keys, with `timeout` and no retry (so a failure is the
/// first attempt's), under a throwaway vendor. Panics with the rendered errors if invalid.
pub fn check_from_toml(kind: &str, timeout: &str, keys: &str) -> vantage_checks::model::Check {
    let text = format!(
        "[[vendor]]\nid = \"e2e\"\nname = \"End-to-end vendor\"\n\n\
         [[check]]\nid = \"{kind}-e2e\"\nvendor = \"e2e\"\nkind = \"{kind}\"\n\
         timeout = \"{timeout}\"\nretry = \"off\"\n{keys}\n"
    );
    let set = vantage_checks::config::parse_str(&text)
        .unwrap_or_else(|d| panic!("invalid test check:\n{}\n{text}", d.render()));
    set.checks.into_iter().next().expect("one check")
}

/// Runs a check once, as `vantage-probe once` would, on a fresh single-threaded runtime.
pub fn run_once(check: &vantage_checks::model::Check) -> vantage_checks::result::CheckResult {
    run_once_in(check, &vantage_checks::exec::RunEnv::local())
}

/// [`run_once`] in a given environment (a probe id, a `source_address`).
pub fn run_once_in(
    check: &vantage_checks::model::Check,
    env: &vantage_checks::exec::RunEnv,
) -> vantage_checks::result::CheckResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(vantage_checks::exec::run_check(check, env, 0))
}

/// A port on 127.0.0.1 that was free for both TCP and UDP a moment ago.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a loopback TCP port");
        let port = tcp.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both TCP and UDP after 100 tries");
}

/// Polls `probe` every 20 ms until it returns true, or panics after `within` naming `what`.
pub fn wait_until(what: &str, within: Duration, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if probe() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not happen within {within:?}");
}

/// The text of a panic payload (`panic!` with a message gives a `String` or a `&str`).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_tcp(addr: SocketAddr, within: Duration) {
    wait_until(&format!("a TCP listener on {addr}"), within, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
}

/// Finds a server binary in PATH or the usual sbin directories; panics with an install hint.
pub fn find_binary(name: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run `apt-get install {package}` (or `.ci/run`, which does)")
        })
}

/// The path of a workspace binary (`vantage-coordinator`, `vantage-probe`) built next to this
/// test; `tests/run` builds them first (`cargo build --workspace --bins`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo build --workspace --bins` (tests/run does)",
        bin.display()
    );
    bin
}

/// Builds workspace binary `name` (of the package of the same name) with cargo `profile`
/// into the target directory this bench or test was built into, and returns its path: what a
/// benchmark measures is built as an operator deploys it, not as the tests run it.
pub fn build_binary(name: &str, profile: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("a bench runs from <target>/<profile>/deps")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let status = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "--profile",
            profile,
            "-p",
            name,
            "--bin",
            name,
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "`cargo build --profile {profile} -p {name}` failed"
    );
    let dir = if profile == "dev" { "debug" } else { profile };
    let bin = target.join(dir).join(name);
    assert!(
        bin.is_file(),
        "{} is not where cargo builds it",
        bin.display()
    );
    eprintln!(
        "built {} ({profile} profile) in {:.0?}",
        bin.display(),
        started.elapsed()
    );
    bin
}

/// A child process killed (and reaped) when dropped, with its log kept for failure messages.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open server log");
        let err = out.try_clone().expect("clone log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True once the process has exited (or was stopped).
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Panics with the log if the process has already exited.
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "{} exited with {status}; its log:\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// The process id, while the process has not been stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM (with `kill`, as the workspace forbids the unsafe `libc` call) and waits
    /// up to `within` for the process to exit; kills it with SIGKILL if it has not. For
    /// servers whose own children would outlive a SIGKILL of the parent (nginx's workers).
    /// True if the process exited of its own accord.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + within;
        while sent && Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the process now and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
