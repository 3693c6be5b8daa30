//! HTTP/2 frame boundaries in a client's byte stream (RFC 9113 §3.4, §4.1), found without
//! decoding the frames: the connection preface is skipped, then each 9-byte frame header is
//! read and its payload skipped. The gateway meters what a client sends with it (floods of
//! frames that cost the server work but carry no request).

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// DATA
    pub const DATA: u8 = 0;
    /// HEADERS
    pub const HEADERS: u8 = 1;
    /// PRIORITY
    pub const PRIORITY: u8 = 2;
    /// RST_STREAM
    pub const RST_STREAM: u8 = 3;
    /// SETTINGS
    pub const SETTINGS: u8 = 4;
    /// PUSH_PROMISE
    pub const PUSH_PROMISE: u8 = 5;
    /// PING
    pub const PING: u8 = 6;
    /// GOAWAY
    pub const GOAWAY: u8 = 7;
    /// WINDOW_UPDATE
    pub const WINDOW_UPDATE: u8 = 8;
    /// CONTINUATION
    pub const CONTINUATION: u8 = 9;
}

/// END_STREAM (DATA, HEADERS) and ACK (SETTINGS, PING) share this flag bit.
const END_STREAM_OR_ACK: u8 = 0x1;
/// END_HEADERS (HEADERS, CONTINUATION).
const END_HEADERS: u8 = 0x4;

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Payload length.
    pub len: u32,
    /// Frame type (`kind`).
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (the reserved bit cleared).
    pub stream: u32,
}

impl FrameHead {
    /// Reads a frame header.
    pub fn parse(b: [u8; 9]) -> FrameHead {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = b;
        FrameHead {
            len: u32::from_be_bytes([0, l0, l1, l2]),
            kind,
            flags,
            stream: u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]),
        }
    }

    /// A frame that makes the server work without carrying a request or its body: PING and
    /// SETTINGS (each asks for an answer), PRIORITY, RST_STREAM, empty DATA that does not end
    /// its stream, empty HEADERS or CONTINUATION that do not end a header block, and types
    /// HTTP/2 does not define (ignored, but read). ACKs, WINDOW_UPDATE (sent in step with the
    /// data a client receives) and GOAWAY are not.
    pub fn is_control(&self) -> bool {
        let ack_or_end = self.flags & END_STREAM_OR_ACK != 0;
        match self.kind {
            kind::PING | kind::SETTINGS => !ack_or_end,
            kind::PRIORITY | kind::RST_STREAM => true,
            kind::DATA => self.len == 0 && !ack_or_end,
            kind::HEADERS | kind::CONTINUATION => self.len == 0 && self.flags & END_HEADERS == 0,
            kind::PUSH_PROMISE | kind::GOAWAY | kind::WINDOW_UPDATE => false,
            _ => true,
        }
    }
}

/// Finds frame headers in a byte stream fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct FrameScan {
    /// Preface bytes still to skip.
    preface: usize,
    /// The frame header being read.
    head: [u8; 9],
    /// Bytes of it read so far.
    have: usize,
    /// Payload bytes still to skip.
    skip: u64,
}

impl Default for FrameScan {
    fn default() -> FrameScan {
        FrameScan::new()
    }
}

impl FrameScan {
    /// A scanner at the start of a client's stream (the preface first).
    pub fn new() -> FrameScan {
        FrameScan {
            preface: PREFACE.len(),
            head: [0; 9],
            have: 0,
            skip: 0,
        }
    }

    /// Reads the next piece of the stream; `seen` gets each frame header completed in it.
    pub fn feed(&mut self, mut input: &[u8], mut seen: impl FnMut(FrameHead)) {
        loop {
            let skip = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .saturating_add(self.preface)
                .min(input.len());
            input = input.get(skip..).unwrap_or_default();
            let preface = self.preface.min(skip);
            self.preface -= preface;
            self.skip -= (skip - preface) as u64;
            if input.is_empty() {
                return;
            }
            let n = (9 - self.have).min(input.len());
            let (part, rest) = input.split_at(n);
            if let Some(to) = self.head.get_mut(self.have..self.have + n) {
                to.copy_from_slice(part);
            }
            self.have += n;
            input = rest;
            if self.have == 9 {
                self.have = 0;
                let h = FrameHead::parse(self.head);
                self.skip = u64::from(h.len);
                seen(h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
        let l = len.to_be_bytes();
        let s = stream.to_be_bytes();
        let mut f = vec![l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]];
        f.resize(9 + len as usize, 0xAB);
        f
    }

    fn stream() -> Vec<u8> {
        let mut all = PREFACE.to_vec();
        all.extend(frame(6, kind::SETTINGS, 0, 0));
        all.extend(frame(8, kind::PING, 0, 0));
        all.extend(frame(300, kind::HEADERS, 0x5, 1));
        all.extend(frame(0, kind::DATA, 0, 1));
        all.extend(frame(70_000, kind::DATA, 1, 1));
        all.extend(frame(0, kind::CONTINUATION, 0, 3));
        all
    }

    const EXPECTED: [(u8, bool); 6] = [
        (kind::SETTINGS, true),
        (kind::PING, true),
        (kind::HEADERS, false),
        (kind::DATA, true),
        (kind::DATA, false),
        (kind::CONTINUATION, true),
    ];

    #[test]
    fn every_split_of_the_stream_finds_the_same_frames() {
        let all = stream();
        for piece in [1, 2, 7, 9, 10, 24, 25, 1000, all.len()] {
            let mut scan = FrameScan::new();
            let mut got = Vec::new();
            for chunk in all.chunks(piece) {
                scan.feed(chunk, |h| got.push((h.kind, h.is_control())));
            }
            assert_eq!(got, EXPECTED, "pieces of {piece}");
        }
    }

    #[test]
    fn headers_are_read_big_endian_with_the_reserved_bit_cleared() {
        let h = FrameHead::parse([0x01, 0x02, 0x03, 6, 1, 0xff, 0, 0, 7]);
        assert_eq!(h.len, 0x010203);
        assert_eq!(h.stream, 0x7f00_0007);
        assert!(!h.is_control(), "a PING ack asks for nothing");
    }

    #[test]
    fn control_frames_table() {
        let cases = [
            (kind::PING, 0, 8, true),
            (kind::PING, 1, 8, false),
            (kind::SETTINGS, 0, 0, true),
            (kind::SETTINGS, 1, 0, false),
            (kind::PRIORITY, 0, 5, true),
            (kind::RST_STREAM, 0, 4, true),
            (kind::WINDOW_UPDATE, 0, 4, false),
            (kind::GOAWAY, 0, 8, false),
            (kind::DATA, 0, 1, false),
            (kind::DATA, 0, 0, true),
            (kind::DATA, 1, 0, false),
            (kind::HEADERS, 4, 0, false),
            (kind::HEADERS, 0, 0, true),
            (kind::CONTINUATION, 0, 10, false),
            (0x20, 0, 3, true),
        ];
        for (kind, flags, len, control) in cases {
            let h = FrameHead {
                len,
                kind,
                flags,
                stream: 1,
            };
            assert_eq!(h.is_control(), control, "{h:?}");
        }
    }
}
