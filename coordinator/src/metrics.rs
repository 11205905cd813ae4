//! `/metrics`: Prometheus exposition through the `prometheus-client` crate.
//!
//! Labels are low-cardinality: a rejection reason, a probe, vendor, region or check id, a
//! state, a configured receiver's name. Never a URL or error text.
//!
//! Most values are counted where they happen; the states (vendors, checks, probes) are read
//! from the engine and the store at scrape time ([`Scrape`]), so a restarted coordinator
//! exports them at once and a vendor or probe that is gone stops being exported.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use vantage_checks::wire::ProbeCounters;

use crate::consensus::Verdict;
use crate::consensus::vendor::{VendorState, VendorStatus};

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
    /// The probe held its share of the writer queue (429).
    over_share,
    /// The store failed.
    store,
}

impl RejectReason {
    const ALL: [RejectReason; 8] = [
        Self::unauthorized,
        Self::bad_request,
        Self::too_large,
        Self::timeout,
        Self::invalid,
        Self::busy,
        Self::over_share,
        Self::store,
    ];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: RejectReason,
}

/// Why a live stream consumer was dropped.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StreamDropReason {
    /// It left its queue full.
    queue_full,
    /// Its pump fell a whole hub ring behind.
    lagged,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamDropLabels {
    reason: StreamDropReason,
}

/// What started a consensus evaluation.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum EvalTrigger {
    /// Committed batches: the checks they touched.
    batch,
    /// The 1 s tick: quarantine and every check.
    tick,
}

/// Why a connection was closed on arrival.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ShedReason {
    /// The server holds as many connections as it serves.
    capacity,
    /// The client's address holds its share (`max_connections_per_address`).
    per_address,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    reason: ShedReason,
}

/// What the coordinator was doing when the store failed (`vantage_store_errors_total{op}`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StoreOp {
    /// Recording a consensus change: check states, a vendor's state, an incident and its
    /// alerts (tried again until it succeeds).
    RecordChange,
    /// The incident timer's reconcile pass.
    Reconcile,
    /// The outbox marking an alert sent, or scheduling its retry.
    Outbox,
    /// Balancing leases (a heartbeat).
    Lease,
}

impl StoreOp {
    const ALL: [StoreOp; 4] = [
        Self::RecordChange,
        Self::Reconcile,
        Self::Outbox,
        Self::Lease,
    ];

    fn as_label(self) -> &'static str {
        match self {
            Self::RecordChange => "record_change",
            Self::Reconcile => "reconcile",
            Self::Outbox => "outbox",
            Self::Lease => "lease",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartLabels {
    part: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreOpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: EvalTrigger,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VendorStateLabels {
    vendor: String,
    region: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    check: String,
    vendor: String,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverOnlyLabels {
    receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeCheckLabels {
    probe: String,
    check: String,
}

/// Every metric the coordinator exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    results_ingested: Counter,
    results_duplicate: Counter,
    batches_rejected: Family<ReasonLabels, Counter>,
    results_refused: Family<RefusedLabels, Counter>,
    store_errors: Family<StoreOpLabels, Counter>,
    connections_shed: Family<ShedLabels, Counter>,
    result_unknown_fields: Counter,
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
    dead_letters: Family<ReceiverOnlyLabels, Counter>,
    alerts_pending: Gauge,
    incidents_opened: Family<StateLabels, Counter>,
    probes_quarantined: Gauge,
    vendor_state: Family<VendorStateLabels, Gauge>,
    check_verdict: Family<VerdictLabels, Gauge>,
    probe_last_seen: Family<ProbeLabels, Gauge>,
    probe_quarantined: Family<ProbeLabels, Gauge>,
    probe_suspect: Family<ProbeCheckLabels, Gauge>,
    probes_suspect: Gauge,
    evaluation_seconds: Family<TriggerLabels, Histogram, fn() -> Histogram>,
    stream_consumers: Gauge,
    stream_dropped: Family<StreamDropLabels, Counter>,
    leases_held: Gauge,
    lease_epoch: Family<PartLabels, Gauge>,
    /// Scrapes refresh and encode one at a time, so none sees another's half-filled families.
    scraping: Mutex<()>,
}

/// Buckets of consensus evaluation time: 10 µs to 2.5 s, in 1-2.5-5 steps.
fn evaluation_histogram() -> Histogram {
    Histogram::new([
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
        0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

/// A registered probe as `/metrics` shows it.
#[derive(Clone, Debug, Default)]
pub struct ProbeGauge {
    /// Probe id.
    pub id: String,
    /// Its last accepted request (Unix ms), if any.
    pub last_seen_ms: Option<i64>,
    /// Whether its votes are set aside.
    pub quarantined: bool,
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
            results_refused: Family::default(),
            store_errors: Family::default(),
            connections_shed: Family::default(),
            result_unknown_fields: Counter::default(),
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
            dead_letters: Family::default(),
            alerts_pending: Gauge::default(),
            incidents_opened: Family::default(),
            probes_quarantined: Gauge::default(),
            vendor_state: Family::default(),
            check_verdict: Family::default(),
            probe_last_seen: Family::default(),
            probe_quarantined: Family::default(),
            probe_suspect: Family::default(),
            probes_suspect: Gauge::default(),
            evaluation_seconds: Family::new_with_constructor(evaluation_histogram),
            stream_consumers: Gauge::default(),
            stream_dropped: Family::default(),
            leases_held: Gauge::default(),
            lease_epoch: Family::default(),
            scraping: Mutex::new(()),
            registry: Registry::default(),
        };
        // Known label sets start at zero, so rates and dashboards work before the first event.
        for reason in RejectReason::ALL {
            let _ = m.batches_rejected.get_or_create(&ReasonLabels { reason });
        }
        for reason in [ShedReason::capacity, ShedReason::per_address] {
            let _ = m.connections_shed.get_or_create(&ShedLabels { reason });
        }
        for op in StoreOp::ALL {
            let _ = m
                .store_errors
                .get_or_create(&StoreOpLabels { op: op.as_label() });
        }
        for reason in vantage_checks::wire::RefusalReason::ALL {
            let _ = m.results_refused.get_or_create(&RefusedLabels {
                reason: reason.as_label(),
            });
        }
        for trigger in [EvalTrigger::batch, EvalTrigger::tick] {
            let _ = m
                .evaluation_seconds
                .get_or_create(&TriggerLabels { trigger });
        }
        let bad = VendorState::ALL.into_iter().filter(|s| s.is_bad());
        for state in bad
            .map(VendorState::as_label)
            .chain([crate::alert::PROBE_STATE])
        {
            let _ = m.incidents_opened.get_or_create(&StateLabels { state });
        }
        for reason in [StreamDropReason::queue_full, StreamDropReason::lagged] {
            let _ = m.stream_dropped.get_or_create(&StreamDropLabels { reason });
        }
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
            "results_refused",
            "Results refused one by one (the rest of their batch stored), by reason",
            m.results_refused.clone(),
        );
        registry.register(
            "connections_shed",
            "Connections closed on arrival: the server full, or the client's address holding its share",
            m.connections_shed.clone(),
        );
        registry.register(
            "alert_dead_letters",
            "Alerts given up after every attempt their receiver allows failed, by receiver",
            m.dead_letters.clone(),
        );
        registry.register(
            "store_errors",
            "Store failures outside ingest (which answers 503), by what was being done; each is retried",
            m.store_errors.clone(),
        );
        registry.register(
            "result_unknown_fields",
            "Fields of results this coordinator does not know (a newer probe's), ignored",
            m.result_unknown_fields.clone(),
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
        registry.register(
            "vendor_state",
            "1 for a vendor's current state, 0 for the others; region=\"global\" is the state across regions",
            m.vendor_state.clone(),
        );
        registry.register(
            "check_verdict",
            "1 for a check's settled global verdict (unknown, passing, slow, failing), 0 for the others",
            m.check_verdict.clone(),
        );
        registry.register(
            "probe_last_seen_timestamp_seconds",
            "When a registered probe last made an accepted request (Unix seconds)",
            m.probe_last_seen.clone(),
        );
        registry.register(
            "probe_quarantined",
            "1 while a registered probe is quarantined, else 0",
            m.probe_quarantined.clone(),
        );
        registry.register(
            "probe_suspect",
            "1 while a probe is suspect on a check: the lone dissenter on it for longer than its window (it still votes, and cannot page alone); absent otherwise",
            m.probe_suspect.clone(),
        );
        registry.register(
            "probes_suspect",
            "(probe, check) pairs where the probe is suspect",
            m.probes_suspect.clone(),
        );
        registry.register(
            "consensus_evaluation_seconds",
            "Time one consensus evaluation took: the checks of committed batches, or the whole tick",
            m.evaluation_seconds.clone(),
        );
        registry.register(
            "stream_consumers",
            "Consumers of the live stream (GET /api/v1/stream) connected now",
            m.stream_consumers.clone(),
        );
        registry.register(
            "stream_dropped_consumers",
            "Live stream consumers dropped for not keeping up, by reason",
            m.stream_dropped.clone(),
        );
        registry.register(
            "leases_held",
            "Evaluation leases (partitions of vendors and probes) this coordinator holds now",
            m.leases_held.clone(),
        );
        registry.register(
            "lease_epoch",
            "Epoch of each lease this coordinator holds (grows each time a lease changes hands)",
            m.lease_epoch.clone(),
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

    /// Counts a result refused alone.
    pub fn refused(&self, reason: vantage_checks::wire::RefusalReason) {
        self.results_refused
            .get_or_create(&RefusedLabels {
                reason: reason.as_label(),
            })
            .inc();
    }

    /// Counts a connection closed on arrival.
    pub fn connection_shed(&self, reason: ShedReason) {
        self.connections_shed
            .get_or_create(&ShedLabels { reason })
            .inc();
    }

    /// Counts an alert given up.
    pub fn dead_letter(&self, receiver: &str) {
        self.dead_letters
            .get_or_create(&ReceiverOnlyLabels {
                receiver: receiver.to_owned(),
            })
            .inc();
    }

    /// The leases held now: their count, and each one's epoch (a lease gone is removed).
    pub fn set_leases(&self, held: &[crate::store::lease::Lease]) {
        self.leases_held.set(held.len() as i64);
        self.lease_epoch.clear();
        for l in held {
            self.lease_epoch
                .get_or_create(&PartLabels { part: l.part })
                .set(l.epoch);
        }
    }

    /// Counts a store failure while doing `op`.
    pub fn store_error(&self, op: StoreOp) {
        self.store_errors
            .get_or_create(&StoreOpLabels { op: op.as_label() })
            .inc();
    }

    /// Counts fields of results this build does not know.
    pub fn unknown_fields(&self, n: u64) {
        self.result_unknown_fields.inc_by(n);
    }

    /// Counts an incident opened in `state`.
    pub fn incident_opened(&self, state: &'static str) {
        self.incidents_opened
            .get_or_create(&StateLabels { state })
            .inc();
    }

    /// Records how long a consensus evaluation took.
    pub fn evaluated(&self, trigger: EvalTrigger, took: Duration) {
        self.evaluation_seconds
            .get_or_create(&TriggerLabels { trigger })
            .observe(took.as_secs_f64());
    }

    /// Counts a live stream consumer dropped for not keeping up.
    pub fn stream_dropped(&self, reason: StreamDropReason) {
        self.stream_dropped
            .get_or_create(&StreamDropLabels { reason })
            .inc();
    }

    /// Renders the exposition after refreshing the values read at scrape time.
    pub fn render(&self, scrape: &Scrape) -> String {
        let _one_at_a_time = self.scraping.lock().unwrap_or_else(|p| p.into_inner());
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
        self.stream_consumers.set(scrape.stream_consumers as i64);
        self.vendor_state.clear();
        for (vendor, status) in &scrape.vendors {
            let scopes = std::iter::once(("global", status.global.state))
                .chain(status.regions.iter().map(|(r, s)| (r.as_str(), s.state)));
            for (region, now) in scopes {
                for state in VendorState::ALL {
                    self.vendor_state
                        .get_or_create(&VendorStateLabels {
                            vendor: vendor.clone(),
                            region: region.to_owned(),
                            state: state.as_label(),
                        })
                        .set(i64::from(state == now));
                }
            }
        }
        self.check_verdict.clear();
        for (check, vendor, now) in &scrape.verdicts {
            for verdict in [
                Verdict::Unknown,
                Verdict::Passing,
                Verdict::Slow,
                Verdict::Failing,
            ] {
                self.check_verdict
                    .get_or_create(&VerdictLabels {
                        check: check.clone(),
                        vendor: vendor.clone(),
                        verdict: verdict.as_label(),
                    })
                    .set(i64::from(verdict == *now));
            }
        }
        self.probe_last_seen.clear();
        self.probe_quarantined.clear();
        for p in &scrape.probes {
            let l = ProbeLabels {
                probe: p.id.clone(),
            };
            if let Some(ms) = p.last_seen_ms {
                self.probe_last_seen.get_or_create(&l).set(ms / 1000);
            }
            self.probe_quarantined
                .get_or_create(&l)
                .set(i64::from(p.quarantined));
        }
        self.probe_suspect.clear();
        for (probe, check) in &scrape.suspects {
            self.probe_suspect
                .get_or_create(&ProbeCheckLabels {
                    probe: probe.clone(),
                    check: check.clone(),
                })
                .set(1);
        }
        self.probes_suspect.set(scrape.suspects.len() as i64);
        for receiver in &scrape.receivers {
            let _ = self.dead_letters.get_or_create(&ReceiverOnlyLabels {
                receiver: receiver.clone(),
            });
            for outcome in ["delivered", "failed"] {
                let _ = self.alerts_sent.get_or_create(&ReceiverLabels {
                    receiver: receiver.clone(),
                    outcome,
                });
            }
        }
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
    /// Every vendor's state.
    pub vendors: Vec<(String, VendorStatus)>,
    /// Every check's settled global verdict: (check, vendor, verdict).
    pub verdicts: Vec<(String, String, Verdict)>,
    /// Registered probes that are not revoked.
    pub probes: Vec<ProbeGauge>,
    /// (probe, check) pairs where the probe is suspect.
    pub suspects: Vec<(String, String)>,
    /// Configured alert receivers (their delivery counters start at zero).
    pub receivers: Vec<String>,
    /// Live stream consumers connected.
    pub stream_consumers: usize,
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
            ..Scrape::default()
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

    #[test]
    fn states_verdicts_probes_receivers_and_evaluation_time() {
        let m = Metrics::new();
        let mut acme = VendorStatus::default();
        acme.global.state = VendorState::HardDown;
        acme.regions.insert("eu".into(), acme.global.clone());
        acme.regions.insert(
            "us".into(),
            crate::consensus::vendor::ScopeStatus {
                state: VendorState::Operational,
                conditions: vec![],
                clearing: false,
            },
        );
        let scrape = Scrape {
            vendors: vec![("acme".into(), acme)],
            verdicts: vec![("www".into(), "acme".into(), Verdict::Failing)],
            probes: vec![
                ProbeGauge {
                    id: "fra-1".into(),
                    last_seen_ms: Some(1_700_000_000_999),
                    quarantined: true,
                },
                ProbeGauge {
                    id: "new".into(),
                    last_seen_ms: None,
                    quarantined: false,
                },
            ],
            receivers: vec!["pager".into()],
            stream_consumers: 2,
            ..Scrape::default()
        };
        m.evaluated(EvalTrigger::batch, Duration::from_micros(30));
        m.stream_dropped(StreamDropReason::queue_full);
        m.alert_sent("pager", false);
        let text = m.render(&scrape);
        for line in [
            "vantage_vendor_state{vendor=\"acme\",region=\"global\",state=\"hard_down\"} 1",
            "vantage_vendor_state{vendor=\"acme\",region=\"global\",state=\"operational\"} 0",
            "vantage_vendor_state{vendor=\"acme\",region=\"eu\",state=\"hard_down\"} 1",
            "vantage_vendor_state{vendor=\"acme\",region=\"us\",state=\"operational\"} 1",
            "vantage_vendor_state{vendor=\"acme\",region=\"us\",state=\"hard_down\"} 0",
            "vantage_check_verdict{check=\"www\",vendor=\"acme\",verdict=\"failing\"} 1",
            "vantage_check_verdict{check=\"www\",vendor=\"acme\",verdict=\"passing\"} 0",
            "vantage_probe_last_seen_timestamp_seconds{probe=\"fra-1\"} 1700000000",
            "vantage_probe_quarantined{probe=\"fra-1\"} 1",
            "vantage_probe_quarantined{probe=\"new\"} 0",
            "vantage_alert_deliveries_total{receiver=\"pager\",outcome=\"failed\"} 1",
            "vantage_alert_deliveries_total{receiver=\"pager\",outcome=\"delivered\"} 0",
            "vantage_batches_rejected_total{reason=\"store\"} 0",
            "vantage_incidents_opened_total{state=\"hard_down\"} 0",
            "vantage_incidents_opened_total{state=\"probe_quarantined\"} 0",
            "vantage_consensus_evaluation_seconds_count{trigger=\"batch\"} 1",
            "vantage_consensus_evaluation_seconds_count{trigger=\"tick\"} 0",
            "vantage_consensus_evaluation_seconds_bucket{le=\"0.000025\",trigger=\"batch\"} 0",
            "vantage_consensus_evaluation_seconds_bucket{le=\"0.00005\",trigger=\"batch\"} 1",
            "vantage_consensus_evaluation_seconds_bucket{le=\"2.5\",trigger=\"batch\"} 1",
            "vantage_stream_consumers 2",
            "vantage_stream_dropped_consumers_total{reason=\"queue_full\"} 1",
            "vantage_stream_dropped_consumers_total{reason=\"lagged\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
        // 6 states in each of 3 scopes, 4 verdicts; a probe never seen has no last-seen time.
        let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(count("vantage_vendor_state{"), 18);
        assert_eq!(count("vantage_check_verdict{"), 4);
        assert_eq!(count("vantage_probe_last_seen_timestamp_seconds{"), 1);

        // A vendor, check or probe that is gone is no longer exported.
        let text = m.render(&Scrape::default());
        assert_eq!(count_in(&text, "vantage_vendor_state{"), 0);
        assert_eq!(count_in(&text, "vantage_check_verdict{"), 0);
        assert_eq!(count_in(&text, "vantage_probe_quarantined{"), 0);
    }

    fn count_in(text: &str, prefix: &str) -> usize {
        text.lines().filter(|l| l.starts_with(prefix)).count()
    }
}
