//! What the gateway tells operators about each exchange: `[request_id]` (an id per request,
//! returned to the client), `[tracing]` (W3C trace context passed upstream with the
//! gateway's own span) and `[access_log]` (one line per exchange).

use serde::Deserialize;
use toml::Spanned;

use crate::values::{ByteSize, Duration};

/// `[request_id]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestIdConf {
    /// Give every request an id in `header` (upstream and back to the client).
    pub enabled: bool,
    /// The field that carries it.
    pub header: Spanned<String>,
    /// Peers (addresses or CIDR blocks) whose own id is kept; from anyone else a received id
    /// is replaced. Default none.
    pub trust_from: Spanned<Vec<String>>,
}

impl Default for RequestIdConf {
    fn default() -> RequestIdConf {
        RequestIdConf {
            enabled: true,
            header: Spanned::new(0..0, "X-Request-Id".into()),
            trust_from: Spanned::new(0..0, Vec::new()),
        }
    }
}

/// `[tracing]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConf {
    /// Pass `traceparent` upstream with a new span id for the gateway's hop (and
    /// `tracestate` as received); start a trace when a request has none (or a malformed one).
    pub enabled: bool,
    /// The share of traces the gateway starts that are flagged sampled (0 to 1).
    pub sample_ratio: Spanned<f64>,
}

impl Default for TracingConf {
    fn default() -> TracingConf {
        TracingConf {
            enabled: true,
            sample_ratio: Spanned::new(0..0, 0.0),
        }
    }
}

/// `[access_log]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConf {
    /// Where lines go: `"stdout"` or a file path (appended to; reopened on SIGUSR1).
    pub path: Spanned<String>,
    /// `"json"` (one object per line), or a template of `${field}` names and text, such as
    /// `"${client_ip} ${method} ${path} ${status} ${duration_ms}"`.
    pub format: Spanned<String>,
    /// The share of exchanges answered below 400 that are logged (0 to 1); every other
    /// exchange (4xx, 5xx, failed, aborted) is logged.
    pub sample: Spanned<f64>,
    /// Lines a shard holds before handing them to its writer; when the writer is this far
    /// behind several times over, further lines are dropped and counted.
    pub buffer: ByteSize,
    /// Longest time a line waits in a shard's buffer.
    pub flush: Duration,
}

impl Default for AccessLogConf {
    fn default() -> AccessLogConf {
        AccessLogConf {
            path: Spanned::new(0..0, "stdout".into()),
            format: Spanned::new(0..0, "json".into()),
            sample: Spanned::new(0..0, 1.0),
            buffer: ByteSize(64 * 1024),
            flush: Duration::millis(200),
        }
    }
}

/// The fields an access-log line can hold, in the order JSON lines write them.
pub const LOG_FIELDS: [&str; 24] = [
    "time",
    "shard",
    "client_ip",
    "method",
    "path",
    "status",
    "outcome",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upstream_ms",
    "route",
    "upstream",
    "target",
    "request_id",
    "trace_id",
    "consumer",
    "refusal",
    "tls",
    "model",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
];

/// Checks a share is a number from 0 to 1.
pub fn check_ratio(v: &Spanned<f64>, what: &str) -> Result<(), (std::ops::Range<usize>, String)> {
    let x = *v.get_ref();
    if (0.0..=1.0).contains(&x) {
        Ok(())
    } else {
        Err((v.span(), format!("{what} {x} must be from 0 to 1")))
    }
}

/// Checks an access-log format: `json`, or a template naming only known fields.
pub fn check_format(f: &Spanned<String>) -> Result<(), (std::ops::Range<usize>, String)> {
    let s = f.get_ref();
    if s == "json" {
        return Ok(());
    }
    let mut rest = s.as_str();
    while let Some(at) = rest.find("${") {
        let after = rest.get(at + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else {
            return Err((
                f.span(),
                format!("[access_log] format: `${{` without `}}` in `{s}`"),
            ));
        };
        let name = after.get(..end).unwrap_or_default();
        if !LOG_FIELDS.contains(&name) {
            return Err((
                f.span(),
                format!(
                    "[access_log] format: unknown field `{name}` (known: {})",
                    LOG_FIELDS.join(", ")
                ),
            ));
        }
        rest = after.get(end + 1..).unwrap_or_default();
    }
    Ok(())
}
