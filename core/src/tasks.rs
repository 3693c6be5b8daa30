//! Runs the background tasks stages ask for (`policy::task::Task`) on the shard's runtime: the
//! job each names (an HTTP GET with our own client, a file read), its result handed back, and
//! a sleep until the time it gives or until the stage wakes it. No cross-shard state.

use std::rc::Rc;
use std::time::{Duration, Instant};

use policy::task::{Job, Next, Task};

use crate::upstream::client::{self, Request};

/// Runs `task` for as long as the shard runs (the runtime ends it at drain).
pub async fn run(shard: usize, task: Rc<dyn Task>) {
    let name = task.describe();
    let mut last_error = String::new();
    loop {
        match task.next(Instant::now()) {
            Next::Run(job) => {
                let result = perform(&job).await;
                match task.done(result, Instant::now()) {
                    Ok(what) => {
                        // said once per recovery, and by one shard in steady state
                        if !last_error.is_empty() || shard == 0 {
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
            let resp = client::send(*addr, &req, *max_bytes, *timeout)
                .await
                .map_err(|e| format!("{addr}: {e}"))?;
            if resp.status != 200 {
                return Err(format!("status {}", resp.status));
            }
            Ok(resp.body)
        }
        Job::ReadFile { path, max_bytes } => read_file(path, *max_bytes).await,
    }
}

/// Most time a file read may take (a hung network filesystem must not hold the task).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

async fn read_file(path: &std::path::Path, max_bytes: usize) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len > max_bytes as u64 {
        return Err(format!(
            "{} is larger than {max_bytes} bytes",
            path.display()
        ));
    }
    match monoio::time::timeout(READ_TIMEOUT, monoio::fs::read(path)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(format!("cannot read {}: {e}", path.display())),
        Err(_) => Err(format!(
            "reading {} took longer than {READ_TIMEOUT:?}",
            path.display()
        )),
    }
}
