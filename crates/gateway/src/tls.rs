//! TLS: termination with certificates chosen by SNI and swapped with the configuration,
//! client certificates for `mtls`, and TLS to upstreams and the gateway's own calls.
//! TLS 1.2 and 1.3 only, with aws-lc-rs.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};
use tollgate_model::{Certificate, Document, UpstreamTls};
use tollgate_secrets::Secrets;

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

/// Client TLS for the gateway's own calls: Mozilla's roots plus the system's (or, when
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` are set, those instead of the system's, as OpenSSL
/// does).
pub fn client_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let config = rustls::ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(VERSIONS)
                .expect("aws-lc-rs supports TLS 1.2 and 1.3")
                .with_root_certificates(system_roots())
                .with_no_client_auth();
            Arc::new(config)
        })
        .as_ref()
        .clone()
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let list = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: not a PEM certificate list ({e})"))?;
    if list.is_empty() {
        return Err(format!("{what}: no certificate in the PEM text"));
    }
    Ok(list)
}

fn open(value: &str, secrets: Option<&Secrets>, what: &str) -> Result<String, String> {
    if tollgate_secrets::is_sealed(value) {
        secrets
            .ok_or_else(|| format!("{what} is sealed and this node has no node secret"))?
            .open(value)
            .map_err(|e| format!("{what}: {e}"))
    } else {
        Ok(value.to_string())
    }
}

fn key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("{what}: not a PEM private key ({e})"))
}

/// Client TLS for one upstream: its CA (or the system's roots) and client certificate.
pub fn upstream_config(
    t: &UpstreamTls,
    secrets: Option<&Secrets>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    if t.ca.is_none() && t.client_cert.is_none() {
        return Ok(Arc::new(client_config()));
    }
    let roots = match &t.ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(pem, "tls.ca")? {
                roots.add(c).map_err(|e| format!("tls.ca: {e}"))?;
            }
            roots
        }
        None => system_roots(),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match (&t.client_cert, &t.client_key) {
        (Some(cert), Some(k)) => {
            let k = open(k, secrets, "tls.client_key")?;
            builder
                .with_client_auth_cert(certs(cert, "tls.client_cert")?, key(&k, "tls.client_key")?)
                .map_err(|e| format!("tls.client_cert: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The server certificates of one configuration, by SNI.
#[derive(Default)]
pub struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    /// Verifies client certificates when `settings.tls.client_ca` is set.
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for CertTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertTable")
            .field("exact", &self.exact.len())
            .field("wildcard", &self.wildcard.len())
            .finish()
    }
}

fn certified(c: &Certificate, secrets: Option<&Secrets>) -> Result<Arc<CertifiedKey>, String> {
    let what = format!("certificate `{}`", c.name);
    let chain = certs(&c.cert, &what)?;
    let pem = open(&c.key, secrets, &what)?;
    let key = provider()
        .key_provider
        .load_private_key(key(&pem, &what)?)
        .map_err(|e| format!("{what}: {e}"))?;
    let ck = CertifiedKey::new(chain, key);
    ck.keys_match()
        .map_err(|e| format!("{what}: the key does not belong to the certificate ({e})"))?;
    Ok(Arc::new(ck))
}

impl CertTable {
    pub fn compile(doc: &Document, secrets: Option<&Secrets>) -> Result<CertTable, String> {
        let mut table = CertTable::default();
        for c in &doc.certificates {
            let ck = certified(c, secrets)?;
            if c.snis.is_empty() {
                table.default = Some(ck.clone());
            }
            for sni in &c.snis {
                let sni = sni.to_ascii_lowercase();
                match sni.strip_prefix("*.") {
                    Some(domain) => table.wildcard.insert(domain.to_string(), ck.clone()),
                    None => table.exact.insert(sni, ck.clone()),
                };
            }
        }
        if table.default.is_none() && doc.certificates.len() == 1 {
            table.default = table
                .exact
                .values()
                .chain(table.wildcard.values())
                .next()
                .cloned();
        }
        if let Some(ca) = &doc.settings.tls.client_ca {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca, "settings.tls.client_ca")? {
                roots
                    .add(c)
                    .map_err(|e| format!("settings.tls.client_ca: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("settings.tls.client_ca: {e}"))?;
            table.client_verifier = Some(verifier);
        }
        Ok(table)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none()
    }

    fn find(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(c) = self.exact.get(&name) {
                return Some(c.clone());
            }
            if let Some((_, domain)) = name.split_once('.')
                && let Some(c) = self.wildcard.get(domain)
            {
                return Some(c.clone());
            }
        }
        self.default.clone()
    }
}

/// What the TLS listener reads at each handshake: always the current configuration's.
#[derive(Debug, Default)]
pub struct TlsState {
    table: ArcSwap<CertTable>,
}

impl TlsState {
    pub fn install(&self, table: CertTable) {
        self.table.store(Arc::new(table));
    }

    pub fn has_certificates(&self) -> bool {
        !self.table.load().is_empty()
    }
}

#[derive(Debug)]
struct Resolver(Arc<TlsState>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.table.load().find(hello.server_name())
    }
}

/// Delegates to the current configuration's client CA; offers client authentication
/// only when one is configured, and never requires it (routes with `mtls` do).
#[derive(Debug)]
struct ClientVerifier(Arc<TlsState>);

impl ClientVerifier {
    fn current(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        self.0.table.load().client_verifier.clone()
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.current().is_some()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.current() {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General(
                "client certificates are not accepted".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server configuration of the TLS listener: certificates by SNI from `state`,
/// HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(state: Arc<TlsState>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("aws-lc-rs supports TLS 1.2 and 1.3")
        .with_client_cert_verifier(Arc::new(ClientVerifier(state.clone())))
        .with_cert_resolver(Arc::new(Resolver(state)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
    Arc::new(config)
}

/// A verified client certificate, as `mtls` matches it.
#[derive(Clone, Debug)]
pub struct ClientCert {
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint: String,
    pub common_name: Option<String>,
}

impl ClientCert {
    pub fn from_der(der: &[u8]) -> ClientCert {
        ClientCert {
            fingerprint: hex_lower(&Sha256::digest(der)),
            common_name: common_name(der),
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The subject's common name, read with x509-parser.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
}

/// What the admin API shows of a certificate: its subject, names and validity, read from
/// the leaf of a PEM chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertificateInfo {
    pub subject: String,
    pub dns_names: Vec<String>,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// SHA-256 of the leaf, lower-case hex.
    pub fingerprint: String,
}

/// Reads the leaf certificate of a PEM chain.
pub fn certificate_info(pem: &str) -> Result<CertificateInfo, String> {
    let chain = certs(pem, "cert")?;
    let der = chain[0].as_ref();
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("cert: cannot read the certificate ({e})"))?;
    let when = |t: x509_parser::time::ASN1Time| {
        t.to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertificateInfo {
        subject: cert.subject().to_string(),
        dns_names,
        not_before: when(cert.validity().not_before),
        not_after: when(cert.validity().not_after),
        fingerprint: hex_lower(&Sha256::digest(der)),
    })
}
