//! A verified client certificate as stages see it: the subject as an RFC 4514 string (values
//! escaped, so no value can pose as another attribute, and nothing in it can break a header),
//! the subject alternative names each marked with its type (`DNS:`, `URI:`, `email:`, `IP:`),
//! and the SHA-256 fingerprint.

use std::fmt::Write;

use policy::ClientCert;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

/// The stages' view of the leaf certificate `der` (`None`: not parsable, which a verified
/// certificate always is).
pub fn client_cert(der: &[u8]) -> Option<ClientCert> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            let typed = match n {
                GeneralName::DNSName(s) => format!("DNS:{}", s.to_ascii_lowercase()),
                GeneralName::URI(s) => format!("URI:{s}"),
                GeneralName::RFC822Name(s) => format!("email:{s}"),
                GeneralName::IPAddress(b) => match ip(b) {
                    Some(a) => format!("IP:{a}"),
                    None => continue,
                },
                _ => continue,
            };
            // a SAN is an IA5String; still, nothing that cannot travel in a header
            if typed.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                sans.push(Box::from(typed));
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(hex, "{b:02x}");
    }
    Some(ClientCert {
        subject: Box::from(rfc4514(cert.subject())),
        sans: sans.into_boxed_slice(),
        sha256: Box::from(hex),
    })
}

fn ip(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// `name` as RFC 4514 writes it: the last RDN first, `,` between RDNs, `+` within one, known
/// attribute types by their short names (others as dotted OIDs), string values escaped,
/// others as `#` and hex.
fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type();
            match x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry()) {
                Ok(short) => out.push_str(short),
                Err(_) => out.push_str(&oid.to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(value) => escape(value, &mut out),
                Err(_) => {
                    out.push('#');
                    for b in attr.attr_value().data.iter() {
                        let _ = write!(out, "{b:02x}");
                    }
                }
            }
        }
    }
    out
}

/// Appends `value` escaped (RFC 4514 §2.4), control bytes as `\XX` too.
fn escape(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if c.is_ascii_control() {
            let _ = write!(out, "\\{:02X}", c as u32);
        } else if special {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject_of(
        params: rcgen::CertificateParams,
    ) -> Result<ClientCert, Box<dyn std::error::Error>> {
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        client_cert(cert.der()).ok_or_else(|| "not parsed".into())
    }

    #[test]
    fn subjects_are_escaped_and_sans_typed() -> Result<(), Box<dyn std::error::Error>> {
        use rcgen::{DnType, SanType};
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        // the RDNs in the certificate: O, then CN; RFC 4514 writes the last first
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "Example");
        p.distinguished_name
            .push(DnType::CommonName, "alice, O=Admins+x\n");
        p.subject_alt_names = vec![
            SanType::DnsName("Svc.Internal".try_into()?),
            SanType::URI("spiffe://example/ns/a".try_into()?),
            SanType::Rfc822Name("alice@example.com".try_into()?),
            SanType::IpAddress("10.0.0.7".parse()?),
        ];
        let c = subject_of(p)?;
        assert_eq!(&*c.subject, "CN=alice\\, O=Admins\\+x\\0A,O=Example");
        let sans: Vec<&str> = c.sans.iter().map(|s| &**s).collect();
        assert_eq!(
            sans,
            [
                "DNS:svc.internal",
                "URI:spiffe://example/ns/a",
                "email:alice@example.com",
                "IP:10.0.0.7"
            ]
        );
        assert_eq!(c.sha256.len(), 64);
        Ok(())
    }

    #[test]
    fn rfc4514_escapes_what_it_must() {
        for (value, want) in [
            ("plain", "plain"),
            (" lead", "\\ lead"),
            ("#lead", "\\#lead"),
            ("trail ", "trail\\ "),
            ("a\"b;c<d>e\\f", "a\\\"b\\;c\\<d\\>e\\\\f"),
            ("mid # and space", "mid # and space"),
            ("", ""),
            ("é", "é"),
        ] {
            let mut out = String::new();
            escape(value, &mut out);
            assert_eq!(out, want, "{value:?}");
        }
    }
}
