//! One direction of a simulated link: propagation delay, jitter, random and burst loss,
//! duplication, reordering, corruption, a bandwidth-limited FIFO queue, and partitions.

use std::time::Duration;

use rand::{Rng, RngExt};

use crate::Instant;

/// Impairments of one direction of a link. `LinkConfig::default()` is a clean 1 ms link.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use synack::sim::LinkConfig;
/// // What `--impair` takes, parsed.
/// let link: LinkConfig = "loss=2%,delay=10ms,jitter=2ms,rate=100mbit".parse().unwrap();
/// assert_eq!(link.loss, 0.02);
/// assert_eq!(link.delay, Duration::from_millis(10));
/// assert_eq!(link.bandwidth_bps, Some(100_000_000));
/// // Or field by field.
/// let mut link = LinkConfig::lossless(Duration::from_millis(25));
/// link.reorder = 0.05;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
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
    /// Hold reordered packets back by a uniform random time up to `reorder_delay`
    /// instead of exactly `reorder_delay`.
    pub reorder_uniform: bool,
    /// Probability that one random bit of a packet is flipped (it is still delivered).
    pub corrupt: f64,
    /// Probability that an ECN-capable packet (ECT(0) or ECT(1)) is marked CE instead of
    /// being delivered unchanged: a router's AQM signalling congestion without a loss
    /// (RFC 3168 5). Packets that are not ECN-capable pass unmarked.
    pub ce_mark: f64,
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
            reorder_uniform: false,
            corrupt: 0.0,
            ce_mark: 0.0,
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

impl std::str::FromStr for LinkConfig {
    type Err = String;

    /// Parse an impairment spec like `loss=2%,delay=10ms,jitter=2ms,reorder=10%,duplicate=1%,rate=100mbit`
    /// (what `--impair` takes). Keys: `loss`, `loss-burst=MIN-MAX`, `delay`, `jitter`,
    /// `reorder`, `reorder-delay`, `duplicate`, `corrupt`, `ce-mark` (ECN-capable packets
    /// marked CE), `rate` (`bit`, `kbit`, `mbit`,
    /// `gbit`), `queue` (bytes, `k`/`m` suffix). Percentages may omit the `%`. Unnamed
    /// settings are off and the delay is zero.
    fn from_str(spec: &str) -> Result<LinkConfig, String> {
        let mut c = LinkConfig::lossless(Duration::ZERO);
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("'{item}' is not KEY=VALUE (e.g. loss=2%)"))?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "loss" => c.loss = percent(key, value)?,
                "duplicate" => c.duplicate = percent(key, value)?,
                "reorder" => c.reorder = percent(key, value)?,
                "corrupt" => c.corrupt = percent(key, value)?,
                "ce-mark" => c.ce_mark = percent(key, value)?,
                "delay" => c.delay = duration(key, value)?,
                "jitter" => c.jitter = duration(key, value)?,
                "reorder-delay" => c.reorder_delay = duration(key, value)?,
                "rate" => c.bandwidth_bps = Some(rate(value)?),
                "queue" => c.queue_limit_bytes = Some(bytes(value)?),
                "loss-burst" => {
                    let (lo, hi) = value.split_once('-').unwrap_or((value, value));
                    let parse = |v: &str| v.trim().parse::<u32>().ok().filter(|n| *n >= 1);
                    match (parse(lo), parse(hi)) {
                        (Some(lo), Some(hi)) if lo <= hi => c.loss_burst = Some((lo, hi)),
                        _ => return Err(format!("loss-burst={value}: expected MIN-MAX packets, e.g. 3-5")),
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown impairment '{key}' (known: loss, loss-burst, delay, jitter, reorder, reorder-delay, duplicate, corrupt, ce-mark, rate, queue)"
                    ))
                }
            }
        }
        Ok(c)
    }
}

fn percent(key: &str, value: &str) -> Result<f64, String> {
    let n: f64 = value
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{key}={value}: expected a percentage, e.g. {key}=2%"))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("{key}={value}: a percentage is from 0 to 100"));
    }
    Ok(n / 100.0)
}

/// Parse a duration like `20ms`, `500us` or `1.5s`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(synack::sim::parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(synack::sim::parse_duration("500us"), Ok(Duration::from_micros(500)));
/// ```
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    duration("duration", value)
}

/// Parse a rate like `100mbit`, `1gbit` or `500kbit` into bits per second.
///
/// # Examples
///
/// ```
/// assert_eq!(synack::sim::parse_rate("100mbit"), Ok(100_000_000));
/// ```
pub fn parse_rate(value: &str) -> Result<u64, String> {
    rate(value)
}

fn duration(key: &str, value: &str) -> Result<Duration, String> {
    let bad = || format!("{key}={value}: expected a duration like 10ms, 500us or 1s");
    let split = value
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .ok_or_else(bad)?;
    let (n, unit) = value.split_at(split);
    let n: f64 = n.parse().map_err(|_| bad())?;
    let micros = match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        _ => return Err(bad()),
    };
    Ok(Duration::from_micros(micros as u64))
}

fn rate(value: &str) -> Result<u64, String> {
    let bad = || format!("rate={value}: expected bits per second like 100mbit, 1gbit or 500kbit");
    let split = value
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .ok_or_else(bad)?;
    let (n, unit) = value.split_at(split);
    let n: f64 = n.parse().map_err(|_| bad())?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "bit" | "bps" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(bad()),
    };
    Some((n * scale) as u64).filter(|b| *b > 0).ok_or_else(bad)
}

fn bytes(value: &str) -> Result<usize, String> {
    let bad = || format!("queue={value}: expected a byte count like 65536, 64k or 1m");
    let lower = value.to_ascii_lowercase();
    let (n, scale) = match lower.strip_suffix('k') {
        Some(n) => (n, 1024),
        None => match lower.strip_suffix('m') {
            Some(n) => (n, 1024 * 1024),
            None => (lower.as_str(), 1),
        },
    };
    n.parse::<usize>().map(|n| n * scale).map_err(|_| bad())
}

/// Why a packet did not arrive.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use synack::sim::{LinkConfig, Network};
/// # use synack::{Config, Instant, Stack, TcpState};
/// # fn host(addr: &str) -> Stack {
/// #     let mut stack = Stack::new(Config::deterministic(1));
/// #     stack.add_address(addr.parse().unwrap());
/// #     stack
/// # }
/// # let mut net: Network<Stack> = Network::new(7);
/// # let client = net.add_host("client", &["198.18.0.1".parse().unwrap()], host("198.18.0.1"));
/// # let server = net.add_host("server", &["198.18.0.2".parse().unwrap()], host("198.18.0.2"));
/// # net.set_link_both(client, server, LinkConfig::lossless(Duration::from_millis(10)));
/// # net.host_mut(server).listen("198.18.0.2:80".parse().unwrap(), 128).unwrap();
/// use synack::sim::{LossCause, Verdict};
/// net.set_filter(|_| Verdict::Drop);
/// let now = net.now();
/// net.host_mut(client).connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
/// net.flush();
/// assert_eq!(net.stats().lost.get(&LossCause::Filter), Some(&1));
/// assert_eq!(LossCause::Filter.as_str(), "dropped by scenario");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
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
            at += if c.reorder_uniform {
                Duration::from_micros(rng.random_range(0..=c.reorder_delay.as_micros() as u64))
            } else {
                c.reorder_delay
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impairment_spec_parses_into_a_link_config() {
        let c: LinkConfig = "loss=2%,delay=10ms,jitter=2ms,reorder=10%,duplicate=1%,rate=100mbit"
            .parse()
            .unwrap();
        assert_eq!(c.loss, 0.02);
        assert_eq!(c.delay, Duration::from_millis(10));
        assert_eq!(c.jitter, Duration::from_millis(2));
        assert_eq!(c.reorder, 0.1);
        assert_eq!(c.duplicate, 0.01);
        assert_eq!(c.bandwidth_bps, Some(100_000_000));
        let c: LinkConfig = "loss=1,loss-burst=3-5,queue=64k,delay=500us"
            .parse()
            .unwrap();
        assert_eq!(c.loss_burst, Some((3, 5)));
        assert_eq!(c.queue_limit_bytes, Some(65536));
        assert_eq!(c.delay, Duration::from_micros(500));
        let empty: LinkConfig = "".parse().unwrap();
        assert_eq!(empty, LinkConfig::lossless(Duration::ZERO));
    }

    #[test]
    fn a_bad_impairment_spec_says_what_is_wrong() {
        for (spec, words) in [
            ("loss", "KEY=VALUE"),
            ("lost=2%", "unknown impairment 'lost'"),
            ("loss=200%", "0 to 100"),
            ("delay=10", "duration"),
            ("rate=fast", "bits per second"),
            ("loss-burst=5-3", "MIN-MAX"),
        ] {
            let err = spec.parse::<LinkConfig>().unwrap_err();
            assert!(err.contains(words), "{spec}: {err}");
        }
    }
}
