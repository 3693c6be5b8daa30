//! A streaming encoder per compressed response: each piece of the body goes in, whatever
//! compressed bytes the coding has ready come out (nothing is buffered beyond what the
//! coding itself holds), and the end flushes the rest.

use std::io::Write;

use super::config::Coding;

/// Compression levels by coding.
#[derive(Debug, Clone, Copy)]
pub struct Levels {
    /// gzip 1..=9.
    pub gzip: u32,
    /// Brotli 0..=11.
    pub brotli: u32,
    /// zstd 1..=19.
    pub zstd: i32,
}

/// One response's encoder. gzip and zstd states come from the stage's `Spares` and go back
/// to them when the body ends (reset, not built again: building one sets up and zeroes
/// hundreds of KiB per response).
pub enum Encoder {
    /// gzip: a deflate stream set up for gzip's header and trailer, and its window bits.
    Gzip(Box<flate2::Compress>, u8),
    /// Brotli (boxed: its state is large).
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    /// zstd.
    Zstd(zstd::stream::raw::Encoder<'static>),
}

/// Encoder states kept by one stage on one shard for the next responses.
#[derive(Default)]
pub struct Spares {
    gzip: Vec<(u8, Box<flate2::Compress>)>,
    zstd: Vec<zstd::stream::raw::Encoder<'static>>,
}

/// The most spare gzip states kept (≈ 200 KiB each at the largest window; responses
/// compressed at once beyond it build their own). 16 was too few for 64 connections (their
/// states were dropped and built again: page faults in `perf`).
const GZIP_SPARES: usize = 32;

/// The most spare zstd states kept (each holds its window's tables: about a MiB at level 1).
const ZSTD_SPARES: usize = 8;

impl Spares {
    /// Takes back the state of an encoder whose body ended.
    fn put(&mut self, e: Encoder) {
        match e {
            Encoder::Gzip(mut c, bits) if self.gzip.len() < GZIP_SPARES => {
                c.reset();
                self.gzip.push((bits, c));
            }
            Encoder::Zstd(mut z) if self.zstd.len() < ZSTD_SPARES => {
                use zstd::stream::raw::Operation;
                if z.reinit().is_ok() {
                    self.zstd.push(z);
                }
            }
            _ => {}
        }
    }

    /// How many states are kept (tests).
    pub fn len(&self) -> usize {
        self.gzip.len() + self.zstd.len()
    }

    /// True when none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Brotli's internal buffer.
const BROTLI_BUFFER: usize = 4096;

/// Brotli's window (log2 bytes) for a body of `size` bytes: no larger than the body (a
/// window's tables are set up for every response: 22 bits cost a 16 KiB response three
/// times its compression), 19 when the size is not known.
fn brotli_window(size: Option<u64>) -> u32 {
    size.map_or(19, |n| (u64::BITS - n.leading_zeros()).clamp(16, 22))
}

/// deflate's window (log2 bytes, 9..=15) for a body of `size` bytes: just covering it (its
/// state is set up and zeroed for every response), 15 when the size is not known.
fn deflate_window(size: Option<u64>) -> u8 {
    let bits = size.map_or(15, |n| u64::BITS - n.saturating_sub(1).leading_zeros());
    u8::try_from(bits.clamp(9, 15)).unwrap_or(15)
}

/// Makes room in `out` for what a coding writes next.
fn room(out: &mut Vec<u8>, input: usize) {
    if out.capacity() - out.len() < 1024 {
        out.reserve((input / 2).max(8 * 1024));
    }
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Encoder {
    /// An encoder for `coding` at `levels`, for a body of `size` bytes when it is known,
    /// taking a spare state when one fits.
    pub fn new(
        coding: Coding,
        levels: Levels,
        size: Option<u64>,
        spares: &mut Spares,
    ) -> std::io::Result<Encoder> {
        Ok(match coding {
            Coding::Gzip => {
                let bits = deflate_window(size);
                // a larger window fits a smaller body; the smallest that fits is taken
                let best = (0..spares.gzip.len())
                    .filter(|&i| spares.gzip.get(i).is_some_and(|(b, _)| *b >= bits))
                    .min_by_key(|&i| spares.gzip.get(i).map_or(u8::MAX, |(b, _)| *b));
                match best {
                    Some(i) => {
                        let (b, c) = spares.gzip.swap_remove(i);
                        Encoder::Gzip(c, b)
                    }
                    None => Encoder::Gzip(
                        Box::new(flate2::Compress::new_gzip(
                            flate2::Compression::new(levels.gzip),
                            bits,
                        )),
                        bits,
                    ),
                }
            }
            Coding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                levels.brotli,
                brotli_window(size),
            ))),
            Coding::Zstd => match spares.zstd.pop() {
                Some(z) => Encoder::Zstd(z),
                None => Encoder::Zstd(zstd::stream::raw::Encoder::new(levels.zstd)?),
            },
        })
    }

    /// Compresses `data`, appending what is ready to `out`.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(c, _) => {
                let mut input = data;
                loop {
                    room(out, input.len());
                    let before = c.total_in();
                    c.compress_vec(input, out, flate2::FlushCompress::None)
                        .map_err(io_error)?;
                    let used = usize::try_from(c.total_in() - before).unwrap_or(usize::MAX);
                    input = input.get(used..).unwrap_or_default();
                    if input.is_empty() && out.len() < out.capacity() {
                        return Ok(());
                    }
                }
            }
            Encoder::Br(e) => {
                e.write_all(data)?;
                out.append(e.get_mut());
                Ok(())
            }
            Encoder::Zstd(z) => {
                use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
                let mut input = InBuffer::around(data);
                while input.pos() < data.len() {
                    room(out, data.len() - input.pos());
                    let at = out.len();
                    z.run(&mut input, &mut OutBuffer::around_pos(out, at))?;
                }
                Ok(())
            }
        }
    }

    /// Ends the stream, appending the rest to `out`; its state goes back to `spares`.
    pub fn finish(self, out: &mut Vec<u8>, spares: &mut Spares) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(mut c, bits) => {
                loop {
                    room(out, 0);
                    let status = c
                        .compress_vec(&[], out, flate2::FlushCompress::Finish)
                        .map_err(io_error)?;
                    if status == flate2::Status::StreamEnd {
                        break;
                    }
                }
                spares.put(Encoder::Gzip(c, bits));
            }
            Encoder::Br(e) => out.append(&mut e.into_inner()),
            Encoder::Zstd(mut z) => {
                use zstd::stream::raw::{Operation, OutBuffer};
                loop {
                    room(out, 0);
                    let at = out.len();
                    if z.finish(&mut OutBuffer::around_pos(out, at), true)? == 0 {
                        break;
                    }
                }
                spares.put(Encoder::Zstd(z));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
            Coding::Br => brotli::Decompressor::new(data, 4096).read_to_end(&mut out),
            Coding::Zstd => {
                zstd::stream::read::Decoder::new(data).and_then(|mut d| d.read_to_end(&mut out))
            }
        }
        .unwrap();
        out
    }

    #[test]
    fn windows_cover_the_body_within_each_codings_bounds() {
        let rows: &[(Option<u64>, u8, u32)] = &[
            (None, 15, 19),
            (Some(0), 9, 16),
            (Some(512), 9, 16),
            (Some(513), 10, 16),
            (Some(16 * 1024), 14, 16),
            (Some(16 * 1024 + 1), 15, 16),
            (Some(1 << 20), 15, 21),
            (Some(1 << 40), 15, 22),
        ];
        for &(size, deflate, brotli) in rows {
            assert_eq!(deflate_window(size), deflate, "{size:?}");
            assert_eq!(brotli_window(size), brotli, "{size:?}");
        }
    }

    #[test]
    fn every_coding_round_trips_a_body_given_in_pieces() {
        let levels = Levels {
            gzip: 6,
            brotli: 4,
            zstd: 3,
        };
        let body: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"name\":\"item {}\"}},", i % 97).into_bytes())
            .collect();
        for coding in Coding::ALL {
            let mut spares = Spares::default();
            let mut e = Encoder::new(coding, levels, None, &mut spares).unwrap();
            let mut out = Vec::new();
            for piece in body.chunks(16 * 1024 + 7) {
                e.write(piece, &mut out).unwrap();
            }
            e.finish(&mut out, &mut spares).unwrap();
            assert!(out.len() < body.len() / 4, "{coding:?}: {}", out.len());
            assert_eq!(decode(coding, &out), body, "{coding:?}");
            // a reused state (gzip, zstd) starts a whole new stream
            let kept = spares.len();
            assert_eq!(kept, usize::from(coding != Coding::Br), "{coding:?}");
            let mut e = Encoder::new(coding, levels, None, &mut spares).unwrap();
            let mut again = Vec::new();
            e.write(&body[..5000], &mut again).unwrap();
            e.finish(&mut again, &mut spares).unwrap();
            assert_eq!(decode(coding, &again), &body[..5000], "{coding:?} reused");
            assert_eq!(spares.len(), kept);
            // an empty body is still a whole stream
            let mut out = Vec::new();
            Encoder::new(coding, levels, Some(0), &mut spares)
                .unwrap()
                .finish(&mut out, &mut spares)
                .unwrap();
            assert!(decode(coding, &out).is_empty(), "{coding:?}");
        }
    }
}
