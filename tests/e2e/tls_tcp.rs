//! `kind = "tls"` and `kind = "tcp"` end to end: handshakes against nginx listeners holding
//! certificates from a throwaway CA (good, expiring soon, expired, wrong name, self-signed,
//! TLS 1.0 only), and TCP connects to a listener and to a closed port.

use std::net::{SocketAddr, TcpListener};

use vantage_checks::model::Check;
use vantage_checks::result::{CheckResult, Facts, FailureKind, Status, TcpFacts, TlsFacts};
use vantage_e2e::cdn::{Cdn, EXPIRING_DAYS, HOST};

fn check(kind: &str, keys: &str) -> Check {
    check_within(kind, "4s", keys)
}

/// One check of `kind` with `timeout` and no retry, from its TOML keys.
fn check_within(kind: &str, timeout: &str, keys: &str) -> Check {
    vantage_e2e::check_from_toml(kind, timeout, keys)
}

/// A TLS check of `target` for [`HOST`], trusting the test CA.
fn tls_check(cdn: &Cdn, target: SocketAddr, valid_for: &str) -> Check {
    check(
        "tls",
        &format!(
            "target = \"{target}\"\nserver_name = \"{HOST}\"\nca = \"{}\"\n\
             expect = {{ valid_for = \"{valid_for}\" }}",
            cdn.ca_file().display()
        ),
    )
}

fn run(check: &Check) -> CheckResult {
    vantage_e2e::run_once(check)
}

fn tls(result: &CheckResult) -> &TlsFacts {
    match &result.facts {
        Facts::Tls(f) => f,
        other => panic!("expected tls facts, got {other:?} in {result:#?}"),
    }
}

fn tcp(result: &CheckResult) -> &TcpFacts {
    match &result.facts {
        Facts::Tcp(f) => f,
        other => panic!("expected tcp facts, got {other:?} in {result:#?}"),
    }
}

#[track_caller]
fn assert_fails(result: &CheckResult, kind: FailureKind) {
    assert_eq!(result.status, Status::Fail, "{result:#?}");
    assert_eq!(result.failure, Some(kind), "{result:#?}");
}

#[test]
fn tls_handshake_records_protocol_cipher_and_certificate() {
    let cdn = Cdn::start();
    let r = run(&tls_check(&cdn, cdn.edge, "21d"));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let f = tls(&r);
    assert_eq!(f.remote_addr, Some(cdn.edge));
    assert_eq!(f.server_name, HOST);
    assert_eq!(f.protocol.as_deref(), Some("TLSv1_3"));
    assert!(
        f.cipher.as_deref().is_some_and(|c| c.starts_with("TLS13_")),
        "{f:?}"
    );
    assert_eq!(f.alpn, None, "a tls check offers no ALPN");
    assert!(
        f.subject.as_deref().is_some_and(|s| s.contains(HOST)),
        "{f:?}"
    );
    assert!(
        f.issuer
            .as_deref()
            .is_some_and(|s| s.contains("Vantage Test CA")),
        "{f:?}"
    );
    assert!(f.not_after.is_some(), "{f:?}");
    assert!(f.days_left.is_some_and(|d| (88..=90).contains(&d)), "{f:?}");
    assert!(r.timings.tls_ms.is_some() && r.timings.connect_ms.is_some());
}

#[test]
fn tls_certificate_expiring_within_valid_for() {
    let cdn = Cdn::start();
    let soon = run(&tls_check(&cdn, cdn.expiring, "21d"));
    assert_fails(&soon, FailureKind::CertExpiresSoon);
    let days = tls(&soon).days_left;
    assert!(
        days.is_some_and(|d| d == EXPIRING_DAYS || d == EXPIRING_DAYS - 1),
        "{soon:#?}"
    );
    // The same certificate is fine for a check that needs only a day.
    let later = run(&tls_check(&cdn, cdn.expiring, "1d"));
    assert_eq!(later.status, Status::Ok, "{later:#?}");
}

#[test]
fn tls_certificate_failures() {
    let cdn = Cdn::start();
    let expired = run(&tls_check(&cdn, cdn.expired, "1d"));
    assert_fails(&expired, FailureKind::CertExpired);
    assert!(
        tls(&expired).days_left.is_some_and(|d| d < 0),
        "{expired:#?}"
    );
    assert_fails(
        &run(&tls_check(&cdn, cdn.wrong_name, "1d")),
        FailureKind::CertNameMismatch,
    );
    assert_fails(
        &run(&tls_check(&cdn, cdn.untrusted, "1d")),
        FailureKind::CertUntrusted,
    );
    let legacy = run(&tls_check(&cdn, cdn.legacy_tls, "1d"));
    assert_eq!(legacy.status, Status::ProbeError, "{legacy:#?}");
    assert_eq!(legacy.failure, Some(FailureKind::TlsUnsupportedProtocol));
    let cbc = run(&tls_check(&cdn, cdn.legacy_cipher, "1d"));
    assert_eq!(cbc.status, Status::ProbeError, "{cbc:#?}");
    assert_eq!(cbc.failure, Some(FailureKind::TlsUnsupportedProtocol));
}

#[test]
fn tcp_connects_to_a_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a listener");
    let addr = listener.local_addr().expect("local addr");
    let r = run(&check("tcp", &format!("target = \"{addr}\"")));
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(tcp(&r).remote_addr, Some(addr));
    assert!(r.timings.connect_ms.is_some());
}

#[test]
fn tcp_to_a_closed_port_is_refused() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a listener");
        listener.local_addr().expect("local addr")
    };
    let r = run(&check("tcp", &format!("target = \"{addr}\"")));
    assert_fails(&r, FailureKind::ConnectRefused);
    assert_eq!(tcp(&r).remote_addr, Some(addr));
}

#[test]
fn tls_handshake_with_a_silent_server_times_out_in_the_tls_phase() {
    // The kernel accepts connections into the backlog; nothing ever answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a listener");
    let addr = listener.local_addr().expect("local addr");
    let r = run(&check_within(
        "tls",
        "1s",
        &format!("target = \"{addr}\"\nserver_name = \"{HOST}\""),
    ));
    assert_fails(&r, FailureKind::Timeout);
    let message = r.message.as_deref().unwrap_or_default();
    assert!(message.contains("TLS handshake"), "{message}");
    assert!(r.timings.connect_ms.is_some(), "{r:#?}");
}

#[test]
fn tcp_to_a_listener_whose_backlog_is_full_times_out() {
    // A real listener with a backlog of 0 that never accepts: once its accept queue is full,
    // the kernel drops further SYNs, so a connect hangs exactly as it does behind a
    // black-holing firewall, and must be told apart from a refusal.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(0).expect("listen with backlog 0");
    let addr = listener.local_addr().expect("local addr");
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)) {
            Ok(s) => held.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                full = true;
                break;
            }
            Err(e) => panic!("unexpected connect error while filling the backlog: {e}"),
        }
    }
    assert!(
        full,
        "the backlog never filled after {} connections",
        held.len()
    );
    let r = run(&check_within("tcp", "1s", &format!("target = \"{addr}\"")));
    assert_fails(&r, FailureKind::ConnectTimeout);
    assert_eq!(tcp(&r).remote_addr, Some(addr));
    assert!(
        r.timings.total_ms >= 900.0,
        "gave up before the timeout: {r:#?}"
    );
    drop(listener);
}

/// Issue 12, item 11: `tls` and `tcp` targets given by name are resolved (by hickory, not the
/// system resolver) through the check's `resolver`, here NSD on loopback, authoritative for
/// the name; the lookup is timed, and a name NSD does not know fails `resolve_failed`, naming
/// the server asked.
#[test]
fn r12_targets_by_name_resolve_through_the_checks_resolver() {
    let cdn = Cdn::start();
    let ns = SocketAddr::from(([127, 0, 0, 1], vantage_e2e::free_port()));
    let zone = vantage_e2e::dns::Zone::new(
        "names.vantage.test",
        1,
        &format!(
            "@ IN NS ns1\nns1 IN A 127.0.0.1\nedge IN A {}",
            cdn.edge.ip()
        ),
    );
    let nsd = vantage_e2e::dns::Nsd::start("names", &[ns], &[zone]);

    let r = run(&check(
        "tls",
        &format!(
            "target = \"edge.names.vantage.test:{}\"\nserver_name = \"{HOST}\"\nca = \"{}\"\n\
             resolver = \"{ns}\"",
            cdn.edge.port(),
            cdn.ca_file().display()
        ),
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}\n{}", nsd.log());
    assert_eq!(tls(&r).remote_addr, Some(cdn.edge));
    assert!(r.timings.resolve_ms.is_some(), "{r:#?}");

    let r = run(&check(
        "tcp",
        &format!(
            "target = \"edge.names.vantage.test:{}\"\nresolver = \"{ns}\"",
            cdn.edge.port()
        ),
    ));
    assert_eq!(r.status, Status::Ok, "{r:#?}\n{}", nsd.log());
    assert_eq!(tcp(&r).remote_addr, Some(cdn.edge));
    assert!(r.timings.resolve_ms.is_some(), "{r:#?}");

    let r = run(&check(
        "tcp",
        &format!(
            "target = \"missing.names.vantage.test:{}\"\nresolver = \"{ns}\"",
            cdn.edge.port()
        ),
    ));
    assert_fails(&r, FailureKind::ResolveFailed);
    let message = r.message.clone().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "cannot resolve `missing.names.vantage.test` (asked {ns}): "
        )),
        "{message}"
    );
}
