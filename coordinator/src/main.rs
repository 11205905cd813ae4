//! `vantage-coordinator`: serve the API, and manage probes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use vantage_coordinator::auth::Token;
use vantage_coordinator::config::{CoordinatorConfig, TlsConfig};
use vantage_coordinator::store::ProbeRecord;
use vantage_coordinator::{local_probe, run_cli, server};
use vantage_probe::agent;

#[derive(Parser)]
#[command(
    name = "vantage-coordinator",
    version,
    about = "Vantage coordinator: ingests probe results and serves probes their checks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// coordinator.toml; without it, loopback and SQLite under ./data.
    #[arg(long, env = "VANTAGE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the SQLite database (overrides the file).
    #[arg(long, env = "VANTAGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL instead of SQLite: postgresql://user@host:port/database (overrides the
    /// file's `[store] url`; the password goes in `[store] password_file` or `password_env`).
    #[arg(long, env = "VANTAGE_STORE_URL", hide_env_values = true)]
    store_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API until SIGINT or SIGTERM.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Listen address (default 127.0.0.1:7470).
        #[arg(long, env = "VANTAGE_LISTEN")]
        listen: Option<SocketAddr>,
        /// Check files or directories (repeatable; overrides the file's `checks`).
        #[arg(long = "checks", env = "VANTAGE_CHECKS", value_delimiter = ',')]
        checks: Vec<PathBuf>,
        /// PEM certificate chain for HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for HTTPS.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// PEM CA of the probes' client certificates: probes then need one (mutual TLS) as
        /// well as their token.
        #[arg(long)]
        tls_client_ca: Option<PathBuf>,
        /// Allow plain HTTP on a non-loopback address (a warning is logged at every start).
        #[arg(long)]
        insecure_http: bool,
        /// Reads (API, page, metrics) are meant to be open to anyone, off loopback too.
        #[arg(long, env = "VANTAGE_PUBLIC_READS")]
        public_reads: bool,
        /// Also run a probe in this process, in region `local`: the whole system in one command.
        #[arg(long)]
        local_probe: bool,
    },
    /// The coordinators sharing the store: each one's last heartbeat, and who holds each
    /// evaluation lease.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Copy this coordinator's SQLite store into an empty PostgreSQL database, to move to
    /// PostgreSQL. Stop the coordinator first; the SQLite file is only read.
    Migrate {
        /// coordinator.toml: where the SQLite store is (`data_dir`), and `[store]
        /// password_file` or `password_env` for the target's password.
        #[arg(long, env = "VANTAGE_CONFIG")]
        config: Option<PathBuf>,
        /// Directory of the SQLite database (overrides the file).
        #[arg(long, env = "VANTAGE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The empty PostgreSQL database to copy into:
        /// postgresql://user@host:port/database.
        #[arg(long, value_name = "URL")]
        to: String,
        /// A file holding the PostgreSQL password (overrides the file's `[store]`).
        #[arg(long, conflicts_with = "password_env")]
        password_file: Option<PathBuf>,
        /// An environment variable holding the PostgreSQL password (overrides the file's
        /// `[store]`).
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Register, list and revoke probes.
    Probe {
        #[command(subcommand)]
        command: ProbeCommand,
    },
    /// Silences and maintenance windows: suppress pages, keep the incident record.
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// Reports over the stored history.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Run a vendor's checks now on every selected probe (an on-demand regression run),
    /// wait for the results and report them, compared with a baseline run if asked.
    ///
    /// Exit codes: 0 every result passed and nothing regressed; 1 a result failed or
    /// regressed (wins over 3); 2 invalid request (flags, token, unknown vendor, check,
    /// suite, region or baseline); 3 timed out with probes missing; 4 the coordinator could
    /// not be reached or answered an error, or the report could not be written.
    Run(Box<RunArgs>),
    /// See it work: a simulated vendor world on loopback, the coordinator, six probes in three
    /// regions, and a script of faults; prints each state change and alert until Ctrl-C.
    #[cfg(feature = "demo")]
    Demo {
        /// The coordinator's listen address (loopback; the status page is served there).
        #[arg(long, default_value = "127.0.0.1:7470")]
        listen: SocketAddr,
        /// Run the world healthy: no scripted faults.
        #[arg(long)]
        no_faults: bool,
        /// Play the fault script again and again until Ctrl-C.
        #[arg(long = "loop", conflicts_with = "no_faults")]
        repeat: bool,
        /// How long each fault stays on once it is paged, to look at the status page.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        hold: std::time::Duration,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Vendor id.
    #[arg(long)]
    vendor: String,
    /// A check to run (repeatable); with --suite, the union runs.
    #[arg(long = "check", value_name = "ID")]
    checks: Vec<String>,
    /// A suite of checks to run.
    #[arg(long, value_name = "NAME")]
    suite: Option<String>,
    /// Only the probes of this region (repeatable); default every region.
    #[arg(long = "region", value_name = "R")]
    regions: Vec<String>,
    /// A note kept with the run, e.g. "before purge-rule change".
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    /// How long the probes have to report, e.g. `60s` or `2m`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    wait: std::time::Duration,
    /// Output: a table for people, JSON, or JUnit XML for CI.
    #[arg(long, value_enum, default_value_t = RunFormat::Table)]
    format: RunFormat,
    /// Write the report to this file instead of stdout (`-`).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Compare with this run: its id, or `last` for the vendor's newest run (of the same
    /// suite, with --suite) before this one.
    #[arg(long, value_name = "RUN_ID|last", value_parser = run_cli::Baseline::parse)]
    baseline: Option<run_cli::Baseline>,
    /// The coordinator's URL (or `VANTAGE_COORDINATOR`).
    #[arg(
        long,
        value_name = "URL",
        env = "VANTAGE_COORDINATOR",
        default_value = "http://127.0.0.1:7470"
    )]
    coordinator: url::Url,
    /// A file holding an operator token from `[api]` (default: $VANTAGE_API_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A PEM CA to trust for the coordinator's certificate, instead of the system's roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RunFormat {
    Table,
    Json,
    Junit,
}

/// `run`: its own exit codes, so it does not go through `run`'s `anyhow` ending.
fn run_command(args: RunArgs) -> ExitCode {
    let format = match args.format {
        RunFormat::Table => run_cli::Format::Table,
        RunFormat::Json => run_cli::Format::Json,
        RunFormat::Junit => run_cli::Format::Junit,
    };
    let token_env = match std::env::var(run_cli::TOKEN_ENV) {
        Ok(v) => Some(vantage_coordinator::alert::Secret::new(v)),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            eprintln!("error: ${} is not valid UTF-8", run_cli::TOKEN_ENV);
            return ExitCode::from(run_cli::Exit::Invalid.code());
        }
    };
    let options = run_cli::Options {
        coordinator: args.coordinator,
        token_file: args.token_file,
        token_env,
        ca_file: args.ca_file,
        vendor: args.vendor,
        checks: args.checks,
        suite: args.suite,
        regions: args.regions,
        label: args.label,
        wait: args.wait,
        format,
        output: args.output,
        baseline: args.baseline,
    };
    let exit = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run_cli::run(options)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            run_cli::Exit::Unavailable
        }
    };
    ExitCode::from(exit.code())
}

#[derive(Subcommand)]
enum ReportCommand {
    /// A vendor's SLA report: availability, latency percentiles, minutes in each state and
    /// incidents, globally and per region, against the contract in its `sla` block.
    Sla {
        #[command(flatten)]
        config: ConfigArgs,
        /// Check files or directories (repeatable; overrides the file's `checks`).
        #[arg(long = "checks", env = "VANTAGE_CHECKS", value_delimiter = ',')]
        checks: Vec<PathBuf>,
        /// Vendor id.
        #[arg(long)]
        vendor: String,
        /// A calendar month in UTC, e.g. `2026-10`.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        month: Option<String>,
        /// Start (RFC 3339); default 30 days before `--to`.
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive (RFC 3339); default now.
        #[arg(long)]
        to: Option<String>,
        /// Output: a table for people, CSV (one row per scope), or JSON (as the API).
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    vantage_checks::duration::parse(s)
        .map_err(|why| format!("a duration like `10s` or `500ms`; `{s}` {why}"))
}

#[derive(Subcommand)]
enum SilenceCommand {
    /// Add a silence; the running coordinator applies it at its next alert.
    Add {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only this vendor.
        #[arg(long)]
        vendor: Option<String>,
        /// Only incidents involving this check.
        #[arg(long)]
        check: Option<String>,
        /// Only this region.
        #[arg(long)]
        region: Option<String>,
        /// Start (RFC 3339; default now).
        #[arg(long)]
        starts: Option<String>,
        /// End (RFC 3339); or --duration.
        #[arg(long, conflicts_with = "duration")]
        ends: Option<String>,
        /// Length from the start, e.g. `2h`.
        #[arg(long)]
        duration: Option<String>,
        /// Why (required), e.g. "vendor maintenance, ticket 1234".
        #[arg(long)]
        comment: String,
    },
    /// List silences (from the store and from coordinator.toml).
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only those in force now.
        #[arg(long)]
        active: bool,
    },
    /// Remove a silence by id.
    Remove {
        #[command(flatten)]
        config: ConfigArgs,
        /// Silence id (from `silence list`).
        id: i64,
    },
}

#[derive(Subcommand)]
enum ProbeCommand {
    /// Register a probe and print its token once.
    Add {
        #[command(flatten)]
        config: ConfigArgs,
        /// Probe id: lowercase letters, digits, `-`, `_`, `.`.
        id: String,
        /// The probe's region (e.g. `eu-west`).
        #[arg(long)]
        region: String,
        /// A label `key=value` (repeatable), e.g. `--label network=eyeball`.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Write the token to this file (mode 0600) instead of printing it.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// List probes.
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Revoke a probe: its token is refused from the next request on.
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        /// Probe id.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own readable lines (alerts included); only warnings from the
    // internals join them.
    #[cfg(feature = "demo")]
    let default_filter = match cli.command {
        Command::Demo { .. } => "warn,vantage_coordinator::incident=error",
        // `run` prints its own progress; stderr is for it and for warnings.
        Command::Run(_) => "warn",
        _ => "info",
    };
    #[cfg(not(feature = "demo"))]
    let default_filter = if matches!(cli.command, Command::Run(_)) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load_config(args: &ConfigArgs) -> anyhow::Result<CoordinatorConfig> {
    let mut config = match &args.config {
        Some(path) => CoordinatorConfig::load(path)?,
        None => CoordinatorConfig::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &args.store_url {
        config.store_url = Some(vantage_coordinator::alert::Secret::new(url.clone()));
    }
    Ok(config)
}

/// Prints the cluster: coordinators heard from within three leases, and every lease.
fn status(config: &CoordinatorConfig) -> anyhow::Result<()> {
    let store = server::open_store(config)?;
    let lease_ms = config.lease.as_millis() as i64;
    let (nodes, leases) = store.cluster(3 * lease_ms)?;
    let now = now_ms();
    let ago = |ms: i64| format!("{:.1}s ago", (now - ms).max(0) as f64 / 1000.0);
    println!(
        "{:<40} {:<22} {:<9} {:<16} {:<16} LEASES",
        "COORDINATOR", "ADDRESS", "VERSION", "STARTED", "HEARTBEAT"
    );
    for n in &nodes {
        let held: Vec<String> = leases
            .iter()
            .filter(|l| l.holder.as_deref() == Some(n.node.node.as_str()) && l.expires_ms > now)
            .map(|l| l.part.to_string())
            .collect();
        println!(
            "{:<40} {:<22} {:<9} {:<16} {:<16} {}",
            n.node.node,
            n.node.address,
            n.node.version,
            ago(n.node.started_ms),
            ago(n.heartbeat_ms),
            if held.is_empty() {
                "-".to_owned()
            } else {
                held.join(",")
            }
        );
    }
    if nodes.is_empty() {
        println!(
            "(no coordinator heard from within {}s)",
            3 * lease_ms / 1000
        );
    }
    println!();
    println!("{:<5} {:<40} {:>6}  EXPIRES", "PART", "HOLDER", "EPOCH");
    for l in &leases {
        let expires = if l.holder.is_none() {
            "free".to_owned()
        } else if l.expires_ms > now {
            format!("in {:.1}s", (l.expires_ms - now) as f64 / 1000.0)
        } else {
            format!("expired {}", ago(l.expires_ms))
        };
        println!(
            "{:<5} {:<40} {:>6}  {expires}",
            l.part,
            l.holder.as_deref().unwrap_or("-"),
            l.epoch
        );
    }
    Ok(())
}

/// Copies the SQLite store into the PostgreSQL database at `to`, printing each table's rows.
fn migrate(
    args: &ConfigArgs,
    to: &str,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
) -> anyhow::Result<()> {
    use vantage_coordinator::alert::Secret;
    use vantage_coordinator::store::PostgresStore;
    use vantage_coordinator::store::migrate::{self, NOT_COPIED, SqliteSource};
    let config = load_config(args)?;
    let password = match (password_file, password_env) {
        (Some(path), _) => Some(Secret::new(
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read --password-file `{}`", path.display()))?
                .trim(),
        )),
        (None, Some(var)) => Some(Secret::new(
            std::env::var(&var)
                .with_context(|| format!("--password-env names `{var}`, which is not set"))?
                .trim(),
        )),
        (None, None) => config.store_password.clone(),
    };
    let started = std::time::Instant::now();
    let password = password.as_ref().map(|p| p.expose());
    let source = SqliteSource::open(&config.db_path(), now_ms())?;
    migrate::reach(to, password)?;
    let target = PostgresStore::open(to, password)
        .context("cannot open the target (--to) at the latest schema")?;
    let rows: u64 = source.counts().iter().map(|(_, n)| n).sum();
    println!(
        "copying {} (schema version {}, {rows} rows) into {}, in one transaction",
        source.path().display(),
        source.version(),
        target.target()
    );
    let width = source
        .counts()
        .iter()
        .map(|(t, _)| t.len())
        .max()
        .unwrap_or(0);
    // A line per table, and one per 100 000 rows of a large one.
    let mut shown = 0;
    let summary = source.copy_into(&target, &mut |p| {
        if p.copied == p.total {
            println!("  {:<width$} {:>10} rows", p.table, p.copied);
            shown = 0;
        } else if p.copied >= shown + 100_000 {
            println!(
                "  {:<width$} {:>10} of {} rows…",
                p.table, p.copied, p.total
            );
            shown = p.copied;
        }
    })?;
    println!(
        "verified: each of the {} tables holds as many rows in PostgreSQL as in SQLite ({} in all)",
        summary.tables.len(),
        summary.rows()
    );
    println!(
        "not copied: {}",
        NOT_COPIED
            .iter()
            .map(|(t, why)| format!("{t} ({why})"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!(
        "committed in {:.1} s; lease epochs carried over (highest {}). Next: set `[store] url = \"{}\"` \
         in coordinator.toml (the password in `password_file` or `password_env`) and start the coordinators",
        started.elapsed().as_secs_f64(),
        summary.max_epoch,
        // The URL as given, unless it holds a password (then the store's redacted form).
        match to.parse::<tokio_postgres::Config>() {
            Ok(c) if c.get_password().is_none() => to.to_owned(),
            _ => target.target().to_owned(),
        }
    );
    Ok(())
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = match cli.command {
        Command::Run(args) => return Ok(run_command(*args)),
        Command::Serve {
            config: args,
            listen,
            checks,
            tls_cert,
            tls_key,
            tls_client_ca,
            insecure_http,
            public_reads,
            local_probe: with_local_probe,
        } => {
            let mut config = load_config(&args)?;
            if let Some(l) = listen {
                config.listen = l;
            }
            if !checks.is_empty() {
                config.checks = checks;
            }
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                config.tls = Some(TlsConfig {
                    cert,
                    key,
                    client_ca: config.tls.as_ref().and_then(|t| t.client_ca.clone()),
                });
            }
            if let Some(ca) = tls_client_ca {
                match config.tls.as_mut() {
                    Some(t) => t.client_ca = Some(ca),
                    None => anyhow::bail!("--tls-client-ca needs TLS: --tls-cert and --tls-key"),
                }
            }
            config.insecure_http |= insecure_http;
            config.access.public_reads |= public_reads;
            config.check()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", config.listen))?;
                if !with_local_probe {
                    server::run(config, listener, agent::shutdown_signal()).await?;
                    return Ok(());
                }
                let addr = listener.local_addr()?;
                let settings = {
                    let store = server::open_store(&config)?;
                    local_probe::prepare(&config, addr, &*store)?
                };
                let (probe_stop, probe_rx) = tokio::sync::watch::channel(false);
                let (serve_stop, serve_rx) = tokio::sync::watch::channel(false);
                let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                let mut serve = tokio::spawn(server::run(config, listener, wait(serve_rx)));
                let mut probe = tokio::spawn(agent::run(settings, wait(probe_rx)));
                // Stop the probe first, so its last results reach a coordinator still serving.
                let joined = |r: Result<Result<(), _>, tokio::task::JoinError>, what: &str| -> anyhow::Result<()> {
                    match r {
                        Ok(inner) => inner,
                        Err(e) => Err(anyhow::anyhow!("the {what} task failed: {e}")),
                    }
                };
                let mut probe_done = None;
                let mut serve_done = None;
                tokio::select! {
                    () = agent::shutdown_signal() => {}
                    p = &mut probe => probe_done = Some(joined(p.map(|r| r.map_err(anyhow::Error::from)), "probe")),
                    s = &mut serve => serve_done = Some(joined(s.map(|r| r.map_err(anyhow::Error::from)), "coordinator")),
                }
                let _ = probe_stop.send(true);
                let probe_result = match probe_done {
                    Some(r) => r,
                    None => joined(probe.await.map(|r| r.map_err(anyhow::Error::from)), "probe"),
                };
                let _ = serve_stop.send(true);
                let serve_result = match serve_done {
                    Some(r) => r,
                    None => joined(serve.await.map(|r| r.map_err(anyhow::Error::from)), "coordinator"),
                };
                serve_result?;
                probe_result.context("the local probe failed")
            })
        }
        Command::Probe { command } => probe_command(command),
        Command::Status { config } => status(&load_config(&config)?),
        Command::Migrate {
            config,
            data_dir,
            to,
            password_file,
            password_env,
        } => migrate(
            &ConfigArgs {
                config,
                data_dir,
                store_url: None,
            },
            &to,
            password_file,
            password_env,
        ),
        Command::Silence { command } => silence_command(command),
        Command::Report { command } => report_command(command),
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            no_faults,
            repeat,
            hold,
        } => {
            let options = vantage_coordinator::demo::Options {
                listen,
                faults: !no_faults,
                repeat,
                hold,
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(vantage_coordinator::demo::run(
                    options,
                    agent::shutdown_signal(),
                ))?;
            Ok(())
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

fn report_command(command: ReportCommand) -> anyhow::Result<()> {
    use vantage_coordinator::report::{self, DEFAULT_WINDOW, Window, format, sla};
    let ReportCommand::Sla {
        config,
        checks,
        vendor,
        month,
        from,
        to,
        format: output,
    } = command;
    let mut config = load_config(&config)?;
    if !checks.is_empty() {
        config.checks = checks;
    }
    let instant = |flag: &str, v: &str| {
        report::parse_instant(v).with_context(|| {
            format!("--{flag} must be an RFC 3339 time like 2026-10-01T00:00:00Z; got `{v}`")
        })
    };
    let now = now_ms();
    let window = match (month, from, to) {
        (Some(m), ..) => Window::month(&m)?,
        (None, from, to) => {
            let to = to.map(|t| instant("to", &t)).transpose()?.unwrap_or(now);
            match from {
                Some(f) => Window::new(instant("from", &f)?, to)?,
                None => Window::before(to, DEFAULT_WINDOW)?,
            }
        }
    };
    let catalogs = vantage_coordinator::catalog::Catalogs::load(config.checks.clone())?;
    let catalog = catalogs.current();
    let Some(v) = catalog.checks.vendor(&vendor) else {
        let known: Vec<&str> = catalog
            .checks
            .vendors
            .iter()
            .map(|v| v.id.as_str())
            .collect();
        bail!(
            "no vendor `{vendor}` in the check files ({}); give them with --checks or `checks` in coordinator.toml",
            if known.is_empty() {
                "none loaded".to_owned()
            } else {
                format!("known: {}", known.join(", "))
            }
        );
    };
    let vendor_checks: Vec<_> = catalog
        .checks
        .checks
        .iter()
        .filter(|c| c.vendor == v.id && !c.on_demand)
        .map(|c| (c.id.clone(), c.role))
        .collect();
    let db = config.db_path();
    // A missing SQLite file would be created empty; a PostgreSQL store has none to look for.
    if config.store_url.is_none() && !db.exists() {
        bail!(
            "no store at {}: point --config or --data-dir at the coordinator's data",
            db.display()
        );
    }
    let store = server::open_store(&config)?;
    let report = sla::sla_report(&*store, v, &vendor_checks, window, now)?;
    match output {
        ReportFormat::Table => print!("{}", format::table(&report)),
        ReportFormat::Csv => print!("{}", format::csv(&report)),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

fn probe_command(command: ProbeCommand) -> anyhow::Result<()> {
    match command {
        ProbeCommand::Add {
            config,
            id,
            region,
            labels,
            token_file,
        } => {
            let config = load_config(&config)?;
            let valid_id = |s: &str| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                    })
            };
            if !valid_id(&id) || !valid_id(&region) {
                bail!(
                    "probe id and region must be 1 to 64 lowercase letters, digits, `-`, `_` or `.`, e.g. `fra-1` in `eu-west`"
                );
            }
            let mut map = BTreeMap::new();
            for l in labels {
                let Some((k, v)) = l.split_once('=') else {
                    bail!("label `{l}` must be KEY=VALUE, e.g. `--label network=eyeball`");
                };
                map.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            let store = server::open_store(&config)?;
            let token = Token::generate_probe();
            let record = ProbeRecord {
                id: id.clone(),
                region,
                labels: map,
                created_ms: now_ms(),
                revoked_ms: None,
                last_seen_ms: None,
            };
            store.add_probe(&record, &token.hash())?;
            match token_file {
                Some(path) => {
                    write_secret(&path, token.expose())?;
                    eprintln!(
                        "probe `{id}` added; its token is in {} (it is not stored anywhere else)",
                        path.display()
                    );
                }
                None => {
                    eprintln!("probe `{id}` added; its token follows. It is shown only this once:");
                    println!("{}", token.expose());
                }
            }
            Ok(())
        }
        ProbeCommand::List { config } => {
            let store = server::open_store(&load_config(&config)?)?;
            let probes = store.list_probes()?;
            println!(
                "{:<20} {:<12} {:<8} {:<25} LABELS",
                "PROBE", "REGION", "STATE", "LAST SEEN"
            );
            for p in probes {
                let seen = p.last_seen_ms.map_or("never".to_owned(), format_ms);
                let labels: Vec<String> =
                    p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let state = if p.revoked_ms.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<20} {:<12} {:<8} {:<25} {}",
                    p.id,
                    p.region,
                    state,
                    seen,
                    labels.join(",")
                );
            }
            Ok(())
        }
        ProbeCommand::Revoke { config, id } => {
            let store = server::open_store(&load_config(&config)?)?;
            store.revoke_probe(&id, now_ms())?;
            eprintln!("probe `{id}` revoked: its token is refused from the next request on");
            Ok(())
        }
    }
}

fn silence_command(command: SilenceCommand) -> anyhow::Result<()> {
    match command {
        SilenceCommand::Add {
            config,
            vendor,
            check,
            region,
            starts,
            ends,
            duration,
            comment,
        } => {
            let store = server::open_store(&load_config(&config)?)?;
            let who = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
            let request = vantage_coordinator::api::SilenceRequest {
                vendor,
                check,
                region,
                starts,
                ends,
                duration,
                comment,
                created_by: None,
            };
            let row =
                vantage_coordinator::api::silence_row(request, format!("cli:{who}"), now_ms())
                    .map_err(anyhow::Error::msg)?;
            let id = store.add_silence(&row)?;
            println!("{id}");
            eprintln!(
                "silence {id} added, from {} to {}",
                format_ms(row.starts_ms),
                format_ms(row.ends_ms)
            );
            Ok(())
        }
        SilenceCommand::List { config, active } => {
            let config = load_config(&config)?;
            let store = server::open_store(&config)?;
            let at = active.then(now_ms);
            let mut rows = store.silences(at)?;
            rows.extend(config.alerting.silences_at(at).cloned());
            println!(
                "{:<5} {:<16} {:<16} {:<10} {:<25} {:<25} {:<14} COMMENT",
                "ID", "VENDOR", "CHECK", "REGION", "STARTS", "ENDS", "BY"
            );
            for s in rows {
                let any = |v: &Option<String>| v.clone().unwrap_or_else(|| "*".to_owned());
                println!(
                    "{:<5} {:<16} {:<16} {:<10} {:<25} {:<25} {:<14} {}",
                    if s.id == 0 {
                        "-".to_owned()
                    } else {
                        s.id.to_string()
                    },
                    any(&s.vendor),
                    any(&s.check_id),
                    any(&s.region),
                    format_ms(s.starts_ms),
                    format_ms(s.ends_ms),
                    s.created_by,
                    s.comment
                );
            }
            Ok(())
        }
        SilenceCommand::Remove { config, id } => {
            let store = server::open_store(&load_config(&config)?)?;
            if !store.remove_silence(id)? {
                bail!(
                    "no silence {id} in the store (silences from coordinator.toml are removed there)"
                );
            }
            eprintln!("silence {id} removed");
            Ok(())
        }
    }
}

fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Writes a secret to a new file readable by its owner only.
fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create token file `{}` (it must not exist yet)",
                path.display()
            )
        })?;
    writeln!(f, "{secret}")?;
    Ok(())
}
