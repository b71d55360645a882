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

mod config;
mod error;
mod event;
mod fragments;
mod icmp;
mod ports;
mod secrets;
mod stats;
mod tables;
mod time_wait_table;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

pub use crate::tcp::CongestionControl;
pub use config::Config;
pub use error::Error;
pub use event::Event;
pub use secrets::Secrets;
pub use stats::StackStats;

/// One socket of [`Stack::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

use crate::tcp::{
    ConnEvent, Connection, Disposition, IsnGenerator, MemoryLevel, Outgoing, SynCookies,
    TimeWaitVerdict,
};
use crate::wire::icmp::{PROTO_ICMP, PROTO_ICMPV6};
use crate::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr, WireError};
use crate::{Instant, TcpState};
use fragments::{Reassembler, Verdict};
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
    by_tuple: std::collections::HashMap<FourTuple, u32>,
    listeners: Vec<Option<Listener>>,
    time_wait: TimeWaitTable,
    fragments: Reassembler,
    timers: TimerQueue,
    tx_ready: VecDeque<u32>,
    ctl_out: VecDeque<Vec<u8>>,
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
        let keys = secrets::Keys::new(config.secrets);
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
            by_tuple: Default::default(),
            listeners: Vec::new(),
            timers: TimerQueue::default(),
            tx_ready: VecDeque::new(),
            ctl_out: VecDeque::new(),
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
                s.retransmits += c.stats.retransmits;
                s.challenge_acks += c.stats.challenge_acks;
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
        Some(self.by_tuple.contains_key(&tuple) || self.time_wait.contains(&tuple))
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

    // ---- packets in -----------------------------------------------------------------

    /// Feed one IP packet (IPv4 or IPv6, no link header) that arrived at `now`.
    pub fn receive(&mut self, now: Instant, packet: &[u8]) {
        let (ip, payload) = match wire::parse_ip(packet) {
            Ok(parsed) => parsed,
            Err(WireError::Fragmented) => return self.fragment_input(now, packet),
            Err(e) => return self.stats.drop(e.reason()),
        };
        self.ip_input(now, &ip, payload);
    }

    /// A fragment: held until its datagram is whole (RFC 791 3.2, RFC 8200 4.5), which
    /// then goes on as if it had arrived in one piece.
    fn fragment_input(&mut self, now: Instant, packet: &[u8]) {
        let frag = match wire::parse_fragment(packet) {
            Ok(Some(frag)) => frag,
            Ok(None) => return self.stats.drop("frag_bad"),
            Err(e) => return self.stats.drop(e.reason()),
        };
        if !self.addresses.contains(&frag.dst) {
            return self.stats.drop("not_our_address");
        }
        self.stats.fragments_in += 1;
        match self.fragments.push(now, &frag, &self.config) {
            Verdict::Held => {}
            Verdict::Dropped { reason, fragments } => self.stats.drop_many(reason, fragments),
            Verdict::Reassembled(whole) => {
                self.stats.reassembled += 1;
                match wire::parse_ip(&whole) {
                    Ok((ip, payload)) => self.ip_input(now, &ip, payload),
                    // RFC 8200 4.5: a Fragment header in the Fragmentable Part; no nesting.
                    Err(WireError::Fragmented) => self.stats.drop("frag_bad"),
                    Err(e) => self.stats.drop(e.reason()),
                }
            }
        }
    }

    /// A whole IP packet: to ICMP or TCP, if it is addressed to us.
    fn ip_input(&mut self, now: Instant, ip: &wire::IpInfo, payload: &[u8]) {
        if !self.addresses.contains(&ip.dst) {
            return self.stats.drop("not_our_address");
        }
        match ip.protocol {
            PROTO_ICMP if ip.src.is_ipv4() => self.icmp_input(now, ip, payload),
            PROTO_ICMPV6 if ip.src.is_ipv6() => self.icmp_input(now, ip, payload),
            _ => match wire::parse_tcp(ip, payload) {
                Ok(seg) => self.tcp_input(now, ip, &seg),
                Err(e) => self.stats.drop(e.reason()),
            },
        }
    }

    /// A TCP segment addressed to us: to its connection, else TIME_WAIT, else a listener.
    fn tcp_input(&mut self, now: Instant, ip: &wire::IpInfo, seg: &TcpRepr<'_>) {
        self.stats.segments_in += 1;
        if seg.flags.rst() {
            self.stats.resets_received += 1;
        }
        let tuple = FourTuple {
            local: SocketAddr::new(ip.dst, seg.dst_port),
            remote: SocketAddr::new(ip.src, seg.src_port),
        };
        if let Some(&index) = self.by_tuple.get(&tuple) {
            return self.deliver(now, index, tuple, seg);
        }
        if self.time_wait.contains(&tuple) {
            return self.time_wait_input(now, tuple, seg);
        }
        self.listen_input(now, tuple, seg, None);
    }

    /// A segment for a connection in the table.
    fn deliver(&mut self, now: Instant, index: u32, tuple: FourTuple, seg: &TcpRepr<'_>) {
        let slot = &self.slots[index as usize];
        let Some(conn) = slot.conn.as_ref() else {
            return;
        };
        // Linux (tcp_abort_on_overflow = 0): when the accept queue is full, the ACK that
        // would complete a handshake is dropped; the SYN-ACK retransmission retries later.
        if conn.tcp_state() == TcpState::SynReceived
            && seg.flags.ack()
            && !seg.flags.rst()
            && !seg.flags.syn()
        {
            if let Some(l) = slot
                .listener
                .and_then(|l| self.listeners[l as usize].as_ref())
            {
                if l.accept_queue_full() {
                    return self.stats.drop("listen_overflow");
                }
            }
        }
        let Some(conn) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        conn.memory = self.memory_level;
        let disposition = conn.on_segment(now, seg, &self.config);
        match disposition {
            Disposition::Done => {}
            Disposition::Dropped(reason) => self.stats.drop(reason),
            Disposition::Reopen(_) => {}
        }
        self.after_activity(now, index);
        if let Disposition::Reopen(isn) = disposition {
            self.listen_input(now, tuple, seg, Some(isn));
        }
    }

    /// A segment for a 4-tuple in the TIME_WAIT table.
    fn time_wait_input(&mut self, now: Instant, tuple: FourTuple, seg: &TcpRepr<'_>) {
        let (duration, rfc1337) = (self.config.time_wait, self.config.tcp_rfc1337);
        let Some(mut tw) = self.time_wait.get(&tuple).map(|e| e.tw) else {
            return;
        };
        let verdict = tw.on_segment(now, seg, duration, rfc1337);
        if verdict != TimeWaitVerdict::Kill && !matches!(verdict, TimeWaitVerdict::Reopen(_)) {
            // Keep what the segment changed (TS.Recent, a restarted 2*MSL).
            self.time_wait.update(&tuple, tw);
        }
        match verdict {
            TimeWaitVerdict::Drop => self.stats.drop("time_wait"),
            TimeWaitVerdict::Ack => {
                let timestamps = tw
                    .timestamps(now)
                    .map(|(tsval, tsecr)| wire::Timestamps { tsval, tsecr });
                let out = Outgoing {
                    seq: tw.snd_nxt,
                    ack: tw.rcv_nxt,
                    flags: TcpFlags::ACK,
                    window: tw.rcv_wnd,
                    options: TcpOptions {
                        timestamps,
                        ..TcpOptions::default()
                    },
                    payload: Vec::new(),
                };
                self.queue_ctl(tuple, &out);
            }
            TimeWaitVerdict::Reopen(isn) => {
                self.end_time_wait(now, tuple, "new SYN reopens the 4-tuple");
                self.listen_input(now, tuple, seg, Some(isn));
            }
            TimeWaitVerdict::Kill => {
                self.end_time_wait(now, tuple, "rcv RST in TIME_WAIT (tcp_rfc1337 off)")
            }
        }
    }

    fn end_time_wait(&mut self, now: Instant, tuple: FourTuple, cause: &'static str) {
        if let Some(entry) = self.time_wait.remove(&tuple) {
            self.time_wait_closed(entry.conn, tuple, now, cause);
        }
    }

    /// Report the end of a TIME_WAIT kept outside the connection table.
    fn time_wait_closed(
        &mut self,
        conn: ConnectionHandle,
        tuple: FourTuple,
        at: Instant,
        cause: &'static str,
    ) {
        self.events.push_back(Event::StateChanged {
            conn,
            local: tuple.local,
            remote: tuple.remote,
            from: TcpState::TimeWait,
            to: TcpState::Closed,
            at,
            cause,
        });
    }

    /// RFC 9293 3.10.7.1 and 3.10.7.2: no connection; a listener may take a SYN, anything
    /// else is answered with a RST.
    fn listen_input(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        isn: Option<SeqNum>,
    ) {
        let flags = seg.flags;
        let Some(lid) = self.find_listener(tuple.local) else {
            self.reply_rst(tuple, seg);
            return self.stats.drop("no_socket");
        };
        if flags.rst() {
            return self.stats.drop("rst_to_listener");
        }
        if flags.ack() {
            if !flags.syn() && self.cookies_valid(now, lid) {
                return self.cookie_ack(now, lid, tuple, seg);
            }
            // RFC 9293 3.10.7.2: an ACK to a listener: <SEQ=SEG.ACK><CTL=RST>.
            self.reply_rst(tuple, seg);
            return self.stats.drop("ack_to_listener");
        }
        if !flags.syn() {
            return self.stats.drop("no_syn");
        }
        if flags.fin() {
            // SYN and FIN together open nothing sensible; Linux discards them too.
            return self.stats.drop("syn_fin");
        }
        let Some(listener) = self.listeners[lid as usize].as_ref() else {
            return;
        };
        // Linux's tcp_conn_request: a full SYN queue sends cookies (or drops), then a
        // full accept queue drops.
        let syn_queue_full = listener.embryonic > listener.backlog;
        let want_cookie = isn.is_none()
            && (self.config.tcp_syncookies == 2 || syn_queue_full)
            && self.config.tcp_syncookies != 0;
        if syn_queue_full && !want_cookie {
            return self.stats.drop("listen_overflow");
        }
        if listener.accept_queue_full() {
            return self.stats.drop("listen_overflow");
        }
        if want_cookie {
            return self.send_cookie(now, lid, tuple, seg);
        }
        if self.live_connections >= self.config.max_connections {
            return self.stats.drop("max_connections");
        }
        let iss = isn.unwrap_or_else(|| self.isn.isn(now, tuple.local, tuple.remote));
        let conn = self.new_passive(now, lid, tuple, iss, seg);
        let index = self.insert_passive(conn, lid);
        self.after_activity(now, index);
    }

    /// Put a connection a listener took into the table, counted in its SYN queue.
    fn insert_passive(&mut self, conn: Connection, lid: u32) -> u32 {
        let index = self.insert(conn, Some(lid), false);
        if let Some(l) = self.listeners[lid as usize].as_mut() {
            l.embryonic += 1;
        }
        self.slots[index as usize].embryonic = true;
        self.stats.passive_opens += 1;
        index
    }

    /// A connection in SYN_RECEIVED for a SYN a listener took, with the listener's options.
    fn new_passive(
        &self,
        now: Instant,
        lid: u32,
        tuple: FourTuple,
        iss: SeqNum,
        syn: &TcpRepr<'_>,
    ) -> Connection {
        let options = self.listener_options(lid);
        let cfg = self.listener_config(lid, tuple);
        let mut conn = Connection::accept_syn(
            now,
            tuple.local,
            tuple.remote,
            iss,
            self.ts_offset(tuple),
            syn,
            cfg.as_ref().unwrap_or(&self.config),
        );
        if let Some(nodelay) = options.nodelay {
            conn.set_nodelay(nodelay);
        }
        conn.set_user_timeout(options.user_timeout);
        conn
    }

    fn listener_options(&self, lid: u32) -> ListenerOptions {
        self.listeners[lid as usize]
            .as_ref()
            .map(|l| l.options)
            .unwrap_or_default()
    }

    /// The configuration a listener's options make for its connections (None: the
    /// stack's own, when the listener sets none).
    fn listener_config(&self, lid: u32, tuple: FourTuple) -> Option<Config> {
        let options = self.listener_options(lid);
        if options == ListenerOptions::default() {
            return None;
        }
        let mut cfg = self.config.clone();
        if let Some(recv) = options.recv_buffer {
            // A receive buffer the application sized sets the window scale (as Linux's
            // window_clamp of a locked SO_RCVBUF).
            cfg.recv_buffer = recv;
            cfg.tcp_rmem_max = 0;
        }
        if let Some(send) = options.send_buffer {
            cfg.send_buffer = send;
        }
        if let Some(mss) = options.mss {
            let headers = if tuple.local.is_ipv6() { 60 } else { 40 };
            cfg.mtu = cfg.mtu.min(usize::from(mss) + headers);
        }
        Some(cfg)
    }

    /// The offset of a connection's TSval clock (a keyed hash, so it is the same for a
    /// SYN cookie's SYN-ACK and the connection its ACK creates).
    fn ts_offset(&self, tuple: FourTuple) -> u32 {
        self.isn.ts_offset(tuple.local.ip(), tuple.remote.ip())
    }

    /// Cookies are checked only while a listener has recently sent them (Linux's
    /// tcp_synq_no_recent_overflow), or always with `tcp_syncookies = 2`.
    fn cookies_valid(&self, now: Instant, lid: u32) -> bool {
        match self.config.tcp_syncookies {
            0 => false,
            2 => true,
            _ => self.listeners[lid as usize]
                .as_ref()
                .and_then(|l| l.last_cookie)
                .is_some_and(|t| now.saturating_duration_since(t) < COOKIE_LIFETIME),
        }
    }

    /// RFC 4987 3.6: answer a SYN with a SYN-ACK whose ISN is a cookie, keeping nothing.
    fn send_cookie(&mut self, now: Instant, lid: u32, tuple: FourTuple, syn: &TcpRepr<'_>) {
        let Some(l) = self.listeners[lid as usize].as_mut() else {
            return;
        };
        if l.last_cookie.is_none() && self.config.tcp_syncookies == 1 {
            let message = format!(
                "possible SYN flooding on port {}: the SYN queue is full (backlog {}), sending cookies",
                tuple.local.port(),
                l.backlog
            );
            tracing::warn!("{message}");
            self.events.push_back(Event::Warning {
                conn: None,
                message,
            });
        }
        l.last_cookie = Some(now);
        let cfg = self.listener_config(lid, tuple);
        let cfg = cfg.as_ref().unwrap_or(&self.config);
        let ipv6 = tuple.local.is_ipv6();
        let peer_mss = syn.options.mss.unwrap_or(if ipv6 { 1220 } else { 536 });
        let local_mss = crate::tcp::mss_for(cfg.mtu, ipv6);
        let (cookie, _) = self
            .cookies
            .make(now, tuple.local, tuple.remote, syn.seq, peer_mss);
        // Window scale and SACK-permitted survive only inside a timestamp (as on Linux).
        let timestamps = syn.options.timestamps.filter(|_| cfg.tcp_timestamps);
        let window_scale = syn
            .options
            .window_scale
            .filter(|_| timestamps.is_some() && cfg.tcp_window_scaling);
        let sack = timestamps.is_some() && syn.options.sack_permitted && cfg.tcp_sack;
        let options = TcpOptions {
            mss: Some(local_mss),
            window_scale: window_scale.and(cfg.wscale_offer()),
            sack_permitted: sack,
            timestamps: timestamps.map(|ts| wire::Timestamps {
                tsval: crate::tcp::encode_timestamp(now.as_millis() as u32, window_scale, sack)
                    .wrapping_add(self.ts_offset(tuple)),
                tsecr: ts.tsval,
            }),
            ..TcpOptions::default()
        };
        let out = Outgoing {
            seq: cookie,
            ack: syn.seq + 1,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: cfg.recv_buffer.min(65535) as u16,
            options,
            payload: Vec::new(),
        };
        self.stats.syncookies_sent += 1;
        self.queue_ctl(tuple, &out);
    }

    /// An ACK to a listener that may return a cookie: if it does, the connection is
    /// rebuilt from it and the ACK completes its handshake; if not, RST.
    fn cookie_ack(&mut self, now: Instant, lid: u32, tuple: FourTuple, seg: &TcpRepr<'_>) {
        let peer_isn = seg.seq - 1;
        let cookie = seg.ack - 1;
        let Some(mss) = self
            .cookies
            .check(now, tuple.local, tuple.remote, peer_isn, cookie)
        else {
            self.stats.syncookies_failed += 1;
            self.reply_rst(tuple, seg);
            return self.stats.drop("ack_to_listener");
        };
        if self.listeners[lid as usize]
            .as_ref()
            .is_none_or(|l| l.accept_queue_full())
        {
            return self.stats.drop("listen_overflow");
        }
        if self.live_connections >= self.config.max_connections {
            return self.stats.drop("max_connections");
        }
        self.stats.syncookies_recv += 1;
        // The SYN as the cookie remembers it.
        let ts = seg
            .options
            .timestamps
            .filter(|_| self.config.tcp_timestamps);
        let (window_scale, sack_permitted) = match ts {
            Some(ts) => crate::tcp::decode_timestamp(ts.tsecr.wrapping_sub(self.ts_offset(tuple))),
            None => (None, false),
        };
        let syn = TcpRepr {
            seq: peer_isn,
            ack: SeqNum::new(0),
            flags: TcpFlags::SYN,
            window: seg.window,
            payload: &[],
            options: TcpOptions {
                mss: Some(mss),
                window_scale,
                sack_permitted,
                timestamps: ts.map(|t| wire::Timestamps {
                    tsval: t.tsval,
                    tsecr: 0,
                }),
                ..TcpOptions::default()
            },
            ..*seg
        };
        let mut conn = self.new_passive(now, lid, tuple, cookie, &syn);
        conn.synack_sent_as_cookie(now);
        let index = self.insert_passive(conn, lid);
        self.deliver(now, index, tuple, seg);
    }

    fn find_listener(&self, local: SocketAddr) -> Option<u32> {
        let unspecified = match local.ip() {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        let wildcard = SocketAddr::new(unspecified, local.port());
        let find = |addr: SocketAddr| {
            self.listeners
                .iter()
                .position(|l| l.as_ref().is_some_and(|l| l.local == addr))
                .map(|i| i as u32)
        };
        find(local).or_else(|| find(wildcard))
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
                payload: Vec::new(),
            }
        } else {
            // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
            Outgoing {
                seq: SeqNum::new(0),
                ack: seg.seq + seg.seg_len(),
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                options: TcpOptions::default(),
                payload: Vec::new(),
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
        let repr = TcpRepr {
            src_port: tuple.local.port(),
            dst_port: tuple.remote.port(),
            seq: out.seq,
            ack: out.ack,
            flags: out.flags,
            window: out.window,
            urgent: 0,
            options: out.options,
            payload: &out.payload,
        };
        match wire::emit_tcp_packet(tuple.local.ip(), tuple.remote.ip(), self.config.ttl, &repr) {
            Ok(p) => Some(p),
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
        self.by_tuple.insert(tuple, index);
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
        let held = conn.memory_held();
        if !conn.is_orphan() && slot.orphan {
            slot.orphan = false;
            self.orphans -= 1;
        }
        let tuple = FourTuple {
            local: conn.local,
            remote: conn.remote,
        };
        let charged = std::mem::replace(&mut slot.memory, held);
        // Taken out and given back below, so their capacity is reused packet after packet.
        let mut rsts = std::mem::take(&mut conn.rst_out);
        let mut events = std::mem::take(&mut conn.events);
        self.charge_memory(charged, held);
        for rst in rsts.drain(..) {
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
                payload: Vec::new(),
            };
            self.stats.resets_sent += 1;
            self.queue_ctl(tuple, &out);
        }
        for ev in events.drain(..) {
            self.conn_event(index, handle, tuple, ev);
        }
        if let Some(conn) = self.slots[index as usize].conn.as_mut() {
            if conn.events.is_empty() {
                conn.events = events;
            }
            if conn.rst_out.is_empty() {
                conn.rst_out = rsts;
            }
        }
        let slot = &mut self.slots[index as usize];
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        // A closed connection leaves the demultiplexing table at once.
        if matches!(conn.tcp_state(), TcpState::Closed) && slot.in_table {
            slot.in_table = false;
            self.by_tuple.remove(&tuple);
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
                self.by_tuple.remove(&tuple);
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
            ConnEvent::Connected => {
                if app_owned {
                    self.events.push_back(Event::Connected(handle));
                }
            }
            ConnEvent::Established => {
                let slot = &mut self.slots[index as usize];
                if let Some(lid) = slot.listener {
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
        let charged = std::mem::take(&mut slot.memory);
        self.charge_memory(charged, 0);
        let slot = &mut self.slots[index as usize];
        if let Some(conn) = slot.conn.take() {
            self.live_connections -= 1;
            self.stats.retransmits += conn.stats.retransmits;
            self.stats.challenge_acks += conn.stats.challenge_acks;
            if slot.in_table {
                self.by_tuple.remove(&FourTuple {
                    local: conn.local,
                    remote: conn.remote,
                });
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

    /// The next IP packet to put on the wire, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(p) = self.ctl_out.pop_front() {
            self.stats.segments_out += 1;
            return Some(p);
        }
        while let Some(index) = self.tx_ready.pop_front() {
            let slot = &mut self.slots[index as usize];
            slot.in_tx = false;
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            conn.memory = self.memory_level;
            let Some(out) = conn.poll_segment(now) else {
                continue;
            };
            let tuple = FourTuple {
                local: conn.local,
                remote: conn.remote,
            };
            self.after_activity(now, index);
            if let Some(p) = self.build(tuple, &out) {
                self.stats.segments_out += 1;
                return Some(p);
            }
        }
        None
    }

    /// The earliest instant at which [`Stack::on_timeout`] has work to do.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let slots = &self.slots;
        let conn = self.timers.peek_live(|index, generation, at| {
            let s = &slots[index as usize];
            s.generation == generation && s.timer_at == Some(at)
        });
        [
            conn,
            self.time_wait.next_expiry(),
            self.fragments.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fire every timer due at or before `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        while let Some((at, index, generation)) = self.timers.pop_due(now) {
            let slot = &mut self.slots[index as usize];
            if slot.generation != generation || slot.timer_at != Some(at) {
                continue;
            }
            slot.timer_at = None;
            if let Some(conn) = slot.conn.as_mut() {
                conn.memory = self.memory_level;
                conn.on_timeout(now, &self.config);
                self.after_activity(now, index);
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

    // ---- the application's calls ------------------------------------------------------

    /// Listen on `local` (an unspecified IP listens on all of the stack's addresses).
    /// Port 0 picks a free port of [`Config::ephemeral_ports`], as binding to port 0
    /// does on Linux; [`Stack::listener_addr`] tells which. Nothing listens on port 0
    /// itself, so a SYN to port 0 is answered with a RST.
    pub fn listen(&mut self, local: SocketAddr, backlog: usize) -> Result<ListenerHandle, Error> {
        if !local.ip().is_unspecified() && !self.addresses.contains(&local.ip()) {
            return Err(Error::AddressNotAvailable);
        }
        let local = if local.port() == 0 {
            self.free_listen_port(local)?
        } else if self.listener_clash(local) {
            return Err(Error::AddressInUse);
        } else {
            local
        };
        let backlog = backlog.clamp(1, self.config.somaxconn.max(1));
        let listener = Listener {
            local,
            backlog,
            embryonic: 0,
            last_cookie: None,
            accept_queue: VecDeque::new(),
            options: ListenerOptions::default(),
        };
        let id = match self.listeners.iter().position(Option::is_none) {
            Some(i) => {
                self.listeners[i] = Some(listener);
                i
            }
            None => {
                self.listeners.push(Some(listener));
                self.listeners.len() - 1
            }
        };
        Ok(ListenerHandle(id as u32))
    }

    /// Whether a listener already holds `local`'s port on an address that overlaps it.
    fn listener_clash(&self, local: SocketAddr) -> bool {
        self.listeners.iter().flatten().any(|l| {
            l.local.port() == local.port()
                && l.local.is_ipv4() == local.is_ipv4()
                && (l.local.ip() == local.ip()
                    || l.local.ip().is_unspecified()
                    || local.ip().is_unspecified())
        })
    }

    /// `listen` on port 0: a random free port of the ephemeral range, as Linux's
    /// `inet_csk_get_port` picks one for a socket bound to port 0 (no listener on it,
    /// no connection using it on an overlapping address).
    fn free_listen_port(&mut self, local: SocketAddr) -> Result<SocketAddr, Error> {
        let overlaps = |ip: IpAddr| {
            ip.is_ipv4() == local.is_ipv4() && (ip == local.ip() || local.ip().is_unspecified())
        };
        let busy: std::collections::HashSet<u16> = self
            .by_tuple
            .keys()
            .filter(|t| overlaps(t.local.ip()))
            .map(|t| t.local.port())
            .collect();
        let range = self.config.ephemeral_ports.clone();
        let nowhere = SocketAddr::new(local.ip(), 0);
        let candidates = self.ports.candidates(local.ip(), nowhere, &range);
        for port in candidates {
            let addr = SocketAddr::new(local.ip(), port);
            if port != 0 && !busy.contains(&port) && !self.listener_clash(addr) {
                return Ok(addr);
            }
        }
        Err(Error::NoEphemeralPorts)
    }

    /// The address a listener listens on (with the port chosen when it asked for port 0).
    pub fn listener_addr(&self, listener: ListenerHandle) -> Result<SocketAddr, Error> {
        self.listeners
            .get(listener.0 as usize)
            .and_then(Option::as_ref)
            .map(|l| l.local)
            .ok_or(Error::InvalidHandle)
    }

    /// Take the next established connection from a listener, or `WouldBlock`.
    pub fn accept(&mut self, listener: ListenerHandle) -> Result<ConnectionHandle, Error> {
        let l = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidHandle)?;
        let index = l.accept_queue.pop_front().ok_or(Error::WouldBlock)?;
        let slot = &mut self.slots[index as usize];
        slot.app_owned = true;
        slot.listener = None;
        let readable = slot
            .conn
            .as_ref()
            .is_some_and(|c| !c.rcv_buf.is_empty() || c.fin_received);
        let handle = self.handle(index);
        if readable {
            self.events.push_back(Event::Readable(handle));
        }
        Ok(handle)
    }

    /// How many established connections wait in the listener's accept queue (what
    /// makes a listening socket readable to poll).
    pub fn accept_queue_len(&self, listener: ListenerHandle) -> Result<usize, Error> {
        self.listeners
            .get(listener.0 as usize)
            .and_then(Option::as_ref)
            .map(|l| l.accept_queue.len())
            .ok_or(Error::InvalidHandle)
    }

    /// Options that connections accepted from now on start with, as sockets accepted on
    /// Linux inherit the listening socket's (SO_RCVBUF, SO_SNDBUF, TCP_MAXSEG,
    /// TCP_NODELAY, TCP_USER_TIMEOUT).
    pub fn set_listener_options(
        &mut self,
        listener: ListenerHandle,
        options: ListenerOptions,
    ) -> Result<(), Error> {
        let l = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidHandle)?;
        l.options = options;
        Ok(())
    }

    /// Stop listening; connections not yet accepted are reset.
    pub fn close_listener(&mut self, now: Instant, listener: ListenerHandle) -> Result<(), Error> {
        let l = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::take)
            .ok_or(Error::InvalidHandle)?;
        let pending: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| {
                self.slots[i as usize].listener == Some(listener.0) || l.accept_queue.contains(&i)
            })
            .collect();
        for index in pending {
            let slot = &mut self.slots[index as usize];
            slot.listener = None;
            slot.embryonic = false;
            if let Some(conn) = slot.conn.as_mut() {
                conn.abort(now);
            }
            self.after_activity(now, index);
        }
        Ok(())
    }

    /// Active open to `remote` from an ephemeral port of one of our addresses.
    pub fn connect(&mut self, now: Instant, remote: SocketAddr) -> Result<ConnectionHandle, Error> {
        let unspecified = match remote {
            SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        self.connect_from(now, SocketAddr::new(unspecified, 0), remote)
    }

    /// Active open from a chosen local address and port (unspecified IP: pick one of ours
    /// of the same family; port 0: pick an ephemeral port).
    pub fn connect_from(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<ConnectionHandle, Error> {
        let ip = if local.ip().is_unspecified() {
            *self
                .addresses
                .iter()
                .find(|a| a.is_ipv4() == remote.is_ipv4())
                .ok_or(Error::AddressNotAvailable)?
        } else if self.addresses.contains(&local.ip()) && local.is_ipv4() == remote.is_ipv4() {
            local.ip()
        } else {
            return Err(Error::AddressNotAvailable);
        };
        let local = if local.port() == 0 {
            let range = self.config.ephemeral_ports.clone();
            let mut chosen = None;
            for port in self.ports.candidates(ip, remote, &range) {
                let addr = SocketAddr::new(ip, port);
                if self.tuple_free(addr, remote) && self.find_listener(addr).is_none() {
                    chosen = Some(addr);
                    break;
                }
            }
            chosen.ok_or(Error::NoEphemeralPorts)?
        } else {
            let addr = SocketAddr::new(ip, local.port());
            if !self.tuple_free(addr, remote) {
                return Err(Error::AddressInUse);
            }
            addr
        };
        if self.live_connections >= self.config.max_connections {
            return Err(Error::NoBufferSpace);
        }
        let iss = self.isn.isn(now, local, remote);
        let ts_offset = self.ts_offset(FourTuple { local, remote });
        let conn = Connection::connect(now, local, remote, iss, ts_offset, &self.config);
        let index = self.insert(conn, None, true);
        self.stats.active_opens += 1;
        self.after_activity(now, index);
        Ok(self.handle(index))
    }

    fn tuple_free(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        let t = FourTuple { local, remote };
        !self.by_tuple.contains_key(&t) && !self.time_wait.contains(&t)
    }

    /// Run `f` on the application's connection, then do the bookkeeping.
    fn with_conn<T>(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        f: impl FnOnce(&mut Connection, &Config) -> T,
    ) -> Result<T, Error> {
        let slot = self
            .slots
            .get_mut(h.index as usize)
            .ok_or(Error::InvalidHandle)?;
        if slot.generation != h.generation || !slot.app_owned {
            return Err(Error::InvalidHandle);
        }
        let conn = slot.conn.as_mut().ok_or(Error::InvalidHandle)?;
        conn.memory = self.memory_level;
        let out = f(conn, &self.config);
        self.after_activity(now, h.index);
        Ok(out)
    }

    fn conn_ref(&self, h: ConnectionHandle) -> Result<&Connection, Error> {
        let slot = self
            .slots
            .get(h.index as usize)
            .ok_or(Error::InvalidHandle)?;
        if slot.generation != h.generation || !slot.app_owned {
            return Err(Error::InvalidHandle);
        }
        slot.conn.as_deref().ok_or(Error::InvalidHandle)
    }

    /// Queue bytes for sending; returns how many fit in the send buffer (`WouldBlock` if none).
    pub fn send(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        data: &[u8],
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, _| c.send(data))?
    }

    /// Zero-copy send: `fill` writes up to `max` bytes straight into the connection's
    /// send buffer and returns how many it wrote (`WouldBlock` if the buffer is full).
    pub fn send_with(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, _| {
            c.send_with(|buf| buf.write_with(max, fill))
        })?
    }

    /// Zero-copy receive: `take` sees the received bytes in the stack's buffer (as two
    /// slices, in order) and returns how many it consumed. `Ok(0)` with nothing left is
    /// end-of-stream; `WouldBlock` means nothing yet.
    pub fn recv_with(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        take: impl FnOnce(&[u8], &[u8]) -> usize,
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, _| c.recv_with(take))?
    }

    /// Read received bytes: `Ok(0)` is end-of-stream, `WouldBlock` means nothing yet.
    pub fn recv(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        self.with_conn(now, conn, |c, _| c.recv(buf))?
    }

    /// SO_SNDBUF / SO_RCVBUF for one connection (None keeps the current size). Call it
    /// right after `connect` (before the next `poll_transmit`) for the receive buffer to
    /// set the window scale offered in the SYN.
    pub fn set_buffers(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        send: Option<usize>,
        recv: Option<usize>,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_buffers(send, recv))
    }

    /// SO_KEEPALIVE: probe an idle connection with these settings (None turns it off;
    /// `Keepalive::default()` has Linux's 7200 s / 75 s / 9 probes).
    pub fn set_keepalive(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        keepalive: Option<crate::tcp::Keepalive>,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_keepalive(now, keepalive))
    }

    /// TCP_NODELAY: true sends small segments at once; false (the default) applies
    /// Nagle's algorithm (RFC 1122 4.2.3.4).
    pub fn set_nodelay(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        nodelay: bool,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_nodelay(nodelay))
    }

    /// TCP_USER_TIMEOUT (RFC 5482): abort the connection when sent data stays
    /// unacknowledged for this long, in place of the `tcp_retries2` count (None or zero
    /// goes back to it). The last retransmission is timed to end at the limit, as on Linux.
    pub fn set_user_timeout(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_user_timeout(timeout))
    }

    /// TCP_MAXSEG: cap the segment size. Called right after `connect` (before the next
    /// `poll_transmit`) it is also the MSS our SYN announces.
    pub fn set_mss(&mut self, now: Instant, conn: ConnectionHandle, mss: u16) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_mss(mss))
    }

    /// Choose the congestion control of one connection (like `setsockopt(TCP_CONGESTION)`):
    /// before it is established, or during, keeping its current cwnd.
    pub fn set_congestion_control(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        cc: crate::tcp::CongestionControl,
    ) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.set_congestion_control(cc))
    }

    /// Shut down the sending half (half-close): a FIN follows the queued data.
    pub fn shutdown(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.shutdown(now))?
    }

    /// Close: the application gives up the handle; the stack finishes the close.
    pub fn close(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, cfg| c.close(now, cfg))?;
        self.slots[conn.index as usize].app_owned = false;
        self.after_activity(now, conn.index);
        self.count_orphan(now, conn.index);
        Ok(())
    }

    /// Abort: send RST and drop the connection at once.
    pub fn abort(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        self.with_conn(now, conn, |c, _| c.abort(now))?;
        self.slots[conn.index as usize].app_owned = false;
        self.after_activity(now, conn.index);
        Ok(())
    }

    /// The connection's current state.
    pub fn state(&self, conn: ConnectionHandle) -> Result<TcpState, Error> {
        Ok(self.conn_ref(conn)?.tcp_state())
    }

    /// Why the connection ended, if it ended with an error.
    pub fn error(&self, conn: ConnectionHandle) -> Result<Option<Error>, Error> {
        Ok(self.conn_ref(conn)?.error)
    }

    /// Bytes waiting to be read.
    pub fn recv_queue(&self, conn: ConnectionHandle) -> Result<usize, Error> {
        Ok(self.conn_ref(conn)?.rcv_buf.len())
    }

    /// Bytes written and not yet acknowledged by the peer.
    pub fn send_queue(&self, conn: ConnectionHandle) -> Result<usize, Error> {
        Ok(self.conn_ref(conn)?.snd_buf.len())
    }

    /// Our address and port of a connection.
    pub fn local_addr(&self, conn: ConnectionHandle) -> Result<SocketAddr, Error> {
        Ok(self.conn_ref(conn)?.local)
    }

    /// The peer's address and port of a connection.
    pub fn peer_addr(&self, conn: ConnectionHandle) -> Result<SocketAddr, Error> {
        Ok(self.conn_ref(conn)?.remote)
    }

    /// A `TCP_INFO`-like snapshot of one of the application's connections.
    pub fn info(
        &self,
        now: Instant,
        conn: ConnectionHandle,
    ) -> Result<crate::tcp::ConnectionInfo, Error> {
        Ok(self.conn_ref(conn)?.info(now))
    }

    /// Snapshots of every connection in the table (orphans and embryonic ones included;
    /// TIME_WAIT table entries are listed by [`Stack::connections`]).
    pub fn all_info(&self, now: Instant) -> Vec<crate::tcp::ConnectionInfo> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .map(|c| c.info(now))
            .collect()
    }

    /// The state of any connection by 4-tuple (including orphans and TIME_WAIT entries).
    pub fn state_of(&self, local: SocketAddr, remote: SocketAddr) -> Option<TcpState> {
        let t = FourTuple { local, remote };
        if let Some(&i) = self.by_tuple.get(&t) {
            return self.slots[i as usize].conn.as_ref().map(|c| c.tcp_state());
        }
        self.time_wait.contains(&t).then_some(TcpState::TimeWait)
    }
}
