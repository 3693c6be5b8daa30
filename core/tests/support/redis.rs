//! A real `redis-server` on a loopback port for the tests that need one (Debian's
//! `redis-server`; `.ci/run` installs it). Without it `start` says why and the test skips.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Redis, stopped when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
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

impl Redis {
    /// Starts one on a free port; `None` (with the reason printed) when there is no
    /// `redis-server` here.
    pub fn start() -> Option<Redis> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis { port, child: None };
        if !r.run() {
            println!(
                "skipping: no redis-server here (Debian package redis-server; .ci/run installs it)"
            );
            return None;
        }
        Some(r)
    }

    fn run(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        let end = Instant::now() + super::DEADLINE;
        while Instant::now() < end {
            if answers(self.port) {
                return true;
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
