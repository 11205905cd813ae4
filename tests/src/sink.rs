//! A webhook sink: an in-process HTTP/1.1 server on `127.0.0.1:0` that records every request
//! it gets, in order of arrival, and answers each one as the test has said for its path.
//!
//! One [`Sink`] stands in for every alert receiver at once, each on its own path: the generic
//! webhook, Slack's incoming webhook, PagerDuty's Events v2 endpoint, and Alertmanager's
//! `webhook_configs` receiver. A path answers `200` with an empty body until the test says
//! otherwise: [`Sink::set_reply`] for every later request, [`Sink::fail_next`] or
//! [`Sink::reply_next`] for the next few only (a receiver that fails, then recovers), with an
//! optional delay or a hang-up without an answer ([`Reply::hang_up`]), or
//! [`Sink::set_responder`] for an answer worked out from each request (a fake coordinator).
//!
//! The server is plain std: a thread accepts, and a thread per connection serves it with
//! keep-alive, `Content-Length` and chunked request bodies, and `Expect: 100-continue`. Every
//! request is recorded before it is answered, so a test that waits for it with
//! [`Sink::wait_for`] sees it even while its answer is delayed. Dropping the sink stops the
//! server and closes every connection.

use std::collections::{HashMap, VecDeque};
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// At most this many connections are served at once; more are closed on arrival.
const MAX_CONNECTIONS: usize = 256;
/// The largest request head (request line and headers) the sink reads.
const MAX_HEAD: usize = 64 * 1024;
/// The largest request body the sink reads; a larger one gets `413` and the connection closes.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(30);
/// How often a connection thread looks at the shutdown flag while it waits.
const TICK: Duration = Duration::from_millis(50);

/// How the sink answers one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status code (ignored when [`Reply::hang_up`] is set).
    pub status: u16,
    /// The body, sent as `application/json` if it starts with `{` or `[`, else `text/plain`.
    pub body: String,
    /// How long to wait before answering (or hanging up), after the request was recorded.
    pub delay: Duration,
    /// Close the connection without any answer, as a crashed receiver would.
    pub hang_up: bool,
    /// More headers to send, e.g. `Date` or `Retry-After`.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// `status` with an empty body, at once.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            body: String::new(),
            delay: Duration::ZERO,
            hang_up: false,
            headers: Vec::new(),
        }
    }

    /// No answer at all: the connection is closed once the request is read.
    pub fn hang_up() -> Self {
        Self {
            hang_up: true,
            ..Self::new(0)
        }
    }

    /// The same reply with `body`.
    pub fn with_body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    /// The same reply, sent `delay` after the request arrived.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Works out the answer to one request ([`Sink::set_responder`]). It runs while the sink holds
/// its lock, so it must not call the sink.
#[derive(Clone)]
pub struct Responder(std::sync::Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>);

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder(..)")
    }
}

impl Default for Reply {
    fn default() -> Self {
        Self::new(200)
    }
}

/// One request as the sink received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Its place in the order of arrival, from 0.
    pub seq: usize,
    /// The method, e.g. `POST`.
    pub method: String,
    /// The request target as sent: the path and the query.
    pub target: String,
    /// The path alone, without the query.
    pub path: String,
    /// Every header in the order sent, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// When the whole request had been read.
    pub at: Instant,
    /// The same moment on the wall clock, to compare with timestamps in payloads.
    pub received: SystemTime,
    /// The status the sink answered with, or `None` for a hang-up.
    pub replied: Option<u16>,
}

impl Recorded {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: the body is not JSON ({e}): {}",
                self.method,
                self.target,
                self.text()
            )
        })
    }

    /// One line for failure messages: seq, method, target, answer and the start of the body.
    pub fn summary(&self) -> String {
        let text = self.text();
        let cut: String = text.chars().take(300).collect();
        let answer = self
            .replied
            .map_or_else(|| "hung up".to_owned(), |s| s.to_string());
        format!(
            "#{} {} {} -> {answer}: {cut}",
            self.seq, self.method, self.target
        )
    }
}

/// A running sink, stopped when dropped.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    shutdown: AtomicBool,
    open: AtomicUsize,
    // Clones of every open connection, so that shutting down can close them.
    conns: Mutex<HashMap<usize, TcpStream>>,
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<Recorded>,
    next_seq: usize,
    rules: HashMap<String, Rule>,
}

/// What a path answers: the queued one-shot replies first, then the standing one.
#[derive(Debug, Default)]
struct Rule {
    next: VecDeque<Reply>,
    always: Option<Reply>,
    respond: Option<Responder>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not hide every later request from the test.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<usize, TcpStream>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
}

impl Sink {
    /// Starts a sink on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink on 127.0.0.1:0");
        let addr = listener.local_addr().expect("the sink's address");
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("sink-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared))
                .expect("start the sink's thread")
        };
        Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where the sink listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of `path` (which starts with `/`) on the sink, e.g. `http://127.0.0.1:PORT/slack`.
    pub fn url(&self, path: &str) -> String {
        assert!(
            path.starts_with('/'),
            "a sink path starts with `/`: {path:?}"
        );
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.state().requests.clone()
    }

    /// The requests so far to `path` (the query is ignored), in order of arrival.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.shared
            .state()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits up to `within` until at least one recorded request satisfies `predicate`, and
    /// returns every one that does, in order of arrival. Panics with every request received so
    /// far if none does in time.
    pub fn wait_for(
        &self,
        predicate: impl FnMut(&Recorded) -> bool,
        within: Duration,
    ) -> Vec<Recorded> {
        self.wait_for_n(1, predicate, within)
    }

    /// Waits up to `within` until at least `n` recorded requests satisfy `predicate`, and
    /// returns every one that does. Panics with every request received so far if fewer do.
    pub fn wait_for_n(
        &self,
        n: usize,
        mut predicate: impl FnMut(&Recorded) -> bool,
        within: Duration,
    ) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let matching: Vec<Recorded> = self
                .shared
                .state()
                .requests
                .iter()
                .filter(|r| predicate(r))
                .cloned()
                .collect();
            if matching.len() >= n {
                return matching;
            }
            if Instant::now() >= deadline {
                let all: Vec<String> = self.requests().iter().map(Recorded::summary).collect();
                panic!(
                    "the sink on {} got {} matching request(s) within {within:?}, not {n}; every request:\n{}",
                    self.addr,
                    matching.len(),
                    all.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// From now on, `path` answers with `reply` (after any queued one-shot replies).
    pub fn set_reply(&self, path: &str, reply: Reply) {
        self.shared
            .state()
            .rules
            .entry(path.to_owned())
            .or_default()
            .always = Some(reply);
    }

    /// From now on, `path` answers what `respond` works out from each request (after any
    /// queued one-shot replies; instead of a standing [`Sink::set_reply`]).
    pub fn set_responder(
        &self,
        path: &str,
        respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) {
        self.shared
            .state()
            .rules
            .entry(path.to_owned())
            .or_default()
            .respond = Some(Responder(std::sync::Arc::new(respond)));
    }

    /// The next `n` requests to `path` are answered with `reply`; later ones as before.
    pub fn reply_next(&self, path: &str, n: usize, reply: Reply) {
        let mut state = self.shared.state();
        let rule = state.rules.entry(path.to_owned()).or_default();
        rule.next.extend(std::iter::repeat_n(reply, n));
    }

    /// The next `n` requests to `path` get `status` (e.g. 500, a failing receiver) with a
    /// short body; later ones are answered as before.
    pub fn fail_next(&self, path: &str, n: usize, status: u16) {
        self.reply_next(
            path,
            n,
            Reply::new(status).with_body("{\"error\":\"injected by the test sink\"}"),
        );
    }

    /// Forgets every recorded request (the order numbers go on).
    pub fn clear_requests(&self) {
        self.shared.state().requests.clear();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for conn in self.shared.conns().values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Wake the blocked accept; if even that fails, leave the thread rather than hang.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok()
            && let Some(acceptor) = self.acceptor.take()
        {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut next_id = 0usize;
    for stream in listener.incoming() {
        if shared.stopping() {
            return;
        }
        let Ok(stream) = stream else { continue };
        if shared.open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue;
        }
        next_id += 1;
        let id = next_id;
        if let Ok(clone) = stream.try_clone() {
            shared.conns().insert(id, clone);
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("sink-conn-{id}"))
            .spawn(move || {
                serve(stream, &shared);
                shared.conns().remove(&id);
                shared.open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // No thread: the stream was moved into the closure and is closed with it.
            continue;
        }
    }
}

/// Why a connection ends.
enum Closed {
    /// The peer closed it, went idle too long, or the sink is stopping.
    Quietly,
    /// The request was bad: answer this status and close.
    Bad(u16),
}

/// Serves one connection: request after request until either side closes it.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(TICK));
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buf, shared) {
            Ok(r) => r,
            Err(Closed::Quietly) => return,
            Err(Closed::Bad(status)) => {
                let _ = write_reply(&mut stream, &Reply::new(status), false, false);
                return;
            }
        };
        let keep_alive = request.keep_alive;
        let head_only = request.method == "HEAD";
        let reply = {
            let mut state = shared.state();
            let seq = state.next_seq;
            state.next_seq += 1;
            let mut recorded = Recorded {
                seq,
                method: request.method,
                target: request.target,
                path: request.path,
                headers: request.headers,
                body: request.body,
                at: Instant::now(),
                received: SystemTime::now(),
                replied: None,
            };
            let reply = state
                .rules
                .get_mut(&recorded.path)
                .and_then(|rule| {
                    rule.next.pop_front().or_else(|| match &rule.respond {
                        Some(r) => Some((r.0)(&recorded)),
                        None => rule.always.clone(),
                    })
                })
                .unwrap_or_default();
            recorded.replied = (!reply.hang_up).then_some(reply.status);
            state.requests.push(recorded);
            reply
        };
        if !pause(reply.delay, shared) {
            return;
        }
        if reply.hang_up {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        if write_reply(&mut stream, &reply, keep_alive, head_only).is_err() || !keep_alive {
            return;
        }
    }
}

/// Waits `delay`, looking at the shutdown flag; false if the sink is stopping.
fn pause(delay: Duration, shared: &Shared) -> bool {
    let until = Instant::now() + delay;
    loop {
        if shared.stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(TICK));
    }
}

struct Request {
    method: String,
    target: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

/// Reads more bytes into `buf`; `Ok(false)` at end of stream. Gives up after [`IDLE`] without
/// a byte, or when the sink stops.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, shared: &Shared) -> Result<bool, Closed> {
    let idle_until = Instant::now() + IDLE;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if shared.stopping() || Instant::now() >= idle_until {
            return Err(Closed::Quietly);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(Closed::Quietly),
        }
    }
}

/// Reads into `buf` until it holds `delimiter`, and returns where it starts. More than
/// `MAX_HEAD` bytes without it is answered with `too_long`; a peer that closes first, quietly.
fn read_until(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shared: &Shared,
    delimiter: &[u8],
    too_long: u16,
) -> Result<usize, Closed> {
    loop {
        if let Some(i) = find(buf, delimiter) {
            return Ok(i);
        }
        if buf.len() > MAX_HEAD {
            return Err(Closed::Bad(too_long));
        }
        if !fill(stream, buf, shared)? {
            return Err(Closed::Quietly);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request from `buf` and the stream; bytes after it stay in `buf` (pipelining).
fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shared: &Shared,
) -> Result<Request, Closed> {
    let head_end = read_until(stream, buf, shared, b"\r\n\r\n", 431)?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Closed::Bad(400));
    };
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Closed::Bad(400));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let connection = header("connection").unwrap_or_default();
    let keep_alive = if version == "HTTP/1.0" {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    if header("expect").is_some_and(|e| e == "100-continue") {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| Closed::Quietly)?;
    }
    let chunked = header("transfer-encoding").is_some_and(|t| t.contains("chunked"));
    let body = if chunked {
        read_chunked(stream, buf, shared)?
    } else {
        let len = match header("content-length") {
            Some(v) => v.trim().parse::<usize>().map_err(|_| Closed::Bad(400))?,
            None => 0,
        };
        if len > MAX_BODY {
            return Err(Closed::Bad(413));
        }
        while buf.len() < len {
            if !fill(stream, buf, shared)? {
                return Err(Closed::Quietly);
            }
        }
        buf.drain(..len).collect()
    };
    let path = target.split('?').next().unwrap_or(target).to_owned();
    Ok(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        path,
        headers,
        body,
        keep_alive,
    })
}

/// Reads a chunked body (and its trailers, which are dropped).
fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shared: &Shared,
) -> Result<Vec<u8>, Closed> {
    let mut body = Vec::new();
    // Every chunk makes progress through `buf`, and the body is capped: the loop ends.
    loop {
        let line_end = read_until(stream, buf, shared, b"\r\n", 400)?;
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        buf.drain(..line_end + 2);
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| Closed::Bad(400))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let end = read_until(stream, buf, shared, b"\r\n", 400)?;
                buf.drain(..end + 2);
                if end == 0 {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(Closed::Bad(413));
        }
        while buf.len() < size + 2 {
            if !fill(stream, buf, shared)? {
                return Err(Closed::Quietly);
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn write_reply(
    stream: &mut TcpStream,
    reply: &Reply,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<()> {
    let content_type = if reply.body.starts_with('{') || reply.body.starts_with('[') {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    // 1xx, 204 and 304 carry no body by definition.
    let bodiless = reply.status < 200 || reply.status == 204 || reply.status == 304;
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nServer: vantage-e2e-sink\r\nConnection: {}\r\n",
        reply.status,
        reason(reply.status),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if !bodiless {
        out.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            reply.body.len()
        ));
    }
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    if !bodiless && !head_only {
        out.push_str(&reply.body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()
}
