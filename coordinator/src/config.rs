//! `coordinator.toml`: where the coordinator listens, keeps its data and finds its checks.
//!
//! Every key is optional; with no file at all the coordinator serves plain HTTP on
//! `127.0.0.1:7470` with SQLite under `./data`. Flags and environment variables override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::alert::Secret;
use crate::store::Synchronous;

/// Why the coordinator's own config is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A setting breaks a rule.
    #[error("{0}")]
    Rule(String),
}

/// The coordinator's file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// Address to listen on (default `127.0.0.1:7470`).
    listen: Option<SocketAddr>,
    /// Directory for the SQLite database (default `./data`).
    data_dir: Option<PathBuf>,
    /// Check files or directories, relative to this file.
    checks: Option<Vec<PathBuf>>,
    /// Serve plain HTTP on a non-loopback address (logs a warning at every start).
    insecure_http: Option<bool>,
    /// `[tls]`: certificate and key (PEM).
    tls: Option<TlsFileConfig>,
    /// `[store]`.
    store: Option<StoreFileConfig>,
    /// `[cluster]`.
    cluster: Option<ClusterFileConfig>,
    /// `[retention]`.
    retention: Option<RetentionFileConfig>,
    /// `[limits]`.
    limits: Option<LimitsFileConfig>,
    /// `[quarantine]`.
    quarantine: Option<QuarantineFileConfig>,
    /// `[api]`.
    api: Option<ApiFileConfig>,
    /// `[[receiver]]`: where alerts go.
    #[serde(default)]
    receiver: Vec<crate::alert::config::ReceiverFile>,
    /// `[[route]]`: which incidents go to which receivers.
    #[serde(default)]
    route: Vec<crate::alert::config::RouteFile>,
    /// `[[silence]]`: maintenance windows.
    #[serde(default)]
    silence: Vec<crate::alert::config::SilenceFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiFileConfig {
    /// File holding the operator token: reads and changes (silences).
    token_file: Option<String>,
    /// Environment variable holding it.
    token_env: Option<String>,
    /// File holding the reader token: reads only.
    reader_token_file: Option<String>,
    /// Environment variable holding it.
    reader_token_env: Option<String>,
    /// File holding the metrics token: `/metrics` only.
    metrics_token_file: Option<String>,
    /// Environment variable holding it.
    metrics_token_env: Option<String>,
    /// Reads are meant to be open to anyone, off loopback too (default false).
    public_reads: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarantineFileConfig {
    /// Quarantine a probe that disagrees with its peers on this many vendors (default 2).
    min_vendors: Option<usize>,
    /// Readmit it after it agrees this long (default `"30s"`).
    readmit_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFileConfig {
    /// PEM certificate chain.
    cert: PathBuf,
    /// PEM private key.
    key: PathBuf,
    /// PEM CA certificate(s) that sign the probes' client certificates: with it, the probes'
    /// endpoints need a client certificate from this CA as well as the probe's token.
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFileConfig {
    /// SQLite: `full` (default: fsync every commit) or `normal`.
    synchronous: Option<Synchronous>,
    /// PostgreSQL instead of SQLite: `postgresql://user@host:port/database`.
    url: Option<String>,
    /// PostgreSQL: a file holding the password.
    password_file: Option<String>,
    /// PostgreSQL: an environment variable holding the password.
    password_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFileConfig {
    /// Evaluation lease (default `"10s"`): a dead coordinator's vendors move to another within
    /// it plus a third of it.
    lease: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFileConfig {
    /// How long raw results are kept (default `"14d"`).
    raw: Option<String>,
    /// How long per-minute rollups are kept (default `"400d"`).
    rollups: Option<String>,
    /// How long hourly rollups are kept (default `"400d"`; at least `rollups`).
    rollups_hourly: Option<String>,
    /// How long daily rollups and the vendor state history are kept (default `"1830d"`; at
    /// least `rollups_hourly`).
    rollups_daily: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFileConfig {
    /// Largest request body in bytes (default 4194304).
    max_body_bytes: Option<u64>,
    /// Most results in one batch (default 1000).
    max_batch: Option<usize>,
    /// Largest string field of a result in bytes (default 4096).
    max_field_bytes: Option<usize>,
    /// How far in the future a result may start (default `"2m"`).
    clock_skew: Option<String>,
    /// How old a result may be when it arrives (default `"7d"`; spooled results arrive late).
    max_result_age: Option<String>,
    /// Batches waiting for the writer before ingest answers 429 (default 64).
    queue_batches: Option<usize>,
    /// A request must arrive whole within this (default `"10s"`), and a client must take some of
    /// its answer within this whenever there is some to send: slow clients are cut off.
    request_timeout: Option<String>,
    /// A connection with no request in flight is closed after this long (default `"120s"`).
    idle_timeout: Option<String>,
    /// Connections one client address may hold at once; more are closed on arrival (default 256).
    max_connections_per_address: Option<usize>,
    /// Runs of a check one probe may store per interval, counted per minute of run time; more
    /// are refused (`rate_limited`). 0 turns the cap off (default 2).
    max_runs_per_interval: Option<u32>,
}

/// TLS material for the listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// CA of the probes' client certificates (mutual TLS): the probes' endpoints
    /// (`POST /api/v1/results`, `GET /api/v1/probe/config`) then need a client certificate it
    /// signed, on top of the bearer token. Browsers and API readers need none.
    pub client_ca: Option<PathBuf>,
}

/// Request limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: u64,
    /// Most results in one batch.
    pub max_batch: usize,
    /// Largest string field of a result.
    pub max_field_bytes: usize,
    /// How far in the future a result may start.
    pub clock_skew: Duration,
    /// How old a result may be when it arrives.
    pub max_result_age: Duration,
    /// Batches queued for the writer before 429.
    pub queue_batches: usize,
    /// Deadline for a whole request to arrive, and for a client to take any of the bytes
    /// waiting for it.
    pub request_timeout: Duration,
    /// A connection with no request in flight (an HTTP/2 one with no stream open) is closed
    /// after this long.
    pub idle_timeout: Duration,
    /// Connections one client address may hold at once.
    pub max_connections_per_address: usize,
    /// Runs of a check one probe may store per interval (its `failing_interval` when shorter),
    /// counted per minute of run time, plus two; 0: no cap.
    pub max_runs_per_interval: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // The probe packs and cuts its results to these same figures.
            max_body_bytes: vantage_checks::limits::MAX_BODY_BYTES,
            max_batch: vantage_checks::limits::MAX_BATCH,
            max_field_bytes: vantage_checks::limits::MAX_FIELD_BYTES,
            clock_skew: Duration::from_secs(120),
            max_result_age: Duration::from_secs(7 * 86_400),
            queue_batches: 64,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections_per_address: 256,
            max_runs_per_interval: 2,
        }
    }
}

/// The coordinator's settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct CoordinatorConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Check files and directories.
    pub checks: Vec<PathBuf>,
    /// TLS for the listener.
    pub tls: Option<TlsConfig>,
    /// Plain HTTP allowed off loopback.
    pub insecure_http: bool,
    /// SQLite `synchronous`.
    pub synchronous: Synchronous,
    /// PostgreSQL instead of SQLite (`[store] url`, `--store-url`, `VANTAGE_STORE_URL`): a
    /// secret, since a URL may carry a password.
    pub store_url: Option<Secret>,
    /// PostgreSQL's password (`[store] password_file` or `password_env`).
    pub store_password: Option<Secret>,
    /// Evaluation lease (`[cluster] lease`).
    pub lease: Duration,
    /// Raw result retention.
    pub retention_raw: Duration,
    /// Per-minute rollup retention.
    pub retention_rollups: Duration,
    /// Hourly rollup retention.
    pub retention_hourly: Duration,
    /// Daily rollup and vendor state history retention.
    pub retention_daily: Duration,
    /// Request limits.
    pub limits: Limits,
    /// Probe quarantine.
    pub quarantine: crate::consensus::quarantine::QuarantineSettings,
    /// Receivers, routes and configured silences.
    pub alerting: crate::alert::Alerting,
    /// Who may read and change what (`[api]`).
    pub access: crate::access::Access,
}

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7470";

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7470)),
            data_dir: PathBuf::from("data"),
            checks: Vec::new(),
            tls: None,
            insecure_http: false,
            synchronous: Synchronous::Full,
            store_url: None,
            store_password: None,
            lease: crate::cluster::DEFAULT_LEASE,
            retention_raw: Duration::from_secs(14 * 86_400),
            retention_rollups: Duration::from_secs(400 * 86_400),
            retention_hourly: Duration::from_secs(400 * 86_400),
            retention_daily: Duration::from_secs(1830 * 86_400),
            limits: Limits::default(),
            quarantine: Default::default(),
            alerting: Default::default(),
            access: crate::access::Access::default(),
        }
    }
}

impl CoordinatorConfig {
    /// Reads `coordinator.toml`; relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a `coordinator.toml` found at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            invalid(format!("{line}:{col}: {}", e.message()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let d = Self::default();
        let dur =
            |v: Option<String>, key: &str, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                None => Ok(default),
                Some(s) => vantage_checks::duration::parse(&s).map_err(|why| {
                    invalid(format!(
                        "{key} must be a duration like \"10s\" or \"14d\"; got {s:?}, which {why}"
                    ))
                }),
            }
            };
        let retention = raw.retention.unwrap_or(RetentionFileConfig {
            raw: None,
            rollups: None,
            rollups_hourly: None,
            rollups_daily: None,
        });
        let l = raw.limits.unwrap_or(LimitsFileConfig {
            max_body_bytes: None,
            max_batch: None,
            max_field_bytes: None,
            clock_skew: None,
            max_result_age: None,
            queue_batches: None,
            request_timeout: None,
            idle_timeout: None,
            max_connections_per_address: None,
            max_runs_per_interval: None,
        });
        let dl = Limits::default();
        let dq = crate::consensus::quarantine::QuarantineSettings::default();
        let q = raw.quarantine.unwrap_or(QuarantineFileConfig {
            min_vendors: None,
            readmit_after: None,
        });
        let alerting = crate::alert::config::validate(raw.receiver, raw.route, raw.silence, base)
            .map_err(|errors| invalid(errors.join("; ")))?;
        let access = match raw.api {
            None => crate::access::Access::default(),
            Some(a) => {
                let token = |file, env, what| {
                    crate::alert::config::secret(None, file, env, what, base).map_err(invalid)
                };
                crate::access::Access {
                    operator: token(a.token_file, a.token_env, "api.token")?,
                    reader: token(a.reader_token_file, a.reader_token_env, "api.reader_token")?,
                    metrics: token(
                        a.metrics_token_file,
                        a.metrics_token_env,
                        "api.metrics_token",
                    )?,
                    public_reads: a.public_reads.unwrap_or(false),
                }
            }
        };
        let store = raw.store.unwrap_or(StoreFileConfig {
            synchronous: None,
            url: None,
            password_file: None,
            password_env: None,
        });
        if store.url.is_some() && store.synchronous.is_some() {
            return Err(invalid(
                "store.synchronous is SQLite's setting; with store.url (PostgreSQL), durability is the server's `synchronous_commit`".into(),
            ));
        }
        let config = Self {
            listen: raw.listen.unwrap_or(d.listen),
            data_dir: raw.data_dir.map(rel).unwrap_or(d.data_dir),
            checks: raw
                .checks
                .unwrap_or_default()
                .into_iter()
                .map(rel)
                .collect(),
            tls: raw.tls.map(|t| TlsConfig {
                cert: rel(t.cert),
                key: rel(t.key),
                client_ca: t.client_ca.map(rel),
            }),
            insecure_http: raw.insecure_http.unwrap_or(false),
            synchronous: store.synchronous.unwrap_or_default(),
            store_url: store.url.map(Secret::new),
            store_password: crate::alert::config::secret(
                None,
                store.password_file,
                store.password_env,
                "store.password",
                base,
            )
            .map_err(invalid)?,
            retention_raw: dur(retention.raw, "retention.raw", d.retention_raw)?,
            retention_rollups: dur(retention.rollups, "retention.rollups", d.retention_rollups)?,
            retention_hourly: dur(
                retention.rollups_hourly,
                "retention.rollups_hourly",
                d.retention_hourly,
            )?,
            retention_daily: dur(
                retention.rollups_daily,
                "retention.rollups_daily",
                d.retention_daily,
            )?,
            lease: dur(raw.cluster.and_then(|c| c.lease), "cluster.lease", d.lease)?,
            limits: Limits {
                max_body_bytes: l.max_body_bytes.unwrap_or(dl.max_body_bytes),
                max_batch: l.max_batch.unwrap_or(dl.max_batch),
                max_field_bytes: l.max_field_bytes.unwrap_or(dl.max_field_bytes),
                clock_skew: dur(l.clock_skew, "limits.clock_skew", dl.clock_skew)?,
                max_result_age: dur(l.max_result_age, "limits.max_result_age", dl.max_result_age)?,
                queue_batches: l.queue_batches.unwrap_or(dl.queue_batches),
                request_timeout: dur(
                    l.request_timeout,
                    "limits.request_timeout",
                    dl.request_timeout,
                )?,
                idle_timeout: dur(l.idle_timeout, "limits.idle_timeout", dl.idle_timeout)?,
                max_connections_per_address: l
                    .max_connections_per_address
                    .unwrap_or(dl.max_connections_per_address),
                max_runs_per_interval: l.max_runs_per_interval.unwrap_or(dl.max_runs_per_interval),
            },
            quarantine: crate::consensus::quarantine::QuarantineSettings {
                min_vendors: q.min_vendors.unwrap_or(dq.min_vendors),
                readmit_after: dur(
                    q.readmit_after,
                    "quarantine.readmit_after",
                    dq.readmit_after,
                )?,
            },
            alerting,
            access,
        };
        Ok(config)
    }

    /// Checks the rules that span several settings; call after applying flag overrides.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.insecure_http {
            return Err(ConfigError::Rule(format!(
                "refusing plain HTTP on {}, which is not a loopback address: probe tokens would cross the network in clear; \
                 set `[tls] cert` and `key` (or --tls-cert/--tls-key), or pass --insecure-http if something else terminates TLS",
                self.listen
            )));
        }
        self.access.check(self.listen).map_err(ConfigError::Rule)?;
        if self.limits.max_batch == 0
            || self.limits.max_connections_per_address == 0
            || self.limits.queue_batches == 0
            || self.limits.max_body_bytes < 1024
        {
            return Err(ConfigError::Rule(
                "limits must allow something: max_batch, queue_batches and max_connections_per_address at least 1, max_body_bytes at least 1024".to_owned(),
            ));
        }
        if self.lease < Duration::from_secs(1) || self.lease > Duration::from_secs(300) {
            return Err(ConfigError::Rule(format!(
                "cluster.lease must be from 1s to 5m; got {}",
                vantage_checks::duration::format(self.lease)
            )));
        }
        if self.retention_rollups < self.retention_raw {
            return Err(ConfigError::Rule(format!(
                "retention.rollups ({}) must be at least retention.raw ({}): reports read rollups",
                vantage_checks::duration::format(self.retention_rollups),
                vantage_checks::duration::format(self.retention_raw)
            )));
        }
        // A report reads whole days and hours from the coarse tiers: they must outlive the
        // finer ones, or a window would lose its middle while keeping its edges.
        if self.retention_hourly < self.retention_rollups
            || self.retention_daily < self.retention_hourly
        {
            return Err(ConfigError::Rule(format!(
                "retention must not shrink with coarser rollups: rollups ({}) <= rollups_hourly ({}) <= rollups_daily ({}); \
                 e.g. rollups = \"400d\", rollups_hourly = \"400d\", rollups_daily = \"1830d\"",
                vantage_checks::duration::format(self.retention_rollups),
                vantage_checks::duration::format(self.retention_hourly),
                vantage_checks::duration::format(self.retention_daily)
            )));
        }
        Ok(())
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("vantage.db")
    }
}

fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deploy_example_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/coordinator.toml"
        ));
        let c = CoordinatorConfig::load(path).expect("deploy/coordinator.toml");
        c.check().expect("valid");
        assert_eq!(
            c,
            CoordinatorConfig {
                data_dir: c.data_dir.clone(),
                checks: c.checks.clone(),
                ..CoordinatorConfig::default()
            }
        );
        assert!(c.checks[0].ends_with("deploy/checks/example.toml"));
        // The example points at checks that load: one set, one `[defaults]`.
        crate::catalog::Catalogs::load(c.checks.clone()).expect("the example's checks load");
    }

    #[test]
    fn empty_file_is_loopback_defaults() {
        let c = CoordinatorConfig::parse("", Path::new("/etc/vantage/coordinator.toml"))
            .expect("parse");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from("data"));
        c.check().expect("loopback plain HTTP is fine");
    }

    #[test]
    fn paths_are_relative_to_the_file_and_limits_parse() {
        let text = "listen = \"127.0.0.1:9000\"\ndata_dir = \"state\"\nchecks = [\"checks\"]\n[limits]\nclock_skew = \"30s\"\nmax_batch = 10\n[retention]\nraw = \"2d\"\n";
        let c = CoordinatorConfig::parse(text, Path::new("/etc/vantage/coordinator.toml"))
            .expect("parse");
        assert_eq!(c.data_dir, PathBuf::from("/etc/vantage/state"));
        assert_eq!(c.checks, vec![PathBuf::from("/etc/vantage/checks")]);
        assert_eq!(c.limits.clock_skew, Duration::from_secs(30));
        assert_eq!(c.limits.max_batch, 10);
        assert_eq!(c.retention_raw, Duration::from_secs(2 * 86_400));
    }

    #[test]
    fn rollup_tiers_keep_at_least_as_long_as_the_finer_ones() {
        let c = CoordinatorConfig::parse(
            "[retention]\nrollups = \"35d\"\nrollups_hourly = \"90d\"\nrollups_daily = \"800d\"\n",
            Path::new("c.toml"),
        )
        .expect("parse");
        c.check().expect("growing retention is fine");
        assert_eq!(
            (c.retention_rollups, c.retention_hourly, c.retention_daily),
            (
                Duration::from_secs(35 * 86_400),
                Duration::from_secs(90 * 86_400),
                Duration::from_secs(800 * 86_400)
            )
        );
        for text in [
            "[retention]\nrollups_hourly = \"30d\"\n",
            "[retention]\nrollups_daily = \"100d\"\n",
        ] {
            let c = CoordinatorConfig::parse(text, Path::new("c.toml")).expect("parse");
            let e = c.check().expect_err(text).to_string();
            assert!(
                e.contains("retention must not shrink with coarser rollups"),
                "{text}: {e}"
            );
        }
        let e =
            CoordinatorConfig::parse("[retention]\nrollups_daily = \"5\"\n", Path::new("c.toml"))
                .expect_err("bad duration")
                .to_string();
        assert!(
            e.contains("retention.rollups_daily must be a duration"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_are_located_and_plain_http_off_loopback_is_refused() {
        let err = CoordinatorConfig::parse(
            "listen = \"127.0.0.1:9000\"\nlisen = 1\n",
            Path::new("c.toml"),
        )
        .expect_err("unknown key");
        assert!(
            err.to_string()
                .starts_with("c.toml: 2:1: unknown field `lisen`"),
            "{err}"
        );
        let err = CoordinatorConfig::parse("[retention]\nraw = \"2\"\n", Path::new("c.toml"))
            .expect_err("bad duration");
        assert!(
            err.to_string().contains("retention.raw must be a duration"),
            "{err}"
        );
        let c = CoordinatorConfig::parse("listen = \"0.0.0.0:7470\"\n", Path::new("c.toml"))
            .expect("parse");
        assert!(
            c.check()
                .expect_err("plain http")
                .to_string()
                .contains("refusing plain HTTP on 0.0.0.0:7470")
        );
        let c = CoordinatorConfig {
            insecure_http: true,
            ..c
        };
        // r12: off loopback, reads open to anyone must be said to be meant.
        assert!(
            c.check()
                .expect_err("open reads off loopback")
                .to_string()
                .contains("public_reads = true")
        );
        let mut c = c;
        c.access.public_reads = true;
        c.check().expect("explicitly allowed");
    }

    #[test]
    fn r12_api_tokens_by_role_each_at_least_32_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write token");
        };
        write("reader.token", "r-0123456789abcdef0123456789abcdef\n");
        write("operator.token", "o-0123456789abcdef0123456789abcdef\n");
        write("short.token", "short\n");
        let config = |api: &str| {
            CoordinatorConfig::parse(
                &format!("listen = \"0.0.0.0:7470\"\ninsecure_http = true\n[api]\n{api}"),
                &dir.path().join("coordinator.toml"),
            )
        };
        let c = config("reader_token_file = \"reader.token\"\ntoken_file = \"operator.token\"\n")
            .expect("parse");
        assert!(c.access.reader.is_some() && c.access.operator.is_some());
        c.check().expect("both roles, off loopback");
        let c = config("reader_token_file = \"short.token\"\n").expect("parse");
        let e = c.check().expect_err("short").to_string();
        assert!(
            e.contains("the reader token is 5 bytes; at least 32"),
            "{e}"
        );
        let e = config("reader_token = \"inline\"\n").expect_err("unknown key");
        assert!(e.to_string().contains("reader_token"), "{e}");
    }
}
