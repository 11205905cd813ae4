//! Name resolution and TCP connects shared by the executors, with failures mapped to labels,
//! and the sockets bound to the probe's `source_address` that every executor opens.
//!
//! A source address that cannot be used (not an address of this host, or of the other family
//! than every address of the target) is the probe's configuration problem, so it is an
//! [`ExecError::SourceAddress`] (a `probe_error`), never a vendor failure.
//!
//! Host names are resolved by an async stub resolver (hickory), never by the blocking system
//! resolver (`getaddrinfo` ties up a blocking thread per lookup and cannot be bounded or timed).
//! Each lookup builds a fresh resolver without a cache, so every run asks, and its time is the
//! run's `resolve_ms`: the check's `resolver` when set (that server only, no hosts file),
//! otherwise the servers, search list and options of `/etc/resolv.conf` plus `/etc/hosts`, as
//! `getaddrinfo` would. Queries leave from the source address too. An unreadable
//! `/etc/resolv.conf`, or one that names no server, is the probe's problem.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::op::Query;
use hickory_proto::rr::{Name, RecordType};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Hosts, TokioResolver};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use super::ExecError;
use crate::model::HostPort;
use crate::result::FailureKind;

/// Where the system resolver is configured.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The system's static host names.
const HOSTS: &str = "/etc/hosts";

/// A failed network step, as the vendor's failure.
#[derive(Debug)]
pub(crate) struct NetFailure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

/// Why [`resolve`] produced no address.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// The vendor's failure (`resolve_failed`).
    Failed(NetFailure),
    /// The probe cannot resolve from here (no usable resolver configuration).
    Probe(ExecError),
}

/// How to resolve a host name: the check's `resolver`, else the system's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lookup<'a> {
    /// The check's `resolver`: only that server is asked.
    pub(crate) server: Option<SocketAddr>,
    /// The probe's `source_address`, which the queries leave from.
    pub(crate) source: Option<IpAddr>,
    /// The system configuration, for tests: `/etc/resolv.conf` and `/etc/hosts` otherwise.
    pub(crate) files: Option<(&'a Path, &'a Path)>,
}

impl Lookup<'_> {
    /// The check's `resolver` (or the system's), from `source`.
    pub(crate) fn new(server: Option<SocketAddr>, source: Option<IpAddr>) -> Lookup<'static> {
        Lookup {
            server,
            source,
            files: None,
        }
    }
}

/// Resolves `target` to its addresses (IPv4 first), within `timeout`; an IP literal is
/// returned as is.
pub(crate) async fn resolve(
    target: &HostPort,
    how: Lookup<'_>,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Some(addr) = target.socket_addr() {
        return Ok(vec![addr]);
    }
    let (resolver, through, hosts) = build_resolver(how, timeout)
        .await
        .map_err(ResolveError::Probe)?;
    // A name in the hosts file is answered from it alone, both families, as with nsswitch's
    // `files` before `dns`.
    if let Some(addrs) = hosts.and_then(|h| from_hosts(&h, target)) {
        return Ok(addrs);
    }
    let failed = |message: String| {
        ResolveError::Failed(NetFailure {
            kind: FailureKind::ResolveFailed,
            message,
        })
    };
    let host = target.host.as_str();
    match tokio::time::timeout(timeout, resolver.lookup_ip(host)).await {
        Ok(Ok(found)) => {
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for ip in found.iter() {
                let addr = SocketAddr::new(ip, target.port);
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
            if addrs.is_empty() {
                Err(failed(format!("`{host}` has no address (asked {through})")))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(err)) => Err(failed(format!(
            "cannot resolve `{host}` (asked {through}): {err}"
        ))),
        Err(_) => Err(failed(format!(
            "resolving `{host}` (asked {through}) took longer than {timeout:?}"
        ))),
    }
}

/// The addresses of `target` in the hosts file, if it is there.
fn from_hosts(hosts: &Hosts, target: &HostPort) -> Option<Vec<SocketAddr>> {
    let mut name = Name::from_utf8(&target.host).ok()?;
    name.set_fqdn(true);
    let mut addrs = Vec::new();
    for qtype in [RecordType::A, RecordType::AAAA] {
        if let Some(found) = hosts.lookup_static_host(&Query::query(name.clone(), qtype)) {
            addrs.extend(
                found
                    .answers()
                    .iter()
                    .filter_map(|r| r.data.ip_addr())
                    .map(|ip| SocketAddr::new(ip, target.port)),
            );
        }
    }
    (!addrs.is_empty()).then_some(addrs)
}

/// A fresh resolver without a cache for one lookup, what it asks (for messages), and the
/// system's hosts file when the system configuration is used.
async fn build_resolver(
    how: Lookup<'_>,
    timeout: Duration,
) -> Result<(TokioResolver, String, Option<Hosts>), ExecError> {
    let (resolv_conf, hosts_file) = how
        .files
        .unwrap_or((Path::new(RESOLV_CONF), Path::new(HOSTS)));
    let (config, mut opts, hosts) = match how.server {
        Some(addr) => {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for conn in &mut server.connections {
                conn.port = addr.port();
            }
            let config = ResolverConfig::from_name_servers(vec![server]);
            (config, ResolverOpts::default(), None)
        }
        None => {
            let local = |message: String| ExecError::LocalFile {
                what: "resolver configuration",
                path: PathBuf::from(resolv_conf),
                message,
            };
            let text = tokio::fs::read(resolv_conf)
                .await
                .map_err(|e| local(format!("{e}; or set `resolver` on the check")))?;
            let hint = "add a `nameserver` line, or set `resolver = \"127.0.0.1:53\"` on the check";
            let (config, opts) = hickory_resolver::system_conf::parse_resolv_conf(text)
                .map_err(|e| local(format!("{e}; {hint}")))?;
            if config.name_servers().is_empty() {
                return Err(local(format!("names no server; {hint}")));
            }
            (config, opts, read_hosts(hosts_file).await)
        }
    };
    let (domain, search, mut servers) = config.into_parts();
    let mut asked = Vec::new();
    for server in &mut servers {
        for conn in &mut server.connections {
            if let Some(source) = how.source
                && source.is_ipv4() == server.ip.is_ipv4()
            {
                conn.bind_addr = Some(SocketAddr::new(source, 0));
            }
        }
        if let Some(conn) = server.connections.first() {
            asked.push(SocketAddr::new(server.ip, conn.port).to_string());
        }
    }
    // Every run asks: no cache, and the run's own deadline rather than the library's.
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = timeout.max(Duration::from_millis(1));
    let config = ResolverConfig::from_parts(domain, search, servers);
    let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| ExecError::Internal(format!("cannot set up a DNS resolver: {e}")))?;
    Ok((resolver, asked.join(", "), hosts))
}

/// The static host names of `path`, as `getaddrinfo` reads them; none when it cannot be read.
async fn read_hosts(path: &Path) -> Option<Hosts> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the hosts file");
            return None;
        }
    };
    let mut hosts = Hosts::default();
    match hosts.read_hosts_conf(&bytes[..]) {
        Ok(()) => Some(hosts),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot parse the hosts file");
            None
        }
    }
}

/// Why [`connect`] produced no connection.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The vendor's failure, with the address tried last.
    Failed(NetFailure, Option<SocketAddr>),
    /// The probe cannot connect from here (its source address is unusable, no socket).
    Probe(ExecError),
}

/// Opens a fresh TCP connection to the first address that accepts, trying each in turn
/// within `timeout` overall, from `(source, 0)` when a source address is set. Addresses of
/// the other family than `source` are skipped. Returns the stream, the address and the
/// connect time.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
    source: Option<IpAddr>,
) -> Result<(TcpStream, SocketAddr, Duration), ConnectError> {
    let usable = same_family(addrs, source).map_err(ConnectError::Probe)?;
    let deadline = Instant::now() + timeout;
    let mut last: Option<(NetFailure, Option<SocketAddr>)> = None;
    for addr in usable {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let start = Instant::now();
        let socket = tcp_socket(addr, source).map_err(ConnectError::Probe)?;
        match tokio::time::timeout(left, socket.connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr, start.elapsed()));
            }
            Ok(Err(err)) => last = Some((connect_failure(&err, addr), Some(addr))),
            Err(_) => {
                last = Some((
                    NetFailure {
                        kind: FailureKind::ConnectTimeout,
                        message: format!("connecting to {addr} took longer than {timeout:?}"),
                    },
                    Some(addr),
                ))
            }
        }
    }
    let (failure, addr) = last.unwrap_or((
        NetFailure {
            kind: FailureKind::ConnectTimeout,
            message: format!("no time left to connect within {timeout:?}"),
        },
        None,
    ));
    Err(ConnectError::Failed(failure, addr))
}

/// The addresses of `addrs` that a socket bound to `source` can reach, in order: all of them
/// without a source address. Empty `addrs` stay empty; a non-empty list with none left is the
/// probe's problem.
pub(crate) fn same_family(
    addrs: &[SocketAddr],
    source: Option<IpAddr>,
) -> Result<Vec<SocketAddr>, ExecError> {
    let Some(source) = source else {
        return Ok(addrs.to_vec());
    };
    let usable: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == source.is_ipv4())
        .collect();
    if usable.is_empty() && !addrs.is_empty() {
        let list: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
        return Err(ExecError::SourceAddress {
            address: source,
            message: format!(
                "it is an {} address and the target has only {} addresses ({}); \
                 set source_address to an {} address of this host, or leave it unset",
                family(source),
                family(addrs[0].ip()),
                list.join(", "),
                family(addrs[0].ip())
            ),
        });
    }
    Ok(usable)
}

/// A TCP socket for `addr`, bound to `(source, 0)` when a source address is set.
pub(crate) fn tcp_socket(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpSocket, ExecError> {
    check_family(addr, source)?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| ExecError::Internal(format!("cannot open a TCP socket: {e}")))?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| bind_error(source, &e))?;
    }
    Ok(socket)
}

/// A UDP socket for `addr`, bound to `(source, 0)`, or to the unspecified address of `addr`'s
/// family without a source address.
pub(crate) async fn udp_socket(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<UdpSocket, ExecError> {
    check_family(addr, source)?;
    let local = match (source, addr) {
        (Some(source), _) => SocketAddr::new(source, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::from(([0, 0, 0, 0], 0)),
        (None, SocketAddr::V6(_)) => SocketAddr::from(([0u16; 8], 0)),
    };
    UdpSocket::bind(local).await.map_err(|e| match source {
        Some(source) => bind_error(source, &e),
        None => ExecError::Internal(format!("cannot open a UDP socket: {e}")),
    })
}

fn check_family(addr: SocketAddr, source: Option<IpAddr>) -> Result<(), ExecError> {
    match source {
        Some(source) if source.is_ipv4() != addr.is_ipv4() => Err(ExecError::SourceAddress {
            address: source,
            message: format!(
                "it is an {} address and cannot reach {addr}; set source_address to an {} \
                 address of this host, or leave it unset",
                family(source),
                family(addr.ip())
            ),
        }),
        _ => Ok(()),
    }
}

fn bind_error(source: IpAddr, err: &io::Error) -> ExecError {
    let hint = match err.kind() {
        io::ErrorKind::AddrNotAvailable => {
            "; it must be an address of this host (see `ip address`)"
        }
        _ => "",
    };
    ExecError::SourceAddress {
        address: source,
        message: format!("cannot bind a socket to it: {err}{hint}"),
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn connect_failure(err: &io::Error, addr: SocketAddr) -> NetFailure {
    let kind = match err.kind() {
        io::ErrorKind::ConnectionRefused => FailureKind::ConnectRefused,
        io::ErrorKind::TimedOut => FailureKind::ConnectTimeout,
        _ => FailureKind::ConnectError,
    };
    NetFailure {
        kind,
        message: format!("connecting to {addr}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;
    use std::sync::{Arc, Mutex};

    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};

    /// A fake DNS server on UDP 127.0.0.1:0 answering `A` queries for `name` with `ip`
    /// (anything else: no answer, NOERROR), recording the names asked.
    async fn fake_dns(name: &'static str, ip: Ipv4Addr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = asked.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut reply = Message::response(query.metadata.id, OpCode::Query);
                reply.metadata.recursion_desired = query.metadata.recursion_desired;
                reply.metadata.recursion_available = true;
                reply.add_queries(query.queries.iter().cloned());
                if let Some(q) = query.queries.first() {
                    let qname = q.name().to_ascii();
                    log.lock()
                        .expect("log")
                        .push(format!("{qname} {}", q.query_type()));
                    if q.query_type() == RecordType::A && qname.eq_ignore_ascii_case(name) {
                        reply.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(ip))));
                    }
                }
                let _ = socket.send_to(&reply.to_vec().expect("encode"), peer).await;
            }
        });
        (addr, asked)
    }

    fn target(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.to_owned(),
            port,
        }
    }

    /// Issue 12, item 11: a name is resolved by hickory through the check's `resolver` (on a
    /// port of its own), which the system resolver knows nothing about.
    #[tokio::test]
    async fn r12_the_checks_resolver_is_asked() {
        let (server, asked) = fake_dns("svc.vantage.test.", Ipv4Addr::new(127, 0, 0, 1)).await;
        let how = Lookup::new(Some(server), None);
        let addrs = resolve(
            &target("svc.vantage.test", 8443),
            how,
            Duration::from_secs(2),
        )
        .await
        .expect("resolved");
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 8443))]);
        let asked = asked.lock().expect("log").clone();
        assert!(
            asked.iter().any(|q| q == "svc.vantage.test. A"),
            "{asked:?}"
        );

        let Err(ResolveError::Failed(f)) = resolve(
            &target("gone.vantage.test", 443),
            how,
            Duration::from_secs(2),
        )
        .await
        else {
            panic!("a name without an address fails")
        };
        assert_eq!(f.kind, FailureKind::ResolveFailed);
        assert!(
            f.message.starts_with(&format!(
                "cannot resolve `gone.vantage.test` (asked {server}): "
            )),
            "{}",
            f.message
        );
    }

    /// Without `resolver`, the system's configuration is read (here a resolv.conf naming a
    /// server that never answers, and a hosts file that knows the name), as getaddrinfo would.
    #[tokio::test]
    async fn r12_without_a_resolver_the_system_configuration_is_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let resolv = dir.path().join("resolv.conf");
        let hosts = dir.path().join("hosts");
        std::fs::write(
            &resolv,
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .expect("write");
        std::fs::write(&hosts, "127.0.0.7 db.vantage.test\n").expect("write");
        let how = Lookup {
            server: None,
            source: None,
            files: Some((&resolv, &hosts)),
        };
        let addrs = resolve(
            &target("db.vantage.test", 5432),
            how,
            Duration::from_secs(2),
        )
        .await
        .expect("resolved from the hosts file");
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 7], 5432))]);

        std::fs::write(&resolv, "# nothing here\n").expect("write");
        let Err(ResolveError::Probe(e)) = resolve(
            &target("db.vantage.test", 5432),
            how,
            Duration::from_secs(2),
        )
        .await
        else {
            panic!("no nameserver is the probe's problem")
        };
        let e = e.to_string();
        assert!(
            e.starts_with(&format!(
                "cannot read resolver configuration `{}`: ",
                resolv.display()
            )) && e.ends_with(
                "; add a `nameserver` line, or set `resolver = \"127.0.0.1:53\"` on the check"
            ),
            "{e}"
        );
    }

    /// Issue 12, item 11: a `tcp` check with a `resolver` resolves its target there, and the
    /// lookup is timed as `resolve_ms`.
    #[tokio::test]
    async fn r12_a_tcp_check_resolves_through_its_resolver_and_times_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (server, asked) = fake_dns("db.vantage.test.", Ipv4Addr::new(127, 0, 0, 1)).await;
        let text = format!(
            "[[vendor]]\nid = \"v\"\n[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"tcp\"\n\
             target = \"db.vantage.test:{port}\"\nresolver = \"{server}\"\n"
        );
        let set = crate::config::parse_str(&text).expect("valid check");
        let Some(crate::model::CheckSpec::Tcp(check)) =
            set.checks.into_iter().next().map(|c| c.spec)
        else {
            panic!("a tcp check")
        };
        assert_eq!(check.resolver, Some(server));
        let observed = super::super::tcp::run(&check, Duration::from_secs(2), None)
            .await
            .expect("run");
        assert_eq!(observed.status, crate::result::Status::Ok, "{observed:?}");
        assert!(observed.timings.resolve_ms.is_some());
        assert!(!asked.lock().expect("log").is_empty());
    }

    /// On Linux all of 127/8 is local, so this is an address of this host.
    const SOURCE: [u8; 4] = [127, 0, 1, 9];

    #[tokio::test]
    async fn connects_from_the_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let source = IpAddr::from(SOURCE);
        let (result, accepted) = tokio::join!(
            connect(
                std::slice::from_ref(&addr),
                Duration::from_secs(2),
                Some(source)
            ),
            listener.accept()
        );
        let (stream, connected, _) = result.expect("connected");
        assert_eq!(connected, addr);
        assert_eq!(stream.local_addr().expect("local").ip(), source);
        assert_eq!(accepted.expect("accepted").1.ip(), source);
    }

    #[tokio::test]
    async fn a_source_address_not_on_this_host_is_the_probes_fault() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let err = connect(
            &[addr],
            Duration::from_secs(1),
            Some(IpAddr::from([192, 0, 2, 1])),
        )
        .await
        .expect_err("192.0.2.1 is not an address of this host");
        let ConnectError::Probe(err @ ExecError::SourceAddress { .. }) = err else {
            panic!("expected a source address error, got {err:?}")
        };
        assert!(
            err.to_string()
                .starts_with("cannot use source_address 192.0.2.1: cannot bind a socket to it: "),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with("; it must be an address of this host (see `ip address`)"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn addresses_of_the_other_family_are_skipped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let v6: SocketAddr = "[2001:db8::1]:443".parse().expect("addr");
        let source = Some(IpAddr::from(SOURCE));
        let (_, connected, _) = connect(&[v6, addr], Duration::from_secs(2), source)
            .await
            .expect("the IPv4 address is tried");
        assert_eq!(connected, addr);

        let err = connect(&[v6], Duration::from_secs(1), source)
            .await
            .expect_err("no IPv4 address");
        let ConnectError::Probe(err) = err else {
            panic!("expected a probe error, got {err:?}")
        };
        assert_eq!(
            err.to_string(),
            "cannot use source_address 127.0.1.9: it is an IPv4 address and the target has only \
             IPv6 addresses ([2001:db8::1]:443); set source_address to an IPv6 address of this \
             host, or leave it unset"
        );
    }

    #[tokio::test]
    async fn without_a_source_address_nothing_is_bound() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (result, accepted) = tokio::join!(
            connect(std::slice::from_ref(&addr), Duration::from_secs(2), None),
            listener.accept()
        );
        result.expect("connected");
        assert_eq!(
            accepted.expect("accepted").1.ip(),
            IpAddr::from([127, 0, 0, 1])
        );
    }
}
