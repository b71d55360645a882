//! Hash maps whose keys come from the network (fragment queues, held SYNs, UDP ports,
//! ICMP rate-limit buckets): hashbrown's map, which std's `HashMap` is, hashed as std
//! hashes (SipHash-1-3 under a secret key) but with a key of the stack's own
//! ([`crate::Secrets`]), so that they build without std and a remote sender cannot aim
//! collisions.

use core::hash::BuildHasher;

use siphasher::sip::SipHasher13;

/// A map hashed with the stack's secret key.
pub(crate) type HashMap<K, V> = hashbrown::HashMap<K, V, Keyed>;

/// Builds SipHash-1-3 hashers under one secret key (what std's `RandomState` is, with a
/// key the stack drew instead of one per thread).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keyed {
    k0: u64,
    k1: u64,
}

impl Keyed {
    /// Hashers under `key`.
    pub(crate) fn new(key: [u8; 16]) -> Keyed {
        let key = u128::from_le_bytes(key);
        Keyed {
            k0: key as u64,
            k1: (key >> 64) as u64,
        }
    }

    /// An empty map hashed under this key.
    pub(crate) fn map<K, V>(self) -> HashMap<K, V> {
        HashMap::with_hasher(self)
    }
}

impl BuildHasher for Keyed {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_alike_and_different_keys_differently() {
        let (a, b) = (Keyed::new([1; 16]), Keyed::new([2; 16]));
        assert_eq!(a.hash_one(80u16), Keyed::new([1; 16]).hash_one(80u16));
        assert_ne!(a.hash_one(80u16), b.hash_one(80u16));
    }
}
