//! The before/after diff of two runs: what changed for each (check, probe) pair between a
//! baseline run and this one, each difference classed as a regression or a change.
//!
//! The rule, as the README gives it:
//!
//! - Pairs are matched by check id and probe id. A pair only in this run is **added**, one
//!   only in the baseline is **removed**; both are changes. A pair in both runs whose
//!   result is missing on either side is not compared (counted as such in the summary).
//! - **Status.** `ok` to `fail` or `probe_error` is a regression; back to `ok` is a change.
//!   Between two failing results (`fail` or `probe_error`), another failure kind is a
//!   regression, and the same kind under another status is a change.
//! - **Facts** (HTTP status, DNS rcode and answers, cache status, `Age`, `Cache-Control`,
//!   `Content-Encoding`, HTTP version, TLS version, served-by, and each extra request's
//!   status and cache status) are compared only when both results got an answer (an HTTP
//!   status, a DNS rcode or a TLS handshake): a result that failed before any answer has
//!   nothing to compare, and its status change already says so. A fact that differs is a
//!   change, never a regression by itself: when it breaks an assertion, the status or the
//!   failure kind says that. `Age` counts down to the moment of the request, so it is a
//!   change only when it appears or disappears (the edge starts or stops caching), not
//!   when its value moves.
//! - **Latency** is compared only when both results passed (a failure's time measures how
//!   fast it failed). With one sample a side, a difference is noise unless it is large
//!   both relatively and absolutely: **slower** when the new total is at least
//!   [`SLOWER_FACTOR`] times the old one *and* at least [`NOISE_MS`] more, a regression;
//!   **faster** by the same rule the other way round, a change.

use std::collections::HashSet;

use serde::{Serialize, Serializer};
use vantage_checks::result::{CheckResult, Facts, Status};

use super::facts::{Facets, Fact};
use super::view::RunView;

/// How many times slower a total must be to be more than noise.
pub const SLOWER_FACTOR: f64 = 2.0;
/// How many milliseconds slower (or faster) a total must be to be more than noise.
pub const NOISE_MS: f64 = 200.0;

/// What a difference means for the verdict.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Worse than the baseline: fails the run (exit code 1).
    Regression,
    /// Different from the baseline, reported only.
    Change,
}

impl Class {
    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Regression => "regression",
            Self::Change => "change",
        }
    }
}

/// What differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aspect {
    /// The pair is only in this run.
    Added,
    /// The pair is only in the baseline.
    Removed,
    /// The result's status.
    Status,
    /// The failure kind of a result failing in both runs.
    Failure,
    /// The run's total time, beyond noise.
    Latency,
    /// One extra request's (warm-up, cache key, error page) HTTP status or cache status.
    ExtraRequest,
    /// A fact of the answer.
    Fact(Fact),
}

impl Aspect {
    /// The stable snake_case label, as in the JSON output.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Status => "status",
            Self::Failure => "failure",
            Self::Latency => "latency",
            Self::ExtraRequest => "extra_request",
            Self::Fact(f) => f.as_label(),
        }
    }
}

impl Serialize for Aspect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_label())
    }
}

/// One difference of one (check, probe) pair.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Difference {
    /// The check's id.
    pub check: String,
    /// The probe's id.
    pub probe: String,
    /// The probe's region.
    pub region: String,
    /// Regression or change.
    pub class: Class,
    /// What differs.
    pub aspect: Aspect,
    /// The baseline's value, as text; absent when it had none.
    pub before: Option<String>,
    /// This run's value, as text; absent when it has none.
    pub after: Option<String>,
}

impl Difference {
    /// What changed, for a person: `status ok -> fail (http_status)`.
    pub fn describe(&self) -> String {
        let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        match self.aspect {
            Aspect::Added => "added: not in the baseline".to_owned(),
            Aspect::Removed => "removed: in the baseline, not in this run".to_owned(),
            Aspect::Latency => format!(
                "{} {} -> {}",
                match self.class {
                    Class::Regression => "slower",
                    Class::Change => "faster",
                },
                value(&self.before),
                value(&self.after)
            ),
            aspect => format!(
                "{} {} -> {}",
                aspect.as_label(),
                value(&self.before),
                value(&self.after)
            ),
        }
    }
}

/// The differences between a baseline run and this one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Every difference, in this run's order of pairs, then the removed pairs.
    pub differences: Vec<Difference>,
    /// Pairs in both runs that were not compared: a result is missing on either side.
    pub uncompared: usize,
}

/// Compares run `after` with the `before` baseline.
pub fn diff(before: &RunView, after: &RunView) -> Diff {
    let mut out = Diff::default();
    let key = |check: &str, probe: &str| (check.to_owned(), probe.to_owned());
    let mut seen = HashSet::new();
    for e in &after.results {
        seen.insert(key(&e.check, &e.probe));
        let at = |class: Class, aspect: Aspect, before: Option<String>, after: Option<String>| {
            Difference {
                check: e.check.clone(),
                probe: e.probe.clone(),
                region: e.region.clone(),
                class,
                aspect,
                before,
                after,
            }
        };
        let Some(b) = before
            .results
            .iter()
            .find(|b| b.check == e.check && b.probe == e.probe)
        else {
            out.differences
                .push(at(Class::Change, Aspect::Added, None, None));
            continue;
        };
        match (&b.result, &e.result) {
            (Some(old), Some(new)) => {
                for (class, aspect, was, is) in compare(old, new) {
                    out.differences.push(at(class, aspect, was, is));
                }
            }
            _ => out.uncompared += 1,
        }
    }
    for b in &before.results {
        if !seen.contains(&key(&b.check, &b.probe)) {
            out.differences.push(Difference {
                check: b.check.clone(),
                probe: b.probe.clone(),
                region: b.region.clone(),
                class: Class::Change,
                aspect: Aspect::Removed,
                before: None,
                after: None,
            });
        }
    }
    out
}

type Found = (Class, Aspect, Option<String>, Option<String>);

/// The differences between two results of one pair, by the module's rule.
fn compare(old: &CheckResult, new: &CheckResult) -> Vec<Found> {
    let mut found = Vec::new();
    status(old, new, &mut found);
    facts(old, new, &mut found);
    if old.status == Status::Ok && new.status == Status::Ok {
        let (was, is) = (old.timings.total_ms, new.timings.total_ms);
        if let Some(class) = latency(was, is) {
            found.push((class, Aspect::Latency, Some(ms(was)), Some(ms(is))));
        }
    }
    found
}

fn status_text(r: &CheckResult) -> String {
    match r.failure {
        Some(kind) if r.status != Status::Ok => {
            format!("{} ({})", r.status.as_label(), kind.as_label())
        }
        _ => r.status.as_label().to_owned(),
    }
}

fn status(old: &CheckResult, new: &CheckResult, found: &mut Vec<Found>) {
    let (was, is) = (Some(status_text(old)), Some(status_text(new)));
    match (old.status == Status::Ok, new.status == Status::Ok) {
        (true, true) => {}
        (true, false) => found.push((Class::Regression, Aspect::Status, was, is)),
        (false, true) => found.push((Class::Change, Aspect::Status, was, is)),
        (false, false) if old.failure != new.failure => {
            let kind = |r: &CheckResult| r.failure.map(|k| k.as_label().to_owned());
            found.push((Class::Regression, Aspect::Failure, kind(old), kind(new)));
        }
        (false, false) if old.status != new.status => {
            found.push((Class::Change, Aspect::Status, was, is));
        }
        (false, false) => {}
    }
}

fn facts(old: &CheckResult, new: &CheckResult, found: &mut Vec<Found>) {
    let same_kind = std::mem::discriminant(&old.facts) == std::mem::discriminant(&new.facts);
    if !same_kind || matches!(new.facts, Facts::None) {
        return;
    }
    let (was, is) = (Facets::of(old), Facets::of(new));
    let answered = |f: &Facets| {
        [Fact::HttpStatus, Fact::Rcode, Fact::TlsVersion]
            .iter()
            .any(|k| f.get(*k).is_some())
    };
    if !answered(&was) || !answered(&is) {
        return;
    }
    for fact in Fact::ALL {
        let (a, b) = (was.get(fact), is.get(fact));
        let differs = match fact {
            Fact::Age => a.is_some() != b.is_some(),
            _ => a != b,
        };
        if differs {
            found.push((
                Class::Change,
                Aspect::Fact(fact),
                a.map(str::to_owned),
                b.map(str::to_owned),
            ));
        }
    }
    // Extra requests by purpose, the first of each: the same purposes are made in the same
    // order by the same check, so a purpose on one side only is a change too.
    let first = |f: &Facets, purpose: &str| {
        f.extra
            .iter()
            .find(|(p, _)| *p == purpose)
            .map(|(p, v)| format!("{p}: {v}"))
    };
    let mut purposes: Vec<&str> = was.extra.iter().map(|(p, _)| *p).collect();
    purposes.extend(is.extra.iter().map(|(p, _)| *p));
    let mut done = HashSet::new();
    for p in purposes {
        if done.insert(p) {
            let (a, b) = (first(&was, p), first(&is, p));
            if a != b {
                found.push((Class::Change, Aspect::ExtraRequest, a, b));
            }
        }
    }
}

/// The latency rule: `Some(Regression)` when `after_ms` is slower than `before_ms` beyond
/// noise, `Some(Change)` when faster beyond noise, `None` within noise.
pub fn latency(before_ms: f64, after_ms: f64) -> Option<Class> {
    let beyond = |slow: f64, fast: f64| slow >= SLOWER_FACTOR * fast && slow - fast >= NOISE_MS;
    if beyond(after_ms, before_ms) {
        Some(Class::Regression)
    } else if beyond(before_ms, after_ms) {
        Some(Class::Change)
    } else {
        None
    }
}

fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{dns, fail, ok, result, run};
    use super::super::view::RunState;
    use super::*;
    use vantage_checks::result::{CacheStatus, ExtraRequest, Facts, FailureKind, RequestPurpose};

    fn one(before: CheckResult, after: CheckResult) -> Vec<(Class, &'static str, String)> {
        let b = run(5, RunState::Done, vec![("img", "p1", Some(before))]);
        let a = run(7, RunState::Done, vec![("img", "p1", Some(after))]);
        let d = diff(&b, &a);
        assert_eq!(d.uncompared, 0);
        d.differences
            .iter()
            .map(|x| (x.class, x.aspect.as_label(), x.describe()))
            .collect()
    }

    fn with_http(
        mut r: CheckResult,
        edit: impl FnOnce(&mut vantage_checks::result::HttpFacts),
    ) -> CheckResult {
        if let Facts::Http(h) = &mut r.facts {
            edit(h);
        }
        r
    }

    #[test]
    fn the_same_result_twice_differs_in_nothing() {
        assert_eq!(one(ok("img", "p1", 100.0), ok("img", "p1", 100.0)), vec![]);
    }

    #[test]
    fn status_rules() {
        use Class::{Change, Regression};
        let probe_error = |kind| {
            let mut r = fail("img", "p1", kind);
            r.status = Status::ProbeError;
            r
        };
        // (name, before, after, what the diff says)
        type Case = (&'static str, CheckResult, CheckResult, Vec<Said>);
        type Said = (Class, &'static str, &'static str);
        let cases: Vec<Case> = vec![
            (
                "ok to fail is a regression",
                ok("img", "p1", 100.0),
                fail("img", "p1", FailureKind::HttpStatus),
                vec![
                    (Regression, "status", "status ok -> fail (http_status)"),
                    (Change, "http_status", "http_status 200 -> 503"),
                    (Change, "cache", "cache hit -> miss"),
                ],
            ),
            (
                "ok to probe_error is a regression",
                ok("img", "p1", 100.0),
                probe_error(FailureKind::ProbeInternal),
                vec![
                    (
                        Regression,
                        "status",
                        "status ok -> probe_error (probe_internal)",
                    ),
                    (Change, "http_status", "http_status 200 -> 503"),
                    (Change, "cache", "cache hit -> miss"),
                ],
            ),
            (
                "fail to ok is a change",
                fail("img", "p1", FailureKind::HttpStatus),
                ok("img", "p1", 100.0),
                vec![
                    (Change, "status", "status fail (http_status) -> ok"),
                    (Change, "http_status", "http_status 503 -> 200"),
                    (Change, "cache", "cache miss -> hit"),
                ],
            ),
            (
                "another failure kind while failing is a regression",
                fail("img", "p1", FailureKind::HttpStatus),
                fail("img", "p1", FailureKind::CacheStatusMismatch),
                vec![(
                    Regression,
                    "failure",
                    "failure http_status -> cache_status_mismatch",
                )],
            ),
            (
                "the same failure twice differs in nothing",
                fail("img", "p1", FailureKind::HttpStatus),
                fail("img", "p1", FailureKind::HttpStatus),
                vec![],
            ),
            (
                "the same kind under another failing status is a change",
                fail("img", "p1", FailureKind::Timeout),
                probe_error(FailureKind::Timeout),
                vec![(
                    Change,
                    "status",
                    "status fail (timeout) -> probe_error (timeout)",
                )],
            ),
        ];
        for (name, before, after, want) in cases {
            let got = one(before, after);
            let want: Vec<(Class, &str, String)> = want
                .into_iter()
                .map(|(c, a, t)| (c, a, t.to_owned()))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn facts_changes_are_changes_and_age_counts_only_when_it_appears_or_goes() {
        let before = with_http(ok("img", "p1", 100.0), |h| {
            h.age = Some(10);
            h.cache_control = Some("max-age=600".into());
        });
        // Age moved: not a difference.
        let aged = with_http(before.clone(), |h| h.age = Some(500));
        assert_eq!(one(before.clone(), aged), vec![]);
        // Every compared HTTP fact changes.
        let after = with_http(ok("img", "p1", 100.0), |h| {
            h.age = None;
            h.cache = CacheStatus::Miss;
            h.cache_control = Some("no-store".into());
            h.content_encoding = None;
            h.http_version = Some("HTTP/1.1".into());
            h.tls.as_mut().expect("tls").protocol = Some("TLSv1_2".into());
            h.served_by = Some("othercdn".into());
        });
        let got = one(before, after);
        assert!(got.iter().all(|(c, ..)| *c == Class::Change), "{got:?}");
        let said: Vec<&str> = got.iter().map(|(_, _, t)| t.as_str()).collect();
        assert_eq!(
            said,
            vec![
                "cache hit -> miss",
                "age 10 -> -",
                "cache_control max-age=600 -> no-store",
                "content_encoding br -> -",
                "http_version HTTP/2 -> HTTP/1.1",
                "tls_version TLSv1_3 -> TLSv1_2",
                "served_by fastcdn -> othercdn",
            ]
        );
    }

    #[test]
    fn facts_are_not_compared_when_either_side_got_no_answer() {
        let refused = with_http(fail("img", "p1", FailureKind::ConnectRefused), |h| {
            h.status = None;
            h.http_version = None;
            h.tls = None;
            h.cache = CacheStatus::Unknown;
        });
        assert_eq!(
            one(ok("img", "p1", 100.0), refused),
            vec![(
                Class::Regression,
                "status",
                "status ok -> fail (connect_refused)".to_owned()
            )]
        );
    }

    #[test]
    fn dns_rcode_and_answers_and_extra_requests_are_compared() {
        let d = |rcode, answers: &[&str]| {
            result("ns", "p1", Status::Ok, None, 5.0, dns(rcode, answers))
        };
        assert_eq!(
            one(d("NOERROR", &["192.0.2.1"]), d("NOERROR", &["192.0.2.9"])),
            vec![(
                Class::Change,
                "answers",
                "answers 192.0.2.1 -> 192.0.2.9".to_owned()
            )]
        );
        assert_eq!(
            one(d("NOERROR", &["192.0.2.1"]), d("NXDOMAIN", &["192.0.2.1"])),
            vec![(
                Class::Change,
                "rcode",
                "rcode NOERROR -> NXDOMAIN".to_owned()
            )]
        );
        let extra = |cache| ExtraRequest {
            purpose: RequestPurpose::CacheKey,
            url: "https://img.fastcdn.example/a.png?x=1".into(),
            status: Some(200),
            cache,
            age: None,
            cache_control: None,
            failure: None,
            total_ms: 3.0,
        };
        let hit = with_http(ok("img", "p1", 100.0), |h| {
            h.extra_requests = vec![extra(CacheStatus::Hit)];
        });
        let miss = with_http(ok("img", "p1", 100.0), |h| {
            h.extra_requests = vec![extra(CacheStatus::Miss)];
        });
        assert_eq!(
            one(hit, miss),
            vec![(
                Class::Change,
                "extra_request",
                "extra_request cache_key: 200 hit -> cache_key: 200 miss".to_owned()
            )]
        );
        // A check whose kind changed between the runs has no facts in common.
        let h = ok("ns", "p1", 5.0);
        assert_eq!(one(d("NOERROR", &["192.0.2.1"]), h), vec![]);
    }

    #[test]
    fn the_latency_noise_rule_both_ways() {
        use Class::{Change, Regression};
        let cases = [
            // (before, after, class)
            (100.0, 300.0, Some(Regression)), // 3x and +200 ms: the edge of both bounds
            (100.0, 299.0, None),             // 2.99x, but only +199 ms
            (50.0, 240.0, None),              // 4.8x, but only +190 ms
            (1000.0, 1900.0, None),           // +900 ms, but only 1.9x
            (1000.0, 2000.0, Some(Regression)),
            (300.0, 100.0, Some(Change)), // faster by the same rule
            (2000.0, 1001.0, None),       // 1.998x faster: noise
            (0.0, 200.0, Some(Regression)),
            (0.0, 199.0, None),
        ];
        for (before, after, want) in cases {
            assert_eq!(latency(before, after), want, "{before} -> {after}");
        }
        // Through the diff, with the totals shown.
        assert_eq!(
            one(ok("img", "p1", 100.0), ok("img", "p1", 400.0)),
            vec![(Regression, "latency", "slower 100 ms -> 400 ms".to_owned())]
        );
        assert_eq!(
            one(ok("img", "p1", 400.0), ok("img", "p1", 100.0)),
            vec![(Change, "latency", "faster 400 ms -> 100 ms".to_owned())]
        );
        // Not compared when either side failed.
        let mut slow_fail = fail("img", "p1", FailureKind::Timeout);
        slow_fail.timings.total_ms = 5000.0;
        let got = one(fail("img", "p1", FailureKind::Timeout), slow_fail);
        assert_eq!(got, vec![]);
    }

    #[test]
    fn pairs_in_one_run_only_are_added_or_removed_and_missing_results_are_not_compared() {
        let before = run(
            5,
            RunState::TimedOut,
            vec![
                ("img", "p1", Some(ok("img", "p1", 100.0))),
                ("img", "p2", None),
                ("old", "p1", Some(ok("old", "p1", 100.0))),
            ],
        );
        let after = run(
            7,
            RunState::Done,
            vec![
                ("img", "p1", Some(ok("img", "p1", 100.0))),
                ("img", "p2", Some(ok("img", "p2", 100.0))),
                ("new", "p1", Some(ok("new", "p1", 100.0))),
            ],
        );
        let d = diff(&before, &after);
        assert_eq!(d.uncompared, 1);
        let got: Vec<(&str, &str, &str, Class)> = d
            .differences
            .iter()
            .map(|x| {
                (
                    x.check.as_str(),
                    x.probe.as_str(),
                    x.aspect.as_label(),
                    x.class,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("new", "p1", "added", Class::Change),
                ("old", "p1", "removed", Class::Change),
            ]
        );
    }
}
