//! Background work a stage asks its shard to run (JWKS refreshes, token introspections): the stage says what and when, the shard does the IO, sans-IO here.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// One piece of IO a task wants done.
#[derive(Clone, PartialEq, Eq)]
pub enum Job {
    /// `GET path` over HTTP/1.1 to `addr` with `Host: host`; the body of a 200 answer.
    HttpGet {
        /// Where to connect.
        addr: SocketAddr,
        /// Host field value (and, over TLS, the name verified; its port left out).
        host: Rc<str>,
        /// Over TLS, verified against this CA bundle (PEM), or the public web PKI roots when
        /// `None`; `tls = false`: plain HTTP.
        tls: bool,
        /// See `tls`.
        ca: Option<Rc<PathBuf>>,
        /// Request path (origin-form).
        path: Rc<str>,
        /// Longest body accepted.
        max_bytes: usize,
        /// Connect plus whole-answer deadline.
        timeout: Duration,
    },
    /// `POST path` with a form body (an RFC 7662 introspection) to `addr`; the body of a
    /// 200 answer.
    HttpPost {
        /// Where to connect.
        addr: SocketAddr,
        /// Host field value (and, over TLS, the name verified).
        host: Rc<str>,
        /// Over TLS (see `HttpGet`).
        tls: bool,
        /// See `HttpGet`.
        ca: Option<Rc<PathBuf>>,
        /// Request path (origin-form).
        path: Rc<str>,
        /// More field lines (`Name: value\r\n`): the client's credentials, the body's type.
        fields: Rc<[u8]>,
        /// The body.
        body: Vec<u8>,
        /// Longest answer body accepted.
        max_bytes: usize,
        /// Connect plus whole-answer deadline.
        timeout: Duration,
    },
    /// Read a local file whole.
    ReadFile {
        /// The file.
        path: Rc<PathBuf>,
        /// Largest file accepted.
        max_bytes: usize,
    },
}

/// Never the fields or body of a POST (credentials, a token) in a log line.
impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::HttpGet {
                addr, host, path, ..
            } => write!(f, "GET {host}{path} at {addr}"),
            Job::HttpPost {
                addr, host, path, ..
            } => write!(f, "POST {host}{path} at {addr}"),
            Job::ReadFile { path, .. } => write!(f, "read {}", path.display()),
        }
    }
}

/// What a task wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run this job now, then report with `Task::done`.
    Run(Job),
    /// Nothing now: ask again at this time (`None`: only when woken).
    Sleep(Option<Instant>),
}

/// A stage's background task. Every call gets the time; none may block.
pub trait Task {
    /// Names the task in log lines (`jwks_url http://…`).
    fn describe(&self) -> String;
    /// What to do at `now`.
    fn next(&self, now: Instant) -> Next;
    /// The job's result (the bytes read, or why not); returns a line to log (empty: none),
    /// `Err` for a failure.
    fn done(&self, result: Result<Vec<u8>, String>, now: Instant) -> Result<String, String>;
    /// Raised by the stage when it wants `next` asked before the time it gave.
    fn wake(&self) -> &Wake;
}

/// A one-thread wake-up: a stage raises it from a hook, the task's runner awaits it.
#[derive(Default)]
pub struct Wake {
    raised: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Wake {
    /// Wakes the waiting runner (or the next one to wait).
    pub fn raise(&self) {
        self.raised.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Completes once the wake-up was raised, and lowers it.
    pub fn raised(&self) -> Raised<'_> {
        Raised(self)
    }
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wake")
            .field("raised", &self.raised.get())
            .finish_non_exhaustive()
    }
}

/// The future of `Wake::raised`.
#[derive(Debug)]
pub struct Raised<'a>(&'a Wake);

impl Future for Raised<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.raised.replace(false) {
            Poll::Ready(())
        } else {
            self.0.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake as StdWake;

    struct Count(AtomicUsize);
    impl StdWake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_raise_wakes_the_waiter_once_and_is_lowered_by_it() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let wake = Wake::default();
        let mut fut = wake.raised();
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Pending);
        wake.raise();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(()));
        // lowered: the next wait waits again
        let mut again = wake.raised();
        assert_eq!(Pin::new(&mut again).poll(&mut cx), Poll::Pending);
        // raised before anyone waits: the next wait completes at once
        let early = Wake::default();
        early.raise();
        assert_eq!(Pin::new(&mut early.raised()).poll(&mut cx), Poll::Ready(()));
    }
}
