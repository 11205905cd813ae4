//! `vantage-coordinator migrate --to postgresql://…`: copies a SQLite store into an empty
//! PostgreSQL database, to move an installation from one coordinator to several.
//!
//! Why it is built this way:
//! - The source is read on a read-only connection in **one read transaction**: a consistent
//!   snapshot of the file. A coordinator that still holds unexpired leases on it is running,
//!   and the copy is refused, since whatever it wrote after the snapshot would be lost.
//! - The target is brought to the latest schema by [`PostgresStore::open`], then every row
//!   goes in **one PostgreSQL transaction**, with the tables locked against writers: an error,
//!   a row count that differs from the source's, or an interrupted run leaves the target as it
//!   was. A target that already holds data is refused: merging two histories is not a copy.
//! - Per-cluster runtime state is not copied: the coordinators' heartbeats, who holds each
//!   lease, and claims on queued alerts. Each lease's **epoch** is carried over (the highest
//!   the source used, coverage included): coverage is keyed by (partition, epoch), and a new
//!   coordinator's first lease must not reuse an epoch of the old one, or its coverage would
//!   stretch the old span across the downtime and reports would count it as watched.
//! - Copied results get the feed position `tx = 2`, PostgreSQL's frozen transaction id, older
//!   than any cursor: the feed that engines follow starts above the oldest transaction running
//!   when they start, so no engine replays history as if it had just arrived.
//! - Ids keep their values, and each `BIGSERIAL` sequence is set past the highest id the
//!   source ever gave (for its `AUTOINCREMENT` tables, from `sqlite_sequence`): new rows never
//!   collide with copied ones, nor reuse the id of a deleted silence or alert.
//! - Both schemas are checked against the table list below before anything is copied: a
//!   column a later migration adds and this module does not know fails the copy instead of
//!   being dropped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use tokio_postgres::types::ToSql;

use super::postgres::{BUCKET_COLUMNS, Buckets, PgError};
use super::report::decode_buckets;
use super::{LATENCY_BUCKETS, PostgresStore, StoreError};

/// Rows per `INSERT`: large enough to amortise a round trip, small enough that one statement
/// of results (a few KB each) stays a few MB.
const BATCH: usize = 2_000;

/// The feed position of every copied result: PostgreSQL's `FrozenTransactionId`, below every
/// cursor `ResultFeed::feed_start` can return.
const FROZEN_TX: &str = "'2'::xid8";

/// How a column is read from SQLite and written to PostgreSQL.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    Int,
    Real,
    Bytes,
    /// A latency histogram: SQLite's blob ([`decode_buckets`]), PostgreSQL's `INTEGER`
    /// column a bucket ([`BUCKET_COLUMNS`]).
    Hist,
    /// JSON text on SQLite, `JSONB` on PostgreSQL.
    Json,
}

impl Kind {
    /// The element type of the array parameter the column travels in.
    fn param_type(self) -> &'static str {
        match self {
            Self::Text | Self::Json => "text",
            Self::Hist => "int4",
            Self::Int => "int8",
            Self::Real => "float8",
            Self::Bytes => "bytea",
        }
    }

    /// The PostgreSQL columns a column of this kind named `name` is written to.
    fn targets(self, name: &'static str) -> Vec<&'static str> {
        match self {
            Self::Hist => BUCKET_COLUMNS.iter().map(String::as_str).collect(),
            _ => vec![name],
        }
    }

    /// The cast from that array element to the target column's type.
    fn cast(self) -> &'static str {
        match self {
            Self::Json => "::jsonb",
            _ => "",
        }
    }
}

/// One copied table.
#[derive(Debug)]
struct Table {
    name: &'static str,
    /// Copied columns, in the order read and written.
    columns: &'static [(&'static str, Kind)],
    /// Columns both stores have that are left at the target's default: one coordinator's.
    reset: &'static [&'static str],
    /// Columns only PostgreSQL has, and the SQL that fills them.
    filled: &'static [(&'static str, &'static str)],
    /// The read order: the primary key, cheapest to scan.
    order: &'static str,
    /// The `BIGSERIAL` column whose sequence must follow the copied ids.
    serial: Option<&'static str>,
}

use Kind::{Bytes, Hist, Int, Json, Real, Text};

/// Every table copied, parents before the tables that reference them.
const TABLES: &[Table] = &[
    Table {
        name: "probes",
        columns: &[
            ("id", Text),
            ("region", Text),
            ("labels", Text),
            ("token_hash", Bytes),
            ("created_ms", Int),
            ("revoked_ms", Int),
            ("last_seen_ms", Int),
        ],
        reset: &[],
        filled: &[],
        order: "id",
        serial: None,
    },
    Table {
        name: "results",
        columns: &[
            ("probe_id", Text),
            ("boot_id", Text),
            ("seq", Int),
            ("check_id", Text),
            ("vendor", Text),
            ("region", Text),
            ("started_ms", Int),
            ("received_ms", Int),
            ("status", Text),
            ("failure", Text),
            ("total_ms", Real),
            ("body", Text),
        ],
        reset: &[],
        // `feed_id` takes its sequence's next value, in the read order; `writer` stays NULL.
        filled: &[("tx", FROZEN_TX)],
        order: "probe_id, boot_id, seq",
        serial: None,
    },
    Table {
        name: "rollups",
        columns: &[
            ("check_id", Text),
            ("probe_id", Text),
            ("minute_ms", Int),
            ("region", Text),
            ("count", Int),
            ("failures", Int),
            ("slow", Int),
            ("by_kind", Json),
            ("latency", Hist),
            ("probe_errors", Int),
        ],
        reset: &[],
        filled: &[],
        order: "check_id, minute_ms, probe_id",
        serial: None,
    },
    Table {
        name: "rollups_10min",
        columns: &[
            ("check_id", Text),
            ("start_ms", Int),
            ("region", Text),
            ("count", Int),
            ("failures", Int),
            ("probe_errors", Int),
            ("slow", Int),
            ("latency", Hist),
        ],
        reset: &[],
        filled: &[],
        order: "check_id, start_ms, region",
        serial: None,
    },
    Table {
        name: "rollups_hourly",
        columns: &[
            ("check_id", Text),
            ("hour_ms", Int),
            ("region", Text),
            ("count", Int),
            ("failures", Int),
            ("probe_errors", Int),
            ("slow", Int),
            ("latency", Hist),
        ],
        reset: &[],
        filled: &[],
        order: "check_id, hour_ms, region",
        serial: None,
    },
    Table {
        name: "rollups_daily",
        columns: &[
            ("check_id", Text),
            ("day_ms", Int),
            ("region", Text),
            ("count", Int),
            ("failures", Int),
            ("probe_errors", Int),
            ("slow", Int),
            ("latency", Hist),
        ],
        reset: &[],
        filled: &[],
        order: "check_id, day_ms, region",
        serial: None,
    },
    Table {
        name: "check_states",
        columns: &[("check_id", Text), ("state", Text), ("updated_ms", Int)],
        reset: &[],
        filled: &[],
        order: "check_id",
        serial: None,
    },
    Table {
        name: "vendor_states",
        columns: &[("vendor", Text), ("status", Text), ("updated_ms", Int)],
        reset: &[],
        filled: &[],
        order: "vendor",
        serial: None,
    },
    Table {
        name: "probe_health",
        columns: &[("probe_id", Text), ("health", Text), ("updated_ms", Int)],
        reset: &[],
        filled: &[],
        order: "probe_id",
        serial: None,
    },
    Table {
        name: "transitions",
        columns: &[
            ("id", Int),
            ("check_id", Text),
            ("vendor", Text),
            ("at_ms", Int),
            ("body", Text),
        ],
        reset: &[],
        filled: &[],
        order: "id",
        serial: Some("id"),
    },
    Table {
        name: "incidents",
        columns: &[
            ("id", Int),
            ("subject_kind", Text),
            ("subject", Text),
            ("state", Text),
            ("summary", Text),
            ("opened_ms", Int),
            ("updated_ms", Int),
            ("resolved_ms", Int),
            ("detail", Text),
            ("opened_state", Text),
            ("clear_since_ms", Int),
            ("flaps", Int),
            ("version", Int),
        ],
        reset: &[],
        filled: &[],
        order: "id",
        serial: Some("id"),
    },
    Table {
        name: "incident_events",
        columns: &[
            ("incident_id", Int),
            ("seq", Int),
            ("at_ms", Int),
            ("kind", Text),
            ("state", Text),
            ("detail", Text),
        ],
        reset: &[],
        filled: &[],
        order: "incident_id, seq",
        serial: None,
    },
    Table {
        name: "deliveries",
        columns: &[
            ("incident_id", Int),
            ("receiver", Text),
            ("triggered_ms", Int),
            ("resolved_ms", Int),
            ("last_sent_ms", Int),
        ],
        reset: &[],
        filled: &[],
        order: "incident_id, receiver",
        serial: None,
    },
    Table {
        name: "outbox",
        columns: &[
            ("id", Int),
            ("incident_id", Int),
            ("receiver", Text),
            ("event", Text),
            ("payload", Text),
            ("created_ms", Int),
            ("attempts", Int),
            ("next_ms", Int),
            ("delivered_ms", Int),
            ("last_error", Text),
            ("dead_ms", Int),
        ],
        // The old coordinator is gone: its claims would only delay the alerts it held.
        reset: &["claimed_by", "claim_until_ms"],
        filled: &[],
        order: "id",
        serial: Some("id"),
    },
    Table {
        name: "runs",
        columns: &[
            ("id", Int),
            ("vendor", Text),
            ("label", Text),
            ("suite", Text),
            ("checks", Text),
            ("regions", Text),
            ("probes", Text),
            ("created_ms", Int),
            ("deadline_ms", Int),
        ],
        reset: &[],
        filled: &[],
        order: "id",
        serial: Some("id"),
    },
    Table {
        name: "run_results",
        columns: &[
            ("run_id", Int),
            ("check_id", Text),
            ("probe_id", Text),
            ("region", Text),
            ("received_ms", Int),
            ("body", Text),
        ],
        reset: &[],
        filled: &[],
        order: "run_id, check_id, probe_id",
        serial: None,
    },
    Table {
        name: "silences",
        columns: &[
            ("id", Int),
            ("vendor", Text),
            ("check_id", Text),
            ("region", Text),
            ("starts_ms", Int),
            ("ends_ms", Int),
            ("comment", Text),
            ("created_by", Text),
            ("created_ms", Int),
        ],
        reset: &[],
        filled: &[],
        order: "id",
        serial: Some("id"),
    },
    Table {
        name: "vendor_history",
        columns: &[
            ("id", Int),
            ("vendor", Text),
            ("region", Text),
            ("state", Text),
            ("at_ms", Int),
        ],
        reset: &[],
        filled: &[],
        order: "id",
        serial: Some("id"),
    },
    Table {
        name: "coverage",
        columns: &[
            ("part", Int),
            ("epoch", Int),
            ("node", Text),
            ("from_ms", Int),
            ("to_ms", Int),
        ],
        reset: &[],
        filled: &[],
        order: "part, epoch",
        serial: None,
    },
];

/// Tables of both stores that are not copied, and why.
pub const NOT_COPIED: &[(&str, &str)] = &[
    (
        "coordinators",
        "the old coordinator's heartbeats: each coordinator announces itself",
    ),
    (
        "leases",
        "who evaluates what is decided afresh; each partition's epoch is carried over",
    ),
    ("schema_version", "the target keeps its own"),
];

/// The names of the tables copied, in copy order.
pub fn copied_tables() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|t| t.name)
}

/// Why a migration did not happen. Nothing is committed to the target in any case.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// No SQLite store at the path.
    #[error(
        "no SQLite store at {}: point --config or --data-dir at the coordinator's data (its `vantage.db`)",
        .0.display()
    )]
    NoSource(PathBuf),
    /// The SQLite store could not be read.
    #[error("cannot read the SQLite store {}: {source}", path.display())]
    Source {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// The SQLite store is at another schema version than this build writes.
    #[error(
        "the SQLite store {} is at schema version {found} and this coordinator's is {expected}: {hint}",
        path.display()
    )]
    SourceVersion {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// This build's.
        expected: i64,
        /// What to do.
        hint: &'static str,
    },
    /// A coordinator holds leases on the SQLite store: it is running.
    #[error(
        "a coordinator (`{node}`) is using {}: it holds leases for {remaining_s:.1} s more; stop it \
         first (e.g. `systemctl stop vantage-coordinator`), or what it writes after the copy is lost",
        path.display()
    )]
    CoordinatorRunning {
        /// The database file.
        path: PathBuf,
        /// The lease holder.
        node: String,
        /// How long its leases still run (s).
        remaining_s: f64,
    },
    /// A schema is not the one this module copies.
    #[error("{store}'s schema is not the one migrate knows: {detail}")]
    Schema {
        /// `SQLite` or `PostgreSQL`.
        store: &'static str,
        /// What differs.
        detail: String,
    },
    /// The target already holds data.
    #[error(
        "{target} already holds data (in {}): migrate copies into an empty database only; \
         create a new one (e.g. `createdb -O vantage vantage`) and give its URL to --to",
        tables.join(", ")
    )]
    TargetNotEmpty {
        /// The target, without its password.
        target: String,
        /// The tables with rows.
        tables: Vec<String>,
    },
    /// The target's URL does not parse.
    #[error(
        "--to is not a PostgreSQL URL like `postgresql://vantage@db.example:5432/vantage`: {0}"
    )]
    BadUrl(String),
    /// The target cannot be reached or refuses the login.
    #[error("cannot connect to {target}: {reason}")]
    Unreachable {
        /// The target, without its password.
        target: String,
        /// Why, in full (refused, timed out, authentication failed, no such database).
        reason: String,
    },
    /// PostgreSQL failed.
    #[error("{0}")]
    Target(StoreError),
    /// After the copy, a table's rows in the target differ from the source's.
    #[error(
        "table {table}: {source_rows} rows in the SQLite store, {copied} copied, {target_rows} in PostgreSQL; nothing was committed"
    )]
    Count {
        /// The table.
        table: &'static str,
        /// Rows in the source snapshot.
        source_rows: u64,
        /// Rows inserted.
        copied: u64,
        /// Rows the target counts.
        target_rows: u64,
    },
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Target(PgError::Db(e).into())
    }
}

/// Connects once to the target and says why not, in full: the store's connection pool
/// reports only that a connection failed, not whether it was refused, timed out or had its
/// password rejected. Returns the target without its password.
pub fn reach(url: &str, password: Option<&str>) -> Result<String, MigrateError> {
    let mut link = super::postgres::Link::parse(url).map_err(|e| match e {
        StoreError::Config(why) => MigrateError::BadUrl(why),
        e => MigrateError::BadUrl(e.to_string()),
    })?;
    if let Some(p) = password {
        link.cfg.password(p);
    }
    if link.cfg.get_connect_timeout().is_none() {
        link.cfg.connect_timeout(std::time::Duration::from_secs(5));
    }
    let target = super::postgres::target_of(&link.cfg);
    let unreachable = |e: tokio_postgres::Error| MigrateError::Unreachable {
        target: target.clone(),
        reason: match e.as_db_error() {
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => {
                let mut s = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(inner) = source {
                    s.push_str(": ");
                    s.push_str(&inner.to_string());
                    source = inner.source();
                }
                s
            }
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| MigrateError::Unreachable {
            target: target.clone(),
            reason: format!("cannot start a runtime: {e}"),
        })?;
    rt.block_on(async {
        let (client, driver) = link.connect().await.map_err(unreachable)?;
        client.simple_query("SELECT 1").await.map_err(unreachable)?;
        drop(client);
        let _ = driver.await;
        Ok(target.clone())
    })
}

/// Rows copied so far of one table; reported after every batch and at the end of the table.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// The table.
    pub table: &'static str,
    /// Rows copied so far.
    pub copied: u64,
    /// Rows in the source.
    pub total: u64,
}

/// What a migration copied, once committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Rows per table, in copy order; the target counted the same.
    pub tables: Vec<(&'static str, u64)>,
    /// The highest lease epoch carried over.
    pub max_epoch: i64,
}

impl Summary {
    /// Rows copied in all.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// A SQLite store, read in one read transaction: every read sees the same snapshot.
#[derive(Debug)]
pub struct SqliteSource {
    path: PathBuf,
    conn: Connection,
    version: i64,
    /// Rows per table of [`TABLES`], in the snapshot.
    counts: Vec<u64>,
}

impl SqliteSource {
    /// Opens the store at `path` read-only, takes its snapshot, and checks that it can be
    /// copied: the schema this build writes, and no coordinator holding leases at `now_ms`.
    pub fn open(path: &Path, now_ms: i64) -> Result<Self, MigrateError> {
        if !path.is_file() {
            return Err(MigrateError::NoSource(path.to_owned()));
        }
        let fail = |e: rusqlite::Error| MigrateError::Source {
            path: path.to_owned(),
            source: e.into(),
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(fail)?;
        // Deferred: the first read below takes the snapshot, and the transaction keeps it.
        conn.execute_batch("BEGIN").map_err(fail)?;
        let tables = sqlite_tables(&conn).map_err(fail)?;
        if !tables.contains("schema_version") {
            return Err(MigrateError::Source {
                path: path.to_owned(),
                source: StoreError::Corrupt(
                    "no `schema_version` table: not a Vantage store".into(),
                ),
            });
        }
        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(fail)?
            .unwrap_or(0);
        let expected = super::sqlite::SCHEMA_VERSION;
        if version != expected {
            return Err(MigrateError::SourceVersion {
                path: path.to_owned(),
                found: version,
                expected,
                hint: if version < expected {
                    "open it once with this version (any command that opens the store \
                     upgrades it, e.g. `vantage-coordinator probe list` with the same --config), \
                     then migrate"
                } else {
                    "migrate with the coordinator version that wrote it"
                },
            });
        }
        let running: Option<(String, i64)> = conn
            .query_row(
                "SELECT holder, expires_ms FROM leases WHERE holder IS NOT NULL AND expires_ms > ?1
                 ORDER BY expires_ms DESC LIMIT 1",
                [now_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(fail)?;
        if let Some((node, expires_ms)) = running {
            return Err(MigrateError::CoordinatorRunning {
                path: path.to_owned(),
                node,
                remaining_s: (expires_ms - now_ms) as f64 / 1000.0,
            });
        }
        check_sqlite_schema(&conn, &tables).map_err(|e| match e {
            SchemaCheck::Sqlite(e) => fail(e),
            SchemaCheck::Differs(detail) => MigrateError::Schema {
                store: "the SQLite store",
                detail,
            },
        })?;
        let counts = TABLES
            .iter()
            .map(|t| {
                conn.query_row(&format!("SELECT COUNT(*) FROM {}", t.name), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n.max(0) as u64)
            })
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        Ok(Self {
            path: path.to_owned(),
            conn,
            version,
            counts,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its schema version.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Rows per copied table in the snapshot, in copy order.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        TABLES
            .iter()
            .map(|t| t.name)
            .zip(self.counts.iter().copied())
            .collect()
    }

    /// Copies the snapshot into `target` (opened, so at the latest schema) in one
    /// transaction, which commits only if the target is empty beforehand and counts as many
    /// rows as the snapshot in every table afterwards.
    pub fn copy_into(
        &self,
        target: &PostgresStore,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Summary, MigrateError> {
        target
            .run(async |c| Ok(self.copy(c, target.target(), progress).await))
            .map_err(MigrateError::Target)?
    }

    fn fail(&self, e: impl Into<StoreError>) -> MigrateError {
        MigrateError::Source {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    async fn copy(
        &self,
        c: &mut deadpool_postgres::Client,
        target: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Summary, MigrateError> {
        let tx = c.transaction().await?;
        // The store's connections end a transaction idle for a few seconds; this one waits on
        // the source between statements, which a cold disk may make slower.
        tx.batch_execute(
            "SET LOCAL idle_in_transaction_session_timeout = '60s'; SET LOCAL lock_timeout = '10s'",
        )
        .await?;
        check_postgres_schema(&tx).await?;
        let mut locked: Vec<&str> = copied_tables().collect();
        locked.extend(NOT_COPIED.iter().map(|(t, _)| *t));
        // Writers wait until the copy commits; a second migration finds the data then.
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            locked.join(", ")
        ))
        .await?;
        let mut held = Vec::new();
        for t in copied_tables().chain(["coordinators"]) {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {t})");
            if tx.query_one(&sql, &[]).await?.try_get::<_, bool>(0)? {
                held.push(t.to_owned());
            }
        }
        let leases_used: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM leases WHERE holder IS NOT NULL OR epoch <> 0)",
                &[],
            )
            .await?
            .try_get(0)?;
        if leases_used {
            held.push("leases".to_owned());
        }
        if !held.is_empty() {
            return Err(MigrateError::TargetNotEmpty {
                target: target.to_owned(),
                tables: held,
            });
        }

        let mut tables = Vec::with_capacity(TABLES.len());
        for (t, &total) in TABLES.iter().zip(&self.counts) {
            let copied = self.copy_table(&tx, t, total, progress).await?;
            let target_rows: i64 = tx
                .query_one(&format!("SELECT COUNT(*) FROM {}", t.name), &[])
                .await?
                .try_get(0)?;
            if copied != total || target_rows.max(0) as u64 != total {
                return Err(MigrateError::Count {
                    table: t.name,
                    source_rows: total,
                    copied,
                    target_rows: target_rows.max(0) as u64,
                });
            }
            tables.push((t.name, copied));
        }
        for t in TABLES {
            if let Some(col) = t.serial {
                let next = self.next_id(t.name, col)?;
                tx.execute(
                    "SELECT setval(pg_get_serial_sequence($1, $2), $3, false)",
                    &[&t.name, &col, &next],
                )
                .await?;
            }
        }
        let max_epoch = self.carry_epochs(&tx).await?;
        tx.commit().await?;
        Ok(Summary { tables, max_epoch })
    }

    /// Copies one table in batches; returns the rows inserted.
    async fn copy_table(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        t: &Table,
        total: u64,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<u64, MigrateError> {
        let insert = tx.prepare(&insert_sql(t)).await?;
        let columns: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
        let mut read = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM {} ORDER BY {}",
                columns.join(", "),
                t.name,
                t.order
            ))
            .map_err(|e| self.fail(e))?;
        let mut rows = read.query([]).map_err(|e| self.fail(e))?;
        let mut batch: Vec<Column> = t.columns.iter().map(|(_, k)| Column::new(*k)).collect();
        let mut pending = 0usize;
        let mut copied = 0u64;
        loop {
            let row = rows.next().map_err(|e| self.fail(e))?;
            if let Some(row) = row {
                for (i, ((name, kind), col)) in t.columns.iter().zip(&mut batch).enumerate() {
                    let v = row.get_ref(i).map_err(|e| self.fail(e))?;
                    col.push(*kind, v).map_err(|why| {
                        self.fail(StoreError::Corrupt(format!("{}.{name}: {why}", t.name)))
                    })?;
                }
                pending += 1;
                if pending < BATCH {
                    continue;
                }
            }
            if pending > 0 {
                let params: Vec<&(dyn ToSql + Sync)> =
                    batch.iter().flat_map(Column::params).collect();
                copied += tx.execute(&insert, &params).await?;
                batch.iter_mut().for_each(Column::clear);
                pending = 0;
                if copied < total {
                    progress(Progress {
                        table: t.name,
                        copied,
                        total,
                    });
                }
            }
            if row.is_none() {
                break;
            }
        }
        progress(Progress {
            table: t.name,
            copied,
            total,
        });
        Ok(copied)
    }

    /// The next id of a table: past the highest stored, and past the highest `AUTOINCREMENT`
    /// ever gave.
    fn next_id(&self, table: &str, col: &str) -> Result<i64, MigrateError> {
        let max: i64 = self
            .conn
            .query_row(
                &format!("SELECT COALESCE(MAX({col}), 0) FROM {table}"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.fail(e))?;
        let given: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        Ok(max.max(given.unwrap_or(0)) + 1)
    }

    /// Sets each partition's lease epoch to the highest the source used; returns the highest.
    async fn carry_epochs(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<i64, MigrateError> {
        let epochs: Vec<(i64, i64)> = self
            .conn
            .prepare(
                "SELECT part, MAX(epoch, COALESCE((SELECT MAX(c.epoch) FROM coverage c WHERE c.part = leases.part), 0))
                 FROM leases ORDER BY part",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
            })
            .map_err(|e| self.fail(e))?;
        let set = tx
            .prepare("UPDATE leases SET epoch = $2 WHERE part = $1")
            .await?;
        for (part, epoch) in &epochs {
            let part = i32::try_from(*part)
                .map_err(|e| self.fail(StoreError::Corrupt(format!("leases.part {part}: {e}"))))?;
            if tx.execute(&set, &[&part, epoch]).await? != 1 {
                return Err(MigrateError::Schema {
                    store: "PostgreSQL",
                    detail: format!("no lease for partition {part}"),
                });
            }
        }
        Ok(epochs.iter().map(|(_, e)| *e).max().unwrap_or(0))
    }
}

/// `INSERT … SELECT … FROM unnest($1::text[], …)`: one statement per batch, each column an
/// array parameter.
fn insert_sql(t: &Table) -> String {
    // A histogram travels as one array a bucket, each to its own column.
    let names: Vec<String> = t
        .columns
        .iter()
        .flat_map(|(c, k)| k.targets(c))
        .map(|c| format!("\"{c}\""))
        .collect();
    let mut into = names.clone();
    into.extend(t.filled.iter().map(|(c, _)| format!("\"{c}\"")));
    let mut values: Vec<String> = t
        .columns
        .iter()
        .flat_map(|(c, k)| {
            k.targets(c)
                .into_iter()
                .map(move |c| format!("\"{c}\"{}", k.cast()))
        })
        .collect();
    values.extend(t.filled.iter().map(|(_, sql)| (*sql).to_owned()));
    let arrays: Vec<String> = t
        .columns
        .iter()
        .flat_map(|(c, k)| k.targets(c).into_iter().map(move |_| k.param_type()))
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}[]", i + 1))
        .collect();
    format!(
        "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS s({})",
        t.name,
        into.join(", "),
        values.join(", "),
        arrays.join(", "),
        names.join(", ")
    )
}

/// One column of a batch.
enum Column {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Hist(Box<Buckets>),
}

impl Column {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Text | Kind::Json => Self::Text(Vec::with_capacity(BATCH)),
            Kind::Hist => Self::Hist(Box::default()),
            Kind::Int => Self::Int(Vec::with_capacity(BATCH)),
            Kind::Real => Self::Real(Vec::with_capacity(BATCH)),
            Kind::Bytes => Self::Bytes(Vec::with_capacity(BATCH)),
        }
    }

    /// Appends a SQLite value; a value of another type than the column's is an error (the
    /// tables are `STRICT`, so only a damaged file has one).
    fn push(&mut self, kind: Kind, v: ValueRef<'_>) -> Result<(), String> {
        let wrong = |v: ValueRef<'_>| format!("a {} where {kind:?} was expected", v.data_type());
        match (self, v) {
            (Self::Text(c), ValueRef::Null) => c.push(None),
            (Self::Int(c), ValueRef::Null) => c.push(None),
            (Self::Real(c), ValueRef::Null) => c.push(None),
            (Self::Bytes(c), ValueRef::Null) => c.push(None),
            (Self::Hist(c), ValueRef::Blob(b)) => {
                let counts: [u64; LATENCY_BUCKETS] = decode_buckets(b)
                    .map_err(|e| e.to_string())?
                    .try_into()
                    .map_err(|v: Vec<u64>| format!("{} buckets, not {LATENCY_BUCKETS}", v.len()))?;
                c.push(&counts);
            }
            (Self::Text(c), ValueRef::Text(t)) => {
                let s =
                    std::str::from_utf8(t).map_err(|e| format!("text that is not UTF-8: {e}"))?;
                c.push(Some(s.to_owned()));
            }
            (Self::Int(c), ValueRef::Integer(n)) => c.push(Some(n)),
            (Self::Real(c), ValueRef::Real(f)) => c.push(Some(f)),
            (Self::Real(c), ValueRef::Integer(n)) => c.push(Some(n as f64)),
            (Self::Bytes(c), ValueRef::Blob(b)) => c.push(Some(b.to_vec())),
            (_, v) => return Err(wrong(v)),
        }
        Ok(())
    }

    /// The array parameters the column travels in: one, or a histogram's one a bucket.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        match self {
            Self::Text(c) => vec![c],
            Self::Int(c) => vec![c],
            Self::Real(c) => vec![c],
            Self::Bytes(c) => vec![c],
            Self::Hist(c) => c.args().collect(),
        }
    }

    fn clear(&mut self) {
        match self {
            Self::Text(c) => c.clear(),
            Self::Int(c) => c.clear(),
            Self::Real(c) => c.clear(),
            Self::Bytes(c) => c.clear(),
            Self::Hist(c) => c.clear(),
        }
    }
}

/// The tables of a SQLite store, SQLite's own aside.
fn sqlite_tables(conn: &Connection) -> Result<BTreeSet<String>, rusqlite::Error> {
    conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?
    .query_map([], |r| r.get(0))?
    .collect()
}

enum SchemaCheck {
    Sqlite(rusqlite::Error),
    Differs(String),
}

/// The columns a table must have: copied, reset, and (on PostgreSQL) filled.
fn expected_columns(t: &Table, postgres: bool) -> BTreeSet<&'static str> {
    let mut cols: BTreeSet<&str> = if postgres {
        t.columns.iter().flat_map(|(c, k)| k.targets(c)).collect()
    } else {
        t.columns.iter().map(|(c, _)| *c).collect()
    };
    cols.extend(t.reset);
    if postgres {
        cols.extend(t.filled.iter().map(|(c, _)| *c));
        if t.name == "results" {
            // `feed_id` takes its sequence's next value; `writer` stays NULL: no coordinator
            // wrote the copied results, and none follows them (they are below every cursor).
            cols.extend(["feed_id", "writer"]);
        }
    }
    cols
}

/// What differs between a table's columns and the expected ones, if anything.
fn column_difference(
    table: &str,
    expected: &BTreeSet<&str>,
    found: &BTreeSet<String>,
) -> Option<String> {
    let missing: Vec<&str> = expected
        .iter()
        .filter(|c| !found.contains(**c))
        .copied()
        .collect();
    let unknown: Vec<&str> = found
        .iter()
        .filter(|c| !expected.contains(c.as_str()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() && unknown.is_empty() {
        return None;
    }
    Some(format!(
        "table {table}: columns missing [{}], not known to migrate [{}]",
        missing.join(", "),
        unknown.join(", ")
    ))
}

/// Every table of the SQLite store is copied or deliberately left, with the columns
/// [`TABLES`] names.
fn check_sqlite_schema(conn: &Connection, tables: &BTreeSet<String>) -> Result<(), SchemaCheck> {
    let known: BTreeSet<&str> = copied_tables()
        .chain(NOT_COPIED.iter().map(|(t, _)| *t))
        .collect();
    let unknown: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|t| !known.contains(t))
        .collect();
    if !unknown.is_empty() {
        return Err(SchemaCheck::Differs(format!(
            "tables not known to migrate: {}",
            unknown.join(", ")
        )));
    }
    for t in TABLES {
        let found: BTreeSet<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .and_then(|mut s| s.query_map([t.name], |r| r.get(0))?.collect())
            .map_err(SchemaCheck::Sqlite)?;
        if let Some(d) = column_difference(t.name, &expected_columns(t, false), &found) {
            return Err(SchemaCheck::Differs(d));
        }
    }
    Ok(())
}

/// The target's copied tables have the columns [`TABLES`] names, and those only PostgreSQL has.
async fn check_postgres_schema(
    tx: &deadpool_postgres::Transaction<'_>,
) -> Result<(), MigrateError> {
    let stmt = tx
        .prepare(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .await?;
    for t in TABLES {
        let found: BTreeSet<String> = tx
            .query(&stmt, &[&t.name])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if let Some(d) = column_difference(t.name, &expected_columns(t, true), &found) {
            return Err(MigrateError::Schema {
                store: "PostgreSQL",
                detail: d,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Synchronous};

    #[test]
    fn every_sqlite_table_and_column_is_copied_or_left_on_purpose() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("v.db");
        drop(SqliteStore::open(&path, Synchronous::Normal).expect("open"));
        let source = SqliteSource::open(&path, 0).expect("a fresh store can be copied");
        assert_eq!(source.version(), crate::store::sqlite::SCHEMA_VERSION);
        assert!(
            source
                .counts()
                .iter()
                .all(|(t, n)| *n == 0 || *t == "coverage")
        );
    }

    #[test]
    fn inserts_unnest_one_array_per_column() {
        let t = TABLES
            .iter()
            .find(|t| t.name == "rollups_hourly")
            .expect("table");
        let cols = "\"check_id\", \"hour_ms\", \"region\", \"count\", \"failures\", \"probe_errors\", \"slow\", \"b0\", \"b1\"";
        let sql = insert_sql(t);
        assert!(
            sql.starts_with(&format!("INSERT INTO rollups_hourly ({cols}, \"b2\""))
                && sql.contains(&format!("\"b39\") SELECT {cols}, \"b2\""))
                && sql.contains(
                    "FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int4[], $9::int4[]"
                )
                && sql.ends_with(&format!("$47::int4[]) AS s({cols}, \"b2\", \"b3\", \"b4\", \"b5\", \"b6\", \"b7\", \"b8\", \"b9\", \"b10\", \"b11\", \"b12\", \"b13\", \"b14\", \"b15\", \"b16\", \"b17\", \"b18\", \"b19\", \"b20\", \"b21\", \"b22\", \"b23\", \"b24\", \"b25\", \"b26\", \"b27\", \"b28\", \"b29\", \"b30\", \"b31\", \"b32\", \"b33\", \"b34\", \"b35\", \"b36\", \"b37\", \"b38\", \"b39\")")),
            "{sql}"
        );
        let r = TABLES.iter().find(|t| t.name == "results").expect("table");
        let sql = insert_sql(r);
        assert!(
            sql.contains("\"body\", \"tx\") SELECT")
                && sql.contains("\"body\", '2'::xid8 FROM unnest"),
            "{sql}"
        );
    }
}
