//! Executors: run one check once and describe what happened.
//!
//! Each kind has its own module with the same shape: `run(&Spec, &RunEnv) -> Result<Observation, ExecError>`.
//! `Ok(observation)` is every outcome the vendor is responsible for, pass or fail; `Err` means the
//! probe itself could not test (a missing CA file, no resolver), and becomes a `probe_error`.

pub mod cache_status;
mod dns;
mod http;
pub(crate) mod net;
mod tcp;
mod tls;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::model::{Check, CheckSpec};
use crate::result::{
    CheckResult, Facts, FailureKind, RESULT_SCHEMA_VERSION, Status, Timings, millis,
};

/// The probe could not run a check; the vendor is not at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A local file named by the check could not be read or parsed.
    #[error("cannot read {what} `{}`: {message}", path.display())]
    LocalFile {
        /// What the file is for.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The server uses a protocol this probe refuses, so it cannot be tested from here.
    #[error("cannot test from this probe: {0}")]
    Unsupported(String),
    /// Anything else the probe got wrong.
    #[error("{0}")]
    Internal(String),
}

impl ExecError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Unsupported(_) => FailureKind::TlsUnsupportedProtocol,
            Self::LocalFile { .. } | Self::Internal(_) => FailureKind::ProbeInternal,
        }
    }
}

/// What an executor saw: the vendor's part of a [`CheckResult`].
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// `Ok` or `Fail` (never `ProbeError`: that is an [`ExecError`]).
    pub status: Status,
    /// Why it failed.
    pub failure: Option<FailureKind>,
    /// Details for people.
    pub message: Option<String>,
    /// Per-phase timings; `total_ms` is filled in by [`run_check`] when left at zero.
    pub timings: Timings,
    /// Kind-specific facts.
    pub facts: Facts,
}

impl Observation {
    /// A passing observation.
    pub fn ok(timings: Timings, facts: Facts) -> Self {
        Self {
            status: Status::Ok,
            failure: None,
            message: None,
            timings,
            facts,
        }
    }

    /// A failing observation.
    pub fn fail(
        kind: FailureKind,
        message: impl Into<String>,
        timings: Timings,
        facts: Facts,
    ) -> Self {
        Self {
            status: Status::Fail,
            failure: Some(kind),
            message: Some(message.into()),
            timings,
            facts,
        }
    }
}

/// Where a run happens: probe identity and overrides that are the probe's business, not the check's.
#[derive(Clone, Debug)]
pub struct RunEnv {
    /// The probe's id (`local` for `vantage-probe once`).
    pub probe_id: String,
    /// The probe process's boot id.
    pub boot_id: String,
}

impl RunEnv {
    /// The environment of `vantage-probe once`.
    pub fn local() -> Self {
        Self {
            probe_id: "local".to_owned(),
            boot_id: new_boot_id(),
        }
    }
}

/// A fresh random boot id (16 hex digits).
pub fn new_boot_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Extra time past the check's `timeout` before the run is cut off hard. Executors budget their
/// own phases inside `timeout` so that they can say which phase was slow; this is the backstop.
const HARD_TIMEOUT_SLACK: Duration = Duration::from_millis(500);

/// Runs one check once, with its fast retry, and returns its result.
///
/// `seq` is the probe's sequence number for this result.
pub async fn run_check(check: &Check, env: &RunEnv, seq: u64) -> CheckResult {
    let started_at = OffsetDateTime::now_utc();
    let mut attempt = run_once(check).await;
    let mut retried = false;
    if attempt.as_ref().is_ok_and(|o| o.status == Status::Fail)
        && let Some(pause) = check.settings.retry
    {
        tokio::time::sleep(pause).await;
        attempt = run_once(check).await;
        retried = true;
    }
    let obs = attempt.unwrap_or_else(|err| Observation {
        status: Status::ProbeError,
        failure: Some(err.failure_kind()),
        message: Some(err.to_string()),
        timings: Timings::default(),
        facts: Facts::None,
    });
    let slow = obs.status == Status::Ok
        && check
            .settings
            .slow
            .is_some_and(|slow| obs.timings.total_ms > millis(slow));
    CheckResult {
        v: RESULT_SCHEMA_VERSION,
        check_id: check.id.clone(),
        vendor: check.vendor.clone(),
        kind: check.kind(),
        probe_id: env.probe_id.clone(),
        boot_id: env.boot_id.clone(),
        seq,
        started_at,
        status: obs.status,
        failure: obs.failure,
        message: obs.message,
        slow,
        retried,
        timings: obs.timings,
        facts: obs.facts,
    }
}

/// One attempt, under the hard timeout.
async fn run_once(check: &Check) -> Result<Observation, ExecError> {
    let timeout = check.settings.timeout;
    let start = Instant::now();
    let run = async {
        match &check.spec {
            CheckSpec::Dns(spec) => dns::run(spec, timeout).await,
            CheckSpec::Http(spec) => http::run(spec, timeout).await,
            CheckSpec::Tls(spec) => tls::run(spec, timeout).await,
            CheckSpec::Tcp(spec) => tcp::run(spec, timeout).await,
        }
    };
    let mut obs = match tokio::time::timeout(timeout + HARD_TIMEOUT_SLACK, run).await {
        Ok(result) => result?,
        Err(_) => Observation::fail(
            FailureKind::Timeout,
            format!("the run took longer than its timeout of {timeout:?}"),
            Timings::default(),
            Facts::None,
        ),
    };
    if obs.timings.total_ms == 0.0 {
        obs.timings.total_ms = millis(start.elapsed());
    }
    Ok(obs)
}
