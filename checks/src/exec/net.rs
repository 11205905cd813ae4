//! Name resolution and TCP connects shared by the executors, with failures mapped to labels,
//! and the sockets bound to the probe's `source_address` that every executor opens.
//!
//! A source address that cannot be used (not an address of this host, or of the other family
//! than every address of the target) is the probe's configuration problem, so it is an
//! [`ExecError::SourceAddress`] (a `probe_error`), never a vendor failure.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use super::ExecError;
use crate::model::HostPort;
use crate::result::FailureKind;

/// A failed network step, as the vendor's failure.
#[derive(Debug)]
pub(crate) struct NetFailure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

/// Resolves `target` with the system resolver; an IP literal is returned as is.
pub(crate) async fn resolve(
    target: &HostPort,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, NetFailure> {
    if let Some(addr) = target.socket_addr() {
        return Ok(vec![addr]);
    }
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(NetFailure {
                    kind: FailureKind::ResolveFailed,
                    message: format!("`{}` has no address", target.host),
                })
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(err)) => Err(NetFailure {
            kind: FailureKind::ResolveFailed,
            message: format!("cannot resolve `{}`: {err}", target.host),
        }),
        Err(_) => Err(NetFailure {
            kind: FailureKind::ResolveFailed,
            message: format!("resolving `{}` took longer than {timeout:?}", target.host),
        }),
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
