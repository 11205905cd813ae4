//! Name resolution and TCP connects shared by the executors, with failures mapped to labels.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

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

/// Opens a fresh TCP connection to the first address that accepts, trying each in turn
/// within `timeout` overall. Returns the stream, the address and the connect time.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr, Duration), (NetFailure, Option<SocketAddr>)> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<(NetFailure, Option<SocketAddr>)> = None;
    for &addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let start = Instant::now();
        match tokio::time::timeout(left, TcpStream::connect(addr)).await {
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
    Err(last.unwrap_or((
        NetFailure {
            kind: FailureKind::ConnectTimeout,
            message: format!("no time left to connect within {timeout:?}"),
        },
        None,
    )))
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
