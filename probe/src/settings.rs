//! The probe agent's own settings: where the coordinator is, the token, where state lives.
//!
//! From a small TOML file (`--config probe.toml`), overridden by flags and `VANTAGE_*`
//! environment variables. The probe's id, region and labels are registered on the coordinator
//! (`vantage-coordinator probe add`); values given here are checked against that registration.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why the probe's settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting is missing or breaks a rule.
    #[error("{0}")]
    Rule(String),
}

/// The `coordinator` setting: one URL or several.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Coordinators {
    /// One coordinator.
    One(String),
    /// Several, in order of preference.
    Many(Vec<String>),
}

impl Coordinators {
    /// A comma-separated list (`--coordinator`, `VANTAGE_COORDINATOR`).
    pub fn from_list(text: &str) -> Self {
        Self::Many(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    fn urls(&self) -> Vec<&str> {
        match self {
            Self::One(u) => vec![u.as_str()],
            Self::Many(us) => us.iter().map(String::as_str).collect(),
        }
    }
}

impl From<&str> for Coordinators {
    fn from(u: &str) -> Self {
        Self::One(u.to_owned())
    }
}

impl From<String> for Coordinators {
    fn from(u: String) -> Self {
        Self::One(u)
    }
}

/// Parses and checks one coordinator URL: https, or plain http on loopback only.
fn coordinator_url(text: &str) -> Result<url::Url, SettingsError> {
    let rule = |m: String| SettingsError::Rule(m);
    let coordinator = url::Url::parse(text)
        .map_err(|e| rule(format!("coordinator URL `{text}` is not valid: {e}; e.g. `https://coordinator.example.com:7470`")))?;
    match coordinator.scheme() {
        "https" => Ok(coordinator),
        "http" => {
            let loopback = match coordinator.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if loopback {
                Ok(coordinator)
            } else {
                Err(rule(format!(
                    "refusing plain http to {coordinator}: the token would cross the network in clear; use https (plain http is for loopback only)"
                )))
            }
        }
        other => Err(rule(format!(
            "coordinator URL must be https (or http on loopback); got scheme `{other}`"
        ))),
    }
}

/// `probe.toml`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Base URL of the coordinator, e.g. `https://coordinator.example.com:7470`, or several
    /// (`["https://a:7470", "https://b:7470"]`): coordinators sharing one store, any of which
    /// takes the probe's results.
    pub coordinator: Option<Coordinators>,
    /// File holding the probe's bearer token.
    pub token_file: Option<PathBuf>,
    /// Expected probe id (checked against the registration).
    pub probe_id: Option<String>,
    /// Expected region (checked against the registration).
    pub region: Option<String>,
    /// Expected labels (checked against the registration).
    pub labels: Option<BTreeMap<String, String>>,
    /// PEM CA certificate(s) to trust for the coordinator, instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS, for a coordinator with `[tls] client_ca`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Directory for the spool and the last good config (default `./probe-state`).
    pub state_dir: Option<PathBuf>,
    /// Most checks running at once (default 64).
    pub concurrency: Option<usize>,
    /// Spool bound in bytes (default 268435456).
    pub spool_max_bytes: Option<u64>,
    /// Spool bound in age (default `"24h"`).
    pub spool_max_age: Option<String>,
    /// How often the config is pulled (default `"5s"`).
    pub config_poll: Option<String>,
    /// Local address every check's sockets are bound to, e.g. `"192.0.2.7"`, so that checks
    /// leave a multi-homed host through it (default: the system chooses). Target addresses
    /// of the other IP family are skipped; a check left with none is a `probe_error`.
    pub source_address: Option<String>,
    /// Serve the probe's own counters on `http://<this>/metrics` (Prometheus), e.g.
    /// `"127.0.0.1:9470"` (default: not served).
    pub metrics_listen: Option<String>,
}

impl FileSettings {
    /// Reads a `probe.toml`; relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut s: Self = toml::from_str(&text).map_err(|e| SettingsError::Invalid {
            path: path.to_owned(),
            message: format!("{}{}", e.message().trim(), locate(&text, e.span())),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &mut Option<PathBuf>| {
            if let Some(x) = p.as_mut()
                && x.is_relative()
            {
                *x = base.join(&*x);
            }
        };
        rel(&mut s.token_file);
        rel(&mut s.ca_file);
        rel(&mut s.client_cert);
        rel(&mut s.client_key);
        rel(&mut s.state_dir);
        Ok(s)
    }
}

fn locate(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        let before = &text[..s.start.min(text.len())];
        format!(" (line {})", before.matches('\n').count() + 1)
    })
    .unwrap_or_default()
}

/// The probe's certificate and key for mutual TLS (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The probe agent's settings, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base URLs of the coordinators, in order of preference (at least one).
    pub coordinators: Vec<url::Url>,
    /// The bearer token (never logged).
    pub token: Secret,
    /// Expected id, region and labels.
    pub expect_id: Option<String>,
    /// Expected region.
    pub expect_region: Option<String>,
    /// Expected labels.
    pub expect_labels: Option<BTreeMap<String, String>>,
    /// CA for the coordinator.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mutual TLS with the coordinator.
    pub client_identity: Option<ClientIdentity>,
    /// State directory.
    pub state_dir: PathBuf,
    /// Most checks running at once.
    pub concurrency: usize,
    /// Spool bound in bytes.
    pub spool_max_bytes: u64,
    /// Spool bound in age.
    pub spool_max_age: Duration,
    /// Config pull cadence.
    pub config_poll: Duration,
    /// Local address every check's sockets are bound to.
    pub source_address: Option<IpAddr>,
    /// Where the local `/metrics` endpoint listens, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// A secret whose `Debug` is redacted (probe tokens here; the coordinator's receiver URLs,
/// routing keys and API token too).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret, for sending.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Parses a `source_address` setting (from probe.toml, `--source-address` or
/// `VANTAGE_SOURCE_ADDRESS`).
pub fn parse_source_address(text: &str) -> Result<IpAddr, SettingsError> {
    text.trim().parse().map_err(|_| {
        SettingsError::Rule(format!(
            "source_address must be an IP address, e.g. source_address = \"192.0.2.7\"; got {text:?}"
        ))
    })
}

impl Settings {
    /// Validates merged settings; `token` is the token's text when it came from the
    /// environment (`VANTAGE_PROBE_TOKEN`) rather than a file.
    pub fn from_file(file: FileSettings, token: Option<String>) -> Result<Self, SettingsError> {
        let rule = |m: String| SettingsError::Rule(m);
        let listed = file
            .coordinator
            .as_ref()
            .map(Coordinators::urls)
            .unwrap_or_default();
        if listed.is_empty() {
            return Err(rule("the coordinator's URL is not set: pass --coordinator https://HOST:7470 (several: comma-separated) or set `coordinator` in probe.toml".into()));
        }
        let mut coordinators: Vec<url::Url> = Vec::with_capacity(listed.len());
        for text in listed {
            let url = coordinator_url(text)?;
            if coordinators.contains(&url) {
                return Err(rule(format!("coordinator `{url}` is listed twice")));
            }
            coordinators.push(url);
        }
        let token = match (token, &file.token_file) {
            (Some(t), _) => t,
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.clone(),
                    source,
                })?
            }
            (None, None) => {
                return Err(rule(
                    "no probe token: pass --token-file FILE (from `vantage-coordinator probe add --token-file`), or set VANTAGE_PROBE_TOKEN".into(),
                ));
            }
        };
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err(rule("the probe token is empty".into()));
        }
        let dur =
            |v: Option<String>, key: &str, default: Duration| -> Result<Duration, SettingsError> {
                v.map_or(Ok(default), |s| {
                    vantage_checks::duration::parse(&s).map_err(|why| {
                        rule(format!(
                            "{key} must be a duration like \"5s\"; got {s:?}, which {why}"
                        ))
                    })
                })
            };
        let source_address = file
            .source_address
            .as_deref()
            .map(parse_source_address)
            .transpose()?;
        let concurrency = file.concurrency.unwrap_or(64);
        if concurrency == 0 {
            return Err(rule("concurrency must be at least 1".into()));
        }
        let metrics_listen = file
            .metrics_listen
            .as_deref()
            .map(|text| {
                text.trim().parse::<SocketAddr>().map_err(|_| {
                    rule(format!(
                        "metrics_listen must be an address and a port, e.g. metrics_listen = \"127.0.0.1:9470\"; got {text:?}"
                    ))
                })
            })
            .transpose()?;
        let client_identity = match (file.client_cert, file.client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity { cert, key }),
            (None, None) => None,
            _ => {
                return Err(rule(
                    "client_cert and client_key go together: set both (mutual TLS) or neither"
                        .into(),
                ));
            }
        };
        Ok(Self {
            coordinators,
            token: Secret::new(token),
            client_identity,
            expect_id: file.probe_id,
            expect_region: file.region,
            expect_labels: file.labels,
            ca_file: file.ca_file,
            state_dir: file
                .state_dir
                .unwrap_or_else(|| PathBuf::from("probe-state")),
            concurrency,
            spool_max_bytes: file.spool_max_bytes.unwrap_or(256 * 1024 * 1024),
            spool_max_age: dur(
                file.spool_max_age,
                "spool_max_age",
                Duration::from_secs(86_400),
            )?,
            config_poll: dur(file.config_poll, "config_poll", Duration::from_secs(5))?,
            source_address,
            metrics_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(url: &str) -> FileSettings {
        FileSettings {
            coordinator: Some(url.into()),
            ..FileSettings::default()
        }
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let half = FileSettings {
            client_cert: Some("probe.crt".into()),
            ..file("https://c.example:7470")
        };
        let err = Settings::from_file(half, Some("t".into())).expect_err("cert without key");
        assert!(err.to_string().contains("client_key"), "{err}");
        let both = FileSettings {
            client_cert: Some("probe.crt".into()),
            client_key: Some("probe.key".into()),
            ..file("https://c.example:7470")
        };
        let s = Settings::from_file(both, Some("t".into())).expect("cert and key");
        assert_eq!(
            s.client_identity,
            Some(ClientIdentity {
                cert: "probe.crt".into(),
                key: "probe.key".into()
            })
        );
    }

    #[test]
    fn the_deploy_example_parses() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/probe.toml"));
        let file = FileSettings::load(path).expect("deploy/probe.toml");
        assert!(
            file.token_file
                .as_ref()
                .is_some_and(|p| p.ends_with("deploy/probe.token"))
        );
        let s = Settings::from_file(file, Some("t".into())).expect("valid");
        assert_eq!(s.coordinators[0].as_str(), "http://127.0.0.1:7470/");
        assert_eq!(s.spool_max_age, Duration::from_secs(86_400));
    }

    #[test]
    fn several_coordinators_are_listed_and_each_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("probe.toml");
        std::fs::write(
            &path,
            "coordinator = [\"https://a.example:7470\", \"https://b.example:7470\"]\n",
        )
        .expect("write");
        let file = FileSettings::load(&path).expect("a list");
        let s = Settings::from_file(file, Some("t".into())).expect("valid");
        let urls: Vec<&str> = s.coordinators.iter().map(url::Url::as_str).collect();
        assert_eq!(urls, ["https://a.example:7470/", "https://b.example:7470/"]);

        let flag = Coordinators::from_list("https://a.example:7470, https://c.example:7470,");
        let s = Settings::from_file(
            FileSettings {
                coordinator: Some(flag),
                ..FileSettings::default()
            },
            Some("t".into()),
        )
        .expect("a comma-separated list");
        assert_eq!(s.coordinators.len(), 2);

        let refused = |list: &str| {
            Settings::from_file(
                FileSettings {
                    coordinator: Some(Coordinators::from_list(list)),
                    ..FileSettings::default()
                },
                Some("t".into()),
            )
            .expect_err(list)
            .to_string()
        };
        assert!(refused("https://a.example, http://b.example").contains("plain http"));
        assert!(refused("https://a.example, https://a.example").contains("listed twice"));
        assert!(refused(" , ").contains("not set"));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("probe.toml");
        std::fs::write(
            &path,
            "coordinator = \"http://127.0.0.1:7470\"\ntoken = \"x\"\n",
        )
        .expect("write");
        let err = FileSettings::load(&path).expect_err("unknown key");
        assert!(
            err.to_string().contains("unknown field `token`")
                && err.to_string().contains("(line 2)"),
            "{err}"
        );
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(Settings::from_file(file("http://127.0.0.1:7470"), Some("t".into())).is_ok());
        assert!(Settings::from_file(file("http://localhost:7470"), Some("t".into())).is_ok());
        let err = Settings::from_file(file("http://10.0.0.1:7470"), Some("t".into()))
            .expect_err("plain http");
        assert!(err.to_string().contains("refusing plain http"), "{err}");
        assert!(Settings::from_file(file("https://c.example.com"), Some("t".into())).is_ok());
    }

    #[test]
    fn source_address_is_an_ip_address() {
        let with = |v: &str| FileSettings {
            source_address: Some(v.into()),
            ..file("https://c.example.com")
        };
        let s = Settings::from_file(file("https://c.example.com"), Some("t".into())).expect("ok");
        assert_eq!(s.source_address, None);
        for (text, ip) in [("127.0.1.2", "127.0.1.2"), (" 2001:db8::7 ", "2001:db8::7")] {
            let s = Settings::from_file(with(text), Some("t".into())).expect("valid");
            assert_eq!(s.source_address, Some(ip.parse().expect("ip")));
        }
        for bad in ["192.0.2.7:53", "eth0", "", "[2001:db8::7]"] {
            let err = Settings::from_file(with(bad), Some("t".into())).expect_err("invalid");
            assert_eq!(
                err.to_string(),
                format!(
                    "source_address must be an IP address, e.g. source_address = \"192.0.2.7\"; got {bad:?}"
                )
            );
        }
    }

    #[test]
    fn source_address_is_read_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("probe.toml");
        std::fs::write(
            &path,
            "coordinator = \"http://127.0.0.1:7470\"\nsource_address = \"127.0.1.2\"\n",
        )
        .expect("write");
        let file = FileSettings::load(&path).expect("valid file");
        assert_eq!(file.source_address.as_deref(), Some("127.0.1.2"));
        let s = Settings::from_file(file, Some("t".into())).expect("valid");
        assert_eq!(s.source_address, Some("127.0.1.2".parse().expect("ip")));
    }

    #[test]
    fn token_is_required_and_redacted() {
        let err = Settings::from_file(file("https://c.example.com"), None).expect_err("no token");
        assert!(err.to_string().contains("no probe token"), "{err}");
        let s = Settings::from_file(file("https://c.example.com"), Some(" vtp_secret \n".into()))
            .expect("ok");
        assert_eq!(s.token.expose(), "vtp_secret");
        assert!(!format!("{s:?}").contains("vtp_secret"));
    }
}
