//! Parsing a realistic request allocates nothing once the head's field vector exists: a counting
//! global allocator in this test binary checks it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use proto::{
    ChunkedDecoder, Limits, RequestHead, ResponseHead, Status, Step, parse_request, parse_response,
};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parsing_does_not_allocate() {
    let corpus = common::corpus();
    let mut head = RequestHead::with_capacity(100);
    let mut resp = ResponseHead::with_capacity(100);
    let limits = Limits::default();
    let response =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    let before = ALLOCS.load(Ordering::SeqCst);
    for (_, bytes) in &corpus {
        assert!(matches!(
            parse_request(bytes, &mut head, &limits),
            Ok(Status::Complete(_))
        ));
    }
    assert!(matches!(
        parse_response(response, &mut resp, &limits),
        Ok(Status::Complete(_))
    ));
    let mut dec = ChunkedDecoder::new();
    let mut pos = 0;
    while let Ok(step) = dec.step(&body[pos..]) {
        match step {
            Step::Data { consumed, .. } => pos += consumed,
            _ => break,
        }
    }
    assert!(dec.is_done());
    assert_eq!(ALLOCS.load(Ordering::SeqCst) - before, 0);
}
