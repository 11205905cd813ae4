//! `vantage-coordinator` (under construction: see the README).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "vantage-coordinator",
    version,
    about = "Vantage coordinator (ingest and consensus are not built yet)"
)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!(
        "vantage-coordinator: ingest, consensus and alerting are not built yet; see the README"
    );
    std::process::exit(2);
}
