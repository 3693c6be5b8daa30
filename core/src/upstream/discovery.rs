//! Targets that change while the gateway runs (`[upstream.discovery]`): DNS names resolved
//! again on a timer, or a watched targets file. Resolved (or read) once before the shards
//! start (`initial`), then on a thread of their own (`start`); each change goes to every
//! shard's inbox and to the prober. A failed resolution or a broken file keeps the last good
//! targets. The resolver is a seam (`Resolver`): tests feed it, production uses the system's.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use conf::Config;
use conf::discovery::{DiscoveryConf, DiscoveryKind, parse_targets_file};
use conf::model::Upstream;

use crate::control::{Control, TargetSet};

/// Resolves a `host:port` to its addresses.
pub type Resolver = Arc<dyn Fn(&str) -> std::io::Result<Vec<SocketAddr>> + Send + Sync>;

pub use crate::control::Target;

/// The system's resolver (getaddrinfo).
pub fn system_resolver() -> Resolver {
    Arc::new(|name: &str| name.to_socket_addrs().map(Iterator::collect))
}

/// How often a targets file is looked at.
const FILE_LOOK: Duration = Duration::from_secs(1);

/// `config` with every discovered group's targets filled in (a group that cannot be
/// resolved or read yet starts empty, logged: its requests get 502 until it can).
pub fn initial(config: &Config, resolve: &Resolver) -> Config {
    let mut out = config.clone();
    let dir = config.dir().to_path_buf();
    for u in out.upstreams.iter_mut() {
        let Some(d) = u.conf.discovery.as_ref().map(|d| d.get_ref().clone()) else {
            continue;
        };
        match current(u, &d, &dir, resolve) {
            Ok(t) => set(u, &t),
            Err(e) => {
                crate::log!(Warn, "upstream `{}`: no targets yet: {e}", u.name);
                set(u, &[]);
            }
        }
    }
    out
}

/// Replaces the targets of `u`.
pub fn set(u: &mut Upstream, targets: &[Target]) {
    u.targets = targets.iter().map(|t| t.0).collect();
    u.target_names = targets.iter().map(|t| t.1.clone()).collect();
    u.weights = targets.iter().map(|t| t.2).collect();
}

/// The group's targets now: its names resolved, or its file read and resolved.
fn current(
    u: &Upstream,
    d: &DiscoveryConf,
    dir: &Path,
    resolve: &Resolver,
) -> Result<Vec<Target>, String> {
    let names: Vec<(String, u32)> = match d.kind {
        DiscoveryKind::Dns => u
            .conf
            .targets
            .iter()
            .map(|t| (t.get_ref().address.clone(), t.get_ref().weight))
            .collect(),
        DiscoveryKind::File => {
            let path = file_path(d, dir);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            parse_targets_file(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    let mut out: Vec<Target> = Vec::new();
    for (name, weight) in names {
        let addrs = resolve(&name).map_err(|e| format!("cannot resolve {name}: {e}"))?;
        for a in addrs {
            if !out.iter().any(|t| t.0 == a) {
                out.push((a, name.clone(), weight));
            }
        }
    }
    Ok(out)
}

fn file_path(d: &DiscoveryConf, dir: &Path) -> PathBuf {
    dir.join(d.file.as_deref().unwrap_or_default())
}

/// One discovered group, as the thread follows it.
struct Watch {
    index: usize,
    conf: DiscoveryConf,
    last: Vec<Target>,
    next: Instant,
    wait: Duration,
    /// The file's modification time and length when last read.
    stamp: Option<(SystemTime, u64)>,
}

/// Starts the discovery thread when a group has `[upstream.discovery]`; changes go to every
/// shard through `control` and to the prober through `probes`. It stops with the control
/// side.
pub fn start(
    config: &Arc<Config>,
    control: Weak<Control>,
    resolve: Resolver,
    probes: Option<Sender<TargetSet>>,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let now = Instant::now();
    let watches: Vec<Watch> = config
        .upstreams
        .iter()
        .enumerate()
        .filter_map(|(index, u)| {
            let conf = u.conf.discovery.as_ref()?.get_ref().clone();
            let last = u
                .targets
                .iter()
                .zip(&u.target_names)
                .zip(&u.weights)
                .map(|((a, n), w)| (*a, n.clone(), *w))
                .collect();
            let wait = match conf.kind {
                DiscoveryKind::Dns => conf.refresh.0,
                DiscoveryKind::File => FILE_LOOK,
            };
            Some(Watch {
                index,
                last,
                next: now + wait,
                wait,
                stamp: None,
                conf,
            })
        })
        .collect();
    if watches.is_empty() {
        return Ok(None);
    }
    let config = config.clone();
    std::thread::Builder::new()
        .name("sg-discovery".into())
        .spawn(move || run(&config, watches, &control, &resolve, probes.as_ref()))
        .map(Some)
}

fn run(
    config: &Config,
    mut watches: Vec<Watch>,
    control: &Weak<Control>,
    resolve: &Resolver,
    probes: Option<&Sender<TargetSet>>,
) {
    let dir = config.dir().to_path_buf();
    loop {
        let soonest = watches
            .iter()
            .map(|w| w.next)
            .min()
            .unwrap_or_else(Instant::now);
        // wakes at least every 200 ms to notice the control side is gone
        let nap = soonest
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        std::thread::sleep(nap);
        if control.strong_count() == 0 {
            return;
        }
        let now = Instant::now();
        for w in watches.iter_mut().filter(|w| w.next <= now) {
            let Some(u) = config.upstreams.get(w.index) else {
                continue;
            };
            if let Some(targets) = look(u, w, &dir, resolve)
                && targets != w.last
            {
                crate::log!(
                    Info,
                    "upstream `{}`: targets now {}",
                    u.name,
                    targets
                        .iter()
                        .map(|t| t.0.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let set = TargetSet {
                    upstream: u.name.as_str().into(),
                    targets: targets.clone().into(),
                };
                if let Some(c) = control.upgrade() {
                    c.broadcast_targets(&set);
                }
                if let Some(p) = probes {
                    let _ = p.send(set);
                }
                w.last = targets;
            }
            w.next = Instant::now() + w.wait;
        }
    }
}

/// Looks at one group: `Some` targets when they could be had (changed or not).
fn look(u: &Upstream, w: &mut Watch, dir: &Path, resolve: &Resolver) -> Option<Vec<Target>> {
    if w.conf.kind == DiscoveryKind::File {
        let meta = std::fs::metadata(file_path(&w.conf, dir)).ok();
        let stamp = meta.and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp.is_some() && stamp == w.stamp {
            return None;
        }
        w.stamp = stamp;
    }
    match current(u, &w.conf, dir, resolve) {
        Ok(t) => {
            if w.conf.kind == DiscoveryKind::Dns {
                w.wait = w.conf.refresh.0;
            }
            Some(t)
        }
        Err(e) => {
            crate::log!(Warn, "upstream `{}`: keeping its targets: {e}", u.name);
            if w.conf.kind == DiscoveryKind::Dns {
                w.wait = (w.wait * 2).min(w.conf.max_refresh.0);
            }
            None
        }
    }
}
