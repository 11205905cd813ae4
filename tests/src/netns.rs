//! A broken vantage point: a network namespace from which the coordinator is reachable and
//! nothing else is (ARCHITECTURE.md §9, "single broken probe").
//!
//! [`BrokenNet::new`] creates a namespace `vantage-<pid>-<n>` with its own loopback and a veth
//! pair on a /30 of `10.213.0.0/16` (host side `.1`, namespace side `.2`), then two relays:
//! `socat` inside the namespace listens on its `127.0.0.1:<coordinator port>` and forwards to
//! the host side of the veth, where an in-process [`Relay`] forwards to the host's
//! `127.0.0.1:<coordinator port>`. A probe started with [`BrokenNet::command`] is given the
//! coordinator's usual URL and reaches it, while every vendor server on the host's loopback is
//! out of its reach (its own `127.0.0.1` is the namespace's, where nothing else listens, and
//! it has no route anywhere but the /30): each of its checks fails, as on a broken network,
//! while its results still arrive. Only a host server bound to `0.0.0.0` would be reachable,
//! at the host side of the veth; the harness binds every server to loopback addresses.
//!
//! Dropping the [`BrokenNet`] kills `socat`, stops the relay and deletes the namespace and the
//! veth pair, also when the test panics. Kill the processes started in the namespace first
//! (declare the `BrokenNet` before them, so that they drop first): a process still inside
//! keeps the namespace alive after its name is gone. Namespaces left behind by a test process
//! that was killed are deleted by the next [`BrokenNet::new`].
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), `ip` (iproute2) and `socat`. The relay inside
//! the namespace is `socat` because a process enters a namespace only by `setns(2)`, which the
//! workspace's `unsafe_code = "forbid"` rules out in Rust, while `ip netns exec` runs any
//! program there.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::relay::Relay;
use crate::{ServerProcess, find_binary, panic_text, wait_until};

/// How many /30s there are in `10.213.0.0/16`.
const SUBNETS: u32 = 16_384;
/// How many veth names to try before giving up.
const CLAIM_ATTEMPTS: u32 = 64;
/// How long `socat` may take to listen inside the namespace.
const START_WITHIN: Duration = Duration::from_secs(10);

static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// A network namespace that reaches only the coordinator; deleted when dropped.
#[derive(Debug)]
pub struct BrokenNet {
    name: String,
    veth: Option<String>,
    host_ip: Ipv4Addr,
    inner_ip: Ipv4Addr,
    coordinator_port: u16,
    // Dropped (killed) before the namespace is deleted, see Drop.
    socat: Option<ServerProcess>,
    relay: Option<Relay>,
    dir: tempfile::TempDir,
}

impl BrokenNet {
    /// Creates the namespace and its relays so that `http://127.0.0.1:<coordinator_port>`
    /// inside it is the host's `127.0.0.1:<coordinator_port>`. Panics, saying which step
    /// failed and why, if any does.
    pub fn new(coordinator_port: u16) -> Self {
        let socat_bin = find_binary("socat", "socat");
        find_binary("ip", "iproute2");
        reap_stale();
        let n = INSTANCES.fetch_add(1, Ordering::SeqCst);
        let name = format!("vantage-{}-{n}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("vantage-netns-")
            .tempdir()
            .expect("create a temporary directory for the namespace's logs");
        ip(&["netns", "add", &name]).unwrap_or_else(|e| {
            panic!("cannot create network namespace {name} (the test needs root): {e}")
        });
        // From here on Drop cleans up whatever was made, also if a later step panics.
        let mut net = Self {
            name,
            veth: None,
            host_ip: Ipv4Addr::UNSPECIFIED,
            inner_ip: Ipv4Addr::UNSPECIFIED,
            coordinator_port,
            socat: None,
            relay: None,
            dir,
        };
        let name = net.name.clone();
        let (index, host_veth, inner_veth) = claim_veth(&name);
        net.veth = Some(host_veth.clone());
        let [a, b] = [(index / 64) as u8, (index % 64 * 4) as u8];
        net.host_ip = Ipv4Addr::new(10, 213, a, b + 1);
        net.inner_ip = Ipv4Addr::new(10, 213, a, b + 2);
        let host_cidr = format!("{}/30", net.host_ip);
        let inner_cidr = format!("{}/30", net.inner_ip);
        for step in [
            vec!["addr", "add", &host_cidr, "dev", &host_veth],
            vec!["link", "set", &host_veth, "up"],
            vec!["-n", &name, "addr", "add", &inner_cidr, "dev", &inner_veth],
            vec!["-n", &name, "link", "set", &inner_veth, "up"],
            vec!["-n", &name, "link", "set", "lo", "up"],
        ] {
            ip(&step).unwrap_or_else(|e| panic!("setting up network namespace {name}: {e}"));
        }
        let coordinator = SocketAddr::from(([127, 0, 0, 1], coordinator_port));
        let relay = Relay::bind(SocketAddr::from((net.host_ip, 0)), coordinator)
            .unwrap_or_else(|e| panic!("cannot start the relay on {}: {e}", net.host_ip));
        let relay_addr = relay.addr();
        net.relay = Some(relay);
        let mut cmd = net.command(&socat_bin);
        cmd.arg("-d")
            .arg(format!(
                "TCP-LISTEN:{coordinator_port},bind=127.0.0.1,reuseaddr,fork"
            ))
            .arg(format!("TCP:{relay_addr},connect-timeout=2"));
        let log = net.dir.path().join("socat.log");
        let mut socat = ServerProcess::spawn(&format!("socat in {name}"), cmd, &log);
        let pid = socat.pid().expect("socat's pid");
        let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(
                &format!("socat listening on 127.0.0.1:{coordinator_port} in {name}"),
                START_WITHIN,
                || {
                    socat.assert_running();
                    // `ip netns exec` execs socat in place, so this is socat's namespace.
                    listens(pid, coordinator_port)
                },
            );
        }));
        net.socat = Some(socat);
        if let Err(panic) = ready {
            panic!(
                "{}\nsocat's log:\n{}",
                panic_text(&*panic),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        net
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <name> <program>`: add the program's arguments, then spawn it.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("netns").arg("exec").arg(&self.name).arg(program);
        cmd
    }

    /// The coordinator's URL as seen from inside: `http://127.0.0.1:<coordinator port>`.
    pub fn coordinator_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.coordinator_port)
    }

    /// The host side of the veth pair.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The namespace side of the veth pair.
    pub fn inner_ip(&self) -> Ipv4Addr {
        self.inner_ip
    }

    /// How many connections have come through to the host side so far.
    pub fn relayed(&self) -> usize {
        self.relay.as_ref().map_or(0, Relay::accepted)
    }

    /// socat's log (connection errors; `-d` logs warnings and up).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("socat.log")).unwrap_or_default()
    }

    /// Where the namespace's files are.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for BrokenNet {
    fn drop(&mut self) {
        if let Some(mut socat) = self.socat.take() {
            socat.stop();
        }
        self.relay.take();
        // Deleting the namespace destroys its end of the veth and with it the pair, once no
        // process is left inside; deleting the host end makes sure of it.
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            eprintln!(
                "vantage-e2e: cannot delete network namespace {}: {e}",
                self.name
            );
        }
        if let Some(veth) = &self.veth
            && link_exists(veth)
            && let Err(e) = ip(&["link", "delete", veth])
        {
            eprintln!("vantage-e2e: cannot delete veth {veth}: {e}");
        }
    }
}

/// Runs `ip <args>`; the error says which command failed and what `ip` printed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Creates a veth pair `vantage<i>h` (host) / `vantage<i>n` (in `netns`) for the first free
/// index `i`: the kernel refuses a name that exists, which makes the claim safe across
/// concurrent test processes. Returns the index and both names.
fn claim_veth(netns: &str) -> (u32, String, String) {
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(INSTANCES.load(Ordering::SeqCst).wrapping_mul(97));
    let mut last = String::new();
    for attempt in 0..CLAIM_ATTEMPTS {
        let index = seed.wrapping_add(attempt.wrapping_mul(7919)) % SUBNETS;
        let host = format!("vantage{index}h");
        let inner = format!("vantage{index}n");
        match ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", &inner, "netns", netns,
        ]) {
            Ok(()) => return (index, host, inner),
            Err(e) if e.contains("File exists") => last = e,
            Err(e) => panic!("cannot create a veth pair for {netns}: {e}"),
        }
    }
    panic!("no free veth name after {CLAIM_ATTEMPTS} tries; last error: {last}");
}

/// Whether process `pid`'s network namespace has a TCP socket listening on 127.0.0.1:`port`
/// (`/proc/<pid>/net/tcp` lists the sockets of the process's namespace).
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl, local_address, rem_address, st (0A = LISTEN)
        f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")
    })
}

/// Deletes the namespaces `vantage-<pid>-<n>` of test processes that no longer exist (killed
/// before their Drop could run) and that no process is in, with their veth pairs.
fn reap_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix("vantage-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let dead =
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists();
        // A namespace with a process inside is in use, whoever made it.
        let empty = Command::new("ip")
            .args(["netns", "pids", name])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii().is_empty());
        if dead && empty {
            let _ = ip(&["netns", "delete", name]);
        }
    }
}
