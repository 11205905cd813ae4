//! Ingest: checks a batch against the limits, then hands it to the one writer, which commits
//! waiting batches together (group commit) and answers each only once its rows are durable.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use vantage_checks::limits;
use vantage_checks::result::{CheckResult, RESULT_SCHEMA_VERSION};
use vantage_checks::wire::{RefusalReason, Refused};

use crate::catalog::Catalog;
use crate::config::Limits;
use crate::store::{IngestRow, InsertOutcome, ProbeRecord, Store, StoreError};

/// Most batches the writer commits in one transaction.
const GROUP_COMMIT_MAX: usize = 64;

/// A whole batch refused before it reached the store (it holds too many results); the
/// message says why.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// What validation made of a batch: the rows to store, and the results refused, each alone.
#[derive(Debug, Default)]
pub struct Checked {
    /// Rows for the store.
    pub rows: Vec<IngestRow>,
    /// Each row's index in the batch.
    pub indices: Vec<usize>,
    /// Results not stored, with why.
    pub refused: Vec<Refused>,
}

impl Checked {
    /// Takes out the results of on-demand runs (`run` set): they are stored with their run,
    /// never with the scheduled results, and never count against the runs an interval allows.
    pub fn take_runs(&mut self) -> Checked {
        let mut runs = Checked {
            rows: Vec::new(),
            indices: Vec::new(),
            refused: Vec::new(),
        };
        if self.rows.iter().all(|r| r.result.run.is_none()) {
            return runs;
        }
        let rows = std::mem::take(&mut self.rows);
        let indices = std::mem::take(&mut self.indices);
        for (row, index) in rows.into_iter().zip(indices) {
            let (to, at) = if row.result.run.is_some() {
                (&mut runs.rows, &mut runs.indices)
            } else {
                (&mut self.rows, &mut self.indices)
            };
            to.push(row);
            at.push(index);
        }
        runs
    }
}

/// Checks a decoded batch from `probe` against the limits and the catalog, and turns its
/// good results into rows for the store. One bad result is refused alone: the rest of its
/// batch is stored. Only a batch with more results than allowed is refused whole.
pub fn validate_batch(
    results: Vec<Result<CheckResult, serde_json::Error>>,
    probe: &ProbeRecord,
    catalog: &Catalog,
    limits: &Limits,
    now: OffsetDateTime,
) -> Result<Checked, Rejected> {
    if results.len() > limits.max_batch {
        return Err(Rejected(format!(
            "the batch has {} results; at most {} are allowed per request: send smaller batches",
            results.len(),
            limits.max_batch
        )));
    }
    let received_ms = unix_ms(now);
    let mut out = Checked {
        rows: Vec::with_capacity(results.len()),
        indices: Vec::with_capacity(results.len()),
        refused: Vec::new(),
    };
    for (index, r) in results.into_iter().enumerate() {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                out.refused.push(Refused {
                    index,
                    seq: None,
                    reason: RefusalReason::Invalid,
                    message: format!("results[{index}] cannot be read: {e}"),
                });
                continue;
            }
        };
        match check_result(&r, probe, catalog, limits, now) {
            Ok(()) => {
                out.rows.push(IngestRow {
                    region: probe.region.clone(),
                    received_ms,
                    result: r,
                });
                out.indices.push(index);
            }
            Err((reason, what)) => out.refused.push(Refused {
                index,
                seq: Some(r.seq),
                reason,
                message: format!(
                    "results[{index}] (check `{}`, seq {}): {what}",
                    short(&r.check_id),
                    r.seq
                ),
            }),
        }
    }
    Ok(out)
}

/// Why one result cannot be stored, if it cannot.
fn check_result(
    r: &CheckResult,
    probe: &ProbeRecord,
    catalog: &Catalog,
    limits: &Limits,
    now: OffsetDateTime,
) -> Result<(), (RefusalReason, String)> {
    if r.v != RESULT_SCHEMA_VERSION {
        return Err((
            RefusalReason::SchemaVersion,
            format!(
                "schema version {} is not supported; this coordinator speaks v{RESULT_SCHEMA_VERSION}",
                r.v
            ),
        ));
    }
    if r.probe_id != probe.id {
        return Err((
            RefusalReason::WrongProbe,
            format!(
                "probe_id `{}` is not the probe this token belongs to (`{}`)",
                short(&r.probe_id),
                probe.id
            ),
        ));
    }
    if let Some((field, len)) = oversized_field(r, limits.max_field_bytes) {
        return Err((
            RefusalReason::TooLarge,
            format!(
                "{field} is {len} bytes; at most {} are allowed",
                limits.max_field_bytes
            ),
        ));
    }
    if r.check_id.is_empty() || r.boot_id.is_empty() {
        return Err((
            RefusalReason::Invalid,
            "check_id and boot_id must not be empty".to_owned(),
        ));
    }
    match catalog.check(&r.check_id) {
        None => {
            return Err((
                RefusalReason::NotSelected,
                "no check by this id is in force on the coordinator".to_owned(),
            ));
        }
        Some(c) if !c.probes.selects(&probe.region, &probe.labels) => {
            return Err((
                RefusalReason::NotSelected,
                format!(
                    "probe `{}` (region `{}`) is not one this check selects",
                    probe.id, probe.region
                ),
            ));
        }
        Some(c) if c.on_demand && r.run.is_none() => {
            return Err((
                RefusalReason::NotSelected,
                "an `on_demand` check runs only in on-demand runs: its result must name its run"
                    .to_owned(),
            ));
        }
        Some(_) => {}
    }
    if r.run.is_some_and(|id| id <= 0) {
        return Err((
            RefusalReason::Invalid,
            "run must be a run id (a positive number)".to_owned(),
        ));
    }
    if r.started_at > now + limits.clock_skew {
        return Err((
            RefusalReason::ClockSkew,
            format!(
                "started_at {} is {}s in the future, beyond the allowed clock skew of {}s: check the probe's clock (NTP); it is sent again later",
                r.started_at,
                (r.started_at - now).whole_seconds(),
                limits.clock_skew.as_secs()
            ),
        ));
    }
    if r.started_at < now - limits.max_result_age {
        return Err((
            RefusalReason::TooOld,
            format!(
                "started_at {} is older than the {}s this coordinator accepts",
                r.started_at,
                limits.max_result_age.as_secs()
            ),
        ));
    }
    if !r.timings.total_ms.is_finite() || r.timings.total_ms < 0.0 {
        return Err((
            RefusalReason::Invalid,
            "timings.total_ms must be a finite, non-negative number".to_owned(),
        ));
    }
    Ok(())
}

/// The first string field longer than `max` bytes, with its length.
fn oversized_field(r: &CheckResult, max: usize) -> Option<(&'static str, usize)> {
    let fields: [(&'static str, usize); 6] = [
        ("check_id", r.check_id.len()),
        ("vendor", r.vendor.len()),
        ("probe_id", r.probe_id.len()),
        ("boot_id", r.boot_id.len()),
        ("message", r.message.as_ref().map_or(0, String::len)),
        ("truncated", r.truncated.as_ref().map_or(0, String::len)),
    ];
    if let Some(f) = fields.into_iter().find(|(_, len)| *len > max) {
        return Some(f);
    }
    // Facts hold server names, answers, URLs and assets: bound the whole of them, as the
    // probe does (vantage_checks::limits::MAX_FACTS_BYTES with the default limits).
    let facts = serde_json::to_string(&r.facts).map_or(0, |s| s.len());
    (facts > max * (limits::MAX_FACTS_BYTES / limits::MAX_FIELD_BYTES)).then_some(("facts", facts))
}

/// A prefix of a probe-supplied string that is safe to echo in an error.
fn short(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{}…", &s[..end])
    } else {
        s.to_owned()
    }
}

/// How long [`RunCap`] remembers a minute no result has touched.
const CAP_MEMORY_MS: i64 = 10 * 60_000;
/// Most (probe, check, minute) keys [`RunCap`] holds; past it, the least recently touched go.
const CAP_MAX_KEYS: usize = 200_000;

/// Caps the runs of a check that one probe may store per minute of run time (`started_at`),
/// at `[limits] max_runs_per_interval` (default 2) times what its interval allows (its
/// `failing_interval` when shorter), plus two: a probe
/// that sends more (a stolen token replaying backdated failures) has the rest refused
/// ([`RefusalReason::RateLimited`]). Counted by run time, not arrival, so a probe emptying
/// its spool after an outage is never capped; a run sent again (same start) counts once.
#[derive(Default)]
pub struct RunCap {
    inner: std::sync::Mutex<CapState>,
}

#[derive(Default)]
struct CapState {
    /// (probe, check, minute) → the distinct starts (ms) stored in it, and when last touched.
    minutes: std::collections::HashMap<(String, String, i64), (Vec<i64>, i64)>,
    swept_ms: i64,
}

impl RunCap {
    /// Runs of `check` one probe may store in one minute, `per_interval` a run's interval.
    pub fn allowance(check: &vantage_checks::model::Check, per_interval: u32) -> usize {
        let s = &check.settings;
        let every = s.interval.min(s.failing_interval).as_millis().max(1);
        per_interval as usize * 60_000u128.div_ceil(every) as usize + 2
    }

    /// Moves the rows of `checked` past their check's allowance (`per_interval` runs an
    /// interval; 0: no cap) to its refusals.
    pub fn admit(
        &self,
        checked: &mut Checked,
        catalog: &Catalog,
        per_interval: u32,
        now: OffsetDateTime,
    ) {
        if per_interval == 0 {
            return;
        }
        let now_ms = unix_ms(now);
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        st.sweep(now_ms);
        let rows = std::mem::take(&mut checked.rows);
        let indices = std::mem::take(&mut checked.indices);
        for (index, row) in indices.into_iter().zip(rows) {
            let r = &row.result;
            let allowed = catalog
                .check(&r.check_id)
                .map_or(0, |c| Self::allowance(c, per_interval));
            let start = unix_ms(r.started_at);
            let key = (
                r.probe_id.clone(),
                r.check_id.clone(),
                start.div_euclid(60_000),
            );
            let (starts, touched) = st.minutes.entry(key).or_default();
            *touched = now_ms;
            let seen = starts.contains(&start);
            if seen || starts.len() < allowed {
                if !seen {
                    starts.push(start);
                }
                checked.rows.push(row);
                checked.indices.push(index);
            } else {
                checked.refused.push(Refused {
                    index,
                    seq: Some(r.seq),
                    reason: RefusalReason::RateLimited,
                    message: format!(
                        "check `{}`, seq {}: more than {allowed} runs of this check started in the minute of {}, more than its interval allows; the rest are refused",
                        short(&r.check_id),
                        r.seq,
                        r.started_at
                    ),
                });
            }
        }
    }
}

impl CapState {
    fn sweep(&mut self, now_ms: i64) {
        if now_ms - self.swept_ms < 60_000 && self.minutes.len() < CAP_MAX_KEYS {
            return;
        }
        self.swept_ms = now_ms;
        let mut keep = now_ms - CAP_MEMORY_MS;
        self.minutes.retain(|_, (_, t)| *t >= keep);
        // Still too many (a flood of distinct minutes): forget the older half.
        while self.minutes.len() >= CAP_MAX_KEYS {
            keep += (now_ms - keep) / 2;
            self.minutes.retain(|_, (_, t)| *t >= keep);
            if now_ms - keep < 2 {
                self.minutes.clear();
            }
        }
    }
}

/// Unix milliseconds.
pub(crate) fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Why a batch was not committed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The writer's queue is full: the caller should answer 429.
    #[error("the coordinator is busy: {0} batches are waiting to be written")]
    Busy(usize),
    /// This probe holds its share of the writer's queue: it should wait (429); other probes
    /// still get in.
    #[error(
        "this probe has {held} batches waiting to be written, its share of the queue; retry later"
    )]
    OverShare {
        /// Its batches queued now.
        held: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Job {
    rows: Vec<IngestRow>,
    reply: oneshot::Sender<Result<InsertOutcome, Arc<StoreError>>>,
}

/// The handle through which request handlers submit batches to the writer.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    shares: Arc<Shares>,
}

/// Each probe's batches in the writer's queue. A probe may hold at most the queue divided
/// among the probes holding some now, and never more than a quarter of it: one probe pushing
/// hard waits (429) while the others still get in.
#[derive(Debug)]
struct Shares {
    capacity: usize,
    held: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One batch's place in its probe's share; given back when dropped.
struct Held {
    shares: Arc<Shares>,
    probe: String,
}

impl Shares {
    fn take(self: &Arc<Self>, probe: &str) -> Result<Held, SubmitError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mine = held.get(probe).copied().unwrap_or(0);
        let active = held.len() + usize::from(mine == 0);
        let share = (self.capacity / active).min(self.capacity / 4).max(1);
        if mine >= share {
            return Err(SubmitError::OverShare { held: mine });
        }
        *held.entry(probe.to_owned()).or_insert(0) += 1;
        Ok(Held {
            shares: Arc::clone(self),
            probe: probe.to_owned(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.probe) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.probe);
            }
        }
    }
}

impl Writer {
    /// Starts the writer threads ([`Store::writers`] of them). They end when every `Writer`
    /// handle is dropped, after committing what is queued; the handle returned ends last.
    pub fn start(
        store: Arc<dyn Store>,
        queue_batches: usize,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue_batches);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let spawn = |store: Arc<dyn Store>, rx: Arc<std::sync::Mutex<mpsc::Receiver<Job>>>| {
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || write_loop(&*store, &rx))
                .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"))
        };
        let others: Vec<_> = (1..store.writers().max(1))
            .map(|_| spawn(Arc::clone(&store), Arc::clone(&rx)))
            .collect();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                write_loop(&*store, &rx);
                for t in others {
                    let _ = t.join();
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"));
        (
            Self {
                tx,
                capacity: queue_batches,
                shares: Arc::new(Shares {
                    capacity: queue_batches,
                    held: Default::default(),
                }),
            },
            handle,
        )
    }

    /// Queues `probe`'s batch and waits until it is committed. Never waits for queue space: a
    /// full queue is [`SubmitError::Busy`], so memory stays bounded under overload, and a
    /// probe holding its share of the queue is [`SubmitError::OverShare`].
    pub async fn submit(
        &self,
        probe: &str,
        rows: Vec<IngestRow>,
    ) -> Result<InsertOutcome, SubmitError> {
        let _held = self.shares.take(probe)?;
        let (reply, answer) = oneshot::channel();
        self.tx.try_send(Job { rows, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Busy(self.capacity),
            mpsc::error::TrySendError::Closed(_) => SubmitError::Store(StoreError::WriterGone),
        })?;
        match answer.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(SubmitError::Store(StoreError::Commit(e.to_string()))),
            Err(_) => Err(SubmitError::Store(StoreError::WriterGone)),
        }
    }

    /// Batches waiting for the writer now.
    pub fn queued(&self) -> usize {
        self.capacity - self.tx.capacity()
    }
}

/// One writer: takes what is queued (up to [`GROUP_COMMIT_MAX`] batches) and commits it at
/// once, while the queue is left to the other writers.
fn write_loop(store: &dyn Store, rx: &std::sync::Mutex<mpsc::Receiver<Job>>) {
    loop {
        let mut jobs = {
            let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            let Some(first) = rx.blocking_recv() else {
                return;
            };
            let mut jobs = vec![first];
            while jobs.len() < GROUP_COMMIT_MAX {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        let batches: Vec<Vec<IngestRow>> = jobs
            .iter_mut()
            .map(|j| std::mem::take(&mut j.rows))
            .collect();
        let result = store.insert_batches(&batches);
        match result {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batches = batches.len(), "store commit failed; batches refused");
                let e = Arc::new(e);
                for job in jobs {
                    let _ = job.reply.send(Err(Arc::clone(&e)));
                }
                // A failing disk should not spin: give it a moment before the next attempt.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use vantage_checks::model::CheckKind;
    use vantage_checks::result::{Facts, Status, Timings};

    use super::*;

    fn probe() -> ProbeRecord {
        ProbeRecord {
            id: "p1".into(),
            region: "eu".into(),
            labels: BTreeMap::new(),
            created_ms: 0,
            revoked_ms: None,
            last_seen_ms: None,
        }
    }

    fn result(now: OffsetDateTime) -> CheckResult {
        CheckResult {
            v: RESULT_SCHEMA_VERSION,
            check_id: "c".into(),
            vendor: "v".into(),
            kind: CheckKind::Tcp,
            probe_id: "p1".into(),
            boot_id: "b".into(),
            seq: 7,
            started_at: now,
            status: Status::Ok,
            failure: None,
            message: None,
            slow: false,
            retried: false,
            timings: Timings {
                total_ms: 1.0,
                ..Timings::default()
            },
            facts: Facts::None,
            truncated: None,
            run: None,
        }
    }

    /// One check `c` of vendor `v`, run by every probe; and one `eu-only` that probes in
    /// region `eu` do not run.
    fn catalog() -> (tempfile::TempDir, std::sync::Arc<Catalog>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checks.toml");
        std::fs::write(
            &path,
            "[[vendor]]\nid = \"v\"\n[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\n\n[[check]]\nid = \"us-only\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\nprobes = { regions = [\"us\"] }\n",
        )
        .expect("write checks");
        let catalogs = crate::catalog::Catalogs::load(vec![path]).expect("load");
        (dir, catalogs.current())
    }

    /// Validates a batch of one result, `mutate`d.
    fn check(mutate: impl FnOnce(&mut CheckResult)) -> Checked {
        let now = OffsetDateTime::now_utc();
        let mut r = result(now);
        mutate(&mut r);
        let (_dir, catalog) = catalog();
        validate_batch(vec![Ok(r)], &probe(), &catalog, &Limits::default(), now)
            .expect("one result is never too many")
    }

    /// `n` runs of check `c` from probe p1, `every` apart from `first`, seqs from `seq`.
    fn runs(first: OffsetDateTime, every: time::Duration, n: usize, seq: u64) -> Checked {
        let rows: Vec<IngestRow> = (0..n)
            .map(|i| {
                let mut r = result(first + every * i as u32);
                r.seq = seq + i as u64;
                IngestRow {
                    region: "eu".into(),
                    received_ms: 0,
                    result: r,
                }
            })
            .collect();
        Checked {
            indices: (0..rows.len()).collect(),
            rows,
            refused: Vec::new(),
        }
    }

    #[test]
    fn r12_runs_past_what_the_interval_allows_are_refused() {
        let (_dir, catalog) = catalog();
        let allowed = RunCap::allowance(catalog.check("c").expect("c"), 2);
        let s = &catalog.check("c").expect("c").settings;
        let per_minute = 60_000 / s.interval.min(s.failing_interval).as_millis() as usize;
        assert!(
            allowed >= 2 * per_minute,
            "{allowed} for {per_minute} a minute"
        );
        let cap = RunCap::default();
        let now = OffsetDateTime::now_utc();
        let minute = time::Duration::seconds((now.unix_timestamp() % 60) + 120);
        let start = now - minute;

        // A replay: ten times the allowance, all starting in one minute.
        let mut flood = runs(start, time::Duration::milliseconds(10), allowed * 10, 0);
        cap.admit(&mut flood, &catalog, 2, now);
        assert_eq!(flood.rows.len(), allowed);
        assert_eq!(flood.refused.len(), allowed * 9);
        assert!(
            flood
                .refused
                .iter()
                .all(|r| r.reason == RefusalReason::RateLimited && r.index >= allowed),
            "{:?}",
            flood.refused.first()
        );
        assert!(
            flood.refused[0]
                .message
                .contains("more than its interval allows")
        );
        // Sent again (a lost answer): the same runs are taken again, and no more.
        let mut again = runs(start, time::Duration::milliseconds(10), allowed + 1, 0);
        cap.admit(&mut again, &catalog, 2, now);
        assert_eq!(again.rows.len(), allowed);
        assert_eq!(again.indices, (0..allowed).collect::<Vec<_>>());

        // A spool emptied after an hour away: every run kept, at the check's own pace.
        let every = time::Duration::try_from(s.interval).expect("interval");
        let n = (3_600_000 / s.interval.as_millis()) as usize;
        let mut backlog = runs(now - time::Duration::hours(2), every, n, 10_000);
        cap.admit(&mut backlog, &catalog, 2, now);
        assert_eq!((backlog.rows.len(), backlog.refused.len()), (n, 0));
        // Turned off, nothing is capped.
        let mut flood = runs(start, time::Duration::milliseconds(10), allowed * 10, 0);
        RunCap::default().admit(&mut flood, &catalog, 0, now);
        assert_eq!(flood.rows.len(), allowed * 10);
    }

    // The test holds the store's write lock across awaits on purpose: only the writer's own
    // thread (not a task) waits for it, as it would for a slow disk.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn r12_one_probe_pushing_hard_leaves_room_in_the_writer_queue_for_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            crate::store::SqliteStore::open(
                &dir.path().join("v.db"),
                crate::store::Synchronous::Normal,
            )
            .expect("open"),
        );
        // Eight batches may wait; a probe may hold a quarter of them.
        let (writer, thread) = Writer::start(Arc::clone(&store) as Arc<dyn Store>, 8);
        let rows = |probe: &str, seq: u64| {
            let mut r = result(OffsetDateTime::now_utc());
            r.probe_id = probe.into();
            r.seq = seq;
            vec![IngestRow {
                region: "eu".into(),
                received_ms: 0,
                result: r,
            }]
        };
        let hold = store.hold_writes();
        let mut waiting = Vec::new();
        let mut refused = None;
        for seq in 0..10 {
            let w = writer.clone();
            let job = tokio::spawn(async move { w.submit("p1", rows("p1", seq)).await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            if job.is_finished() {
                refused = Some(job.await.expect("join"));
                break;
            }
            waiting.push(job);
        }
        assert!(
            matches!(refused, Some(Err(SubmitError::OverShare { held: 2 }))),
            "{refused:?}"
        );
        assert_eq!(waiting.len(), 2);
        // Another probe still gets in: its batch waits for the disk, not a 429.
        let w = writer.clone();
        let other = tokio::spawn(async move { w.submit("p2", rows("p2", 0)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!other.is_finished(), "{:?}", other.await);
        drop(hold);
        for job in waiting {
            assert_eq!(job.await.expect("join").expect("committed").inserted, 1);
        }
        assert_eq!(other.await.expect("join").expect("committed").inserted, 1);
        drop(writer);
        thread.join().expect("writer thread");
    }

    #[test]
    fn limits_table() {
        assert_eq!(check(|_| {}).rows.len(), 1);
        type Mutation = Box<dyn FnOnce(&mut CheckResult)>;
        let cases: [(&str, RefusalReason, Mutation); 7] = [
            (
                "is not the probe this token belongs to",
                RefusalReason::WrongProbe,
                Box::new(|r| r.probe_id = "p2".into()),
            ),
            (
                "in the future, beyond the allowed clock skew",
                RefusalReason::ClockSkew,
                Box::new(|r| r.started_at += time::Duration::minutes(10)),
            ),
            (
                "older than",
                RefusalReason::TooOld,
                Box::new(|r| r.started_at -= time::Duration::days(8)),
            ),
            (
                "message is 1048576 bytes; at most 4096",
                RefusalReason::TooLarge,
                Box::new(|r| r.message = Some("x".repeat(1 << 20))),
            ),
            (
                "schema version 2 is not supported",
                RefusalReason::SchemaVersion,
                Box::new(|r| r.v = 2),
            ),
            (
                "finite",
                RefusalReason::Invalid,
                Box::new(|r| r.timings.total_ms = f64::NAN),
            ),
            (
                "probe `p1` (region `eu`) is not one this check selects",
                RefusalReason::NotSelected,
                Box::new(|r| r.check_id = "us-only".into()),
            ),
        ];
        for (want, reason, mutate) in cases {
            let checked = check(mutate);
            assert!(checked.rows.is_empty(), "{want}");
            let refused = &checked.refused[0];
            assert_eq!(refused.reason, reason, "{want}");
            assert_eq!(refused.index, 0);
            assert!(
                refused.message.contains(want),
                "{want}: {}",
                refused.message
            );
            assert!(
                refused.message.starts_with("results[0] (check `"),
                "{}",
                refused.message
            );
        }
    }

    #[test]
    fn r12_one_bad_result_is_refused_alone() {
        let now = OffsetDateTime::now_utc();
        let (_dir, catalog) = catalog();
        let mut bad = result(now);
        bad.message = Some("x".repeat(1 << 20));
        let unreadable: Result<CheckResult, serde_json::Error> = serde_json::from_str("{}");
        let checked = validate_batch(
            vec![Ok(result(now)), Ok(bad), unreadable, Ok(result(now))],
            &probe(),
            &catalog,
            &Limits::default(),
            now,
        )
        .expect("validated");
        assert_eq!(checked.rows.len(), 2, "the good results are kept");
        let refused: Vec<(usize, RefusalReason)> = checked
            .refused
            .iter()
            .map(|r| (r.index, r.reason))
            .collect();
        assert_eq!(
            refused,
            [(1, RefusalReason::TooLarge), (2, RefusalReason::Invalid)]
        );
        assert_eq!(checked.refused[1].seq, None);
    }

    #[test]
    fn oversized_batches_are_refused() {
        let now = OffsetDateTime::now_utc();
        let limits = Limits {
            max_batch: 2,
            ..Limits::default()
        };
        let (_dir, catalog) = catalog();
        let results = (0..3).map(|_| Ok(result(now))).collect();
        let err = validate_batch(results, &probe(), &catalog, &limits, now).expect_err("too many");
        assert!(
            err.0.contains("the batch has 3 results; at most 2"),
            "{err}"
        );
    }
}
