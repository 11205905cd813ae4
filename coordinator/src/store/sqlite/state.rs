//! [`StateStore`] on SQLite.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::alert::Label as _;
use crate::store::StoreError;
use crate::store::state::{AlertEvent, IncidentState, SubjectKind};
use crate::store::state::{
    ConsensusRecords, DeliveryRow, IncidentEventRow, IncidentQuery, IncidentRecord, IncidentRow,
    IncidentWrite, OutboxRow, RecentResult, SilenceRow, StateStore, TransitionRecord,
};

/// Stored as their labels; a label this build does not know is corrupt data.
macro_rules! sql_label {
    ($t:ty, $what:literal) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_label()))
            }
        }

        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                <$t>::from_label(s).ok_or_else(|| {
                    FromSqlError::Other(format!(concat!("unknown ", $what, " `{}`"), s).into())
                })
            }
        }
    };
}
sql_label!(SubjectKind, "subject kind");
sql_label!(IncidentState, "incident state");
sql_label!(AlertEvent, "alert event");

pub(super) const INCIDENT_COLUMNS: &str = "id, subject_kind, subject, state, summary, opened_ms, updated_ms, resolved_ms, detail, opened_state, clear_since_ms, flaps, version";

pub(super) fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: r.get(0)?,
        subject_kind: r.get(1)?,
        subject: r.get(2)?,
        state: r.get(3)?,
        summary: r.get(4)?,
        opened_ms: r.get(5)?,
        updated_ms: r.get(6)?,
        resolved_ms: r.get(7)?,
        detail: r.get(8)?,
        opened_state: r.get(9)?,
        clear_since_ms: r.get(10)?,
        flaps: r.get(11)?,
        version: r.get(12)?,
    })
}

/// Refuses a write decided under a lease that `fence`'s node no longer holds.
pub(super) fn check_fence(
    tx: &rusqlite::Transaction<'_>,
    fence: Option<&crate::store::lease::Fence>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let Some(f) = fence else { return Ok(()) };
    let held: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM leases WHERE part = ?1 AND holder = ?2 AND epoch = ?3 AND expires_ms > ?4)",
        params![f.part, f.node, f.epoch, now_ms],
        |r| r.get(0),
    )?;
    if held {
        Ok(())
    } else {
        Err(StoreError::Fenced(format!(
            "partition {} is no longer held by {} at epoch {}",
            f.part, f.node, f.epoch
        )))
    }
}

fn silence_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SilenceRow> {
    Ok(SilenceRow {
        id: r.get(0)?,
        vendor: r.get(1)?,
        check_id: r.get(2)?,
        region: r.get(3)?,
        starts_ms: r.get(4)?,
        ends_ms: r.get(5)?,
        comment: r.get(6)?,
        created_by: r.get(7)?,
        created_ms: r.get(8)?,
    })
}

fn pairs(conn: &rusqlite::Connection, sql: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl StateStore for SqliteStore {
    fn load_consensus(&self) -> Result<ConsensusRecords, StoreError> {
        self.read(|conn| {
            Ok(ConsensusRecords {
                checks: pairs(conn, "SELECT check_id, state FROM check_states")?,
                vendors: pairs(conn, "SELECT vendor, status FROM vendor_states")?,
                probes: pairs(conn, "SELECT probe_id, health FROM probe_health")?,
            })
        })
    }

    fn save_check_states(
        &self,
        states: &[(String, String)],
        transitions: &[TransitionRecord],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            {
                let mut up = tx.prepare_cached(
                    "INSERT INTO check_states (check_id, state, updated_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (check_id) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms",
                )?;
                for (id, state) in states {
                    up.execute(params![id, state, now_ms])?;
                }
                let mut ins = tx.prepare_cached(
                    "INSERT INTO transitions (check_id, vendor, at_ms, body) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for t in transitions {
                    ins.execute(params![t.check_id, t.vendor, t.at_ms, t.body])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn save_vendor_state(&self, vendor: &str, status: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO vendor_states (vendor, status, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (vendor) DO UPDATE SET status = excluded.status, updated_ms = excluded.updated_ms",
            )?
            .execute(params![vendor, status, now_ms])?;
            Ok(())
        })
    }

    fn save_probe_health(&self, probe: &str, health: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO probe_health (probe_id, health, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (probe_id) DO UPDATE SET health = excluded.health, updated_ms = excluded.updated_ms",
            )?
            .execute(params![probe, health, now_ms])?;
            Ok(())
        })
    }

    fn recent_results(&self, since_ms: i64) -> Result<Vec<RecentResult>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT check_id, probe_id, region, started_ms, body FROM results
                 WHERE started_ms >= ?1 ORDER BY started_ms",
            )?;
            let rows = stmt.query_map([since_ms], |r| {
                Ok(RecentResult {
                    check_id: r.get(0)?,
                    probe_id: r.get(1)?,
                    region: r.get(2)?,
                    started_ms: r.get(3)?,
                    body: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn transitions(&self, vendor: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT body FROM transitions WHERE vendor = ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![vendor, limit], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn open_incident(
        &self,
        kind: SubjectKind,
        subject: &str,
    ) -> Result<Option<IncidentRow>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents
                     WHERE subject_kind = ?1 AND subject = ?2 AND resolved_ms IS NULL"
                ))?
                .query_row(params![kind, subject], incident_row)
                .optional()?)
        })
    }

    fn open_incidents(&self) -> Result<Vec<IncidentRow>, StoreError> {
        self.incidents(&IncidentQuery {
            subject: None,
            open_only: true,
            limit: u32::MAX,
        })
    }

    fn write_incident(&self, w: &IncidentWrite) -> Result<i64, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            check_fence(&tx, w.fence.as_ref(), super::now_ms())?;
            let resolved = w.resolve.then_some(w.clear_since_ms.unwrap_or(w.at_ms));
            let id = match w.id {
                None => {
                    let inserted = tx.execute(
                        "INSERT INTO incidents (subject_kind, subject, state, summary, opened_ms, updated_ms, resolved_ms, detail, opened_state, clear_since_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?3, ?8)",
                        params![w.subject_kind, w.subject, w.state, w.summary, w.at_ms, resolved, w.detail, w.clear_since_ms],
                    );
                    match inserted {
                        Err(rusqlite::Error::SqliteFailure(e, _))
                            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                        {
                            return Err(StoreError::Conflict(format!(
                                "{} `{}` already has an open incident",
                                w.subject_kind, w.subject
                            )));
                        }
                        other => other?,
                    };
                    tx.last_insert_rowid()
                }
                Some(id) => {
                    let n = tx.execute(
                        "UPDATE incidents SET state = ?2, summary = ?3, updated_ms = ?4,
                         resolved_ms = COALESCE(resolved_ms, ?5), detail = ?6, clear_since_ms = ?7,
                         flaps = flaps + ?8, version = version + 1
                         WHERE id = ?1 AND (?9 IS NULL OR version = ?9)",
                        params![id, w.state, w.summary, w.at_ms, resolved, w.detail, w.clear_since_ms, i64::from(w.flap), w.expect_version],
                    )?;
                    if n == 0 {
                        return Err(StoreError::Conflict(format!(
                            "incident {id} changed since version {:?} was read",
                            w.expect_version
                        )));
                    }
                    id
                }
            };
            let mut seq: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM incident_events WHERE incident_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            for (kind, detail) in &w.events {
                seq += 1;
                tx.execute(
                    "INSERT INTO incident_events (incident_id, seq, at_ms, kind, state, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, seq, w.at_ms, kind, w.state, detail],
                )?;
            }
            for d in &w.deliveries {
                tx.execute(
                    "INSERT INTO outbox (incident_id, receiver, event, payload, created_ms, next_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    params![id, d.receiver, d.event, d.payload, w.at_ms],
                )?;
                let (trig, res) = d.event.delivery_marks(w.at_ms);
                tx.execute(
                    "INSERT INTO deliveries (incident_id, receiver, triggered_ms, resolved_ms, last_sent_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (incident_id, receiver) DO UPDATE SET
                       triggered_ms = COALESCE(deliveries.triggered_ms, excluded.triggered_ms),
                       resolved_ms = COALESCE(deliveries.resolved_ms, excluded.resolved_ms),
                       last_sent_ms = excluded.last_sent_ms",
                    params![id, d.receiver, trig, res, w.at_ms],
                )?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    fn incidents(&self, q: &IncidentQuery) -> Result<Vec<IncidentRow>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents
                 WHERE (?1 IS NULL OR subject = ?1) AND (?2 = 0 OR resolved_ms IS NULL)
                 ORDER BY opened_ms DESC, id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![q.subject, q.open_only, i64::from(q.limit)],
                incident_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn incident(&self, id: i64) -> Result<Option<IncidentRecord>, StoreError> {
        let Some(row) = self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
                ))?
                .query_row([id], incident_row)
                .optional()?)
        })?
        else {
            return Ok(None);
        };
        let events = self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, at_ms, kind, state, detail FROM incident_events WHERE incident_id = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map([id], |r| {
                Ok(IncidentEventRow {
                    seq: r.get(0)?,
                    at_ms: r.get(1)?,
                    kind: r.get(2)?,
                    state: r.get(3)?,
                    detail: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        let deliveries = self.deliveries(id)?;
        Ok(Some((row, events, deliveries)))
    }

    fn deliveries(&self, incident_id: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT receiver, triggered_ms, resolved_ms, last_sent_ms FROM deliveries WHERE incident_id = ?1 ORDER BY receiver",
            )?;
            let rows = stmt.query_map([incident_id], |r| {
                Ok(DeliveryRow {
                    receiver: r.get(0)?,
                    triggered_ms: r.get(1)?,
                    resolved_ms: r.get(2)?,
                    last_sent_ms: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn outbox_claim(
        &self,
        node: &str,
        now_ms: i64,
        claim_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let rows = {
                let mut stmt = tx.prepare_cached(
                    "UPDATE outbox SET claimed_by = ?3, claim_until_ms = ?1 + ?4
                     WHERE id IN (
                         SELECT o.id FROM outbox o
                         WHERE o.delivered_ms IS NULL AND o.dead_ms IS NULL AND o.next_ms <= ?1
                           AND (o.claim_until_ms IS NULL OR o.claim_until_ms <= ?1)
                           AND o.id = (SELECT MIN(p.id) FROM outbox p
                                       WHERE p.delivered_ms IS NULL AND p.dead_ms IS NULL
                                         AND p.receiver = o.receiver AND p.incident_id = o.incident_id)
                         ORDER BY o.id LIMIT ?2)
                     RETURNING id, incident_id, receiver, event, payload, attempts, created_ms",
                )?;
                let rows = stmt.query_map(params![now_ms, limit, node, claim_ms], |r| {
                    Ok(OutboxRow {
                        id: r.get(0)?,
                        incident_id: r.get(1)?,
                        receiver: r.get(2)?,
                        event: r.get(3)?,
                        payload: r.get(4)?,
                        attempts: r.get(5)?,
                        created_ms: r.get(6)?,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            tx.commit()?;
            let mut rows = rows;
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        })
    }

    fn outbox_delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.prepare_cached("UPDATE outbox SET delivered_ms = ?2, attempts = attempts + 1, last_error = NULL, claimed_by = NULL, claim_until_ms = NULL WHERE id = ?1")?
                .execute(params![id, now_ms])?;
            Ok(())
        })
    }

    fn outbox_retry(&self, id: i64, error: &str, next_ms: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_ms = ?3,
                 claimed_by = NULL, claim_until_ms = NULL WHERE id = ?1",
            )?
            .execute(params![id, error, next_ms])?;
            Ok(())
        })
    }

    fn outbox_dead(&self, id: i64, error: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let row: Option<(i64, String, String, u32)> = tx
                .query_row(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, dead_ms = ?3,
                     claimed_by = NULL, claim_until_ms = NULL
                     WHERE id = ?1 AND dead_ms IS NULL
                     RETURNING incident_id, receiver, event, attempts",
                    params![id, error, now_ms],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            if let Some((incident, receiver, event, attempts)) = row {
                let state: String =
                    tx.query_row("SELECT state FROM incidents WHERE id = ?1", [incident], |r| {
                        r.get(0)
                    })?;
                let seq: i64 = tx.query_row(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM incident_events WHERE incident_id = ?1",
                    [incident],
                    |r| r.get(0),
                )?;
                let detail = serde_json::json!({
                    "receiver": receiver,
                    "event": event,
                    "attempts": attempts,
                    "last_error": error,
                    "why": "every attempt the receiver allows failed; this alert is given up",
                })
                .to_string();
                tx.execute(
                    "INSERT INTO incident_events (incident_id, seq, at_ms, kind, state, detail) VALUES (?1, ?2, ?3, 'undeliverable', ?4, ?5)",
                    params![incident, seq, now_ms, state, detail],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn outbox_pending(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NULL AND dead_ms IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
    }

    fn add_silence(&self, s: &SilenceRow) -> Result<i64, StoreError> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO silences (vendor, check_id, region, starts_ms, ends_ms, comment, created_by, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![s.vendor, s.check_id, s.region, s.starts_ms, s.ends_ms, s.comment, s.created_by, s.created_ms],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    fn silences(&self, at_ms: Option<i64>) -> Result<Vec<SilenceRow>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, vendor, check_id, region, starts_ms, ends_ms, comment, created_by, created_ms FROM silences
                 WHERE ?1 IS NULL OR (starts_ms <= ?1 AND ?1 < ends_ms) ORDER BY id",
            )?;
            let rows = stmt.query_map([at_ms], silence_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn remove_silence(&self, id: i64) -> Result<bool, StoreError> {
        self.write(|conn| Ok(conn.execute("DELETE FROM silences WHERE id = ?1", [id])? == 1))
    }
}
