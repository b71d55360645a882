//! Tests of the simulator with toy nodes: a sender of numbered packets and a sink.

use super::*;

/// Sends `count` 100-byte IPv4 packets to `dst` at start, records what it receives,
/// and wakes at `wake` if set.
struct Toy {
    dst: [u8; 4],
    to_send: u32,
    size: usize,
    got: Vec<(Instant, u32)>,
    wake: Option<Instant>,
    woke: Vec<Instant>,
}

impl Toy {
    fn new(dst: [u8; 4], to_send: u32, size: usize) -> Toy {
        Toy {
            dst,
            to_send,
            size,
            got: Vec::new(),
            wake: None,
            woke: Vec::new(),
        }
    }
}

impl Node for Toy {
    fn receive(&mut self, now: Instant, packet: &[u8]) {
        let n = u32::from_be_bytes(packet[20..24].try_into().unwrap_or([0; 4]));
        self.got.push((now, n));
    }
    fn poll_transmit(&mut self, _now: Instant) -> Option<Vec<u8>> {
        if self.to_send == 0 {
            return None;
        }
        self.to_send -= 1;
        let mut p = vec![0u8; self.size.max(24)];
        p[0] = 0x45;
        p[16..20].copy_from_slice(&self.dst);
        p[20..24].copy_from_slice(&self.to_send.to_be_bytes());
        p.truncate(self.size);
        Some(p)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.wake
    }
    fn on_timeout(&mut self, now: Instant) {
        self.woke.push(now);
        self.wake = None;
    }
}

const A: [u8; 4] = [198, 18, 0, 1];
const B: [u8; 4] = [198, 18, 0, 2];

fn pair(seed: u64, count: u32, size: usize, cfg: LinkConfig) -> (Network<Toy>, HostId, HostId) {
    let mut net = Network::new(seed);
    let a = net.add_host("a", &[IpAddr::from(A)], Toy::new(B, count, size));
    let b = net.add_host("b", &[IpAddr::from(B)], Toy::new(A, 0, size));
    net.set_link(a, b, cfg);
    (net, a, b)
}

#[test]
fn same_seed_gives_identical_runs_and_other_seeds_differ() {
    let cfg = LinkConfig {
        loss: 0.3,
        jitter: Duration::from_millis(3),
        ..LinkConfig::default()
    };
    let run = |seed| {
        let (mut net, _, b) = pair(seed, 200, 100, cfg.clone());
        net.run_until_idle(Instant::from_secs(10));
        net.host(b).got.clone()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn delay_is_exact() {
    let (mut net, _, b) = pair(1, 1, 100, LinkConfig::lossless(Duration::from_millis(7)));
    net.run_until_idle(Instant::from_secs(1));
    assert_eq!(net.host(b).got[0].0, Instant::from_millis(7));
}

#[test]
fn bandwidth_serializes_packets_back_to_back() {
    // 1500 bytes at 12 Mbit/s take exactly 1 ms each.
    let cfg = LinkConfig {
        bandwidth_bps: Some(12_000_000),
        delay: Duration::ZERO,
        ..LinkConfig::default()
    };
    let (mut net, _, b) = pair(1, 3, 1500, cfg);
    net.run_until_idle(Instant::from_secs(1));
    let times: Vec<u64> = net.host(b).got.iter().map(|(t, _)| t.as_micros()).collect();
    assert_eq!(times, vec![1000, 2000, 3000]);
}

#[test]
fn queue_limit_drops_the_tail() {
    let cfg = LinkConfig {
        bandwidth_bps: Some(12_000_000),
        queue_limit_bytes: Some(3000),
        ..LinkConfig::default()
    };
    let (mut net, _, b) = pair(1, 5, 1500, cfg);
    net.run_until_idle(Instant::from_secs(1));
    assert_eq!(net.host(b).got.len(), 2);
    assert_eq!(net.stats().lost.get(&LossCause::QueueFull), Some(&3));
}

#[test]
fn random_loss_rate_matches_the_configuration() {
    let cfg = LinkConfig {
        loss: 0.1,
        ..LinkConfig::default()
    };
    let (mut net, _, b) = pair(9, 100_000, 24, cfg);
    net.set_logging(false);
    net.run_until_idle(Instant::from_secs(10));
    let got = net.host(b).got.len() as f64;
    let rate = 1.0 - got / 100_000.0;
    assert!((rate - 0.1).abs() < 0.005, "loss rate {rate}");
}

#[test]
fn burst_loss_drops_consecutive_packets() {
    let cfg = LinkConfig {
        loss: 0.01,
        loss_burst: Some((3, 5)),
        ..LinkConfig::default()
    };
    let (mut net, _, _) = pair(3, 20_000, 24, cfg);
    net.run_until_idle(Instant::from_secs(10));
    // Runs of consecutive losses are 3..=5 long (or merge when two bursts touch).
    let mut run = 0;
    let mut runs = Vec::new();
    for r in net.log() {
        if matches!(r.fate, Fate::Lost { .. }) {
            run += 1;
        } else if run > 0 {
            runs.push(run);
            run = 0;
        }
    }
    assert!(!runs.is_empty());
    assert!(runs.iter().all(|&n| n >= 3), "{runs:?}");
    assert!(
        runs.iter().filter(|&&n| n <= 5).count() * 10 >= runs.len() * 9,
        "{runs:?}"
    );
}

#[test]
fn duplication_and_reordering_happen_at_their_rates() {
    let cfg = LinkConfig {
        duplicate: 0.05,
        reorder: 0.1,
        reorder_delay: Duration::from_millis(5),
        ..LinkConfig::default()
    };
    let (mut net, _, b) = pair(4, 10_000, 24, cfg);
    net.set_logging(false);
    net.run_until_idle(Instant::from_secs(10));
    let got = net.host(b).got.len();
    assert!((10_400..10_600).contains(&got), "{got}");
    let s = net.stats();
    assert!((900..1100).contains(&s.reordered), "{}", s.reordered);
}

#[test]
fn reordering_lets_later_packets_overtake() {
    let cfg = LinkConfig {
        reorder: 0.5,
        reorder_delay: Duration::from_millis(5),
        ..LinkConfig::default()
    };
    let mut net = Network::new(5);
    let a = net.add_host("a", &[IpAddr::from(A)], Toy::new(B, 0, 24));
    let b = net.add_host("b", &[IpAddr::from(B)], Toy::new(A, 0, 24));
    net.set_link(a, b, cfg);
    for i in 0..50 {
        net.host_mut(a).to_send = 1;
        net.flush();
        net.run_for(Duration::from_millis(1));
        let _ = i;
    }
    net.run_until_idle(Instant::from_secs(1));
    let times: Vec<Instant> = net.log().iter().map(|r| r.sent_at).collect();
    let arrivals: Vec<Instant> = net.host(b).got.iter().map(|(t, _)| *t).collect();
    assert_eq!(arrivals.len(), 50);
    assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
    // Arrival order differs from send order for at least one pair.
    let order: Vec<u64> = net
        .log()
        .iter()
        .filter_map(|r| match r.fate {
            Fate::Delivered { at, .. } => Some(at.as_micros()),
            _ => None,
        })
        .collect();
    assert!(
        order.windows(2).any(|w| w[0] > w[1]),
        "no overtaking: {times:?}"
    );
}

#[test]
fn corruption_flips_one_bit_of_the_delivered_copy() {
    let cfg = LinkConfig {
        corrupt: 1.0,
        ..LinkConfig::default()
    };
    let (mut net, _, _) = pair(6, 10, 24, cfg);
    net.run_until_idle(Instant::from_secs(1));
    assert_eq!(net.stats().corrupted, 10);
    assert!(net.log().iter().all(|r| matches!(
        r.fate,
        Fate::Delivered {
            corrupted: true,
            ..
        }
    )));
}

#[test]
fn partition_drops_only_inside_its_window() {
    let cfg = LinkConfig {
        down: vec![(Instant::from_millis(10), Instant::from_millis(20))],
        ..LinkConfig::default()
    };
    let mut net = Network::new(1);
    let a = net.add_host("a", &[IpAddr::from(A)], Toy::new(B, 0, 24));
    let b = net.add_host("b", &[IpAddr::from(B)], Toy::new(A, 0, 24));
    net.set_link(a, b, cfg);
    for _ in 0..30 {
        net.host_mut(a).to_send = 1;
        net.flush();
        net.run_for(Duration::from_millis(1));
    }
    net.run_until_idle(Instant::from_secs(1));
    assert_eq!(net.host(b).got.len(), 20);
    assert_eq!(net.stats().lost.get(&LossCause::Partition), Some(&10));
}

#[test]
fn filter_can_drop_and_delay() {
    let (mut net, _, b) = pair(1, 4, 24, LinkConfig::default());
    net.set_filter(|m| match m.index_on_link {
        0 => Verdict::Drop,
        1 => Verdict::Delay(Duration::from_millis(50)),
        _ => Verdict::Pass,
    });
    net.run_until_idle(Instant::from_secs(1));
    let got = &net.host(b).got;
    assert_eq!(got.len(), 3);
    assert_eq!(got.last().unwrap().0, Instant::from_millis(51));
    assert_eq!(net.stats().lost.get(&LossCause::Filter), Some(&1));
}

#[test]
fn unroutable_and_garbage_packets_are_logged_not_panicking() {
    let mut net = Network::new(1);
    let a = net.add_host("a", &[IpAddr::from(A)], Toy::new([198, 19, 9, 9], 1, 24));
    let _ = a;
    net.run_until_idle(Instant::from_secs(1));
    assert!(matches!(
        net.log()[0].fate,
        Fate::Lost {
            cause: LossCause::NoRoute
        }
    ));
    let mut net: Network<Toy> = Network::new(1);
    let g = net.add_host("g", &[IpAddr::from(A)], Toy::new(A, 1, 3));
    net.run_until_idle(Instant::from_secs(1));
    let _ = g;
    assert!(matches!(
        net.log()[0].fate,
        Fate::Lost {
            cause: LossCause::NoRoute
        }
    ));
}

#[test]
fn host_timers_fire_at_their_virtual_time() {
    let (mut net, a, _) = pair(1, 0, 24, LinkConfig::default());
    net.host_mut(a).wake = Some(Instant::from_millis(250));
    net.run_until(Instant::from_secs(1));
    assert_eq!(net.host(a).woke, vec![Instant::from_millis(250)]);
    assert_eq!(net.now(), Instant::from_secs(1));
    // A deadline already in the past fires at the current time.
    net.host_mut(a).wake = Some(Instant::from_millis(10));
    net.step();
    assert_eq!(net.host(a).woke[1], Instant::from_secs(1));
    assert!(net.run_until_idle(Instant::from_secs(5)));
}
