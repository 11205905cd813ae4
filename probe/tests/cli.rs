//! The `vantage-probe` command line as an SRE meets it: exit codes, compiler-style errors,
//! the table and the JSON lines.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

fn probe(args: &[&str], cwd: &Path) -> Output {
    probe_with_env(args, cwd, &[])
}

/// Runs `vantage-probe` with `env` set and every other `VANTAGE_*` setting of this process's
/// environment removed, so that only the test decides the precedence.
fn probe_with_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vantage-probe"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("VANTAGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied())
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
    assert_eq!(text(&out.stdout), "ok: 3 vendors, 10 checks in 1 file\n");
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

/// Two TCP checks, `open` and `closed`; `closed` is `on_demand`, which `once` runs all the same.
fn tcp_checks(dir: &Path, open_port: u16, closed_port: u16) {
    let file = format!(
        "[defaults]\nretry = \"off\"\n\n[[vendor]]\nid = \"local\"\n\n[[check]]\nid = \"open\"\nvendor = \"local\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:{open_port}\"\n\n[[check]]\nid = \"closed\"\nvendor = \"local\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:{closed_port}\"\non_demand = true\n"
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
    // `closed` is on_demand: off the agent's schedule, but `once` runs every check.
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

/// `source_address` comes from probe.toml, then `VANTAGE_SOURCE_ADDRESS`, then
/// `--source-address`, each overriding the one before; the invalid-value message quotes the
/// value that won.
#[test]
fn run_source_address_precedence_is_file_env_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("probe.token"), "vtp_test\n").expect("write token");
    std::fs::write(
        dir.path().join("probe.toml"),
        "coordinator = \"http://127.0.0.1:1\"\ntoken_file = \"probe.token\"\n\
         state_dir = \"state\"\nsource_address = \"from-file\"\n",
    )
    .expect("write probe.toml");
    let expect = |out: Output, got: &str| {
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stderr).lines().last().unwrap_or_default(),
            format!(
                "error: source_address must be an IP address, e.g. source_address = \"192.0.2.7\"; got \"{got}\""
            )
        );
    };
    let run = ["run", "--config", "probe.toml"];
    expect(probe(&run, dir.path()), "from-file");
    let env = [("VANTAGE_SOURCE_ADDRESS", "from-env")];
    expect(probe_with_env(&run, dir.path(), &env), "from-env");
    let flagged = [
        "run",
        "--config",
        "probe.toml",
        "--source-address",
        "from-flag",
    ];
    expect(probe_with_env(&flagged, dir.path(), &env), "from-flag");
}

/// `once` binds every check to the source address, with the flag over the environment: the
/// listener sees the connection come from it.
#[test]
fn once_connects_from_the_source_address() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    tcp_checks(dir.path(), open, 1);
    let once = ["once", "tcp.toml", "--check", "open", "--json"];
    let peer = |out: Output| {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let (_, peer) = listener.accept().expect("the check connected");
        peer.ip().to_string()
    };
    let env = [("VANTAGE_SOURCE_ADDRESS", "127.0.1.3")];
    assert_eq!(peer(probe_with_env(&once, dir.path(), &env)), "127.0.1.3");
    let flagged = [
        "once",
        "tcp.toml",
        "--check",
        "open",
        "--source-address",
        "127.0.1.4",
    ];
    assert_eq!(
        peer(probe_with_env(&flagged, dir.path(), &env)),
        "127.0.1.4"
    );
    assert_eq!(peer(probe(&once, dir.path())), "127.0.0.1");

    let out = probe(
        &["once", "tcp.toml", "--source-address", "nope"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: source_address must be an IP address, e.g. source_address = \"192.0.2.7\"; got \"nope\"\n"
    );
}

/// A source address this host does not have is the probe's fault: `probe_error`, naming it.
#[test]
fn once_with_a_foreign_source_address_is_a_probe_error() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    tcp_checks(dir.path(), open, 1);
    let out = probe(
        &[
            "once",
            "tcp.toml",
            "--check",
            "open",
            "--json",
            "--source-address",
            "192.0.2.1",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let line: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("a JSON line");
    assert_eq!(line["status"], "probe_error");
    assert_eq!(line["failure"], "probe_internal");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("cannot use source_address 192.0.2.1: cannot bind a socket to it"),
        "{message}"
    );
    drop(listener);
}
