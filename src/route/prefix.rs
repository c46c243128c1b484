//! IP prefixes and a longest-prefix-match table that also says how wide
//! the matched answer holds (the ECS scope).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

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

/// A binary trie from prefixes to values, one per address family. Lookups
/// walk at most 32 or 128 nodes and allocate nothing.
#[derive(Debug, Clone)]
pub struct PrefixMap<T> {
    roots: [u32; 2],
    nodes: Vec<Node>,
    values: Vec<T>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        PrefixMap {
            roots: [0, 1],
            nodes: vec![EMPTY, EMPTY],
            values: Vec::new(),
        }
    }
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
        self.values.push(value);
        self.nodes[n].value = (self.values.len() - 1) as u32;
        true
    }

    /// The longest prefix containing `addr`, and the scope of the answer.
    pub fn lookup(&self, addr: IpAddr) -> Match<'_, T> {
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
        Match {
            value: (found.0 != NONE).then(|| &self.values[found.0 as usize]),
            len: found.1,
            scope: depth,
        }
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
    }
}
