//! Table tests of the consensus rules, with explicit time.

use std::collections::BTreeMap;
use std::time::Duration;

use vantage_checks::model::{Role, Settings, Threshold};
use vantage_checks::result::FailureKind;

use super::quarantine::{self, CheckVotes, QuarantineSettings};
use super::vendor::{self, CheckView, ConditionKind, VendorState};
use super::*;

const S: Ms = 1000;

fn settings() -> Settings {
    Settings {
        interval: Duration::from_secs(10),
        window: Duration::from_secs(30),
        quorum: 3,
        failing: Threshold::Share(0.5),
        regions: 2,
        region_quorum: 2,
        confirm: 1,
        hold_for: Duration::from_secs(10),
        recover_for: Duration::from_secs(30),
        slow: Some(Duration::from_millis(500)),
        ..Settings::default()
    }
}

fn ok(at: Ms) -> Run {
    Run {
        started_ms: at,
        outcome: Outcome::Ok,
        total_ms: 20.0,
    }
}

fn slow(at: Ms) -> Run {
    Run {
        started_ms: at,
        outcome: Outcome::Slow,
        total_ms: 900.0,
    }
}

fn fail(at: Ms) -> Run {
    Run {
        started_ms: at,
        outcome: Outcome::Fail(FailureKind::DnsTimeout),
        total_ms: 4000.0,
    }
}

fn perr(at: Ms) -> Run {
    Run {
        started_ms: at,
        outcome: Outcome::ProbeError,
        total_ms: 1.0,
    }
}

/// A fleet: (probe, region, runs).
struct Fleet(Vec<(&'static str, &'static str, Vec<Run>)>);

impl Fleet {
    fn views(&self) -> Vec<ProbeRuns<'_>> {
        self.0
            .iter()
            .map(|(p, r, runs)| ProbeRuns {
                probe: p,
                region: r,
                runs,
                message: Some("boom"),
                quarantined: false,
            })
            .collect()
    }
}

/// Six probes, two in each of three regions, each with its latest run given.
fn six(latest: [fn(Ms) -> Run; 6], at: Ms) -> Fleet {
    let names = [
        ("a1", "a"),
        ("a2", "a"),
        ("b1", "b"),
        ("b2", "b"),
        ("c1", "c"),
        ("c2", "c"),
    ];
    Fleet(
        names
            .iter()
            .zip(latest)
            .map(|(&(p, r), f)| (p, r, vec![f(at)]))
            .collect(),
    )
}

fn raw(e: &Evaluation, scope: Scope) -> Verdict {
    e.raw[&scope]
}

fn region(r: &str) -> Scope {
    Scope::Region(r.to_owned())
}

#[test]
fn votes_fresh_silent_and_probe_errors() {
    let s = settings();
    let now = 100 * S;
    let cases: &[(&str, Vec<Run>, Vote)] = &[
        (
            "latest ok in window",
            vec![fail(70 * S), ok(90 * S)],
            Vote::Passing,
        ),
        (
            "latest failed",
            vec![ok(80 * S), fail(95 * S)],
            Vote::Failing,
        ),
        ("latest slow", vec![slow(95 * S)], Vote::Slow),
        ("too old: silent", vec![fail(60 * S)], Vote::Silent),
        (
            "exactly at the window edge is fresh",
            vec![fail(70 * S)],
            Vote::Failing,
        ),
        ("no runs: silent", vec![], Vote::Silent),
        ("probe errors only", vec![perr(95 * S)], Vote::ProbeError),
        (
            "probe error after a failure still votes the failure",
            vec![fail(90 * S), perr(95 * S)],
            Vote::Failing,
        ),
        (
            "result from the future is not fresh",
            vec![fail(101 * S)],
            Vote::Silent,
        ),
    ];
    for (name, runs, want) in cases {
        let p = ProbeRuns {
            probe: "p",
            region: "r",
            runs,
            message: None,
            quarantined: false,
        };
        assert_eq!(vote(&s, &p, now).vote, *want, "{name}");
    }
}

#[test]
fn confirm_needs_n_failures_in_a_row() {
    let s = Settings {
        confirm: 3,
        ..settings()
    };
    let now = 100 * S;
    let cases: &[(&str, Vec<Run>, Vote)] = &[
        ("one failure", vec![ok(80 * S), fail(90 * S)], Vote::Passing),
        (
            "two failures",
            vec![ok(70 * S), fail(80 * S), fail(90 * S)],
            Vote::Passing,
        ),
        (
            "three failures",
            vec![fail(70 * S), fail(80 * S), fail(90 * S)],
            Vote::Failing,
        ),
        (
            "probe errors do not break the streak",
            vec![fail(70 * S), fail(80 * S), perr(85 * S), fail(90 * S)],
            Vote::Failing,
        ),
        (
            "a pass breaks the streak",
            vec![fail(60 * S), fail(70 * S), ok(80 * S), fail(90 * S)],
            Vote::Passing,
        ),
    ];
    for (name, runs, want) in cases {
        let p = ProbeRuns {
            probe: "p",
            region: "r",
            runs,
            message: None,
            quarantined: false,
        };
        assert_eq!(vote(&s, &p, now).vote, *want, "{name}");
    }
}

#[test]
fn global_and_regional_verdicts() {
    let s = settings();
    let now = 100 * S;
    type Row = (&'static str, [fn(Ms) -> Run; 6], Verdict, [Verdict; 3]);
    use Verdict::{Failing as F, Passing as P, Slow as W};
    let cases: &[Row] = &[
        ("all pass", [ok, ok, ok, ok, ok, ok], P, [P, P, P]),
        (
            "all fail",
            [fail, fail, fail, fail, fail, fail],
            F,
            [F, F, F],
        ),
        (
            "one region fails: regional only",
            [fail, fail, ok, ok, ok, ok],
            P,
            [F, P, P],
        ),
        (
            "half fail in two regions: b has one failing probe, not an outage",
            [fail, fail, fail, ok, ok, ok],
            F,
            [F, P, P],
        ),
        (
            "one probe fails: nothing anywhere",
            [fail, ok, ok, ok, ok, ok],
            P,
            [P, P, P],
        ),
        (
            "one probe slow: nothing anywhere",
            [slow, ok, ok, ok, ok, ok],
            P,
            [P, P, P],
        ),
        ("most slow", [slow, slow, slow, slow, ok, ok], W, [W, W, P]),
    ];
    for (name, latest, global, regions) in cases {
        let fleet = six(*latest, 95 * S);
        let e = evaluate(&s, &CheckState::default(), &fleet.views(), 3, now);
        assert_eq!(raw(&e, Scope::Global), *global, "{name}: global");
        for (r, want) in ["a", "b", "c"].iter().zip(regions) {
            assert_eq!(raw(&e, region(r)), *want, "{name}: region {r}");
        }
    }
}

#[test]
fn r11_one_failing_probe_in_a_region_of_two_is_not_a_regional_outage() {
    // 1 of 2 reaches 50%, but one probe alone never declares an outage (issue 11).
    let fleet = six([fail, ok, ok, ok, ok, ok], 95 * S);
    let e = evaluate(
        &settings(),
        &CheckState::default(),
        &fleet.views(),
        3,
        100 * S,
    );
    assert_eq!(raw(&e, region("a")), Verdict::Passing);
    assert_eq!(raw(&e, Scope::Global), Verdict::Passing);
    // Even a count of one, or a region quorum of one, needs two probes.
    let loose = Settings {
        failing: Threshold::Count(1),
        regions: 1,
        quorum: 1,
        region_quorum: 1,
        ..settings()
    };
    let e = evaluate(&loose, &CheckState::default(), &fleet.views(), 3, 100 * S);
    assert_eq!(raw(&e, region("a")), Verdict::Passing);
    assert_eq!(raw(&e, Scope::Global), Verdict::Passing);
    // A region with one probe, failing: nothing is known there.
    let alone = Fleet(vec![
        ("a1", "a", vec![fail(95 * S)]),
        ("b1", "b", vec![ok(95 * S)]),
        ("b2", "b", vec![ok(95 * S)]),
    ]);
    let e = evaluate(&loose, &CheckState::default(), &alone.views(), 2, 100 * S);
    assert_eq!(raw(&e, region("a")), Verdict::Unknown);
    assert_eq!(raw(&e, Scope::Global), Verdict::Passing);
    // Opting out, for a region with one probe: its probe alone decides there.
    let lone = Settings {
        lone_probe_pages: true,
        ..loose
    };
    let e = evaluate(&lone, &CheckState::default(), &alone.views(), 2, 100 * S);
    assert_eq!(raw(&e, region("a")), Verdict::Failing);
    assert_eq!(raw(&e, Scope::Global), Verdict::Failing);
}

#[test]
fn r11_two_failing_probes_in_a_region_are_a_regional_outage() {
    let fleet = six([fail, fail, ok, ok, ok, ok], 95 * S);
    let e = evaluate(
        &settings(),
        &CheckState::default(),
        &fleet.views(),
        3,
        100 * S,
    );
    assert_eq!(raw(&e, region("a")), Verdict::Failing);
    assert_eq!(e.evidence.regions["a"].failing, 2);
}

#[test]
fn no_quorum_is_unknown_never_down() {
    let s = settings();
    let fleet = Fleet(vec![
        ("a1", "a", vec![fail(95 * S)]),
        ("b1", "b", vec![fail(95 * S)]),
        ("c1", "c", vec![fail(20 * S)]), // silent
    ]);
    let e = evaluate(&s, &CheckState::default(), &fleet.views(), 3, 100 * S);
    assert_eq!(raw(&e, Scope::Global), Verdict::Unknown);
    // A region with one fresh probe is below region_quorum = 2.
    assert_eq!(raw(&e, region("a")), Verdict::Unknown);
    assert_eq!(e.evidence.global.fresh, 2);
    assert!(e.any_failing_vote);
}

#[test]
fn regions_needed_are_capped_by_the_regions_that_run_the_check() {
    let s = settings();
    let fleet = Fleet(vec![
        ("a1", "a", vec![fail(95 * S)]),
        ("a2", "a", vec![fail(95 * S)]),
        ("a3", "a", vec![fail(95 * S)]),
    ]);
    let one_region = evaluate(&s, &CheckState::default(), &fleet.views(), 1, 100 * S);
    assert_eq!(raw(&one_region, Scope::Global), Verdict::Failing);
    let three_regions = evaluate(&s, &CheckState::default(), &fleet.views(), 3, 100 * S);
    assert_eq!(raw(&three_regions, Scope::Global), Verdict::Passing);
}

#[test]
fn counts_as_thresholds() {
    let s = Settings {
        failing: Threshold::Count(2),
        regions: 1,
        ..settings()
    };
    let fleet = six([fail, ok, fail, ok, ok, ok], 95 * S);
    let e = evaluate(&s, &CheckState::default(), &fleet.views(), 3, 100 * S);
    assert_eq!(raw(&e, Scope::Global), Verdict::Failing);
    // Regionally a count above the region's size is capped at it: 1 of 1 would fail, but a
    // region of two needs both.
    assert_eq!(raw(&e, region("a")), Verdict::Passing);
}

#[test]
fn evidence_names_every_vote() {
    let fleet = six([fail, fail, fail, ok, slow, perr], 95 * S);
    let e = evaluate(
        &settings(),
        &CheckState::default(),
        &fleet.views(),
        3,
        100 * S,
    );
    let votes: BTreeMap<&str, Vote> = e
        .evidence
        .votes
        .iter()
        .map(|v| (v.probe.as_str(), v.vote))
        .collect();
    assert_eq!(votes["a1"], Vote::Failing);
    assert_eq!(votes["b2"], Vote::Passing);
    assert_eq!(votes["c1"], Vote::Slow);
    assert_eq!(votes["c2"], Vote::ProbeError);
    assert_eq!(e.evidence.global.fresh, 5);
    assert_eq!(e.evidence.global.failures["dns_timeout"], 3);
    assert_eq!(e.evidence.main_failure(), Some("dns_timeout"));
    assert_eq!(e.evidence.failing_messages(5), vec!["boom".to_owned()]);
    let a1 = &e.evidence.votes[0];
    assert_eq!(a1.failure, Some(FailureKind::DnsTimeout));
    assert_eq!(a1.total_ms, Some(4000.0));
}

/// Drives one scope's hysteresis through a script of (second, raw verdict) and returns the
/// transitions as (second, to).
fn script(s: &Settings, steps: &[(i64, Verdict)]) -> Vec<(i64, Verdict)> {
    let mut state = ScopeState {
        verdict: Verdict::Passing,
        since_ms: 0,
        pending: None,
    };
    let mut out = Vec::new();
    for &(sec, raw) in steps {
        let (next, t) = settle(s, state, raw, &Scope::Global, sec * S);
        state = next;
        if let Some(t) = t {
            out.push((sec, t.to));
        }
    }
    out
}

#[test]
fn hysteresis_holds_for_and_recover_for() {
    use Verdict::{Failing as F, Passing as P, Slow as W, Unknown as U};
    let s = settings(); // for = 10 s, recover_for = 30 s
    type Script = Vec<(i64, Verdict)>;
    let cases: &[(&str, Script, Script)] = &[
        (
            "failing must hold for `for`",
            vec![(0, F), (5, F), (9, F), (10, F), (11, F)],
            vec![(10, F)],
        ),
        (
            "a blip shorter than `for` changes nothing",
            vec![(0, F), (5, P), (10, F), (15, P), (30, P)],
            vec![],
        ),
        (
            "recovery waits recover_for from the first non-failing verdict",
            vec![(0, F), (10, F), (11, P), (30, P), (40, P), (41, P)],
            vec![(10, F), (41, P)],
        ),
        (
            "flapping every interval: one failure, no recovery until it stops",
            vec![
                (0, F),
                (10, F),
                (20, P),
                (30, F),
                (40, P),
                (50, F),
                (60, P),
                (70, P),
                (80, P),
                (90, P),
            ],
            vec![(10, F), (90, P)],
        ),
        (
            "recovery counts through any non-failing verdict",
            vec![(0, F), (10, F), (20, W), (30, P), (40, U), (50, P)],
            vec![(10, F), (50, P)],
        ),
        (
            "slow clears after recover_for",
            vec![(0, W), (10, W), (20, P), (49, P), (50, P)],
            vec![(10, W), (50, P)],
        ),
        (
            "slow to failing needs only `for`",
            vec![(0, W), (10, W), (15, F), (25, F)],
            vec![(10, W), (25, F)],
        ),
        (
            "a changing pending verdict restarts `for`",
            vec![(0, W), (5, F), (14, F), (15, F)],
            vec![(15, F)],
        ),
    ];
    for (name, steps, want) in cases {
        assert_eq!(&script(&s, steps), want, "{name}");
    }
}

#[test]
fn state_carries_over_between_evaluations() {
    let s = settings();
    let mut state = CheckState::default();
    let mut transitions = Vec::new();
    for sec in [95, 100, 105, 110] {
        let fleet = six([fail, fail, fail, fail, fail, fail], (sec - 1) * S);
        let e = evaluate(&s, &state, &fleet.views(), 3, sec * S);
        state = e.state;
        transitions.extend(e.transitions);
    }
    assert_eq!(state.global.verdict, Verdict::Failing);
    assert!(state.failing_anywhere());
    let global: Vec<_> = transitions
        .iter()
        .filter(|t| t.scope == Scope::Global)
        .map(|t| (t.from, t.to, t.at_ms / S))
        .collect();
    // Unknown → Failing after `for` (10 s) from the first evaluation.
    assert_eq!(global, vec![(Verdict::Unknown, Verdict::Failing, 105)]);
}

#[test]
fn a_region_whose_probes_vanish_becomes_unknown() {
    let s = Settings {
        hold_for: Duration::ZERO,
        recover_for: Duration::ZERO,
        ..settings()
    };
    let fleet = six([ok, ok, ok, ok, ok, ok], 95 * S);
    let e = evaluate(&s, &CheckState::default(), &fleet.views(), 3, 100 * S);
    assert_eq!(e.state.scope(&region("c")).verdict, Verdict::Passing);
    let fewer = Fleet(fleet.0.into_iter().take(4).collect());
    let e = evaluate(&s, &e.state, &fewer.views(), 3, 101 * S);
    assert_eq!(e.state.scope(&region("c")).verdict, Verdict::Unknown);
}

fn votes_of(fleet: &Fleet, now: Ms) -> Vec<ProbeVote> {
    fleet
        .views()
        .iter()
        .map(|p| vote(&settings(), p, now))
        .collect()
}

#[test]
fn a_probe_failing_several_vendors_alone_is_quarantined_then_readmitted() {
    let q = QuarantineSettings {
        min_vendors: 2,
        readmit_after: Duration::from_secs(30),
    };
    let now = 100 * S;
    let broken = six([fail, ok, ok, ok, ok, ok], 95 * S);
    let healthy = six([ok, ok, ok, ok, ok, ok], 95 * S);
    let (vb, vh) = (votes_of(&broken, now), votes_of(&healthy, now));

    // Failing one vendor alone is not enough.
    let one = [
        CheckVotes {
            check: "dns",
            vendor: "acme",
            votes: &vb,
        },
        CheckVotes {
            check: "cdn",
            vendor: "fast",
            votes: &vh,
        },
    ];
    let (h, changes) = quarantine::assess(&q, &BTreeMap::new(), &one, now);
    assert!(changes.is_empty());
    assert!(!h["a1"].quarantined);

    // Two vendors at once: quarantined, naming them.
    let two = [
        CheckVotes {
            check: "dns",
            vendor: "acme",
            votes: &vb,
        },
        CheckVotes {
            check: "cdn",
            vendor: "fast",
            votes: &vb,
        },
    ];
    let (h, changes) = quarantine::assess(&q, &h, &two, now);
    assert_eq!(changes.len(), 1);
    assert!(changes[0].quarantined && changes[0].probe == "a1");
    assert_eq!(changes[0].vendors, vec!["acme", "fast"]);
    assert!(h["a1"].quarantined);

    // When everyone fails, the probe is right: no quarantine of anyone else.
    let all = six([fail, fail, fail, fail, fail, fail], 95 * S);
    let va = votes_of(&all, now);
    let everyone = [
        CheckVotes {
            check: "dns",
            vendor: "acme",
            votes: &va,
        },
        CheckVotes {
            check: "cdn",
            vendor: "fast",
            votes: &va,
        },
    ];
    let (h2, changes) = quarantine::assess(&q, &BTreeMap::new(), &everyone, now);
    assert!(changes.is_empty());
    assert!(h2.values().all(|h| !h.quarantined));

    // Agreeing again: readmitted only after readmit_after.
    let agree = [
        CheckVotes {
            check: "dns",
            vendor: "acme",
            votes: &vh,
        },
        CheckVotes {
            check: "cdn",
            vendor: "fast",
            votes: &vh,
        },
    ];
    let (h, changes) = quarantine::assess(&q, &h, &agree, 110 * S);
    assert!(changes.is_empty() && h["a1"].quarantined);
    let (h, changes) = quarantine::assess(&q, &h, &two, 120 * S);
    assert!(changes.is_empty(), "disagreeing again restarts the clock");
    let (h, _) = quarantine::assess(&q, &h, &agree, 130 * S);
    let (h, changes) = quarantine::assess(&q, &h, &agree, 159 * S);
    assert!(changes.is_empty() && h["a1"].quarantined);
    let (h, changes) = quarantine::assess(&q, &h, &agree, 160 * S);
    assert_eq!(changes.len(), 1);
    assert!(!changes[0].quarantined);
    assert!(!h["a1"].quarantined);
}

#[test]
fn quarantined_probes_do_not_vote() {
    let fleet = six([fail, ok, ok, ok, ok, ok], 95 * S);
    let mut views = fleet.views();
    views[0].quarantined = true;
    let e = evaluate(&settings(), &CheckState::default(), &views, 3, 100 * S);
    assert_eq!(e.evidence.votes[0].vote, Vote::Quarantined);
    // Region a has one voting probe left: below region_quorum, so unknown, not failing.
    assert_eq!(raw(&e, region("a")), Verdict::Unknown);
    assert!(!e.any_failing_vote);
}

fn settled(global: Verdict, regions: &[(&str, Verdict)]) -> CheckState {
    let at = |v| ScopeState {
        verdict: v,
        since_ms: 0,
        pending: None,
    };
    CheckState {
        global: at(global),
        regions: regions
            .iter()
            .map(|(r, v)| ((*r).to_owned(), at(*v)))
            .collect(),
    }
}

fn evidence_failing(label: &str, message: &str) -> Evidence {
    let mut e = Evidence::default();
    e.global.failures.insert(label.to_owned(), 3);
    e.votes.push(ProbeVote {
        probe: "a1".into(),
        region: "a".into(),
        vote: Vote::Failing,
        failure: None,
        started_ms: None,
        total_ms: None,
        message: Some(message.to_owned()),
    });
    e
}

#[test]
fn vendor_state_by_role() {
    use Verdict::{Failing as F, Passing as P, Slow as W, Unknown as U};
    let none = Evidence::default();
    let timeout = evidence_failing("dns_timeout", "timed out");
    let soa = evidence_failing("soa_serial_mismatch", "ns2 serves serial 1, behind 2");
    type Row<'a> = (
        &'a str,
        Vec<(Role, CheckState, &'a Evidence)>,
        VendorState,
        Vec<ConditionKind>,
    );
    let cases: Vec<Row<'_>> = vec![
        (
            "all pass",
            vec![(Role::Data, settled(P, &[]), &none)],
            VendorState::Operational,
            vec![],
        ),
        (
            "data fails",
            vec![
                (Role::Data, settled(F, &[]), &timeout),
                (Role::Control, settled(P, &[]), &none),
            ],
            VendorState::HardDown,
            vec![ConditionKind::HardDown],
        ),
        (
            "control fails, data up",
            vec![
                (Role::Data, settled(P, &[]), &none),
                (Role::Control, settled(F, &[]), &timeout),
            ],
            VendorState::ApiDown,
            vec![ConditionKind::ApiDown],
        ),
        (
            "telemetry fails",
            vec![(Role::Telemetry, settled(F, &[]), &timeout)],
            VendorState::LimitedVisibility,
            vec![ConditionKind::LimitedVisibility],
        ),
        (
            "slow data and api down coexist; the headline is the worst",
            vec![
                (Role::Data, settled(W, &[]), &none),
                (Role::Control, settled(F, &[]), &timeout),
            ],
            VendorState::ApiDown,
            vec![ConditionKind::ApiDown, ConditionKind::Degraded],
        ),
        (
            "soa mismatch is data consistency",
            vec![(Role::Data, settled(F, &[]), &soa)],
            VendorState::Degraded,
            vec![ConditionKind::DataConsistency],
        ),
        (
            "no quorum",
            vec![(Role::Data, settled(U, &[]), &none)],
            VendorState::Unknown,
            vec![],
        ),
        (
            "slow control does not degrade",
            vec![(Role::Control, settled(W, &[]), &none)],
            VendorState::Operational,
            vec![],
        ),
    ];
    for (name, checks, state, kinds) in cases {
        let ids: Vec<String> = (0..checks.len()).map(|i| format!("c{i}")).collect();
        let views: Vec<CheckView<'_>> = checks
            .iter()
            .zip(&ids)
            .map(|((role, st, ev), id)| CheckView {
                check: id,
                role: *role,
                state: st,
                evidence: ev,
            })
            .collect();
        let status = vendor::derive(&views);
        assert_eq!(status.global.state, state, "{name}");
        let got: Vec<ConditionKind> = status.global.conditions.iter().map(|c| c.kind).collect();
        assert_eq!(got, kinds, "{name}");
    }
    let st = settled(F, &[]);
    let status = vendor::derive(&[CheckView {
        check: "soa",
        role: Role::Data,
        state: &st,
        evidence: &soa,
    }]);
    assert_eq!(
        status.global.conditions[0].detail,
        vec!["ns2 serves serial 1, behind 2".to_owned()],
        "the data consistency condition names the laggard"
    );
}

#[test]
fn regional_outage_is_worse_than_global() {
    use Verdict::{Failing as F, Passing as P};
    let mut ev = Evidence::default();
    ev.regions.insert("a".into(), Tally::default());
    let st = settled(P, &[("a", F), ("b", P), ("c", P)]);
    let status = vendor::derive(&[CheckView {
        check: "cdn",
        role: Role::Data,
        state: &st,
        evidence: &ev,
    }]);
    assert_eq!(status.global.state, VendorState::Operational);
    assert_eq!(status.regions["a"].state, VendorState::HardDown);
    assert_eq!(status.regions["b"].state, VendorState::Operational);
    assert_eq!(
        status.regional_outages(),
        vec![("a", VendorState::HardDown)]
    );
    assert_eq!(status.worst(), VendorState::HardDown);
}

#[test]
fn a_region_failing_while_the_global_verdict_is_pending_is_flagged() {
    use Verdict::{Failing as F, Passing as P};
    let mut st = settled(P, &[("a", F), ("b", P)]);
    st.global.pending = Some(Pending {
        verdict: F,
        since_ms: 0,
    });
    let ev = Evidence::default();
    let status = vendor::derive(&[CheckView {
        check: "cdn",
        role: Role::Data,
        state: &st,
        evidence: &ev,
    }]);
    assert!(status.global_pending);
    assert_eq!(
        status.regional_outages(),
        vec![("a", VendorState::HardDown)]
    );
    st.global.pending = None;
    let status = vendor::derive(&[CheckView {
        check: "cdn",
        role: Role::Data,
        state: &st,
        evidence: &ev,
    }]);
    assert_eq!(
        status.regional_outages(),
        vec![("a", VendorState::HardDown)]
    );
}

/// Regression (seen in `vantage-coordinator demo`): when an SOA drift cleared, the check stayed
/// failing for `recover_for` with no failing vote left to name the mismatch, and the vendor
/// turned `hard_down` (and paged an update) instead of staying `degraded` until it cleared.
#[test]
fn a_consistency_problem_that_is_clearing_stays_a_consistency_problem() {
    use Verdict::Failing as F;
    let mut soa = Evidence::default();
    soa.global.failures.insert("soa_serial_mismatch".into(), 3);
    let st = settled(F, &[]);
    let view = |ev| CheckView {
        check: "www-a",
        role: Role::Data,
        state: &st,
        evidence: ev,
    };
    let drifting = vendor::derive_after(None, &[view(&soa)]);
    assert_eq!(drifting.global.state, VendorState::Degraded);
    let clearing_votes = Evidence::default();
    let clearing = vendor::derive_after(Some(&drifting), &[view(&clearing_votes)]);
    assert_eq!(clearing.global.state, VendorState::Degraded, "{clearing:?}");
    assert_eq!(
        clearing.global.conditions[0].kind,
        ConditionKind::DataConsistency
    );
    // Without that memory (a failing check whose votes say nothing), it is an outage.
    let unexplained = vendor::derive_after(None, &[view(&clearing_votes)]);
    assert_eq!(unexplained.global.state, VendorState::HardDown);
}

mod suspects {
    use super::*;
    use crate::consensus::suspect::{self, Dissent, Finding};

    type Lone = Option<(String, Dissent)>;

    fn lone(fleet: &Fleet, now: Ms) -> Lone {
        suspect::lone_dissenter(&settings(), &fleet.views(), now).map(|(p, d)| (p.to_owned(), d))
    }

    #[test]
    fn the_lone_dissenter_fails_or_is_slow_within_the_window_while_two_peers_do_not() {
        let now = 100 * S;
        let seven = |a1: Vec<Run>, others: fn(Ms) -> Run| {
            let mut f = vec![("a1", "a", a1)];
            for (p, r) in [("a2", "a"), ("b1", "b"), ("b2", "b")] {
                f.push((p, r, vec![others(80 * S), others(95 * S)]));
            }
            Fleet(f)
        };
        let cases: Vec<(&str, Fleet, Lone)> = vec![
            (
                "failed twice in the window, passing now: still dissenting",
                seven(vec![fail(75 * S), fail(85 * S), ok(95 * S)], ok),
                Some(("a1".into(), Dissent::Failing)),
            ),
            (
                "failed once while nobody else did",
                seven(vec![ok(75 * S), fail(95 * S)], ok),
                Some(("a1".into(), Dissent::Failing)),
            ),
            (
                "slow alone",
                seven(vec![slow(85 * S), slow(95 * S)], ok),
                Some(("a1".into(), Dissent::Slow)),
            ),
            (
                "once each, two probes: nobody stands out",
                Fleet(vec![
                    ("a1", "a", vec![fail(95 * S)]),
                    ("a2", "a", vec![fail(90 * S), ok(95 * S)]),
                    ("b1", "b", vec![ok(95 * S)]),
                    ("b2", "b", vec![ok(95 * S)]),
                ]),
                None,
            ),
            (
                "its failures are older than the window",
                seven(vec![fail(55 * S), fail(60 * S), ok(95 * S)], ok),
                None,
            ),
            (
                "probe errors are not dissent",
                seven(vec![perr(85 * S), perr(90 * S), ok(95 * S)], ok),
                None,
            ),
            (
                "everybody fails: an outage, not a dissenter",
                seven(vec![fail(85 * S), fail(95 * S)], fail),
                None,
            ),
            (
                "the others' one blip each does not hide it",
                Fleet(vec![
                    ("a1", "a", vec![fail(75 * S), fail(85 * S), fail(95 * S)]),
                    ("a2", "a", vec![fail(80 * S), ok(95 * S)]),
                    ("b1", "b", vec![ok(80 * S), slow(95 * S)]),
                    ("b2", "b", vec![ok(95 * S)]),
                ]),
                Some(("a1".into(), Dissent::Failing)),
            ),
            (
                "one peer only: one word against another",
                Fleet(vec![
                    ("a1", "a", vec![fail(85 * S), fail(95 * S)]),
                    ("a2", "a", vec![ok(95 * S)]),
                ]),
                None,
            ),
            (
                "two peers, one silent: one word against another",
                Fleet(vec![
                    ("a1", "a", vec![fail(85 * S), fail(95 * S)]),
                    ("a2", "a", vec![ok(95 * S)]),
                    ("b1", "b", vec![ok(10 * S)]),
                ]),
                None,
            ),
            (
                "two dissenters: nobody alone",
                Fleet(vec![
                    ("a1", "a", vec![fail(85 * S), fail(95 * S)]),
                    ("a2", "a", vec![slow(85 * S), slow(95 * S)]),
                    ("b1", "b", vec![ok(95 * S)]),
                    ("b2", "b", vec![ok(95 * S)]),
                ]),
                None,
            ),
        ];
        for (name, fleet, want) in cases {
            assert_eq!(lone(&fleet, now), want, "{name}");
        }
    }

    #[test]
    fn a_probe_is_suspect_after_dissenting_longer_than_the_window_and_clears_a_window_after_it_stops()
     {
        let window = 30 * S;
        let finding = |d: Option<(&str, Dissent)>| Finding {
            check: "www".into(),
            vendor: "acme".into(),
            window_ms: window,
            dissenter: d.map(|(p, d)| (p.to_owned(), d)),
        };
        let alone = Some(("a1", Dissent::Failing));
        let (m, c) = suspect::assess(&Default::default(), &[finding(alone)], 10 * S);
        assert!(c.is_empty());
        let key = ("a1".to_owned(), "www".to_owned());
        assert_eq!(m[&key].since_ms, 10 * S);
        // Exactly a window later: not yet.
        let (m, c) = suspect::assess(&m, &[finding(alone)], 40 * S);
        assert!(c.is_empty() && m[&key].suspect_since_ms.is_none());
        let (m, c) = suspect::assess(&m, &[finding(alone)], 41 * S);
        assert_eq!(c.len(), 1);
        assert!(c[0].suspect && c[0].probe == "a1" && c[0].check == "www");
        assert_eq!(m[&key].suspect_since_ms, Some(41 * S));
        // Still dissenting: no new change.
        let (m, c) = suspect::assess(&m, &[finding(alone)], 50 * S);
        assert!(c.is_empty());
        // A break shorter than the window (another probe's blip, a few lucky passes) keeps
        // the mark and the streak.
        let (m, c) = suspect::assess(&m, &[finding(None)], 60 * S);
        assert!(c.is_empty());
        assert_eq!(m[&key].suspect_since_ms, Some(41 * S));
        let (m, c) = suspect::assess(&m, &[finding(alone)], 70 * S);
        assert!(c.is_empty());
        assert_eq!(m[&key].since_ms, 10 * S, "the same dissent");
        // A whole window without dissent: cleared.
        let (m, c) = suspect::assess(&m, &[finding(None)], 100 * S);
        assert!(c.is_empty(), "exactly a window: not yet");
        let (m, c) = suspect::assess(&m, &[finding(None)], 101 * S);
        assert_eq!(c.len(), 1);
        assert!(!c[0].suspect);
        assert!(m.is_empty());
        // Dissenting again starts a new streak.
        let (m, _) = suspect::assess(&m, &[finding(alone)], 102 * S);
        assert_eq!(m[&key].since_ms, 102 * S);
        // Another probe dissenting is another mark; a check gone takes its marks along.
        let (m, _) = suspect::assess(&m, &[finding(Some(("b1", Dissent::Slow)))], 103 * S);
        assert!(m.contains_key(&("b1".to_owned(), "www".to_owned())) && m.len() == 2);
        let (m, c) = suspect::assess(&m, &[], 104 * S);
        assert!(m.is_empty() && c.is_empty(), "neither was suspect yet");
    }
}

#[test]
fn r11_a_vendor_whose_failing_checks_all_wait_out_recover_for_is_clearing() {
    let failing = |pending: Option<Verdict>| CheckState {
        global: ScopeState {
            verdict: Verdict::Failing,
            since_ms: 0,
            pending: pending.map(|verdict| Pending {
                verdict,
                since_ms: 10 * S,
            }),
        },
        regions: BTreeMap::new(),
    };
    let evidence = Evidence::default();
    let recovering = failing(Some(Verdict::Passing));
    let still = failing(None);
    let view = |check: &'static str, state| CheckView {
        check,
        role: Role::Data,
        state,
        evidence: &evidence,
    };
    let v = vendor::derive(&[view("a", &recovering)]);
    assert_eq!(v.global.state, VendorState::HardDown);
    assert!(v.global.clearing);
    let v = vendor::derive(&[view("a", &recovering), view("b", &still)]);
    assert!(!v.global.clearing, "b is still failing");
    let v = vendor::derive(&[view("a", &still)]);
    assert!(!v.global.clearing);
}
