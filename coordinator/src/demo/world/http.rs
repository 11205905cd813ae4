//! The CDN's edges and origin, and the vendor's control API and log-freshness endpoint: small
//! HTTP/1.1 servers, one accept loop each.
//!
//! An edge looks at the client's source address first (a fault may cover it), then serves from
//! its cache or fetches from the origin: `x-cache: HIT` with the object's `age`, or
//! `x-cache: MISS` (the URL's query string, a cache buster included, is part of the cache key
//! and reaches the origin). Text is gzipped when the client accepts it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::{
    ACCEPT_ENCODING, AGE, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, HOST, VARY, VIA,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{EdgeFault, STALE_BY, Shared, VENDOR_HEADER, WorldError};

/// Connections served at once per server; more are closed at once.
const CONNECTIONS: usize = 512;
/// A TLS handshake, or a request, must arrive within this.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an edge keeps an object.
const MAX_AGE: Duration = Duration::from_secs(60);
/// Objects an edge keeps at most; the oldest goes first.
const CACHE_ENTRIES: usize = 512;
/// Largest origin body an edge reads.
const MAX_BODY: usize = 1024 * 1024;
/// How long an edge waits for the origin.
const ORIGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The site the origin serves: path, content type, content.
const SITE: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        "<!doctype html>\n<html><head><title>Demo site</title>\n\
         <link rel=\"stylesheet\" href=\"/css/site.css\">\n\
         <script src=\"/js/app.js\"></script>\n</head>\n\
         <body><h1>Hello from the demo origin</h1><img src=\"/img/logo.svg\" alt=\"logo\"></body></html>\n",
    ),
    (
        "/css/site.css",
        "text/css",
        "/* The demo stylesheet, long enough to be worth compressing. */\n\
         body { margin: 0; padding: 0; font-family: sans-serif; color: #222; }\n\
         h1 { font-size: 2rem; margin: 1rem; color: #333; }\n\
         .banner { background: #eee; border-bottom: 1px solid #ccc; padding: 1rem; }\n",
    ),
    (
        "/js/app.js",
        "application/javascript",
        "console.log('vantage demo');\n",
    ),
    (
        "/img/logo.svg",
        "image/svg+xml",
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\"/></svg>\n",
    ),
];

/// What a server is.
#[derive(Clone, Debug)]
pub(super) enum Role {
    /// The site, behind the edges.
    Origin,
    /// One of the CDN's edges.
    Edge(Arc<EdgeState>),
    /// The vendor's control API: `GET /v1/status`.
    Api,
    /// The vendor's log-freshness endpoint: `GET /v1/latest`.
    Logs,
}

#[derive(Clone, Debug)]
struct Cached {
    content_type: HeaderValue,
    body: Bytes,
    stored: Instant,
}

/// An edge's own state: which one it is, where its origin is, and its cache.
#[derive(Debug)]
pub(super) struct EdgeState {
    index: usize,
    origin: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl EdgeState {
    /// Edge `index` (0 or 1) in front of the origin at `origin`.
    pub(super) fn new(index: usize, origin: SocketAddr) -> Self {
        Self {
            index,
            origin,
            client: Client::builder(TokioExecutor::new()).build_http(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn name(&self) -> &'static str {
        if self.index == 0 { "edge-1" } else { "edge-2" }
    }

    fn cached(&self, key: &str) -> Option<Cached> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|c| c.stored.elapsed() < MAX_AGE)
            .cloned()
    }

    fn store(&self, key: String, entry: Cached) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, c| c.stored.elapsed() < MAX_AGE);
        }
        if cache.len() >= CACHE_ENTRIES
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, c)| c.stored)
                .map(|(k, _)| k.clone())
        {
            cache.remove(&oldest);
        }
        cache.insert(key, entry);
    }
}

/// Binds a listener for the server named `what`.
pub(super) async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, WorldError> {
    TcpListener::bind(addr)
        .await
        .map_err(|why| WorldError::Bind { what, addr, why })
}

/// Serves `listener` as `role` (over TLS with `tls`) until the task is aborted.
pub(super) async fn serve(
    listener: TcpListener,
    role: Role,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    // Dropping the set, when this task is aborted, closes every connection.
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::task::yield_now().await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        if conns.len() >= CONNECTIONS {
            continue;
        }
        let _ = stream.set_nodelay(true);
        conns.spawn(connection(
            stream,
            peer.ip(),
            role.clone(),
            Arc::clone(&shared),
            tls.clone(),
        ));
    }
}

async fn connection(
    stream: TcpStream,
    peer: IpAddr,
    role: Role,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let service = service_fn(move |req| {
        let role = role.clone();
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&role, &shared, peer, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT);
    match tls {
        Some(acceptor) => {
            if let Ok(Ok(s)) = tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
                let _ = builder.serve_connection(TokioIo::new(s), service).await;
            }
        }
        None => {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    reply(status, "application/json", value.to_string())
}

async fn handle(role: &Role, shared: &Shared, peer: IpAddr, req: Request<Incoming>) -> Resp {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD\n",
        );
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut resp = match role {
        Role::Origin => origin(shared, &req),
        Role::Edge(edge) => self::edge(edge, shared, peer, &req).await,
        Role::Api => api(shared, &req),
        Role::Logs => logs(shared, &req),
    };
    if head {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

fn origin(shared: &Shared, req: &Request<Incoming>) -> Resp {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    shared.log_origin(target);
    match SITE.iter().find(|(path, ..)| *path == req.uri().path()) {
        Some((_, content_type, body)) => {
            let mut r = reply(StatusCode::OK, content_type, *body);
            r.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            );
            r
        }
        None => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

async fn edge(edge: &EdgeState, shared: &Shared, peer: IpAddr, req: &Request<Incoming>) -> Resp {
    let name = edge.name();
    let mut resp = match shared.edge_fault(edge.index, peer) {
        Some(EdgeFault::Error) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("{name}: service unavailable\n"),
        ),
        fault => {
            if let Some(EdgeFault::Slow(d)) = fault {
                tokio::time::sleep(d).await;
            }
            serve_object(edge, req).await
        }
    };
    let h = resp.headers_mut();
    h.insert(VENDOR_HEADER, HeaderValue::from_static(name));
    h.insert(
        VIA,
        HeaderValue::from_static(if edge.index == 0 {
            "1.1 edge-1.demo-cdn"
        } else {
            "1.1 edge-2.demo-cdn"
        }),
    );
    resp
}

/// The object from the cache, or from the origin; gzipped when the client accepts it.
async fn serve_object(edge: &EdgeState, req: &Request<Incoming>) -> Resp {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase())
        .unwrap_or_default();
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let key = format!("{host}{target}");
    let (object, hit) = match edge.cached(&key) {
        Some(c) => (c, true),
        None => match fetch(edge, &host, &target).await {
            Ok((StatusCode::OK, object)) => {
                edge.store(key, object.clone());
                (object, false)
            }
            Ok((status, object)) => {
                let mut r = Response::new(Full::new(object.body));
                *r.status_mut() = status;
                r.headers_mut().insert(CONTENT_TYPE, object.content_type);
                r.headers_mut()
                    .insert("x-cache", HeaderValue::from_static("MISS"));
                return r;
            }
            Err(why) => {
                return reply(
                    StatusCode::BAD_GATEWAY,
                    "text/plain",
                    format!("{}: {why}\n", edge.name()),
                );
            }
        },
    };
    let gzip = accepts_gzip(req.headers().get(ACCEPT_ENCODING)) && compressible(&object);
    let body = if gzip {
        gzip_bytes(&object.body)
    } else {
        object.body.clone()
    };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, object.content_type.clone());
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        "x-cache",
        HeaderValue::from_static(if hit { "HIT" } else { "MISS" }),
    );
    h.insert(AGE, HeaderValue::from(object.stored.elapsed().as_secs()));
    if gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// GETs `target` from the origin with `Host: host`.
async fn fetch(edge: &EdgeState, host: &str, target: &str) -> Result<(StatusCode, Cached), String> {
    let uri: http::Uri = format!("http://{}{target}", edge.origin)
        .parse()
        .map_err(|e| format!("bad request target `{target}`: {e}"))?;
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.uri_mut() = uri;
    if let Ok(h) = HeaderValue::from_str(host) {
        req.headers_mut().insert(HOST, h);
    }
    let exchange = async {
        let resp = edge
            .client
            .request(req)
            .await
            .map_err(|e| format!("the origin did not answer: {e}"))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("the origin's body: {e}"))?
            .to_bytes();
        Ok((
            status,
            Cached {
                content_type,
                body,
                stored: Instant::now(),
            },
        ))
    };
    tokio::time::timeout(ORIGIN_TIMEOUT, exchange)
        .await
        .map_err(|_| "the origin did not answer in time".to_owned())?
}

/// True when `Accept-Encoding` lists gzip with a non-zero weight.
fn accepts_gzip(header: Option<&HeaderValue>) -> bool {
    let Some(v) = header.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    v.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
    })
}

fn compressible(object: &Cached) -> bool {
    let t = object.content_type.to_str().unwrap_or("");
    !object.body.is_empty()
        && (t.starts_with("text/")
            || t.starts_with("application/javascript")
            || t.starts_with("application/json")
            || t.starts_with("image/svg+xml"))
}

fn gzip_bytes(body: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(body);
    Bytes::from(enc.finish().unwrap_or_default())
}

fn api(shared: &Shared, req: &Request<Incoming>) -> Resp {
    if req.uri().path() != "/v1/status" {
        return json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "no such endpoint; try /v1/status" }),
        );
    }
    if shared.faults().api_down {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "unavailable" }),
        )
    } else {
        json(
            StatusCode::OK,
            &serde_json::json!({ "status": "ok", "service": "demo-cdn control API" }),
        )
    }
}

fn logs(shared: &Shared, req: &Request<Incoming>) -> Resp {
    if req.uri().path() != "/v1/latest" {
        return json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "no such endpoint; try /v1/latest" }),
        );
    }
    let behind = if shared.faults().logs_stale {
        STALE_BY
    } else {
        Duration::from_secs(2)
    };
    let at = time::OffsetDateTime::now_utc() - behind;
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json(
        StatusCode::OK,
        &serde_json::json!({ "last_event_at": at, "delivered": "logs of demo-cdn" }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_given_to_those_who_accept_it() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(accepts_gzip(Some(&v("br, gzip"))));
        assert!(accepts_gzip(Some(&v("GZIP;q=0.5"))));
        assert!(accepts_gzip(Some(&v("*"))));
        assert!(!accepts_gzip(Some(&v("gzip;q=0"))));
        assert!(!accepts_gzip(Some(&v("br"))));
        assert!(!accepts_gzip(None));
    }
}
