//! The names of a zone: a hash table of 4-byte indices into one vector of
//! (key, node) pairs. A table of a million names has 2^21 slots (it keeps
//! an eighth free); slots of a whole pair each (168 bytes) made it 350 MB,
//! most of it empty. Here the slots take 10 MB and the pairs exactly
//! their number.

use hashbrown::HashTable;

use super::key::same;
use super::{Node, NodeKey};

/// The nodes of a zone by key.
#[derive(Debug, Default)]
pub struct Nodes {
    index: HashTable<u32>,
    entries: Vec<Named>,
}

/// A name and its node, on a cache-line boundary: what a query reads (the
/// key, `cut`, the first entry's prepared bytes; see [`Node`]) is in its
/// first two lines.
#[derive(Debug)]
#[repr(C, align(64))]
struct Named {
    key: NodeKey,
    node: Node,
}

pub use super::key::key_hash as hash;

impl Nodes {
    /// Room for `n` more names.
    pub fn reserve(&mut self, n: usize) {
        let entries = &self.entries;
        self.index.reserve(n, |&i| hash(&entries[i as usize].key));
        self.entries.reserve_exact(n);
    }

    /// The index of `key`'s node.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.find_hashed(key, hash(key))
    }

    /// [`Nodes::find`] with the key's [`hash`].
    pub fn find_hashed(&self, key: &[u8], hash: u64) -> Option<usize> {
        debug_assert_eq!(hash, self::hash(key), "the hash of another key");
        self.index
            .find(hash, |&i| same(&self.entries[i as usize].key, key))
            .map(|&i| i as usize)
    }

    /// Starts loading the place of the key of `hash` into the cache (its
    /// first two lines, what a query reads), without waiting for it.
    pub fn prefetch(&self, hash: u64) {
        self.index.find(hash, |&i| {
            if let Some(e) = self.entries.get(i as usize) {
                let p = (e as *const Named).cast::<u8>();
                prefetch(p);
                prefetch(p.wrapping_add(64));
            }
            false
        });
    }

    /// The node of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Node> {
        self.find(key).map(|i| &self.entries[i].node)
    }

    /// [`Nodes::get`] with the key's [`hash`].
    pub fn get_hashed(&self, key: &[u8], hash: u64) -> Option<&Node> {
        self.find_hashed(key, hash).map(|i| &self.entries[i].node)
    }

    /// The node of `key`, to change.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Node> {
        self.find(key).map(|i| &mut self.entries[i].node)
    }

    /// Whether `key` is a name of the zone.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// Number of names.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// The `i`th name and node (in the order they were added).
    pub fn at(&self, i: usize) -> (&NodeKey, &Node) {
        let e = &self.entries[i];
        (&e.key, &e.node)
    }

    /// The `i`th node, to change.
    pub fn at_mut(&mut self, i: usize) -> &mut Node {
        &mut self.entries[i].node
    }

    /// The index of `key`'s node, added (empty) if missing, and whether it
    /// was added: one hash and one probe of the table.
    pub fn find_or_insert(&mut self, key: &[u8]) -> (usize, bool) {
        self.find_or_insert_hashed(key, hash(key))
    }

    /// [`Nodes::find_or_insert`] with the key's [`hash`].
    pub fn find_or_insert_hashed(&mut self, key: &[u8], h: u64) -> (usize, bool) {
        debug_assert_eq!(h, hash(key), "the hash of another key");
        let entries = &self.entries;
        match self.index.entry(
            h,
            |&i| *entries[i as usize].key == *key,
            |&j| hash(&entries[j as usize].key),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => (*e.get() as usize, false),
            hashbrown::hash_table::Entry::Vacant(e) => {
                let i = u32::try_from(entries.len()).expect("fewer than 2^32 names");
                e.insert(i);
                self.entries.push(Named {
                    key: NodeKey::from(key),
                    node: Node::default(),
                });
                (i as usize, true)
            }
        }
    }

    /// [`Nodes::find_or_insert`] for a name of the zone whose apex key is
    /// `apex_len` bytes long: a new name's missing ancestors down to the
    /// apex (its empty non-terminals) are added too, and `added` is told
    /// the index of each node added.
    pub fn find_or_insert_name(
        &mut self,
        key: &[u8],
        key_hash: Option<u64>,
        apex_len: usize,
        mut added: impl FnMut(usize),
    ) -> usize {
        let (i, mut new) = self.find_or_insert_hashed(key, key_hash.unwrap_or_else(|| hash(key)));
        let (mut k, mut j) = (key, i);
        while new {
            added(j);
            if k.len() <= apex_len {
                break;
            }
            k = &k[1 + k[0] as usize..];
            (j, new) = self.find_or_insert(k);
        }
        i
    }

    /// Every name and node, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeKey, &Node)> {
        self.entries.iter().map(|e| (&e.key, &e.node))
    }

    /// Every name.
    pub fn keys(&self) -> impl Iterator<Item = &NodeKey> {
        self.entries.iter().map(|e| &e.key)
    }
}

/// A hint to load the cache line at `p`; nothing is read.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault, whatever `p` is.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl std::ops::Index<&[u8]> for Nodes {
    type Output = Node;
    fn index(&self, key: &[u8]) -> &Node {
        self.get(key).expect("a name of the zone")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted() {
        let mut n = Nodes::default();
        n.reserve(3);
        for i in 0..1000u32 {
            let k = format!("\x04k{i:03}");
            assert_eq!(n.find_or_insert(k.as_bytes()), (i as usize, true));
        }
        n.get_mut(b"\x04k007").unwrap().cut = true;
        assert!(n[&b"\x04k007"[..]].cut);
        assert!(!n[&b"\x04k008"[..]].cut);
        assert!(n.get(b"\x04k1000").is_none());
        assert_eq!(n.keys().count(), 1000);
        assert_eq!(n.find_or_insert(b"\x04k999"), (999, false));
        assert_eq!(
            (n.count(), n.at(7).0[..].to_vec()),
            (1000, b"\x04k007".to_vec())
        );
        assert!(n.contains_key(b"\x04k999"));
    }

    /// A name's place in the zone is two cache lines (a third would cost
    /// 64 MB in a zone of a million names).
    #[test]
    fn a_name_takes_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Named>(), 128);
    }

    /// What a query reads of a name is in the first two cache lines of
    /// its place: the key, `cut`, the first entry's type and prepared
    /// bytes.
    #[test]
    fn what_a_query_reads_is_in_two_cache_lines() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<Named>() % 64, 0);
        let node = offset_of!(Named, node);
        assert!(offset_of!(Named, key) + size_of::<NodeKey>() <= 128);
        assert!(node + offset_of!(Node, cut) < 128);
        // The entries' length and the first entry, wherever SmallVec puts
        // them.
        assert!(
            node + offset_of!(Node, rrsets)
                + size_of::<smallvec::SmallVec<[super::super::Entry; 1]>>()
                <= 128
        );
        let mut n = Nodes::default();
        let set = hickory_proto::rr::RecordSet::new(
            hickory_proto::rr::Name::root(),
            hickory_proto::rr::RecordType::A,
            0,
        );
        let mut node = Node::default();
        node.rrsets.push(super::super::Entry {
            rtype: hickory_proto::rr::RecordType::A,
            data: super::super::Data::Static(super::super::Rrset::new(set)),
        });
        let (i, _) = n.find_or_insert(b"\x01a");
        *n.at_mut(i) = node;
        let base = &n.entries[0] as *const Named as usize;
        assert_eq!(base % 64, 0);
        let e = &n.entries[0].node.rrsets[0];
        let super::super::Data::Static(rr) = &e.data else {
            unreachable!()
        };
        let wire = &rr.wire as *const _ as usize - base;
        assert!(wire + size_of_val(&rr.wire) <= 128, "{wire}");
        assert!(&e.rtype as *const _ as usize - base < 128);
    }
}
