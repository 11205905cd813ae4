//! The probe's `source_address` end to end: checks run with
//! `RunEnv { source_address: Some(127.0.1.9) }`, and the servers they reach see that address
//! as the peer (on Linux all of 127/8 is local, so each probe of a test can have its own
//! loopback source, and a server can treat regions differently by `$remote_addr`).
//!
//! Servers here record their peers: plain TCP and HTTP/1.1 listeners in the test, a UDP
//! and TCP DNS responder that truncates over UDP so that the TCP retry is bound too, and a
//! resolver for a `tcp` check's target name. A real
//! NSD shows that answers come back to the bound sockets, over UDP and after truncation.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vantage_checks::exec::RunEnv;
use vantage_checks::model::Check;
use vantage_checks::result::{CheckResult, Facts, FailureKind, Status};
use vantage_e2e::dns::{Nsd, Zone};
use vantage_e2e::{check_from_toml, free_port, run_once_in};

const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 9));
const ZONE: &str = "source.vantage.test";
/// More A records than fit in the 1,232-byte EDNS buffer the executor offers.
const BIG: usize = 100;

/// Where connections or queries came from, in arrival order, with what was asked.
type Peers = Arc<Mutex<Vec<(SocketAddr, String)>>>;

fn bound() -> RunEnv {
    RunEnv {
        source_address: Some(SOURCE),
        ..RunEnv::local()
    }
}

fn run(check: &Check) -> CheckResult {
    run_once_in(check, &bound())
}

fn peers(peers: &Peers) -> Vec<(SocketAddr, String)> {
    peers.lock().expect("peers").clone()
}

/// The first `n` peers, once the server has recorded them (it records after answering).
fn wait_for_peers(seen: &Peers, n: usize) -> Vec<(SocketAddr, String)> {
    vantage_e2e::wait_until(
        &format!("the server to record {n} peers"),
        Duration::from_secs(5),
        || peers(seen).len() >= n,
    );
    peers(seen)
}

#[track_caller]
fn assert_all_from_source(who: &str, seen: &[(SocketAddr, String)]) {
    assert!(!seen.is_empty(), "{who} saw nothing");
    assert!(
        seen.iter().all(|(peer, _)| peer.ip() == SOURCE),
        "{who} saw {seen:?}, not only {SOURCE}"
    );
}

/// Accepts connections on 127.0.0.1 forever, recording each peer, then lets `serve` answer.
fn listen(serve: fn(TcpStream) -> String) -> (SocketAddr, Peers) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("local addr");
    let seen: Peers = Arc::default();
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let Ok(peer) = stream.peer_addr() else {
                continue;
            };
            let what = serve(stream);
            record.lock().expect("peers").push((peer, what));
        }
    });
    (addr, seen)
}

#[test]
fn tcp_connects_from_the_source_address() {
    let (addr, seen) = listen(|_| String::new());
    let r = run(&check_from_toml(
        "tcp",
        "2s",
        &format!("target = \"{addr}\""),
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_all_from_source("the TCP listener", &wait_for_peers(&seen, 1));
}

#[test]
fn tls_connects_from_the_source_address() {
    // Not a TLS server: it hangs up at once, so the handshake fails, but only after the TCP
    // connection the check opened from the source address.
    let (addr, seen) = listen(|_| String::new());
    let r = run(&check_from_toml(
        "tls",
        "2s",
        &format!("target = \"{addr}\"\nserver_name = \"www.{ZONE}\""),
    ));
    assert_eq!(r.failure, Some(FailureKind::TlsHandshake), "{r:#?}");
    assert_all_from_source("the TCP listener", &wait_for_peers(&seen, 1));
}

/// Reads one HTTP/1.1 request head and answers it: an HTML page naming an image at `/`, the
/// image anywhere else, with a cache status header. Returns the request path.
fn http_page(mut stream: TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return String::new(),
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (content_type, body) = if path == "/" || path.starts_with("/?") {
        (
            "text/html",
            "<html><body><img src=\"/logo.png\"></body></html>",
        )
    } else {
        ("image/png", "not really a png")
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         x-cache: HIT\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    path
}

#[test]
fn cdn_and_http_assets_connect_from_the_source_address() {
    let (edge, seen) = listen(http_page);
    let r = run(&check_from_toml(
        "cdn",
        "2s",
        &format!("url = \"http://www.{ZONE}/\"\nedge = \"{edge}\"\ncache_bust = true"),
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let Facts::Http(facts) = &r.facts else {
        panic!("http facts expected: {r:#?}")
    };
    assert_eq!(facts.remote_addr, Some(edge));
    assert_all_from_source("the edge", &wait_for_peers(&seen, 1));

    // The page and its image: every connection of the run, assets included, is bound.
    let (origin, seen) = listen(http_page);
    let r = run(&check_from_toml(
        "http",
        "2s",
        &format!("url = \"http://{origin}/\"\nassets = true"),
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let Facts::Http(facts) = &r.facts else {
        panic!("http facts expected: {r:#?}")
    };
    assert_eq!(facts.assets.len(), 1, "{r:#?}");
    let seen = wait_for_peers(&seen, 2);
    let paths: Vec<&str> = seen.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(paths, ["/", "/logo.png"]);
    assert_all_from_source("the origin", &seen);
}

/// Answers DNS queries on UDP and TCP of one loopback port by echoing the question with
/// QR and AA set and no records: over UDP with TC set, so that every query is asked again
/// over TCP. Records each query's peer and transport.
fn truncating_dns_server() -> (SocketAddr, Peers) {
    let port = free_port();
    let udp = UdpSocket::bind(("127.0.0.1", port)).expect("bind udp");
    let tcp = TcpListener::bind(("127.0.0.1", port)).expect("bind tcp");
    let seen: Peers = Arc::default();
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            record.lock().expect("peers").push((peer, "udp".to_owned()));
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80 | 0x04 | 0x02; // QR, AA, TC
            reply[3] &= 0x70; // RA off, rcode NOERROR
            let _ = udp.send_to(&reply, peer);
        }
    });
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in tcp.incoming().flatten() {
            let Ok(peer) = stream.peer_addr() else {
                continue;
            };
            record.lock().expect("peers").push((peer, "tcp".to_owned()));
            let _ = answer_over_tcp(stream);
        }
    });
    (SocketAddr::from(([127, 0, 0, 1], port)), seen)
}

fn answer_over_tcp(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut query)?;
    if query.len() < 12 {
        return Ok(());
    }
    query[2] |= 0x80 | 0x04; // QR, AA
    query[3] &= 0x70;
    stream.write_all(&len)?;
    stream.write_all(&query)
}

#[test]
fn dns_queries_and_their_tcp_retries_leave_from_the_source_address() {
    let (server, seen) = truncating_dns_server();
    let r = run(&check_from_toml(
        "dns",
        "2s",
        &format!(
            "zone = \"{ZONE}\"\nquery = {{ name = \"www.{ZONE}\" }}\nservers = [\"{server}\"]"
        ),
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let seen = peers(&seen);
    assert!(
        seen.iter().any(|(_, t)| t == "udp") && seen.iter().any(|(_, t)| t == "tcp"),
        "asked over UDP, then TCP: {seen:?}"
    );
    assert_all_from_source("the DNS server", &seen);
}

#[test]
fn nsd_answers_reach_the_bound_sockets_over_udp_and_tcp() {
    let mut records = String::from("@ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.10\n");
    for i in 0..BIG {
        records.push_str(&format!("big IN A 10.0.{}.{}\n", i / 250, i % 250 + 1));
    }
    let nsd = Nsd::start(
        "source",
        &[SocketAddr::from(([127, 0, 0, 1], free_port()))],
        &[Zone::new(ZONE, 7, &records)],
    );
    let servers = format!("servers = [\"{}\"]", nsd.addr());
    let r = run(&check_from_toml(
        "dns",
        "2s",
        &format!(
            "zone = \"{ZONE}\"\nquery = {{ name = \"www.{ZONE}\" }}\n{servers}\n\
             consistent_soa = true\nexpect = {{ answers = [\"192.0.2.10\"] }}"
        ),
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let r = run(&check_from_toml(
        "dns",
        "2s",
        &format!("zone = \"{ZONE}\"\nquery = {{ name = \"big.{ZONE}\" }}\n{servers}"),
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let Facts::Dns(facts) = &r.facts else {
        panic!("dns facts expected: {r:#?}")
    };
    assert!(facts.servers[0].tcp, "{BIG} records need TCP: {r:#?}");
    assert_eq!(facts.servers[0].answers.len(), BIG);

    // A source address this host does not have: the probe's fault, not NSD's.
    let foreign = RunEnv {
        source_address: Some(IpAddr::from([192, 0, 2, 1])),
        ..RunEnv::local()
    };
    let r = run_once_in(
        &check_from_toml(
            "dns",
            "2s",
            &format!("zone = \"{ZONE}\"\nquery = {{ name = \"www.{ZONE}\" }}\n{servers}"),
        ),
        &foreign,
    );
    assert_eq!(r.status, Status::ProbeError, "{r:#?}");
    assert!(
        r.message
            .as_deref()
            .unwrap_or_default()
            .starts_with("cannot use source_address 192.0.2.1"),
        "{r:#?}"
    );
}

/// A DNS responder on UDP that answers every `A` question with 127.0.0.1 (and any other type
/// with no record), recording who asked.
fn a_record_server() -> (SocketAddr, Peers) {
    let udp = UdpSocket::bind(("127.0.0.1", free_port())).expect("bind udp");
    let addr = udp.local_addr().expect("addr");
    let seen: Peers = Arc::default();
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            let query = &buf[..n];
            // The question: the name's labels from offset 12, then type and class.
            let mut end = 12;
            while end < n && query[end] != 0 {
                end += usize::from(query[end]) + 1;
            }
            if end + 5 > n {
                continue;
            }
            let qtype = u16::from_be_bytes([query[end + 1], query[end + 2]]);
            record
                .lock()
                .expect("peers")
                .push((peer, format!("type {qtype}")));
            let answers: u16 = if qtype == 1 { 1 } else { 0 };
            let mut reply = query[..2].to_vec();
            reply.extend_from_slice(&[0x81, 0x80, 0, 1]); // QR, RD, RA; one question
            reply.extend_from_slice(&answers.to_be_bytes());
            reply.extend_from_slice(&[0, 0, 0, 0]);
            reply.extend_from_slice(&query[12..end + 5]);
            if answers == 1 {
                // The question's name (pointer to offset 12), A, IN, TTL 60, 127.0.0.1.
                reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
            }
            let _ = udp.send_to(&reply, peer);
        }
    });
    (addr, seen)
}

/// Issue 12, item 11: a target's name is resolved through the check's `resolver`, and those
/// queries leave from the source address too.
#[test]
fn resolver_queries_for_target_names_leave_from_the_source_address() {
    let (dns, asked) = a_record_server();
    let (listener, connected) = listen(|_| String::new());
    let r = run(&check_from_toml(
        "tcp",
        "2s",
        &format!(
            "target = \"db.{ZONE}:{}\"\nresolver = \"{dns}\"",
            listener.port()
        ),
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert!(r.timings.resolve_ms.is_some(), "{r:#?}");
    assert_all_from_source("the resolver", &peers(&asked));
    assert_all_from_source("the TCP listener", &wait_for_peers(&connected, 1));
}
