//! `vantage-probe run`: the long-running agent.
//!
//! Four tasks share the work:
//! - the **config poller** pulls this probe's checks with `If-None-Match` every few seconds,
//!   decodes them (the coordinator sends them validated, resolved and selected for this
//!   probe), persists the last good config, and publishes it; a probe restarted while the
//!   coordinator is down runs from disk;
//! - the **scheduler** runs one task per check on its phase-offset grid (see [`crate::schedule`])
//!   with bounded concurrency, at `failing_interval` while the coordinator says it is failing;
//! - the **spooler** numbers every result (`seq`) and writes it to the disk spool before
//!   anything else sees it;
//! - the **shipper** pushes batches from the spool, removes them only once acknowledged, and
//!   retries network errors, 5xx and 429 with jittered backoff, honouring `Retry-After`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use vantage_checks::exec::{RunEnv, new_boot_id, run_check};
use vantage_checks::model::Check;
use vantage_checks::result::CheckResult;
use vantage_checks::wire::{ProbeConfig, ResultBatch, RunOrder};

use crate::client::{ClientError, ConfigAnswer, CoordinatorClient};
use crate::metrics::Counters;
use crate::schedule::{next_run_ms, phase_offset};
use crate::settings::Settings;
use crate::spool::{Encoded, Spool, SpoolConfig, SpoolError};

/// Most results in one pushed batch.
const BATCH_MAX: usize = 500;
/// How long the shipper waits for more results before pushing a partial batch.
const BATCH_LINGER: Duration = Duration::from_secs(1);
/// How long one long poll for on-demand runs waits at the coordinator.
const RUNS_POLL_WAIT: Duration = Duration::from_secs(10);
/// On-demand runs carried out at once; more wait their turn.
const RUNS_AT_ONCE: usize = 16;
/// Results waiting between the checks and the spool; a full queue makes checks wait.
const RESULT_QUEUE: usize = 4096;
/// Backoff bounds for failed pushes.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Time the shipper gets at shutdown to push what is spooled.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The coordinator refused the token: the probe must not keep running blind.
    #[error(
        "{0}; register the probe again with `vantage-coordinator probe add` and update its token file"
    )]
    Unauthorized(String),
    /// The spool could not be used.
    #[error("spool: {0}")]
    Spool(String),
    /// The client could not be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The state directory is unusable.
    #[error("state directory `{}`: {source}", path.display())]
    State {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The local metrics endpoint cannot listen.
    #[error("cannot listen on {addr} for /metrics (metrics_listen): {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The coordinator's registration disagrees with this probe's settings.
    #[error("{0}")]
    Identity(String),
}

/// What the scheduler runs: the checks selected for this probe. Each check task holds the
/// plan and its check's index, so a check is in memory once.
#[derive(Debug)]
struct Plan {
    probe_id: String,
    checks: Vec<Check>,
}

/// The last good config, as persisted in the state directory: `{"etag": …, "config": …}`,
/// the config being the coordinator's answer as it came (see [`persist`]).
#[derive(Deserialize)]
struct Persisted {
    etag: Option<String>,
    config: ProbeConfig,
}

fn config_path(state: &Path) -> PathBuf {
    state.join("config.json")
}

/// Turns a config document into a plan, checking it against this probe's settings.
fn plan_from(doc: ProbeConfig, settings: &Settings) -> Result<Plan, String> {
    if let Some(id) = &settings.expect_id
        && id != &doc.probe_id
    {
        return Err(format!(
            "this probe is configured as `{id}` but its token belongs to probe `{}`",
            doc.probe_id
        ));
    }
    if let Some(region) = &settings.expect_region
        && region != &doc.region
    {
        return Err(format!(
            "this probe is configured for region `{region}` but is registered in `{}`; fix one of them",
            doc.region
        ));
    }
    if let Some(labels) = &settings.expect_labels
        && labels != &doc.labels
    {
        return Err(format!(
            "this probe's labels {labels:?} differ from its registration {:?}",
            doc.labels
        ));
    }
    let mut checks = doc.checks;
    checks.shrink_to_fit();
    // Each `ca` file once per config, not per run; a bad one is that check's probe_error.
    for (check, error) in vantage_checks::exec::load_ca_files(&mut checks) {
        tracing::warn!(check = %check, error = %error, "a check's CA file cannot be used; its runs report probe_error until the config changes");
    }
    Ok(Plan {
        probe_id: doc.probe_id,
        checks,
    })
}

/// Persists the coordinator's answer `body` (already decoded once, so valid JSON) with its
/// ETag, without decoding or encoding it again.
fn persist(path: &Path, etag: Option<&str>, body: &[u8]) -> std::io::Result<()> {
    let etag = serde_json::to_string(&etag).map_err(std::io::Error::other)?;
    write_atomic(
        path,
        &[b"{\"etag\":", etag.as_bytes(), b",\"config\":", body, b"}"],
    )
}

/// Writes the concatenated `parts` to `path` atomically: a temporary file, fsync, rename, fsync
/// of the directory.
///
/// The file is created `0600` (owner read and write only): the coordinator's answer names every
/// vendor endpoint this probe checks and may carry the checks' request headers (tokens). A
/// temporary file left by a crash is removed first, so the mode is the one it is created with,
/// never an older file's.
fn write_atomic(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut f = std::io::BufWriter::new(file);
    for part in parts {
        f.write_all(part)?;
    }
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM: the shutdown signal of both binaries.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Runs the agent until `shutdown` completes or a fatal error.
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let state_dir = settings.state_dir.clone();
    std::fs::create_dir_all(&state_dir).map_err(|source| AgentError::State {
        path: state_dir.clone(),
        source,
    })?;
    let spool_config = SpoolConfig {
        dir: state_dir.join("spool"),
        max_bytes: settings.spool_max_bytes,
        max_age: settings.spool_max_age,
    };
    let (spool, spool_thread) = SpoolThread::open(spool_config).await?;
    let client = CoordinatorClient::new(&settings)?;
    let counters = Arc::new(Counters::default());
    let metrics = match settings.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AgentError::Metrics { addr, source })?;
            tracing::info!(%addr, "serving the probe's own metrics on /metrics");
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                Arc::new(counters.registry()),
            )))
        }
        None => None,
    };
    let settings = Arc::new(settings);
    let failing: Arc<RwLock<HashSet<String>>> = Arc::default();
    let env = Arc::new(RunEnv {
        probe_id: String::new(),
        boot_id: new_boot_id(),
        source_address: settings.source_address,
    });
    if let Some(source) = settings.source_address {
        tracing::info!(source_address = %source, "checks leave from the source address");
    }

    // The last good config, so a probe that starts while the coordinator is down still runs.
    let mut initial_etag = None;
    let (plan_tx, plan_rx) = watch::channel::<Option<Arc<Plan>>>(None);
    if let Ok(bytes) = std::fs::read(config_path(&state_dir))
        && let Ok(p) = serde_json::from_slice::<Persisted>(&bytes)
    {
        match plan_from(p.config, &settings) {
            Ok(plan) => {
                tracing::info!(
                    checks = plan.checks.len(),
                    "running the last good config from disk"
                );
                initial_etag = p.etag;
                let _ = plan_tx.send(Some(Arc::new(plan)));
            }
            Err(e) => {
                tracing::warn!(error = %e, "the config on disk is unusable; waiting for the coordinator")
            }
        }
    }

    let (fatal_tx, mut fatal_rx) = mpsc::channel::<AgentError>(4);
    let (result_tx, result_rx) = mpsc::channel::<CheckResult>(RESULT_QUEUE);
    let spooled = Arc::new(Notify::new());
    let reachable = Arc::new(Notify::new());

    let poller = tokio::spawn(poll_config(
        client.clone(),
        Arc::clone(&settings),
        initial_etag,
        plan_tx,
        fatal_tx.clone(),
        Arc::clone(&reachable),
    ));
    let urgent = Arc::new(Notify::new());
    let spooler = tokio::spawn(spool_results(
        result_rx,
        spool.clone(),
        Arc::clone(&spooled),
        Arc::clone(&urgent),
        Arc::clone(&counters),
        fatal_tx.clone(),
    ));
    let (plan_rx_runs, result_tx_runs) = (plan_rx.clone(), result_tx.clone());
    let scheduler = tokio::spawn(schedule(
        plan_rx,
        Arc::clone(&env),
        Arc::clone(&settings),
        Arc::clone(&counters),
        Arc::clone(&failing),
        result_tx,
    ));
    let runs = tokio::spawn(poll_runs(
        client.clone(),
        plan_rx_runs,
        Arc::clone(&env),
        Arc::clone(&counters),
        result_tx_runs,
    ));
    let (stop_ship_tx, stop_ship_rx) = watch::channel(false);
    let shipper = tokio::spawn(ship(
        Shipper {
            client,
            spool,
            spooled: Arc::clone(&spooled),
            urgent,
            counters: Arc::clone(&counters),
            failing: Arc::clone(&failing),
            fatal: fatal_tx,
            reachable,
        },
        stop_ship_rx,
    ));

    let outcome = tokio::select! {
        () = shutdown => Ok(()),
        Some(err) = fatal_rx.recv() => Err(err),
    };
    tracing::info!("probe stopping: no new runs; flushing results");
    poller.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    // Aborting the scheduler drops its check tasks and with them every result sender, so the
    // spooler writes what is queued and ends.
    scheduler.abort();
    runs.abort();
    let _ = scheduler.await;
    let _ = runs.await;
    let _ = tokio::time::timeout(Duration::from_secs(5), spooler).await;
    let _ = stop_ship_tx.send(true);
    let _ = tokio::time::timeout(FINAL_FLUSH + Duration::from_secs(1), shipper).await;
    // The spooler and shipper dropped their handles: let a write in progress finish.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || spool_thread.join()),
    )
    .await;
    outcome
}

async fn poll_config(
    client: CoordinatorClient,
    settings: Arc<Settings>,
    mut etag: Option<String>,
    plan_tx: watch::Sender<Option<Arc<Plan>>>,
    fatal: mpsc::Sender<AgentError>,
    reachable: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(settings.config_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unreachable_logged = false;
    loop {
        tick.tick().await;
        let answer = client.config(etag.as_deref()).await;
        if answer.is_ok() {
            // The coordinator answers again: a shipper waiting out its backoff may push now.
            reachable.notify_waiters();
        }
        match answer {
            Ok(ConfigAnswer::NotModified) => unreachable_logged = false,
            Ok(ConfigAnswer::Changed(body, tag)) => {
                unreachable_logged = false;
                let doc = match serde_json::from_slice::<ProbeConfig>(&body) {
                    Ok(doc) => doc,
                    Err(e) => {
                        // A check this build cannot read (a newer coordinator, say): running
                        // it half-understood would be worse than running the old config.
                        tracing::error!(error = %e, "the coordinator sent checks this probe cannot read; keeping the current config");
                        etag = tag;
                        continue;
                    }
                };
                match plan_from(doc, &settings) {
                    Ok(plan) => {
                        tracing::info!(probe = %plan.probe_id, checks = plan.checks.len(), "config applied");
                        let path = config_path(&settings.state_dir);
                        if let Err(e) = persist(&path, tag.as_deref(), &body) {
                            tracing::warn!(error = %e, path = %path.display(), "cannot persist the config; it will be lost on restart");
                        }
                        drop(body);
                        etag = tag;
                        let _ = plan_tx.send(Some(Arc::new(plan)));
                    }
                    Err(e) => {
                        let _ = fatal.send(AgentError::Identity(e)).await;
                        return;
                    }
                }
            }
            Err(ClientError::Unauthorized(m)) => {
                let _ = fatal
                    .send(AgentError::Unauthorized(format!(
                        "the coordinator refused this probe's token (401): {m}"
                    )))
                    .await;
                return;
            }
            Err(e) => {
                if !unreachable_logged {
                    tracing::warn!(error = %e, "cannot pull the config; running the current one");
                    unreachable_logged = true;
                }
            }
        }
    }
}

/// The plan's checks that run on the schedule, by index: all but the `on_demand` ones,
/// which stay in the plan for on-demand runs to find.
fn scheduled(plan: &Plan) -> impl Iterator<Item = usize> + '_ {
    (0..plan.checks.len()).filter(|&i| !plan.checks[i].on_demand)
}

/// Runs the current plan's scheduled checks; restarts them all when the plan changes.
async fn schedule(
    mut plan_rx: watch::Receiver<Option<Arc<Plan>>>,
    env: Arc<RunEnv>,
    settings: Arc<Settings>,
    counters: Arc<Counters>,
    failing: Arc<RwLock<HashSet<String>>>,
    results: mpsc::Sender<CheckResult>,
) {
    let permits = Arc::new(Semaphore::new(settings.concurrency));
    loop {
        let plan = plan_rx.borrow_and_update().clone();
        let mut running = JoinSet::new();
        counters
            .checks
            .set(plan.as_ref().map_or(0, |p| scheduled(p).count() as i64));
        if let Some(plan) = plan {
            let env = Arc::new(RunEnv {
                probe_id: plan.probe_id.clone(),
                boot_id: env.boot_id.clone(),
                source_address: env.source_address,
            });
            for check in scheduled(&plan) {
                running.spawn(run_check_forever(
                    Arc::clone(&plan),
                    check,
                    Arc::clone(&env),
                    Arc::clone(&permits),
                    Arc::clone(&counters),
                    Arc::clone(&failing),
                    results.clone(),
                ));
            }
        }
        if plan_rx.changed().await.is_err() {
            // The poller is gone (shutdown): keep running until aborted.
            std::future::pending::<()>().await;
        }
        running.abort_all();
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn run_check_forever(
    plan: Arc<Plan>,
    check: usize,
    env: Arc<RunEnv>,
    permits: Arc<Semaphore>,
    counters: Arc<Counters>,
    failing: Arc<RwLock<HashSet<String>>>,
    results: mpsc::Sender<CheckResult>,
) {
    let check = &plan.checks[check];
    loop {
        let is_failing = failing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&check.id);
        let interval = if is_failing {
            check.settings.failing_interval
        } else {
            check.settings.interval
        };
        let offset = phase_offset(&env.probe_id, &check.id, interval);
        let now = now_ms();
        let at = next_run_ms(now, interval, offset);
        tokio::time::sleep(Duration::from_millis((at - now).max(0) as u64)).await;
        let Ok(_permit) = permits.acquire().await else {
            return;
        };
        counters.runs.inc();
        // The spooler numbers results: a run cut short (the plan changed) takes no seq.
        // Boxed, with the send: an idle check task then holds a pointer-sized slot, not the
        // largest executor's whole future and a result inline (kilobytes a check).
        let sent = Box::pin(async {
            let result = run_check(check, &env, 0).await;
            results.send(result).await.is_ok()
        })
        .await;
        if !sent {
            return;
        }
    }
}

/// Follows the coordinator's on-demand runs (a long poll, see the coordinator's `runs`
/// module) and carries each out: every check it asks for, once, now, its results tagged with
/// the run. Runs are remembered by id within a boot; after a restart the coordinator names
/// only the checks still owed.
async fn poll_runs(
    client: CoordinatorClient,
    plan_rx: watch::Receiver<Option<Arc<Plan>>>,
    env: Arc<RunEnv>,
    counters: Arc<Counters>,
    results: mpsc::Sender<CheckResult>,
) {
    let permits = Arc::new(Semaphore::new(RUNS_AT_ONCE));
    let mut after = 0;
    let mut backoff = BACKOFF_MIN;
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let asked = tokio::time::Instant::now();
        match client.runs(after, RUNS_POLL_WAIT).await {
            Ok(orders) if orders.runs.is_empty() && asked.elapsed() < Duration::from_secs(1) => {
                // An answer that did not wait (a proxy, say): never a busy loop.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(orders) => {
                backoff = BACKOFF_MIN;
                for order in orders.runs {
                    after = after.max(order.id);
                    tracing::info!(run = order.id, checks = order.checks.len(), "on-demand run");
                    running.spawn(carry_out(
                        order,
                        plan_rx.clone(),
                        Arc::clone(&env),
                        Arc::clone(&permits),
                        Arc::clone(&counters),
                        results.clone(),
                    ));
                }
            }
            Err(ClientError::Rejected { status: 404, .. }) => {
                // An older coordinator: no runs there. Ask again now and then (an upgrade).
                tracing::debug!("the coordinator offers no on-demand runs");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Err(e) => {
                // The config poller says what is wrong with the coordinator; here, wait.
                tracing::debug!(error = %e, "cannot poll for on-demand runs");
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Runs the checks of one on-demand run once each, at once (a few at a time).
async fn carry_out(
    order: RunOrder,
    mut plan_rx: watch::Receiver<Option<Arc<Plan>>>,
    env: Arc<RunEnv>,
    permits: Arc<Semaphore>,
    counters: Arc<Counters>,
    results: mpsc::Sender<CheckResult>,
) {
    // A run may name a check this probe has not pulled yet (the config changed just before):
    // wait for the next config, within the run's time.
    let deadline = tokio::time::Instant::now()
        + Duration::try_from(order.deadline - time::OffsetDateTime::now_utc())
            .unwrap_or_default()
            .min(Duration::from_secs(30));
    let plan = loop {
        let plan = plan_rx.borrow_and_update().clone();
        if let Some(plan) = &plan
            && order
                .checks
                .iter()
                .all(|id| plan.checks.iter().any(|c| &c.id == id))
        {
            break Some(Arc::clone(plan));
        }
        if !matches!(
            tokio::time::timeout_at(deadline, plan_rx.changed()).await,
            Ok(Ok(()))
        ) {
            break plan;
        }
    };
    let Some(plan) = plan else {
        tracing::warn!(
            run = order.id,
            "an on-demand run came before any config; not run"
        );
        return;
    };
    let env = Arc::new(RunEnv {
        probe_id: plan.probe_id.clone(),
        boot_id: env.boot_id.clone(),
        source_address: env.source_address,
    });
    let mut checks = JoinSet::new();
    for id in &order.checks {
        let Some(index) = plan.checks.iter().position(|c| &c.id == id) else {
            tracing::warn!(run = order.id, check = %id, "an on-demand run names a check this probe does not have; not run");
            continue;
        };
        let (plan, env, permits, counters, results) = (
            Arc::clone(&plan),
            Arc::clone(&env),
            Arc::clone(&permits),
            Arc::clone(&counters),
            results.clone(),
        );
        let run = order.id;
        checks.spawn(async move {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            counters.runs.inc();
            let mut result = Box::pin(run_check(&plan.checks[index], &env, 0)).await;
            result.run = Some(run);
            let _ = results.send(result).await;
        });
    }
    while checks.join_next().await.is_some() {}
}

/// A job for the spool's thread.
type SpoolJob = Box<dyn FnOnce(&mut Spool) + Send>;

/// The spool, owned by a thread of its own: its reads, writes and fsyncs never stall the
/// thread that runs (and times) the checks. Only bytes cross between the two threads (results
/// are encoded and decoded on the runtime's thread), so each thread frees what it allocated
/// and its glibc malloc arena stays the size of its own work. On tokio's blocking pool each
/// pool thread got an arena of its own, and results decoded on one thread and freed on
/// another kept growing them: 1.4 MB in a minute, still growing after four, under load.
#[derive(Clone)]
struct SpoolThread {
    jobs: std::sync::mpsc::Sender<SpoolJob>,
}

impl SpoolThread {
    /// Starts the thread, which opens (and recovers) the spool before taking jobs. The thread
    /// ends once every handle is dropped.
    async fn open(config: SpoolConfig) -> Result<(Self, std::thread::JoinHandle<()>), AgentError> {
        let (jobs, queue) = std::sync::mpsc::channel::<SpoolJob>();
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("vantage-spool".into())
            .spawn(move || {
                let mut spool = match Spool::open(config) {
                    Ok(s) => {
                        let _ = opened_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    job(&mut spool);
                }
            })
            .map_err(|e| AgentError::Spool(format!("cannot start the spool thread: {e}")))?;
        match opened.await {
            Ok(Ok(())) => Ok((Self { jobs }, thread)),
            Ok(Err(e)) => Err(AgentError::Spool(e.to_string())),
            Err(_) => Err(AgentError::Spool(
                "the spool thread died opening the spool".into(),
            )),
        }
    }

    /// Runs `f` on the spool's thread and waits for its answer.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Spool) -> Result<R, SpoolError> + Send + 'static,
    ) -> Result<R, AgentError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: SpoolJob = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        let gone = || AgentError::Spool("the spool thread stopped".into());
        self.jobs.send(job).map_err(|_| gone())?;
        match rx.await {
            Ok(answer) => answer.map_err(|e| AgentError::Spool(e.to_string())),
            Err(_) => Err(gone()),
        }
    }
}

/// Moves results from the checks into the spool, a batch per fsync, numbering them: `seq`
/// counts the results of this boot in spool order, from 0, so a hole in the seqs the
/// coordinator stores is a lost result, never a run that was cut short.
async fn spool_results(
    mut rx: mpsc::Receiver<CheckResult>,
    spool: SpoolThread,
    spooled: Arc<Notify>,
    urgent: Arc<Notify>,
    counters: Arc<Counters>,
    fatal: mpsc::Sender<AgentError>,
) {
    let mut buf = Vec::with_capacity(256);
    let mut next_seq: u64 = 0;
    // Results lost to spool write failures since the last good write, and when that was said.
    let mut write_failures: u64 = 0;
    let mut last_logged: Option<tokio::time::Instant> = None;
    while rx.recv_many(&mut buf, 256).await > 0 {
        let mut batch = std::mem::take(&mut buf);
        for result in &mut batch {
            result.seq = next_seq;
            next_seq += 1;
        }
        let n = batch.len() as u64;
        // An on-demand run is waited for: its results go out without the batch's linger.
        let of_run = batch.iter().any(|r| r.run.is_some());
        // Encoded here and handed over as bytes: the results are allocated and freed on this
        // thread, the spool thread's buffers on that one (see SpoolThread).
        let encoded = Encoded::new(&batch).map_err(|e| e.to_string());
        drop(batch);
        // A spool that cannot be written (its disk full, failing) drops these new results,
        // counted, and keeps the oldest; the probe runs on, and the next append tries again.
        let written = spool
            .run(move |s| {
                let failed = match encoded {
                    Ok(encoded) => s.append_encoded(&encoded).err().map(|e| e.to_string()),
                    Err(e) => Some(e),
                };
                if failed.is_some() {
                    s.lost(n);
                }
                Ok((failed, s.pending(), s.dropped(), s.bytes()))
            })
            .await;
        match written {
            Ok((failed, pending, dropped, bytes)) => {
                // The gauges follow appends too: while pushes back off, nothing else moves them.
                counters.spool(pending, dropped, bytes);
                match failed {
                    None => {
                        if write_failures > 0 {
                            tracing::info!(
                                lost = write_failures,
                                "the spool is written again; results are kept from now on"
                            );
                            write_failures = 0;
                        }
                        spooled.notify_one();
                        if of_run {
                            urgent.notify_one();
                        }
                    }
                    Some(e) => {
                        // Once at first, then about once a minute: a full disk stays full.
                        if write_failures == 0
                            || last_logged.is_none_or(|t: tokio::time::Instant| {
                                t.elapsed() > Duration::from_secs(60)
                            })
                        {
                            tracing::error!(error = %e, lost = n, lost_so_far = write_failures + n, "cannot write results to the spool (disk full?): they are dropped and counted, the spooled ones kept; the probe runs on");
                            last_logged = Some(tokio::time::Instant::now());
                        }
                        write_failures += n;
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, lost = n, "the spool thread stopped");
                let _ = fatal.send(e).await;
                return;
            }
        }
    }
}

fn jitter(d: Duration) -> Duration {
    // Full jitter between half and all of the backoff, so probes do not retry in step.
    let ms = d.as_millis() as u64;
    Duration::from_millis(ms / 2 + rand::random_range(0..=ms / 2))
}

/// What the shipper shares with the rest of the agent.
struct Shipper {
    client: CoordinatorClient,
    spool: SpoolThread,
    /// Signalled when results were spooled.
    spooled: Arc<Notify>,
    /// Signalled with `spooled` when results of an on-demand run were: push them without
    /// lingering (and cut a linger in progress short).
    urgent: Arc<Notify>,
    counters: Arc<Counters>,
    /// Checks the coordinator says are failing; the scheduler runs them faster.
    failing: Arc<RwLock<HashSet<String>>>,
    fatal: mpsc::Sender<AgentError>,
    /// Signalled when a config pull succeeded: the coordinator is reachable.
    reachable: Arc<Notify>,
}

/// The next batch's body stays this far under the coordinator's limit: room for the
/// envelope and the probe's counters.
const BATCH_ENVELOPE: usize = 4096;

/// What to do after a push.
enum Next {
    /// Acknowledge the batch in the spool through this position.
    Ack,
    /// Keep the batch and send it again at once, in smaller batches.
    Split,
    /// Keep the batch and wait before the next push: this long, or (`early`) until a config
    /// pull shows the coordinator is back.
    Wait { wait: Duration, early: bool },
}

async fn ship(shipper: Shipper, mut stop: watch::Receiver<bool>) {
    let Shipper {
        client,
        spool,
        spooled,
        urgent,
        counters,
        failing,
        fatal,
        reachable,
    } = shipper;
    let mut backoff = BACKOFF_MIN;
    // Most results in the next batch: halved when the coordinator refuses a batch whole (too
    // large for it, or an older coordinator refusing all for one bad result), until the one
    // it refuses is alone; doubled back after each success.
    let mut limit = BATCH_MAX;
    let max_bytes = vantage_checks::limits::MAX_BODY_BYTES as usize - BATCH_ENVELOPE;
    let mut stopping_since: Option<tokio::time::Instant> = None;
    loop {
        if *stop.borrow() && stopping_since.is_none() {
            stopping_since = Some(tokio::time::Instant::now());
        }
        if stopping_since.is_some_and(|t| t.elapsed() > FINAL_FLUSH) {
            return;
        }
        let pending = spool
            .run(move |s| Ok((s.peek_raw(limit)?, s.pending(), s.dropped(), s.bytes())))
            .await;
        let (raw, pending, dropped, bytes) = match pending {
            Ok(x) => x,
            Err(e) => {
                let _ = fatal.send(e).await;
                return;
            }
        };
        counters.spool(pending, dropped, bytes);
        let (mut items, unreadable) = raw.decode();
        if !unreadable.is_empty()
            && let Err(e) = spool.run(move |s| s.discard(&unreadable)).await
        {
            let _ = fatal.send(e).await;
            return;
        }
        if items.is_empty() {
            if stopping_since.is_some() {
                return;
            }
            tokio::select! {
                () = spooled.notified() => {}
                _ = stop.changed() => continue,
            }
            // Results trickle in; let them gather for a moment so pushes come about once a
            // second with everything since, rather than one request per result. Results of
            // an on-demand run are waited for by someone: they go at once.
            tokio::select! {
                () = tokio::time::sleep(BATCH_LINGER) => {}
                () = urgent.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // Packed by bytes as well as by count: never more than the coordinator takes.
        let mut body = 0usize;
        let fits = items
            .iter()
            .take_while(|p| {
                body += p.bytes + 1;
                body <= max_bytes
            })
            .count();
        items.truncate(fits.max(1));
        let through = items.last().map_or(0, |p| p.position);
        let n = items.len();
        let batch = ResultBatch {
            results: items.into_iter().map(|p| p.result).collect(),
            counters: Some(counters.wire()),
        };
        let next = match client.push(&batch).await {
            Ok((ack, date)) => {
                *failing.write().unwrap_or_else(|p| p.into_inner()) =
                    ack.failing_checks.iter().cloned().collect();
                limit = (limit * 2).min(BATCH_MAX);
                let again = settle_refused(&ack, batch.results, date, &counters);
                counters.sent.inc_by(ack.accepted + ack.duplicates);
                if again.is_empty() {
                    backoff = BACKOFF_MIN;
                    Next::Ack
                } else {
                    // Kept for later (the probe's clock is ahead): spooled again behind the
                    // rest, before this batch is acknowledged, and the next push waits.
                    let n_again = again.len();
                    let written = match Encoded::new(&again) {
                        Ok(encoded) => spool.run(move |s| s.append_encoded(&encoded)).await,
                        Err(e) => Err(AgentError::Spool(e.to_string())),
                    };
                    if let Err(e) = written {
                        tracing::error!(error = %e, results = n_again, "cannot spool refused results again");
                        let _ = fatal.send(e).await;
                        return;
                    }
                    if ack_spool(&spool, through, &fatal).await.is_none() {
                        return;
                    }
                    let wait = jitter(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    Next::Wait { wait, early: false }
                }
            }
            Err(ClientError::Unauthorized(m)) => {
                let _ = fatal
                    .send(AgentError::Unauthorized(format!(
                        "the coordinator refused this probe's token (401): {m}"
                    )))
                    .await;
                return;
            }
            // Refused whole: too large, or (an older coordinator) one result in it is bad.
            // Smaller batches find the one it refuses; only that one is dropped.
            Err(ClientError::Rejected { status, message }) if matches!(status, 400 | 413 | 422) => {
                if n > 1 {
                    limit = (n / 2).max(1);
                    tracing::warn!(status, results = n, next = limit, reason = %message, "the coordinator refused a batch whole; sending it in smaller batches");
                    Next::Split
                } else {
                    counters.rejected.inc();
                    let r = &batch.results[0];
                    tracing::error!(status, check = %r.check_id, seq = r.seq, reason = %message, "the coordinator refused a result; it is dropped");
                    Next::Ack
                }
            }
            // Any other refusal (403, 404 …) is about the request, not the results: keep them.
            Err(ClientError::Rejected { status, message }) => {
                counters.retried.inc();
                let wait = jitter(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tracing::error!(status, reason = %message, pending, retry_in_ms = wait.as_millis() as u64, "the coordinator refused the push; results stay spooled (check the coordinator URL)");
                Next::Wait { wait, early: true }
            }
            Err(ClientError::Retry {
                message,
                retry_after,
            }) => {
                counters.retried.inc();
                let wait = retry_after.unwrap_or_else(|| jitter(backoff));
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tracing::warn!(error = %message, pending, retry_in_ms = wait.as_millis() as u64, "push failed; results stay spooled");
                Next::Wait {
                    wait,
                    early: retry_after.is_none(),
                }
            }
            Err(e @ ClientError::Setup(_)) => {
                tracing::error!(error = %e, "cannot push");
                Next::Wait {
                    wait: BACKOFF_MAX,
                    early: false,
                }
            }
        };
        match next {
            Next::Ack => match ack_spool(&spool, through, &fatal).await {
                None => return,
                Some(true) => {}
                // Not recorded: the same results come back next; give the disk a moment.
                Some(false) => {
                    let wait = jitter(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                }
            },
            Next::Split => {}
            Next::Wait { wait, early } => {
                if stopping_since.is_some() {
                    return;
                }
                // Without a Retry-After, a successful config pull ends the wait early: after a
                // long outage results flow as soon as the coordinator is back, not a backoff
                // later.
                let back = async {
                    if !early {
                        std::future::pending::<()>().await;
                    }
                    reachable.notified().await;
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = back => backoff = BACKOFF_MIN,
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// Acknowledges the spool through `through`. A failure to write the acknowledgement (a full
/// disk) is logged and survived: the results are sent again later, and the coordinator keeps
/// each once. `Some(recorded)`, or `None` when the spool thread is gone (the agent must stop).
async fn ack_spool(
    spool: &SpoolThread,
    through: u64,
    fatal: &mpsc::Sender<AgentError>,
) -> Option<bool> {
    match spool
        .run(move |s| Ok(s.ack(through).err().map(|e| e.to_string())))
        .await
    {
        Ok(None) => Some(true),
        Ok(Some(e)) => {
            tracing::error!(error = %e, through, "cannot record the acknowledgement in the spool (disk full?); those results will be sent again, and stored once");
            Some(false)
        }
        Err(e) => {
            let _ = fatal.send(e).await;
            None
        }
    }
}

/// Sorts the results the coordinator refused: those worth sending again later (returned) and
/// those dropped (counted and logged, a line per reason). With a clock skew refusal, logs this
/// probe's clock offset from the coordinator's `Date`.
fn settle_refused(
    ack: &vantage_checks::wire::BatchAck,
    results: Vec<CheckResult>,
    coordinator_date: Option<std::time::SystemTime>,
    counters: &Counters,
) -> Vec<CheckResult> {
    use std::collections::BTreeMap;
    let mut keep = HashSet::new();
    let mut by_reason: BTreeMap<&'static str, (usize, &str)> = BTreeMap::new();
    for r in ack.refused.iter().filter(|r| r.index < results.len()) {
        let e = by_reason
            .entry(r.reason.as_label())
            .or_insert((0, &r.message));
        e.0 += 1;
        if r.reason.retry_later() {
            keep.insert(r.index);
        } else {
            counters.rejected.inc();
        }
    }
    let again = results
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, r)| r)
        .collect();
    for (reason, (n, first)) in by_reason {
        if reason == vantage_checks::wire::RefusalReason::ClockSkew.as_label() {
            let offset =
                coordinator_date.map(|d| match std::time::SystemTime::now().duration_since(d) {
                    Ok(ahead) => ahead.as_secs_f64(),
                    Err(e) => -e.duration().as_secs_f64(),
                });
            tracing::warn!(results = n, clock_offset_s = ?offset.map(|o| o.round()), example = %first, "the coordinator refused results for clock skew: this probe's clock is ahead of the coordinator's by about the offset shown (its Date header); fix NTP. They stay spooled and are sent again later");
        } else {
            tracing::error!(results = n, reason, example = %first, "the coordinator refused results; they are dropped (the rest of the batch was stored)");
        }
    }
    again
}

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_checks::config;

    /// Issue 12, item 11: the persisted config (which may carry the checks' request headers)
    /// is readable by the probe's user only, even over an older file or a crash's leftover.
    #[test]
    fn r12_the_persisted_config_is_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = config_path(dir.path());
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        // An older, world-readable config and a crash's leftover temporary file.
        std::fs::write(&path, b"{}").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, b"half").expect("write");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");

        persist(&path, Some("\"e1\""), br#"{"checks":[]}"#).expect("persist");
        assert_eq!(mode(&path), 0o600, "config.json must be 0600");
        assert!(
            !tmp.exists(),
            "the temporary file is renamed over the config"
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, r#"{"etag":"\"e1\"","config":{"checks":[]}}"#);

        // A fresh state directory too.
        std::fs::remove_file(&path).expect("rm");
        persist(&path, None, b"{}").expect("persist");
        assert_eq!(mode(&path), 0o600);
    }

    /// Every loaded check keeps one task alive between runs, so its future's size is paid
    /// per check (1,000 checks: 1,000 task cells). The run itself, the result and its send
    /// are boxed, so the idle task is the loop's own state: a sleep, a permit wait, Arcs.
    #[test]
    fn an_idle_check_task_is_small() {
        let checks = config::parse_str(
            "[[vendor]]\nid = \"v\"\n[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\n",
        )
        .expect("valid")
        .checks;
        let (tx, _rx) = mpsc::channel(1);
        let task = run_check_forever(
            Arc::new(Plan {
                probe_id: "p".into(),
                checks,
            }),
            0,
            Arc::new(RunEnv {
                probe_id: "p".into(),
                boot_id: "b".into(),
                source_address: None,
            }),
            Arc::new(Semaphore::new(1)),
            Arc::default(),
            Arc::default(),
            tx,
        );
        let size = std::mem::size_of_val(&task);
        eprintln!("an idle check task's future: {size} bytes");
        assert!(size <= 512, "a check task's future is {size} bytes");
    }

    /// Issue 13: an `on_demand` check stays in the plan but never runs on the schedule.
    #[test]
    fn on_demand_checks_are_not_scheduled() {
        let check = |id: &str, on_demand: bool| {
            format!(
                "[[check]]\nid = \"{id}\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\non_demand = {on_demand}\n"
            )
        };
        let text = format!(
            "[[vendor]]\nid = \"v\"\n{}{}{}",
            check("a", false),
            check("negative", true),
            check("b", false)
        );
        let checks = config::parse_str(&text).expect("valid").checks;
        let plan = Plan {
            probe_id: "p".into(),
            checks,
        };
        assert_eq!(scheduled(&plan).collect::<Vec<_>>(), [0, 2]);
    }
}
