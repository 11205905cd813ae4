//! `kind = "dns"` end to end: real NSD servers on loopback, checks written in TOML, run
//! through `exec::run_check`.
//!
//! The scenario: a parent zone `vantage.test` delegating `example.vantage.test` to
//! `ns1`/`ns2.example.vantage.test`, and the child zone served by two NSD instances ("child-a"
//! and "child-b") on different ports of 127.0.0.1. NS records cannot carry ports, so most
//! checks name their servers with ports; the discovery test instead runs NSD on port 53 of
//! several 127.53.x.y addresses, which the zone's NS names resolve to.

use std::net::{IpAddr, SocketAddr};

use vantage_checks::model::Check;
use vantage_checks::result::{CheckResult, DnsFacts, DnsServerResult, Facts, FailureKind, Status};
use vantage_e2e::dns::{Nsd, Zone, free_loopback_on_port_53};
use vantage_e2e::free_port;

const CHILD: &str = "example.vantage.test";
const PARENT: &str = "vantage.test";
const WWW: [&str; 2] = ["192.0.2.10", "192.0.2.11"];
/// Records in `big.example.vantage.test`: 100 A records are about 1,600 bytes, more than the
/// 1,232-byte EDNS buffer the executor offers, so NSD must truncate over UDP.
const BIG: usize = 100;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The child zone with `serial`; the NS names' addresses are given (glue in the parent).
fn child_zone(serial: u32, ns1: &[IpAddr], ns2: &[IpAddr]) -> Zone {
    let mut records = String::from("@ IN NS ns1\n@ IN NS ns2\n");
    for ip in ns1 {
        records.push_str(&format!("ns1 IN A {ip}\n"));
    }
    for ip in ns2 {
        records.push_str(&format!("ns2 IN A {ip}\n"));
    }
    for ip in WWW {
        records.push_str(&format!("www IN A {ip}\n"));
    }
    for i in 0..BIG {
        records.push_str(&format!("big IN A 10.0.{}.{}\n", i / 250, i % 250 + 1));
    }
    records.push_str("@ IN MX 10 mail\nmail IN A 192.0.2.25\n");
    Zone::new(CHILD, serial, &records)
}

/// The parent zone, delegating the child to `delegated` (names relative to the child).
fn parent_zone(delegated: &[&str]) -> Zone {
    let mut records = String::from("@ IN NS ns1\nns1 IN A 127.0.0.1\n");
    for ns in delegated {
        records.push_str(&format!(
            "example IN NS {ns}.example\n{ns}.example IN A 127.0.0.1\n"
        ));
    }
    Zone::new(PARENT, 1, &records)
}

fn local() -> Vec<IpAddr> {
    vec![IpAddr::from([127, 0, 0, 1])]
}

/// Two NSD instances serving the child zone with the given serials.
fn two_children(serial_a: u32, serial_b: u32) -> (Nsd, Nsd) {
    let a = Nsd::start(
        "child-a",
        &[loopback(free_port())],
        &[child_zone(serial_a, &local(), &local())],
    );
    let b = Nsd::start(
        "child-b",
        &[loopback(free_port())],
        &[child_zone(serial_b, &local(), &local())],
    );
    (a, b)
}

/// One DNS check from its TOML keys (timeout 2s, no retry, so a failure is the first attempt's).
fn check(keys: &str) -> Check {
    vantage_e2e::check_from_toml("dns", "2s", keys)
}

fn servers(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    format!("servers = [{}]", list.join(", "))
}

fn run(check: &Check) -> CheckResult {
    vantage_e2e::run_once(check)
}

fn dns_facts(result: &CheckResult) -> &DnsFacts {
    match &result.facts {
        Facts::Dns(f) => f,
        other => panic!("expected dns facts, got {other:?} in {result:#?}"),
    }
}

fn server(result: &CheckResult, addr: SocketAddr) -> &DnsServerResult {
    dns_facts(result)
        .servers
        .iter()
        .find(|s| s.address == addr)
        .unwrap_or_else(|| panic!("no result for {addr} in {result:#?}"))
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[test]
fn both_children_answer_authoritatively_with_nsid() {
    let (a, b) = two_children(2024010101, 2024010101);
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\", type = \"A\" }}\n{}\n\
         expect = {{ answers = [\"{}\", \"{}\"] }}\nconsistent_soa = true",
        servers(&[a.addr(), b.addr()]),
        WWW[0],
        WWW[1]
    ));
    let r = run(&c);
    assert_eq!(r.status, Status::Ok, "{r:#?}\n{}", a.log());
    assert_eq!(dns_facts(&r).servers.len(), 2);
    for (nsd, nsid) in [(&a, "child-a"), (&b, "child-b")] {
        let s = server(&r, nsd.addr());
        assert_eq!(s.status, Status::Ok);
        assert_eq!(s.rcode.as_deref(), Some("NOERROR"));
        assert_eq!(s.authoritative, Some(true));
        assert_eq!(sorted(&s.answers), WWW.map(str::to_owned).to_vec());
        assert_eq!(s.nsid.as_deref(), Some(nsid));
        assert_eq!(s.soa_serial, Some(2024010101));
        assert!(!s.tcp);
        assert!(s.rtt_ms.is_some_and(|ms| ms > 0.0), "{s:?}");
    }
    assert!(r.timings.first_byte_ms.is_some());
    assert!(
        r.timings.resolve_ms.is_none(),
        "servers given as addresses need no resolution"
    );
    assert!(dns_facts(&r).laggards.is_empty());
}

#[test]
fn mx_answers_are_normalised() {
    let (a, _b) = two_children(1, 1);
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"{CHILD}\", type = \"MX\" }}\n{}\n\
         expect = {{ answers = [\"10 mail.{CHILD}.\"] }}",
        servers(&[a.addr()])
    ));
    let r = run(&c);
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(
        server(&r, a.addr()).answers,
        vec![format!("10 mail.{CHILD}")]
    );
}

#[test]
fn differing_soa_serials_name_the_laggard() {
    let (a, b) = two_children(2024010102, 2024010101);
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\n{}\nconsistent_soa = true",
        servers(&[a.addr(), b.addr()])
    ));
    let r = run(&c);
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.failure, Some(FailureKind::SoaSerialMismatch), "{r:#?}");
    assert_eq!(
        dns_facts(&r).laggards,
        vec![format!("127.0.0.1 ({})", b.addr())]
    );
    assert_eq!(server(&r, a.addr()).soa_serial, Some(2024010102));
    assert_eq!(server(&r, a.addr()).status, Status::Ok);
    assert_eq!(server(&r, b.addr()).soa_serial, Some(2024010101));
    assert_eq!(
        server(&r, b.addr()).failure,
        Some(FailureKind::SoaSerialMismatch)
    );
    let message = r.message.clone().unwrap_or_default();
    for needle in [
        b.addr().to_string(),
        "2024010101".to_owned(),
        "2024010102".to_owned(),
    ] {
        assert!(
            message.contains(&needle),
            "message lacks {needle}: {message}"
        );
    }
}

#[test]
fn a_stopped_server_times_out_alone() {
    let (a, mut b) = two_children(7, 7);
    b.stop();
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\n{}",
        servers(&[a.addr(), b.addr()])
    ));
    let r = run(&c);
    assert_eq!(r.failure, Some(FailureKind::DnsTimeout), "{r:#?}");
    assert_eq!(server(&r, b.addr()).failure, Some(FailureKind::DnsTimeout));
    assert_eq!(server(&r, b.addr()).rcode, None);
    let alive = server(&r, a.addr());
    assert_eq!(
        (alive.status, alive.failure),
        (Status::Ok, None),
        "{alive:?}"
    );
    assert_eq!(alive.nsid.as_deref(), Some("child-a"));
    let message = r.message.clone().unwrap_or_default();
    assert!(message.contains(&b.addr().to_string()), "{message}");
    assert!(
        !message.contains(&a.addr().to_string()),
        "the live server is not to blame: {message}"
    );
    assert!(
        r.timings.total_ms < 2000.0,
        "one dead server must not time the run out: {r:#?}"
    );
}

#[test]
fn a_wrong_answer_is_a_mismatch() {
    let (a, _b) = two_children(1, 1);
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\n{}\n\
         expect = {{ answers = [\"192.0.2.99\"] }}",
        servers(&[a.addr()])
    ));
    let r = run(&c);
    assert_eq!(r.failure, Some(FailureKind::DnsAnswerMismatch), "{r:#?}");
    let s = server(&r, a.addr());
    assert_eq!(sorted(&s.answers), WWW.map(str::to_owned).to_vec());
    let message = r.message.clone().unwrap_or_default();
    assert!(
        message.contains("192.0.2.99") && message.contains(&a.addr().to_string()),
        "{message}"
    );
}

#[test]
fn a_referral_from_the_parent_is_not_authoritative() {
    let parent = Nsd::start(
        "parent",
        &[loopback(free_port())],
        &[parent_zone(&["ns1", "ns2"])],
    );
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\n{}",
        servers(&[parent.addr()])
    ));
    let r = run(&c);
    assert_eq!(r.failure, Some(FailureKind::DnsNotAuthoritative), "{r:#?}");
    let s = server(&r, parent.addr());
    assert_eq!(s.rcode.as_deref(), Some("NOERROR"));
    assert_eq!(s.authoritative, Some(false));
    assert!(s.answers.is_empty());
    assert!(
        s.message
            .as_deref()
            .unwrap_or_default()
            .contains("referral"),
        "{s:?}"
    );
}

#[test]
fn a_server_without_the_zone_refuses() {
    let stranger = Nsd::start(
        "stranger",
        &[loopback(free_port())],
        &[Zone::new(
            "other.test",
            1,
            "@ IN NS ns1\nns1 IN A 127.0.0.1",
        )],
    );
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\n{}",
        servers(&[stranger.addr()])
    ));
    let r = run(&c);
    assert_eq!(r.failure, Some(FailureKind::DnsRefused), "{r:#?}");
    assert_eq!(
        server(&r, stranger.addr()).rcode.as_deref(),
        Some("REFUSED")
    );
}

#[test]
fn a_truncated_answer_is_fetched_over_tcp() {
    let (a, _b) = two_children(1, 1);
    let expected: Vec<String> = (0..BIG)
        .map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let quoted: Vec<String> = expected.iter().map(|ip| format!("\"{ip}\"")).collect();
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"big.{CHILD}\" }}\n{}\n\
         expect = {{ answers = [{}] }}",
        servers(&[a.addr()]),
        quoted.join(", ")
    ));
    let r = run(&c);
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let s = server(&r, a.addr());
    assert!(
        s.tcp,
        "a {BIG}-record answer cannot fit 1232 bytes of UDP: {s:?}"
    );
    assert_eq!(s.answers.len(), BIG);

    // And `transport = "tcp"` goes straight to TCP for a small answer too.
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\n{}\ntransport = \"tcp\"",
        servers(&[a.addr()])
    ));
    let r = run(&c);
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert!(server(&r, a.addr()).tcp);
}

#[test]
fn discovery_finds_every_address_of_every_ns_name() {
    // ns1 has two addresses, ns2 one, and ns3 lives outside the zone (no glue in the answer
    // for it, so the executor must ask the resolver). All are NSD on port 53.
    let ips: Vec<IpAddr> = (0..4).map(|_| free_loopback_on_port_53()).collect();
    let resolver_addr = loopback(free_port());
    let mut listen: Vec<SocketAddr> = vec![resolver_addr];
    listen.extend(ips.iter().map(|&ip| SocketAddr::new(ip, 53)));
    let mut zone = child_zone(5, &ips[0..2], &ips[2..3]);
    zone.text.push_str("@ IN NS ns3.elsewhere.test.\n");
    let elsewhere = Zone::new(
        "elsewhere.test",
        1,
        &format!("@ IN NS ns3\nns3 IN A {}", ips[3]),
    );
    // The same NSD is the "resolver": it answers the NS and address questions authoritatively.
    let nsd = Nsd::start("child-d", &listen, &[zone, elsewhere]);
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\nservers = \"authoritative\"\n\
         resolver = \"{resolver_addr}\"\nconsistent_soa = true\n\
         expect = {{ answers = [\"{}\", \"{}\"] }}",
        WWW[0], WWW[1]
    ));
    let r = run(&c);
    assert_eq!(r.status, Status::Ok, "{r:#?}\n{}", nsd.log());
    let mut found: Vec<(String, SocketAddr)> = dns_facts(&r)
        .servers
        .iter()
        .map(|s| (s.server.clone(), s.address))
        .collect();
    found.sort();
    let mut want = vec![
        (format!("ns1.{CHILD}"), SocketAddr::new(ips[0], 53)),
        (format!("ns1.{CHILD}"), SocketAddr::new(ips[1], 53)),
        (format!("ns2.{CHILD}"), SocketAddr::new(ips[2], 53)),
        ("ns3.elsewhere.test".to_owned(), SocketAddr::new(ips[3], 53)),
    ];
    want.sort();
    assert_eq!(found, want, "{r:#?}");
    for s in &dns_facts(&r).servers {
        assert_eq!(
            (s.authoritative, s.soa_serial),
            (Some(true), Some(5)),
            "{s:?}"
        );
        assert_eq!(s.nsid.as_deref(), Some("child-d"));
    }
    assert!(r.timings.resolve_ms.is_some());

    // A server given by name is resolved through the same resolver, every address asked.
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\nservers = [\"ns1.{CHILD}\"]\n\
         resolver = \"{resolver_addr}\""
    ));
    let r = run(&c);
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let mut found: Vec<(String, SocketAddr)> = dns_facts(&r)
        .servers
        .iter()
        .map(|s| (s.server.clone(), s.address))
        .collect();
    found.sort();
    let mut want = vec![
        (format!("ns1.{CHILD}"), SocketAddr::new(ips[0], 53)),
        (format!("ns1.{CHILD}"), SocketAddr::new(ips[1], 53)),
    ];
    want.sort();
    assert_eq!(found, want);
    assert!(r.timings.resolve_ms.is_some());
}

#[test]
fn a_delegation_equal_to_the_apex_passes() {
    let parent = Nsd::start(
        "parent",
        &[loopback(free_port())],
        &[parent_zone(&["ns1", "ns2"])],
    );
    let (a, b) = two_children(3, 3);
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\n{}\n\
         parent_servers = [\"{}\"]\nconsistent_delegation = true",
        servers(&[a.addr(), b.addr()]),
        parent.addr()
    ));
    let r = run(&c);
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let delegation = dns_facts(&r).delegation.clone().expect("delegation facts");
    let ns = vec![format!("ns1.{CHILD}"), format!("ns2.{CHILD}")];
    assert_eq!(delegation.parent, ns);
    assert_eq!(delegation.child, ns);
}

#[test]
fn a_delegation_differing_from_the_apex_fails() {
    let parent = Nsd::start(
        "parent",
        &[loopback(free_port())],
        &[parent_zone(&["ns1", "ns3"])],
    );
    let (a, _b) = two_children(3, 3);
    let c = check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"www.{CHILD}\" }}\n{}\n\
         parent_servers = [\"{}\"]\nconsistent_delegation = true",
        servers(&[a.addr()]),
        parent.addr()
    ));
    let r = run(&c);
    assert_eq!(r.failure, Some(FailureKind::DelegationMismatch), "{r:#?}");
    let delegation = dns_facts(&r).delegation.clone().expect("delegation facts");
    assert_eq!(
        delegation.parent,
        vec![format!("ns1.{CHILD}"), format!("ns3.{CHILD}")]
    );
    assert_eq!(
        delegation.child,
        vec![format!("ns1.{CHILD}"), format!("ns2.{CHILD}")]
    );
    assert_eq!(
        server(&r, a.addr()).status,
        Status::Ok,
        "the server itself answered well"
    );
    let message = r.message.clone().unwrap_or_default();
    assert!(
        message.contains(&parent.addr().to_string()) && message.contains(&format!("ns3.{CHILD}")),
        "{message}"
    );
}

/// Now, in Unix seconds, for signature times.
fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

const DAY: i64 = 86_400;

/// A `www A` check of the child with `dnssec = { valid_for = "7d" }` against `addrs`.
fn dnssec_check(qname: &str, rcode: &str, addrs: &[SocketAddr]) -> Check {
    check(&format!(
        "zone = \"{CHILD}\"\nquery = {{ name = \"{qname}\", type = \"A\" }}\n{}\n\
         expect = {{ rcode = \"{rcode}\" }}\ndnssec = {{ valid_for = \"7d\" }}",
        servers(addrs)
    ))
}

#[test]
fn dnssec_a_zone_signed_by_ldns_passes_and_its_signatures_verify() {
    let key = vantage_e2e::dns::SigningKey::generate(CHILD);
    let now = unix_now();
    let expiration = now + 30 * DAY;
    let zone = child_zone(1, &local(), &local()).signed(&key, now - DAY, expiration);
    let nsd = Nsd::start("signed", &[loopback(free_port())], &[zone]);

    let r = run(&dnssec_check(
        &format!("www.{CHILD}"),
        "NOERROR",
        &[nsd.addr()],
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}\n{}", nsd.log());
    let rrsig = server(&r, nsd.addr())
        .rrsig
        .clone()
        .expect("the RRSIG judged");
    assert!(rrsig.verified, "{rrsig:?}");
    assert_eq!((rrsig.covers.as_str(), rrsig.signer.as_str()), ("A", CHILD));
    assert_eq!((rrsig.algorithm, rrsig.key_tag), (13, key.key_tag()));
    assert_eq!(rrsig.expiration, rfc3339(expiration));
    assert_eq!(rrsig.inception, rfc3339(now - DAY));

    // A negative answer is judged by the SOA of its authority section.
    let r = run(&dnssec_check(
        &format!("nothere.{CHILD}"),
        "NXDOMAIN",
        &[nsd.addr()],
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let rrsig = server(&r, nsd.addr())
        .rrsig
        .clone()
        .expect("the RRSIG judged");
    assert_eq!(rrsig.covers, "SOA");
    assert!(rrsig.verified);

    // A signed answer too big for UDP comes over TCP, signature and all.
    let r = run(&dnssec_check(
        &format!("big.{CHILD}"),
        "NOERROR",
        &[nsd.addr()],
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert!(server(&r, nsd.addr()).tcp, "{r:#?}");
}

#[test]
fn dnssec_each_server_fails_on_its_own_naming_itself_and_the_expiry() {
    let key = vantage_e2e::dns::SigningKey::generate(CHILD);
    let tag = key.key_tag();
    let now = unix_now();
    let plain = child_zone(1, &local(), &local());
    let signed = |inception: i64, expiration: i64| plain.signed(&key, inception, expiration);
    // The valid copy, with one A record changed after signing.
    let mut tampered = signed(now - DAY, now + 30 * DAY);
    let before = tampered.text.clone();
    tampered.text = tampered
        .text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("www.{CHILD}.")) && l.ends_with(&format!("A\t{}", WWW[0])) {
                l.replace(WWW[0], "192.0.2.99")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(tampered.text, before, "no www A record to tamper with");

    let cases: [(&str, Zone, Option<FailureKind>); 6] = [
        ("valid", signed(now - DAY, now + 30 * DAY), None),
        (
            "soon",
            signed(now - DAY, now + 2 * DAY),
            Some(FailureKind::RrsigExpiresSoon),
        ),
        (
            "expired",
            signed(now - 10 * DAY, now - DAY),
            Some(FailureKind::RrsigExpired),
        ),
        (
            "future",
            signed(now + DAY, now + 30 * DAY),
            Some(FailureKind::RrsigNotYetValid),
        ),
        ("unsigned", plain.clone(), Some(FailureKind::RrsigMissing)),
        ("tampered", tampered, Some(FailureKind::DnssecInvalid)),
    ];
    let nsds: Vec<(Nsd, Option<FailureKind>)> = cases
        .into_iter()
        .map(|(nsid, zone, want)| (Nsd::start(nsid, &[loopback(free_port())], &[zone]), want))
        .collect();
    let addrs: Vec<SocketAddr> = nsds.iter().map(|(n, _)| n.addr()).collect();
    let r = run(&dnssec_check(&format!("www.{CHILD}"), "NOERROR", &addrs));

    // Missing ranks first of these; every failing server is named in the message.
    assert_eq!(r.failure, Some(FailureKind::RrsigMissing), "{r:#?}");
    let message = r.message.clone().unwrap_or_default();
    assert!(message.starts_with("5 of 6 servers failed: "), "{message}");
    for (nsd, want) in &nsds {
        let s = server(&r, nsd.addr());
        assert_eq!(s.failure, *want, "{}: {s:#?}\n{}", nsd.addr(), nsd.log());
        match want {
            None => assert!(!message.contains(&nsd.addr().to_string()), "{message}"),
            Some(kind) => assert!(
                message.contains(&format!("127.0.0.1 ({}) {}: ", nsd.addr(), kind.as_label())),
                "{message}"
            ),
        }
    }
    let sig = format!("RRSIG (key {tag}, algorithm 13, signer {CHILD}) over `www.{CHILD} A`");
    for expected in [
        // The run is a few seconds after `now`: the spans are checked by their times.
        format!("{sig} expires at {}, in ", rfc3339(now + 2 * DAY)),
        "within valid_for of 7days".to_owned(),
        format!("{sig} expired at {}, 1day", rfc3339(now - DAY)),
        format!("{sig} is not valid before {}, in ", rfc3339(now + DAY)),
        format!("no RRSIG over `www.{CHILD} A`: the answer is unsigned"),
        format!(
            "no RRSIG over `www.{CHILD} A` verifies against the DNSKEY set of `{CHILD}` this \
             server serves"
        ),
    ] {
        assert!(
            message.contains(&expected),
            "`{expected}` not in: {message}"
        );
    }
}
