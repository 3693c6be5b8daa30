//! HTTPS for the load generator, with monoio-rustls (the generator never shares TLS code with
//! the gateway it measures): a connector that verifies against a CA file, or, for benchmarks
//! against test certificates, accepts any certificate; session resumption on or off. And the
//! certificate `compare` gives every proxy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How the generator's connections speak TLS.
#[derive(Clone)]
pub struct TlsPlan {
    /// The connector (shared by the threads: it holds the session cache).
    pub connector: monoio_rustls::TlsConnector,
    /// The name sent as SNI (and verified, with a CA).
    pub name: ServerName<'static>,
}

impl std::fmt::Debug for TlsPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPlan")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TlsPlan {
    /// A plan naming `host`: verified against the PEM CA bundle `ca`, or with no check at all
    /// when `ca` is `None`; sessions resumed when `resume`.
    pub fn new(host: &str, ca: Option<&Path>, resume: bool) -> anyhow::Result<TlsPlan> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?;
        let mut config = match ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                let pem =
                    std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
                for cert in rustls_pemfile_certs(&pem)? {
                    roots.add(cert).context("a CA certificate")?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                    provider
                        .signature_verification_algorithms
                        .supported_schemes(),
                )))
                .with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        let name = ServerName::try_from(host.to_string()).context("TLS server name")?;
        Ok(TlsPlan {
            connector: monoio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// The files of the certificate every proxy serves in a TLS scenario.
#[derive(Debug, Clone)]
pub struct BenchCert {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
    /// Both in one file (HAProxy's `crt`).
    pub combined: PathBuf,
}

impl BenchCert {
    /// A fresh self-signed ECDSA P-256 certificate for `localhost`, written into `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<BenchCert> {
        let key = rcgen::KeyPair::generate().context("generate a key")?;
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .context("certificate parameters")?;
        let cert = params.self_signed(&key).context("sign the certificate")?;
        let files = BenchCert {
            cert: dir.join("bench-cert.pem"),
            key: dir.join("bench-key.pem"),
            combined: dir.join("bench-combined.pem"),
        };
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        for (path, text) in [
            (&files.cert, cert_pem.clone()),
            (&files.key, key_pem.clone()),
            (&files.combined, format!("{cert_pem}{key_pem}")),
        ] {
            std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
        }
        Ok(files)
    }
}

fn rustls_pemfile_certs(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .context("not PEM certificates")
}

/// Accepts every certificate (benchmarks against test certificates; never for anything else).
#[derive(Debug)]
struct AnyCertificate(Vec<SignatureScheme>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}
