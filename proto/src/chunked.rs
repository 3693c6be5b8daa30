//! Streaming chunked coding (RFC 9112 §7.1): a decoder yielding data ranges in place over any
//! split of the input (extensions and trailers validated, bounded, dropped), and the framing.

use crate::chars::{is_field_value, is_ows, is_tchar};
use crate::error::ParseError;

/// Longest chunk extension (all of a chunk-size line after the size) accepted.
pub const MAX_EXTENSION_BYTES: usize = 4096;
/// Largest trailer section accepted.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// What one decoder step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `input[start..start + len]` is body data. Continue from `consumed`.
    Data {
        /// Offset of the data in the input given.
        start: usize,
        /// Number of data bytes.
        len: usize,
        /// Bytes of the input used up, data included.
        consumed: usize,
    },
    /// All of the input was framing; give more.
    NeedMore,
    /// The message ended (last chunk and trailers seen) after `consumed` bytes of this input.
    Done {
        /// Bytes of the input that belong to this message.
        consumed: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line.
    SizeStart,
    /// Reading hex digits.
    Size,
    /// Whitespace after the size: only `;` may follow (BWS before an extension).
    SizeBws,
    /// After `;`: optional BWS then an extension name.
    ExtNameStart,
    /// Inside an extension name.
    ExtName,
    /// Whitespace after a name: `=`, `;` or CRLF.
    ExtNameBws,
    /// After `=`: optional BWS then a token or quoted-string.
    ExtValueStart,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted-string value.
    ExtQuoted,
    /// After a backslash in a quoted-string.
    ExtQuotedEscape,
    /// After a complete value: BWS, `;` or CRLF.
    ExtAfterValue,
    /// Got CR of the size line.
    SizeLf,
    /// In chunk data, this many bytes to go.
    Data,
    /// Expect CR after data.
    DataCr,
    /// Expect LF after data.
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Got CR of the final empty line.
    FinalLf,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// Got CR of a trailer line.
    TrailerLf,
    /// Message complete.
    Done,
}

/// Largest chunk size accepted: 2^63 − 1, the largest signed 64-bit length (RFC 9112 §7.1:
/// a recipient must anticipate large sizes and guard against overflow; nothing real is
/// larger).
pub const MAX_CHUNK_SIZE: u64 = i64::MAX as u64;

/// Incremental chunked decoder. Feed it the unread part of the buffer each time.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u32,
    ext_bytes: usize,
    trailer_bytes: usize,
    last: bool,
    /// Most data bytes the whole body may hold.
    limit: u64,
    /// Data bytes the chunk-size lines announced so far.
    announced: u64,
    /// The trailer section's field lines, when kept (`keeping_trailers`).
    trailers: Option<Vec<u8>>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body of any size.
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::with_limit(u64::MAX)
    }

    /// A decoder that refuses (`BodyTooLarge`) a body whose chunk sizes add up to more than
    /// `limit` data bytes, as soon as the size line that crosses it is read.
    pub fn with_limit(limit: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            ext_bytes: 0,
            trailer_bytes: 0,
            last: false,
            limit,
            announced: 0,
            trailers: None,
        }
    }

    /// This decoder, keeping the trailer section (at most `MAX_TRAILER_BYTES`): `Emit::Chunked`
    /// then passes it on in the last chunk, and `trailers` gives it. Without it, trailers are
    /// read and dropped, and nothing is allocated.
    pub fn keeping_trailers(mut self) -> ChunkedDecoder {
        self.trailers = Some(Vec::new());
        self
    }

    /// The trailer field lines read so far (each ending in CRLF), when kept.
    pub fn trailers(&self) -> &[u8] {
        self.trailers.as_deref().unwrap_or_default()
    }

    /// True once the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing bytes from `input` until it finds data, needs more, or the body ends.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, ParseError> {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.size) as usize;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Step::Data {
                        start: i,
                        len: take,
                        consumed: i + take,
                    });
                }
                State::Done => return Ok(Step::Done { consumed: i }),
                _ => self.byte(b)?,
            }
            i += 1;
            if self.state == State::Done {
                return Ok(Step::Done { consumed: i });
            }
        }
        Ok(Step::NeedMore)
    }

    fn ext_byte(&mut self) -> Result<(), ParseError> {
        self.ext_bytes += 1;
        if self.ext_bytes > MAX_EXTENSION_BYTES {
            Err(ParseError::ChunkExtensionTooLong)
        } else {
            Ok(())
        }
    }

    fn end_size_line(&mut self) -> State {
        State::SizeLf
    }

    fn byte(&mut self, b: u8) -> Result<(), ParseError> {
        use State::*;
        if let Some(kept) = &mut self.trailers {
            let in_field = matches!(self.state, TrailerName | TrailerValue | TrailerLf);
            if in_field || (self.state == TrailerStart && b != b'\r') {
                kept.push(b);
            }
        }
        self.state = match self.state {
            SizeStart | Size => match hex(b) {
                Some(d) => {
                    self.digits += 1;
                    if self.digits > 16 || self.size > (MAX_CHUNK_SIZE >> 4) {
                        return Err(ParseError::ChunkSizeOverflow);
                    }
                    self.size = (self.size << 4) | u64::from(d);
                    Size
                }
                None if self.state == SizeStart => return Err(ParseError::ChunkSize),
                None => {
                    self.ext_bytes = 0;
                    match b {
                        b';' => ExtNameStart,
                        b'\r' => self.end_size_line(),
                        b' ' | b'\t' => SizeBws,
                        _ => return Err(ParseError::ChunkSize),
                    }
                }
            },
            SizeBws => {
                self.ext_byte()?;
                match b {
                    b' ' | b'\t' => SizeBws,
                    b';' => ExtNameStart,
                    _ => return Err(ParseError::ChunkSize),
                }
            }
            ExtNameStart => {
                self.ext_byte()?;
                match b {
                    _ if is_ows(b) => ExtNameStart,
                    _ if is_tchar(b) => ExtName,
                    _ => return Err(ParseError::ChunkSize),
                }
            }
            ExtName | ExtNameBws => {
                self.ext_byte()?;
                match b {
                    _ if is_tchar(b) && self.state == ExtName => ExtName,
                    _ if is_ows(b) => ExtNameBws,
                    b'=' => ExtValueStart,
                    b';' => ExtNameStart,
                    b'\r' => self.end_size_line(),
                    _ => return Err(ParseError::ChunkSize),
                }
            }
            ExtValueStart => {
                self.ext_byte()?;
                match b {
                    _ if is_ows(b) => ExtValueStart,
                    b'"' => ExtQuoted,
                    _ if is_tchar(b) => ExtToken,
                    _ => return Err(ParseError::ChunkSize),
                }
            }
            ExtToken => {
                self.ext_byte()?;
                match b {
                    _ if is_tchar(b) => ExtToken,
                    _ if is_ows(b) => ExtAfterValue,
                    b';' => ExtNameStart,
                    b'\r' => self.end_size_line(),
                    _ => return Err(ParseError::ChunkSize),
                }
            }
            ExtQuoted => {
                self.ext_byte()?;
                match b {
                    b'"' => ExtAfterValue,
                    b'\\' => ExtQuotedEscape,
                    // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                    b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => ExtQuoted,
                    _ => return Err(ParseError::ChunkSize),
                }
            }
            ExtQuotedEscape => {
                self.ext_byte()?;
                match b {
                    b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => ExtQuoted,
                    _ => return Err(ParseError::ChunkSize),
                }
            }
            ExtAfterValue => {
                self.ext_byte()?;
                match b {
                    _ if is_ows(b) => ExtAfterValue,
                    b';' => ExtNameStart,
                    b'\r' => self.end_size_line(),
                    _ => return Err(ParseError::ChunkSize),
                }
            }
            SizeLf => {
                if b != b'\n' {
                    return Err(ParseError::ChunkSize);
                }
                self.digits = 0;
                self.announced = self.announced.saturating_add(self.size);
                if self.announced > self.limit {
                    return Err(ParseError::BodyTooLarge);
                }
                if self.size == 0 {
                    self.last = true;
                    TrailerStart
                } else {
                    Data
                }
            }
            Data => Data,
            DataCr => match b {
                b'\r' => DataLf,
                _ => return Err(ParseError::ChunkData),
            },
            DataLf => match b {
                b'\n' => SizeStart,
                _ => return Err(ParseError::ChunkData),
            },
            TrailerStart => match b {
                b'\r' => FinalLf,
                _ if is_tchar(b) => self.trailer(TrailerName)?,
                _ => return Err(ParseError::Trailer),
            },
            FinalLf => match b {
                b'\n' => Done,
                _ => return Err(ParseError::Trailer),
            },
            TrailerName => match b {
                _ if is_tchar(b) => self.trailer(TrailerName)?,
                b':' => self.trailer(TrailerValue)?,
                _ => return Err(ParseError::Trailer),
            },
            TrailerValue => match b {
                b'\r' => TrailerLf,
                _ if is_field_value(b) => self.trailer(TrailerValue)?,
                _ => return Err(ParseError::Trailer),
            },
            TrailerLf => match b {
                b'\n' => TrailerStart,
                _ => return Err(ParseError::Trailer),
            },
            Done => Done,
        };
        Ok(())
    }

    fn trailer(&mut self, next: State) -> Result<State, ParseError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            Err(ParseError::Trailer)
        } else {
            Ok(next)
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends a chunk-size line for `len` data bytes (`len` > 0) to `out`.
pub fn write_chunk_size(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b"0123456789abcdef".get(n & 0xf).copied().unwrap_or(b'0');
        }
        n >>= 4;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
}

/// What `ChunkedDecoder::decode` did with one input slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input that belong to this body (all of it unless the body ended).
    pub consumed: usize,
    /// The last chunk and the trailers were read.
    pub done: bool,
    /// Data bytes found in this input.
    pub data: usize,
}

/// How `ChunkedDecoder::decode` appends the data it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// The data alone (a body read whole, or sent on with a length or until close).
    Data,
    /// Re-framed as chunks of our own (extensions and trailers dropped), ending with the
    /// last chunk.
    Chunked,
}

impl ChunkedDecoder {
    /// Decodes what `src` holds of the body, appending its data to `out` as `emit` says.
    pub fn decode(
        &mut self,
        src: &[u8],
        out: &mut Vec<u8>,
        emit: Emit,
    ) -> Result<Decoded, ParseError> {
        let mut pos = 0;
        let mut data = 0;
        loop {
            match self.step(src.get(pos..).unwrap_or_default())? {
                Step::Data {
                    start,
                    len,
                    consumed,
                } => {
                    let piece = src.get(pos + start..pos + start + len).unwrap_or_default();
                    data += piece.len();
                    if !piece.is_empty() {
                        if emit == Emit::Chunked {
                            write_chunk_size(out, piece.len());
                            out.extend_from_slice(piece);
                            out.extend_from_slice(CHUNK_END);
                        } else {
                            out.extend_from_slice(piece);
                        }
                    }
                    pos += consumed;
                }
                Step::NeedMore => {
                    return Ok(Decoded {
                        consumed: src.len(),
                        done: false,
                        data,
                    });
                }
                Step::Done { consumed } => {
                    match (emit, self.trailers()) {
                        (Emit::Data, _) => {}
                        (Emit::Chunked, []) => out.extend_from_slice(LAST_CHUNK),
                        (Emit::Chunked, kept) => {
                            out.extend_from_slice(b"0\r\n");
                            out.extend_from_slice(kept);
                            out.extend_from_slice(CHUNK_END);
                        }
                    }
                    return Ok(Decoded {
                        consumed: pos + consumed,
                        done: true,
                        data,
                    });
                }
            }
        }
    }
}

/// The CRLF that ends chunk data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `split` bytes; returns the body and the bytes consumed.
    fn decode(input: &[u8], split: usize) -> Result<(Vec<u8>, usize), ParseError> {
        let mut dec = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut fed = 0;
        let mut pending: Vec<u8> = Vec::new();
        let mut consumed_total = 0;
        while fed < input.len() || !pending.is_empty() {
            let end = (fed + split).min(input.len());
            pending.extend_from_slice(&input[fed..end]);
            fed = end;
            let mut pos = 0;
            loop {
                match dec.step(&pending[pos..])? {
                    Step::Data {
                        start,
                        len,
                        consumed,
                    } => {
                        body.extend_from_slice(&pending[pos + start..pos + start + len]);
                        pos += consumed;
                    }
                    Step::NeedMore => {
                        pos = pending.len();
                        break;
                    }
                    Step::Done { consumed } => {
                        return Ok((body, consumed_total + pos + consumed));
                    }
                }
            }
            consumed_total += pos;
            pending.drain(..pos);
            if fed >= input.len() {
                break;
            }
        }
        Err(ParseError::ChunkData)
    }

    #[test]
    fn kept_trailers_pass_on_at_every_split_and_others_drop() {
        let body = b"3\r\nabc\r\n0\r\nX-T: 1\r\nY:2\r\n\r\n";
        for split in 0..=body.len() {
            let (a, b) = body.split_at(split);
            let mut dec = ChunkedDecoder::new().keeping_trailers();
            let mut out = Vec::new();
            let first = dec.decode(a, &mut out, Emit::Chunked).unwrap();
            assert_eq!(first.consumed, a.len());
            let second = dec.decode(b, &mut out, Emit::Chunked).unwrap();
            assert!(second.done || first.done, "split {split}");
            // re-framed in pieces as they came; the last chunk carries the trailers
            assert!(
                out.ends_with(b"\r\n0\r\nX-T: 1\r\nY:2\r\n\r\n"),
                "split {split}"
            );
            assert_eq!(dec.trailers(), b"X-T: 1\r\nY:2\r\n", "split {split}");
        }
        let mut dec = ChunkedDecoder::new();
        let mut out = Vec::new();
        dec.decode(body, &mut out, Emit::Chunked).unwrap();
        assert_eq!(out, b"3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(dec.trailers(), b"");
    }

    #[test]
    fn decodes_valid_bodies_at_every_split() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"A\r\nhelloworld\r\n0\r\n\r\n", b"helloworld"),
            (b"5;ext=value\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5 ;a=\"q\\\"x\" ; b\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", b"hello"),
            (b"000005\r\nhello\r\n0000\r\n\r\n", b"hello"),
        ];
        for (input, body) in cases {
            for split in 1..=input.len() {
                let (got, consumed) = decode(input, split).unwrap_or_else(|e| {
                    panic!("{} split {split}: {e:?}", String::from_utf8_lossy(input))
                });
                assert_eq!(&got[..], *body);
                assert_eq!(consumed, input.len());
            }
        }
    }

    #[test]
    fn stops_at_message_end() {
        let input = b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let Ok((body, consumed)) = decode(input, input.len()) else {
            panic!("valid input")
        };
        assert_eq!(body, b"a");
        assert_eq!(consumed, 11);
    }

    #[test]
    fn rejects_malformed_chunks() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"5;\r\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"5;bad[=x\r\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (
                b"1_0\r\nhello world!!!!!\r\n0\r\n\r\n",
                ParseError::ChunkSize,
            ),
            (b"0x5\r\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"+5\r\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"-1\r\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"5 \r\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b" 5\r\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"5\r\nhello0\r\n\r\n", ParseError::ChunkData),
            (b"5\r\nhello!!\r\n0\r\n\r\n", ParseError::ChunkData),
            (
                b"FFFFFFFFFFFFFFFF0\r\nhello\r\n0\r\n\r\n",
                ParseError::ChunkSizeOverflow,
            ),
            (b"5;\x00ext\r\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"5;a\rX\r\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"5\rhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"5;\nhello\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"5\r\nhello\n0\r\n\r\n", ParseError::ChunkData),
            (b"5\r\nhello\r\n0\r\n\n", ParseError::Trailer),
            (
                b"2 erfrferferf\r\naa\r\n0 rrrr\r\n\r\n",
                ParseError::ChunkSize,
            ),
            (b"3 \n  \r\nfoo\r\n0\r\n\r\n", ParseError::ChunkSize),
            (
                b"5;a=\"abc\";b=\"def; ghi\r\nhello\r\n0\r\n\r\n",
                ParseError::ChunkSize,
            ),
            (
                b"5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n",
                ParseError::Trailer,
            ),
        ];
        for (input, want) in cases {
            for split in [1, input.len()] {
                assert_eq!(
                    decode(input, split).err(),
                    Some(*want),
                    "{}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    /// Issue 9: chunk sizes no real body has, and sizes past a configured limit, are refused
    /// on the size line, before any of their data is awaited.
    #[test]
    fn issue_9_refuses_absurd_chunk_sizes_and_sizes_past_the_limit() {
        let table: &[(&[u8], u64, Result<(), ParseError>)] = &[
            // 2^64 − 1 and 2^63: beyond a signed 64-bit length
            (
                b"ffffffffffffffff\r\n",
                u64::MAX,
                Err(ParseError::ChunkSizeOverflow),
            ),
            (
                b"FFFFFFFFFFFFFFFF;x=y\r\n",
                u64::MAX,
                Err(ParseError::ChunkSizeOverflow),
            ),
            (
                b"8000000000000000\r\n",
                u64::MAX,
                Err(ParseError::ChunkSizeOverflow),
            ),
            (
                b"00000000000000001\r\nx\r\n0\r\n\r\n",
                u64::MAX,
                Err(ParseError::ChunkSizeOverflow),
            ),
            // 2^63 − 1 is a size (with no limit there is nothing to refuse yet)
            (b"7fffffffffffffff\r\n", u64::MAX, Ok(())),
            // one chunk past the limit, or several adding up past it
            (
                b"7fffffffffffffff\r\n",
                1 << 20,
                Err(ParseError::BodyTooLarge),
            ),
            (b"401\r\n", 1024, Err(ParseError::BodyTooLarge)),
            (b"400\r\n", 1024, Ok(())),
            (
                b"3\r\nabc\r\n3\r\ndef\r\n",
                5,
                Err(ParseError::BodyTooLarge),
            ),
            (b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 5, Ok(())),
        ];
        for (input, limit, want) in table {
            for split in [1, input.len()] {
                let mut dec = ChunkedDecoder::with_limit(*limit);
                let mut out = Vec::new();
                let mut got = Ok(());
                for piece in input.chunks(split) {
                    if let Err(e) = dec.decode(piece, &mut out, Emit::Data) {
                        got = Err(e);
                        break;
                    }
                }
                assert_eq!(
                    got,
                    *want,
                    "{} (limit {limit})",
                    String::from_utf8_lossy(input)
                );
                // refused on the size line: no data byte of the offending chunk came out
                if want.is_err() {
                    assert!(out.len() as u64 <= *limit);
                }
            }
        }
    }

    #[test]
    fn rejects_oversized_extension() {
        let mut input = b"5;e=".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_EXTENSION_BYTES + 1));
        input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(
            decode(&input, input.len()).err(),
            Some(ParseError::ChunkExtensionTooLong)
        );
    }

    #[test]
    fn writes_chunk_sizes() {
        for (n, s) in [
            (1usize, "1\r\n"),
            (10, "a\r\n"),
            (255, "ff\r\n"),
            (65536, "10000\r\n"),
        ] {
            let mut out = Vec::new();
            write_chunk_size(&mut out, n);
            assert_eq!(out, s.as_bytes());
        }
    }

    #[test]
    fn decode_emits_data_or_our_own_chunks_over_any_split() -> Result<(), ParseError> {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let body_end = input.len() - 4;
        for (emit, want) in [
            (Emit::Data, &b"hello world"[..]),
            (
                Emit::Chunked,
                &b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"[..],
            ),
        ] {
            for split in 1..input.len() {
                let mut dec = ChunkedDecoder::new();
                let mut out = Vec::new();
                let first = dec.decode(&input[..split], &mut out, emit)?;
                let rest = &input[first.consumed..];
                let second = if first.done {
                    first
                } else {
                    let d = dec.decode(rest, &mut out, emit)?;
                    assert_eq!(first.consumed + d.consumed, body_end, "split {split}");
                    d
                };
                assert!(second.done, "split {split}");
                // a chunk split across reads is emitted as two chunks of our own
                let mut data = Vec::new();
                ChunkedDecoder::new()
                    .decode(&out, &mut data, Emit::Data)
                    .ok()
                    .filter(|_| emit == Emit::Chunked);
                if emit == Emit::Data {
                    assert_eq!(out, want, "split {split}");
                } else {
                    assert_eq!(data, b"hello world", "split {split}");
                }
            }
            let mut out = Vec::new();
            let whole = ChunkedDecoder::new().decode(input, &mut out, emit)?;
            assert_eq!(
                (whole.consumed, whole.done, whole.data),
                (body_end, true, 11)
            );
            assert_eq!(out, want);
        }
        Ok(())
    }
}
