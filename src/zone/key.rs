//! Name keys: a name's labels in lowercased wire format without the root
//! label (`www.example.test.` is `\x03www\x07example\x04test`). Every
//! ancestor of a name is a suffix of its key, so the query path walks the
//! tree with hash lookups on sub-slices of one stack buffer and allocates
//! nothing.

use hickory_proto::rr::Name;

/// A query name's key on the stack, with the offset of every label.
pub struct Key {
    buf: [u8; 256],
    len: usize,
    /// `offs[i]` is where label `i` starts (label 0 is the leftmost);
    /// `offs[labels]` is `len` (the root).
    offs: [u8; 129],
    labels: usize,
    /// [`key_hash`] of the key.
    hash: u64,
}

impl Key {
    /// The key of `name`, lowercased.
    pub fn new(name: &Name) -> Self {
        let mut k = Key::unhashed(name);
        k.hash = key_hash(k.as_bytes());
        k
    }

    /// [`Key::new`] without its hash (for its bytes only).
    fn unhashed(name: &Name) -> Self {
        let mut k = Key {
            buf: [0; 256],
            len: 0,
            offs: [0; 129],
            labels: 0,
            hash: 0,
        };
        for label in name.iter() {
            // A valid name has at most 127 labels and 254 bytes of labels.
            if k.labels >= 128 || k.len + 1 + label.len() > 255 {
                break;
            }
            k.offs[k.labels] = k.len as u8;
            k.labels += 1;
            k.buf[k.len] = label.len() as u8;
            for (i, b) in label.iter().enumerate() {
                k.buf[k.len + 1 + i] = b.to_ascii_lowercase();
            }
            k.len += 1 + label.len();
        }
        k.offs[k.labels] = k.len as u8;
        k
    }

    /// The key of no name yet, to be filled by [`Key::read_wire`].
    pub fn empty() -> Self {
        Key {
            buf: [0; 256],
            len: 0,
            offs: [0; 129],
            labels: 0,
            hash: key_hash(&[]),
        }
    }

    /// The key of the uncompressed name at the start of `wire` (a query's
    /// question), lowercased, and the name's length there (its root label
    /// included). None for a compression pointer, an extended label type,
    /// or a name longer than 255 bytes: the general path judges those.
    pub fn from_wire(wire: &[u8]) -> Option<(Self, usize)> {
        let mut k = Key::empty();
        let len = k.read_wire(wire)?;
        Some((k, len))
    }

    /// [`Key::from_wire`] into this key (the query path keeps one key on
    /// its stack and does not move it); on None the key is unusable.
    pub fn read_wire(&mut self, wire: &[u8]) -> Option<usize> {
        // The labels: `len` is both where the next label starts in `wire`
        // and the key's length so far (the key is the name less its root).
        let (mut len, mut labels) = (0, 0);
        loop {
            let l = *wire.get(len)? as usize;
            if l == 0 {
                break;
            }
            // Labels are 1..=63 bytes; a name is at most 255 bytes with
            // its root label, so its key is at most 254 (and at most 127
            // labels: `offs` has room for them and the root's).
            if l > 63 || len + 1 + l > 254 {
                return None;
            }
            self.offs[labels] = len as u8;
            labels += 1;
            len += 1 + l;
        }
        // The labels as sent (lengths included), lowercased 8 bytes at a
        // time straight from `wire` (the key's buffer is 256 bytes: the
        // last word of a 254-byte key still fits; its bytes past `len` are
        // never read), and hashed as they go (see [`key_hash`]). Not a copy
        // first and words read back: loads of words a copy has just stored
        // in other widths wait for the stores to retire (no store-to-load
        // forwarding), which made this the slowest step of a query; so did
        // hashing the key after it was written.
        let at = len & !7;
        let mut hash = seed();
        for (to, from) in self.buf[..at]
            .chunks_exact_mut(8)
            .zip(wire[..at].chunks_exact(8))
        {
            let x = lowercase8(u64::from_le_bytes(from.try_into().expect("8 bytes")));
            to.copy_from_slice(&x.to_le_bytes());
            hash = mix(hash, x);
        }
        if at < len {
            // The last 1..=7 bytes, from a whole word when the message
            // holds one (it mostly does: the question's type and class
            // follow the name); the word's bytes past the key are not
            // the key's.
            let rest = len - at;
            let x = match wire.get(at..at + 8) {
                Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
                None => short_word(&wire[at..len]),
            };
            let x = lowercase8(x) & (u64::MAX >> (64 - 8 * rest));
            self.buf[at..at + 8].copy_from_slice(&x.to_le_bytes());
            hash = mix(hash, x);
        }
        self.offs[labels] = len as u8;
        self.len = len;
        self.labels = labels;
        self.hash = mix(hash, len as u64);
        Some(len + 1)
    }

    /// [`key_hash`] of the key.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The labels, lowercased, leftmost first.
    pub fn labels_iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.labels).map(|i| {
            let s = self.offs[i] as usize + 1;
            &self.buf[s..self.offs[i + 1] as usize]
        })
    }

    /// Number of labels.
    pub fn labels(&self) -> usize {
        self.labels
    }

    /// The whole key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The key of the ancestor that drops the first `i` labels
    /// (`suffix(0)` is the name itself, `suffix(labels())` the root).
    pub fn suffix(&self, i: usize) -> &[u8] {
        &self.buf[self.offs[i] as usize..self.len]
    }

    /// The key of `*.` + the ancestor that drops the first `i` labels,
    /// written into `out`.
    pub fn wildcard_of<'b>(&self, i: usize, out: &'b mut [u8; 258]) -> &'b [u8] {
        let s = self.suffix(i);
        out[0] = 1;
        out[1] = b'*';
        out[2..2 + s.len()].copy_from_slice(s);
        &out[..2 + s.len()]
    }
}

/// `x`'s 8 bytes with A-Z lowercased and every other byte as it was (what
/// `to_ascii_lowercase` does to each).
fn lowercase8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Each byte's low 7 bits plus a constant sets its high bit when the
    // byte is at least 'A' (0x41), resp. past 'Z' (0x5a), without carries
    // into the next byte (at most 0x7f + 0x3f).
    let low = x & !HIGH;
    let from_a = low + ONES * (0x80 - b'A' as u64);
    let past_z = low + ONES * (0x80 - b'Z' as u64 - 1);
    let upper = from_a & !past_z & !x & HIGH;
    x | (upper >> 2)
}

/// The hash every zone's table looks a key up by (the same for every
/// table: a name hashed once is looked up in any zone): the key's bytes
/// as little-endian words, the last one padded with zeros, each mixed in
/// by a multiplication, then the key's length. Word by word so that
/// [`Key::read_wire`] hashes each word it lowercases while it holds it.
/// The start is random for each process: zones can come from elsewhere
/// (transfers), and names chosen to collide would slow their lookups.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut hash = seed();
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        hash = mix(hash, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        hash = mix(hash, short_word(rest));
    }
    mix(hash, key.len() as u64)
}

/// Up to 8 bytes as a little-endian word, padded with zeros.
fn short_word(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |w, &b| w << 8 | u64::from(b))
}

/// This process's start of [`key_hash`].
#[inline(always)]
fn seed() -> u64 {
    static SEED: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        use std::hash::{BuildHasher, Hasher};
        std::hash::RandomState::new().build_hasher().finish()
    });
    *SEED
}

/// `word` mixed into `hash`: the two halves of their 128-bit product
/// folded (every bit of the input moves every bit of the result).
#[inline(always)]
fn mix(hash: u64, word: u64) -> u64 {
    let p = u128::from(hash ^ word) * u128::from(0x9e37_79b9_7f4a_7c15u64);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Whether two keys are the same bytes. What a lookup compares, inline:
/// keys are short (most fit in one or a few words), and libc's `memcmp`
/// is a call and a dispatch for each (a few percent of a query).
#[inline]
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    if n >= 8 {
        // Whole words, the last one overlapping the one before it.
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        word(a, n - 8) == word(b, n - 8)
    } else if n >= 4 {
        let half =
            |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().expect("4 bytes"));
        half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// The key of `name` as an owned value, for building tables.
pub fn owned_key(name: &Name) -> Box<[u8]> {
    Key::unhashed(name).as_bytes().into()
}

/// A name's key as a hash map key, held inline when short (most names):
/// a lookup then finds the key bytes beside the value instead of behind
/// another pointer. Hashes and compares as the `[u8]` it holds.
#[derive(Clone)]
pub enum NodeKey {
    /// Up to [`INLINE_KEY`] bytes.
    Inline(u8, [u8; INLINE_KEY]),
    /// Longer.
    Heap(Box<[u8]>),
}

/// The longest key held inline (`\x08host1234\x07example\x03com` is
/// 22 bytes): 30 makes a key 32 bytes, so a name's key and what a query
/// reads of its node share two cache lines (see `zone::nodes`).
pub const INLINE_KEY: usize = 30;

impl std::ops::Deref for NodeKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            NodeKey::Inline(len, b) => &b[..*len as usize],
            NodeKey::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for NodeKey {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl From<&[u8]> for NodeKey {
    fn from(k: &[u8]) -> Self {
        if k.len() <= INLINE_KEY {
            let mut b = [0; INLINE_KEY];
            b[..k.len()].copy_from_slice(k);
            NodeKey::Inline(k.len() as u8, b)
        } else {
            NodeKey::Heap(k.into())
        }
    }
}

impl std::hash::Hash for NodeKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl PartialEq for NodeKey {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for NodeKey {}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys of every length up to the longest, equal or differing in one
    /// byte anywhere, or in length only.
    #[test]
    fn same_compares_every_byte_and_the_length() {
        let a: Vec<u8> = (0..=254u8).map(|i| i.wrapping_mul(7) | 1).collect();
        for n in 0..=254 {
            let x = &a[..n];
            let y = a[..n].to_vec();
            assert!(same(x, &y), "{n} bytes");
            for i in 0..n {
                let mut z = y.clone();
                z[i] ^= 0x20;
                assert!(!same(x, &z), "{n} bytes, byte {i} differs");
            }
            if n > 0 {
                assert!(!same(x, &a[..n - 1]), "{n} against {} bytes", n - 1);
            }
        }
    }

    /// Names of every length, in mixed case, read from a message that
    /// ends at the name or goes on: the key is the name lowercased, label
    /// offsets included, and the length read is the name's.
    #[test]
    fn wire_names_of_every_length_read_lowercased() {
        let mut rng = fastrand::Rng::with_seed(18);
        for total in 1..=254usize {
            // Labels of random lengths filling about `total` key bytes.
            let (mut wire, mut labels) = (Vec::new(), Vec::new());
            while total - wire.len() >= 2 {
                let l = rng.usize(1..=(total - wire.len() - 1).min(63));
                let label: Vec<u8> = (0..l)
                    .map(|_| b"aBzZ09-_\x80\xc1"[rng.usize(..10)])
                    .collect();
                wire.push(l as u8);
                wire.extend_from_slice(&label);
                labels.push(label);
            }
            wire.push(0);
            let name = Name::from_labels(labels).unwrap();
            let want = Key::new(&name);
            for tail in [&[][..], &[0, 1][..], &[0, 1, 0, 1, 0, 0, 41, 16, 0][..]] {
                let mut msg = wire.clone();
                msg.extend_from_slice(tail);
                let (k, n) = Key::from_wire(&msg).expect("a name");
                assert_eq!(n, wire.len());
                assert_eq!(k.as_bytes(), want.as_bytes(), "{total} {tail:?}");
                // Hashed as it was read, as a table hashes the bytes.
                assert_eq!(k.hash(), key_hash(want.as_bytes()), "{total} {tail:?}");
                assert_eq!(want.hash(), key_hash(want.as_bytes()));
                assert_eq!(k.labels(), want.labels());
                for i in 0..=k.labels() {
                    assert_eq!(k.suffix(i), want.suffix(i));
                }
            }
        }
    }

    /// A name of 255 bytes (its root label included) is the longest: its
    /// key of 254 bytes reads, one byte more does not; the same at 127
    /// labels, the most a name can have.
    #[test]
    fn the_longest_names_read_and_no_longer() {
        let name = |key_len: usize| -> Vec<u8> {
            // Labels of 63 bytes, then one that makes up the rest.
            let mut wire = Vec::new();
            while key_len - wire.len() > 64 {
                wire.push(63);
                wire.extend_from_slice(&[b'A'; 63]);
            }
            let l = key_len - wire.len() - 1;
            wire.push(l as u8);
            wire.extend(std::iter::repeat_n(b'b', l));
            wire.push(0);
            wire
        };
        let (k, n) = Key::from_wire(&name(254)).expect("a 255-byte name");
        assert_eq!((k.as_bytes().len(), n, k.labels()), (254, 255, 4));
        assert_eq!(k.hash(), key_hash(k.as_bytes()));
        assert!(Key::from_wire(&name(255)).is_none(), "a 256-byte name");
        let ones = |labels: usize| {
            [1u8, b'x']
                .repeat(labels)
                .into_iter()
                .chain([0])
                .collect::<Vec<_>>()
        };
        assert_eq!(
            Key::from_wire(&ones(127)).expect("127 labels").0.labels(),
            127
        );
        assert!(Key::from_wire(&ones(128)).is_none(), "128 labels");
    }

    /// The query path reads every query into one key: a name read after
    /// a longer one (or after one that did not read) is read as if fresh.
    #[test]
    fn a_key_read_again_holds_only_the_new_name() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut k = Key::empty();
        let random_name = |rng: &mut fastrand::Rng| {
            let mut wire = Vec::new();
            for _ in 0..rng.usize(0..6) {
                let l = rng.usize(1..=20);
                wire.push(l as u8);
                wire.extend((0..l).map(|_| b"aZ-9"[rng.usize(..4)]));
            }
            wire.push(0);
            wire
        };
        for _ in 0..2000 {
            let mut msg = random_name(&mut rng);
            msg.extend_from_slice(&[0, 1, 0, 1][..rng.usize(..=4)]);
            if rng.u8(..10) == 0 {
                // One that does not read: a pointer after some labels.
                let _ = k.read_wire(b"\x05stale\x05bytes\xc0\x0c");
            }
            let fresh = Key::from_wire(&msg).expect("a name");
            assert_eq!(k.read_wire(&msg), Some(fresh.1));
            assert_eq!(k.as_bytes(), fresh.0.as_bytes());
            assert_eq!(k.hash(), fresh.0.hash());
            assert_eq!(k.labels(), fresh.0.labels());
            for i in 0..=k.labels() {
                assert_eq!(k.suffix(i), fresh.0.suffix(i));
            }
        }
    }

    /// Names that differ in one character anywhere (in any byte of a
    /// word), or in trailing zero bytes only, spread over a table's slots
    /// (its low bits) and tags (its top 7 bits) as random numbers would.
    #[test]
    fn similar_names_hash_apart() {
        let mut keys: Vec<Vec<u8>> = (0..4096u32)
            .map(|i| format!("\x0bhost{i:07}\x07example\x03com").into_bytes())
            .collect();
        for at in 0..24 {
            let mut k = b"\x17abcdefghijklmnopqrstuvw".to_vec();
            k[at] ^= 1;
            keys.push(k);
        }
        keys.extend((0..16).map(|n| [&b"\x01a"[..], &vec![0; n]].concat()));
        let hashes: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
        let mut seen = std::collections::HashSet::new();
        assert!(hashes.iter().all(|h| seen.insert(*h)), "a collision");
        // 4,136 keys in 4,096 slots: about 2,600 are used when the slots
        // are random (1 - e^-1.01 of them, give or take 30; the range is
        // 10 of those either side, as the start is random for each
        // process), 64 with the fold left out of `mix`.
        for (what, slot) in [
            ("low bits", &(|h: u64| h & 4095) as &dyn Fn(u64) -> u64),
            ("top bits", &|h: u64| h >> 52),
        ] {
            let used: std::collections::HashSet<u64> = hashes.iter().map(|&h| slot(h)).collect();
            assert!(
                (2300..2900).contains(&used.len()),
                "{what}: {} of 4096 slots used",
                used.len()
            );
        }
    }

    #[test]
    fn words_lowercase_as_bytes_do() {
        let mut rng = fastrand::Rng::with_seed(8);
        let mut samples: Vec<[u8; 8]> = (0..=255u8).map(|b| [b; 8]).collect();
        samples.extend((0..10_000).map(|_| std::array::from_fn(|_| rng.u8(..))));
        for b in samples {
            let want: Vec<u8> = b.iter().map(u8::to_ascii_lowercase).collect();
            let got = lowercase8(u64::from_ne_bytes(b)).to_ne_bytes();
            assert_eq!(got.as_slice(), want.as_slice(), "{b:?}");
        }
    }

    #[test]
    fn suffixes_are_ancestors() {
        let k = Key::new(&Name::from_ascii("WWW.Example.test.").unwrap());
        assert_eq!(k.labels(), 3);
        assert_eq!(k.as_bytes(), b"\x03www\x07example\x04test");
        assert_eq!(k.suffix(1), b"\x07example\x04test");
        assert_eq!(k.suffix(3), b"");
        let mut buf = [0; 258];
        assert_eq!(k.wildcard_of(1, &mut buf), b"\x01*\x07example\x04test");
        assert_eq!(
            &*owned_key(&Name::from_ascii("example.TEST").unwrap()),
            k.suffix(1)
        );
        let (w, len) = Key::from_wire(b"\x03WWW\x07Example\x04test\x00\x00\x01").unwrap();
        assert_eq!((w.as_bytes(), len, w.labels()), (k.as_bytes(), 18, 3));
        assert_eq!(w.suffix(2), b"\x04test");
        let labels: Vec<&[u8]> = w.labels_iter().collect();
        assert_eq!(labels, [&b"www"[..], b"example", b"test"]);
        assert_eq!(Key::from_wire(b"\x00").unwrap().0.labels(), 0);
        assert!(Key::from_wire(b"\x03www\xc0\x0c").is_none(), "a pointer");
        assert!(Key::from_wire(b"\x03ww").is_none(), "cut short");
        let long: Vec<u8> = (0..5)
            .flat_map(|_| [63u8].into_iter().chain([b'a'; 63]))
            .chain([0])
            .collect();
        assert!(Key::from_wire(&long).is_none(), "over 255 bytes");
        // Extended label types (0x40, 0x80) and a pointer's first byte,
        // with zeros after them (a root label wherever a length lands).
        for first in [0x40u8, 0x41, 0x7f, 0x80, 0xbf, 0xc0] {
            let msg: Vec<u8> = [first].into_iter().chain([0; 256]).collect();
            assert!(Key::from_wire(&msg).is_none(), "{first:#x}");
        }
        assert!(Key::from_wire(b"\x3fa").is_none(), "a label past the end");
        // A node key hashes and compares as its bytes, inline or not.
        let mut m = rustc_hash::FxHashMap::default();
        m.insert(NodeKey::from(w.as_bytes()), 1);
        m.insert(NodeKey::from(&long[..250]), 2);
        assert!(matches!(NodeKey::from(&long[..250]), NodeKey::Heap(_)));
        assert_eq!(
            (m.get(k.as_bytes()), m.get(&long[..250])),
            (Some(&1), Some(&2))
        );
    }
}
