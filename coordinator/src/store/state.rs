//! What the coordinator keeps besides results: consensus state, incidents, the alert outbox
//! and silences. Values the store does not need to look into are kept as JSON text, so this
//! module stays free of consensus types; an incident's subject kind and state, and an alert's
//! event, are typed (stored as their labels).

use serde::Serialize;

use super::StoreError;
pub use crate::alert::{AlertEvent, IncidentState, SubjectKind};

/// Persisted consensus state, as JSON documents by key.
#[derive(Clone, Debug, Default)]
pub struct ConsensusRecords {
    /// Check id → `CheckState`.
    pub checks: Vec<(String, String)>,
    /// Vendor id → `VendorStatus`.
    pub vendors: Vec<(String, String)>,
    /// Probe id → `ProbeHealth`.
    pub probes: Vec<(String, String)>,
}

/// A stored raw result, reduced to what consensus needs.
#[derive(Clone, Debug)]
pub struct RecentResult {
    /// Check id.
    pub check_id: String,
    /// Probe id.
    pub probe_id: String,
    /// Probe region.
    pub region: String,
    /// Start (Unix ms).
    pub started_ms: i64,
    /// The result's JSON body.
    pub body: String,
}

/// A settled transition to keep.
#[derive(Clone, Debug)]
pub struct TransitionRecord {
    /// Check id.
    pub check_id: String,
    /// Vendor id.
    pub vendor: String,
    /// When.
    pub at_ms: i64,
    /// JSON body.
    pub body: String,
}

/// An incident as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncidentRow {
    /// Id (also the PagerDuty `dedup_key`).
    pub id: i64,
    /// A vendor's or a probe's.
    pub subject_kind: SubjectKind,
    /// The vendor or probe id.
    pub subject: String,
    /// Current (or last) state.
    pub state: IncidentState,
    /// One line for people.
    pub summary: String,
    /// Opened (Unix ms).
    pub opened_ms: i64,
    /// Last changed (Unix ms).
    pub updated_ms: i64,
    /// Resolved (Unix ms), if resolved: when its subject cleared for good.
    pub resolved_ms: Option<i64>,
    /// JSON: what the incident is about now.
    pub detail: String,
    /// The state it opened with (what the first page said).
    pub opened_state: IncidentState,
    /// While open: since when (Unix ms) its subject has been clear. It resolves once the flap
    /// window has passed so; failing again before that is a flap of this same incident.
    pub clear_since_ms: Option<i64>,
    /// How many times its subject failed again within the flap window after clearing.
    pub flaps: i64,
    /// Grows by one at each change: a write names the version it was decided from.
    pub version: i64,
}

/// One entry of an incident's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncidentEventRow {
    /// Position in the timeline.
    pub seq: i64,
    /// When.
    pub at_ms: i64,
    /// `opened`, `changed`, `resolved`, `notified`, `suppressed`.
    pub kind: String,
    /// The state at that point.
    pub state: IncidentState,
    /// JSON detail.
    pub detail: String,
}

/// Where an incident's alerts went, per receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryRow {
    /// Receiver name.
    pub receiver: String,
    /// When its trigger was queued.
    pub triggered_ms: Option<i64>,
    /// When its resolve was queued.
    pub resolved_ms: Option<i64>,
    /// When anything was last queued for it.
    pub last_sent_ms: Option<i64>,
}

/// An alert to queue for one receiver.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    /// Receiver name.
    pub receiver: String,
    /// What the alert says.
    pub event: AlertEvent,
    /// JSON payload (the receiver-neutral alert).
    pub payload: String,
}

/// An incident change to write in one transaction.
#[derive(Clone, Debug, Default)]
pub struct IncidentWrite {
    /// The incident; `None` opens a new one.
    pub id: Option<i64>,
    /// A vendor's or a probe's.
    pub subject_kind: SubjectKind,
    /// Vendor or probe id.
    pub subject: String,
    /// State now.
    pub state: IncidentState,
    /// Summary now.
    pub summary: String,
    /// JSON detail now.
    pub detail: String,
    /// When.
    pub at_ms: i64,
    /// Resolve it: as of `clear_since_ms` when set, else `at_ms`.
    pub resolve: bool,
    /// Since when its subject has been clear (`None`: failing, or never cleared).
    pub clear_since_ms: Option<i64>,
    /// Its subject failed again within the flap window: count one more flap.
    pub flap: bool,
    /// Timeline entries to append: (kind, JSON detail).
    pub events: Vec<(String, String)>,
    /// Alerts to queue.
    pub deliveries: Vec<NewDelivery>,
    /// The lease it was decided under: refused ([`StoreError::Fenced`]) unless still held.
    pub fence: Option<super::lease::Fence>,
    /// The incident's version it was decided from: refused ([`StoreError::Conflict`]) if the
    /// incident has changed since. `None` skips the check.
    pub expect_version: Option<i64>,
}

/// A queued alert.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    /// Queue position.
    pub id: i64,
    /// Incident.
    pub incident_id: i64,
    /// Receiver name.
    pub receiver: String,
    /// What the alert says.
    pub event: AlertEvent,
    /// JSON payload.
    pub payload: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Queued (Unix ms).
    pub created_ms: i64,
}

/// A silence or maintenance window: pages matching it are suppressed, records kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SilenceRow {
    /// Id (0 before it is stored).
    #[serde(default)]
    pub id: i64,
    /// Only this vendor (any when absent).
    #[serde(default)]
    pub vendor: Option<String>,
    /// Only incidents involving this check.
    #[serde(default)]
    pub check_id: Option<String>,
    /// Only this region.
    #[serde(default)]
    pub region: Option<String>,
    /// Starts (Unix ms).
    pub starts_ms: i64,
    /// Ends (Unix ms).
    pub ends_ms: i64,
    /// Why.
    pub comment: String,
    /// Who (`api`, `cli:<user>`, `config`).
    pub created_by: String,
    /// Created (Unix ms).
    #[serde(default)]
    pub created_ms: i64,
}

/// Filter over incidents.
#[derive(Clone, Debug, Default)]
pub struct IncidentQuery {
    /// Only this subject (vendor or probe id).
    pub subject: Option<String>,
    /// Only open ones.
    pub open_only: bool,
    /// At most this many, newest first.
    pub limit: u32,
}

/// An incident with its timeline and deliveries.
pub type IncidentRecord = (IncidentRow, Vec<IncidentEventRow>, Vec<DeliveryRow>);

/// Consensus state, incidents, outbox and silences.
pub trait StateStore {
    /// Every persisted check state, vendor state and probe health.
    fn load_consensus(&self) -> Result<ConsensusRecords, StoreError>;
    /// Saves check states and appends transitions, in one transaction.
    fn save_check_states(
        &self,
        states: &[(String, String)],
        transitions: &[TransitionRecord],
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Saves a vendor's state, without touching the state history that SLA reports read: the
    /// coordinator records states with [`super::ReportStore::record_vendor_status`].
    fn save_vendor_state(&self, vendor: &str, status: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Saves a probe's health.
    fn save_probe_health(&self, probe: &str, health: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Raw results that started at or after `since_ms`, oldest first.
    fn recent_results(&self, since_ms: i64) -> Result<Vec<RecentResult>, StoreError>;
    /// Transitions of a vendor's checks, newest first.
    fn transitions(&self, vendor: &str, limit: u32) -> Result<Vec<String>, StoreError>;

    /// The open incident about a subject.
    fn open_incident(
        &self,
        kind: SubjectKind,
        subject: &str,
    ) -> Result<Option<IncidentRow>, StoreError>;
    /// Every open incident.
    fn open_incidents(&self) -> Result<Vec<IncidentRow>, StoreError>;
    /// Writes an incident change, its timeline entries and its alerts in one transaction;
    /// returns the incident id.
    fn write_incident(&self, w: &IncidentWrite) -> Result<i64, StoreError>;
    /// Incidents, newest first.
    fn incidents(&self, q: &IncidentQuery) -> Result<Vec<IncidentRow>, StoreError>;
    /// One incident with its timeline.
    fn incident(&self, id: i64) -> Result<Option<IncidentRecord>, StoreError>;
    /// Where an incident's alerts went.
    fn deliveries(&self, incident_id: i64) -> Result<Vec<DeliveryRow>, StoreError>;

    /// Claims queued alerts due at `now` for `node` until `now + claim_ms`: for each
    /// (incident, receiver), only the oldest undelivered one, so that a resolve never overtakes
    /// its trigger, and none another coordinator's unexpired claim holds. Delivered, retried or
    /// dead, a row's claim ends; a claimer that dies leaves it to another once the claim ends.
    fn outbox_claim(
        &self,
        node: &str,
        now_ms: i64,
        claim_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError>;
    /// Marks a queued alert delivered.
    fn outbox_delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError>;
    /// Records a failed attempt and when to try again.
    fn outbox_retry(&self, id: i64, error: &str, next_ms: i64) -> Result<(), StoreError>;
    /// Gives up a queued alert after its last failed attempt (a dead letter), with an
    /// `undeliverable` entry on its incident's timeline, in one transaction.
    fn outbox_dead(&self, id: i64, error: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Alerts not yet delivered (dead letters aside).
    fn outbox_pending(&self) -> Result<u64, StoreError>;

    /// Stores a silence; returns its id.
    fn add_silence(&self, s: &SilenceRow) -> Result<i64, StoreError>;
    /// Silences, all or only those in force at `at_ms`.
    fn silences(&self, at_ms: Option<i64>) -> Result<Vec<SilenceRow>, StoreError>;
    /// Removes a silence; false when there was none.
    fn remove_silence(&self, id: i64) -> Result<bool, StoreError>;
}
