//! [`StateStore`] on PostgreSQL.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgError, PostgresStore, corrupt};
use crate::alert::Label as _;
use crate::store::StoreError;
use crate::store::state::{AlertEvent, IncidentState, SubjectKind};
use crate::store::state::{
    ConsensusRecords, DeliveryRow, IncidentEventRow, IncidentQuery, IncidentRecord, IncidentRow,
    IncidentWrite, OutboxRow, RecentResult, SilenceRow, StateStore, TransitionRecord,
};

pub(super) const INCIDENT_COLUMNS: &str = "id, subject_kind, subject, state, summary, opened_ms, updated_ms, resolved_ms, detail, opened_state, clear_since_ms, flaps, version";

/// A stored label, parsed; one this build does not know is corrupt data.
pub(super) fn parsed<T>(
    r: &Row,
    i: usize,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, PgError> {
    let s: &str = r.try_get(i)?;
    parse(s).ok_or_else(|| corrupt(what, format!("unknown label `{s}`")))
}

pub(super) fn incident_row(r: &Row) -> Result<IncidentRow, PgError> {
    Ok(IncidentRow {
        id: r.try_get(0)?,
        subject_kind: parsed(r, 1, "incident subject kind", SubjectKind::from_label)?,
        subject: r.try_get(2)?,
        state: parsed(r, 3, "incident state", IncidentState::from_label)?,
        summary: r.try_get(4)?,
        opened_ms: r.try_get(5)?,
        updated_ms: r.try_get(6)?,
        resolved_ms: r.try_get(7)?,
        detail: r.try_get(8)?,
        opened_state: parsed(r, 9, "incident state", IncidentState::from_label)?,
        clear_since_ms: r.try_get(10)?,
        flaps: r.try_get(11)?,
        version: r.try_get(12)?,
    })
}

fn silence_row(r: &Row) -> Result<SilenceRow, PgError> {
    Ok(SilenceRow {
        id: r.try_get(0)?,
        vendor: r.try_get(1)?,
        check_id: r.try_get(2)?,
        region: r.try_get(3)?,
        starts_ms: r.try_get(4)?,
        ends_ms: r.try_get(5)?,
        comment: r.try_get(6)?,
        created_by: r.try_get(7)?,
        created_ms: r.try_get(8)?,
    })
}

async fn pairs(c: &deadpool_postgres::Client, sql: &str) -> Result<Vec<(String, String)>, PgError> {
    c.query(sql, &[])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

impl StateStore for PostgresStore {
    fn load_consensus(&self) -> Result<ConsensusRecords, StoreError> {
        self.run(async |c| {
            Ok(ConsensusRecords {
                checks: pairs(c, "SELECT check_id, state FROM check_states").await?,
                vendors: pairs(c, "SELECT vendor, status FROM vendor_states").await?,
                probes: pairs(c, "SELECT probe_id, health FROM probe_health").await?,
            })
        })
    }

    fn save_check_states(
        &self,
        states: &[(String, String)],
        transitions: &[TransitionRecord],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        // Sorted, so that concurrent writers lock rows in the same order.
        let mut states: Vec<&(String, String)> = states.iter().collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        self.transaction(async |tx| {
            let up = tx
                .prepare_cached(
                    "INSERT INTO check_states (check_id, state, updated_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (check_id) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms",
                )
                .await?;
            let params: Vec<[&(dyn ToSql + Sync); 3]> = states
                .iter()
                .map(|(id, state)| [id as &(dyn ToSql + Sync), state, &now_ms])
                .collect();
            futures_util::future::try_join_all(params.iter().map(|p| tx.execute(&up, p)))
                .await?;
            let ins = tx
                .prepare_cached(
                    "INSERT INTO transitions (check_id, vendor, at_ms, body) VALUES ($1, $2, $3, $4)",
                )
                .await?;
            let params: Vec<[&(dyn ToSql + Sync); 4]> = transitions
                .iter()
                .map(|t| {
                    [
                        &t.check_id as &(dyn ToSql + Sync),
                        &t.vendor,
                        &t.at_ms,
                        &t.body,
                    ]
                })
                .collect();
            futures_util::future::try_join_all(params.iter().map(|p| tx.execute(&ins, p)))
                .await?;
            Ok(())
        })
    }

    fn save_vendor_state(&self, vendor: &str, status: &str, now_ms: i64) -> Result<(), StoreError> {
        self.run(async |c| {
            c.execute(
                "INSERT INTO vendor_states (vendor, status, updated_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (vendor) DO UPDATE SET status = excluded.status, updated_ms = excluded.updated_ms",
                &[&vendor, &status, &now_ms],
            )
            .await?;
            Ok(())
        })
    }

    fn save_probe_health(&self, probe: &str, health: &str, now_ms: i64) -> Result<(), StoreError> {
        self.run(async |c| {
            c.execute(
                "INSERT INTO probe_health (probe_id, health, updated_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (probe_id) DO UPDATE SET health = excluded.health, updated_ms = excluded.updated_ms",
                &[&probe, &health, &now_ms],
            )
            .await?;
            Ok(())
        })
    }

    fn recent_results(&self, since_ms: i64) -> Result<Vec<RecentResult>, StoreError> {
        self.run(async |c| {
            c.query(
                "SELECT check_id, probe_id, region, started_ms, body FROM results
                 WHERE started_ms >= $1 ORDER BY started_ms",
                &[&since_ms],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(RecentResult {
                    check_id: r.try_get(0)?,
                    probe_id: r.try_get(1)?,
                    region: r.try_get(2)?,
                    started_ms: r.try_get(3)?,
                    body: r.try_get(4)?,
                })
            })
            .collect()
        })
    }

    fn transitions(&self, vendor: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        self.run(async |c| {
            c.query(
                "SELECT body FROM transitions WHERE vendor = $1 ORDER BY at_ms DESC, id DESC LIMIT $2",
                &[&vendor, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        })
    }

    fn open_incident(
        &self,
        kind: SubjectKind,
        subject: &str,
    ) -> Result<Option<IncidentRow>, StoreError> {
        self.run(async |c| {
            c.query_opt(
                &format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents
                     WHERE subject_kind = $1 AND subject = $2 AND resolved_ms IS NULL"
                ),
                &[&kind.as_label(), &subject],
            )
            .await?
            .as_ref()
            .map(incident_row)
            .transpose()
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
        let resolved = w.resolve.then_some(w.clear_since_ms.unwrap_or(w.at_ms));
        let (kind, state) = (w.subject_kind.as_label(), w.state.as_label());
        self.transaction(async |tx| {
            if let Some(f) = &w.fence {
                // The lease's row is locked until this commits: a takeover waits for it.
                let held = tx
                    .query_opt(
                        "SELECT 1 FROM leases WHERE part = $1 AND holder = $2 AND epoch = $3
                           AND expires_ms > vantage_now_ms() FOR SHARE",
                        &[&(f.part as i32), &f.node, &f.epoch],
                    )
                    .await?;
                if held.is_none() {
                    return Err(StoreError::Fenced(format!(
                        "partition {} is no longer held by {} at epoch {}",
                        f.part, f.node, f.epoch
                    ))
                    .into());
                }
            }
            let id: i64 = match w.id {
                None => {
                    let row = tx
                        .query_opt(
                            "INSERT INTO incidents (subject_kind, subject, state, summary, opened_ms, updated_ms,
                                                    resolved_ms, detail, opened_state, clear_since_ms)
                             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $3, $8)
                             ON CONFLICT (subject_kind, subject) WHERE resolved_ms IS NULL DO NOTHING
                             RETURNING id",
                            &[
                                &kind,
                                &w.subject,
                                &state,
                                &w.summary,
                                &w.at_ms,
                                &resolved,
                                &w.detail,
                                &w.clear_since_ms,
                            ],
                        )
                        .await?;
                    match row {
                        Some(r) => r.try_get(0)?,
                        None => {
                            return Err(StoreError::Conflict(format!(
                                "{kind} `{}` already has an open incident",
                                w.subject
                            ))
                            .into());
                        }
                    }
                }
                Some(id) => {
                    let n = tx
                        .execute(
                            "UPDATE incidents SET state = $2, summary = $3, updated_ms = $4,
                             resolved_ms = COALESCE(resolved_ms, $5), detail = $6, clear_since_ms = $7,
                             flaps = flaps + $8, version = version + 1
                             WHERE id = $1 AND ($9::BIGINT IS NULL OR version = $9)",
                            &[
                                &id,
                                &state,
                                &w.summary,
                                &w.at_ms,
                                &resolved,
                                &w.detail,
                                &w.clear_since_ms,
                                &i64::from(w.flap),
                                &w.expect_version,
                            ],
                        )
                        .await?;
                    if n == 0 {
                        return Err(StoreError::Conflict(format!(
                            "incident {id} changed since version {:?} was read",
                            w.expect_version
                        ))
                        .into());
                    }
                    id
                }
            };
            let mut seq: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM incident_events WHERE incident_id = $1",
                    &[&id],
                )
                .await?
                .try_get(0)?;
            for (event, detail) in &w.events {
                seq += 1;
                tx.execute(
                    "INSERT INTO incident_events (incident_id, seq, at_ms, kind, state, detail)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&id, &seq, &w.at_ms, event, &state, detail],
                )
                .await?;
            }
            for d in &w.deliveries {
                tx.execute(
                    "INSERT INTO outbox (incident_id, receiver, event, payload, created_ms, next_ms)
                     VALUES ($1, $2, $3, $4, $5, $5)",
                    &[&id, &d.receiver, &d.event.as_label(), &d.payload, &w.at_ms],
                )
                .await?;
                let (trig, res) = d.event.delivery_marks(w.at_ms);
                tx.execute(
                    "INSERT INTO deliveries (incident_id, receiver, triggered_ms, resolved_ms, last_sent_ms)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (incident_id, receiver) DO UPDATE SET
                       triggered_ms = COALESCE(deliveries.triggered_ms, excluded.triggered_ms),
                       resolved_ms = COALESCE(deliveries.resolved_ms, excluded.resolved_ms),
                       last_sent_ms = excluded.last_sent_ms",
                    &[&id, &d.receiver, &trig, &res, &w.at_ms],
                )
                .await?;
            }
            Ok(id)
        })
    }

    fn incidents(&self, q: &IncidentQuery) -> Result<Vec<IncidentRow>, StoreError> {
        self.run(async |c| {
            c.query(
                &format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents
                     WHERE ($1::TEXT IS NULL OR subject = $1) AND (NOT $2 OR resolved_ms IS NULL)
                     ORDER BY opened_ms DESC, id DESC LIMIT $3"
                ),
                &[&q.subject, &q.open_only, &i64::from(q.limit)],
            )
            .await?
            .iter()
            .map(incident_row)
            .collect()
        })
    }

    fn incident(&self, id: i64) -> Result<Option<IncidentRecord>, StoreError> {
        let Some(row) = self.run(async |c| {
            c.query_opt(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"),
                &[&id],
            )
            .await?
            .as_ref()
            .map(incident_row)
            .transpose()
        })?
        else {
            return Ok(None);
        };
        let events = self.run(async |c| {
            c.query(
                "SELECT seq, at_ms, kind, state, detail FROM incident_events
                 WHERE incident_id = $1 ORDER BY seq",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(IncidentEventRow {
                    seq: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    state: parsed(r, 3, "incident state", IncidentState::from_label)?,
                    detail: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, PgError>>()
        })?;
        let deliveries = self.deliveries(id)?;
        Ok(Some((row, events, deliveries)))
    }

    fn deliveries(&self, incident_id: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        self.run(async |c| {
            c.query(
                "SELECT receiver, triggered_ms, resolved_ms, last_sent_ms FROM deliveries
                 WHERE incident_id = $1 ORDER BY receiver",
                &[&incident_id],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(DeliveryRow {
                    receiver: r.try_get(0)?,
                    triggered_ms: r.try_get(1)?,
                    resolved_ms: r.try_get(2)?,
                    last_sent_ms: r.try_get(3)?,
                })
            })
            .collect()
        })
    }

    fn outbox_claim(
        &self,
        node: &str,
        now_ms: i64,
        claim_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.transaction(async |tx| {
            let mut rows = tx
                .query(
                    "WITH due AS (
                         SELECT o.id FROM outbox o
                         WHERE o.delivered_ms IS NULL AND o.dead_ms IS NULL AND o.next_ms <= $1
                           AND (o.claim_until_ms IS NULL OR o.claim_until_ms <= $1)
                           AND o.id = (SELECT MIN(p.id) FROM outbox p
                                       WHERE p.delivered_ms IS NULL AND p.dead_ms IS NULL
                                         AND p.receiver = o.receiver AND p.incident_id = o.incident_id)
                         ORDER BY o.id LIMIT $2
                         FOR UPDATE OF o SKIP LOCKED)
                     UPDATE outbox SET claimed_by = $3, claim_until_ms = $1 + $4
                     FROM due WHERE outbox.id = due.id
                     RETURNING outbox.id, outbox.incident_id, outbox.receiver, outbox.event,
                               outbox.payload, outbox.attempts, outbox.created_ms",
                    &[&now_ms, &i64::from(limit), &node, &claim_ms],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(OutboxRow {
                        id: r.try_get(0)?,
                        incident_id: r.try_get(1)?,
                        receiver: r.try_get(2)?,
                        event: parsed(r, 3, "alert event", AlertEvent::from_label)?,
                        payload: r.try_get(4)?,
                        attempts: u32::try_from(r.try_get::<_, i64>(5)?).unwrap_or(u32::MAX),
                        created_ms: r.try_get(6)?,
                    })
                })
                .collect::<Result<Vec<_>, PgError>>()?;
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        })
    }

    fn outbox_delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.run(async |c| {
            c.execute(
                "UPDATE outbox SET delivered_ms = $2, attempts = attempts + 1, last_error = NULL,
                 claimed_by = NULL, claim_until_ms = NULL WHERE id = $1",
                &[&id, &now_ms],
            )
            .await?;
            Ok(())
        })
    }

    fn outbox_retry(&self, id: i64, error: &str, next_ms: i64) -> Result<(), StoreError> {
        self.run(async |c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_ms = $3,
                 claimed_by = NULL, claim_until_ms = NULL WHERE id = $1",
                &[&id, &error, &next_ms],
            )
            .await?;
            Ok(())
        })
    }

    fn outbox_dead(&self, id: i64, error: &str, now_ms: i64) -> Result<(), StoreError> {
        self.transaction(async |tx| {
            let row = tx
                .query_opt(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2, dead_ms = $3,
                     claimed_by = NULL, claim_until_ms = NULL
                     WHERE id = $1 AND dead_ms IS NULL
                     RETURNING incident_id, receiver, event, attempts",
                    &[&id, &error, &now_ms],
                )
                .await?;
            if let Some(row) = row {
                let incident: i64 = row.try_get(0)?;
                let receiver: String = row.try_get(1)?;
                let event: String = row.try_get(2)?;
                let attempts: i64 = row.try_get(3)?;
                // The incident's row, locked: its timeline gets one entry at a time.
                let state: String = tx
                    .query_one(
                        "SELECT state FROM incidents WHERE id = $1 FOR UPDATE",
                        &[&incident],
                    )
                    .await?
                    .try_get(0)?;
                let seq: i64 = tx
                    .query_one(
                        "SELECT (COALESCE(MAX(seq), 0) + 1)::BIGINT FROM incident_events WHERE incident_id = $1",
                        &[&incident],
                    )
                    .await?
                    .try_get(0)?;
                let detail = serde_json::json!({
                    "receiver": receiver,
                    "event": event,
                    "attempts": attempts,
                    "last_error": error,
                    "why": "every attempt the receiver allows failed; this alert is given up",
                })
                .to_string();
                tx.execute(
                    "INSERT INTO incident_events (incident_id, seq, at_ms, kind, state, detail)
                     VALUES ($1, $2, $3, 'undeliverable', $4, $5)",
                    &[&incident, &seq, &now_ms, &state, &detail],
                )
                .await?;
            }
            Ok(())
        })
    }

    fn outbox_pending(&self) -> Result<u64, StoreError> {
        self.run(async |c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NULL AND dead_ms IS NULL",
                    &[],
                )
                .await?
                .try_get(0)?;
            Ok(n.max(0) as u64)
        })
    }

    fn add_silence(&self, s: &SilenceRow) -> Result<i64, StoreError> {
        self.run(async |c| {
            Ok(c.query_one(
                "INSERT INTO silences (vendor, check_id, region, starts_ms, ends_ms, comment, created_by, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &s.vendor,
                    &s.check_id,
                    &s.region,
                    &s.starts_ms,
                    &s.ends_ms,
                    &s.comment,
                    &s.created_by,
                    &s.created_ms,
                ],
            )
            .await?
            .try_get(0)?)
        })
    }

    fn silences(&self, at_ms: Option<i64>) -> Result<Vec<SilenceRow>, StoreError> {
        self.run(async |c| {
            c.query(
                "SELECT id, vendor, check_id, region, starts_ms, ends_ms, comment, created_by, created_ms
                 FROM silences
                 WHERE $1::BIGINT IS NULL OR (starts_ms <= $1 AND $1 < ends_ms) ORDER BY id",
                &[&at_ms],
            )
            .await?
            .iter()
            .map(silence_row)
            .collect()
        })
    }

    fn remove_silence(&self, id: i64) -> Result<bool, StoreError> {
        self.run(async |c| {
            Ok(c.execute("DELETE FROM silences WHERE id = $1", &[&id])
                .await?
                == 1)
        })
    }
}
