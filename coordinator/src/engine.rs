//! The consensus engine: the shell around the pure [`crate::consensus`] core.
//!
//! It keeps, in memory, the recent runs of every (check, probe), the settled state of every
//! check, the health of every probe and the state of every vendor. Every committed batch is
//! observed ([`Engine::observe`]) and the checks it touched are evaluated at once; a timer
//! ([`Engine::tick`]) re-evaluates everything so that silence and hysteresis timers are noticed,
//! and re-assesses probe quarantine. What changes is sent, in order, to the incident task
//! (`crate::incident`) which persists it and alerts.
//!
//! On start the engine resumes the persisted states and rebuilds the recent runs from the raw
//! results in the store, so a restart neither forgets an outage nor invents one.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{Mutex, mpsc};
use vantage_checks::model::{Check, Role};
use vantage_checks::result::{FailureKind, Status};

use crate::catalog::{Catalog, Catalogs};
use crate::consensus::quarantine::{
    self, CheckVotes, HealthChange, ProbeHealth, QuarantineSettings,
};
use crate::consensus::suspect::{self, Dissent, Finding, SuspectChange};
use crate::consensus::vendor::{self, CheckView, VendorStatus};
use crate::consensus::{
    CheckState, Evaluation, Evidence, Ms, Outcome, ProbeRuns, Run, Scope, Transition, Verdict,
};
use crate::metrics::{EvalTrigger, Metrics};
use crate::store::{IngestRow, ProbeRecord};

/// Runs kept per (check, probe) at most, whatever the window.
const MAX_RUNS: usize = 512;
/// Batches arriving within this of the last evaluation only mark their checks dirty; the next
/// batch after it (or [`Engine::flush`], every [`COALESCE_MS`]) evaluates them once. With 100
/// probes pushing every second, a check is then judged ten times a second, not a hundred.
pub const COALESCE_MS: Ms = 100;

/// A settled verdict change of one check, with the evidence at that moment.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct CheckTransition {
    /// The check.
    pub check: String,
    /// Its vendor.
    pub vendor: String,
    /// The change.
    #[serde(flatten)]
    pub transition: Transition,
    /// The votes behind the new verdict.
    pub evidence: Evidence,
}

/// Something that changed, for the incident task to persist and act on. Sent in order.
#[derive(Clone, Debug)]
pub enum Change {
    /// Check states that changed (settled or pending), and the settled transitions.
    Checks {
        /// New states to persist.
        states: Vec<(String, CheckState)>,
        /// Settled transitions.
        transitions: Vec<CheckTransition>,
    },
    /// A vendor's derived state changed.
    Vendor {
        /// The vendor.
        vendor: String,
        /// Its new state.
        status: VendorStatus,
        /// Its state before (the default, unknown, for a vendor never judged).
        previous: VendorStatus,
        /// When.
        at_ms: Ms,
    },
    /// A probe was quarantined or readmitted.
    Probe {
        /// What changed.
        change: HealthChange,
        /// The probe's health now (to persist).
        health: ProbeHealth,
    },
}

/// What the engine resumes from after a restart.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// Persisted check states.
    pub checks: Vec<(String, CheckState)>,
    /// Persisted vendor states.
    pub vendors: Vec<(String, VendorStatus)>,
    /// Persisted probe health.
    pub probes: Vec<(String, ProbeHealth)>,
    /// Recent raw results, oldest first.
    pub recent: Vec<RecentRun>,
}

/// What a result means to consensus. The probe judged `slow` against the check's threshold.
fn outcome_of(r: &vantage_checks::result::CheckResult) -> Outcome {
    match r.status {
        Status::Ok if r.slow => Outcome::Slow,
        Status::Ok => Outcome::Ok,
        // A failure always carries its kind; a bare one counts as the generic timeout.
        Status::Fail => Outcome::Fail(r.failure.unwrap_or(FailureKind::Timeout)),
        Status::ProbeError => Outcome::ProbeError,
    }
}

impl Resume {
    /// Decodes what the store kept. A record that does not decode is skipped with a warning:
    /// the engine recomputes it from the raw results.
    pub fn decode(
        records: crate::store::state::ConsensusRecords,
        recent: Vec<crate::store::state::RecentResult>,
    ) -> Self {
        fn each<T: serde::de::DeserializeOwned>(
            what: &str,
            rows: Vec<(String, String)>,
        ) -> Vec<(String, T)> {
            rows.into_iter()
                .filter_map(|(k, v)| match serde_json::from_str(&v) {
                    Ok(t) => Some((k, t)),
                    Err(e) => {
                        tracing::warn!(key = %k, error = %e, "cannot decode a stored {what}; recomputing it");
                        None
                    }
                })
                .collect()
        }
        let recent = recent
            .into_iter()
            .filter_map(|r| {
                let result: vantage_checks::result::CheckResult =
                    serde_json::from_str(&r.body).ok()?;
                let outcome = outcome_of(&result);
                Some(RecentRun {
                    check: r.check_id,
                    probe: r.probe_id,
                    region: r.region,
                    run: Run {
                        started_ms: r.started_ms,
                        outcome,
                        total_ms: result.timings.total_ms as f32,
                    },
                    message: result.message,
                })
            })
            .collect();
        Self {
            checks: each("check state", records.checks),
            vendors: each("vendor state", records.vendors),
            probes: each("probe health", records.probes),
            recent,
        }
    }
}

/// One raw result as the engine needs it (from the store on restart).
#[derive(Clone, Debug)]
pub struct RecentRun {
    /// Check id.
    pub check: String,
    /// Probe id.
    pub probe: String,
    /// Probe region.
    pub region: String,
    /// The run.
    pub run: Run,
    /// Its message.
    pub message: Option<String>,
}

#[derive(Debug, Default)]
struct ProbeHistory {
    region: String,
    runs: VecDeque<Run>,
    message: Option<String>,
}

#[derive(Debug, Default)]
struct CheckEntry {
    probes: BTreeMap<String, ProbeHistory>,
    /// Regions with probes selected to run the check; `None` until computed.
    expected_regions: Option<u32>,
    state: CheckState,
    evidence: Evidence,
    raw: BTreeMap<Scope, Verdict>,
}

#[derive(Default)]
struct Inner {
    catalog: Option<Arc<Catalog>>,
    index: HashMap<String, usize>,
    checks: HashMap<String, CheckEntry>,
    health: BTreeMap<String, ProbeHealth>,
    vendors: BTreeMap<String, VendorStatus>,
    /// Lone dissenters, by (probe, check), and which of them are suspect.
    suspects: suspect::Marks,
    probes: Vec<ProbeRecord>,
    /// Checks with new runs since their last evaluation.
    dirty: BTreeSet<String>,
    /// When dirty checks were last evaluated (Unix ms).
    flushed_ms: Ms,
}

impl Inner {
    /// Re-indexes when the catalog was reloaded; forgets checks that are gone.
    fn sync_catalog(&mut self, catalog: &Arc<Catalog>) {
        if self
            .catalog
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, catalog))
        {
            return;
        }
        self.index = catalog
            .checks
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        self.checks.retain(|id, _| self.index.contains_key(id));
        // Selectors may have changed.
        for e in self.checks.values_mut() {
            e.expected_regions = None;
        }
        let vendors: BTreeSet<&str> = catalog
            .checks
            .vendors
            .iter()
            .map(|v| v.id.as_str())
            .collect();
        self.vendors.retain(|v, _| vendors.contains(v.as_str()));
        self.catalog = Some(Arc::clone(catalog));
    }

    fn check(&self, id: &str) -> Option<&Check> {
        let i = *self.index.get(id)?;
        self.catalog.as_ref()?.checks.checks.get(i)
    }

    fn record(
        &mut self,
        check: &str,
        probe: &str,
        region: &str,
        run: Run,
        message: Option<String>,
    ) {
        let Some(c) = self.check(check) else { return };
        let keep = c.settings.confirm.max(1) as usize;
        let window = c.settings.window.as_millis() as Ms;
        let entry = self.checks.entry(check.to_owned()).or_default();
        let h = entry.probes.entry(probe.to_owned()).or_default();
        h.region = region.to_owned();
        // Spooled results can arrive late and out of order: keep the runs sorted.
        let at = h.runs.partition_point(|r| r.started_ms < run.started_ms);
        // A re-delivered result is the same run: keep it once.
        if h.runs
            .get(at)
            .is_some_and(|r| r.started_ms == run.started_ms)
        {
            return;
        }
        let newest = at == h.runs.len();
        h.runs.insert(at, run);
        if newest {
            h.message = message;
        }
        let newest_ms = h.runs.back().map_or(run.started_ms, |r| r.started_ms);
        while h.runs.len() > MAX_RUNS
            || (h.runs.len() > keep
                && h.runs
                    .front()
                    .is_some_and(|r| r.started_ms < newest_ms - window))
        {
            h.runs.pop_front();
        }
    }

    fn expected_regions(&self, check: &Check) -> u32 {
        let regions: BTreeSet<&str> = self
            .probes
            .iter()
            .filter(|p| p.revoked_ms.is_none() && check.probes.selects(&p.region, &p.labels))
            .map(|p| p.region.as_str())
            .collect();
        regions.len() as u32
    }

    fn quarantined(&self) -> BTreeSet<String> {
        self.health
            .iter()
            .filter(|(_, h)| h.quarantined)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Evaluates one check; returns its new state when it changed, and its transitions.
    fn evaluate(
        &mut self,
        id: &str,
        quarantined: &BTreeSet<String>,
        now: Ms,
    ) -> Option<(Option<CheckState>, Vec<CheckTransition>)> {
        let check = self.check(id)?;
        let (settings, vendor) = (check.settings.clone(), check.vendor.clone());
        let cached = self.checks.get(id).and_then(|e| e.expected_regions);
        let expected = match cached {
            Some(n) => n,
            None => self.expected_regions(self.check(id)?),
        };
        let entry = self.checks.entry(id.to_owned()).or_default();
        entry.expected_regions = Some(expected);
        for h in entry.probes.values_mut() {
            h.runs.make_contiguous();
        }
        let views: Vec<ProbeRuns<'_>> = entry
            .probes
            .iter()
            .map(|(p, h)| ProbeRuns {
                probe: p,
                region: &h.region,
                runs: h.runs.as_slices().0,
                message: h.message.as_deref(),
                quarantined: quarantined.contains(p),
            })
            .collect();
        let Evaluation {
            state,
            raw,
            transitions,
            evidence,
            ..
        } = crate::consensus::evaluate(&settings, &entry.state, &views, expected, now);
        drop(views);
        let changed = (state != entry.state).then(|| state.clone());
        entry.state = state;
        entry.raw = raw;
        entry.evidence = evidence;
        let transitions: Vec<CheckTransition> = transitions
            .into_iter()
            .map(|t| CheckTransition {
                check: id.to_owned(),
                vendor: vendor.clone(),
                transition: t,
                evidence: entry.evidence.clone(),
            })
            .collect();
        Some((changed, transitions))
    }

    /// Re-derives one vendor's state; returns it and the one before when it changed.
    fn derive_vendor(&mut self, vendor_id: &str) -> Option<(VendorStatus, VendorStatus)> {
        let catalog = Arc::clone(self.catalog.as_ref()?);
        let empty = CheckEntry::default();
        let views: Vec<CheckView<'_>> = catalog
            .checks
            .checks
            .iter()
            // `on_demand` checks run only in on-demand runs: no state of their own.
            .filter(|c| c.vendor == vendor_id && !c.on_demand)
            .map(|c| {
                let e = self.checks.get(&c.id).unwrap_or(&empty);
                CheckView {
                    check: &c.id,
                    role: c.role,
                    state: &e.state,
                    evidence: &e.evidence,
                }
            })
            .collect();
        let status = vendor::derive_after(self.vendors.get(vendor_id), &views);
        if self.vendors.get(vendor_id) == Some(&status) {
            return None;
        }
        let previous = self
            .vendors
            .insert(vendor_id.to_owned(), status.clone())
            .unwrap_or_default();
        Some((status, previous))
    }

    /// Evaluates `ids` and collects the changes, vendor states included.
    fn evaluate_many<'a>(&mut self, ids: impl Iterator<Item = &'a str>, now: Ms) -> Vec<Change> {
        let mut states = Vec::new();
        let mut transitions = Vec::new();
        let mut vendors = BTreeSet::new();
        let quarantined = self.quarantined();
        for id in ids {
            let Some((changed, t)) = self.evaluate(id, &quarantined, now) else {
                continue;
            };
            if let Some(state) = changed {
                states.push((id.to_owned(), state));
                if let Some(c) = self.check(id) {
                    vendors.insert(c.vendor.clone());
                }
            }
            transitions.extend(t);
        }
        let mut out = Vec::new();
        if !states.is_empty() || !transitions.is_empty() {
            out.push(Change::Checks {
                states,
                transitions,
            });
        }
        for v in vendors {
            if let Some((status, previous)) = self.derive_vendor(&v) {
                out.push(Change::Vendor {
                    vendor: v,
                    status,
                    previous,
                    at_ms: now,
                });
            }
        }
        out
    }
}

/// Logs a probe becoming suspect on a check, or clearing.
fn log_suspect(c: &SuspectChange) {
    if c.suspect {
        tracing::warn!(probe = %c.probe, check = %c.check, vendor = %c.vendor, dissent = c.dissent.as_label(), "probe suspect: it alone fails a check its peers see fine; it still votes, and cannot page alone");
    } else {
        tracing::info!(probe = %c.probe, check = %c.check, vendor = %c.vendor, "probe no longer suspect on the check");
    }
}

/// A probe that is the lone dissenter on a check for longer than its window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuspectView {
    /// The probe.
    pub probe: String,
    /// The check.
    pub check: String,
    /// The check's vendor.
    pub vendor: String,
    /// How it dissents: `failing` or `slow`.
    pub dissent: Dissent,
    /// Since when (Unix ms) it has dissented without a break.
    pub dissenting_since_ms: Ms,
    /// Since when (Unix ms) it is suspect.
    pub suspect_since_ms: Ms,
}

/// A vendor's state for the API.
#[derive(Clone, Debug, Serialize)]
pub struct VendorView {
    /// Vendor id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its state globally and per region.
    #[serde(flatten)]
    pub status: VendorStatus,
}

/// A check's verdicts for the API.
#[derive(Clone, Debug, Serialize)]
pub struct CheckDetail {
    /// Check id.
    pub id: String,
    /// Its kind label.
    pub kind: &'static str,
    /// Its role label.
    pub role: Role,
    /// Settled state, globally and per region.
    pub state: CheckState,
    /// The raw verdicts of the latest evaluation, before hysteresis.
    pub raw: BTreeMap<String, Verdict>,
    /// The votes behind them.
    pub evidence: Evidence,
}

/// One vendor in detail for the API.
#[derive(Clone, Debug, Serialize)]
pub struct VendorDetail {
    /// State.
    #[serde(flatten)]
    pub vendor: VendorView,
    /// Per-check verdicts with evidence.
    pub checks: Vec<CheckDetail>,
    /// Recent settled transitions of its checks, newest first (the API reads them from the
    /// store; the engine leaves this empty).
    pub transitions: Vec<CheckTransition>,
}

/// The consensus engine.
pub struct Engine {
    inner: Mutex<Inner>,
    catalogs: Arc<Catalogs>,
    quarantine: QuarantineSettings,
    out: mpsc::Sender<Change>,
    failing: std::sync::RwLock<Vec<String>>,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// An engine resuming `resume`; returns it and the receiving end of its changes. It records
    /// how long its evaluations take in `metrics`.
    pub fn new(
        catalogs: Arc<Catalogs>,
        quarantine: QuarantineSettings,
        probes: Vec<ProbeRecord>,
        resume: Resume,
        metrics: Arc<Metrics>,
    ) -> (Arc<Self>, mpsc::Receiver<Change>) {
        let mut inner = Inner {
            probes,
            ..Inner::default()
        };
        inner.sync_catalog(&catalogs.current());
        for (id, state) in resume.checks {
            if inner.index.contains_key(&id) {
                inner.checks.entry(id).or_default().state = state;
            }
        }
        inner.vendors.extend(resume.vendors);
        inner.health.extend(resume.probes);
        for r in resume.recent {
            inner.record(&r.check, &r.probe, &r.region, r.run, r.message);
        }
        let (tx, rx) = mpsc::channel(1024);
        let engine = Arc::new(Self {
            inner: Mutex::new(inner),
            catalogs,
            quarantine,
            out: tx,
            failing: std::sync::RwLock::new(Vec::new()),
            metrics,
        });
        (engine, rx)
    }

    /// The oldest start time (Unix ms) the engine needs raw results from to resume at `now`.
    pub fn resume_since(catalogs: &Catalogs, now: Ms) -> Ms {
        let longest = catalogs
            .current()
            .checks
            .checks
            .iter()
            .map(|c| c.settings.window + c.settings.interval * c.settings.confirm)
            .max()
            .unwrap_or_default();
        now - longest.as_millis() as Ms
    }

    async fn emit(&self, changes: Vec<Change>) {
        for c in changes {
            // The incident task only stops at shutdown; a change it misses then is recomputed
            // from the persisted state and the raw results at the next start.
            let _ = self.out.send(c).await;
        }
    }

    fn publish_failing(&self, inner: &Inner) {
        let mut failing: Vec<String> = inner
            .checks
            .iter()
            .filter(|(_, e)| e.state.failing_anywhere() || e.evidence.global.failing > 0)
            .map(|(id, _)| id.clone())
            .collect();
        failing.sort();
        *self.failing.write().unwrap_or_else(|p| p.into_inner()) = failing;
    }

    /// Takes in a committed batch and evaluates the checks it touched.
    pub async fn observe(&self, rows: &[IngestRow], now: Ms) {
        let catalog = self.catalogs.current();
        let mut inner = self.inner.lock().await;
        inner.sync_catalog(&catalog);
        for row in rows {
            let r = &row.result;
            if inner.check(&r.check_id).is_none() {
                continue;
            }
            let run = Run {
                started_ms: crate::ingest::unix_ms(r.started_at),
                outcome: outcome_of(r),
                total_ms: r.timings.total_ms as f32,
            };
            inner.record(
                &r.check_id,
                &r.probe_id,
                &row.region,
                run,
                r.message.clone(),
            );
            if !inner.dirty.contains(&r.check_id) {
                inner.dirty.insert(r.check_id.clone());
            }
        }
        if now - inner.flushed_ms >= COALESCE_MS {
            self.flush_locked(&mut inner, now).await;
        }
    }

    async fn flush_locked(&self, inner: &mut Inner, now: Ms) {
        let dirty = std::mem::take(&mut inner.dirty);
        inner.flushed_ms = now;
        if dirty.is_empty() {
            return;
        }
        let started = Instant::now();
        let changes = inner.evaluate_many(dirty.iter().map(String::as_str), now);
        self.publish_failing(inner);
        self.metrics
            .evaluated(EvalTrigger::batch, started.elapsed());
        self.emit(changes).await;
    }

    /// Evaluates the checks that got runs since their last evaluation.
    pub async fn flush(&self, now: Ms) {
        let mut inner = self.inner.lock().await;
        self.flush_locked(&mut inner, now).await;
    }

    /// Re-assesses probe health and re-evaluates every check at `now`.
    pub async fn tick(&self, now: Ms, probes: Option<Vec<ProbeRecord>>) {
        let catalog = self.catalogs.current();
        let mut inner = self.inner.lock().await;
        let started = Instant::now();
        inner.sync_catalog(&catalog);
        if let Some(p) = probes
            && p != inner.probes
        {
            inner.probes = p;
            for e in inner.checks.values_mut() {
                e.expected_regions = None;
            }
        }
        let mut changes = Vec::new();

        // Quarantine first, on votes counted with nobody set aside; lone dissenters from the
        // same runs.
        let mut votes: Vec<(String, String, Vec<crate::consensus::ProbeVote>)> = Vec::new();
        let mut findings: Vec<Finding> = Vec::new();
        let ids: Vec<String> = inner.checks.keys().cloned().collect();
        for id in &ids {
            // Only what voting needs: cloning the whole check (its regexes, its spec) every
            // tick for every check would be waste.
            let Some((settings, vendor)) = inner
                .check(id)
                .map(|c| (c.settings.clone(), c.vendor.clone()))
            else {
                continue;
            };
            let Some(entry) = inner.checks.get_mut(id) else {
                continue;
            };
            let runs: Vec<ProbeRuns<'_>> = entry
                .probes
                .iter_mut()
                .map(|(p, h)| ProbeRuns {
                    probe: p,
                    region: &h.region,
                    runs: h.runs.make_contiguous(),
                    message: None,
                    quarantined: false,
                })
                .collect();
            let v = runs
                .iter()
                .map(|r| crate::consensus::vote(&settings, r, now))
                .collect();
            findings.push(Finding {
                check: id.clone(),
                vendor: vendor.clone(),
                window_ms: settings.window.as_millis() as Ms,
                dissenter: suspect::lone_dissenter(&settings, &runs, now)
                    .map(|(p, d)| (p.to_owned(), d)),
            });
            votes.push((id.clone(), vendor, v));
        }
        let (marks, suspect_changes) = suspect::assess(&inner.suspects, &findings, now);
        inner.suspects = marks;
        for c in &suspect_changes {
            log_suspect(c);
        }
        let check_votes: Vec<CheckVotes<'_>> = votes
            .iter()
            .map(|(c, v, votes)| CheckVotes {
                check: c,
                vendor: v,
                votes,
            })
            .collect();
        let (health, health_changes) =
            quarantine::assess(&self.quarantine, &inner.health, &check_votes, now);
        inner.health = health;
        for change in health_changes {
            let health = inner.health.get(&change.probe).cloned().unwrap_or_default();
            if change.quarantined {
                tracing::warn!(probe = %change.probe, vendors = ?change.vendors, "probe quarantined: it fails several vendors its peers see fine");
            } else {
                tracing::info!(probe = %change.probe, "probe readmitted: it agrees with its peers again");
            }
            changes.push(Change::Probe { change, health });
        }

        inner.dirty.clear();
        inner.flushed_ms = now;
        changes.extend(inner.evaluate_many(ids.iter().map(String::as_str), now));
        // Vendors whose checks were never evaluated still get a state (unknown).
        let vendor_ids: Vec<String> = catalog
            .checks
            .vendors
            .iter()
            .map(|v| v.id.clone())
            .collect();
        for v in vendor_ids {
            if !inner.vendors.contains_key(&v)
                && let Some((status, previous)) = inner.derive_vendor(&v)
            {
                changes.push(Change::Vendor {
                    vendor: v,
                    status,
                    previous,
                    at_ms: now,
                });
            }
        }
        self.publish_failing(&inner);
        self.metrics.evaluated(EvalTrigger::tick, started.elapsed());
        self.emit(changes).await;
    }

    /// Every check's settled global verdict: (check, vendor, verdict), in catalog order.
    pub async fn verdicts(&self) -> Vec<(String, String, Verdict)> {
        let catalog = self.catalogs.current();
        let inner = self.inner.lock().await;
        catalog
            .checks
            .checks
            .iter()
            .filter(|c| !c.on_demand)
            .map(|c| {
                let verdict = inner
                    .checks
                    .get(&c.id)
                    .map_or(Verdict::Unknown, |e| e.state.global.verdict);
                (c.id.clone(), c.vendor.clone(), verdict)
            })
            .collect()
    }

    /// Checks failing anywhere (or with failing votes): the batch ack lists them.
    pub fn failing_checks(&self) -> Vec<String> {
        self.failing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every vendor's state.
    pub async fn vendors(&self) -> Vec<VendorView> {
        let catalog = self.catalogs.current();
        let inner = self.inner.lock().await;
        catalog
            .checks
            .vendors
            .iter()
            .map(|v| VendorView {
                id: v.id.clone(),
                name: v.name.clone(),
                status: inner.vendors.get(&v.id).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// One vendor in detail.
    pub async fn vendor(&self, id: &str) -> Option<VendorDetail> {
        let catalog = self.catalogs.current();
        let v = catalog.checks.vendor(id)?;
        let inner = self.inner.lock().await;
        let checks = catalog
            .checks
            .checks
            .iter()
            .filter(|c| c.vendor == id && !c.on_demand)
            .map(|c| {
                let e = inner.checks.get(&c.id);
                CheckDetail {
                    id: c.id.clone(),
                    kind: c.kind().as_label(),
                    role: c.role,
                    state: e.map(|e| e.state.clone()).unwrap_or_default(),
                    raw: e
                        .map(|e| {
                            e.raw
                                .iter()
                                .map(|(s, v)| {
                                    let key = match s {
                                        Scope::Global => "global".to_owned(),
                                        Scope::Region(r) => r.clone(),
                                    };
                                    (key, *v)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    evidence: e.map(|e| e.evidence.clone()).unwrap_or_default(),
                }
            })
            .collect();
        Some(VendorDetail {
            vendor: VendorView {
                id: v.id.clone(),
                name: v.name.clone(),
                status: inner.vendors.get(id).cloned().unwrap_or_default(),
            },
            checks,
            transitions: Vec::new(),
        })
    }

    /// Every probe's health.
    pub async fn probe_health(&self) -> BTreeMap<String, ProbeHealth> {
        self.inner.lock().await.health.clone()
    }

    /// Every (probe, check) where the probe is suspect, by probe then check.
    pub async fn suspects(&self) -> Vec<SuspectView> {
        let inner = self.inner.lock().await;
        inner
            .suspects
            .iter()
            .filter_map(|((probe, check), d)| {
                Some(SuspectView {
                    probe: probe.clone(),
                    check: check.clone(),
                    vendor: d.vendor.clone(),
                    dissent: d.dissent,
                    dissenting_since_ms: d.since_ms,
                    suspect_since_ms: d.suspect_since_ms?,
                })
            })
            .collect()
    }
}
