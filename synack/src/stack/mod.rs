//! The [`Stack`]: owns addresses, listeners and connections, demultiplexes arriving
//! packets to them, and hands out what they want to send. Sans-IO: every call takes
//! `now` from the caller, nothing here reads a clock or touches a device.
//!
//! The data path: [`Stack::receive`] parses (`wire`); a fragment goes to the reassembler
//! (`fragments.rs`) and, once its datagram is whole, on as that one packet. A TCP segment
//! finds its connection by 4-tuple (else the TIME_WAIT table, else a listener, else
//! answers with RST) and goes to [`crate::tcp`], then `after_activity` turns what the
//! connection did into events, queued transmissions and timer entries. Application
//! calls end the same way.
//!
//! Here: the `Stack` itself, its bookkeeping after activity, and the sans-IO loop
//! (`poll_transmit`, `poll_timeout`, `on_timeout`, `poll_event`). `input.rs` has the
//! packets in, `listen.rs` the listen path with SYN cookies, `api.rs` the
//! application's calls.

mod api;
mod capture;
mod event;
mod fragments;
mod icmp;
mod index;
mod input;
mod listen;
mod ports;
mod requests;
mod stats;
mod tables;
mod time_wait_table;
mod udp;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

pub use crate::config::Config;
pub use crate::error::Error;
pub use crate::secrets::Secrets;
pub use crate::tcp::CongestionControl;
pub use capture::{Capture, IpNet};
pub use event::Event;
pub use requests::{ConnectionRequest, Decide, Refusal, RequestHandle, Unreachable};
pub use stats::StackStats;
pub use udp::{Datagram, UdpHandle, UdpSnapshot};

/// One socket of [`Stack::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketSnapshot {
    /// Its state.
    pub state: TcpState,
    /// Local address.
    pub local: SocketAddr,
    /// Peer address (None for a listener).
    pub remote: Option<SocketAddr>,
    /// Bytes received and not read (a listener: connections waiting to be accepted).
    pub recv_q: usize,
    /// Bytes not yet acknowledged (a listener: its backlog).
    pub send_q: usize,
    /// Time to the next timer (retransmission, probe, keepalive, delayed ACK,
    /// FIN_WAIT_2 timeout, TIME_WAIT expiry).
    pub timer: Option<std::time::Duration>,
    /// How long it has been in this state (None for listeners).
    pub age: Option<std::time::Duration>,
    /// TCP_INFO-like statistics of a connection.
    pub info: Option<crate::tcp::ConnectionInfo>,
    /// A lifecycle diagnostic, when the socket is stuck (CLOSE_WAIT, FIN_WAIT_1,
    /// FIN_WAIT_2 past their thresholds), in the words of [`Event::Warning`].
    pub warning: Option<String>,
}

/// One line of [`Stack::state_summary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateSummary {
    /// The state.
    pub state: TcpState,
    /// Sockets in it.
    pub count: usize,
    /// How long the oldest has been in it.
    pub oldest: Option<std::time::Duration>,
}

impl StateSummary {
    /// Per state, from a list of sockets (of one stack or several).
    pub fn of(sockets: &[SocketSnapshot]) -> Vec<StateSummary> {
        let mut out: Vec<StateSummary> = Vec::new();
        for s in sockets {
            match out.iter_mut().find(|x| x.state == s.state) {
                Some(x) => {
                    x.count += 1;
                    x.oldest = x.oldest.max(s.age);
                }
                None => out.push(StateSummary {
                    state: s.state,
                    count: 1,
                    oldest: s.age,
                }),
            }
        }
        out
    }
}

/// Socket options of a listener that its accepted connections inherit
/// ([`Stack::set_listener_options`]); None keeps the stack's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// TCP_MAXSEG: the MSS announced in the SYN-ACK and the largest segment sent.
    pub mss: Option<u16>,
    /// SO_RCVBUF (bytes kept, as Linux reports it): the window and the window scale offered.
    pub recv_buffer: Option<usize>,
    /// SO_SNDBUF.
    pub send_buffer: Option<usize>,
    /// TCP_NODELAY.
    pub nodelay: Option<bool>,
    /// TCP_USER_TIMEOUT (RFC 5482).
    pub user_timeout: Option<std::time::Duration>,
    /// Decide first: SYNs are held and reported as connection requests
    /// ([`Event::Request`], [`Stack::take_request`]) instead of being answered; the
    /// application accepts or refuses each ([`Stack::accept_request`],
    /// [`Stack::refuse_request`]). None: answered at once, as usual.
    pub decide: Option<Decide>,
}

use crate::tcp::{ConnEvent, Connection, IsnGenerator, MemoryLevel, Outgoing, SynCookies};
use crate::wire::icmp::{PROTO_ICMP, PROTO_ICMPV6};
use crate::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr};
use crate::{Instant, TcpState};
use fragments::Reassembler;
use ports::PortAllocator;
use tables::{FourTuple, Listener, Slot, TimerQueue};
use time_wait_table::TimeWaitTable;

/// Names one connection of a [`Stack`]. Cheap to copy; stale handles are detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Names one listening socket of a [`Stack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerHandle(pub(crate) u32);

/// How long after a listener last sent a SYN cookie its cookies are still checked
/// (Linux's TCP_SYNCOOKIE_VALID: two minutes, the life of a cookie).
const COOKIE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(120);

/// Most control packets (RSTs, TIME_WAIT ACKs) waiting for `poll_transmit`; more are dropped.
const CTL_QUEUE_LIMIT: usize = 4096;

/// A user-space TCP/IP stack: one host's TCP.
pub struct Stack {
    config: Config,
    addresses: Vec<IpAddr>,
    isn: IsnGenerator,
    cookies: SynCookies,
    ports: PortAllocator,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    /// Slots holding a connection (what `Config::max_connections` bounds).
    live_connections: usize,
    /// Orphans (closed by the application, still closing), and the order they became
    /// orphans in (stale entries are skipped): the oldest is reset first.
    orphans: usize,
    orphan_queue: VecDeque<(u32, u32)>,
    /// Bytes in all connections' buffers, and the level that makes against `tcp_mem`.
    memory: usize,
    memory_level: MemoryLevel,
    by_tuple: index::ConnectionIndex,
    listeners: Vec<Option<Listener>>,
    /// Catch-all listeners, in the order they were opened.
    capturing: Vec<u32>,
    /// SYNs decide-first listeners hold for the application.
    requests: requests::Requests,
    /// UDP sockets and their output.
    udp: udp::UdpTable,
    time_wait: TimeWaitTable,
    fragments: Reassembler,
    timers: TimerQueue,
    tx_ready: VecDeque<u32>,
    /// Connections whose emptied buffers hold storage to give back, and when (in order:
    /// every entry is `IDLE_RELEASE` after the activity that queued it).
    idle_release: VecDeque<(Instant, u32, u32)>,
    ctl_out: VecDeque<Vec<u8>>,
    /// Where `poll_transmit` builds a packet before copying it out (empty until used).
    tx_scratch: Vec<u8>,
    /// Lists a connection fills while the stack calls it, lent to each in turn.
    scratch: tables::Scratch,
    events: VecDeque<Event>,
    stats: StackStats,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("addresses", &self.addresses)
            .field("connections", &self.by_tuple.len())
            .field("time_wait", &self.time_wait.len())
            .field("fragment_queues", &self.fragments.len())
            .finish()
    }
}

impl Stack {
    /// A stack with no addresses yet; see [`Stack::add_address`].
    ///
    /// Its secret keys are drawn now, as [`Config::secrets`] says: by default from the
    /// operating system's random source, so every stack has its own.
    ///
    /// # Panics
    /// If the operating system's random source fails (see [`Secrets::Random`]).
    pub fn new(config: Config) -> Stack {
        let keys = crate::secrets::Keys::new(config.secrets);
        Stack {
            isn: IsnGenerator::new(keys.isn, keys.ts_offset),
            cookies: SynCookies::new(keys.syncookie),
            live_connections: 0,
            orphans: 0,
            orphan_queue: VecDeque::new(),
            memory: 0,
            memory_level: MemoryLevel::Normal,
            ports: PortAllocator::new(keys.ports),
            time_wait: TimeWaitTable::new(keys.time_wait),
            fragments: Reassembler::default(),
            config,
            addresses: Vec::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_tuple: index::ConnectionIndex::new(keys.connections),
            listeners: Vec::new(),
            capturing: Vec::new(),
            requests: requests::Requests::default(),
            udp: udp::UdpTable::default(),
            timers: TimerQueue::default(),
            tx_ready: VecDeque::new(),
            idle_release: VecDeque::new(),
            ctl_out: VecDeque::new(),
            tx_scratch: Vec::new(),
            scratch: tables::Scratch::default(),
            events: VecDeque::new(),
            stats: StackStats::default(),
        }
    }

    /// The configuration this stack runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Change the configuration; it applies to connections opened from now on (as a
    /// sysctl does on Linux).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Give the stack an IP address: it accepts packets sent to it and uses it as a source.
    pub fn add_address(&mut self, addr: IpAddr) {
        if !self.addresses.contains(&addr) {
            self.addresses.push(addr);
        }
    }

    /// This stack's addresses.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// A snapshot of the stack's counters (including those of live connections).
    pub fn stats(&self) -> StackStats {
        let mut s = self.stats.clone();
        for slot in &self.slots {
            if let Some(c) = &slot.conn {
                s.retransmits += u64::from(c.stats.retransmits);
                s.challenge_acks += u64::from(c.stats.challenge_acks);
            }
        }
        s
    }

    /// Connections in the connection table (not counting TIME_WAIT table entries).
    pub fn connection_count(&self) -> usize {
        self.live_connections
    }

    /// Entries in the TIME_WAIT table.
    pub fn time_wait_count(&self) -> usize {
        self.time_wait.len()
    }

    /// Bytes held by datagrams waiting for fragments (fragment data, headers and a fixed
    /// overhead per datagram); never more than [`Config::ipfrag_high_thresh`].
    pub fn fragment_memory(&self) -> usize {
        self.fragments.memory()
    }

    /// Datagrams waiting for fragments (and discarded ones whose later fragments are
    /// still being dropped until their time runs out).
    pub fn fragment_queues(&self) -> usize {
        self.fragments.len()
    }

    /// The TIME_WAIT entry for a 4-tuple, if any.
    pub fn time_wait_entry(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<crate::tcp::TimeWait> {
        self.time_wait
            .get(&FourTuple { local, remote })
            .map(|e| e.tw)
    }

    /// Every socket as `ss` shows it: listeners, connections, and TIME_WAIT entries, with
    /// queues, the time to the next timer, the time in the current state and, for
    /// connections, their TCP_INFO-like statistics.
    pub fn snapshot(&self, now: Instant) -> Vec<SocketSnapshot> {
        let mut v = Vec::new();
        for l in self.listeners.iter().flatten() {
            v.push(SocketSnapshot {
                state: TcpState::Listen,
                local: l.local,
                remote: None,
                recv_q: l.accept_queue.len(),
                send_q: l.backlog,
                timer: None,
                age: None,
                info: None,
                warning: None,
            });
        }
        for c in self.slots.iter().filter_map(|s| s.conn.as_ref()) {
            let info = c.info(now);
            let warning = crate::tcp::diagnose(
                info.state,
                info.time_in_state,
                info.backoff,
                info.local,
                info.remote,
                &self.config,
            );
            v.push(SocketSnapshot {
                warning,
                state: info.state,
                local: info.local,
                remote: Some(info.remote),
                recv_q: info.recv_queue,
                send_q: info.send_queue,
                timer: info.next_timer,
                age: Some(info.time_in_state),
                info: Some(info),
            });
        }
        for (tuple, e) in self.time_wait.iter() {
            let left = e.tw.expiry.saturating_duration_since(now);
            v.push(SocketSnapshot {
                state: TcpState::TimeWait,
                local: tuple.local,
                remote: Some(tuple.remote),
                recv_q: 0,
                send_q: 0,
                timer: Some(left),
                age: self.config.time_wait.checked_sub(left),
                info: None,
                warning: None,
            });
        }
        v
    }

    /// Per state: how many sockets, and how long the oldest has been in it (`ss -s`).
    pub fn state_summary(&self, now: Instant) -> Vec<StateSummary> {
        StateSummary::of(&self.snapshot(now))
    }

    /// For a TCP segment, or an ICMP error quoting one of ours: whether this stack has
    /// its connection or TIME_WAIT entry (`Some(true)`) or not (`Some(false)`); None for
    /// any other packet. How an interface whose flows are spread over several stacks
    /// finds the one a packet belongs to. Reads only addresses and ports (a TCP checksum
    /// is not checked).
    pub fn has_flow(&self, packet: &[u8]) -> Option<bool> {
        let (ip, payload) = wire::parse_ip(packet).ok()?;
        let tuple = match ip.protocol {
            wire::PROTO_TCP => {
                let ports = payload.get(..4)?;
                FourTuple {
                    local: SocketAddr::new(ip.dst, u16::from_be_bytes([ports[2], ports[3]])),
                    remote: SocketAddr::new(ip.src, u16::from_be_bytes([ports[0], ports[1]])),
                }
            }
            PROTO_ICMP | PROTO_ICMPV6 => self.icmp_quoted_tuple(&ip, payload)?,
            _ => return None,
        };
        Some(self.by_tuple.contains(&self.slots, &tuple) || self.time_wait.contains(&tuple))
    }

    /// The state of every connection, including TIME_WAIT entries: (local, remote, state).
    pub fn connections(&self) -> Vec<(SocketAddr, SocketAddr, TcpState)> {
        let mut v: Vec<_> = self
            .slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .map(|c| (c.local, c.remote, c.tcp_state()))
            .collect();
        v.extend(
            self.time_wait
                .iter()
                .map(|(t, _)| (t.local, t.remote, TcpState::TimeWait)),
        );
        v
    }

    /// RFC 9293 3.10.7.1: the reset that answers a segment for no connection.
    fn reply_rst(&mut self, tuple: FourTuple, seg: &TcpRepr<'_>) {
        if seg.flags.rst() {
            return; // never answer a RST
        }
        let out = if seg.flags.ack() {
            // <SEQ=SEG.ACK><CTL=RST>
            Outgoing {
                seq: seg.ack,
                ack: SeqNum::new(0),
                flags: TcpFlags::RST,
                window: 0,
                options: TcpOptions::default(),
                payload: 0..0,
                segment_size: 0,
            }
        } else {
            // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
            Outgoing {
                seq: SeqNum::new(0),
                ack: seg.seq + seg.seg_len(),
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                options: TcpOptions::default(),
                payload: 0..0,
                segment_size: 0,
            }
        };
        self.stats.resets_sent += 1;
        self.queue_ctl(tuple, &out);
    }

    /// Queue a control packet (RST, TIME_WAIT ACK) built outside any connection.
    fn queue_ctl(&mut self, tuple: FourTuple, out: &Outgoing) {
        if self.ctl_out.len() >= CTL_QUEUE_LIMIT {
            return self.stats.drop("control_queue_full");
        }
        if let Some(p) = self.build(tuple, out) {
            self.ctl_out.push_back(p);
        }
    }

    fn build(&mut self, tuple: FourTuple, out: &Outgoing) -> Option<Vec<u8>> {
        // Headers only.
        let mut buf = vec![0u8; wire::MAX_TCP_HEADERS];
        match build_into(&mut buf, &self.config, tuple, out, (&[], &[])) {
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(e) => {
                self.stats.drop(e.reason());
                None
            }
        }
    }

    // ---- bookkeeping after anything happened to a connection ---------------------------

    fn insert(&mut self, conn: Connection, listener: Option<u32>, app_owned: bool) -> u32 {
        let tuple = FourTuple {
            local: conn.local,
            remote: conn.remote,
        };
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        self.live_connections += 1;
        slot.conn = Some(Box::new(conn));
        slot.listener = listener;
        slot.app_owned = app_owned;
        slot.in_table = true;
        self.by_tuple.insert(&tuple, index);
        index
    }

    fn handle(&self, index: u32) -> ConnectionHandle {
        ConnectionHandle {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// Turn what a connection did into events, transmissions and timers; retire it when done.
    fn after_activity(&mut self, now: Instant, index: u32) {
        let handle = self.handle(index);
        let slot = &mut self.slots[index as usize];
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        conn.settle(now);
        if self.memory_level != MemoryLevel::Normal {
            // Under pressure memory follows the data at once (tcp_mem).
            conn.moderate_buffers();
        }
        let (charged, held) = tables::recount(&mut slot.memory, conn.memory_held());
        if !slot.release_queued && conn.idle_storage() {
            slot.release_queued = true;
            let at = now + crate::tcp::IDLE_RELEASE;
            self.idle_release.push_back((at, index, slot.generation));
        }
        if !conn.is_orphan() && slot.orphan {
            slot.orphan = false;
            self.orphans -= 1;
        }
        let tuple = FourTuple {
            local: conn.local,
            remote: conn.remote,
        };
        // Taken out and kept by the stack below, so its capacity is reused packet after
        // packet and an idle connection holds none.
        let mut events = std::mem::take(&mut conn.events);
        self.charge_memory(charged, held);
        // Resets first, in the order the connection asked for them.
        for ev in &events {
            let ConnEvent::Reset(rst) = ev else {
                continue;
            };
            let out = Outgoing {
                seq: rst.seq,
                ack: rst.ack.unwrap_or(SeqNum::new(0)),
                flags: if rst.ack.is_some() {
                    TcpFlags::RST | TcpFlags::ACK
                } else {
                    TcpFlags::RST
                },
                window: 0,
                options: TcpOptions {
                    timestamps: rst.timestamps,
                    ..TcpOptions::default()
                },
                payload: 0..0,
                segment_size: 0,
            };
            self.stats.resets_sent += 1;
            self.queue_ctl(tuple, &out);
        }
        for ev in events.drain(..) {
            self.conn_event(index, handle, tuple, ev);
        }
        self.scratch.keep(events);
        let slot = &mut self.slots[index as usize];
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        // A closed connection leaves the demultiplexing table at once.
        if matches!(conn.tcp_state(), TcpState::Closed) && slot.in_table {
            slot.in_table = false;
            self.by_tuple.remove(&tuple, index);
        }
        // An orphan in TIME_WAIT moves to the compact TIME_WAIT table.
        if !slot.app_owned && conn.tcp_state() == TcpState::TimeWait {
            // The ACK of the peer's FIN is still to be sent: send it before the move.
            let pending = conn.poll_segment(now);
            if let Some(out) = pending {
                self.queue_ctl(tuple, &out);
            }
            let slot = &mut self.slots[index as usize];
            let Some(conn) = slot.conn.as_mut() else {
                return;
            };
            if let Some(tw) = conn.take_time_wait() {
                slot.in_table = false;
                self.by_tuple.remove(&tuple, index);
                if self.time_wait.len() < self.config.tcp_max_tw_buckets {
                    self.time_wait.insert(tuple, tw, handle);
                    // Warn once as the table passes 90 % of its limit.
                    let n = self.time_wait.len();
                    let crossed = crate::tcp::time_wait_pressure(n - 1, &self.config).is_none();
                    if let Some(message) =
                        crate::tcp::time_wait_pressure(n, &self.config).filter(|_| crossed)
                    {
                        tracing::warn!("{message}");
                        self.events.push_back(Event::Warning {
                            conn: None,
                            message,
                        });
                    }
                } else {
                    self.stats.time_wait_overflow += 1;
                    self.time_wait_closed(
                        handle,
                        tuple,
                        now,
                        "TIME_WAIT table full (tcp_max_tw_buckets)",
                    );
                }
            }
        }
        let slot = &mut self.slots[index as usize];
        let Some(conn) = slot.conn.as_ref() else {
            return;
        };
        if conn.is_closed() && !slot.app_owned {
            return self.retire(index);
        }
        if conn.wants_transmit() && !slot.in_tx {
            slot.in_tx = true;
            self.tx_ready.push_back(index);
        }
        // The queue's live entry for this slot is the one at `timer_at`: when the deadline
        // moves (later, earlier, or away) the old entry goes stale, so `poll_timeout`
        // never reports a deadline nobody has any more.
        let deadline = conn.next_deadline();
        if deadline != slot.timer_at {
            slot.timer_at = deadline;
            if let Some(deadline) = deadline {
                self.timers.push(deadline, index, slot.generation);
                if self.timers.len() > 2 * self.live_connections + 1024 {
                    let slots = &self.slots;
                    self.timers.compact(|index, generation, at| {
                        let s = &slots[index as usize];
                        s.generation == generation && s.timer_at == Some(at)
                    });
                }
            }
        }
    }

    /// Map one connection event to stack events and listener bookkeeping.
    fn conn_event(
        &mut self,
        index: u32,
        handle: ConnectionHandle,
        tuple: FourTuple,
        ev: ConnEvent,
    ) {
        let app_owned = self.slots[index as usize].app_owned;
        match ev {
            ConnEvent::State {
                from,
                to,
                at,
                cause,
            } => {
                if to == TcpState::Established {
                    self.stats.established += 1;
                }
                self.events.push_back(Event::StateChanged {
                    conn: handle,
                    local: tuple.local,
                    remote: tuple.remote,
                    from,
                    to,
                    at,
                    cause,
                });
            }
            ConnEvent::Reset(_) => {}
            ConnEvent::Dropped(reason) => self.stats.drop(reason),
            ConnEvent::Connected => {
                if app_owned {
                    self.events.push_back(Event::Connected(handle));
                }
            }
            ConnEvent::Established => {
                let slot = &mut self.slots[index as usize];
                if app_owned {
                    // A connection request the application accepted.
                    self.events.push_back(Event::Connected(handle));
                } else if let Some(lid) = slot.listener {
                    if slot.embryonic {
                        slot.embryonic = false;
                        if let Some(l) = self.listeners[lid as usize].as_mut() {
                            l.embryonic = l.embryonic.saturating_sub(1);
                            l.accept_queue.push_back(index);
                            self.events.push_back(Event::Incoming(ListenerHandle(lid)));
                        }
                    }
                }
            }
            ConnEvent::Readable => {
                if app_owned {
                    self.events.push_back(Event::Readable(handle));
                }
            }
            ConnEvent::Writable => {
                if app_owned {
                    self.events.push_back(Event::Writable(handle));
                }
            }
            ConnEvent::SoftError(error) => {
                if app_owned {
                    self.events.push_back(Event::SoftError {
                        conn: handle,
                        error,
                    });
                }
            }
            ConnEvent::Warning(message) => {
                self.events.push_back(Event::Warning {
                    conn: Some(handle),
                    message,
                });
            }
            ConnEvent::Error(error) => {
                self.stats.failed += 1;
                if app_owned {
                    self.events.push_back(Event::Error {
                        conn: handle,
                        error,
                    });
                }
            }
        }
    }

    /// Move the buffer memory count from `old` to `new` bytes for one connection and
    /// settle the level against `tcp_mem` (with Linux's hysteresis: pressure ends only
    /// below the low mark).
    fn charge_memory(&mut self, old: usize, new: usize) {
        self.memory = self.memory - old + new;
        let [low, pressure, high] = self.config.tcp_mem;
        let level = if self.memory > high {
            MemoryLevel::Exhausted
        } else if self.memory > pressure {
            MemoryLevel::Pressure
        } else if self.memory < low {
            MemoryLevel::Normal
        } else if self.memory_level == MemoryLevel::Exhausted {
            MemoryLevel::Pressure
        } else {
            self.memory_level
        };
        if level != self.memory_level {
            if level != MemoryLevel::Normal && self.memory_level == MemoryLevel::Normal {
                self.stats.memory_pressure += 1;
                tracing::warn!(
                    "TCP buffer memory {} bytes is over tcp_mem pressure {}: receive windows stop opening",
                    self.memory,
                    pressure
                );
            }
            self.memory_level = level;
        }
    }

    /// Bytes held in all connections' send and receive buffers (what `Config::tcp_mem`
    /// limits).
    pub fn buffer_memory(&self) -> usize {
        self.memory
    }

    /// Connections closed by the application that are still closing (what
    /// `Config::tcp_max_orphans` limits).
    pub fn orphan_count(&self) -> usize {
        self.orphans
    }

    /// Bytes the TIME_WAIT table holds (its entries and index).
    pub fn time_wait_memory(&self) -> usize {
        self.time_wait.heap_bytes()
    }

    /// A connection just became an orphan: count it, and reset the oldest orphans while
    /// there are more than `tcp_max_orphans`.
    fn count_orphan(&mut self, now: Instant, index: u32) {
        let slot = &mut self.slots[index as usize];
        if slot.orphan || !slot.conn.as_ref().is_some_and(|c| c.is_orphan()) {
            return;
        }
        slot.orphan = true;
        self.orphans += 1;
        self.orphan_queue.push_back((index, slot.generation));
        while self.orphans > self.config.tcp_max_orphans {
            let Some((oldest, generation)) = self.orphan_queue.pop_front() else {
                break;
            };
            let slot = &mut self.slots[oldest as usize];
            if slot.generation != generation || !slot.orphan {
                continue;
            }
            if let Some(conn) = slot.conn.as_mut() {
                tracing::warn!(
                    "too many orphaned sockets ({} > tcp_max_orphans): resetting {} -> {}",
                    self.orphans,
                    conn.local,
                    conn.remote
                );
                conn.queue_active_reset(now);
                conn.terminate(now, "too many orphans (tcp_max_orphans)", None);
            }
            self.stats.orphans_reset += 1;
            self.after_activity(now, oldest);
        }
        // Keep the queue from filling with stale entries.
        if self.orphan_queue.len() > 2 * self.orphans + 64 {
            let slots = &self.slots;
            self.orphan_queue
                .retain(|&(i, g)| slots[i as usize].generation == g && slots[i as usize].orphan);
        }
    }

    /// Free a connection's slot for good.
    fn retire(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        if slot.orphan {
            slot.orphan = false;
            self.orphans -= 1;
        }
        let (charged, _) = tables::recount(&mut slot.memory, 0);
        self.charge_memory(charged, 0);
        let slot = &mut self.slots[index as usize];
        if let Some(conn) = slot.conn.take() {
            self.live_connections -= 1;
            self.stats.retransmits += u64::from(conn.stats.retransmits);
            self.stats.challenge_acks += u64::from(conn.stats.challenge_acks);
            if slot.in_table {
                let tuple = FourTuple {
                    local: conn.local,
                    remote: conn.remote,
                };
                self.by_tuple.remove(&tuple, index);
            }
        }
        if let Some(lid) = slot.listener.take() {
            if let Some(l) = self.listeners[lid as usize].as_mut() {
                if slot.embryonic {
                    l.embryonic = l.embryonic.saturating_sub(1);
                }
                l.accept_queue.retain(|&i| i != index);
            }
        }
        *slot = Slot {
            generation: slot.generation.wrapping_add(1),
            ..Slot::default()
        };
        self.free_slots.push(index);
    }

    // ---- packets out and time ---------------------------------------------------------

    /// The next IP packet to put on the wire, if any. Allocates the packet; a driver
    /// that reuses its buffers calls [`Stack::poll_transmit_into`].
    ///
    /// With segmentation offload on (`Config::tso_max`) a packet may hold several
    /// segments; only `poll_transmit_into` says the size to cut it at.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(p) = self.ctl_out.pop_front() {
            self.stats.segments_out += 1;
            return Some(p);
        }
        // Built in a buffer the stack keeps (zeroed once), then copied out at its length:
        // one allocation of the packet's size, nothing zeroed per packet.
        let mut scratch = std::mem::take(&mut self.tx_scratch);
        scratch.resize(self.max_packet_size(), 0);
        let packet = self
            .poll_transmit_into(now, &mut scratch)
            .map(|t| scratch[..t.len].to_vec());
        self.tx_scratch = scratch;
        packet
    }

    /// The longest packet the stack sends: the MTU, or `Config::tso_max` with
    /// segmentation offload. A buffer of this size always takes the next packet.
    pub fn max_packet_size(&self) -> usize {
        self.config.mtu.max(self.config.tso_max).min(65535)
    }

    /// Write the next IP packet to put on the wire at the start of `buf` and say how long
    /// it is and how to send it; None when there is nothing to send. The payload goes
    /// from the send buffer into `buf` in one pass that also sums it: with a buffer kept
    /// from one call to the next, sending allocates nothing and zeroes nothing.
    ///
    /// `buf` must hold [`Stack::max_packet_size`] bytes: with a shorter one nothing is
    /// taken from any connection (None, counted as `transmit_buffer_too_small`).
    pub fn poll_transmit_into(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some(p) = self
            .ctl_out
            .pop_front()
            .or_else(|| self.udp.out.pop_front())
        {
            self.stats.segments_out += 1;
            let Some(room) = buf.get_mut(..p.len()) else {
                self.stats.drop("transmit_buffer_too_small");
                return None;
            };
            room.copy_from_slice(&p);
            return Some(Transmit {
                len: p.len(),
                segment_size: None,
            });
        }
        if buf.len() < self.max_packet_size() {
            if !self.tx_ready.is_empty() {
                self.stats.drop("transmit_buffer_too_small");
            }
            return None;
        }
        while let Some(index) = self.tx_ready.pop_front() {
            let slot = &mut self.slots[index as usize];
            slot.in_tx = false;
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            conn.memory = self.memory_level;
            self.scratch.lend(conn);
            let Some(out) = conn.poll_segment(now) else {
                self.scratch.reclaim(conn);
                continue;
            };
            let tuple = FourTuple {
                local: conn.local,
                remote: conn.remote,
            };
            let built = build_into(buf, &self.config, tuple, &out, conn.payload(&out));
            self.after_activity(now, index);
            match built {
                Ok(len) => {
                    self.stats.segments_out += out.segments() as u64;
                    return Some(Transmit {
                        len,
                        segment_size: (out.segment_size > 0).then_some(out.segment_size),
                    });
                }
                Err(e) => self.stats.drop(e.reason()),
            }
        }
        None
    }

    /// The earliest instant at which [`Stack::on_timeout`] has work to do.
    ///
    /// Exact in all but one case: with many connections whose timers fall in the same
    /// stretch of the timing wheel (more than 64), after the earliest of them was
    /// re-armed, it may be that timer's old deadline; `on_timeout` then fires nothing and
    /// the next call gives the true one. A driver never wakes late.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let slots = &self.slots;
        let conn = self.timers.peek_live(|index, generation, at| {
            let s = &slots[index as usize];
            s.generation == generation && s.timer_at == Some(at)
        });
        [
            conn,
            self.idle_release.front().map(|e| e.0),
            self.time_wait.next_expiry(),
            self.fragments.next_deadline(),
            self.requests.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fire every timer due at or before `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        self.expire_requests(now);
        while let Some((at, index, generation)) = self.timers.pop_due(now) {
            let slot = &mut self.slots[index as usize];
            if slot.generation != generation || slot.timer_at != Some(at) {
                continue;
            }
            slot.timer_at = None;
            if let Some(conn) = slot.conn.as_mut() {
                conn.memory = self.memory_level;
                self.scratch.lend(conn);
                conn.on_timeout(now, &self.config);
                self.after_activity(now, index);
            }
        }
        // Buffers emptied a while ago give back what they grew to (memory follows use).
        while let Some(&(at, index, generation)) = self.idle_release.front() {
            if at > now {
                break;
            }
            self.idle_release.pop_front();
            let slot = &mut self.slots[index as usize];
            if slot.generation != generation {
                continue;
            }
            slot.release_queued = false;
            if let Some(conn) = slot.conn.as_mut() {
                conn.release_idle_storage();
                let (charged, held) = tables::recount(&mut slot.memory, conn.memory_held());
                self.charge_memory(charged, held);
            }
        }
        for (tuple, entry) in self.time_wait.expire(now) {
            self.time_wait_closed(entry.conn, tuple, now, "TIME_WAIT expired (2*MSL)");
        }
        for expired in self.fragments.expire(now) {
            self.stats.drop_many("frag_timeout", expired.fragments);
            if let Some(quote) = expired.quote {
                self.reassembly_time_exceeded(expired.src, expired.dst, &quote);
            }
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// How to send a packet [`Stack::poll_transmit_into`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    /// The packet's length: it is `buf[..len]`.
    pub len: usize,
    /// Some(size): a TCP super-segment (only with `Config::tso_max`) for the device to
    /// cut into segments of this payload size (the last may be shorter), each with the
    /// same headers but for the sequence number, lengths and checksums, PSH on the last
    /// only: a TSO/GSO packet. None: one packet as it is.
    pub segment_size: Option<u16>,
}

/// Wrap `out` in TCP/IP headers for `tuple` into `buf`; `payload` is its bytes (two
/// pieces of a ring buffer).
fn build_into(
    buf: &mut [u8],
    config: &Config,
    tuple: FourTuple,
    out: &Outgoing,
    payload: (&[u8], &[u8]),
) -> Result<usize, wire::WireError> {
    let repr = TcpRepr {
        src_port: tuple.local.port(),
        dst_port: tuple.remote.port(),
        seq: out.seq,
        ack: out.ack,
        flags: out.flags,
        window: out.window,
        urgent: 0,
        options: out.options,
        payload: payload.0,
    };
    wire::emit_tcp_packet_into(
        buf,
        tuple.local.ip(),
        tuple.remote.ip(),
        config.ttl,
        &repr,
        payload.1,
        config.tx_checksum,
    )
}
