//! The SLA report as a table for people and as CSV for spreadsheets; JSON is the report's
//! own serialization (the same as the API's).

use std::fmt::Write as _;

use super::sla::{ContractResult, ObjectiveStatus, ScopeReport, SlaReport, Sli};
use crate::consensus::vendor::VendorState;

/// How many of the least available checks the table lists.
const WORST_CHECKS: usize = 10;

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.4}%", v * 100.0))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

fn verdict(c: &ContractResult) -> String {
    if c.objectives.is_empty() {
        return "no objectives".to_owned();
    }
    if c.breach {
        return format!("BREACH ({})", c.broken.join(", "));
    }
    let of = |s: ObjectiveStatus| -> Vec<&str> {
        c.objectives
            .iter()
            .filter(|o| o.status == s)
            .map(|o| o.objective.as_str())
            .collect()
    };
    let (unsure, none) = (
        of(ObjectiveStatus::Inconclusive),
        of(ObjectiveStatus::NoData),
    );
    if !unsure.is_empty() {
        format!("inconclusive ({})", unsure.join(", "))
    } else if !none.is_empty() {
        format!("no data ({})", none.join(", "))
    } else {
        "met".to_owned()
    }
}

fn sli_cells(s: &Sli) -> String {
    let (p50, p95, p99) = match s.latency_ms {
        Some(p) => (Some(p.p50), Some(p.p95), Some(p.p99)),
        None => (None, None, None),
    };
    format!(
        "{:>12} {:>12} {:>13} {:>9} {:>9} {:>9}",
        s.runs,
        s.valid,
        pct(s.availability),
        ms(p50),
        ms(p95),
        ms(p99)
    )
}

fn scopes(r: &SlaReport) -> impl Iterator<Item = (&str, &ScopeReport)> {
    std::iter::once(("global", &r.global)).chain(r.regions.iter().map(|(k, v)| (k.as_str(), v)))
}

/// The report as aligned text for a terminal.
pub fn table(r: &SlaReport) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "SLA report for {} ({})", r.name, r.vendor);
    let _ = writeln!(
        w,
        "window    {} to {} ({:.0} minutes)",
        r.from, r.to, r.window_minutes
    );
    let mut contract = Vec::new();
    if let Some(a) = r.sla.availability {
        contract.push(format!("availability {}", pct(Some(a))));
    }
    for (name, v) in [
        ("p50", r.sla.latency_p50_ms),
        ("p95", r.sla.latency_p95_ms),
        ("p99", r.sla.latency_p99_ms),
    ] {
        if let Some(v) = v {
            contract.push(format!("latency {name} {v:.0} ms"));
        }
    }
    let _ = writeln!(
        w,
        "contract  {}",
        if contract.is_empty() {
            "none (no `sla` block)".to_owned()
        } else {
            contract.join(", ")
        }
    );
    let budget = r
        .global
        .contract
        .error_budget_used
        .map(|b| format!("; error budget used {:.1}%", b * 100.0))
        .unwrap_or_default();
    let _ = writeln!(w, "verdict   {}{budget}", verdict(&r.global.contract));

    let _ = writeln!(w, "\nDATA PLANE");
    let _ = writeln!(
        w,
        "{:<16} {:>12} {:>12} {:>13} {:>9} {:>9} {:>9} {:>8}  VERDICT",
        "SCOPE", "RUNS", "VALID", "AVAILABILITY", "P50 ms", "P95 ms", "P99 ms", "BUDGET"
    );
    for (name, s) in scopes(r) {
        let budget = s
            .contract
            .error_budget_used
            .map_or_else(|| "-".to_owned(), |b| format!("{:.1}%", b * 100.0));
        let _ = writeln!(
            w,
            "{name:<16} {} {budget:>8}  {}",
            sli_cells(&s.sli),
            verdict(&s.contract)
        );
    }

    let _ = writeln!(w, "\nMINUTES IN STATE");
    let _ = write!(w, "{:<16}", "SCOPE");
    for s in VendorState::ALL {
        let _ = write!(w, " {:>18}", s.as_label().to_uppercase());
    }
    let _ = writeln!(w, " {:>12} {:>12}", "UNRECORDED", "UNEVALUATED");
    for (name, s) in scopes(r) {
        let _ = write!(w, "{name:<16}");
        for st in VendorState::ALL {
            let m = s
                .minutes_in_state
                .get(st.as_label())
                .copied()
                .unwrap_or(0.0);
            let _ = write!(w, " {m:>18.1}");
        }
        let _ = writeln!(
            w,
            " {:>12.1} {:>12.1}",
            s.unrecorded_minutes, s.unevaluated_minutes
        );
    }

    let _ = writeln!(w, "\nROLES (all regions)");
    let _ = writeln!(
        w,
        "{:<16} {:>12} {:>12} {:>13} {:>9} {:>9} {:>9}",
        "ROLE", "RUNS", "VALID", "AVAILABILITY", "P50 ms", "P95 ms", "P99 ms"
    );
    for (role, s) in &r.roles {
        let _ = writeln!(w, "{role:<16} {}", sli_cells(s));
    }

    let mut worst: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.sli.availability.is_some())
        .collect();
    worst.sort_by(|a, b| {
        a.sli
            .availability
            .partial_cmp(&b.sli.availability)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let _ = writeln!(
        w,
        "\nLEAST AVAILABLE CHECKS ({} of {})",
        worst.len().min(WORST_CHECKS),
        r.checks.len()
    );
    let _ = writeln!(
        w,
        "{:<24} {:<10} {:>12} {:>12} {:>13} {:>9} {:>9} {:>9}",
        "CHECK", "ROLE", "RUNS", "VALID", "AVAILABILITY", "P50 ms", "P95 ms", "P99 ms"
    );
    for c in worst.iter().take(WORST_CHECKS) {
        let _ = writeln!(w, "{:<24} {:<10} {}", c.check, c.role, sli_cells(&c.sli));
    }

    let _ = writeln!(w, "\nINCIDENTS ({})", r.global.incidents.len());
    if !r.global.incidents.is_empty() {
        let _ = writeln!(
            w,
            "{:<6} {:<18} {:<16} {:<25} {:<25} {:>10} {:>10}  SUMMARY",
            "ID", "STATE", "SCOPE", "OPENED", "RESOLVED", "MINUTES", "IN WINDOW"
        );
    }
    for i in &r.global.incidents {
        let scope = if i.scope == crate::alert::SubjectScope::Regional {
            i.regions.join(",")
        } else {
            i.scope.to_string()
        };
        let _ = writeln!(
            w,
            "{:<6} {:<18} {:<16} {:<25} {:<25} {:>10.1} {:>10.1}  {}",
            i.id,
            i.state,
            scope,
            i.opened_at,
            i.resolved_at.as_deref().unwrap_or("ongoing"),
            i.duration_minutes,
            i.in_window_minutes,
            i.summary
        );
    }
    let _ = writeln!(w, "\nnote: {}", r.latency_note);
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The report as CSV: a header, then one row per scope (`global`, each `region`), per `role`
/// and per `check`. State minutes, contract and incident columns are empty for roles and
/// checks, which the contract does not judge.
pub fn csv(r: &SlaReport) -> String {
    let states: Vec<&str> = VendorState::ALL.iter().map(|s| s.as_label()).collect();
    let mut header = vec![
        "vendor",
        "from",
        "to",
        "scope",
        "name",
        "runs",
        "valid",
        "good",
        "failed",
        "probe_errors",
        "slow",
        "availability",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "breach",
        "broken",
        "error_budget_used",
        "incidents",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    header.extend(states.iter().map(|s| format!("minutes_{s}")));
    header.push("unrecorded_minutes".to_owned());
    header.push("unevaluated_minutes".to_owned());
    let mut out = header.join(",");
    out.push('\n');
    let mut row = |scope: &str, name: &str, s: &Sli, extra: Option<&ScopeReport>| {
        let p = |f: fn(&super::sla::Percentiles) -> f64| num(s.latency_ms.as_ref().map(f));
        let mut cells = vec![
            csv_field(&r.vendor),
            csv_field(&r.from),
            csv_field(&r.to),
            scope.to_owned(),
            csv_field(name),
            s.runs.to_string(),
            s.valid.to_string(),
            s.good.to_string(),
            s.failed.to_string(),
            s.probe_errors.to_string(),
            s.slow.to_string(),
            num(s.availability),
            p(|p| p.p50),
            p(|p| p.p95),
            p(|p| p.p99),
        ];
        match extra {
            Some(x) => {
                cells.push(x.contract.breach.to_string());
                cells.push(csv_field(&x.contract.broken.join(";")));
                cells.push(num(x.contract.error_budget_used));
                cells.push(x.incidents.len().to_string());
                for st in &states {
                    cells.push(num(x.minutes_in_state.get(*st).copied()));
                }
                cells.push(x.unrecorded_minutes.to_string());
                cells.push(x.unevaluated_minutes.to_string());
            }
            None => cells.extend(std::iter::repeat_n(String::new(), 6 + states.len())),
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    };
    row("global", "", &r.global.sli, Some(&r.global));
    for (name, s) in &r.regions {
        row("region", name, &s.sli, Some(s));
    }
    for (name, s) in &r.roles {
        row("role", name, s, None);
    }
    for c in &r.checks {
        row("check", &c.check, &c.sli, None);
    }
    out
}
