//! `serve --local-probe`: a probe in the coordinator's own process, in region `local`, so one
//! command on one machine runs the whole system.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use vantage_probe::settings::{FileSettings, Settings};

use crate::auth::Token;
use crate::config::CoordinatorConfig;
use crate::store::{ProbeRecord, Store, StoreError};

/// The local probe's id and region.
pub const LOCAL_PROBE_ID: &str = "local";
/// The local probe's region.
pub const LOCAL_REGION: &str = "local";

/// Why the local probe could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum LocalProbeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token file could not be written or read.
    #[error("local probe token `{}`: {source}", path.display())]
    Token {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The setup is not supported.
    #[error("{0}")]
    Unsupported(String),
    /// The probe's settings are invalid.
    #[error(transparent)]
    Settings(#[from] vantage_probe::settings::SettingsError),
}

/// Registers (or re-keys) the `local` probe and returns the settings it runs with. The token
/// lives in `<data_dir>/local-probe.token`, readable by its owner only.
pub fn prepare(
    config: &CoordinatorConfig,
    listening: SocketAddr,
    store: &dyn Store,
) -> Result<Settings, LocalProbeError> {
    if config.tls.is_some() {
        return Err(LocalProbeError::Unsupported(
            "--local-probe needs the coordinator on plain HTTP for now (it talks to it over loopback); run a separate `vantage-probe run` against the HTTPS address".into(),
        ));
    }
    let token_path = config.data_dir.join("local-probe.token");
    let existing = std::fs::read_to_string(&token_path)
        .ok()
        .map(|t| Token::new(&t));
    let known = match &existing {
        Some(t) => store
            .probe_by_token(&t.hash())?
            .is_some_and(|p| p.id == LOCAL_PROBE_ID),
        None => false,
    };
    let token = match existing {
        Some(t) if known => t,
        _ => {
            let t = Token::generate_probe();
            let record = ProbeRecord {
                id: LOCAL_PROBE_ID.into(),
                region: LOCAL_REGION.into(),
                labels: Default::default(),
                created_ms: crate::ingest::unix_ms(time::OffsetDateTime::now_utc()),
                revoked_ms: None,
                last_seen_ms: None,
            };
            match store.add_probe(&record, &t.hash()) {
                Ok(()) => {}
                Err(StoreError::ProbeExists(_)) => {
                    store.set_probe_token(LOCAL_PROBE_ID, &t.hash())?
                }
                Err(e) => return Err(e.into()),
            }
            write_token(&token_path, t.expose())?;
            t
        }
    };
    // Reach the listener over loopback, whatever address it is bound to.
    let ip = match listening.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}", SocketAddr::new(ip, listening.port()));
    let file = FileSettings {
        coordinator: Some(url.into()),
        state_dir: Some(config.data_dir.join("local-probe")),
        probe_id: Some(LOCAL_PROBE_ID.into()),
        ..FileSettings::default()
    };
    Ok(Settings::from_file(file, Some(token.expose().to_owned()))?)
}

fn write_token(path: &Path, token: &str) -> Result<(), LocalProbeError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |source| LocalProbeError::Token {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    writeln!(f, "{token}").map_err(err)?;
    f.sync_all().map_err(err)
}
