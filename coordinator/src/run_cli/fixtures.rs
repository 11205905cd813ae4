//! Hand-built runs and results for the tests of the pure parts.

use time::macros::datetime;
use vantage_checks::model::CheckKind;
use vantage_checks::result::{
    CacheStatus, CheckResult, DnsFacts, DnsServerResult, Facts, FailureKind, HttpFacts, Status,
    Timings, TlsFacts,
};

use super::view::{RunEntry, RunProbe, RunState, RunView};

/// HTTP facts of a healthy CDN answer, with this status code and cache status.
pub(super) fn http(status: u16, cache: CacheStatus) -> HttpFacts {
    HttpFacts {
        url: "https://img.fastcdn.example/a.png".into(),
        status: Some(status),
        http_version: Some("HTTP/2".into()),
        cache,
        served_by: Some("fastcdn".into()),
        content_encoding: Some("br".into()),
        bytes: 1024,
        tls: Some(TlsFacts {
            server_name: "img.fastcdn.example".into(),
            protocol: Some("TLSv1_3".into()),
            ..TlsFacts::default()
        }),
        ..HttpFacts::default()
    }
}

/// DNS facts of one server answering `rcode` with `answers`.
pub(super) fn dns(rcode: &str, answers: &[&str]) -> Facts {
    Facts::Dns(DnsFacts {
        qname: "www.example".into(),
        qtype: "A".into(),
        servers: vec![DnsServerResult {
            server: "ns1.example".into(),
            address: "192.0.2.53:53".parse().expect("an address"),
            status: Status::Ok,
            failure: None,
            message: None,
            rcode: Some(rcode.into()),
            authoritative: Some(true),
            tcp: false,
            answers: answers.iter().map(|a| (*a).to_owned()).collect(),
            soa_serial: None,
            rrsig: None,
            nsid: None,
            rtt_ms: Some(3.0),
        }],
        ..DnsFacts::default()
    })
}

/// A result of `check` from `probe`.
pub(super) fn result(
    check: &str,
    probe: &str,
    status: Status,
    failure: Option<FailureKind>,
    total_ms: f64,
    facts: Facts,
) -> CheckResult {
    CheckResult {
        v: 1,
        check_id: check.into(),
        vendor: "fastcdn".into(),
        kind: match facts {
            Facts::Dns(_) => CheckKind::Dns,
            _ => CheckKind::Cdn,
        },
        probe_id: probe.into(),
        boot_id: "boot".into(),
        seq: 1,
        started_at: datetime!(2026-12-06 09:00:01 UTC),
        status,
        failure,
        message: failure.map(|k| format!("{k} went wrong")),
        slow: false,
        retried: false,
        timings: Timings {
            total_ms,
            ..Timings::default()
        },
        facts,
        truncated: None,
        run: Some(7),
    }
}

/// A passing CDN result.
pub(super) fn ok(check: &str, probe: &str, total_ms: f64) -> CheckResult {
    result(
        check,
        probe,
        Status::Ok,
        None,
        total_ms,
        Facts::Http(http(200, CacheStatus::Hit)),
    )
}

/// A failing CDN result.
pub(super) fn fail(check: &str, probe: &str, kind: FailureKind) -> CheckResult {
    result(
        check,
        probe,
        Status::Fail,
        Some(kind),
        90.0,
        Facts::Http(http(503, CacheStatus::Miss)),
    )
}

/// The region of a fixture probe: `p1` in `eu`, `p2` in `us`, any other in `ap`.
fn region(probe: &str) -> &'static str {
    match probe {
        "p1" => "eu",
        "p2" => "us",
        _ => "ap",
    }
}

/// A run `id` of `fastcdn` in `state`, with one entry per `(check, probe, result)`.
pub(super) fn run(
    id: i64,
    state: RunState,
    entries: Vec<(&str, &str, Option<CheckResult>)>,
) -> RunView {
    let mut probes: Vec<RunProbe> = Vec::new();
    let mut checks: Vec<String> = Vec::new();
    for (check, probe, _) in &entries {
        if !probes.iter().any(|p| p.id == *probe) {
            probes.push(RunProbe {
                id: (*probe).into(),
                region: region(probe).into(),
            });
        }
        if !checks.iter().any(|c| c == check) {
            checks.push((*check).into());
        }
    }
    let mut regions: Vec<String> = probes.iter().map(|p| p.region.clone()).collect();
    regions.sort();
    regions.dedup();
    let mut missing: Vec<String> = entries
        .iter()
        .filter(|(_, _, r)| r.is_none())
        .map(|(_, p, _)| (*p).to_owned())
        .collect();
    missing.sort();
    missing.dedup();
    RunView {
        id,
        vendor: "fastcdn".into(),
        label: None,
        suite: Some("cdn-static".into()),
        checks,
        regions,
        probes: probes.clone(),
        created: datetime!(2026-12-06 09:00:00.123 UTC),
        deadline: datetime!(2026-12-06 09:01:00.123 UTC),
        state,
        reported: probes
            .iter()
            .filter(|p| !missing.contains(&p.id))
            .map(|p| p.id.clone())
            .collect(),
        missing,
        results: entries
            .into_iter()
            .map(|(check, probe, result)| RunEntry {
                check: check.into(),
                probe: probe.into(),
                region: region(probe).into(),
                result,
            })
            .collect(),
    }
}
