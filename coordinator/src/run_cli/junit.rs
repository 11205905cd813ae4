//! `--format junit`: the report as JUnit XML, which CI systems (GitLab, Jenkins, GitHub
//! actions' reporters) show as tests.
//!
//! One `<testsuite>` for the run, one `<testcase>` per (check, probe) pair: `classname` is
//! the check, `name` the probe and its region. A result that failed carries a `<failure>`,
//! one whose probe could not test (`probe_error`) or that never came an `<error>`, as JUnit
//! means them (the test failed, the test could not run). A regression against the baseline
//! is a `<failure>` too, even when the result passed. A case has at most one of either, so
//! `failures` and `errors` count cases, as parsers expect.
//!
//! Written by hand rather than with an XML crate: the document is three elements deep and
//! every value goes through [`escape`]. That function also replaces the characters XML 1.0
//! cannot carry at all (most C0 controls), which a writer's escaping leaves in and which a
//! probe's message or a header value may hold; a parser would refuse the whole file.

use std::fmt::Write as _;

use time::macros::format_description;
use vantage_checks::result::{CheckResult, Status};

use super::diff::{Class, Difference};
use super::facts::{Facets, Fact};
use super::report::Report;
use super::view::RunEntry;

/// `s` escaped for an attribute value (`attr`) or for text. In attributes, tabs and line
/// ends are written as character references, since a parser would turn them into spaces.
pub(super) fn escape(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            // Not allowed anywhere in XML 1.0, not even as a reference.
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn attr(s: &str) -> String {
    escape(s, true)
}

/// The suite's name: vendor, suite or label, and the run.
fn suite_name(report: &Report) -> String {
    let run = &report.run;
    let mut name = run.vendor.clone();
    if let Some(s) = &run.suite {
        name.push(' ');
        name.push_str(s);
    }
    if let Some(l) = &run.label {
        let _ = write!(name, " ({l})");
    }
    let _ = write!(name, " run {}", run.id);
    name
}

fn seconds(ms: f64) -> String {
    format!("{:.3}", ms / 1000.0)
}

/// The facts of a result, a line each, for a failure's body.
fn facts_text(r: &CheckResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "status: {}", r.status.as_label());
    if let Some(k) = r.failure {
        let _ = writeln!(out, "failure: {}", k.as_label());
    }
    if let Some(m) = &r.message {
        let _ = writeln!(out, "message: {m}");
    }
    let f = Facets::of(r);
    for fact in Fact::ALL {
        if let Some(v) = f.get(fact) {
            let _ = writeln!(out, "{}: {v}", fact.as_label());
        }
    }
    for (purpose, v) in &f.extra {
        let _ = writeln!(out, "extra request {purpose}: {v}");
    }
    let _ = writeln!(out, "total_ms: {:.1}", r.timings.total_ms);
    out
}

/// What a case carries: `(element, message, body)`.
fn verdict(
    report: &Report,
    e: &RunEntry,
    regressions: &[&Difference],
) -> Option<(&'static str, String, String)> {
    let since = |ds: &[&Difference]| {
        let b = report.baseline.unwrap_or_default();
        let said: Vec<String> = ds.iter().map(|d| d.describe()).collect();
        format!("regressed since run {b}: {}", said.join("; "))
    };
    let Some(r) = &e.result else {
        return Some((
            "error",
            format!("no result: probe {} ({}) did not report", e.probe, e.region),
            String::new(),
        ));
    };
    let element = match r.status {
        Status::Ok if regressions.is_empty() => return None,
        Status::Ok | Status::Fail => "failure",
        Status::ProbeError => "error",
    };
    let mut message = match (r.status, r.failure) {
        (Status::Ok, _) => since(regressions),
        (status, kind) => format!(
            "{}: {}",
            kind.map_or(status.as_label(), |k| k.as_label()),
            r.message.as_deref().unwrap_or("(no message)")
        ),
    };
    if r.status != Status::Ok && !regressions.is_empty() {
        let _ = write!(message, " ({})", since(regressions));
    }
    Some((element, message, facts_text(r)))
}

/// The report as a JUnit XML document.
pub fn render(report: &Report) -> String {
    let run = &report.run;
    let mut cases = String::new();
    let (mut failures, mut errors, mut total_ms) = (0, 0, 0.0);
    for e in &run.results {
        let regressions: Vec<&Difference> = report
            .differences_of(&e.check, &e.probe)
            .filter(|d| d.class == Class::Regression)
            .collect();
        let ms = e.result.as_ref().map_or(0.0, |r| r.timings.total_ms);
        total_ms += ms;
        let _ = write!(
            cases,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            attr(&e.check),
            attr(&format!("{} ({})", e.probe, e.region)),
            seconds(ms)
        );
        match verdict(report, e, &regressions) {
            None => cases.push_str("/>\n"),
            Some((element, message, body)) => {
                if element == "failure" {
                    failures += 1;
                } else {
                    errors += 1;
                }
                let kind = match &e.result {
                    None => "missing".to_owned(),
                    Some(r) => r
                        .failure
                        .map_or_else(|| "regression".to_owned(), |k| k.as_label().to_owned()),
                };
                let _ = write!(
                    cases,
                    ">\n    <{element} message=\"{}\" type=\"{}\"",
                    attr(&message),
                    attr(&kind)
                );
                if body.is_empty() {
                    cases.push_str("/>\n");
                } else {
                    let _ = writeln!(cases, ">{}</{element}>", escape(&body, false));
                }
                cases.push_str("  </testcase>\n");
            }
        }
    }

    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let timestamp = run
        .created
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{}\" timestamp=\"{}\">",
        attr(&suite_name(report)),
        run.results.len(),
        seconds(total_ms),
        attr(&timestamp)
    );
    out.push_str("  <properties>\n");
    let mut property = |name: &str, value: &str| {
        let _ = writeln!(
            out,
            "    <property name=\"{}\" value=\"{}\"/>",
            attr(name),
            attr(value)
        );
    };
    property("vendor", &run.vendor);
    property("run", &run.id.to_string());
    property("state", run.state.as_label());
    if let Some(s) = &run.suite {
        property("suite", s);
    }
    if let Some(l) = &run.label {
        property("label", l);
    }
    if let Some(b) = report.baseline {
        property("baseline", &b.to_string());
    }
    property("exit_code", &report.exit.code().to_string());
    out.push_str("  </properties>\n");
    out.push_str(&cases);
    // The whole diff and the summary, for a person reading the raw report; a removed pair
    // has no case of its own.
    let mut text = String::new();
    for d in &report.diff {
        let _ = writeln!(
            text,
            "{} {} {} ({}): {}",
            d.class.as_label(),
            d.check,
            d.probe,
            d.region,
            d.describe()
        );
    }
    let missing = run.missing_text();
    if !missing.is_empty() {
        let _ = writeln!(text, "no result from: {missing}");
    }
    let _ = writeln!(text, "{}", report.summary_line());
    let _ = writeln!(out, "  <system-out>{}</system-out>", escape(&text, false));
    out.push_str("</testsuite>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{fail, ok, run};
    use super::super::view::RunState;
    use super::*;
    use vantage_checks::result::FailureKind;

    /// The cases of a parsed report: (classname, name, time, element, message).
    type Case = (String, String, String, Option<(String, String)>);

    fn parse(xml: &str) -> (Vec<(String, String)>, Vec<Case>) {
        let doc = roxmltree::Document::parse(xml).expect("a well-formed JUnit document");
        let suite = doc.root_element();
        assert_eq!(suite.tag_name().name(), "testsuite");
        let attrs = [
            "name",
            "tests",
            "failures",
            "errors",
            "skipped",
            "timestamp",
        ]
        .iter()
        .map(|a| ((*a).to_owned(), suite.attribute(*a).expect(a).to_owned()))
        .collect();
        let cases = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .map(|c| {
                let outcome = c.children().find(|n| n.is_element()).map(|n| {
                    (
                        n.tag_name().name().to_owned(),
                        n.attribute("message").expect("a message").to_owned(),
                    )
                });
                (
                    c.attribute("classname").expect("classname").to_owned(),
                    c.attribute("name").expect("name").to_owned(),
                    c.attribute("time").expect("time").to_owned(),
                    outcome,
                )
            })
            .collect();
        (attrs, cases)
    }

    #[test]
    fn parses_and_counts_failures_errors_and_regressions() {
        let base = run(
            5,
            RunState::Done,
            vec![
                ("img", "p1", Some(ok("img", "p1", 100.0))),
                ("img", "p2", Some(ok("img", "p2", 100.0))),
                ("js", "p1", Some(ok("js", "p1", 100.0))),
            ],
        );
        let mut probe_error = fail("js", "p2", FailureKind::ProbeInternal);
        probe_error.status = Status::ProbeError;
        let mut now = run(
            7,
            RunState::TimedOut,
            vec![
                ("img", "p1", Some(ok("img", "p1", 120.0))),
                ("img", "p2", Some(ok("img", "p2", 1500.0))),
                ("img", "p3", None),
                ("js", "p1", Some(fail("js", "p1", FailureKind::HttpStatus))),
                ("js", "p2", Some(probe_error)),
            ],
        );
        now.label = Some("before purge-rule change".into());
        let report = Report::new(now, Some(&base));
        let (suite, cases) = parse(&render(&report));
        let get = |k: &str| suite.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("name"),
            Some("fastcdn cdn-static (before purge-rule change) run 7")
        );
        assert_eq!(get("tests"), Some("5"));
        assert_eq!(get("failures"), Some("2"), "a failure and a regression");
        assert_eq!(
            get("errors"),
            Some("2"),
            "a probe error and a missing result"
        );
        assert_eq!(get("timestamp"), Some("2026-12-06T09:00:00"));
        let outcome = |i: usize| cases[i].3.clone().map(|(e, m)| format!("{e}: {m}"));
        assert_eq!(
            (
                cases[0].0.as_str(),
                cases[0].1.as_str(),
                cases[0].2.as_str()
            ),
            ("img", "p1 (eu)", "0.120")
        );
        assert_eq!(outcome(0), None);
        assert_eq!(
            outcome(1).as_deref(),
            Some("failure: regressed since run 5: slower 100 ms -> 1500 ms")
        );
        assert_eq!(
            outcome(2).as_deref(),
            Some("error: no result: probe p3 (ap) did not report")
        );
        assert_eq!(cases[2].2, "0.000");
        assert_eq!(
            outcome(3).as_deref(),
            Some(
                "failure: http_status: http_status went wrong (regressed since run 5: status ok -> fail (http_status))"
            )
        );
        assert_eq!(
            outcome(4).as_deref(),
            Some("error: probe_internal: probe_internal went wrong")
        );
    }

    #[test]
    fn escapes_what_xml_needs_and_replaces_what_it_cannot_carry() {
        let nasty = "a<b & \"c\" 'd' ]]> e\u{1}\u{1b}[31m\tf\ng\r";
        let mut r = fail("img<&\"'>", "p1", FailureKind::BodyMismatch);
        r.message = Some(nasty.into());
        let mut now = run(7, RunState::Done, vec![("img<&\"'>", "p1", Some(r))]);
        now.label = Some("it's <b>&\"".into());
        let xml = render(&Report::new(now, None));
        let doc = roxmltree::Document::parse(&xml).expect("well-formed");
        let suite = doc.root_element();
        assert_eq!(
            suite.attribute("name"),
            Some("fastcdn cdn-static (it's <b>&\") run 7")
        );
        let case = suite
            .children()
            .find(|n| n.has_tag_name("testcase"))
            .expect("a case");
        assert_eq!(case.attribute("classname"), Some("img<&\"'>"));
        let failure = case
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("a failure");
        // Tabs and line ends survive in the attribute; the controls XML cannot carry become
        // U+FFFD.
        assert_eq!(
            failure.attribute("message"),
            Some("body_mismatch: a<b & \"c\" 'd' ]]> e\u{fffd}\u{fffd}[31m\tf\ng\r")
        );
        let body = failure.text().expect("the facts");
        assert!(
            body.contains("message: a<b & \"c\" 'd' ]]> e\u{fffd}\u{fffd}[31m\tf\ng\r\n"),
            "{body}"
        );
        assert!(body.contains("http_status: 503\n"), "{body}");
        assert_eq!(escape("<&>\"'", false), "&lt;&amp;&gt;&quot;&apos;");
    }

    #[test]
    fn a_run_that_all_passed_has_no_failure_or_error() {
        let now = run(
            7,
            RunState::Done,
            vec![("img", "p1", Some(ok("img", "p1", 5.0)))],
        );
        let (suite, cases) = parse(&render(&Report::new(now, None)));
        assert!(suite.contains(&("failures".to_owned(), "0".to_owned())));
        assert!(suite.contains(&("errors".to_owned(), "0".to_owned())));
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].3, None);
    }
}
