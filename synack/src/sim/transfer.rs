//! Bulk-transfer experiments in the simulator: N flows from a client to a server over
//! one bottleneck (bandwidth, round-trip time, queue, loss, reordering), measuring what
//! the congestion control and loss recovery achieve: goodput, retransmissions, fairness
//! and cwnd over time. `synack demo transfer` and the performance tests run these.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{HostId, LinkConfig, Network};
use crate::stack::CongestionControl;
use crate::{Config, ConnectionHandle, Error, Instant, Stack};

/// What to run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use synack::sim::transfer::{self, TransferSpec};
/// let mut spec = TransferSpec::default(); // 100 Mbit/s, 20 ms, CUBIC, SACK
/// spec.bytes = 1_000_000;
/// spec.loss = 0.01;
/// let result = transfer::run(&spec, Duration::from_millis(100), |sample| {
///     let _ = (sample.at, &sample.cwnd); // progress, every 100 ms of simulated time
/// });
/// assert!(result.completed && result.byte_exact);
/// assert!(result.goodput_bps < result.link_bps as f64);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransferSpec {
    /// Bytes each flow sends.
    pub bytes: u64,
    /// Bottleneck rate, bits per second.
    pub bandwidth_bps: u64,
    /// Round-trip propagation delay (split evenly between the two directions).
    pub rtt: Duration,
    /// Probability that a data packet is lost (client to server direction only).
    pub loss: f64,
    /// Lose this many consecutive packets per loss event.
    pub loss_burst: Option<(u32, u32)>,
    /// Probability that a data packet is held back (by up to `reorder_delay`).
    pub reorder: f64,
    /// The longest a reordered packet is held back (uniformly distributed up to it).
    pub reorder_delay: Duration,
    /// Random extra delay per packet, both directions (breaks the phase effects a
    /// perfectly regular simulation has at a drop-tail queue).
    pub jitter: Duration,
    /// Probability that a packet from the server to the client (an ACK) is lost.
    pub ack_loss: f64,
    /// Probability that an ACK is held back by `reorder_delay`.
    pub ack_reorder: f64,
    /// Congestion control of every flow.
    pub cc: CongestionControl,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Offer window scaling (RFC 7323).
    pub wscale: bool,
    /// Number of flows sharing the bottleneck.
    pub flows: usize,
    /// Start of each flow after the previous one.
    pub stagger: Duration,
    /// Send and receive buffer every connection starts with.
    pub buffer: usize,
    /// Buffers grow with use (`tcp_moderate_rcvbuf`, `tcp_wmem_max`, the defaults); false
    /// keeps them at `buffer`.
    pub autotune: bool,
    /// Bottleneck queue in bytes (default: one bandwidth-delay product).
    pub queue_bytes: Option<usize>,
    /// Give up after this much simulated time.
    pub time_limit: Duration,
    /// Seed of the simulation.
    pub seed: u64,
    /// Both ends use ECN (`Config::tcp_ecn = 1`, RFC 3168).
    pub ecn: bool,
    /// Probability that the bottleneck marks an ECN-capable data packet CE
    /// ([`LinkConfig::ce_mark`]).
    pub ce_mark: f64,
}

impl Default for TransferSpec {
    fn default() -> TransferSpec {
        TransferSpec {
            bytes: 10_000_000,
            bandwidth_bps: 100_000_000,
            rtt: Duration::from_millis(20),
            loss: 0.0,
            loss_burst: None,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            ack_loss: 0.0,
            ack_reorder: 0.0,
            cc: CongestionControl::Cubic,
            sack: true,
            wscale: true,
            flows: 1,
            stagger: Duration::ZERO,
            buffer: 4 * 1024 * 1024,
            autotune: true,
            queue_bytes: None,
            time_limit: Duration::from_secs(3600),
            seed: 1,
            ecn: false,
            ce_mark: 0.0,
        }
    }
}

/// How one flow did.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use synack::sim::transfer::{self, TransferSpec};
/// # let mut spec = TransferSpec::default();
/// # spec.bytes = 200_000;
/// # let result = transfer::run(&spec, Duration::from_millis(100), |_| {});
/// let flow = &result.flows[0];
/// assert_eq!(flow.bytes_delivered, 200_000);
/// assert!(flow.byte_exact && flow.finished_at.is_some());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FlowResult {
    /// Bytes the receiving application read, all checked against what was sent.
    pub bytes_delivered: u64,
    /// Delivered bits per second from the flow's connect() to its last byte.
    pub goodput_bps: f64,
    /// Segments the sender retransmitted.
    pub retransmits: u64,
    /// Retransmission timeouts the sender took.
    pub timeouts: u64,
    /// Tail loss probes the sender sent.
    pub tail_loss_probes: u64,
    /// The flow negotiated ECN.
    pub ecn: bool,
    /// Times the sender reduced its window for an ECN echo (RFC 3168 6.1.2).
    pub ecn_reductions: u64,
    /// Every byte arrived once, in order, as sent.
    pub byte_exact: bool,
    /// When the flow finished (None: still running at the end).
    pub finished_at: Option<Duration>,
}

/// A sample of every flow's congestion window.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use synack::sim::transfer::{self, TransferSpec};
/// # let mut spec = TransferSpec::default();
/// # spec.bytes = 200_000;
/// # let result = transfer::run(&spec, Duration::from_millis(100), |_| {});
/// let mut samples = Vec::new();
/// transfer::run(&spec, Duration::from_millis(10), |s| samples.push(s.clone()));
/// assert!(samples.iter().any(|s| s.cwnd[0] > 0));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CwndSample {
    /// Simulated time since the start.
    pub at: Duration,
    /// Each flow's cwnd in bytes (0 before it connects).
    pub cwnd: Vec<u32>,
    /// Each flow's bytes delivered so far.
    pub delivered: Vec<u64>,
}

/// What a transfer achieved.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use synack::sim::transfer::{self, TransferSpec};
/// # let mut spec = TransferSpec::default();
/// # spec.bytes = 200_000;
/// # let result = transfer::run(&spec, Duration::from_millis(100), |_| {});
/// assert!(result.completed);
/// assert_eq!(result.bytes_delivered, 200_000);
/// assert_eq!(result.packets_lost, 0);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TransferResult {
    /// Bits delivered per second, all flows together, from the first connect to the last byte.
    pub goodput_bps: f64,
    /// The bottleneck's rate.
    pub link_bps: u64,
    /// Segments retransmitted by all senders.
    pub retransmits: u64,
    /// Bytes delivered over all flows.
    pub bytes_delivered: u64,
    /// Every flow was byte-exact.
    pub byte_exact: bool,
    /// Every flow delivered all its bytes within the time limit.
    pub completed: bool,
    /// Simulated time the whole run took.
    pub duration: Duration,
    /// Packets the link dropped (loss, bursts, full queue).
    pub packets_lost: u64,
    /// ECN-capable packets the link marked CE instead ([`TransferSpec::ce_mark`]).
    pub ce_marked: u64,
    /// Per flow.
    pub flows: Vec<FlowResult>,
    /// cwnd and progress over time (every `sample_every`).
    pub samples: Vec<CwndSample>,
}

/// Byte `i` of flow `f`'s stream: a pattern whose period is not a power of two, so a
/// misplaced segment shows.
fn pattern(f: usize, i: u64) -> u8 {
    ((i % 251) as u8).wrapping_add(f as u8 * 17)
}

struct Flow {
    client: Option<ConnectionHandle>,
    server: Option<ConnectionHandle>,
    start: Duration,
    started_at: Option<Instant>,
    sent: u64,
    shut: bool,
    got: u64,
    exact: bool,
    done_at: Option<Instant>,
    failed: Option<Error>,
}

/// Jain's fairness index of `xs`: 1 when all are equal, 1/n when one takes everything.
///
/// # Examples
///
/// ```
/// use synack::sim::transfer::jain_index;
/// assert_eq!(jain_index(&[5.0, 5.0]), 1.0);
/// assert_eq!(jain_index(&[10.0, 0.0]), 0.5);
/// ```
pub fn jain_index(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (n * squares)
}

/// Run `spec`; `progress` is called with a sample every `sample_every` of simulated time.
pub fn run(
    spec: &TransferSpec,
    sample_every: Duration,
    mut progress: impl FnMut(&CwndSample),
) -> TransferResult {
    let mut net: Network<Stack> = Network::new(spec.seed);
    net.set_logging(false);
    let (cip, sip): (IpAddr, IpAddr) = ([198, 18, 0, 1].into(), [198, 18, 0, 2].into());
    let config = Config {
        secrets: crate::Secrets::Deterministic(spec.seed),
        recv_buffer: spec.buffer,
        send_buffer: spec.buffer,
        tcp_sack: spec.sack,
        tcp_ecn: if spec.ecn {
            1
        } else {
            Config::default().tcp_ecn
        },
        tcp_window_scaling: spec.wscale,
        congestion_control: spec.cc.clone(),
        tcp_moderate_rcvbuf: spec.autotune,
        tcp_wmem_max: if spec.autotune {
            Config::default().tcp_wmem_max
        } else {
            spec.buffer
        },
        ..Config::default()
    };
    let mut cs = Stack::new(config.clone());
    cs.add_address(cip);
    let mut ss = Stack::new(Config {
        secrets: crate::Secrets::Deterministic(spec.seed ^ 0x5A5A),
        ..config
    });
    ss.add_address(sip);
    let listener = ss.listen(SocketAddr::new(sip, 5001), 1024).expect("listen");
    let c: HostId = net.add_host("client", &[cip], cs);
    let s: HostId = net.add_host("server", &[sip], ss);
    let bdp = (spec.bandwidth_bps as f64 / 8.0 * spec.rtt.as_secs_f64()) as usize;
    let one_way = spec.rtt / 2;
    net.set_link(
        c,
        s,
        LinkConfig {
            delay: one_way,
            loss: spec.loss,
            loss_burst: spec.loss_burst,
            reorder: spec.reorder,
            reorder_delay: spec.reorder_delay,
            reorder_uniform: true,
            jitter: spec.jitter,
            ce_mark: spec.ce_mark,
            bandwidth_bps: Some(spec.bandwidth_bps),
            queue_limit_bytes: Some(spec.queue_bytes.unwrap_or(bdp.max(64 * 1024))),
            ..LinkConfig::default()
        },
    );
    net.set_link(
        s,
        c,
        LinkConfig {
            delay: one_way,
            loss: spec.ack_loss,
            reorder: spec.ack_reorder,
            reorder_delay: spec.reorder_delay,
            reorder_uniform: true,
            jitter: spec.jitter,
            ..LinkConfig::default()
        },
    );
    let mut flows: Vec<Flow> = (0..spec.flows)
        .map(|i| Flow {
            client: None,
            server: None,
            start: spec.stagger * i as u32,
            started_at: None,
            sent: 0,
            shut: false,
            got: 0,
            exact: true,
            done_at: None,
            failed: None,
        })
        .collect();
    let t0 = net.now();
    let limit = t0 + spec.time_limit;
    let mut next_sample = t0;
    let mut samples = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let now = net.now();
        // Applications: start flows, write, read, verify.
        for (i, f) in flows.iter_mut().enumerate() {
            if f.client.is_none() && now >= t0 + f.start {
                let stack = net.host_mut(c);
                match stack.connect(now, SocketAddr::new(sip, 5001)) {
                    Ok(h) => {
                        f.client = Some(h);
                        f.started_at = Some(now);
                    }
                    Err(e) => f.failed = Some(e),
                }
            }
            let Some(h) = f.client else { continue };
            let stack = net.host_mut(c);
            while f.sent < spec.bytes && f.failed.is_none() {
                // As much as the send buffer takes (it grows as the window does), made
                // where it lies.
                let n = ((spec.bytes - f.sent) as usize).min(64 * 1024);
                if n == 0 {
                    break;
                }
                let sent = f.sent;
                let fill = |room: &mut [u8]| {
                    for (k, b) in room.iter_mut().enumerate() {
                        *b = pattern(i, sent + k as u64);
                    }
                    room.len()
                };
                match stack.send_with(now, h, n, fill) {
                    Ok(w) => f.sent += w as u64,
                    Err(Error::WouldBlock) | Err(Error::NotConnected) => break,
                    Err(e) => f.failed = Some(e),
                }
            }
            // Half-close once everything is written, after the handshake: shutdown()
            // in SYN_SENT would abort the open, as on Linux.
            let synchronized = stack.state(h).is_ok_and(|s| s.is_synchronized());
            if f.sent == spec.bytes && !f.shut && synchronized && stack.shutdown(now, h).is_ok() {
                f.shut = true;
            }
        }
        {
            let stack = net.host_mut(s);
            while let Ok(h) = stack.accept(listener) {
                // Connections are accepted in connect order: one listener, one client.
                if let Some(f) = flows.iter_mut().find(|f| f.server.is_none()) {
                    f.server = Some(h);
                }
            }
            for (i, f) in flows.iter_mut().enumerate() {
                let Some(h) = f.server else { continue };
                loop {
                    match stack.recv(now, h, &mut buf) {
                        Ok(0) => {
                            if f.done_at.is_none() {
                                f.done_at = Some(now);
                                let _ = stack.close(now, h);
                            }
                            break;
                        }
                        Ok(n) => {
                            for (k, b) in buf[..n].iter().enumerate() {
                                if *b != pattern(i, f.got + k as u64) {
                                    f.exact = false;
                                }
                            }
                            f.got += n as u64;
                        }
                        Err(_) => break,
                    }
                }
            }
            while stack.poll_event().is_some() {}
        }
        while net.host_mut(c).poll_event().is_some() {}
        if now >= next_sample {
            let sample = CwndSample {
                at: now - t0,
                cwnd: flows
                    .iter()
                    .map(|f| {
                        f.client
                            .and_then(|h| net.host(c).info(now, h).ok())
                            .and_then(|i| i.cwnd)
                            .unwrap_or(0)
                    })
                    .collect(),
                delivered: flows.iter().map(|f| f.got).collect(),
            };
            progress(&sample);
            samples.push(sample);
            next_sample = now + sample_every;
        }
        let all_done = flows
            .iter()
            .all(|f| f.done_at.is_some() || f.failed.is_some());
        if all_done || now >= limit {
            break;
        }
        // Wake for the next packet or timer, for the next flow start, or for the next sample.
        net.flush();
        let next_start = flows
            .iter()
            .filter(|f| f.client.is_none())
            .map(|f| t0 + f.start)
            .min();
        match (net.next_event_time(), next_start) {
            (Some(t), Some(s)) if s < t => net.run_until(s),
            (None, Some(s)) => net.run_until(s),
            (Some(_), _) => {
                net.step();
            }
            (None, None) => break,
        }
    }
    let end = net.now();
    let flow_results: Vec<FlowResult> = flows
        .iter()
        .map(|f| {
            let start = f.started_at.unwrap_or(t0);
            let stop = f.done_at.unwrap_or(end);
            let secs = (stop - start).as_secs_f64().max(1e-9);
            let info = f.client.and_then(|h| net.host(c).info(end, h).ok());
            FlowResult {
                bytes_delivered: f.got,
                goodput_bps: f.got as f64 * 8.0 / secs,
                retransmits: info.as_ref().map_or(0, |i| i.retransmits),
                timeouts: info.as_ref().map_or(0, |i| i.timeouts),
                tail_loss_probes: info.as_ref().map_or(0, |i| i.tail_loss_probes),
                ecn: info.as_ref().is_some_and(|i| i.ecn),
                ecn_reductions: info.as_ref().map_or(0, |i| i.ece_reductions),
                byte_exact: f.exact && f.failed.is_none(),
                finished_at: f.done_at.map(|d| d - t0),
            }
        })
        .collect();
    TransferResult {
        goodput_bps: {
            // All flows together: every byte delivered over the time from the first
            // connect to the last byte.
            let first = flows
                .iter()
                .filter_map(|f| f.started_at)
                .min()
                .unwrap_or(t0);
            let last = flows.iter().filter_map(|f| f.done_at).max().unwrap_or(end);
            let bytes: u64 = flows.iter().map(|f| f.got).sum();
            bytes as f64 * 8.0 / (last - first).as_secs_f64().max(1e-9)
        },
        link_bps: spec.bandwidth_bps,
        retransmits: flow_results.iter().map(|f| f.retransmits).sum(),
        bytes_delivered: flows.iter().map(|f| f.got).sum(),
        byte_exact: flow_results.iter().all(|f| f.byte_exact),
        completed: flows
            .iter()
            .all(|f| f.got == spec.bytes && f.done_at.is_some()),
        duration: end - t0,
        packets_lost: net.stats().total_lost(),
        ce_marked: net.stats().ce_marked,
        flows: flow_results,
        samples,
    }
}
