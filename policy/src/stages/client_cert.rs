//! The client's TLS certificate (mTLS, verified by the listener) for stages and upstreams:
//! refuses requests without one when `require` is set (a listener with `client_auth =
//! "optional"` lets those in), sends its subject, SANs and fingerprint upstream in headers
//! (incoming copies always dropped), and makes it the request's identity when no earlier
//! stage set one (consumer = the subject, RFC 4514; roles = the SANs, typed: `DNS:host`,
//! `URI:…`, `email:…`, `IP:…`), so `authorize` rules apply to it.
//!
//! ```toml
//! [[route.policy]]
//! kind = "client_cert"
//! require = true
//! forward_subject = "X-Client-Subject"
//! ```

use std::rc::Rc;

use proto::RequestHead;
use serde::Deserialize;

use crate::exchange::{Exchange, Identity};
use crate::stage::{Rejection, Stage, StageBuild, StageContext, Verdict};

/// `[[route.policy]] kind = "client_cert"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Refuse (401) a request whose connection has no verified client certificate. Default
    /// true.
    #[serde(default = "yes")]
    pub require: bool,
    /// Header carrying the certificate's subject upstream ("" for none). Default
    /// "X-Client-Subject".
    #[serde(default = "default_subject")]
    pub forward_subject: String,
    /// Header carrying its SANs (typed, `DNS:a.example, URI:…`; "" for none). Default "".
    #[serde(default)]
    pub forward_sans: String,
    /// Header carrying its SHA-256 fingerprint, hex ("" for none). Default "".
    #[serde(default)]
    pub forward_fingerprint: String,
    /// Make the certificate the identity when no earlier stage set one. Default true.
    #[serde(default = "yes")]
    pub identity: bool,
}

fn yes() -> bool {
    true
}
fn default_subject() -> String {
    "X-Client-Subject".into()
}

/// The stage.
pub struct ClientCertStage {
    require: bool,
    subject: Box<[u8]>,
    sans: Box<[u8]>,
    fingerprint: Box<[u8]>,
    identity: bool,
}

impl StageBuild for ClientCertStage {
    const KIND: &'static str = "client_cert";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<ClientCertStage, String> {
        for (field, name) in [
            ("forward_subject", &c.forward_subject),
            ("forward_sans", &c.forward_sans),
            ("forward_fingerprint", &c.forward_fingerprint),
        ] {
            if !name.is_empty() && !proto::chars::is_token(name.as_bytes()) {
                return Err(format!("{field}: `{name}` is not a header name"));
            }
        }
        Ok(ClientCertStage {
            require: c.require,
            subject: c.forward_subject.as_bytes().into(),
            sans: c.forward_sans.as_bytes().into(),
            fingerprint: c.forward_fingerprint.as_bytes().into(),
            identity: c.identity,
        })
    }
}

/// Adds `name: value` unless the header is off or the value cannot be a field value.
fn forward(ex: &mut Exchange, name: &[u8], value: &str) {
    if !name.is_empty() && value.bytes().all(proto::chars::is_field_value) {
        ex.edits.fields.add(name, value.as_bytes());
    }
}

impl Stage for ClientCertStage {
    fn on_request(&self, head: &RequestHead, buf: &[u8], ex: &mut Exchange) -> Verdict<'_> {
        // incoming copies of the headers this stage sets never reach the upstream
        for name in [&self.subject, &self.sans, &self.fingerprint] {
            if !name.is_empty() {
                ex.edits.fields.drop_named(&head.fields, buf, name);
            }
        }
        let Some(cert) = ex.tls.as_ref().and_then(|t| t.client_cert.clone()) else {
            if self.require {
                return Verdict::Reject(Rejection::new(
                    401,
                    "client_cert.missing",
                    "a client certificate is required",
                ));
            }
            return Verdict::Continue;
        };
        forward(ex, &self.subject, &cert.subject);
        forward(ex, &self.sans, &cert.sans.join(", "));
        forward(ex, &self.fingerprint, &cert.sha256);
        if self.identity && ex.identity.is_none() {
            ex.identity = Some(Rc::new(Identity {
                consumer: Rc::from(&*cert.subject),
                scopes: Rc::from(Vec::new()),
                roles: cert.sans.iter().cloned().collect(),
                claims: Rc::from(Vec::new()),
            }));
        }
        Verdict::Continue
    }
}
