//! `Gate`: a one-shot signal on one shard. A stage hands one out (`Verdict::Wait`) when an
//! exchange should wait for another to finish (a cache miss already on its way upstream);
//! the connection awaits it, bounded in time, and runs the stage again.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A signal that opens once.
#[derive(Debug)]
pub struct Gate {
    open: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
    limit: Duration,
}

impl PartialEq for Gate {
    fn eq(&self, other: &Gate) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Gate {}

impl Gate {
    /// A closed gate that nobody should wait on longer than `limit`.
    pub fn new(limit: Duration) -> Gate {
        Gate {
            open: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
            limit,
        }
    }

    /// The longest a waiter waits.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Opens it and wakes every waiter.
    pub fn open(&self) {
        self.open.set(true);
        for w in self.waiting.take() {
            w.wake();
        }
    }

    /// Whether it opened.
    pub fn is_open(&self) -> bool {
        self.open.get()
    }

    /// Waits until it opens.
    pub fn wait(&self) -> Wait<'_> {
        Wait { gate: self }
    }
}

/// The future of `Gate::wait`.
#[derive(Debug)]
pub struct Wait<'a> {
    gate: &'a Gate,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.gate.open.get() {
            return Poll::Ready(());
        }
        let mut w = self.gate.waiting.borrow_mut();
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn waiters_wake_once_when_it_opens() {
        let gate = Gate::new(Duration::from_secs(1));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut a = std::pin::pin!(gate.wait());
        assert_eq!(a.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(
            a.as_mut().poll(&mut cx),
            Poll::Pending,
            "polled again: one waker kept"
        );
        gate.open();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(a.as_mut().poll(&mut cx), Poll::Ready(()));
        assert!(gate.is_open());
        let mut late = std::pin::pin!(gate.wait());
        assert_eq!(
            late.as_mut().poll(&mut cx),
            Poll::Ready(()),
            "an open gate never waits"
        );
    }
}
