//! Evaluation leases: several coordinators on one store, and each decision made once.
//!
//! Vendors and probes are spread over [`PARTS`] partitions by a stable hash of their id. A
//! coordinator evaluates a partition (records its states, opens and resolves its incidents)
//! only while it holds the partition's lease. Leases live in the store with an expiry and an
//! **epoch** that grows by one each time the lease changes hands. Every incident write carries
//! the [`Fence`] it was decided under, and the store refuses it unless the lease is still held
//! by that coordinator, at that epoch, unexpired, by the store's own clock, in the same
//! transaction as the write. A holder paused or cut off past its lease (a stopped process, a
//! partition) may still believe it owns the partition; its writes are refused all the same.
//!
//! [`LeaseStore::balance_leases`] is called by each coordinator every third of the lease: it
//! records the coordinator as alive, renews what it holds, gives up leases above its fair share
//! (partitions / live coordinators, rounded up) and takes free or expired ones below it. A dead
//! coordinator's leases are taken by the others within the lease plus one balancing period.
//! Each held lease also extends its partition's **coverage**: the time some coordinator was
//! evaluating it, which SLA reports need to tell "operational" from "nobody was looking".

use serde::Serialize;

use super::StoreError;
use crate::alert::{Label as _, SubjectKind};

/// Partitions of the vendors and probes.
pub const PARTS: u32 = 16;

/// The partition of a subject: FNV-1a of `kind:id`, stable across builds and machines.
pub fn part_of(kind: SubjectKind, id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in kind
        .as_label()
        .bytes()
        .chain(std::iter::once(b':'))
        .chain(id.bytes())
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % PARTS
}

/// A coordinator, as it announces itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Unique per process: a restarted coordinator is a new node.
    pub node: String,
    /// Where it serves, for people.
    pub address: String,
    /// Its version.
    pub version: String,
    /// When it started (Unix ms).
    pub started_ms: i64,
}

/// A coordinator, as the store last heard of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRecord {
    /// What it announced.
    #[serde(flatten)]
    pub node: Node,
    /// Its last balancing pass (Unix ms, the store's clock).
    pub heartbeat_ms: i64,
}

/// One lease this coordinator holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The partition.
    pub part: u32,
    /// Its epoch: grows by one each time the lease changes hands.
    pub epoch: i64,
    /// Held until (Unix ms, the store's clock) unless renewed.
    pub expires_ms: i64,
}

/// A lease, whoever holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseRecord {
    /// The partition.
    pub part: u32,
    /// Its holder, if any.
    pub holder: Option<String>,
    /// Its epoch.
    pub epoch: i64,
    /// Held until (Unix ms).
    pub expires_ms: i64,
}

/// What a balancing pass left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseState {
    /// The store's clock at the pass (Unix ms).
    pub now_ms: i64,
    /// The leases this coordinator holds, by partition.
    pub held: Vec<Lease>,
    /// Coordinators alive (a heartbeat within the lease), this one included.
    pub live: usize,
}

/// Proof of ownership for an incident write: the partition's lease, held by `node` at `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The coordinator that decided the write.
    pub node: String,
    /// The subject's partition.
    pub part: u32,
    /// The epoch of its lease when the write was decided.
    pub epoch: i64,
}

/// The fair share of partitions with `live` coordinators.
pub fn share(live: usize) -> usize {
    (PARTS as usize).div_ceil(live.max(1))
}

/// Leases, coordinators and coverage.
pub trait LeaseStore {
    /// One balancing pass for `node` with leases of `ttl_ms`: heartbeat, renew, give up the
    /// leases above the fair share, take free or expired ones below it, extend coverage. In
    /// one transaction, by the store's clock.
    fn balance_leases(&self, node: &Node, ttl_ms: i64) -> Result<LeaseState, StoreError>;
    /// Gives up every lease of `node` and forgets it (a graceful stop): the others take its
    /// partitions at their next pass instead of after the lease.
    fn release_leases(&self, node: &str) -> Result<(), StoreError>;
    /// The coordinators heard from within `within_ms`, and every lease.
    fn cluster(&self, within_ms: i64) -> Result<(Vec<NodeRecord>, Vec<LeaseRecord>), StoreError>;
    /// The spans (from, to), Unix ms, in which some coordinator held partition `part`'s lease,
    /// overlapping `[from_ms, to_ms)`, in time order (they may overlap each other).
    fn coverage(&self, part: u32, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, i64)>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // Pinned: a change would move every vendor's lease in a rolling upgrade.
        let pinned = [
            (SubjectKind::Vendor, "fastcdn", 4),
            (SubjectKind::Vendor, "acme", 1),
            (SubjectKind::Vendor, "tcpco", 8),
            (SubjectKind::Probe, "fra-1", 6),
        ];
        for (kind, id, part) in pinned {
            assert_eq!(part_of(kind, id), part, "{id}");
        }
        assert_ne!(
            (0..64)
                .map(|i| part_of(SubjectKind::Vendor, &format!("v{i}")))
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            1
        );
        let used: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| part_of(SubjectKind::Vendor, &format!("vendor-{i}")))
            .collect();
        assert_eq!(
            used.len(),
            PARTS as usize,
            "200 vendors reach every partition"
        );
        assert!(used.iter().all(|p| *p < PARTS));
        assert_eq!(share(1), 16);
        assert_eq!(share(3), 6);
        assert_eq!(share(0), 16);
    }
}
