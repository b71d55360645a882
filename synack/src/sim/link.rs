//! One direction of a simulated link: propagation delay, jitter, random and burst loss,
//! duplication, reordering, corruption, a bandwidth-limited FIFO queue, and partitions.

use std::time::Duration;

use rand::{Rng, RngExt};

use crate::Instant;

/// Impairments of one direction of a link. `LinkConfig::default()` is a clean 1 ms link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Uniform extra delay in `0..=jitter` per packet (may reorder packets).
    pub jitter: Duration,
    /// Probability (0..1) that a packet is lost.
    pub loss: f64,
    /// When a loss happens, drop this many consecutive packets (`MIN..=MAX`) instead of one.
    pub loss_burst: Option<(u32, u32)>,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Probability that a packet is held back by `reorder_delay` so later ones overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered packet.
    pub reorder_delay: Duration,
    /// Probability that one random bit of a packet is flipped (it is still delivered).
    pub corrupt: f64,
    /// Serialization rate in bits per second (None: infinitely fast).
    pub bandwidth_bps: Option<u64>,
    /// Drop-tail limit on bytes waiting for serialization (None: unlimited).
    pub queue_limit_bytes: Option<usize>,
    /// Partitions: packets sent in `[start, end)` are dropped.
    pub down: Vec<(Instant, Instant)>,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            loss_burst: None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            corrupt: 0.0,
            bandwidth_bps: None,
            queue_limit_bytes: None,
            down: Vec::new(),
        }
    }
}

impl LinkConfig {
    /// A clean link with the given one-way delay.
    pub fn lossless(delay: Duration) -> LinkConfig {
        LinkConfig {
            delay,
            ..LinkConfig::default()
        }
    }
}

/// Why a packet did not arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LossCause {
    /// Random loss.
    Random,
    /// Part of a loss burst.
    Burst,
    /// Dropped by the scenario's filter.
    Filter,
    /// The link was down.
    Partition,
    /// The bandwidth queue was full.
    QueueFull,
    /// No host owns the destination address (or the header is unreadable).
    NoRoute,
}

impl LossCause {
    /// A short name for logs and ladders.
    pub fn as_str(&self) -> &'static str {
        match self {
            LossCause::Random => "random loss",
            LossCause::Burst => "burst loss",
            LossCause::Filter => "dropped by scenario",
            LossCause::Partition => "link down",
            LossCause::QueueFull => "queue full",
            LossCause::NoRoute => "no route",
        }
    }
}

/// What the link does with one packet.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Transit {
    Lost(LossCause),
    /// Arrival times (two when duplicated), and whether the first copy is corrupted at `bit`.
    Arrive {
        at: Vec<Instant>,
        corrupt_bit: Option<usize>,
        reordered: bool,
    },
}

/// The state of one direction: its config, queue occupancy and burst in progress.
#[derive(Debug, Default)]
pub(crate) struct Link {
    pub(crate) config: LinkConfig,
    /// When the transmitter finishes serializing what it has queued.
    busy_until: Instant,
    /// Bytes queued, with the time each finishes serializing.
    queued: std::collections::VecDeque<(Instant, usize)>,
    burst_left: u32,
    pub(crate) sent: u64,
}

impl Link {
    pub(crate) fn new(config: LinkConfig) -> Link {
        Link {
            config,
            ..Link::default()
        }
    }

    /// Decide the fate of a packet of `len` bytes sent at `now` (extra: filter delay).
    pub(crate) fn transit(
        &mut self,
        now: Instant,
        len: usize,
        extra: Duration,
        rng: &mut impl Rng,
    ) -> Transit {
        self.sent += 1;
        let c = &self.config;
        if c.down.iter().any(|(s, e)| *s <= now && now < *e) {
            return Transit::Lost(LossCause::Partition);
        }
        if self.burst_left > 0 {
            self.burst_left -= 1;
            return Transit::Lost(LossCause::Burst);
        }
        if c.loss > 0.0 && rng.random::<f64>() < c.loss {
            if let Some((min, max)) = c.loss_burst {
                let n = rng.random_range(min.max(1)..=max.max(min.max(1)));
                self.burst_left = n - 1;
            }
            return Transit::Lost(LossCause::Random);
        }
        // Bandwidth: FIFO serialization behind what is already queued.
        while self.queued.front().is_some_and(|(t, _)| *t <= now) {
            self.queued.pop_front();
        }
        let mut depart = now;
        if let Some(bps) = c.bandwidth_bps.filter(|b| *b > 0) {
            let backlog: usize = self.queued.iter().map(|(_, n)| n).sum();
            if c.queue_limit_bytes
                .is_some_and(|limit| backlog + len > limit)
            {
                return Transit::Lost(LossCause::QueueFull);
            }
            let start = self.busy_until.max(now);
            let tx = Duration::from_nanos((len as u64 * 8).saturating_mul(1_000_000_000) / bps);
            depart = start + tx;
            self.busy_until = depart;
            self.queued.push_back((depart, len));
        }
        let jitter = if c.jitter > Duration::ZERO {
            Duration::from_micros(rng.random_range(0..=c.jitter.as_micros() as u64))
        } else {
            Duration::ZERO
        };
        let reordered = c.reorder > 0.0 && rng.random::<f64>() < c.reorder;
        let mut at = depart + c.delay + jitter + extra;
        if reordered {
            at += c.reorder_delay;
        }
        let corrupt_bit = (c.corrupt > 0.0 && rng.random::<f64>() < c.corrupt && len > 0)
            .then(|| rng.random_range(0..len * 8));
        let mut arrivals = vec![at];
        if c.duplicate > 0.0 && rng.random::<f64>() < c.duplicate {
            arrivals.push(at + Duration::from_micros(1));
        }
        Transit::Arrive {
            at: arrivals,
            corrupt_bit,
            reordered,
        }
    }
}
