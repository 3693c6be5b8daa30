//! `shared = true`: one copy of each response for the whole gateway. A key's owner is the
//! shard its hash names, and only the owner stores it. Another shard asks the owner by
//! letter (`Note::Ask`), waits for the answer (a copy of the entry, or a miss), and sends
//! the owner what it then fetched (`Store`), revalidated (`Replace`) or invalidated. Misses
//! coalesce at the owner: while one shard fetches a key, lookups from the others are
//! parked there and answered when it lands. No state is shared between threads: entries
//! cross as parcels (their bodies shared, not copied).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use proto::RequestHead;

use super::coalesce::live;
use super::{Cache, Pending};
use crate::cache::entry::{Entry, Parcel};
use crate::cache::table::{Fill, Found, bump};
use crate::exchange::Exchange;
use crate::gate::Gate;
use crate::letter::{Address, Letter, post};
use crate::stage::{Figure, StageContext, Verdict};

/// A request's fields as the exchange keeps them: lowercased names and values.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The value of field `name` in `fields`.
fn field<'a>(fields: &'a Fields, name: &[u8]) -> Option<&'a [u8]> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| &v[..])
}

/// A request's fields in a letter: `name:value\n` lines (names lowercased) in one buffer, so
/// a lookup costs one allocation, not two per field. A parsed value holds no CR or LF and
/// a name no colon.
#[derive(Default)]
struct Lines(Vec<u8>);

impl Lines {
    fn push(&mut self, name: &[u8], value: &[u8]) {
        self.0.extend(name.iter().map(u8::to_ascii_lowercase));
        self.0.push(b':');
        self.0.extend_from_slice(value);
        self.0.push(b'\n');
    }

    /// The value of the first field called `name` (lowercase).
    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.0.split(|&c| c == b'\n').find_map(|line| {
            let colon = line.iter().position(|&c| c == b':')?;
            let (n, v) = line.split_at(colon);
            (n == name).then(|| v.get(1..).unwrap_or_default())
        })
    }
}

/// A lookup from another shard waiting, at the owner, for a miss in flight to land.
pub(super) struct Parked {
    from: usize,
    ticket: u64,
    fields: Lines,
}

/// What the owner answers a lookup with.
enum Shipped {
    /// What is stored for the request.
    Entry(Box<Parcel>),
    /// Nothing (`vary`: responses under the key, none for this variant).
    Miss { vary: bool },
    /// Nothing, and the asker is the one to fetch it: the owner's other lookups for the key
    /// wait on the owner's flight `flight` until it reports `Store` or `Done`.
    Fill {
        vary: bool,
        primary: Vec<u8>,
        flight: u64,
    },
}

/// The letters between the copies of one cache stage.
enum Note {
    /// What is stored for this request?
    Ask(Ask),
    /// The answer to the lookup `ticket`.
    Answer { ticket: u64, shipped: Shipped },
    /// Store this response (`fields`: the request's values of the fields it varies on).
    Store {
        primary: Vec<u8>,
        url: Vec<u8>,
        fields: Lines,
        fill: Box<Fill>,
    },
    /// Re-store this entry (freshened by the origin's `304`).
    Replace(Box<Parcel>),
    /// An unsafe request to this key succeeded.
    Invalidate(Vec<u8>),
    /// The fetch the owner gave out for this key and flight (`Shipped::Fill`) stored nothing.
    Done(Vec<u8>, u64),
}

/// A lookup out to the owner: the gate its exchange waits on, and the answer once it came.
struct Asked {
    gate: Rc<Gate>,
    answer: Option<Shipped>,
}

/// A shared cache stage's part on one shard.
pub(super) struct Share {
    /// This shard.
    pub(super) shard: usize,
    shards: u64,
    address: Address,
    /// The same on every shard, so they agree on owners.
    hasher: ahash::RandomState,
    /// The longest a lookup waits for its answer.
    wait: Duration,
    asking: RefCell<ahash::AHashMap<u64, Asked>>,
    /// Lookups sent to owners, and answered for other shards.
    asked: Cell<u64>,
    answered: Cell<u64>,
}

impl Share {
    /// The part of the stage at `ctx.address` on shard `ctx.shard`.
    pub(super) fn new(ctx: &StageContext<'_>, wait: Duration) -> Share {
        Share {
            shard: ctx.shard,
            shards: ctx.shards.max(1) as u64,
            address: ctx.address.clone(),
            hasher: ahash::RandomState::with_seeds(
                0x5368_6172_6467_6174,
                0x6520_6361_6368_6520,
                0x6f77_6e65_7273_2121,
                0x0123_4567_89ab_cdef,
            ),
            wait,
            asking: RefCell::default(),
            asked: Cell::new(0),
            answered: Cell::new(0),
        }
    }

    /// The shard that owns `primary`.
    pub(super) fn owner(&self, primary: &[u8]) -> usize {
        usize::try_from(self.hasher.hash_one(primary) % self.shards).unwrap_or(0)
    }

    /// Forgets the lookup of exchange `serial`, if one is out (it finished without looking
    /// at the answer); a fetch the answer gave it is handed back.
    pub(super) fn forget_ask(&self, serial: u64) {
        if self.asking.borrow().is_empty() {
            return;
        }
        let asked = self.asking.borrow_mut().remove(&serial);
        if let Some(Asked {
            answer: Some(Shipped::Fill {
                primary, flight, ..
            }),
            ..
        }) = asked
        {
            self.send(self.owner(&primary), Note::Done(primary, flight));
        }
    }

    /// Its figures.
    pub(super) fn figures(&self) -> [Figure; 2] {
        [
            Figure {
                name: "asked",
                value: self.asked.get(),
                gauge: false,
                labels: Vec::new(),
            },
            Figure {
                name: "answered",
                value: self.answered.get(),
                gauge: false,
                labels: Vec::new(),
            },
        ]
    }

    fn send(&self, to: usize, note: Note) {
        post(Letter {
            to,
            address: self.address.clone(),
            body: Box::new(note),
        });
    }
}

impl Cache {
    /// The share and owner of `primary` when another shard owns it.
    fn remote(&self, primary: &[u8]) -> Option<(&Share, usize)> {
        let share = self.share.as_deref()?;
        let owner = share.owner(primary);
        (owner != share.shard).then_some((share, owner))
    }

    /// A lookup of a key another shard owns: the answer, once it came (or, the wait over,
    /// a miss); else the lookup is sent and the exchange waits for it.
    pub(super) fn ask(
        &self,
        share: &Share,
        p: &mut Pending,
        head: &RequestHead,
        buf: &[u8],
        ex: &Exchange,
    ) -> Result<Found, Verdict<'_>> {
        let miss = |vary| {
            if vary {
                Found::VaryMiss
            } else {
                Found::UriMiss
            }
        };
        let asked = share.asking.borrow_mut().remove(&ex.serial);
        if let Some(a) = asked {
            return Ok(match a.answer {
                Some(Shipped::Entry(parcel)) => Found::Entry(Rc::new(Entry::unpack(*parcel))),
                Some(Shipped::Miss { vary }) => miss(vary),
                Some(Shipped::Fill { vary, flight, .. }) => {
                    p.filler = Some(flight);
                    miss(vary)
                }
                None => Found::UriMiss,
            });
        }
        if ex.waits >= crate::stage::MAX_WAITS {
            return Ok(Found::UriMiss);
        }
        let gate = Rc::new(Gate::new(share.wait));
        let asked = Asked {
            gate: gate.clone(),
            answer: None,
        };
        share.asking.borrow_mut().insert(ex.serial, asked);
        let mut fields = Lines(Vec::with_capacity(head.head_len));
        for f in &head.fields {
            fields.push(f.name.get(buf), f.value.get(buf));
        }
        let note = Note::Ask(Ask {
            ticket: ex.serial,
            primary: p.primary.clone(),
            fields,
            coalesce: self.coalesce.is_some() && p.request.get && !p.request.cc.only_if_cached,
        });
        share.send(share.owner(&p.primary), note);
        bump(&share.asked, 1);
        Err(Verdict::Wait(gate))
    }

    /// Stores a finished fill for the request `p`: here, or at the key's owner.
    /// Its waiters wake at once (they find it), not when the exchange finishes.
    pub(super) fn keep(&self, f: Fill, p: &mut Pending) {
        let Some((share, owner)) = self.remote(&p.primary) else {
            let fields = &p.fields;
            self.table
                .insert(f, &p.primary, &p.url, |n| field(fields, n));
            self.release(p);
            return;
        };
        p.filler = None;
        let mut fields = Lines::default();
        for (n, v) in p.fields.iter().filter(|(n, _)| f.vary.contains(n)) {
            fields.push(n, v);
        }
        let note = Note::Store {
            primary: p.primary.clone(),
            url: std::mem::take(&mut p.url),
            fields,
            fill: Box::new(f),
        };
        share.send(owner, note);
        self.release(p);
    }

    /// Re-stores an entry for `primary` the origin freshened: here, or at its owner.
    pub(super) fn keep_fresh(&self, primary: &[u8], e: Rc<Entry>) {
        match self.remote(primary) {
            None => self.table.replace(e),
            Some((share, owner)) => share.send(owner, Note::Replace(Box::new(e.parcel()))),
        }
    }

    /// Forgets what is stored for `primary`: here, or at its owner.
    pub(super) fn forget(&self, primary: &[u8]) {
        match self.remote(primary) {
            None => self.table.invalidate(primary),
            Some((share, owner)) => share.send(owner, Note::Invalidate(primary.to_vec())),
        }
    }

    /// Tells the owner of `primary` that the fetch it gave out (its flight `flight`) stored
    /// nothing.
    pub(super) fn done(&self, primary: &[u8], flight: u64) {
        if let Some((share, owner)) = self.remote(primary) {
            share.send(owner, Note::Done(primary.to_vec(), flight));
        }
    }

    /// A miss in flight for `primary` ended: the lookups parked on it are answered with what
    /// is stored now.
    pub(super) fn land(&self, primary: &[u8], parked: Vec<Parked>) {
        let Some(share) = self.share.as_deref() else {
            return;
        };
        for w in parked {
            let shipped = self.lookup(primary, &w.fields);
            share.send(
                w.from,
                Note::Answer {
                    ticket: w.ticket,
                    shipped,
                },
            );
        }
    }

    /// What the owner ships for a lookup of `primary` by a request with `fields`.
    fn lookup(&self, primary: &[u8], fields: &Lines) -> Shipped {
        match self.table.find(primary, |n| fields.get(n)) {
            Found::Entry(e) => Shipped::Entry(Box::new(e.parcel())),
            Found::VaryMiss => Shipped::Miss { vary: true },
            Found::UriMiss => Shipped::Miss { vary: false },
        }
    }

    /// A lookup from shard `from`, at the owner: answered now, or parked behind a miss in
    /// flight for the key (one fetch for the whole gateway).
    fn on_ask(&self, share: &Share, from: usize, ask: Ask, wall: u64) {
        bump(&share.answered, 1);
        let Ask {
            ticket,
            primary,
            fields,
            coalesce,
        } = ask;
        let mut shipped = self.lookup(&primary, &fields);
        if let (Shipped::Miss { vary }, Some(wait)) = (&shipped, self.coalesce.filter(|_| coalesce))
        {
            let vary = *vary;
            let mut inflight = self.inflight.borrow_mut();
            if let Some(f) = inflight.get_mut(&primary).filter(|f| live(f, wall, wait)) {
                f.parked.push(Parked {
                    from,
                    ticket,
                    fields,
                });
                bump(&self.table.counts.coalesced, 1);
                return;
            }
            drop(inflight);
            let (_, flight) = self.start_flight(&primary, wall, wait);
            shipped = Shipped::Fill {
                vary,
                primary,
                flight,
            };
        }
        share.send(from, Note::Answer { ticket, shipped });
    }

    /// A letter from this stage's copy on shard `from`.
    pub(super) fn letter(&self, from: usize, body: Box<dyn std::any::Any + Send>, wall: u64) {
        let (Some(share), Ok(note)) = (self.share.as_deref(), body.downcast::<Note>()) else {
            return;
        };
        match *note {
            Note::Ask(ask) => self.on_ask(share, from, ask, wall),
            Note::Answer { ticket, shipped } => {
                let mut asking = share.asking.borrow_mut();
                match asking.get_mut(&ticket) {
                    Some(a) => {
                        a.answer = Some(shipped);
                        a.gate.open();
                    }
                    None => {
                        // the exchange stopped waiting: whoever waits at the owner goes on
                        drop(asking);
                        if let Shipped::Fill {
                            primary, flight, ..
                        } = shipped
                        {
                            share.send(from, Note::Done(primary, flight));
                        }
                    }
                }
            }
            Note::Store {
                primary,
                url,
                fields,
                fill,
            } => {
                self.table.insert(*fill, &primary, &url, |n| fields.get(n));
                self.end_flight(&primary, None);
            }
            Note::Replace(parcel) => self.table.replace(Rc::new(Entry::unpack(*parcel))),
            Note::Invalidate(primary) => self.table.invalidate(&primary),
            Note::Done(primary, flight) => self.end_flight(&primary, Some(flight)),
        }
    }
}

/// A lookup: the asker's exchange (`ticket`), the key, the request's fields (for `Vary`),
/// and whether a miss should coalesce.
struct Ask {
    ticket: u64,
    primary: Vec<u8>,
    fields: Lines,
    coalesce: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_find_each_field_by_its_whole_lowercased_name() {
        let mut l = Lines::default();
        l.push(b"Host", b"a.example:8080");
        l.push(b"Accept-Encoding", b"gzip, br");
        l.push(b"X-Empty", b"");
        l.push(b"accept-encoding", b"second");
        let rows: &[(&[u8], Option<&[u8]>)] = &[
            (b"host", Some(b"a.example:8080")),
            (b"accept-encoding", Some(b"gzip, br")),
            (b"x-empty", Some(b"")),
            (b"accept", None),
            (b"Host", None),
            (b"encoding", None),
            (b"", None),
        ];
        for (name, want) in rows {
            assert_eq!(l.get(name), *want, "{:?}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn every_shard_agrees_on_owners_and_both_own_some() {
        let dir = std::path::Path::new(".");
        let owners = |shard| {
            let address = Address::default();
            let ctx = StageContext {
                shards: 2,
                dir,
                shard,
                address: &address,
                params: &[],
                redis: None,
                upstreams: &[],
                management: false,
            };
            let s = Share::new(&ctx, Duration::from_secs(1));
            (0..64)
                .map(|i| s.owner(format!("h\n/k/{i}").as_bytes()))
                .collect::<Vec<_>>()
        };
        let a = owners(0);
        assert_eq!(a, owners(1));
        assert!(a.contains(&0) && a.contains(&1), "{a:?}");
    }
}
