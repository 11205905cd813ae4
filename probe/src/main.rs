//! `vantage-probe`: validate check files, run checks once, and (soon) run as an agent.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vantage_checks::config::{self, LoadError};
use vantage_checks::exec::RunEnv;
use vantage_probe::settings::{FileSettings, Settings, parse_source_address};
use vantage_probe::{agent, once, report};

#[derive(Parser)]
#[command(
    name = "vantage-probe",
    version,
    about = "Vantage probe: runs DNS, CDN, HTTP, TLS and TCP checks against vendors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check check files for errors; prints every problem with its file, line and column.
    Validate {
        /// Check files or directories of `*.toml` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run as an agent: pull checks from the coordinator, run them, push every result.
    Run(RunArgs),
    /// Run checks now, from this machine, once each, and print one result per check.
    ///
    /// Every check runs, `on_demand` ones included (the agent leaves those off its schedule).
    ///
    /// Exits 0 when every check passed, 1 when any did not, 2 when the files are invalid.
    Once {
        /// Check files or directories of `*.toml` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Run only this check (repeatable).
        #[arg(long = "check", value_name = "ID")]
        checks: Vec<String>,
        /// Print JSON lines (the wire format) instead of a table.
        #[arg(long)]
        json: bool,
        /// How many checks run at the same time.
        #[arg(long, default_value_t = once::DEFAULT_CONCURRENCY)]
        concurrency: usize,
        /// Bind every check's sockets to this local address, e.g. 192.0.2.7.
        #[arg(long, env = "VANTAGE_SOURCE_ADDRESS", value_name = "IP")]
        source_address: Option<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// probe.toml with the settings below; flags and environment override it.
    #[arg(long, env = "VANTAGE_PROBE_CONFIG")]
    config: Option<PathBuf>,
    /// The coordinator's base URL, e.g. https://coordinator.example.com:7470; several,
    /// comma-separated, for coordinators sharing one store (the probe fails over between them).
    #[arg(long, env = "VANTAGE_COORDINATOR")]
    coordinator: Option<String>,
    /// File holding this probe's token (from `vantage-coordinator probe add --token-file`).
    /// The token may instead come from VANTAGE_PROBE_TOKEN.
    #[arg(long, env = "VANTAGE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Expected probe id; the probe stops if its token belongs to another.
    #[arg(long, env = "VANTAGE_PROBE_ID")]
    probe_id: Option<String>,
    /// Expected region; the probe stops if it is registered elsewhere.
    #[arg(long, env = "VANTAGE_REGION")]
    region: Option<String>,
    /// PEM CA to trust for the coordinator instead of the system roots.
    #[arg(long, env = "VANTAGE_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (a coordinator with `[tls] client_ca` asks for it).
    #[arg(long, env = "VANTAGE_CLIENT_CERT", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, env = "VANTAGE_CLIENT_KEY", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Directory for the spool and the last good config.
    #[arg(long, env = "VANTAGE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Most checks running at once.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Bind every check's sockets to this local address, e.g. 192.0.2.7 (the probe's traffic
    /// to the coordinator is not bound).
    #[arg(long, env = "VANTAGE_SOURCE_ADDRESS", value_name = "IP")]
    source_address: Option<String>,
    /// Serve the probe's own counters on http://ADDR/metrics (Prometheus), e.g. 127.0.0.1:9470.
    #[arg(long, env = "VANTAGE_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<String>,
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn run_agent(args: RunArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let mut file = match &args.config {
        Some(path) => FileSettings::load(path)?,
        None => FileSettings::default(),
    };
    // Flags and environment variables win over the file.
    file.coordinator = args
        .coordinator
        .as_deref()
        .map(vantage_probe::settings::Coordinators::from_list)
        .or(file.coordinator);
    file.token_file = args.token_file.or(file.token_file);
    file.probe_id = args.probe_id.or(file.probe_id);
    file.region = args.region.or(file.region);
    file.ca_file = args.ca_file.or(file.ca_file);
    if args.client_cert.is_some() {
        file.client_cert = args.client_cert;
        file.client_key = args.client_key;
    }
    file.state_dir = args.state_dir.or(file.state_dir);
    file.concurrency = args.concurrency.or(file.concurrency);
    file.source_address = args.source_address.or(file.source_address);
    file.metrics_listen = args.metrics_listen.or(file.metrics_listen);
    let token = std::env::var("VANTAGE_PROBE_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    let settings = Settings::from_file(file, token)?;
    // One thread runs every check: the work is waiting on sockets, and 120 runs a second use a
    // few percent of a core. A multi-threaded runtime gave each worker its own malloc arena,
    // which kept transient peaks resident and doubled the probe's anonymous memory.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(agent::run(settings, agent::shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_agent(args),
        Command::Validate { paths } => {
            let sources = config::read_sources(&paths)?;
            match config::validate(&sources) {
                Ok(set) => {
                    println!(
                        "ok: {} vendor{}, {} check{} in {} file{}",
                        set.vendors.len(),
                        plural(set.vendors.len()),
                        set.checks.len(),
                        plural(set.checks.len()),
                        sources.len(),
                        plural(sources.len())
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(diags) => {
                    eprint!("{}", diags.render());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Once {
            paths,
            checks,
            json,
            concurrency,
            source_address,
        } => {
            let env = RunEnv {
                source_address: source_address
                    .as_deref()
                    .map(parse_source_address)
                    .transpose()?,
                ..RunEnv::local()
            };
            let set = match config::load(&paths) {
                Ok(set) => set,
                Err(LoadError::Invalid(diags)) => {
                    eprint!("{}", diags.render());
                    return Ok(ExitCode::from(2));
                }
                Err(e) => return Err(e.into()),
            };
            let selected = if checks.is_empty() {
                set.checks.clone()
            } else {
                let mut selected = Vec::new();
                for id in &checks {
                    let check = set.check(id).with_context(|| {
                        let ids: Vec<&str> = set.checks.iter().map(|c| c.id.as_str()).collect();
                        format!(
                            "no check has id `{id}`; the files define: {}",
                            ids.join(", ")
                        )
                    })?;
                    selected.push(check.clone());
                }
                selected
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let results = runtime.block_on(once::run_all(selected, env, concurrency));
            if json {
                print!("{}", report::json_lines(&results));
            } else {
                print!("{}", report::table(&results));
            }
            Ok(if results.iter().all(|r| r.is_ok()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
