//! The node's lease broker: the one thread that speaks to Redis. Shards' `rate_limit`
//! stages with `scope = "global"` and `quota` stages post it lease requests
//! (`policy::letter::BROKER`); it runs one atomic script per request on the key's record
//! (`scripts`: a bucket refilled by elapsed time, or a window's count, on Redis's clock;
//! grant up to the batch) and posts the answer back to the asking stage's inbox. Unspent
//! quota tokens handed back are returned to their window's count. No shard ever waits on
//! Redis; a Redis that is away or slow is a `Down` answer, and it is reconnected to at most
//! twice a second.

use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use policy::letter::{BROKER, Letter};
use policy::stages::rate_limit::lease::{Ask, GiveBack, Pool, Reply};

use crate::control::Peers;

pub mod scripts;
mod settings;

pub use settings::Settings;

/// How long after a failed connect the broker tries again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Starts the broker thread; what shards send it lease requests with.
pub fn start(settings: Settings, peers: Peers) -> std::io::Result<Sender<(usize, Letter)>> {
    // the process's rustls provider, ring, for a TLS connection to Redis (it may be set)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sg-lease".into())
        .spawn(move || serve(&settings, &rx, &peers))?;
    Ok(tx)
}

/// The Redis side: a connection made when needed, dropped on any error; after a failure
/// the next server of `Settings::servers` is tried.
struct Store {
    /// Which server of `Settings::servers` is (or will be) connected.
    at: usize,
    conn: Option<redis::Connection>,
    tried: Option<Instant>,
    down_logged: bool,
}

impl Store {
    fn connection(&mut self, s: &Settings) -> Option<&mut redis::Connection> {
        if self.conn.is_none() && self.tried.is_none_or(|t| t.elapsed() >= RETRY_AFTER) {
            self.tried = Some(Instant::now());
            let (address, client) = s.servers.get(self.at)?;
            match client.get_connection_with_timeout(s.connect_timeout) {
                Ok(c) => {
                    let _ = c.set_read_timeout(Some(s.command_timeout));
                    let _ = c.set_write_timeout(Some(s.command_timeout));
                    if self.down_logged {
                        crate::log!(
                            Info,
                            "[redis] {address} reachable: global rate limits and quotas lease from it"
                        );
                        self.down_logged = false;
                    }
                    self.conn = Some(c);
                }
                Err(e) => self.fail(s, &e.to_string()),
            }
        }
        self.conn.as_mut()
    }

    /// Drops the connection (a failed command or connect) and moves on to the next server.
    fn fail(&mut self, s: &Settings, why: &str) {
        self.conn = None;
        if !self.down_logged {
            let address = s.servers.get(self.at).map_or("", |(a, _)| a.as_str());
            crate::log!(
                Warn,
                "[redis] {address} unavailable ({why}): rate limits and quotas follow on_redis_down"
            );
            self.down_logged = true;
        }
        self.at = (self.at + 1) % s.servers.len().max(1);
    }

    /// Runs one lease on Redis.
    fn lease(&mut self, s: &Settings, scripts: &Scripts, a: &Ask) -> Reply {
        let Some(conn) = self.connection(s) else {
            return Reply::Down { hash: a.hash };
        };
        let got: redis::RedisResult<(i64, i64, i64, i64)> = match a.pool {
            Pool::Bucket {
                per_ms,
                burst,
                keep_ms,
            } => scripts
                .bucket
                .key(&a.key)
                .arg(per_ms)
                .arg(burst)
                .arg(a.want)
                .arg(keep_ms)
                .invoke::<(i64, i64)>(conn)
                .map(|(granted, next)| (granted, next, 0, 0)),
            Pool::Quota {
                limit,
                period,
                copies,
            } => scripts
                .quota
                .key(&a.key)
                .arg(limit)
                .arg(a.want)
                .arg(copies)
                .arg(period.name())
                .arg(0)
                .invoke(conn),
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        match got {
            Ok((granted, next_ms, left, window)) => Reply::Granted {
                hash: a.hash,
                tokens: u32::try_from(granted).unwrap_or(0),
                next_ms: count(next_ms),
                left: count(left),
                window: count(window),
            },
            Err(e) => {
                self.fail(s, &e.to_string());
                Reply::Down { hash: a.hash }
            }
        }
    }

    /// Returns unspent quota tokens (lost, with a log line, when Redis is away).
    fn give_back(&mut self, s: &Settings, scripts: &Scripts, g: &GiveBack) {
        let Some(conn) = self.connection(s) else {
            return;
        };
        let done: redis::RedisResult<i64> = scripts
            .give_back
            .key(&g.key)
            .arg(g.tokens)
            .arg(g.window)
            .invoke(conn);
        if let Err(e) = done {
            self.fail(s, &e.to_string());
        }
    }
}

/// The scripts, hashed once (`EVALSHA`, loaded again when Redis forgot them).
struct Scripts {
    bucket: redis::Script,
    quota: redis::Script,
    give_back: redis::Script,
}

fn serve(s: &Settings, rx: &Receiver<(usize, Letter)>, peers: &Peers) {
    let mut store = Store {
        at: 0,
        conn: None,
        tried: None,
        down_logged: false,
    };
    let scripts = Scripts {
        bucket: redis::Script::new(scripts::BUCKET),
        quota: redis::Script::new(scripts::QUOTA),
        give_back: redis::Script::new(scripts::GIVE_BACK),
    };
    while let Ok((from, letter)) = rx.recv() {
        let Letter { address, body, .. } = letter;
        let ask = match body.downcast::<Ask>() {
            Ok(ask) => ask,
            Err(body) => {
                if let Ok(g) = body.downcast::<GiveBack>() {
                    store.give_back(s, &scripts, &g);
                }
                continue;
            }
        };
        let reply = store.lease(s, &scripts, &ask);
        peers.send(
            BROKER,
            Letter {
                to: from,
                address,
                body: Box::new(reply),
            },
        );
    }
}
