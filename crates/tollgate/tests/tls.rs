//! TLS through the binary with a real client (curl): certificates chosen by SNI and
//! swapped without a restart, HTTP/2 by ALPN, redirect and HSTS, client certificates
//! (`mtls`), and HTTPS to upstreams with verification and a client certificate.

mod common;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// A test certificate authority.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its key, PEM.
struct Issued {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn server(&self, names: &[&str]) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn client(&self, cn: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// YAML for a multi-line PEM value, as a double-quoted scalar.
fn q(pem: &str) -> String {
    serde_json::to_string(pem).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// curl's answer: (exit code, status code, HTTP version, headers and body).
fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    (
        out.status.code().unwrap_or(-1),
        tail.to_string(),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

async fn tls_node(yaml: String, data: Option<&Path>) -> (Node, SocketAddr) {
    let tls = tollgate_testkit::free_addr().unwrap();
    let mut opts = NodeOptions::new()
        .config(yaml)
        .arg("--proxy-tls-listen")
        .arg(tls.to_string());
    if let Some(d) = data {
        opts = opts.data_dir(d);
    }
    (start_with(opts).await, tls)
}

#[tokio::test]
async fn sni_selection_certificate_swap_http2_redirect_and_hsts() {
    let svc = MockUpstream::start("svc").await;
    let ca = Ca::new("Test CA one");
    let a = ca.server(&["a.test"]);
    let b = ca.server(&["*.b.test"]);
    let certs = |a: &Issued| {
        format!(
            "certificates:\n  - name: a\n    snis: [a.test]\n    cert: {}\n    key: {}\n  - name: b\n    snis: [\"*.b.test\"]\n    cert: {}\n    key: {}\n",
            q(&a.cert),
            q(&a.key),
            q(&b.cert),
            q(&b.key)
        )
    };
    let base = config(
        &[upstream("svc", &[svc.url()], "")],
        &[api("x", "svc", &["{ path: /x }"])],
    );
    let settings = "settings:\n  tls: { redirect_http: true, hsts: \"max-age=31536000; includeSubDomains\" }\n";
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (node, tls) = tls_node(format!("{base}{}{settings}", certs(&a)), Some(data.path())).await;
    let port = tls.port();
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let resolve = |host: &str| format!("{host}:{port}:127.0.0.1");

    // Each name gets its certificate (curl checks the name against it).
    for host in ["a.test", "api.b.test"] {
        let (code, status, out) = curl(&[
            "--cacert",
            &ca_file,
            "--resolve",
            &resolve(host),
            "-i",
            &format!("https://{host}:{port}/x"),
        ]);
        assert_eq!(code, 0, "{host}: {out}");
        assert!(
            status.starts_with("200 2"),
            "{host}: HTTP/2 by ALPN: {status}"
        );
        assert!(
            out.to_ascii_lowercase()
                .contains("strict-transport-security: max-age=31536000; includesubdomains"),
            "{out}"
        );
        assert!(out.contains("\"x-forwarded-proto\":\"https\""), "{out}");
    }
    let (code, status, _) = curl(&[
        "--http1.1",
        "--cacert",
        &ca_file,
        "--resolve",
        &resolve("a.test"),
        &format!("https://a.test:{port}/x"),
    ]);
    assert_eq!((code, status.as_str()), (0, "200 1.1"));
    // No certificate for the name: the handshake fails.
    let (code, _, _) = curl(&[
        "--cacert",
        &ca_file,
        "--resolve",
        &resolve("c.test"),
        &format!("https://c.test:{port}/x"),
    ]);
    assert_ne!(code, 0);
    // TLS 1.0/1.1 are refused.
    let (code, _, _) = curl(&[
        "--tlsv1.1",
        "--tls-max",
        "1.1",
        "--cacert",
        &ca_file,
        "--resolve",
        &resolve("a.test"),
        &format!("https://a.test:{port}/x"),
    ]);
    assert_ne!(code, 0);

    // Plain HTTP is redirected to HTTPS.
    let (code, status, out) = curl(&["-i", "-H", "host: a.test", &node.proxy_url("/x?y=1")]);
    assert_eq!(code, 0);
    assert!(status.starts_with("308"), "{status}");
    assert!(
        out.contains(&format!("location: https://a.test:{port}/x?y=1")),
        "{out}"
    );

    // A new certificate from another CA, applied through the admin API, is served
    // without a restart.
    let ca2 = Ca::new("Test CA two");
    let a2 = ca2.server(&["a.test"]);
    let r = node
        .admin_request(
            "PUT",
            "/api/config",
            &[],
            format!("{base}{}{settings}", certs(&a2)),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let ca2_file = write(dir.path(), "ca2.pem", &ca2.pem);
    let (code, _, out) = curl(&[
        "--cacert",
        &ca2_file,
        "--resolve",
        &resolve("a.test"),
        &format!("https://a.test:{port}/x"),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = curl(&[
        "--cacert",
        &ca_file,
        "--resolve",
        &resolve("a.test"),
        &format!("https://a.test:{port}/x"),
    ]);
    assert_ne!(code, 0, "the old certificate is gone");

    // Private keys are sealed in the store.
    let key_body: String = a2.key.lines().nth(1).unwrap().to_string();
    for f in ["tollgate.db", "tollgate.db-wal"] {
        let bytes = std::fs::read(data.path().join(f)).unwrap_or_default();
        assert!(
            !bytes
                .windows(key_body.len())
                .any(|w| w == key_body.as_bytes()),
            "key found in {f}"
        );
    }
    let export = node.admin_get("/api/config").await.unwrap().text();
    assert!(!export.contains("PRIVATE KEY"), "{export}");
    // The certificate collection shows names and validity, never keys.
    let listed = node.admin_get("/api/certificates").await.unwrap();
    assert_eq!(listed.status, 200);
    let body = listed.json();
    let a = body["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "a")
        .unwrap()
        .clone();
    assert_eq!(a["info"]["dns_names"][0], "a.test");
    assert!(
        a["info"]["not_after"]
            .as_str()
            .unwrap()
            .starts_with("4096-01-01")
    );
    assert!(!listed.text().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn client_certificates_identify_apps() {
    let svc = MockUpstream::start("svc").await;
    let ca = Ca::new("Devices CA");
    let server = ca.server(&["api.test"]);
    let device = ca.client("acme-device-17");
    let stranger = Ca::new("Other CA").client("acme-device-17");
    let yaml = format!(
        "{}developers:\n  - email: dev@acme.test\napps:\n  - name: acme-device\n    owner: dev@acme.test\n    certificates: [\"cn:acme-device-17\"]\ncertificates:\n  - name: api\n    snis: [api.test]\n    cert: {}\n    key: {}\nsettings:\n  tls:\n    client_ca: {}\n",
        config(
            &[upstream("svc", &[svc.url()], "")],
            &[api(
                "x",
                "svc",
                &["{ path: /x, policies: [{ mtls: {} }] }", "{ path: /open }"]
            )]
        ),
        q(&server.cert),
        q(&server.key),
        q(&ca.pem)
    );
    let (_node, tls) = tls_node(yaml, None).await;
    let port = tls.port();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let cert = write(dir.path(), "device.pem", &device.cert);
    let key = write(dir.path(), "device.key", &device.key);
    let resolve = format!("api.test:{port}:127.0.0.1");
    let url = |p: &str| format!("https://api.test:{port}{p}");

    let (code, status, out) = curl(&[
        "--cacert",
        &ca_file,
        "--resolve",
        &resolve,
        "--cert",
        &cert,
        "--key",
        &key,
        &url("/x"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(status.starts_with("200"), "{status} {out}");
    assert!(out.contains("\"x-tollgate-app\":\"acme-device\""), "{out}");
    // Without a certificate: 401 on the protected route, the open one still answers.
    let (_, status, _) = curl(&["--cacert", &ca_file, "--resolve", &resolve, &url("/x")]);
    assert!(status.starts_with("401"), "{status}");
    let (_, status, _) = curl(&["--cacert", &ca_file, "--resolve", &resolve, &url("/open")]);
    assert!(status.starts_with("200"), "{status}");
    // A certificate from another CA never gets past the handshake.
    let cert2 = write(dir.path(), "stranger.pem", &stranger.cert);
    let key2 = write(dir.path(), "stranger.key", &stranger.key);
    let (code, status, _) = curl(&[
        "--cacert",
        &ca_file,
        "--resolve",
        &resolve,
        "--cert",
        &cert2,
        "--key",
        &key2,
        &url("/x"),
    ]);
    assert!(code != 0 || !status.starts_with("200"), "{code} {status}");
}

#[tokio::test]
async fn https_to_upstreams_verifies_the_service_and_presents_a_client_certificate() {
    let svc = MockUpstream::start("svc").await;
    let ca = Ca::new("Internal CA");
    let inner_cert = ca.server(&["orders.internal"]);
    let gateway_cert = ca.client("edge-gateway");
    // The service side: a Tollgate node terminating TLS and requiring a client certificate.
    let inner_yaml = format!(
        "{}developers:\n  - email: ops@acme.test\napps:\n  - name: edge\n    owner: ops@acme.test\n    certificates: [\"cn:edge-gateway\"]\ncertificates:\n  - name: orders\n    cert: {}\n    key: {}\nsettings:\n  tls:\n    client_ca: {}\n",
        config(
            &[upstream("svc", &[svc.url()], "")],
            &[api(
                "orders",
                "svc",
                &["{ path: /orders, policies: [{ mtls: {} }] }"]
            )]
        ),
        q(&inner_cert.cert),
        q(&inner_cert.key),
        q(&ca.pem)
    );
    let (_inner, inner_tls) = tls_node(inner_yaml, None).await;

    let edge_yaml = |tls: &str| {
        format!(
            "format_version: 1\nupstreams:\n  - name: orders\n    targets: [{{ url: \"https://{inner_tls}\" }}]\n    tls:\n{tls}\napis:\n{}",
            api("orders", "orders", &["{ path: /orders }"])
        )
    };
    let good = format!(
        "      ca: {}\n      server_name: orders.internal\n      client_cert: {}\n      client_key: {}\n",
        q(&ca.pem),
        q(&gateway_cert.cert),
        q(&gateway_cert.key)
    );
    let edge = start(&edge_yaml(&good)).await;
    let r = Client::new().get(&edge.proxy_url("/orders")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["headers"]["x-tollgate-app"],
        "edge",
        "the service saw the client certificate"
    );

    // Wrong CA: the service's certificate does not verify, 502.
    let other = Ca::new("Someone else");
    let wrong = format!(
        "      ca: {}\n      server_name: orders.internal\n      client_cert: {}\n      client_key: {}\n",
        q(&other.pem),
        q(&gateway_cert.cert),
        q(&gateway_cert.key)
    );
    let r = edge
        .admin_request("PUT", "/api/config", &[], edge_yaml(&wrong))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = Client::new().get(&edge.proxy_url("/orders")).await.unwrap();
    assert_eq!(r.status, 502, "{}", r.text());
    // Right CA, no client certificate: the service refuses with 401.
    let anonymous = format!(
        "      ca: {}\n      server_name: orders.internal\n",
        q(&ca.pem)
    );
    let r = edge
        .admin_request("PUT", "/api/config", &[], edge_yaml(&anonymous))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = Client::new().get(&edge.proxy_url("/orders")).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
}
