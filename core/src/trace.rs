//! Request ids and W3C trace context (`[request_id]`, `[tracing]`): every request gets an
//! id (a trusted peer's own, else a new one) sent upstream and back to the client, and a
//! `traceparent` upstream that keeps the caller's trace id and flags with a new span id for
//! the gateway's hop, or starts a trace. One pass over the request's fields.

use policy::Exchange;
use policy::balance::Rng;
use policy::cidr::CidrSet;
use proto::RequestHead;

/// `[request_id]` compiled.
#[derive(Debug)]
pub struct RequestIds {
    /// The field's name as written.
    name: Box<[u8]>,
    /// Peers whose id is kept.
    trust: CidrSet,
}

/// `[tracing]` compiled.
#[derive(Debug, Clone, Copy)]
pub struct Tracing {
    /// A started trace is sampled when a random `u64` falls below this.
    threshold: u64,
}

/// Both, as a gateway runs them.
#[derive(Debug, Default)]
pub struct Stamp {
    /// Request ids, when on.
    pub ids: Option<RequestIds>,
    /// Trace context, when on.
    pub tracing: Option<Tracing>,
}

impl Stamp {
    /// Compiles the settings; `Err` names a bad `trust_from` entry.
    pub fn build(c: &conf::Config) -> Result<Stamp, (std::ops::Range<usize>, String)> {
        let r = &c.request_id;
        let ids = if r.enabled {
            let trust = CidrSet::parse(r.trust_from.get_ref())
                .map_err(|e| (r.trust_from.span(), format!("[request_id] trust_from: {e}")))?;
            Some(RequestIds {
                name: r.header.get_ref().as_bytes().into(),
                trust,
            })
        } else {
            None
        };
        let t = &c.tracing;
        let ratio = t.sample_ratio.get_ref().clamp(0.0, 1.0);
        let tracing = t.enabled.then_some(Tracing {
            threshold: if ratio >= 1.0 {
                u64::MAX
            } else {
                (ratio * u64::MAX as f64) as u64
            },
        });
        Ok(Stamp { ids, tracing })
    }

    /// Gives an exchange whose head could not be read a new id, for the answer.
    pub fn fresh(&self, rng: &Rng, ex: &mut Exchange) {
        if let Some(ids) = &self.ids {
            let mut hex = [0u8; 32];
            put_hex(&mut hex, &random16(rng));
            ex.request_id.set(&hex);
            ex.response.add(&ids.name, &hex);
        }
    }

    /// Gives `ex` its request id and trace context, and asks for the fields that carry them
    /// (upstream, and the id back to the client).
    #[inline]
    pub fn apply(&self, rng: &Rng, head: &RequestHead, buf: &[u8], ex: &mut Exchange) {
        if self.ids.is_none() && self.tracing.is_none() {
            return;
        }
        let id_name: &[u8] = self.ids.as_ref().map_or(b"", |i| &i.name);
        let (mut id, mut parent, mut parents, mut states) = (None, None, 0u32, false);
        for (i, f) in head.fields.iter().enumerate() {
            let name = f.name.get(buf);
            if !id_name.is_empty() && name.eq_ignore_ascii_case(id_name) {
                id = id.or(Some(f.value.get(buf)));
                ex.edits.fields.drop_field(i);
            } else if self.tracing.is_some() && name.eq_ignore_ascii_case(b"traceparent") {
                parent = Some(f.value.get(buf));
                parents += 1;
                ex.edits.fields.drop_field(i);
            } else if self.tracing.is_some() && name.eq_ignore_ascii_case(b"tracestate") {
                states = true;
            }
        }
        if let Some(ids) = &self.ids {
            let kept =
                id.is_some_and(|v| ids.trust.contains(ex.client.ip()) && ex.request_id.set(v));
            if !kept {
                let mut hex = [0u8; 32];
                put_hex(&mut hex, &random16(rng));
                ex.request_id.set(&hex);
            }
            ex.edits.fields.add(&ids.name, ex.request_id.as_bytes());
            ex.response.add(&ids.name, ex.request_id.as_bytes());
        }
        if let Some(t) = &self.tracing {
            let caller = parent.filter(|_| parents == 1).and_then(parse_traceparent);
            let (trace, flags) = match caller {
                Some(c) => c,
                None => {
                    // a new trace: state that came without a valid parent is not its state
                    if states {
                        ex.edits.fields.drop_named(&head.fields, buf, b"tracestate");
                    }
                    let sampled = rng.next() < t.threshold;
                    (random16(rng), u8::from(sampled))
                }
            };
            ex.trace_id = trace;
            let mut line = *b"00-00000000000000000000000000000000-0000000000000000-00";
            let span = loop {
                let s = rng.next().to_be_bytes();
                if s != [0; 8] {
                    break s;
                }
            };
            if let Some(dst) = line.get_mut(3..35) {
                put_hex(dst, &trace);
            }
            if let Some(dst) = line.get_mut(36..52) {
                put_hex(dst, &span);
            }
            if let Some(dst) = line.get_mut(53..55) {
                put_hex(dst, &[flags]);
            }
            ex.edits.fields.add(b"traceparent", &line);
        }
    }
}

/// 16 random bytes, never all zero (an invalid trace id).
fn random16(rng: &Rng) -> [u8; 16] {
    loop {
        let mut b = [0u8; 16];
        let (hi, lo) = b.split_at_mut(8);
        hi.copy_from_slice(&rng.next().to_be_bytes());
        lo.copy_from_slice(&rng.next().to_be_bytes());
        if b != [0; 16] {
            return b;
        }
    }
}

/// Writes `bytes` as lowercase hex into `out` (twice as long).
pub(crate) fn put_hex(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        if let ([h, l], Some(hi), Some(lo)) = (
            pair,
            HEX.get(usize::from(b >> 4)),
            HEX.get(usize::from(b & 15)),
        ) {
            *h = *hi;
            *l = *lo;
        }
    }
}

/// `n` lowercase hex digits of `s` as bytes; `None` on anything else.
fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let [h, l] = pair else { return None };
        *o = (digit(*h)? << 4) | digit(*l)?;
    }
    Some(out)
}

/// The trace id and flags of a valid `traceparent` (W3C Trace Context §3.2): version 00
/// exactly, or a later version's first four parts followed by nothing or `-`; ids not all
/// zero; version `ff` refused.
pub fn parse_traceparent(v: &[u8]) -> Option<([u8; 16], u8)> {
    let version: [u8; 1] = hex(v.get(..2)?)?;
    if version == [0xff] || v.get(2) != Some(&b'-') {
        return None;
    }
    match (version, v.len()) {
        ([0], 55) => {}
        ([0], _) => return None,
        (_, 55) => {}
        (_, n) if n > 55 && v.get(55) == Some(&b'-') => {}
        _ => return None,
    }
    let trace: [u8; 16] = hex(v.get(3..35)?)?;
    let parent: [u8; 8] = hex(v.get(36..52)?)?;
    let flags: [u8; 1] = hex(v.get(53..55)?)?;
    if v.get(35) != Some(&b'-') || v.get(52) != Some(&b'-') || trace == [0; 16] || parent == [0; 8]
    {
        return None;
    }
    let [flags] = flags;
    Some((trace, flags & 0x01))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_only_when_valid() -> Result<(), String> {
        let ok = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (trace, flags) = parse_traceparent(ok).ok_or("a valid traceparent")?;
        assert_eq!(trace.first(), Some(&0x4b));
        assert_eq!(flags, 1);
        let cases: [&[u8]; 9] = [
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            b"",
        ];
        for bad in cases {
            assert_eq!(
                parse_traceparent(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // a later version may carry more parts after a dash
        let later = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
        assert_eq!(parse_traceparent(later).map(|p| p.1), Some(0));
        Ok(())
    }

    #[test]
    fn hex_round_trips() {
        let mut out = [0u8; 4];
        put_hex(&mut out, &[0xab, 0x09]);
        assert_eq!(&out, b"ab09");
        assert_eq!(hex::<2>(b"ab09"), Some([0xab, 0x09]));
        assert_eq!(hex::<2>(b"ab0"), None);
        assert_eq!(hex::<2>(b"ab0g"), None);
    }
}
