//! Ephemeral port selection, RFC 6056 3.3.1 (Algorithm 1, simple port randomization):
//! each connect() starts its search at a random port of the range, drawn from a
//! cryptographic generator keyed by the stack's secret, so a port says nothing about
//! the next one (RFC 6056 2.2). Linux randomizes similarly (a hashed offset plus random
//! increments since 5.18); Algorithm 1 is the simplest that leaves nothing to guess.

use core::net::{IpAddr, SocketAddr};
use core::ops::RangeInclusive;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha12Rng;

/// Hands out candidate local ports for connect().
#[derive(Debug)]
pub(crate) struct PortAllocator {
    rng: ChaCha12Rng,
}

impl PortAllocator {
    /// A generator seeded with the stack's 256-bit port key.
    pub(crate) fn new(key: [u8; 32]) -> PortAllocator {
        PortAllocator {
            rng: ChaCha12Rng::from_seed(key),
        }
    }

    /// Candidate ports in the order to try them: from a random one, every port of the
    /// range once; the caller takes the first that is free.
    pub(crate) fn candidates(
        &mut self,
        _local: IpAddr,
        _remote: SocketAddr,
        range: &RangeInclusive<u16>,
    ) -> impl Iterator<Item = u16> + use<> {
        let (min, max) = (*range.start() as u32, *range.end() as u32);
        let num = max.saturating_sub(min) + 1;
        let start = self.rng.random_range(0..num);
        (0..num).map(move |count| (min + (start + count) % num) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_stay_in_range_and_cover_it() {
        let mut p = PortAllocator::new([7; 32]);
        let remote: SocketAddr = "198.18.0.2:80".parse().unwrap();
        let local: IpAddr = "198.18.0.1".parse().unwrap();
        let range = 40000..=40009;
        let mut got: Vec<u16> = p.candidates(local, remote, &range).collect();
        got.sort();
        assert_eq!(got, (40000..=40009).collect::<Vec<_>>());
    }

    #[test]
    fn successive_ports_to_one_destination_are_not_sequential() {
        let mut p = PortAllocator::new([7; 32]);
        let remote: SocketAddr = "198.18.0.2:80".parse().unwrap();
        let local: IpAddr = "198.18.0.1".parse().unwrap();
        let range = 32768..=60999;
        let ports: Vec<u16> = (0..1000)
            .filter_map(|_| p.candidates(local, remote, &range).next())
            .collect();
        // Guessing "previous + 1" (or anything within 8 of the previous) almost never works.
        let near = ports
            .windows(2)
            .filter(|w| w[1].abs_diff(w[0]) <= 8)
            .count();
        assert!(
            near < 5,
            "{near} of 999 ports were within 8 of the previous one"
        );
    }
}
