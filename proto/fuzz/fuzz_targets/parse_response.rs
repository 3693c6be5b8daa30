//! Any bytes: parse_response never panics and a Complete head fits the input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut head = proto::ResponseHead::with_capacity(100);
    if let Ok(proto::Status::Complete(n)) = proto::parse_response(data, &mut head, &proto::Limits::default()) {
        assert!(n <= data.len());
    }
});
