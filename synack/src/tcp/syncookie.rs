//! SYN cookies (RFC 4987 3.6): when a listener's SYN queue is full, its SYN-ACK keeps
//! no state; the connection's few facts travel in the SYN-ACK itself and come back in
//! the peer's ACK. The encoding is Linux's (net/ipv4/syncookies.c):
//!
//! - the ISN is `H0(tuple) + peer ISN + (minute << 24) + ((H1(tuple, minute) + mss index) mod 2^24)`,
//!   so a cookie is valid for two minutes and carries one of four MSS values;
//! - with timestamps, the low 6 bits of our TSval (before the per-connection offset)
//!   carry the peer's window scale (4 bits, 15 = none) and SACK-permitted (bit 4).
//!
//! Without timestamps there is nowhere to keep window scale and SACK, so a cookie
//! SYN-ACK offers neither (as Linux does).

use core::hash::Hasher;
use core::net::SocketAddr;

use siphasher::sip::SipHasher24;

use super::isn::hash_addr;
use crate::wire::SeqNum;
use crate::Instant;

const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// Linux's MAX_SYNCOOKIE_AGE: a cookie from this many minutes ago or more is refused.
const MAX_AGE_MINUTES: u32 = 2;
/// The MSS values a cookie can carry (Linux's msstab for IPv4 and IPv6).
const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// Bits of the TSval that carry options.
const TS_BITS: u32 = 6;
const TS_MASK: u32 = (1 << TS_BITS) - 1;
const TS_WSCALE_NONE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
/// The SYN asked for ECN and it was accepted (Linux's TS_OPT_ECN).
const TS_ECN: u32 = 1 << 5;

/// Makes and checks cookies with the stack's two secret cookie keys.
#[derive(Clone)]
pub(crate) struct SynCookies {
    keys: [[u8; 16]; 2],
}

impl core::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SynCookies { .. }")
    }
}

impl SynCookies {
    /// Cookies keyed by `keys` (Linux's `syncookie_secret[2]`: H0 uses the first, H1 the
    /// second). The keys stay for the stack's life, as Linux's stay from boot; what
    /// turns over is the minute counter hashed into H1, so a cookie is good for at most
    /// two minutes and one from an earlier minute cannot be replayed after that.
    pub(crate) fn new(keys: [[u8; 16]; 2]) -> SynCookies {
        SynCookies { keys }
    }

    fn hash(&self, local: SocketAddr, remote: SocketAddr, minute: u32, which: usize) -> u32 {
        let mut h = SipHasher24::new_with_key(&self.keys[which]);
        hash_addr(&mut h, local);
        hash_addr(&mut h, remote);
        h.write_u32(minute);
        h.finish() as u32
    }

    fn minute(now: Instant) -> u32 {
        (now.as_millis() / 60_000) as u32
    }

    fn table(local: SocketAddr) -> &'static [u16; 4] {
        if local.is_ipv6() {
            &MSS_V6
        } else {
            &MSS_V4
        }
    }

    /// The ISN of a cookie SYN-ACK answering a SYN with `peer_isn` and MSS `peer_mss`;
    /// also the MSS the cookie remembers.
    pub(crate) fn make(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        peer_isn: SeqNum,
        peer_mss: u16,
    ) -> (SeqNum, u16) {
        let table = Self::table(local);
        let index = table.iter().rposition(|&m| m <= peer_mss).unwrap_or(0);
        let minute = Self::minute(now);
        let cookie = self
            .hash(local, remote, 0, 0)
            .wrapping_add(peer_isn.get())
            .wrapping_add(minute << COOKIE_BITS)
            .wrapping_add(
                self.hash(local, remote, minute, 1)
                    .wrapping_add(index as u32)
                    & COOKIE_MASK,
            );
        (SeqNum::new(cookie), table[index])
    }

    /// Check the cookie an ACK returns (`ack - 1`, peer ISN `seq - 1`): the MSS it holds,
    /// or None when it is forged or more than two minutes old.
    pub(crate) fn check(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        peer_isn: SeqNum,
        cookie: SeqNum,
    ) -> Option<u16> {
        let rest = cookie
            .get()
            .wrapping_sub(self.hash(local, remote, 0, 0))
            .wrapping_sub(peer_isn.get());
        let minute_now = Self::minute(now);
        let age = minute_now.wrapping_sub(rest >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
        if age >= MAX_AGE_MINUTES {
            return None;
        }
        let minute = minute_now.wrapping_sub(age);
        let index = rest.wrapping_sub(self.hash(local, remote, minute, 1)) & COOKIE_MASK;
        Self::table(local).get(index as usize).copied()
    }
}

/// The TSval (before the connection's offset) of a cookie SYN-ACK at clock `ts_now`:
/// at most `ts_now`, its low bits the peer's window scale, SACK-permitted and whether
/// ECN was agreed (Linux's cookie_init_timestamp).
pub(crate) fn encode_timestamp(
    ts_now: u32,
    window_scale: Option<u8>,
    sack: bool,
    ecn: bool,
) -> u32 {
    let mut options = window_scale.map_or(TS_WSCALE_NONE, |w| u32::from(w.min(14)));
    if sack {
        options |= TS_SACK;
    }
    if ecn {
        options |= TS_ECN;
    }
    let ts = (ts_now & !TS_MASK) | options;
    // Never ahead of the clock: TSvals must not go backwards later (RFC 7323 5.4).
    if ts > ts_now {
        ts.wrapping_sub(1 << TS_BITS)
    } else {
        ts
    }
}

/// What a returned TSecr (less the offset) carries: the window scale, SACK-permitted
/// and ECN (Linux's cookie_timestamp_decode and cookie_ecn_ok).
pub(crate) fn decode_timestamp(tsecr: u32) -> (Option<u8>, bool, bool) {
    let options = tsecr & TS_MASK;
    let window_scale = match options & 0xf {
        TS_WSCALE_NONE => None,
        w => Some(w as u8),
    };
    (window_scale, options & TS_SACK != 0, options & TS_ECN != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_cookie_checks_and_returns_the_mss_rounded_down() {
        let c = SynCookies::new([[7; 16], [8; 16]]);
        let (l, r) = (a("198.18.0.1:80"), a("198.18.0.2:40000"));
        let now = Instant::from_secs(1000);
        let (isn, mss) = c.make(now, l, r, SeqNum::new(12345), 1400);
        assert_eq!(mss, 1300);
        assert_eq!(c.check(now, l, r, SeqNum::new(12345), isn), Some(1300));
        let (isn, mss) = c.make(now, l, r, SeqNum::new(1), 9000);
        assert_eq!(mss, 1460);
        assert_eq!(c.check(now, l, r, SeqNum::new(1), isn), Some(1460));
        let (isn, mss) = c.make(now, l, r, SeqNum::new(1), 100);
        assert_eq!(
            (mss, c.check(now, l, r, SeqNum::new(1), isn)),
            (536, Some(536))
        );
    }

    #[test]
    fn a_cookie_is_good_for_under_two_minutes() {
        let c = SynCookies::new([[7; 16], [8; 16]]);
        let (l, r) = (a("198.18.0.1:80"), a("198.18.0.2:40000"));
        let t0 = Instant::from_secs(59);
        let (isn, _) = c.make(t0, l, r, SeqNum::new(5), 1460);
        assert!(c
            .check(Instant::from_secs(119), l, r, SeqNum::new(5), isn)
            .is_some());
        assert!(c
            .check(Instant::from_secs(120), l, r, SeqNum::new(5), isn)
            .is_none());
    }

    #[test]
    fn a_cookie_is_bound_to_its_tuple_peer_isn_and_secret() {
        let c = SynCookies::new([[7; 16], [8; 16]]);
        let (l, r) = (a("198.18.0.1:80"), a("198.18.0.2:40000"));
        let now = Instant::from_secs(5);
        let (isn, _) = c.make(now, l, r, SeqNum::new(5), 1460);
        assert!(c
            .check(now, l, a("198.18.0.2:40001"), SeqNum::new(5), isn)
            .is_none());
        // (A peer ISN off by less than 4 can still decode, to another MSS, as in Linux.)
        assert!(c.check(now, l, r, SeqNum::new(5 + 4096), isn).is_none());
        assert!(SynCookies::new([[7; 16], [9; 16]])
            .check(now, l, r, SeqNum::new(5), isn)
            .is_none());
    }

    #[test]
    fn random_guesses_almost_never_pass() {
        use rand::{RngExt as _, SeedableRng};
        let c = SynCookies::new([[7; 16], [8; 16]]);
        let (l, r) = (a("198.18.0.1:80"), a("198.18.0.2:40000"));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let now = Instant::from_secs(600);
        let passed = (0..200_000)
            .filter(|_| {
                let guess = SeqNum::new(rng.random());
                c.check(now, l, r, SeqNum::new(5), guess).is_some()
            })
            .count();
        // 2 minutes x 4 MSS values in 2^32: about 2e-7 per guess.
        assert!(passed <= 1, "{passed} forged cookies passed");
    }

    #[test]
    fn timestamp_carries_window_scale_sack_and_ecn_and_never_runs_ahead() {
        for ts_now in [0u32, 5, 63, 64, 1000, u32::MAX] {
            for (ws, sack, ecn) in [
                (Some(7), true, true),
                (None, false, false),
                (Some(0), false, true),
                (Some(14), true, false),
                (None, true, true),
            ] {
                let ts = encode_timestamp(ts_now, ws, sack, ecn);
                assert!(ts_now.wrapping_sub(ts) < 64, "{ts} vs {ts_now}");
                assert_eq!(decode_timestamp(ts), (ws, sack, ecn));
            }
        }
    }
}
