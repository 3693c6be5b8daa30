//! A set of IPv4/IPv6 networks as a binary prefix trie: lookup walks at most 32 (IPv4) or 128
//! (IPv6) bits whatever the number of networks, so 10,000 CIDRs cost what 10 do.

use std::net::IpAddr;

/// One trie node: children for bit 0 and 1 (0 = none), and whether a network ends here.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    child: [u32; 2],
    end: bool,
}

/// A set of networks; IPv4-mapped IPv6 addresses are looked up as IPv4.
#[derive(Debug, Clone)]
pub struct CidrSet {
    v4: Vec<Node>,
    v6: Vec<Node>,
    len: usize,
}

impl Default for CidrSet {
    fn default() -> Self {
        CidrSet {
            v4: vec![Node::default()],
            v6: vec![Node::default()],
            len: 0,
        }
    }
}

impl CidrSet {
    /// Parses `a.b.c.d/n`, `x::/n` or a bare address (a host network) for each entry; the
    /// error names the first bad one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<CidrSet, String> {
        let mut set = CidrSet::default();
        for e in entries {
            let e = e.as_ref().trim();
            let (addr, bits) = match e.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (e, None),
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("`{e}` is not an IP address or CIDR network"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("`{e}`: prefix length must be 0..={max}"))?,
            };
            set.insert(ip, bits);
        }
        Ok(set)
    }

    /// Adds the network `ip/bits` (bits beyond the prefix are ignored).
    pub fn insert(&mut self, ip: IpAddr, bits: u8) {
        let (nodes, key, width) = match normalize(ip) {
            IpAddr::V4(a) => (&mut self.v4, u128::from(u32::from(a)) << 96, 32),
            IpAddr::V6(a) => (&mut self.v6, u128::from(a), 128),
        };
        let bits = bits.min(width);
        let mut at = 0usize;
        for i in 0..bits {
            let bit = usize::from((key >> (127 - i)) & 1 == 1);
            let next = nodes
                .get(at)
                .and_then(|n| n.child.get(bit))
                .copied()
                .unwrap_or(0);
            at = if next == 0 {
                let new = nodes.len();
                nodes.push(Node::default());
                if let Some(c) = nodes.get_mut(at).and_then(|n| n.child.get_mut(bit)) {
                    *c = new as u32;
                }
                new
            } else {
                next as usize
            };
        }
        if let Some(n) = nodes.get_mut(at) {
            n.end = true;
        }
        self.len += 1;
    }

    /// True when some network of the set contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (nodes, key, width) = match normalize(ip) {
            IpAddr::V4(a) => (&self.v4, u128::from(u32::from(a)) << 96, 32),
            IpAddr::V6(a) => (&self.v6, u128::from(a), 128),
        };
        let mut at = 0usize;
        for i in 0..=width {
            let Some(n) = nodes.get(at) else {
                return false;
            };
            if n.end {
                return true;
            }
            if i == width {
                return false;
            }
            let bit = usize::from((key >> (127 - i)) & 1 == 1);
            match n.child.get(bit) {
                Some(&c) if c != 0 => at = c as usize,
                _ => return false,
            }
        }
        false
    }

    /// Networks inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`.
fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn matches_by_prefix() {
        let s = CidrSet::parse(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "0.0.0.0/0"][..3])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.contains(ip("10.1.2.3")));
        assert!(s.contains(ip("::ffff:10.9.9.9")));
        assert!(!s.contains(ip("11.0.0.1")));
        assert!(s.contains(ip("192.168.1.7")));
        assert!(!s.contains(ip("192.168.1.8")));
        assert!(s.contains(ip("2001:db8:1::5")));
        assert!(!s.contains(ip("2001:db9::1")));
        let all = CidrSet::parse(&["0.0.0.0/0", "::/0"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(ip("8.8.8.8")) && all.contains(ip("fe80::1")));
        assert!(!CidrSet::default().contains(ip("1.1.1.1")));
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            CidrSet::parse(&["10.0.0.0/33"]).unwrap_err(),
            "`10.0.0.0/33`: prefix length must be 0..=32"
        );
        assert_eq!(
            CidrSet::parse(&["example.com"]).unwrap_err(),
            "`example.com` is not an IP address or CIDR network"
        );
    }

    #[test]
    fn agrees_with_a_linear_scan_on_many_networks() {
        let mut nets = Vec::new();
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            nets.push((x, (x % 17 + 12) as u8));
        }
        let strs: Vec<String> = nets
            .iter()
            .map(|(a, b)| format!("{}/{b}", std::net::Ipv4Addr::from(*a)))
            .collect();
        let set = CidrSet::parse(&strs).unwrap_or_else(|e| panic!("{e}"));
        for probe in 0..5000u32 {
            let a = probe.wrapping_mul(2_654_435_761);
            let linear = nets.iter().any(|(n, b)| {
                let mask = if *b == 0 { 0 } else { u32::MAX << (32 - b) };
                a & mask == n & mask
            });
            assert_eq!(set.contains(IpAddr::V4(a.into())), linear, "{a:#x}");
        }
    }
}
