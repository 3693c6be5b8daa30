//! `Accept-Encoding` (RFC 9110 §12.5.3): which of the codings the gateway offers a client
//! rates highest. Items are `coding;q=…` (case-insensitive, `x-gzip` is `gzip`), `*` rates
//! every coding not named, `q=0` refuses one; a client that sends no `Accept-Encoding` (or
//! only `identity`) gets no coding.

use super::config::Coding;

/// A quality value ×1000 (`q=0.5` is 500), or `None` when it is malformed.
fn quality(params: &[u8]) -> Option<u16> {
    let mut q = 1000;
    for p in params.split(|&c| c == b';') {
        let p = p.trim_ascii();
        let Some((name, value)) = split_once(p, b'=') else {
            continue;
        };
        if !name.trim_ascii().eq_ignore_ascii_case(b"q") {
            continue;
        }
        q = parse_q(value.trim_ascii())?;
    }
    Some(q)
}

/// `0`, `0.x`…`0.xxx`, `1`, `1.0`…`1.000` as thousandths.
fn parse_q(v: &[u8]) -> Option<u16> {
    let (int, frac) = split_once(v, b'.').unwrap_or((v, b""));
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, d) in frac.iter().enumerate() {
        thousandths += u16::from(d - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// `s` split at its first `sep`.
fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&c| c == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// The coding among `offered` (the gateway's order of preference breaks ties) that the
/// `Accept-Encoding` field values rate highest, above 0.
pub fn choose<'a>(values: impl Iterator<Item = &'a [u8]>, offered: &[Coding]) -> Option<Coding> {
    // each offered coding's rating, and that of `*`
    let mut named = [None::<u16>; 3];
    let mut star = None;
    for item in values.flat_map(|v| v.split(|&c| c == b',')) {
        let item = item.trim_ascii();
        let (token, params) = split_once(item, b';').unwrap_or((item, b""));
        let token = token.trim_ascii();
        let Some(q) = quality(params) else {
            continue;
        };
        if token == b"*" {
            star = Some(q);
            continue;
        }
        let token = if token.eq_ignore_ascii_case(b"x-gzip") {
            b"gzip".as_slice()
        } else {
            token
        };
        if let Some(c) = Coding::ALL
            .iter()
            .find(|c| token.eq_ignore_ascii_case(c.token()))
            && let Some(slot) = named.get_mut(c.index())
        {
            *slot = Some(q);
        }
    }
    let rating = |c: &Coding| {
        named
            .get(c.index())
            .copied()
            .flatten()
            .or(star)
            .unwrap_or(0)
    };
    let mut best: Option<(Coding, u16)> = None;
    for c in offered {
        let q = rating(c);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*c, q));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::{Br, Gzip, Zstd};

    #[test]
    fn accept_encoding_table() {
        let all = [Br, Zstd, Gzip];
        let rows: &[(&str, &[Coding], Option<Coding>)] = &[
            ("gzip", &all, Some(Gzip)),
            ("gzip, br", &all, Some(Br)),
            ("gzip, br", &[Gzip, Br], Some(Gzip)),
            ("br;q=0.5, gzip", &all, Some(Gzip)),
            ("gzip;q=0", &all, None),
            ("gzip;q=0, *", &all, Some(Br)),
            ("*;q=0.1, gzip;q=0.2", &all, Some(Gzip)),
            ("*", &[Gzip], Some(Gzip)),
            ("*;q=0", &all, None),
            ("identity", &all, None),
            ("", &all, None),
            ("GZIP", &all, Some(Gzip)),
            ("x-gzip", &all, Some(Gzip)),
            ("deflate", &all, None),
            ("zstd;q=1.000, br;q=0.999", &all, Some(Zstd)),
            ("gzip;q=1.5", &all, None),
            ("gzip;q=0.1234", &all, None),
            ("gzip;q=abc, br", &all, Some(Br)),
            ("gzip ; q=0.8 , br ; q=0.9", &all, Some(Br)),
            ("br", &[Gzip], None),
        ];
        for (value, offered, want) in rows {
            assert_eq!(
                choose(std::iter::once(value.as_bytes()), offered),
                *want,
                "{value:?} offered {offered:?}"
            );
        }
        // several fields are one list
        let two = [b"gzip;q=0.5".as_slice(), b"br;q=0.6".as_slice()];
        assert_eq!(choose(two.into_iter(), &all), Some(Br));
    }
}
