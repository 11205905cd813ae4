//! [`ReportStore`] on SQLite.
//!
//! Every tier's key starts with (check, time), so a time range of one check is one range of
//! the primary key: one seek, then neighbouring rows. That needs no index beyond the primary
//! key, so ingest pays nothing for it.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, params};

use super::SqliteStore;
use super::state::{INCIDENT_COLUMNS, incident_row};
use crate::store::StoreError;
use crate::store::report::{
    CheckRegionTotals, ReportStore, SeriesRow, Span, StateChange, Tier, Totals, history_changes,
    plan,
};
use crate::store::state::IncidentRow;

/// Every rollup row of one check in one span of `tier`: (unit start, region, counts, histogram).
fn range_sql(tier: Tier) -> String {
    format!(
        "SELECT {unit}, region, count, failures, probe_errors, slow, latency FROM {table}
         WHERE check_id = ?1 AND {unit} >= ?2 AND {unit} < ?3",
        table = tier.table(),
        unit = tier.unit()
    )
}

/// [`range_sql`] of each tier, indexed by tier.
static RANGES: std::sync::LazyLock<[String; 4]> =
    std::sync::LazyLock::new(|| Tier::ALL.map(range_sql));

/// Reader threads of one large report. A cold report waits on random page reads (the minute
/// edges of each check and probe lie on their own pages): several readers keep the disk's
/// queue full, and a warm one uses every core. (The SLA bench, 1,000 checks cold: 1.85 s
/// with 4, 1.31 s with 16.)
pub(super) const REPORT_THREADS: usize = 16;

/// Fewest checks per reader thread; smaller reports read on the calling thread.
const CHECKS_PER_THREAD: usize = 64;

/// Totals per (check, region) of `checks` over `spans`, in check order.
fn totals_of(
    conn: &Connection,
    checks: &[String],
    spans: &[Span],
) -> Result<Vec<CheckRegionTotals>, StoreError> {
    let mut out = Vec::new();
    for check in checks {
        // A check has rows in a handful of regions: a short list beats a map.
        let mut regions: Vec<(String, Totals)> = Vec::new();
        for span in spans {
            each_row(conn, check, span, |_, region, t| {
                match regions.iter_mut().find(|(r, _)| r == region) {
                    Some((_, sum)) => sum.add(t),
                    None => regions.push((region.to_owned(), *t)),
                }
                Ok(())
            })?;
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

/// Calls `f(unit start, region, totals)` for every rollup row of `check` in `span`.
fn each_row(
    conn: &Connection,
    check: &str,
    span: &Span,
    mut f: impl FnMut(i64, &str, &Totals) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(&RANGES[span.tier as usize])?;
    let mut rows = stmt.query(params![check, span.from_ms, span.to_ms])?;
    while let Some(row) = rows.next()? {
        let count = |i: usize| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
        let mut t = Totals {
            runs: count(2)?,
            failures: count(3)?,
            probe_errors: count(4)?,
            slow: count(5)?,
            ..Totals::default()
        };
        t.add_latency_blob(row.get_ref(6)?.as_blob().map_err(rusqlite::Error::from)?)?;
        let region = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
        f(row.get(0)?, region, &t)?;
    }
    Ok(())
}

/// The regions (`''` for global) a vendor has history in: a skip scan over the index.
fn history_regions(conn: &Connection, vendor: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE s(region) AS (
             SELECT (SELECT MIN(region) FROM vendor_history WHERE vendor = ?1)
             UNION ALL
             SELECT (SELECT MIN(region) FROM vendor_history WHERE vendor = ?1 AND region > s.region)
             FROM s WHERE s.region IS NOT NULL
         )
         SELECT region FROM s WHERE region IS NOT NULL",
    )?;
    let rows = stmt.query_map([vendor], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last recorded state of a scope before `before_ms`, with its time.
fn state_before(
    conn: &Connection,
    vendor: &str,
    region: &str,
    before_ms: i64,
) -> Result<Option<(String, i64)>, StoreError> {
    use rusqlite::OptionalExtension as _;
    Ok(conn
        .prepare_cached(
            "SELECT state, at_ms FROM vendor_history WHERE vendor = ?1 AND region = ?2 AND at_ms < ?3
             ORDER BY at_ms DESC, id DESC LIMIT 1",
        )?
        .query_row(params![vendor, region, before_ms], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

fn scope(region: String) -> Option<String> {
    (!region.is_empty()).then_some(region)
}

impl ReportStore for SqliteStore {
    fn rollup_totals(
        &self,
        checks: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<CheckRegionTotals>, StoreError> {
        let spans = plan(from_ms, to_ms, Tier::Day);
        if checks.len() < 2 * CHECKS_PER_THREAD {
            return self.read(|conn| totals_of(conn, checks, &spans));
        }
        // Each reader has its own connection, so its own snapshot: checks read a moment
        // apart may straddle a commit, which a report over days cannot notice.
        let per = checks.len().div_ceil(REPORT_THREADS).max(CHECKS_PER_THREAD);
        std::thread::scope(|scope| {
            let readers: Vec<_> = checks
                .chunks(per)
                .map(|part| {
                    let spans = &spans;
                    scope.spawn(move || self.read(|conn| totals_of(conn, part, spans)))
                })
                .collect();
            let mut out = Vec::with_capacity(checks.len() * 3);
            for r in readers {
                let part = r
                    .join()
                    .map_err(|_| StoreError::Corrupt("a report reader thread panicked".into()))??;
                out.extend(part);
            }
            Ok(out)
        })
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
        self.read(|conn| {
            let mut buckets: BTreeMap<(i64, String), Totals> = BTreeMap::new();
            for span in &spans {
                each_row(conn, check, span, |start, region, t| {
                    let bucket = start - start.rem_euclid(bucket_ms);
                    buckets
                        .entry((bucket, region.to_owned()))
                        .or_default()
                        .add(t);
                    Ok(())
                })?;
            }
            Ok(buckets
                .into_iter()
                .map(|((start_ms, region), totals)| SeriesRow {
                    start_ms,
                    region,
                    totals,
                })
                .collect())
        })
    }

    fn record_vendor_status(
        &self,
        vendor: &str,
        status: &str,
        states: &[(Option<String>, String)],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            tx.prepare_cached(
                "INSERT INTO vendor_states (vendor, status, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (vendor) DO UPDATE SET status = excluded.status, updated_ms = excluded.updated_ms",
            )?
            .execute(params![vendor, status, at_ms])?;
            let mut last: HashMap<String, String> = HashMap::new();
            for region in history_regions(&tx, vendor)? {
                if let Some((state, _)) = state_before(&tx, vendor, &region, i64::MAX)? {
                    last.insert(region, state);
                }
            }
            let changes = history_changes(&last, states);
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO vendor_history (vendor, region, state, at_ms) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (region, state) in changes {
                    insert.execute(params![vendor, region, state, at_ms])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn vendor_history(
        &self,
        vendor: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StateChange>, StoreError> {
        self.read(|conn| {
            let mut out: Vec<(i64, StateChange)> = Vec::new();
            for region in history_regions(conn, vendor)? {
                if let Some((state, at_ms)) = state_before(conn, vendor, &region, from_ms)? {
                    out.push((
                        i64::MIN,
                        StateChange {
                            region: scope(region.clone()),
                            state,
                            at_ms,
                        },
                    ));
                }
                let mut stmt = conn.prepare_cached(
                    "SELECT id, state, at_ms FROM vendor_history
                     WHERE vendor = ?1 AND region = ?2 AND at_ms >= ?3 AND at_ms < ?4 ORDER BY at_ms, id",
                )?;
                let rows = stmt.query_map(params![vendor, region, from_ms, to_ms], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })?;
                for row in rows {
                    let (id, state, at_ms) = row?;
                    out.push((
                        id,
                        StateChange {
                            region: scope(region.clone()),
                            state,
                            at_ms,
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
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS}
                 FROM incidents
                 WHERE subject_kind = ?1 AND subject = ?2 AND opened_ms < ?4
                   AND (resolved_ms IS NULL OR resolved_ms > ?3)
                 ORDER BY opened_ms, id LIMIT ?5"
            ))?;
            let rows = stmt.query_map(
                params![subject_kind, subject, from_ms, to_ms, i64::from(limit)],
                incident_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn prune_tiers(&self, hourly_before_ms: i64, daily_before_ms: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM rollups_hourly WHERE hour_ms < ?1",
                [hourly_before_ms],
            )?;
            tx.execute(
                "DELETE FROM rollups_daily WHERE day_ms < ?1",
                [daily_before_ms],
            )?;
            tx.execute(
                "DELETE FROM vendor_history WHERE at_ms < ?1 AND id NOT IN (
                     SELECT h.id FROM vendor_history h WHERE h.at_ms < ?1 AND h.id = (
                         SELECT id FROM vendor_history
                         WHERE vendor = h.vendor AND region = h.region AND at_ms < ?1
                         ORDER BY at_ms DESC, id DESC LIMIT 1))",
                [daily_before_ms],
            )?;
            tx.commit()?;
            Ok(())
        })
    }
}
