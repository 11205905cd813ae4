//! [`RunStore`] on PostgreSQL.

use tokio_postgres::Row;

use super::{PgError, PostgresStore};
use crate::store::run::{NewRun, RunRecord, RunResultRow, RunStore, decode, encode, run_of};
use crate::store::{IngestRow, InsertOutcome, StoreError};

const RUN_COLUMNS: &str =
    "id, vendor, label, suite, checks, regions, probes, created_ms, deadline_ms";

fn run_row(r: &Row) -> Result<RunRecord, PgError> {
    let list = |i: usize, what: &str| -> Result<Vec<String>, PgError> {
        decode(what, r.try_get::<_, &str>(i)?).map_err(PgError::Store)
    };
    Ok(RunRecord {
        id: r.try_get(0)?,
        run: NewRun {
            vendor: r.try_get(1)?,
            label: r.try_get(2)?,
            suite: r.try_get(3)?,
            checks: list(4, "checks")?,
            regions: list(5, "regions")?,
            probes: decode("probes", r.try_get::<_, &str>(6)?).map_err(PgError::Store)?,
            created_ms: r.try_get(7)?,
            deadline_ms: r.try_get(8)?,
        },
    })
}

impl RunStore for PostgresStore {
    fn create_run(&self, run: &NewRun) -> Result<i64, StoreError> {
        let (checks, regions, probes) = (
            encode(&run.checks),
            encode(&run.regions),
            encode(&run.probes),
        );
        self.run(async |c| {
            Ok(c.query_one(
                "INSERT INTO runs (vendor, label, suite, checks, regions, probes, created_ms, deadline_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &run.vendor,
                    &run.label,
                    &run.suite,
                    &checks,
                    &regions,
                    &probes,
                    &run.created_ms,
                    &run.deadline_ms,
                ],
            )
            .await?
            .try_get(0)?)
        })
    }

    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        self.run(async |c| {
            c.query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
                &[&id],
            )
            .await?
            .as_ref()
            .map(run_row)
            .transpose()
        })
    }

    fn runs(
        &self,
        vendor: Option<&str>,
        suite: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let limit = i64::from(limit);
        self.run(async |c| {
            c.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     WHERE ($1::text IS NULL OR vendor = $1) AND ($2::text IS NULL OR suite = $2)
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&vendor, &suite, &limit],
            )
            .await?
            .iter()
            .map(run_row)
            .collect()
        })
    }

    fn open_runs(&self, after: i64, now_ms: i64) -> Result<Vec<RunRecord>, StoreError> {
        self.run(async |c| {
            c.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE id > $1 AND deadline_ms > $2 ORDER BY id"
                ),
                &[&after, &now_ms],
            )
            .await?
            .iter()
            .map(run_row)
            .collect()
        })
    }

    fn last_run_id(&self) -> Result<i64, StoreError> {
        self.run(async |c| {
            Ok(
                c.query_one("SELECT COALESCE(MAX(id), 0)::int8 FROM runs", &[])
                    .await?
                    .try_get(0)?,
            )
        })
    }

    fn insert_run_results(&self, rows: &[IngestRow]) -> Result<InsertOutcome, StoreError> {
        let mut encoded = Vec::with_capacity(rows.len());
        for row in rows {
            let body = serde_json::to_string(&row.result)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            encoded.push((run_of(row)?, row, body));
        }
        self.transaction(async |tx| {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO run_results (run_id, check_id, probe_id, region, received_ms, body)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .await?;
            let mut out = InsertOutcome::default();
            for (run, row, body) in &encoded {
                let n = tx
                    .execute(
                        &stmt,
                        &[
                            run,
                            &row.result.check_id,
                            &row.result.probe_id,
                            &row.region,
                            &row.received_ms,
                            body,
                        ],
                    )
                    .await?;
                if n == 1 {
                    out.inserted += 1;
                } else {
                    out.duplicates += 1;
                }
            }
            Ok(out)
        })
    }

    fn run_results(&self, id: i64, probe: Option<&str>) -> Result<Vec<RunResultRow>, StoreError> {
        self.run(async |c| {
            c.query(
                "SELECT region, received_ms, body FROM run_results
                 WHERE run_id = $1 AND ($2::text IS NULL OR probe_id = $2)
                 ORDER BY check_id, probe_id",
                &[&id, &probe],
            )
            .await?
            .iter()
            .map(|r| {
                let body: &str = r.try_get(2)?;
                Ok(RunResultRow {
                    region: r.try_get(0)?,
                    received_ms: r.try_get(1)?,
                    result: decode("result", body).map_err(PgError::Store)?,
                })
            })
            .collect()
        })
    }
}
