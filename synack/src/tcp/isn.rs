//! Initial sequence numbers (RFC 6528): a keyed hash of the connection's 4-tuple plus
//! a clock ticking every 4 microseconds, so ISNs are unpredictable to off-path attackers
//! yet grow monotonically for a reused 4-tuple (old segments stay below the new ones).
//! Also the offset of a connection's timestamp clock (RFC 7323 7.1), with a key of its
//! own, as Linux's `secure_tcp_seq` and `secure_tcp_ts_off`.

use core::hash::Hasher;
use core::net::{IpAddr, SocketAddr};

use siphasher::sip::SipHasher24;

use crate::wire::SeqNum;
use crate::Instant;

/// Generates ISNs and timestamp offsets with per-stack secret keys.
#[derive(Clone)]
pub(crate) struct IsnGenerator {
    key: [u8; 16],
    ts_key: [u8; 16],
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IsnGenerator { .. }")
    }
}

impl IsnGenerator {
    /// A generator with the ISN key `key` and the timestamp-offset key `ts_key`.
    pub(crate) fn new(key: [u8; 16], ts_key: [u8; 16]) -> IsnGenerator {
        IsnGenerator { key, ts_key }
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

    /// RFC 7323 7.1: the offset added to the timestamp clock, so a TSval reveals
    /// neither the host's uptime nor its other connections' clocks. Keyed by the pair of
    /// addresses, as Linux since 4.13 (connections between two hosts share a clock, so
    /// PAWS holds across a reused 4-tuple).
    pub(crate) fn ts_offset(&self, local: IpAddr, remote: IpAddr) -> u32 {
        let mut h = SipHasher24::new_with_key(&self.ts_key);
        hash_ip(&mut h, local);
        hash_ip(&mut h, remote);
        h.finish() as u32
    }
}

fn hash_ip(h: &mut impl Hasher, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
}

/// Feed an address and port into a hasher (shared with ephemeral port selection).
pub(crate) fn hash_addr(h: &mut impl Hasher, addr: SocketAddr) {
    hash_ip(h, addr.ip());
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
        let g = IsnGenerator::new([1; 16], [2; 16]);
        let (l, r) = (a("198.18.0.1:40000"), a("198.18.0.2:80"));
        let i0 = g.isn(Instant::ZERO, l, r);
        let i1 = g.isn(Instant::from_secs(1), l, r);
        assert_eq!(i1 - i0, 250_000);
    }

    #[test]
    fn isn_differs_per_tuple_and_per_secret() {
        let g = IsnGenerator::new([1; 16], [2; 16]);
        let (l, r) = (a("198.18.0.1:40000"), a("198.18.0.2:80"));
        let other = g.isn(Instant::ZERO, a("198.18.0.1:40001"), r);
        assert_ne!(g.isn(Instant::ZERO, l, r), other);
        assert_ne!(
            g.isn(Instant::ZERO, l, r),
            IsnGenerator::new([3; 16], [2; 16]).isn(Instant::ZERO, l, r)
        );
    }

    #[test]
    fn timestamp_offset_has_its_own_key_and_follows_the_address_pair() {
        let g = IsnGenerator::new([1; 16], [2; 16]);
        let (l, r) = (a("198.18.0.1:40000"), a("198.18.0.2:80"));
        let off = g.ts_offset(l.ip(), r.ip());
        assert_eq!(off, g.ts_offset(l.ip(), r.ip()));
        assert_ne!(off, g.ts_offset(l.ip(), a("198.18.0.3:80").ip()));
        assert_ne!(
            off,
            IsnGenerator::new([1; 16], [4; 16]).ts_offset(l.ip(), r.ip())
        );
        // Not the ISN's hash: one says nothing about the other.
        assert_ne!(off, g.isn(Instant::ZERO, l, r).get());
    }
}
