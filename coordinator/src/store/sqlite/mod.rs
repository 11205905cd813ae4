//! [`Store`] on SQLite: WAL mode, an explicit `synchronous` setting, one writer connection
//! and a small pool of reader connections, so reads never wait behind a commit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use vantage_checks::result::{CheckResult, Status};

mod lease;
mod report;
mod run;
mod schema;
mod state;

use self::schema::MIGRATIONS;
use super::report::{Tier, Totals, decode_buckets, encode_buckets};
use super::{IngestRow, InsertOutcome, ProbeRecord, ResultQuery, Rollup, Store, StoreError};
use crate::ingest::unix_ms;

/// The schema version this build brings a SQLite store to.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Reader connections kept open between reads: as many as a large report's reader threads,
/// so that their page caches stay warm.
const READERS_KEPT: usize = report::REPORT_THREADS;

/// The clock leases and fences are read by: on SQLite, this machine's (one coordinator).
pub(super) fn now_ms() -> i64 {
    unix_ms(time::OffsetDateTime::now_utc())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Backend {
            backend: "sqlite",
            message: e.to_string(),
        }
    }
}

/// SQLite's `synchronous` setting for the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// fsync at every commit: an acknowledged batch survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints only: an acknowledged batch survives a process crash (kill -9)
    /// but may be lost with the machine's power.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    sync: Synchronous,
    /// Fault injection for tests: this many next writes fail as on a full disk.
    failing_writes: std::sync::atomic::AtomicU32,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Self, StoreError> {
        let writer = Connection::open(path)?;
        configure(&writer, sync)?;
        register_functions(&writer)?;
        migrate(&writer)?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            sync,
            failing_writes: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Runs `f` on a pooled reader connection.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.read_mut(|conn| f(conn))
    }

    /// [`SqliteStore::read`] for a caller that sets the connection up (a progress handler);
    /// it must leave it as it found it.
    pub(super) fn read_mut<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c
            }
        };
        let out = f(&mut conn);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < READERS_KEPT {
            pool.push(conn);
        }
        out
    }

    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use std::sync::atomic::Ordering;
        let injected = self
            .failing_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if injected {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("database or disk is full (injected by a test)".into()),
            )
            .into());
        }
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    /// Fault injection for tests: the next `n` writes fail as they would on a full disk.
    #[doc(hidden)]
    pub fn fail_next_writes(&self, n: u32) {
        self.failing_writes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fault injection for tests: holds every write (the writer's connection) until the guard
    /// is dropped, as a slow disk would.
    #[doc(hidden)]
    pub fn hold_writes(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `synchronous` setting in force.
    pub fn synchronous(&self) -> Synchronous {
        self.sync
    }
}

/// The raw results query for `q`, and its arguments.
fn results_sql(q: &ResultQuery) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::from("SELECT body FROM results WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut filter = |col: &str, v: &Option<String>| {
        if let Some(v) = v {
            args.push(v.clone().into());
            sql.push_str(&format!(" AND {col} = ?{}", args.len()));
        }
    };
    filter("check_id", &q.check);
    filter("probe_id", &q.probe);
    filter("vendor", &q.vendor);
    filter("region", &q.region);
    if let Some(s) = q.since_ms {
        args.push(s.into());
        sql.push_str(&format!(" AND started_ms >= ?{}", args.len()));
    }
    if let Some(u) = q.until_ms {
        args.push(u.into());
        sql.push_str(&format!(" AND started_ms < ?{}", args.len()));
    }
    args.push(i64::from(q.limit).into());
    sql.push_str(&format!(
        " ORDER BY started_ms DESC, probe_id, seq DESC LIMIT ?{}",
        args.len()
    ));
    (sql, args)
}

fn configure(conn: &Connection, sync: Synchronous) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "could not switch to WAL mode (got {mode})"
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
        sync.pragma()
    ))?;
    Ok(())
}

/// SQL functions the writer's statements use: `vantage_hist_add(a, b)` adds two latency
/// histograms bucket by bucket, so coarse rollups merge in one `INSERT … ON CONFLICT`.
fn register_functions(conn: &Connection) -> Result<(), StoreError> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "vantage_hist_add",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let mut sum = Totals::default();
            for i in 0..2 {
                let blob = ctx.get_raw(i).as_blob().map_err(|e| {
                    rusqlite::Error::UserFunctionError(
                        format!("vantage_hist_add: argument {i}: {e}").into(),
                    )
                })?;
                sum.add_latency_blob(blob)
                    .map_err(|e| rusqlite::Error::UserFunctionError(e.to_string().into()))?;
            }
            Ok(encode_buckets(&sum.latency))
        },
    )?;
    Ok(())
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT",
    )?;
    let current: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::TooNew {
            found: current,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
        tracing::info!(version, "applied store migration");
    }
    Ok(())
}

const INSERT_RESULT: &str = "INSERT OR IGNORE INTO results \
    (probe_id, boot_id, seq, check_id, vendor, region, started_ms, received_ms, status, failure, total_ms, body) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// The key of a rollup row.
type RollupKey = (String, String, i64);

impl Store for SqliteStore {
    fn insert_batches(&self, batches: &[Vec<IngestRow>]) -> Result<Vec<InsertOutcome>, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let mut outcomes = Vec::with_capacity(batches.len());
            let mut fresh: HashMap<RollupKey, (String, Vec<&CheckResult>)> = HashMap::new();
            let mut seen: HashMap<&str, i64> = HashMap::new();
            {
                let mut insert = tx.prepare_cached(INSERT_RESULT)?;
                for rows in batches {
                    let mut outcome = InsertOutcome::default();
                    for row in rows {
                        let r = &row.result;
                        let seen_ms = seen.entry(r.probe_id.as_str()).or_insert(row.received_ms);
                        *seen_ms = (*seen_ms).max(row.received_ms);
                        let body = serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        let started_ms = unix_ms(r.started_at);
                        let n = insert.execute(params![
                            r.probe_id,
                            r.boot_id,
                            r.seq as i64,
                            r.check_id,
                            r.vendor,
                            row.region,
                            started_ms,
                            row.received_ms,
                            r.status.as_label(),
                            r.failure.map(|f| f.as_label()),
                            r.timings.total_ms,
                            body,
                        ])?;
                        if n == 1 {
                            outcome.inserted += 1;
                            let minute = started_ms - started_ms.rem_euclid(60_000);
                            fresh
                                .entry((r.check_id.clone(), r.probe_id.clone(), minute))
                                .or_insert_with(|| (row.region.clone(), Vec::new()))
                                .1
                                .push(r);
                        } else {
                            outcome.duplicates += 1;
                        }
                    }
                    outcomes.push(outcome);
                }
            }
            // Coarse tiers per (check, region, period): one upsert per key per commit.
            let mut coarse: HashMap<(Tier, &str, &str, i64), Totals> = HashMap::new();
            for ((check, probe, minute), (region, results)) in &fresh {
                let delta = merge_rollup(&tx, check, probe, *minute, region, results)?;
                for tier in [Tier::TenMinutes, Tier::Hour, Tier::Day] {
                    let start = minute - minute.rem_euclid(tier.ms());
                    coarse
                        .entry((tier, check.as_str(), region.as_str(), start))
                        .or_default()
                        .add(&delta);
                }
            }
            for ((tier, check, region, start), t) in coarse {
                merge_coarse(&tx, tier, check, region, start, &t)?;
            }
            // A probe that pushes is a probe seen, whether or not it also pulls its config.
            for (probe, ms) in seen {
                tx.prepare_cached("UPDATE probes SET last_seen_ms = MAX(COALESCE(last_seen_ms, 0), ?2) WHERE id = ?1")?
                    .execute(params![probe, ms])?;
            }
            tx.commit()?;
            Ok(outcomes)
        })
    }

    fn query_results(&self, q: &ResultQuery) -> Result<Vec<CheckResult>, StoreError> {
        self.read_mut(|conn| {
            let (sql, args) = results_sql(q);
            if let Some(why) = q.stop.reason() {
                return Err(StoreError::Stopped(why));
            }
            // SQLite asks every few thousand steps whether to go on.
            let stop = q.stop.clone();
            conn.progress_handler(4096, Some(move || stop.reason().is_some()))?;
            let out = (|| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows =
                    stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(0))?;
                rows.map(|body| {
                    let body = body?;
                    serde_json::from_str(&body)
                        .map_err(|e| StoreError::Corrupt(format!("result body: {e}")))
                })
                .collect()
            })();
            // Back to the pool as it was.
            conn.progress_handler(0, None::<fn() -> bool>)?;
            match (out, q.stop.reason()) {
                (Err(_), Some(why)) => Err(StoreError::Stopped(why)),
                (out, _) => out,
            }
        })
    }

    fn rollups(&self, check_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Rollup>, StoreError> {
        self.read(|conn| {
            // The key is (check, minute, probe): one range, already in the order wanted.
            let mut stmt = conn.prepare_cached(
                "SELECT check_id, probe_id, minute_ms, region, count, failures, slow, by_kind, latency, probe_errors
                 FROM rollups
                 WHERE check_id = ?1 AND minute_ms >= ?2 AND minute_ms < ?3
                 ORDER BY minute_ms, probe_id",
            )?;
            let rows = stmt.query_map(params![check_id, from_ms, to_ms], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Vec<u8>>(8)?,
                    r.get::<_, i64>(9)?,
                ))
            })?;
            rows.map(|row| {
                let (check_id, probe_id, minute_ms, region, count, failures, slow, by_kind, latency, probe_errors) = row?;
                Ok(Rollup {
                    check_id,
                    probe_id,
                    region,
                    minute_ms,
                    count: count as u64,
                    failures: failures as u64,
                    probe_errors: probe_errors as u64,
                    slow: slow as u64,
                    failures_by_kind: serde_json::from_str(&by_kind)
                        .map_err(|e| StoreError::Corrupt(format!("rollup by_kind: {e}")))?,
                    latency_buckets: decode_buckets(&latency)?,
                })
            })
            .collect()
        })
    }

    fn prune(&self, raw_before_ms: i64, rollups_before_ms: i64) -> Result<u64, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let n = tx.execute("DELETE FROM results WHERE started_ms < ?1", [raw_before_ms])?;
            tx.execute("DELETE FROM runs WHERE created_ms < ?1", [raw_before_ms])?;
            tx.execute(
                "DELETE FROM rollups WHERE minute_ms < ?1",
                [rollups_before_ms],
            )?;
            // A period goes when its last minute does.
            tx.execute(
                "DELETE FROM rollups_10min WHERE start_ms <= ?1 - 600000",
                [rollups_before_ms],
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
    }

    fn add_probe(&self, p: &ProbeRecord, token_hash: &[u8]) -> Result<(), StoreError> {
        self.write(|conn| {
            let labels = serde_json::to_string(&p.labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let exists: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM probes WHERE id = ?1)", [&p.id], |r| r.get(0))?;
            if exists {
                return Err(StoreError::ProbeExists(p.id.clone()));
            }
            conn.execute(
                "INSERT INTO probes (id, region, labels, token_hash, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![p.id, p.region, labels, token_hash, p.created_ms],
            )?;
            Ok(())
        })
    }

    fn list_probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, region, labels, created_ms, revoked_ms, last_seen_ms FROM probes ORDER BY id",
            )?;
            let rows = stmt.query_map([], probe_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(finish_probe)).collect()
        })
    }

    fn set_probe_token(&self, id: &str, token_hash: &[u8]) -> Result<(), StoreError> {
        self.write(|conn| {
            let n = conn.execute(
                "UPDATE probes SET token_hash = ?2, revoked_ms = NULL WHERE id = ?1",
                params![id, token_hash],
            )?;
            if n == 0 {
                Err(StoreError::NoSuchProbe(id.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    fn revoke_probe(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            let n = conn.execute(
                "UPDATE probes SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1",
                params![id, now_ms],
            )?;
            if n == 0 {
                Err(StoreError::NoSuchProbe(id.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    fn probe_by_token(&self, token_hash: &[u8]) -> Result<Option<ProbeRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, region, labels, created_ms, revoked_ms, last_seen_ms FROM probes
                 WHERE token_hash = ?1 AND revoked_ms IS NULL",
            )?;
            stmt.query_row([token_hash], probe_row)
                .optional()?
                .map(finish_probe)
                .transpose()
        })
    }

    fn touch_probe(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "UPDATE probes SET last_seen_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )?;
            Ok(())
        })
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        let wal = self.path.with_extension(format!(
            "{}-wal",
            self.path.extension().and_then(|e| e.to_str()).unwrap_or("")
        ));
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        Ok(size(&self.path) + size(&wal))
    }
}

type ProbeRow = (String, String, String, i64, Option<i64>, Option<i64>);

fn probe_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProbeRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn finish_probe(
    (id, region, labels, created_ms, revoked_ms, last_seen_ms): ProbeRow,
) -> Result<ProbeRecord, StoreError> {
    let labels: BTreeMap<String, String> = serde_json::from_str(&labels)
        .map_err(|e| StoreError::Corrupt(format!("probe labels: {e}")))?;
    Ok(ProbeRecord {
        id,
        region,
        labels,
        created_ms,
        revoked_ms,
        last_seen_ms,
    })
}

/// Adds new results to their minute rollup; returns what they added (for the coarse tiers).
fn merge_rollup(
    tx: &Transaction<'_>,
    check: &str,
    probe: &str,
    minute: i64,
    region: &str,
    results: &[&CheckResult],
) -> Result<Totals, StoreError> {
    let existing = tx
        .prepare_cached("SELECT count, failures, slow, by_kind, latency, probe_errors FROM rollups WHERE check_id = ?1 AND probe_id = ?2 AND minute_ms = ?3")?
        .query_row(params![check, probe, minute], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?, r.get::<_, Vec<u8>>(4)?, r.get::<_, i64>(5)?))
        })
        .optional()?;
    let mut delta = Totals::default();
    let mut sum = Totals::default();
    let mut by_kind = BTreeMap::<String, u64>::new();
    if let Some((c, f, s, k, l, p)) = existing {
        sum.runs = c as u64;
        sum.failures = f as u64;
        sum.slow = s as u64;
        sum.probe_errors = p as u64;
        sum.add_latency_blob(&l)?;
        by_kind = serde_json::from_str(&k)
            .map_err(|e| StoreError::Corrupt(format!("rollup by_kind: {e}")))?;
    }
    for r in results {
        delta.add_result(r);
        if r.status == Status::Fail
            && let Some(kind) = r.failure
        {
            *by_kind.entry(kind.as_label().to_owned()).or_default() += 1;
        }
    }
    sum.add(&delta);
    let by_kind =
        serde_json::to_string(&by_kind).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO rollups (check_id, probe_id, minute_ms, region, count, failures, slow, by_kind, latency, probe_errors)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        check,
        probe,
        minute,
        region,
        sum.runs as i64,
        sum.failures as i64,
        sum.slow as i64,
        by_kind,
        encode_buckets(&sum.latency),
        sum.probe_errors as i64
    ])?;
    Ok(delta)
}

/// The upsert of a row of a coarse tier.
fn upsert_coarse(tier: Tier) -> String {
    format!(
        "INSERT INTO {table} (check_id, {unit}, region, count, failures, probe_errors, slow, latency)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (check_id, {unit}, region) DO UPDATE SET
           count = count + excluded.count, failures = failures + excluded.failures,
           probe_errors = probe_errors + excluded.probe_errors, slow = slow + excluded.slow,
           latency = vantage_hist_add(latency, excluded.latency)",
        table = tier.table(),
        unit = tier.unit()
    )
}

/// [`upsert_coarse`] of each tier, indexed by tier (the minute tier's is not used: its rows
/// are read, added to and replaced).
static UPSERT_COARSE: std::sync::LazyLock<[String; 4]> =
    std::sync::LazyLock::new(|| Tier::ALL.map(upsert_coarse));

/// Adds a delta to a 10-minute, hourly or daily rollup row.
fn merge_coarse(
    tx: &Transaction<'_>,
    tier: Tier,
    check: &str,
    region: &str,
    start: i64,
    t: &Totals,
) -> Result<(), StoreError> {
    if tier == Tier::Minute {
        return Ok(());
    }
    let sql = &UPSERT_COARSE[tier as usize];
    tx.prepare_cached(sql)?.execute(params![
        check,
        start,
        region,
        t.runs as i64,
        t.failures as i64,
        t.probe_errors as i64,
        t.slow as i64,
        encode_buckets(&t.latency)
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LATENCY_BUCKETS, latency_bucket, latency_bucket_upper};
    use vantage_checks::model::CheckKind;
    use vantage_checks::result::{Facts, FailureKind, RESULT_SCHEMA_VERSION, TcpFacts, Timings};

    fn result(probe: &str, seq: u64, started_ms: i64, fail: bool) -> IngestRow {
        let started_at =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(started_ms) * 1_000_000)
                .expect("valid time");
        IngestRow {
            region: "eu".into(),
            received_ms: started_ms + 5,
            result: CheckResult {
                v: RESULT_SCHEMA_VERSION,
                check_id: "c1".into(),
                vendor: "v".into(),
                kind: CheckKind::Tcp,
                probe_id: probe.into(),
                boot_id: "b1".into(),
                seq,
                started_at,
                status: if fail { Status::Fail } else { Status::Ok },
                failure: fail.then_some(FailureKind::ConnectRefused),
                message: None,
                slow: false,
                retried: false,
                timings: Timings {
                    total_ms: 3.0 + seq as f64,
                    ..Timings::default()
                },
                facts: Facts::Tcp(TcpFacts::default()),
                truncated: None,
                run: None,
            },
        }
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("v.db"), Synchronous::Normal).expect("open");
        (dir, store)
    }

    #[test]
    fn duplicates_are_ignored_and_rollups_count_once() {
        let (_dir, s) = store();
        let batch: Vec<IngestRow> = (0..5)
            .map(|i| result("p1", i, 120_000 + i as i64 * 1000, i % 2 == 0))
            .collect();
        assert_eq!(
            s.insert_results(&batch).expect("insert"),
            InsertOutcome {
                inserted: 5,
                duplicates: 0
            }
        );
        // Re-delivery of the same batch plus one new result.
        let mut again = batch.clone();
        again.push(result("p1", 5, 181_000, false));
        assert_eq!(
            s.insert_results(&again).expect("insert"),
            InsertOutcome {
                inserted: 1,
                duplicates: 5
            }
        );

        let all = s
            .query_results(&ResultQuery {
                limit: 100,
                ..ResultQuery::default()
            })
            .expect("query");
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].seq, 5, "newest first");
        let roll = s.rollups("c1", 0, 1_000_000).expect("rollups");
        assert_eq!(roll.len(), 2);
        assert_eq!(
            (roll[0].minute_ms, roll[0].count, roll[0].failures),
            (120_000, 5, 3)
        );
        assert_eq!(roll[0].failures_by_kind.get("connect_refused"), Some(&3));
        assert_eq!(roll[0].latency_buckets.iter().sum::<u64>(), 5);
        assert_eq!((roll[1].minute_ms, roll[1].count), (180_000, 1));
    }

    #[test]
    fn filters_and_prune() {
        let (_dir, s) = store();
        let mut rows = vec![result("p1", 0, 1_000, false), result("p2", 0, 2_000, true)];
        rows[1].region = "us".into();
        s.insert_results(&rows).expect("insert");
        let q = |q: ResultQuery| {
            s.query_results(&ResultQuery { limit: 10, ..q })
                .expect("query")
                .len()
        };
        assert_eq!(
            q(ResultQuery {
                probe: Some("p2".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            q(ResultQuery {
                region: Some("eu".into()),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            q(ResultQuery {
                since_ms: Some(1_500),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            q(ResultQuery {
                until_ms: Some(1_500),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            q(ResultQuery {
                check: Some("nope".into()),
                ..Default::default()
            }),
            0
        );
        assert_eq!(s.prune(1_500, 0).expect("prune"), 1);
        assert_eq!(q(ResultQuery::default()), 1);
    }

    #[test]
    fn r12_result_queries_stop_and_filter_by_vendor_and_region_on_an_index() {
        let (_dir, s) = store();
        let rows: Vec<IngestRow> = (0..2000)
            .map(|i| result("p1", i, i as i64, false))
            .collect();
        s.insert_results(&rows).expect("insert");
        let stopped = |stop: crate::store::Stop| {
            s.query_results(&ResultQuery {
                probe: Some("nobody".into()),
                limit: 10,
                stop,
                ..ResultQuery::default()
            })
            .map(|r| r.len())
        };
        assert_eq!(stopped(crate::store::Stop::default()).expect("runs"), 0);
        let gone = crate::store::Stop::default();
        gone.cancel();
        assert!(
            matches!(
                stopped(gone),
                Err(StoreError::Stopped("its client went away"))
            ),
            "a cancelled query stops"
        );
        let late = crate::store::Stop::new(Some(std::time::Instant::now()));
        assert!(matches!(
            stopped(late),
            Err(StoreError::Stopped("it ran past its deadline"))
        ));
        // The API's vendor and region filters read an index, not the whole table.
        let plan = |q: ResultQuery| {
            let (sql, args) = results_sql(&q);
            s.read(|conn| {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows =
                    stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?.join("; "))
            })
            .expect("plan")
        };
        let by_vendor = plan(ResultQuery {
            vendor: Some("v".into()),
            limit: 10,
            ..ResultQuery::default()
        });
        assert!(by_vendor.contains("results_by_vendor"), "{by_vendor}");
        let by_region = plan(ResultQuery {
            region: Some("eu".into()),
            limit: 10,
            ..ResultQuery::default()
        });
        assert!(by_region.contains("results_by_region"), "{by_region}");
    }

    #[test]
    fn probes_register_revoke_and_authenticate() {
        let (_dir, s) = store();
        let p = ProbeRecord {
            id: "fra-1".into(),
            region: "eu".into(),
            labels: BTreeMap::from([("network".into(), "eyeball".into())]),
            created_ms: 1,
            revoked_ms: None,
            last_seen_ms: None,
        };
        s.add_probe(&p, b"hash-1").expect("add");
        assert!(matches!(
            s.add_probe(&p, b"hash-2"),
            Err(StoreError::ProbeExists(_))
        ));
        assert_eq!(
            s.probe_by_token(b"hash-1").expect("lookup"),
            Some(p.clone())
        );
        assert_eq!(s.probe_by_token(b"other").expect("lookup"), None);
        s.set_probe_token("fra-1", b"hash-3").expect("rotate");
        assert_eq!(s.probe_by_token(b"hash-1").expect("lookup"), None);
        assert!(s.probe_by_token(b"hash-3").expect("lookup").is_some());
        s.revoke_probe("fra-1", 9).expect("revoke");
        assert_eq!(s.probe_by_token(b"hash-3").expect("lookup"), None);
        assert_eq!(s.list_probes().expect("list")[0].revoked_ms, Some(9));
        assert!(matches!(
            s.revoke_probe("nope", 9),
            Err(StoreError::NoSuchProbe(_))
        ));
    }

    #[test]
    fn reopening_keeps_data_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.db");
        {
            let s = SqliteStore::open(&path, Synchronous::Full).expect("open");
            s.insert_results(&[result("p1", 0, 1_000, false)])
                .expect("insert");
        }
        let s = SqliteStore::open(&path, Synchronous::Full).expect("reopen");
        assert_eq!(
            s.query_results(&ResultQuery {
                limit: 5,
                ..Default::default()
            })
            .expect("q")
            .len(),
            1
        );
        drop(s);
        let conn = Connection::open(&path).expect("raw open");
        conn.execute("UPDATE schema_version SET version = 99", [])
            .expect("bump");
        drop(conn);
        assert!(matches!(
            SqliteStore::open(&path, Synchronous::Full),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn migration_3_backfills_probe_errors_coarse_tiers_and_the_state_history() {
        use crate::store::ReportStore;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.db");
        // A version 2 store, as the previous coordinator left it: a minute whose 3 runs
        // include 1 probe error (counted in `count` only), and another minute an hour later.
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT;
                 INSERT INTO schema_version VALUES (2);",
            )
            .expect("version");
            for sql in &MIGRATIONS[..2] {
                conn.execute_batch(sql).expect("old migration");
            }
            let mut hist = vec![0u64; LATENCY_BUCKETS];
            hist[11] = 2;
            let blob = encode_buckets(&hist);
            for (seq, status) in ["ok", "probe_error", "fail"].into_iter().enumerate() {
                conn.execute(
                    "INSERT INTO results VALUES ('p1', 'b', ?1, 'c1', 'v', 'eu', ?2, 0, ?3, NULL, 40.0, '{}')",
                    params![seq as i64, 7_200_000 + seq as i64 * 1000, status],
                )
                .expect("result");
            }
            conn.execute(
                "INSERT INTO rollups VALUES ('c1', 'p1', 7200000, 'eu', 3, 1, 0, '{}', ?1)",
                [&blob],
            )
            .expect("rollup");
            conn.execute(
                "INSERT INTO rollups VALUES ('c1', 'p2', 10800000, 'eu', 2, 0, 0, '{}', ?1)",
                [&blob],
            )
            .expect("rollup");
            conn.execute(
                "INSERT INTO vendor_states VALUES ('v', ?1, 5000)",
                [r#"{"global":{"state":"degraded","conditions":[]},"regions":{"eu":{"state":"hard_down"},"us":{"state":"operational"}}}"#],
            )
            .expect("vendor state");
        }
        let s = SqliteStore::open(&path, Synchronous::Normal).expect("migrate");
        let minute = s.rollups("c1", 7_200_000, 7_260_000).expect("rollups");
        assert_eq!((minute[0].count, minute[0].probe_errors), (3, 1));
        // The two minutes an hour apart: two hourly rows, one daily row with both.
        let totals = |from, to| {
            s.rollup_totals(&["c1".to_owned()], from, to)
                .expect("totals")
                .into_iter()
                .map(|t| {
                    (
                        t.region,
                        t.totals.runs,
                        t.totals.probe_errors,
                        t.totals.latency[11],
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(totals(0, 86_400_000), [("eu".to_owned(), 5, 1, 4)]);
        assert_eq!(totals(7_200_000, 10_800_000), [("eu".to_owned(), 3, 1, 2)]);
        let mut h: Vec<(Option<String>, String, i64)> = s
            .vendor_history("v", 6000, 7000)
            .expect("history")
            .into_iter()
            .map(|c| (c.region, c.state, c.at_ms))
            .collect();
        h.sort();
        assert_eq!(
            h,
            [
                (None, "degraded".to_owned(), 5000),
                (Some("eu".to_owned()), "hard_down".to_owned(), 5000),
                (Some("us".to_owned()), "operational".to_owned(), 5000),
            ]
        );
    }

    #[test]
    fn latency_buckets_are_monotonic() {
        assert_eq!(latency_bucket(0.2), 0);
        assert_eq!(latency_bucket(1.0), 1);
        assert!(latency_bucket(10.0) < latency_bucket(20.0));
        assert_eq!(latency_bucket(1e12), LATENCY_BUCKETS - 1);
        assert_eq!(latency_bucket(f64::NAN), 0);
        for ms in [1.5, 7.0, 150.0, 4000.0] {
            let b = latency_bucket(ms);
            assert!(
                ms < latency_bucket_upper(b) && ms >= latency_bucket_upper(b - 1),
                "{ms} in bucket {b}"
            );
        }
    }
}
