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

/// An http check's spec from a whole file.
fn http_spec(text: &str, id: &str) -> crate::model::HttpCheck {
    let set = parse_str(text).unwrap_or_else(|e| panic!("{e}"));
    match &set.check(id).expect("the check").spec {
        crate::model::CheckSpec::Http(h) => (**h).clone(),
        other => panic!("an http check, got {other:?}"),
    }
}

#[test]
fn cache_policy_and_protocol_keys() {
    use crate::model::{Bounds, HttpVersion, QueryKey, TlsVersion};
    use crate::result::CacheStatus;
    let text = format!(
        "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"cdn\"\nurl = \"https://static.example.com/a.png\"\n\
         [check.expect]\n\
         cache_control = {{ max_age = {{ min = \"1h\", max = \"30d\" }}, s_maxage = {{}}, no_store = false, private = false, immutable = true, public = true, no_cache = false, must_revalidate = false }}\n\
         age = {{ max = \"1d\" }}\nvary = [\"Accept-Encoding\"]\nexpires = {{ min = \"1h\" }}\netag = true\nlast_modified = false\n\
         http_version = [\"1.1\", \"2\"]\ntls_version = \"1.3\"\ncache = \"hit\"\ncache_key = {{ query = \"ignored\" }}\n\
         negative = {{ path = \"/missing.png\", status = [404, 410], cache_control = {{ max_age = {{ max = \"5m\" }} }}, cached = true }}\n"
    );
    let h = http_spec(&text, "a");
    let e = h.cdn_expect.expect("assertions");
    let hours = |n: u64| Some(Duration::from_secs(n * 3600));
    assert_eq!(
        e.cache_control.max_age,
        Some(Bounds {
            min: hours(1),
            max: hours(30 * 24)
        })
    );
    assert_eq!(e.cache_control.s_maxage, Some(Bounds::default()));
    assert_eq!(e.cache_control.immutable, Some(true));
    assert_eq!(e.cache_control.no_store, Some(false));
    assert_eq!(
        e.age,
        Some(Bounds {
            min: None,
            max: hours(24)
        })
    );
    assert_eq!(e.vary, ["accept-encoding"]);
    assert_eq!(
        e.expires,
        Some(Bounds {
            min: hours(1),
            max: None
        })
    );
    assert_eq!((e.etag, e.last_modified), (Some(true), Some(false)));
    assert_eq!(e.http_version, [HttpVersion::Http11, HttpVersion::Http2]);
    assert_eq!(e.tls_version, [TlsVersion::Tls13]);
    assert_eq!(e.cache, [CacheStatus::Hit]);
    assert_eq!(e.cache_key, Some(QueryKey::Ignored));
    let n = e.negative.expect("negative");
    assert_eq!(n.path.as_deref(), Some("/missing.png"));
    assert_eq!(n.status, [404, 410]);
    assert_eq!(n.cached, Some(true));
    assert_eq!(
        n.cache_control.max_age,
        Some(Bounds {
            min: None,
            max: Some(Duration::from_secs(300))
        })
    );
    // `negative = {}`: a random path must answer 404.
    let text = format!(
        "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"http\"\nurl = \"http://example.com/\"\nexpect = {{ negative = {{}} }}\n"
    );
    let n = http_spec(&text, "a")
        .cdn_expect
        .and_then(|e| e.negative)
        .expect("negative");
    assert_eq!((n.path, n.status, n.cached), (None, vec![404], None));
    // Nothing asserted: nothing on the wire.
    let text = format!(
        "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"http\"\nurl = \"http://example.com/\"\n"
    );
    assert!(http_spec(&text, "a").cdn_expect.is_none());
}

#[test]
fn cache_policy_errors_are_located() {
    let check = |expect: &str| {
        format!(
            "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"cdn\"\nurl = \"http://static.example.com/a.js\"\nexpect = {{ {expect} }}\n"
        )
    };
    let cases: &[(&str, &str)] = &[
        (
            "cache_control = { max_age = { min = \"1d\", max = \"1h\" } }",
            "<inline>:8:60: max_age max (\"1h\") must not be below its min (\"1d\"), e.g. `max_age = { min = \"1h\", max = \"30d\" }`",
        ),
        (
            "cache_control = { max_age = { min = \"soon\" } }",
            "<inline>:8:48: min must be a duration with a unit, e.g. `min = \"1h\"`; got `\"soon\"`, which is not a number followed by a unit (ms, s, m, h or d)",
        ),
        (
            "cache_control = { maxage = { min = \"1h\" } }",
            "<inline>:8:30: unknown key `maxage` in a `cdn` check; expected one of `max_age`, `s_maxage`, `no_store`, `no_cache`, `private`, `public`, `immutable`, `must_revalidate`",
        ),
        (
            "cache_control = \"max-age=60\"",
            "<inline>:8:28: `cache_control` must be a table, e.g. `cache_control = { max_age = { min = \"1h\" }, immutable = true }`; got string \"max-age=60\"",
        ),
        (
            "age = { min = \"1s\", at_most = \"1h\" }",
            "<inline>:8:32: unknown key `at_most` in a `cdn` check; expected `min` or `max`",
        ),
        (
            "vary = [\"accept encoding\"]",
            "<inline>:8:19: vary must list header names, e.g. `vary = [\"accept-encoding\"]`; `\"accept encoding\"` is not one",
        ),
        (
            "http_version = \"3\"",
            "<inline>:8:27: http_version must be one of `\"1.0\"`, `\"1.1\"`, `\"2\"` or a list of them, e.g. `http_version = \"2\"`; got `\"3\"`",
        ),
        (
            "tls_version = \"1.3\"",
            "<inline>:7:7: expect.tls_version needs an https url, since a plain http request negotiates no TLS; got `http://static.example.com/a.js`",
        ),
        (
            "cache = \"warm\"",
            "<inline>:8:20: cache must be one of `\"hit\"`, `\"miss\"`, `\"expired\"`, `\"bypass\"` or a list of them, e.g. `cache = \"hit\"`; got `\"warm\"`",
        ),
        (
            "cache_key = { query = \"yes\" }",
            "<inline>:8:34: cache_key query must be `ignored` or `included`, e.g. `cache_key = { query = \"ignored\" }`; got `\"yes\"`",
        ),
        (
            "negative = { path = \"missing\", status = 99 }",
            "<inline>:8:32: negative path must be a path on the check's origin starting with `/`, without a fragment, e.g. `path = \"/no-such-page\"`; got `\"missing\"`",
        ),
        (
            "etag = \"yes\"",
            "<inline>:8:19: `etag` must be `true` or `false`; got string \"yes\"",
        ),
    ];
    for (expect, want) in cases {
        let errs = errors(&check(expect));
        assert_eq!(
            errs.first().map(String::as_str),
            Some(*want),
            "{expect}: {errs:#?}"
        );
    }
    // Both problems of the negative table are reported.
    let errs = errors(&check("negative = { path = \"missing\", status = 99 }"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[1].contains("status must be an HTTP status"),
        "{errs:#?}"
    );
    // On a dns check, the keys of an http expect are unknown.
    let dns = format!(
        "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"dns\"\nquery = {{ name = \"example.com\" }}\nservers = [\"192.0.2.1\"]\nprofile = \"x\"\n"
    );
    let errs = errors(&dns);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("<inline>:9:1: unknown key `profile` for a `dns` check"),
        "{errs:#?}"
    );
}

const PROFILES: &str = "[[profile]]\nid = \"static-image\"\ndescription = \"images\"\n\
    expect = { status = 200, headers = { \"x-a\" = \"^a$\", \"x-b\" = \"^b$\" }, cache_control = { max_age = { min = \"1d\" }, immutable = true, no_store = false }, cache_key = { query = \"ignored\" }, encoding = [\"identity\"] }\n\n\
    [[profile]]\nid = \"bare\"\n";

#[test]
fn a_profile_lies_under_the_checks_own_expect_key_by_key() {
    use crate::model::{Bounds, Encoding, QueryKey};
    let text = format!(
        "{VENDOR}{PROFILES}[[check]]\nid = \"plain\"\nvendor = \"v\"\nkind = \"cdn\"\nurl = \"https://s.example.com/a.png\"\nprofile = \"static-image\"\n\n\
         [[check]]\nid = \"own\"\nvendor = \"v\"\nkind = \"http\"\nurl = \"https://s.example.com/b.png\"\nprofile = \"static-image\"\n\
         expect = {{ status = 203, headers = {{ \"x-b\" = \"^B$\" }}, cache_control = {{ immutable = false, private = false }}, cache_key = {{ query = \"included\" }} }}\n\n\
         [[check]]\nid = \"bare\"\nvendor = \"v\"\nkind = \"cdn\"\nurl = \"https://s.example.com/c.png\"\nprofile = \"bare\"\n"
    );
    let plain = http_spec(&text, "plain");
    assert_eq!(plain.profile.as_deref(), Some("static-image"));
    assert_eq!(plain.status, crate::model::StatusExpect::OneOf(vec![200]));
    assert_eq!(plain.encoding, [Encoding::Identity]);
    let e = plain.cdn_expect.expect("from the profile");
    assert_eq!(e.cache_control.immutable, Some(true));
    assert_eq!(e.cache_key, Some(QueryKey::Ignored));

    let own = http_spec(&text, "own");
    assert_eq!(
        own.status,
        crate::model::StatusExpect::OneOf(vec![203]),
        "the check wins"
    );
    assert_eq!(own.encoding, [Encoding::Identity], "kept from the profile");
    let headers: Vec<(String, String)> = own
        .header_matches
        .iter()
        .map(|(n, r)| (n.to_string(), r.as_str().to_owned()))
        .collect();
    assert_eq!(
        headers,
        [
            ("x-a".to_owned(), "^a$".to_owned()),
            ("x-b".to_owned(), "^B$".to_owned())
        ],
        "header by header"
    );
    let e = own.cdn_expect.expect("merged");
    let day = Some(Duration::from_secs(86_400));
    assert_eq!(
        e.cache_control.max_age,
        Some(Bounds {
            min: day,
            max: None
        }),
        "directive by directive"
    );
    assert_eq!(e.cache_control.immutable, Some(false));
    assert_eq!(e.cache_control.private, Some(false));
    assert_eq!(e.cache_control.no_store, Some(false));
    assert_eq!(e.cache_key, Some(QueryKey::Included));

    let bare = http_spec(&text, "bare");
    assert_eq!(bare.profile.as_deref(), Some("bare"));
    assert!(bare.cdn_expect.is_none());
    assert_eq!(bare.status, crate::model::StatusExpect::Success);
}

#[test]
fn profile_errors_are_located() {
    // An unknown id, listing the known ones.
    let text = format!(
        "{VENDOR}{PROFILES}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"cdn\"\nurl = \"https://s.example.com/a.png\"\nprofile = \"static-img\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "<inline>:15:11: check names profile `static-img`, which no `[[profile]]` defines; known profiles: `bare`, `static-image`"
        ]
    );
    let none = format!(
        "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"cdn\"\nurl = \"https://s.example.com/a.png\"\nprofile = \"x\"\n"
    );
    let errs = errors(&none);
    assert!(
        errs[0].contains("no `[[profile]]` is defined; add one"),
        "{errs:#?}"
    );
    // A duplicate id, an unknown key, a bad id, a bad value: each in the profile, once,
    // and a check naming a bad profile adds nothing.
    let text = format!(
        "{VENDOR}[[profile]]\nid = \"p\"\n\n[[profile]]\nid = \"p\"\n\n[[profile]]\nid = \"q\"\ncolour = \"red\"\n\n\
         [[profile]]\nid = \"Bad Id\"\n\n[[profile]]\nid = \"r\"\nexpect = {{ cache_control = {{ max_age = {{ min = \"x\" }} }} }}\n\n\
         [[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"cdn\"\nurl = \"https://s.example.com/a.png\"\nprofile = \"r\"\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert_eq!(
        errs[0],
        "<inline>:7:6: profile id `p` is already used at <inline>:4:6; profile ids must be unique across all files"
    );
    assert!(
        errs[1].starts_with("<inline>:11:1: unknown key `colour` in a `[[profile]]`; expected one of `id`, `description`, `expect`"),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("<inline>:14:6: profile id must be 1 to 64"),
        "{errs:#?}"
    );
    assert!(
        errs[3].starts_with("<inline>:18:48: min must be a duration"),
        "{errs:#?}"
    );
    // Profiles are shared across files; an id is unique across them.
    let a = Source {
        name: "a.toml".into(),
        text: format!("{VENDOR}[[profile]]\nid = \"p\"\nexpect = {{ etag = true }}\n"),
        dir: None,
    };
    let b = Source {
        name: "b.toml".into(),
        text: "[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"cdn\"\nurl = \"https://s.example.com/\"\nprofile = \"p\"\n".into(),
        dir: None,
    };
    let set = validate(&[a.clone(), b]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.checks.len(), 1);
    let again = Source {
        name: "c.toml".into(),
        text: "[[profile]]\nid = \"p\"\n".into(),
        dir: None,
    };
    let errs: Vec<String> = match validate(&[a, again]) {
        Ok(_) => Vec::new(),
        Err(d) => d.0.iter().map(|d| d.to_string()).collect(),
    };
    assert_eq!(
        errs,
        [
            "c.toml:2:6: profile id `p` is already used at a.toml:4:6; profile ids must be unique across all files"
        ]
    );
    // `tls_version` from a profile on an http url: named as the profile's.
    let text = format!(
        "{VENDOR}[[profile]]\nid = \"p\"\nexpect = {{ tls_version = \"1.3\" }}\n[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"cdn\"\nurl = \"http://s.example.com/a.png\"\nprofile = \"p\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "<inline>:10:7: expect.tls_version (from profile `p`) needs an https url, since a plain http request negotiates no TLS; got `http://s.example.com/a.png`"
        ]
    );
}

/// Issue 13: a check's suites (`suite` or `suites`) come sorted and without duplicates,
/// `on_demand` is read, and a check using neither looks on the wire as it did before them.
#[test]
fn suites_and_on_demand() {
    let check = |keys: &str| {
        format!(
            "{VENDOR}[[check]]\nid = \"a\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\n{keys}\n"
        )
    };
    let one = |keys: &str| {
        parse_str(&check(keys))
            .unwrap_or_else(|e| panic!("{keys}: {e}"))
            .checks
            .remove(0)
    };

    let plain = one("");
    assert!(plain.suites.is_empty());
    assert!(!plain.on_demand);
    assert!(!plain.in_suite("cdn-static"));
    let json = serde_json::to_value(&plain).expect("encode");
    let keys = json.as_object().expect("an object");
    assert!(!keys.contains_key("suites"), "{json}");
    assert!(!keys.contains_key("on_demand"), "{json}");
    assert!(!one("on_demand = false").on_demand);

    let single = one("suite = \"cdn-static\"");
    assert_eq!(single.suites, ["cdn-static"]);
    assert!(single.in_suite("cdn-static"));
    assert!(!single.in_suite("cdn"));

    let many = one(
        "suites = [\"cdn-static\", \"0-smoke\", \"cdn-negative\", \"cdn-static\"]\non_demand = true",
    );
    assert_eq!(many.suites, ["0-smoke", "cdn-negative", "cdn-static"]);
    assert!(many.on_demand);
    assert!(many.in_suite("cdn-negative"));
    let json = serde_json::to_value(&many).expect("encode");
    assert_eq!(
        json["suites"],
        serde_json::json!(["0-smoke", "cdn-negative", "cdn-static"])
    );
    assert_eq!(json["on_demand"], true);
    let back: Check = serde_json::from_value(json).expect("decode");
    assert_eq!((back.suites, back.on_demand), (many.suites.clone(), true));

    // The longest name, and one past it.
    let long = "a".repeat(64);
    assert_eq!(one(&format!("suite = \"{long}\"")).suites, [long.as_str()]);
    let errs = errors(&check(&format!("suites = [\"{long}b\"]")));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("<inline>:8:11: suite name must be 1 to 64 lowercase letters"),
        "{errs:#?}"
    );
    // A bad suite does not hide the check's other problems.
    let errs = errors(&check("suite = \"\"\non_demand = 1\ninterval = \"soon\""));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].starts_with("<inline>:8:9: suite name must be"),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("<inline>:9:13: `on_demand` must be `true` or `false`"),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("<inline>:10:12: interval must be"),
        "{errs:#?}"
    );
}
