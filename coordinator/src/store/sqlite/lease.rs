//! [`LeaseStore`] on SQLite. One coordinator uses a SQLite store, so it holds every lease;
//! they still give it fencing epochs and the coverage SLA reports read (a coordinator's
//! downtime is time nobody was evaluating).

use rusqlite::params;

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::lease::{Lease, LeaseRecord, LeaseState, LeaseStore, Node, NodeRecord, share};

/// Coordinators not heard from for this long are forgotten.
const FORGET_MS: i64 = 86_400_000;

impl LeaseStore for SqliteStore {
    fn balance_leases(&self, node: &Node, ttl_ms: i64) -> Result<LeaseState, StoreError> {
        self.write(|conn| {
            let now = super::now_ms();
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO coordinators (node, address, version, started_ms, heartbeat_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (node) DO UPDATE SET address = excluded.address,
                   version = excluded.version, heartbeat_ms = excluded.heartbeat_ms",
                params![node.node, node.address, node.version, node.started_ms, now],
            )?;
            tx.execute(
                "DELETE FROM coordinators WHERE heartbeat_ms < ?1",
                [now - FORGET_MS],
            )?;
            let lease = |r: &rusqlite::Row<'_>| {
                Ok(Lease {
                    part: r.get(0)?,
                    epoch: r.get(1)?,
                    expires_ms: r.get(2)?,
                })
            };
            let mut held: Vec<Lease> = tx
                .prepare_cached(
                    "UPDATE leases SET expires_ms = ?2 + ?3 WHERE holder = ?1 AND expires_ms > ?2
                     RETURNING part, epoch, expires_ms",
                )?
                .query_map(params![node.node, now, ttl_ms], lease)?
                .collect::<Result<_, _>>()?;
            let live: i64 = tx.query_row(
                "SELECT COUNT(*) FROM coordinators WHERE heartbeat_ms > ?1",
                [now - ttl_ms],
                |r| r.get(0),
            )?;
            let live = usize::try_from(live).unwrap_or(1).max(1);
            let want = share(live);
            held.sort_by_key(|l| l.part);
            while held.len() > want {
                let extra = held.pop().expect("more than wanted");
                tx.execute(
                    "UPDATE leases SET holder = NULL, expires_ms = 0 WHERE part = ?1 AND holder = ?2",
                    params![extra.part, node.node],
                )?;
            }
            if held.len() < want {
                let taken: Vec<Lease> = tx
                    .prepare_cached(
                        "UPDATE leases SET holder = ?1, epoch = epoch + 1, expires_ms = ?2 + ?3, acquired_ms = ?2
                         WHERE part IN (SELECT part FROM leases WHERE holder IS NULL OR expires_ms <= ?2
                                        ORDER BY part LIMIT ?4)
                         RETURNING part, epoch, expires_ms",
                    )?
                    .query_map(
                        params![node.node, now, ttl_ms, (want - held.len()) as i64],
                        lease,
                    )?
                    .collect::<Result<_, _>>()?;
                held.extend(taken);
                held.sort_by_key(|l| l.part);
            }
            for l in &held {
                tx.prepare_cached(
                    "INSERT INTO coverage (part, epoch, node, from_ms, to_ms) VALUES (?1, ?2, ?3, ?4, ?4)
                     ON CONFLICT (part, epoch) DO UPDATE SET to_ms = MAX(to_ms, excluded.to_ms)",
                )?
                .execute(params![l.part, l.epoch, node.node, now])?;
            }
            tx.commit()?;
            Ok(LeaseState {
                now_ms: now,
                held,
                live,
            })
        })
    }

    fn release_leases(&self, node: &str) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE leases SET holder = NULL, expires_ms = 0 WHERE holder = ?1",
                [node],
            )?;
            tx.execute("DELETE FROM coordinators WHERE node = ?1", [node])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn cluster(&self, within_ms: i64) -> Result<(Vec<NodeRecord>, Vec<LeaseRecord>), StoreError> {
        let now = super::now_ms();
        self.read(|conn| {
            let nodes = conn
                .prepare_cached(
                    "SELECT node, address, version, started_ms, heartbeat_ms FROM coordinators
                     WHERE heartbeat_ms > ?1 ORDER BY node",
                )?
                .query_map([now - within_ms], |r| {
                    Ok(NodeRecord {
                        node: Node {
                            node: r.get(0)?,
                            address: r.get(1)?,
                            version: r.get(2)?,
                            started_ms: r.get(3)?,
                        },
                        heartbeat_ms: r.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let leases = conn
                .prepare_cached("SELECT part, holder, epoch, expires_ms FROM leases ORDER BY part")?
                .query_map([], |r| {
                    Ok(LeaseRecord {
                        part: r.get(0)?,
                        holder: r.get(1)?,
                        epoch: r.get(2)?,
                        expires_ms: r.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok((nodes, leases))
        })
    }

    fn coverage(&self, part: u32, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT from_ms, to_ms FROM coverage WHERE part = ?1 AND to_ms > ?2 AND from_ms < ?3
                     ORDER BY from_ms, epoch",
                )?
                .query_map(params![part, from_ms, to_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?)
        })
    }
}
