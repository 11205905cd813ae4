//! nginx as a CDN edge: `proxy_cache` in front of an origin, both in one nginx process on
//! loopback, with certificates from the test CA.
//!
//! The edge answers for [`HOST`] and adds the headers a CDN would: `X-Cache-Status`
//! (`$upstream_cache_status`), a vendor header `X-Served-By: cache-lo1-LOOP`, and, so that
//! tests can see what arrived, `X-Edge-Host` and `X-Edge-SNI`. It gzips text. Several TLS
//! listeners share that behaviour and differ only in their certificate or protocols: a good
//! one, an expired one, one for another name, a self-signed one, one expiring in a few days,
//! one that speaks only TLS 1.0 and 1.1, and one with only a CBC cipher suite. The origin serves files from [`Cdn::www`] and logs
//! every request it gets, so tests can count what reached it.
//!
//! Two content profiles (issue 13), each a path with cache rules of its own on both sides:
//! - images, [`PROFILE_IMAGES`]: the origin sends `Cache-Control: max-age=2592000` (from
//!   `expires 30d`, with `Expires`) and `public, immutable`; the edge keeps the query string
//!   out of its cache key (`$host$uri`, in an included file that [`Cdn::set_image_rules`]
//!   rewrites, as an operator changing the CDN would) and never compresses; a 404 comes with
//!   `Cache-Control: public, max-age=60`, so the edge caches it (negative caching);
//! - scripts, [`PROFILE_SCRIPTS`]: a year's `max-age`; the edge keys on the query string
//!   (`$host$uri$is_args$args`), gzips with `Vary: Accept-Encoding`, and caches no 404.
//!
//! These paths have no fault table: they are for the cache rules alone.
//!
//! Regional faults: every edge listener looks up the client's source address in a `geo` table
//! that [`Cdn::set_faults`] rewrites, then reloads nginx and waits until the new table is live.
//! Probes bind their sockets to a source per probe, `127.0.R.P` ([`probe_source`]), so a fault
//! on `127.0.R.0/24` ([`region_sources`]) hits one region and a `/32` one probe. A faulted
//! source gets a 503 from the edge ([`Fault::Error`]), a connection closed without an answer
//! (nginx's `return 444`, [`Fault::Drop`]), or every request held for a while before it is
//! served as usual, hit or miss ([`Fault::Slow`]: an `auth_request` to a location that
//! `echo_sleep`s, from the echo module that Debian's nginx-light ships), or a 503 for about
//! half of its requests at random ([`Fault::Flaky`]: `split_clients` on `$request_id`). The
//! most specific CIDR wins, so a `/32` with [`Fault::Ok`] exempts one probe of a faulted
//! region.
//!
//! nginx runs with a master process and one worker, because a reload needs the master (nginx
//! without one serves garbage after a SIGHUP); dropping the [`Cdn`] stops it with SIGTERM so
//! that no worker outlives it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fleet::http_get;
use crate::pki::{ServerCert, TestCa};
use crate::{ServerProcess, find_binary, free_port, panic_text, wait_until};

/// The name the edge serves, as a check's URL names it.
pub const HOST: &str = "static.vantage.test";
/// Another name, for the certificate that does not cover [`HOST`].
pub const OTHER_HOST: &str = "other.vantage.test";
/// The vendor header value the edge adds.
pub const SERVED_BY: &str = "cache-lo1-LOOP";
/// The path prefix of the images content profile (see the module header).
pub const PROFILE_IMAGES: &str = "/profiles/img/";
/// The path prefix of the scripts content profile.
pub const PROFILE_SCRIPTS: &str = "/profiles/js/";
/// The images profile's edge rules as they start: the query string kept out of the cache
/// key. [`Cdn::set_image_rules`] replaces them.
pub const IMAGE_RULES: &str = "proxy_cache_key $host$uri;\n";
/// The file in nginx's directory holding the images profile's edge rules.
const IMAGE_RULES_FILE: &str = "profile-img.conf";
/// Days left on the certificate of [`Cdn::expiring`].
pub const EXPIRING_DAYS: i64 = 5;

const START_WITHIN: Duration = Duration::from_secs(10);
const LOG_WITHIN: Duration = Duration::from_secs(5);
/// How long a reload may take to be live (the old worker finishing its requests aside).
const RELOAD_WITHIN: Duration = Duration::from_secs(15);
/// How long nginx may take to stop after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(5);
/// The echo module (`echo_sleep`, for [`Fault::Slow`]); Debian's nginx-light depends on it.
pub const ECHO_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_echo_module.so";
/// The origin's path that answers the generation of the fault table in force.
const GENERATION_PATH: &str = "/_vantage/generation";

/// What the edge does to requests from one source CIDR ([`Cdn::set_faults`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Serve as usual (to exempt a narrower CIDR inside a faulted one).
    Ok,
    /// Answer 503 from the edge, without asking the origin.
    Error,
    /// Close the connection without any answer (nginx's `return 444`; on HTTP/2 the stream is
    /// reset).
    Drop,
    /// Hold each request this long (millisecond precision, at least 1 ms), then serve it as
    /// usual, hit or miss.
    Slow(Duration),
    /// Answer 503 from the edge to about half the requests, at random (a flaky path).
    Flaky,
}

impl Fault {
    /// The value of `$vantage_fault` in the generated `geo` table.
    fn geo_value(self) -> String {
        match self {
            Self::Ok => "ok".to_owned(),
            Self::Error => "error".to_owned(),
            Self::Drop => "drop".to_owned(),
            Self::Flaky => "flaky".to_owned(),
            Self::Slow(d) => {
                let ms = d.as_millis();
                assert!(ms >= 1, "Fault::Slow needs at least 1ms, got {d:?}");
                format!("slow_{}.{:03}", ms / 1000, ms % 1000)
            }
        }
    }
}

/// The source address of probe `probe` in region `region`: `127.0.<region>.<probe>`.
pub fn probe_source(region: u8, probe: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, region, probe)
}

/// Every source of region `region`: `127.0.<region>.0/24`.
pub fn region_sources(region: u8) -> String {
    format!("127.0.{region}.0/24")
}

/// The site the origin serves: path, content.
const SITE: &[(&str, &str)] = &[
    (
        "index.html",
        "<!doctype html>\n<html><head><title>Vantage test</title>\n\
         <link rel=\"stylesheet\" href=\"/css/site.css\">\n\
         <script src=\"/js/app.js\"></script>\n</head>\n\
         <body><h1>Hello from the origin</h1><img src=\"img/logo.svg\"></body></html>\n",
    ),
    (
        "broken.html",
        "<!doctype html>\n<html><head><link rel=\"stylesheet\" href=\"/css/site.css\"></head>\n\
         <body><img src=\"/img/missing.png\"><img src=\"img/logo.svg\"></body></html>\n",
    ),
    (
        "css/site.css",
        "/* Vantage test stylesheet, long enough to be worth compressing. */\n\
         body { margin: 0; padding: 0; font-family: sans-serif; color: #222; }\n\
         h1 { font-size: 2rem; margin: 1rem; color: #333; }\n\
         .banner { background: #eee; border-bottom: 1px solid #ccc; padding: 1rem; }\n",
    ),
    ("js/app.js", "console.log('vantage test app');\n"),
    (
        "profiles/img/logo.png",
        "not really a PNG, but served as image/png\n",
    ),
    (
        "profiles/js/app.js",
        "// Vantage test script of the scripts content profile, worth compressing.\n\
         console.log('profiles: scripts are keyed on their query string');\n",
    ),
    (
        "img/logo.svg",
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>\n",
    ),
];

/// A running nginx: the edge listeners and the origin.
#[derive(Debug)]
pub struct Cdn {
    /// The edge, HTTPS with a valid certificate for [`HOST`] (HTTP/2 and HTTP/1.1).
    pub edge: SocketAddr,
    /// The edge over plain HTTP.
    pub edge_plain: SocketAddr,
    /// An edge whose certificate for [`HOST`] expired yesterday.
    pub expired: SocketAddr,
    /// An edge whose certificate names only [`OTHER_HOST`].
    pub wrong_name: SocketAddr,
    /// An edge whose certificate for [`HOST`] is self-signed.
    pub untrusted: SocketAddr,
    /// An edge whose certificate for [`HOST`] expires in [`EXPIRING_DAYS`] days.
    pub expiring: SocketAddr,
    /// An edge that speaks only TLS 1.0 and 1.1.
    pub legacy_tls: SocketAddr,
    /// An edge that speaks TLS 1.2 with only a CBC cipher suite, which rustls refuses.
    pub legacy_cipher: SocketAddr,
    /// The origin (plain HTTP).
    pub origin: SocketAddr,
    process: ServerProcess,
    nginx: PathBuf,
    /// The generation of the fault table in force (0: the empty one at start), locked while
    /// a new table is written and loaded.
    generation: Mutex<u32>,
    ca: TestCa,
    dir: tempfile::TempDir,
}

impl Cdn {
    /// Writes the site and the config, starts nginx and waits until every listener accepts.
    pub fn start() -> Self {
        let nginx = find_binary("nginx", "nginx-light");
        assert!(
            Path::new(ECHO_MODULE).is_file(),
            "{ECHO_MODULE} is missing: run `apt-get install libnginx-mod-http-echo` \
             (Debian's nginx-light depends on it; tests/run installs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("vantage-nginx-")
            .tempdir()
            .expect("create a temporary directory for nginx");
        let ca = TestCa::new();
        let certs = Certs {
            good: ca.server("good", &[HOST]),
            expired: ca.expired("expired", &[HOST]),
            wrong_name: ca.server("wrong-name", &[OTHER_HOST]),
            untrusted: ca.self_signed("untrusted", &[HOST]),
            expiring: ca.expiring_in("expiring", &[HOST], EXPIRING_DAYS),
        };
        let www = dir.path().join("www");
        for (path, content) in SITE {
            write_file(&www.join(path), content);
        }
        for sub in ["tmp", "cache"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create nginx directories");
        }
        write_fault_table(dir.path(), "", 0);
        write_file(&dir.path().join(IMAGE_RULES_FILE), IMAGE_RULES);
        // A port found free may be taken (by another test's server, or as some client's
        // ephemeral port) before nginx binds it: then pick new ports and start again.
        let mut attempt = 0;
        let (ports, process) = loop {
            attempt += 1;
            let ports = Ports::pick();
            match try_start(&nginx, dir.path(), &ports, &certs) {
                Ok(process) => break (ports, process),
                Err(PortTaken(_)) if attempt < START_ATTEMPTS => continue,
                Err(PortTaken(log)) => {
                    panic!("nginx could not bind its ports in {START_ATTEMPTS} attempts:\n{log}")
                }
            }
        };
        Self {
            edge: ports.edge,
            edge_plain: ports.edge_plain,
            expired: ports.expired,
            wrong_name: ports.wrong_name,
            untrusted: ports.untrusted,
            expiring: ports.expiring,
            legacy_tls: ports.legacy_tls,
            legacy_cipher: ports.legacy_cipher,
            origin: ports.origin,
            process,
            nginx,
            generation: Mutex::new(0),
            ca,
            dir,
        }
    }

    /// Replaces the edge's fault table with `faults`, (source CIDR, fault) pairs such as
    /// `("127.0.2.0/24", Fault::Error)`, reloads nginx and returns once every new request
    /// sees the new table: the origin answers the new generation and every worker of the old
    /// configuration has stopped accepting. Sources not covered are served as usual; where
    /// CIDRs overlap the most specific wins. Panics with nginx's error log if the reload
    /// fails.
    pub fn set_faults(&self, faults: &[(&str, Fault)]) {
        let mut table = String::new();
        for (cidr, fault) in faults {
            check_cidr(cidr);
            table.push_str(&format!("{cidr} {};\n", fault.geo_value()));
        }
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        write_fault_table(self.dir.path(), &table, *generation);
        self.reload(*generation);
    }

    /// Replaces the edge rules of the images profile (its `proxy_cache_key`, say: see
    /// [`IMAGE_RULES`]) and reloads nginx, as an operator changing the CDN's configuration
    /// would; returns once the new rules are live.
    pub fn set_image_rules(&self, rules: &str) {
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        write_file(&self.dir.path().join(IMAGE_RULES_FILE), rules);
        let faults = self.faults();
        write_fault_table(self.dir.path(), &faults, *generation);
        self.reload(*generation);
    }

    /// Serves every source as usual again ([`Cdn::set_faults`] with none).
    pub fn clear_faults(&self) {
        self.set_faults(&[]);
    }

    /// The fault table in force, as written for nginx's `geo`.
    pub fn faults(&self) -> String {
        self.read("faults.conf")
    }

    /// `nginx -s reload`, then waits until generation `generation` is live and the workers
    /// of the old configuration are shutting down (they close their listeners first).
    fn reload(&self, generation: u32) {
        let master = self.process.pid().expect("nginx is running");
        let old: Vec<u32> = children(master)
            .into_iter()
            .filter(|(_, title)| title.contains("worker process"))
            .map(|(pid, _)| pid)
            .collect();
        let out = Command::new(&self.nginx)
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(self.dir.path().join("error.log"))
            .arg("-s")
            .arg("reload")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.nginx.display()));
        assert!(
            out.status.success(),
            "nginx -s reload failed: {}{}\nthe fault table:\n{}\nnginx's error log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.faults(),
            self.error_log()
        );
        let live = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(
                &format!("nginx serving fault table generation {generation}"),
                RELOAD_WITHIN,
                || {
                    let served = matches!(
                        http_get(self.origin, GENERATION_PATH),
                        Ok((200, body)) if body.trim() == generation.to_string()
                    );
                    served
                        && old.iter().all(|&pid| {
                            process_title(pid).is_none_or(|t| t.contains("shutting down"))
                        })
                },
            );
        }));
        if let Err(panic) = live {
            panic!(
                "{}\nthe fault table:\n{}\nnginx's error log:\n{}",
                panic_text(&*panic),
                self.faults(),
                self.error_log()
            );
        }
    }

    /// The test CA's certificate (PEM), for a check's `ca`.
    pub fn ca_file(&self) -> PathBuf {
        self.ca.ca_file()
    }

    /// The origin's document root.
    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// Writes `content` at `path` (relative) under the origin's document root.
    pub fn put(&self, path: &str, content: &str) {
        write_file(&self.www().join(path), content);
    }

    /// Waits (up to 5 s) until the origin has logged at least `at_least` requests whose URI
    /// starts with `prefix`, and returns how many it logged. nginx logs a request when it
    /// finishes, which can be just after the client has its response, hence the wait.
    pub fn wait_for_origin_hits(&self, prefix: &str, at_least: usize) -> usize {
        let deadline = Instant::now() + LOG_WITHIN;
        loop {
            let n = self.origin_hits(prefix);
            if n >= at_least || Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (up to 5 s) for the edge's log line of `uri`; panics with the log if none comes.
    pub fn wait_for_edge_log(&self, uri: &str) -> EdgeLogLine {
        let mut found = None;
        let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(&format!("the edge logging `{uri}`"), LOG_WITHIN, || {
                found = self.edge_log().into_iter().find(|l| l.uri == uri);
                found.is_some()
            });
        }));
        match (ready, found) {
            (Ok(()), Some(line)) => line,
            _ => panic!(
                "no `{uri}` in the edge log: {:#?}\n{}",
                self.edge_log(),
                self.error_log()
            ),
        }
    }

    /// Requests the origin has logged so far whose URI (path and query) starts with `prefix`.
    pub fn origin_hits(&self, prefix: &str) -> usize {
        self.read("origin.log")
            .lines()
            .filter(|uri| uri.starts_with(prefix))
            .count()
    }

    /// The edge's access log, one request a line:
    /// `host|ssl_server_name|upstream_cache_status|request_uri|status|protocol`.
    pub fn edge_log(&self) -> Vec<EdgeLogLine> {
        self.read("edge.log")
            .lines()
            .filter_map(EdgeLogLine::parse)
            .collect()
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        self.read("error.log")
    }

    /// Panics with the error log if nginx has exited.
    pub fn assert_running(&mut self) {
        if let Some(msg) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.process.assert_running();
        }))
        .err()
        {
            let why = msg.downcast_ref::<String>().cloned().unwrap_or_default();
            panic!("{why}\nnginx's error log:\n{}", self.error_log());
        }
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for Cdn {
    fn drop(&mut self) {
        stop_nginx(&mut self.process);
    }
}

/// Stops nginx with SIGTERM (its master then stops the workers), and kills any child of the
/// master that is still there after [`STOP_WITHIN`]: a SIGKILL of the master alone would leave
/// its worker serving.
fn stop_nginx(process: &mut ServerProcess) {
    let Some(master) = process.pid() else {
        return;
    };
    let kids = children(master);
    process.terminate(STOP_WITHIN);
    for (pid, _) in kids {
        if process_title(pid).is_some_and(|t| t.starts_with("nginx:")) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    }
}

/// The processes whose parent is `parent`, with their titles (`/proc/<pid>/cmdline`).
fn children(parent: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            // The fields after the command name, which is in parentheses: state, ppid, ...
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .filter_map(|pid| Some((pid, process_title(pid)?)))
        .collect()
}

/// A running process's title (nginx rewrites its own: `nginx: worker process`), or None if
/// it is gone (or a zombie).
fn process_title(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .trim()
            .to_owned(),
    )
}

/// Panics unless `cidr` is an address with a prefix length that fits it.
fn check_cidr(cidr: &str) {
    let ok = cidr.split_once('/').is_some_and(|(addr, len)| {
        match (addr.parse::<IpAddr>(), len.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(len)) => len <= 32,
            (Ok(IpAddr::V6(_)), Ok(len)) => len <= 128,
            _ => false,
        }
    });
    assert!(
        ok,
        "a fault's source must be a CIDR such as `127.0.2.0/24` or `127.0.1.3/32`; got {cidr:?}"
    );
}

/// Writes the `geo` entries of the fault table and its generation, for nginx to include.
fn write_fault_table(dir: &Path, table: &str, generation: u32) {
    write_file(&dir.join("faults.conf"), table);
    write_file(
        &dir.join("generation.conf"),
        &format!("geo $vantage_generation {{ default {generation}; }}\n"),
    );
}

/// One request in the edge's access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeLogLine {
    /// `$host`: the Host header (or HTTP/2 `:authority`).
    pub host: String,
    /// `$ssl_server_name`: the TLS SNI (`-` without TLS).
    pub sni: String,
    /// `$upstream_cache_status` (`-` when the cache was not consulted).
    pub cache: String,
    /// `$request_uri`.
    pub uri: String,
    /// The response status.
    pub status: u16,
    /// `$server_protocol` (`HTTP/2.0`, `HTTP/1.1`).
    pub protocol: String,
}

impl EdgeLogLine {
    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split('|').collect();
        let [host, sni, cache, uri, status, protocol] = f.as_slice() else {
            return None;
        };
        Some(Self {
            host: (*host).to_owned(),
            sni: (*sni).to_owned(),
            cache: (*cache).to_owned(),
            uri: (*uri).to_owned(),
            status: status.parse().ok()?,
            protocol: (*protocol).to_owned(),
        })
    }
}

struct Certs {
    good: ServerCert,
    expired: ServerCert,
    wrong_name: ServerCert,
    untrusted: ServerCert,
    expiring: ServerCert,
}

/// nginx failed to start because a port was taken; its error output.
struct PortTaken(String);

/// How many sets of ports to try before giving up.
const START_ATTEMPTS: usize = 5;

/// Writes the config for `ports`, checks it, starts nginx and waits for every listener.
/// Panics (with nginx's error log) on any failure but a port being taken.
fn try_start(
    nginx: &Path,
    dir: &Path,
    ports: &Ports,
    certs: &Certs,
) -> Result<ServerProcess, PortTaken> {
    let conf = dir.join("nginx.conf");
    let error_log = dir.join("error.log");
    std::fs::write(&conf, config(dir, ports, certs)).expect("write nginx.conf");
    let _ = std::fs::remove_file(&error_log);
    let args = |cmd: &mut Command| {
        cmd.arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log);
    };
    let taken = |text: &str| text.contains("Address already in use");
    // nginx's own checker says what is wrong with a config more clearly than a dead process.
    let mut test = Command::new(nginx);
    args(&mut test);
    let tested = test
        .arg("-t")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", nginx.display()));
    if !tested.status.success() {
        let out = format!(
            "{}{}{}",
            String::from_utf8_lossy(&tested.stdout),
            String::from_utf8_lossy(&tested.stderr),
            std::fs::read_to_string(&error_log).unwrap_or_default()
        );
        if taken(&out) {
            return Err(PortTaken(out));
        }
        panic!(
            "nginx rejects the generated config:\n{out}\n{}",
            std::fs::read_to_string(&conf).unwrap_or_default()
        );
    }
    let _ = std::fs::remove_file(&error_log);
    let mut cmd = Command::new(nginx);
    args(&mut cmd);
    let mut process = ServerProcess::spawn("nginx", cmd, &dir.join("stdout.log"));
    let all = ports.all();
    let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("nginx listening on every port", START_WITHIN, || {
            process.assert_running();
            all.iter().all(|addr| {
                std::net::TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok()
            })
        });
    }));
    if let Err(panic) = ready {
        let why = panic_text(&*panic);
        stop_nginx(&mut process);
        let log = format!(
            "{}{}",
            std::fs::read_to_string(&error_log).unwrap_or_default(),
            process.log()
        );
        if taken(&log) {
            return Err(PortTaken(log));
        }
        panic!("{why}\nnginx's error log:\n{log}");
    }
    Ok(process)
}

struct Ports {
    edge: SocketAddr,
    edge_plain: SocketAddr,
    expired: SocketAddr,
    wrong_name: SocketAddr,
    untrusted: SocketAddr,
    expiring: SocketAddr,
    legacy_tls: SocketAddr,
    legacy_cipher: SocketAddr,
    origin: SocketAddr,
}

impl Ports {
    fn pick() -> Self {
        // free_port lets its port go at once, so two calls can return the same one: nginx
        // would then reject two `listen`s of one address (one with `ssl`, one without).
        let mut picked: Vec<u16> = Vec::new();
        let mut next = || {
            for _ in 0..100 {
                let port = free_port();
                if !picked.contains(&port) {
                    picked.push(port);
                    return SocketAddr::from(([127, 0, 0, 1], port));
                }
            }
            panic!("no distinct free loopback port after 100 tries");
        };
        Self {
            edge: next(),
            edge_plain: next(),
            expired: next(),
            wrong_name: next(),
            untrusted: next(),
            expiring: next(),
            legacy_tls: next(),
            legacy_cipher: next(),
            origin: next(),
        }
    }

    fn all(&self) -> [SocketAddr; 9] {
        [
            self.edge,
            self.edge_plain,
            self.expired,
            self.wrong_name,
            self.untrusted,
            self.expiring,
            self.legacy_tls,
            self.legacy_cipher,
            self.origin,
        ]
    }
}

fn write_file(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create a directory under www");
    }
    // Write then rename, so nginx never serves a half-written file.
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, content).expect("write a file under www");
    std::fs::rename(&tmp, path).expect("move a file into place under www");
}

/// The edge's caching proxy, shared by every edge listener, behind the fault table; and the
/// internal location that holds a slow source's requests.
fn edge_location(origin: SocketAddr) -> String {
    format!(
        "        location = /_vantage/hold {{
            internal;
            auth_request off;
            if ($vantage_hold = 0) {{ return 204; }}
            echo_sleep $vantage_hold;
        }}
        location / {{
            if ($vantage_fault = error) {{ return 503 \"edge fault injected by the test\\n\"; }}
            if ($vantage_fault = drop) {{ return 444; }}
            if ($vantage_flaky_error) {{ return 503 \"flaky edge fault injected by the test\\n\"; }}
            auth_request /_vantage/hold;
            proxy_pass http://{origin};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_cache edge;
            proxy_cache_key $host$request_uri;
            proxy_cache_valid 200 301 302 10m;
            add_header X-Cache-Status $upstream_cache_status always;
            add_header X-Served-By {SERVED_BY} always;
            add_header X-Edge-Host $host always;
            add_header X-Edge-SNI \"$ssl_server_name\" always;
        }}
{profiles}",
        profiles = profile_locations(origin),
    )
}

/// The edge's two content profiles (see the module header): cache key, compression and the
/// caching of 404s differ; the headers a CDN adds are the same as everywhere else.
fn profile_locations(origin: SocketAddr) -> String {
    let rules = IMAGE_RULES_FILE;
    let common = format!(
        "            proxy_pass http://{origin};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_cache edge;
            add_header X-Cache-Status $upstream_cache_status always;
            add_header X-Served-By {SERVED_BY} always;
"
    );
    format!(
        "        location {PROFILE_IMAGES} {{
{common}            include {rules};
            proxy_cache_valid 200 10m;
            gzip off;
        }}
        location {PROFILE_SCRIPTS} {{
{common}            proxy_cache_key $host$uri$is_args$args;
            proxy_cache_valid 200 10m;
            gzip_vary on;
        }}
"
    )
}

/// One TLS edge listener. nginx 1.22 takes `http2` on `listen` (1.25 moved it to `http2 on`).
fn tls_server(addr: SocketAddr, cert: &ServerCert, origin: SocketAddr, extra: &str) -> String {
    format!(
        "    server {{
        listen {addr} ssl http2;
        server_name {HOST} {OTHER_HOST};
        access_log edge.log edge;
        ssl_certificate {cert};
        ssl_certificate_key {key};
{extra}{location}    }}
",
        cert = cert.cert.display(),
        key = cert.key.display(),
        location = edge_location(origin),
    )
}

fn config(dir: &Path, p: &Ports, certs: &Certs) -> String {
    let d = dir.display();
    let origin = p.origin;
    let modern = "        ssl_protocols TLSv1.2 TLSv1.3;\n";
    // OpenSSL 3 refuses TLS 1.0 and 1.1 below security level 0.
    let legacy =
        "        ssl_protocols TLSv1 TLSv1.1;\n        ssl_ciphers \"DEFAULT:@SECLEVEL=0\";\n";
    // The certificates have ECDSA keys; this is the only suite offered, and it is CBC.
    let cbc_only = "        ssl_protocols TLSv1.2;\n        ssl_ciphers ECDHE-ECDSA-AES128-SHA;\n";
    let servers = [
        tls_server(p.edge, &certs.good, origin, modern),
        tls_server(p.expired, &certs.expired, origin, modern),
        tls_server(p.wrong_name, &certs.wrong_name, origin, modern),
        tls_server(p.untrusted, &certs.untrusted, origin, modern),
        tls_server(p.expiring, &certs.expiring, origin, modern),
        tls_server(p.legacy_tls, &certs.good, origin, legacy),
        tls_server(p.legacy_cipher, &certs.good, origin, cbc_only),
    ]
    .concat();
    format!(
        "load_module {ECHO_MODULE};
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{
        text/html html;
        text/css css;
        application/javascript js;
        application/json json;
        image/svg+xml svg;
        image/png png;
    }}
    default_type application/octet-stream;
    log_format edge '$host|$ssl_server_name|$upstream_cache_status|$request_uri|$status|$server_protocol';
    log_format origin '$request_uri';
    proxy_cache_path {d}/cache levels=1:2 keys_zone=edge:1m max_size=16m inactive=10m use_temp_path=off;
    gzip on;
    gzip_min_length 1;
    gzip_proxied any;
    gzip_types text/css application/javascript application/json image/svg+xml;

    # The fault table (Cdn::set_faults): what the edge does to each client source address,
    # and how long a slow one's requests are held, in seconds.
    geo $vantage_fault {{
        default ok;
        include {d}/faults.conf;
    }}
    map $vantage_fault $vantage_hold {{
        default 0;
        ~^slow_(?<seconds>[0-9.]+)$ $seconds;
    }}
    include {d}/generation.conf;
    # Fault::Flaky: a fair coin per request.
    split_clients \"$request_id\" $vantage_coin {{
        50% heads;
        * tails;
    }}
    map \"$vantage_fault:$vantage_coin\" $vantage_flaky_error {{
        default 0;
        flaky:heads 1;
    }}
    # The images profile's 404s say how long to cache them (nothing for other statuses).
    map $status $vantage_negative_cache {{
        404 \"public, max-age=60\";
        default \"\";
    }}

    # The origin: files, a failing endpoint and redirects. It never compresses.
    server {{
        listen {origin};
        access_log {d}/origin.log origin;
        gzip off;
        root {d}/www;
        location = /unavailable {{ return 503 \"origin unavailable\\n\"; }}
        location = /moved {{ return 301 /css/site.css; }}
        location = /loop {{ return 302 /loop; }}
        location = {GENERATION_PATH} {{ access_log off; return 200 \"$vantage_generation\\n\"; }}
        location {PROFILE_IMAGES} {{
            expires 30d;
            add_header Cache-Control \"public, immutable\";
            add_header Cache-Control $vantage_negative_cache always;
        }}
        location {PROFILE_SCRIPTS} {{ expires 365d; }}
        location / {{ }}
    }}

    # The edge over plain HTTP.
    server {{
        listen {plain};
        server_name {HOST};
        access_log {d}/edge.log edge;
{location}    }}

{servers}}}
",
        plain = p.edge_plain,
        location = edge_location(origin),
    )
}
