//! A deterministic simulated network: hosts (anything implementing [`Node`], such as a
//! [`crate::Stack`]) joined by links with seeded impairments, driven by a virtual clock.
//! The same seed and the same calls give the same run, packet for packet.
//!
//! [`Network::step`] processes one event (a delivery or a host timer), after draining
//! what every host wants to send. Every packet is recorded in a [`PacketRecord`] with its
//! fate, for ladders, pcaps and assertions.

pub(crate) mod link;
pub mod transfer;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use link::{parse_duration, parse_rate, LinkConfig, LossCause};
use link::{Link, Transit};

use crate::Instant;

/// Something that sends and receives IP packets on a virtual clock.
///
/// # Examples
///
/// ```
/// use synack::sim::{Network, Node};
/// use synack::Instant;
/// /// A host that drops everything: a black hole on the simulated network.
/// struct BlackHole;
/// impl Node for BlackHole {
///     fn receive(&mut self, _now: Instant, _packet: &[u8]) {}
///     fn poll_transmit(&mut self, _now: Instant) -> Option<Vec<u8>> { None }
///     fn poll_timeout(&mut self) -> Option<Instant> { None }
///     fn on_timeout(&mut self, _now: Instant) {}
/// }
/// let mut net: Network<BlackHole> = Network::new(1);
/// net.add_host("void", &["198.18.0.9".parse().unwrap()], BlackHole);
/// assert!(net.run_until_idle(Instant::from_secs(1)));
/// ```
pub trait Node {
    /// An IP packet arrives at `now`.
    fn receive(&mut self, now: Instant, packet: &[u8]);
    /// Next packet the node wants to send, if any (the network drains this until None).
    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>>;
    /// Earliest instant the node wants `on_timeout` called.
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// Timers due at or before `now` fire.
    fn on_timeout(&mut self, now: Instant);
}

impl Node for crate::Stack {
    fn receive(&mut self, now: Instant, packet: &[u8]) {
        crate::Stack::receive(self, now, packet)
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        crate::Stack::poll_transmit(self, now)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        crate::Stack::poll_timeout(self)
    }
    fn on_timeout(&mut self, now: Instant) {
        crate::Stack::on_timeout(self, now)
    }
}

/// Names a host of a [`Network`].
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
/// assert_eq!(net.host_name(client), "client");
/// assert_eq!(net.host_ids().collect::<Vec<_>>(), [client, server]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub usize);

/// What a scenario's filter sees of a packet before the link's impairments.
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
/// use synack::sim::Verdict;
/// // Lose the first packet from the client (its SYN): it is sent again after the RTO.
/// net.set_filter(move |meta| {
///     if meta.from == client && meta.index_on_link == 0 { Verdict::Drop } else { Verdict::Pass }
/// });
/// let now = net.now();
/// let conn = net.host_mut(client).connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
/// net.flush();
/// net.run_for(Duration::from_secs(2));
/// assert_eq!(net.host(client).state(conn).unwrap(), TcpState::Established);
/// assert_eq!(net.host(client).info(net.now(), conn).unwrap().retransmits, 1);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct PacketMeta<'a> {
    /// The packet's record id.
    pub id: u64,
    /// When it was sent.
    pub now: Instant,
    /// Sender.
    pub from: HostId,
    /// Receiver (None: no route).
    pub to: Option<HostId>,
    /// The IP packet.
    pub bytes: &'a [u8],
    /// 0-based count of packets sent on this directed link before this one.
    pub index_on_link: u64,
}

/// A filter's decision.
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
/// use synack::sim::Verdict;
/// // Hold every packet to the server back by 50 ms more than the link would.
/// net.set_filter(move |meta| if meta.to == Some(server) { Verdict::Delay(Duration::from_millis(50)) } else { Verdict::Pass });
/// let now = net.now();
/// let conn = net.host_mut(client).connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
/// net.flush();
/// net.run_for(Duration::from_secs(1));
/// let rtt = net.host(client).info(net.now(), conn).unwrap().srtt.unwrap();
/// assert!(rtt >= Duration::from_millis(70));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Let the link handle it.
    Pass,
    /// Drop it.
    Drop,
    /// Deliver it this much later than the link would.
    Delay(Duration),
}

/// What became of a packet.
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
/// # let now = net.now();
/// # let conn = net.host_mut(client).connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
/// # net.flush();
/// # net.run_for(Duration::from_millis(100));
/// use synack::sim::Fate;
/// for record in net.log() {
///     match &record.fate {
///         Fate::Delivered { at, .. } => assert_eq!(*at - record.sent_at, Duration::from_millis(10)),
///         Fate::Lost { cause } => panic!("lost: {cause:?}"),
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It arrived.
    Delivered {
        /// Arrival time.
        at: Instant,
        /// A bit was flipped on the way.
        corrupted: bool,
        /// This record is the extra copy of a duplicated packet.
        duplicate_of: Option<u64>,
    },
    /// It did not.
    Lost {
        /// Why.
        cause: LossCause,
    },
}

/// One packet on the simulated wire.
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
/// # let now = net.now();
/// # let conn = net.host_mut(client).connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
/// # net.flush();
/// # net.run_for(Duration::from_millis(100));
/// let syn = &net.log()[0];
/// assert_eq!((syn.from, syn.to, syn.sent_at), (client, Some(server), Instant::ZERO));
/// let (_, tcp) = synack::wire::parse_tcp_packet(&syn.bytes).unwrap();
/// assert!(tcp.flags.syn());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacketRecord {
    /// Unique, in sending order.
    pub id: u64,
    /// Sender.
    pub from: HostId,
    /// Receiver, when routable.
    pub to: Option<HostId>,
    /// When it left the sender.
    pub sent_at: Instant,
    /// The bytes as sent (before any corruption).
    pub bytes: Vec<u8>,
    /// What became of it.
    pub fate: Fate,
}

/// Counts of what the network did.
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
/// # let now = net.now();
/// # let conn = net.host_mut(client).connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
/// # net.flush();
/// # net.run_for(Duration::from_millis(100));
/// let stats = net.stats();
/// assert_eq!((stats.sent, stats.delivered, stats.total_lost()), (3, 3, 0));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimStats {
    /// Packets sent by hosts.
    pub sent: u64,
    /// Copies delivered.
    pub delivered: u64,
    /// Packets lost, by cause.
    pub lost: HashMap<LossCause, u64>,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Packets delivered with a flipped bit.
    pub corrupted: u64,
    /// Packets held back for reordering.
    pub reordered: u64,
    /// ECN-capable packets a link marked CE (`LinkConfig::ce_mark`).
    pub ce_marked: u64,
}

impl SimStats {
    /// Packets lost for any reason.
    pub fn total_lost(&self) -> u64 {
        self.lost.values().sum()
    }
}

struct Host<N> {
    name: String,
    addrs: Vec<IpAddr>,
    /// Prefixes routed to the host besides its addresses (a relay's captured ranges).
    routes: Vec<crate::IpNet>,
    node: N,
}

struct Delivery {
    to: HostId,
    bytes: Vec<u8>,
}

type Filter = Box<dyn FnMut(&PacketMeta<'_>) -> Verdict>;

/// The simulated network.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use synack::sim::{LinkConfig, Network};
/// use synack::{Config, Stack, TcpState};
///
/// // Deterministic stacks and a seeded network: the same run every time.
/// fn host(addr: &str) -> Stack {
///     let mut stack = Stack::new(Config::deterministic(1));
///     stack.add_address(addr.parse().unwrap());
///     stack
/// }
/// let mut net: Network<Stack> = Network::new(7);
/// let client = net.add_host("client", &["198.18.0.1".parse().unwrap()], host("198.18.0.1"));
/// let server = net.add_host("server", &["198.18.0.2".parse().unwrap()], host("198.18.0.2"));
/// // 10 ms each way, 1 % loss.
/// let mut link = LinkConfig::lossless(Duration::from_millis(10));
/// link.loss = 0.01;
/// net.set_link_both(client, server, link);
///
/// net.host_mut(server).listen("198.18.0.2:80".parse().unwrap(), 128).unwrap();
/// let now = net.now();
/// let conn = net.host_mut(client).connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
/// net.flush(); // after calls into a host: put what it sends on the links
/// net.run_for(Duration::from_secs(5)); // virtual time: no real waiting
/// assert_eq!(net.host(client).state(conn).unwrap(), TcpState::Established);
/// assert!(net.log().len() >= 3); // SYN, SYN-ACK, ACK (and any retransmission)
/// ```
pub struct Network<N: Node> {
    now: Instant,
    rng: ChaCha8Rng,
    hosts: Vec<Host<N>>,
    links: HashMap<(HostId, HostId), Link>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: HashMap<u64, Delivery>,
    seq: u64,
    next_id: u64,
    filter: Option<Filter>,
    logging: bool,
    log: Vec<PacketRecord>,
    stats: SimStats,
}

impl<N: Node> Network<N> {
    /// An empty network whose randomness comes from `seed`.
    pub fn new(seed: u64) -> Network<N> {
        Network {
            now: Instant::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed),
            hosts: Vec::new(),
            links: HashMap::new(),
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            next_id: 0,
            filter: None,
            logging: true,
            log: Vec::new(),
            stats: SimStats::default(),
        }
    }

    /// Add a host owning `addrs`.
    pub fn add_host(&mut self, name: &str, addrs: &[IpAddr], node: N) -> HostId {
        self.hosts.push(Host {
            name: name.to_string(),
            addrs: addrs.to_vec(),
            routes: Vec::new(),
            node,
        });
        HostId(self.hosts.len() - 1)
    }

    /// Route packets to any address within `prefix` to `host` as well (when no host
    /// owns that address), as a route to a relay's TUN device does.
    pub fn add_route(&mut self, prefix: crate::IpNet, host: HostId) {
        self.hosts[host.0].routes.push(prefix);
    }

    /// A host's node. Panics on a `HostId` this network never returned.
    pub fn host(&self, id: HostId) -> &N {
        &self.hosts[id.0].node
    }

    /// A host's node, mutably (for application calls; call [`Network::flush`] after).
    /// Panics on a `HostId` this network never returned.
    pub fn host_mut(&mut self, id: HostId) -> &mut N {
        &mut self.hosts[id.0].node
    }

    /// A host's name.
    pub fn host_name(&self, id: HostId) -> &str {
        &self.hosts[id.0].name
    }

    /// Every host.
    pub fn host_ids(&self) -> impl Iterator<Item = HostId> {
        (0..self.hosts.len()).map(HostId)
    }

    /// Configure the direction `from -> to`.
    pub fn set_link(&mut self, from: HostId, to: HostId, cfg: LinkConfig) {
        self.links.insert((from, to), Link::new(cfg));
    }

    /// Configure both directions alike.
    pub fn set_link_both(&mut self, a: HostId, b: HostId, cfg: LinkConfig) {
        self.set_link(a, b, cfg.clone());
        self.set_link(b, a, cfg);
    }

    /// Change a direction's impairments mid-run.
    pub fn link_config_mut(&mut self, from: HostId, to: HostId) -> &mut LinkConfig {
        &mut self.links.entry((from, to)).or_default().config
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Consult `f` for every packet before the link's impairments.
    pub fn set_filter(&mut self, f: impl FnMut(&PacketMeta<'_>) -> Verdict + 'static) {
        self.filter = Some(Box::new(f));
    }

    /// Remove the filter.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Record packets (on by default; long property runs turn it off).
    pub fn set_logging(&mut self, on: bool) {
        self.logging = on;
    }

    /// Every packet so far.
    pub fn log(&self) -> &[PacketRecord] {
        &self.log
    }

    /// Take the packet records, leaving the log empty.
    pub fn take_log(&mut self) -> Vec<PacketRecord> {
        std::mem::take(&mut self.log)
    }

    /// Counters.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    fn route(&self, packet: &[u8]) -> Option<HostId> {
        let dst: IpAddr = match packet.first()? >> 4 {
            4 => {
                let b: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
                Ipv4Addr::from(b).into()
            }
            6 => {
                let b: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
                Ipv6Addr::from(b).into()
            }
            _ => return None,
        };
        self.hosts
            .iter()
            .position(|h| h.addrs.contains(&dst))
            .or_else(|| {
                self.hosts
                    .iter()
                    .position(|h| h.routes.iter().any(|r| r.contains(&dst)))
            })
            .map(HostId)
    }

    /// Put one packet from `from` on its link.
    fn send(&mut self, from: HostId, bytes: Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        self.stats.sent += 1;
        let to = self.route(&bytes);
        let Some(to) = to else {
            return self.record(
                id,
                from,
                None,
                bytes,
                Fate::Lost {
                    cause: LossCause::NoRoute,
                },
            );
        };
        let link = self.links.entry((from, to)).or_default();
        let meta = PacketMeta {
            id,
            now: self.now,
            from,
            to: Some(to),
            bytes: &bytes,
            index_on_link: link.sent,
        };
        let verdict = self.filter.as_mut().map_or(Verdict::Pass, |f| f(&meta));
        let extra = match verdict {
            Verdict::Drop => {
                link.sent += 1;
                return self.record(
                    id,
                    from,
                    Some(to),
                    bytes,
                    Fate::Lost {
                        cause: LossCause::Filter,
                    },
                );
            }
            Verdict::Delay(d) => d,
            Verdict::Pass => Duration::ZERO,
        };
        let link = self.links.entry((from, to)).or_default();
        let ce_mark = link.config.ce_mark;
        let mut bytes = bytes;
        let transit = link.transit(self.now, bytes.len(), extra, &mut self.rng);
        // RFC 3168 5: a congested router marks an ECN-capable packet CE instead of
        // dropping it. (The random draw is made only on links that mark.)
        if ce_mark > 0.0 && matches!(transit, Transit::Arrive { .. }) {
            let ect = crate::wire::parse_ip(&bytes).is_ok_and(|(ip, _)| ip.ecn.is_ect());
            if ect && self.rng.random::<f64>() < ce_mark {
                crate::wire::set_ecn(&mut bytes, crate::wire::Ecn::Ce);
                self.stats.ce_marked += 1;
            }
        }
        match transit {
            Transit::Lost(cause) => self.record(id, from, Some(to), bytes, Fate::Lost { cause }),
            Transit::Arrive {
                at,
                corrupt_bit,
                reordered,
            } => {
                if reordered {
                    self.stats.reordered += 1;
                }
                for (i, arrival) in at.iter().enumerate() {
                    let mut copy = bytes.clone();
                    let corrupted = i == 0 && corrupt_bit.is_some();
                    if let (true, Some(bit)) = (corrupted, corrupt_bit) {
                        copy[bit / 8] ^= 1 << (bit % 8);
                        self.stats.corrupted += 1;
                    }
                    let rec_id = if i == 0 { id } else { self.fresh_id() };
                    if i > 0 {
                        self.stats.duplicated += 1;
                    }
                    self.seq += 1;
                    self.queue.push(Reverse((*arrival, self.seq)));
                    self.pending.insert(self.seq, Delivery { to, bytes: copy });
                    let fate = Fate::Delivered {
                        at: *arrival,
                        corrupted,
                        duplicate_of: (i > 0).then_some(id),
                    };
                    self.record(rec_id, from, Some(to), bytes.clone(), fate);
                }
            }
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    fn record(&mut self, id: u64, from: HostId, to: Option<HostId>, bytes: Vec<u8>, fate: Fate) {
        if let Fate::Lost { cause } = &fate {
            *self.stats.lost.entry(*cause).or_default() += 1;
        }
        if self.logging {
            self.log.push(PacketRecord {
                id,
                from,
                to,
                sent_at: self.now,
                bytes,
                fate,
            });
        }
    }

    /// Drain every host's pending transmissions onto the links, at the current time.
    pub fn flush(&mut self) {
        for i in 0..self.hosts.len() {
            self.flush_host(HostId(i));
        }
    }

    fn flush_host(&mut self, id: HostId) {
        while let Some(p) = self.hosts[id.0].node.poll_transmit(self.now) {
            self.send(id, p);
        }
    }

    /// The earliest host deadline, as (time, host).
    fn next_timer(&mut self) -> Option<(Instant, HostId)> {
        let mut best: Option<(Instant, HostId)> = None;
        for (i, h) in self.hosts.iter_mut().enumerate() {
            if let Some(t) = h.node.poll_timeout() {
                if best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, HostId(i)));
                }
            }
        }
        best
    }

    /// When the next event (delivery or timer) happens.
    pub fn next_event_time(&mut self) -> Option<Instant> {
        let delivery = self.queue.peek().map(|Reverse((t, _))| *t);
        let timer = self.next_timer().map(|(t, _)| t.max(self.now));
        match (delivery, timer) {
            (Some(d), Some(t)) => Some(d.min(t)),
            (d, t) => d.or(t),
        }
    }

    /// Process the single next event; false when nothing is pending.
    pub fn step(&mut self) -> bool {
        self.flush();
        let delivery = self.queue.peek().map(|Reverse((t, _))| *t);
        let timer = self.next_timer();
        let deliver_first = match (delivery, timer) {
            (None, None) => return false,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(d), Some((t, _))) => d <= t.max(self.now),
        };
        if deliver_first {
            let Some(Reverse((at, seq))) = self.queue.pop() else {
                return false;
            };
            self.now = self.now.max(at);
            if let Some(d) = self.pending.remove(&seq) {
                self.stats.delivered += 1;
                self.hosts[d.to.0].node.receive(self.now, &d.bytes);
                self.flush_host(d.to);
            }
        } else if let Some((t, host)) = timer {
            self.now = self.now.max(t);
            self.hosts[host.0].node.on_timeout(self.now);
            self.flush_host(host);
        }
        true
    }

    /// Process every event at or before `deadline`; the clock then reads `deadline`.
    pub fn run_until(&mut self, deadline: Instant) {
        while self.next_event_time().is_some_and(|t| t <= deadline) {
            self.step();
        }
        self.now = self.now.max(deadline);
        self.flush();
    }

    /// Run for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Run until nothing is pending (true) or `limit` is reached (false).
    pub fn run_until_idle(&mut self, limit: Instant) -> bool {
        loop {
            self.flush();
            match self.next_event_time() {
                None => return true,
                Some(t) if t > limit => {
                    self.now = self.now.max(limit);
                    return false;
                }
                Some(_) => {
                    self.step();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
