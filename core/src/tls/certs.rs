//! Certificates for TLS: PEM files read and checked (readable, key matches, valid now, the
//! names they serve), and the SNI resolver that picks a listener's certificate by name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate chain with its key, and the DNS names it is for.
pub struct Loaded {
    /// Chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// Lower-cased DNS names from the leaf's subjectAltName (`*.` wildcards kept).
    pub names: Vec<String>,
}

/// Reads a PEM certificate chain (leaf first).
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect();
    let chain = chain.map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(chain)
}

/// Reads a PEM private key.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read {}: {e}", path.display()),
        e => format!("{}: no usable private key: {e}", path.display()),
    })
}

/// Reads a PEM CA bundle into trust anchors.
pub fn read_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_chain(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// Loads a certificate and key: the key must sign for the certificate, the leaf must be
/// valid at `now_unix`, and its names are read for SNI.
pub fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
    now_unix: i64,
) -> Result<Loaded, String> {
    let chain = read_chain(cert)?;
    let der = read_key(key)?;
    let signer = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| {
        format!(
            "{} does not belong to the certificate in {}",
            key.display(),
            cert.display()
        )
    })?;
    let leaf = certified
        .cert
        .first()
        .ok_or_else(|| format!("{}: no certificate in it", cert.display()))?;
    let names = check_leaf(leaf, now_unix).map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(Loaded {
        key: Arc::new(certified),
        names,
    })
}

/// The leaf's DNS names, after checking it is valid now.
fn check_leaf(der: &CertificateDer<'_>, now_unix: i64) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not a parsable X.509 certificate: {e}"))?;
    let validity = cert.validity();
    if validity.not_after.timestamp() < now_unix {
        return Err(format!("the certificate expired on {}", validity.not_after));
    }
    if validity.not_before.timestamp() > now_unix {
        return Err(format!(
            "the certificate is not valid before {}",
            validity.not_before
        ));
    }
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

/// Picks a certificate by the name a client sends (SNI): exact names first, then `*.`
/// wildcards one label deep, else the default (or none: the handshake is refused).
#[derive(Debug, Default)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Certificates in config order; the first is the default unless `refuse_unknown`.
    pub fn new(certs: &[Loaded], refuse_unknown: bool) -> SniResolver {
        let mut r = SniResolver::default();
        for c in certs {
            for name in &c.names {
                let map = match name.strip_prefix("*.") {
                    Some(suffix) => r.wildcard.entry(suffix.to_string()),
                    None => r.exact.entry(name.clone()),
                };
                // the first certificate naming a host serves it
                map.or_insert_with(|| c.key.clone());
            }
        }
        if !refuse_unknown {
            r.default = certs.first().map(|c| c.key.clone());
        }
        r
    }

    /// The certificate for `name` (`None`: a client without SNI).
    pub fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = name else {
            return self.default.clone();
        };
        // `example.com.` (absolute form) is the same host as `example.com`
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if let Some(c) = self.exact.get(&name) {
            return Some(c.clone());
        }
        let wild = name
            .split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent));
        wild.cloned().or_else(|| self.default.clone())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loaded certificate for `names`, made here.
    fn made(names: &[&str]) -> Result<Loaded, Box<dyn std::error::Error>> {
        let key = rcgen::KeyPair::generate()?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names.clone())?.self_signed(&key)?;
        let der = PrivateKeyDer::try_from(key.serialize_der())?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&der)?;
        Ok(Loaded {
            key: Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer)),
            names,
        })
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_the_default() -> Result<(), Box<dyn std::error::Error>> {
        let certs = [
            made(&["first.test"])?,
            made(&["api.test"])?,
            made(&["*.wild.test"])?,
        ];
        let is = |got: Option<Arc<CertifiedKey>>, want: usize| {
            got.zip(certs.get(want))
                .is_some_and(|(g, w)| Arc::ptr_eq(&g, &w.key))
        };
        let r = SniResolver::new(&certs, false);
        for (name, want) in [
            (Some("api.test"), 1),
            (Some("API.Test"), 1),
            (Some("api.test."), 1),
            (Some("x.wild.test"), 2),
            (Some("X.WILD.test."), 2),
            (Some("a.b.wild.test"), 0),
            (Some("wild.test"), 0),
            (Some("other.test"), 0),
            (None, 0),
        ] {
            assert!(is(r.pick(name), want), "{name:?} → certificate {want}");
        }
        let refusing = SniResolver::new(&certs, true);
        assert!(refusing.pick(Some("other.test")).is_none());
        assert!(refusing.pick(None).is_none());
        assert!(is(refusing.pick(Some("api.test.")), 1));
        Ok(())
    }
}
