//! Runs the background tasks stages ask for (`policy::task::Task`) on the shard's runtime: the
//! job each names (an HTTP GET with our own client, a file read), its result handed back, and
//! a sleep until the time it gives or until the stage wakes it. No cross-shard state.

use std::rc::Weak;
use std::time::{Duration, Instant};

use policy::task::{Job, Next, Task};

use crate::upstream::client::{self, Request};

/// Runs `task` for as long as its stage exists: once the config that holds the stage is
/// replaced and dropped, the task ends (the runtime ends every task at drain).
pub async fn run(shard: usize, task: Weak<dyn Task>) {
    let Some(name) = task.upgrade().map(|t| t.describe()) else {
        return;
    };
    let mut last_error = String::new();
    while let Some(task) = task.upgrade() {
        match task.next(Instant::now()) {
            Next::Run(job) => {
                let result = perform(&job).await;
                match task.done(result, Instant::now()) {
                    Ok(what) => {
                        // said once per recovery, and by one shard in steady state
                        if !what.is_empty() && (!last_error.is_empty() || shard == 0) {
                            crate::log!(Info, "shard {shard}: {name}: {what}");
                        }
                        last_error.clear();
                    }
                    Err(e) => {
                        if e != last_error {
                            crate::log!(
                                Warn,
                                "shard {shard}: {name}: {e}; keeping the last good state"
                            );
                        }
                        last_error = e;
                    }
                }
            }
            Next::Sleep(Some(until)) => {
                let wait = until.saturating_duration_since(Instant::now());
                let _ = monoio::time::timeout(wait, task.wake().raised()).await;
            }
            Next::Sleep(None) => task.wake().raised().await,
        }
    }
}

/// Does the IO a job names; the bytes it got, or why not.
async fn perform(job: &Job) -> Result<Vec<u8>, String> {
    match job {
        Job::HttpGet {
            addr,
            host,
            tls,
            ca,
            path,
            max_bytes,
            timeout,
        } => {
            let req = Request {
                method: "GET",
                target: path,
                host,
                fields: b"Accept: application/json\r\n",
                body: b"",
            };
            fetch(*addr, &req, (*tls, ca.as_deref()), *max_bytes, *timeout).await
        }
        Job::HttpPost {
            addr,
            host,
            tls,
            ca,
            path,
            fields,
            body,
            max_bytes,
            timeout,
        } => {
            let req = Request {
                method: "POST",
                target: path,
                host,
                fields,
                body,
            };
            fetch(*addr, &req, (*tls, ca.as_deref()), *max_bytes, *timeout).await
        }
        Job::ReadFile { path, max_bytes } => read_file(path, *max_bytes).await,
    }
}

/// Sends `req` to `addr` (over TLS when `tls.0`, verified against `tls.1` or the web roots);
/// the body of a 200 answer.
async fn fetch(
    addr: std::net::SocketAddr,
    req: &Request<'_>,
    tls: (bool, Option<&std::path::PathBuf>),
    max_bytes: usize,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    // a config per fetch (rare: every jwks_interval, or once per new token), so a rotated CA
    // file is read again
    let tls = match tls.0 {
        true => Some(https(tls.1, req.host, addr)?),
        false => None,
    };
    let tls = tls.as_ref().map(|(t, name)| (t, name));
    let resp = client::send(addr, req, max_bytes, timeout, tls)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    if resp.status != 200 {
        return Err(format!("status {}", resp.status));
    }
    Ok(resp.body)
}

/// TLS for a fetch from `host` (its port left out of the name), verified against `ca` or the
/// web roots.
fn https(
    ca: Option<&std::path::PathBuf>,
    host: &str,
    addr: std::net::SocketAddr,
) -> Result<
    (
        crate::tls::UpstreamTls,
        rustls::pki_types::ServerName<'static>,
    ),
    String,
> {
    let conf = conf::UpstreamTlsConf {
        ca: ca.map(|p| toml::Spanned::new(0..0, p.display().to_string())),
        ..conf::UpstreamTlsConf::default()
    };
    let tls = crate::tls::upstream(&conf, std::path::Path::new("/"), 0..0)
        .map_err(|ps| ps.into_iter().map(|p| p.msg).collect::<Vec<_>>().join("; "))?;
    Ok((tls, crate::tls::target_name(host, addr)))
}

/// Most time a file read may take (a hung network filesystem must not hold the task).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a task waiting for a file read looks whether it is done.
const READ_POLL: Duration = Duration::from_millis(5);

/// Reads a file on a thread of its own, so a slow or hung filesystem never stalls the shard
/// (file reads block on either driver); the task looks for the result until `READ_TIMEOUT`.
async fn read_file(path: &std::path::Path, max_bytes: usize) -> Result<Vec<u8>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("sg-file-read".into())
        .spawn(move || {
            let _ = tx.send(read_bounded(&owned, max_bytes));
        })
        .map_err(|e| format!("cannot start a file reader: {e}"))?;
    let end = Instant::now() + READ_TIMEOUT;
    loop {
        match rx.try_recv() {
            Ok(result) => return result,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return Err(format!("reading {} failed", path.display()));
            }
            Err(std::sync::mpsc::TryRecvError::Empty) if Instant::now() >= end => {
                return Err(format!(
                    "reading {} took longer than {READ_TIMEOUT:?}",
                    path.display()
                ));
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => monoio::time::sleep(READ_POLL).await,
        }
    }
}

fn read_bounded(path: &std::path::Path, max_bytes: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() > max_bytes {
        return Err(format!(
            "{} is larger than {max_bytes} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}
