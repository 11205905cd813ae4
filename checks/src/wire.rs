//! The probe ↔ coordinator API bodies (JSON, under `/api/v1`), shared by both binaries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Check;
use crate::result::CheckResult;

/// The probe's own counters, sent with every batch so the coordinator sees probe health.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeCounters {
    /// Check runs started since boot.
    pub runs: u64,
    /// Results in the spool waiting for acknowledgement.
    pub pending: u64,
    /// Results acknowledged by the coordinator since boot.
    pub sent: u64,
    /// Batch sends retried since boot.
    pub retried: u64,
    /// Results dropped at the spool's bounds (size or age) since boot.
    pub dropped: u64,
    /// Results refused by the coordinator with a 4xx (not retried) since boot.
    pub rejected: u64,
    /// Bytes the spool holds on disk.
    pub spool_bytes: u64,
}

/// `POST /api/v1/results`: a batch of raw results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultBatch {
    /// The results, each carrying `(probe_id, boot_id, seq)`.
    pub results: Vec<CheckResult>,
    /// The probe's counters at send time.
    #[serde(default)]
    pub counters: Option<ProbeCounters>,
}

/// The answer to a committed batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAck {
    /// Results stored for the first time.
    pub accepted: u64,
    /// Results already stored, ignored (a re-delivery).
    pub duplicates: u64,
    /// Checks whose verdict is failing anywhere: probes run these at `failing_interval`.
    #[serde(default)]
    pub failing_checks: Vec<String>,
}

/// `GET /api/v1/probe/config`: what this probe must run.
///
/// The checks come validated and resolved (every default applied) by the coordinator, and
/// only those selected for this probe: the probe decodes them straight into the
/// [`Check`]s it runs, and re-compiles their patterns. A field or kind this build does not
/// know is refused, so an older probe never runs a check it would misread.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The probe's id, as registered.
    pub probe_id: String,
    /// The probe's region, as registered.
    pub region: String,
    /// The probe's labels, as registered.
    pub labels: BTreeMap<String, String>,
    /// The checks selected for this probe, in file order.
    pub checks: Vec<Check>,
}

/// An error body: `{"error": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, for people.
    pub error: String,
}
