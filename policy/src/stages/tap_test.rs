//! A stage for the pipeline's own unit tests (compiled only for them): it taps response
//! bodies as its `mode` says, and can answer with a reply it holds.

use std::cell::RefCell;
use std::rc::Rc;

use proto::{RequestHead, ResponseHead};
use serde::Deserialize;

use crate::exchange::Exchange;
use crate::reply::LocalReply;
use crate::stage::{BodyTap, Piece, Stage, StageBuild, StageContext, Verdict};

/// `kind = "tap_test"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// "observe" (records what passes), "upper" (upper-cases each piece, "!" at the end),
    /// "wrap" (holds the body back, writes "[body]" at the end) or "serve" (answers).
    pub mode: String,
    /// Most bytes an observer looks at.
    #[serde(default)]
    pub limit: u64,
}

/// The stage.
pub struct TapTest {
    mode: String,
    limit: u64,
    held: RefCell<Vec<u8>>,
    /// What an observer saw, and the events it was told.
    pub seen: RefCell<Vec<String>>,
    reply: Rc<LocalReply>,
}

impl StageBuild for TapTest {
    const KIND: &'static str = "tap_test";
    type Config = Config;

    fn build(c: Config, _ctx: &StageContext<'_>) -> Result<TapTest, String> {
        Ok(TapTest {
            mode: c.mode,
            limit: c.limit,
            held: RefCell::default(),
            seen: RefCell::default(),
            reply: Rc::new(LocalReply::new(200, "text/plain", b"held", &[])),
        })
    }
}

impl Stage for TapTest {
    fn on_request(&self, _head: &RequestHead, _buf: &[u8], _ex: &mut Exchange) -> Verdict<'_> {
        if self.mode == "serve" {
            Verdict::Serve(self.reply.clone())
        } else {
            Verdict::Continue
        }
    }

    fn response_body(&self, _: &ResponseHead, _: &[u8], _: &Exchange) -> Option<BodyTap> {
        match self.mode.as_str() {
            "observe" => Some(BodyTap::Observe { limit: self.limit }),
            "upper" | "wrap" => Some(BodyTap::Rewrite),
            _ => None,
        }
    }

    fn on_response_body(&self, piece: Piece<'_>, _ex: &mut Exchange, out: &mut Vec<u8>) {
        match (self.mode.as_str(), piece) {
            ("observe", Piece::Data(d)) => {
                self.seen
                    .borrow_mut()
                    .push(String::from_utf8_lossy(d).into_owned());
            }
            ("observe", Piece::End) => self.seen.borrow_mut().push("<end>".into()),
            ("observe", Piece::TooLarge) => self.seen.borrow_mut().push("<too large>".into()),
            ("upper", Piece::Data(d)) => out.extend(d.iter().map(u8::to_ascii_uppercase)),
            ("upper", Piece::End) => out.push(b'!'),
            ("wrap", Piece::Data(d)) => self.held.borrow_mut().extend_from_slice(d),
            ("wrap", Piece::End) => {
                out.push(b'[');
                out.append(&mut self.held.borrow_mut());
                out.push(b']');
            }
            _ => {}
        }
    }
}
