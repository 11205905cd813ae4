//! The status page (`GET /`) in headless Chromium, during a demo-like scenario on a real
//! coordinator process with a reader token.
//!
//! Six registered probes in three regions (`a`, `b`, `c`) push results the test makes up:
//! a day of history first (so that the latency charts have something to draw), then one result
//! per probe and check every 250 ms, started now, by a background pusher whose faults the test
//! switches. What is proven:
//! - without a session the page sends the browser to `/login`; a wrong token is refused with
//!   401 and the form; the right one signs the browser in (an `HttpOnly` cookie, no token in any
//!   URL or page), and the cookie reads the API (the live stream's rule) but changes nothing;
//! - with `acme` failing in region `b` only, the DOM shows `hard_down` in exactly the cell
//!   (acme, b) and `operational` in every other cell, each cell naming its state in text; the
//!   open incident is listed with its timeline and its evidence (which probes voted failing,
//!   with the failure kind); the probe list shows every probe with labels and health; there is
//!   a latency chart (`<svg>`) per check; the same grid is in the server's HTML (no script
//!   needed);
//! - untrusted text (a probe label and a failure message holding `<script>`) is shown as text
//!   and never runs;
//! - the page follows the world live, without a reload: its script listens to the event stream
//!   (signed in by the session cookie) and, when `acme` recovers and `fastcdn` fails in region
//!   `c`, the cells change in place;
//! - a vendor's page has the last hour and the last day per check; signing out ends the session.
//!
//! Screenshots are saved as artefacts: `<target>/artefacts/status-page.png` (and
//! `status-page-live.png`, `status-page-vendor.png`); their paths are printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use vantage_checks::model::CheckKind;
use vantage_checks::result::{
    CheckResult, Facts, FailureKind, RESULT_SCHEMA_VERSION, Status, TcpFacts, Timings,
};
use vantage_checks::wire::ResultBatch;
use vantage_e2e::browser::{Browser, artefact, http};
use vantage_e2e::fleet::{Coordinator, Fleet, http_post_json};
use vantage_e2e::workspace_binary;

const CHECKS: &str = r#"
[defaults]
interval = "1s"
timeout = "800ms"
retry = "off"
window = "4s"
quorum = 3
failing = "50%"
regions = 2
region_quorum = 2
confirm = 1
for = "2s"
recover_for = "2s"

[[vendor]]
id = "acme"
name = "Acme DNS"

[[vendor]]
id = "fastcdn"
name = "FastCDN"

[[check]]
id = "acme-www"
vendor = "acme"
kind = "tcp"
target = "127.0.0.1:9"

[[check]]
id = "fast-css"
vendor = "fastcdn"
kind = "tcp"
target = "127.0.0.1:9"
"#;

/// The checks and their vendors.
const CHECK_VENDORS: [(&str, &str); 2] = [("acme-www", "acme"), ("fast-css", "fastcdn")];

/// Probes, their regions and a label each; b2's label is hostile.
const PROBES: [(&str, &str, &str); 6] = [
    ("a1", "a", "city=Amsterdam"),
    ("a2", "a", "city=Antwerp"),
    ("b1", "b", "city=Berlin"),
    ("b2", "b", "city=<script>window.__pwned=1</script>"),
    ("c1", "c", "city=Chicago"),
    ("c2", "c", "city=Calgary"),
];

/// The reader token.
const TOKEN: &str = "status-page-reader-t0ken-0123456789";

/// A failure message that tries to be markup.
const HOSTILE: &str = "connect to 192.0.2.10:443 timed out <script>window.__pwned=2</script>";

/// Which (region, check) pairs fail now.
type Faults = Arc<Mutex<Vec<(&'static str, &'static str)>>>;

/// Typical latency (ms) of a region, with a slow swell over the day for the charts.
fn latency(region: &str, check: &str, at: OffsetDateTime, seq: u64) -> f64 {
    let base = match region {
        "a" => 18.0,
        "b" => 42.0,
        _ => 75.0,
    } * if check == "fast-css" { 1.6 } else { 1.0 };
    let hour = at.unix_timestamp() as f64 / 3600.0;
    let swell = 1.0 + 0.35 * (hour * std::f64::consts::TAU / 8.0).sin();
    // A deterministic spread, so that p95 stands apart from p50.
    let spread =
        1.0 + ((seq * 7919) % 100) as f64 / 100.0 * if seq.is_multiple_of(10) { 2.5 } else { 0.4 };
    base * swell * spread
}

fn result(
    probe: &str,
    region: &str,
    check: &str,
    vendor: &str,
    seq: u64,
    at: OffsetDateTime,
    fail: bool,
) -> CheckResult {
    let total = if fail {
        800.0
    } else {
        latency(region, check, at, seq)
    };
    CheckResult {
        v: RESULT_SCHEMA_VERSION,
        check_id: check.into(),
        vendor: vendor.into(),
        kind: CheckKind::Tcp,
        probe_id: probe.into(),
        boot_id: format!("{probe}-boot"),
        seq,
        started_at: at,
        status: if fail { Status::Fail } else { Status::Ok },
        failure: fail.then_some(FailureKind::ConnectTimeout),
        message: fail.then(|| format!("{probe}: {HOSTILE}")),
        slow: false,
        retried: false,
        timings: Timings {
            connect_ms: Some(total),
            total_ms: total,
            ..Timings::default()
        },
        facts: Facts::Tcp(TcpFacts::default()),
        truncated: None,
        run: None,
    }
}

fn post(addr: SocketAddr, token: &str, results: Vec<CheckResult>) -> Result<(), String> {
    let body = serde_json::to_string(&ResultBatch {
        results,
        counters: None,
    })
    .expect("encode a batch");
    match http_post_json(addr, "/api/v1/results", token, &body) {
        Ok((200, _)) => Ok(()),
        Ok((status, body)) => Err(format!("{status}: {body}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The coordinator, its probes' tokens, and the pusher.
struct World {
    // Declared first, dropped first: the coordinator stops before its directory goes.
    coordinator: Coordinator,
    _fleet: Fleet,
    tokens: BTreeMap<&'static str, String>,
    faults: Faults,
    stop: Arc<AtomicBool>,
    pushes: Arc<AtomicU64>,
    push_error: Arc<Mutex<Option<String>>>,
    pusher: Option<JoinHandle<()>>,
}

impl World {
    fn start() -> Self {
        let fleet = Fleet::new();
        std::fs::write(fleet.path().join("api.token"), format!("{TOKEN}\n"))
            .expect("write the reader token");
        let coordinator =
            fleet.coordinator_with(CHECKS, Some("[api]\ntoken_file = \"api.token\"\n"));
        let mut tokens = BTreeMap::new();
        for (id, region, label) in PROBES {
            let token_file = fleet.path().join(format!("{id}.token"));
            let out = Command::new(workspace_binary("vantage-coordinator"))
                .args(["probe", "add", id, "--region", region, "--label", label])
                .args(["--label", "network=eyeball", "--token-file"])
                .arg(&token_file)
                .arg("--data-dir")
                .arg(coordinator.data_dir())
                .env_remove("VANTAGE_CONFIG")
                .output()
                .expect("run vantage-coordinator probe add");
            assert!(
                out.status.success(),
                "probe add {id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let token = std::fs::read_to_string(&token_file).expect("read the probe token");
            tokens.insert(id, token.trim().to_owned());
        }
        Self {
            _fleet: fleet,
            coordinator,
            tokens,
            faults: Arc::default(),
            stop: Arc::default(),
            pushes: Arc::default(),
            push_error: Arc::default(),
            pusher: None,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.coordinator.addr
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.coordinator.url())
    }

    /// A day of passing history: every 5 minutes over the day, every minute over the last hour.
    fn backfill(&self) {
        let now = OffsetDateTime::now_utc();
        let mut minutes: Vec<i64> = (61..=1440).step_by(5).collect();
        minutes.extend(1..=60);
        for (probe, region, _) in PROBES {
            let mut seq = 0;
            let mut batch = Vec::new();
            for m in &minutes {
                let at = now - time::Duration::minutes(*m);
                for (check, vendor) in CHECK_VENDORS {
                    seq += 1;
                    batch.push(result(probe, region, check, vendor, seq, at, false));
                }
            }
            for chunk in batch.chunks(500) {
                post(self.addr(), &self.tokens[probe], chunk.to_vec())
                    .unwrap_or_else(|e| panic!("backfill from {probe}: {e}"));
            }
        }
    }

    /// Starts pushing a round every 250 ms: one result per probe and check, started now.
    fn push(&mut self) {
        let addr = self.addr();
        let tokens = self.tokens.clone();
        let faults = Arc::clone(&self.faults);
        let stop = Arc::clone(&self.stop);
        let pushes = Arc::clone(&self.pushes);
        let error = Arc::clone(&self.push_error);
        self.pusher = Some(std::thread::spawn(move || {
            // Seqs above the backfill's.
            let mut seq = 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                let now = OffsetDateTime::now_utc();
                let failing = faults.lock().expect("faults").clone();
                for (probe, region, _) in PROBES {
                    let batch = CHECK_VENDORS
                        .iter()
                        .map(|(check, vendor)| {
                            seq += 1;
                            let fail = failing.contains(&(region, *check));
                            result(probe, region, check, vendor, seq, now, fail)
                        })
                        .collect();
                    if let Err(e) = post(addr, &tokens[probe], batch) {
                        *error.lock().expect("push error") = Some(format!("{probe}: {e}"));
                    }
                }
                pushes.fetch_add(1, Ordering::Relaxed);
                // The probes' cadence, not a wait for an event.
                std::thread::sleep(Duration::from_millis(250));
            }
        }));
    }

    fn set_faults(&self, faults: &[(&'static str, &'static str)]) {
        *self.faults.lock().expect("faults") = faults.to_vec();
    }

    fn assert_pushing(&mut self) {
        if let Some(e) = self.push_error.lock().expect("push error").as_ref() {
            panic!(
                "a push failed: {e}\ncoordinator log:\n{}",
                self.coordinator.log()
            );
        }
        self.coordinator.assert_running();
    }

    /// `GET path` on the API with the bearer token, as JSON.
    fn api(&self, path: &str) -> Value {
        let auth = format!("Bearer {TOKEN}");
        let r = http(self.addr(), "GET", path, &[("Authorization", &auth)], None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body))
    }

    /// The state of `vendor` in `region` (`global` for the global state) per the API.
    fn state(&self, vendors: &Value, vendor: &str, region: &str) -> String {
        let v = vendors
            .as_array()
            .and_then(|a| a.iter().find(|v| v["id"] == vendor))
            .unwrap_or_else(|| panic!("no vendor {vendor} in {vendors}"));
        let s = if region == "global" {
            &v["global"]["state"]
        } else {
            &v["regions"][region]["state"]
        };
        s.as_str().unwrap_or("unknown").to_owned()
    }

    /// Waits until the API shows exactly `down` (vendor, region) pairs as `hard_down` and
    /// every other cell as operational.
    fn wait_for_states(&mut self, what: &str, down: &[(&str, &str)]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.assert_pushing();
            let vendors = self.api("/api/v1/vendors");
            let all_as_wanted = ["acme", "fastcdn"].iter().all(|v| {
                ["global", "a", "b", "c"].iter().all(|r| {
                    let want = if down.contains(&(*v, *r)) {
                        "hard_down"
                    } else {
                        "operational"
                    };
                    self.state(&vendors, v, r) == want
                })
            });
            if all_as_wanted {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: the API still says {vendors}\n{}",
                self.coordinator.log()
            );
            // Polling interval.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.pusher.take() {
            let _ = p.join();
        }
    }
}

/// Every cell of the grid: (vendor, region) → (data-state, text).
fn cells(browser: &Browser) -> BTreeMap<(String, String), (String, String)> {
    let v = browser.script(
        "return Array.from(document.querySelectorAll('table.grid td.cell')).map(function (td) {
           return [td.dataset.vendor, td.dataset.region, td.dataset.state, td.textContent.trim()];
         });",
        &[],
    );
    v.as_array()
        .expect("an array of cells")
        .iter()
        .map(|c| {
            let s = |i: usize| c[i].as_str().unwrap_or_default().to_owned();
            ((s(0), s(1)), (s(2), s(3)))
        })
        .collect()
}

/// Asserts the grid: `hard_down` ("hard down") in exactly the `down` cells, `operational`
/// everywhere else.
fn assert_grid(browser: &Browser, down: &[(&str, &str)]) {
    let cells = cells(browser);
    let mut want = BTreeMap::new();
    for vendor in ["acme", "fastcdn"] {
        for region in ["global", "a", "b", "c"] {
            let (state, text) = if down.contains(&(vendor, region)) {
                ("hard_down", "hard down")
            } else {
                ("operational", "operational")
            };
            want.insert(
                (vendor.to_owned(), region.to_owned()),
                (state.to_owned(), text.to_owned()),
            );
        }
    }
    assert_eq!(cells, want, "the grid's cells");
}

#[test]
fn the_status_page_shows_the_right_state_in_the_right_cell_and_follows_the_world() {
    let mut w = World::start();
    w.backfill();
    w.set_faults(&[("b", "acme-www")]);
    w.push();
    w.wait_for_states("acme hard down in region b only", &[("acme", "b")]);
    let open = w.api("/api/v1/incidents?open=true");
    let incident = open
        .as_array()
        .and_then(|a| a.iter().find(|i| i["subject"] == "acme"))
        .unwrap_or_else(|| panic!("no open incident for acme: {open}"))["id"]
        .as_i64()
        .expect("incident id");

    // Without a session: to the sign-in page (the partial says 401); a wrong token is refused.
    let r = http(w.addr(), "GET", "/", &[], None).expect("GET /");
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/login?next=%2F"));
    let r = http(w.addr(), "GET", "/?partial=main", &[], None).expect("GET partial");
    assert_eq!(r.status, 401);
    let form = |token: &str| format!("token={token}&next=%2F");
    let r = http(
        w.addr(),
        "POST",
        "/login",
        &[],
        Some((
            "application/x-www-form-urlencoded",
            form("not-the-token").as_bytes(),
        )),
    )
    .expect("POST /login");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("not the reader token"), "{}", r.body);
    assert!(r.header("set-cookie").is_none());
    // The right token: a session cookie, which reads the API but changes nothing.
    let r = http(
        w.addr(),
        "POST",
        "/login",
        &[],
        Some(("application/x-www-form-urlencoded", form(TOKEN).as_bytes())),
    )
    .expect("POST /login");
    assert_eq!(r.status, 303, "{}", r.body);
    let set_cookie = r.header("set-cookie").expect("a session cookie").to_owned();
    for want in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(want), "{set_cookie}");
    }
    assert!(!set_cookie.contains(TOKEN), "the cookie holds the token");
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let r = http(
        w.addr(),
        "GET",
        "/api/v1/vendors",
        &[("Cookie", &cookie)],
        None,
    )
    .expect("GET vendors");
    assert_eq!(r.status, 200, "the session reads the API: {}", r.body);
    let r = http(
        w.addr(),
        "POST",
        "/api/v1/silences",
        &[("Cookie", &cookie)],
        Some((
            "application/json",
            br#"{"vendor":"acme","duration":"1h","comment":"x"}"#,
        )),
    )
    .expect("POST silences");
    assert_eq!(
        r.status, 401,
        "a session must not change anything: {}",
        r.body
    );

    // The server's HTML already has the grid (no script needed), under a strict policy.
    let auth = format!("Bearer {TOKEN}");
    let r = http(w.addr(), "GET", "/", &[("Authorization", &auth)], None).expect("GET /");
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(r.body.contains(
        r#"<td class="cell state-hard_down" data-vendor="acme" data-region="b" data-state="hard_down""#
    ));
    assert!(
        !r.body.contains("<script>window"),
        "untrusted text reached the page as markup"
    );
    assert!(!r.body.contains(TOKEN), "the token is on the page");
    let css = r
        .body
        .split("href=\"/static/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a stylesheet link");
    let r = http(w.addr(), "GET", &format!("/static/{css}"), &[], None).expect("GET css");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );

    // The browser: sent to the sign-in, signs in through the form.
    let browser = Browser::start();
    browser.goto(&w.url("/"));
    assert!(
        browser.url().contains("/login?next="),
        "not sent to the sign-in: {}",
        browser.url()
    );
    browser.fill("#token", TOKEN);
    browser.click("form button[type=submit]");
    browser.wait_for(
        "the status page after signing in",
        Duration::from_secs(20),
        "return location.pathname === '/' && document.querySelector('table.grid') !== null;",
    );
    assert!(!browser.url().contains(TOKEN), "the token is in a URL");

    // The grid: hard down in exactly (acme, b).
    assert_grid(&browser, &[("acme", "b")]);

    // The incident, its timeline and its evidence.
    let card = browser.script(
        "var c = document.getElementById('attn-vendor-acme');
         if (!c) { return null; }
         return {
           incident: c.dataset.incident,
           text: c.innerText,
           opened: c.querySelectorAll('.timeline li[data-kind=\"opened\"]').length,
           failing: Array.from(c.querySelectorAll('table.votes[data-check=\"acme-www\"] tr[data-vote=\"failing\"]'))
             .map(function (tr) { return [tr.dataset.probe, tr.querySelector('td.failure').textContent]; }),
           passing: c.querySelectorAll('table.votes tr[data-vote=\"passing\"]').length,
           messages: Array.from(c.querySelectorAll('td.message')).map(function (td) { return td.textContent; }),
         };",
        &[],
    );
    assert_eq!(card["incident"], incident.to_string(), "{card}");
    let text = card["text"].as_str().unwrap_or_default();
    assert!(text.contains(&format!("Incident #{incident}")), "{text}");
    assert!(text.contains("Acme DNS is hard_down in b"), "{text}");
    assert!(
        card["opened"].as_u64() >= Some(1),
        "no `opened` in the timeline: {card}"
    );
    assert_eq!(
        card["failing"],
        serde_json::json!([["b1", "connect_timeout"], ["b2", "connect_timeout"]]),
        "{card}"
    );
    assert_eq!(card["passing"], 4, "{card}");
    // The hostile message is text, and nothing it held ran.
    assert!(
        card["messages"].as_array().is_some_and(|m| m
            .iter()
            .any(|m| m.as_str().is_some_and(|m| m.contains(HOSTILE)))),
        "{card}"
    );
    let safe = browser.script(
        "return { pwned: window.__pwned === undefined ? null : window.__pwned,
                  scripts: document.scripts.length };",
        &[],
    );
    assert_eq!(safe["pwned"], Value::Null, "injected script ran: {safe}");
    assert_eq!(safe["scripts"], 1, "only the page's own script: {safe}");

    // The probes, with labels and health.
    let probes = browser.script(
        "return Array.from(document.querySelectorAll('table.probes tbody tr')).map(function (tr) {
           return [tr.dataset.probe, tr.dataset.health, tr.cells[1].textContent, tr.cells[2].textContent];
         });",
        &[],
    );
    let probes = probes.as_array().expect("probe rows");
    assert_eq!(probes.len(), PROBES.len(), "{probes:?}");
    for ((id, region, label), row) in PROBES.iter().zip(probes) {
        assert_eq!(row[0], *id);
        assert_eq!(row[1], "healthy");
        assert_eq!(row[2], *region);
        assert!(
            row[3].as_str().is_some_and(|l| l.contains(label)),
            "{row} lacks {label}"
        );
    }

    // A chart per check, with lines drawn from the history.
    for (check, _) in CHECK_VENDORS {
        let lines = browser.script(
            &format!(
                "var f = document.querySelector('figure.chart[data-check=\"{check}\"]');
                 return f === null || f.querySelector('svg') === null ? -1 : f.querySelectorAll('svg polyline').length;"
            ),
            &[],
        );
        assert!(
            lines.as_i64() >= Some(6),
            "chart of {check}: {lines} lines (p50 and p95 in 3 regions)"
        );
    }
    // On the event stream, not on the 30 s fallback.
    browser.wait_for(
        "the live indicator to say `live`",
        Duration::from_secs(20),
        "return document.getElementById('live').dataset.live === 'live';",
    );
    let shot = artefact("status-page.png");
    browser.screenshot(&shot);
    println!("screenshot: {}", shot.display());

    // The world changes; the page follows without a reload.
    browser.script("window.__marker = 42; return true;", &[]);
    w.set_faults(&[("c", "fast-css")]);
    w.wait_for_states("fastcdn hard down in region c only", &[("fastcdn", "c")]);
    browser.wait_for(
        "the page to show fastcdn hard down in c and acme operational in b",
        Duration::from_secs(30),
        "var state = function (v, r) {
           var td = document.querySelector('td.cell[data-vendor=\"' + v + '\"][data-region=\"' + r + '\"]');
           return td === null ? null : td.dataset.state;
         };
         return state('fastcdn', 'c') === 'hard_down' && state('acme', 'b') === 'operational';",
    );
    assert_eq!(
        browser.script("return window.__marker === 42;", &[]),
        true,
        "the page reloaded instead of updating in place"
    );
    assert_grid(&browser, &[("fastcdn", "c")]);
    let shot = artefact("status-page-live.png");
    browser.screenshot(&shot);
    println!("screenshot after the live update: {}", shot.display());

    // A vendor's page: the last hour and the last day per check.
    browser.goto(&w.url("/vendors/fastcdn"));
    let charts = browser.wait_for(
        "the vendor page",
        Duration::from_secs(10),
        "return document.querySelectorAll('figure.chart[data-check=\"fast-css\"] svg.chart-svg').length;",
    );
    assert_eq!(charts, 2, "hour and day charts");
    let row = browser.script(
        "return document.querySelector('td.cell[data-vendor=\"fastcdn\"][data-region=\"c\"]').dataset.state;",
        &[],
    );
    assert_eq!(row, "hard_down");
    let shot = artefact("status-page-vendor.png");
    browser.screenshot(&shot);
    println!("screenshot of a vendor page: {}", shot.display());

    // Signing out ends the session.
    browser.click("form.signout button");
    browser.wait_for(
        "the sign-in page after signing out",
        Duration::from_secs(10),
        "return location.pathname === '/login';",
    );
    browser.goto(&w.url("/"));
    assert!(
        browser.url().contains("/login"),
        "still signed in: {}",
        browser.url()
    );
    w.assert_pushing();
    assert!(w.pushes.load(Ordering::Relaxed) > 0);
}
