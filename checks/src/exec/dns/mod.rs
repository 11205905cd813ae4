//! `kind = "dns"`: ask authoritative servers directly (RD=0, EDNS with NSID), every address
//! its own target, and judge each answer and the servers' agreement (SOA serials, delegation).
//!
//! Layout: this file plans a run, runs the servers concurrently and judges the outcome;
//! [`client`] does one exchange (UDP, TCP when truncated); [`answer`] holds the pure helpers
//! (answer text, expectations, RFC 1982 serials); [`dnssec`] judges the RRSIGs over an
//! answer (`dnssec = { valid_for = "7d" }`).
//!
//! Failure precedence, most significant first (the run reports the first one present, and its
//! message lists every problem in this order): `dns_timeout`, `dns_servfail`, `dns_refused`,
//! `dns_bad_response`, `dns_rcode`, `dns_not_authoritative`, `soa_serial_mismatch`,
//! `dns_answer_mismatch`, `rrsig_missing`, `dnssec_invalid`, `rrsig_expired`,
//! `rrsig_not_yet_valid`, `delegation_mismatch`, `dns_discovery`, `resolve_failed`,
//! `rrsig_expires_soon`. A server that does not answer is worse than one that answers
//! wrongly; a lagging serial is ranked above an answer mismatch because it usually explains
//! it. A missing, invalid, expired or not yet valid signature makes validating resolvers fail
//! the name, so it ranks with the answer; a signature that merely expires soon is a warning,
//! ranked last.
//!
//! Choices worth knowing:
//! - "Nothing listens there" (ICMP port unreachable on UDP, TCP connection refused) is
//!   `dns_timeout` too: the server gave no answer, and there is no separate DNS label for it.
//! - The rcode is judged before the AA flag, so a server that answers REFUSED for a zone it
//!   should serve is `dns_refused`; one that answers NOERROR without AA (a referral, a cache)
//!   is `dns_not_authoritative`.
//! - Answers are the answer-section records of the asked type; a CNAME chain is left out.
//! - A FORMERR without an OPT record means the server does not speak EDNS: the query is asked
//!   again without EDNS (and so without NSID).
//! - With `consistent_delegation`, the zone's own NS set is the union of what its servers
//!   serve at the apex; every parent server's referral must equal it.
//! - With `dnssec`, the question goes out with the DO bit, and a server whose answer is signed
//!   is also asked the signer's DNSKEY set, to verify the signatures with. A server's first
//!   failure stands: one that answers wrongly is not also judged on its signatures.
//! - Laggards (`consistent_soa`) are the servers whose serial differs from the newest one;
//!   their own entries fail with `soa_serial_mismatch` too.
//! - Fan-out is bounded, since the NS set is the vendor's (or an attacker's) to choose: at most
//!   [`MAX_SERVERS`] addresses are asked per run (NS names past it are not even resolved), the
//!   rest counted in the facts' `servers_not_asked`; and at most [`MAX_IN_FLIGHT`] queries of
//!   one run are out at once, so a zone listing a thousand addresses costs a few dozen sockets,
//!   not a thousand file descriptors. A server still waiting for its turn when the query
//!   deadline passes is a `dns_timeout` whose message says it was never asked.

pub(crate) mod answer;
pub(crate) mod client;
pub(crate) mod dnssec;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use self::answer::{answers_text, check_answers, list, name_text, newest_serial};
use self::client::{Ask, QueryError, exchange, nsid_text, rcode_label};
use super::{ExecError, Observation, net};
use crate::model::{AnswerExpect, DnsCheck, DnsServers, DnsTransport, HostPort};
use crate::result::{
    Delegation, DnsFacts, DnsServerResult, Facts, FailureKind, Status, Timings, millis,
};

/// Where the system resolver is configured.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Discovered NS addresses are asked on the standard port.
const DNS_PORT: u16 = 53;

/// Server addresses asked at most per run (and parent servers, with `consistent_delegation`);
/// the first ones in NS-name order, as listed in `servers`. Real zones list up to 13 names.
pub(crate) const MAX_SERVERS: usize = 32;

/// Queries (including the resolver's) of one run that are out at once.
pub(crate) const MAX_IN_FLIGHT: usize = 16;

pub(crate) async fn run(
    check: &DnsCheck,
    timeout: Duration,
    source: Option<IpAddr>,
) -> Result<Observation, ExecError> {
    run_with(check, timeout, source, Path::new(RESOLV_CONF)).await
}

/// [`run`], with the resolver configuration file as a parameter for tests.
async fn run_with(
    check: &DnsCheck,
    timeout: Duration,
    source: Option<IpAddr>,
    resolv_conf: &Path,
) -> Result<Observation, ExecError> {
    let start = Instant::now();
    // Discovery may use 40% of the timeout; every query must be answered by 80% of it, so a
    // dead server is reported as `dns_timeout` well before the run's hard timeout.
    let discovery_deadline = start + timeout * 2 / 5;
    let query_deadline = start + timeout * 4 / 5;
    let qname = fqdn(&check.query_name);
    let zone = check.zone.as_ref().map(fqdn);
    let tcp_only = check.transport == DnsTransport::Tcp;
    let mut facts = DnsFacts {
        qname: name_text(&qname),
        qtype: check.query_type.to_string(),
        ..DnsFacts::default()
    };
    let mut timings = Timings::default();
    let mut problems: Vec<Problem> = Vec::new();

    let resolver = if needs_resolver(check) {
        Some(match check.resolver {
            Some(addr) => addr,
            None => system_resolver(resolv_conf)?,
        })
    } else {
        None
    };
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let resolver_ctx = resolver.map(|addr| ResolverCtx {
        addr,
        tcp_only,
        source,
        limit: limit.clone(),
    });

    // Which addresses to ask.
    let mut targets: Vec<Target> = Vec::new();
    match &check.servers {
        DnsServers::List(list) => {
            let (found, failed) =
                resolve_hosts(resolver_ctx.clone(), list, discovery_deadline).await?;
            if list.iter().any(|hp| hp.ip().is_none()) {
                timings.resolve_ms = Some(millis(start.elapsed()));
            }
            targets = found;
            problems.extend(
                failed
                    .into_iter()
                    .map(|m| Problem::run(FailureKind::ResolveFailed, m)),
            );
        }
        DnsServers::Authoritative => {
            let (Some(zone), Some(ctx)) = (&zone, resolver_ctx.clone()) else {
                return Err(ExecError::Internal(
                    "`servers = \"authoritative\"` needs a `zone`".to_owned(),
                ));
            };
            let found = discover_targets(ctx, zone, discovery_deadline).await;
            timings.resolve_ms = Some(millis(start.elapsed()));
            match found {
                Ok((found, failed, names_left_out)) => {
                    targets = found;
                    facts.servers_not_asked += names_left_out;
                    problems.extend(
                        failed
                            .into_iter()
                            .map(|m| Problem::run(FailureKind::DnsDiscovery, m)),
                    );
                }
                Err(QueryError::Local(why)) => return Err(ExecError::Internal(why)),
                Err(QueryError::NoAnswer(why) | QueryError::BadResponse(why)) => {
                    problems.push(Problem::run(FailureKind::DnsDiscovery, why));
                }
            }
        }
    }
    // Addresses of the other family than the source address cannot be asked from here.
    let mut targets = reachable(targets, source)?;
    facts.servers_not_asked += cap_servers(&mut targets);
    if targets.is_empty() {
        if problems.is_empty() {
            problems.push(Problem::run(
                FailureKind::DnsDiscovery,
                "no server address to ask".to_owned(),
            ));
        }
        timings.total_ms = millis(start.elapsed());
        return Ok(conclude(facts, timings, problems));
    }

    let plan = Arc::new(Plan {
        qname: qname.clone(),
        qtype: check.query_type,
        nsid: check.nsid,
        dnssec: check.dnssec.as_ref().map(|d| d.valid_for),
        tcp_only,
        rcode: check.rcode,
        authoritative: check.authoritative,
        answers: check.answers.clone(),
        zone: zone.clone(),
        want_soa: check.consistent_soa && zone.is_some(),
        want_apex_ns: check.consistent_delegation && zone.is_some(),
        deadline: query_deadline,
        source,
        limit: limit.clone(),
    });
    let parents = async {
        match (&zone, check.consistent_delegation) {
            (Some(zone), true) => Some(
                parent_delegation(check, resolver_ctx.clone(), zone, &plan, discovery_deadline)
                    .await,
            ),
            _ => None,
        }
    };
    let (outcomes, parents) = tokio::join!(query_all(plan.clone(), targets), parents);
    let outcomes = outcomes?;

    let mut apex: BTreeSet<String> = BTreeSet::new();
    let mut apex_known = false;
    for outcome in outcomes {
        if let Some(why) = outcome.local {
            return Err(ExecError::Internal(why));
        }
        if let Some(ns) = outcome.apex_ns {
            apex_known = true;
            apex.extend(ns);
        }
        facts.servers.push(outcome.result);
    }
    timings.first_byte_ms = facts
        .servers
        .iter()
        .filter_map(|s| s.rtt_ms)
        .fold(None, |slowest: Option<f64>, rtt| {
            Some(slowest.map_or(rtt, |s| s.max(rtt)))
        });

    if plan.want_soa
        && let Some(zone) = &zone
        && let Some(problem) = compare_serials(zone, &mut facts)
    {
        problems.push(problem);
    }
    if let (Some(zone), Some(parents)) = (&zone, parents) {
        match parents {
            Ok((parents, left_out)) => {
                facts.servers_not_asked += left_out;
                if let Some(problem) =
                    compare_delegation(zone, &parents, apex_known.then_some(&apex), &mut facts)
                {
                    problems.push(problem);
                }
            }
            Err(QueryError::Local(why)) => return Err(ExecError::Internal(why)),
            Err(QueryError::NoAnswer(why) | QueryError::BadResponse(why)) => {
                problems.push(Problem::run(FailureKind::DnsDiscovery, why));
            }
        }
    }
    for s in &facts.servers {
        if let (Some(kind), Some(message)) = (s.failure, &s.message)
            && kind != FailureKind::SoaSerialMismatch
        {
            problems.push(Problem {
                kind,
                text: format!(
                    "{} ({}) {}: {message}",
                    s.server,
                    s.address,
                    kind.as_label()
                ),
                server: true,
            });
        }
    }
    timings.total_ms = millis(start.elapsed());
    Ok(conclude(facts, timings, problems))
}

/// One thing wrong with a run, for the run's failure and message.
#[derive(Debug)]
struct Problem {
    kind: FailureKind,
    text: String,
    /// About one server (rather than the run as a whole).
    server: bool,
}

impl Problem {
    fn run(kind: FailureKind, text: String) -> Self {
        Self {
            kind,
            text,
            server: false,
        }
    }
}

/// How significant a failure is: lower ranks win (see the module docs).
fn rank(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::DnsTimeout => 0,
        FailureKind::DnsServfail => 1,
        FailureKind::DnsRefused => 2,
        FailureKind::DnsBadResponse => 3,
        FailureKind::DnsRcode => 4,
        FailureKind::DnsNotAuthoritative => 5,
        FailureKind::SoaSerialMismatch => 6,
        FailureKind::DnsAnswerMismatch => 7,
        FailureKind::RrsigMissing => 8,
        FailureKind::DnssecInvalid => 9,
        FailureKind::RrsigExpired => 10,
        FailureKind::RrsigNotYetValid => 11,
        FailureKind::DelegationMismatch => 12,
        FailureKind::DnsDiscovery => 13,
        FailureKind::ResolveFailed => 14,
        FailureKind::RrsigExpiresSoon => 15,
        _ => 16,
    }
}

/// The observation: ok when nothing is wrong, else the most significant failure, with a
/// message listing every problem (failing servers by name and address).
fn conclude(facts: DnsFacts, timings: Timings, mut problems: Vec<Problem>) -> Observation {
    problems.sort_by_key(|p| rank(p.kind));
    let Some(first) = problems.first() else {
        return Observation::ok(timings, Facts::Dns(facts));
    };
    let kind = first.kind;
    let failed_servers = facts
        .servers
        .iter()
        .filter(|s| s.status == Status::Fail)
        .count();
    let mut message = String::new();
    if problems.iter().any(|p| p.server) || failed_servers > 0 {
        message = format!(
            "{failed_servers} of {} servers failed: ",
            facts.servers.len()
        );
    }
    message.push_str(
        &problems
            .iter()
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    );
    Observation::fail(kind, message, timings, Facts::Dns(facts))
}

/// A name made fully qualified (the question and records are always absolute).
fn fqdn(name: &Name) -> Name {
    let mut name = name.clone();
    name.set_fqdn(true);
    name
}

/// True when the run needs a resolver: discovery, or a server given by name.
fn needs_resolver(check: &DnsCheck) -> bool {
    let named = |list: &[HostPort]| list.iter().any(|hp| hp.ip().is_none());
    let servers = match &check.servers {
        DnsServers::Authoritative => true,
        DnsServers::List(list) => named(list),
    };
    let parents = check.consistent_delegation
        && (check.parent_servers.is_empty() || named(&check.parent_servers));
    servers || parents
}

/// The first `nameserver` of a resolv.conf file, on port 53.
fn system_resolver(path: &Path) -> Result<SocketAddr, ExecError> {
    let text = std::fs::read_to_string(path).map_err(|e| ExecError::LocalFile {
        what: "resolver configuration",
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    first_nameserver(&text)
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .ok_or_else(|| ExecError::LocalFile {
            what: "resolver configuration",
            path: path.to_owned(),
            message: "it has no usable `nameserver` line; set `resolver` on the check, e.g. \
                      `resolver = \"192.0.2.53\"`"
                .to_owned(),
        })
}

/// The first `nameserver` address in resolv.conf text (an IPv6 zone suffix is dropped).
fn first_nameserver(text: &str) -> Option<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .find_map(|addr| addr.split('%').next().and_then(|a| a.parse().ok()))
}

/// The targets a socket bound to `source` can reach (all of them without a source address);
/// `Err` when there were some and none is left.
fn reachable(targets: Vec<Target>, source: Option<IpAddr>) -> Result<Vec<Target>, ExecError> {
    let addrs: Vec<SocketAddr> = targets.iter().map(|t| t.addr).collect();
    let usable = net::same_family(&addrs, source)?;
    Ok(targets
        .into_iter()
        .filter(|t| usable.contains(&t.addr))
        .collect())
}

/// Keeps the first [`MAX_SERVERS`] targets; returns how many were left out.
fn cap_servers(targets: &mut Vec<Target>) -> u32 {
    let left_out = targets.len().saturating_sub(MAX_SERVERS);
    if left_out > 0 {
        tracing::debug!(
            asked = MAX_SERVERS,
            left_out,
            "too many DNS server addresses; asking the first ones only"
        );
    }
    targets.truncate(MAX_SERVERS);
    u32::try_from(left_out).unwrap_or(u32::MAX)
}

/// A permit of the run's [`MAX_IN_FLIGHT`], or `None` once `deadline` passed without one.
async fn permit(limit: &Semaphore, deadline: Instant) -> Option<tokio::sync::SemaphorePermit<'_>> {
    let until = tokio::time::Instant::from_std(deadline);
    // The semaphore is never closed; a closed one would only mean "no more permits".
    tokio::time::timeout_at(until, limit.acquire())
        .await
        .ok()
        .and_then(Result::ok)
}

/// Why a server was not asked: its turn never came before `deadline`.
fn no_turn() -> QueryError {
    QueryError::NoAnswer(format!(
        "not asked: the run's query deadline passed while {MAX_IN_FLIGHT} other queries were \
         out (at most {MAX_IN_FLIGHT} at once)"
    ))
}

/// One address to ask, and how the result names it.
#[derive(Clone, Debug)]
struct Target {
    /// The NS name, or the host as written in `servers`.
    server: String,
    addr: SocketAddr,
}

/// The resolver used for discovery and server names.
#[derive(Clone, Debug)]
struct ResolverCtx {
    addr: SocketAddr,
    tcp_only: bool,
    source: Option<IpAddr>,
    /// The run's [`MAX_IN_FLIGHT`] permits.
    limit: Arc<Semaphore>,
}

impl ResolverCtx {
    /// Asks the resolver (RD=1); an answer with an error rcode is still returned.
    async fn ask(
        &self,
        name: &Name,
        qtype: RecordType,
        deadline: Instant,
    ) -> Result<Message, QueryError> {
        let Some(_permit) = permit(&self.limit, deadline).await else {
            return Err(QueryError::NoAnswer(format!(
                "resolver {} was not asked `{name} {qtype}`: {}",
                self.addr, "the deadline passed while other queries were out"
            )));
        };
        let ask = Ask {
            name,
            qtype,
            rd: true,
            nsid: false,
            dnssec_ok: false,
            tcp_only: self.tcp_only,
            source: self.source,
        };
        match exchange(self.addr, ask, deadline).await {
            Ok(response) => Ok(response.message),
            Err(QueryError::NoAnswer(why)) => Err(QueryError::NoAnswer(format!(
                "resolver {} did not answer `{name} {qtype}`: {why}",
                self.addr
            ))),
            Err(QueryError::BadResponse(why)) => Err(QueryError::BadResponse(format!(
                "resolver {} answered `{name} {qtype}` badly: {why}",
                self.addr
            ))),
            Err(local) => Err(local),
        }
    }

    /// Every A and AAAA address of `name`.
    async fn addresses(&self, name: &Name, deadline: Instant) -> Result<Vec<IpAddr>, QueryError> {
        let (a, aaaa) = tokio::join!(
            self.ask(name, RecordType::A, deadline),
            self.ask(name, RecordType::AAAA, deadline)
        );
        let mut addrs = Vec::new();
        let mut why = Vec::new();
        for reply in [a, aaaa] {
            match reply {
                Ok(msg) => {
                    addrs.extend(msg.answers.iter().filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    }));
                    why.push(rcode_label(msg.metadata.response_code));
                }
                Err(QueryError::Local(e)) => return Err(QueryError::Local(e)),
                Err(QueryError::NoAnswer(e) | QueryError::BadResponse(e)) => why.push(e),
            }
        }
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            why.dedup();
            return Err(QueryError::NoAnswer(format!(
                "`{}` has no A or AAAA address ({})",
                name_text(name),
                why.join("; ")
            )));
        }
        Ok(addrs)
    }
}

/// The addresses of a `servers` list: literals as they are, names through the resolver.
/// Returns the targets and, for names that did not resolve, why.
async fn resolve_hosts(
    resolver: Option<ResolverCtx>,
    list: &[HostPort],
    deadline: Instant,
) -> Result<(Vec<Target>, Vec<String>), ExecError> {
    let mut names: Vec<Name> = list
        .iter()
        .filter(|hp| hp.ip().is_none())
        .filter_map(|hp| Name::from_ascii(&hp.host).ok().map(|n| fqdn(&n)))
        .collect();
    names.sort();
    names.dedup();
    let resolved: HashMap<Name, Result<Vec<IpAddr>, QueryError>> = match resolver {
        Some(ctx) if !names.is_empty() => resolve_names(ctx, names, deadline)
            .await
            .into_iter()
            .collect(),
        _ => HashMap::new(),
    };
    let mut targets = Vec::new();
    let mut failed = Vec::new();
    for hp in list {
        if let Some(addr) = hp.socket_addr() {
            targets.push(Target {
                server: hp.host.clone(),
                addr,
            });
            continue;
        }
        let result = Name::from_ascii(&hp.host)
            .ok()
            .and_then(|n| resolved.get(&fqdn(&n)));
        match result {
            Some(Ok(ips)) => targets.extend(ips.iter().map(|&ip| Target {
                server: hp.host.clone(),
                addr: SocketAddr::new(ip, hp.port),
            })),
            Some(Err(QueryError::Local(why))) => return Err(ExecError::Internal(why.clone())),
            Some(Err(QueryError::NoAnswer(why) | QueryError::BadResponse(why))) => {
                failed.push(format!("server {}: {why}", hp.host));
            }
            None => failed.push(format!("server `{}` is not a valid host name", hp.host)),
        }
    }
    Ok((targets, failed))
}

/// Resolves names concurrently, in order.
async fn resolve_names(
    ctx: ResolverCtx,
    names: Vec<Name>,
    deadline: Instant,
) -> Vec<(Name, Result<Vec<IpAddr>, QueryError>)> {
    let mut set = JoinSet::new();
    for (i, name) in names.into_iter().enumerate() {
        let ctx = ctx.clone();
        set.spawn(async move {
            let result = ctx.addresses(&name, deadline).await;
            (i, name, result)
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(item) => out.push(item),
            Err(e) => out.push((
                usize::MAX,
                Name::root(),
                Err(QueryError::Local(format!(
                    "name resolution task failed: {e}"
                ))),
            )),
        }
    }
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter()
        .map(|(_, name, result)| (name, result))
        .collect()
}

/// The NS names of `zone` as the resolver sees them, with any glue it sent along.
#[derive(Debug, Default)]
struct NsSet {
    names: Vec<Name>,
    glue: HashMap<Name, Vec<IpAddr>>,
}

/// Asks the resolver for `zone NS`: the answer section, or a referral's authority section.
async fn discover_ns(
    ctx: &ResolverCtx,
    zone: &Name,
    deadline: Instant,
) -> Result<NsSet, QueryError> {
    let msg = ctx.ask(zone, RecordType::NS, deadline).await?;
    let set = ns_set(&msg, zone);
    if set.names.is_empty() {
        return Err(QueryError::BadResponse(format!(
            "resolver {} answered {} with no NS records for `{}`",
            ctx.addr,
            rcode_label(msg.metadata.response_code),
            name_text(zone)
        )));
    }
    Ok(set)
}

/// The NS set of `zone` in a response: the answer section if it has one, else the authority
/// section (a referral), with glue from the additional section.
fn ns_set(msg: &Message, zone: &Name) -> NsSet {
    let from = |records: &[hickory_proto::rr::Record]| -> Vec<Name> {
        records
            .iter()
            .filter(|r| r.name.eq_ignore_root(zone))
            .filter_map(|r| match &r.data {
                RData::NS(ns) => Some(fqdn(&ns.0).to_lowercase()),
                _ => None,
            })
            .collect()
    };
    let mut names = from(&msg.answers);
    if names.is_empty() {
        names = from(&msg.authorities);
    }
    // Sorted as people read names, not in DNSSEC canonical order.
    names.sort_by_cached_key(name_text);
    names.dedup();
    let mut glue: HashMap<Name, Vec<IpAddr>> = HashMap::new();
    for r in &msg.additionals {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        let owner = fqdn(&r.name).to_lowercase();
        if names.contains(&owner) {
            glue.entry(owner).or_default().push(ip);
        }
    }
    NsSet { names, glue }
}

/// Every address of every NS name of `zone` (glue first, else the resolver), on port 53.
/// `Err` when the NS set itself cannot be found; NS names without an address are returned
/// as messages beside the targets.
/// Also returns how many NS names were left out, past [`MAX_SERVERS`].
async fn discover_targets(
    ctx: ResolverCtx,
    zone: &Name,
    deadline: Instant,
) -> Result<(Vec<Target>, Vec<String>, u32), QueryError> {
    let set = discover_ns(&ctx, zone, deadline).await?;
    ns_targets(ctx, set, deadline).await
}

/// The addresses of the first [`MAX_SERVERS`] names of `set`, and how many names were left
/// out (never resolved: a thousand unglued names must not become two thousand queries).
async fn ns_targets(
    ctx: ResolverCtx,
    mut set: NsSet,
    deadline: Instant,
) -> Result<(Vec<Target>, Vec<String>, u32), QueryError> {
    let names_left_out = set.names.len().saturating_sub(MAX_SERVERS);
    set.names.truncate(MAX_SERVERS);
    let names_left_out = u32::try_from(names_left_out).unwrap_or(u32::MAX);
    let unglued: Vec<Name> = set
        .names
        .iter()
        .filter(|n| !set.glue.contains_key(*n))
        .cloned()
        .collect();
    let mut resolved: HashMap<Name, Result<Vec<IpAddr>, QueryError>> =
        resolve_names(ctx, unglued, deadline)
            .await
            .into_iter()
            .collect();
    let mut targets = Vec::new();
    let mut failed = Vec::new();
    for name in &set.names {
        let ips = match set.glue.get(name) {
            Some(glue) => Ok(glue.clone()),
            None => resolved
                .remove(name)
                .unwrap_or_else(|| Err(QueryError::NoAnswer("not resolved".to_owned()))),
        };
        match ips {
            Ok(mut ips) => {
                ips.sort();
                ips.dedup();
                targets.extend(ips.into_iter().map(|ip| Target {
                    server: name_text(name),
                    addr: SocketAddr::new(ip, DNS_PORT),
                }));
            }
            Err(QueryError::Local(why)) => return Err(QueryError::Local(why)),
            Err(QueryError::NoAnswer(why) | QueryError::BadResponse(why)) => {
                failed.push(format!("NS {}: {why}", name_text(name)));
            }
        }
    }
    if targets.is_empty() {
        let why = if failed.is_empty() {
            "no NS name has an address".to_owned()
        } else {
            failed.join("; ")
        };
        return Err(QueryError::NoAnswer(why));
    }
    Ok((targets, failed, names_left_out))
}

/// What every server task needs.
#[derive(Debug)]
struct Plan {
    qname: Name,
    qtype: RecordType,
    nsid: bool,
    /// With `dnssec`: ask with the DO bit, and the RRSIGs must last this long.
    dnssec: Option<Duration>,
    tcp_only: bool,
    rcode: ResponseCode,
    authoritative: Option<bool>,
    answers: AnswerExpect,
    zone: Option<Name>,
    want_soa: bool,
    want_apex_ns: bool,
    deadline: Instant,
    /// The local address every socket is bound to.
    source: Option<IpAddr>,
    /// The run's [`MAX_IN_FLIGHT`] permits.
    limit: Arc<Semaphore>,
}

/// What one server task found.
#[derive(Debug)]
struct ServerOutcome {
    result: DnsServerResult,
    /// The zone's apex NS set as this server serves it (with `consistent_delegation`).
    apex_ns: Option<Vec<String>>,
    /// The probe could not ask (no local socket).
    local: Option<String>,
}

/// Asks every target concurrently; results in target order.
async fn query_all(plan: Arc<Plan>, targets: Vec<Target>) -> Result<Vec<ServerOutcome>, ExecError> {
    let mut set = JoinSet::new();
    for (i, target) in targets.into_iter().enumerate() {
        let plan = plan.clone();
        set.spawn(async move { (i, query_server(&plan, target).await) });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        out.push(joined.map_err(|e| ExecError::Internal(format!("dns server task failed: {e}")))?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, o)| o).collect())
}

/// Asks one address the check's question (and the zone's SOA and NS when needed) and judges it.
async fn query_server(plan: &Plan, target: Target) -> ServerOutcome {
    let mut out = ServerOutcome {
        result: DnsServerResult {
            server: target.server,
            address: target.addr,
            status: Status::Ok,
            failure: None,
            message: None,
            rcode: None,
            authoritative: None,
            tcp: false,
            answers: Vec::new(),
            soa_serial: None,
            rrsig: None,
            nsid: None,
            rtt_ms: None,
        },
        apex_ns: None,
        local: None,
    };
    // One permit for the server's queries, which go one after the other.
    let Some(_permit) = permit(&plan.limit, plan.deadline).await else {
        record_error(&mut out, no_turn(), "");
        return out;
    };
    let ask = Ask {
        name: &plan.qname,
        qtype: plan.qtype,
        rd: false,
        nsid: plan.nsid,
        dnssec_ok: plan.dnssec.is_some(),
        tcp_only: plan.tcp_only,
        source: plan.source,
    };
    let response = match exchange(target.addr, ask, plan.deadline).await {
        Ok(response) => response,
        Err(e) => {
            record_error(&mut out, e, "");
            return out;
        }
    };
    let msg = &response.message;
    let r = &mut out.result;
    r.rcode = Some(rcode_label(msg.metadata.response_code));
    r.authoritative = Some(msg.metadata.authoritative);
    r.tcp = response.tcp;
    r.answers = answers_text(&msg.answers, plan.qtype);
    r.nsid = nsid_text(msg);
    r.rtt_ms = Some(millis(response.rtt));
    if let Some((kind, why)) = judge(plan, msg, &r.answers) {
        fail(r, kind, why);
    }
    if let Some(valid_for) = plan.dnssec {
        judge_dnssec(plan, target.addr, &response.message, valid_for, &mut out).await;
    }

    let Some(zone) = &plan.zone else { return out };
    let asked_zone = plan.qname.eq_ignore_root(zone);
    if plan.want_soa {
        let soa = if asked_zone && plan.qtype == RecordType::SOA {
            Ok(response.message.clone())
        } else {
            zone_query(plan, target.addr, zone, RecordType::SOA).await
        };
        match soa.map(|m| soa_serial(&m, zone)) {
            Ok(Ok(serial)) => out.result.soa_serial = Some(serial),
            Ok(Err((kind, why))) => fail(&mut out.result, kind, why),
            Err(e) => record_error(&mut out, e, &format!("`{} SOA`: ", name_text(zone))),
        }
    }
    if plan.want_apex_ns {
        let ns = if asked_zone && plan.qtype == RecordType::NS {
            Ok(response.message.clone())
        } else {
            zone_query(plan, target.addr, zone, RecordType::NS).await
        };
        match ns {
            Ok(m) => {
                let names: Vec<String> = m
                    .answers
                    .iter()
                    .filter(|r| r.name.eq_ignore_root(zone))
                    .filter_map(|r| match &r.data {
                        RData::NS(ns) => Some(name_text(&ns.0)),
                        _ => None,
                    })
                    .collect();
                if names.is_empty() {
                    let why = format!(
                        "answered `{} NS` ({}) without the zone's NS records",
                        name_text(zone),
                        rcode_label(m.metadata.response_code)
                    );
                    fail(&mut out.result, FailureKind::DnsNotAuthoritative, why);
                } else {
                    out.apex_ns = Some(names);
                }
            }
            Err(e) => record_error(&mut out, e, &format!("`{} NS`: ", name_text(zone))),
        }
    }
    out
}

/// Judges the RRSIGs over one server's answer, fetching the signer's DNSKEY set from the
/// same server to verify them (see [`dnssec`]).
async fn judge_dnssec(
    plan: &Plan,
    addr: SocketAddr,
    msg: &Message,
    valid_for: Duration,
    out: &mut ServerOutcome,
) {
    let keys = match dnssec::signer(msg) {
        None => None,
        Some(signer) if signer.eq_ignore_root(&plan.qname) && plan.qtype == RecordType::DNSKEY => {
            Some(dnssec::dnskeys(msg, &signer))
        }
        Some(signer) => match zone_query(plan, addr, &signer, RecordType::DNSKEY).await {
            Ok(m) => Some(dnssec::dnskeys(&m, &signer)),
            Err(e) => {
                let context = format!("`{} DNSKEY`: ", name_text(&signer));
                record_error(out, e, &context);
                return;
            }
        },
    };
    let keys = keys.filter(|k| !k.is_empty());
    let judged = dnssec::judge(msg, keys.as_deref(), unix_now(), valid_for);
    out.result.rrsig = judged.rrsig;
    if let Some((kind, why)) = judged.failure {
        fail(&mut out.result, kind, why);
    }
}

/// The probe's clock, in Unix seconds.
fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Asks `addr` for the zone's `qtype` (SOA, NS or DNSKEY) at the apex, RD=0; DO=1 for DNSKEY.
async fn zone_query(
    plan: &Plan,
    addr: SocketAddr,
    zone: &Name,
    qtype: RecordType,
) -> Result<Message, QueryError> {
    let ask = Ask {
        name: zone,
        qtype,
        rd: false,
        nsid: false,
        dnssec_ok: qtype == RecordType::DNSKEY,
        tcp_only: plan.tcp_only,
        source: plan.source,
    };
    exchange(addr, ask, plan.deadline).await.map(|r| r.message)
}

/// The zone's SOA serial in a response to `zone SOA`, or why there is none.
fn soa_serial(msg: &Message, zone: &Name) -> Result<u32, (FailureKind, String)> {
    let rcode = msg.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err((
            rcode_failure(rcode),
            format!(
                "answered {} to `{} SOA`",
                rcode_label(rcode),
                name_text(zone)
            ),
        ));
    }
    msg.answers
        .iter()
        .filter(|r| r.name.eq_ignore_root(zone))
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .ok_or_else(|| {
            let kind = if msg.metadata.authoritative {
                FailureKind::DnsBadResponse
            } else {
                FailureKind::DnsNotAuthoritative
            };
            (
                kind,
                format!(
                    "answered `{} SOA` without the zone's SOA record",
                    name_text(zone)
                ),
            )
        })
}

/// The failure an unexpected rcode means.
fn rcode_failure(rcode: ResponseCode) -> FailureKind {
    match rcode {
        ResponseCode::ServFail => FailureKind::DnsServfail,
        ResponseCode::Refused => FailureKind::DnsRefused,
        _ => FailureKind::DnsRcode,
    }
}

/// Judges one response to the check's question: rcode, then AA, then the answers.
fn judge(plan: &Plan, msg: &Message, answers: &[String]) -> Option<(FailureKind, String)> {
    let rcode = msg.metadata.response_code;
    if rcode != plan.rcode {
        return Some((
            rcode_failure(rcode),
            format!(
                "answered {}, expected {}",
                rcode_label(rcode),
                rcode_label(plan.rcode)
            ),
        ));
    }
    if plan.authoritative == Some(true) && !msg.metadata.authoritative {
        let referral: Vec<String> = msg
            .authorities
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(ns) => Some(name_text(&ns.0)),
                _ => None,
            })
            .collect();
        let how = if referral.is_empty() {
            String::new()
        } else {
            format!(" (a referral to {})", list(&referral))
        };
        return Some((
            FailureKind::DnsNotAuthoritative,
            format!(
                "answered without the AA flag{how}: not authoritative for `{}`",
                name_text(&plan.qname)
            ),
        ));
    }
    check_answers(&plan.answers, answers)
        .err()
        .map(|why| (FailureKind::DnsAnswerMismatch, why))
}

/// Marks a server failed, keeping the first (main-question) failure.
fn fail(r: &mut DnsServerResult, kind: FailureKind, why: String) {
    if r.failure.is_none() {
        r.status = Status::Fail;
        r.failure = Some(kind);
        r.message = Some(why);
    }
}

fn record_error(out: &mut ServerOutcome, e: QueryError, context: &str) {
    match e {
        QueryError::NoAnswer(why) => fail(
            &mut out.result,
            FailureKind::DnsTimeout,
            format!("{context}{why}"),
        ),
        QueryError::BadResponse(why) => fail(
            &mut out.result,
            FailureKind::DnsBadResponse,
            format!("{context}{why}"),
        ),
        QueryError::Local(why) => out.local = Some(why),
    }
}

/// Compares the servers' SOA serials (RFC 1982); marks and names the laggards.
fn compare_serials(zone: &Name, facts: &mut DnsFacts) -> Option<Problem> {
    let serials: Vec<u32> = facts.servers.iter().filter_map(|s| s.soa_serial).collect();
    let newest = newest_serial(&serials)?;
    if serials.iter().all(|&s| s == newest) {
        return None;
    }
    let leaders: Vec<String> = facts
        .servers
        .iter()
        .filter(|s| s.soa_serial == Some(newest))
        .map(|s| format!("{} ({})", s.server, s.address))
        .collect();
    let mut behind = Vec::new();
    for s in &mut facts.servers {
        let Some(serial) = s.soa_serial.filter(|&serial| serial != newest) else {
            continue;
        };
        let who = format!("{} ({})", s.server, s.address);
        behind.push(format!("{who} serves {serial}"));
        fail(
            s,
            FailureKind::SoaSerialMismatch,
            format!("serves SOA serial {serial}, behind {newest}"),
        );
        facts.laggards.push(who);
    }
    Some(Problem::run(
        FailureKind::SoaSerialMismatch,
        format!(
            "SOA serials of `{}` differ: {}, behind {newest} from {}",
            name_text(zone),
            behind.join(", "),
            leaders.join(", ")
        ),
    ))
}

/// What one parent server says the zone's NS set is.
#[derive(Debug)]
struct ParentAnswer {
    target: Target,
    ns: Result<Vec<String>, String>,
}

/// Asks the parent zone's servers (given, or discovered through the resolver) for `zone NS`,
/// with the transport, source address, deadline and in-flight permits of the run's `plan`.
async fn parent_delegation(
    check: &DnsCheck,
    resolver: Option<ResolverCtx>,
    zone: &Name,
    plan: &Plan,
    discovery_deadline: Instant,
) -> Result<(Vec<ParentAnswer>, u32), QueryError> {
    let (tcp_only, source, deadline) = (plan.tcp_only, plan.source, plan.deadline);
    let mut left_out = 0;
    let targets = if check.parent_servers.is_empty() {
        let parent = zone.base_name();
        let Some(ctx) = resolver else {
            return Err(QueryError::Local(
                "no resolver to discover the parent zone's servers".to_owned(),
            ));
        };
        let set = discover_ns(&ctx, &parent, discovery_deadline).await?;
        let (targets, _, names_left_out) = ns_targets(ctx, set, discovery_deadline).await?;
        left_out += names_left_out;
        targets
    } else {
        let (targets, failed) = resolve_hosts(resolver, &check.parent_servers, discovery_deadline)
            .await
            .map_err(|e| QueryError::Local(e.to_string()))?;
        if targets.is_empty() {
            return Err(QueryError::NoAnswer(format!(
                "no parent server has an address: {}",
                failed.join("; ")
            )));
        }
        targets
    };
    let mut targets = reachable(targets, source).map_err(|e| QueryError::Local(e.to_string()))?;
    left_out += cap_servers(&mut targets);
    let mut set = JoinSet::new();
    for (i, target) in targets.into_iter().enumerate() {
        let zone = zone.clone();
        let limit = plan.limit.clone();
        set.spawn(async move {
            let Some(_permit) = permit(&limit, deadline).await else {
                let ns = Err(match no_turn() {
                    QueryError::NoAnswer(why) => why,
                    other => format!("{other:?}"),
                });
                return (i, ParentAnswer { target, ns });
            };
            let ask = Ask {
                name: &zone,
                qtype: RecordType::NS,
                rd: false,
                nsid: false,
                dnssec_ok: false,
                tcp_only,
                source,
            };
            let ns = match exchange(target.addr, ask, deadline).await {
                Ok(response) => {
                    let found = ns_set(&response.message, &zone);
                    if found.names.is_empty() {
                        Err(format!(
                            "answered {} with no delegation for `{}`",
                            rcode_label(response.message.metadata.response_code),
                            name_text(&zone)
                        ))
                    } else {
                        Ok(found.names.iter().map(name_text).collect())
                    }
                }
                Err(
                    QueryError::NoAnswer(why)
                    | QueryError::BadResponse(why)
                    | QueryError::Local(why),
                ) => Err(why),
            };
            (i, ParentAnswer { target, ns })
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        out.push(joined.map_err(|e| QueryError::Local(format!("parent query task failed: {e}")))?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok((out.into_iter().map(|(_, a)| a).collect(), left_out))
}

/// Compares the parents' NS sets with the apex NS set; fills `facts.delegation`.
fn compare_delegation(
    zone: &Name,
    parents: &[ParentAnswer],
    apex: Option<&BTreeSet<String>>,
    facts: &mut DnsFacts,
) -> Option<Problem> {
    let answered: Vec<(&Target, BTreeSet<String>)> = parents
        .iter()
        .filter_map(|p| {
            p.ns.as_ref()
                .ok()
                .map(|ns| (&p.target, ns.iter().cloned().collect()))
        })
        .collect();
    if answered.is_empty() {
        let why: Vec<String> = parents
            .iter()
            .filter_map(|p| {
                p.ns.as_ref()
                    .err()
                    .map(|e| format!("{} ({}): {e}", p.target.server, p.target.addr))
            })
            .collect();
        return Some(Problem::run(
            FailureKind::DnsDiscovery,
            format!(
                "no parent server gave the delegation of `{}`: {}",
                name_text(zone),
                why.join("; ")
            ),
        ));
    }
    let parent_union: BTreeSet<String> = answered
        .iter()
        .flat_map(|(_, ns)| ns.iter().cloned())
        .collect();
    // Without any apex NS set (every server failed), there is nothing to compare: the servers'
    // own failures already say why.
    let apex = apex?;
    facts.delegation = Some(Delegation {
        parent: parent_union.iter().cloned().collect(),
        child: apex.iter().cloned().collect(),
    });
    let differing: Vec<String> = answered
        .iter()
        .filter(|(_, ns)| ns != apex)
        .map(|(t, ns)| {
            let ns: Vec<&String> = ns.iter().collect();
            format!("{} ({}) delegates to {}", t.server, t.addr, list(&ns))
        })
        .collect();
    if differing.is_empty() {
        return None;
    }
    let apex: Vec<&String> = apex.iter().collect();
    Some(Problem::run(
        FailureKind::DelegationMismatch,
        format!(
            "the delegation of `{}` differs from its apex NS set {}: {}",
            name_text(zone),
            list(&apex),
            differing.join(", ")
        ),
    ))
}
