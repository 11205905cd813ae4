//! Ingest: checks a batch against the limits, then hands it to the one writer, which commits
//! waiting batches together (group commit) and answers each only once its rows are durable.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use vantage_checks::result::{CheckResult, RESULT_SCHEMA_VERSION};
use vantage_checks::wire::ResultBatch;

use crate::config::Limits;
use crate::store::{IngestRow, InsertOutcome, ProbeRecord, Store, StoreError};

/// Most batches the writer commits in one transaction.
const GROUP_COMMIT_MAX: usize = 64;

/// A batch refused before it reached the store; the message says which result and why.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// Checks a decoded batch from `probe` and turns it into rows for the store.
pub fn validate_batch(
    batch: ResultBatch,
    probe: &ProbeRecord,
    limits: &Limits,
    now: OffsetDateTime,
) -> Result<Vec<IngestRow>, Rejected> {
    if batch.results.len() > limits.max_batch {
        return Err(Rejected(format!(
            "the batch has {} results; at most {} are allowed per request: send smaller batches",
            batch.results.len(),
            limits.max_batch
        )));
    }
    let received_ms = unix_ms(now);
    let newest = now + limits.clock_skew;
    let oldest = now - limits.max_result_age;
    let mut rows = Vec::with_capacity(batch.results.len());
    for (i, r) in batch.results.into_iter().enumerate() {
        let at = |what: String| {
            Rejected(format!(
                "results[{i}] (check `{}`, seq {}): {what}",
                short(&r.check_id),
                r.seq
            ))
        };
        if r.v != RESULT_SCHEMA_VERSION {
            return Err(at(format!(
                "schema version {} is not supported; this coordinator speaks v{RESULT_SCHEMA_VERSION}",
                r.v
            )));
        }
        if r.probe_id != probe.id {
            return Err(at(format!(
                "probe_id `{}` is not the probe this token belongs to (`{}`)",
                short(&r.probe_id),
                probe.id
            )));
        }
        if let Some((field, len)) = oversized_field(&r, limits.max_field_bytes) {
            return Err(at(format!(
                "{field} is {len} bytes; at most {} are allowed",
                limits.max_field_bytes
            )));
        }
        if r.check_id.is_empty() || r.boot_id.is_empty() {
            return Err(at("check_id and boot_id must not be empty".to_owned()));
        }
        if r.started_at > newest {
            return Err(at(format!(
                "started_at {} is {}s in the future, beyond the allowed clock skew of {}s: check the probe's clock (NTP)",
                r.started_at,
                (r.started_at - now).whole_seconds(),
                limits.clock_skew.as_secs()
            )));
        }
        if r.started_at < oldest {
            return Err(at(format!(
                "started_at {} is older than the {}s this coordinator accepts",
                r.started_at,
                limits.max_result_age.as_secs()
            )));
        }
        if !r.timings.total_ms.is_finite() || r.timings.total_ms < 0.0 {
            return Err(at(
                "timings.total_ms must be a finite, non-negative number".to_owned()
            ));
        }
        rows.push(IngestRow {
            region: probe.region.clone(),
            received_ms,
            result: r,
        });
    }
    Ok(rows)
}

/// The first string field longer than `max` bytes, with its length.
fn oversized_field(r: &CheckResult, max: usize) -> Option<(&'static str, usize)> {
    let fields: [(&'static str, usize); 5] = [
        ("check_id", r.check_id.len()),
        ("vendor", r.vendor.len()),
        ("probe_id", r.probe_id.len()),
        ("boot_id", r.boot_id.len()),
        ("message", r.message.as_ref().map_or(0, String::len)),
    ];
    if let Some(f) = fields.into_iter().find(|(_, len)| *len > max) {
        return Some(f);
    }
    // Facts hold server names, answers, URLs and assets: bound the whole of them.
    let facts = serde_json::to_string(&r.facts).map_or(0, |s| s.len());
    (facts > max * 16).then_some(("facts", facts))
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
}

impl Writer {
    /// Starts the writer thread. It ends when every `Writer` handle is dropped, after
    /// committing what is queued.
    pub fn start(
        store: Arc<dyn Store>,
        queue_batches: usize,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue_batches);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(store, rx))
            .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"));
        (
            Self {
                tx,
                capacity: queue_batches,
            },
            handle,
        )
    }

    /// Queues a batch and waits until it is committed. Never waits for queue space: a full
    /// queue is [`SubmitError::Busy`], so memory stays bounded under overload.
    pub async fn submit(&self, rows: Vec<IngestRow>) -> Result<InsertOutcome, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx.try_send(Job { rows, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Busy(self.capacity),
            mpsc::error::TrySendError::Closed(_) => SubmitError::Store(StoreError::WriterGone),
        })?;
        match answer.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(SubmitError::Store(StoreError::Corrupt(e.to_string()))),
            Err(_) => Err(SubmitError::Store(StoreError::WriterGone)),
        }
    }

    /// Batches waiting for the writer now.
    pub fn queued(&self) -> usize {
        self.capacity - self.tx.capacity()
    }
}

fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
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
        }
    }

    fn check(mutate: impl FnOnce(&mut CheckResult)) -> Result<Vec<IngestRow>, Rejected> {
        let now = OffsetDateTime::now_utc();
        let mut r = result(now);
        mutate(&mut r);
        validate_batch(
            ResultBatch {
                results: vec![r],
                counters: None,
            },
            &probe(),
            &Limits::default(),
            now,
        )
    }

    #[test]
    fn limits_table() {
        assert_eq!(check(|_| {}).expect("valid").len(), 1);
        type Mutation = Box<dyn FnOnce(&mut CheckResult)>;
        let cases: [(&str, Mutation); 6] = [
            (
                "is not the probe this token belongs to",
                Box::new(|r| r.probe_id = "p2".into()),
            ),
            (
                "in the future, beyond the allowed clock skew",
                Box::new(|r| r.started_at += time::Duration::minutes(10)),
            ),
            (
                "older than",
                Box::new(|r| r.started_at -= time::Duration::days(8)),
            ),
            (
                "message is 1048576 bytes; at most 4096",
                Box::new(|r| r.message = Some("x".repeat(1 << 20))),
            ),
            ("schema version 2 is not supported", Box::new(|r| r.v = 2)),
            ("finite", Box::new(|r| r.timings.total_ms = f64::NAN)),
        ];
        for (want, mutate) in cases {
            let err = check(mutate).expect_err(want);
            assert!(err.0.contains(want), "{want}: {err}");
            assert!(
                err.0.starts_with("results[0] (check `c`, seq 7): "),
                "{err}"
            );
        }
    }

    #[test]
    fn oversized_batches_are_refused() {
        let now = OffsetDateTime::now_utc();
        let limits = Limits {
            max_batch: 2,
            ..Limits::default()
        };
        let batch = ResultBatch {
            results: vec![result(now); 3],
            counters: None,
        };
        let err = validate_batch(batch, &probe(), &limits, now).expect_err("too many");
        assert!(
            err.0.contains("the batch has 3 results; at most 2"),
            "{err}"
        );
    }
}
