//! `vantage-coordinator run`: the client of on-demand regression runs. It starts a run of a
//! vendor's checks on the coordinator (`POST /api/v1/runs`), waits for the probes' results,
//! compares them with a baseline run when asked, prints a table, JSON or JUnit report, and
//! exits with a code a CI job can act on.
//!
//! The order of steps is chosen so that a mistake costs no run: the output file, the token,
//! the CA and the baseline are all checked before the run is started, and `--baseline last`
//! is fetched first so that it is never the run just started. Once started, the run belongs
//! to the coordinator: a client that stops waiting (Ctrl-C, `--wait` passed, a coordinator
//! gone quiet) leaves it to finish there, and says its id.
//!
//! stdout holds the report alone. Progress goes to stderr, a line whenever the count of
//! results moves (at most one a poll, four a second), on a terminal and in a CI log alike:
//! the log then shows how the run went.
//!
//! Layout:
//! - [`view`]: the API's wire types as read here (`RunView`, the request body).
//! - [`client`]: HTTP(S) to the coordinator, answers sorted into refusals and outages.
//! - [`facts`]: the facts of a result that are shown and compared, by name.
//! - [`diff`]: the before/after diff, and its rule for regressions and noise.
//! - [`report`]: the counts, the verdict and the exit codes, with their precedence.
//! - [`table`], [`junit`]: the text and JUnit outputs (JSON is the report's serialization).
//!
//! Everything but [`run`] and [`client`] is pure and tested with hand-built runs. [`run`] is
//! the shell: tested against a fake coordinator in this process (`fake.rs`), and through
//! the binary (`vantage-coordinator run`) by an end-to-end test once the server side lands.

pub mod client;
pub mod diff;
pub mod facts;
pub mod junit;
pub mod report;
pub mod table;
pub mod view;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod fixtures;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use self::client::{Client, ClientError};
pub use self::report::{Exit, Report};
use self::view::{RunRequest, RunState, RunView};
use crate::alert::Secret;

/// How often a running run is asked about.
pub const POLL: Duration = Duration::from_millis(250);
/// How long past `--wait` the client keeps asking, for the coordinator to close the run.
pub const GRACE: Duration = Duration::from_secs(3);
/// The environment variable read for the token when there is no `--token-file`.
pub const TOKEN_ENV: &str = "VANTAGE_API_TOKEN";

/// The run to compare with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// The newest run of the same vendor (and suite, when one is given), before this one.
    Last,
    /// The run of this id.
    Run(i64),
}

impl Baseline {
    /// Parses `--baseline`: a run id, or `last`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "last" => Ok(Self::Last),
            t => match t.parse::<i64>() {
                Ok(id) if id > 0 => Ok(Self::Run(id)),
                _ => Err(format!(
                    "a run id like `42`, or `last` for the newest run of the vendor; got `{s}`"
                )),
            },
        }
    }
}

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for a terminal.
    Table,
    /// The [`Report`] as JSON.
    Json,
    /// JUnit XML for CI.
    Junit,
}

/// What `run` was asked to do, as parsed from its flags.
#[derive(Debug)]
pub struct Options {
    /// The coordinator's base URL.
    pub coordinator: url::Url,
    /// The file holding the operator token (wins over the environment).
    pub token_file: Option<PathBuf>,
    /// The value of [`TOKEN_ENV`], if set.
    pub token_env: Option<Secret>,
    /// A PEM CA to trust for the coordinator's certificate, instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The vendor whose checks run.
    pub vendor: String,
    /// Check ids to run.
    pub checks: Vec<String>,
    /// A suite to run.
    pub suite: Option<String>,
    /// Only probes of these regions.
    pub regions: Vec<String>,
    /// A note kept with the run.
    pub label: Option<String>,
    /// How long the coordinator waits for the probes.
    pub wait: Duration,
    /// The output format.
    pub format: Format,
    /// Where the report goes; stdout without it (or with `-`).
    pub output: Option<PathBuf>,
    /// The run to compare with.
    pub baseline: Option<Baseline>,
}

/// Why `run` ends without a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Exit 2: the request cannot succeed as given.
    #[error("{0}")]
    Invalid(String),
    /// Exit 4: the coordinator could not answer, or the report could not be written.
    #[error("{0}")]
    Unavailable(String),
}

impl RunError {
    /// The exit code.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Invalid(_) => Exit::Invalid,
            Self::Unavailable(_) => Exit::Unavailable,
        }
    }

    /// A client error met while starting the run or reading the baseline: a refusal is the
    /// request's fault, anything else the coordinator's.
    fn before_start(context: &str, e: ClientError) -> Self {
        match e {
            ClientError::Refused { .. } | ClientError::Setup(_) => {
                Self::Invalid(format!("{context}: {e}"))
            }
            ClientError::Unavailable(_) => Self::Unavailable(format!("{context}: {e}")),
        }
    }
}

/// The operator token: the first line of `file`, else `env`, trimmed. Never echoed.
pub fn token(file: Option<&Path>, env: Option<&Secret>) -> Result<Secret, RunError> {
    let (text, from) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                RunError::Invalid(format!(
                    "cannot read the token file `{}`: {e}",
                    path.display()
                ))
            })?;
            (text, format!("the token file `{}`", path.display()))
        }
        None => match env {
            Some(s) => (s.expose().to_owned(), format!("${TOKEN_ENV}")),
            None => {
                return Err(RunError::Invalid(format!(
                    "no API token: starting a run needs an operator token from `[api]` in \
                     coordinator.toml, in a file given with --token-file or in ${TOKEN_ENV}"
                )));
            }
        },
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(RunError::Invalid(format!(
            "{from} is empty: it should hold an operator token from `[api]` in coordinator.toml"
        )));
    }
    Ok(Secret::new(token))
}

/// The report in `format`, as the bytes to write.
pub fn render(report: &Report, format: Format) -> Result<String, RunError> {
    Ok(match format {
        Format::Table => table::render(report),
        Format::Junit => junit::render(report),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report).map_err(|e| {
                RunError::Unavailable(format!("cannot write the report as JSON: {e}"))
            })?;
            s.push('\n');
            s
        }
    })
}

/// `--wait` as sent: whole seconds (`90s`) or milliseconds (`1500ms`), a form every
/// duration parser takes, where a person's `1m 30s` would need a lenient one.
pub fn wait_text(wait: Duration) -> String {
    if wait.subsec_millis() == 0 {
        format!("{}s", wait.as_secs())
    } else {
        format!("{}ms", wait.as_millis())
    }
}

/// `run 7: 4/6 probes reported (12/18 results)`.
pub fn progress(view: &RunView) -> String {
    let owing = view.missing_probes().len();
    format!(
        "run {}: {}/{} probes reported ({}/{} results)",
        view.id,
        view.probes.len().saturating_sub(owing),
        view.probes.len(),
        view.results_in(),
        view.results.len()
    )
}

/// Where the report goes: checked before the run starts, written after it ends, and
/// removed again if this command created it and has no report to put in it.
struct Output {
    path: Option<PathBuf>,
    created: bool,
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Self, RunError> {
        let Some(path) = path.filter(|p| *p != Path::new("-")) else {
            return Ok(Self {
                path: None,
                created: false,
            });
        };
        let existed = path.exists();
        // Opened without truncating: an earlier report stays whole until this one replaces it.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| {
                RunError::Invalid(format!(
                    "cannot write the report to `{}`: {e}",
                    path.display()
                ))
            })?;
        Ok(Self {
            path: Some(path.to_owned()),
            created: !existed,
        })
    }

    fn write(&self, text: &str) -> Result<(), RunError> {
        use std::io::Write as _;
        match &self.path {
            Some(path) => std::fs::write(path, text).map_err(|e| {
                RunError::Unavailable(format!(
                    "cannot write the report to `{}`: {e}",
                    path.display()
                ))
            }),
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| RunError::Unavailable(format!("cannot write the report: {e}")))
            }
        }
    }

    /// Removes the file this command created, when it ends without a report.
    fn abandon(&self) {
        if let (Some(path), true) = (&self.path, self.created) {
            // Best effort: the error that ended the command is the one worth telling.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Runs `vantage-coordinator run`: prints the report and any error, and returns the exit
/// code.
pub async fn run(options: Options) -> Exit {
    let output = match Output::open(options.output.as_deref()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit();
        }
    };
    match execute(&options).await.and_then(|report| {
        output.write(&render(&report, options.format)?)?;
        Ok(report.exit)
    }) {
        Ok(exit) => exit,
        Err(e) => {
            output.abandon();
            eprintln!("error: {e}");
            e.exit()
        }
    }
}

/// Every step but writing the report: the client, the baseline, the run and the wait.
async fn execute(o: &Options) -> Result<Report, RunError> {
    let token = token(o.token_file.as_deref(), o.token_env.as_ref())?;
    warn_if_clear_text(&o.coordinator);
    let client = Client::new(o.coordinator.clone(), &token, o.ca_file.as_deref())
        .map_err(|e| RunError::Invalid(e.to_string()))?;

    let baseline = match o.baseline {
        None => None,
        Some(b) => Some(fetch_baseline(&client, b, o).await?),
    };

    let request = RunRequest {
        vendor: o.vendor.clone(),
        checks: o.checks.clone(),
        suite: o.suite.clone(),
        regions: o.regions.clone(),
        label: o.label.clone(),
        wait: Some(wait_text(o.wait)),
    };
    let started = client.start(&request).await.map_err(|e| {
        let hint = match &e {
            ClientError::Refused { status: 404, .. } => {
                " (a coordinator without the runs API answers so: is it older than this client?)"
            }
            _ => "",
        };
        RunError::before_start(&format!("cannot start the run{hint}"), e)
    })?;
    eprintln!(
        "run {} started: {} results expected from {} probe{} in {}; waiting up to {}",
        started.id,
        started.results.len(),
        started.probes.len(),
        if started.probes.len() == 1 { "" } else { "s" },
        {
            // Where the probes selected are (the request's regions, or all of them).
            let mut regions: Vec<&str> = started.probes.iter().map(|p| p.region.as_str()).collect();
            regions.sort_unstable();
            regions.dedup();
            regions.join(", ")
        },
        vantage_checks::duration::format(o.wait)
    );
    let view = wait_for(&client, started, o.wait + GRACE).await?;
    if !view.missing_probes().is_empty() {
        eprintln!("timed out: no result from {}", view.missing_text());
    }
    Ok(Report::new(view, baseline.as_ref()))
}

/// The baseline run, fetched before the new run starts.
async fn fetch_baseline(client: &Client, b: Baseline, o: &Options) -> Result<RunView, RunError> {
    match b {
        Baseline::Last => {
            let found = client
                .latest(&o.vendor, o.suite.as_deref())
                .await
                .map_err(|e| RunError::before_start("cannot look up the last run", e))?;
            found.ok_or_else(|| {
                let suite = o
                    .suite
                    .as_ref()
                    .map(|s| format!(" with suite `{s}`"))
                    .unwrap_or_default();
                RunError::Invalid(format!(
                    "--baseline last: there is no earlier run of vendor `{}`{suite} to compare \
                     with; run once without --baseline first, or name a run, e.g. \
                     `--baseline 42`",
                    o.vendor
                ))
            })
        }
        Baseline::Run(id) => {
            let view = client.get(id).await.map_err(|e| {
                RunError::before_start(&format!("--baseline {id}: cannot read run {id}"), e)
            })?;
            if view.vendor != o.vendor {
                return Err(RunError::Invalid(format!(
                    "--baseline {id} is a run of vendor `{}`, not `{}`: a baseline must be a \
                     run of the same vendor",
                    view.vendor, o.vendor
                )));
            }
            Ok(view)
        }
    }
}

/// Asks about the run until it is no longer running or `patience` has passed, printing
/// progress to stderr when it moves. A coordinator that stops answering is asked again
/// until then: the run goes on there whatever this client sees.
async fn wait_for(
    client: &Client,
    mut view: RunView,
    patience: Duration,
) -> Result<RunView, RunError> {
    let give_up = Instant::now() + patience;
    let id = view.id;
    let mut shown = progress(&view);
    let mut failing: Option<String> = None;
    while view.state == RunState::Running {
        if Instant::now() >= give_up {
            if let Some(e) = failing {
                return Err(RunError::Unavailable(format!(
                    "run {id}: no answer from the coordinator until the wait was over ({e}); \
                     the run goes on there: GET /api/v1/runs/{id}"
                )));
            }
            eprintln!(
                "run {id}: still running {} past the wait; stopped waiting",
                vantage_checks::duration::format(GRACE)
            );
            break;
        }
        tokio::time::sleep(POLL).await;
        match client.get(id).await {
            Ok(v) => {
                failing = None;
                view = v;
                let now = progress(&view);
                if now != shown {
                    eprintln!("{now}");
                    shown = now;
                }
            }
            Err(ClientError::Unavailable(e)) => {
                if failing.is_none() {
                    eprintln!("run {id}: {e}; asking again");
                }
                failing = Some(e);
            }
            Err(e) => {
                return Err(RunError::Unavailable(format!(
                    "run {id}: {e}; the run goes on there: GET /api/v1/runs/{id}"
                )));
            }
        }
    }
    Ok(view)
}

/// Warns when the token would cross a network in clear text.
fn warn_if_clear_text(url: &url::Url) {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        eprintln!(
            "warning: the API token goes to {} in clear text; use https unless this network is trusted",
            url.host_str().unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{ok, run};
    use super::*;

    #[test]
    fn baseline_values() {
        assert_eq!(Baseline::parse("last"), Ok(Baseline::Last));
        assert_eq!(Baseline::parse("42"), Ok(Baseline::Run(42)));
        for bad in ["", "first", "-1", "0", "4 2", "latest"] {
            let e = Baseline::parse(bad).expect_err(bad);
            assert!(e.contains("a run id like `42`, or `last`"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_token_comes_from_the_file_first_then_the_environment_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "  from-file\n").expect("write");
        let env = Secret::new(" from-env\n");
        let got = |f: Option<&Path>, e: Option<&Secret>| token(f, e).map(|s| s.expose().to_owned());
        assert_eq!(
            got(Some(&file), Some(&env)).ok().as_deref(),
            Some("from-file")
        );
        assert_eq!(got(None, Some(&env)).ok().as_deref(), Some("from-env"));
        let none = token(None, None).expect_err("no token");
        assert_eq!(none.exit(), Exit::Invalid);
        assert!(
            none.to_string()
                .contains("--token-file or in $VANTAGE_API_TOKEN"),
            "{none}"
        );
        std::fs::write(&file, " \n").expect("write");
        let empty = token(Some(&file), None).expect_err("an empty file");
        assert!(empty.to_string().contains("is empty"), "{empty}");
        let missing = token(Some(&dir.path().join("nope")), Some(&env)).expect_err("missing");
        assert!(
            missing.to_string().contains("cannot read the token file"),
            "{missing}"
        );
    }

    #[test]
    fn wait_is_sent_in_a_form_any_parser_takes() {
        assert_eq!(wait_text(Duration::from_secs(60)), "60s");
        assert_eq!(wait_text(Duration::from_secs(90)), "90s");
        assert_eq!(wait_text(Duration::from_millis(1500)), "1500ms");
        let back = vantage_checks::duration::parse(&wait_text(Duration::from_millis(2250)));
        assert_eq!(back, Ok(Duration::from_millis(2250)));
    }

    #[test]
    fn progress_counts_probes_and_results() {
        let view = run(
            7,
            RunState::Running,
            vec![
                ("img", "p1", Some(ok("img", "p1", 1.0))),
                ("js", "p1", Some(ok("js", "p1", 1.0))),
                ("img", "p2", Some(ok("img", "p2", 1.0))),
                ("js", "p2", None),
                ("img", "p3", None),
                ("js", "p3", None),
            ],
        );
        assert_eq!(progress(&view), "run 7: 1/3 probes reported (3/6 results)");
    }

    #[test]
    fn json_output_has_the_documented_shape() {
        let base = run(
            5,
            RunState::Done,
            vec![("img", "p1", Some(ok("img", "p1", 100.0)))],
        );
        let now = run(
            7,
            RunState::TimedOut,
            vec![
                ("img", "p1", Some(ok("img", "p1", 900.0))),
                ("img", "p2", None),
            ],
        );
        let text = render(&Report::new(now, Some(&base)), Format::Json).expect("renders");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let mut keys: Vec<&str> = v
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            vec!["baseline", "diff", "exit_code", "run", "summary"]
        );
        assert_eq!(v["baseline"], 5);
        assert_eq!(v["exit_code"], 1);
        assert_eq!(v["run"]["id"], 7);
        assert_eq!(v["run"]["state"], "timed_out");
        assert_eq!(v["run"]["created"], "2026-12-06T09:00:00.123Z");
        assert_eq!(v["run"]["results"][1]["result"], serde_json::Value::Null);
        assert_eq!(v["run"]["results"][0]["result"]["facts"]["kind"], "http");
        assert_eq!(
            v["diff"],
            serde_json::json!([
                {
                    "check": "img", "probe": "p1", "region": "eu", "class": "regression",
                    "aspect": "latency", "before": "100 ms", "after": "900 ms"
                },
                {
                    "check": "img", "probe": "p2", "region": "us", "class": "change",
                    "aspect": "added", "before": null, "after": null
                }
            ])
        );
        assert_eq!(
            v["summary"],
            serde_json::json!({
                "expected": 2, "passed": 1, "failed": 0, "probe_errors": 0, "missing": 1,
                "regressed": 1, "changed": 1, "uncompared": 0
            })
        );
        // The run reads back as a RunView: a later `--baseline` could be taken from a file.
        let back: RunView = serde_json::from_value(v["run"].clone()).expect("a RunView");
        assert_eq!(back.id, 7);
        let alone = render(
            &Report::new(
                run(
                    8,
                    RunState::Done,
                    vec![("img", "p1", Some(ok("img", "p1", 1.0)))],
                ),
                None,
            ),
            Format::Json,
        )
        .expect("renders");
        let v: serde_json::Value = serde_json::from_str(&alone).expect("JSON");
        assert_eq!(
            (v["baseline"].clone(), v["exit_code"].clone()),
            (serde_json::Value::Null, 0.into())
        );
    }
}
