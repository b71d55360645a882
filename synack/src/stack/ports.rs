//! Ephemeral port selection, RFC 6056 section 3.3.4 (Algorithm 4, double-hash port
//! selection): the starting point depends on a keyed hash of the destination, so ports
//! are not guessable across destinations, and a per-bucket counter spreads reuse.

use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use siphasher::sip::SipHasher24;

use crate::tcp::hash_addr;

const TABLE: usize = 256;

/// Hands out candidate local ports for connect().
#[derive(Debug)]
pub(crate) struct PortAllocator {
    key_f: [u8; 16],
    key_g: [u8; 16],
    table: Vec<u16>,
}

impl PortAllocator {
    pub(crate) fn new(seed: u64) -> PortAllocator {
        let mut key_f = [0u8; 16];
        key_f[..8].copy_from_slice(&seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        key_f[8..].copy_from_slice(&seed.rotate_left(17).to_le_bytes());
        let mut key_g = key_f;
        key_g.reverse();
        PortAllocator {
            key_f,
            key_g,
            table: vec![0; TABLE],
        }
    }

    fn hash(key: &[u8; 16], local: IpAddr, remote: SocketAddr) -> u64 {
        let mut h = SipHasher24::new_with_key(key);
        hash_addr(&mut h, SocketAddr::new(local, 0));
        hash_addr(&mut h, remote);
        h.finish()
    }

    /// Candidate ports in the order RFC 6056 Algorithm 4 tries them; the caller takes the
    /// first one that is free.
    pub(crate) fn candidates(
        &mut self,
        local: IpAddr,
        remote: SocketAddr,
        range: &RangeInclusive<u16>,
    ) -> impl Iterator<Item = u16> + use<> {
        let (min, max) = (*range.start() as u32, *range.end() as u32);
        let num = max.saturating_sub(min) + 1;
        let offset = Self::hash(&self.key_f, local, remote) as u32;
        let index = (Self::hash(&self.key_g, local, remote) % TABLE as u64) as usize;
        let start = self.table[index];
        self.table[index] = start.wrapping_add(1);
        (0..num).map(move |count| {
            let next = offset.wrapping_add(start as u32).wrapping_add(count);
            (min + next % num) as u16
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_stay_in_range_and_cover_it() {
        let mut p = PortAllocator::new(7);
        let remote: SocketAddr = "198.18.0.2:80".parse().unwrap();
        let local: IpAddr = "198.18.0.1".parse().unwrap();
        let range = 40000..=40009;
        let mut got: Vec<u16> = p.candidates(local, remote, &range).collect();
        got.sort();
        assert_eq!(got, (40000..=40009).collect::<Vec<_>>());
    }

    #[test]
    fn successive_connections_to_one_destination_start_at_different_ports() {
        let mut p = PortAllocator::new(7);
        let remote: SocketAddr = "198.18.0.2:80".parse().unwrap();
        let local: IpAddr = "198.18.0.1".parse().unwrap();
        let range = 32768..=60999;
        let a = p.candidates(local, remote, &range).next();
        let b = p.candidates(local, remote, &range).next();
        assert_ne!(a, b);
    }
}
