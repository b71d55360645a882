//! Initial sequence numbers (RFC 6528): a keyed hash of the connection's 4-tuple plus
//! a clock ticking every 4 microseconds, so ISNs are unpredictable to off-path attackers
//! yet grow monotonically for a reused 4-tuple (old segments stay below the new ones).

use std::hash::Hasher;
use std::net::SocketAddr;

use siphasher::sip::SipHasher24;

use crate::wire::SeqNum;
use crate::Instant;

/// Generates ISNs with a per-stack secret key.
#[derive(Clone, Debug)]
pub(crate) struct IsnGenerator {
    key: [u8; 16],
}

impl IsnGenerator {
    /// A generator whose secret key derives from `seed` (fixed seed: repeatable ISNs for tests).
    pub(crate) fn new(seed: u64) -> IsnGenerator {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..].copy_from_slice(&(seed.rotate_left(29) ^ 0x9E37_79B9_7F4A_7C15).to_le_bytes());
        IsnGenerator { key }
    }

    /// RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
    /// M a 4-microsecond timer.
    pub(crate) fn isn(&self, now: Instant, local: SocketAddr, remote: SocketAddr) -> SeqNum {
        let mut h = SipHasher24::new_with_key(&self.key);
        hash_addr(&mut h, local);
        hash_addr(&mut h, remote);
        let f = h.finish() as u32;
        let m = (now.as_micros() / 4) as u32;
        SeqNum::new(f.wrapping_add(m))
    }
}

/// Feed an address and port into a hasher (shared with ephemeral port selection).
pub(crate) fn hash_addr(h: &mut impl Hasher, addr: SocketAddr) {
    match addr.ip() {
        std::net::IpAddr::V4(a) => h.write(&a.octets()),
        std::net::IpAddr::V6(a) => h.write(&a.octets()),
    }
    h.write_u16(addr.port());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn isn_advances_with_the_four_microsecond_clock() {
        let g = IsnGenerator::new(1);
        let (l, r) = (a("198.18.0.1:40000"), a("198.18.0.2:80"));
        let i0 = g.isn(Instant::ZERO, l, r);
        let i1 = g.isn(Instant::from_secs(1), l, r);
        assert_eq!(i1 - i0, 250_000);
    }

    #[test]
    fn isn_differs_per_tuple_and_per_secret() {
        let g = IsnGenerator::new(1);
        let (l, r) = (a("198.18.0.1:40000"), a("198.18.0.2:80"));
        let other = g.isn(Instant::ZERO, a("198.18.0.1:40001"), r);
        assert_ne!(g.isn(Instant::ZERO, l, r), other);
        assert_ne!(
            g.isn(Instant::ZERO, l, r),
            IsnGenerator::new(2).isn(Instant::ZERO, l, r)
        );
    }
}
