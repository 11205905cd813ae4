//! [`ReportStore`] on PostgreSQL.
//!
//! As on SQLite, a report reads each check tier by tier ([`plan`]): whole days from the daily
//! rollups, whole hours from the hourly ones, the ragged minutes at the edges from the minute
//! rollups (skipping from one probe of the check to the next, since the key is (check, probe,
//! minute)). The queries of a report are pipelined on one connection: one round trip's wait
//! for them all, not one each.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::types::ToSql;

use super::state::{INCIDENT_COLUMNS, incident_row};
use super::{PgError, PostgresStore, totals_at};
use crate::store::report::{
    CheckRegionTotals, ReportStore, SeriesRow, Span, StateChange, Tier, Totals, history_changes,
    plan,
};
use crate::store::state::IncidentRow;
use crate::store::{LATENCY_BUCKETS, StoreError};

/// Connections one large report reads on at once.
const REPORT_CONNECTIONS: usize = 4;

/// Fewest queries a connection of a report is given; smaller reports use one.
const MIN_QUERIES_PER_CONNECTION: usize = 256;

const MINUTE_RANGE: &str = "
    WITH RECURSIVE p(id) AS (
        SELECT (SELECT MIN(probe_id) FROM rollups WHERE check_id = $1)
        UNION ALL
        SELECT (SELECT MIN(probe_id) FROM rollups WHERE check_id = $1 AND probe_id > p.id)
        FROM p WHERE p.id IS NOT NULL
    )
    SELECT r.minute_ms, r.region, r.count, r.failures, r.probe_errors, r.slow, r.latency
    FROM p CROSS JOIN rollups r
    WHERE p.id IS NOT NULL AND r.check_id = $1 AND r.probe_id = p.id
      AND r.minute_ms >= $2 AND r.minute_ms < $3";

const HOUR_RANGE: &str = "
    SELECT hour_ms, region, count, failures, probe_errors, slow, latency FROM rollups_hourly
    WHERE check_id = $1 AND hour_ms >= $2 AND hour_ms < $3";

const DAY_RANGE: &str = "
    SELECT day_ms, region, count, failures, probe_errors, slow, latency FROM rollups_daily
    WHERE check_id = $1 AND day_ms >= $2 AND day_ms < $3";

/// The totals per region of one check over one span of a tier, summed by the server (a
/// report needs no more, and a few rows beat hundreds): region, then the columns
/// [`totals_at`] reads.
fn summed(tier: Tier) -> String {
    let sums = |p: &str| {
        let buckets: Vec<String> = (1..=LATENCY_BUCKETS)
            .map(|i| format!("COALESCE(sum({p}latency[{i}]), 0)::int8"))
            .collect();
        format!(
            "sum({p}count)::int8, sum({p}failures)::int8, sum({p}probe_errors)::int8, sum({p}slow)::int8, ARRAY[{}]",
            buckets.join(", ")
        )
    };
    match tier {
        Tier::Minute => format!(
            "WITH RECURSIVE p(id) AS (
                SELECT (SELECT MIN(probe_id) FROM rollups WHERE check_id = $1)
                UNION ALL
                SELECT (SELECT MIN(probe_id) FROM rollups WHERE check_id = $1 AND probe_id > p.id)
                FROM p WHERE p.id IS NOT NULL
            )
            SELECT r.region, {}
            FROM p CROSS JOIN rollups r
            WHERE p.id IS NOT NULL AND r.check_id = $1 AND r.probe_id = p.id
              AND r.minute_ms >= $2 AND r.minute_ms < $3
            GROUP BY r.region",
            sums("r.")
        ),
        Tier::Hour => format!(
            "SELECT region, {} FROM rollups_hourly
             WHERE check_id = $1 AND hour_ms >= $2 AND hour_ms < $3 GROUP BY region",
            sums("")
        ),
        Tier::Day => format!(
            "SELECT region, {} FROM rollups_daily
             WHERE check_id = $1 AND day_ms >= $2 AND day_ms < $3 GROUP BY region",
            sums("")
        ),
    }
}

static SUMMED: std::sync::LazyLock<[String; 3]> =
    std::sync::LazyLock::new(|| [Tier::Minute, Tier::Hour, Tier::Day].map(summed));

/// Runs, pipelined on one connection, each (check, span)'s query: `sql[tier]` (minute, hour,
/// day) with the check and the span's bounds. The rows of each, in input order.
async fn per_span(
    c: &deadpool_postgres::Client,
    sql: [&str; 3],
    wanted: &[(&str, Span)],
) -> Result<Vec<Vec<tokio_postgres::Row>>, PgError> {
    let minute = c.prepare_cached(sql[0]).await?;
    let hour = c.prepare_cached(sql[1]).await?;
    let day = c.prepare_cached(sql[2]).await?;
    let params: Vec<(&tokio_postgres::Statement, [&(dyn ToSql + Sync); 3])> = wanted
        .iter()
        .map(|(check, span)| {
            let stmt = match span.tier {
                Tier::Minute => &minute,
                Tier::Hour => &hour,
                Tier::Day => &day,
            };
            (
                stmt,
                [check as &(dyn ToSql + Sync), &span.from_ms, &span.to_ms],
            )
        })
        .collect();
    Ok(futures_util::future::try_join_all(params.iter().map(|(s, p)| c.query(*s, p))).await?)
}

/// The totals per region of each (check, span), in input order.
async fn sums_of(
    c: &deadpool_postgres::Client,
    wanted: &[(&str, Span)],
) -> Result<Vec<Vec<(String, Totals)>>, PgError> {
    let sql = [SUMMED[0].as_str(), SUMMED[1].as_str(), SUMMED[2].as_str()];
    per_span(c, sql, wanted)
        .await?
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, totals_at(r, 1)?)))
                .collect()
        })
        .collect()
}

/// Every rollup row of each (check, span), as (unit start, region, totals), in input order.
async fn rows_of(
    c: &deadpool_postgres::Client,
    wanted: &[(&str, Span)],
) -> Result<Vec<Vec<(i64, String, Totals)>>, PgError> {
    per_span(c, [MINUTE_RANGE, HOUR_RANGE, DAY_RANGE], wanted)
        .await?
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, totals_at(r, 2)?)))
                .collect()
        })
        .collect()
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
        let wanted: Vec<(&str, Span)> = checks
            .iter()
            .flat_map(|c| spans.iter().map(move |s| (c.as_str(), *s)))
            .collect();
        // Large reports read on several connections at once (each pipelined), so that the
        // server works on them in parallel and a cold one keeps the disk's queue full.
        let per = wanted
            .len()
            .div_ceil(REPORT_CONNECTIONS)
            .max(MIN_QUERIES_PER_CONNECTION);
        let rows: Vec<Vec<(String, Totals)>> = self.block_on(async {
            let parts = futures_util::future::try_join_all(wanted.chunks(per).map(|part| async {
                let c = self.client().await?;
                sums_of(&c, part).await.map_err(StoreError::from)
            }))
            .await?;
            Ok::<_, StoreError>(parts.into_iter().flatten().collect())
        })?;
        let mut out = Vec::new();
        for (check, per_span) in checks.iter().zip(rows.chunks(spans.len().max(1))) {
            // A check has rows in a handful of regions: a short list beats a map.
            let mut regions: Vec<(String, Totals)> = Vec::new();
            for (region, t) in per_span.iter().flatten() {
                match regions.iter_mut().find(|(r, _)| r == region) {
                    Some((_, sum)) => sum.add(t),
                    None => regions.push((region.clone(), *t)),
                }
            }
            regions.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(
                regions
                    .into_iter()
                    .map(|(region, totals)| CheckRegionTotals {
                        check_id: check.clone(),
                        region,
                        totals,
                    }),
            );
        }
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
        let wanted: Vec<(&str, Span)> = spans.iter().map(|s| (check, *s)).collect();
        let rows = self.run(async |c| rows_of(c, &wanted).await)?;
        let mut buckets: BTreeMap<(i64, String), Totals> = BTreeMap::new();
        for (start, region, t) in rows.into_iter().flatten() {
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
