//! Executors: run one check once and describe what happened.
//!
//! Each kind has its own module with the same shape:
//! `run(&Spec, timeout, source) -> Result<Observation, ExecError>`, where `source` is the
//! probe's [`RunEnv::source_address`]. `Ok(observation)` is every outcome the vendor is
//! responsible for, pass or fail; `Err` means the probe itself could not test (a missing CA
//! file, no resolver, an unusable source address), and becomes a `probe_error`.

pub mod cache_status;
pub(crate) mod dns;
pub(crate) mod http;
pub(crate) mod net;
mod tcp;
mod tls;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

pub use self::http::{DECODED_BODY_FACTOR, DecodeError, MAX_CONTENT_CODINGS, decode_body};
pub use self::tls::MAX_CA_FILE_BYTES;
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
    /// The probe's `source_address` cannot be used for this run: it is not an address of this
    /// host, or every address of the target is of the other IP family.
    #[error("cannot use source_address {address}: {message}")]
    SourceAddress {
        /// The configured source address.
        address: IpAddr,
        /// What went wrong, and what to do about it.
        message: String,
    },
    /// Anything else the probe got wrong.
    #[error("{0}")]
    Internal(String),
}

impl ExecError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Unsupported(_) => FailureKind::TlsUnsupportedProtocol,
            Self::LocalFile { .. } | Self::SourceAddress { .. } | Self::Internal(_) => {
                FailureKind::ProbeInternal
            }
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
    /// The local address every socket of a run is bound to before it connects or sends (the
    /// probe's `source_address`), so that checks leave a multi-homed host through a chosen
    /// address. Target addresses of the other IP family are skipped; a run left with none,
    /// or an address this host does not have, is a `probe_error`. `None`: the system chooses.
    pub source_address: Option<IpAddr>,
}

impl RunEnv {
    /// The environment of `vantage-probe once`.
    pub fn local() -> Self {
        Self {
            probe_id: "local".to_owned(),
            boot_id: new_boot_id(),
            source_address: None,
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

/// Reads the `ca` files of a newly loaded config, each distinct path once, and shares the
/// result among the checks that name it, so no run reads one again (see
/// [`crate::model::CaCache`]). Returns the ids of the checks whose file cannot be used, with
/// why; those checks' runs report it as a `probe_error` until a config reload.
pub fn load_ca_files(checks: &mut [Check]) -> Vec<(String, ExecError)> {
    let mut by_path: std::collections::HashMap<PathBuf, crate::model::CaCache> =
        std::collections::HashMap::new();
    let mut failed = Vec::new();
    for check in checks.iter_mut() {
        let (ca_file, cache) = match &mut check.spec {
            CheckSpec::Http(h) => (&h.ca_file, &mut h.ca_cache),
            CheckSpec::Tls(t) => (&t.ca_file, &mut t.ca_cache),
            CheckSpec::Dns(_) | CheckSpec::Tcp(_) => continue,
        };
        let Some(path) = ca_file else { continue };
        *cache = by_path.entry(path.clone()).or_default().clone();
        if let Err(e) = tls::TlsClient::new(Some(path), cache) {
            failed.push((check.id.clone(), e));
        }
    }
    failed
}

/// Runs one check once, with its fast retry, and returns its result.
///
/// `seq` is the probe's sequence number for this result.
pub async fn run_check(check: &Check, env: &RunEnv, seq: u64) -> CheckResult {
    let started_at = OffsetDateTime::now_utc();
    let mut attempt = run_once(check, env.source_address).await;
    let mut retried = false;
    if attempt.as_ref().is_ok_and(|o| o.status == Status::Fail)
        && let Some(pause) = check.settings.retry
    {
        tokio::time::sleep(pause).await;
        attempt = run_once(check, env.source_address).await;
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
    let mut result = CheckResult {
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
        truncated: None,
        run: None,
    };
    // Within the limits before it is spooled: cut, never refused whole.
    crate::limits::fit(&mut result);
    result
}

/// One attempt, under the hard timeout, with sockets bound to `source` when set.
async fn run_once(check: &Check, source: Option<IpAddr>) -> Result<Observation, ExecError> {
    let timeout = check.settings.timeout;
    let start = Instant::now();
    let run = async {
        match &check.spec {
            CheckSpec::Dns(spec) => dns::run(spec, timeout, source).await,
            CheckSpec::Http(spec) => http::run(spec, timeout, source).await,
            CheckSpec::Tls(spec) => tls::run(spec, timeout, source).await,
            CheckSpec::Tcp(spec) => tcp::run(spec, timeout, source).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: &str, keys: &str) -> Check {
        let text = format!(
            "[[vendor]]\nid = \"v\"\n\n[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"{kind}\"\n\
             timeout = \"1s\"\nretry = \"off\"\n{keys}\n"
        );
        let set = crate::config::parse_str(&text).unwrap_or_else(|d| panic!("{}", d.render()));
        set.checks.into_iter().next().expect("one check")
    }

    /// A source address this host does not have makes every kind a `probe_error` naming it,
    /// where the same run without it is the vendor's `connect_refused` (or `dns_timeout`).
    #[tokio::test]
    async fn a_source_address_not_on_this_host_is_a_probe_error_for_every_kind() {
        // A port that was free a moment ago: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cases = [
            (
                "tcp",
                format!("target = \"127.0.0.1:{closed}\""),
                FailureKind::ConnectRefused,
            ),
            (
                "tls",
                format!("target = \"127.0.0.1:{closed}\"\nserver_name = \"example.com\""),
                FailureKind::ConnectRefused,
            ),
            (
                "http",
                format!("url = \"http://127.0.0.1:{closed}/\""),
                FailureKind::ConnectRefused,
            ),
            (
                "cdn",
                format!("url = \"http://example.com/\"\nedge = \"127.0.0.1:{closed}\""),
                FailureKind::ConnectRefused,
            ),
            (
                "dns",
                format!(
                    "zone = \"example.com\"\nquery = {{ name = \"www.example.com\", type = \"A\" }}\n\
                     servers = [\"127.0.0.1:{closed}\"]"
                ),
                FailureKind::DnsTimeout,
            ),
        ];
        for (kind, keys, vendor_failure) in cases {
            let check = check(kind, &keys);
            let plain = run_check(&check, &RunEnv::local(), 0).await;
            assert_eq!(plain.status, Status::Fail, "{kind}: {plain:?}");
            assert_eq!(plain.failure, Some(vendor_failure), "{kind}: {plain:?}");

            let env = RunEnv {
                source_address: Some(IpAddr::from([192, 0, 2, 1])),
                ..RunEnv::local()
            };
            let bound = run_check(&check, &env, 0).await;
            assert_eq!(bound.status, Status::ProbeError, "{kind}: {bound:?}");
            assert_eq!(bound.failure, Some(FailureKind::ProbeInternal), "{kind}");
            let message = bound.message.unwrap_or_default();
            assert!(
                message.starts_with("cannot use source_address 192.0.2.1: cannot bind"),
                "{kind}: {message}"
            );
        }
    }
}
