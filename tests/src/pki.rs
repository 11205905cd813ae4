//! A throwaway test CA (rcgen) and server certificates for it, written as PEM files into a
//! temporary directory: valid ones, an expired one, one about to expire, one for another name,
//! one that no CA vouches for, and client certificates for mutual TLS.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, as PEM files.
#[derive(Clone, Debug)]
pub struct ServerCert {
    /// The leaf certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
}

/// A test certificate authority whose files live as long as it does.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A new CA named "Vantage Test CA", its certificate written to [`TestCa::ca_file`].
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vantage-pki-")
            .tempdir()
            .expect("create a temporary directory for the test CA");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Vantage Test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(400);
        params.not_after = now + Duration::days(400);
        let key = KeyPair::generate().expect("generate the CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign the CA");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("write ca.pem");
        Self { dir, issuer }
    }

    /// The CA certificate (PEM), for a check's `ca`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A certificate for `names`, valid from yesterday for 90 days.
    pub fn server(&self, label: &str, names: &[&str]) -> ServerCert {
        let now = OffsetDateTime::now_utc();
        self.issue(
            label,
            names,
            now - Duration::days(1),
            now + Duration::days(90),
        )
    }

    /// A certificate for `names` that expired yesterday.
    pub fn expired(&self, label: &str, names: &[&str]) -> ServerCert {
        let now = OffsetDateTime::now_utc();
        self.issue(
            label,
            names,
            now - Duration::days(60),
            now - Duration::days(1),
        )
    }

    /// A valid certificate for `names` that expires `days` days from now.
    pub fn expiring_in(&self, label: &str, names: &[&str], days: i64) -> ServerCert {
        let now = OffsetDateTime::now_utc();
        self.issue(
            label,
            names,
            now - Duration::days(1),
            now + Duration::days(days),
        )
    }

    /// A certificate signed by the CA for `names`, valid from `not_before` to `not_after`.
    pub fn issue(
        &self,
        label: &str,
        names: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> ServerCert {
        let params = leaf_params(names, not_before, not_after);
        let key = KeyPair::generate().expect("generate a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the server certificate");
        self.write(label, &cert.pem(), &key.serialize_pem())
    }

    /// A client certificate (mutual TLS) named `name`, valid from yesterday for 90 days.
    pub fn client(&self, label: &str, name: &str) -> ServerCert {
        let now = OffsetDateTime::now_utc();
        let mut params = leaf_params(&[name], now - Duration::days(1), now + Duration::days(90));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("generate a client key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the client certificate");
        self.write(label, &cert.pem(), &key.serialize_pem())
    }

    /// A self-signed certificate for `names`, which no CA vouches for.
    pub fn self_signed(&self, label: &str, names: &[&str]) -> ServerCert {
        let now = OffsetDateTime::now_utc();
        let params = leaf_params(names, now - Duration::days(1), now + Duration::days(90));
        let key = KeyPair::generate().expect("generate a server key");
        let cert = params.self_signed(&key).expect("self-sign the certificate");
        self.write(label, &cert.pem(), &key.serialize_pem())
    }

    fn write(&self, label: &str, cert: &str, key: &str) -> ServerCert {
        let out = ServerCert {
            cert: self.dir.path().join(format!("{label}.crt")),
            key: self.dir.path().join(format!("{label}.key")),
        };
        std::fs::write(&out.cert, cert).expect("write the certificate");
        std::fs::write(&out.key, key).expect("write the key");
        out
    }
}

fn leaf_params(
    names: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("valid server names");
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = not_before;
    params.not_after = not_after;
    params
}
