//! The live stream behind `GET /api/v1/stream`: a hub that ingest and the incident task publish
//! into, and the per-consumer pump that filters it into Server-Sent Events.
//!
//! Publishing never waits for a consumer. The hub is a bounded [`broadcast`] ring: a send writes
//! one slot and returns, whoever is listening. Each consumer has a task (`pump`) that moves
//! the events it asked for from the ring into its own bounded queue, which the response body
//! drains. A consumer that lets that queue fill (or falls a whole ring behind) is dropped: the
//! pump queues a last `event: dropped` saying why and stops, so the response ends. A consumer
//! that stopped reading altogether cannot take even that last event; the server's write-stall
//! deadline (`crate::server`) closes its connection.
//!
//! Each event is encoded once, as its whole SSE frame (`id:`, `event:`, `data:` with one JSON
//! object on one line), when it is published; ids increase by one per published event.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Bytes;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use crate::alert::rfc3339;
use crate::consensus::quarantine::HealthChange;
use crate::consensus::vendor::{ScopeStatus, VendorStatus};
use crate::consensus::{Ms, Scope};
use crate::engine::Change;
use crate::metrics::{Metrics, StreamDropReason};
use crate::store::IngestRow;

/// Events the hub keeps for consumers whose pump has not caught up yet.
pub const HUB_CAPACITY: usize = 4096;
/// Events a consumer may leave unread before it is dropped.
pub const CONSUMER_QUEUE: usize = 256;
/// Consumers served at once; more are answered 429.
pub const MAX_CONSUMERS: usize = 256;
/// A comment line goes out this often, so proxies and clients see the stream is alive.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// What an event is about; the `types=` filter names these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A raw result, after its batch was committed.
    Result,
    /// A check's settled verdict changed.
    Transition,
    /// A vendor's state changed, globally or in a region.
    Vendor,
    /// A probe was quarantined or readmitted.
    Probe,
    /// An incident opened, changed or resolved.
    Incident,
}

impl Kind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [Kind; 5] = [
        Self::Result,
        Self::Transition,
        Self::Vendor,
        Self::Probe,
        Self::Incident,
    ];

    /// The stable label: the SSE `event:` name and the `types=` value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Result => "result",
            Self::Transition => "transition",
            Self::Vendor => "vendor",
            Self::Probe => "probe",
            Self::Incident => "incident",
        }
    }

    fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_label() == s)
    }
}

/// One published event: what the filters look at, and its encoded frame.
#[derive(Debug)]
pub struct Event {
    /// Its kind.
    pub kind: Kind,
    /// The vendor it is about, if any.
    pub vendor: Option<String>,
    /// The check it is about, if any.
    pub check: Option<String>,
    /// The region it is about, if any (none for global scopes and incidents).
    pub region: Option<String>,
    /// The whole SSE frame.
    pub frame: Bytes,
}

/// What one consumer asked for (`vendor=`, `check=`, `region=`, `types=`); every filter given
/// must match. An event without the field a filter looks at does not match it: a `region=`
/// filter leaves out global transitions and vendor changes, and incidents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events about this vendor.
    pub vendor: Option<String>,
    /// Only events about this check.
    pub check: Option<String>,
    /// Only events about this region.
    pub region: Option<String>,
    /// Only these kinds (all when `None`).
    pub types: Option<BTreeSet<Kind>>,
}

impl Filter {
    /// Parses the query string of `GET /api/v1/stream`. The message says what is wrong.
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut f = Self::default();
        let mut seen = BTreeSet::new();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if !seen.insert(key.clone().into_owned()) {
                return Err(format!("`{key}` is given twice; give each filter once"));
            }
            let value = value.trim();
            if value.is_empty() {
                return Err(format!("`{key}` must not be empty, e.g. `{key}=…`"));
            }
            match key.as_ref() {
                "vendor" => f.vendor = Some(value.to_owned()),
                "check" => f.check = Some(value.to_owned()),
                "region" => f.region = Some(value.to_owned()),
                "types" => {
                    let mut types = BTreeSet::new();
                    for t in value.split(',').map(str::trim) {
                        let kind = Kind::from_label(t).ok_or_else(|| {
                            format!(
                                "unknown event type `{}` in `types`; use any of {}, e.g. `types=vendor,incident`",
                                short(t),
                                labels()
                            )
                        })?;
                        types.insert(kind);
                    }
                    f.types = Some(types);
                }
                other => {
                    return Err(format!(
                        "unknown query parameter `{}`; use vendor, check, region, types",
                        short(other)
                    ));
                }
            }
        }
        Ok(f)
    }

    /// Whether `e` passes every filter.
    pub fn matches(&self, e: &Event) -> bool {
        let field = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        self.types.as_ref().is_none_or(|t| t.contains(&e.kind))
            && field(&self.vendor, &e.vendor)
            && field(&self.check, &e.check)
            && field(&self.region, &e.region)
    }
}

fn labels() -> String {
    Kind::ALL.map(Kind::as_label).join(", ")
}

/// A prefix of a client-supplied string that is safe to echo in an error.
fn short(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The hub every publisher shares.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Event>>,
    /// The last id given; held while sending, so ids reach the ring in order.
    seq: Mutex<u64>,
    consumers: Arc<AtomicUsize>,
    closed: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

/// A result event's body.
#[derive(Serialize)]
struct ResultData<'a> {
    check: &'a str,
    vendor: &'a str,
    region: &'a str,
    probe: &'a str,
    status: &'static str,
    failure: Option<&'static str>,
    total_ms: f64,
    started_at: String,
}

impl Hub {
    /// A hub with nobody listening.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(HUB_CAPACITY);
        Self {
            tx,
            seq: Mutex::new(0),
            consumers: Arc::default(),
            closed: watch::Sender::new(false),
        }
    }

    /// Consumers connected now.
    pub fn consumers(&self) -> usize {
        self.consumers.load(Ordering::Relaxed)
    }

    /// Ends every consumer's stream (at shutdown, so that connections can drain).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// A new consumer's subscription, or `None` when [`MAX_CONSUMERS`] are connected.
    pub fn subscribe(&self) -> Option<Subscription> {
        let taken = self
            .consumers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONSUMERS).then_some(n + 1)
            });
        taken.ok()?;
        Some(Subscription {
            events: self.tx.subscribe(),
            closed: self.closed.subscribe(),
            guard: ConsumerGuard(Arc::clone(&self.consumers)),
        })
    }

    /// Publishes events, each built by `make` only when someone listens. Never waits.
    fn publish<I>(&self, make: impl FnOnce() -> I)
    where
        I: IntoIterator<Item = (Kind, Keys, String)>,
    {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let events: Vec<(Kind, Keys, String)> = make().into_iter().collect();
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        for (kind, keys, data) in events {
            *seq += 1;
            let frame = format!("id: {}\nevent: {}\ndata: {data}\n\n", *seq, kind.as_label());
            // An error only means that nobody listens any more.
            let _ = self.tx.send(Arc::new(Event {
                kind,
                vendor: keys.vendor,
                check: keys.check,
                region: keys.region,
                frame: Bytes::from(frame),
            }));
        }
    }

    /// Publishes the results of a committed batch.
    pub fn results(&self, rows: &[IngestRow]) {
        self.publish(|| {
            rows.iter().map(|row| {
                let r = &row.result;
                let data = ResultData {
                    check: &r.check_id,
                    vendor: &r.vendor,
                    region: &row.region,
                    probe: &r.probe_id,
                    status: r.status.as_label(),
                    failure: r.failure.map(|f| f.as_label()),
                    total_ms: r.timings.total_ms,
                    started_at: r
                        .started_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                };
                let keys = Keys {
                    vendor: Some(r.vendor.clone()),
                    check: Some(r.check_id.clone()),
                    region: Some(row.region.clone()),
                };
                (Kind::Result, keys, encode(&data))
            })
        });
    }

    /// Publishes what a change from the engine means to consumers: settled check transitions,
    /// and a vendor's state changes in every scope where its state changed. Probe changes need
    /// the probe's region: see [`Hub::probe`].
    pub fn change(&self, change: &Change) {
        match change {
            Change::Checks { transitions, .. } => self.publish(|| {
                transitions.iter().map(|t| {
                    let region = match &t.transition.scope {
                        Scope::Global => None,
                        Scope::Region(r) => Some(r.clone()),
                    };
                    let data = json!({
                        "check": t.check,
                        "vendor": t.vendor,
                        "scope": if region.is_some() { "region" } else { "global" },
                        "region": region,
                        "from": t.transition.from.as_label(),
                        "to": t.transition.to.as_label(),
                        "at": rfc3339(t.transition.at_ms),
                    });
                    let keys = Keys {
                        vendor: Some(t.vendor.clone()),
                        check: Some(t.check.clone()),
                        region,
                    };
                    (Kind::Transition, keys, data.to_string())
                })
            }),
            Change::Vendor {
                vendor,
                status,
                previous,
                at_ms,
            } => self.publish(|| vendor_events(vendor, previous, status, *at_ms)),
            Change::Probe { .. } => {}
        }
    }

    /// Publishes a probe's quarantine or readmission; `region` is the probe's, when known.
    pub fn probe(&self, change: &HealthChange, region: Option<&str>) {
        self.publish(|| {
            let data = json!({
                "probe": change.probe,
                "region": region,
                "quarantined": change.quarantined,
                "at": rfc3339(change.at_ms),
            });
            let keys = Keys {
                region: region.map(str::to_owned),
                ..Keys::default()
            };
            [(Kind::Probe, keys, data.to_string())]
        });
    }

    /// Publishes an incident event: `kind` is `opened`, `changed` or `resolved`; `state` the
    /// state the incident records.
    pub fn incident(
        &self,
        id: i64,
        subject_kind: crate::alert::SubjectKind,
        subject: &str,
        kind: &str,
        state: crate::alert::IncidentState,
        at_ms: Ms,
    ) {
        use crate::alert::Label as _;
        self.publish(|| {
            let mut data = serde_json::Map::new();
            data.insert("id".into(), id.into());
            data.insert(subject_kind.as_label().into(), subject.into());
            data.insert("kind".into(), kind.into());
            data.insert("state".into(), state.as_label().into());
            data.insert("at".into(), rfc3339(at_ms).into());
            let keys = Keys {
                vendor: (subject_kind == crate::alert::SubjectKind::Vendor)
                    .then(|| subject.to_owned()),
                ..Keys::default()
            };
            [(
                Kind::Incident,
                keys,
                serde_json::Value::Object(data).to_string(),
            )]
        });
    }
}

/// What the filters look at.
#[derive(Default)]
struct Keys {
    vendor: Option<String>,
    check: Option<String>,
    region: Option<String>,
}

fn encode<T: Serialize>(data: &T) -> String {
    serde_json::to_string(data).unwrap_or_else(|e| json!({ "error": e.to_string() }).to_string())
}

/// One event per scope (global, then each region) whose headline state changed.
fn vendor_events(
    vendor: &str,
    previous: &VendorStatus,
    status: &VendorStatus,
    at_ms: Ms,
) -> Vec<(Kind, Keys, String)> {
    let unknown = ScopeStatus::default();
    let regions: BTreeSet<&String> = previous
        .regions
        .keys()
        .chain(status.regions.keys())
        .collect();
    let scopes = std::iter::once((None, &previous.global, &status.global)).chain(
        regions.into_iter().map(|r| {
            (
                Some(r),
                previous.regions.get(r).unwrap_or(&unknown),
                status.regions.get(r).unwrap_or(&unknown),
            )
        }),
    );
    scopes
        .filter(|(_, from, to)| from.state != to.state)
        .map(|(region, from, to)| {
            let data = json!({
                "vendor": vendor,
                "region": region,
                "from": from.state.as_label(),
                "to": to.state.as_label(),
                "conditions": to.conditions,
                "at": rfc3339(at_ms),
            });
            let keys = Keys {
                vendor: Some(vendor.to_owned()),
                check: None,
                region: region.cloned(),
            };
            (Kind::Vendor, keys, data.to_string())
        })
        .collect()
}

/// Counts a consumer while it is connected.
#[derive(Debug)]
pub struct ConsumerGuard(Arc<AtomicUsize>);

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A consumer's place in the hub.
#[derive(Debug)]
pub struct Subscription {
    events: broadcast::Receiver<Arc<Event>>,
    closed: watch::Receiver<bool>,
    /// Keep it as long as the consumer is connected.
    pub guard: ConsumerGuard,
}

/// A consumer's queue: SSE frames, read by the response body.
pub type Frames = mpsc::Receiver<Bytes>;

/// Starts a consumer's pump; returns its queue. The queue ends when the consumer is dropped
/// (after a last `event: dropped`) or the hub closes; the pump stops when the queue's reader
/// is gone.
pub fn start(sub: Subscription, filter: Filter, metrics: Arc<Metrics>) -> (Frames, ConsumerGuard) {
    // One slot more than the queue holds, kept for the final event.
    let (tx, rx) = mpsc::channel(CONSUMER_QUEUE + 1);
    let Subscription {
        events,
        closed,
        guard,
    } = sub;
    tokio::spawn(pump(events, closed, filter, tx, metrics));
    (rx, guard)
}

/// The frame that opens every stream, so a client sees at once that it is subscribed.
pub const HELLO: &[u8] = b": vantage live stream\n\n";
const KEEPALIVE_FRAME: &[u8] = b": keepalive\n\n";

/// Moves the events `filter` lets through from the hub into the consumer's queue, with a
/// keepalive comment every [`KEEPALIVE`].
async fn pump(
    mut events: broadcast::Receiver<Arc<Event>>,
    mut closed: watch::Receiver<bool>,
    filter: Filter,
    tx: mpsc::Sender<Bytes>,
    metrics: Arc<Metrics>,
) {
    let _ = tx.try_send(Bytes::from_static(HELLO));
    let start = tokio::time::Instant::now() + KEEPALIVE;
    let mut keepalive = tokio::time::interval_at(start, KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let frame = tokio::select! {
            biased;
            () = tx.closed() => return,
            c = closed.wait_for(|c| *c) => {
                let _ = c;
                return;
            }
            e = events.recv() => match e {
                Ok(e) if filter.matches(&e) => e.frame.clone(),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let reason = format!("slow consumer: {n} events passed before it read them");
                    drop_consumer(&tx, StreamDropReason::lagged, &reason, &metrics);
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = keepalive.tick() => Bytes::from_static(KEEPALIVE_FRAME),
        };
        // The pump is the only sender, so the capacity it sees can only grow until it sends.
        if tx.capacity() <= 1 {
            let reason = format!("slow consumer: {CONSUMER_QUEUE} events unread");
            drop_consumer(&tx, StreamDropReason::queue_full, &reason, &metrics);
            return;
        }
        let _ = tx.try_send(frame);
    }
}

/// Queues the last event, with why, counts and logs it. The caller then drops the sender, so
/// the stream ends after it.
fn drop_consumer(tx: &mpsc::Sender<Bytes>, why: StreamDropReason, reason: &str, metrics: &Metrics) {
    tracing::info!(reason, "stream consumer dropped");
    metrics.stream_dropped(why);
    let _ = tx.try_send(dropped_frame(reason));
}

/// The last frame a dropped consumer gets.
pub fn dropped_frame(reason: &str) -> Bytes {
    Bytes::from(format!(
        "event: dropped\ndata: {}\n\n",
        json!({ "reason": reason })
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{IncidentState, SubjectKind};
    use crate::consensus::vendor::VendorState;
    use crate::consensus::{Evidence, Transition, Verdict};
    use crate::engine::CheckTransition;

    const HARD_DOWN: IncidentState = IncidentState::Vendor(VendorState::HardDown);

    fn event(kind: Kind, vendor: Option<&str>, check: Option<&str>, region: Option<&str>) -> Event {
        Event {
            kind,
            vendor: vendor.map(str::to_owned),
            check: check.map(str::to_owned),
            region: region.map(str::to_owned),
            frame: Bytes::new(),
        }
    }

    #[test]
    fn filters_parse_or_say_what_is_wrong() {
        assert_eq!(Filter::parse(None), Ok(Filter::default()));
        let f = Filter::parse(Some("vendor=acme&region=eu&types=result,%20vendor")).expect("ok");
        assert_eq!(f.vendor.as_deref(), Some("acme"));
        assert_eq!(f.region.as_deref(), Some("eu"));
        assert_eq!(
            f.types,
            Some([Kind::Result, Kind::Vendor].into_iter().collect())
        );
        let cases = [
            ("probe=p1", "unknown query parameter `probe`"),
            ("types=result,dropped", "unknown event type `dropped`"),
            ("types=", "`types` must not be empty"),
            ("vendor=", "`vendor` must not be empty"),
            ("check=a&check=b", "`check` is given twice"),
        ];
        for (query, want) in cases {
            let err = Filter::parse(Some(query)).expect_err(query);
            assert!(err.contains(want), "{query}: {err}");
        }
    }

    #[test]
    fn filters_match_every_field_given() {
        let result = event(Kind::Result, Some("acme"), Some("www"), Some("eu"));
        let global = event(Kind::Vendor, Some("acme"), None, None);
        let probe = event(Kind::Probe, None, None, Some("eu"));
        let f = |q: &str| Filter::parse(Some(q)).expect(q);
        let cases = [
            ("", [true, true, true]),
            ("vendor=acme", [true, true, false]),
            ("vendor=other", [false, false, false]),
            ("check=www", [true, false, false]),
            ("region=eu", [true, false, true]),
            ("region=eu&vendor=acme", [true, false, false]),
            ("types=vendor,probe", [false, true, true]),
        ];
        for (query, want) in cases {
            let filter = f(query);
            let got = [&result, &global, &probe].map(|e| filter.matches(e));
            assert_eq!(got, want, "{query}");
        }
    }

    async fn next(rx: &mut Frames) -> String {
        let b = rx.recv().await.expect("a frame");
        String::from_utf8(b.to_vec()).expect("utf-8")
    }

    fn transition(check: &str, scope: Scope) -> Change {
        Change::Checks {
            states: vec![],
            transitions: vec![CheckTransition {
                check: check.into(),
                vendor: "acme".into(),
                transition: Transition {
                    scope,
                    from: Verdict::Passing,
                    to: Verdict::Failing,
                    at_ms: 0,
                },
                evidence: Evidence::default(),
            }],
        }
    }

    #[tokio::test]
    async fn events_are_framed_with_increasing_ids_and_filtered() {
        let hub = Hub::new();
        let metrics = Arc::new(Metrics::new());
        let sub = hub.subscribe().expect("room");
        let (mut rx, _guard) = start(
            sub,
            Filter::parse(Some("types=transition,vendor")).expect("filter"),
            Arc::clone(&metrics),
        );
        assert_eq!(next(&mut rx).await.as_bytes(), HELLO);
        hub.change(&transition("www", Scope::Global));
        hub.change(&transition("www", Scope::Region("eu".into())));
        let mut down = VendorStatus::default();
        down.global.state = VendorState::HardDown;
        down.regions.insert("eu".into(), down.global.clone());
        hub.change(&Change::Vendor {
            vendor: "acme".into(),
            status: down,
            previous: VendorStatus::default(),
            at_ms: 0,
        });
        hub.incident(1, SubjectKind::Vendor, "acme", "opened", HARD_DOWN, 0);
        let frames = [
            next(&mut rx).await,
            next(&mut rx).await,
            next(&mut rx).await,
            next(&mut rx).await,
        ];
        let at = "1970-01-01T00:00:00Z";
        assert_eq!(
            frames[0],
            format!(
                "id: 1\nevent: transition\ndata: {{\"at\":\"{at}\",\"check\":\"www\",\"from\":\"passing\",\"region\":null,\"scope\":\"global\",\"to\":\"failing\",\"vendor\":\"acme\"}}\n\n"
            )
        );
        assert!(
            frames[1].starts_with("id: 2\nevent: transition\n"),
            "{}",
            frames[1]
        );
        assert!(
            frames[1].contains("\"region\":\"eu\",\"scope\":\"region\""),
            "{}",
            frames[1]
        );
        assert!(
            frames[2].starts_with("id: 3\nevent: vendor\n"),
            "{}",
            frames[2]
        );
        assert!(frames[2].contains("\"region\":null"), "{}", frames[2]);
        assert!(
            frames[3].starts_with("id: 4\nevent: vendor\n"),
            "{}",
            frames[3]
        );
        assert!(frames[3].contains("\"region\":\"eu\""), "{}", frames[3]);
        // The incident (id 5) was filtered out: nothing more is queued.
        assert!(rx.try_recv().is_err());
        hub.probe(
            &HealthChange {
                probe: "p1".into(),
                quarantined: true,
                at_ms: 0,
                vendors: vec![],
                checks: vec![],
            },
            Some("eu"),
        );
        hub.close();
        assert_eq!(rx.recv().await, None, "closing the hub ends the stream");
    }

    #[tokio::test(start_paused = true)]
    async fn keepalives_go_out_every_15s() {
        let hub = Hub::new();
        let (mut rx, _guard) = start(
            hub.subscribe().expect("room"),
            Filter::default(),
            Arc::new(Metrics::new()),
        );
        assert_eq!(next(&mut rx).await.as_bytes(), HELLO);
        let t0 = tokio::time::Instant::now();
        assert_eq!(next(&mut rx).await, ": keepalive\n\n");
        assert_eq!(t0.elapsed(), KEEPALIVE);
        assert_eq!(next(&mut rx).await, ": keepalive\n\n");
        assert_eq!(t0.elapsed(), KEEPALIVE * 2);
    }

    #[tokio::test]
    async fn a_consumer_that_leaves_its_queue_full_is_dropped_with_a_reason() {
        let hub = Hub::new();
        let metrics = Arc::new(Metrics::new());
        let (mut rx, guard) = start(
            hub.subscribe().expect("room"),
            Filter::default(),
            Arc::clone(&metrics),
        );
        assert_eq!(hub.consumers(), 1);
        // More events than the queue holds, in steps the pump can follow.
        for i in 0..CONSUMER_QUEUE + 10 {
            hub.incident(
                i as i64,
                SubjectKind::Vendor,
                "acme",
                "changed",
                HARD_DOWN,
                0,
            );
            tokio::task::yield_now().await;
        }
        let mut frames = Vec::new();
        while let Some(f) = rx.recv().await {
            frames.push(String::from_utf8(f.to_vec()).expect("utf-8"));
        }
        // The hello, then events until the queue was full, then why.
        assert_eq!(frames.len(), CONSUMER_QUEUE + 1, "{:?}", frames.last());
        assert_eq!(
            frames.last().map(String::as_str),
            Some("event: dropped\ndata: {\"reason\":\"slow consumer: 256 events unread\"}\n\n")
        );
        assert!(frames[1].starts_with("id: 1\nevent: incident\n"));
        drop(guard);
        assert_eq!(hub.consumers(), 0);
        let text = metrics.render(&crate::metrics::Scrape::default());
        assert!(
            text.contains("vantage_stream_dropped_consumers_total{reason=\"queue_full\"} 1\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_consumer_whose_pump_falls_a_ring_behind_is_dropped() {
        let hub = Hub::new();
        let metrics = Arc::new(Metrics::new());
        // Current-thread runtime: the pump cannot run while this loop publishes.
        let (mut rx, _guard) = start(
            hub.subscribe().expect("room"),
            Filter::default(),
            Arc::clone(&metrics),
        );
        for i in 0..HUB_CAPACITY + 5 {
            hub.incident(
                i as i64,
                SubjectKind::Vendor,
                "acme",
                "changed",
                HARD_DOWN,
                0,
            );
        }
        let mut last = String::new();
        while let Some(f) = rx.recv().await {
            last = String::from_utf8(f.to_vec()).expect("utf-8");
        }
        assert_eq!(
            last,
            "event: dropped\ndata: {\"reason\":\"slow consumer: 5 events passed before it read them\"}\n\n"
        );
    }

    #[test]
    fn consumers_are_bounded() {
        let hub = Hub::new();
        let subs: Vec<Subscription> = (0..MAX_CONSUMERS)
            .map(|_| hub.subscribe().expect("room"))
            .collect();
        assert!(hub.subscribe().is_none());
        drop(subs);
        assert_eq!(hub.consumers(), 0);
        assert!(hub.subscribe().is_some());
    }

    #[test]
    fn nothing_is_encoded_while_nobody_listens() {
        let hub = Hub::new();
        hub.publish(|| -> Vec<(Kind, Keys, String)> { panic!("built an event for nobody") });
    }
}
