//! This coordinator among the coordinators sharing its store: who it is, which partitions it
//! evaluates (its leases, renewed by [`run`]), and the [`Fence`] each incident write carries.
//!
//! On SQLite there is one coordinator, which holds every lease: the same code path, with
//! nothing to share. On PostgreSQL the leases are spread over the live coordinators (see
//! [`crate::store::lease`]). A coordinator believes it holds a lease only until its store
//! expiry, measured from when it asked for it, less a margin; the store checks the fence again
//! in the same transaction as every incident write, so a coordinator that was paused past its
//! lease never writes under it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::alert::SubjectKind;
use crate::metrics::Metrics;
use crate::store::lease::{Fence, Lease, Node, part_of};
use crate::store::{Store, StoreError};

/// Default lease: a dead coordinator's partitions move within it plus a third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// A lease is believed held until this long before its expiry, as measured here.
const MARGIN: Duration = Duration::from_millis(500);

/// This coordinator's place in the cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Who it is.
    pub node: Node,
    /// Lease length.
    pub lease: Duration,
    /// Held leases by partition, each with the local instant it is believed held until.
    held: std::sync::RwLock<BTreeMap<u32, (Lease, Instant)>>,
    /// Balancing passes that failed in a row.
    failures: AtomicU64,
}

/// A node id unique to this process: host name, process id and a random suffix.
fn node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "coordinator".into()
    } else {
        host
    };
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

impl Cluster {
    /// This coordinator, serving on `address`, with leases of `lease`.
    pub fn new(address: String, lease: Duration) -> Self {
        Self {
            node: Node {
                node: node_id(),
                address,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_ms: crate::ingest::unix_ms(time::OffsetDateTime::now_utc()),
            },
            lease,
            held: Default::default(),
            failures: AtomicU64::new(0),
        }
    }

    /// The fence to write an incident about `(kind, id)` under, if this coordinator holds its
    /// partition now.
    pub fn fence(&self, kind: SubjectKind, id: &str) -> Option<Fence> {
        let part = part_of(kind, id);
        let held = self.held.read().unwrap_or_else(|p| p.into_inner());
        let (lease, until) = held.get(&part)?;
        (Instant::now() < *until).then(|| Fence {
            node: self.node.node.clone(),
            part,
            epoch: lease.epoch,
        })
    }

    /// True when this coordinator evaluates `(kind, id)` now.
    pub fn holds(&self, kind: SubjectKind, id: &str) -> bool {
        self.fence(kind, id).is_some()
    }

    /// The leases held now.
    pub fn held(&self) -> Vec<Lease> {
        let now = Instant::now();
        self.held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|(_, until)| now < *until)
            .map(|(l, _)| *l)
            .collect()
    }

    /// Balancing passes that failed in a row (the store unreachable).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// One balancing pass; returns the partitions gained and lost.
    pub fn balance(&self, store: &dyn Store) -> Result<(Vec<u32>, Vec<u32>), StoreError> {
        let asked = Instant::now();
        let ttl_ms = self.lease.as_millis() as i64;
        let state = match store.balance_leases(&self.node, ttl_ms) {
            Ok(s) => s,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.failures.store(0, Ordering::Relaxed);
        let mut held = self.held.write().unwrap_or_else(|p| p.into_inner());
        let before: Vec<(u32, i64)> = held.iter().map(|(p, (l, _))| (*p, l.epoch)).collect();
        held.clear();
        for l in &state.held {
            // Believed held until the store's expiry, counted from when it was asked for.
            let left = Duration::from_millis((l.expires_ms - state.now_ms).max(0) as u64);
            held.insert(l.part, (*l, asked + left.saturating_sub(MARGIN)));
        }
        let gained = state
            .held
            .iter()
            .filter(|l| !before.contains(&(l.part, l.epoch)))
            .map(|l| l.part)
            .collect();
        let lost = before
            .iter()
            .filter(|(p, e)| !state.held.iter().any(|l| l.part == *p && l.epoch == *e))
            .map(|(p, _)| *p)
            .collect();
        Ok((gained, lost))
    }

    /// Forgets every lease here (the store refused them, or this coordinator stops).
    pub fn drop_all(&self) {
        self.held.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Balances leases every third of the lease until the task is aborted; `gained` is notified
/// when a partition comes to this coordinator (its incidents are reconciled at once).
pub async fn run(
    cluster: Arc<Cluster>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    gained: Arc<tokio::sync::Notify>,
) {
    let mut every = tokio::time::interval(cluster.lease / 3);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let (c, s) = (Arc::clone(&cluster), Arc::clone(&store));
        match tokio::task::spawn_blocking(move || c.balance(&*s)).await {
            Ok(Ok((gain, lose))) => {
                if !gain.is_empty() {
                    tracing::info!(node = %cluster.node.node, partitions = ?gain, "leases taken: these partitions are evaluated here now");
                    gained.notify_one();
                }
                if !lose.is_empty() {
                    tracing::info!(node = %cluster.node.node, partitions = ?lose, "leases given up or lost");
                }
            }
            Ok(Err(e)) => {
                metrics.store_error(crate::metrics::StoreOp::Lease);
                tracing::error!(error = %e, node = %cluster.node.node, "cannot renew leases; partitions are given up as their leases run out");
            }
            Err(e) => tracing::error!(error = %e, "the lease task panicked"),
        }
        metrics.set_leases(&cluster.held());
    }
}
