//! The zone's two authoritative name servers: one static zone, answered over UDP and TCP with
//! AA set and RA clear, EDNS echoed with the server's NSID (RFC 5001) when asked. Names outside
//! the zone are REFUSED, as an authoritative-only server does. Messages are built with
//! `hickory-proto`, as the probe's DNS client builds its queries.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use super::{Layout, SERIAL, Shared, WWW_ADDRESSES, WorldError, ZONE};

/// TTL of every record.
const TTL: u32 = 60;
/// The EDNS payload size the servers advertise.
const EDNS_PAYLOAD: u16 = 1232;
/// A TCP connection idle this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once per server; more are closed at once.
const TCP_CONNECTIONS: usize = 256;

/// The zone's records, built once.
#[derive(Debug)]
pub(super) struct Zone {
    apex: Name,
    mname: Name,
    rname: Name,
    records: Vec<Record>,
}

fn name(s: &str) -> Result<Name, WorldError> {
    let mut n = Name::from_str(s).map_err(|e| WorldError::Zone(format!("`{s}`: {e}")))?;
    n.set_fqdn(true);
    Ok(n)
}

impl Zone {
    /// The zone for servers at `layout`: apex SOA and NS, glue for `ns1` and `ns2`, `www`, and
    /// A records of the CDN, API and log hosts (the IPv4 addresses of their servers).
    pub(super) fn new(layout: &Layout) -> Result<Self, WorldError> {
        let apex = name(ZONE)?;
        let at = |label: &str| name(&format!("{label}.{ZONE}"));
        let a = |owner: &Name, ip: IpAddr| match ip {
            IpAddr::V4(v4) => Some(Record::from_rdata(owner.clone(), TTL, RData::A(A(v4)))),
            IpAddr::V6(_) => None,
        };
        let ns = [at("ns1")?, at("ns2")?];
        let mut records = Vec::new();
        for n in &ns {
            records.push(Record::from_rdata(
                apex.clone(),
                TTL,
                RData::NS(NS(n.clone())),
            ));
        }
        for (n, addr) in ns.iter().zip(layout.ns) {
            records.extend(a(n, addr.ip()));
        }
        let www = at("www")?;
        for ip in WWW_ADDRESSES {
            records.extend(a(&www, IpAddr::V4(ip)));
        }
        let site = at("static")?;
        for edge in layout.edges {
            records.extend(a(&site, edge.ip()));
        }
        records.extend(a(&at("api")?, layout.api.ip()));
        records.extend(a(&at("logs")?, layout.logs.ip()));
        Ok(Self {
            mname: ns[0].clone(),
            rname: at("hostmaster")?,
            apex,
            records,
        })
    }

    fn soa(&self, serial: u32) -> Record {
        let soa = SOA::new(
            self.mname.clone(),
            self.rname.clone(),
            serial,
            3600,
            600,
            86400,
            TTL,
        );
        Record::from_rdata(self.apex.clone(), TTL, RData::SOA(soa))
    }

    /// The response to `query` from a server serving `serial` and naming itself `nsid`.
    pub(super) fn answer(&self, query: &Message, serial: u32, nsid: &str) -> Message {
        let mut m = Message::response(query.metadata.id, query.metadata.op_code);
        m.metadata.recursion_desired = query.metadata.recursion_desired;
        m.metadata.recursion_available = false;
        m.add_queries(query.queries.iter().cloned());
        if let Some(edns) = &query.edns {
            let mut out = Edns::new();
            out.set_max_payload(EDNS_PAYLOAD);
            if edns.option(EdnsCode::NSID).is_some()
                && let Ok(payload) = NSIDPayload::new(nsid.as_bytes().to_vec())
            {
                out.options_mut().insert(EdnsOption::NSID(payload));
            }
            m.set_edns(out);
        }
        if query.metadata.op_code != OpCode::Query {
            m.metadata.response_code = ResponseCode::NotImp;
            return m;
        }
        let [q] = query.queries.as_slice() else {
            m.metadata.response_code = ResponseCode::FormErr;
            return m;
        };
        let qname = q.name().to_lowercase();
        if q.query_class() != DNSClass::IN
            || !self.apex.zone_of(&qname)
            || matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
        {
            // Not ours, or a transfer nobody may ask for: refused, and not authoritative.
            m.metadata.response_code = ResponseCode::Refused;
            return m;
        }
        m.metadata.authoritative = true;
        let mut owned: Vec<Record> = self
            .records
            .iter()
            .filter(|r| r.name.eq_ignore_root_case(&qname))
            .cloned()
            .collect();
        if qname.eq_ignore_root_case(&self.apex) {
            owned.push(self.soa(serial));
        }
        let qtype = q.query_type();
        let answers: Vec<Record> = owned
            .iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .cloned()
            .collect();
        if answers.is_empty() {
            // NODATA or NXDOMAIN, with the SOA for negative caching (RFC 2308).
            if owned.is_empty() {
                m.metadata.response_code = ResponseCode::NXDomain;
            }
            m.add_authority(self.soa(serial));
        } else {
            m.add_answers(answers);
        }
        m
    }
}

/// One name server.
#[derive(Debug)]
pub(super) struct Server {
    /// What it answers to NSID.
    pub(super) nsid: &'static str,
    /// The second server: the one that lags under [`super::World::set_soa_drift`].
    pub(super) second: bool,
    /// The faults.
    pub(super) shared: Arc<Shared>,
    /// The zone.
    pub(super) zone: Arc<Zone>,
}

impl Server {
    fn serial(&self) -> u32 {
        if self.second && self.shared.faults().soa_drift {
            SERIAL - 1
        } else {
            SERIAL
        }
    }

    /// The wire answer to the packet `buf`, at most `limit` bytes (the rest truncated); `None`
    /// for a packet that is no query at all.
    fn respond(&self, buf: &[u8], limit: Option<usize>) -> Option<Vec<u8>> {
        let query = match Message::from_vec(buf) {
            Ok(q) if q.metadata.message_type == MessageType::Query => q,
            Ok(_) => return None,
            Err(_) => {
                // A header we can read gets FORMERR; anything shorter is noise.
                let id = u16::from_be_bytes([*buf.first()?, *buf.get(1)?]);
                let mut m = Message::response(id, OpCode::Query);
                m.metadata.response_code = ResponseCode::FormErr;
                return m.to_vec().ok();
            }
        };
        let mut m = self.zone.answer(&query, self.serial(), self.nsid);
        let bytes = m.to_vec().ok()?;
        let limit = limit.map(|l| match &query.edns {
            Some(e) => l.max(usize::from(e.max_payload().min(EDNS_PAYLOAD))),
            None => l,
        });
        match limit {
            Some(l) if bytes.len() > l => {
                m.answers.clear();
                m.authorities.clear();
                m.metadata.truncation = true;
                m.to_vec().ok()
            }
            _ => Some(bytes),
        }
    }
}

/// Binds UDP and TCP on the same address; with port 0, on a port free for both.
pub(super) async fn bind(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..if addr.port() == 0 { 50 } else { 1 } {
        let udp = UdpSocket::bind(addr).await?;
        let at = udp.local_addr()?;
        match TcpListener::bind(at).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for both UDP and TCP")))
}

/// Answers UDP queries until the task is aborted.
pub(super) async fn serve_udp(udp: UdpSocket, server: Arc<Server>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match udp.recv_from(&mut buf).await {
            Ok(r) => r,
            // An ICMP error from an earlier answer, and the like: not fatal.
            Err(_) => {
                tokio::task::yield_now().await;
                continue;
            }
        };
        if let Some(answer) = server.respond(&buf[..n], Some(512)) {
            let _ = udp.send_to(&answer, peer).await;
        }
    }
}

/// Answers TCP queries (several per connection) until the task is aborted.
pub(super) async fn serve_tcp(tcp: TcpListener, server: Arc<Server>) {
    // Dropping the set, when this task is aborted, closes every connection.
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = tcp.accept().await else {
            tokio::task::yield_now().await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        if conns.len() >= TCP_CONNECTIONS {
            continue;
        }
        conns.spawn(tcp_connection(stream, Arc::clone(&server)));
    }
}

async fn tcp_connection(mut stream: TcpStream, server: Arc<Server>) {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(answer) = server.respond(&buf, None) else {
            return;
        };
        let Ok(n) = u16::try_from(answer.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&answer);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A query for `qname qtype`, with EDNS and NSID requested.
    pub(in crate::demo::world) fn query(qname: &str, qtype: RecordType) -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(hickory_proto::op::Query::query(
            Name::from_str(qname).expect("name"),
            qtype,
        ));
        let mut edns = Edns::new();
        edns.options_mut().insert(EdnsOption::NSID(
            NSIDPayload::new(Vec::new()).expect("empty nsid"),
        ));
        m.set_edns(edns);
        m
    }

    fn zone() -> Zone {
        Zone::new(&Layout::DEMO).expect("zone")
    }

    #[test]
    fn answers_are_authoritative_without_recursion_and_name_the_server() {
        let m = zone().answer(
            &query("www.demo.vantage.test.", RecordType::A),
            SERIAL,
            "ns1.demo",
        );
        assert!(m.metadata.authoritative);
        assert!(!m.metadata.recursion_available);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let mut ips: Vec<String> = m
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.0.to_string(),
                other => panic!("not an A record: {other:?}"),
            })
            .collect();
        ips.sort();
        assert_eq!(ips, ["192.0.2.10", "192.0.2.11"]);
        let nsid = m.edns.as_ref().and_then(|e| e.option(EdnsCode::NSID));
        assert!(
            matches!(nsid, Some(EdnsOption::NSID(p)) if p.as_ref() == b"ns1.demo"),
            "{nsid:?}"
        );
    }

    #[test]
    fn the_apex_serves_soa_and_ns_and_case_does_not_matter() {
        let z = zone();
        let m = z.answer(
            &query("DEMO.vantage.TEST.", RecordType::SOA),
            42,
            "ns1.demo",
        );
        match m.answers.as_slice() {
            [r] => assert!(matches!(&r.data, RData::SOA(s) if s.serial == 42), "{r:?}"),
            other => panic!("one SOA expected: {other:?}"),
        }
        let m = z.answer(&query("demo.vantage.test.", RecordType::NS), SERIAL, "x");
        assert_eq!(m.answers.len(), 2);
    }

    #[test]
    fn missing_names_and_types_are_negative_with_the_soa_and_other_zones_refused() {
        let z = zone();
        let m = z.answer(
            &query("nope.demo.vantage.test.", RecordType::A),
            SERIAL,
            "x",
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative);
        assert_eq!(m.authorities.len(), 1);
        let m = z.answer(
            &query("www.demo.vantage.test.", RecordType::MX),
            SERIAL,
            "x",
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty() && m.authorities.len() == 1);
        let m = z.answer(&query("www.example.com.", RecordType::A), SERIAL, "x");
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.authoritative);
        let m = z.answer(&query("demo.vantage.test.", RecordType::AXFR), SERIAL, "x");
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        let server = Server {
            nsid: "ns1.demo",
            second: false,
            shared: Arc::default(),
            zone: Arc::new(zone()),
        };
        let reply = server
            .respond(&[0x12, 0x34, 0xff, 0xff, 0xff], Some(512))
            .expect("a FORMERR");
        let m = Message::from_vec(&reply).expect("parse");
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert!(server.respond(&[1], Some(512)).is_none());
    }
}
