//! PEM CA files, read the same way everywhere: a check's `ca`, the probe's `ca_file` for its
//! coordinator, and the coordinator's `[tls] client_ca`. At most [`MAX_CA_FILE_BYTES`] of a
//! file is read, so a wrong path (a log, a device) is refused before it is read whole.

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
}
