//! One HTTP exchange over a fresh connection, and redirect following on top of it.
//!
//! A fresh TCP (and TLS) connection per request is deliberate: a pooled connection would hide
//! the firewall, L4 and handshake faults a probe is there to see.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use http::header::{ACCEPT_ENCODING, CONTENT_LENGTH, HOST, LOCATION, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use url::{Position, Url};

use super::super::ExecError;
use super::super::net::{self, ConnectError, ResolveError};
use super::super::tls::{TlsClient, left};
use crate::model::{HostPort, HttpMethod};
use crate::result::{FailureKind, TlsFacts};

/// The `User-Agent` sent unless the check sets its own.
const USER_AGENT_VALUE: &str = concat!("vantage-probe/", env!("CARGO_PKG_VERSION"));

/// What every request of one run shares.
#[derive(Clone, Debug)]
pub(super) struct Client {
    pub(super) tls: TlsClient,
    /// The check's URL: requests to its host and port go to `edge` when set.
    pub(super) check_url: Url,
    pub(super) edge: Option<HostPort>,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) accept_encoding: Option<HeaderValue>,
    pub(super) max_body_bytes: u64,
    pub(super) max_redirects: u32,
    /// The probe's source address: every connection (page, redirects, assets) is bound to it.
    pub(super) source: Option<IpAddr>,
    /// The check's `resolver`, for every host name of the run.
    pub(super) resolver: Option<SocketAddr>,
}

/// Time spent in each phase, summed over the connections of a request and its redirects.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Phases {
    pub(super) resolve: Option<Duration>,
    pub(super) connect: Option<Duration>,
    pub(super) tls: Option<Duration>,
    pub(super) first_byte: Option<Duration>,
}

impl Phases {
    fn add(&mut self, other: Phases) {
        let sum = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.resolve = sum(self.resolve, other.resolve);
        self.connect = sum(self.connect, other.connect);
        self.tls = sum(self.tls, other.tls);
        self.first_byte = sum(self.first_byte, other.first_byte);
    }
}

/// A complete response.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) url: Url,
    pub(super) status: u16,
    pub(super) version: &'static str,
    pub(super) headers: HeaderMap,
    /// The body as received (still content-encoded).
    pub(super) body: Vec<u8>,
    pub(super) remote_addr: SocketAddr,
    pub(super) tls: Option<TlsFacts>,
}

/// A request that did not produce a response.
#[derive(Debug)]
pub(super) enum FetchError {
    /// The vendor's failure.
    Fail {
        kind: FailureKind,
        message: String,
        remote_addr: Option<SocketAddr>,
        tls: Option<Box<TlsFacts>>,
    },
    /// The probe cannot test this.
    Probe(ExecError),
}

impl FetchError {
    fn fail(kind: FailureKind, message: String) -> Self {
        Self::Fail {
            kind,
            message,
            remote_addr: None,
            tls: None,
        }
    }

    fn at(mut self, addr: SocketAddr, tls_facts: Option<&TlsFacts>) -> Self {
        if let Self::Fail {
            remote_addr, tls, ..
        } = &mut self
        {
            remote_addr.get_or_insert(addr);
            if tls.is_none() {
                *tls = tls_facts.cloned().map(Box::new);
            }
        }
        self
    }
}

/// The outcome of a request with its redirects.
#[derive(Debug)]
pub(super) struct Followed {
    pub(super) result: Result<Response, FetchError>,
    pub(super) redirects: u32,
    pub(super) phases: Phases,
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Requests `url`, following redirects (each over a fresh connection) up to the client's
/// `max_redirects`. A redirect for which `keep(status)` is true is returned, not followed.
pub(super) async fn follow(
    client: &Client,
    method: HttpMethod,
    url: Url,
    keep: impl Fn(u16) -> bool,
    deadline: Instant,
) -> Followed {
    let mut url = url;
    let mut redirects = 0;
    let mut phases = Phases::default();
    loop {
        let mut these = Phases::default();
        let result = fetch(client, method, &url, &mut these, deadline).await;
        phases.add(these);
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                return Followed {
                    result: Err(e),
                    redirects,
                    phases,
                };
            }
        };
        let next = (is_redirect(response.status) && !keep(response.status))
            .then(|| response.headers.get(LOCATION))
            .flatten()
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let Some(mut next) = next else {
            return Followed {
                result: Ok(response),
                redirects,
                phases,
            };
        };
        if redirects >= client.max_redirects {
            let message = format!(
                "`{url}` redirects to `{next}`, past the limit of {} redirects",
                client.max_redirects
            );
            return Followed {
                result: Err(FetchError::Fail {
                    kind: FailureKind::TooManyRedirects,
                    message,
                    remote_addr: Some(response.remote_addr),
                    tls: response.tls.map(Box::new),
                }),
                redirects,
                phases,
            };
        }
        next.set_fragment(None);
        redirects += 1;
        url = next;
    }
}

/// Where to connect for `url`: the edge for the check's own host, the URL's host otherwise.
fn connect_target(client: &Client, url: &Url) -> Result<HostPort, FetchError> {
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => {
            return Err(FetchError::fail(
                FailureKind::HttpProtocol,
                format!("`{url}` has no host"),
            ));
        }
    };
    let port = url.port_or_known_default().unwrap_or(443);
    if let Some(edge) = &client.edge
        && url.host_str() == client.check_url.host_str()
    {
        // A redirect to the other scheme of the same host keeps the edge, on that scheme's port.
        let same_port = url.port_or_known_default() == client.check_url.port_or_known_default();
        return Ok(HostPort {
            host: edge.host.clone(),
            port: if same_port { edge.port } else { port },
        });
    }
    Ok(HostPort { host, port })
}

/// One request over a fresh connection; the body is read whole, up to `max_body_bytes`.
async fn fetch(
    client: &Client,
    method: HttpMethod,
    url: &Url,
    phases: &mut Phases,
    deadline: Instant,
) -> Result<Response, FetchError> {
    let target = connect_target(client, url)?;
    let start = Instant::now();
    let how = net::Lookup::new(client.resolver, client.source);
    let addrs = net::resolve(&target, how, left(deadline))
        .await
        .map_err(|e| match e {
            ResolveError::Failed(f) => FetchError::fail(f.kind, f.message),
            ResolveError::Probe(e) => FetchError::Probe(e),
        })?;
    phases.resolve = Some(start.elapsed());
    let (tcp, addr, took) = net::connect(&addrs, left(deadline), client.source)
        .await
        .map_err(|e| match e {
            ConnectError::Failed(f, addr) => FetchError::Fail {
                kind: f.kind,
                message: f.message,
                remote_addr: addr,
                tls: None,
            },
            ConnectError::Probe(e) => FetchError::Probe(e),
        })?;
    phases.connect = Some(took);
    let sni = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => url.host_str().unwrap_or_default().to_owned(),
    };
    if url.scheme() == "https" {
        let handshake = client
            .tls
            .handshake(tcp, &sni, &[b"h2", b"http/1.1"], left(deadline))
            .await;
        let (stream, session) = match handshake {
            Ok(ok) => ok,
            Err(f) => {
                phases.tls = f.took;
                let mut facts = f.facts;
                facts.remote_addr = Some(addr);
                return Err(match f.kind {
                    None => FetchError::Probe(ExecError::Unsupported(f.message)),
                    Some(kind) => FetchError::Fail {
                        kind,
                        message: f.message,
                        remote_addr: Some(addr),
                        tls: Some(Box::new(facts)),
                    },
                });
            }
        };
        phases.tls = Some(session.took);
        let mut facts = session.facts;
        facts.remote_addr = Some(addr);
        let h2 = facts.alpn.as_deref() == Some("h2");
        let exchanged = exchange(client, method, url, stream, h2, phases, deadline).await;
        respond(exchanged, url, addr, Some(facts))
    } else {
        let exchanged = exchange(client, method, url, tcp, false, phases, deadline).await;
        respond(exchanged, url, addr, None)
    }
}

/// The response of one exchange, or its failure, located at `addr` with its TLS session.
fn respond(
    exchanged: Result<(u16, &'static str, HeaderMap, Vec<u8>), FetchError>,
    url: &Url,
    addr: SocketAddr,
    tls: Option<TlsFacts>,
) -> Result<Response, FetchError> {
    match exchanged {
        Ok((status, version, headers, body)) => Ok(Response {
            url: url.clone(),
            status,
            version,
            headers,
            body,
            remote_addr: addr,
            tls,
        }),
        Err(e) => Err(e.at(addr, tls.as_ref())),
    }
}

/// Aborts the task driving a connection once the exchange is over (or abandoned).
struct ConnGuard(tokio::task::JoinHandle<()>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Exchanged = (u16, &'static str, HeaderMap, Vec<u8>);

/// Sends the request over `io` with HTTP/1.1 or HTTP/2 and reads the response.
async fn exchange<S>(
    client: &Client,
    method: HttpMethod,
    url: &Url,
    io: S,
    h2: bool,
    phases: &mut Phases,
    deadline: Instant,
) -> Result<Exchanged, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request = build_request(client, method, url, h2)?;
    let protocol = |e: hyper::Error| {
        FetchError::fail(
            FailureKind::HttpProtocol,
            format!(
                "HTTP exchange with `{}` failed: {e}",
                url.host_str().unwrap_or_default()
            ),
        )
    };
    let timed_out = |what: &str| {
        FetchError::fail(
            FailureKind::Timeout,
            format!("{what} from `{url}` did not arrive within the check's timeout"),
        )
    };
    let until = tokio::time::Instant::from_std(deadline);
    let io = TokioIo::new(io);
    let sent = Instant::now();
    let (response, _guard) = if h2 {
        let (mut sender, conn) = tokio::time::timeout_at(
            until,
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io),
        )
        .await
        .map_err(|_| timed_out("an HTTP/2 handshake"))?
        .map_err(protocol)?;
        let guard = ConnGuard(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let response = tokio::time::timeout_at(until, sender.send_request(request))
            .await
            .map_err(|_| timed_out("a response"))?
            .map_err(protocol)?;
        (response, guard)
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(protocol)?;
        let guard = ConnGuard(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let response = tokio::time::timeout_at(until, sender.send_request(request))
            .await
            .map_err(|_| timed_out("a response"))?
            .map_err(protocol)?;
        (response, guard)
    };
    phases.first_byte = Some(sent.elapsed());
    let status = response.status().as_u16();
    let version = match response.version() {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let (parts, body) = response.into_parts();
    let body = read_body(client, url, &parts.headers, body, until).await?;
    Ok((status, version, parts.headers, body))
}

fn build_request(
    client: &Client,
    method: HttpMethod,
    url: &Url,
    h2: bool,
) -> Result<http::Request<Empty<Bytes>>, FetchError> {
    let bad = |why: String| {
        FetchError::fail(
            FailureKind::HttpProtocol,
            format!("cannot request `{url}`: {why}"),
        )
    };
    // HTTP/2 carries the authority in the URI; HTTP/1.1 in the Host header.
    let uri = if h2 {
        url.as_str()
    } else {
        &url[Position::BeforePath..Position::AfterQuery]
    };
    let mut request = http::Request::builder()
        .method(match method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Head => Method::HEAD,
        })
        .version(if h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        })
        .uri(uri)
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad(e.to_string()))?;
    let headers = request.headers_mut();
    if !h2 {
        let host = &url[Position::BeforeHost..Position::AfterPort];
        headers.insert(
            HOST,
            HeaderValue::from_str(host).map_err(|e| bad(e.to_string()))?,
        );
    }
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    if let Some(enc) = &client.accept_encoding {
        headers.insert(ACCEPT_ENCODING, enc.clone());
    }
    if same_origin(&client.check_url, url) {
        for (name, value) in &client.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
    Ok(request)
}

/// Whether a request to `url` may carry the check's own `headers`: only to the check URL's
/// origin (scheme, host and port), or to its host upgraded from `http` to `https` on the
/// default port. A redirect to another host, or a third-party asset, never sees them: they are
/// often credentials (`Authorization`, API keys) meant for the vendor's endpoint alone, as
/// browsers and curl treat `Authorization` on a cross-origin redirect.
pub(super) fn same_origin(check_url: &Url, url: &Url) -> bool {
    if check_url.host() != url.host() {
        return false;
    }
    let (from, to) = (
        check_url.port_or_known_default(),
        url.port_or_known_default(),
    );
    match (check_url.scheme(), url.scheme()) {
        (a, b) if a == b => from == to,
        ("http", "https") => from == Some(80) && to == Some(443),
        _ => false,
    }
}

/// Reads the whole body, failing `body_too_large` past `max_body_bytes`.
async fn read_body(
    client: &Client,
    url: &Url,
    headers: &HeaderMap,
    mut body: Incoming,
    until: tokio::time::Instant,
) -> Result<Vec<u8>, FetchError> {
    let cap = client.max_body_bytes;
    let too_large = || {
        FetchError::fail(
            FailureKind::BodyTooLarge,
            format!("the body of `{url}` is larger than max_body_bytes ({cap} bytes)"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared.unwrap_or(0).min(cap).min(1 << 20) as usize);
    loop {
        let frame = match tokio::time::timeout_at(until, body.frame()).await {
            Err(_) => {
                return Err(FetchError::fail(
                    FailureKind::Timeout,
                    format!(
                        "the body of `{url}` was still arriving at the check's timeout ({} bytes so far)",
                        out.len()
                    ),
                ));
            }
            Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => {
                return Err(FetchError::fail(
                    FailureKind::HttpProtocol,
                    format!(
                        "the body of `{url}` broke off after {} bytes: {e}",
                        out.len()
                    ),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if out.len() as u64 + data.len() as u64 > cap {
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
    }
}
