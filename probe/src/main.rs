//! `vantage-probe`: validate check files, run checks once, and (soon) run as an agent.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vantage_checks::config::{self, LoadError};
use vantage_checks::exec::RunEnv;
use vantage_probe::{once, report};

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
    /// Run checks now, from this machine, once each, and print one result per check.
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
    },
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
        } => {
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
            let results = runtime.block_on(once::run_all(selected, RunEnv::local(), concurrency));
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
