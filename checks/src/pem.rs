//! PEM CA files, read the same way everywhere: a check's `ca`, the probe's `ca_file` for its
//! coordinator, the coordinator's `[tls] client_ca` and its store's `sslrootcert`. At most
//! [`MAX_CA_FILE_BYTES`] of a file is read, so a wrong path (a log, a device) is refused
//! before it is read whole.

use std::path::Path;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Largest CA file read: a CA bundle is a few kilobytes per certificate, so this is room for
/// hundreds.
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// Every certificate of the PEM file `path`; `Err` says why there is none to use, without the
/// path (the caller names it).
pub fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!(
            "it is larger than {MAX_CA_FILE_BYTES} bytes (1 MiB), the most a CA file may be; \
             name a PEM file of only the CA certificates to trust"
        ));
    }
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate list: {e}"))?;
    if certs.is_empty() {
        return Err("holds no `-----BEGIN CERTIFICATE-----` block".to_owned());
    }
    Ok(certs)
}

/// Why a PEM CA file gives no roots to trust. Neither variant names the file: the caller does,
/// in its own words.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// The file cannot be read, is too large, or is not a PEM list of certificates (the
    /// message of [`ca_certificates`]).
    #[error("{0}")]
    Read(String),
    /// The file holds certificates, but rustls takes none of them as a trust anchor.
    #[error("it holds no usable CA certificate")]
    NoUsableCertificate,
}

/// The roots to trust from the PEM CA file `path`: every certificate of it that rustls can
/// use as a trust anchor (the others are skipped, as the TLS clients and servers built on it
/// have always done). `Err` when the file cannot be read or none of it is usable.
pub fn root_store(path: &Path) -> Result<rustls::RootCertStore, CaFileError> {
    let certs = ca_certificates(path).map_err(CaFileError::Read)?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(CaFileError::NoUsableCertificate);
    }
    Ok(roots)
}

/// The system's trust anchors (rustls-native-certs): what a TLS client trusts when it is given
/// no CA file. Certificates of the system store that rustls cannot use are skipped.
pub fn native_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// The roots of the CA file `ca_file` when one is given ([`root_store`]), the system's
/// otherwise ([`native_roots`]).
pub fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, CaFileError> {
    ca_file.map_or_else(|| Ok(native_roots()), root_store)
}

/// A TLS client's config trusting `roots`: on ring, with rustls' safe default protocol
/// versions (TLS 1.2 and 1.3), as every client Vantage builds; the caller adds its client
/// certificate, if any.
pub fn client_config(
    roots: rustls::RootCertStore,
) -> Result<
    rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    rustls::Error,
> {
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots),
    )
}

/// A certificate chain (`cert`, leaf first) and its private key (`key`), both PEM: a TLS
/// server's, or a client's for mutual TLS. `Err` names the file that is wrong and why.
pub fn identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from `{}`: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no PEM certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from `{}`: {e}", key.display()))?;
    Ok((certs, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_ca_file_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases: [(&str, Vec<u8>, &str); 3] = [
            (
                "empty.pem",
                Vec::new(),
                "no `-----BEGIN CERTIFICATE-----` block",
            ),
            (
                "big.pem",
                vec![b'x'; MAX_CA_FILE_BYTES as usize + 10],
                "larger than 1048576 bytes",
            ),
            (
                "broken.pem",
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".to_vec(),
                "not a PEM certificate list",
            ),
        ];
        for (name, bytes, want) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let err = ca_certificates(&path).expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
        let missing = ca_certificates(&dir.path().join("missing.pem")).expect_err("missing");
        assert!(missing.contains("No such file"), "{missing}");
    }

    fn self_signed_ca() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("self-signed").pem()
    }

    #[test]
    fn root_store_takes_the_usable_certificates_and_says_why_there_are_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };

        // A good file: its CA, and a certificate rustls cannot parse beside it is skipped.
        let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let good = write("good.pem", &format!("{}{junk}", self_signed_ca()));
        assert_eq!(root_store(&good).expect("a good CA file").len(), 1);

        // No certificate at all: a key, not a CA.
        let key = write(
            "key.pem",
            &rcgen::KeyPair::generate().expect("key").serialize_pem(),
        );
        match root_store(&key) {
            Err(CaFileError::Read(e)) => assert!(e.contains("no `-----BEGIN CERTIFICATE"), "{e}"),
            other => panic!("a key file: {other:?}"),
        }

        // Certificate blocks, none of them a certificate rustls can use.
        let unusable = write("unusable.pem", junk);
        match root_store(&unusable) {
            Err(e @ CaFileError::NoUsableCertificate) => {
                assert_eq!(e.to_string(), "it holds no usable CA certificate");
            }
            other => panic!("an unusable certificate: {other:?}"),
        }

        // A missing file.
        match root_store(&dir.path().join("missing.pem")) {
            Err(CaFileError::Read(e)) => assert!(e.contains("No such file"), "{e}"),
            other => panic!("a missing file: {other:?}"),
        }
    }
}
