//! TLS settings shared by the gateway's own outgoing calls.

use std::sync::{Arc, OnceLock};

/// Client TLS: TLS 1.2/1.3 with aws-lc-rs, trusting the system's roots (and a bundle
/// named by `SSL_CERT_FILE`, as OpenSSL does) plus Mozilla's roots.
pub fn client_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("aws-lc-rs supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(config)
        })
        .as_ref()
        .clone()
}
