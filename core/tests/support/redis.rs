//! A real `redis-server` on a loopback port for the tests that need one (Debian's
//! `redis-server`; `.ci/run` installs it). Without it `start` says why and the test skips.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Redis, stopped when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// Arguments instead of `--port <port>` (TLS, replication).
    args: Vec<String>,
    /// It listens with TLS only.
    tls: bool,
}

/// Whether a Redis answers PING on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    /// Starts one on a free port; `None` (with the reason printed) when there is no
    /// `redis-server` here.
    pub fn start() -> Option<Redis> {
        let port = free_port();
        Redis::start_with(port, Vec::new(), false)
    }

    /// A replica of the Redis on `of` (read-only until promoted with `REPLICAOF NO ONE`).
    pub fn start_replica(of: u16) -> Option<Redis> {
        let port = free_port();
        let args = [
            "--port",
            &port.to_string(),
            "--replicaof",
            "127.0.0.1",
            &of.to_string(),
        ]
        .map(String::from)
        .to_vec();
        Redis::start_with(port, args, false)
    }

    /// Sends one inline command (`REPLICAOF NO ONE`); the first line of the answer.
    pub fn command(&self, line: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(super::DEADLINE)).unwrap();
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// One speaking TLS only, with `cert`/`key` (PEM files), clients verified against `ca`
    /// when `clients` (Redis's `tls-auth-clients`).
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path, clients: bool) -> Option<Redis> {
        let port = free_port();
        let mut tls: Vec<String> = vec!["--port".into(), "0".into(), "--tls-port".into()];
        tls.push(port.to_string());
        for (flag, path) in [
            ("--tls-cert-file", cert),
            ("--tls-key-file", key),
            ("--tls-ca-cert-file", ca),
        ] {
            tls.push(flag.into());
            tls.push(path.display().to_string());
        }
        tls.push("--tls-auth-clients".into());
        tls.push(if clients { "yes" } else { "no" }.into());
        Redis::start_with(port, tls, true)
    }

    fn start_with(port: u16, args: Vec<String>, tls: bool) -> Option<Redis> {
        let mut r = Redis {
            port,
            child: None,
            args,
            tls,
        };
        if !r.run() {
            println!(
                "skipping: no redis-server here, or it refused {:?} (Debian package redis-server, built with TLS; .ci/run installs it)",
                r.args
            );
            return None;
        }
        Some(r)
    }

    fn run(&mut self) -> bool {
        let port = self.port.to_string();
        let plain = ["--port", port.as_str()];
        let mut args: Vec<&str> = if self.args.is_empty() {
            plain.to_vec()
        } else {
            self.args.iter().map(String::as_str).collect()
        };
        args.extend(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        let end = Instant::now() + super::DEADLINE;
        while Instant::now() < end {
            // a TLS port is ready once it accepts (PING needs a handshake)
            let ready = if self.tls {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                answers(self.port)
            };
            if ready {
                return true;
            }
            // it refused its arguments (a build without TLS): the caller skips, saying so
            if let Some(c) = self.child.as_mut()
                && c.try_wait().is_ok_and(|e| e.is_some())
            {
                self.child = None;
                return false;
            }
            std::thread::yield_now();
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Stops it (SIGKILL: a Redis that went away).
    pub fn stop(&mut self) {
        self.freeze(false);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes it (SIGSTOP: a Redis that hangs, connections open, nothing answered), or
    /// thaws it (SIGCONT).
    pub fn freeze(&self, on: bool) {
        if let Some(c) = &self.child {
            let sig = if on { "-STOP" } else { "-CONT" };
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.run(), "redis-server came back");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
