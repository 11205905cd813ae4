//! The demo's status page in headless Chromium: `vantage-coordinator demo` (the real binary)
//! plays its first fault, a CDN outage in `ap-south` only, and the page shows `hard_down` in
//! exactly the (demo-cdn, ap-south) cell, the incident, and then follows the recovery live,
//! without a reload. Screenshots: `<target>/artefacts/demo-page.png` and
//! `demo-page-recovered.png`.
//!
//! The demo's world listens on fixed addresses (127.77.x.y); cargo runs test binaries one at a
//! time, and this file holds one test, so it never meets `coordinator/tests/demo.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use vantage_e2e::browser::{Browser, artefact};
use vantage_e2e::{free_port, workspace_binary};

/// From the start to the regional outage's state line: warm-up plus detection (about 30 s
/// here), with room for a loaded machine.
const OUTAGE_WITHIN: Duration = Duration::from_secs(240);
/// How long the demo holds the fault once paged: time to load and read the page.
const HOLD: &str = "25s";

/// The demo, stopped with SIGINT (or killed) when dropped.
struct Demo {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn start(listen: &str) -> Self {
        let mut child = Command::new(workspace_binary("vantage-coordinator"))
            .args(["demo", "--listen", listen, "--hold", HOLD])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn `vantage-coordinator demo`");
        let out = child.stdout.take().expect("the demo's stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a printed line containing every one of `parts`.
    fn wait_line(&mut self, parts: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    println!("demo | {line}");
                    self.seen.push(line.clone());
                    if parts.iter().all(|p| line.contains(p)) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no demo line with {parts:?} within {within:?} ({e}); it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGINT, as Ctrl-C; the demo must exit 0.
    fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -INT {pid}");
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "the demo exited with {status} on SIGINT");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the demo ignored SIGINT for 40 s"
            );
            // Polling a child's exit.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every cell of the grid: (vendor, region) → data-state.
fn cells(browser: &Browser) -> BTreeMap<(String, String), String> {
    let v = browser.script(
        "return Array.from(document.querySelectorAll('table.grid td.cell')).map(function (td) {
           return [td.dataset.vendor, td.dataset.region, td.dataset.state];
         });",
        &[],
    );
    v.as_array()
        .expect("an array of cells")
        .iter()
        .map(|c| {
            let s = |i: usize| c[i].as_str().unwrap_or_default().to_owned();
            ((s(0), s(1)), s(2))
        })
        .collect()
}

/// The script that is truthy once the (vendor, region) cell shows `state`.
fn cell_is(vendor: &str, region: &str, state: &str) -> String {
    format!(
        "var td = document.querySelector('table.grid td.cell[data-vendor=\"{vendor}\"][data-region=\"{region}\"]');
         return td !== null && td.dataset.state === '{state}';"
    )
}

#[test]
fn the_demo_status_page_shows_the_regional_outage_in_its_cell_and_follows_the_recovery() {
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}/");
    let mut demo = Demo::start(&listen);
    demo.wait_line(&["status page", &url], Duration::from_secs(60));
    demo.wait_line(
        &["STATE", "demo-cdn in ap-south", "hard_down"],
        OUTAGE_WITHIN,
    );

    let browser = Browser::start();
    browser.goto(&url);
    browser.wait_for(
        "the (demo-cdn, ap-south) cell shows hard_down",
        Duration::from_secs(20),
        &cell_is("demo-cdn", "ap-south", "hard_down"),
    );
    let grid = cells(&browser);
    let mut want = BTreeMap::new();
    for vendor in ["demo-cdn", "demo-dns"] {
        for region in ["global", "eu-west", "us-east", "ap-south"] {
            let state = if (vendor, region) == ("demo-cdn", "ap-south") {
                "hard_down"
            } else {
                "operational"
            };
            want.insert((vendor.to_owned(), region.to_owned()), state.to_owned());
        }
    }
    assert_eq!(grid, want, "the grid during the ap-south outage");
    let text = browser
        .script("return document.body.innerText", &[])
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        text.contains("ap-south") && text.to_lowercase().contains("incident"),
        "the page lists the open incident in ap-south:\n{text}"
    );
    let shot = artefact("demo-page.png");
    browser.screenshot(&shot);
    println!("screenshot: {}", shot.display());

    // The demo clears the fault after HOLD; the open page follows without a reload.
    browser.script("window.__vantage_no_reload = true;", &[]);
    demo.wait_line(&["clearing", "ap-south"], Duration::from_secs(90));
    browser.wait_for(
        "the (demo-cdn, ap-south) cell back to operational without a reload",
        Duration::from_secs(60),
        &cell_is("demo-cdn", "ap-south", "operational"),
    );
    assert_eq!(
        browser.script("return window.__vantage_no_reload === true", &[]),
        serde_json::Value::Bool(true),
        "the page followed the recovery live, not by reloading"
    );
    let shot = artefact("demo-page-recovered.png");
    browser.screenshot(&shot);
    println!("screenshot after the recovery: {}", shot.display());
    drop(browser);
    demo.interrupt();
}
