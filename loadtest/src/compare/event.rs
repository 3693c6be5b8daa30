//! The origins a scenario runs (one or several, each on its own port, on the load CPUs) and
//! the event some scenarios stage in each measured window: one origin killed (SIGKILL, then
//! a new process on the same port) or frozen (SIGSTOP, then SIGCONT), so the report shows the
//! errors and latency clients saw through it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::procs::{self, Child};
use crate::scenario::{EventAction, EventConf, OriginConf};

/// The running origins and how to start one again.
pub struct Origins {
    /// Each origin's process group, in address order.
    pub children: Vec<Child>,
    /// Their addresses.
    pub addrs: Vec<SocketAddr>,
    program: PathBuf,
    conf: OriginConf,
    cpus: String,
    dir: PathBuf,
}

impl Origins {
    /// Starts `conf.count` origins with `program` pinned to `cpus`, logs in `dir`.
    pub fn start(
        program: &Path,
        conf: &OriginConf,
        cpus: &str,
        dir: &Path,
    ) -> anyhow::Result<Origins> {
        let mut o = Origins {
            children: Vec::new(),
            addrs: Vec::new(),
            program: program.to_path_buf(),
            conf: conf.clone(),
            cpus: cpus.to_string(),
            dir: dir.to_path_buf(),
        };
        for i in 0..conf.count.max(1) {
            let addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
            o.addrs.push(addr);
            let child = o.spawn(i)?;
            o.children.push(child);
        }
        Ok(o)
    }

    /// Starts origin `i` on its address and waits until it listens.
    fn spawn(&self, i: usize) -> anyhow::Result<Child> {
        let addr = self
            .addrs
            .get(i)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no origin {i}"))?;
        let name = if i == 0 {
            "origin".to_string()
        } else {
            format!("origin{i}")
        };
        let mut args = vec![
            "origin".into(),
            "--listen".into(),
            addr.to_string(),
            "--size".into(),
            self.conf.size.to_string(),
            "--status".into(),
            self.conf.status.to_string(),
            "--latency-ms".into(),
            self.conf.latency_ms.to_string(),
        ];
        if self.conf.json {
            args.push("--json".into());
        }
        if self.conf.anthropic_stream {
            args.push("--anthropic-stream".into());
        }
        let mut child = procs::spawn(
            &name,
            &self.program,
            &args,
            &self.cpus,
            &self.dir.join(format!("{name}.log")),
        )?;
        child.wait_listening(addr)?;
        Ok(child)
    }

    /// Their process groups.
    pub fn pgids(&self) -> Vec<u32> {
        self.children.iter().map(Child::pgid).collect()
    }

    /// Stops them all.
    pub fn stop(&mut self) {
        for c in &mut self.children {
            c.stop();
        }
    }

    /// Runs `event` against the window that starts at `window_start` (on its own thread,
    /// while the caller measures): a killed origin is started again at `back_at_s`.
    pub fn stage(
        &mut self,
        event: &EventConf,
        window_start: Instant,
        measure: impl FnOnce(),
    ) -> anyhow::Result<()> {
        let pgid = self.children.get(event.origin).map(Child::pgid);
        let at = window_start + Duration::from_secs_f64(event.at_s);
        let back = window_start + Duration::from_secs_f64(event.back_at_s);
        let this: &Origins = self;
        let restarted = std::thread::scope(|scope| {
            let t = scope.spawn(move || -> anyhow::Result<Option<Child>> {
                let Some(pgid) = pgid else { return Ok(None) };
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                procs::signal_group(
                    pgid,
                    if event.action == EventAction::Kill {
                        "KILL"
                    } else {
                        "STOP"
                    },
                );
                crate::outln!(
                    "  event: origin {} {} at {:.1} s",
                    event.origin,
                    match event.action {
                        EventAction::Kill => "killed",
                        EventAction::Stop => "stopped",
                    },
                    event.at_s
                );
                std::thread::sleep(back.saturating_duration_since(Instant::now()));
                match event.action {
                    EventAction::Stop => {
                        procs::signal_group(pgid, "CONT");
                        Ok(None)
                    }
                    EventAction::Kill => this.spawn(event.origin).map(Some),
                }
            });
            measure();
            t.join()
                .map_err(|_| anyhow::anyhow!("event thread panicked"))?
        })?;
        if let (Some(new), Some(slot)) = (restarted, self.children.get_mut(event.origin)) {
            // the old group is gone; dropping its handle reaps it
            *slot = new;
        }
        Ok(())
    }
}
