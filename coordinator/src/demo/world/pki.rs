//! A throwaway CA, made at every start, and the vendor API's certificate signed by it.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use super::WorldError;

/// The CA (to trust) and a TLS acceptor presenting the server certificate.
pub(super) struct Pki {
    /// The CA certificate, PEM.
    pub(super) ca_pem: String,
    /// Serves the certificate for the name given to [`generate`].
    pub(super) acceptor: tokio_rustls::TlsAcceptor,
}

/// A CA valid for a year and a certificate for `host` valid for 90 days, both from yesterday.
pub(super) fn generate(host: &str) -> Result<Pki, WorldError> {
    let err = |e: rcgen::Error| WorldError::Pki(e.to_string());
    let now = OffsetDateTime::now_utc();
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Vantage demo CA (throwaway)");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - Duration::days(1);
    ca.not_after = now + Duration::days(365);
    let issuer =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;

    let mut leaf = CertificateParams::new(vec![host.to_owned()]).map_err(err)?;
    leaf.distinguished_name.push(DnType::CommonName, host);
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - Duration::days(1);
    leaf.not_after = now + Duration::days(90);
    let key = KeyPair::generate().map_err(err)?;
    let cert = leaf.signed_by(&key, &issuer).map_err(err)?;

    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| WorldError::Pki(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| WorldError::Pki(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Pki {
        ca_pem: issuer.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    })
}
