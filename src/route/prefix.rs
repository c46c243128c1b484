//! IP prefixes and a longest-prefix-match table that also says how wide
//! the matched answer holds (the ECS scope).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::OnceLock;

/// An IP network: address (host bits zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub len: u8,
}

impl Net {
    /// `addr/len` with the bits beyond `len` cleared (`len` is capped at
    /// the family's width).
    pub fn new(addr: IpAddr, len: u8) -> Net {
        let len = len.min(width(&addr));
        Net {
            addr: mask(addr, len),
            len,
        }
    }
}

impl Net {
    /// Whether `ip` (a v4-mapped address counts as IPv4) is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }
}

/// Bits in an address of `addr`'s family.
pub fn width(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// The address as 128 left-aligned bits.
fn bits(addr: &IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(*a)) << 96,
        IpAddr::V6(a) => u128::from(*a),
    }
}

/// `addr` with every bit beyond `len` cleared.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    let keep = |w: u32| {
        if len == 0 {
            0
        } else {
            u128::MAX << (w - u32::from(len.min(w as u8)))
        }
    };
    match addr {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) & keep(32) as u32).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & keep(128)).into()),
    }
}

/// Why a network does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// No `/`.
    #[error("`{0}` is not ADDRESS/LENGTH")]
    Shape(String),
    /// The address part.
    #[error("`{0}` is not an IP address")]
    Address(String),
    /// The length part.
    #[error("`/{len}` is not a prefix length for {addr}")]
    Length {
        /// As written.
        len: String,
        /// The address.
        addr: IpAddr,
    },
    /// Bits set beyond the length.
    #[error("`{text}` has host bits set (the network is {network}/{len})")]
    HostBits {
        /// As written.
        text: String,
        /// The masked address.
        network: IpAddr,
        /// The length.
        len: u8,
    },
}

impl FromStr for Net {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Net, NetError> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| NetError::Shape(s.to_string()))?;
        let addr: IpAddr = a.parse().map_err(|_| NetError::Address(a.to_string()))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|&l| l <= width(&addr))
            .ok_or_else(|| NetError::Length {
                len: l.to_string(),
                addr,
            })?;
        if mask(addr, len) != addr {
            return Err(NetError::HostBits {
                text: s.to_string(),
                network: mask(addr, len),
                len,
            });
        }
        Ok(Net { addr, len })
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    child: [u32; 2],
    value: u32,
}

const EMPTY: Node = Node {
    child: [NONE, NONE],
    value: NONE,
};

/// A map from prefixes to values, one per address family. Inserts go into
/// a binary trie; lookups go to the trie flattened into sorted address
/// ranges (made at the first lookup after an insert, or by
/// [`PrefixMap::freeze`]): a binary search, no allocation, and the scope
/// computed from the range's ends.
#[derive(Debug, Clone)]
pub struct PrefixMap<T> {
    roots: [u32; 2],
    nodes: Vec<Node>,
    values: Vec<T>,
    flat: OnceLock<(Ranges<u32>, Ranges<u128>)>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        PrefixMap {
            roots: [0, 1],
            nodes: vec![EMPTY, EMPTY],
            values: Vec::new(),
            flat: OnceLock::new(),
        }
    }
}

/// One family's addresses cut into ranges that each get one result.
/// Ranges are maximal: neighbours get different results. IPv4's are
/// searched as 32-bit numbers (`u32`), IPv6's as 128-bit ones: comparing
/// and counting bits of a 128-bit number takes two of each instruction.
#[derive(Debug, Clone, Default)]
struct Ranges<B> {
    /// First address of each range, ascending; the first is 0.
    starts: Box<[B]>,
    /// Each range's result: the value index (`NONE` for none) and the
    /// length of its prefix.
    results: Box<[(u32, u8)]>,
}

/// An address as a number of its family's width.
trait Bits: Copy + Ord + std::ops::BitXor<Output = Self> {
    const WIDTH: u32;
    const ZERO: Self;
    const MAX: Self;
    fn leading_zeros(self) -> u32;
    fn trailing_zeros(self) -> u32;
    fn trailing_ones(self) -> u32;
    /// One less (never called on 0).
    fn before(self) -> Self;
}

macro_rules! bits {
    ($t:ty) => {
        impl Bits for $t {
            const WIDTH: u32 = <$t>::BITS;
            const ZERO: Self = 0;
            const MAX: Self = <$t>::MAX;
            fn leading_zeros(self) -> u32 {
                <$t>::leading_zeros(self)
            }
            fn trailing_zeros(self) -> u32 {
                <$t>::trailing_zeros(self)
            }
            fn trailing_ones(self) -> u32 {
                <$t>::trailing_ones(self)
            }
            fn before(self) -> Self {
                self - 1
            }
        }
    };
}
bits!(u32);
bits!(u128);

impl<B: Bits> Ranges<B> {
    /// The range holding `b`: its value index, prefix length and scope.
    fn find(&self, b: B) -> (Option<usize>, u8, u8) {
        // starts[0] is 0, so some range holds b.
        let i = self.starts.partition_point(|&s| s <= b) - 1;
        let lo = self.starts[i];
        let hi = self.starts.get(i + 1).map_or(B::MAX, |&next| next.before());
        let (value, len) = self.results[i];
        let scope = widest_block(b, lo, hi);
        ((value != NONE).then_some(value as usize), len, scope)
    }
}

/// The prefix length of the widest block around `a` inside `lo..=hi`
/// (`lo <= a <= hi`).
fn widest_block<B: Bits>(a: B, lo: B, hi: B) -> u8 {
    // A block addr/len starts at or after `lo` if len is past the first
    // bit where a and lo differ, or if lo's bits beyond len are all zero;
    // it ends at or before `hi` likewise with hi's bits all one.
    let w = B::WIDTH;
    let part = |x: B| {
        if x == B::ZERO {
            w
        } else {
            x.leading_zeros() + 1
        }
    };
    let from_lo = part(a ^ lo).min(w - lo.trailing_zeros().min(w));
    let from_hi = part(a ^ hi).min(w - hi.trailing_ones().min(w));
    from_lo.max(from_hi) as u8
}

/// A lookup result: the longest matching prefix's value (if any), its
/// length, and the scope: the prefix length of the widest block around the
/// address in which every address gets the same result.
#[derive(Debug, PartialEq)]
pub struct Match<'a, T> {
    /// The value of the longest matching prefix.
    pub value: Option<&'a T>,
    /// Length of that prefix (0 without a match).
    pub len: u8,
    /// Every address in `addr/scope` has the same result.
    pub scope: u8,
}

impl<T> PrefixMap<T> {
    /// Makes the ranges lookups read now, off the query path, then lets go
    /// of the trie, which lookups no longer read (for a map that takes no
    /// more inserts: a networks file of a million lines keeps its ranges, a
    /// fifth of the trie's size).
    pub fn freeze(&mut self) {
        self.ranges();
        self.nodes = Vec::new();
    }

    fn ranges(&self) -> &(Ranges<u32>, Ranges<u128>) {
        self.flat.get_or_init(|| {
            let v4 = self.flatten(0, 32);
            (
                Ranges {
                    starts: v4.starts.iter().map(|&s| (s >> 96) as u32).collect(),
                    results: v4.results,
                },
                self.flatten(1, 128),
            )
        })
    }

    /// The trie of family `fam` as ranges, in address order (addresses as
    /// 128 left-aligned bits).
    fn flatten(&self, fam: usize, w: u8) -> Ranges<u128> {
        let mut starts = Vec::new();
        let mut results: Vec<(u32, u8)> = Vec::new();
        let mut push = |start: u128, result: (u32, u8)| {
            if results.last() != Some(&result) {
                starts.push(start);
                results.push(result);
            }
        };
        // Depth first, the 0 side first: (node, depth, prefix, result of
        // the enclosing prefixes); a missing node (`NONE`) is one range
        // with that result.
        let mut stack = vec![(self.roots[fam], 0u8, 0u128, (NONE, 0u8))];
        while let Some((n, depth, prefix, mut result)) = stack.pop() {
            if n == NONE {
                push(prefix, result);
                continue;
            }
            let node = &self.nodes[n as usize];
            if node.value != NONE {
                result = (node.value, depth);
            }
            if depth == w || node.child == [NONE, NONE] {
                push(prefix, result);
                continue;
            }
            let one = prefix | (1u128 << (127 - depth));
            stack.push((node.child[1], depth + 1, one, result));
            stack.push((node.child[0], depth + 1, prefix, result));
        }
        Ranges {
            starts: starts.into(),
            results: results.into(),
        }
    }

    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// True if nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Maps `net` to `value`; an existing value for the same prefix is kept
    /// (first wins) and false returned.
    pub fn insert(&mut self, net: Net, value: T) -> bool {
        assert!(!self.nodes.is_empty(), "an insert into a frozen PrefixMap");
        let fam = usize::from(net.addr.is_ipv6());
        let b = bits(&net.addr);
        let mut n = self.roots[fam] as usize;
        for i in 0..net.len {
            let dir = ((b >> (127 - i)) & 1) as usize;
            if self.nodes[n].child[dir] == NONE {
                self.nodes.push(EMPTY);
                self.nodes[n].child[dir] = (self.nodes.len() - 1) as u32;
            }
            n = self.nodes[n].child[dir] as usize;
        }
        if self.nodes[n].value != NONE {
            return false;
        }
        self.flat = OnceLock::new();
        self.values.push(value);
        self.nodes[n].value = (self.values.len() - 1) as u32;
        true
    }

    /// The longest prefix containing `addr`, and the scope of the answer.
    pub fn lookup(&self, addr: IpAddr) -> Match<'_, T> {
        let (index, len, scope) = self.find(addr);
        Match {
            value: index.map(|i| &self.values[i]),
            len,
            scope,
        }
    }

    /// What [`PrefixMap::lookup`] finds, with the value as its index in
    /// [`PrefixMap::values`].
    pub fn find(&self, addr: IpAddr) -> (Option<usize>, u8, u8) {
        let (v4, v6) = self.ranges();
        match addr {
            IpAddr::V4(a) => v4.find(u32::from(a)),
            IpAddr::V6(a) => v6.find(u128::from(a)),
        }
    }

    /// The trie walked bit by bit: what the ranges must agree with.
    #[cfg(test)]
    fn walk(&self, addr: IpAddr) -> (Option<usize>, u8, u8) {
        let fam = usize::from(addr.is_ipv6());
        let b = bits(&addr);
        let w = width(&addr);
        let mut n = self.roots[fam] as usize;
        let mut found = (NONE, 0u8);
        let mut depth = 0u8;
        loop {
            let node = &self.nodes[n];
            if node.value != NONE {
                found = (node.value, depth);
            }
            if depth == w || node.child == [NONE, NONE] {
                // Nothing more specific below: the result holds for addr/depth.
                break;
            }
            let dir = ((b >> (127 - depth)) & 1) as usize;
            if node.child[dir] == NONE {
                // More specific prefixes exist only on the other side: the
                // result holds for addr/(depth+1).
                depth += 1;
                break;
            }
            n = node.child[dir] as usize;
            depth += 1;
        }
        (
            (found.0 != NONE).then_some(found.0 as usize),
            found.1,
            depth,
        )
    }

    /// Every value, in insertion order.
    pub fn values(&self) -> &[T] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_rejects_host_bits_and_long_prefixes() {
        assert_eq!(
            "10.0.0.0/8".parse::<Net>().unwrap(),
            Net::new(ip("10.1.2.3"), 8)
        );
        assert!("10.0.0.1/8".parse::<Net>().is_err());
        assert!("10.0.0.0/33".parse::<Net>().is_err());
        assert!("2001:db8::/129".parse::<Net>().is_err());
        assert!("2001:db8::/32".parse::<Net>().is_ok());
    }

    #[test]
    fn longest_prefix_with_honest_scope() {
        let mut m = PrefixMap::new();
        m.insert("10.0.0.0/8".parse().unwrap(), "a");
        m.insert("10.1.0.0/16".parse().unwrap(), "b");
        m.insert("2001:db8:1::/48".parse().unwrap(), "c");
        // Inside the /16, nothing more specific: scope 16.
        let r = m.lookup(ip("10.1.2.3"));
        assert_eq!((r.value, r.len, r.scope), (Some(&"b"), 16, 16));
        // 10.2.x: the /8 answers, but 10.1/16 differs. 10.2 is 00001010.00000010,
        // 10.1 is 00001010.00000001: they part at bit 14, so scope 15.
        let r = m.lookup(ip("10.2.0.1"));
        assert_eq!((r.value, r.len, r.scope), (Some(&"a"), 8, 15));
        // Outside everything: the default answer holds only where no prefix is.
        let r = m.lookup(ip("192.0.2.1"));
        assert_eq!((r.value, r.scope), (None, 1));
        let r = m.lookup(ip("11.0.0.1"));
        assert_eq!((r.value, r.scope), (None, 8));
        let r = m.lookup(ip("2001:db8:1:2::1"));
        assert_eq!((r.value, r.len, r.scope), (Some(&"c"), 48, 48));
        // An empty family: the answer is the same for every address.
        let empty: PrefixMap<u8> = PrefixMap::new();
        assert_eq!(empty.lookup(ip("192.0.2.1")).scope, 0);
        assert_eq!(empty.lookup(ip("2001:db8::1")).scope, 0);
    }

    /// Random maps, random addresses (near the prefixes' edges too): the
    /// ranges give what the trie walk gives, and an insert after a lookup
    /// is seen.
    #[test]
    fn ranges_agree_with_the_trie() {
        let mut rng = fastrand::Rng::with_seed(18);
        for round in 0..300 {
            let v6 = round % 3 == 0;
            let w = if v6 { 128 } else { 32 };
            let mut m = PrefixMap::new();
            let mut nets = Vec::new();
            let random = |rng: &mut fastrand::Rng| -> IpAddr {
                // Few distinct top bits, so prefixes nest and touch.
                let top = u128::from(rng.u8(..4)) << 124;
                let x = top | (rng.u128(..) >> 4);
                if v6 {
                    IpAddr::V6(x.into())
                } else {
                    IpAddr::V4(((x >> 96) as u32).into())
                }
            };
            for _ in 0..rng.usize(0..12) {
                let net = Net::new(random(&mut rng), rng.u8(0..=w));
                nets.push(net);
                m.insert(net, nets.len());
                let a = random(&mut rng);
                assert_eq!(m.find(a), m.walk(a), "{a} in {nets:?}");
            }
            let mut probes: Vec<IpAddr> = (0..40).map(|_| random(&mut rng)).collect();
            for n in &nets {
                let b = bits(&n.addr);
                let span = u128::MAX.checked_shr(u32::from(n.len)).unwrap_or(0);
                let span = if v6 { span } else { span & (u128::MAX << 96) };
                for x in [
                    b,
                    b | span,
                    b.wrapping_sub(1 << (128 - w)),
                    (b | span).wrapping_add(1 << (128 - w)),
                ] {
                    probes.push(if v6 {
                        IpAddr::V6(x.into())
                    } else {
                        IpAddr::V4(((x >> 96) as u32).into())
                    });
                }
            }
            let want: Vec<_> = probes.iter().map(|&a| m.walk(a)).collect();
            for (a, want) in probes.iter().zip(&want) {
                assert_eq!(m.find(*a), *want, "{a} in {nets:?}");
            }
            // A frozen map (no trie left) finds the same.
            m.freeze();
            assert!(m.nodes.is_empty());
            for (a, want) in probes.iter().zip(&want) {
                assert_eq!(m.find(*a), *want, "frozen: {a} in {nets:?}");
            }
        }
    }

    #[test]
    fn the_widest_block_inside_a_range() {
        let v4 = |s: &str| u32::from(s.parse::<std::net::Ipv4Addr>().unwrap());
        let b = |a, lo, hi| widest_block(v4(a), v4(lo), v4(hi));
        assert_eq!(b("10.2.0.1", "10.2.0.0", "10.255.255.255"), 15);
        assert_eq!(b("192.0.2.1", "11.0.0.0", "255.255.255.255"), 1);
        assert_eq!(b("1.2.3.4", "0.0.0.0", "255.255.255.255"), 0);
        assert_eq!(b("1.2.3.4", "1.2.3.4", "1.2.3.4"), 32);
        assert_eq!(b("1.2.3.5", "1.2.3.4", "1.2.3.7"), 30);
        assert_eq!(b("1.2.3.5", "1.2.3.5", "1.2.3.7"), 32);
        assert_eq!(b("1.2.3.6", "1.2.3.5", "1.2.3.7"), 31);
    }
}
