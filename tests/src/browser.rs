//! Headless Chromium driven over WebDriver, for tests that look at a page as a person would:
//! Debian's `chromium` and `chromium-driver` (ChromeDriver), spoken to with plain WebDriver
//! JSON over HTTP on loopback.
//!
//! Chromium gets the flags that work on a closed network (no sandbox, no GPU, no background
//! networking, no component updates, no sync, no QUIC) and a fresh profile directory per
//! [`Browser`]. A test navigates, fills forms, runs small scripts to read the DOM, polls with
//! a deadline until the page shows what it waits for (so it can watch a live update without
//! reloading), and saves screenshots as artefacts ([`artefact`]).
//!
//! [`http`] is a small blocking HTTP/1.1 client with headers in and out, for the requests a
//! test makes beside the browser (a login with a wrong token, a header check).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::{ServerProcess, find_binary, free_port, wait_until};

/// Chromium's flags for this machine: without them it stalls on the closed network.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// The window size of every browser (and so of every screenshot).
pub const WINDOW: (u32, u32) = (1400, 1000);

/// Deadline of one WebDriver command (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The WebDriver name of an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One answer of [`http`].
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (dechunked).
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One blocking HTTP/1.1 request on a fresh connection (`Connection: close`), with extra
/// `headers` and an optional `(content type, body)`.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> std::io::Result<Reply> {
    http_within(addr, method, path, headers, body, Duration::from_secs(15))
}

fn http_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> std::io::Result<Reply> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut request = Vec::new();
    match body {
        Some((content_type, bytes)) => {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                bytes.len()
            ));
            request.extend_from_slice(head.as_bytes());
            request.extend_from_slice(bytes);
        }
        None => {
            head.push_str("\r\n");
            request.extend_from_slice(head.as_bytes());
        }
    }
    stream.write_all(&request)?;
    // Read by the answer's own framing: some servers (ChromeDriver) keep the connection open
    // after `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let complete = |raw: &[u8]| -> bool {
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let body = &raw[end + 4..];
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            return body.len() >= len;
        }
        if head.contains("transfer-encoding: chunked") || head.contains("transfer-encoding:chunked")
        {
            return body.ends_with(b"0\r\n\r\n");
        }
        false
    };
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if complete(&raw) {
            break;
        }
    }
    let text = String::from_utf8(raw).map_err(|_| bad("the answer is not UTF-8"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("the answer has no end of headers"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("the answer has no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        crate::fleet::dechunk(body).ok_or_else(|| bad("a broken chunked body"))?
    } else {
        body.to_owned()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Where a test saves what a person would look at: `<target>/artefacts/<name>`, or under
/// `VANTAGE_ARTEFACTS` when set. The directory is created.
pub fn artefact(name: &str) -> PathBuf {
    let dir = std::env::var_os("VANTAGE_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/<test> → target/artefacts
            let exe = std::env::current_exe().expect("the test's own path");
            exe.parent()
                .and_then(Path::parent)
                .and_then(Path::parent)
                .expect("target/")
                .join("artefacts")
        });
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create the artefact directory {}: {e}", dir.display()));
    dir.join(name)
}

/// A headless Chromium with its own fresh profile, driven by its own ChromeDriver. Dropping
/// it ends the session (ChromeDriver closes Chromium) and stops the driver.
#[derive(Debug)]
pub struct Browser {
    driver: ServerProcess,
    addr: SocketAddr,
    session: String,
    browser_pid: Option<u32>,
    profile: Option<tempfile::TempDir>,
}

impl Browser {
    /// Starts ChromeDriver on a free loopback port and opens a Chromium session.
    pub fn start() -> Self {
        let chromedriver = find_binary("chromedriver", "chromium-driver");
        let chromium = find_binary("chromium", "chromium");
        let profile = tempfile::Builder::new()
            .prefix("vantage-chromium-")
            .tempdir()
            .expect("a fresh Chromium profile directory");
        // ChromeDriver listens on the port on both 127.0.0.1 and ::1, and exits when either is
        // taken ("IPv6 port not available"): pick a port free on both, and if another process
        // takes it before ChromeDriver does, try another.
        let mut attempt = 0;
        let (driver, addr) = loop {
            attempt += 1;
            let port = free_dual_stack_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log = profile.path().join(format!("chromedriver-{attempt}.log"));
            let mut cmd = Command::new(&chromedriver);
            cmd.arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .arg(format!("--log-path={}", log.display()));
            let mut driver = ServerProcess::spawn(
                "chromedriver",
                cmd,
                &profile.path().join(format!("out-{attempt}.log")),
            );
            let mut lost_port = false;
            wait_until(
                "ChromeDriver to answer /status",
                Duration::from_secs(20),
                || {
                    if attempt < 5 && driver.has_exited() && driver.log().contains("not available")
                    {
                        lost_port = true;
                        return true;
                    }
                    driver.assert_running();
                    http(addr, "GET", "/status", &[], None).is_ok_and(|r| r.status == 200)
                },
            );
            if !lost_port {
                break (driver, addr);
            }
        };
        let data_dir = profile.path().join("chromium");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", data_dir.display()));
        args.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": 30_000, "script": 10_000, "implicit": 0 },
                    "goog:chromeOptions": {
                        "binary": chromium.display().to_string(),
                        "args": args,
                    }
                }
            }
        });
        let mut browser = Self {
            driver,
            addr,
            session: String::new(),
            browser_pid: None,
            profile: Some(profile),
        };
        let value = browser.command("POST", "/session", Some(&caps));
        browser.session = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"))
            .to_owned();
        browser.browser_pid = value["capabilities"]["goog:processID"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok());
        browser
    }

    /// One WebDriver command; panics with the driver's message on an error.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("encode a WebDriver command"));
        let reply = http_within(
            self.addr,
            method,
            path,
            &[("Accept", "application/json")],
            bytes
                .as_deref()
                .map(|b| ("application/json; charset=utf-8", b)),
            COMMAND_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let parsed: Value = serde_json::from_str(&reply.body).unwrap_or_else(|e| {
            panic!("WebDriver {method} {path}: not JSON ({e}): {}", reply.body)
        });
        if reply.status != 200 {
            panic!(
                "WebDriver {method} {path} answered {}: {} — {}",
                reply.status, parsed["value"]["error"], parsed["value"]["message"]
            );
        }
        parsed["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Navigates to `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.command(
            "POST",
            &self.session_path("/url"),
            Some(&json!({ "url": url })),
        );
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.command("GET", &self.session_path("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body: `return …`) in the page with `args`; its result.
    pub fn script(&self, script: &str, args: &[Value]) -> Value {
        self.command(
            "POST",
            &self.session_path("/execute/sync"),
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script` every 100 ms until it returns something other than `null`, `false`, `0`
    /// or `""`, and returns that; panics after `within` naming `what`, with the last result.
    pub fn wait_for(&self, what: &str, within: Duration, script: &str) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.script(script, &[]);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; the page is at {} and shows:\n{}",
                self.url(),
                self.script("return document.body ? document.body.innerText : ''", &[])
                    .as_str()
                    .unwrap_or_default()
            );
            // Polling interval of a DOM condition, not a wait for an event.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, css: &str) -> String {
        let v = self.command(
            "POST",
            &self.session_path("/element"),
            Some(&json!({ "using": "css selector", "value": css })),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for {css:?} in {v}"))
            .to_owned()
    }

    /// Types `text` into the element `css` selects.
    pub fn fill(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command(
            "POST",
            &self.session_path(&format!("/element/{id}/value")),
            Some(&json!({ "text": text })),
        );
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.command(
            "POST",
            &self.session_path(&format!("/element/{id}/click")),
            Some(&json!({})),
        );
    }

    /// Saves a PNG of the whole page (beyond the window's height) to `path`.
    pub fn screenshot(&self, path: &Path) {
        let full = self.command(
            "POST",
            &self.session_path("/goog/cdp/execute"),
            Some(&json!({
                "cmd": "Page.captureScreenshot",
                "params": { "format": "png", "captureBeyondViewport": true },
            })),
        );
        let b64 = full["data"]
            .as_str()
            .unwrap_or_else(|| panic!("no screenshot data in {full}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("the screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("write the screenshot {}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Closes Chromium; a failure here must not hide the test's own panic.
            let _ = http_within(
                self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                &[],
                None,
                Duration::from_secs(10),
            );
        }
        self.driver.terminate(Duration::from_secs(5));
        // Chromium outlives a driver that did not close it: end it by its own process id.
        if let Some(pid) = self.browser_pid
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        let keep = std::thread::panicking() || std::env::var_os("VANTAGE_E2E_KEEP").is_some();
        if keep && let Some(dir) = self.profile.take() {
            eprintln!(
                "the browser's profile and ChromeDriver's log are kept at {}",
                dir.keep().display()
            );
        }
    }
}

/// A loopback port free on both 127.0.0.1 and ::1 when asked (a host without IPv6 loopback
/// counts as free there).
fn free_dual_stack_port() -> u16 {
    for _ in 0..50 {
        let port = free_port();
        let v6 = std::net::TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, port));
        match v6 {
            Ok(_) => return port,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(_) => return port,
        }
    }
    panic!("no loopback port free on both IPv4 and IPv6 in 50 tries")
}
