//! [`RunStore`] on SQLite.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::run::{NewRun, RunRecord, RunResultRow, RunStore, decode, encode, run_of};
use crate::store::{IngestRow, InsertOutcome, StoreError};

const RUN_COLUMNS: &str =
    "id, vendor, label, suite, checks, regions, probes, created_ms, deadline_ms";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, NewRunText)> {
    Ok((
        r.get(0)?,
        NewRunText {
            vendor: r.get(1)?,
            label: r.get(2)?,
            suite: r.get(3)?,
            checks: r.get(4)?,
            regions: r.get(5)?,
            probes: r.get(6)?,
            created_ms: r.get(7)?,
            deadline_ms: r.get(8)?,
        },
    ))
}

/// A run's row before its lists are decoded.
struct NewRunText {
    vendor: String,
    label: Option<String>,
    suite: Option<String>,
    checks: String,
    regions: String,
    probes: String,
    created_ms: i64,
    deadline_ms: i64,
}

fn finish((id, t): (i64, NewRunText)) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id,
        run: NewRun {
            vendor: t.vendor,
            label: t.label,
            suite: t.suite,
            checks: decode("checks", &t.checks)?,
            regions: decode("regions", &t.regions)?,
            probes: decode("probes", &t.probes)?,
            created_ms: t.created_ms,
            deadline_ms: t.deadline_ms,
        },
    })
}

impl RunStore for SqliteStore {
    fn create_run(&self, run: &NewRun) -> Result<i64, StoreError> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO runs (vendor, label, suite, checks, regions, probes, created_ms, deadline_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    run.vendor,
                    run.label,
                    run.suite,
                    encode(&run.checks),
                    encode(&run.regions),
                    encode(&run.probes),
                    run.created_ms,
                    run.deadline_ms
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                .query_row([id], run_row)
                .optional()?
                .map(finish)
                .transpose()
        })
    }

    fn runs(
        &self,
        vendor: Option<&str>,
        suite: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (?1 IS NULL OR vendor = ?1) AND (?2 IS NULL OR suite = ?2)
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![vendor, suite, limit], run_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(finish))
                .collect()
        })
    }

    fn open_runs(&self, after: i64, now_ms: i64) -> Result<Vec<RunRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE id > ?1 AND deadline_ms > ?2 ORDER BY id"
            ))?;
            let rows = stmt.query_map(params![after, now_ms], run_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(finish))
                .collect()
        })
    }

    fn last_run_id(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT COALESCE(MAX(id), 0) FROM runs", [], |r| r.get(0))?)
        })
    }

    fn insert_run_results(&self, rows: &[IngestRow]) -> Result<InsertOutcome, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let mut out = InsertOutcome::default();
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO run_results (run_id, check_id, probe_id, region, received_ms, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                )?;
                for row in rows {
                    let body = serde_json::to_string(&row.result)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let n = stmt.execute(params![
                        run_of(row)?,
                        row.result.check_id,
                        row.result.probe_id,
                        row.region,
                        row.received_ms,
                        body
                    ])?;
                    if n == 1 {
                        out.inserted += 1;
                    } else {
                        out.duplicates += 1;
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn run_results(&self, id: i64, probe: Option<&str>) -> Result<Vec<RunResultRow>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT region, received_ms, body FROM run_results
                 WHERE run_id = ?1 AND (?2 IS NULL OR probe_id = ?2)
                 ORDER BY check_id, probe_id",
            )?;
            let rows = stmt.query_map(params![id, probe], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            rows.map(|r| {
                let (region, received_ms, body) = r?;
                Ok(RunResultRow {
                    region,
                    received_ms,
                    result: decode("result", &body)?,
                })
            })
            .collect()
        })
    }
}
