//! Cross-shard control, the one place with cross-thread types: each shard has an inbox (a
//! channel plus a wake-up socket its runtime waits on), and `Control` sends to every inbox.
//!
//! Messages: drain now, report counters, a health verdict from the prober, a group's new
//! targets from discovery, a reloaded config, listeners, purges, a management catalogue,
//! and letters between the
//! copies of a stage on different shards (`Peers`). A shard handles its inbox between
//! requests, so nothing here touches the request path; the control side never blocks on a
//! shard (replies come back on channels it reads with a deadline).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// A message to one shard.
#[derive(Debug)]
pub enum Message {
    /// Stop accepting, finish in-flight requests (within `drain_timeout`), then stop.
    Drain,
    /// Send a snapshot of the shard's counters back on this channel.
    Counters(Sender<ShardCounters>),
    /// The prober's verdict on one target: mark it up or down.
    Health(Verdict),
    /// Discovery found a group's targets changed: rebuild it with these.
    Targets(TargetSet),
    /// A reloaded configuration (validated and compiled once on the control side): new
    /// exchanges run on it, those in flight finish on theirs.
    Config(Arc<conf::Config>),
    /// Start accepting on these sockets, bound for the listeners configured at these
    /// addresses (a reload added them; sent after the config that has them).
    Listen(Vec<(crate::listener::ListenerId, std::net::TcpListener)>),
    /// Stop accepting on these listeners (a reload removed them).
    Unlisten(Vec<crate::listener::ListenerId>),
    /// Reopen the access log's file (SIGUSR1, after logrotate moved it).
    ReopenLog,
    /// Drop cached responses that match; reply with how many were dropped.
    Purge(Purge, Sender<u64>),
    /// A new version of the management catalogue; the shard says it has it (with the
    /// version) on the channel, when there is one.
    Catalogue(Arc<policy::catalogue::Catalogue>, Option<Sender<u64>>),
    /// Hand the call figures counted since the last time over on this channel (with how
    /// many exchanges were dropped past the bound).
    Calls(Sender<(Vec<crate::calls::CallRow>, u64)>),
    /// A letter a stage on shard `from` posted to its copy on this shard.
    Letter {
        /// The shard that posted it.
        from: usize,
        /// The letter.
        letter: policy::letter::Letter,
    },
}

pub use policy::cache::Purge;

/// A group's targets as discovery found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSet {
    /// The group's name.
    pub upstream: Arc<str>,
    /// Its targets: address, name as written, weight.
    pub targets: Arc<[Target]>,
}

/// One discovered target: its address, its name as written (Host, SNI, hash-ring identity)
/// and weight.
pub type Target = (std::net::SocketAddr, String, u32);

/// An active health check's verdict on a target of an upstream group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The group's name.
    pub upstream: Arc<str>,
    /// The target's address.
    pub target: std::net::SocketAddr,
    /// Up (serving) or down.
    pub up: bool,
}

/// One target as one shard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCounters {
    /// Its group.
    pub upstream: String,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// Marked down by the active health checks.
    pub down: bool,
    /// Ejected by outlier detection now.
    pub ejected: bool,
    /// Ejections since it last stayed healthy.
    pub ejections: u32,
    /// Its circuit: `"closed"`, `"open"`, `"half_open"` (`"closed"` without a breaker).
    pub circuit: &'static str,
    /// Requests in flight to it from this shard.
    pub in_flight: u32,
    /// Attempts, errors, connects and reuse from this shard.
    pub traffic: crate::stats::TrafficSnapshot,
}

/// One shard's counters at one moment (a plain copy: nothing shared with the shard).
#[derive(Debug, Clone, Default)]
pub struct ShardCounters {
    /// Shard number.
    pub shard: usize,
    /// Client connections accepted.
    pub accepted: u64,
    /// Connections answered 503 over `max_connections`.
    pub over_limit: u64,
    /// HTTP/2 connections: established, refused at the handshake, ended for a flood.
    pub h2: [u64; 3],
    /// Client connections open now.
    pub open: u64,
    /// Of those, idle keep-alive connections parked (holding no buffers).
    pub parked: u64,
    /// Exchanges begun (a request head parsed, or failing to parse).
    pub requests: u64,
    /// Exchanges finished (`on_finish` ran): every one begun, once it ended.
    pub finished: u64,
    /// Finished exchanges by outcome: answered, refused, forwarded, failed, aborted.
    pub outcomes: [u64; 5],
    /// Finished exchanges by status class: none sent, 1xx, 2xx, 3xx, 4xx, 5xx.
    pub classes: [u64; 6],
    /// Refusals by route and reason.
    pub refusals: Vec<(String, &'static str, u64)>,
    /// Stages' own figures by route and stage kind (a cache's hits, misses, bytes).
    pub stage_figures: Vec<(String, &'static str, policy::Figure)>,
    /// TLS handshakes with clients: full TLS 1.2, full TLS 1.3, resumed.
    pub tls_handshakes: [u64; 3],
    /// Failed TLS handshakes by reason (only reasons seen).
    pub tls_failures: Vec<(&'static str, u64)>,
    /// Every upstream target's state on this shard.
    pub targets: Vec<TargetCounters>,
    /// Upstream attempts that were retries to another target.
    pub retries: u64,
    /// Upgraded connections (WebSocket tunnels) that ended.
    pub tunnels: u64,
    /// Every route's responses and latencies (the unrouted ones named `""`).
    pub routes: Vec<crate::stats::RouteSnapshot>,
    /// Each listener's address, scheme and connections accepted.
    pub listeners: Vec<(std::net::SocketAddr, &'static str, u64)>,
    /// Access-log lines: written, dropped (the writer was behind), lost (it could not write).
    pub log_lines: [u64; 3],
}

/// A shard's side: where its messages arrive.
pub struct Inbox {
    /// The messages.
    pub rx: Receiver<Message>,
    /// Readable when a message was sent (one byte per wake-up; closed when `Control` is gone).
    pub wake: UnixStream,
    /// Set by the shard just before it waits on `wake` (`sleep`); a sender writes the
    /// wake-up byte only when it is set, so a busy shard is sent no bytes.
    pub asleep: Arc<AtomicBool>,
}

/// Says a shard whose inbox is `rx` is about to wait for a wake-up byte; returns the next
/// message if one came in meanwhile (its sender saw the shard awake and wrote no byte), so
/// nothing waits unseen.
pub fn sleep(rx: &Receiver<Message>, asleep: &AtomicBool) -> Option<Message> {
    asleep.store(true, Ordering::SeqCst);
    // pairs with the fence in `Mailbox::send`: either the sender sees `asleep`, or this
    // sees its message
    std::sync::atomic::fence(Ordering::SeqCst);
    let m = rx.try_recv().ok()?;
    asleep.store(false, Ordering::SeqCst);
    Some(m)
}

/// The control side of one shard's inbox.
struct Mailbox {
    tx: Sender<Message>,
    wake: UnixStream,
    asleep: Arc<AtomicBool>,
}

impl Mailbox {
    /// Queues `message` and wakes the shard if it waits; false if it has stopped.
    fn send(&self, message: Message) -> bool {
        if self.tx.send(message).is_err() {
            return false;
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        !self.asleep.swap(false, Ordering::SeqCst) || self.wake()
    }

    /// Wakes the shard to look at its inbox.
    fn wake(&self) -> bool {
        // A full socket buffer means unread wake-ups are pending: the shard will look anyway.
        match (&self.wake).write_all(&[1]) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }
}

/// Sends messages to every shard. Held by the main thread (and tests); when it is dropped
/// the shards' wake-up sockets close and they drain.
pub struct Control {
    mailboxes: Vec<Arc<Mailbox>>,
    broker: Option<Sender<(usize, policy::letter::Letter)>>,
}

/// A shard's way to the other shards' inboxes (letters between stages). It does not keep
/// them open: once `Control` is gone, sending fails.
pub struct Peers {
    mailboxes: Vec<Weak<Mailbox>>,
    /// The node's lease broker (`[redis]`), when it runs.
    broker: Option<Sender<(usize, policy::letter::Letter)>>,
}

impl Peers {
    /// Sends a letter a stage on shard `from` posted (to another shard, or to the broker),
    /// and wakes the shard it goes to.
    pub fn send(&self, from: usize, letter: policy::letter::Letter) {
        if letter.to == policy::letter::BROKER {
            if let Some(b) = &self.broker {
                let _ = b.send((from, letter));
            }
            return;
        }
        if let Some(m) = self.mailboxes.get(letter.to).and_then(Weak::upgrade) {
            m.send(Message::Letter { from, letter });
        }
    }
}

impl Control {
    /// A control for `shards` shards, and each shard's inbox.
    pub fn new(shards: usize) -> std::io::Result<(Control, Vec<Inbox>)> {
        let mut mailboxes = Vec::with_capacity(shards);
        let mut inboxes = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (tx, rx) = mpsc::channel();
            let (ours, theirs) = UnixStream::pair()?;
            // the control side never waits on a shard; the shard sets its end up for its
            // driver (`runtime::shard_main`)
            ours.set_nonblocking(true)?;
            let asleep = Arc::new(AtomicBool::new(true));
            mailboxes.push(Arc::new(Mailbox {
                tx,
                wake: ours,
                asleep: asleep.clone(),
            }));
            inboxes.push(Inbox {
                rx,
                wake: theirs,
                asleep,
            });
        }
        Ok((
            Control {
                mailboxes,
                broker: None,
            },
            inboxes,
        ))
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.mailboxes.len()
    }

    /// Sends `message` to shard `i`; false if that shard has stopped.
    pub fn send(&self, i: usize, message: Message) -> bool {
        self.mailboxes.get(i).is_some_and(|m| m.send(message))
    }

    /// What each shard sends its letters to the others (and to the broker) with.
    pub fn peers(&self) -> Peers {
        Peers {
            mailboxes: self.mailboxes.iter().map(Arc::downgrade).collect(),
            broker: self.broker.clone(),
        }
    }

    /// Where lease requests go from now on (peers made after this call).
    pub fn set_broker(&mut self, broker: Sender<(usize, policy::letter::Letter)>) {
        self.broker = Some(broker);
    }

    /// Sends a health verdict to every shard.
    pub fn broadcast_health(&self, v: &Verdict) {
        for i in 0..self.shards() {
            self.send(i, Message::Health(v.clone()));
        }
    }

    /// Sends a group's new targets to every shard.
    pub fn broadcast_targets(&self, t: &TargetSet) {
        for i in 0..self.shards() {
            self.send(i, Message::Targets(t.clone()));
        }
    }

    /// Asks every shard to reopen its access log.
    pub fn reopen_logs(&self) {
        for i in 0..self.shards() {
            self.send(i, Message::ReopenLog);
        }
    }

    /// Asks every shard to drain.
    pub fn request_drain(&self) {
        for i in 0..self.shards() {
            self.send(i, Message::Drain);
        }
    }

    /// Sends every shard the message `make` builds around a reply channel, and gathers the
    /// replies that come before `limit` passed (shards that did not answer in time are
    /// missing).
    pub fn gather<T>(&self, make: impl Fn(Sender<T>) -> Message, limit: Duration) -> Vec<T> {
        let (tx, rx) = mpsc::channel();
        let asked = (0..self.shards())
            .filter(|&i| self.send(i, make(tx.clone())))
            .count();
        drop(tx);
        let end = Instant::now() + limit;
        let mut all = Vec::with_capacity(asked);
        while all.len() < asked {
            match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(c) => all.push(c),
                Err(_) => break,
            }
        }
        all
    }

    /// Asks every shard for its counters and waits for the answers until `limit` passed;
    /// shards that did not answer in time are missing from the result.
    pub fn counters(&self, limit: Duration) -> Vec<ShardCounters> {
        let mut all = self.gather(Message::Counters, limit);
        all.sort_by_key(|c| c.shard);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_message_is_queued_and_its_shard_woken() -> std::io::Result<()> {
        let (control, mut inboxes) = Control::new(2)?;
        assert!(control.send(1, Message::Drain));
        let inbox = &mut inboxes[1];
        let mut byte = [0u8; 8];
        assert_eq!(inbox.wake.read(&mut byte)?, 1);
        assert!(matches!(inbox.rx.try_recv(), Ok(Message::Drain)));
        assert!(
            inboxes[0].rx.try_recv().is_err(),
            "shard 0 was not sent anything"
        );
        assert!(!control.send(2, Message::Drain), "there is no shard 2");
        // a shard that is gone: sending fails instead of blocking
        drop(inboxes);
        assert!(!control.send(0, Message::Drain));
        Ok(())
    }

    #[test]
    fn only_a_shard_that_said_it_sleeps_is_sent_a_wake_up_byte() -> std::io::Result<()> {
        let (control, inboxes) = Control::new(1)?;
        let inbox = &inboxes[0];
        inbox.wake.set_nonblocking(true)?;
        let bytes = || {
            let mut b = [0u8; 8];
            (&inbox.wake).read(&mut b).unwrap_or(0)
        };
        // asleep from the start: the first message wakes it
        assert!(control.send(0, Message::ReopenLog));
        assert!(control.send(0, Message::ReopenLog));
        assert_eq!(bytes(), 1, "one byte: the second found it awake");
        assert!(inbox.rx.try_recv().is_ok() && inbox.rx.try_recv().is_ok());
        // going to sleep with a message that came in unannounced: it gets that first
        assert!(control.send(0, Message::ReopenLog));
        assert_eq!(bytes(), 0);
        assert!(matches!(
            sleep(&inbox.rx, &inbox.asleep),
            Some(Message::ReopenLog)
        ));
        // asleep with nothing queued: the next message writes a byte
        assert!(sleep(&inbox.rx, &inbox.asleep).is_none());
        assert!(control.send(0, Message::Drain));
        assert_eq!(bytes(), 1);
        Ok(())
    }
}
