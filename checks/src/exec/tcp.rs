//! `kind = "tcp"`: connect time, refused versus timeout.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::net::{self, ConnectError, ResolveError};
use super::{ExecError, Observation};
use crate::model::TcpCheck;
use crate::result::{Facts, TcpFacts, Timings, millis};

pub(crate) async fn run(
    check: &TcpCheck,
    timeout: Duration,
    source: Option<IpAddr>,
) -> Result<Observation, ExecError> {
    let start = Instant::now();
    let mut timings = Timings::default();
    let mut facts = TcpFacts::default();
    let how = net::Lookup::new(check.resolver, source);
    let addrs = match net::resolve(&check.target, how, timeout).await {
        Ok(addrs) => addrs,
        Err(ResolveError::Probe(e)) => return Err(e),
        Err(ResolveError::Failed(f)) => {
            return Ok(Observation::fail(
                f.kind,
                f.message,
                timings,
                Facts::Tcp(facts),
            ));
        }
    };
    timings.resolve_ms = Some(millis(start.elapsed()));
    let left = timeout.saturating_sub(start.elapsed());
    match net::connect(&addrs, left, source).await {
        Ok((_stream, addr, took)) => {
            facts.remote_addr = Some(addr);
            timings.connect_ms = Some(millis(took));
            timings.total_ms = millis(start.elapsed());
            Ok(Observation::ok(timings, Facts::Tcp(facts)))
        }
        Err(ConnectError::Probe(e)) => Err(e),
        Err(ConnectError::Failed(f, addr)) => {
            facts.remote_addr = addr;
            timings.total_ms = millis(start.elapsed());
            Ok(Observation::fail(
                f.kind,
                f.message,
                timings,
                Facts::Tcp(facts),
            ))
        }
    }
}
