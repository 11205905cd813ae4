//! Printing results for people (a table) and for programs (JSON lines).

use std::fmt::Write as _;

use vantage_checks::result::{CheckResult, Facts, Status};

/// One JSON object per line, in the wire format probes push.
pub fn json_lines(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for r in results {
        // Serializing our own plain structs cannot fail; fall back to an error object if it ever does.
        let line = serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A readable table: one row per check, then per-server or per-asset detail lines.
pub fn table(results: &[CheckResult]) -> String {
    let id_w = results
        .iter()
        .map(|r| r.check_id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<id_w$}  {:<4}  {:<11}  {:<24}  {:>9}  DETAIL\n",
        "CHECK", "KIND", "STATUS", "FAILURE", "TOTAL"
    );
    for r in results {
        let status = if r.slow {
            format!("{} (slow)", r.status.as_label())
        } else {
            r.status.as_label().to_owned()
        };
        let failure = r.failure.map_or("-", |f| f.as_label());
        let _ = writeln!(
            out,
            "{:<id_w$}  {:<4}  {:<11}  {:<24}  {:>7.1}ms  {}",
            r.check_id,
            r.kind.as_label(),
            status,
            failure,
            r.timings.total_ms,
            summary(r)
        );
        for line in detail(r) {
            let _ = writeln!(out, "{:id_w$}    {line}", "");
        }
        if let Some(msg) = &r.message {
            let _ = writeln!(out, "{:id_w$}    {}", "", msg);
        }
    }
    let failed = results.iter().filter(|r| r.status != Status::Ok).count();
    let _ = writeln!(
        out,
        "{} checks: {} ok, {} not ok",
        results.len(),
        results.len() - failed,
        failed
    );
    out
}

fn summary(r: &CheckResult) -> String {
    match &r.facts {
        Facts::Dns(d) => {
            let ok = d.servers.iter().filter(|s| s.status == Status::Ok).count();
            format!(
                "{} {}: {}/{} servers ok",
                d.qname.trim_end_matches('.'),
                d.qtype,
                ok,
                d.servers.len()
            )
        }
        Facts::Http(h) => {
            let mut s = format!(
                "{} {}",
                h.status.map_or("-".to_owned(), |s| s.to_string()),
                h.http_version.as_deref().unwrap_or("-")
            );
            let _ = write!(s, " cache={}", h.cache.as_label());
            if let Some(pop) = &h.pop {
                let _ = write!(s, " pop={pop}");
            }
            if let Some(enc) = &h.content_encoding {
                let _ = write!(s, " encoding={enc}");
            }
            if let Some(v) = &h.served_by {
                let _ = write!(s, " served_by={v}");
            }
            if let Some(v) = &h.vendor_header {
                let _ = write!(s, " vendor_header={v:?}");
            }
            let _ = write!(s, " bytes={}", h.bytes);
            if let Some(a) = h.remote_addr {
                let _ = write!(s, " via {a}");
            }
            s
        }
        Facts::Tls(t) => format!(
            "{} {} {} days_left={}",
            t.server_name,
            t.protocol.as_deref().unwrap_or("-"),
            t.cipher.as_deref().unwrap_or("-"),
            t.days_left.map_or("-".to_owned(), |d| d.to_string())
        ),
        Facts::Tcp(t) => match (t.remote_addr, r.status) {
            (Some(a), Status::Ok) => format!("connected to {a}"),
            (Some(a), _) => format!("tried {a}"),
            (None, _) => "-".to_owned(),
        },
        Facts::None => String::new(),
    }
}

fn detail(r: &CheckResult) -> Vec<String> {
    match &r.facts {
        Facts::Dns(d) => {
            let mut lines: Vec<String> = d
                .servers
                .iter()
                .map(|s| {
                    let mut l = format!(
                        "{} ({}) {}",
                        s.server,
                        s.address,
                        s.failure.map_or("ok", |f| f.as_label())
                    );
                    if let Some(rc) = &s.rcode {
                        let _ = write!(l, " rcode={rc}");
                    }
                    if let Some(aa) = s.authoritative {
                        let _ = write!(l, " aa={aa}");
                    }
                    if let Some(rtt) = s.rtt_ms {
                        let _ = write!(l, " rtt={rtt:.1}ms");
                    }
                    if s.tcp {
                        l.push_str(" tcp");
                    }
                    if let Some(serial) = s.soa_serial {
                        let _ = write!(l, " serial={serial}");
                    }
                    if let Some(nsid) = &s.nsid {
                        let _ = write!(l, " nsid={nsid}");
                    }
                    if !s.answers.is_empty() {
                        let _ = write!(l, " answers=[{}]", s.answers.join(", "));
                    }
                    l
                })
                .collect();
            if !d.laggards.is_empty() {
                lines.push(format!("laggards: {}", d.laggards.join(", ")));
            }
            lines
        }
        Facts::Http(h) => h
            .assets
            .iter()
            .filter(|a| a.failure.is_some())
            .map(|a| {
                format!(
                    "asset {} {} {}",
                    a.url,
                    a.status.map_or("-".to_owned(), |s| s.to_string()),
                    a.failure.map_or("ok", |f| f.as_label())
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}
