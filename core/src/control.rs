//! Cross-shard control: the one place with atomics. The main thread raises drain; each shard
//! polls it from a watcher task (no locks, nothing on the request path).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared between the main thread and every shard.
#[derive(Debug, Default)]
pub struct Control {
    drain: AtomicBool,
}

impl Control {
    /// A fresh control block.
    pub fn new() -> Arc<Control> {
        Arc::new(Control::default())
    }

    /// Asks every shard to stop accepting and finish in-flight requests.
    pub fn request_drain(&self) {
        self.drain.store(true, Ordering::Release);
    }

    /// Whether drain was requested.
    pub fn drain_requested(&self) -> bool {
        self.drain.load(Ordering::Acquire)
    }
}
