//! On-demand regression runs (`POST /api/v1/runs`): a run asks every selected probe to run a
//! vendor's checks once, now. Its results are stored with the run, apart from the scheduled
//! results: they never vote in consensus, never reach the rollups (so never an SLA report) and
//! never the live stream of results.

use serde::{Deserialize, Serialize};
use vantage_checks::result::CheckResult;

use super::{IngestRow, InsertOutcome, StoreError};

/// A probe a run selected, with its region when the run started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProbe {
    /// Probe id.
    pub id: String,
    /// Its region.
    pub region: String,
    /// The run's checks that select it (its region and labels), by id.
    pub checks: Vec<String>,
}

/// A run as requested and resolved: the checks and probes it asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRun {
    /// The vendor.
    pub vendor: String,
    /// Free text for people ("before purge-rule change").
    pub label: Option<String>,
    /// The suite it was asked for by, if any.
    pub suite: Option<String>,
    /// The checks, sorted.
    pub checks: Vec<String>,
    /// The regions asked for (empty: every region).
    pub regions: Vec<String>,
    /// The probes selected, sorted by id.
    pub probes: Vec<RunProbe>,
    /// When it was asked for (Unix ms).
    pub created_ms: i64,
    /// When it stops waiting for results (Unix ms).
    pub deadline_ms: i64,
}

/// A stored run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    /// Its id, given by the store.
    pub id: i64,
    /// What it asks for.
    pub run: NewRun,
}

/// One result of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResultRow {
    /// The probe's region (from its registration).
    pub region: String,
    /// When the coordinator received it (Unix ms).
    pub received_ms: i64,
    /// The result, its `run` set.
    pub result: CheckResult,
}

/// Where runs and their results are kept.
pub trait RunStore {
    /// Stores a new run; returns its id (ids grow).
    fn create_run(&self, run: &NewRun) -> Result<i64, StoreError>;
    /// One run.
    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError>;
    /// Runs newest first, of one vendor and one suite when given.
    fn runs(
        &self,
        vendor: Option<&str>,
        suite: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError>;
    /// Runs whose deadline is after `now_ms` and whose id is after `after`, oldest first: the
    /// runs a probe may still owe results to.
    fn open_runs(&self, after: i64, now_ms: i64) -> Result<Vec<RunRecord>, StoreError>;
    /// The newest run id (0 when none): other coordinators' runs show here first.
    fn last_run_id(&self) -> Result<i64, StoreError>;
    /// Stores results of runs (each with `result.run` set), ignoring a (run, check, probe)
    /// already stored.
    fn insert_run_results(&self, rows: &[IngestRow]) -> Result<InsertOutcome, StoreError>;
    /// Every result of a run, by check then probe; of one probe only when given.
    fn run_results(&self, id: i64, probe: Option<&str>) -> Result<Vec<RunResultRow>, StoreError>;
}

/// Encodes a list for a text column.
pub(super) fn encode<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

/// Decodes a list from a text column.
pub(super) fn decode<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("run {what}: {e}")))
}

/// The run id a row answers; every row given to [`RunStore::insert_run_results`] has one.
pub(super) fn run_of(row: &IngestRow) -> Result<i64, StoreError> {
    row.result
        .run
        .ok_or_else(|| StoreError::Corrupt("a run result without a run id".to_owned()))
}
