//! Issue 13, part 1: on-demand regression runs end to end. A real coordinator, three probes in
//! two regions, nginx as the CDN with its two content profiles, and `vantage-coordinator run`
//! as a CI job would call it: a suite run before and after a change of the CDN's cache
//! configuration shows exactly what changed and exits 1; a run with a probe stopped exits 3
//! naming it; none of it moves the vendor's state, which only the schedule decides.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_e2e::cdn::{self, Cdn, PROFILE_IMAGES, PROFILE_SCRIPTS};
use vantage_e2e::fleet::{Coordinator, Fleet, Probe, http_get, http_get_token};
use vantage_e2e::{wait_until, workspace_binary};

const TOKEN: &str = "operator-t0ken-for-the-e2e-runs-0001";

/// The vendor: one scheduled check (the home page, which decides its state) and two
/// on-demand checks in suite `cdn-static`, written against the content profiles.
fn checks(cdn: &Cdn) -> String {
    let ca = cdn.ca_file().display().to_string();
    let edge = cdn.edge;
    let host = cdn::HOST;
    format!(
        r#"
[defaults]
interval = "2s"
timeout = "1500ms"
quorum = 2
regions = 1

[[vendor]]
id = "fastcdn"
name = "FastCDN"

[[profile]]
id = "static-image"
[profile.expect]
status = 200
encoding = ["identity"]
cache_control = {{ max_age = {{ min = "7d", max = "30d" }}, public = true, immutable = true }}
cache = "hit"
cache_key = {{ query = "ignored" }}

[[profile]]
id = "javascript"
[profile.expect]
status = 200
encoding = ["gzip"]
cache = "hit"
cache_key = {{ query = "included" }}

[[check]]
id = "home"
vendor = "fastcdn"
kind = "cdn"
url = "https://{host}/index.html"
edge = "{edge}"
ca = "{ca}"

[[check]]
id = "logo"
vendor = "fastcdn"
kind = "cdn"
url = "https://{host}{PROFILE_IMAGES}logo.png"
edge = "{edge}"
ca = "{ca}"
interval = "10s"
timeout = "3s"
retry = "off"
headers = {{ "accept-encoding" = "gzip" }}
profile = "static-image"
suite = "cdn-static"
on_demand = true

[[check]]
id = "app-js"
vendor = "fastcdn"
kind = "cdn"
url = "https://{host}{PROFILE_SCRIPTS}app.js?v=1"
edge = "{edge}"
ca = "{ca}"
interval = "10s"
timeout = "3s"
retry = "off"
profile = "javascript"
suite = "cdn-static"
on_demand = true
"#
    )
}

struct World {
    cdn: Cdn,
    fleet: Fleet,
    coordinator: Coordinator,
    probes: Vec<Probe>,
    token_file: PathBuf,
}

impl World {
    fn start() -> Self {
        let cdn = Cdn::start();
        let fleet = Fleet::new();
        let token_file = fleet.path().join("api.token");
        std::fs::write(&token_file, TOKEN).expect("write the token");
        let coordinator = fleet.coordinator_with(
            &checks(&cdn),
            Some(&format!(
                "[api]\ntoken_file = \"{}\"\n",
                token_file.display()
            )),
        );
        let probes = [("eu-1", "eu"), ("eu-2", "eu"), ("us-1", "us")]
            .into_iter()
            .map(|(id, region)| fleet.probe(&coordinator, id, region))
            .collect();
        let w = Self {
            cdn,
            fleet,
            coordinator,
            probes,
            token_file,
        };
        w.wait_operational();
        w
    }

    fn vendor_state(&self) -> String {
        let (status, body) = http_get_auth(self.coordinator.addr, "/api/v1/vendors/fastcdn");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        v["global"]["state"].as_str().unwrap_or_default().to_owned()
    }

    fn wait_operational(&self) {
        wait_until("fastcdn operational", Duration::from_secs(60), || {
            self.vendor_state() == "operational"
        });
    }

    /// `vantage-coordinator run` with `args`, as a CI job calls it.
    fn run(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = Command::new(workspace_binary("vantage-coordinator"))
            .arg("run")
            .args(["--vendor", "fastcdn", "--coordinator"])
            .arg(self.coordinator.url())
            .arg("--token-file")
            .arg(&self.token_file)
            .args(args)
            .output()
            .expect("run vantage-coordinator run");
        eprintln!(
            "run {args:?}: exit {:?} after {:?}\nstderr:\n{}",
            out.status.code(),
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn run_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not a JSON report ({e}):\n{}\n{}\ncoordinator log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.coordinator.log()
            )
        });
        (out.status.code().expect("an exit code"), report)
    }
}

/// `GET path` with the operator token.
fn http_get_auth(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_get_token(addr, path, TOKEN).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Every (check, probe, aspect) of a report's diff.
fn diff_of(report: &Value) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = report["diff"]
        .as_array()
        .expect("a diff")
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (s("check"), s("probe"), s("aspect"), s("class"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn r13_a_suite_run_before_and_after_a_cdn_change_shows_what_changed() {
    let mut w = World::start();
    let _ = http_get(w.coordinator.addr, "/healthz");

    // Warm the edge's caches, then the run that serves as the baseline: every pair passes.
    let (code, warm) = w.run_json(&["--suite", "cdn-static", "--label", "warm-up"]);
    assert_eq!(code, 0, "{warm:#}");
    let (code, before) = w.run_json(&["--suite", "cdn-static", "--label", "before"]);
    assert_eq!(code, 0, "{before:#}");
    assert_eq!(before["run"]["state"], "done");
    let pairs = before["run"]["results"].as_array().expect("results").len();
    assert_eq!(pairs, 6, "two checks on three probes: {before:#}");
    assert_eq!(before["summary"]["passed"], 6);

    // The change: the images' edge now keys its cache on the query string.
    w.cdn
        .set_image_rules("proxy_cache_key $host$uri$is_args$args;\n");
    let (code, after) = w.run_json(&[
        "--suite",
        "cdn-static",
        "--label",
        "after",
        "--baseline",
        "last",
    ]);
    assert_eq!(code, 1, "{after:#}");
    assert_eq!(
        after["baseline"], before["run"]["id"],
        "`last` is the run before"
    );
    // Exactly the images' cache-key behaviour changed, on every probe: the result went from
    // ok to failing with cache_key_mismatch. The scripts are untouched.
    let diff = diff_of(&after);
    let logo: Vec<_> = diff.iter().filter(|d| d.0 == "logo").collect();
    assert!(
        diff.iter().all(|d| d.0 == "logo"),
        "only the images changed: {diff:#?}"
    );
    for probe in ["eu-1", "eu-2", "us-1"] {
        assert!(
            logo.iter()
                .any(|d| d.1 == probe && d.2 == "status" && d.3 == "regression"),
            "{probe}: {diff:#?}"
        );
    }
    let failures: Vec<&str> = after["run"]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|p| p["check"] == "logo")
        .filter_map(|p| p["result"]["failure"].as_str())
        .collect();
    assert_eq!(failures, ["cache_key_mismatch"; 3], "{after:#}");

    // The same as JUnit: one test case a pair, the three image failures, parsed by a JUnit
    // reader (Python's xml.etree, as CI tools read it).
    let junit = w.fleet.path().join("after.xml");
    let out = w.run(&[
        "--suite",
        "cdn-static",
        "--baseline",
        &before["run"]["id"].to_string(),
        "--format",
        "junit",
        "--output",
        junit.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let parsed = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, xml.etree.ElementTree as E\n\
             r = E.parse(sys.argv[1]).getroot()\n\
             s = r if r.tag == 'testsuite' else r.find('testsuite')\n\
             cases = s.findall('testcase')\n\
             failed = sorted(c.get('classname') + '/' + c.get('name') for c in cases if c.find('failure') is not None)\n\
             print('|'.join([str(len(cases)), s.get('tests'), s.get('failures')] + failed))",
        )
        .arg(&junit)
        .output()
        .expect("python3");
    let parsed = String::from_utf8_lossy(&parsed.stdout).trim().to_owned();
    let fields: Vec<&str> = parsed.split('|').collect();
    assert_eq!(fields[..3], ["6", "6", "3"], "{parsed}");
    assert!(
        fields[3..].iter().all(|f| f.starts_with("logo/")),
        "{parsed}"
    );

    // Run results never move the vendor: the schedule (the home page) keeps it operational,
    // and no incident was opened by the failing runs.
    assert_eq!(w.vendor_state(), "operational");
    let (status, body) = http_get_auth(w.coordinator.addr, "/api/v1/incidents?subject=fastcdn");
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "[]", "an incident from run results: {body}");

    // A probe stopped: the run times out naming it, and exits 3.
    w.cdn.set_image_rules(cdn::IMAGE_RULES);
    w.probes[2].kill();
    let out = w.run(&["--suite", "cdn-static", "--wait", "5s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("us-1"),
        "the missing probe is named: {stderr}"
    );
    for p in &mut w.probes[..2] {
        p.assert_running();
    }
}

#[test]
fn r13_invalid_runs_exit_2_and_start_nothing() {
    let w = World::start();
    for args in [
        &["--suite", "no-such-suite"][..],
        &["--check", "no-such-check"],
        &["--region", "mars"],
        &["--baseline", "999"],
    ] {
        let out = w.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let (status, body) = http_get_auth(w.coordinator.addr, "/api/v1/runs?vendor=fastcdn");
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "[]", "nothing was started: {body}");
}
