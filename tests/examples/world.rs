//! A small vendor world on loopback for trying `vantage-probe once` by hand: two NSD servers
//! for `example.vantage.test` (one a serial behind) and an nginx caching edge with a test CA.
//!
//! `cargo run -p vantage-e2e --example world` prints the path of a checks file for that world,
//! then serves until Enter or Ctrl-C. Try `vantage-probe once <path>` in another terminal.

use std::io::BufRead as _;
use std::net::SocketAddr;

use vantage_e2e::cdn::{Cdn, HOST};
use vantage_e2e::dns::{Nsd, Zone};
use vantage_e2e::free_port;

const ZONE: &str = "example.vantage.test";

fn zone(serial: u32) -> Zone {
    Zone::new(
        ZONE,
        serial,
        "@ IN NS ns1\n@ IN NS ns2\nns1 IN A 127.0.0.1\nns2 IN A 127.0.0.1\n\
         www IN A 192.0.2.10\nwww IN A 192.0.2.11\n",
    )
}

fn main() {
    let a = Nsd::start(
        "ns-a",
        &[SocketAddr::from(([127, 0, 0, 1], free_port()))],
        &[zone(2026112302)],
    );
    let b = Nsd::start(
        "ns-b",
        &[SocketAddr::from(([127, 0, 0, 1], free_port()))],
        &[zone(2026112301)],
    );
    let cdn = Cdn::start();
    let dir = tempfile::Builder::new()
        .prefix("vantage-world-")
        .tempdir()
        .expect("tempdir");
    let checks = dir.path().join("world.toml");
    let text = format!(
        r#"[defaults]
retry = "off"

[[vendor]]
id = "loopdns"
name = "Loopback DNS"

[[vendor]]
id = "loopcdn"
name = "Loopback CDN"

[[check]]
id = "www-a"
vendor = "loopdns"
kind = "dns"
zone = "{ZONE}"
query = {{ name = "www.{ZONE}", type = "A" }}
servers = ["{a}", "{b}"]
expect = {{ answers = ["192.0.2.10", "192.0.2.11"] }}

[[check]]
id = "soa-consistent"
vendor = "loopdns"
kind = "dns"
zone = "{ZONE}"
query = {{ name = "{ZONE}", type = "SOA" }}
servers = ["{a}", "{b}"]
consistent_soa = true

[[check]]
id = "static-css"
vendor = "loopcdn"
kind = "cdn"
url = "https://{HOST}/css/site.css"
edge = "{edge}"
ca = "{ca}"
cache_bust = true
expect = {{ status = 200, encoding = ["br", "gzip"], vendor_header = {{ name = "x-served-by", matches = "^cache-" }} }}
"#,
        a = a.addr(),
        b = b.addr(),
        edge = cdn.edge,
        ca = cdn.ca_file().display(),
    );
    std::fs::write(&checks, text).expect("write checks");
    println!("{}", checks.display());
    eprintln!("serving; press Enter to stop");
    let _ = std::io::stdin().lock().lines().next();
    drop((a, b, cdn));
}
