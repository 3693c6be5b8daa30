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

use toml::Spanned;

use policy::letter::{BROKER, Letter};
use policy::stages::rate_limit::lease::{Ask, GiveBack, Pool, Reply};

use crate::control::Peers;

pub mod scripts;

/// How long after a failed connect the broker tries again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// The broker's settings, from `[redis]`.
pub struct Settings {
    /// The server, database, password and TLS settings (nothing connected yet).
    pub client: redis::Client,
    /// To connect.
    pub connect_timeout: Duration,
    /// Per command.
    pub command_timeout: Duration,
}

/// Reads a `[redis]` file named relative to `dir`.
fn read(
    dir: &std::path::Path,
    what: &str,
    f: Option<&Spanned<String>>,
) -> Result<Option<Vec<u8>>, String> {
    let Some(f) = f else {
        return Ok(None);
    };
    let path = dir.join(f.get_ref());
    std::fs::read(&path)
        .map(Some)
        .map_err(|e| format!("[redis] {what} {}: {e}", path.display()))
}

impl Settings {
    /// From `[redis]` (its files read relative to `dir`).
    pub fn new(r: &conf::redis::RedisConf, dir: &std::path::Path) -> Result<Settings, String> {
        let password = match read(dir, "password_file", r.password_file.as_ref())? {
            Some(bytes) => {
                // the file's last line ends the password
                let end = bytes
                    .iter()
                    .rposition(|&b| b != b'\n' && b != b'\r')
                    .map_or(0, |i| i + 1);
                let encoded: String = bytes
                    .get(..end)
                    .unwrap_or_default()
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                            char::from(b).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                format!(":{encoded}@")
            }
            None => String::new(),
        };
        let scheme = if r.tls { "rediss" } else { "redis" };
        let url = format!(
            "{scheme}://{password}{}/{}",
            r.address.get_ref(),
            r.database
        );
        let ca = read(dir, "ca_file", r.ca_file.as_ref())?;
        let cert = read(dir, "cert_file", r.cert_file.as_ref())?;
        let key = read(dir, "key_file", r.key_file.as_ref())?;
        let client = if ca.is_some() || cert.is_some() {
            let client_tls =
                cert.zip(key)
                    .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                        client_cert,
                        client_key,
                    });
            redis::Client::build_with_tls(
                url.as_str(),
                redis::TlsCertificates {
                    client_tls,
                    root_cert: ca,
                },
            )
        } else {
            redis::Client::open(url.as_str())
        }
        .map_err(|e| format!("[redis] {e}"))?;
        Ok(Settings {
            client,
            connect_timeout: r.connect_timeout.0,
            command_timeout: r.command_timeout.0,
        })
    }
}

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

/// The Redis side: a connection made when needed, dropped on any error.
struct Store {
    client: redis::Client,
    conn: Option<redis::Connection>,
    tried: Option<Instant>,
    down_logged: bool,
}

impl Store {
    fn connection(&mut self, s: &Settings) -> Option<&mut redis::Connection> {
        if self.conn.is_none() && self.tried.is_none_or(|t| t.elapsed() >= RETRY_AFTER) {
            self.tried = Some(Instant::now());
            match self.client.get_connection_with_timeout(s.connect_timeout) {
                Ok(c) => {
                    let _ = c.set_read_timeout(Some(s.command_timeout));
                    let _ = c.set_write_timeout(Some(s.command_timeout));
                    if self.down_logged {
                        crate::log!(
                            Info,
                            "[redis] reachable again: global rate limits and quotas lease from it"
                        );
                        self.down_logged = false;
                    }
                    self.conn = Some(c);
                }
                Err(e) => self.fail(&e.to_string()),
            }
        }
        self.conn.as_mut()
    }

    fn fail(&mut self, why: &str) {
        self.conn = None;
        if !self.down_logged {
            crate::log!(
                Warn,
                "[redis] unavailable ({why}): rate limits and quotas follow on_redis_down"
            );
            self.down_logged = true;
        }
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
                self.fail(&e.to_string());
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
            self.fail(&e.to_string());
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
        client: s.client.clone(),
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
