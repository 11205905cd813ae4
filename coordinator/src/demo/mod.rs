//! `vantage-coordinator demo`: the whole system on loopback with nothing to set up.
//!
//! It starts a simulated vendor world ([`world`]), the coordinator with SQLite in a temporary
//! directory, and six probes in three regions, each leaving from its own loopback source
//! address so that the world can tell regions apart. The probes run the checks of
//! `deploy/demo/checks.toml`. A webhook receiver in this process takes every alert. Then a
//! script (`script`) breaks the world one fault at a time and mends it, while every state
//! change and alert is printed ([`print`]) as it happens; the status page is served as usual.
//!
//! The demo talks to its coordinator as any client does (the API, a webhook), and registers
//! its probes through the store like `vantage-coordinator probe add`: nothing in `serve`,
//! ingest, the engine or the probe knows about it. The `demo` cargo feature (on by default)
//! leaves all of it out of a build.
//!
//! Layout: [`world`] the simulated vendors, `script` the faults, `observe` the API poller
//! and webhook receiver, [`print`] the output.

mod observe;
mod print;
mod script;
pub mod world;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vantage_probe::settings::{FileSettings, Settings};

use self::observe::{AlertSink, Observed};
use self::print::{Printer, Tag};
use self::world::{Layout, World};
use crate::alert::{Alerting, Receiver, ReceiverKind, Secret};
use crate::auth::Token;
use crate::config::CoordinatorConfig;
use crate::store::{ProbeRecord, Store, Synchronous};

/// The demo's checks, as shipped in `deploy/demo/checks.toml`.
pub const CHECKS: &str = include_str!("../../../deploy/demo/checks.toml");
/// The file name the checks give as `ca`; the demo writes the world's CA there.
pub const CA_FILE: &str = "demo-ca.pem";
/// The regions of the demo's probes, two probes each.
pub const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
/// Probes per region.
const PER_REGION: u8 = 2;
/// How long the probes get to flush at the end, and the coordinator to drain.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// How to run the demo.
#[derive(Clone, Debug)]
pub struct Options {
    /// The coordinator's listen address (loopback).
    pub listen: SocketAddr,
    /// Play the fault script; `false` runs the world healthy.
    pub faults: bool,
    /// Play the script again and again until stopped.
    pub repeat: bool,
    /// How long each fault stays on once it is paged.
    pub hold: Duration,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The coordinator's address is not on loopback.
    #[error(
        "the demo serves plain HTTP, so it listens on loopback only; got --listen {0}, try --listen 127.0.0.1:7470"
    )]
    NotLoopback(SocketAddr),
    /// The coordinator's address is taken.
    #[error("cannot listen on {addr}: {why}{}", listen_hint(why))]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        why: std::io::Error,
    },
    /// The world could not start.
    #[error(transparent)]
    World(#[from] world::WorldError),
    /// The temporary directory, or a file in it.
    #[error("{what}: {why}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        why: std::io::Error,
    },
    /// The shipped checks file could not be adapted.
    #[error("cannot prepare the demo's checks: {0}")]
    Checks(String),
    /// The coordinator failed.
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    /// The store failed while registering the probes.
    #[error("cannot register the demo's probes: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A probe's settings are invalid.
    #[error("a demo probe's settings: {0}")]
    Probe(#[from] vantage_probe::settings::SettingsError),
    /// The coordinator stopped before the demo did.
    #[error("the coordinator stopped: {0}")]
    Stopped(String),
    /// A probe stopped with an error.
    #[error("probe `{id}` failed: {why}")]
    ProbeFailed {
        /// The probe.
        id: String,
        /// Why.
        why: String,
    },
}

fn listen_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (something else listens there, perhaps a coordinator; pick another port, e.g. --listen 127.0.0.1:7471)"
        }
        _ => " (pick another address with --listen, e.g. --listen 127.0.0.1:7471)",
    }
}

/// One of the demo's probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoProbe {
    /// Its id, e.g. `ap-south-1`.
    pub id: String,
    /// Its region.
    pub region: &'static str,
    /// The loopback address its checks leave from: `127.0.<region>.<n>`.
    pub source: IpAddr,
}

/// The demo's six probes: two in each of [`REGIONS`], region `r` (from 1) probe `n` leaving
/// from `127.0.r.n`.
pub fn probes() -> Vec<DemoProbe> {
    let mut out = Vec::new();
    for (r, region) in (1u8..).zip(REGIONS) {
        for n in 1..=PER_REGION {
            out.push(DemoProbe {
                id: format!("{region}-{n}"),
                region,
                source: IpAddr::V4(Ipv4Addr::new(127, 0, r, n)),
            });
        }
    }
    out
}

/// The checks to serve against a world at `addrs`: [`CHECKS`] with the addresses of
/// [`Layout::DEMO`] replaced by `addrs` (the same, for the demo itself) and every relative
/// `ca` made absolute against `dir`. Probes resolve a relative `ca` against their own working
/// directory, so the file must not rely on its own location.
pub fn checks_for(addrs: &Layout, dir: &Path) -> Result<String, DemoError> {
    let demo = Layout::DEMO;
    let mut text = CHECKS.to_owned();
    let pairs = demo
        .ns
        .iter()
        .zip(addrs.ns)
        .chain(demo.edges.iter().zip(addrs.edges))
        .chain([(&demo.api, addrs.api), (&demo.logs, addrs.logs)]);
    for (from, to) in pairs {
        let from = from.to_string();
        if !text.contains(&from) {
            return Err(DemoError::Checks(format!(
                "deploy/demo/checks.toml no longer names {from}, where the demo world listens"
            )));
        }
        text = text.replace(&from, &to.to_string());
    }
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| DemoError::Checks(e.to_string()))?;
    if let Some(checks) = doc
        .get_mut("check")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
    {
        for check in checks.iter_mut() {
            let Some(ca) = check.get("ca").and_then(toml_edit::Item::as_str) else {
                continue;
            };
            if Path::new(ca).is_relative() {
                let path = dir.join(ca).display().to_string();
                check.insert("ca", toml_edit::value(path));
            }
        }
    }
    Ok(doc.to_string())
}

/// Runs the demo until `shutdown` completes (Ctrl-C), then stops everything and removes its
/// temporary directory.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), DemoError> {
    if !options.listen.ip().is_loopback() {
        return Err(DemoError::NotLoopback(options.listen));
    }
    let io = |what: String| move |why| DemoError::Io { what, why };
    let dir = tempfile::Builder::new()
        .prefix("vantage-demo-")
        .tempdir()
        .map_err(io("cannot create a temporary directory".into()))?;
    let printer = Arc::new(Printer);

    let world = World::start(Layout::DEMO).await?;
    let ca_path = dir.path().join(CA_FILE);
    std::fs::write(&ca_path, world.ca_pem())
        .map_err(io(format!("cannot write {}", ca_path.display())))?;
    let checks_path = dir.path().join("demo.toml");
    std::fs::write(&checks_path, checks_for(&world.addrs(), dir.path())?)
        .map_err(io(format!("cannot write {}", checks_path.display())))?;

    let (observed_tx, observed_rx) = watch::channel(Observed::default());
    let sink = AlertSink::start(observed_tx.clone(), Arc::clone(&printer))
        .await
        .map_err(io("cannot start the demo's webhook receiver".into()))?;

    let config = CoordinatorConfig {
        listen: options.listen,
        data_dir: dir.path().join("data"),
        checks: vec![checks_path.clone()],
        // The data is thrown away at the end: no need to fsync every commit.
        synchronous: Synchronous::Normal,
        alerting: Alerting {
            receivers: vec![Receiver {
                name: "demo".into(),
                kind: ReceiverKind::Webhook,
                url: Secret::new(sink.url()),
                routing_key: None,
                timeout: Duration::from_secs(5),
                resend: Duration::from_secs(60),
                max_attempts: crate::alert::config::DEFAULT_MAX_ATTEMPTS,
            }],
            routes: Vec::new(),
            silences: Vec::new(),
        },
        ..CoordinatorConfig::default()
    };
    config.check().map_err(crate::server::ServeError::from)?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|why| DemoError::Listen {
            addr: options.listen,
            why,
        })?;
    let addr = listener.local_addr().map_err(|why| DemoError::Listen {
        addr: options.listen,
        why,
    })?;

    let probes = probes();
    let settings = {
        let store = crate::server::open_store(&config)?;
        register(&*store, &probes, addr, dir.path())?
    };

    let (serve_stop, serve_rx) = watch::channel(false);
    let (probe_stop, probe_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut serve = tokio::spawn(crate::server::run(config, listener, stopped(serve_rx)));
    let mut agents = tokio::task::JoinSet::new();
    for (probe, s) in probes.iter().zip(settings) {
        let id = probe.id.clone();
        let stop = stopped(probe_rx.clone());
        agents.spawn(async move { (id, vantage_probe::agent::run(s, stop).await) });
    }

    banner(&printer, addr, &world, &probes, dir.path());
    let mut poller = tokio::task::JoinSet::new();
    poller.spawn(observe::poll_vendors(
        addr,
        observed_tx.clone(),
        Arc::clone(&printer),
    ));

    let mut stage = script::Stage {
        world: &world,
        probes: &probes,
        observed: observed_rx,
        printer: Arc::clone(&printer),
        hold: options.hold,
    };
    let play = async {
        stage.warm_up().await;
        if !options.faults {
            stage.printer.line(
                Tag::Script,
                "no faults (--no-faults): the world stays healthy; Ctrl-C stops the demo",
            );
            return std::future::pending::<()>().await;
        }
        loop {
            for fault in &script::SCRIPT {
                stage.play(fault).await;
            }
            if !options.repeat {
                break;
            }
            stage.printer.line(Tag::Script, "the script again (--loop)");
        }
        stage.printer.line(
            Tag::Script,
            "script done: the world stays healthy; Ctrl-C stops the demo",
        );
        std::future::pending::<()>().await
    };

    let mut failure: Option<DemoError> = None;
    tokio::select! {
        () = shutdown => {}
        () = play => {}
        r = &mut serve => failure = Some(match r {
            Ok(Ok(())) => DemoError::Stopped("by itself".into()),
            Ok(Err(e)) => e.into(),
            Err(e) => DemoError::Stopped(format!("its task failed: {e}")),
        }),
        Some(r) = agents.join_next() => failure = Some(match r {
            Ok((id, Ok(()))) => DemoError::ProbeFailed { id, why: "it stopped by itself".into() },
            Ok((id, Err(e))) => DemoError::ProbeFailed { id, why: e.to_string() },
            Err(e) => DemoError::ProbeFailed { id: "?".into(), why: e.to_string() },
        }),
    }

    printer.line(
        Tag::Info,
        "stopping: the probes flush their results, then the coordinator drains",
    );
    world.heal();
    // Probes first, so their last results reach a coordinator still serving.
    let _ = probe_stop.send(true);
    let flushed = tokio::time::timeout(STOP_WITHIN, async {
        while let Some(r) = agents.join_next().await {
            if let Ok((id, Err(e))) = r {
                tracing::warn!(probe = %id, error = %e, "a demo probe stopped with an error");
            }
        }
    })
    .await;
    if flushed.is_err() {
        agents.shutdown().await;
    }
    let _ = serve_stop.send(true);
    if !serve.is_finished() {
        match tokio::time::timeout(STOP_WITHIN, &mut serve).await {
            Ok(Ok(Err(e))) if failure.is_none() => failure = Some(e.into()),
            Ok(_) => {}
            Err(_) => serve.abort(),
        }
    }
    poller.shutdown().await;
    drop(sink);
    world.stop().await;
    let shown = dir.path().display().to_string();
    dir.close()
        .map_err(io(format!("cannot remove the demo's directory {shown}")))?;
    printer.line(Tag::Info, &format!("stopped; removed {shown}"));
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Registers `probes` in the store, each with a new token, and returns their settings: the
/// coordinator at `addr`, state under `dir/probes/<id>`, checks leaving from its source.
fn register(
    store: &dyn Store,
    probes: &[DemoProbe],
    addr: SocketAddr,
    dir: &Path,
) -> Result<Vec<Settings>, DemoError> {
    let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
    probes
        .iter()
        .map(|p| {
            let token = Token::generate_probe();
            let record = ProbeRecord {
                id: p.id.clone(),
                region: p.region.to_owned(),
                labels: [("source".to_owned(), p.source.to_string())].into(),
                created_ms: now,
                revoked_ms: None,
                last_seen_ms: None,
            };
            store.add_probe(&record, &token.hash())?;
            let file = FileSettings {
                coordinator: Some(format!("http://{addr}").into()),
                probe_id: Some(p.id.clone()),
                region: Some(p.region.to_owned()),
                state_dir: Some(dir.join("probes").join(&p.id)),
                source_address: Some(p.source.to_string()),
                config_poll: Some("2s".into()),
                ..FileSettings::default()
            };
            Ok(Settings::from_file(file, Some(token.expose().to_owned()))?)
        })
        .collect()
}

fn banner(printer: &Printer, addr: SocketAddr, world: &World, probes: &[DemoProbe], dir: &Path) {
    let a = world.addrs();
    let probes: Vec<String> = probes
        .iter()
        .map(|p| format!("{} ({})", p.id, p.source))
        .collect();
    let checks = CHECKS.matches("[[check]]").count();
    let text = format!(
        "Vantage demo: a simulated vendor world, the coordinator and six probes, all on loopback.\n\
         \n\
         \x20 status page  http://{addr}/\n\
         \x20 API          http://{addr}/api/v1/vendors\n\
         \x20 Demo DNS     ns1 {ns1}, ns2 {ns2} (zone {zone}, UDP and TCP)\n\
         \x20 Demo CDN     edge-1 {e1}, edge-2 {e2} in front of origin {origin};\n\
         \x20              control API https://{api}, log freshness http://{logs}\n\
         \x20 probes       {probes}\n\
         \x20 checks       {checks} checks from deploy/demo/checks.toml\n\
         \x20 data         {dir} (removed when the demo stops)\n\
         \n\
         Times are UTC. Ctrl-C stops the demo.\n",
        ns1 = a.ns[0],
        ns2 = a.ns[1],
        zone = world::ZONE,
        e1 = a.edges[0],
        e2 = a.edges[1],
        origin = a.origin,
        api = a.api,
        logs = a.logs,
        probes = probes.join(", "),
        dir = dir.display(),
    );
    printer.plain(&text);
}
