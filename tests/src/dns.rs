//! Authoritative DNS servers for the end-to-end tests: NSD on loopback, one process per
//! [`Nsd`], with its zones and `nsd.conf` generated into a temporary directory.
//!
//! NSD here is started in the foreground (`nsd -d`) as the current user (`username: ""`), with
//! no database (`database: ""`), no zone file write-back and no remote control, so the only
//! state is the temporary directory. [`Nsd::start`] returns once every listening address
//! answers every zone's SOA authoritatively; if NSD exits or never answers, it panics with
//! NSD's log. Nothing here skips.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::{ServerProcess, find_binary, wait_until};

/// How long NSD may take to load its zones and answer.
const START_WITHIN: Duration = Duration::from_secs(15);

/// One zone an NSD instance serves: its origin (no trailing dot) and zone file text.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The zone's origin, e.g. `example.vantage.test`.
    pub origin: String,
    /// The zone file.
    pub text: String,
}

impl Zone {
    /// A zone with an SOA (`ns1.<origin>` as primary, the given `serial`) followed by `records`
    /// (zone file lines, relative to the origin).
    pub fn new(origin: &str, serial: u32, records: &str) -> Self {
        let origin = origin.trim_end_matches('.');
        let text = format!(
            "$ORIGIN {origin}.\n$TTL 300\n\
             @ IN SOA ns1.{origin}. hostmaster.{origin}. {serial} 3600 600 86400 300\n\
             {records}\n"
        );
        Self {
            origin: origin.to_owned(),
            text,
        }
    }
}

/// A running NSD, killed when dropped.
#[derive(Debug)]
pub struct Nsd {
    listen: Vec<SocketAddr>,
    process: ServerProcess,
    // Dropped after the process: NSD must not see its files vanish while it runs.
    _dir: tempfile::TempDir,
}

impl Nsd {
    /// Starts NSD answering on every address of `listen` (UDP and TCP), serving `zones`,
    /// with NSID `nsid` (printable ASCII). Waits until each address answers each zone's SOA.
    pub fn start(nsid: &str, listen: &[SocketAddr], zones: &[Zone]) -> Self {
        assert!(
            !listen.is_empty(),
            "NSD needs at least one address to listen on"
        );
        let nsd = find_binary("nsd", "nsd");
        let dir = tempfile::Builder::new()
            .prefix("vantage-nsd-")
            .tempdir()
            .expect("create a temporary directory for NSD");
        let conf = write_config(dir.path(), nsid, listen, zones);
        // Catch config mistakes with NSD's own checker, whose message is clearer than a crash.
        let checkconf = find_binary("nsd-checkconf", "nsd");
        let checked = Command::new(&checkconf)
            .arg(&conf)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", checkconf.display()));
        assert!(
            checked.status.success(),
            "nsd-checkconf rejects the generated config: {}{}\n{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr),
            std::fs::read_to_string(&conf).unwrap_or_default()
        );
        let mut cmd = Command::new(nsd);
        cmd.arg("-d").arg("-c").arg(&conf);
        let log = dir.path().join("nsd.log");
        let mut process = ServerProcess::spawn(&format!("nsd ({nsid})"), cmd, &log);
        let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for &addr in listen {
                for zone in zones {
                    wait_until(
                        &format!("NSD answering `{} SOA` on {addr}", zone.origin),
                        START_WITHIN,
                        || {
                            process.assert_running();
                            answers_authoritatively(addr, &zone.origin)
                        },
                    );
                }
            }
        }));
        if let Err(panic) = ready {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            let log = process.log();
            process.stop();
            panic!("{why}\nNSD's log:\n{log}");
        }
        Self {
            listen: listen.to_vec(),
            process,
            _dir: dir,
        }
    }

    /// The first address NSD listens on.
    pub fn addr(&self) -> SocketAddr {
        self.listen[0]
    }

    /// Every address NSD listens on.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// NSD's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Stops NSD and waits until none of its addresses answers any more.
    pub fn stop(&mut self) {
        self.process.stop();
        // NSD's server children exit shortly after the main process; wait for them.
        for &addr in &self.listen {
            wait_until(
                &format!("NSD on {addr} to stop answering"),
                START_WITHIN,
                || !answers_at_all(addr),
            );
        }
    }
}

fn write_config(
    dir: &Path,
    nsid: &str,
    listen: &[SocketAddr],
    zones: &[Zone],
) -> std::path::PathBuf {
    let d = dir.display();
    let mut conf = String::from("server:\n");
    for addr in listen {
        conf.push_str(&format!("    ip-address: {}@{}\n", addr.ip(), addr.port()));
    }
    conf.push_str(&format!(
        "    do-ip4: yes\n\
         \x20   do-ip6: no\n\
         \x20   username: \"\"\n\
         \x20   chroot: \"\"\n\
         \x20   server-count: 1\n\
         \x20   verbosity: 1\n\
         \x20   hide-version: yes\n\
         \x20   nsid: \"ascii_{nsid}\"\n\
         \x20   zonesdir: \"{d}\"\n\
         \x20   database: \"\"\n\
         \x20   pidfile: \"{d}/nsd.pid\"\n\
         \x20   zonelistfile: \"{d}/zone.list\"\n\
         \x20   xfrdfile: \"{d}/xfrd.state\"\n\
         \x20   xfrdir: \"{d}\"\n\
         \x20   xfrd-reload-timeout: 1\n\
         \x20   zonefiles-write: 0\n\
         remote-control:\n\
         \x20   control-enable: no\n"
    ));
    for (i, zone) in zones.iter().enumerate() {
        let file = format!("zone{i}.zone");
        std::fs::write(dir.join(&file), &zone.text).expect("write zone file");
        conf.push_str(&format!(
            "zone:\n    name: \"{}\"\n    zonefile: \"{file}\"\n",
            zone.origin
        ));
    }
    let path = dir.join("nsd.conf");
    std::fs::write(&path, conf).expect("write nsd.conf");
    path
}

/// An IPv4 loopback address (in 127.53.0.0/16) where port 53 is free for both UDP and TCP,
/// for servers that discovery must find on the standard port. Needs the right to bind port 53
/// (root or `CAP_NET_BIND_SERVICE`); panics with a hint otherwise.
pub fn free_loopback_on_port_53() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Spread by pid so that concurrent test binaries are unlikely to collide.
        let host = (pid.wrapping_mul(7919).wrapping_add(n)) % 65_000 + 2;
        let ip = IpAddr::V4(Ipv4Addr::new(
            127,
            53,
            (host >> 8) as u8,
            (host & 0xff) as u8,
        ));
        let udp = UdpSocket::bind((ip, 53));
        let tcp = TcpListener::bind((ip, 53));
        match (udp, tcp) {
            (Ok(_), Ok(_)) => return ip,
            (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                panic!(
                    "cannot bind {ip}:53 ({e}): the discovery tests need root or CAP_NET_BIND_SERVICE \
                 to run NSD on port 53 of a loopback address"
                )
            }
            _ => {}
        }
    }
    panic!("no 127.53.x.y address with port 53 free after 1000 tries");
}

/// A DNS query in wire form (RD=0, no EDNS) for `name` (no trailing dot) and `qtype`.
pub fn raw_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// The response header to a one-off UDP query, or `None` when nothing answered in 200 ms.
fn ask(addr: SocketAddr, name: &str, qtype: u16) -> Option<[u8; 12]> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    socket.send_to(&raw_query(id, name, qtype), addr).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let (n, from) = socket.recv_from(&mut buf).ok()?;
        if from == addr && n >= 12 && buf[..2] == id.to_be_bytes() {
            let mut header = [0u8; 12];
            header.copy_from_slice(&buf[..12]);
            return Some(header);
        }
    }
}

/// True when `addr` answers `origin SOA` with NOERROR and the AA flag.
fn answers_authoritatively(addr: SocketAddr, origin: &str) -> bool {
    const SOA: u16 = 6;
    ask(addr, origin, SOA).is_some_and(|h| {
        let response = h[2] & 0x80 != 0;
        let aa = h[2] & 0x04 != 0;
        let rcode = h[3] & 0x0f;
        response && aa && rcode == 0
    })
}

/// True when anything answers a DNS query on `addr`.
fn answers_at_all(addr: SocketAddr) -> bool {
    ask(addr, "stop.invalid", 1).is_some()
}

/// A zone-signing key made by `ldns-keygen` (ECDSA P-256, algorithm 13), in a temporary
/// directory of its own, for [`Zone::signed`].
#[derive(Debug)]
pub struct SigningKey {
    /// The key's base name (`K<origin>.+013+<tag>`), as `ldns-signzone` takes it.
    base: String,
    dir: tempfile::TempDir,
}

impl SigningKey {
    /// A fresh key for `origin` (no trailing dot).
    pub fn generate(origin: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vantage-dnssec-")
            .tempdir()
            .expect("create a temporary directory for the key");
        let keygen = find_binary("ldns-keygen", "ldnsutils");
        let out = Command::new(&keygen)
            .args(["-a", "ECDSAP256SHA256", origin.trim_end_matches('.')])
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", keygen.display()));
        assert!(
            out.status.success(),
            "ldns-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let base = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            base.starts_with('K') && dir.path().join(format!("{base}.private")).is_file(),
            "ldns-keygen printed `{base}`, not the base name of a key it wrote"
        );
        Self { base, dir }
    }

    /// The key tag, from the base name `K<origin>.+<algorithm>+<tag>`.
    pub fn key_tag(&self) -> u16 {
        self.base
            .rsplit('+')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no key tag in the key name `{}`", self.base))
    }
}

impl Zone {
    /// This zone signed with `key` by `ldns-signzone` (NSEC), every RRSIG with this inception
    /// and expiration (Unix seconds): any validity period, past or future, so that a test can
    /// make expired and not yet valid signatures. The DNSKEY is added to the zone.
    pub fn signed(&self, key: &SigningKey, inception: i64, expiration: i64) -> Zone {
        let dir = key.dir.path();
        let unsigned = dir.join(format!("{}.{inception}.{expiration}.zone", self.origin));
        let signed = unsigned.with_extension("signed");
        std::fs::write(&unsigned, &self.text).expect("write the zone to sign");
        let signzone = find_binary("ldns-signzone", "ldnsutils");
        let out = Command::new(&signzone)
            .arg("-i")
            .arg(inception.to_string())
            .arg("-e")
            .arg(expiration.to_string())
            .arg("-o")
            .arg(&self.origin)
            .arg("-f")
            .arg(&signed)
            .arg(&unsigned)
            .arg(&key.base)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", signzone.display()));
        assert!(
            out.status.success() && signed.is_file(),
            "ldns-signzone failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Zone {
            origin: self.origin.clone(),
            text: std::fs::read_to_string(&signed).expect("read the signed zone"),
        }
    }
}
