//! A real PostgreSQL server for tests: a fresh cluster (`initdb`) in a temporary directory,
//! listening on a loopback port, run as the `postgres` user when the tests run as root (as
//! `.ci/run` does; PostgreSQL refuses to run as root). Stopped when dropped, and by a
//! watchdog when the test process dies first, so that no server outlives its test.
//!
//! Durability is relaxed (`fsync = off`): a killed server still loses nothing it committed,
//! since its WAL is in the page cache, which is all that restart tests need.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser the tests connect as.
pub const USER: &str = "vantage";

/// A PostgreSQL server of the test's own.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    server: Option<Child>,
    watchdog: Option<Child>,
    as_postgres: bool,
}

/// The directory of the newest PostgreSQL server binaries installed (Debian keeps them in
/// /usr/lib/postgresql/<version>/bin); panics with an install hint.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: run `apt-get install postgresql` (or `.ci/run`, which does)")
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Creates a cluster and starts it; panics with the server's log if it does not come up.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("vantage-pg-")
            .tempdir()
            .expect("a temporary directory");
        let as_postgres = running_as_root();
        if as_postgres {
            // The server's user must reach its data directory.
            run(Command::new("chmod").arg("0755").arg(dir.path()));
            std::fs::create_dir(dir.path().join("data")).expect("data directory");
            std::fs::create_dir(dir.path().join("sock")).expect("socket directory");
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path().join("data"))
                .arg(dir.path().join("sock")));
        } else {
            std::fs::create_dir(dir.path().join("sock")).expect("socket directory");
        }
        let mut pg = Self {
            dir,
            bin,
            port: crate::free_port(),
            server: None,
            watchdog: None,
            as_postgres,
        };
        let mut initdb = pg.command("initdb");
        initdb.arg("-D").arg(pg.data()).args([
            "-U",
            USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        let out = initdb.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg.boot();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A command for one of the server's binaries, as the `postgres` user when root.
    fn command(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--reset-env",
            ])
            .arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Starts the server on its data directory and port, and waits until it answers.
    fn boot(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log");
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path().join("sock"))
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ]);
        let server = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        // Stops the server if this process dies without dropping it (a panic in another
        // thread, a killed test run).
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 0.5; done; \
                 kill -INT \"$2\" 2>/dev/null",
            )
            .arg("watchdog")
            .arg(std::process::id().to_string())
            .arg(server.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the watchdog");
        self.server = Some(server);
        self.watchdog = Some(watchdog);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.psql("postgres", "SELECT 1").is_ok() {
                return;
            }
            if let Some(s) = self.server.as_mut()
                && let Ok(Some(status)) = s.try_wait()
            {
                panic!("postgres exited with {status}; its log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not answer within 60 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on it.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with `psql` on database `db`; its output, or its error.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", db, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "2")
            .output()
            .map_err(|e| format!("run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, db: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{db}\""))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {db}: {e}"));
        self.url(db)
    }

    /// Stops the server (a fast shutdown: sessions are cut, nothing committed is lost).
    pub fn stop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(mut s) = self.server.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(s.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if matches!(s.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    /// Stops the server and starts it again on the same data and port.
    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }

    /// Turns TLS on with `cert` (signed by a test CA) and reloads: plain connections are
    /// still accepted, as `pg_hba.conf` says `host`.
    pub fn enable_tls(&mut self, cert: &crate::pki::ServerCert) {
        let (crt, key) = (
            self.data().join("server.crt"),
            self.data().join("server.key"),
        );
        std::fs::copy(&cert.cert, &crt).expect("copy the server certificate");
        std::fs::copy(&cert.key, &key).expect("copy the server key");
        // The server refuses a key that others may read, or that is not its user's.
        run(Command::new("chmod").arg("0600").arg(&key));
        if self.as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(&crt)
                .arg(&key));
        }
        for sql in [
            "ALTER SYSTEM SET ssl = on",
            "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
            "ALTER SYSTEM SET ssl_key_file = 'server.key'",
            "SELECT pg_reload_conf()",
        ] {
            self.psql("postgres", sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}; the log:\n{}", self.log()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.psql("postgres", "SHOW ssl").as_deref() != Ok("on") {
            assert!(
                Instant::now() < deadline,
                "ssl is not on; the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The data directory (for a test that wants to look inside).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
