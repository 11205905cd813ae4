//! The store: every SQL statement Vantage runs lives below this module, behind [`Store`].
//!
//! The embedded default is [`SqliteStore`] (`sqlite/`). Nothing outside this module names a
//! backend's types: callers hold an `Arc<dyn Store>` from [`crate::server::open_store`], and a
//! backend's errors reach them as [`StoreError::Backend`]. [`migrate`] copies a SQLite store
//! into PostgreSQL (`vantage-coordinator migrate --to`).

pub mod lease;
pub mod migrate;
pub(crate) mod postgres;
pub mod report;
pub mod run;
pub(crate) mod sqlite;
pub mod state;

use std::collections::BTreeMap;

use serde::Serialize;
use vantage_checks::result::CheckResult;

pub use self::lease::LeaseStore;
pub use self::postgres::PostgresStore;
pub use self::report::ReportStore;
pub use self::run::RunStore;
pub use self::sqlite::{SqliteStore, Synchronous};
pub use self::state::StateStore;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed a statement: an SQL error, a lost connection, a full disk.
    #[error("{backend}: {message}")]
    Backend {
        /// Which database: `sqlite` or `postgresql`.
        backend: &'static str,
        /// What it said.
        message: String,
    },
    /// The store's settings are unusable (a bad URL, say).
    #[error("{0}")]
    Config(String),
    /// The database file was written by a newer Vantage.
    #[error(
        "the database schema is version {found}, newer than this coordinator's {supported}; upgrade the coordinator"
    )]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A stored value could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The writer task has stopped (the coordinator is shutting down).
    #[error("the store writer has stopped")]
    WriterGone,
    /// The writer's commit failed (a full disk, an I/O error): the batch was not stored.
    #[error("the store could not commit: {0}")]
    Commit(String),
    /// A read was stopped: past its deadline, or its client went away.
    #[error("the query was stopped: {0}")]
    Stopped(&'static str),
    /// A probe id that must be new already exists.
    #[error("probe `{0}` already exists")]
    ProbeExists(String),
    /// A probe id that must exist does not.
    #[error("no probe `{0}`")]
    NoSuchProbe(String),
    /// An incident write decided under a lease that this coordinator no longer holds (it
    /// expired, or moved to another coordinator): refused, since another decides now.
    #[error("fenced: {0}")]
    Fenced(String),
    /// An incident changed since it was read (another writer came first): decide again.
    #[error("conflict: {0}")]
    Conflict(String),
}

/// One result as ingested: the probe's raw result plus what the coordinator knows of the probe.
#[derive(Clone, Debug)]
pub struct IngestRow {
    /// The probe's region (from its registration, not from the result).
    pub region: String,
    /// When the coordinator received it (Unix milliseconds).
    pub received_ms: i64,
    /// The result as the probe sent it.
    pub result: CheckResult,
}

/// What a batch insert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InsertOutcome {
    /// Results stored for the first time.
    pub inserted: u64,
    /// Results already stored (same `(probe_id, boot_id, seq)`), ignored.
    pub duplicates: u64,
}

/// A filter over raw results.
#[derive(Clone, Debug, Default)]
pub struct ResultQuery {
    /// Only this check.
    pub check: Option<String>,
    /// Only this probe.
    pub probe: Option<String>,
    /// Only this vendor.
    pub vendor: Option<String>,
    /// Only this region.
    pub region: Option<String>,
    /// Started at or after (Unix ms).
    pub since_ms: Option<i64>,
    /// Started before (Unix ms).
    pub until_ms: Option<i64>,
    /// At most this many, newest first.
    pub limit: u32,
    /// Stops the query early: its deadline, or its client gone.
    pub stop: Stop,
}

/// Stops a long read: when cancelled (its client went away) or past its deadline. The store
/// looks at it while the query runs, not only before.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    cancelled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    deadline: Option<std::time::Instant>,
}

impl Stop {
    /// A stop at `deadline`, if any, and whenever [`Stop::cancel`] is called.
    pub fn new(deadline: Option<std::time::Instant>) -> Self {
        Self {
            cancelled: std::sync::Arc::default(),
            deadline,
        }
    }

    /// Stops the query (its client went away).
    pub fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Why the query must stop now, if it must.
    pub fn reason(&self) -> Option<&'static str> {
        if self.cancelled.load(std::sync::atomic::Ordering::Relaxed) {
            Some("its client went away")
        } else if self
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
        {
            Some("it ran past its deadline")
        } else {
            None
        }
    }
}

/// A registered probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeRecord {
    /// Probe id.
    pub id: String,
    /// Region.
    pub region: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Created (Unix ms).
    pub created_ms: i64,
    /// Revoked (Unix ms), if revoked.
    pub revoked_ms: Option<i64>,
    /// Last accepted request (Unix ms).
    pub last_seen_ms: Option<i64>,
}

/// A per-minute rollup row: one check, one probe, one minute.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rollup {
    /// Check id.
    pub check_id: String,
    /// Probe id.
    pub probe_id: String,
    /// Region of the probe.
    pub region: String,
    /// Start of the minute (Unix ms).
    pub minute_ms: i64,
    /// Results in the minute.
    pub count: u64,
    /// Results that failed (`status = "fail"`).
    pub failures: u64,
    /// Results the probe could not carry out (`status = "probe_error"`), counted in `count`
    /// but not valid runs: the probe's fault, not the vendor's.
    pub probe_errors: u64,
    /// Failures by label.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Passing results that were slow.
    pub slow: u64,
    /// Latency histogram of `total_ms`, see [`latency_bucket`].
    pub latency_buckets: Vec<u64>,
}

/// Number of latency histogram buckets in a rollup.
pub const LATENCY_BUCKETS: usize = 40;

/// The histogram bucket of a latency: bucket `i` holds `[2^((i-1)/2), 2^(i/2))` ms, roughly
/// 41% wide, from under 1 ms up to about 12 minutes in the last bucket.
pub fn latency_bucket(ms: f64) -> usize {
    if ms.is_nan() || ms < 1.0 {
        return 0;
    }
    let i = (ms.log2() * 2.0).floor() as i64 + 1;
    i.clamp(0, LATENCY_BUCKETS as i64 - 1) as usize
}

/// Upper bound (ms) of histogram bucket `i`.
pub fn latency_bucket_upper(i: usize) -> f64 {
    2f64.powf(i as f64 / 2.0)
}

/// Everything the coordinator keeps. All methods are blocking; call them from a blocking
/// thread or the store's own writer task.
pub trait Store: StateStore + ReportStore + LeaseStore + RunStore + Send + Sync + 'static {
    /// Stores several batches in one transaction (group commit), ignoring duplicates, and
    /// updates the rollups of the new results. Returns one outcome per batch, only after the
    /// transaction is durable per the `synchronous` setting.
    fn insert_batches(&self, batches: &[Vec<IngestRow>]) -> Result<Vec<InsertOutcome>, StoreError>;
    /// Stores one batch; see [`Store::insert_batches`].
    fn insert_results(&self, rows: &[IngestRow]) -> Result<InsertOutcome, StoreError> {
        let mut out = self.insert_batches(&[rows.to_vec()])?;
        Ok(out.pop().unwrap_or_default())
    }
    /// Raw results, newest first.
    fn query_results(&self, query: &ResultQuery) -> Result<Vec<CheckResult>, StoreError>;
    /// Rollups of one check between two instants (Unix ms).
    fn rollups(&self, check_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Rollup>, StoreError>;
    /// Deletes raw results that started before `raw_before_ms` (and on-demand runs created
    /// before then, with their results) and rollups before `rollups_before_ms`; returns how
    /// many raw results were deleted.
    fn prune(&self, raw_before_ms: i64, rollups_before_ms: i64) -> Result<u64, StoreError>;
    /// Registers a probe with the hash of its token.
    fn add_probe(&self, probe: &ProbeRecord, token_hash: &[u8]) -> Result<(), StoreError>;
    /// Every probe, revoked ones included.
    fn list_probes(&self) -> Result<Vec<ProbeRecord>, StoreError>;
    /// Gives a probe a new token (and un-revokes it); the old token stops working.
    fn set_probe_token(&self, id: &str, token_hash: &[u8]) -> Result<(), StoreError>;
    /// Revokes a probe from now on.
    fn revoke_probe(&self, id: &str, now_ms: i64) -> Result<(), StoreError>;
    /// The live (not revoked) probe holding this token hash.
    fn probe_by_token(&self, token_hash: &[u8]) -> Result<Option<ProbeRecord>, StoreError>;
    /// Records that a probe was seen.
    fn touch_probe(&self, id: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Size of the store on disk, in bytes.
    fn size_bytes(&self) -> Result<u64, StoreError>;
    /// The feed of committed results, for a store that other coordinators write to as well
    /// (PostgreSQL): each coordinator's engine then reads every result from it, whichever
    /// coordinator took it. `None` (SQLite: one coordinator) feeds the engine in process.
    fn feed(&self) -> Option<&dyn ResultFeed> {
        None
    }

    /// How many commits of results the ingest writer may have in flight at once: one for
    /// SQLite (one writer at a time); a server could take more, working on one commit while
    /// the coordinator prepares the next, where row locks allow.
    fn writers(&self) -> usize {
        1
    }
}

/// A position in the feed of committed results: (transaction, row) order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedCursor {
    /// The writing transaction.
    pub tx: i64,
    /// The row within the store's insert order.
    pub id: i64,
}

/// Every result committed through other handles on the store (other coordinators), in an
/// order that never goes back: a reader that follows the cursor sees each once it is committed
/// (and may see one again after a restart). The results a handle writes itself are passed over
/// (the cursor moves past them): their writer hands them to its engine at commit.
pub trait ResultFeed {
    /// A cursor from which the feed returns every result committed from now on (and perhaps
    /// some before: read what is already stored after taking it).
    fn feed_start(&self) -> Result<FeedCursor, StoreError>;
    /// Results committed after `after` (at most `limit` rows read, some perhaps passed over),
    /// and the cursor after them: a reader has read everything committed when it does not
    /// move.
    fn feed_after(
        &self,
        after: FeedCursor,
        limit: u32,
    ) -> Result<(Vec<IngestRow>, FeedCursor), StoreError>;
}
