//! Letters between shards: a stage on one shard posts a `Letter` to the same stage on
//! another (a cache asking the shard that owns a key). The shard installs how its letters
//! are sent (`set_sender`: into the other shard's inbox, at once, so a letter posted while
//! an exchange runs is on its way before the client sees the answer); the other shard hands
//! it to the addressed stage's `on_letter`. Without a sender (a stage tested alone) letters
//! wait in a queue per thread for `take`.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

/// Which stage of a config a letter is for: the list it is in (a route's index and name,
/// `None` for the global `[[policy]]` list) and its place in that list. The same on every
/// shard; the name catches a route a reload moved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// The route whose `[[route.policy]]` has the stage (`None`: the global list).
    pub route: Option<(u32, Arc<str>)>,
    /// Its index in that list.
    pub position: u16,
}

/// A message for one stage on one shard.
pub struct Letter {
    /// The shard it goes to.
    pub to: usize,
    /// The stage it is for.
    pub address: Address,
    /// What the stage makes of it (it knows its own letters' types).
    pub body: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Letter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Letter")
            .field("to", &self.to)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The `to` of a letter for this node's lease broker (a thread with the Redis connection),
/// and the `from` of its answers.
pub const BROKER: usize = usize::MAX;

/// How this thread's (shard's) letters are sent.
pub type Sender = Box<dyn Fn(Letter)>;

thread_local! {
    static SENDER: RefCell<Option<Sender>> = const { RefCell::new(None) };
    static QUEUE: RefCell<Vec<Letter>> = const { RefCell::new(Vec::new()) };
}

/// Sets how the letters this thread's stages post are sent.
pub fn set_sender(send: Sender) {
    SENDER.with(|s| *s.borrow_mut() = Some(send));
}

/// Posts a letter from this shard.
pub fn post(letter: Letter) {
    let unsent = SENDER.with(|s| match &*s.borrow() {
        Some(send) => {
            send(letter);
            None
        }
        None => Some(letter),
    });
    if let Some(l) = unsent {
        QUEUE.with(|q| q.borrow_mut().push(l));
    }
}

/// The letters posted on this thread without a sender, since the last call.
pub fn take() -> Vec<Letter> {
    QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn letter(to: usize) -> Letter {
        Letter {
            to,
            address: Address::default(),
            body: Box::new(to),
        }
    }

    #[test]
    fn letters_wait_without_a_sender_and_go_at_once_with_one() {
        post(letter(1));
        post(letter(2));
        assert_eq!(take().iter().map(|l| l.to).collect::<Vec<_>>(), [1, 2]);
        assert!(take().is_empty());
        let sent = Rc::new(RefCell::new(Vec::new()));
        let s = sent.clone();
        set_sender(Box::new(move |l| s.borrow_mut().push(l.to)));
        post(letter(3));
        assert_eq!(*sent.borrow(), [3]);
        assert!(take().is_empty());
    }
}
