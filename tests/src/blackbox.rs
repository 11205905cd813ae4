//! Prometheus blackbox_exporter on loopback, the yardstick of the probe's footprint benchmark
//! (ARCHITECTURE.md §7), and the `/proc` readings both sides are measured with.
//!
//! [`BlackboxExporter::start`] runs Debian's `prometheus-blackbox-exporter` in the foreground
//! with a generated `blackbox.yml` on a free loopback port; it returns once `/-/healthy`
//! answers. [`ProcSample`] reads a process's CPU time and memory from `/proc/<pid>`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{ServerProcess, free_port};

/// Where Debian's package installs the exporter.
pub const BINARY: &str = "/usr/bin/prometheus-blackbox-exporter";
/// How long the exporter may take to answer `/-/healthy`.
const START_WITHIN: Duration = Duration::from_secs(15);
/// How many free ports to try before giving up.
const START_ATTEMPTS: usize = 5;

/// The exporter's path; panics with an install hint when it is missing.
pub fn binary() -> PathBuf {
    let path = PathBuf::from(BINARY);
    assert!(
        path.is_file(),
        "{BINARY} is not installed: run `apt-get install -y prometheus-blackbox-exporter` \
         (the package's own service is not used: the benchmark starts its own instance)"
    );
    path
}

/// A running blackbox_exporter, killed when dropped.
#[derive(Debug)]
pub struct BlackboxExporter {
    /// Where it serves `/probe`.
    pub addr: SocketAddr,
    pid: u32,
    process: ServerProcess,
    // Dropped after the process.
    _dir: tempfile::TempDir,
}

impl BlackboxExporter {
    /// Writes `config` (a `blackbox.yml`), checks it with `--config.check`, starts the
    /// exporter on a free loopback port and waits until it is healthy.
    pub fn start(config: &str) -> Self {
        let bin = binary();
        let dir = tempfile::Builder::new()
            .prefix("vantage-blackbox-")
            .tempdir()
            .expect("create a temporary directory for blackbox_exporter");
        let conf = dir.path().join("blackbox.yml");
        std::fs::write(&conf, config).expect("write blackbox.yml");
        let checked = Command::new(&bin)
            .arg(format!("--config.file={}", conf.display()))
            .arg("--config.check")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        assert!(
            checked.status.success(),
            "blackbox_exporter rejects the generated config: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
        let log = dir.path().join("blackbox.log");
        for _ in 0..START_ATTEMPTS {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--config.file={}", conf.display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn");
            let mut process = ServerProcess::spawn("blackbox_exporter", cmd, &log);
            let deadline = Instant::now() + START_WITHIN;
            loop {
                if matches!(http_get(addr, "/-/healthy"), Ok((200, _))) {
                    let needle = conf.to_string_lossy();
                    let pid = child_pid(&needle).unwrap_or_else(|| {
                        panic!(
                            "blackbox_exporter answers on {addr} but is not a child of this process"
                        )
                    });
                    return Self {
                        addr,
                        pid,
                        process,
                        _dir: dir,
                    };
                }
                // A port found free may be taken before the exporter binds it: try another.
                if process.log().contains("address already in use") {
                    process.stop();
                    break;
                }
                process.assert_running();
                assert!(
                    Instant::now() < deadline,
                    "blackbox_exporter did not answer /-/healthy on {addr} within {START_WITHIN:?}; its log:\n{}",
                    process.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "blackbox_exporter could not bind a port in {START_ATTEMPTS} attempts; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The exporter's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exporter's log so far (warnings and errors only).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Panics with the log if the exporter has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}

/// The id of a child of this process whose command line contains `needle` (a path unique to
/// it, such as its temporary directory), if there is one.
pub fn child_pid(needle: &str) -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| {
            let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_field(&s, 4));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            parent == Some(u64::from(me)) && String::from_utf8_lossy(&cmdline).contains(needle)
        })
}

/// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`, counted after the command name,
/// which is in parentheses and may contain spaces.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the command name.
    after_comm
        .split_whitespace()
        .nth(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// Kernel clock ticks per second (`getconf CLK_TCK`), the unit of CPU times in `/proc`.
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// One reading of a process's CPU time and memory.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size now (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// Peak resident set size since the process started (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
    /// Anonymous memory (heap, stacks) resident now (`RssAnon`), in KiB.
    pub anon_kib: u64,
    /// File-backed memory resident now (`RssFile`: mostly the executable's pages), in KiB.
    pub file_kib: u64,
    /// Threads now.
    pub threads: u64,
}

impl ProcSample {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; panics if the process is gone.
    pub fn read(pid: u32) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
        let field = |n| {
            stat_field(&stat, n).unwrap_or_else(|| panic!("/proc/{pid}/stat field {n}: {stat}"))
        };
        let status_kib = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or_else(|| panic!("no `{key}` in /proc/{pid}/status"))
        };
        Self {
            // utime and stime.
            cpu_ticks: field(14) + field(15),
            rss_kib: status_kib("VmRSS:"),
            peak_rss_kib: status_kib("VmHWM:"),
            anon_kib: status_kib("RssAnon:"),
            file_kib: status_kib("RssFile:"),
            threads: status_kib("Threads:"),
        }
    }
}

/// A minimal blocking HTTP/1.1 GET: the one the fleet harness uses.
pub use crate::fleet::http_get;

/// `s` percent-encoded for a query parameter's value (everything but RFC 3986 unreserved).
pub fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Bytes of the regular files under `dir`, recursively (0 if it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some(if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            })
        })
        .sum()
}
