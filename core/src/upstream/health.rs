//! The prober: active health checks of every target whose group has `[upstream.health]`,
//! run once per gateway on a thread of its own (not on the shards, not once per shard), each
//! change of verdict sent to every shard's inbox. It stops when the control side is gone.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use conf::{CheckKind, Config, HealthConf, StartState};
use policy::balance::Rng;
use policy::balance::health::Verdicts;

use crate::control::{Control, Verdict};
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

/// Starts the prober thread when some group has health checks.
pub fn start(
    config: &Arc<Config>,
    control: Weak<Control>,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    if !config.upstreams.iter().any(|u| u.conf.health.is_some()) {
        return Ok(None);
    }
    let config = config.clone();
    std::thread::Builder::new()
        .name("sg-health".into())
        .spawn(move || run(&config, control))
        .map(Some)
}

fn run(config: &Config, control: Weak<Control>) {
    let probes = probes(config);
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
        let handles: Vec<_> = probes
            .into_iter()
            .enumerate()
            .map(|(i, p)| monoio::spawn(watch(p, control.clone(), i as u64)))
            .collect();
        for h in handles {
            h.await;
        }
    });
}

/// Every target of every group with health checks.
fn probes(config: &Config) -> Vec<Probe> {
    let dir = crate::gateway::config_dir(config);
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
        let name: Arc<str> = u.name.as_str().into();
        for (addr, target) in u.targets.iter().zip(&u.target_names) {
            let host = match &u.conf.host {
                conf::HostRewrite::Fixed(v) => v.clone(),
                _ => target.clone(),
            };
            let tls = tls.as_ref().map(|t| {
                let sni = match &t.server_name {
                    Some(n) => n.clone(),
                    None => crate::tls::target_name(target, *addr),
                };
                (t.clone(), sni)
            });
            all.push(Probe {
                upstream: name.clone(),
                addr: *addr,
                host,
                conf: h.get_ref().clone(),
                tls,
            });
        }
    }
    all
}

/// Checks one target forever (until the control side is gone), telling every shard when
/// its verdict changes.
async fn watch(p: Probe, control: Weak<Control>, seed: u64) {
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
        if control.strong_count() == 0 {
            return;
        }
        monoio::time::sleep(c.interval.0).await;
        if control.strong_count() == 0 {
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
