//! Any bytes: parse_request never panics, and a Complete head's spans stay in bounds.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut head = proto::RequestHead::with_capacity(100);
    if let Ok(proto::Status::Complete(n)) = proto::parse_request(data, &mut head, &proto::Limits::default()) {
        assert!(n <= data.len());
        for f in &head.fields {
            assert!(f.name.end() <= n && f.value.end() <= n);
        }
    }
});
