//! [`Store`] on PostgreSQL: a pool of `tokio-postgres` connections (`deadpool-postgres`),
//! driven by a small runtime of the store's own, so that the trait stays blocking, as on
//! SQLite, and callers keep calling it from blocking threads.
//!
//! Ingest is one `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING RETURNING` per commit
//! for the raw results (array parameters in the binary protocol: one statement, one round
//! trip), then one upsert per rollup tier, pipelined on the connection. Rollups add in SQL
//! (`count = rollups.count + excluded.count`, and each histogram bucket the same way), so two
//! coordinators writing the same minute never read-modify-write. Rows are locked in key
//! order; a deadlock or serialization failure PostgreSQL still reports is retried.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;
use vantage_checks::pem::CaFileError;
use vantage_checks::result::{CheckResult, Status};

mod lease;
mod report;
mod run;
mod schema;
mod state;

use self::schema::MIGRATIONS;
use super::report::{Tier, Totals};
use super::{
    IngestRow, InsertOutcome, LATENCY_BUCKETS, ProbeRecord, ResultQuery, Rollup, Store, StoreError,
};
use crate::ingest::unix_ms;

/// Connections the pool keeps at most.
const POOL_SIZE: usize = 16;

/// Commits of results in flight at once from one coordinator (see [`Store::writers`]). One:
/// every commit adds to the same hot 10-minute, hourly and daily rows, so a second commit in
/// flight mostly waits on the first's row locks, and with several coordinators the extra
/// writers only add lock waits (the ingest bench, 3 coordinators: 30,391–32,193 results/s
/// with two, 36,426–37,186 with one; 1 coordinator: 45,329–47,050 with two, 42,272–43,098
/// with one).
const WRITERS: usize = 1;

/// How long the server lets a transaction of this store sit idle before it ends it.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(5);

/// How often a transaction that PostgreSQL aborted for a deadlock or a serialization failure
/// is tried in all.
const ATTEMPTS: u32 = 5;

/// A failure inside the store: PostgreSQL's, or the store's own.
#[derive(Debug)]
pub(super) enum PgError {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for PgError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Db(e) => Self::Backend {
                backend: "postgresql",
                message: describe(&e),
            },
            PgError::Store(e) => e,
        }
    }
}

/// What PostgreSQL said, with its SQLSTATE, or why the connection failed.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// True for the aborts PostgreSQL asks the client to retry.
fn retryable(e: &PgError) -> bool {
    matches!(e, PgError::Db(e) if e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    }))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> PgError {
    PgError::Store(StoreError::Corrupt(format!("{what}: {e}")))
}

/// The PostgreSQL store.
pub struct PostgresStore {
    /// Drives the pool's connections; `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// Where it connects, for messages: hosts, port, database and user, never the password.
    target: String,
    /// Marks the results this handle writes (`results.writer`), so that its feed skips them:
    /// their writer has them already.
    writer: i64,
    /// TLS to the server, when the URL asks for it.
    tls: Option<MakeRustlsConnect>,
}

/// A store URL made ready to connect: tokio-postgres' settings, and TLS when `sslmode` is
/// `require`, `verify-ca` or `verify-full`.
///
/// TLS always verifies the server's certificate chain and name (libpq's `verify-full`)
/// against `sslrootcert` (a PEM file) or, without it, the system's roots; `verify-ca` is
/// checked as `verify-full`. `prefer` (the default) and `disable` connect without TLS: a
/// link that may or may not be verified is not one to rely on. tokio-postgres does not take
/// `sslrootcert` or the `verify-*` modes, so they are lifted out of the URL first.
pub(crate) struct Link {
    pub cfg: tokio_postgres::Config,
    pub tls: Option<MakeRustlsConnect>,
}

impl Link {
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let (rest, root_cert, verify) = lift_tls_params(url)
            .map_err(|e| StoreError::Config(format!("the store URL is invalid: {e}")))?;
        let mut cfg: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| StoreError::Config(format!("the store URL is invalid: {e}")))?;
        if verify {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        let wants_tls = cfg.get_ssl_mode() == tokio_postgres::config::SslMode::Require;
        if !wants_tls {
            if root_cert.is_some() {
                return Err(StoreError::Config(
                    "the store URL names an sslrootcert but not sslmode=require (or verify-full): \
                     add it, or this link would not use TLS"
                        .into(),
                ));
            }
            return Ok(Self { cfg, tls: None });
        }
        let roots = match &root_cert {
            Some(path) => {
                let path = std::path::Path::new(path);
                vantage_checks::pem::root_store(path).map_err(|e| {
                    StoreError::Config(match e {
                        CaFileError::Read(e) => format!(
                            "cannot use the store's sslrootcert `{}`: {e}",
                            path.display()
                        ),
                        CaFileError::NoUsableCertificate => format!(
                            "the store's sslrootcert `{}` holds no usable CA certificate",
                            path.display()
                        ),
                    })
                })?
            }
            None => vantage_checks::pem::native_roots(),
        };
        let tls = vantage_checks::pem::client_config(roots)
            .map_err(|e| StoreError::Config(format!("TLS to the store: {e}")))?
            .with_no_client_auth();
        Ok(Self {
            cfg,
            tls: Some(MakeRustlsConnect::new(tls)),
        })
    }

    /// Connects once, outside any pool.
    pub(crate) async fn connect(
        &self,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        Ok(match &self.tls {
            Some(tls) => {
                let (client, conn) = self.cfg.connect(tls.clone()).await?;
                (client, tokio::spawn(async move { drop(conn.await) }))
            }
            None => {
                let (client, conn) = self.cfg.connect(NoTls).await?;
                (client, tokio::spawn(async move { drop(conn.await) }))
            }
        })
    }
}

/// Takes libpq's `sslrootcert` and `sslmode=verify-ca|verify-full` out of a URL (or a
/// `key=value` string), which tokio-postgres refuses: the rest, the root certificate's path,
/// and whether a `verify-*` mode was asked (it becomes `require`). `Err` says why a
/// `key=value` string cannot be read.
fn lift_tls_params(url: &str) -> Result<(String, Option<String>, bool), String> {
    let mut root = None;
    let mut verify = false;
    let mut take = |key: &str, value: &str| -> bool {
        match (key, value) {
            ("sslrootcert", v) => {
                root = Some(v.to_owned());
                true
            }
            ("sslmode", "verify-ca" | "verify-full") => {
                verify = true;
                true
            }
            _ => false,
        }
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((head, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None, false));
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                !take(k, &v)
            })
            .collect();
        let rest = if kept.is_empty() {
            head.to_owned()
        } else {
            format!("{head}?{}", kept.join("&"))
        };
        Ok((rest, root, verify))
    } else {
        let kept: Vec<String> = key_value_pairs(url)?
            .into_iter()
            .filter(|(k, v)| !take(k, v))
            .map(|(k, v)| format!("{k}={}", quote_value(&v)))
            .collect();
        Ok((kept.join(" "), root, verify))
    }
}

/// The `key=value` pairs of a libpq connection string, read by libpq's rules
/// (`conninfo_parse`): pairs are separated by whitespace, `=` may have whitespace around it, a
/// value is bare or in single quotes, and a backslash takes the next character as it is (`\'`,
/// `\\`), in quotes or out. `Err` names the parameter at fault, never its value: it may be a
/// password.
fn key_value_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut it = s.chars().peekable();
    let skip_whitespace = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_whitespace(&mut it);
        if it.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            return Err(
                "a parameter has no name before its `=`, e.g. `host=db.example`".to_owned(),
            );
        }
        skip_whitespace(&mut it);
        if it.next_if_eq(&'=').is_none() {
            return Err(format!(
                "`{key}` has no `=` after it, e.g. `{key}=value` (a value with spaces goes in \
                 single quotes)"
            ));
        }
        skip_whitespace(&mut it);
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next() {
                    None => {
                        return Err(format!(
                            "the quoted value of `{key}` has no closing `'`; a quote inside \
                             it is written `\\'`"
                        ));
                    }
                    Some('\'') => break,
                    Some('\\') => value.extend(it.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// `value` as tokio-postgres' `key=value` parser reads it back: bare when it can be; in single
/// quotes, with `\` and `'` escaped, when it is empty or holds whitespace, a quote or a
/// backslash.
fn quote_value(value: &str) -> std::borrow::Cow<'_, str> {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if bare {
        return value.into();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted.into()
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks; the last handle may go in an async context.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Where a configuration connects, without its password.
pub(super) fn target_of(cfg: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = cfg.get_ports().iter().map(u16::to_string).collect();
    format!(
        "postgresql://{}@{}{}{}",
        cfg.get_user().unwrap_or("?"),
        if hosts.is_empty() {
            "localhost".to_owned()
        } else {
            hosts.join(",")
        },
        if ports.is_empty() {
            String::new()
        } else {
            format!(":{}", ports.join(","))
        },
        cfg.get_dbname()
            .map(|d| format!("/{d}"))
            .unwrap_or_default()
    )
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgresql://user@host:port/db?…`, or the
    /// `key=value` form), with `password` when given (it overrides one in the URL), and applies
    /// pending migrations. Several coordinators may open it at once: migrations run under an
    /// advisory lock.
    pub fn open(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let Link { mut cfg, tls } = Link::parse(url)?;
        if let Some(p) = password {
            cfg.password(p);
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(5));
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("vantage-coordinator");
        }
        // A link that goes silent (a partition, a dead host) fails its queries within seconds,
        // rather than when the kernel gives up on it: the coordinator then answers 503 and its
        // leases run out, so the probes and the others go on without it.
        cfg.keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(10));
        // A coordinator that stops in the middle of a transaction (paused, frozen, its host
        // stalled) must not hold it open: its row locks would block the others' writes, and
        // the feed every engine follows waits for the oldest running transaction. The server
        // ends such a transaction after a few seconds; this store's own transactions never
        // wait between statements.
        let options = format!(
            "{} -c idle_in_transaction_session_timeout={}",
            cfg.get_options().unwrap_or_default(),
            IDLE_IN_TRANSACTION.as_millis()
        );
        cfg.options(options.trim());
        let target = target_of(&cfg);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vantage-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start the store's runtime: {e}")))?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(tls) => Manager::from_config(cfg, tls.clone(), manager_config),
            None => Manager::from_config(cfg, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(10)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot build the connection pool: {e}")))?;
        let store = Self {
            rt: Some(rt),
            pool,
            target,
            writer: rand::random(),
            tls,
        };
        store.run(async |c| migrate(c).await)?;
        Ok(store)
    }

    /// Where it connects (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Runs a future on the store's runtime and waits for it, from any thread: a blocking
    /// one, or a worker of a multi-threaded runtime (which it leaves for the wait).
    pub(super) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let rt = self.rt.as_ref().expect("the runtime lives until drop");
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| rt.block_on(fut))
            }
            _ => rt.block_on(fut),
        }
    }

    /// A pooled connection.
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Backend {
            backend: "postgresql",
            message: format!(
                "no connection to {}: {}",
                self.target,
                match &e {
                    // Why it failed (refused, timed out, the password), not only that it did.
                    deadpool_postgres::PoolError::Backend(e) => describe(e),
                    e => e.to_string(),
                }
            ),
        })
    }

    /// Runs `f` on a pooled connection.
    pub(super) fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<T, PgError>,
    ) -> Result<T, StoreError> {
        self.block_on(async {
            let mut client = self.client().await?;
            f(&mut client).await.map_err(StoreError::from)
        })
    }

    /// Runs `f` in a transaction, trying it again when PostgreSQL aborts it for a deadlock or
    /// a serialization failure.
    pub(super) fn transaction<T>(
        &self,
        f: impl AsyncFn(&deadpool_postgres::Transaction<'_>) -> Result<T, PgError>,
    ) -> Result<T, StoreError> {
        self.run(async |c| {
            let mut attempt = 1;
            loop {
                let tx = c.transaction().await?;
                let out = match f(&tx).await {
                    Ok(v) => tx.commit().await.map(|()| v).map_err(PgError::from),
                    Err(e) => Err(e),
                };
                match out {
                    Err(e) if attempt < ATTEMPTS && retryable(&e) => attempt += 1,
                    out => return out,
                }
            }
        })
    }
}

async fn migrate(c: &mut deadpool_postgres::Client) -> Result<(), PgError> {
    // One coordinator migrates at a time; the others wait, then find nothing to do.
    const LOCK: i64 = 0x0076_616e_7461_6765; // "vantage"
    c.execute("SELECT pg_advisory_lock($1)", &[&LOCK]).await?;
    let out = async {
        // Created only when missing: `IF NOT EXISTS` on an existing table makes the server
        // send a notice, which the client logs on every start.
        let exists: bool = c
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .await?
            .get(0);
        if !exists {
            c.batch_execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
                .await?;
        }
        let current: i64 = c
            .query_opt("SELECT version FROM schema_version", &[])
            .await?
            .map_or(0, |r| r.get(0));
        let supported = MIGRATIONS.len() as i64;
        if current > supported {
            return Err(PgError::Store(StoreError::TooNew {
                found: current,
                supported,
            }));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let version = i as i64 + 1;
            let tx = c.transaction().await?;
            tx.batch_execute(sql).await?;
            tx.execute("DELETE FROM schema_version", &[]).await?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(version, "applied store migration (postgresql)");
        }
        Ok(())
    }
    .await;
    c.execute("SELECT pg_advisory_unlock($1)", &[&LOCK]).await?;
    out
}

/// The slow path of [`insert_results`]: skips the results stored already and names the new.
const INSERT_RESULTS: &str = "INSERT INTO results
    (probe_id, boot_id, seq, check_id, vendor, region, started_ms, received_ms, status, failure, total_ms, body, writer)
    SELECT u.*, $13::int8 FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[],
                         $7::int8[], $8::int8[], $9::text[], $10::text[], $11::float8[], $12::text[]) AS u
    ON CONFLICT DO NOTHING
    RETURNING probe_id, boot_id, seq";

/// The fast path of [`insert_results`].
const COPY_RESULTS: &str = "COPY results
    (probe_id, boot_id, seq, check_id, vendor, region, started_ms, received_ms, status, failure, total_ms, body, writer)
    FROM STDIN BINARY";

/// A latency histogram is stored as one nullable `INTEGER` column a bucket, `b0` … `b39`
/// (migration 5): an empty bucket is a NULL, which costs one bit, so that rows, the pages a
/// report reads, stay small; and a report sums plain columns, where summing the elements of
/// an array cost it twice the time. A count saturates at `i32::MAX`, which a bucket of one
/// row (a check's runs in one region and one day, at most) cannot reach in practice; ingest
/// never fails on it.
const _: () = assert!(
    LATENCY_BUCKETS == 40,
    "migration 5 made the columns b0 to b39: another bucket count needs a migration"
);

/// The histogram columns, each written as `f(bucket)` gives it, joined by commas.
pub(super) fn buckets_sql(f: impl Fn(usize) -> String) -> String {
    (0..LATENCY_BUCKETS).map(f).collect::<Vec<_>>().join(", ")
}

/// The name of bucket `i`'s column.
pub(crate) fn bucket_column(i: usize) -> String {
    format!("b{i}")
}

/// Every bucket's column name, in bucket order.
pub(crate) static BUCKET_COLUMNS: std::sync::LazyLock<[String; LATENCY_BUCKETS]> =
    std::sync::LazyLock::new(|| std::array::from_fn(bucket_column));

/// `{table}.bi` plus `excluded.bi`, saturating, NULL while both are.
fn bucket_sum(table: &str, i: usize) -> String {
    format!(
        "b{i} = CASE WHEN excluded.b{i} IS NULL THEN {table}.b{i}
                  ELSE LEAST(COALESCE({table}.b{i}, 0)::int8 + excluded.b{i}, 2147483647)::int4 END"
    )
}

/// Adds one commit's minute rows, all at once: the arrays hold one element a row, the last
/// [`LATENCY_BUCKETS`] one bucket of every row's histogram each.
fn upsert_minutes() -> String {
    let first = 10;
    format!(
        "INSERT INTO rollups
    (check_id, probe_id, minute_ms, region, count, failures, slow, by_kind, probe_errors, {cols})
    SELECT c, p, m, r, n, f, s, k::jsonb, e, {hs}
    FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::int8[],
                $7::int8[], $8::text[], $9::int8[], {params})
         AS u(c, p, m, r, n, f, s, k, e, {hs})
    ON CONFLICT (check_id, minute_ms, probe_id) DO UPDATE SET
      count = rollups.count + excluded.count, failures = rollups.failures + excluded.failures,
      slow = rollups.slow + excluded.slow, probe_errors = rollups.probe_errors + excluded.probe_errors,
      by_kind = CASE WHEN excluded.by_kind = '{{}}'::jsonb THEN rollups.by_kind
                     ELSE vantage_counts_add(rollups.by_kind, excluded.by_kind) END,
      {sums}",
        cols = buckets_sql(bucket_column),
        hs = buckets_sql(|i| format!("h{i}")),
        params = buckets_sql(|i| format!("${}::int4[]", first + i)),
        sums = buckets_sql(|i| bucket_sum("rollups", i)),
    )
}

/// Adds one commit's rows of a coarse tier, all at once, as [`upsert_minutes`] does.
fn upsert_coarse(tier: Tier) -> String {
    let (table, unit) = (tier.table(), tier.unit());
    let first = 8;
    format!(
        "INSERT INTO {table}
    (check_id, {unit}, region, count, failures, probe_errors, slow, {cols})
    SELECT c, t, r, n, f, e, s, {hs}
    FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                {params})
         AS u(c, t, r, n, f, e, s, {hs})
    ON CONFLICT (check_id, {unit}, region) DO UPDATE SET
      count = {table}.count + excluded.count,
      failures = {table}.failures + excluded.failures,
      probe_errors = {table}.probe_errors + excluded.probe_errors,
      slow = {table}.slow + excluded.slow,
      {sums}",
        cols = buckets_sql(bucket_column),
        hs = buckets_sql(|i| format!("h{i}")),
        params = buckets_sql(|i| format!("${}::int4[]", first + i)),
        sums = buckets_sql(|i| bucket_sum(table, i)),
    )
}

static UPSERT_MINUTES: std::sync::LazyLock<String> = std::sync::LazyLock::new(upsert_minutes);

/// [`upsert_coarse`] of each tier, indexed by tier (the minute tier's is [`UPSERT_MINUTES`]).
static UPSERT_COARSE: std::sync::LazyLock<[String; 4]> =
    std::sync::LazyLock::new(|| Tier::ALL.map(upsert_coarse));

/// The raw results of one commit, column by column (the arrays `INSERT_RESULTS` unnests).
#[derive(Default)]
struct Columns<'a> {
    probe: Vec<&'a str>,
    boot: Vec<&'a str>,
    seq: Vec<i64>,
    check: Vec<&'a str>,
    vendor: Vec<&'a str>,
    region: Vec<&'a str>,
    started: Vec<i64>,
    received: Vec<i64>,
    status: Vec<&'static str>,
    failure: Vec<Option<&'static str>>,
    total: Vec<f64>,
    body: Vec<String>,
}

impl<'a> Columns<'a> {
    fn of(batches: &'a [Vec<IngestRow>]) -> Result<Self, StoreError> {
        let mut c = Self::default();
        for row in batches.iter().flatten() {
            let r = &row.result;
            c.probe.push(&r.probe_id);
            c.boot.push(&r.boot_id);
            c.seq.push(r.seq as i64);
            c.check.push(&r.check_id);
            c.vendor.push(&r.vendor);
            c.region.push(&row.region);
            c.started.push(unix_ms(r.started_at));
            c.received.push(row.received_ms);
            c.status.push(r.status.as_label());
            c.failure.push(r.failure.map(|f| f.as_label()));
            c.total.push(r.timings.total_ms);
            c.body
                .push(serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(c)
    }
}

/// What one commit adds to one minute rollup row.
struct MinuteDelta {
    region: String,
    totals: Totals,
    by_kind: BTreeMap<String, u64>,
}

/// One commit's minute rollup rows, column by column (the arrays [`upsert_minutes`] unnests).
#[derive(Default)]
struct MinuteColumns<'a> {
    check: Vec<&'a str>,
    probe: Vec<&'a str>,
    minute: Vec<i64>,
    region: Vec<&'a str>,
    count: Vec<i64>,
    failures: Vec<i64>,
    slow: Vec<i64>,
    by_kind: Vec<String>,
    probe_errors: Vec<i64>,
    latency: Buckets,
}

impl MinuteColumns<'_> {
    /// The arguments of [`upsert_minutes`]'s statement.
    fn args(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![
            &self.check,
            &self.probe,
            &self.minute,
            &self.region,
            &self.count,
            &self.failures,
            &self.slow,
            &self.by_kind,
            &self.probe_errors,
        ];
        args.extend(self.latency.args());
        args
    }
}

/// One commit's rows of a coarse tier, column by column.
#[derive(Default)]
struct CoarseColumns<'a> {
    check: Vec<&'a str>,
    start: Vec<i64>,
    region: Vec<&'a str>,
    count: Vec<i64>,
    failures: Vec<i64>,
    probe_errors: Vec<i64>,
    slow: Vec<i64>,
    latency: Buckets,
}

impl CoarseColumns<'_> {
    /// The arguments of [`upsert_coarse`]'s statement.
    fn args(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![
            &self.check,
            &self.start,
            &self.region,
            &self.count,
            &self.failures,
            &self.probe_errors,
            &self.slow,
        ];
        args.extend(self.latency.args());
        args
    }
}

/// The histograms of one commit's rows of a tier, bucket by bucket: a column each.
pub(crate) struct Buckets([Vec<Option<i32>>; LATENCY_BUCKETS]);

impl Default for Buckets {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Vec::new()))
    }
}

impl Buckets {
    /// Appends one row's histogram.
    pub(crate) fn push(&mut self, h: &[u64; LATENCY_BUCKETS]) {
        for (column, &n) in self.0.iter_mut().zip(h) {
            column.push(stored_count(n));
        }
    }

    /// One array parameter a bucket.
    pub(crate) fn args(&self) -> impl Iterator<Item = &(dyn ToSql + Sync)> {
        self.0.iter().map(|c| c as &(dyn ToSql + Sync))
    }

    pub(crate) fn clear(&mut self) {
        self.0.iter_mut().for_each(Vec::clear);
    }
}

/// A bucket's count as stored: NULL for none, saturating at `i32::MAX`.
fn stored_count(n: u64) -> Option<i32> {
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The count in column `i`: an `INTEGER` bucket, a `BIGINT` count or sum, NULL as none, a
/// negative one (only a damaged row has it) as none.
fn count_at(r: &tokio_postgres::Row, i: usize) -> Result<u64, PgError> {
    let n = if r.columns()[i].type_() == &tokio_postgres::types::Type::INT4 {
        r.try_get::<_, Option<i32>>(i)?.map(i64::from)
    } else {
        r.try_get::<_, Option<i64>>(i)?
    };
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// The histogram in the [`LATENCY_BUCKETS`] columns from `at`.
fn histogram_at(r: &tokio_postgres::Row, at: usize) -> Result<[u64; LATENCY_BUCKETS], PgError> {
    let mut h = [0; LATENCY_BUCKETS];
    for (i, n) in h.iter_mut().enumerate() {
        *n = count_at(r, at + i)?;
    }
    Ok(h)
}

/// Stores one commit's results: a binary `COPY` of them all when none is stored already (the
/// usual case), else an insert that skips those stored already. `None`: every result is new;
/// else the keys of the new ones.
async fn insert_results(
    tx: &deadpool_postgres::Transaction<'_>,
    cols: &Columns<'_>,
    writer: i64,
) -> Result<Option<HashSet<(String, String, i64)>>, PgError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    tx.batch_execute("SAVEPOINT copy_results").await?;
    let copied = async {
        let sink = tx.copy_in(COPY_RESULTS).await?;
        let types = [
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::FLOAT8,
            Type::TEXT,
            Type::INT8,
        ];
        let mut rows = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        for i in 0..cols.seq.len() {
            let row: [&(dyn ToSql + Sync); 13] = [
                &cols.probe[i],
                &cols.boot[i],
                &cols.seq[i],
                &cols.check[i],
                &cols.vendor[i],
                &cols.region[i],
                &cols.started[i],
                &cols.received[i],
                &cols.status[i],
                &cols.failure[i],
                &cols.total[i],
                &cols.body[i],
                &writer,
            ];
            rows.as_mut().write(&row).await?;
        }
        rows.finish().await
    }
    .await;
    match copied {
        Ok(_) => return Ok(None),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT copy_results")
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    let stmt = tx.prepare_cached(INSERT_RESULTS).await?;
    let new = tx
        .query(
            &stmt,
            &[
                &cols.probe,
                &cols.boot,
                &cols.seq,
                &cols.check,
                &cols.vendor,
                &cols.region,
                &cols.started,
                &cols.received,
                &cols.status,
                &cols.failure,
                &cols.total,
                &cols.body,
                &writer,
            ],
        )
        .await?;
    Ok(Some(
        new.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect(),
    ))
}

async fn insert_once(
    tx: &deadpool_postgres::Transaction<'_>,
    batches: &[Vec<IngestRow>],
    cols: &Columns<'_>,
    writer: i64,
) -> Result<Vec<InsertOutcome>, PgError> {
    let mut new = insert_results(tx, cols, writer).await?;
    let mut outcomes = Vec::with_capacity(batches.len());
    // Keys in order, so that every writer locks rollup rows in the same order.
    let mut minutes: BTreeMap<(&str, &str, i64), MinuteDelta> = BTreeMap::new();
    let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
    let mut i = 0;
    for rows in batches {
        let mut outcome = InsertOutcome::default();
        for row in rows {
            let r: &CheckResult = &row.result;
            let seen_ms = seen.entry(r.probe_id.as_str()).or_insert(row.received_ms);
            *seen_ms = (*seen_ms).max(row.received_ms);
            let is_new = new.as_mut().is_none_or(|new| {
                new.remove(&(r.probe_id.clone(), r.boot_id.clone(), r.seq as i64))
            });
            if is_new {
                outcome.inserted += 1;
                let started_ms = cols.started[i];
                let minute = started_ms - started_ms.rem_euclid(60_000);
                let d = minutes
                    .entry((r.check_id.as_str(), r.probe_id.as_str(), minute))
                    .or_insert_with(|| MinuteDelta {
                        region: row.region.clone(),
                        totals: Totals::default(),
                        by_kind: BTreeMap::new(),
                    });
                d.totals.add_result(r);
                if r.status == Status::Fail
                    && let Some(kind) = r.failure
                {
                    *d.by_kind.entry(kind.as_label().to_owned()).or_default() += 1;
                }
            } else {
                outcome.duplicates += 1;
            }
            i += 1;
        }
        outcomes.push(outcome);
    }
    // Minute rows, then the 10-minute, hourly and daily ones they add to: one statement a
    // tier, each over rows in key order (so that every writer locks rollup rows in the same
    // order), the four pipelined.
    let mut coarse: BTreeMap<(Tier, &str, &str, i64), Totals> = BTreeMap::new();
    let mut m = MinuteColumns::default();
    for ((check, probe, minute), d) in &minutes {
        for tier in [Tier::TenMinutes, Tier::Hour, Tier::Day] {
            let start = minute - minute.rem_euclid(tier.ms());
            coarse
                .entry((tier, check, d.region.as_str(), start))
                .or_default()
                .add(&d.totals);
        }
        m.check.push(check);
        m.probe.push(probe);
        m.minute.push(*minute);
        m.region.push(&d.region);
        m.count.push(to_i64(d.totals.runs));
        m.failures.push(to_i64(d.totals.failures));
        m.slow.push(to_i64(d.totals.slow));
        m.by_kind
            .push(serde_json::to_string(&d.by_kind).map_err(|e| corrupt("rollup by_kind", e))?);
        m.latency.push(&d.totals.latency);
        m.probe_errors.push(to_i64(d.totals.probe_errors));
    }
    let mut tens = CoarseColumns::default();
    let mut hours = CoarseColumns::default();
    let mut days = CoarseColumns::default();
    for ((tier, check, region, start), t) in &coarse {
        let c = match tier {
            Tier::TenMinutes => &mut tens,
            Tier::Hour => &mut hours,
            _ => &mut days,
        };
        c.check.push(check);
        c.start.push(*start);
        c.region.push(region);
        c.count.push(to_i64(t.runs));
        c.failures.push(to_i64(t.failures));
        c.probe_errors.push(to_i64(t.probe_errors));
        c.slow.push(to_i64(t.slow));
        c.latency.push(&t.latency);
    }
    let (up_minute, up_ten, up_hour, up_day) = futures_util::future::try_join4(
        tx.prepare_cached(&UPSERT_MINUTES),
        tx.prepare_cached(&UPSERT_COARSE[Tier::TenMinutes as usize]),
        tx.prepare_cached(&UPSERT_COARSE[Tier::Hour as usize]),
        tx.prepare_cached(&UPSERT_COARSE[Tier::Day as usize]),
    )
    .await?;
    let minute_args = m.args();
    let (ten_args, hour_args, day_args) = (tens.args(), hours.args(), days.args());
    futures_util::future::try_join4(
        tx.execute(&up_minute, &minute_args),
        tx.execute(&up_ten, &ten_args),
        tx.execute(&up_hour, &hour_args),
        tx.execute(&up_day, &day_args),
    )
    .await?;
    // A probe that pushes is a probe seen, whether or not it also pulls its config.
    let touch = tx
        .prepare_cached(
            "UPDATE probes SET last_seen_ms = GREATEST(COALESCE(last_seen_ms, 0), $2) WHERE id = $1",
        )
        .await?;
    let params: Vec<[&(dyn ToSql + Sync); 2]> = seen
        .iter()
        .map(|(probe, ms)| [probe as &(dyn ToSql + Sync), ms])
        .collect();
    futures_util::future::try_join_all(params.iter().map(|p| tx.execute(&touch, p))).await?;
    Ok(outcomes)
}

/// The raw results query for `q`, and its arguments.
fn results_sql(q: &ResultQuery) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut sql = String::from("SELECT body FROM results WHERE true");
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    for (col, v) in [
        ("check_id", &q.check),
        ("probe_id", &q.probe),
        ("vendor", &q.vendor),
        ("region", &q.region),
    ] {
        if let Some(v) = v {
            args.push(Box::new(v.clone()));
            sql.push_str(&format!(" AND {col} = ${}", args.len()));
        }
    }
    if let Some(s) = q.since_ms {
        args.push(Box::new(s));
        sql.push_str(&format!(" AND started_ms >= ${}", args.len()));
    }
    if let Some(u) = q.until_ms {
        args.push(Box::new(u));
        sql.push_str(&format!(" AND started_ms < ${}", args.len()));
    }
    args.push(Box::new(i64::from(q.limit)));
    sql.push_str(&format!(
        " ORDER BY started_ms DESC, probe_id, seq DESC LIMIT ${}",
        args.len()
    ));
    (sql, args)
}

type ProbeRow = (String, String, String, i64, Option<i64>, Option<i64>);

const PROBE_COLUMNS: &str = "id, region, labels, created_ms, revoked_ms, last_seen_ms";

fn probe_of(r: &tokio_postgres::Row) -> Result<ProbeRecord, PgError> {
    let (id, region, labels, created_ms, revoked_ms, last_seen_ms): ProbeRow = (
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
    );
    Ok(ProbeRecord {
        id,
        region,
        labels: serde_json::from_str(&labels).map_err(|e| corrupt("probe labels", e))?,
        created_ms,
        revoked_ms,
        last_seen_ms,
    })
}

impl Store for PostgresStore {
    fn insert_batches(&self, batches: &[Vec<IngestRow>]) -> Result<Vec<InsertOutcome>, StoreError> {
        let cols = Columns::of(batches)?;
        self.transaction(async |tx| insert_once(tx, batches, &cols, self.writer).await)
    }

    fn query_results(&self, q: &ResultQuery) -> Result<Vec<CheckResult>, StoreError> {
        let (sql, args) = results_sql(q);
        self.run(async |c| {
            if let Some(why) = q.stop.reason() {
                return Err(StoreError::Stopped(why).into());
            }
            let stmt = c.prepare_cached(&sql).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = args
                .iter()
                .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let query = c.query(&stmt, &refs);
            // PostgreSQL cannot look at the stop flag: watch it here, and cancel the query on
            // the server when it trips.
            let watch = async {
                loop {
                    if let Some(why) = q.stop.reason() {
                        return why;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let rows = tokio::select! {
                rows = query => rows?,
                why = watch => {
                    let token = c.cancel_token();
                    let _ = match &self.tls {
                        Some(tls) => token.cancel_query(tls.clone()).await,
                        None => token.cancel_query(NoTls).await,
                    };
                    return Err(StoreError::Stopped(why).into());
                }
            };
            rows.iter()
                .map(|r| {
                    let body: &str = r.try_get(0)?;
                    serde_json::from_str(body).map_err(|e| corrupt("result body", e))
                })
                .collect()
        })
    }

    fn rollups(&self, check_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Rollup>, StoreError> {
        self.run(async |c| {
            // The key is (check, minute, probe): one range, in the order wanted.
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT check_id, probe_id, minute_ms, region, count, failures, slow,
                                by_kind::text, probe_errors, {}
                         FROM rollups
                         WHERE check_id = $1 AND minute_ms >= $2 AND minute_ms < $3
                         ORDER BY minute_ms, probe_id",
                    buckets_sql(bucket_column)
                ))
                .await?;
            let rows = c.query(&stmt, &[&check_id, &from_ms, &to_ms]).await?;
            rows.iter()
                .map(|r| {
                    let by_kind: &str = r.try_get(7)?;
                    Ok(Rollup {
                        check_id: r.try_get(0)?,
                        probe_id: r.try_get(1)?,
                        minute_ms: r.try_get(2)?,
                        region: r.try_get(3)?,
                        count: r.try_get::<_, i64>(4)?.max(0) as u64,
                        failures: r.try_get::<_, i64>(5)?.max(0) as u64,
                        slow: r.try_get::<_, i64>(6)?.max(0) as u64,
                        failures_by_kind: serde_json::from_str(by_kind)
                            .map_err(|e| corrupt("rollup by_kind", e))?,
                        probe_errors: r.try_get::<_, i64>(8)?.max(0) as u64,
                        latency_buckets: histogram_at(r, 9)?.to_vec(),
                    })
                })
                .collect()
        })
    }

    fn prune(&self, raw_before_ms: i64, rollups_before_ms: i64) -> Result<u64, StoreError> {
        self.transaction(async |tx| {
            let n = tx
                .execute(
                    "DELETE FROM results WHERE started_ms < $1",
                    &[&raw_before_ms],
                )
                .await?;
            tx.execute("DELETE FROM runs WHERE created_ms < $1", &[&raw_before_ms])
                .await?;
            tx.execute(
                "DELETE FROM rollups WHERE minute_ms < $1",
                &[&rollups_before_ms],
            )
            .await?;
            // A period goes when its last minute does.
            tx.execute(
                "DELETE FROM rollups_10min WHERE start_ms <= $1::int8 - 600000",
                &[&rollups_before_ms],
            )
            .await?;
            Ok(n)
        })
    }

    fn add_probe(&self, p: &ProbeRecord, token_hash: &[u8]) -> Result<(), StoreError> {
        let labels =
            serde_json::to_string(&p.labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.run(async |c| {
            let n = c
                .execute(
                    "INSERT INTO probes (id, region, labels, token_hash, created_ms)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    &[&p.id, &p.region, &labels, &token_hash, &p.created_ms],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::ProbeExists(p.id.clone()).into());
            }
            Ok(())
        })
    }

    fn list_probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        self.run(async |c| {
            let rows = c
                .query(
                    &format!("SELECT {PROBE_COLUMNS} FROM probes ORDER BY id"),
                    &[],
                )
                .await?;
            rows.iter().map(probe_of).collect()
        })
    }

    fn set_probe_token(&self, id: &str, token_hash: &[u8]) -> Result<(), StoreError> {
        self.run(async |c| {
            let n = c
                .execute(
                    "UPDATE probes SET token_hash = $2, revoked_ms = NULL WHERE id = $1",
                    &[&id, &token_hash],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NoSuchProbe(id.to_owned()).into());
            }
            Ok(())
        })
    }

    fn revoke_probe(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.run(async |c| {
            let n = c
                .execute(
                    "UPDATE probes SET revoked_ms = COALESCE(revoked_ms, $2) WHERE id = $1",
                    &[&id, &now_ms],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NoSuchProbe(id.to_owned()).into());
            }
            Ok(())
        })
    }

    fn probe_by_token(&self, token_hash: &[u8]) -> Result<Option<ProbeRecord>, StoreError> {
        self.run(async |c| {
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {PROBE_COLUMNS} FROM probes WHERE token_hash = $1 AND revoked_ms IS NULL"
                ))
                .await?;
            c.query_opt(&stmt, &[&token_hash])
                .await?
                .as_ref()
                .map(probe_of)
                .transpose()
        })
    }

    fn touch_probe(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.run(async |c| {
            let stmt = c
                .prepare_cached("UPDATE probes SET last_seen_ms = $2 WHERE id = $1")
                .await?;
            c.execute(&stmt, &[&id, &now_ms]).await?;
            Ok(())
        })
    }

    fn writers(&self) -> usize {
        WRITERS
    }

    fn feed(&self) -> Option<&dyn super::ResultFeed> {
        Some(self)
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        self.run(async |c| {
            let n: i64 = c
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await?
                .try_get(0)?;
            Ok(n.max(0) as u64)
        })
    }
}

/// The totals of one rollup row, or of a sum of rows: count, failures, probe_errors, slow
/// and the histogram's columns, from `at`.
pub(super) fn totals_at(r: &tokio_postgres::Row, at: usize) -> Result<Totals, PgError> {
    Ok(Totals {
        runs: count_at(r, at)?,
        failures: count_at(r, at + 1)?,
        probe_errors: count_at(r, at + 2)?,
        slow: count_at(r, at + 3)?,
        latency: histogram_at(r, at + 4)?,
    })
}

impl super::ResultFeed for PostgresStore {
    fn feed_start(&self) -> Result<super::FeedCursor, StoreError> {
        self.run(async |c| {
            let tx: i64 = c
                .query_one(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                    &[],
                )
                .await?
                .try_get(0)?;
            Ok(super::FeedCursor { tx, id: 0 })
        })
    }

    fn feed_after(
        &self,
        after: super::FeedCursor,
        limit: u32,
    ) -> Result<(Vec<IngestRow>, super::FeedCursor), StoreError> {
        self.run(async |c| {
            let stmt = c
                .prepare_cached(
                    // This handle's own results are passed over (no body) but still move
                    // the cursor.
                    "SELECT tx::text::bigint, feed_id, region, received_ms,
                            CASE WHEN writer = $4 THEN NULL ELSE body END
                     FROM results
                     WHERE (tx, feed_id) > ($1::text::xid8, $2)
                       AND tx < pg_snapshot_xmin(pg_current_snapshot())
                     ORDER BY tx, feed_id LIMIT $3",
                )
                .await?;
            let rows = c
                .query(
                    &stmt,
                    &[
                        &after.tx.to_string(),
                        &after.id,
                        &i64::from(limit),
                        &self.writer,
                    ],
                )
                .await?;
            let mut cursor = after;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                cursor = super::FeedCursor {
                    tx: r.try_get(0)?,
                    id: r.try_get(1)?,
                };
                let Some(body) = r.try_get::<_, Option<&str>>(4)? else {
                    continue;
                };
                out.push(IngestRow {
                    region: r.try_get(2)?,
                    received_ms: r.try_get(3)?,
                    result: serde_json::from_str(body).map_err(|e| corrupt("result body", e))?,
                });
            }
            Ok((out, cursor))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lift(s: &str) -> (String, Option<String>, bool) {
        lift_tls_params(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn key_value_sslrootcert_may_be_quoted_with_a_space_in_it() {
        let (rest, root, verify) = lift(
            "host=db.example sslmode=verify-full sslrootcert='/etc/my certs/ca.pem' dbname=vantage",
        );
        assert_eq!(rest, "host=db.example dbname=vantage");
        assert_eq!(root.as_deref(), Some("/etc/my certs/ca.pem"));
        assert!(verify);
    }

    #[test]
    fn key_value_escapes_are_undone_when_lifted_and_redone_when_passed_on() {
        let (rest, root, verify) =
            lift(r"sslrootcert='/etc/o\'brien\\ca.pem' application_name='it\'s a probe' host=db");
        assert_eq!(root.as_deref(), Some(r"/etc/o'brien\ca.pem"));
        assert!(!verify);
        assert_eq!(rest, r"application_name='it\'s a probe' host=db");
        // A backslash outside quotes escapes too, and an empty value keeps its quotes.
        let (rest, _, _) = lift(r"user=o\'brien password='' host=db");
        assert_eq!(rest, r"user='o\'brien' password='' host=db");
    }

    #[test]
    fn key_value_takes_spaces_around_the_equals_sign() {
        let (rest, root, verify) =
            lift("  host = db.example\tsslrootcert =/ca.pem  sslmode= verify-ca port =5432 ");
        assert_eq!(rest, "host=db.example port=5432");
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        assert!(verify);
        let (rest, root, verify) = lift("host = db sslmode = require");
        assert_eq!(rest, "host=db sslmode=require");
        assert_eq!(root, None);
        assert!(!verify);
    }

    #[test]
    fn what_is_passed_on_reads_back_in_tokio_postgres() {
        let url = "host = db.example user=vantage application_name='my probe' \
                   options='-c search_path=a\\\\ b' sslrootcert='/etc/my certs/ca.pem'";
        let (rest, _, _) = lift(url);
        let cfg: tokio_postgres::Config = rest.parse().unwrap_or_else(|e| panic!("{rest}: {e}"));
        assert_eq!(cfg.get_application_name(), Some("my probe"));
        assert_eq!(cfg.get_options(), Some(r"-c search_path=a\ b"));
        assert_eq!(cfg.get_user(), Some("vantage"));
    }

    #[test]
    fn a_key_value_string_that_cannot_be_read_is_refused_without_its_values() {
        for (s, want) in [
            (
                "host=db password='s3cret",
                "the quoted value of `password` has no closing `'`",
            ),
            ("host=db oops port=5432", "`oops` has no `=` after it"),
            ("host=db =s3cret", "a parameter has no name before its `=`"),
        ] {
            let e = lift_tls_params(s).expect_err(s);
            assert!(e.contains(want), "{s}: {e}");
            assert!(!e.contains("s3cret"), "{s}: {e}");
        }
        match Link::parse("host=db password='s3cret") {
            Err(StoreError::Config(e)) => {
                assert!(e.starts_with("the store URL is invalid: "), "{e}");
                assert!(!e.contains("s3cret"), "{e}");
            }
            other => panic!("an unterminated quote: {:?}", other.err()),
        }
    }

    #[test]
    fn the_url_form_is_unchanged() {
        let url = "postgresql://vantage@db.example:5432/vantage?application_name=x";
        assert_eq!(lift(url), (url.to_owned(), None, false));
        assert_eq!(
            lift("postgres://db.example/v"),
            ("postgres://db.example/v".to_owned(), None, false)
        );
        let (rest, root, verify) = lift(
            "postgresql://vantage@db.example/vantage?sslmode=verify-full\
             &sslrootcert=/etc/my%20certs/ca.pem&application_name=it%27s",
        );
        assert_eq!(
            rest,
            "postgresql://vantage@db.example/vantage?application_name=it%27s"
        );
        assert_eq!(root.as_deref(), Some("/etc/my certs/ca.pem"));
        assert!(verify);
        let (rest, root, verify) =
            lift("postgresql://db.example/v?sslmode=require&sslrootcert=/ca.pem");
        assert_eq!(rest, "postgresql://db.example/v?sslmode=require");
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        assert!(!verify);
    }
}
