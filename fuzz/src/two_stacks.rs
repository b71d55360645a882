//! `two_stacks`: two [`Stack`]s back to back through a link the fuzzer controls (it
//! delivers, drops, duplicates, reorders and corrupts packets), with application calls
//! and clock ticks interleaved on both sides.
//!
//! Checks, beyond "nothing panics":
//! - what each side reads is exactly a prefix of what the other side's application
//!   wrote on that connection (matched by 4-tuple and ISS = IRS): never a corrupted,
//!   reordered, duplicated or invented byte, never more than was written;
//! - end-of-stream only after the writer called `shutdown` or `close`, and only once
//!   every byte it wrote was read; nothing is read after it;
//! - every packet a stack sends parses, comes from its own address and carries only
//!   what its application wrote at that offset;
//! - ISS and IRS never change; counters never go down; no timer is due after
//!   `on_timeout`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use synack::stack::StackStats;
use synack::wire::{self, TcpOptions};
use synack::{Instant, ListenerHandle, Stack};

use crate::common::{self, AppConn, A4, A6, B4, B6, MAX_OPS, PORTS};
use crate::input::Reader;
use crate::pattern::{app_bytes, first_difference};

/// Operation codes (the first byte of each operation, modulo [`op::COUNT`]).
pub mod op {
    /// Advance the clock and fire both stacks' due timers.
    pub const TIME: u8 = 0;
    /// Move packets from one stack's `poll_transmit` onto the link.
    pub const PUMP: u8 = 1;
    /// Deliver, drop, duplicate, reorder or corrupt one packet on the link.
    pub const DELIVER: u8 = 2;
    /// `connect` from one side to the other.
    pub const CONNECT: u8 = 3;
    /// `listen` on one side.
    pub const LISTEN: u8 = 4;
    /// `accept`.
    pub const ACCEPT: u8 = 5;
    /// `send` of the application pattern.
    pub const SEND: u8 = 6;
    /// `recv`, checked against what the other side wrote.
    pub const RECV: u8 = 7;
    /// `shutdown`.
    pub const SHUTDOWN: u8 = 8;
    /// `close`.
    pub const CLOSE: u8 = 9;
    /// `abort`.
    pub const ABORT: u8 = 10;
    /// A socket option.
    pub const SOCKOPT: u8 = 11;
    /// Run the link and the clock until quiet (bounded): both stacks exchange everything.
    pub const SETTLE: u8 = 12;
    /// Introspection on both stacks.
    pub const INSPECT: u8 = 13;
    /// Number of operations.
    pub const COUNT: u8 = 14;
}

/// What a [`op::DELIVER`] does with the chosen packet (`(byte >> 1) % 5`).
pub mod act {
    /// Deliver it.
    pub const DELIVER: u8 = 0;
    /// Lose it.
    pub const DROP: u8 = 1;
    /// Deliver a copy and keep it on the link.
    pub const DUPLICATE: u8 = 2;
    /// Move it to the back of the queue.
    pub const REORDER: u8 = 3;
    /// Flip bits of one byte and deliver it (the checksums must catch it).
    pub const CORRUPT: u8 = 4;
}

/// Most packets on each direction of the link; more are lost.
const LINK_LIMIT: usize = 512;

/// What a run reached.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Operations decoded.
    pub ops: usize,
    /// Packets delivered.
    pub delivered: usize,
    /// Bytes read and checked.
    pub bytes_read: u64,
    /// End-of-stream seen (each checked: all bytes read, writer shut down).
    pub eofs: usize,
    /// Connections that reached ESTABLISHED, both sides.
    pub established: u64,
    /// Reads whose bytes could not be checked (IRS never seen).
    pub unverified_reads: usize,
}

struct Side {
    stack: Stack,
    stats: StackStats,
    v4: IpAddr,
    v6: IpAddr,
}

/// The `two_stacks` target's state.
pub struct Harness {
    sides: [Side; 2],
    now: Instant,
    /// `links[s]`: packets side `s` sent, on their way to the other side.
    links: [VecDeque<Vec<u8>>; 2],
    /// `conns[s]`: side `s`'s application connections.
    conns: [Vec<AppConn>; 2],
    listeners: Vec<(usize, ListenerHandle)>,
    summary: Summary,
}

/// The `two_stacks` target.
pub fn run(data: &[u8]) -> Summary {
    let mut r = Reader::new(data);
    let (a_bits, b_bits, mtu) = (r.u8(), r.u8(), r.u8());
    let side = |bits: u8, seed: u64, v4: IpAddr, v6: IpAddr| {
        let mut cfg = common::config(bits, mtu);
        cfg.secrets = synack::Secrets::Deterministic(seed);
        let mut stack = Stack::new(cfg);
        stack.add_address(v4);
        stack.add_address(v6);
        Side {
            stack,
            stats: StackStats::default(),
            v4,
            v6,
        }
    };
    let mut h = Harness {
        sides: [side(a_bits, 1, A4, A6), side(b_bits, 2, B4, B6)],
        now: Instant::from_secs(1),
        links: [VecDeque::new(), VecDeque::new()],
        conns: [Vec::new(), Vec::new()],
        listeners: Vec::new(),
        summary: Summary::default(),
    };
    while !r.is_empty() && h.summary.ops < MAX_OPS {
        h.summary.ops += 1;
        h.step(&mut r);
        if common::tracing() {
            for (i, side) in h.sides.iter_mut().enumerate() {
                eprintln!("  side {i}:");
                common::trace_state(&mut side.stack, h.now);
            }
        }
        h.learn();
        for s in &mut h.sides {
            common::check_stack(&s.stack, &mut s.stats);
            while s.stack.poll_event().is_some() {}
        }
    }
    h.summary.established = h.sides.iter().map(|s| s.stack.stats().established).sum();
    h.summary
}

impl Harness {
    fn step(&mut self, r: &mut Reader<'_>) {
        let now = self.now;
        let o = r.u8() % op::COUNT;
        crate::trace!("[{now:?}] op {o}");
        match o {
            op::TIME => {
                let next = self.next_deadline();
                self.now = common::advance(r, now, next);
                self.run_timers();
            }
            op::PUMP => {
                let k = r.u8();
                self.pump(usize::from(k & 1), usize::from(k >> 1) + 1);
            }
            op::DELIVER => {
                let (k, i) = (r.u8(), r.u8());
                self.deliver(k, i, r);
            }
            op::CONNECT => self.connect(r),
            op::LISTEN => {
                let k = r.u8();
                let s = usize::from(k & 1);
                let side = &mut self.sides[s];
                let ip = match k >> 1 & 3 {
                    0 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    1 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    2 => side.v4,
                    _ => side.v6,
                };
                let port = PORTS[usize::from(k >> 3 & 3)];
                let backlog = usize::from(k >> 5) + 1;
                if let Ok(l) = side.stack.listen(SocketAddr::new(ip, port), backlog) {
                    self.listeners.push((s, l));
                }
            }
            op::ACCEPT => {
                let k = r.u8();
                if let Some(&(s, l)) = pick(&self.listeners, k) {
                    let stack = &mut self.sides[s].stack;
                    let res = stack.accept(l);
                    crate::trace!("  accept on side {s}: {res:?}");
                    if let Ok(h) = res {
                        self.conns[s].push(AppConn::new(stack, now, h));
                    }
                }
            }
            op::SEND => {
                let k = r.u8();
                let n = usize::from(r.u16() % 16384);
                if let Some((s, i)) = self.pick_conn(k) {
                    self.conns[s][i].send(&mut self.sides[s].stack, now, n);
                }
            }
            op::RECV => {
                let k = r.u8();
                let n = usize::from(r.u16() % 16384) + 1;
                if let Some((s, i)) = self.pick_conn(k) {
                    self.recv(s, i, n);
                }
            }
            op::SHUTDOWN | op::CLOSE | op::ABORT => {
                let k = r.u8();
                let Some((s, i)) = self.pick_conn(k) else {
                    return;
                };
                let stack = &mut self.sides[s].stack;
                let c = &mut self.conns[s][i];
                let res = match o {
                    op::SHUTDOWN => stack.shutdown(now, c.h),
                    op::CLOSE => stack.close(now, c.h),
                    _ => stack.abort(now, c.h),
                };
                crate::trace!("  op {o} on side {s} {c:?}: {res:?}");
                if res.is_ok() {
                    c.fin_queued |= o != op::ABORT;
                    c.open &= o == op::SHUTDOWN;
                }
            }
            op::SOCKOPT => {
                let k = r.u8();
                if let Some((s, i)) = self.pick_conn(k) {
                    let h = self.conns[s][i].h;
                    common::sockopt(&mut self.sides[s].stack, now, h, r);
                }
            }
            op::SETTLE => {
                let rounds = usize::from(r.u8() % 64) + 1;
                self.settle(rounds);
            }
            _ => {
                for s in 0..2 {
                    let handles: Vec<_> = self.conns[s].iter().map(|c| c.h).collect();
                    common::inspect(&mut self.sides[s].stack, now, &handles);
                }
            }
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let a = self.sides[0].stack.poll_timeout();
        let b = self.sides[1].stack.poll_timeout();
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn run_timers(&mut self) {
        for s in &mut self.sides {
            common::run_timers(&mut s.stack, self.now);
        }
    }

    /// Ask for the IRS of connections that do not know it yet (before a reset can hide it).
    fn learn(&mut self) {
        for (s, conns) in self.conns.iter_mut().enumerate() {
            for c in conns.iter_mut().filter(|c| c.irs.is_none() && c.open) {
                c.learn_irs(&self.sides[s].stack, self.now);
            }
        }
    }

    fn pick_conn(&self, k: u8) -> Option<(usize, usize)> {
        let s = usize::from(k & 1);
        let n = self.conns[s].len();
        (n > 0).then(|| (s, usize::from(k >> 1) % n))
    }

    fn connect(&mut self, r: &mut Reader<'_>) {
        let k = r.u8();
        let now = self.now;
        // Bit 0: side; bit 1: family; bits 2-3: port; bit 4: chosen local port;
        // bits 5-7: MSS, buffers, another option before the SYN goes out.
        let s = usize::from(k & 1);
        let other = &self.sides[1 - s];
        let v6 = k & 2 != 0;
        let remote = SocketAddr::new(
            if v6 { other.v6 } else { other.v4 },
            PORTS[usize::from(k >> 2 & 3)],
        );
        let side = &mut self.sides[s];
        let res = if k & 0x10 != 0 {
            let ip = if v6 { side.v6 } else { side.v4 };
            let port = [40000, 40001, 80, 443][usize::from(r.u8() & 3)];
            side.stack
                .connect_from(now, SocketAddr::new(ip, port), remote)
        } else {
            side.stack.connect(now, remote)
        };
        crate::trace!("  connect side {s} -> {remote}: {res:?}");
        let Ok(h) = res else {
            return;
        };
        if k & 0x20 != 0 {
            let _ = side.stack.set_mss(now, h, r.u16());
        }
        if k & 0x40 != 0 {
            let size = |b: u8| (b != 0).then(|| usize::from(b) * 1024);
            let (snd, rcv) = (r.u8(), r.u8());
            let _ = side.stack.set_buffers(now, h, size(snd), size(rcv));
        }
        if k & 0x80 != 0 {
            common::sockopt(&mut side.stack, now, h, r);
        }
        self.conns[s].push(AppConn::new(&side.stack, now, h));
    }

    /// Up to `n` packets from side `s` onto the link.
    fn pump(&mut self, s: usize, n: usize) -> usize {
        let mut moved = 0;
        for _ in 0..n {
            let Some(p) = self.sides[s].stack.poll_transmit(self.now) else {
                break;
            };
            self.observe(s, &p);
            moved += 1;
            if self.links[s].len() < LINK_LIMIT {
                self.links[s].push_back(p);
            }
        }
        moved
    }

    /// A packet side `s` sent: valid, from its address, carrying what its application wrote.
    fn observe(&self, s: usize, p: &[u8]) {
        let side = &self.sides[s];
        let (ip, seg) =
            wire::parse_tcp_packet(p).expect("a stack sent a packet that does not parse");
        assert!(
            ip.src == side.v4 || ip.src == side.v6,
            "side {s} sent from {}",
            ip.src
        );
        let local = SocketAddr::new(ip.src, seg.src_port);
        let remote = SocketAddr::new(ip.dst, seg.dst_port);
        crate::trace!("  side {s} {local} -> {remote}: {}", common::show(&seg));
        common::check_sent_data(&self.conns[s], local, remote, seg.seq.get(), seg.payload);
    }

    fn deliver(&mut self, k: u8, i: u8, r: &mut Reader<'_>) {
        let l = usize::from(k & 1);
        let link = &mut self.links[l];
        if link.is_empty() {
            return;
        }
        let i = usize::from(i) % link.len();
        match (k >> 1) % 5 {
            act::DELIVER => {
                let p = link.remove(i).unwrap();
                self.receive(1 - l, &p);
            }
            act::DROP => {
                link.remove(i);
            }
            act::DUPLICATE => {
                let p = link[i].clone();
                self.receive(1 - l, &p);
            }
            act::REORDER => {
                let p = link.remove(i).unwrap();
                link.push_back(p);
            }
            _ => {
                let mut p = link.remove(i).unwrap();
                let before = owned(&p);
                let at = usize::from(r.u16()) % p.len();
                p[at] ^= r.u8() | 1;
                match owned(&p) {
                    // Caught by a checksum (or a length check): dropped by the stack.
                    None => self.receive(1 - l, &p),
                    // A field no checksum covers (IPv6 traffic class, flow label, hop
                    // limit): the segment reads as before.
                    Some(after) if after == before.expect("a stack's packet parses") => {
                        self.receive(1 - l, &p)
                    }
                    // In IPv4 every byte is under a checksum, and one changed byte
                    // always changes a one's-complement sum.
                    Some(_) => {
                        assert!(p[0] >> 4 == 6, "IPv4 corruption of byte {at} undetected");
                        // IPv6's payload length is covered only through the TCP
                        // pseudo-header: a shorter length can pass by chance (1 in
                        // 65535). Not the stack's fault; the packet is lost.
                    }
                }
            }
        }
    }

    fn receive(&mut self, s: usize, p: &[u8]) {
        self.summary.delivered += 1;
        self.sides[s].stack.receive(self.now, p);
        self.learn();
    }

    /// Pump, deliver and fire timers until nothing moves, at most `rounds` times.
    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let mut moved = self.pump(0, 256) + self.pump(1, 256);
            for l in 0..2 {
                while let Some(p) = self.links[l].pop_front() {
                    self.receive(1 - l, &p);
                    moved += 1;
                }
            }
            if moved == 0 {
                let Some(t) = self.next_deadline() else {
                    return;
                };
                self.now = self.now.max(t);
                self.run_timers();
            }
        }
    }

    fn recv(&mut self, s: usize, i: usize, n: usize) {
        let now = self.now;
        let mut buf = vec![0u8; n];
        let got = self.sides[s].stack.recv(now, self.conns[s][i].h, &mut buf);
        crate::trace!("  recv side {s} {:?}: {got:?}", self.conns[s][i]);
        let Ok(len) = got else {
            return;
        };
        self.conns[s][i].learn_irs(&self.sides[s].stack, now);
        let c = &self.conns[s][i];
        let Some(irs) = c.irs else {
            // Closed before the harness saw the IRS: the bytes cannot be matched.
            self.summary.unverified_reads += 1;
            let c = &mut self.conns[s][i];
            c.read += len as u64;
            c.eof |= len == 0;
            return;
        };
        let writers: Vec<&AppConn> = self.conns[1 - s]
            .iter()
            .filter(|w| w.local == c.remote && w.remote == c.local && w.iss == Some(irs))
            .collect();
        if writers.len() > 1 {
            // The 4-tuple was reused at the same virtual instant, so both incarnations
            // drew the same ISN (RFC 6528: a keyed hash plus a clock that has not moved):
            // the bytes cannot be told apart, so they are not matched.
            self.summary.unverified_reads += 1;
            let c = &mut self.conns[s][i];
            c.read += len as u64;
            c.eof |= len == 0;
            return;
        }
        let Some(&w) = writers.first() else {
            panic!(
                "side {s} {} read from {}, whose application never had that connection",
                c.local, c.remote
            );
        };
        if len == 0 {
            assert!(
                w.fin_queued,
                "end-of-stream from {} whose application never shut down",
                c.remote
            );
            assert_eq!(
                c.read, w.written,
                "end-of-stream after {} bytes of the {} written",
                c.read, w.written
            );
            self.summary.eofs += 1;
            self.conns[s][i].eof = true;
            return;
        }
        assert!(!c.eof, "{} read {len} bytes after end-of-stream", c.local);
        let end = c.read + len as u64;
        assert!(
            end <= w.written,
            "{} read up to byte {end} of {}, which wrote {}",
            c.local,
            c.remote,
            w.written
        );
        if let Some(j) = first_difference(&buf[..len], app_bytes(c.read, len)) {
            panic!(
                "{} <- {}: byte {} is wrong",
                c.local,
                c.remote,
                c.read + j as u64
            );
        }
        self.conns[s][i].read = end;
        self.summary.bytes_read += len as u64;
    }
}

/// A packet's addresses and segment, owned, for comparison.
type Parsed = (
    IpAddr,
    IpAddr,
    u16,
    u16,
    u32,
    u32,
    u8,
    u16,
    u16,
    TcpOptions,
    Vec<u8>,
);

fn owned(p: &[u8]) -> Option<Parsed> {
    let (ip, s) = wire::parse_tcp_packet(p).ok()?;
    Some((
        ip.src,
        ip.dst,
        s.src_port,
        s.dst_port,
        s.seq.get(),
        s.ack.get(),
        s.flags.bits(),
        s.window,
        s.urgent,
        s.options,
        s.payload.to_vec(),
    ))
}

fn pick<T>(v: &[T], k: u8) -> Option<&T> {
    (!v.is_empty()).then(|| &v[usize::from(k) % v.len()])
}
