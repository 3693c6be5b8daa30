//! `loadtest`: `run` (the load generator), `origin` (the built-in origin) and `compare` (the
//! side-by-side scenario runner).

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loadtest::generator::{Plan, RequestSpec};
use loadtest::{compare, generator, origin, scenario::Scenario};

#[derive(Parser)]
#[command(name = "loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate load against one URL and report latency percentiles and errors.
    Run(RunArgs),
    /// Serve a fixed response to every request (keep-alive, pipelining).
    Origin(origin::Args),
    /// Run scenarios against shardgate, nginx and HAProxy side by side.
    Compare(compare::Args),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Target, `http://host:port/path` or `https://host:port/path`.
    url: String,
    /// With https: verify the server against this PEM CA bundle (default: no verification, for
    /// test certificates).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// With https: a full handshake on every connection (no session resumption).
    #[arg(long)]
    no_resume: bool,
    /// Concurrent connections.
    #[arg(long, short, default_value_t = 64)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, short, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of unmeasured load first.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop at this many requests per second in all (latency from each request's
    /// scheduled time); closed loop when absent.
    #[arg(long, short)]
    rate: Option<f64>,
    /// Generator threads.
    #[arg(long, short, default_value_t = 1)]
    threads: usize,
    /// A new connection per request (`Connection: close`).
    #[arg(long)]
    no_keepalive: bool,
    /// Method.
    #[arg(long, short, default_value = "GET")]
    method: String,
    /// Extra header, `Name: value`; repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Request body of this many bytes.
    #[arg(long, default_value_t = 0)]
    body_size: usize,
    /// Take the request mix from this scenario (name or file) instead.
    #[arg(long)]
    scenario: Option<String>,
    /// Seconds before a request counts as timed out.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// CPUs for the generator threads, e.g. `1` or `2,3`.
    #[arg(long, value_delimiter = ',')]
    pin: Vec<usize>,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Origin(a) => origin::run(a),
        Cmd::Run(a) => {
            stop_on_signals()?;
            run(a)
        }
        Cmd::Compare(a) => {
            stop_on_signals()?;
            compare::run(&a)?;
            if loadtest::STOP.load(Ordering::Relaxed) {
                anyhow::bail!("interrupted; every process started was stopped");
            }
            Ok(())
        }
    }
}

/// Ctrl-C or SIGTERM: stop generating, let the runner stop what it started.
fn stop_on_signals() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if loadtest::STOP.swap(true, Ordering::Relaxed) {
                    // second signal: give up at once
                    std::process::exit(130);
                }
                loadtest::errln!("stopping (again to quit at once)");
            }
        })?;
    Ok(())
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    let (https, rest) = match (
        a.url.strip_prefix("http://"),
        a.url.strip_prefix("https://"),
    ) {
        (Some(rest), _) => (false, rest),
        (None, Some(rest)) => (true, rest),
        (None, None) => anyhow::bail!("{}: expected an http:// or https:// URL", a.url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = split_authority(authority);
    let with_port = match port {
        Some(_) => authority.to_string(),
        None if https => format!("{authority}:443"),
        None => format!("{authority}:80"),
    };
    let tls = match https {
        true => Some(loadtest::tls::TlsPlan::new(
            host,
            a.ca.as_deref(),
            !a.no_resume,
        )?),
        false => None,
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    let requests = match &a.scenario {
        Some(s) => Scenario::load(s)?.request_specs(),
        None => {
            let mut r = RequestSpec::get(path);
            r.method = a.method.clone();
            r.body = (0..a.body_size).map(|i| b'a' + (i % 26) as u8).collect();
            for h in &a.headers {
                let (n, v) = h
                    .split_once(':')
                    .with_context(|| format!("header {h:?} is not `Name: value`"))?;
                r.headers.push((n.trim().to_string(), v.trim().to_string()));
            }
            vec![r]
        }
    };
    let plan = Plan {
        addr,
        host: authority.to_string(),
        requests,
        connections: a.connections,
        threads: a.threads,
        rate: a.rate,
        warmup: Duration::from_secs_f64(a.warmup.max(0.0)),
        duration: Duration::from_secs_f64(a.duration.max(0.001)),
        keepalive: !a.no_keepalive,
        timeout: Duration::from_secs_f64(a.timeout.max(0.001)),
        pin: a.pin.clone(),
        tls,
    };
    let mode = match a.rate {
        Some(r) => format!("open loop at {r:.0} req/s"),
        None => "closed loop".into(),
    };
    loadtest::outln!(
        "{} {} — {} connections, {mode}, {:.1} s after {:.1} s warm-up",
        plan.requests.first().map_or("GET", |r| r.method.as_str()),
        a.url,
        a.connections,
        a.duration,
        a.warmup
    );
    let report = generator::run(&plan)?;
    let summary = report.summary();
    loadtest::out!("{}", summary.table());
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// `host:port` → (`host`, `Some(port)`); `[::1]:8443` → (`::1`, `Some`); no port → `None`.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_authority;

    #[test]
    fn authorities_split_into_host_and_port() {
        for (authority, host, port) in [
            ("localhost:8443", "localhost", Some("8443")),
            ("localhost", "localhost", None),
            ("127.0.0.1:80", "127.0.0.1", Some("80")),
            ("[::1]:8443", "::1", Some("8443")),
            ("[::1]", "::1", None),
        ] {
            assert_eq!(split_authority(authority), (host, port), "{authority}");
        }
    }
}
