//! `/metrics`: Prometheus exposition through the `prometheus-client` crate.
//!
//! Labels are low-cardinality static strings: a rejection reason, a probe id. Never a URL or
//! error text.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vantage_checks::wire::ProbeCounters;

/// Why a request to ingest was refused.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RejectReason {
    /// Missing, wrong or revoked token.
    unauthorized,
    /// Not a valid batch.
    bad_request,
    /// Body over the size limit.
    too_large,
    /// Body did not arrive in time.
    timeout,
    /// A result broke a limit.
    invalid,
    /// Writer queue full (429).
    busy,
    /// The store failed.
    store,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: RejectReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe: String,
}

/// Every metric the coordinator exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    results_ingested: Counter,
    results_duplicate: Counter,
    batches_rejected: Family<ReasonLabels, Counter>,
    checks_loaded: Gauge,
    checks_config_error: Gauge,
    checks_reload_failures: Counter,
    writer_queue: Gauge,
    store_bytes: Gauge,
    probe_pending: Family<ProbeLabels, Gauge>,
    probe_dropped: Family<ProbeLabels, Gauge>,
    probe_rejected: Family<ProbeLabels, Gauge>,
    probe_spool_bytes: Family<ProbeLabels, Gauge>,
    alerts_sent: Family<ReceiverLabels, Counter>,
    alerts_pending: Gauge,
    incidents_opened: Family<StateLabels, Counter>,
    probes_quarantined: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vantage");
        let m = Self {
            results_ingested: Counter::default(),
            results_duplicate: Counter::default(),
            batches_rejected: Family::default(),
            checks_loaded: Gauge::default(),
            checks_config_error: Gauge::default(),
            checks_reload_failures: Counter::default(),
            writer_queue: Gauge::default(),
            store_bytes: Gauge::default(),
            probe_pending: Family::default(),
            probe_dropped: Family::default(),
            probe_rejected: Family::default(),
            probe_spool_bytes: Family::default(),
            alerts_sent: Family::default(),
            alerts_pending: Gauge::default(),
            incidents_opened: Family::default(),
            probes_quarantined: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "results_ingested",
            "Results stored for the first time",
            m.results_ingested.clone(),
        );
        registry.register(
            "results_duplicate",
            "Results received again and ignored",
            m.results_duplicate.clone(),
        );
        registry.register(
            "batches_rejected",
            "Result batches refused, by reason",
            m.batches_rejected.clone(),
        );
        registry.register(
            "checks_loaded",
            "Checks in the catalog in force",
            m.checks_loaded.clone(),
        );
        registry.register(
            "checks_config_error",
            "1 while the check files on disk are invalid and the last good ones are running",
            m.checks_config_error.clone(),
        );
        registry.register(
            "checks_reload_failures",
            "Reloads of the check files that failed",
            m.checks_reload_failures.clone(),
        );
        registry.register(
            "store_writer_queue_batches",
            "Batches waiting for the store writer",
            m.writer_queue.clone(),
        );
        registry.register(
            "store_size_bytes",
            "Size of the store on disk",
            m.store_bytes.clone(),
        );
        registry.register(
            "probe_spool_pending_results",
            "Results in a probe's spool, as it last reported",
            m.probe_pending.clone(),
        );
        registry.register(
            "probe_spool_bytes",
            "Bytes in a probe's spool, as it last reported",
            m.probe_spool_bytes.clone(),
        );
        registry.register(
            "probe_dropped_results",
            "Results a probe dropped at its spool bounds since its start",
            m.probe_dropped.clone(),
        );
        registry.register(
            "probe_rejected_results",
            "Results a probe had refused with a 4xx since its start",
            m.probe_rejected.clone(),
        );
        registry.register(
            "alert_deliveries",
            "Alert delivery attempts, by receiver and outcome (delivered or failed)",
            m.alerts_sent.clone(),
        );
        registry.register(
            "alert_outbox_pending",
            "Alerts queued and not yet delivered",
            m.alerts_pending.clone(),
        );
        registry.register(
            "incidents_opened",
            "Incidents opened, by the state that opened them",
            m.incidents_opened.clone(),
        );
        registry.register(
            "probes_quarantined",
            "Probes whose votes are set aside because they disagree with their peers",
            m.probes_quarantined.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts a committed batch.
    pub fn ingested(&self, inserted: u64, duplicates: u64) {
        self.results_ingested.inc_by(inserted);
        self.results_duplicate.inc_by(duplicates);
    }

    /// Counts a refused batch.
    pub fn rejected(&self, reason: RejectReason) {
        self.batches_rejected
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Records a probe's own counters from its latest batch.
    pub fn probe_counters(&self, probe: &str, c: &ProbeCounters) {
        let l = ProbeLabels {
            probe: probe.to_owned(),
        };
        let set = |f: &Family<ProbeLabels, Gauge>, v: u64| {
            f.get_or_create(&l)
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.probe_pending, c.pending);
        set(&self.probe_spool_bytes, c.spool_bytes);
        set(&self.probe_dropped, c.dropped);
        set(&self.probe_rejected, c.rejected);
    }

    /// Counts one alert delivery attempt.
    pub fn alert_sent(&self, receiver: &str, delivered: bool) {
        self.alerts_sent
            .get_or_create(&ReceiverLabels {
                receiver: receiver.to_owned(),
                outcome: if delivered { "delivered" } else { "failed" },
            })
            .inc();
    }

    /// Counts an incident opened in `state`.
    pub fn incident_opened(&self, state: &'static str) {
        self.incidents_opened
            .get_or_create(&StateLabels { state })
            .inc();
    }

    /// Renders the exposition after refreshing the values read at scrape time.
    pub fn render(&self, scrape: &Scrape) -> String {
        self.checks_loaded.set(scrape.checks_loaded as i64);
        self.checks_config_error.set(i64::from(scrape.config_error));
        let failures = scrape.reload_failures;
        let seen = self.checks_reload_failures.get();
        if failures > seen {
            self.checks_reload_failures.inc_by(failures - seen);
        }
        self.writer_queue.set(scrape.writer_queue as i64);
        self.alerts_pending
            .set(i64::try_from(scrape.alerts_pending).unwrap_or(i64::MAX));
        self.probes_quarantined
            .set(scrape.probes_quarantined as i64);
        self.store_bytes
            .set(i64::try_from(scrape.store_bytes).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Values read from other parts at scrape time.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Checks in force.
    pub checks_loaded: usize,
    /// Whether the files on disk are invalid.
    pub config_error: bool,
    /// Failed reloads so far.
    pub reload_failures: u64,
    /// Batches queued for the writer.
    pub writer_queue: usize,
    /// Store size.
    pub store_bytes: u64,
    /// Alerts queued, not delivered.
    pub alerts_pending: u64,
    /// Probes in quarantine.
    pub probes_quarantined: usize,
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_values() {
        let m = Metrics::new();
        m.ingested(3, 1);
        m.rejected(RejectReason::busy);
        m.probe_counters(
            "fra-1",
            &ProbeCounters {
                pending: 7,
                ..ProbeCounters::default()
            },
        );
        let text = m.render(&Scrape {
            checks_loaded: 5,
            config_error: true,
            reload_failures: 2,
            writer_queue: 1,
            store_bytes: 4096,
            alerts_pending: 3,
            probes_quarantined: 1,
        });
        for line in [
            "vantage_results_ingested_total 3",
            "vantage_results_duplicate_total 1",
            "vantage_batches_rejected_total{reason=\"busy\"} 1",
            "vantage_checks_loaded 5",
            "vantage_checks_config_error 1",
            "vantage_checks_reload_failures_total 2",
            "vantage_store_writer_queue_batches 1",
            "vantage_store_size_bytes 4096",
            "vantage_probe_spool_pending_results{probe=\"fra-1\"} 7",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
        // The counter follows the catalog's count without going backwards or double counting.
        let text = m.render(&Scrape {
            reload_failures: 2,
            ..Scrape::default()
        });
        assert!(
            text.contains("vantage_checks_reload_failures_total 2\n"),
            "{text}"
        );
    }
}
