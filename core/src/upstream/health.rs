//! The prober: active health checks of every target whose group has `[upstream.health]`,
//! run once per gateway on a thread of its own (not on the shards, not once per shard), each
//! change of verdict sent to every shard's inbox; it follows the target sets discovery finds.
//! It stops when the control side is gone.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Weak};
use std::time::Duration;

use conf::{CheckKind, Config, HealthConf, StartState};
use policy::balance::Rng;
use policy::balance::health::Verdicts;

use crate::control::{Control, TargetSet, Verdict};
use crate::tls::UpstreamTls;
use crate::upstream::client::{self, Request};

/// One target to watch.
struct Probe {
    upstream: Arc<str>,
    addr: SocketAddr,
    /// Host field of the HTTP check.
    host: String,
    conf: HealthConf,
    /// TLS of the group, and the name verified.
    tls: Option<(Arc<UpstreamTls>, rustls::pki_types::ServerName<'static>)>,
}

/// Most body bytes of a check's answer read.
const MAX_BODY: usize = 64 * 1024;

/// Starts the prober thread when some group has health checks; `changes` brings the target
/// sets discovery finds (probes start for new targets and stop for removed ones).
pub fn start(
    config: &Arc<Config>,
    control: Weak<Control>,
    changes: Receiver<TargetSet>,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    if !config.upstreams.iter().any(|u| u.conf.health.is_some()) {
        return Ok(None);
    }
    let config = config.clone();
    std::thread::Builder::new()
        .name("sg-health".into())
        .spawn(move || run(&config, control, changes))
        .map(Some)
}

/// The targets being probed.
type Live = Rc<RefCell<HashSet<(Arc<str>, SocketAddr)>>>;

fn run(config: &Config, control: Weak<Control>, changes: Receiver<TargetSet>) {
    let groups = groups(config);
    let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            crate::log!(
                Warn,
                "health checks: cannot build a runtime ({e}); none run"
            );
            return;
        }
    };
    rt.block_on(async move {
        let live: Live = Rc::default();
        let mut seed = 0u64;
        for g in &groups {
            for (addr, name) in &g.targets {
                seed += 1;
                spawn_probe(g, *addr, name, &live, &control, seed);
            }
        }
        // follow discovery until the control side is gone
        while control.strong_count() > 0 {
            monoio::time::sleep(FOLLOW).await;
            while let Ok(set) = changes.try_recv() {
                let Some(g) = groups.iter().find(|g| *g.name == *set.upstream) else {
                    continue;
                };
                live.borrow_mut()
                    .retain(|(u, a)| **u != *set.upstream || set.targets.iter().any(|t| t.0 == *a));
                for (addr, name, _) in set.targets.iter() {
                    if !live.borrow().contains(&(g.name.clone(), *addr)) {
                        seed += 1;
                        spawn_probe(g, *addr, name, &live, &control, seed);
                    }
                }
            }
        }
    });
}

/// How often the prober looks for new target sets.
const FOLLOW: Duration = Duration::from_millis(100);

/// A group with health checks, as the prober needs it.
struct Group {
    name: Arc<str>,
    conf: HealthConf,
    host: conf::HostRewrite,
    tls: Option<Arc<UpstreamTls>>,
    targets: Vec<(SocketAddr, String)>,
}

/// Every group with health checks.
fn groups(config: &Config) -> Vec<Group> {
    let dir = config.dir();
    let mut all = Vec::new();
    for u in &config.upstreams {
        let Some(h) = &u.conf.health else { continue };
        let tls = match &u.conf.tls {
            Some(t) => match crate::tls::upstream(t, dir, u.conf.name.span()) {
                Ok(t) => Some(Arc::new(t)),
                Err(_) => continue, // reported by the shards' build
            },
            None => None,
        };
        all.push(Group {
            name: u.name.as_str().into(),
            conf: h.get_ref().clone(),
            host: u.conf.host.clone(),
            tls,
            targets: u
                .targets
                .iter()
                .copied()
                .zip(u.target_names.iter().cloned())
                .collect(),
        });
    }
    all
}

/// Starts checking target `addr` (named `target`) of group `g`.
fn spawn_probe(
    g: &Group,
    addr: SocketAddr,
    target: &str,
    live: &Live,
    control: &Weak<Control>,
    seed: u64,
) {
    let host = match &g.host {
        conf::HostRewrite::Fixed(v) => v.clone(),
        _ => target.to_string(),
    };
    let tls = g.tls.as_ref().map(|t| {
        let sni = match &t.server_name {
            Some(n) => n.clone(),
            None => crate::tls::target_name(target, addr),
        };
        (t.clone(), sni)
    });
    let p = Probe {
        upstream: g.name.clone(),
        addr,
        host,
        conf: g.conf.clone(),
        tls,
    };
    live.borrow_mut().insert((g.name.clone(), addr));
    monoio::spawn(watch(p, control.clone(), live.clone(), seed));
}

/// Checks one target forever (until the control side is gone), telling every shard when
/// its verdict changes.
async fn watch(p: Probe, control: Weak<Control>, live: Live, seed: u64) {
    let c = &p.conf;
    let mut verdicts = Verdicts::new(
        c.start == StartState::Healthy,
        c.healthy_threshold,
        c.unhealthy_threshold,
    );
    let rng = Rng::new(seed ^ u64::from(p.addr.port()));
    let jitter = u64::try_from(c.jitter.0.as_nanos()).unwrap_or(u64::MAX);
    loop {
        if jitter > 0 {
            monoio::time::sleep(Duration::from_nanos(rng.below(jitter))).await;
        }
        let outcome = check(&p).await;
        if let Some(up) = verdicts.record(outcome.is_ok()) {
            let why = match &outcome {
                Ok(()) => format!("{} checks passed", c.healthy_threshold),
                Err(e) => format!("{} checks failed, the last: {e}", c.unhealthy_threshold),
            };
            crate::log!(
                Warn,
                "upstream `{}`: target {} is {} ({why})",
                p.upstream,
                p.addr,
                if up { "up" } else { "down" }
            );
            let Some(control) = control.upgrade() else {
                return;
            };
            control.broadcast_health(&Verdict {
                upstream: p.upstream.clone(),
                target: p.addr,
                up,
            });
        }
        let gone = |control: &Weak<Control>| {
            control.strong_count() == 0 || !live.borrow().contains(&(p.upstream.clone(), p.addr))
        };
        if gone(&control) {
            return;
        }
        monoio::time::sleep(c.interval.0).await;
        if gone(&control) {
            return;
        }
    }
}

/// One check; `Err` says why it failed.
async fn check(p: &Probe) -> Result<(), String> {
    let c = &p.conf;
    match c.check {
        CheckKind::Tcp => crate::upstream::connect::connect(p.addr, c.timeout.0, true, None)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        CheckKind::Http => {
            let req = Request {
                method: "GET",
                target: &c.path,
                host: &p.host,
                fields: b"User-Agent: shardgate-health\r\n",
                body: b"",
            };
            let tls = p.tls.as_ref().map(|(t, n)| (&**t, n));
            let resp = client::send(p.addr, &req, MAX_BODY, c.timeout.0, tls)
                .await
                .map_err(|e| e.to_string())?;
            let status_ok = if c.statuses.is_empty() {
                (200..400).contains(&resp.status)
            } else {
                c.statuses.contains(&resp.status)
            };
            if !status_ok {
                return Err(format!("status {}", resp.status));
            }
            match &c.body_contains {
                Some(s) if !contains(&resp.body, s.as_bytes()) => {
                    Err(format!("the body does not contain {s:?}"))
                }
                _ => Ok(()),
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || memchr::memmem::find(hay, needle).is_some()
}
