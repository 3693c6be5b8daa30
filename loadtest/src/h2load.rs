//! HTTP/2 load from h2load (Debian's `nghttp2-client`): a plan run by h2load, with prior
//! knowledge (h2c) or over TLS with ALPN `h2`, `streams` requests in flight per connection;
//! its per-request log (main window only) is read back into a `Report`, so HTTP/2 rounds
//! are summarised like the generator's.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::generator::Plan;
use crate::report::Report;

/// Runs `plan` with h2load from `start` (warm-up, then the measured window).
pub fn run_at(plan: &Plan, streams: usize, start: Instant) -> anyhow::Result<Report> {
    let program = crate::compare::procs::which("h2load")
        .context("HTTP/2 scenarios need h2load (Debian package nghttp2-client)")?;
    anyhow::ensure!(
        plan.rate.is_none(),
        "h2load runs closed-loop: an HTTP/2 scenario takes no rate"
    );
    let spec = plan.requests.first().context("the request mix is empty")?;
    let scheme = if plan.tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}{}", plan.host, spec.path);
    let log = log_path(plan);
    let mut cmd = Command::new(&program);
    cmd.arg(format!("--clients={}", plan.connections))
        .arg(format!("--max-concurrent-streams={}", streams.max(1)))
        .arg(format!(
            "--threads={}",
            plan.threads.clamp(1, plan.connections)
        ))
        .arg(format!("--duration={}ms", plan.duration.as_millis().max(1)))
        .arg(format!("--log-file={}", log.display()));
    if !plan.warmup.is_zero() {
        cmd.arg(format!("--warm-up-time={}ms", plan.warmup.as_millis()));
    }
    for (name, value) in &spec.headers {
        cmd.arg(format!("--header={name}: {value}"));
    }
    if spec.method != "GET" {
        cmd.arg(format!("--header=:method: {}", spec.method));
    }
    cmd.arg(url);
    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    let pin = plan
        .pin
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = match pin.is_empty() {
        true => cmd.output(),
        false => {
            let mut t = Command::new("taskset");
            t.arg("-c")
                .arg(&pin)
                .arg(cmd.get_program())
                .args(cmd.get_args());
            t.output()
        }
    }
    .with_context(|| format!("run {}", program.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "h2load failed: {text}");
    let mut report = Report::new(plan.duration);
    let lines = std::fs::read_to_string(&log).with_context(|| format!("read {}", log.display()))?;
    for line in lines.lines() {
        let mut cols = line.split('\t').skip(1);
        let (Some(status), Some(us)) = (cols.next(), cols.next()) else {
            continue;
        };
        let (Ok(status), Ok(us)) = (status.parse::<u16>(), us.parse::<u64>()) else {
            continue;
        };
        report.record(Duration::from_micros(us), status, 0);
    }
    let _ = std::fs::remove_file(&log);
    let failed = count(&text, "failed") + count(&text, "errored");
    report.errors.reset += failed;
    report.errors.timeout += count(&text, "timeout");
    Ok(report)
}

/// The log file of a run against `plan`'s address.
fn log_path(plan: &Plan) -> PathBuf {
    std::env::temp_dir().join(format!(
        "loadtest-h2load-{}-{}.log",
        std::process::id(),
        plan.addr.port()
    ))
}

/// The number before `word` on h2load's `requests:` line.
fn count(text: &str, word: &str) -> u64 {
    let Some(line) = text.lines().find(|l| l.starts_with("requests:")) else {
        return 0;
    };
    line.split(',')
        .find_map(|part| {
            let mut w = part.split_whitespace().rev();
            (w.next() == Some(word)).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_come_from_the_requests_line() {
        let text = "finished in 3.00s\nrequests: 10 total, 10 started, 9 done, 8 succeeded, 1 failed, 2 errored, 3 timeout\n";
        assert_eq!(count(text, "failed"), 1);
        assert_eq!(count(text, "errored"), 2);
        assert_eq!(count(text, "timeout"), 3);
        assert_eq!(count("nothing", "failed"), 0);
    }
}
