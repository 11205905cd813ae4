//! Mutual TLS between probes and the coordinator (issue 12, item 7): the real coordinator with
//! `[tls] client_ca`, and the probe's own client (`vantage_probe::client`) with and without a
//! client certificate. The probes' endpoints need a certificate from the probes' CA as well as
//! the token; readers (browsers, curl) still connect without one.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vantage_checks::wire::ResultBatch;
use vantage_e2e::pki::{ServerCert, TestCa};
use vantage_e2e::{ServerProcess, check_from_toml, free_port, run_once, wait_for_tcp};
use vantage_probe::client::{ClientError, ConfigAnswer, CoordinatorClient};
use vantage_probe::settings::{FileSettings, Settings};

/// A coordinator serving HTTPS for `localhost`, asking probes for client certificates.
struct Secure {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    server_ca: TestCa,
    _process: ServerProcess,
    token: String,
}

/// The one check both sides know: a TCP connect to a port that accepts.
fn checks(port: u16) -> String {
    format!(
        "[[vendor]]\nid = \"e2e\"\nname = \"End-to-end vendor\"\n\n\
         [[check]]\nid = \"tcp-e2e\"\nvendor = \"e2e\"\nkind = \"tcp\"\n\
         timeout = \"2s\"\nretry = \"off\"\ntarget = \"127.0.0.1:{port}\"\n"
    )
}

impl Secure {
    fn start(client_ca: &Path, port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vantage-mtls-")
            .tempdir()
            .expect("temporary directory");
        let server_ca = TestCa::new();
        let cert = server_ca.server("coordinator", &["localhost"]);
        std::fs::write(dir.path().join("checks.toml"), checks(port)).expect("write checks");
        std::fs::write(
            dir.path().join("coordinator.toml"),
            format!(
                "[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
                cert.cert.display(),
                cert.key.display(),
                client_ca.display()
            ),
        )
        .expect("write coordinator.toml");
        let data = dir.path().join("data");
        let token_file = dir.path().join("p1.token");
        let out = Command::new(vantage_e2e::workspace_binary("vantage-coordinator"))
            .args(["probe", "add", "p1", "--region", "r1", "--token-file"])
            .arg(&token_file)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("VANTAGE_CONFIG")
            .output()
            .expect("run probe add");
        assert!(
            out.status.success(),
            "probe add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut cmd = Command::new(vantage_e2e::workspace_binary("vantage-coordinator"));
        cmd.arg("serve")
            .arg("--config")
            .arg(dir.path().join("coordinator.toml"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--checks")
            .arg(dir.path().join("checks.toml"))
            .env("RUST_LOG", "info")
            .env_remove("VANTAGE_CONFIG");
        let process = ServerProcess::spawn(
            "vantage-coordinator",
            cmd,
            &dir.path().join("coordinator.log"),
        );
        wait_for_tcp(addr, Duration::from_secs(20));
        let token = std::fs::read_to_string(&token_file)
            .expect("token")
            .trim()
            .to_owned();
        Self {
            dir,
            addr,
            server_ca,
            _process: process,
            token,
        }
    }

    /// The probe's client for this coordinator, with `identity` as its client certificate.
    fn client(&self, identity: Option<&ServerCert>) -> CoordinatorClient {
        let token_file = self.dir.path().join("p1.token");
        let file = FileSettings {
            coordinator: Some(format!("https://localhost:{}", self.addr.port()).into()),
            token_file: Some(token_file),
            ca_file: Some(self.server_ca.ca_file()),
            client_cert: identity.map(|i| i.cert.clone()),
            client_key: identity.map(|i| i.key.clone()),
            state_dir: Some(self.dir.path().join("probe-state")),
            ..FileSettings::default()
        };
        let settings = Settings::from_file(file, Some(self.token.clone())).expect("settings");
        CoordinatorClient::new(&settings).expect("client")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A port that accepts connections, for the TCP check to pass.
fn open_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    port
}

#[test]
fn probes_need_a_client_certificate_from_the_probes_ca_and_readers_do_not() {
    let probes_ca = TestCa::new();
    let other_ca = TestCa::new();
    let port = open_port();
    let coordinator = Secure::start(&probes_ca.ca_file(), port);
    let good = probes_ca.client("p1-client", "p1");
    let stranger = other_ca.client("stranger", "p1");
    let rt = runtime();

    // With its certificate: the config, then a pushed result, stored.
    let with_cert = coordinator.client(Some(&good));
    let answer = rt
        .block_on(with_cert.config(None))
        .expect("the config, with a client certificate");
    assert!(matches!(answer, ConfigAnswer::Changed(..)));
    let check = check_from_toml("tcp", "2s", &format!("target = \"127.0.0.1:{port}\""));
    let mut result = run_once(&check);
    result.probe_id = "p1".into();
    result.boot_id = "p1-boot".into();
    result.seq = 0;
    let batch = ResultBatch {
        results: vec![result],
        counters: None,
    };
    let (ack, _) = rt
        .block_on(with_cert.push(&batch))
        .expect("a push, with a client certificate");
    assert_eq!(ack.accepted, 1, "{ack:?}");
    assert!(ack.refused.is_empty(), "{ack:?}");

    // The same token without a certificate: refused, saying why.
    let without = coordinator.client(None);
    for (what, outcome) in [
        ("config", rt.block_on(without.config(None)).err()),
        ("push", rt.block_on(without.push(&batch)).err()),
    ] {
        match outcome {
            Some(ClientError::Unauthorized(m)) => {
                assert!(m.contains("client certificate"), "{what}: {m}");
            }
            other => panic!("{what} without a client certificate: {other:?}"),
        }
    }

    // A certificate the probes' CA did not sign fails the handshake.
    let forged = coordinator.client(Some(&stranger));
    match rt.block_on(forged.config(None)) {
        Err(ClientError::Unauthorized(m)) => panic!("got as far as the token: {m}"),
        Err(_) => {}
        Ok(_) => panic!("a certificate from another CA was accepted"),
    }

    // A reader (curl, no client certificate) still reads the API over the same listener.
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(coordinator.server_ca.ca_file())
        .arg(format!(
            "https://localhost:{}/api/v1/vendors",
            coordinator.addr.port()
        ))
        .output()
        .expect("run curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
