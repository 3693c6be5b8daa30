//! Hot reload (SIGHUP): the file is read, validated and compiled once on the control thread;
//! on any error the running config stays and the error is reported (file:line:column); on
//! success every shard gets the new config by message and switches between requests, taking
//! over what did not change (pools, breakers, limits, caches). Exchanges in flight and open
//! keep-alive and WebSocket connections finish on the config they started with.
//!
//! Not reloaded (logged when they differ; they take a restart): the listeners, the shard
//! layout, and the prober's and discovery's own settings.

use std::path::Path;
use std::sync::Arc;

use conf::Config;

use crate::control::{Control, Message};
use crate::upstream::discovery::Resolver;

/// Reloads `path` over `running`; the new config, or why it was refused.
pub fn reload(
    path: &Path,
    running: &Config,
    control: &Control,
    resolve: &Resolver,
) -> Result<Arc<Config>, String> {
    let new = conf::load(path).map_err(|e| e.to_string())?;
    let listeners = |c: &Config| -> Vec<(std::net::SocketAddr, bool)> {
        c.listeners
            .iter()
            .map(|l| (l.addr, l.tls.is_some()))
            .collect()
    };
    if listeners(&new) != listeners(running) {
        return Err(
            "the listeners changed: adding, removing or re-addressing a listener takes a restart"
                .into(),
        );
    }
    let restart_only = [
        (
            "[server] shards",
            new.server.shards != running.server.shards,
        ),
        ("[server] pin", new.server.pin != running.server.pin),
        (
            "[server] driver",
            new.server.driver != running.server.driver,
        ),
    ];
    for (what, changed) in restart_only {
        if changed {
            crate::log!(
                Warn,
                "reload: {what} changed; it takes effect at the next restart"
            );
        }
    }
    let new = if new.upstreams.iter().any(|u| u.conf.discovery.is_some()) {
        crate::upstream::discovery::initial(&new, resolve)
    } else {
        new
    };
    // compiled once here too, so certificates and keys that do not load refuse the reload
    // before any shard sees it
    let secret = crate::tls::tickets::TicketSecret::generate()?;
    crate::gateway::Gateway::build(&new, control.shards().max(1), 0, None, &secret)
        .map_err(|e| e.to_string())?;
    let new = Arc::new(new);
    for i in 0..control.shards() {
        control.send(i, Message::Config(new.clone()));
    }
    Ok(new)
}
