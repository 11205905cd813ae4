//! Table tests for loading and validation.

use super::*;
use crate::model::{CheckKind, Threshold};

const VENDOR: &str = "[[vendor]]\nid = \"v\"\n";

fn errors(text: &str) -> Vec<String> {
    match parse_str(text) {
        Ok(_) => Vec::new(),
        Err(d) => d.0.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn example_in_deploy_parses() {
    let set = load(&[PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/checks/example.toml"
    ))])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.vendors.len(), 3);
    let kinds: Vec<CheckKind> = set.checks.iter().map(|c| c.kind()).collect();
    for k in CheckKind::ALL {
        assert!(kinds.contains(&k), "example lacks a {k:?} check");
    }
    let logs = set.check("fastcdn-log-freshness").expect("check");
    assert_eq!(logs.role, Role::Telemetry);
    assert_eq!(logs.settings.interval, Duration::from_secs(30));
    // failing_interval comes from [defaults], not from a third of the check's own interval.
    assert_eq!(logs.settings.failing_interval, Duration::from_secs(3));
}

#[test]
fn defaults_apply_and_checks_override() {
    let text = format!(
        "[defaults]\ninterval = \"20s\"\nfailing = 2\n{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\n\n[[check]]\nid = \"b\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\ninterval = \"3s\"\ntimeout = \"1s\"\nretry = \"off\"\n"
    );
    let set = parse_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let a = &set.checks[0].settings;
    assert_eq!(a.interval, Duration::from_secs(20));
    assert_eq!(a.failing, Threshold::Count(2));
    assert_eq!(a.failing_interval, Duration::from_nanos(6_666_666_666));
    let b = &set.checks[1].settings;
    assert_eq!(b.interval, Duration::from_secs(3));
    assert_eq!(b.retry, None);
    assert_eq!(b.failing_interval, Duration::from_secs(1));
}

#[test]
fn flap_window_defaults_to_three_recover_for_and_lone_probes_never_page_unless_asked() {
    let text = format!(
        "[defaults]\nrecover_for = \"20s\"\n{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\n\n[[check]]\nid = \"b\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\nflap_window = \"0s\"\nlone_probe_pages = true\n"
    );
    let set = parse_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let a = &set.checks[0].settings;
    assert_eq!(a.flap_window(), Duration::from_secs(60));
    assert!(!a.lone_probe_pages);
    assert_eq!(a.min_voters(), 2);
    let b = &set.checks[1].settings;
    assert_eq!(b.flap_window(), Duration::ZERO);
    assert!(b.lone_probe_pages);
    assert_eq!(b.min_voters(), 1);
    let bad = format!(
        "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\nflap_window = \"soon\"\nlone_probe_pages = \"yes\"\n"
    );
    let errs = errors(&bad);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("flap_window must be a duration with a unit")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("lone_probe_pages")),
        "{errs:#?}"
    );
}

#[test]
fn every_error_is_collected_with_its_location() {
    let text = format!(
        "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"nope\"\ninterval = \"500\"\n\n[[check]]\nid = \"b\"\nvendor = \"nobody\"\nkind = \"tcp\"\ntarget = \"h:1\"\ncolour = \"red\"\n"
    );
    let errs = errors(&text);
    // Sorted by position, whatever order validation found them in.
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs[0].starts_with("<inline>:7:10: target needs a port"),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("<inline>:8:12: interval must be a duration with a unit"),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("<inline>:12:10: check names vendor `nobody`"),
        "{errs:#?}"
    );
    assert!(
        errs[3].starts_with(
            "<inline>:15:1: unknown key `colour` for a `tcp` check; expected `target`"
        ),
        "{errs:#?}"
    );
}

#[test]
fn duplicate_ids_and_missing_vendor() {
    let text = format!(
        "{VENDOR}{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"h:1\"\n[[check]]\nid = \"a\"\nvendor = \"w\"\nkind = \"tcp\"\ntarget = \"h:1\"\n"
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("vendor id `v` is already used at <inline>:2:6")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("check names vendor `w`")),
        "{errs:#?}"
    );
}

#[test]
fn host_port_forms() {
    let hp = |s, d| parse_host_port(s, d).map(|h| h.to_string());
    assert_eq!(hp("192.0.2.1", Some(53)).as_deref(), Ok("192.0.2.1:53"));
    assert_eq!(
        hp("192.0.2.1:5353", Some(53)).as_deref(),
        Ok("192.0.2.1:5353")
    );
    assert_eq!(
        hp("[2001:db8::1]:853", None).as_deref(),
        Ok("[2001:db8::1]:853")
    );
    assert_eq!(
        hp("2001:db8::1", Some(53)).as_deref(),
        Ok("[2001:db8::1]:53")
    );
    assert_eq!(
        hp("NS1.Example.com.", Some(53)).as_deref(),
        Ok("ns1.example.com:53")
    );
    assert!(hp("host", None).is_err());
    assert!(hp("host:0", None).is_err());
    assert!(hp("bad host:1", None).is_err());
}

#[test]
fn timing_cross_checks() {
    let text = format!(
        "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"h:1\"\ninterval = \"2s\"\ntimeout = \"3s\"\nwindow = \"1s\"\n"
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("timeout (\"3s\") must not exceed interval (\"2s\")")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("window (\"1s\") must be at least interval (\"2s\")")),
        "{errs:#?}"
    );
}

#[test]
fn render_points_at_the_value() {
    let Err(d) = parse_str("[defaults]\nquorum = 0\n") else {
        panic!("expected an error")
    };
    let r = d.render();
    assert!(
        r.contains("error: quorum must be between 1 and 1000"),
        "{r}"
    );
    assert!(
        r.contains(" --> <inline>:2:10\n  |\n2 | quorum = 0\n  |          ^\n"),
        "{r}"
    );
}

#[test]
fn dnssec_on_a_dns_check() {
    let dns = |dnssec: &str| {
        format!(
            "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"dns\"\nzone = \"example.com\"\n\
             query = {{ name = \"www.example.com\" }}\n{dnssec}\n"
        )
    };
    let spec = |text: &str| {
        let set = parse_str(text).unwrap_or_else(|e| panic!("{e}"));
        match &set.checks[0].spec {
            crate::model::CheckSpec::Dns(d) => d.dnssec.clone(),
            other => panic!("a dns check, got {other:?}"),
        }
    };
    let week = Duration::from_secs(7 * 86_400);
    assert_eq!(spec(&dns("")), None, "off unless asked");
    assert_eq!(
        spec(&dns("dnssec = {}")).map(|d| d.valid_for),
        Some(week),
        "valid_for defaults to a week"
    );
    assert_eq!(
        spec(&dns("dnssec = { valid_for = \"3d\" }")).map(|d| d.valid_for),
        Some(Duration::from_secs(3 * 86_400))
    );
    assert_eq!(
        spec(&dns("dnssec = { valid_for = \"0s\" }")).map(|d| d.valid_for),
        Some(Duration::ZERO),
        "0s: only an expired signature fails"
    );
    assert_eq!(
        spec(&dns("dnssec = { valid_for = \"24855d\" }")).map(|d| d.valid_for),
        Some(Duration::from_secs(24_855 * 86_400)),
        "the longest span serial arithmetic can tell"
    );
    // Errors carry file:line:column, and every check's are reported.
    let two = format!(
        "{}[[check]]\nid = \"b\"\nvendor = \"v\"\nkind = \"dns\"\nzone = \"example.com\"\n\
         query = {{ name = \"example.com\" }}\ndnssec = {{ valid_for = \"7d\", colour = \"red\" }}\n",
        dns("dnssec = { valid_for = \"24856d\" }")
    );
    let errs = errors(&two);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("<inline>:9:24: valid_for must be at most 24855d"),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with(
            "<inline>:16:30: unknown key `colour` in a `dns` check; expected `valid_for`"
        ),
        "{errs:#?}"
    );
    let errs = errors(&dns("dnssec = [\"7d\"]"));
    assert_eq!(
        errs,
        vec!["<inline>:9:10: `dnssec` must be a table, e.g. `dnssec = { valid_for = \"7d\" }`; got sequence".to_owned()],
    );
    let tls = format!(
        "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"tls\"\ntarget = \"h:443\"\ndnssec = {{ valid_for = \"7d\" }}\n"
    );
    let errs = errors(&tls);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("<inline>:8:1: unknown key `dnssec` for a `tls` check"),
        "{errs:#?}"
    );
}
