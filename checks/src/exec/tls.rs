//! `kind = "tls"`: a handshake to `target` with SNI `server_name`, the chain and name checked
//! against the system roots plus `ca`, and the leaf certificate's expiry against `valid_for`.
//!
//! Also the rustls client side shared with the HTTP executor: [`TlsClient`] builds a fresh
//! client config per connection whose verifier keeps the leaf certificate and the verification
//! error, so a failed handshake still says which certificate failed and why.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::net::{self, ConnectError, ResolveError};
use super::{ExecError, Observation};
use crate::model::{CaCache, TlsCheck};
use crate::result::{Facts, FailureKind, Timings, TlsFacts, millis};

pub(crate) async fn run(
    check: &TlsCheck,
    timeout: Duration,
    source: Option<IpAddr>,
) -> Result<Observation, ExecError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let client = TlsClient::new(check.ca_file.as_deref(), &check.ca_cache)?;
    let mut timings = Timings::default();
    let mut facts = TlsFacts {
        server_name: check.server_name.clone(),
        ..TlsFacts::default()
    };
    let fail = |kind, message: String, mut timings: Timings, facts| {
        timings.total_ms = millis(start.elapsed());
        Ok(Observation::fail(kind, message, timings, Facts::Tls(facts)))
    };
    let how = net::Lookup::new(check.resolver, source);
    let addrs = match net::resolve(&check.target, how, left(deadline)).await {
        Ok(addrs) => addrs,
        Err(ResolveError::Probe(e)) => return Err(e),
        Err(ResolveError::Failed(f)) => return fail(f.kind, f.message, timings, facts),
    };
    timings.resolve_ms = Some(millis(start.elapsed()));
    let tcp = match net::connect(&addrs, left(deadline), source).await {
        Ok((tcp, addr, took)) => {
            facts.remote_addr = Some(addr);
            timings.connect_ms = Some(millis(took));
            tcp
        }
        Err(ConnectError::Probe(e)) => return Err(e),
        Err(ConnectError::Failed(f, addr)) => {
            facts.remote_addr = addr;
            return fail(f.kind, f.message, timings, facts);
        }
    };
    // No ALPN: the target need not speak HTTP.
    let handshake = client
        .handshake(tcp, &check.server_name, &[], left(deadline))
        .await;
    let (_stream, mut session) = match handshake {
        Ok(ok) => ok,
        Err(f) => {
            timings.tls_ms = f.took.map(millis);
            let remote = facts.remote_addr;
            let facts = TlsFacts {
                remote_addr: remote,
                ..f.facts
            };
            return match f.kind {
                None => Err(ExecError::Unsupported(f.message)),
                Some(kind) => fail(kind, f.message, timings, facts),
            };
        }
    };
    timings.tls_ms = Some(millis(session.took));
    session.facts.remote_addr = facts.remote_addr;
    let facts = session.facts;
    timings.total_ms = millis(start.elapsed());
    if let Some(not_after) = session.not_after {
        let left = not_after - OffsetDateTime::now_utc();
        if left < check.valid_for {
            let message = format!(
                "the certificate for `{}` expires at {} ({} days from now), within valid_for of {}",
                check.server_name,
                facts.not_after.as_deref().unwrap_or("?"),
                facts.days_left.unwrap_or_default(),
                crate::duration::format(check.valid_for),
            );
            return Ok(Observation::fail(
                FailureKind::CertExpiresSoon,
                message,
                timings,
                Facts::Tls(facts),
            ));
        }
    }
    Ok(Observation::ok(timings, Facts::Tls(facts)))
}

/// Time left until `deadline`.
pub(crate) fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Trust anchors for one run: the system's roots plus a check's `ca` file.
#[derive(Clone, Debug)]
pub(crate) struct TlsClient {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

/// A completed handshake.
#[derive(Debug)]
pub(crate) struct Session {
    /// Protocol, cipher, ALPN and the leaf certificate (without `remote_addr`).
    pub(crate) facts: TlsFacts,
    /// The leaf certificate's notAfter.
    pub(crate) not_after: Option<OffsetDateTime>,
    /// Handshake time.
    pub(crate) took: Duration,
}

/// A failed handshake.
#[derive(Debug)]
pub(crate) struct TlsFailure {
    /// The vendor's failure; `None` when the server speaks only what this probe refuses, so it
    /// cannot be tested from here (an [`ExecError::Unsupported`]).
    pub(crate) kind: Option<FailureKind>,
    pub(crate) message: String,
    /// What was seen of the certificate before the handshake failed.
    pub(crate) facts: TlsFacts,
    /// Time spent in the handshake, when it got that far.
    pub(crate) took: Option<Duration>,
}

/// The system's root certificates, loaded once per process: reading them is slow.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for err in &found.errors {
            tracing::warn!(error = %err, "cannot load some system root certificates");
        }
        found.certs
    })
}

/// The system roots as a store, built once per process.
fn system_store() -> Arc<RootCertStore> {
    static STORE: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            // A broken system root is skipped, as browsers do; the rest still count.
            let _ = roots.add_parsable_certificates(system_roots().iter().cloned());
            Arc::new(roots)
        })
        .clone()
}

/// Largest `ca` file read ([`crate::pem::MAX_CA_FILE_BYTES`]).
pub const MAX_CA_FILE_BYTES: u64 = crate::pem::MAX_CA_FILE_BYTES;

impl TlsClient {
    /// The system roots plus every certificate in `ca_file` (PEM), read and parsed once for
    /// the life of `cache` (the loaded config), not on every run.
    pub(crate) fn new(ca_file: Option<&Path>, cache: &CaCache) -> Result<Self, ExecError> {
        let roots = match ca_file {
            None => system_store(),
            Some(path) => cache
                .0
                .get_or_init(|| read_ca_file(path).map(Arc::new))
                .clone()
                .map_err(|message| ExecError::LocalFile {
                    what: "CA file",
                    path: path.to_owned(),
                    message,
                })?,
        };
        if roots.is_empty() {
            return Err(ExecError::Internal(
                "no trusted root certificates: install the system's CA certificates or set `ca`"
                    .to_owned(),
            ));
        }
        Ok(Self {
            roots,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }
}

/// The system roots plus the certificates of the PEM file `path`, at most
/// [`MAX_CA_FILE_BYTES`] of it; `Err` says why not, for a `probe_error`.
fn read_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let certs = crate::pem::ca_certificates(path).map_err(|e| {
        if e.contains("larger than") {
            format!("{e}, e.g. `ca = \"vendor-ca.pem\"`")
        } else {
            e
        }
    })?;
    let mut roots = RootCertStore::clone(&system_store());
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    Ok(roots)
}

impl TlsClient {
    /// Runs a TLS handshake over `tcp` with SNI `server_name`, offering `alpn`, within `timeout`.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        server_name: &str,
        alpn: &[&[u8]],
        timeout: Duration,
    ) -> Result<(TlsStream<TcpStream>, Session), TlsFailure> {
        let mut facts = TlsFacts {
            server_name: server_name.to_owned(),
            ..TlsFacts::default()
        };
        let fail = |kind, message: String, facts, took| TlsFailure {
            kind,
            message,
            facts,
            took,
        };
        let name = match ServerName::try_from(server_name.to_owned()) {
            Ok(name) => name,
            Err(e) => {
                return Err(fail(
                    Some(FailureKind::TlsHandshake),
                    format!("`{server_name}` cannot be sent as a TLS server name: {e}"),
                    facts,
                    None,
                ));
            }
        };
        let inner =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()
                .map_err(|e| {
                    fail(
                        Some(FailureKind::ProbeInternal),
                        format!("cannot build the certificate verifier: {e}"),
                        facts.clone(),
                        None,
                    )
                })?;
        let verifier = Arc::new(Capturing {
            inner,
            seen: Mutex::default(),
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                fail(
                    Some(FailureKind::ProbeInternal),
                    format!("cannot build the TLS client: {e}"),
                    facts.clone(),
                    None,
                )
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let mut config = config;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = TlsConnector::from(Arc::new(config));
        let start = Instant::now();
        let result = tokio::time::timeout(timeout, connector.connect(name, tcp)).await;
        let took = start.elapsed();
        let (leaf, verify_error) = verifier.take();
        let not_after = leaf.as_ref().and_then(|der| describe_leaf(der, &mut facts));
        match result {
            Ok(Ok(stream)) => {
                let (_, conn) = stream.get_ref();
                facts.protocol = conn.protocol_version().map(|v| format!("{v:?}"));
                facts.cipher = conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()));
                facts.alpn = conn
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned());
                Ok((
                    stream,
                    Session {
                        facts,
                        not_after,
                        took,
                    },
                ))
            }
            Ok(Err(io)) => {
                // The verifier's own error is the precise one; the stream's may be an alert.
                let tls_error = verify_error.or_else(|| {
                    io.get_ref()
                        .and_then(|e| e.downcast_ref::<rustls::Error>())
                        .cloned()
                });
                let (kind, message) = match &tls_error {
                    Some(err) => classify(err, server_name),
                    None => (
                        Some(FailureKind::TlsHandshake),
                        format!("TLS handshake with `{server_name}` failed: {io}"),
                    ),
                };
                Err(fail(kind, message, facts, Some(took)))
            }
            Err(_) => Err(fail(
                Some(FailureKind::Timeout),
                format!("the TLS handshake with `{server_name}` took longer than {timeout:?}"),
                facts,
                Some(took),
            )),
        }
    }
}

/// Maps a rustls error to a failure kind (`None`: this probe cannot test the server).
fn classify(err: &rustls::Error, server_name: &str) -> (Option<FailureKind>, String) {
    use CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(cert) => {
            let kind = match cert {
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => FailureKind::CertExpired,
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    FailureKind::CertNameMismatch
                }
                _ => FailureKind::CertUntrusted,
            };
            (
                Some(kind),
                format!("the certificate for `{server_name}` is invalid: {err}"),
            )
        }
        rustls::Error::PeerIncompatible(_)
        | rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion
            | AlertDescription::InsufficientSecurity
            | AlertDescription::HandshakeFailure,
        ) => (
            None,
            format!(
                "`{server_name}` offers no TLS version or cipher suite this probe accepts (TLS 1.2+ with AEAD ciphers): {err}"
            ),
        ),
        _ => (
            Some(FailureKind::TlsHandshake),
            format!("TLS handshake with `{server_name}` failed: {err}"),
        ),
    }
}

/// Fills the certificate part of `facts` from the leaf; returns its notAfter.
fn describe_leaf(der: &CertificateDer<'_>, facts: &mut TlsFacts) -> Option<OffsetDateTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    facts.subject = Some(cert.subject().to_string());
    facts.issuer = Some(cert.issuer().to_string());
    let not_after = cert.validity().not_after.to_datetime();
    facts.not_after = not_after.format(&Rfc3339).ok();
    let secs = (not_after - OffsetDateTime::now_utc()).whole_seconds();
    // Floor, so a certificate that expired an hour ago has -1 days left, not 0.
    facts.days_left = Some(secs.div_euclid(86_400));
    Some(not_after)
}

/// What the verifier saw during one handshake.
#[derive(Debug, Default)]
struct Seen {
    leaf: Option<CertificateDer<'static>>,
    error: Option<rustls::Error>,
}

/// The webpki verifier, keeping the leaf certificate and the verification error.
#[derive(Debug)]
struct Capturing {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Seen>,
}

impl Capturing {
    fn take(&self) -> (Option<CertificateDer<'static>>, Option<rustls::Error>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        (seen.leaf.take(), seen.error.take())
    }
}

impl ServerCertVerifier for Capturing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.leaf = Some(end_entity.clone().into_owned());
        seen.error = result.as_ref().err().cloned();
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_map_to_failure_kinds() {
        use CertificateError as C;
        let table: Vec<(rustls::Error, Option<FailureKind>)> = vec![
            (C::Expired.into(), Some(FailureKind::CertExpired)),
            (C::NotValidYet.into(), Some(FailureKind::CertExpired)),
            (
                C::ExpiredContext {
                    time: UnixTime::since_unix_epoch(Duration::from_secs(10)),
                    not_after: UnixTime::since_unix_epoch(Duration::from_secs(5)),
                }
                .into(),
                Some(FailureKind::CertExpired),
            ),
            (
                C::NotValidForName.into(),
                Some(FailureKind::CertNameMismatch),
            ),
            (C::UnknownIssuer.into(), Some(FailureKind::CertUntrusted)),
            (C::BadSignature.into(), Some(FailureKind::CertUntrusted)),
            (
                rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
                None,
            ),
            (
                rustls::Error::PeerIncompatible(
                    rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13,
                ),
                None,
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::InternalError),
                Some(FailureKind::TlsHandshake),
            ),
        ];
        for (err, want) in table {
            assert_eq!(classify(&err, "example.com").0, want, "{err:?}");
        }
    }

    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("self-signed").pem()
    }

    fn tls_check(ca: &Path) -> TlsCheck {
        let text = format!(
            "[[vendor]]\nid = \"v\"\n[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"tls\"\n\
             target = \"127.0.0.1:443\"\nca = {:?}\n",
            ca.display().to_string()
        );
        let set = crate::config::parse_str(&text).expect("valid check");
        match set.checks.into_iter().next().map(|c| c.spec) {
            Some(crate::model::CheckSpec::Tls(t)) => *t,
            other => panic!("expected a tls check, got {other:?}"),
        }
    }

    /// Issue 12, item 11: the `ca` file is read on the first run of a loaded config and never
    /// again (here it is gone by the second run, of a clone too); a newly loaded config reads
    /// it anew.
    #[test]
    fn r12_a_ca_file_is_read_once_per_config_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca_pem()).expect("write");
        let check = tls_check(&path);
        let first = TlsClient::new(check.ca_file.as_deref(), &check.ca_cache).expect("read");
        std::fs::remove_file(&path).expect("rm");
        for run in [check.clone(), check.clone()] {
            let again = TlsClient::new(run.ca_file.as_deref(), &run.ca_cache)
                .expect("a later run does not read the file");
            assert!(Arc::ptr_eq(&first.roots, &again.roots));
        }
        let reloaded = tls_check(&path);
        let err = TlsClient::new(reloaded.ca_file.as_deref(), &reloaded.ca_cache)
            .expect_err("a new config reads the file again, and it is gone");
        assert!(matches!(err, ExecError::LocalFile { .. }), "{err:?}");
    }

    /// Issue 12, item 11: a `ca` file past 1 MiB is refused with a message saying so (and
    /// only 1 MiB + 1 byte of it is read).
    #[test]
    fn r12_a_ca_file_past_1_mib_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("huge.pem");
        let mut pem = ca_pem();
        while pem.len() as u64 <= MAX_CA_FILE_BYTES {
            pem.push_str(&ca_pem());
        }
        std::fs::write(&path, &pem).expect("write");
        let check = tls_check(&path);
        let err = TlsClient::new(check.ca_file.as_deref(), &check.ca_cache).expect_err("too large");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read CA file `{}`: it is larger than 1048576 bytes (1 MiB), the most a \
                 CA file may be; name a PEM file of only the CA certificates to trust, e.g. \
                 `ca = \"vendor-ca.pem\"`",
                path.display()
            )
        );
        // Just under the cap is fine.
        let small = dir.path().join("small.pem");
        std::fs::write(&small, ca_pem()).expect("write");
        let check = tls_check(&small);
        TlsClient::new(check.ca_file.as_deref(), &check.ca_cache).expect("a small file is read");
    }

    /// A config's checks that name the same `ca` file share one read of it, done at load.
    #[test]
    fn r12_loading_a_config_reads_each_ca_file_once_for_all_its_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca_pem()).expect("write");
        let check = |id: &str, target: &str| {
            format!(
                "[[check]]\nid = \"{id}\"\nvendor = \"v\"\nkind = \"tls\"\ntarget = \"{target}\"\n\
                 ca = {:?}\n",
                path.display().to_string()
            )
        };
        let text = format!(
            "[[vendor]]\nid = \"v\"\n{}{}[[check]]\nid = \"gone\"\nvendor = \"v\"\nkind = \"tls\"\n\
             target = \"127.0.0.1:443\"\nca = \"/nonexistent/vantage-ca.pem\"\n",
            check("a", "127.0.0.1:443"),
            check("b", "127.0.0.2:443")
        );
        let mut checks = crate::config::parse_str(&text).expect("valid").checks;
        let failed = crate::exec::load_ca_files(&mut checks);
        let ids: Vec<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["gone"]);
        std::fs::remove_file(&path).expect("rm");
        let roots: Vec<Arc<RootCertStore>> = checks[..2]
            .iter()
            .map(|c| match &c.spec {
                crate::model::CheckSpec::Tls(t) => {
                    TlsClient::new(t.ca_file.as_deref(), &t.ca_cache)
                        .expect("read at load")
                        .roots
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(Arc::ptr_eq(&roots[0], &roots[1]), "one read, shared");
    }

    #[test]
    fn missing_ca_file_is_a_local_file_error() {
        let err = TlsClient::new(
            Some(Path::new("/nonexistent/vantage-ca.pem")),
            &CaCache::default(),
        )
        .expect_err("a missing CA file must be an error");
        assert!(matches!(err, ExecError::LocalFile { .. }), "{err:?}");
    }
}
