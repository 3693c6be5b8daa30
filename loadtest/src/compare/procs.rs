//! Processes the runner starts: each in its own process group (so a terminal's Ctrl-C reaches
//! only the runner, which then stops them in order), pinned with `taskset`, stopped on drop;
//! and their CPU time and peak memory read from /proc.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Clock ticks per second in /proc's utime and stime (USER_HZ, fixed at 100 by the Linux ABI on
/// the architectures we run on).
pub const TICKS_PER_SEC: f64 = 100.0;

/// A started process group, stopped when dropped.
pub struct Child {
    /// What it is, for messages.
    pub name: String,
    child: std::process::Child,
    log: PathBuf,
    /// Where it was seen listening, to wait for that socket to close on stop.
    listening: Option<SocketAddr>,
}

/// Starts `program args…` pinned to `cpus` (a taskset list such as "1" or "0,1"; empty for no
/// pinning), output appended to `log`.
pub fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    cpus: &str,
    log: &Path,
) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = if cpus.is_empty() || which("taskset").is_none() {
        let mut c = Command::new(program);
        c.args(args);
        c
    } else {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(cpus).arg(program).args(args);
        c
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("start {name} ({})", program.display()))?;
    Ok(Child {
        name: name.to_string(),
        child,
        log: log.to_path_buf(),
        listening: None,
    })
}

impl Child {
    /// The process group id (the leader's pid).
    pub fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `addr` accepts connections; fails early, with the log's tail, if the
    /// process exits.
    pub fn wait_listening(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                self.listening = Some(addr);
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!(
                    "{} exited ({status}) before listening:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!(
            "{} is not listening on {addr} after 15 s:\n{}",
            self.name,
            self.log_tail()
        )
    }

    /// The last lines of its output.
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines
            .get(lines.len().saturating_sub(15)..)
            .unwrap_or_default()
            .join("\n")
    }

    /// Every live process of its group.
    pub fn pids(&self) -> Vec<u32> {
        group_members(self.pgid())
    }

    /// user+sys clock ticks of every thread of every process of the group so far.
    pub fn cpu_ticks(&self) -> u64 {
        group_ticks(self.pgid())
    }

    /// Sum over the group of each process's peak resident set (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.pids()
            .into_iter()
            .map(|p| status_kib(&format!("/proc/{p}/status"), "VmHWM:"))
            .sum()
    }

    /// Stops the group: SIGTERM, up to 10 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        self.stop_within(Duration::from_secs(10));
    }

    /// Stops the group: SIGTERM, up to `grace` to exit, then SIGKILL.
    pub fn stop_within(&mut self, grace: Duration) {
        self.end_process(grace);
        // A process on io_uring exits before its ring is torn down, and an accept still in
        // the ring keeps the listening socket open (and answering SYNs) a little longer: wait
        // until the port refuses, so whoever runs next can rely on it being free.
        if let Some(addr) = self.listening.take() {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn end_process(&mut self, grace: Duration) {
        // The leader counts as gone only when `waitpid` reports it, which the kernel does once
        // its last thread has exited.
        let gone = |c: &mut Self| matches!(c.child.try_wait(), Ok(Some(_))) && c.pids().is_empty();
        if gone(self) {
            return;
        }
        signal_group(self.pgid(), "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if gone(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_group(self.pgid(), "KILL");
        let _ = self.child.wait();
        while !self.pids().is_empty() && Instant::now() < deadline + grace {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `sig` ("TERM", "KILL", "STOP", "CONT") to every process of group `pgid`.
pub fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Live (not zombie) processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let f = stat_fields(&stat);
            f.first() != Some(&"Z") && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
        })
        .collect()
}

/// The fields of a /proc stat line after the command name (state is field 0).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// user+sys ticks of every thread of every live process in group `pgid`.
pub fn group_ticks(pgid: u32) -> u64 {
    group_members(pgid).into_iter().map(process_ticks).sum()
}

/// user+sys ticks of all threads of `pid`.
pub fn process_ticks(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let f = stat_fields(&stat);
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// user+sys ticks of this process (all its threads).
pub fn own_ticks() -> u64 {
    process_ticks(std::process::id())
}

fn status_kib(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The path of `program` on PATH (or in /usr/sbin and /sbin, where Debian puts daemons).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_group_is_measured_and_stopped() {
        let dir = std::env::temp_dir().join(format!("lt-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // a shell that burns a little CPU in a child, then sleeps: two processes, one group
        let c = spawn(
            "burner",
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30 & wait".into(),
            ],
            "",
            &dir.join("burner.log"),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.pids().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(c.pids().len(), 2, "shell and its sleep");
        assert!(c.cpu_ticks() > 0);
        assert!(c.peak_rss_kib() > 0);
        let pgid = c.pgid();
        drop(c);
        assert!(group_members(pgid).is_empty(), "the whole group is gone");
    }

    #[test]
    fn a_group_that_ignores_sigterm_is_killed() {
        let dir = std::env::temp_dir().join(format!("lt-procs-term-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let script = format!(
            "trap '' TERM; exec python3 -c 'import socket,time,signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); s=socket.socket(); s.bind((\"127.0.0.1\",{port})); s.listen(); time.sleep(60)'"
        );
        let mut c = spawn(
            "stubborn",
            Path::new("/bin/sh"),
            &["-c".into(), script],
            "",
            &dir.join("s.log"),
        )
        .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        c.wait_listening(addr).unwrap();
        c.stop_within(Duration::from_millis(300));
        assert!(c.pids().is_empty());
        assert!(TcpStream::connect(addr).is_err(), "its socket is closed");
    }
}
