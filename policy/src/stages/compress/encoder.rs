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

/// One response's encoder, writing into a buffer drained after every piece.
pub enum Encoder {
    /// gzip (a deflate stream set up for gzip's header and trailer).
    Gzip(flate2::write::ZlibEncoder<Vec<u8>>),
    /// Brotli (boxed: its state is large).
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
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

impl Encoder {
    /// An encoder for `coding` at `levels`, for a body of `size` bytes when it is known.
    pub fn new(coding: Coding, levels: Levels, size: Option<u64>) -> std::io::Result<Encoder> {
        Ok(match coding {
            Coding::Gzip => Encoder::Gzip(flate2::write::ZlibEncoder::new_with_compress(
                Vec::new(),
                flate2::Compress::new_gzip(
                    flate2::Compression::new(levels.gzip),
                    deflate_window(size),
                ),
            )),
            Coding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                levels.brotli,
                brotli_window(size),
            ))),
            Coding::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), levels.zstd)?)
            }
        })
    }

    /// Compresses `data`, appending what is ready to `out`.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let sink = match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                e.get_mut()
            }
            Encoder::Br(e) => {
                e.write_all(data)?;
                e.get_mut()
            }
            Encoder::Zstd(e) => {
                e.write_all(data)?;
                e.get_mut()
            }
        };
        out.append(sink);
        Ok(())
    }

    /// Ends the stream, appending the rest to `out`.
    pub fn finish(self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut rest = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Br(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish()?,
        };
        out.append(&mut rest);
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
            let mut e = Encoder::new(coding, levels, None).unwrap();
            let mut out = Vec::new();
            for piece in body.chunks(16 * 1024 + 7) {
                e.write(piece, &mut out).unwrap();
            }
            e.finish(&mut out).unwrap();
            assert!(out.len() < body.len() / 4, "{coding:?}: {}", out.len());
            assert_eq!(decode(coding, &out), body, "{coding:?}");
            // an empty body is still a whole stream
            let mut out = Vec::new();
            Encoder::new(coding, levels, Some(0))
                .unwrap()
                .finish(&mut out)
                .unwrap();
            assert!(decode(coding, &out).is_empty(), "{coding:?}");
        }
    }
}
