//! The `vantage-probe` command line as an SRE meets it: exit codes, compiler-style errors,
//! the table and the JSON lines.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

fn probe(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vantage-probe"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run vantage-probe")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn validate_accepts_the_example_with_a_summary() {
    let out = probe(&["validate", "deploy/checks/example.toml"], repo());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok: 3 vendors, 8 checks in 1 file\n");
}

/// The README shows what `validate` prints for a bad duration; it must be the truth.
#[test]
fn validate_prints_what_the_readme_shows() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let after = readme
        .split("`validate` prints every problem")
        .nth(1)
        .expect("README validate section");
    let block = after
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("README text block");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("checks")).expect("mkdir");
    let file = "[[vendor]]\nid = \"fastcdn\"\n\n[[check]]\nid = \"css\"\nvendor = \"fastcdn\"\nkind = \"tcp\"\ninterval = \"500\"\ntarget = \"static.example.com:443\"\n";
    std::fs::write(dir.path().join("checks/fastcdn.toml"), file).expect("write");
    let out = probe(&["validate", "checks/fastcdn.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), block);
}

#[test]
fn validate_reports_every_problem_and_a_count() {
    let fixture = repo().join("checks/tests/fixtures/invalid-many.toml");
    let out = probe(&["validate", fixture.to_str().expect("utf-8")], repo());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("\nerror: ").count() + usize::from(err.starts_with("error: ")),
        11,
        "{err}"
    );
    assert!(err.ends_with("error: 10 problems found\n"), "{err}");
    // The offending line is shown under its location with a caret under the value.
    assert!(err.contains("2 | quorum = 0\n  |          ^\n"), "{err}");
}

#[test]
fn validate_on_a_missing_path_says_so() {
    let out = probe(&["validate", "no/such/checks.toml"], repo());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: cannot read `no/such/checks.toml`"),
        "{}",
        text(&out.stderr)
    );
}

fn tcp_checks(dir: &Path, open_port: u16, closed_port: u16) {
    let file = format!(
        "[defaults]\nretry = \"off\"\n\n[[vendor]]\nid = \"local\"\n\n[[check]]\nid = \"open\"\nvendor = \"local\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:{open_port}\"\n\n[[check]]\nid = \"closed\"\nvendor = \"local\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:{closed_port}\"\n"
    );
    std::fs::write(dir.join("tcp.toml"), file).expect("write checks");
}

#[test]
fn once_prints_json_lines_and_exits_1_when_a_check_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = listener.local_addr().expect("addr").port();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    tcp_checks(dir.path(), open, closed);

    let out = probe(&["once", "tcp.toml", "--json"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["check_id"], "open");
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(
        lines[0]["facts"]["remote_addr"],
        format!("127.0.0.1:{open}")
    );
    assert!(lines[0]["timings"]["connect_ms"].as_f64().is_some());
    assert_eq!(lines[1]["check_id"], "closed");
    assert_eq!(lines[1]["status"], "fail");
    assert_eq!(lines[1]["failure"], "connect_refused");
    assert_eq!(lines[1]["v"], 1);

    let out = probe(&["once", "tcp.toml", "--check", "open"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("CHECK  KIND  STATUS"), "{table}");
    assert!(table.contains("open   tcp   ok "), "{table}");
    assert!(table.ends_with("1 checks: 1 ok, 0 not ok\n"), "{table}");
    drop(listener);
}

#[test]
fn once_with_an_unknown_check_id_lists_the_known_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    tcp_checks(dir.path(), 1, 2);
    let out = probe(&["once", "tcp.toml", "--check", "nope"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: no check has id `nope`; the files define: open, closed\n"
    );
}
