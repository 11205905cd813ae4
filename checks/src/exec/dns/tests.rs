//! The executor against in-process fake servers on 127.0.0.1:0 that can drop, garble,
//! truncate, SERVFAIL or serve a stale serial.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::*;
use crate::model::{AnswerExpect, DnsCheck, DnsServers, DnsTransport, HostPort};
use crate::result::{Facts, FailureKind, Status};

/// What a fake server does with one query.
enum Reply {
    Message(Message),
    /// Several raw packets, in order (UDP only).
    Packets(Vec<Vec<u8>>),
    Drop,
}

type Responder = Arc<dyn Fn(&Message, bool) -> Reply + Send + Sync>;

/// Where each query a fake server received came from, and whether over TCP, in arrival order.
type Peers = Arc<Mutex<Vec<(SocketAddr, bool)>>>;

/// Starts a fake server on UDP and TCP of one loopback port; it lives as long as the runtime.
async fn fake(responder: impl Fn(&Message, bool) -> Reply + Send + Sync + 'static) -> SocketAddr {
    fake_recording(responder).await.0
}

/// [`fake`], also recording where each query came from.
async fn fake_recording(
    responder: impl Fn(&Message, bool) -> Reply + Send + Sync + 'static,
) -> (SocketAddr, Peers) {
    let responder: Responder = Arc::new(responder);
    let peers: Peers = Arc::default();
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().expect("addr");
    let r = responder.clone();
    let seen = peers.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            seen.lock().expect("peers").push((peer, false));
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let packets = match r(&query, false) {
                Reply::Message(m) => vec![m.to_vec().expect("encode")],
                Reply::Packets(p) => p,
                Reply::Drop => continue,
            };
            for p in packets {
                let _ = udp.send_to(&p, peer).await;
            }
        }
    });
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = tcp.accept().await {
            seen.lock().expect("peers").push((peer, true));
            let r = responder.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let Ok(query) = Message::from_vec(&buf) else {
                    return;
                };
                if let Reply::Message(m) = r(&query, true) {
                    let bytes = m.to_vec().expect("encode");
                    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&bytes);
                    let _ = stream.write_all(&framed).await;
                }
            });
        }
    });
    (addr, peers)
}

fn name(s: &str) -> Name {
    Name::from_str(s).expect("test name")
}

/// An authoritative response echoing the question, with an NSID when asked for.
fn response(query: &Message, nsid: &str) -> Message {
    let mut m = Message::response(query.metadata.id, OpCode::Query);
    m.metadata.authoritative = true;
    m.add_queries(query.queries.iter().cloned());
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    let asked_nsid = query.edns.as_ref().is_some_and(|e| {
        e.option(hickory_proto::rr::rdata::opt::EdnsCode::NSID)
            .is_some()
    });
    if asked_nsid {
        edns.options_mut().insert(EdnsOption::NSID(
            NSIDPayload::new(nsid.as_bytes().to_vec()).expect("nsid"),
        ));
    }
    m.set_edns(edns);
    m
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::from(ip))))
}

fn soa(zone: &str, serial: u32) -> Record {
    let data = SOA::new(
        name(&format!("ns1.{zone}")),
        name(&format!("hostmaster.{zone}")),
        serial,
        3600,
        600,
        86400,
        60,
    );
    Record::from_rdata(name(zone), 60, RData::SOA(data))
}

/// A server for `example.test.` answering `www A` with 192.0.2.10 and the SOA with `serial`.
fn zone_server(
    nsid: &'static str,
    serial: u32,
) -> impl Fn(&Message, bool) -> Reply + Send + Sync + 'static {
    move |q, _tcp| {
        let mut m = response(q, nsid);
        match q.queries.first().map(|q| q.query_type()) {
            Some(RecordType::SOA) => {
                m.add_answer(soa("example.test.", serial));
            }
            Some(RecordType::A) => {
                m.add_answer(a("www.example.test.", [192, 0, 2, 10]));
            }
            _ => {}
        }
        Reply::Message(m)
    }
}

fn check(servers: &[SocketAddr]) -> DnsCheck {
    DnsCheck {
        zone: Some(name("example.test.")),
        query_name: name("www.example.test."),
        query_type: RecordType::A,
        servers: DnsServers::List(
            servers
                .iter()
                .map(|a| HostPort {
                    host: a.ip().to_string(),
                    port: a.port(),
                })
                .collect(),
        ),
        resolver: None,
        parent_servers: Vec::new(),
        transport: DnsTransport::Udp,
        nsid: true,
        rcode: ResponseCode::NoError,
        authoritative: Some(true),
        answers: AnswerExpect::Exact(vec!["192.0.2.10".to_owned()]),
        consistent_soa: false,
        consistent_delegation: false,
        dnssec: None,
    }
}

async fn observe(check: &DnsCheck, timeout: Duration) -> (Observation, DnsFacts) {
    let obs = run_with(check, timeout, None, Path::new("/nonexistent/resolv.conf"))
        .await
        .expect("no probe error");
    let Facts::Dns(facts) = obs.facts.clone() else {
        panic!("dns facts expected, got {:?}", obs.facts)
    };
    (obs, facts)
}

fn server(facts: &DnsFacts, addr: SocketAddr) -> &DnsServerResult {
    facts
        .servers
        .iter()
        .find(|s| s.address == addr)
        .unwrap_or_else(|| panic!("no result for {addr}: {facts:?}"))
}

#[tokio::test]
async fn a_good_server_passes_with_nsid_and_rtt() {
    let good = fake(zone_server("fake-1", 1)).await;
    let (obs, facts) = observe(&check(&[good]), Duration::from_secs(2)).await;
    assert_eq!(obs.status, Status::Ok, "{obs:?}");
    let s = server(&facts, good);
    assert_eq!(s.rcode.as_deref(), Some("NOERROR"));
    assert_eq!(s.authoritative, Some(true));
    assert_eq!(s.answers, vec!["192.0.2.10"]);
    assert_eq!(s.nsid.as_deref(), Some("fake-1"));
    assert!(s.rtt_ms.is_some() && !s.tcp);
    assert_eq!(
        obs.timings.resolve_ms, None,
        "literal servers need no resolution"
    );
    assert_eq!(facts.qname, "www.example.test");
    assert_eq!(facts.qtype, "A");
}

#[tokio::test]
async fn a_silent_server_times_out_alone_within_the_budget() {
    let good = fake(zone_server("fake-1", 1)).await;
    let silent = fake(|_, _| Reply::Drop).await;
    let timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let (obs, facts) = observe(&check(&[good, silent]), timeout).await;
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
    assert_eq!(obs.failure, Some(FailureKind::DnsTimeout), "{obs:?}");
    assert_eq!(server(&facts, good).status, Status::Ok);
    assert_eq!(
        server(&facts, silent).failure,
        Some(FailureKind::DnsTimeout)
    );
    let message = obs.message.unwrap_or_default();
    assert!(
        message.contains(&silent.to_string()) && !message.contains(&good.to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn packets_with_another_id_are_ignored() {
    let server_addr = fake(|q, _| {
        let mut stray = response(q, "x");
        stray.metadata.id = q.metadata.id.wrapping_add(1);
        stray.add_answer(a("www.example.test.", [198, 51, 100, 1]));
        let mut real = response(q, "x");
        real.add_answer(a("www.example.test.", [192, 0, 2, 10]));
        Reply::Packets(vec![
            stray.to_vec().expect("encode"),
            real.to_vec().expect("encode"),
        ])
    })
    .await;
    let (obs, _) = observe(&check(&[server_addr]), Duration::from_secs(2)).await;
    assert_eq!(obs.status, Status::Ok, "{obs:?}");
}

#[tokio::test]
async fn an_answer_to_another_question_is_a_bad_response() {
    let server_addr = fake(|q, _| {
        let mut m = Message::response(q.metadata.id, OpCode::Query);
        m.metadata.authoritative = true;
        m.add_query(hickory_proto::op::Query::query(
            name("evil.example.test."),
            RecordType::A,
        ));
        m.add_answer(a("evil.example.test.", [192, 0, 2, 10]));
        Reply::Message(m)
    })
    .await;
    let (obs, facts) = observe(&check(&[server_addr]), Duration::from_millis(600)).await;
    assert_eq!(obs.failure, Some(FailureKind::DnsBadResponse), "{obs:?}");
    assert!(
        facts.servers[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("evil.example.test")
    );
}

#[tokio::test]
async fn a_truncated_udp_answer_is_asked_again_over_tcp() {
    let server_addr = fake(|q, tcp| {
        let mut m = response(q, "tc");
        if tcp {
            m.add_answer(a("www.example.test.", [192, 0, 2, 10]));
        } else {
            m.metadata.truncation = true;
        }
        Reply::Message(m)
    })
    .await;
    let (obs, facts) = observe(&check(&[server_addr]), Duration::from_secs(2)).await;
    assert_eq!(obs.status, Status::Ok, "{obs:?}");
    assert!(facts.servers[0].tcp);
    assert_eq!(facts.servers[0].answers, vec!["192.0.2.10"]);
}

#[tokio::test]
async fn transport_tcp_never_uses_udp() {
    let server_addr = fake(|q, tcp| {
        if !tcp {
            return Reply::Drop;
        }
        let mut m = response(q, "tcp");
        m.add_answer(a("www.example.test.", [192, 0, 2, 10]));
        Reply::Message(m)
    })
    .await;
    let mut c = check(&[server_addr]);
    c.transport = DnsTransport::Tcp;
    let started = Instant::now();
    let (obs, facts) = observe(&c, Duration::from_secs(2)).await;
    assert_eq!(obs.status, Status::Ok, "{obs:?}");
    assert!(facts.servers[0].tcp);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "waited on UDP: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn servfail_outranks_an_answer_mismatch_and_both_are_named() {
    let servfail = fake(|q, _| {
        let mut m = response(q, "sf");
        m.metadata.response_code = ResponseCode::ServFail;
        Reply::Message(m)
    })
    .await;
    let wrong = fake(|q, _| {
        let mut m = response(q, "w");
        m.add_answer(a("www.example.test.", [198, 51, 100, 7]));
        Reply::Message(m)
    })
    .await;
    let (obs, facts) = observe(&check(&[wrong, servfail]), Duration::from_secs(2)).await;
    assert_eq!(obs.failure, Some(FailureKind::DnsServfail), "{obs:?}");
    assert_eq!(
        server(&facts, wrong).failure,
        Some(FailureKind::DnsAnswerMismatch)
    );
    assert_eq!(server(&facts, servfail).rcode.as_deref(), Some("SERVFAIL"));
    let message = obs.message.unwrap_or_default();
    assert!(message.starts_with("2 of 2 servers failed"), "{message}");
    let (sf_at, wrong_at) = (
        message.find("dns_servfail"),
        message.find("dns_answer_mismatch"),
    );
    assert!(
        sf_at.is_some() && wrong_at.is_some() && sf_at < wrong_at,
        "{message}"
    );
    assert!(message.contains("198.51.100.7"), "{message}");
}

#[tokio::test]
async fn an_answer_without_aa_is_not_authoritative() {
    let server_addr = fake(|q, _| {
        let mut m = response(q, "cache");
        m.metadata.authoritative = false;
        m.add_answer(a("www.example.test.", [192, 0, 2, 10]));
        Reply::Message(m)
    })
    .await;
    let (obs, _) = observe(&check(&[server_addr]), Duration::from_secs(2)).await;
    assert_eq!(
        obs.failure,
        Some(FailureKind::DnsNotAuthoritative),
        "{obs:?}"
    );
}

#[tokio::test]
async fn a_lagging_serial_is_named_across_the_wrap_around() {
    // 1 is newer than 4294967295 in RFC 1982 arithmetic.
    let old = fake(zone_server("old", u32::MAX)).await;
    let new = fake(zone_server("new", 1)).await;
    let mut c = check(&[new, old]);
    c.consistent_soa = true;
    let (obs, facts) = observe(&c, Duration::from_secs(2)).await;
    assert_eq!(obs.failure, Some(FailureKind::SoaSerialMismatch), "{obs:?}");
    assert_eq!(facts.laggards, vec![format!("127.0.0.1 ({old})")]);
    assert_eq!(server(&facts, old).soa_serial, Some(u32::MAX));
    assert_eq!(server(&facts, new).status, Status::Ok);
    let message = obs.message.unwrap_or_default();
    assert!(
        message.contains(&format!("({old}) serves 4294967295, behind 1")),
        "{message}"
    );

    let same = fake(zone_server("same", 1)).await;
    let mut c = check(&[new, same]);
    c.consistent_soa = true;
    let (obs, facts) = observe(&c, Duration::from_secs(2)).await;
    assert_eq!(obs.status, Status::Ok, "{obs:?}");
    assert!(facts.laggards.is_empty());
}

/// A resolver that refers `example.test NS` to ns1 (with glue) and ns2.other.test (without),
/// and answers ns2's A itself. Nothing listens on 127.66.0.x:53, so both discovered servers
/// fail; the point is which addresses were found.
#[tokio::test]
async fn discovery_follows_a_referral_and_resolves_unglued_names() {
    let resolver = fake(|q, _| {
        let mut m = response(q, "resolver");
        m.metadata.authoritative = false;
        let Some(question) = q.queries.first() else {
            return Reply::Drop;
        };
        let qname = question.name().to_ascii();
        match (qname.as_str(), question.query_type()) {
            ("example.test.", RecordType::NS) => {
                for ns in ["ns1.example.test.", "ns2.other.test."] {
                    m.add_authority(Record::from_rdata(
                        name("example.test."),
                        60,
                        RData::NS(NS(name(ns))),
                    ));
                }
                m.add_additional(a("ns1.example.test.", [127, 66, 0, 1]));
            }
            ("ns2.other.test.", RecordType::A) => {
                m.add_answer(a("ns2.other.test.", [127, 66, 0, 2]));
            }
            _ => {}
        }
        Reply::Message(m)
    })
    .await;
    let mut c = check(&[]);
    c.servers = DnsServers::Authoritative;
    c.resolver = Some(resolver);
    let (obs, facts) = observe(&c, Duration::from_millis(800)).await;
    let found: Vec<(String, String)> = facts
        .servers
        .iter()
        .map(|s| (s.server.clone(), s.address.to_string()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("ns1.example.test".to_owned(), "127.66.0.1:53".to_owned()),
            ("ns2.other.test".to_owned(), "127.66.0.2:53".to_owned()),
        ],
        "{obs:?}"
    );
    assert!(obs.timings.resolve_ms.is_some());
}

#[tokio::test]
async fn a_zone_without_ns_is_a_discovery_failure() {
    let resolver = fake(|q, _| {
        let mut m = response(q, "resolver");
        m.metadata.response_code = ResponseCode::NXDomain;
        Reply::Message(m)
    })
    .await;
    let mut c = check(&[]);
    c.servers = DnsServers::Authoritative;
    c.resolver = Some(resolver);
    let (obs, facts) = observe(&c, Duration::from_secs(1)).await;
    assert_eq!(obs.failure, Some(FailureKind::DnsDiscovery), "{obs:?}");
    assert!(obs.message.unwrap_or_default().contains("NXDOMAIN"));
    assert!(facts.servers.is_empty());
}

#[tokio::test]
async fn no_resolver_at_all_is_a_probe_error() {
    let mut c = check(&[]);
    c.servers = DnsServers::Authoritative;
    let err = run_with(
        &c,
        Duration::from_secs(1),
        None,
        Path::new("/nonexistent/resolv.conf"),
    )
    .await
    .expect_err("probe error");
    assert!(matches!(err, ExecError::LocalFile { .. }), "{err:?}");
}

#[test]
fn resolv_conf_first_usable_nameserver() {
    let text = "# comment\nsearch example.com\nnameserver fe80::1%eth0\nnameserver 10.0.0.1\n";
    assert_eq!(first_nameserver(text), Some("fe80::1".parse().expect("ip")));
    assert_eq!(
        first_nameserver("nameserver bogus\nnameserver 10.0.0.2"),
        Some("10.0.0.2".parse().expect("ip"))
    );
    assert_eq!(first_nameserver("search example.com\n"), None);
}

#[test]
fn delegation_differences_name_the_parent() {
    let target = Target {
        server: "a.parent".to_owned(),
        addr: "127.0.0.1:53".parse().expect("addr"),
    };
    let parents = vec![ParentAnswer {
        target,
        ns: Ok(vec![
            "ns1.example.test".to_owned(),
            "ns3.example.test".to_owned(),
        ]),
    }];
    let apex: BTreeSet<String> = ["ns1.example.test", "ns2.example.test"]
        .map(str::to_owned)
        .into();
    let mut facts = DnsFacts::default();
    let problem = compare_delegation(&name("example.test."), &parents, Some(&apex), &mut facts)
        .expect("mismatch");
    assert_eq!(problem.kind, FailureKind::DelegationMismatch);
    assert!(
        problem
            .text
            .contains("a.parent (127.0.0.1:53) delegates to [ns1.example.test, ns3.example.test]"),
        "{}",
        problem.text
    );
    let delegation = facts.delegation.expect("delegation facts");
    assert_eq!(
        delegation.parent,
        vec!["ns1.example.test", "ns3.example.test"]
    );
    assert_eq!(
        delegation.child,
        vec!["ns1.example.test", "ns2.example.test"]
    );
    let mut facts = DnsFacts::default();
    assert!(compare_delegation(&name("example.test."), &parents, None, &mut facts).is_none());
}

#[tokio::test]
async fn a_server_without_edns_is_asked_again_without_it() {
    let server_addr = fake(|q, _| {
        let mut m = Message::response(q.metadata.id, OpCode::Query);
        m.metadata.authoritative = true;
        m.add_queries(q.queries.iter().cloned());
        if q.edns.is_some() {
            // An EDNS-unaware server: FORMERR, and no OPT record in the reply.
            m.metadata.response_code = ResponseCode::FormErr;
        } else {
            m.add_answer(a("www.example.test.", [192, 0, 2, 10]));
        }
        Reply::Message(m)
    })
    .await;
    let (obs, facts) = observe(&check(&[server_addr]), Duration::from_secs(2)).await;
    assert_eq!(obs.status, Status::Ok, "{obs:?}");
    assert_eq!(facts.servers[0].nsid, None);
}

/// The probe's `source_address` for the tests below: on Linux all of 127/8 is local.
const SOURCE: [u8; 4] = [127, 0, 1, 9];

/// Every socket of a run leaves from the source address: the resolver's queries for a server
/// name, the UDP query, its TCP retry after truncation, and the parent's delegation query.
#[tokio::test]
async fn every_query_leaves_from_the_source_address() {
    // Serves `example.test`, truncating the A answer over UDP so that it is asked over TCP.
    let (zone_addr, zone_peers) = fake_recording(|q, tcp| {
        let mut m = response(q, "src");
        let record = match q.queries.first().map(|q| q.query_type()) {
            Some(RecordType::SOA) => soa("example.test.", 1),
            Some(RecordType::NS) => Record::from_rdata(
                name("example.test."),
                60,
                RData::NS(NS(name("ns.example.test."))),
            ),
            Some(RecordType::A) if tcp => a("www.example.test.", [192, 0, 2, 10]),
            Some(RecordType::A) => {
                m.metadata.truncation = true;
                return Reply::Message(m);
            }
            _ => return Reply::Message(m),
        };
        m.add_answer(record);
        Reply::Message(m)
    })
    .await;
    let (resolver, resolver_peers) = fake_recording(|q, _| {
        let mut m = response(q, "resolver");
        m.metadata.authoritative = false;
        if let Some(question) = q.queries.first()
            && question.query_type() == RecordType::A
        {
            m.add_answer(a(&question.name().to_ascii(), [127, 0, 0, 1]));
        }
        Reply::Message(m)
    })
    .await;
    let (parent, parent_peers) = fake_recording(|q, _| {
        let mut m = response(q, "parent");
        m.metadata.authoritative = false;
        m.add_authority(Record::from_rdata(
            name("example.test."),
            60,
            RData::NS(NS(name("ns.example.test."))),
        ));
        Reply::Message(m)
    })
    .await;
    let mut c = check(&[]);
    c.servers = DnsServers::List(vec![HostPort {
        host: "ns.example.test".to_owned(),
        port: zone_addr.port(),
    }]);
    c.resolver = Some(resolver);
    c.parent_servers = vec![HostPort {
        host: "127.0.0.1".to_owned(),
        port: parent.port(),
    }];
    c.consistent_soa = true;
    c.consistent_delegation = true;
    let source = IpAddr::from(SOURCE);
    let obs = run_with(
        &c,
        Duration::from_secs(2),
        Some(source),
        Path::new("/nonexistent/resolv.conf"),
    )
    .await
    .expect("no probe error");
    assert_eq!(obs.status, Status::Ok, "{obs:?}");
    let zone_peers = zone_peers.lock().expect("peers").clone();
    assert!(
        zone_peers.iter().any(|(_, tcp)| *tcp) && zone_peers.iter().any(|(_, tcp)| !*tcp),
        "the server must be asked over UDP and TCP: {zone_peers:?}"
    );
    for (who, peers) in [
        ("zone server", zone_peers),
        ("resolver", resolver_peers.lock().expect("peers").clone()),
        ("parent", parent_peers.lock().expect("peers").clone()),
    ] {
        assert!(!peers.is_empty(), "the {who} was never asked");
        assert!(
            peers.iter().all(|(peer, _)| peer.ip() == source),
            "the {who} saw queries from {peers:?}, not only from {source}"
        );
    }
}

/// A source address this host does not have is the probe's fault, and the error says which.
#[tokio::test]
async fn an_unusable_source_address_is_a_probe_error_naming_it() {
    let good = fake(zone_server("fake-1", 1)).await;
    let err = run_with(
        &check(&[good]),
        Duration::from_secs(1),
        Some(IpAddr::from([192, 0, 2, 1])),
        Path::new("/nonexistent/resolv.conf"),
    )
    .await
    .expect_err("probe error");
    let message = err.to_string();
    assert!(
        message.starts_with("cannot use source_address 192.0.2.1: cannot bind a socket to it"),
        "{message}"
    );
}

/// Addresses of the other family are skipped; with none left, the run is the probe's fault.
#[tokio::test]
async fn servers_of_the_other_family_are_skipped() {
    let good = fake(zone_server("fake-1", 1)).await;
    let v6: SocketAddr = "[2001:db8::53]:53".parse().expect("addr");
    let (obs, facts) = {
        let obs = run_with(
            &check(&[v6, good]),
            Duration::from_secs(2),
            Some(IpAddr::from(SOURCE)),
            Path::new("/nonexistent/resolv.conf"),
        )
        .await
        .expect("no probe error");
        let Facts::Dns(facts) = obs.facts.clone() else {
            panic!("dns facts expected")
        };
        (obs, facts)
    };
    assert_eq!(obs.status, Status::Ok, "{obs:?}");
    let asked: Vec<SocketAddr> = facts.servers.iter().map(|s| s.address).collect();
    assert_eq!(asked, vec![good]);

    let err = run_with(
        &check(&[v6]),
        Duration::from_secs(1),
        Some(IpAddr::from(SOURCE)),
        Path::new("/nonexistent/resolv.conf"),
    )
    .await
    .expect_err("probe error");
    assert!(matches!(err, ExecError::SourceAddress { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot use source_address 127.0.1.9: it is an IPv4 address and the target has only \
         IPv6 addresses ([2001:db8::53]:53); set source_address to an IPv6 address of this \
         host, or leave it unset"
    );
}

/// Issue 12, item 11: a zone whose NS set lists a thousand names, each with glue, costs the
/// run [`MAX_SERVERS`] addresses; the facts say how many were left out. Nothing listens on
/// 127.77.x.y:53, so the asked servers fail; the point is how many were asked.
#[tokio::test]
async fn r12_a_thousand_ns_addresses_are_capped_and_counted() {
    let resolver = fake(|q, tcp| {
        let mut m = response(q, "resolver");
        m.metadata.authoritative = false;
        let Some(question) = q.queries.first() else {
            return Reply::Drop;
        };
        if question.query_type() != RecordType::NS {
            return Reply::Message(m);
        }
        if !tcp {
            // Too large for UDP: the client asks again over TCP.
            m.metadata.truncation = true;
            return Reply::Message(m);
        }
        for i in 0..1000u16 {
            let ns = format!("ns{i:04}.example.test.");
            m.add_answer(Record::from_rdata(
                name("example.test."),
                60,
                RData::NS(NS(name(&ns))),
            ));
            m.add_additional(a(&ns, [127, 77, (i >> 8) as u8, i as u8]));
        }
        Reply::Message(m)
    })
    .await;
    let mut c = check(&[]);
    c.servers = DnsServers::Authoritative;
    c.resolver = Some(resolver);
    let (obs, facts) = observe(&c, Duration::from_millis(1500)).await;
    assert_eq!(facts.servers.len(), MAX_SERVERS, "{:?}", obs.failure);
    assert_eq!(facts.servers_not_asked, 1000 - MAX_SERVERS as u32);
    assert_eq!(facts.servers[0].server, "ns0000.example.test");
}

/// Issue 12, item 11: a `servers` list past the cap is cut the same way, and at most
/// [`MAX_IN_FLIGHT`] queries are out at once: against servers that never answer, only that
/// many sockets ever send, and the others say they were not asked.
#[tokio::test]
async fn r12_at_most_max_in_flight_queries_are_out_at_once() {
    let (silent, peers) = fake_recording(|_, _| Reply::Drop).await;
    let servers = vec![silent; MAX_SERVERS + 8];
    let (obs, facts) = observe(&check(&servers), Duration::from_millis(1000)).await;
    assert_eq!(obs.failure, Some(FailureKind::DnsTimeout), "{obs:?}");
    assert_eq!(facts.servers.len(), MAX_SERVERS);
    assert_eq!(facts.servers_not_asked, 8);
    let sockets: std::collections::HashSet<SocketAddr> = peers
        .lock()
        .expect("peers")
        .iter()
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(
        sockets.len(),
        MAX_IN_FLIGHT,
        "distinct sockets that sent a query"
    );
    let not_asked = facts
        .servers
        .iter()
        .filter(|s| {
            s.message
                .as_deref()
                .is_some_and(|m| m.contains("not asked"))
        })
        .count();
    assert_eq!(not_asked, MAX_SERVERS - MAX_IN_FLIGHT);
}

/// A server for `example.test.` that signs `www A` (only when the query has the DO bit) from
/// `inception` to `expiration` (seconds from now), and serves the signer's DNSKEY.
fn signed_server(
    signer: Arc<super::dnssec::tests::Signer>,
    inception: i64,
    expiration: i64,
) -> impl Fn(&Message, bool) -> Reply + Send + Sync + 'static {
    use super::dnssec::tests::field;
    use hickory_proto::dnssec::rdata::DNSSECRData;
    move |q, _tcp| {
        let mut m = response(q, "signed");
        let dnssec_ok = q.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match q.queries.first().map(|q| q.query_type()) {
            Some(RecordType::A) => {
                let rrset = vec![a("www.example.test.", [192, 0, 2, 10])];
                m.add_answer(rrset[0].clone());
                if dnssec_ok {
                    m.add_answer(signer.sign(
                        &rrset,
                        field(now + inception),
                        field(now + expiration),
                    ));
                }
            }
            Some(RecordType::DNSKEY) => {
                m.add_answer(Record::from_rdata(
                    name("example.test."),
                    60,
                    RData::DNSSEC(DNSSECRData::DNSKEY(signer.dnskey.clone())),
                ));
            }
            _ => {}
        }
        Reply::Message(m)
    }
}

#[tokio::test]
async fn dnssec_asks_with_the_do_bit_and_names_each_failing_server_and_expiry() {
    const DAY: i64 = 86_400;
    let signer = Arc::new(super::dnssec::tests::Signer::new("example.test."));
    let good = fake(signed_server(signer.clone(), -DAY, 30 * DAY)).await;
    let soon = fake(signed_server(signer.clone(), -DAY, 2 * DAY)).await;
    let unsigned = fake(zone_server("plain", 1)).await;
    let mut c = check(&[good, soon, unsigned]);
    c.dnssec = Some(crate::model::DnssecExpect {
        valid_for: Duration::from_secs(7 * 86_400),
    });
    let (obs, facts) = observe(&c, Duration::from_secs(2)).await;
    // Missing outranks expiring soon; both are named, with their servers.
    assert_eq!(obs.failure, Some(FailureKind::RrsigMissing), "{obs:?}");
    let message = obs.message.unwrap_or_default();
    assert!(message.starts_with("2 of 3 servers failed: "), "{message}");
    let tag = signer.key_tag();
    assert!(
        message.contains(&format!(
            "127.0.0.1 ({soon}) rrsig_expires_soon: RRSIG (key {tag}, algorithm 15, signer \
             example.test) over `www.example.test A` expires at "
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "127.0.0.1 ({unsigned}) rrsig_missing: no RRSIG over `www.example.test A`"
        )),
        "{message}"
    );
    let expiry = server(&facts, soon)
        .rrsig
        .as_ref()
        .expect("the judged RRSIG")
        .expiration
        .clone();
    assert!(
        message.contains(&format!("expires at {expiry}, in "))
            && message.contains("within valid_for of 7days"),
        "{message}"
    );
    let g = server(&facts, good);
    assert_eq!(g.status, Status::Ok, "{g:?}");
    assert!(g.rrsig.as_ref().is_some_and(|r| r.verified), "{g:?}");
    assert_eq!(server(&facts, unsigned).rrsig, None);
    // Without `dnssec`, the same servers pass: no DO bit, nothing judged.
    let (obs, facts) = observe(&check(&[good, soon, unsigned]), Duration::from_secs(2)).await;
    assert_eq!(obs.status, Status::Ok, "{obs:?}");
    assert!(facts.servers.iter().all(|s| s.rrsig.is_none()));
}
