//! `--impair` at the TUN device boundary: the simulator's link model ([`LinkConfig`])
//! applied to real packets in both directions, so a real kernel peer can be tested over
//! a lossy, slow or reordering path on a machine without netem. Packets held back wait
//! here until their delivery time; the driver wakes for the next one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::sim::link::{Link, Transit};
use crate::sim::LinkConfig;
use crate::Instant;

/// Which way a packet travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Direction {
    /// From synack's stack to the kernel.
    ToKernel,
    /// From the kernel to synack's stack.
    ToStack,
}

/// What the impairment did so far, per direction (index 0: to the kernel, 1: to synack).
///
/// ```
/// use synack::device::{memory, DeviceConfig, Interface};
/// let (a, b) = memory::pair(256);
/// let mut config = DeviceConfig::new("198.18.0.1".parse()?);
/// config.impair = Some("delay=1ms".parse()?);
/// let left = Interface::new(a, config)?;
/// let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let _listener = synack::net::TcpListener::bind(&right, "198.18.0.2:7")?;
/// let _stream = synack::net::TcpStream::connect(&left, "198.18.0.2:7")?;
/// let stats = left.impairment_stats().expect("impaired");
/// assert!(stats.sent[0] >= 1 && stats.sent[1] >= 1); // the SYN out, the SYN-ACK in
/// assert_eq!(stats.lost, [0, 0]); // a delay loses nothing
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImpairStats {
    /// Packets that entered the impaired link.
    pub sent: [u64; 2],
    /// Packets dropped (random or burst loss, full rate-limit queue).
    pub lost: [u64; 2],
    /// Extra copies delivered.
    pub duplicated: [u64; 2],
    /// Packets held back so that later ones overtake them.
    pub reordered: [u64; 2],
    /// Packets delivered with one bit flipped.
    pub corrupted: [u64; 2],
}

impl std::ops::AddAssign for ImpairStats {
    /// Add another queue's figures.
    fn add_assign(&mut self, o: ImpairStats) {
        let ImpairStats {
            sent,
            lost,
            duplicated,
            reordered,
            corrupted,
        } = o;
        for d in 0..2 {
            self.sent[d] += sent[d];
            self.lost[d] += lost[d];
            self.duplicated[d] += duplicated[d];
            self.reordered[d] += reordered[d];
            self.corrupted[d] += corrupted[d];
        }
    }
}

/// A packet waiting for its delivery time; ordered by time, then by arrival here.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    at: Instant,
    order: u64,
    dir: Direction,
    bytes: Vec<u8>,
}

/// Both directions of an impaired link and the packets in flight on it.
#[derive(Debug)]
pub(crate) struct Impairment {
    links: [Link; 2],
    rng: ChaCha8Rng,
    held: BinaryHeap<Reverse<Held>>,
    order: u64,
    pub(crate) stats: ImpairStats,
}

/// When a rate is set without a queue limit: this much time's worth of bytes may wait.
const DEFAULT_QUEUE_MS: u64 = 100;

impl Impairment {
    /// The same impairments in both directions, randomness from `seed`.
    pub(crate) fn new(mut config: LinkConfig, seed: u64) -> Impairment {
        if let (Some(bps), None) = (config.bandwidth_bps, config.queue_limit_bytes) {
            let bytes = bps / 8 * DEFAULT_QUEUE_MS / 1000;
            config.queue_limit_bytes = Some((bytes as usize).max(64 * 1024));
        }
        Impairment {
            links: [Link::new(config.clone()), Link::new(config)],
            rng: ChaCha8Rng::seed_from_u64(seed),
            held: BinaryHeap::new(),
            order: 0,
            stats: ImpairStats::default(),
        }
    }

    /// A packet enters the link at `now`; it is dropped or held until its delivery time.
    pub(crate) fn submit(&mut self, now: Instant, dir: Direction, bytes: Vec<u8>) {
        let i = dir as usize;
        self.stats.sent[i] += 1;
        let transit =
            self.links[i].transit(now, bytes.len(), std::time::Duration::ZERO, &mut self.rng);
        let Transit::Arrive {
            at,
            corrupt_bit,
            reordered,
        } = transit
        else {
            self.stats.lost[i] += 1;
            return;
        };
        self.stats.reordered[i] += u64::from(reordered);
        self.stats.duplicated[i] += at.len() as u64 - 1;
        for (copy, arrival) in at.into_iter().enumerate() {
            let mut bytes = bytes.clone();
            if let (0, Some(bit)) = (copy, corrupt_bit) {
                bytes[bit / 8] ^= 1 << (bit % 8);
                self.stats.corrupted[i] += 1;
            }
            self.order += 1;
            self.held.push(Reverse(Held {
                at: arrival,
                order: self.order,
                dir,
                bytes,
            }));
        }
    }

    /// When the next held packet is due.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse(h)| h.at)
    }

    /// The next packet due at or before `now`, with its direction.
    pub(crate) fn release(&mut self, now: Instant) -> Option<(Direction, Vec<u8>)> {
        if self.next_release()? > now {
            return None;
        }
        self.held.pop().map(|Reverse(h)| (h.dir, h.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn delayed_packets_come_out_in_order_at_their_time() {
        let mut imp = Impairment::new("delay=10ms".parse().unwrap(), 1);
        let t0 = Instant::from_millis(5);
        imp.submit(t0, Direction::ToKernel, vec![1]);
        imp.submit(t0 + Duration::from_millis(1), Direction::ToStack, vec![2]);
        assert_eq!(imp.release(t0 + Duration::from_millis(9)), None);
        assert_eq!(imp.next_release(), Some(t0 + Duration::from_millis(10)));
        let later = t0 + Duration::from_millis(20);
        assert_eq!(imp.release(later), Some((Direction::ToKernel, vec![1])));
        assert_eq!(imp.release(later), Some((Direction::ToStack, vec![2])));
        assert_eq!(imp.release(later), None);
    }

    #[test]
    fn loss_and_duplication_are_applied_at_their_rates_and_counted() {
        let mut imp = Impairment::new("loss=10%,duplicate=5%".parse().unwrap(), 7);
        let now = Instant::from_millis(1);
        for _ in 0..10_000 {
            imp.submit(now, Direction::ToStack, vec![0; 100]);
        }
        let s = imp.stats;
        assert_eq!(s.sent[1], 10_000);
        assert!((800..1200).contains(&s.lost[1]), "{s:?}");
        assert!((300..650).contains(&s.duplicated[1]), "{s:?}");
        let mut out = 0;
        // A duplicate arrives a microsecond after its original.
        while imp.release(now + Duration::from_millis(1)).is_some() {
            out += 1;
        }
        assert_eq!(out, s.sent[1] - s.lost[1] + s.duplicated[1]);
    }

    #[test]
    fn a_rate_limit_spaces_packets_by_their_serialization_time() {
        // 8 Mbit/s: a 1000-byte packet takes 1 ms on the wire.
        let mut imp = Impairment::new("rate=8mbit".parse().unwrap(), 1);
        let now = Instant::from_millis(0);
        for _ in 0..3 {
            imp.submit(now, Direction::ToKernel, vec![0; 1000]);
        }
        let mut times = Vec::new();
        while let Some(t) = imp.next_release() {
            times.push(t);
            imp.release(t);
        }
        assert_eq!(
            times,
            [1, 2, 3].map(Instant::from_millis).to_vec(),
            "one every millisecond"
        );
    }
}
