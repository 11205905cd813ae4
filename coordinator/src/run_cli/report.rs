//! The verdict on a finished (or abandoned) run: its counts, its diff against the baseline
//! and the exit code, in one value that every output format renders. Pure: built from the
//! runs alone, so each exit code is tested with hand-built runs.
//!
//! Exit codes, and which wins when several apply:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | every expected result came and passed, and nothing regressed against the baseline |
//! | 1 | some result failed (`fail` or `probe_error`) or regressed against the baseline |
//! | 2 | the request was invalid, so nothing was run: bad flags, no token, a token, CA or output file that cannot be used, the coordinator's 4xx to the run (unknown vendor, check, suite or region, no probe selected, a refused token), a baseline that does not exist |
//! | 3 | the run timed out: probes did not report, and every result that came passed |
//! | 4 | no verdict: the coordinator could not be reached, answered 5xx (or 408, 429) or something unreadable, or the report could not be written |
//!
//! 2 and 4 are decided before there is a verdict (or when none can be delivered), so they
//! never compete with the others. Between 1 and 3, **1 wins**: a failed result stays failed
//! whatever the missing ones would have said, so the run's verdict is already certain, and a
//! script that retries on 3 ("inconclusive") must not retry its way past a real failure. The
//! missing probes are printed on stderr all the same.

use serde::{Serialize, Serializer};
use vantage_checks::result::Status;

use super::diff::{self, Class, Difference};
use super::view::RunView;

/// The process's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: every result passed, nothing regressed.
    Passed,
    /// 1: some result failed or regressed.
    Failed,
    /// 2: the request was invalid; nothing was run.
    Invalid,
    /// 3: the run timed out with probes missing, and nothing that came failed.
    TimedOut,
    /// 4: no verdict: the coordinator could not be reached or answered an error.
    Unavailable,
}

impl Exit {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Self::Passed => 0,
            Self::Failed => 1,
            Self::Invalid => 2,
            Self::TimedOut => 3,
            Self::Unavailable => 4,
        }
    }
}

impl Serialize for Exit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

/// The counts of a run, and of its diff when there is a baseline.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Expected (check, probe) pairs.
    pub expected: usize,
    /// Results that passed.
    pub passed: usize,
    /// Results that failed (`status = "fail"`).
    pub failed: usize,
    /// Results whose probe could not test (`status = "probe_error"`).
    pub probe_errors: usize,
    /// Pairs without a result.
    pub missing: usize,
    /// Pairs with at least one regression against the baseline.
    pub regressed: usize,
    /// Pairs with changes but no regression against the baseline, added and removed ones
    /// included.
    pub changed: usize,
    /// Pairs in both runs not compared, a result missing on either side.
    pub uncompared: usize,
}

/// Everything the outputs say about a run. Its JSON is the `--format json` output.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// The run as the coordinator last showed it.
    pub run: RunView,
    /// The baseline run's id.
    pub baseline: Option<i64>,
    /// The differences from the baseline (empty without one).
    pub diff: Vec<Difference>,
    /// The counts.
    pub summary: Summary,
    /// The exit code.
    #[serde(rename = "exit_code")]
    pub exit: Exit,
}

impl Report {
    /// The report on `run`, compared with `baseline` when there is one.
    pub fn new(run: RunView, baseline: Option<&RunView>) -> Self {
        let (differences, uncompared) = match baseline {
            Some(b) => {
                let d = diff::diff(b, &run);
                (d.differences, d.uncompared)
            }
            None => (Vec::new(), 0),
        };
        let mut summary = Summary {
            expected: run.results.len(),
            uncompared,
            ..Summary::default()
        };
        for e in &run.results {
            match e.result.as_ref().map(|r| r.status) {
                Some(Status::Ok) => summary.passed += 1,
                Some(Status::Fail) => summary.failed += 1,
                Some(Status::ProbeError) => summary.probe_errors += 1,
                None => summary.missing += 1,
            }
        }
        let mut pairs: Vec<(&str, &str, Class)> = Vec::new();
        for d in &differences {
            match pairs
                .iter_mut()
                .find(|(c, p, _)| *c == d.check && *p == d.probe)
            {
                Some(pair) if d.class == Class::Regression => pair.2 = Class::Regression,
                Some(_) => {}
                None => pairs.push((&d.check, &d.probe, d.class)),
            }
        }
        summary.regressed = pairs
            .iter()
            .filter(|(.., c)| *c == Class::Regression)
            .count();
        summary.changed = pairs.len() - summary.regressed;
        let exit = verdict(&summary);
        Self {
            baseline: baseline.map(|b| b.id),
            run,
            diff: differences,
            summary,
            exit,
        }
    }

    /// The differences of one pair.
    pub fn differences_of<'a>(
        &'a self,
        check: &'a str,
        probe: &'a str,
    ) -> impl Iterator<Item = &'a Difference> + 'a {
        self.diff
            .iter()
            .filter(move |d| d.check == check && d.probe == probe)
    }

    /// `6 passed, 1 failed, 1 missing; 1 regressed, 2 changed since run 5`.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let mut line = format!("{} passed, {} failed", s.passed, s.failed);
        if s.probe_errors > 0 {
            line.push_str(&format!(
                ", {} probe error{}",
                s.probe_errors,
                if s.probe_errors == 1 { "" } else { "s" }
            ));
        }
        if s.missing > 0 {
            line.push_str(&format!(", {} missing", s.missing));
        }
        if let Some(b) = self.baseline {
            line.push_str(&format!(
                "; {} regressed, {} changed since run {b}",
                s.regressed, s.changed
            ));
            if s.uncompared > 0 {
                line.push_str(&format!(" ({} not compared: no result)", s.uncompared));
            }
        }
        line
    }
}

/// The exit code for a run's counts, by the precedence in the module's header.
pub fn verdict(s: &Summary) -> Exit {
    if s.failed + s.probe_errors + s.regressed > 0 {
        Exit::Failed
    } else if s.missing > 0 {
        Exit::TimedOut
    } else {
        Exit::Passed
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{fail, ok, run};
    use super::super::view::RunState;
    use super::*;
    use vantage_checks::result::{CheckResult, FailureKind};

    #[test]
    fn exit_codes_and_their_precedence() {
        let healthy = || ok("img", "p1", 100.0);
        // (name, this run's state and entries, the baseline's state, the exit code)
        type Entries = Vec<(&'static str, &'static str, Option<CheckResult>)>;
        let cases: Vec<(&str, RunState, Entries, Option<RunState>, Exit)> = vec![
            (
                "all passed",
                RunState::Done,
                vec![
                    ("img", "p1", Some(healthy())),
                    ("img", "p2", Some(ok("img", "p2", 90.0))),
                ],
                None,
                Exit::Passed,
            ),
            (
                "one failed",
                RunState::Done,
                vec![
                    ("img", "p1", Some(healthy())),
                    (
                        "img",
                        "p2",
                        Some(fail("img", "p2", FailureKind::HttpStatus)),
                    ),
                ],
                None,
                Exit::Failed,
            ),
            (
                "a probe error is not a pass",
                RunState::Done,
                vec![(
                    "img",
                    "p1",
                    Some({
                        let mut r = fail("img", "p1", FailureKind::ProbeInternal);
                        r.status = Status::ProbeError;
                        r
                    }),
                )],
                None,
                Exit::Failed,
            ),
            (
                "timed out with the rest passing",
                RunState::TimedOut,
                vec![("img", "p1", Some(healthy())), ("img", "p2", None)],
                None,
                Exit::TimedOut,
            ),
            (
                "still running when the client gave up counts as timed out",
                RunState::Running,
                vec![("img", "p1", Some(healthy())), ("img", "p2", None)],
                None,
                Exit::TimedOut,
            ),
            (
                "a failure wins over missing probes",
                RunState::TimedOut,
                vec![
                    ("img", "p1", Some(fail("img", "p1", FailureKind::Timeout))),
                    ("img", "p2", None),
                ],
                None,
                Exit::Failed,
            ),
            (
                "passing but regressed against the baseline",
                RunState::Done,
                vec![("img", "p1", Some(ok("img", "p1", 900.0)))],
                Some(RunState::Done),
                Exit::Failed,
            ),
            (
                "changed but not regressed against the baseline",
                RunState::Done,
                vec![
                    ("img", "p1", Some(ok("img", "p1", 10.0))),
                    ("new", "p1", Some(ok("new", "p1", 10.0))),
                ],
                Some(RunState::Done),
                Exit::Passed,
            ),
            (
                "a regression wins over missing probes",
                RunState::TimedOut,
                vec![
                    ("img", "p1", Some(ok("img", "p1", 900.0))),
                    ("img", "p2", None),
                ],
                Some(RunState::Done),
                Exit::Failed,
            ),
        ];
        for (name, state, entries, baseline, want) in cases {
            let base =
                baseline.map(|s| run(5, s, vec![("img", "p1", Some(ok("img", "p1", 300.0)))]));
            let report = Report::new(run(7, state, entries), base.as_ref());
            assert_eq!(report.exit, want, "{name}: {:?}", report.summary);
        }
        let codes: Vec<u8> = [
            Exit::Passed,
            Exit::Failed,
            Exit::Invalid,
            Exit::TimedOut,
            Exit::Unavailable,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn counts_pairs_not_differences() {
        let base = run(
            5,
            RunState::Done,
            vec![
                ("img", "p1", Some(ok("img", "p1", 100.0))),
                (
                    "img",
                    "p2",
                    Some(fail("img", "p2", FailureKind::HttpStatus)),
                ),
                ("js", "p1", Some(ok("js", "p1", 100.0))),
                ("old", "p1", Some(ok("old", "p1", 100.0))),
            ],
        );
        let now = run(
            7,
            RunState::TimedOut,
            vec![
                // Regressed: the status and two facts, still one pair.
                (
                    "img",
                    "p1",
                    Some(fail("img", "p1", FailureKind::HttpStatus)),
                ),
                // Changed: fixed.
                ("img", "p2", Some(ok("img", "p2", 100.0))),
                ("js", "p1", None),
            ],
        );
        let report = Report::new(now, Some(&base));
        assert_eq!(
            report.summary,
            Summary {
                expected: 3,
                passed: 1,
                failed: 1,
                probe_errors: 0,
                missing: 1,
                regressed: 1,
                changed: 2,
                uncompared: 1,
            }
        );
        assert_eq!(
            report.summary_line(),
            "1 passed, 1 failed, 1 missing; 1 regressed, 2 changed since run 5 (1 not compared: no result)"
        );
        assert_eq!(report.differences_of("img", "p1").count(), 3);
        let alone = Report::new(
            run(
                8,
                RunState::Done,
                vec![("img", "p1", Some(ok("img", "p1", 1.0)))],
            ),
            None,
        );
        assert_eq!(alone.summary_line(), "1 passed, 0 failed");
    }
}
