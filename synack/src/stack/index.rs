//! The connection index: which slot holds the connection of a 4-tuple. A hash table of
//! slot numbers with 32 bits of each one's hash (the 4-tuple itself is read from the
//! connection, which the lookup needs next anyway; the stored hash spares growing the
//! table a visit to every connection), hashed with a keyed SipHash so that a remote
//! attacker cannot aim collisions. At a million connections it costs about 18 bytes
//! each, where a map from 4-tuple to slot costs about 150.

use core::hash::Hasher;
use core::net::SocketAddr;

use hashbrown::HashTable;
use siphasher::sip::SipHasher13;

use super::tables::{FourTuple, Slot};

/// 4-tuple → slot number, for the connections in the demultiplexing table.
///
/// Invariant: every slot number in the table holds a connection with the 4-tuple it was
/// entered under (the stack removes an entry before or as it empties the slot).
#[derive(Debug)]
pub(crate) struct ConnectionIndex {
    /// (slot, hash): the table's hash of an entry is `spread(hash)`.
    table: HashTable<(u32, u32)>,
    key: (u64, u64),
}

/// The table's 64-bit hash from the stored 32 bits: hashbrown takes the bucket from the
/// low bits and a 7-bit tag from the top ones, both distinct bits of `h` below 2^25
/// buckets.
fn spread(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
}

fn hash(key: (u64, u64), t: &FourTuple) -> u32 {
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    for addr in [t.local, t.remote] {
        match addr {
            SocketAddr::V4(a) => h.write(&a.ip().octets()),
            SocketAddr::V6(a) => h.write(&a.ip().octets()),
        }
        h.write_u16(addr.port());
    }
    h.finish() as u32
}

fn tuple_of(slots: &[Slot], index: u32) -> Option<FourTuple> {
    let c = slots.get(index as usize)?.conn.as_ref()?;
    Some(FourTuple {
        local: c.local,
        remote: c.remote,
    })
}

impl ConnectionIndex {
    /// An empty index whose hash is keyed by `key`.
    pub(crate) fn new(key: [u8; 16]) -> ConnectionIndex {
        let key = u128::from_le_bytes(key);
        ConnectionIndex {
            table: HashTable::new(),
            key: (key as u64, (key >> 64) as u64),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    fn hash(&self, t: &FourTuple) -> u32 {
        hash(self.key, t)
    }

    /// The slot of `tuple`'s connection.
    pub(crate) fn get(&self, slots: &[Slot], tuple: &FourTuple) -> Option<u32> {
        let h = self.hash(tuple);
        self.table
            .find(spread(h), |&(i, hi)| {
                hi == h && tuple_of(slots, i) == Some(*tuple)
            })
            .map(|&(i, _)| i)
    }

    pub(crate) fn contains(&self, slots: &[Slot], tuple: &FourTuple) -> bool {
        self.get(slots, tuple).is_some()
    }

    /// Enter slot `index`, which holds the connection of `tuple` (not yet in the index).
    pub(crate) fn insert(&mut self, tuple: &FourTuple, index: u32) {
        let h = self.hash(tuple);
        self.table
            .insert_unique(spread(h), (index, h), |&(_, h)| spread(h));
    }

    /// Remove slot `index`, entered under `tuple`.
    pub(crate) fn remove(&mut self, tuple: &FourTuple, index: u32) {
        let h = self.hash(tuple);
        if let Ok(entry) = self.table.find_entry(spread(h), |&(i, _)| i == index) {
            entry.remove();
        }
    }

    /// The slots in the index, in no particular order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().map(|&(i, _)| i)
    }
}
