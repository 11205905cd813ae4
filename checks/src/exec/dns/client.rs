//! One DNS exchange with one server address: UDP first, TCP when truncated (or only TCP).
//!
//! Messages are built and parsed with `hickory-proto`; the I/O is plain tokio sockets so that
//! every step stays under the caller's deadline and every failure keeps its cause.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::net;

/// The EDNS UDP payload size we advertise (the DNS Flag Day 2020 value): big enough for most
/// answers, small enough to avoid IP fragmentation.
pub(super) const EDNS_PAYLOAD: u16 = 1232;

/// The shortest wait before a UDP query is sent again.
const MIN_RESEND: Duration = Duration::from_millis(200);

/// What to ask and how.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ask<'a> {
    /// The name asked.
    pub(super) name: &'a Name,
    /// The type asked.
    pub(super) qtype: RecordType,
    /// Recursion desired: on for resolvers, off for authoritative servers.
    pub(super) rd: bool,
    /// Request the server's NSID (RFC 5001).
    pub(super) nsid: bool,
    /// Set the DO bit (RFC 3225): ask for the answer's RRSIGs.
    pub(super) dnssec_ok: bool,
    /// Skip UDP.
    pub(super) tcp_only: bool,
    /// The local address every socket is bound to (the probe's `source_address`).
    pub(super) source: Option<IpAddr>,
}

/// A response that matched the query.
#[derive(Debug)]
pub(super) struct Response {
    /// The parsed message.
    pub(super) message: Message,
    /// The final answer came over TCP.
    pub(super) tcp: bool,
    /// From the first packet sent to the final answer.
    pub(super) rtt: Duration,
}

/// Why an exchange produced no usable response.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum QueryError {
    /// Nothing answered in time, or nothing listens there (ICMP port unreachable, TCP refused).
    NoAnswer(String),
    /// Something answered, but not a well-formed response to our question.
    BadResponse(String),
    /// The probe could not even send (no local socket, an unusable source address): not the
    /// server's fault.
    Local(String),
}

/// Asks `addr` one question, before `deadline`.
pub(super) async fn exchange(
    addr: SocketAddr,
    ask: Ask<'_>,
    deadline: Instant,
) -> Result<Response, QueryError> {
    let start = Instant::now();
    let mut response = exchange_with(addr, ask, true, deadline).await?;
    // RFC 6891 §7: a FORMERR without an OPT record comes from a server that does not speak
    // EDNS; ask again without it rather than blame the server for our extension.
    if response.message.metadata.response_code == ResponseCode::FormErr
        && response.message.edns.is_none()
    {
        response = exchange_with(addr, ask, false, deadline).await?;
    }
    response.rtt = start.elapsed();
    Ok(response)
}

async fn exchange_with(
    addr: SocketAddr,
    ask: Ask<'_>,
    edns: bool,
    deadline: Instant,
) -> Result<Response, QueryError> {
    let start = Instant::now();
    if !ask.tcp_only {
        let message = udp_exchange(addr, ask, edns, deadline).await?;
        if !message.metadata.truncation {
            return Ok(Response {
                message,
                tcp: false,
                rtt: start.elapsed(),
            });
        }
    }
    let message = tcp_exchange(addr, ask, edns, deadline).await?;
    Ok(Response {
        message,
        tcp: true,
        rtt: start.elapsed(),
    })
}

/// The wire form of a query with id `id`, with EDNS (and NSID and the DO bit when asked) if
/// `edns`.
pub(super) fn build_query(id: u16, ask: Ask<'_>, edns: bool) -> Result<Vec<u8>, QueryError> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = ask.rd;
    msg.add_query(Query::query(ask.name.clone(), ask.qtype));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(EDNS_PAYLOAD);
        if ask.nsid {
            let empty = NSIDPayload::new(Vec::new())
                .map_err(|e| QueryError::Local(format!("cannot build the NSID option: {e}")))?;
            opt.options_mut().insert(EdnsOption::NSID(empty));
        }
        opt.set_dnssec_ok(ask.dnssec_ok);
        msg.set_edns(opt);
    }
    msg.to_vec()
        .map_err(|e| QueryError::Local(format!("cannot encode the query for {}: {e}", ask.name)))
}

/// Why a received packet is not our answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reject {
    /// Another transaction's packet (late, stray or spoofed): keep waiting on UDP.
    OtherId,
    /// Our id, but not a usable response.
    Bad(String),
}

/// Parses `buf` and checks it answers query `id` for `ask`.
pub(super) fn check_response(buf: &[u8], id: u16, ask: Ask<'_>) -> Result<Message, Reject> {
    let Some(head) = buf.get(..2) else {
        return Err(Reject::Bad(format!(
            "a {}-byte packet is not a DNS message",
            buf.len()
        )));
    };
    if u16::from_be_bytes([head[0], head[1]]) != id {
        return Err(Reject::OtherId);
    }
    let msg = Message::from_vec(buf)
        .map_err(|e| Reject::Bad(format!("cannot parse the response: {e}")))?;
    if msg.metadata.message_type != MessageType::Response {
        return Err(Reject::Bad(
            "the reply is a query, not a response".to_owned(),
        ));
    }
    match msg.queries.as_slice() {
        // Some servers drop the question from error responses (FORMERR, NOTIMP); accept those.
        [] if msg.metadata.response_code != ResponseCode::NoError => Ok(msg),
        [q] if q.name().eq_ignore_root(ask.name) && q.query_type() == ask.qtype => Ok(msg),
        [q] => Err(Reject::Bad(format!(
            "the response answers `{} {}`, not the question asked (`{} {}`)",
            q.name(),
            q.query_type(),
            ask.name,
            ask.qtype
        ))),
        qs => Err(Reject::Bad(format!(
            "the response carries {} questions, not the one asked",
            qs.len()
        ))),
    }
}

async fn udp_exchange(
    addr: SocketAddr,
    ask: Ask<'_>,
    edns: bool,
    deadline: Instant,
) -> Result<Message, QueryError> {
    let id = rand::random::<u16>();
    let query = build_query(id, ask, edns)?;
    let socket = net::udp_socket(addr, ask.source)
        .await
        .map_err(|e| QueryError::Local(e.to_string()))?;
    // A connected socket only receives from `addr` and reports ICMP port unreachable.
    socket
        .connect(addr)
        .await
        .map_err(|e| unreachable(addr, "UDP", &e))?;
    // Resend twice within the budget, so one lost packet is not reported as a dead server.
    let resend_every = deadline
        .saturating_duration_since(Instant::now())
        .checked_div(3)
        .unwrap_or_default()
        .max(MIN_RESEND);
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    let mut bad: Option<String> = None;
    while Instant::now() < deadline {
        socket
            .send(&query)
            .await
            .map_err(|e| unreachable(addr, "UDP", &e))?;
        let resend_at = (Instant::now() + resend_every).min(deadline);
        loop {
            let left = resend_at.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(unreachable(addr, "UDP", &e)),
                Ok(Ok(n)) => match check_response(&buf[..n], id, ask) {
                    Ok(msg) => return Ok(msg),
                    Err(Reject::OtherId) => {}
                    // Keep listening: a forged or garbled packet must not hide the real answer.
                    Err(Reject::Bad(why)) => bad = Some(why),
                },
            }
        }
    }
    Err(match bad {
        Some(why) => QueryError::BadResponse(why),
        None => QueryError::NoAnswer(format!(
            "no answer over UDP for `{} {}`",
            ask.name, ask.qtype
        )),
    })
}

async fn tcp_exchange(
    addr: SocketAddr,
    ask: Ask<'_>,
    edns: bool,
    deadline: Instant,
) -> Result<Message, QueryError> {
    let id = rand::random::<u16>();
    let query = build_query(id, ask, edns)?;
    let len = u16::try_from(query.len())
        .map_err(|_| QueryError::Local("the query is longer than 65535 bytes".to_owned()))?;
    let left = deadline.saturating_duration_since(Instant::now());
    let talk = async {
        let socket =
            net::tcp_socket(addr, ask.source).map_err(|e| QueryError::Local(e.to_string()))?;
        let mut stream = socket
            .connect(addr)
            .await
            .map_err(|e| unreachable(addr, "TCP", &e))?;
        let _ = stream.set_nodelay(true);
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&query);
        stream
            .write_all(&framed)
            .await
            .map_err(|e| unreachable(addr, "TCP", &e))?;
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await.map_err(|e| {
            QueryError::NoAnswer(format!(
                "{addr} closed the TCP connection without an answer: {e}"
            ))
        })?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut buf).await.map_err(|e| {
            QueryError::BadResponse(format!("{addr} cut the TCP answer short: {e}"))
        })?;
        check_response(&buf, id, ask).map_err(|r| match r {
            Reject::OtherId => {
                QueryError::BadResponse("the TCP response carries another query's id".to_owned())
            }
            Reject::Bad(why) => QueryError::BadResponse(why),
        })
    };
    match tokio::time::timeout(left, talk).await {
        Ok(result) => result,
        Err(_) => Err(QueryError::NoAnswer(format!(
            "no answer over TCP for `{} {}`",
            ask.name, ask.qtype
        ))),
    }
}

/// A socket error while talking to `addr`, as "nothing answered there".
fn unreachable(addr: SocketAddr, proto: &str, err: &io::Error) -> QueryError {
    let why = match err.kind() {
        io::ErrorKind::ConnectionRefused => "nothing listens there (connection refused)".to_owned(),
        _ => err.to_string(),
    };
    QueryError::NoAnswer(format!("{proto} to {addr}: {why}"))
}

/// The NSID the response carries, as text when printable ASCII, else as hex.
pub fn nsid_text(msg: &Message) -> Option<String> {
    let bytes: &[u8] = match msg.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(payload) => payload.as_ref(),
        EdnsOption::Unknown(_, data) => data,
        _ => return None,
    };
    if bytes.is_empty() {
        return None;
    }
    if bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        Some(String::from_utf8_lossy(bytes).into_owned())
    } else {
        Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// The stable text of an rcode (`NOERROR`, `SERVFAIL`, …).
pub fn rcode_label(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        ResponseCode::YXDomain => "YXDOMAIN".to_owned(),
        ResponseCode::YXRRSet => "YXRRSET".to_owned(),
        ResponseCode::NXRRSet => "NXRRSET".to_owned(),
        ResponseCode::NotAuth => "NOTAUTH".to_owned(),
        ResponseCode::NotZone => "NOTZONE".to_owned(),
        ResponseCode::BADVERS => "BADVERS".to_owned(),
        other => format!("RCODE{}", u16::from(other)),
    }
}
