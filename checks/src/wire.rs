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
///
/// Fields this build does not know are ignored, here and in every result: a newer probe may
/// add some, and its results must still be stored ([`decode_batch`] counts them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Results of the batch that were not stored, each with why; every other result was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refused>,
}

/// One result of a batch the coordinator did not store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Its place in the batch, from 0.
    pub index: usize,
    /// Its `seq`, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Why, as a stable label.
    pub reason: RefusalReason,
    /// What was wrong, for people.
    pub message: String,
}

/// Why the coordinator refused one result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// It started further in the future than the allowed clock skew: the probe's clock is
    /// ahead. Send it again later: it becomes acceptable as time passes.
    ClockSkew,
    /// It started longer ago than the coordinator keeps accepting.
    TooOld,
    /// A field, or its facts, is larger than the coordinator's limits.
    TooLarge,
    /// Its `probe_id` is not the probe whose token sent it.
    WrongProbe,
    /// Its schema version is one this coordinator does not speak.
    SchemaVersion,
    /// It breaks another rule (an empty id, a timing that is not a number).
    Invalid,
    /// Its check is not one this probe is selected to run.
    NotSelected,
    /// The probe sent more runs of the check within a minute than its interval allows.
    RateLimited,
    /// A reason this build does not know (a newer coordinator's).
    #[serde(other)]
    Other,
}

impl RefusalReason {
    /// Every reason, for metrics.
    pub const ALL: [RefusalReason; 9] = [
        Self::ClockSkew,
        Self::TooOld,
        Self::TooLarge,
        Self::WrongProbe,
        Self::SchemaVersion,
        Self::Invalid,
        Self::NotSelected,
        Self::RateLimited,
        Self::Other,
    ];

    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::ClockSkew => "clock_skew",
            Self::TooOld => "too_old",
            Self::TooLarge => "too_large",
            Self::WrongProbe => "wrong_probe",
            Self::SchemaVersion => "schema_version",
            Self::Invalid => "invalid",
            Self::NotSelected => "not_selected",
            Self::RateLimited => "rate_limited",
            Self::Other => "other",
        }
    }

    /// True when sending the same result again later can succeed: the probe keeps it.
    pub fn retry_later(self) -> bool {
        self == Self::ClockSkew
    }
}

/// A decoded `POST /api/v1/results` body: each result on its own, so that one the coordinator
/// cannot read is refused alone ([`decode_batch`]).
#[derive(Debug)]
pub struct DecodedBatch {
    /// Each result, or why it could not be read.
    pub results: Vec<Result<CheckResult, serde_json::Error>>,
    /// The probe's counters.
    pub counters: Option<ProbeCounters>,
    /// Fields this build does not know, ignored, in the batch and its results.
    pub unknown_fields: u64,
}

#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    results: Vec<&'a serde_json::value::RawValue>,
    #[serde(default)]
    counters: Option<ProbeCounters>,
}

/// Decodes a `POST /api/v1/results` body. The envelope must be a batch; each result is
/// decoded on its own, so a result this build cannot read (a newer value of an enum, a
/// missing field) fails alone. Fields this build does not know are ignored and counted.
pub fn decode_batch(body: &[u8]) -> Result<DecodedBatch, serde_json::Error> {
    let mut unknown = 0u64;
    let mut de = serde_json::Deserializer::from_slice(body);
    let raw: RawBatch<'_> = serde_ignored::deserialize(&mut de, |_| unknown += 1)?;
    de.end()?;
    crate::result::take_ignored();
    let results = raw
        .results
        .iter()
        .map(|r| {
            let mut de = serde_json::Deserializer::from_str(r.get());
            serde_ignored::deserialize(&mut de, |_| unknown += 1)
        })
        .collect();
    Ok(DecodedBatch {
        results,
        counters: raw.counters,
        unknown_fields: unknown + crate::result::take_ignored(),
    })
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

/// An on-demand run a probe owes results to: run each of `checks` once, now, and push the
/// results with `run` set to `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOrder {
    /// The run's id.
    pub id: i64,
    /// The checks this probe still owes a result of, by id.
    pub checks: Vec<String>,
    /// After this the run stops waiting: a result sent later is still stored, but too late.
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: time::OffsetDateTime,
}

/// The answer to `GET /api/v1/probe/runs?after=ID&wait=SECONDS`, a long poll: the runs with
/// ids after `after` that this probe owes results to, as soon as there are some, or none once
/// `wait` has passed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOrders {
    /// The runs, oldest first.
    pub runs: Vec<RunOrder>,
}

/// An error body: `{"error": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, for people.
    pub error: String,
}
