//! [`LeaseStore`] on PostgreSQL: every time is the server's clock (`vantage_now_ms()`), so
//! coordinators whose clocks disagree still agree on who holds what. Free or expired leases
//! are taken with `FOR UPDATE SKIP LOCKED`: two coordinators balancing at once take different
//! ones, and neither waits for the other.

use super::{PgError, PostgresStore};
use crate::store::StoreError;
use crate::store::lease::{Lease, LeaseRecord, LeaseState, LeaseStore, Node, NodeRecord, share};

/// Coordinators not heard from for this long are forgotten.
const FORGET_MS: i64 = 86_400_000;

fn lease_of(r: &tokio_postgres::Row) -> Result<Lease, PgError> {
    Ok(Lease {
        part: u32::try_from(r.try_get::<_, i32>(0)?).unwrap_or_default(),
        epoch: r.try_get(1)?,
        expires_ms: r.try_get(2)?,
    })
}

impl LeaseStore for PostgresStore {
    fn balance_leases(&self, node: &Node, ttl_ms: i64) -> Result<LeaseState, StoreError> {
        self.transaction(async |tx| {
            let now: i64 = tx.query_one("SELECT vantage_now_ms()", &[]).await?.try_get(0)?;
            tx.execute(
                "INSERT INTO coordinators (node, address, version, started_ms, heartbeat_ms)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (node) DO UPDATE SET address = excluded.address,
                   version = excluded.version, heartbeat_ms = excluded.heartbeat_ms",
                &[&node.node, &node.address, &node.version, &node.started_ms, &now],
            )
            .await?;
            tx.execute(
                "DELETE FROM coordinators WHERE heartbeat_ms < $1",
                &[&(now - FORGET_MS)],
            )
            .await?;
            let mut held: Vec<Lease> = tx
                .query(
                    "UPDATE leases SET expires_ms = $2 + $3 WHERE holder = $1 AND expires_ms > $2
                     RETURNING part, epoch, expires_ms",
                    &[&node.node, &now, &ttl_ms],
                )
                .await?
                .iter()
                .map(lease_of)
                .collect::<Result<_, _>>()?;
            let live: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM coordinators WHERE heartbeat_ms > $1",
                    &[&(now - ttl_ms)],
                )
                .await?
                .try_get(0)?;
            let live = usize::try_from(live).unwrap_or(1).max(1);
            let want = share(live);
            held.sort_by_key(|l| l.part);
            while held.len() > want {
                let extra = held.pop().expect("more than wanted");
                tx.execute(
                    "UPDATE leases SET holder = NULL, expires_ms = 0 WHERE part = $1 AND holder = $2",
                    &[&(extra.part as i32), &node.node],
                )
                .await?;
            }
            if held.len() < want {
                let taken = tx
                    .query(
                        "UPDATE leases SET holder = $1, epoch = epoch + 1, expires_ms = $2 + $3, acquired_ms = $2
                         WHERE part IN (SELECT part FROM leases WHERE holder IS NULL OR expires_ms <= $2
                                        ORDER BY part LIMIT $4 FOR UPDATE SKIP LOCKED)
                         RETURNING part, epoch, expires_ms",
                        &[&node.node, &now, &ttl_ms, &((want - held.len()) as i64)],
                    )
                    .await?;
                for r in &taken {
                    held.push(lease_of(r)?);
                }
                held.sort_by_key(|l| l.part);
            }
            for l in &held {
                tx.execute(
                    "INSERT INTO coverage (part, epoch, node, from_ms, to_ms) VALUES ($1, $2, $3, $4, $4)
                     ON CONFLICT (part, epoch) DO UPDATE SET to_ms = GREATEST(coverage.to_ms, excluded.to_ms)",
                    &[&(l.part as i32), &l.epoch, &node.node, &now],
                )
                .await?;
            }
            Ok(LeaseState {
                now_ms: now,
                held,
                live,
            })
        })
    }

    fn release_leases(&self, node: &str) -> Result<(), StoreError> {
        self.transaction(async |tx| {
            tx.execute(
                "UPDATE leases SET holder = NULL, expires_ms = 0 WHERE holder = $1",
                &[&node],
            )
            .await?;
            tx.execute("DELETE FROM coordinators WHERE node = $1", &[&node])
                .await?;
            Ok(())
        })
    }

    fn cluster(&self, within_ms: i64) -> Result<(Vec<NodeRecord>, Vec<LeaseRecord>), StoreError> {
        self.run(async |c| {
            let nodes = c
                .query(
                    "SELECT node, address, version, started_ms, heartbeat_ms FROM coordinators
                     WHERE heartbeat_ms > vantage_now_ms() - $1 ORDER BY node",
                    &[&within_ms],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(NodeRecord {
                        node: Node {
                            node: r.try_get(0)?,
                            address: r.try_get(1)?,
                            version: r.try_get(2)?,
                            started_ms: r.try_get(3)?,
                        },
                        heartbeat_ms: r.try_get(4)?,
                    })
                })
                .collect::<Result<Vec<_>, PgError>>()?;
            let leases = c
                .query(
                    "SELECT part, holder, epoch, expires_ms FROM leases ORDER BY part",
                    &[],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(LeaseRecord {
                        part: u32::try_from(r.try_get::<_, i32>(0)?).unwrap_or_default(),
                        holder: r.try_get(1)?,
                        epoch: r.try_get(2)?,
                        expires_ms: r.try_get(3)?,
                    })
                })
                .collect::<Result<Vec<_>, PgError>>()?;
            Ok((nodes, leases))
        })
    }

    fn coverage(&self, part: u32, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        self.run(async |c| {
            c.query(
                "SELECT from_ms, to_ms FROM coverage WHERE part = $1 AND to_ms > $2 AND from_ms < $3
                 ORDER BY from_ms, epoch",
                &[&(part as i32), &from_ms, &to_ms],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }
}
