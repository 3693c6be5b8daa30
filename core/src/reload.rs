//! Hot reload (SIGHUP): the file is read, validated and compiled once on the control thread;
//! on any error the running config stays and the error is reported (file:line:column); on
//! success every shard gets the new config by message and switches between requests, taking
//! over what did not change (pools, breakers, limits, caches). Exchanges in flight and open
//! keep-alive and WebSocket connections finish on the config they started with.
//!
//! Listeners added are bound here (every shard's socket, before anything is switched) and
//! handed to the shards after the config that has them; a listener removed stops accepting
//! and its connections finish. Not reloaded (logged when they differ; they take a restart):
//! the shard layout, the admin listener, `[management]` (adding it is refused), and the
//! prober's and discovery's own settings.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use conf::Config;

use crate::control::{Control, Message};
use crate::listener::{ListenerId, ids};
use crate::upstream::discovery::Resolver;

/// Reloads `path` over `running`; the new config, or why it was refused.
pub fn reload(
    path: &Path,
    running: &Config,
    control: &Control,
    resolve: &Resolver,
) -> Result<Arc<Config>, String> {
    let new = conf::load(path).map_err(|e| e.to_string())?;
    let (now, then) = (ids(&new.listen), ids(&running.listen));
    let added: Vec<ListenerId> = now.iter().filter(|a| !then.contains(a)).copied().collect();
    let removed: Vec<ListenerId> = then.iter().filter(|a| !now.contains(a)).copied().collect();
    let added_addrs: Vec<SocketAddr> = added.iter().map(|a| a.addr).collect();
    if running.management.is_none() && new.management.is_some() {
        return Err(
            "[management] was added: it takes a restart (the store is opened at start)".into(),
        );
    }
    let restart_only = [
        ("[admin]", new.admin != running.admin),
        ("[management]", new.management != running.management),
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
    let (sockets, bound) =
        crate::listener::bind_all(&added_addrs, control.shards(), new.server.backlog)
            .map_err(|e| format!("cannot listen on {added_addrs:?}: {e}"))?;
    let new = Arc::new(new);
    for (i, mine) in sockets.into_iter().enumerate() {
        control.send(i, Message::Config(new.clone()));
        if !mine.is_empty() {
            control.send(
                i,
                Message::Listen(added.iter().copied().zip(mine).collect()),
            );
        }
        if !removed.is_empty() {
            control.send(i, Message::Unlisten(removed.clone()));
        }
    }
    for a in bound {
        crate::log!(Info, "reload: listening on {a}");
    }
    for a in &removed {
        crate::log!(
            Info,
            "reload: no longer listening on {a} (its connections finish)"
        );
    }
    Ok(new)
}
