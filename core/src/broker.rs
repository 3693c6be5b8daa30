//! The node's lease broker: the one thread that speaks to Redis. Shards' `rate_limit`
//! stages with `scope = "global"` post it lease requests (`policy::letter::BROKER`); it runs
//! one atomic script per request on the key's bucket (refill by elapsed time on Redis's
//! clock, grant up to the batch) and posts the answer back to the asking stage's inbox. No
//! shard ever waits on Redis; a Redis that is away or slow is a `Down` answer, and it is
//! reconnected to at most twice a second.

use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use policy::letter::{BROKER, Letter};
use policy::stages::rate_limit::lease::{Ask, Reply};

use crate::control::Peers;

/// The bucket script: KEYS[1] the bucket; ARGV tokens per ms, burst, tokens wanted, ms to
/// keep an idle bucket. Returns {granted, ms until one token when none was granted}.
const LEASE: &str = r"
local per_ms = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1])
local at = tonumber(v[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * per_ms)
end
local grant = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - grant
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local next_ms = 0
if grant == 0 then
  next_ms = math.ceil((1 - tokens) / per_ms)
end
return {grant, next_ms}
";

/// How long after a failed connect the broker tries again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// The broker's settings, from `[redis]`.
pub struct Settings {
    /// `redis://…` with database and password.
    pub url: String,
    /// To connect.
    pub connect_timeout: Duration,
    /// Per command.
    pub command_timeout: Duration,
}

impl Settings {
    /// From `[redis]` (the password file read relative to `dir`).
    pub fn new(r: &conf::redis::RedisConf, dir: &std::path::Path) -> Result<Settings, String> {
        let password = match &r.password_file {
            Some(f) => {
                let path = dir.join(f.get_ref());
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("[redis] password_file {}: {e}", path.display()))?;
                let encoded: String = text
                    .trim_end_matches(['\n', '\r'])
                    .bytes()
                    .map(|b| {
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
        Ok(Settings {
            url: format!("redis://{password}{}/{}", r.address.get_ref(), r.database),
            connect_timeout: r.connect_timeout.0,
            command_timeout: r.command_timeout.0,
        })
    }
}

/// Starts the broker thread; what shards send it lease requests with.
pub fn start(settings: Settings, peers: Peers) -> std::io::Result<Sender<(usize, Letter)>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sg-lease".into())
        .spawn(move || serve(&settings, &rx, &peers))?;
    Ok(tx)
}

/// The Redis side: a connection made when needed, dropped on any error.
struct Store {
    client: Option<redis::Client>,
    conn: Option<redis::Connection>,
    tried: Option<Instant>,
    down_logged: bool,
}

impl Store {
    fn connection(&mut self, s: &Settings) -> Option<&mut redis::Connection> {
        if self.conn.is_none() && self.tried.is_none_or(|t| t.elapsed() >= RETRY_AFTER) {
            self.tried = Some(Instant::now());
            let made = self
                .client
                .as_ref()
                .map(|c| c.get_connection_with_timeout(s.connect_timeout));
            match made {
                Some(Ok(c)) => {
                    let _ = c.set_read_timeout(Some(s.command_timeout));
                    let _ = c.set_write_timeout(Some(s.command_timeout));
                    if self.down_logged {
                        crate::log!(
                            Info,
                            "[redis] reachable again: global rate limits lease from it"
                        );
                        self.down_logged = false;
                    }
                    self.conn = Some(c);
                }
                Some(Err(e)) => self.fail(&e.to_string()),
                None => {}
            }
        }
        self.conn.as_mut()
    }

    fn fail(&mut self, why: &str) {
        self.conn = None;
        if !self.down_logged {
            crate::log!(
                Warn,
                "[redis] unavailable ({why}): rate limits follow on_redis_down"
            );
            self.down_logged = true;
        }
    }

    /// Runs one lease on Redis.
    fn lease(&mut self, s: &Settings, script: &redis::Script, a: &Ask) -> Reply {
        let Some(conn) = self.connection(s) else {
            return Reply::Down { hash: a.hash };
        };
        let got: redis::RedisResult<(i64, i64)> = script
            .key(&a.key)
            .arg(a.per_ms)
            .arg(a.burst)
            .arg(a.want)
            .arg(a.keep_ms)
            .invoke(conn);
        match got {
            Ok((granted, next_ms)) => Reply::Granted {
                hash: a.hash,
                tokens: u32::try_from(granted.max(0)).unwrap_or(0),
                next_ms: u64::try_from(next_ms.max(0)).unwrap_or(0),
            },
            Err(e) => {
                self.fail(&e.to_string());
                Reply::Down { hash: a.hash }
            }
        }
    }
}

fn serve(s: &Settings, rx: &Receiver<(usize, Letter)>, peers: &Peers) {
    let client = redis::Client::open(s.url.as_str());
    if let Err(e) = &client {
        crate::log!(
            Warn,
            "[redis] address not usable ({e}): rate limits follow on_redis_down"
        );
    }
    let mut store = Store {
        client: client.ok(),
        conn: None,
        tried: None,
        down_logged: false,
    };
    let script = redis::Script::new(LEASE);
    while let Ok((from, letter)) = rx.recv() {
        let Letter { address, body, .. } = letter;
        let Ok(ask) = body.downcast::<Ask>() else {
            continue;
        };
        let reply = store.lease(s, &script, &ask);
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
