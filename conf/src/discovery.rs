//! `[upstream.discovery]`: where a group's targets come from when they change while the
//! gateway runs — DNS names resolved again in the background, or a file that is watched.

use serde::Deserialize;

use crate::values::Duration;

/// `[upstream.discovery]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConf {
    /// `"dns"`: the targets' names are resolved again every `refresh`; `"file"`: the targets
    /// are read from `file`, read again when it changes.
    pub kind: DiscoveryKind,
    /// dns: time between two resolutions.
    #[serde(default = "refresh")]
    pub refresh: Duration,
    /// dns: after a failed resolution the wait doubles, up to this.
    #[serde(default = "max_refresh")]
    pub max_refresh: Duration,
    /// file: the targets file (relative to the config file), one `host:port [weight]` a line.
    #[serde(default)]
    pub file: Option<String>,
}

/// Where the targets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryKind {
    /// DNS names, resolved again in the background.
    Dns,
    /// A watched file.
    File,
}

fn refresh() -> Duration {
    Duration::secs(30)
}

fn max_refresh() -> Duration {
    Duration::secs(300)
}

/// Parses a targets file: one `host:port` and an optional weight per line; `#` starts a
/// comment, blank lines are skipped. Errors name the line.
pub fn parse_targets_file(text: &str) -> Result<Vec<(String, u32)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let addr = parts.next().unwrap_or_default();
        if !host_port(addr) {
            return Err(format!("line {}: `{addr}` is not host:port", i + 1));
        }
        let weight = match parts.next() {
            None => 1,
            Some(w) => match w.parse::<u32>() {
                Ok(w) if (1..=10_000).contains(&w) => w,
                _ => return Err(format!("line {}: weight `{w}` must be 1 to 10000", i + 1)),
            },
        };
        if parts.next().is_some() {
            return Err(format!("line {}: expected `host:port [weight]`", i + 1));
        }
        out.push((addr.to_string(), weight));
    }
    Ok(out)
}

/// `host:port` with a port, without resolving the host.
pub fn host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targets_file_is_read_line_by_line() {
        let text = "# api targets\n10.0.0.1:80\n\n10.0.0.2:80 3  # heavier\napi.internal:8080\n";
        assert_eq!(
            parse_targets_file(text),
            Ok(vec![
                ("10.0.0.1:80".into(), 1),
                ("10.0.0.2:80".into(), 3),
                ("api.internal:8080".into(), 1)
            ])
        );
        assert!(parse_targets_file("10.0.0.1\n").is_err_and(|e| e.starts_with("line 1:")));
        assert!(parse_targets_file("a:1\nb:2 0\n").is_err_and(|e| e.starts_with("line 2:")));
        assert!(parse_targets_file("a:1 2 3\n").is_err());
        assert!(host_port("[::1]:80") && !host_port("a:0") && !host_port(":80"));
    }
}
