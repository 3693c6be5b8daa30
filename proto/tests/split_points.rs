//! Every corpus request fed in two reads, split at every byte boundary, gives `Partial` for the
//! first part and the same `Complete` head as the whole request at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod common;

use common::{corpus, parse_head};
use proto::Status;

#[test]
fn every_split_point_gives_partial_then_the_same_head() {
    for (name, bytes) in corpus() {
        let (whole, head) = parse_head(&bytes);
        let Ok(Status::Complete(n)) = whole else {
            panic!("{name}: {whole:?}")
        };
        for cut in 0..n {
            let (r, _) = parse_head(&bytes[..cut]);
            assert_eq!(r, Ok(Status::Partial), "{name} cut at {cut}");
        }
        for cut in n..=bytes.len() {
            let (r, again) = parse_head(&bytes[..cut]);
            assert_eq!(r, Ok(Status::Complete(n)), "{name} cut at {cut}");
            assert_eq!(again.fields, head.fields, "{name}");
            assert_eq!(again.framing, head.framing, "{name}");
        }
    }
}
