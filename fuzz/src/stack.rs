//! `stack`: one whole [`Stack`] driven by an arbitrary interleaving of clock ticks,
//! packets from a fuzzed peer, application calls and transmit-queue drains.
//!
//! The peer is a model that follows each 4-tuple from both ends: it learns the stack's
//! sequence numbers, acknowledgments and timestamps from what the stack sends, so the
//! segments it makes up (with fuzz-chosen flags, options, windows and sequence and
//! acknowledgment numbers chosen relative to the connection's real ones, and correct
//! checksums) reach deep into the state machine. Raw fuzz bytes are also fed as packets.
//!
//! Checks, beyond "nothing panics":
//! - every packet the stack sends parses, comes from one of its addresses, and any data
//!   it carries is what an application wrote at that offset of that connection;
//! - what an application reads is the peer's stream in order: the peer sends the byte
//!   [`peer_byte`](crate::pattern::peer_byte)`(s)` at every sequence number `s`, so the
//!   `n`th byte read must be `peer_byte(IRS + 1 + n)` (on a connection to itself,
//!   [`app_byte`](crate::pattern::app_byte)`(n)`, within what the other end wrote);
//!   nothing is read after end-of-stream;
//! - a connection's ISS and IRS never change once known;
//! - every counter of the stack's statistics only grows;
//! - after `on_timeout(now)` no timer is due at or before `now`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use synack::stack::StackStats;
use synack::wire::icmp::{PROTO_ICMP, PROTO_ICMPV6};
use synack::wire::{
    self, IcmpRepr, IcmpVersion, SackBlocks, SeqNum, TcpFlags, TcpOptions, TcpRepr, Timestamps,
    PROTO_TCP,
};
use synack::{Instant, ListenerHandle, Stack};

use crate::common::{self, AppConn, A4, A6, B4, B6, MAX_OPS, PORTS};
use crate::input::Reader;
use crate::pattern::{app_bytes, first_difference, peer_bytes};

/// Operation codes (the first byte of each operation, modulo [`op::COUNT`]).
pub mod op {
    /// Advance the clock (see [`crate::common::advance`]) and fire due timers.
    pub const TIME: u8 = 0;
    /// A segment from the fuzzed peer (see [`super::Harness::peer_segment`]).
    pub const PEER: u8 = 1;
    /// Raw bytes as a packet: length byte, then the bytes, then a byte whose low bit
    /// asks for the checksums to be fixed.
    pub const RAW: u8 = 2;
    /// `connect` / `connect_from`.
    pub const CONNECT: u8 = 3;
    /// `listen`.
    pub const LISTEN: u8 = 4;
    /// `accept`.
    pub const ACCEPT: u8 = 5;
    /// `send` of the application pattern.
    pub const SEND: u8 = 6;
    /// `recv`, checked against the pattern.
    pub const RECV: u8 = 7;
    /// `shutdown`.
    pub const SHUTDOWN: u8 = 8;
    /// `close`.
    pub const CLOSE: u8 = 9;
    /// `abort`.
    pub const ABORT: u8 = 10;
    /// `close_listener`.
    pub const CLOSE_LISTENER: u8 = 11;
    /// Take packets from `poll_transmit` (the peer learns from them).
    pub const DRAIN: u8 = 12;
    /// Take packets from `poll_transmit` and feed them back to the stack.
    pub const LOOPBACK: u8 = 13;
    /// A socket option on a connection.
    pub const SOCKOPT: u8 = 14;
    /// An ICMP or ICMPv6 message (echo, or an error quoting the stack's last segment).
    pub const ICMP: u8 = 15;
    /// Every introspection call, and the events.
    pub const INSPECT: u8 = 16;
    /// Number of operations.
    pub const COUNT: u8 = 17;
}

/// Sequence-number choices of a peer segment (low 3 bits of its byte).
pub mod seqm {
    /// The peer's next sequence number.
    pub const PEER_NXT: u8 = 0;
    /// What the stack acknowledged last (its RCV.NXT).
    pub const STACK_ACK: u8 = 1;
    /// Beyond it by a u16 (out of order).
    pub const AHEAD: u8 = 2;
    /// Before it by a u16 (old, duplicate).
    pub const BEHIND: u8 = 3;
    /// An absolute u32 (a new ISN on a SYN).
    pub const ABSOLUTE: u8 = 4;
}

/// Acknowledgment choices of a peer segment (low 3 bits of its byte).
pub mod ackm {
    /// Everything the stack sent.
    pub const ALL: u8 = 0;
    /// Less by a u16 (partial or duplicate ACK).
    pub const BEHIND: u8 = 1;
    /// More by a u16 (ACK of data never sent).
    pub const AHEAD: u8 = 2;
    /// The stack's ISS + 1 (the ACK of its SYN).
    pub const SYN: u8 = 3;
    /// An absolute u32.
    pub const ABSOLUTE: u8 = 4;
}

/// Option bits of a peer segment.
pub mod opt {
    /// MSS (u16 follows).
    pub const MSS: u8 = 1;
    /// Window scale (u8 follows).
    pub const WSCALE: u8 = 2;
    /// SACK permitted.
    pub const SACK_OK: u8 = 4;
    /// Timestamps (TSval step u8 follows; TSecr echoes the stack's TSval).
    pub const TS: u8 = 8;
    /// SACK blocks (count byte, then per block: u16 back from the stack's SND.NXT, u16 length).
    pub const SACK: u8 = 16;
    /// With TS: TSecr is a u32 that follows instead.
    pub const TS_ECR: u8 = 32;
}

/// The peer's view of one 4-tuple.
#[derive(Clone, Debug)]
struct Flow {
    local: SocketAddr,
    remote: SocketAddr,
    peer_nxt: u32,
    stack_iss: u32,
    stack_nxt: u32,
    stack_ack: u32,
    stack_tsval: u32,
    peer_tsval: u32,
    last_out: Vec<u8>,
}

impl Flow {
    fn new(local: SocketAddr, remote: SocketAddr) -> Flow {
        Flow {
            local,
            remote,
            peer_nxt: 0x1000_0000,
            stack_iss: 0,
            stack_nxt: 0,
            stack_ack: 0x1000_0000,
            stack_tsval: 0,
            peer_tsval: 1000,
            last_out: Vec::new(),
        }
    }
}

/// What a run reached (the seed generator prints it to show seeds are meaningful).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Operations decoded.
    pub ops: usize,
    /// Packets the stack sent.
    pub packets_out: usize,
    /// Bytes the applications read and checked.
    pub bytes_read: u64,
    /// Connections that reached ESTABLISHED.
    pub established: u64,
    /// End-of-stream seen by an application.
    pub eofs: usize,
    /// Reads whose bytes could not be checked (the peer's ISN was never seen).
    pub unverified_reads: usize,
}

/// The `stack` target's state.
pub struct Harness {
    stack: Stack,
    now: Instant,
    listeners: Vec<ListenerHandle>,
    conns: Vec<AppConn>,
    flows: Vec<Flow>,
    stats: StackStats,
    /// A raw packet may have carried data that does not follow the pattern.
    tainted: bool,
    /// Flows (local, remote) that got an urgent pointer while no application connection
    /// with SO_OOBINLINE held them: the urgent byte may have left the stream out of
    /// band (Linux's semantics), so their reads are not checked against the pattern.
    urgent_out_of_band: Vec<(SocketAddr, SocketAddr)>,
    summary: Summary,
}

fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The `stack` target.
pub fn run(data: &[u8]) -> Summary {
    let mut r = Reader::new(data);
    let (bits, mtu) = (r.u8(), r.u8());
    let mut stack = Stack::new(common::config(bits, mtu));
    stack.add_address(A4);
    stack.add_address(A6);
    let mut h = Harness {
        stack,
        now: Instant::from_secs(1),
        listeners: Vec::new(),
        conns: Vec::new(),
        flows: Vec::new(),
        stats: StackStats::default(),
        tainted: false,
        urgent_out_of_band: Vec::new(),
        summary: Summary::default(),
    };
    while !r.is_empty() && h.summary.ops < MAX_OPS {
        h.summary.ops += 1;
        h.step(&mut r);
        if common::tracing() {
            common::trace_state(&mut h.stack, h.now);
        }
        h.learn();
        common::check_stack(&h.stack, &mut h.stats);
        while h.stack.poll_event().is_some() {}
    }
    h.summary.established = h.stack.stats().established;
    h.summary
}

impl Harness {
    fn step(&mut self, r: &mut Reader<'_>) {
        let now = self.now;
        let o = r.u8() % op::COUNT;
        crate::trace!("[{:?}] op {o}", self.now);
        match o {
            op::TIME => {
                self.now = common::advance(r, now, self.stack.poll_timeout());
                common::run_timers(&mut self.stack, self.now);
            }
            op::PEER => self.peer_segment(r),
            op::RAW => {
                let n = usize::from(r.u8());
                let mut p = r.bytes(n).to_vec();
                if r.u8() & 1 == 1 {
                    crate::wire::fix_checksums(&mut p);
                }
                if let Ok((ip, seg)) = wire::parse_tcp_packet(&p) {
                    if !seg.payload.is_empty() && self.stack.addresses().contains(&ip.dst) {
                        self.tainted = true;
                    }
                }
                self.stack.receive(now, &p);
            }
            op::CONNECT => self.connect(r),
            op::LISTEN => {
                let k = r.u8();
                let ip = [
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    A4,
                    A6,
                    B4,
                ][usize::from(k % 5)];
                let port = PORTS[usize::from(k >> 3 & 3)];
                let backlog = usize::from(k >> 5) + 1;
                if let Ok(l) = self.stack.listen(SocketAddr::new(ip, port), backlog) {
                    self.listeners.push(l);
                }
            }
            op::ACCEPT => {
                let k = r.u8();
                if let Some(&l) = pick(&self.listeners, k) {
                    let _ = self.stack.accept_queue_len(l);
                    let res = self.stack.accept(l);
                    crate::trace!("  accept: {res:?}");
                    if let Ok(c) = res {
                        // The urgent byte stays in the stream, which the checks follow.
                        let _ = self.stack.set_oob_inline(c, true);
                        self.conns.push(AppConn::new(&self.stack, now, c));
                    }
                }
            }
            op::SEND => {
                let k = r.u8();
                let n = usize::from(r.u16() % 8192);
                if let Some(c) = pick_mut(&mut self.conns, k) {
                    c.send(&mut self.stack, now, n);
                }
            }
            op::RECV => {
                let k = r.u8();
                let n = usize::from(r.u16() % 8192) + 1;
                self.recv(k, n);
            }
            op::SHUTDOWN | op::CLOSE | op::ABORT => {
                let k = r.u8();
                let Some(c) = pick_mut(&mut self.conns, k) else {
                    return;
                };
                let res = match o {
                    op::SHUTDOWN => self.stack.shutdown(now, c.h),
                    op::CLOSE => self.stack.close(now, c.h),
                    _ => self.stack.abort(now, c.h),
                };
                crate::trace!("  op {o} on {c:?}: {res:?}");
                if res.is_ok() {
                    c.fin_queued |= o != op::ABORT;
                    c.open &= o == op::SHUTDOWN;
                }
            }
            op::CLOSE_LISTENER => {
                let k = r.u8();
                if let Some(&l) = pick(&self.listeners, k) {
                    let _ = self.stack.close_listener(now, l);
                }
            }
            op::DRAIN | op::LOOPBACK => {
                let back = o == op::LOOPBACK;
                let n = usize::from(r.u8() % 64) + 1;
                for _ in 0..n {
                    let Some(p) = self.stack.poll_transmit(now) else {
                        break;
                    };
                    self.observe(&p);
                    if back {
                        self.stack.receive(now, &p);
                        self.learn();
                    }
                }
            }
            op::SOCKOPT => {
                let k = r.u8();
                if let Some(c) = pick(&self.conns, k) {
                    common::sockopt(&mut self.stack, now, c.h, r);
                }
            }
            op::ICMP => self.icmp(r),
            _ => {
                let handles: Vec<_> = self.conns.iter().map(|c| c.h).collect();
                common::inspect(&mut self.stack, now, &handles);
                for c in &mut self.conns {
                    c.learn_irs(&self.stack, now);
                }
            }
        }
    }

    /// Ask for the IRS of connections that do not know it yet (before a reset can hide it).
    fn learn(&mut self) {
        for c in self.conns.iter_mut().filter(|c| c.irs.is_none() && c.open) {
            c.learn_irs(&self.stack, self.now);
        }
    }

    fn connect(&mut self, r: &mut Reader<'_>) {
        let k = r.u8();
        let now = self.now;
        // Bit 0: family; bit 1: to ourselves (a connection looped back by LOOPBACK);
        // bits 2-3: server port; bit 4: from a chosen local port; bits 5-7: options.
        let remote_ip = match (k & 1, k >> 1 & 1) {
            (0, 0) => B4,
            (_, 0) => B6,
            (0, _) => A4,
            _ => A6,
        };
        let remote = SocketAddr::new(remote_ip, PORTS[usize::from(k >> 2 & 3)]);
        let res = if k & 0x10 != 0 {
            let local_ip = if remote_ip.is_ipv4() { A4 } else { A6 };
            let port = [40000, 40001, 80, 443][usize::from(r.u8() & 3)];
            self.stack
                .connect_from(now, SocketAddr::new(local_ip, port), remote)
        } else {
            self.stack.connect(now, remote)
        };
        crate::trace!("  connect -> {remote}: {res:?}");
        let Ok(h) = res else {
            return;
        };
        // Before the SYN goes out, so that its MSS and window scale follow.
        if k & 0x20 != 0 {
            let _ = self.stack.set_mss(now, h, r.u16());
        }
        if k & 0x40 != 0 {
            let size = |b: u8| (b != 0).then(|| usize::from(b) * 1024);
            let (s, rcv) = (r.u8(), r.u8());
            let _ = self.stack.set_buffers(now, h, size(s), size(rcv));
        }
        if k & 0x80 != 0 {
            common::sockopt(&mut self.stack, now, h, r);
        }
        let _ = self.stack.set_oob_inline(h, true);
        self.conns.push(AppConn::new(&self.stack, now, h));
    }

    fn recv(&mut self, k: u8, n: usize) {
        let now = self.now;
        let Some(i) = index(self.conns.len(), k) else {
            return;
        };
        let mut buf = vec![0u8; n];
        let got = self.stack.recv(now, self.conns[i].h, &mut buf);
        crate::trace!("  recv {:?}: {got:?}", self.conns[i]);
        let c = &mut self.conns[i];
        match got {
            Ok(0) => {
                c.eof = true;
                self.summary.eofs += 1;
            }
            Ok(len) => {
                assert!(len <= n);
                assert!(!c.eof, "{} read {len} bytes after end-of-stream", c.local);
                c.learn_irs(&self.stack, now);
                // Unknown only when the connection was closed before the harness could
                // ask (a reset connection still hands out what it had received).
                let out_of_band = self.urgent_out_of_band.contains(&(c.local, c.remote));
                let Some(irs) = c.irs.filter(|_| !out_of_band) else {
                    c.read += len as u64;
                    self.summary.unverified_reads += 1;
                    return;
                };
                let own = self.stack.addresses().contains(&c.remote.ip());
                if own {
                    // Looped back from another connection of this stack: its pattern,
                    // within what it wrote.
                    let end = c.read + len as u64;
                    let (local, remote) = (c.local, c.remote);
                    let sender = self.conns.iter().any(|s| {
                        s.local == remote
                            && s.remote == local
                            && s.iss == Some(irs)
                            && end <= s.written
                    });
                    assert!(
                        sender || self.tainted,
                        "{local} read up to offset {end} from {remote}, which wrote less"
                    );
                }
                let c = &mut self.conns[i];
                if !self.tainted {
                    let want = if own {
                        app_bytes(c.read, len)
                    } else {
                        peer_bytes(irs.wrapping_add(1).wrapping_add(c.read as u32), len)
                    };
                    if let Some(j) = first_difference(&buf[..len], want) {
                        panic!(
                            "{} <- {}: byte {} of the stream is wrong",
                            c.local,
                            c.remote,
                            c.read + j as u64
                        );
                    }
                }
                c.read += len as u64;
                self.summary.bytes_read += len as u64;
            }
            Err(_) => {}
        }
    }

    /// A packet the stack sent: it must parse and come from one of our addresses; its
    /// data must be what the application wrote; the peer model learns from it.
    fn observe(&mut self, p: &[u8]) {
        self.summary.packets_out += 1;
        let (ip, payload) = wire::parse_ip(p).expect("the stack sent a packet that does not parse");
        assert!(
            self.stack.addresses().contains(&ip.src),
            "the stack sent from {}, not one of its addresses",
            ip.src
        );
        match ip.protocol {
            PROTO_TCP => {}
            PROTO_ICMP | PROTO_ICMPV6 => {
                let v = if ip.src.is_ipv4() {
                    IcmpVersion::V4
                } else {
                    IcmpVersion::V6
                };
                IcmpRepr::parse(v, &ip.src, &ip.dst, payload).expect("the stack's ICMP parses");
                return;
            }
            other => panic!("the stack sent IP protocol {other}"),
        }
        let seg = wire::parse_tcp(&ip, payload)
            .expect("the stack sent a TCP segment that does not parse");
        let local = SocketAddr::new(ip.src, seg.src_port);
        let remote = SocketAddr::new(ip.dst, seg.dst_port);
        crate::trace!("  stack {local} -> {remote}: {}", common::show(&seg));
        common::check_sent_data(&self.conns, local, remote, seg.seq.get(), seg.payload);
        if self.stack.addresses().contains(&remote.ip()) {
            // To ourselves: the fuzzed peer only speaks from its own addresses.
            return;
        }
        let f = match self
            .flows
            .iter()
            .position(|f| f.local == local && f.remote == remote)
        {
            Some(i) => i,
            None => {
                if self.flows.len() >= 64 {
                    self.flows.remove(0);
                }
                let mut f = Flow::new(local, remote);
                f.stack_nxt = seg.seq.get();
                self.flows.push(f);
                self.flows.len() - 1
            }
        };
        let f = &mut self.flows[f];
        if seg.flags.syn() {
            f.stack_iss = seg.seq.get();
            f.stack_nxt = seg.seq.get();
        }
        let end = seg.seq.get().wrapping_add(seg.seg_len());
        if seq_gt(end, f.stack_nxt) {
            f.stack_nxt = end;
        }
        if seg.flags.ack() && !seg.flags.rst() {
            f.stack_ack = seg.ack.get();
            if seq_gt(f.stack_ack, f.peer_nxt) {
                f.peer_nxt = f.stack_ack;
            }
        }
        if let Some(ts) = seg.options.timestamps {
            f.stack_tsval = ts.tsval;
        }
        f.last_out = p.to_vec();
    }

    /// A segment from the fuzzed peer; see the [`seqm`], [`ackm`] and [`opt`] encodings.
    fn peer_segment(&mut self, r: &mut Reader<'_>) {
        let sel = r.u8();
        let i = match index(self.flows.len(), sel) {
            Some(i) if sel < 0xF0 => i,
            _ => {
                // A new 4-tuple: bit 0 family, bits 1-2 our port, bit 3 the peer's port.
                let (ours, peer) = if sel & 1 == 0 { (A4, B4) } else { (A6, B6) };
                let local = SocketAddr::new(ours, PORTS[usize::from(sel >> 1 & 3)]);
                let remote = SocketAddr::new(peer, 1000 + u16::from(sel >> 3 & 1));
                match self
                    .flows
                    .iter()
                    .position(|f| f.local == local && f.remote == remote)
                {
                    Some(i) => i,
                    None => {
                        if self.flows.len() >= 64 {
                            self.flows.remove(0);
                        }
                        self.flows.push(Flow::new(local, remote));
                        self.flows.len() - 1
                    }
                }
            }
        };
        let flags = TcpFlags::from_bits(r.u8());
        let sm = r.u8();
        let seq = {
            let f = &self.flows[i];
            match sm & 7 {
                seqm::PEER_NXT => f.peer_nxt,
                seqm::STACK_ACK => f.stack_ack,
                seqm::AHEAD => f.stack_ack.wrapping_add(u32::from(r.u16())),
                seqm::BEHIND => f.stack_ack.wrapping_sub(u32::from(r.u16())),
                seqm::ABSOLUTE => r.u32(),
                5 => f.peer_nxt.wrapping_add(u32::from(r.u16())),
                6 => f.stack_ack.wrapping_add(r.u8() as i8 as u32),
                _ => f.peer_nxt.wrapping_sub(1),
            }
        };
        let am = r.u8();
        let ack = {
            let f = &self.flows[i];
            match am & 7 {
                ackm::ALL => f.stack_nxt,
                ackm::BEHIND => f.stack_nxt.wrapping_sub(u32::from(r.u16())),
                ackm::AHEAD => f.stack_nxt.wrapping_add(u32::from(r.u16())),
                ackm::SYN => f.stack_iss.wrapping_add(1),
                ackm::ABSOLUTE => r.u32(),
                5 => f.stack_nxt.wrapping_sub(1),
                6 => f.stack_iss,
                _ => 0,
            }
        };
        let window = r.u16();
        let o = r.u8();
        let mut options = TcpOptions::default();
        if o & opt::MSS != 0 {
            options.mss = Some(r.u16());
        }
        if o & opt::WSCALE != 0 {
            options.window_scale = Some(r.u8());
        }
        options.sack_permitted = o & opt::SACK_OK != 0;
        if o & opt::TS != 0 {
            let f = &mut self.flows[i];
            f.peer_tsval = f.peer_tsval.wrapping_add(u32::from(r.u8()));
            let tsecr = if o & opt::TS_ECR != 0 {
                r.u32()
            } else {
                f.stack_tsval
            };
            options.timestamps = Some(Timestamps {
                tsval: f.peer_tsval,
                tsecr,
            });
        }
        if o & opt::SACK != 0 {
            let n = r.u8() % 4 + 1;
            let mut blocks = SackBlocks::default();
            for _ in 0..n {
                let left = self.flows[i].stack_nxt.wrapping_sub(u32::from(r.u16()));
                let right = left.wrapping_add(u32::from(r.u16()));
                blocks.push((SeqNum::new(left), SeqNum::new(right)));
            }
            options.sack_blocks = blocks;
        }
        let len = usize::from(r.u16() % 3000);
        let urgent = if flags.urg() { r.u16() } else { 0 };
        let payload = peer_bytes(seq.wrapping_add(u32::from(flags.syn())), len);
        let f = &mut self.flows[i];
        let repr = TcpRepr {
            src_port: f.remote.port(),
            dst_port: f.local.port(),
            seq: SeqNum::new(seq),
            ack: SeqNum::new(if flags.ack() { ack } else { 0 }),
            flags,
            window,
            urgent,
            options,
            payload,
        };
        let Ok(p) = wire::emit_tcp_packet(f.remote.ip(), f.local.ip(), 64, &repr) else {
            return;
        };
        let key = (f.local, f.remote);
        if flags.urg()
            && !self.conns.iter().any(|c| (c.local, c.remote) == key)
            && !self.urgent_out_of_band.contains(&key)
        {
            self.urgent_out_of_band.push(key);
        }
        let f = &mut self.flows[i];
        if !flags.rst() {
            let end = seq.wrapping_add(repr.seg_len());
            if flags.syn() || seq_gt(end, f.peer_nxt) {
                f.peer_nxt = end;
            }
        }
        crate::trace!(
            "  peer {} -> {}: {}",
            f.remote,
            f.local,
            common::show(&repr)
        );
        self.stack.receive(self.now, &p);
    }

    fn icmp(&mut self, r: &mut Reader<'_>) {
        let k = r.u8();
        let sel = r.u8();
        let (v4, quote) = match index(self.flows.len(), sel) {
            Some(i) => {
                let f = &self.flows[i];
                (f.local.is_ipv4(), f.last_out.clone())
            }
            None => (sel & 1 == 0, Vec::new()),
        };
        let (src, dst): (IpAddr, IpAddr) = if v4 {
            (Ipv4Addr::new(198, 18, 0, 254).into(), A4)
        } else {
            ("2001:db8::fe".parse::<Ipv6Addr>().unwrap().into(), A6)
        };
        // The quote: the stack's last segment, cut to its IP header and 8 bytes or more,
        // its sequence number optionally replaced.
        let hl = if v4 { 20 } else { 40 };
        let mut quote = quote;
        quote.truncate(hl + 8 + usize::from(r.u8() % 32));
        if k & 0x80 != 0 && quote.len() >= hl + 8 {
            quote[hl + 4..hl + 8].copy_from_slice(&r.u32().to_be_bytes());
        }
        let n = usize::from(r.u8() % 64);
        let data = r.bytes(n).to_vec();
        let code = r.u8();
        let repr = match k % 6 {
            0 => IcmpRepr::EchoRequest {
                ident: r.u16(),
                seq: r.u16(),
                data: &data,
            },
            1 => IcmpRepr::DestUnreachable {
                code: code % 16,
                next_hop_mtu: r.u16(),
                invoking: &quote,
            },
            2 if v4 => IcmpRepr::DestUnreachable {
                code: 4,
                next_hop_mtu: r.u16(),
                invoking: &quote,
            },
            2 => IcmpRepr::PacketTooBig {
                mtu: u32::from(r.u16()),
                invoking: &quote,
            },
            3 => IcmpRepr::TimeExceeded {
                code: code % 2,
                invoking: &quote,
            },
            4 => IcmpRepr::ParamProblem {
                code,
                invoking: &quote,
            },
            _ => IcmpRepr::Other {
                msg_type: code,
                code: r.u8(),
            },
        };
        if let Ok(p) = wire::emit_icmp_packet(src, dst, 64, &repr) {
            self.stack.receive(self.now, &p);
        }
    }
}

fn index(len: usize, k: u8) -> Option<usize> {
    (len > 0).then(|| usize::from(k) % len)
}

fn pick<T>(v: &[T], k: u8) -> Option<&T> {
    index(v.len(), k).map(|i| &v[i])
}

fn pick_mut<T>(v: &mut [T], k: u8) -> Option<&mut T> {
    index(v.len(), k).map(move |i| &mut v[i])
}
