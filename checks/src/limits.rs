//! What one result and one batch may hold, defined once for both binaries.
//!
//! The coordinator refuses a result past these limits (that result only, never its batch), and
//! the probe keeps every result within them before it spools it ([`fit`]): a run that failed
//! with a thousand broken assets or a server that answered a megabyte of text still reaches the
//! coordinator, cut down, with a note of what was cut in its `truncated` field. During an
//! outage is exactly when the evidence must not be lost whole.
//!
//! A coordinator may be configured with smaller limits than these (`[limits]`); results past
//! them are then refused one by one, and counted by the probe.

use crate::result::{CheckResult, DnsFacts, Facts, HttpFacts, TlsFacts};

/// Largest string field of a result (its message, a URL, an answer, a server's message).
pub const MAX_FIELD_BYTES: usize = 4096;
/// Largest `facts` of a result, as JSON.
pub const MAX_FACTS_BYTES: usize = 16 * MAX_FIELD_BYTES;
/// Most entries of any list in the facts (servers, answers, assets, NS names); the byte
/// budget ([`MAX_FACTS_BYTES`]) may keep fewer.
pub const MAX_LIST: usize = 256;
/// Most results in one batch.
pub const MAX_BATCH: usize = 1000;
/// Largest request body the coordinator takes by default, and the most a probe packs into one
/// batch.
pub const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// Cuts `s` to at most `max` bytes (on a character boundary), ending it with a marker that
/// says how much was cut. Returns whether it cut.
pub fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let marker = format!("…[{} bytes cut]", s.len());
    let mut end = max.saturating_sub(marker.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(&marker);
    true
}

fn cut_opt(s: &mut Option<String>, max: usize) -> bool {
    s.as_mut().is_some_and(|s| cut(s, max))
}

/// Keeps at most `max` entries of `list`; returns what a note should say, if it dropped any.
fn keep<T>(what: &str, list: &mut Vec<T>, max: usize) -> Option<String> {
    let n = list.len();
    (n > max).then(|| {
        list.truncate(max);
        format!("{what}: {max} of {n} kept")
    })
}

/// Keeps `r` within the limits: cuts long strings, shortens long lists, and halves the longest
/// list until the facts fit. Records what it cut in `r.truncated`; returns whether it cut.
pub fn fit(r: &mut CheckResult) -> bool {
    let mut notes: Vec<String> = Vec::new();
    if cut_opt(&mut r.message, MAX_FIELD_BYTES) {
        notes.push("message".into());
    }
    let mut strings = false;
    match &mut r.facts {
        Facts::Dns(d) => {
            strings |= fit_dns_strings(d);
            notes.extend(keep("servers", &mut d.servers, MAX_LIST));
            notes.extend(keep("laggards", &mut d.laggards, MAX_LIST));
            for s in &mut d.servers {
                notes.extend(keep(
                    &format!("answers of {}", s.address),
                    &mut s.answers,
                    MAX_LIST,
                ));
            }
            if let Some(del) = &mut d.delegation {
                notes.extend(keep("parent NS", &mut del.parent, MAX_LIST));
                notes.extend(keep("child NS", &mut del.child, MAX_LIST));
            }
        }
        Facts::Http(h) => {
            strings |= fit_http_strings(h);
            notes.extend(keep("assets", &mut h.assets, MAX_LIST));
            notes.extend(keep("extra requests", &mut h.extra_requests, MAX_LIST));
        }
        Facts::Tls(t) => strings |= fit_tls_strings(t),
        Facts::Tcp(_) | Facts::None => {}
    }
    if strings {
        notes.push("long strings in facts".into());
    }
    // Still too large (every entry long): halve the longest list until the facts fit.
    for _ in 0..64 {
        let size = serde_json::to_vec(&r.facts).map_or(0, |v| v.len());
        if size <= MAX_FACTS_BYTES || !halve_longest(&mut r.facts) {
            break;
        }
        if !notes.iter().any(|n| n.starts_with("facts")) {
            notes.push(format!("facts: lists halved from {size} bytes"));
        }
    }
    if serde_json::to_vec(&r.facts).map_or(0, |v| v.len()) > MAX_FACTS_BYTES {
        // Nothing left to halve and still too large: keep the run, lose its facts.
        r.facts = Facts::None;
        notes.push("facts dropped".into());
    }
    if notes.is_empty() {
        return false;
    }
    let mut note = notes.join("; ");
    cut(&mut note, MAX_FIELD_BYTES);
    r.truncated = Some(note);
    true
}

fn fit_dns_strings(d: &mut DnsFacts) -> bool {
    let mut any = cut(&mut d.qname, MAX_FIELD_BYTES) | cut(&mut d.qtype, MAX_FIELD_BYTES);
    for s in &mut d.servers {
        any |= cut(&mut s.server, MAX_FIELD_BYTES)
            | cut_opt(&mut s.message, MAX_FIELD_BYTES)
            | cut_opt(&mut s.rcode, MAX_FIELD_BYTES)
            | cut_opt(&mut s.nsid, MAX_FIELD_BYTES);
        for a in &mut s.answers {
            any |= cut(a, MAX_FIELD_BYTES);
        }
    }
    for l in &mut d.laggards {
        any |= cut(l, MAX_FIELD_BYTES);
    }
    if let Some(del) = &mut d.delegation {
        for n in del.parent.iter_mut().chain(del.child.iter_mut()) {
            any |= cut(n, MAX_FIELD_BYTES);
        }
    }
    any
}

fn fit_http_strings(h: &mut HttpFacts) -> bool {
    let mut any = cut(&mut h.url, MAX_FIELD_BYTES);
    for s in [
        &mut h.http_version,
        &mut h.pop,
        &mut h.served_by,
        &mut h.vendor_header,
        &mut h.content_encoding,
        &mut h.cache_control,
        &mut h.expires,
        &mut h.vary,
        &mut h.etag,
        &mut h.last_modified,
    ] {
        any |= cut_opt(s, MAX_FIELD_BYTES);
    }
    for r in &mut h.extra_requests {
        any |= cut(&mut r.url, MAX_FIELD_BYTES) | cut_opt(&mut r.cache_control, MAX_FIELD_BYTES);
    }
    if let Some(t) = &mut h.tls {
        any |= fit_tls_strings(t);
    }
    for a in &mut h.assets {
        any |= cut(&mut a.url, MAX_FIELD_BYTES);
    }
    any
}

fn fit_tls_strings(t: &mut TlsFacts) -> bool {
    let mut any = cut(&mut t.server_name, MAX_FIELD_BYTES);
    for s in [
        &mut t.protocol,
        &mut t.cipher,
        &mut t.alpn,
        &mut t.subject,
        &mut t.issuer,
        &mut t.not_after,
    ] {
        any |= cut_opt(s, MAX_FIELD_BYTES);
    }
    any
}

/// Halves a list in the facts, the one that weighs most first (servers before each server's
/// answers); false when no list has more than one entry left.
fn halve_longest(facts: &mut Facts) -> bool {
    fn halve<T>(v: &mut Vec<T>) -> bool {
        if v.len() <= 1 {
            return false;
        }
        let n = v.len().div_ceil(2);
        v.truncate(n);
        true
    }
    match facts {
        Facts::Dns(d) => {
            if halve(&mut d.servers) {
                return true;
            }
            let mut any = false;
            for s in &mut d.servers {
                any |= halve(&mut s.answers);
            }
            any || halve(&mut d.laggards)
                || d.delegation.as_mut().is_some_and(|x| {
                    let parent = halve(&mut x.parent);
                    halve(&mut x.child) || parent
                })
        }
        Facts::Http(h) => halve(&mut h.assets) || halve(&mut h.extra_requests),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{
        AssetResult, CacheStatus, DnsServerResult, ExtraRequest, FailureKind, RequestPurpose,
        Status,
    };

    fn result(facts: Facts) -> CheckResult {
        let mut r: CheckResult = serde_json::from_str(
            r#"{"v":1,"check_id":"c","vendor":"v","kind":"http","probe_id":"p","boot_id":"b","seq":1,
                "started_at":"2026-12-05T00:00:00Z","status":"fail","failure":"asset_errors",
                "timings":{"total_ms":1.0},"facts":{"kind":"none"}}"#,
        )
        .expect("a result");
        r.facts = facts;
        r
    }

    fn json_len<T: serde::Serialize>(t: &T) -> usize {
        serde_json::to_vec(t).map_or(0, |v| v.len())
    }

    #[test]
    fn cut_keeps_char_boundaries_and_says_how_much() {
        let mut s = "é".repeat(5000);
        assert!(cut(&mut s, 100));
        assert!(s.len() <= 100, "{}", s.len());
        assert!(s.ends_with("…[10000 bytes cut]"), "{s}");
        let mut short = "ok".to_owned();
        assert!(!cut(&mut short, 100));
        assert_eq!(short, "ok");
    }

    #[test]
    fn a_result_within_the_limits_is_left_alone() {
        let mut r = result(Facts::None);
        r.message = Some("fine".into());
        let before = r.clone();
        assert!(!fit(&mut r));
        assert_eq!(r, before);
        assert_eq!(r.truncated, None);
    }

    #[test]
    fn a_thousand_failed_assets_and_a_huge_message_are_cut_to_fit() {
        let assets: Vec<AssetResult> = (0..1000)
            .map(|i| AssetResult {
                url: format!("https://cdn.example/{}/{i}.png", "a".repeat(3000)),
                status: Some(503),
                failure: Some(FailureKind::HttpStatus),
                total_ms: 12.0,
            })
            .collect();
        let mut r = result(Facts::Http(HttpFacts {
            url: "https://www.example/".into(),
            assets,
            ..HttpFacts::default()
        }));
        r.message = Some("x".repeat(1 << 20));
        assert!(fit(&mut r));
        assert!(
            r.message
                .as_ref()
                .is_some_and(|m| m.len() <= MAX_FIELD_BYTES)
        );
        assert!(
            json_len(&r.facts) <= MAX_FACTS_BYTES,
            "{}",
            json_len(&r.facts)
        );
        let Facts::Http(h) = &r.facts else {
            panic!("the facts are kept")
        };
        assert!(!h.assets.is_empty() && h.assets.len() <= MAX_LIST);
        let note = r.truncated.as_deref().unwrap_or_default();
        assert!(
            note.contains("message") && note.contains(&format!("assets: {MAX_LIST} of 1000 kept")),
            "{note}"
        );
        // Still a valid result on the wire.
        let back: CheckResult =
            serde_json::from_slice(&serde_json::to_vec(&r).expect("encode")).expect("decode");
        assert_eq!(back, r);
    }

    /// Issue 13, part 2: an edge that answers megabyte headers to every request of a
    /// content profile still yields a result within the limits, its facts kept.
    #[test]
    fn r13_long_caching_headers_and_extra_requests_are_cut_to_fit() {
        let long = || Some("h".repeat(1 << 20));
        let extra = |purpose| ExtraRequest {
            purpose,
            url: format!("https://cdn.example/{}", "u".repeat(1 << 20)),
            status: Some(404),
            cache: CacheStatus::Hit,
            age: Some(1),
            cache_control: long(),
            failure: None,
            total_ms: 1.0,
        };
        let mut r = result(Facts::Http(HttpFacts {
            url: "https://www.example/".into(),
            cache_control: long(),
            expires: long(),
            vary: long(),
            etag: long(),
            last_modified: long(),
            extra_requests: [
                RequestPurpose::WarmUp,
                RequestPurpose::CacheKey,
                RequestPurpose::Negative,
                RequestPurpose::NegativeRepeat,
            ]
            .into_iter()
            .map(extra)
            .collect(),
            ..HttpFacts::default()
        }));
        assert!(fit(&mut r));
        assert!(
            json_len(&r.facts) <= MAX_FACTS_BYTES,
            "{}",
            json_len(&r.facts)
        );
        let Facts::Http(h) = &r.facts else {
            panic!("the facts are kept: {:?}", r.truncated)
        };
        assert!(
            h.cache_control
                .as_ref()
                .is_some_and(|c| c.len() <= MAX_FIELD_BYTES)
        );
        assert!(!h.extra_requests.is_empty());
        assert!(
            h.extra_requests
                .iter()
                .all(|e| e.url.len() <= MAX_FIELD_BYTES)
        );
    }

    #[test]
    fn dns_servers_and_answers_are_bounded() {
        let server = |i: usize| DnsServerResult {
            server: format!("ns{i}.example"),
            address: format!("192.0.2.{}:53", i % 250 + 1).parse().expect("addr"),
            status: Status::Fail,
            failure: Some(FailureKind::DnsAnswerMismatch),
            message: Some("m".repeat(10_000)),
            rcode: Some("NOERROR".into()),
            authoritative: Some(true),
            tcp: false,
            answers: (0..500)
                .map(|a| format!("198.51.100.{}", a % 250))
                .collect(),
            soa_serial: Some(1),
            rrsig: None,
            nsid: None,
            rtt_ms: Some(1.0),
        };
        let mut r = result(Facts::Dns(DnsFacts {
            qname: "www.example".into(),
            qtype: "A".into(),
            servers: (0..1000).map(server).collect(),
            ..DnsFacts::default()
        }));
        assert!(fit(&mut r));
        assert!(
            json_len(&r.facts) <= MAX_FACTS_BYTES,
            "{}",
            json_len(&r.facts)
        );
        let Facts::Dns(d) = &r.facts else {
            panic!("the facts are kept")
        };
        assert!(!d.servers.is_empty());
        assert!(d.servers.iter().all(|s| s.answers.len() <= MAX_LIST));
        let note = r.truncated.as_deref().unwrap_or_default();
        assert!(
            note.contains(&format!("servers: {MAX_LIST} of 1000 kept")),
            "{note}"
        );
    }
}
