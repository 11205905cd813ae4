//! Property tests of the consensus core: random fleets (probes, regions), settings, and
//! sequences of runs and evaluation times, against the invariants the design promises.
//!
//! Each property runs 10,000 cases in `cargo test`; `VANTAGE_PROPTEST_CASES=1000000` runs
//! more. A failure prints the smallest case proptest could shrink it to.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::Config;
use vantage_checks::model::{Settings, Threshold};
use vantage_checks::result::FailureKind;

use super::*;

/// Cases per property: 10,000 unless `VANTAGE_PROPTEST_CASES` says otherwise.
pub(crate) fn config() -> Config {
    let cases = std::env::var("VANTAGE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    Config {
        cases,
        // Shrinking a sequence of evaluations can take long; a few thousand steps find a
        // small enough case.
        max_shrink_iters: 4096,
        failure_persistence: None,
        ..Config::default()
    }
}

/// What a probe's run said.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Out {
    Ok,
    Slow,
    Fail,
    ProbeError,
}

impl Out {
    fn outcome(self) -> Outcome {
        match self {
            Self::Ok => Outcome::Ok,
            Self::Slow => Outcome::Slow,
            Self::Fail => Outcome::Fail(FailureKind::HttpStatus),
            Self::ProbeError => Outcome::ProbeError,
        }
    }
}

/// One evaluation: how long after the previous one, and each probe's new run (started this
/// many ms before the evaluation), if it has one.
#[derive(Clone, Debug)]
struct Step {
    after_ms: Ms,
    runs: Vec<Option<(Ms, Out)>>,
}

#[derive(Clone, Debug)]
struct Case {
    settings: Settings,
    /// Each probe's region.
    regions: Vec<u8>,
    steps: Vec<Step>,
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn any_settings() -> impl Strategy<Value = Settings> {
    let threshold = prop_oneof![
        (1u32..=100).prop_map(|p| Threshold::Share(f64::from(p) / 100.0)),
        (1u32..=6).prop_map(Threshold::Count),
    ];
    (
        (1u32..=6, 1u32..=4, 1u32..=3, threshold, 1u32..=3),
        (2u64..=60, 0u64..=20, 0u64..=40),
    )
        .prop_map(
            |((quorum, region_quorum, regions, failing, confirm), (window, hold, recover))| {
                Settings {
                    quorum,
                    region_quorum,
                    regions,
                    failing,
                    confirm,
                    window: secs(window),
                    hold_for: secs(hold),
                    recover_for: secs(recover),
                    ..Settings::default()
                }
            },
        )
}

fn any_out() -> impl Strategy<Value = Option<(Ms, Out)>> {
    prop_oneof![
        2 => Just(None),
        4 => (0i64..3000).prop_map(|a| Some((a, Out::Ok))),
        1 => (0i64..3000).prop_map(|a| Some((a, Out::Slow))),
        3 => (0i64..3000).prop_map(|a| Some((a, Out::Fail))),
        1 => (0i64..3000).prop_map(|a| Some((a, Out::ProbeError))),
    ]
}

fn any_case(max_probes: usize, max_steps: usize) -> impl Strategy<Value = Case> {
    (
        any_settings(),
        prop::collection::vec(0u8..3, 1..=max_probes),
    )
        .prop_flat_map(move |(settings, regions)| {
            let n = regions.len();
            let step = (100i64..8000, prop::collection::vec(any_out(), n..=n))
                .prop_map(|(after_ms, runs)| Step { after_ms, runs });
            (
                Just(settings),
                Just(regions),
                prop::collection::vec(step, 1..=max_steps),
            )
        })
        .prop_map(|(settings, regions, steps)| Case {
            settings,
            regions,
            steps,
        })
}

const NAMES: [&str; 8] = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];
const REGIONS: [&str; 3] = ["r0", "r1", "r2"];

/// Appends a step's new runs, as of `now`, to each probe's runs.
fn append(step: &Step, runs: &mut [Vec<Run>], now: Ms) {
    for (i, new) in step.runs.iter().enumerate() {
        let Some((age, out)) = *new else { continue };
        let started_ms = now - age;
        // Runs of one probe start one after the other.
        if runs[i].last().is_some_and(|r| r.started_ms >= started_ms) {
            continue;
        }
        runs[i].push(Run {
            started_ms,
            outcome: out.outcome(),
            total_ms: 10.0,
        });
    }
}

/// The probes with runs, as consensus sees them.
fn views<'a>(case: &Case, runs: &'a [Vec<Run>]) -> Vec<ProbeRuns<'a>> {
    (0..case.regions.len())
        .filter(|&i| !runs[i].is_empty())
        .map(|i| ProbeRuns {
            probe: NAMES[i],
            region: REGIONS[case.regions[i] as usize],
            runs: &runs[i],
            message: None,
            quarantined: false,
        })
        .collect()
}

/// Plays a case: each step appends the new runs and evaluates with the state carried over.
/// `each` sees every evaluation with the time it ran at. Returns the last time and the runs.
fn play(case: &Case, mut each: impl FnMut(Ms, &CheckState, &Evaluation)) -> (Ms, Vec<Vec<Run>>) {
    let expected = case.regions.iter().collect::<BTreeSet<_>>().len() as u32;
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); case.regions.len()];
    let mut state = CheckState::default();
    let mut now: Ms = 1_000_000;
    for step in &case.steps {
        now += step.after_ms;
        append(step, &mut runs, now);
        let e = evaluate(&case.settings, &state, &views(case, &runs), expected, now);
        each(now, &state, &e);
        state = e.state.clone();
    }
    (now, runs)
}

fn bad(v: Verdict) -> bool {
    matches!(v, Verdict::Failing | Verdict::Slow)
}

proptest! {
    #![proptest_config(config())]

    /// One probe's results alone never make a failing (or slow) verdict, raw or settled, in
    /// any scope: every other probe passes, errs or is silent.
    #[test]
    fn one_probe_alone_never_makes_a_failing_verdict(mut case in any_case(8, 20)) {
        for step in &mut case.steps {
            for (i, run) in step.runs.iter_mut().enumerate() {
                if i > 0 && let Some((_, out @ (Out::Fail | Out::Slow))) = run {
                    *out = Out::Ok;
                }
            }
        }
        play(&case, |now, _, e| {
            for (scope, v) in &e.raw {
                assert!(!bad(*v), "raw {scope} is {v:?} at {now} from p0 alone");
            }
            let settled = std::iter::once(&e.state.global).chain(e.state.regions.values());
            for s in settled {
                assert!(!bad(s.verdict), "settled {:?} at {now} from p0 alone", s.verdict);
            }
        });
    }

    /// Fewer fresh probes than `quorum` is unknown globally; fewer than `region_quorum` is
    /// unknown in a region.
    #[test]
    fn fewer_fresh_probes_than_the_quorum_is_unknown(case in any_case(8, 12)) {
        play(&case, |now, _, e| {
            if e.evidence.global.fresh < case.settings.quorum {
                assert_eq!(e.raw[&Scope::Global], Verdict::Unknown, "at {now}");
            }
            for (r, t) in &e.evidence.regions {
                if t.fresh < case.settings.region_quorum {
                    assert_eq!(e.raw[&Scope::Region(r.clone())], Verdict::Unknown, "{r} at {now}");
                }
            }
        });
    }

    /// A settled verdict changes only after the raw verdict has held for `for` (entering) or
    /// `recover_for` (leaving slow); and a failing state clears only after the raw verdict has
    /// not been failing for `recover_for`.
    #[test]
    fn verdicts_change_only_after_for_and_failures_clear_only_after_recover_for(
        case in any_case(8, 25)
    ) {
        let s = &case.settings;
        // Per scope: when the current run of equal raw verdicts began, and when the current
        // run of non-failing raw verdicts began.
        let mut same_since: BTreeMap<Scope, (Verdict, Ms)> = BTreeMap::new();
        let mut not_failing_since: BTreeMap<Scope, Option<Ms>> = BTreeMap::new();
        play(&case, |now, _, e| {
            for (scope, &raw) in &e.raw {
                let entry = same_since.entry(scope.clone()).or_insert((raw, now));
                if entry.0 != raw {
                    *entry = (raw, now);
                }
                let nf = not_failing_since.entry(scope.clone()).or_insert(None);
                if raw == Verdict::Failing {
                    *nf = None;
                } else if nf.is_none() {
                    *nf = Some(now);
                }
            }
            for t in &e.transitions {
                let held = now - same_since[&t.scope].1;
                if t.from == Verdict::Failing {
                    let since = not_failing_since[&t.scope].expect("not failing now");
                    assert!(
                        now - since >= s.recover_for.as_millis() as Ms,
                        "{} cleared after {} ms < recover_for {:?}", t.scope, now - since, s.recover_for
                    );
                } else if t.from == Verdict::Slow && t.to != Verdict::Failing {
                    assert!(held >= s.recover_for.as_millis() as Ms, "{t:?} held {held} ms");
                } else {
                    assert!(
                        held >= s.hold_for.as_millis() as Ms,
                        "{} went {:?} -> {:?} after {} ms < for {:?}", t.scope, t.from, t.to, held, s.hold_for
                    );
                }
            }
        });
    }

    /// Adding a fresh passing probe never turns a passing verdict into a failing (or slow)
    /// one, in any scope.
    #[test]
    fn adding_a_passing_probe_never_makes_a_passing_verdict_fail(
        case in any_case(7, 6),
        region in 0u8..3,
    ) {
        let s = &case.settings;
        // The verdicts and runs as they stand after the whole case.
        let mut before = BTreeMap::new();
        let (now, runs) = play(&case, |_, _, e| before = e.raw.clone());
        let passing = [Run { started_ms: now, outcome: Outcome::Ok, total_ms: 10.0 }];
        let mut views = views(&case, &runs);
        let regions_before: BTreeSet<u8> = case.regions.iter().copied().collect();
        let mut regions_after = regions_before.clone();
        regions_after.insert(region);
        views.push(ProbeRuns {
            probe: "new",
            region: REGIONS[region as usize],
            runs: &passing,
            message: None,
            quarantined: false,
        });
        let after = evaluate(s, &CheckState::default(), &views, regions_after.len() as u32, now);
        for (scope, v) in &before {
            if *v == Verdict::Passing {
                prop_assert_eq!(after.raw[scope], Verdict::Passing, "{} with one more passing probe", scope);
            }
        }
    }
}

#[test]
fn the_properties_can_fail() {
    // The invariants above are not vacuous: the same generator makes failing verdicts from
    // two probes, and unknown ones, often enough.
    let mut runner = proptest::test_runner::TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    let mut failing = 0;
    let mut unknown = 0;
    let mut transitions = 0;
    let strategy = any_case(8, 20);
    for _ in 0..2000 {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        play(&case, |_, _, e| {
            failing += usize::from(e.raw.values().any(|v| *v == Verdict::Failing));
            unknown += usize::from(e.raw[&Scope::Global] == Verdict::Unknown);
            transitions += e.transitions.len();
        });
    }
    assert!(failing > 1000, "failing verdicts: {failing}");
    assert!(unknown > 1000, "unknown verdicts: {unknown}");
    assert!(transitions > 1000, "transitions: {transitions}");
}
