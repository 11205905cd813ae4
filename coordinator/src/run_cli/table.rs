//! `--format table`: the report as aligned text for a terminal. The diff comes first, since
//! it is what a before/after run is for; then one row per (check, probe) pair, the failure
//! messages, and a summary line last, where a terminal leaves the eye.
//!
//! Every value that came over the network (header values, messages) has its control
//! characters replaced by spaces: a row stays one line, and a hostile header cannot send
//! escape sequences to the terminal.

use std::fmt::Write as _;

use vantage_checks::result::Status;

use super::facts::{Facets, Fact};
use super::report::Report;

/// The columns after STATUS and FAILURE: a fact each. `CODE` is an HTTP status or a DNS
/// rcode, whichever the check's kind has.
const FACT_COLUMNS: [(&str, &[Fact]); 8] = [
    ("CODE", &[Fact::HttpStatus, Fact::Rcode]),
    ("CACHE", &[Fact::Cache]),
    ("AGE", &[Fact::Age]),
    ("CACHE-CONTROL", &[Fact::CacheControl]),
    ("ENCODING", &[Fact::ContentEncoding]),
    ("HTTP", &[Fact::HttpVersion]),
    ("TLS", &[Fact::TlsVersion]),
    ("SERVED-BY", &[Fact::ServedBy]),
];

/// `s` on one line, without control characters.
pub(super) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let w = &mut out;
    let run = &report.run;
    let mut title = format!("run {} of {}", run.id, one_line(&run.vendor));
    if let Some(s) = &run.suite {
        let _ = write!(title, ", suite {}", one_line(s));
    }
    if let Some(l) = &run.label {
        let _ = write!(title, ", \"{}\"", one_line(l));
    }
    let _ = writeln!(
        w,
        "{title}: {}; {} probe{} in {} region{}, {} of {} results",
        run.state.as_label(),
        run.probes.len(),
        if run.probes.len() == 1 { "" } else { "s" },
        run.regions.len(),
        if run.regions.len() == 1 { "" } else { "s" },
        run.results_in(),
        run.results.len(),
    );

    if let Some(b) = report.baseline {
        if report.diff.is_empty() {
            let _ = writeln!(w, "no changes since run {b}");
        } else {
            let _ = writeln!(w, "changes since run {b}:");
            let rows: Vec<[String; 4]> = report
                .diff
                .iter()
                .map(|d| {
                    [
                        d.class.as_label().to_owned(),
                        one_line(&d.check),
                        format!("{} ({})", one_line(&d.probe), one_line(&d.region)),
                        one_line(&d.describe()),
                    ]
                })
                .collect();
            for line in aligned(&rows, None) {
                let _ = writeln!(w, "  {line}");
            }
        }
    }
    let _ = writeln!(w);

    let mut head: Vec<String> = ["CHECK", "PROBE", "REGION", "STATUS", "FAILURE"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    head.extend(FACT_COLUMNS.iter().map(|(h, _)| (*h).to_owned()));
    head.push("TOTAL MS".to_owned());
    let mut rows = vec![head];
    let mut failures = Vec::new();
    for e in &run.results {
        let mut row = vec![one_line(&e.check), one_line(&e.probe), one_line(&e.region)];
        match &e.result {
            None => {
                row.push("missing".to_owned());
                row.resize(row.len() + 1 + FACT_COLUMNS.len() + 1, "-".to_owned());
            }
            Some(r) => {
                row.push(r.status.as_label().to_owned());
                row.push(r.failure.map_or("-", |k| k.as_label()).to_owned());
                let f = Facets::of(r);
                for (_, facts) in FACT_COLUMNS {
                    let v = facts.iter().find_map(|k| f.get(*k)).unwrap_or("-");
                    row.push(one_line(v));
                }
                row.push(format!("{:.1}", r.timings.total_ms));
                if r.status != Status::Ok {
                    let what = r.failure.map_or(r.status.as_label(), |k| k.as_label());
                    failures.push(format!(
                        "{} {} ({}): {what}: {}",
                        one_line(&e.check),
                        one_line(&e.probe),
                        one_line(&e.region),
                        one_line(r.message.as_deref().unwrap_or("(no message)"))
                    ));
                }
            }
        }
        rows.push(row);
    }
    let last = rows[0].len() - 1;
    for line in aligned(&rows, Some(last)) {
        let _ = writeln!(w, "{line}");
    }
    if !failures.is_empty() {
        let _ = writeln!(w, "failures:");
        for f in failures {
            let _ = writeln!(w, "  {f}");
        }
    }
    let missing = run.missing_text();
    if !missing.is_empty() {
        let _ = writeln!(w, "no result from: {}", one_line(&missing));
    }
    let _ = writeln!(w, "{}", report.summary_line());
    out
}

/// Rows as lines of columns two spaces apart, the column `right` aligned right, and no
/// trailing spaces.
fn aligned<R: AsRef<[String]>>(rows: &[R], right: Option<usize>) -> Vec<String> {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let width = |i: usize| {
        rows.iter()
            .filter_map(|r| r.as_ref().get(i))
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..columns).map(width).collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, cell) in r.as_ref().iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                if Some(i) == right {
                    let _ = write!(line, "{cell:>0$}", widths[i]);
                } else {
                    let _ = write!(line, "{cell:<0$}", widths[i]);
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{fail, ok, run};
    use super::super::view::RunState;
    use super::*;
    use vantage_checks::result::FailureKind;

    #[test]
    fn diff_first_then_rows_then_failures_and_the_summary_last() {
        let base = run(
            5,
            RunState::Done,
            vec![
                ("fastcdn-img", "p1", Some(ok("fastcdn-img", "p1", 100.0))),
                ("fastcdn-img", "p2", Some(ok("fastcdn-img", "p2", 100.0))),
            ],
        );
        let mut failed = fail("fastcdn-img", "p1", FailureKind::HttpStatus);
        failed.message = Some("expected 200,\ngot 503 \u{1b}[31m".into());
        let mut now = run(
            7,
            RunState::TimedOut,
            vec![
                ("fastcdn-img", "p1", Some(failed)),
                ("fastcdn-img", "p2", None),
            ],
        );
        now.label = Some("before purge-rule change".into());
        let text = render(&Report::new(now, Some(&base)));
        let want = "\
run 7 of fastcdn, suite cdn-static, \"before purge-rule change\": timed_out; 2 probes in 2 regions, 1 of 2 results
changes since run 5:
  regression  fastcdn-img  p1 (eu)  status ok -> fail (http_status)
  change      fastcdn-img  p1 (eu)  http_status 200 -> 503
  change      fastcdn-img  p1 (eu)  cache hit -> miss

CHECK        PROBE  REGION  STATUS   FAILURE      CODE  CACHE  AGE  CACHE-CONTROL  ENCODING  HTTP    TLS      SERVED-BY  TOTAL MS
fastcdn-img  p1     eu      fail     http_status  503   miss   -    -              br        HTTP/2  TLSv1_3  fastcdn        90.0
fastcdn-img  p2     us      missing  -            -     -      -    -              -         -       -        -                 -
failures:
  fastcdn-img p1 (eu): http_status: expected 200, got 503  [31m
no result from: p2 (us)
0 passed, 1 failed, 1 missing; 1 regressed, 0 changed since run 5 (1 not compared: no result)
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn without_a_baseline_there_is_no_diff_and_with_no_change_it_says_so() {
        let now = || {
            run(
                7,
                RunState::Done,
                vec![("img", "p1", Some(ok("img", "p1", 12.34)))],
            )
        };
        let text = render(&Report::new(now(), None));
        assert!(!text.contains("since run"), "{text}");
        assert!(text.ends_with("img    p1     eu      ok      -        200   hit    -    -              br        HTTP/2  TLSv1_3  fastcdn        12.3\n1 passed, 0 failed\n"), "{text}");
        let same = render(&Report::new(now(), Some(&now())));
        assert!(same.contains("\nno changes since run 7\n"), "{same}");
    }
}
