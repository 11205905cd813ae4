//! The demo's fault script: a healthy warm-up, then one fault at a time, each left on until
//! the coordinator has seen it and paged (plus `--hold`, to look at the status page), then
//! cleared, and the next one only once every vendor is operational again.
//!
//! The script waits on what the demo observes (vendor states polled from the API, alerts at
//! its webhook receiver), each wait bounded: a fault not seen in time is reported as such and
//! the script goes on.

use crate::alert::{AlertEvent, IncidentState, SubjectScope};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::DemoProbe;
use super::observe::Observed;
use super::print::{Printer, Tag};
use super::world::{Edge, EdgeFault, Sources, World};
use crate::alert::Alert;
use crate::consensus::vendor::{ConditionKind, VendorState};

/// How long the probes get to report and every vendor to turn operational at the start.
const WARM_UP_WITHIN: Duration = Duration::from_secs(90);
/// How long a fault may take to be seen and paged.
const DETECT_WITHIN: Duration = Duration::from_secs(60);
/// How long recovery may take once a fault is cleared.
const RECOVER_WITHIN: Duration = Duration::from_secs(90);
/// How much the slow edge holds each response.
pub(crate) const SLOW_BY: Duration = Duration::from_millis(800);

/// One fault of the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// edge-1 answers 503 to the probes of one region.
    RegionalOutage {
        /// The region.
        region: &'static str,
    },
    /// edge-2 holds every response [`SLOW_BY`].
    SlowEdge,
    /// ns2 serves the previous SOA serial.
    SoaDrift,
    /// The CDN's control API answers 503.
    ApiDown,
    /// The CDN's log delivery stalls.
    StaleLogs,
}

/// The script, in order.
pub(crate) const SCRIPT: [Fault; 5] = [
    Fault::RegionalOutage { region: "ap-south" },
    Fault::SlowEdge,
    Fault::SoaDrift,
    Fault::ApiDown,
    Fault::StaleLogs,
];

/// What a fault must lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expect {
    /// The vendor.
    pub(crate) vendor: &'static str,
    /// `None`: globally; else in that region only.
    pub(crate) region: Option<&'static str>,
    /// Its state there.
    pub(crate) state: VendorState,
    /// The condition behind it.
    pub(crate) condition: ConditionKind,
}

impl Fault {
    /// What is injected, for people.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::RegionalOutage { region } => {
                format!("regional CDN outage in {region} (edge-1 answers 503 to {region}'s probes)")
            }
            Self::SlowEdge => format!(
                "slow CDN edge (edge-2 holds every response {} ms, for everyone)",
                SLOW_BY.as_millis()
            ),
            Self::SoaDrift => {
                "SOA drift (ns2 serves the previous serial of demo.vantage.test)".to_owned()
            }
            Self::ApiDown => "CDN control API down (it answers 503)".to_owned(),
            Self::StaleLogs => format!(
                "CDN log delivery stalled (the newest log event is {} minutes old)",
                super::world::STALE_BY.as_secs() / 60
            ),
        }
    }

    /// What the coordinator must conclude.
    pub(crate) fn expect(&self) -> Expect {
        let cdn = |state, condition| Expect {
            vendor: "demo-cdn",
            region: None,
            state,
            condition,
        };
        match self {
            Self::RegionalOutage { region } => Expect {
                region: Some(region),
                ..cdn(VendorState::HardDown, ConditionKind::HardDown)
            },
            Self::SlowEdge => cdn(VendorState::Degraded, ConditionKind::Degraded),
            Self::SoaDrift => Expect {
                vendor: "demo-dns",
                region: None,
                state: VendorState::Degraded,
                condition: ConditionKind::DataConsistency,
            },
            Self::ApiDown => cdn(VendorState::ApiDown, ConditionKind::ApiDown),
            Self::StaleLogs => cdn(
                VendorState::LimitedVisibility,
                ConditionKind::LimitedVisibility,
            ),
        }
    }

    /// Switches the fault on.
    pub(crate) fn inject(&self, world: &World, probes: &[DemoProbe]) {
        match self {
            Self::RegionalOutage { region } => {
                let sources: BTreeSet<IpAddr> = probes
                    .iter()
                    .filter(|p| p.region == *region)
                    .map(|p| p.source)
                    .collect();
                world.set_edge_fault(Edge::One, Sources::Only(sources), EdgeFault::Error);
            }
            Self::SlowEdge => {
                world.set_edge_fault(Edge::Two, Sources::All, EdgeFault::Slow(SLOW_BY))
            }
            Self::SoaDrift => world.set_soa_drift(true),
            Self::ApiDown => world.set_api_down(true),
            Self::StaleLogs => world.set_logs_stale(true),
        }
    }

    /// Switches it off.
    pub(crate) fn clear(&self, world: &World) {
        match self {
            Self::RegionalOutage { .. } => world.clear_edge_fault(Edge::One),
            Self::SlowEdge => world.clear_edge_fault(Edge::Two),
            Self::SoaDrift => world.set_soa_drift(false),
            Self::ApiDown => world.set_api_down(false),
            Self::StaleLogs => world.set_logs_stale(false),
        }
    }
}

impl Expect {
    /// True when the observed state shows it.
    pub(crate) fn seen(&self, o: &Observed) -> bool {
        o.state(self.vendor, self.region).is_some_and(|s| {
            s.state == self.state && s.conditions.iter().any(|c| c.kind == self.condition)
        })
    }

    /// True when `a` pages about it.
    pub(crate) fn pages(&self, a: &Alert) -> bool {
        let scope = match self.region {
            None => a.subject.scope == SubjectScope::Global,
            Some(r) => {
                a.subject.scope == SubjectScope::Regional
                    && a.subject.regions.iter().any(|x| x == r)
            }
        };
        matches!(a.event, AlertEvent::Trigger | AlertEvent::Update)
            && a.subject.id == self.vendor
            && a.subject.state == IncidentState::Vendor(self.state)
            && scope
    }

    /// Where, for people: `demo-cdn hard_down in ap-south`, `demo-dns degraded globally`.
    pub(crate) fn describe(&self) -> String {
        match self.region {
            Some(r) => format!("{} {} in {r}", self.vendor, self.state.as_label()),
            None => format!("{} {} globally", self.vendor, self.state.as_label()),
        }
    }
}

/// What the script needs.
pub(crate) struct Stage<'a> {
    /// The world to break.
    pub(crate) world: &'a World,
    /// The demo's probes (for their regions and sources).
    pub(crate) probes: &'a [DemoProbe],
    /// What the demo sees.
    pub(crate) observed: watch::Receiver<Observed>,
    /// Where lines go.
    pub(crate) printer: Arc<Printer>,
    /// How long a fault stays on once paged.
    pub(crate) hold: Duration,
}

impl Stage<'_> {
    fn say(&self, text: &str) {
        self.printer.line(Tag::Script, text);
    }

    /// Waits until `done` holds of what is observed, at most `within`; true if it did.
    async fn wait(&mut self, within: Duration, mut done: impl FnMut(&Observed) -> bool) -> bool {
        tokio::time::timeout(within, self.observed.wait_for(|o| done(o)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The healthy warm-up: waits until every vendor is operational everywhere.
    pub(crate) async fn warm_up(&mut self) {
        self.say(&format!(
            "warm-up: {} probes in {} regions start probing; waiting until every vendor is operational",
            self.probes.len(),
            self.probes
                .iter()
                .map(|p| p.region)
                .collect::<BTreeSet<_>>()
                .len()
        ));
        let start = Instant::now();
        if self.wait(WARM_UP_WITHIN, Observed::all_operational).await {
            self.say(&format!(
                "✓ every vendor operational after {:.1} s",
                start.elapsed().as_secs_f64()
            ));
        } else {
            self.say(&format!(
                "✗ not every vendor is operational after {} s; the script goes on",
                WARM_UP_WITHIN.as_secs()
            ));
        }
    }

    /// Plays `fault`: inject, wait for the state and the page, hold, clear, wait for recovery.
    pub(crate) async fn play(&mut self, fault: &Fault) {
        let expect = fault.expect();
        let alerts_before = self.observed.borrow().alerts_total;
        self.say(&format!("injecting: {}", fault.describe()));
        let injected = Instant::now();
        fault.inject(self.world, self.probes);
        if !self.wait(DETECT_WITHIN, |o| expect.seen(o)).await {
            self.say(&format!(
                "✗ {} not seen within {} s",
                expect.describe(),
                DETECT_WITHIN.as_secs()
            ));
        } else {
            let seen = injected.elapsed();
            let left = DETECT_WITHIN.saturating_sub(seen);
            let paged = self
                .wait(left, |o| {
                    o.alerts_since(alerts_before).any(|a| expect.pages(a))
                })
                .await;
            let incident = self
                .observed
                .borrow()
                .alerts_since(alerts_before)
                .find(|a| expect.pages(a))
                .map(|a| a.incident_id);
            match (paged, incident) {
                (true, Some(id)) => self.say(&format!(
                    "✓ detected: {} after {:.1} s, paged after {:.1} s (incident {id})",
                    expect.describe(),
                    seen.as_secs_f64(),
                    injected.elapsed().as_secs_f64()
                )),
                _ => self.say(&format!(
                    "✗ {} seen after {:.1} s, but no page within {} s",
                    expect.describe(),
                    seen.as_secs_f64(),
                    DETECT_WITHIN.as_secs()
                )),
            }
            if !self.hold.is_zero() {
                tokio::time::sleep(self.hold).await;
            }
        }
        self.say(&format!("clearing: {}", fault.describe()));
        let cleared = Instant::now();
        fault.clear(self.world);
        let opened: BTreeSet<i64> = self
            .observed
            .borrow()
            .alerts_since(alerts_before)
            .filter(|a| a.event == AlertEvent::Trigger)
            .map(|a| a.incident_id)
            .collect();
        let recovered = self
            .wait(RECOVER_WITHIN, |o| {
                o.all_operational()
                    && opened.iter().all(|id| {
                        o.alerts_since(alerts_before)
                            .any(|a| a.event == AlertEvent::Resolve && a.incident_id == *id)
                    })
            })
            .await;
        if recovered {
            let ids: Vec<String> = opened.iter().map(i64::to_string).collect();
            let resolved = match ids.len() {
                0 => String::new(),
                1 => format!("; incident {} resolved", ids[0]),
                _ => format!("; incidents {} resolved", ids.join(", ")),
            };
            self.say(&format!(
                "✓ recovered: every vendor operational after {:.1} s{resolved}",
                cleared.elapsed().as_secs_f64()
            ));
        } else {
            self.say(&format!(
                "✗ not recovered within {} s of clearing; the script goes on",
                RECOVER_WITHIN.as_secs()
            ));
        }
    }
}
