//! [`ReportStore`] on PostgreSQL.
//!
//! As on SQLite, a report reads tier by tier ([`plan`]): whole days from the daily rollups,
//! whole hours from the hourly ones, the ragged minutes at the edges from the minute rollups,
//! each one range of a key that starts with (check, time). A report's checks share its spans:
//! one query per span sums a set of checks per (check, region) on the server, and a large
//! report splits its checks over several connections.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::types::ToSql;

use super::state::{INCIDENT_COLUMNS, incident_row};
use super::{PgError, PostgresStore, bucket_column, buckets_sql, totals_at};
use crate::store::StoreError;
use crate::store::report::{
    CheckRegionTotals, ReportStore, SeriesRow, Span, StateChange, Tier, Totals, history_changes,
    plan,
};
use crate::store::state::IncidentRow;

/// Connections one large report reads on at once.
const REPORT_CONNECTIONS: usize = 8;

/// Fewest checks a connection of a report is given; smaller reports use one.
const MIN_CHECKS_PER_CONNECTION: usize = 64;

/// Every rollup row of one check in one span of `tier`: unit start, region, then the columns
/// [`totals_at`] reads.
fn range_sql(tier: Tier) -> String {
    format!(
        "SELECT {unit}, region, count, failures, probe_errors, slow, {buckets} FROM {table}
         WHERE check_id = $1 AND {unit} >= $2 AND {unit} < $3",
        table = tier.table(),
        unit = tier.unit(),
        buckets = buckets_sql(bucket_column),
    )
}

/// The totals per (check, region) of a set of checks over one span of a tier, summed by the
/// server (a report needs no more, and a few rows beat thousands): check, region, then the
/// columns [`totals_at`] reads.
fn summed(tier: Tier) -> String {
    // Check by check (a lateral join), so that each is one range of the primary key
    // whatever the planner thinks of the checks' share of the table.
    format!(
        "SELECT c, s.* FROM unnest($1::text[]) AS c CROSS JOIN LATERAL (
             SELECT region, sum(count)::int8, sum(failures)::int8, sum(probe_errors)::int8,
                    sum(slow)::int8, {buckets}
             FROM {table} WHERE check_id = c AND {unit} >= $2 AND {unit} < $3
             GROUP BY region) AS s",
        table = tier.table(),
        unit = tier.unit(),
        buckets = buckets_sql(|i| format!("sum(b{i})")),
    )
}

/// [`summed`] and [`range_sql`] of each tier, indexed by tier.
static SUMMED: std::sync::LazyLock<[String; 4]> =
    std::sync::LazyLock::new(|| Tier::ALL.map(summed));
static RANGES: std::sync::LazyLock<[String; 4]> =
    std::sync::LazyLock::new(|| Tier::ALL.map(range_sql));

/// Runs `sql[span.tier]` with (`first`, span start, span end) for each of `spans`, the
/// queries pipelined on one connection, and reads each row as (its first column, region,
/// then the columns [`totals_at`] reads): [`SUMMED`] over a set of checks, or [`RANGES`] of
/// one check.
async fn each_span<K: for<'a> tokio_postgres::types::FromSql<'a>>(
    c: &deadpool_postgres::Client,
    sql: &[String; 4],
    first: &(dyn ToSql + Sync),
    spans: &[Span],
) -> Result<Vec<(K, String, Totals)>, PgError> {
    let stmts =
        futures_util::future::try_join_all(sql.iter().map(|sql| c.prepare_cached(sql))).await?;
    let args: Vec<(&tokio_postgres::Statement, [&(dyn ToSql + Sync); 3])> = spans
        .iter()
        .map(|span| {
            (
                &stmts[span.tier as usize],
                [first, &span.from_ms, &span.to_ms],
            )
        })
        .collect();
    let queries = args.iter().map(|(stmt, p)| c.query(*stmt, p));
    let mut out = Vec::new();
    for rows in futures_util::future::try_join_all(queries).await? {
        for r in rows {
            out.push((r.try_get(0)?, r.try_get(1)?, totals_at(&r, 2)?));
        }
    }
    Ok(out)
}

/// The regions (`''` for global) a vendor has history in: a skip scan over the index.
async fn history_regions(
    c: &impl deadpool_postgres::GenericClient,
    vendor: &str,
) -> Result<Vec<String>, PgError> {
    c.query(
        "WITH RECURSIVE s(region) AS (
             SELECT (SELECT MIN(region) FROM vendor_history WHERE vendor = $1)
             UNION ALL
             SELECT (SELECT MIN(region) FROM vendor_history WHERE vendor = $1 AND region > s.region)
             FROM s WHERE s.region IS NOT NULL
         )
         SELECT region FROM s WHERE region IS NOT NULL",
        &[&vendor],
    )
    .await?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

/// The last recorded state of a scope before `before_ms`, with its time.
async fn state_before(
    c: &impl deadpool_postgres::GenericClient,
    vendor: &str,
    region: &str,
    before_ms: i64,
) -> Result<Option<(String, i64)>, PgError> {
    c.query_opt(
        "SELECT state, at_ms FROM vendor_history WHERE vendor = $1 AND region = $2 AND at_ms < $3
         ORDER BY at_ms DESC, id DESC LIMIT 1",
        &[&vendor, &region, &before_ms],
    )
    .await?
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .transpose()
}

fn scope(region: String) -> Option<String> {
    (!region.is_empty()).then_some(region)
}

impl ReportStore for PostgresStore {
    fn rollup_totals(
        &self,
        checks: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<CheckRegionTotals>, StoreError> {
        let spans = plan(from_ms, to_ms, Tier::Day);
        // Every check shares the window's spans: one query per span for a set of checks,
        // summed per (check, region) by the server. Large reports split the checks over
        // several connections, so that the server works on them in parallel and a cold one
        // keeps the disk's queue full.
        let per = checks
            .len()
            .div_ceil(REPORT_CONNECTIONS)
            .max(MIN_CHECKS_PER_CONNECTION);
        let parts: Vec<Vec<(String, String, Totals)>> = self.block_on(async {
            let spans = &spans;
            futures_util::future::try_join_all(checks.chunks(per).map(|part| async move {
                let c = self.client().await?;
                each_span::<String>(&c, &SUMMED, &part, spans)
                    .await
                    .map_err(StoreError::from)
            }))
            .await
        })?;
        let mut sums: HashMap<(String, String), Totals> = HashMap::with_capacity(checks.len() * 3);
        for (check, region, t) in parts.into_iter().flatten() {
            sums.entry((check, region)).or_default().add(&t);
        }
        let mut out: Vec<CheckRegionTotals> = sums
            .into_iter()
            .map(|((check_id, region), totals)| CheckRegionTotals {
                check_id,
                region,
                totals,
            })
            .collect();
        // In the order of `checks`, regions in order within each.
        let order: HashMap<&str, usize> = checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        out.sort_by(|a, b| {
            (order.get(a.check_id.as_str()), &a.region)
                .cmp(&(order.get(b.check_id.as_str()), &b.region))
        });
        Ok(out)
    }

    fn rollup_series(
        &self,
        check: &str,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        let bucket_ms = bucket_ms.max(Tier::Minute.ms());
        let spans = plan(from_ms, to_ms, Tier::coarsest_dividing(bucket_ms));
        let rows = self.run(async |c| each_span::<i64>(c, &RANGES, &check, &spans).await)?;
        let mut buckets: BTreeMap<(i64, String), Totals> = BTreeMap::new();
        for (start, region, t) in rows {
            let bucket = start - start.rem_euclid(bucket_ms);
            buckets.entry((bucket, region)).or_default().add(&t);
        }
        Ok(buckets
            .into_iter()
            .map(|((start_ms, region), totals)| SeriesRow {
                start_ms,
                region,
                totals,
            })
            .collect())
    }

    fn record_vendor_status(
        &self,
        vendor: &str,
        status: &str,
        states: &[(Option<String>, String)],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.transaction(async |tx| {
            // The vendor's row, locked first: its history is appended by one writer at a time.
            tx.execute(
                "INSERT INTO vendor_states (vendor, status, updated_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (vendor) DO UPDATE SET status = excluded.status, updated_ms = excluded.updated_ms",
                &[&vendor, &status, &at_ms],
            )
            .await?;
            let mut last: HashMap<String, String> = HashMap::new();
            for region in history_regions(tx, vendor).await? {
                if let Some((state, _)) = state_before(tx, vendor, &region, i64::MAX).await? {
                    last.insert(region, state);
                }
            }
            let changes = history_changes(&last, states);
            for (region, state) in changes {
                tx.execute(
                    "INSERT INTO vendor_history (vendor, region, state, at_ms) VALUES ($1, $2, $3, $4)",
                    &[&vendor, &region, &state, &at_ms],
                )
                .await?;
            }
            Ok(())
        })
    }

    fn vendor_history(
        &self,
        vendor: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StateChange>, StoreError> {
        self.run(async |c| {
            let mut out: Vec<(i64, StateChange)> = Vec::new();
            for region in history_regions(&*c, vendor).await? {
                if let Some((state, at_ms)) = state_before(&*c, vendor, &region, from_ms).await? {
                    out.push((
                        i64::MIN,
                        StateChange {
                            region: scope(region.clone()),
                            state,
                            at_ms,
                        },
                    ));
                }
                let rows = c
                    .query(
                        "SELECT id, state, at_ms FROM vendor_history
                         WHERE vendor = $1 AND region = $2 AND at_ms >= $3 AND at_ms < $4
                         ORDER BY at_ms, id",
                        &[&vendor, &region, &from_ms, &to_ms],
                    )
                    .await?;
                for r in rows {
                    out.push((
                        r.try_get(0)?,
                        StateChange {
                            region: scope(region.clone()),
                            state: r.try_get(1)?,
                            at_ms: r.try_get(2)?,
                        },
                    ));
                }
            }
            // Time order; within the same instant, the order the changes were recorded.
            out.sort_by_key(|(id, c)| (c.at_ms, *id));
            Ok(out.into_iter().map(|(_, c)| c).collect())
        })
    }

    fn incidents_overlapping(
        &self,
        subject_kind: crate::store::state::SubjectKind,
        subject: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        self.run(async |c| {
            c.query(
                &format!(
                    "SELECT {INCIDENT_COLUMNS}
                     FROM incidents
                     WHERE subject_kind = $1 AND subject = $2 AND opened_ms < $4
                       AND (resolved_ms IS NULL OR resolved_ms > $3)
                     ORDER BY opened_ms, id LIMIT $5"
                ),
                &[
                    &crate::alert::Label::as_label(subject_kind),
                    &subject,
                    &from_ms,
                    &to_ms,
                    &i64::from(limit),
                ],
            )
            .await?
            .iter()
            .map(incident_row)
            .collect()
        })
    }

    fn prune_tiers(&self, hourly_before_ms: i64, daily_before_ms: i64) -> Result<(), StoreError> {
        self.transaction(async |tx| {
            tx.execute(
                "DELETE FROM rollups_hourly WHERE hour_ms < $1",
                &[&hourly_before_ms],
            )
            .await?;
            tx.execute(
                "DELETE FROM rollups_daily WHERE day_ms < $1",
                &[&daily_before_ms],
            )
            .await?;
            // Per scope, the last change before the cut stays: the state still in force.
            tx.execute(
                "DELETE FROM vendor_history h WHERE h.at_ms < $1 AND h.id <> (
                     SELECT k.id FROM vendor_history k
                     WHERE k.vendor = h.vendor AND k.region = h.region AND k.at_ms < $1
                     ORDER BY k.at_ms DESC, k.id DESC LIMIT 1)",
                &[&daily_before_ms],
            )
            .await?;
            Ok(())
        })
    }
}
