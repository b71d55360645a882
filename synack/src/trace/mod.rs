//! What happened in a run, as a time-ordered list of records: segments sent (with their
//! fate), segments received, and state changes. Built from the simulator's packet log and
//! the stacks' [`crate::Event::StateChanged`] events; rendered as a ladder diagram
//! ([`ladder`]) or serialised by the CLI as JSON lines.

pub mod ladder;
pub mod ladder_svg;
pub mod pcap;

use std::net::SocketAddr;

#[cfg(feature = "sim")]
use crate::sim::{Fate, PacketRecord};
use crate::wire::{self, TcpFlags};
use crate::{Event, Instant, TcpState};

/// The header fields of one TCP segment, as the ladder and JSON show them.
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
/// # net.host_mut(server).listen("198.18.0.2:80".parse().unwrap(), 128).unwrap();
/// # let conn = net.host_mut(client).connect(Instant::ZERO, "198.18.0.2:80".parse().unwrap()).unwrap();
/// # net.flush();
/// # net.run_for(Duration::from_millis(100));
/// # use synack::trace::Trace;
/// # let mut trace = Trace::new(&["client", "server"]);
/// # trace.add_packets(net.log());
/// # for (i, id) in [client, server].into_iter().enumerate() {
/// #     while let Some(event) = net.host_mut(id).poll_event() { trace.add_event(i, &event); }
/// # }
/// # trace.sort();
/// use synack::trace::{SegmentKind, SegmentSummary};
/// let syn = SegmentSummary::from_packet(&net.log()[0].bytes).unwrap();
/// assert_eq!(syn.kind(), SegmentKind::Syn);
/// assert_eq!(syn.dst.port(), 80);
/// assert!(syn.options.contains("mss 1460"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentSummary {
    /// Sender address and port.
    pub src: SocketAddr,
    /// Receiver address and port.
    pub dst: SocketAddr,
    /// Control bits.
    pub flags: TcpFlags,
    /// Sequence number (absolute).
    pub seq: u32,
    /// Acknowledgment number (absolute; 0 without ACK).
    pub ack: u32,
    /// Payload bytes.
    pub len: u32,
    /// Window field as sent.
    pub win: u16,
    /// Options in short form, e.g. `mss 1460,TS,ws 3`.
    pub options: String,
}

/// What a segment is, for colouring it in a ladder.
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
/// # net.host_mut(server).listen("198.18.0.2:80".parse().unwrap(), 128).unwrap();
/// # let conn = net.host_mut(client).connect(Instant::ZERO, "198.18.0.2:80".parse().unwrap()).unwrap();
/// # net.flush();
/// # net.run_for(Duration::from_millis(100));
/// # use synack::trace::Trace;
/// # let mut trace = Trace::new(&["client", "server"]);
/// # trace.add_packets(net.log());
/// # for (i, id) in [client, server].into_iter().enumerate() {
/// #     while let Some(event) = net.host_mut(id).poll_event() { trace.add_event(i, &event); }
/// # }
/// # trace.sort();
/// use synack::trace::SegmentKind;
/// let kinds: Vec<SegmentKind> = trace.sent(0).iter().map(|(_, seg, _)| seg.kind()).collect();
/// assert_eq!(kinds, [SegmentKind::Syn, SegmentKind::Ack]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentKind {
    /// RST set.
    Rst,
    /// SYN set (and not RST).
    Syn,
    /// FIN set (neither RST nor SYN).
    Fin,
    /// Carries data.
    Data,
    /// A bare ACK (or window update).
    Ack,
}

impl SegmentSummary {
    /// What the segment is, by its most telling trait (RST, SYN, FIN, data, bare ACK).
    pub fn kind(&self) -> SegmentKind {
        if self.flags.rst() {
            SegmentKind::Rst
        } else if self.flags.syn() {
            SegmentKind::Syn
        } else if self.flags.fin() {
            SegmentKind::Fin
        } else if self.len > 0 {
            SegmentKind::Data
        } else {
            SegmentKind::Ack
        }
    }

    /// Summarise an IP packet carrying TCP; None if it does not parse.
    pub fn from_packet(bytes: &[u8]) -> Option<SegmentSummary> {
        let (ip, tcp) = wire::parse_tcp_packet(bytes).ok()?;
        let o = &tcp.options;
        let mut opts = Vec::new();
        if let Some(m) = o.mss {
            opts.push(format!("mss {m}"));
        }
        if o.sack_permitted {
            opts.push("sackOK".to_string());
        }
        if o.timestamps.is_some() {
            opts.push("TS".to_string());
        }
        if let Some(w) = o.window_scale {
            opts.push(format!("ws {w}"));
        }
        if let Some(fo) = o.fast_open {
            // A cookie request, or the cookie (RFC 7413 4.1.1).
            let hex: String = fo.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            opts.push(if hex.is_empty() {
                "FO".to_string()
            } else {
                format!("FO {hex}")
            });
        }
        Some(SegmentSummary {
            src: SocketAddr::new(ip.src, tcp.src_port),
            dst: SocketAddr::new(ip.dst, tcp.dst_port),
            flags: tcp.flags,
            seq: tcp.seq.get(),
            ack: tcp.ack.get(),
            len: tcp.payload.len() as u32,
            win: tcp.window,
            options: opts.join(","),
        })
    }
}

/// One thing that happened on one host.
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
/// # net.host_mut(server).listen("198.18.0.2:80".parse().unwrap(), 128).unwrap();
/// # let conn = net.host_mut(client).connect(Instant::ZERO, "198.18.0.2:80".parse().unwrap()).unwrap();
/// # net.flush();
/// # net.run_for(Duration::from_millis(100));
/// # use synack::trace::Trace;
/// # let mut trace = Trace::new(&["client", "server"]);
/// # trace.add_packets(net.log());
/// # for (i, id) in [client, server].into_iter().enumerate() {
/// #     while let Some(event) = net.host_mut(id).poll_event() { trace.add_event(i, &event); }
/// # }
/// # trace.sort();
/// use synack::trace::RecordKind;
/// let first = &trace.records[0];
/// assert!(matches!(first.kind, RecordKind::State { to: TcpState::SynSent, .. }));
/// trace.add_note(Instant::ZERO, 0, "the client connects");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordKind {
    /// A segment left this host.
    Tx {
        /// The segment.
        seg: SegmentSummary,
        /// Destination host.
        to: usize,
        /// When it arrived, or None if it was lost.
        arrived: Option<Instant>,
        /// Why it was lost.
        lost: Option<&'static str>,
    },
    /// A segment arrived at this host.
    Rx {
        /// The segment.
        seg: SegmentSummary,
        /// Sending host.
        from: usize,
    },
    /// This host's connection changed state.
    State {
        /// Before.
        from: TcpState,
        /// After.
        to: TcpState,
        /// Why.
        cause: &'static str,
    },
    /// A remark from the scenario.
    Note(String),
}

/// A record: when, where, what.
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
/// # net.host_mut(server).listen("198.18.0.2:80".parse().unwrap(), 128).unwrap();
/// # let conn = net.host_mut(client).connect(Instant::ZERO, "198.18.0.2:80".parse().unwrap()).unwrap();
/// # net.flush();
/// # net.run_for(Duration::from_millis(100));
/// # use synack::trace::Trace;
/// # let mut trace = Trace::new(&["client", "server"]);
/// # trace.add_packets(net.log());
/// # for (i, id) in [client, server].into_iter().enumerate() {
/// #     while let Some(event) = net.host_mut(id).poll_event() { trace.add_event(i, &event); }
/// # }
/// # trace.sort();
/// // In time order; at one instant on one host: arrivals, state changes, notes, sends.
/// assert!(trace.records.windows(2).all(|w| w[0].at <= w[1].at));
/// assert_eq!(trace.records[0].host, 0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// When.
    pub at: Instant,
    /// Index into [`Trace::hosts`].
    pub host: usize,
    /// What.
    pub kind: RecordKind,
}

impl Record {
    // Order within one instant on one host: arrivals, then the state changes they cause,
    // then notes, then what is sent in response.
    fn rank(&self) -> u8 {
        match self.kind {
            RecordKind::Rx { .. } => 0,
            RecordKind::State { .. } => 1,
            RecordKind::Note(_) => 2,
            RecordKind::Tx { .. } => 3,
        }
    }
}

/// A whole run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use synack::sim::Network;
/// use synack::trace::{ladder, Trace};
/// use synack::{Config, Instant, Stack, TcpState};
/// # fn host(addr: &str) -> Stack {
/// #     let mut stack = Stack::new(Config::deterministic(1));
/// #     stack.add_address(addr.parse().unwrap());
/// #     stack
/// # }
/// let mut net: Network<Stack> = Network::new(7);
/// let client = net.add_host("client", &["198.18.0.1".parse().unwrap()], host("198.18.0.1"));
/// let server = net.add_host("server", &["198.18.0.2".parse().unwrap()], host("198.18.0.2"));
/// net.host_mut(server).listen("198.18.0.2:80".parse().unwrap(), 128).unwrap();
/// net.host_mut(client).connect(Instant::ZERO, "198.18.0.2:80".parse().unwrap()).unwrap();
/// net.flush();
/// net.run_for(Duration::from_millis(100));
///
/// // The packets from the network's log, the state changes from each stack's events.
/// let mut trace = Trace::new(&["client", "server"]);
/// trace.add_packets(net.log());
/// for (i, id) in [client, server].into_iter().enumerate() {
///     while let Some(event) = net.host_mut(id).poll_event() {
///         trace.add_event(i, &event);
///     }
/// }
/// trace.sort();
/// assert_eq!(trace.states(0), [TcpState::SynSent, TcpState::Established]);
/// println!("{}", ladder::render(&trace, ladder::LadderOptions::default()));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trace {
    /// Host names, left to right in the ladder.
    pub hosts: Vec<String>,
    /// Records in time order.
    pub records: Vec<Record>,
}

impl Trace {
    /// A trace of the named hosts with no records yet.
    pub fn new(hosts: &[&str]) -> Trace {
        Trace {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            records: Vec::new(),
        }
    }

    /// Add the simulator's packet records (each a Tx and, if delivered, an Rx).
    #[cfg(feature = "sim")]
    pub fn add_packets(&mut self, packets: &[PacketRecord]) {
        for p in packets {
            let Some(seg) = SegmentSummary::from_packet(&p.bytes) else {
                continue;
            };
            let to = p.to.map_or(usize::MAX, |h| h.0);
            match &p.fate {
                Fate::Delivered {
                    at, duplicate_of, ..
                } => {
                    if duplicate_of.is_none() {
                        self.push(
                            p.sent_at,
                            p.from.0,
                            RecordKind::Tx {
                                seg: seg.clone(),
                                to,
                                arrived: Some(*at),
                                lost: None,
                            },
                        );
                    }
                    self.push(
                        *at,
                        to,
                        RecordKind::Rx {
                            seg,
                            from: p.from.0,
                        },
                    );
                }
                Fate::Lost { cause } => {
                    self.push(
                        p.sent_at,
                        p.from.0,
                        RecordKind::Tx {
                            seg,
                            to,
                            arrived: None,
                            lost: Some(cause.as_str()),
                        },
                    );
                }
            }
        }
    }

    /// Add a stack event of `host`; only state changes are recorded.
    pub fn add_event(&mut self, host: usize, event: &Event) {
        if let Event::StateChanged {
            from,
            to,
            at,
            cause,
            ..
        } = event
        {
            self.push(
                *at,
                host,
                RecordKind::State {
                    from: *from,
                    to: *to,
                    cause,
                },
            );
        }
    }

    /// Add a scenario note.
    pub fn add_note(&mut self, at: Instant, host: usize, text: impl Into<String>) {
        self.push(at, host, RecordKind::Note(text.into()));
    }

    fn push(&mut self, at: Instant, host: usize, kind: RecordKind) {
        self.records.push(Record { at, host, kind });
    }

    /// Sort records by time (stable: insertion order breaks ties after the rank rule).
    pub fn sort(&mut self) {
        self.records.sort_by_key(|r| (r.at, r.rank()));
    }

    /// The state changes of one host, in order.
    pub fn states(&self, host: usize) -> Vec<TcpState> {
        self.records
            .iter()
            .filter(|r| r.host == host)
            .filter_map(|r| match r.kind {
                RecordKind::State { to, .. } => Some(to),
                _ => None,
            })
            .collect()
    }

    /// Segments sent by `host`, with send time and fate.
    pub fn sent(&self, host: usize) -> Vec<(Instant, &SegmentSummary, Option<Instant>)> {
        self.records
            .iter()
            .filter(|r| r.host == host)
            .filter_map(|r| match &r.kind {
                RecordKind::Tx { seg, arrived, .. } => Some((r.at, seg, *arrived)),
                _ => None,
            })
            .collect()
    }

    /// When `host` entered `state` (the first time after `after`).
    pub fn entered(&self, host: usize, state: TcpState, after: Instant) -> Option<Instant> {
        self.records.iter().find_map(|r| match r.kind {
            RecordKind::State { to, .. } if r.host == host && to == state && r.at >= after => {
                Some(r.at)
            }
            _ => None,
        })
    }
}
