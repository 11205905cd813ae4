//! A Vantage network as real processes on loopback: one `vantage-coordinator serve` with a
//! SQLite data directory (or several sharing a PostgreSQL store), and `vantage-probe run`
//! agents registered with it in named regions.
//!
//! Everything lives in one temporary directory per [`Fleet`], kept (and its path printed)
//! when the test panics or `VANTAGE_E2E_KEEP` is set, so the logs of every process can be read afterwards. Processes are
//! killed with SIGKILL ([`std::process::Child::kill`]): stopping one is a crash, never an
//! orderly shutdown. The coordinator restarts on the same data directory and port, the probe
//! on the same state directory (spool and last good config).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use vantage_checks::result::CheckResult;

use crate::{ServerProcess, wait_until, workspace_binary};

/// How long a coordinator may take to answer `/healthz` after it is started.
const START_WITHIN: Duration = Duration::from_secs(20);
/// Deadline of one HTTP request to the coordinator's API.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A temporary directory holding a coordinator's data, its probes' state and every log.
#[derive(Debug)]
pub struct Fleet {
    dir: Option<tempfile::TempDir>,
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

impl Fleet {
    /// A new, empty directory.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vantage-fleet-")
            .tempdir()
            .expect("create a temporary directory for the fleet");
        Self { dir: Some(dir) }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("the fleet directory").path()
    }

    /// Writes `text` as the coordinator's check file and starts the coordinator on a free
    /// loopback port. Waits until it answers `/healthz`.
    pub fn coordinator(&self, checks: &str) -> Coordinator {
        self.coordinator_with(checks, None)
    }

    /// Like [`Fleet::coordinator`], with `config` as its `coordinator.toml` (receivers,
    /// routes, quarantine…); paths in it are relative to the fleet's directory.
    pub fn coordinator_with(&self, checks: &str, config: Option<&str>) -> Coordinator {
        self.coordinator_named("coordinator", checks, config)
    }

    /// Like [`Fleet::coordinator_with`], for one of several coordinators in this fleet (sharing
    /// a PostgreSQL store): `<name>/` is its data directory, `<name>.toml` its config and
    /// `<name>.log` its log. They share `checks.toml`, as coordinators sharing a store share
    /// their checks, so it is written only when its text changes (a coordinator already
    /// running reloads it).
    pub fn coordinator_named(&self, name: &str, checks: &str, config: Option<&str>) -> Coordinator {
        let checks_path = self.path().join("checks.toml");
        if std::fs::read_to_string(&checks_path).ok().as_deref() != Some(checks) {
            std::fs::write(&checks_path, checks).expect("write checks.toml");
        }
        let config = config.map(|text| {
            let path = self.path().join(format!("{name}.toml"));
            std::fs::write(&path, text).expect("write the coordinator's config");
            path
        });
        let mut coordinator = Coordinator {
            data_dir: self.path().join(name),
            config,
            checks: checks_path,
            log: self.path().join(format!("{name}.log")),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            process: None,
            starts: 0,
        };
        // A port found free can be taken before the coordinator binds it: pick another.
        for _ in 0..5 {
            coordinator.addr = SocketAddr::from(([127, 0, 0, 1], listener_port()));
            if coordinator.try_start() {
                return coordinator;
            }
        }
        panic!(
            "the coordinator could not bind a port in 5 attempts; its log:\n{}",
            coordinator.log()
        );
    }

    /// Registers probe `id` in `region` with `coordinator` without starting an agent, and
    /// returns its token, for a test that pushes results itself.
    pub fn register(&self, coordinator: &Coordinator, id: &str, region: &str) -> String {
        let token_file = self.path().join(format!("{id}.token"));
        coordinator.add_probe(id, region, &token_file);
        std::fs::read_to_string(&token_file)
            .expect("read the token file")
            .trim()
            .to_owned()
    }

    /// Registers probe `id` in `region` with `coordinator` and starts it.
    pub fn probe(&self, coordinator: &Coordinator, id: &str, region: &str) -> Probe {
        self.probe_with(coordinator, id, region, ProbeOptions::default())
    }

    /// Registers probe `id` in `region` with `coordinator` and starts it as `options` say:
    /// through a relay, inside a network namespace, with more arguments.
    pub fn probe_with(
        &self,
        coordinator: &Coordinator,
        id: &str,
        region: &str,
        options: ProbeOptions,
    ) -> Probe {
        let token_file = self.path().join(format!("{id}.token"));
        coordinator.add_probe(id, region, &token_file);
        let mut probe = Probe {
            id: id.to_owned(),
            region: region.to_owned(),
            coordinator: options.coordinator.unwrap_or(coordinator.addr),
            options,
            token_file,
            state_dir: self.path().join(format!("{id}-state")),
            log: self.path().join(format!("{id}.log")),
            process: None,
            starts: 0,
        };
        probe.start();
        probe
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let keep = std::thread::panicking() || std::env::var_os("VANTAGE_E2E_KEEP").is_some();
        if keep && let Some(dir) = self.dir.take() {
            eprintln!(
                "the fleet's directory (logs, data, spools) is kept at {}",
                dir.keep().display()
            );
        }
    }
}

/// A port on 127.0.0.1 free a moment ago and outside the kernel's ephemeral range, so that
/// no client's outgoing connection takes it while the server listening there is down.
fn listener_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = if low > 12_000 {
        (10_000, low)
    } else {
        (61_000, 65_000)
    };
    let seed = u64::from(std::process::id())
        ^ SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let span = u64::from(to - from);
    for i in 0..1000u64 {
        let port = from + ((seed.wrapping_mul(6_364_136_223_846_793_005) + i * 7919) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {from}..{to} after 1000 tries");
}

/// A `vantage-coordinator serve` process on plain HTTP on loopback.
#[derive(Debug)]
pub struct Coordinator {
    /// Where it listens.
    pub addr: SocketAddr,
    data_dir: PathBuf,
    config: Option<PathBuf>,
    checks: PathBuf,
    log: PathBuf,
    process: Option<ServerProcess>,
    starts: u32,
}

impl Coordinator {
    /// The base URL probes use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The data directory (SQLite).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything the coordinator has logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts the process and waits for `/healthz`; false if it could not bind its port.
    fn try_start(&mut self) -> bool {
        self.starts += 1;
        append_marker(
            &self.log,
            &format!("start {} on {}", self.starts, self.addr),
        );
        let mut cmd = Command::new(workspace_binary("vantage-coordinator"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--checks")
            .arg(&self.checks)
            .env("RUST_LOG", "info")
            .env_remove("VANTAGE_CONFIG");
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        let log_before = self.log().len();
        let mut process = ServerProcess::spawn("vantage-coordinator", cmd, &self.log);
        let addr = self.addr;
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if matches!(http_get(addr, "/healthz"), Ok((200, _))) {
                self.process = Some(process);
                return true;
            }
            // The error is logged before the process exits: look for it first.
            if self
                .log()
                .get(log_before..)
                .is_some_and(|l| l.contains("cannot listen on"))
            {
                process.stop();
                return false;
            }
            process.assert_running();
            assert!(
                Instant::now() < deadline,
                "the coordinator did not answer /healthz on {addr} within {START_WITHIN:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the coordinator with SIGKILL (no drain, no flush) and waits until its port is
    /// closed.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
        append_marker(&self.log, "killed (SIGKILL)");
        let addr = self.addr;
        wait_until(
            &format!("the killed coordinator's port {addr} to close"),
            Duration::from_secs(10),
            || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
        );
    }

    /// Freezes the coordinator with SIGSTOP (a paused VM, a long GC, a stuck host): its
    /// sockets stay open and nothing answers.
    pub fn pause(&self) {
        self.signal("STOP");
        append_marker(&self.log, "paused (SIGSTOP)");
    }

    /// Wakes a paused coordinator with SIGCONT.
    pub fn resume(&self) {
        append_marker(&self.log, "resumed (SIGCONT)");
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .process
            .as_ref()
            .and_then(ServerProcess::pid)
            .expect("a running coordinator");
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pid} failed");
    }

    /// Starts the coordinator again on the same data directory and port, and waits until it
    /// answers `/healthz`.
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "restart a coordinator that is down");
        let addr = self.addr;
        // The old listener is gone, but a port outside the ephemeral range is rarely taken.
        assert!(
            self.try_start(),
            "the coordinator could not bind {addr} again; its log:\n{}",
            self.log()
        );
    }

    /// Replaces the check file (write, then rename); the coordinator reloads it within a few
    /// seconds and the probes pick it up at their next config pull.
    pub fn set_checks(&self, text: &str) {
        let tmp = self.checks.with_extension("toml.new");
        std::fs::write(&tmp, text).expect("write the new check file");
        std::fs::rename(&tmp, &self.checks).expect("replace the check file");
    }

    /// Panics with the log if the coordinator is supposed to run but has exited.
    pub fn assert_running(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.assert_running();
        }
    }

    /// Registers a probe with `vantage-coordinator probe add`, its token written to
    /// `token_file`. Works while the coordinator runs.
    pub fn add_probe(&self, id: &str, region: &str, token_file: &Path) {
        let out = Command::new(workspace_binary("vantage-coordinator"))
            .arg("probe")
            .arg("add")
            .arg(id)
            .arg("--region")
            .arg(region)
            .arg("--token-file")
            .arg(token_file)
            .arg("--data-dir")
            .arg(&self.data_dir)
            // The coordinator's own config: the same store (a PostgreSQL one, say).
            .args(
                self.config
                    .iter()
                    .flat_map(|c| [std::ffi::OsStr::new("--config"), c.as_os_str()]),
            )
            .env_remove("VANTAGE_CONFIG")
            .output()
            .expect("run vantage-coordinator probe add");
        assert!(
            out.status.success(),
            "`probe add {id}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `GET /api/v1/results` with `query` (e.g. `probe=eu-1&limit=10000`), newest first.
    /// Panics on anything but a 200 with a JSON array of results.
    pub fn results(&self, query: &str) -> Vec<CheckResult> {
        let path = format!("/api/v1/results?{query}");
        match http_get(self.addr, &path) {
            Ok((200, body)) => serde_json::from_str(&body).unwrap_or_else(|e| {
                panic!(
                    "GET {path}: not a JSON array of results ({e}): {}",
                    &body[..body.len().min(2000)]
                )
            }),
            Ok((status, body)) => panic!("GET {path}: {status} {body}"),
            Err(e) => panic!("GET {path} on {}: {e}", self.addr),
        }
    }

    /// Every stored result of probe `id` (at most 10,000), newest first.
    pub fn results_of(&self, id: &str) -> Vec<CheckResult> {
        self.results(&format!("probe={id}&limit=10000"))
    }
}

/// How [`Fleet::probe_with`] starts a probe; the default is [`Fleet::probe`]'s.
#[derive(Clone, Debug, Default)]
pub struct ProbeOptions {
    /// The coordinator address to give the probe instead of the coordinator's own, e.g. a
    /// [`crate::relay::Relay`]'s.
    pub coordinator: Option<SocketAddr>,
    /// A network namespace to run the probe in (`ip netns exec`), e.g.
    /// [`crate::netns::BrokenNet::name`]; the coordinator address is then the namespace's.
    pub netns: Option<String>,
    /// More arguments for `vantage-probe run`.
    pub args: Vec<String>,
    /// Coordinator URLs to list instead (coordinators sharing a store), in order of
    /// preference.
    pub coordinators: Vec<String>,
}

/// A `vantage-probe run` agent.
#[derive(Debug)]
pub struct Probe {
    /// The probe's id.
    pub id: String,
    /// Its region.
    pub region: String,
    coordinator: SocketAddr,
    options: ProbeOptions,
    token_file: PathBuf,
    state_dir: PathBuf,
    log: PathBuf,
    process: Option<ServerProcess>,
    starts: u32,
}

impl Probe {
    /// Starts the agent (again, after [`Probe::kill`]) on the same state directory.
    pub fn start(&mut self) {
        assert!(self.process.is_none(), "start a probe that is down");
        self.starts += 1;
        append_marker(&self.log, &format!("start {}", self.starts));
        let binary = workspace_binary("vantage-probe");
        let mut cmd = match &self.options.netns {
            Some(netns) => {
                let mut cmd = Command::new("ip");
                cmd.arg("netns").arg("exec").arg(netns).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        let coordinators = if self.options.coordinators.is_empty() {
            format!("http://{}", self.coordinator)
        } else {
            self.options.coordinators.join(",")
        };
        cmd.arg("run")
            .arg("--coordinator")
            .arg(coordinators)
            .arg("--token-file")
            .arg(&self.token_file)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--probe-id")
            .arg(&self.id)
            .arg("--region")
            .arg(&self.region)
            .args(&self.options.args)
            .env("RUST_LOG", "info")
            .env_remove("VANTAGE_PROBE_CONFIG")
            .env_remove("VANTAGE_PROBE_TOKEN");
        self.process = Some(ServerProcess::spawn(
            &format!("vantage-probe {}", self.id),
            cmd,
            &self.log,
        ));
    }

    /// Kills the agent with SIGKILL: whatever it had not spooled is lost, the spool stays.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
        append_marker(&self.log, "killed (SIGKILL)");
    }

    /// Panics with the log if the agent is supposed to run but has exited.
    pub fn assert_running(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.assert_running();
        }
    }

    /// The spool's directory (`<state dir>/spool`). Open it only while the probe is down.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }

    /// Bytes of the spool's segment files on disk right now (0 before the first result).
    /// Safe while the probe runs: it only reads the directory.
    pub fn spool_bytes(&self) -> u64 {
        let Ok(entries) = std::fs::read_dir(self.spool_dir()) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("seg-") && name.ends_with(".log")
            })
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Everything the agent has logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn append_marker(log: &Path, what: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open a log");
    let _ = writeln!(f, "===== vantage-e2e: {what} =====");
}

/// A minimal blocking HTTP/1.1 GET (`Connection: close`): the status and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, None, None)
}

/// [`http_get`] with a bearer `token` (`Connection: close`): the status and the body.
pub fn http_get_token(addr: SocketAddr, path: &str, token: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, Some(token), None)
}

/// A minimal blocking HTTP/1.1 POST of a JSON `body` without credentials
/// (`Connection: close`): the status and the body.
pub fn http_post(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "POST", path, None, Some(body))
}

/// A minimal blocking HTTP/1.1 POST of a JSON `body` with a bearer `token`
/// (`Connection: close`): the status and the body.
pub fn http_post_json(
    addr: SocketAddr,
    path: &str,
    token: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    http_request(addr, "POST", path, Some(token), Some(body))
}

fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {}\r\n", token.trim()));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    if raw.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the connection closed without an answer",
        ));
    }
    let text = String::from_utf8(raw).map_err(|_| bad("the answer is not UTF-8"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("the answer has no end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("the answer has no status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("a broken chunked body"))?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The body of a chunked answer, `None` if broken.
pub(crate) fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}
