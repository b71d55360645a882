//! The seed corpus: real packets for `wire_ip`, and scripted sessions (handshakes, data,
//! SACK, retransmissions, closes, resets, ICMP, TIME_WAIT, zero windows, a lossy link)
//! for `stack` and `two_stacks`, written in the encoding the harnesses decode. Written
//! to `fuzz/corpus/<target>/` by `fuzz/run --seed` (`examples/gen_corpus.rs`).

use std::net::{IpAddr, SocketAddr};

use synack::wire::{self, IcmpRepr, SackBlocks, SeqNum, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use synack::{Config, Instant, Stack};

use crate::common::{cfg, A4, A6, ADVANCE_200MS, ADVANCE_61S, ADVANCE_TO_DEADLINE, B4, B6};
use crate::input::Writer;
use crate::stack::{ackm, op, opt, seqm};
use crate::two_stacks::{act, op as op2};

/// One seed: a file name and its bytes.
pub type Seed = (String, Vec<u8>);

// ---- wire_ip ------------------------------------------------------------------------

fn tcp(src: IpAddr, dst: IpAddr, flags: TcpFlags, options: TcpOptions, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNum::new(0x0102_0304),
        ack: SeqNum::new(if flags.ack() { 0x0a0b_0c0d } else { 0 }),
        flags,
        window: 64240,
        urgent: if flags.urg() { 3 } else { 0 },
        options,
        payload,
    };
    wire::emit_tcp_packet(src, dst, 64, &repr).unwrap()
}

fn syn_options() -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
        ..TcpOptions::default()
    }
}

fn sack_options() -> TcpOptions {
    let mut blocks = SackBlocks::default();
    blocks.push((SeqNum::new(1000), SeqNum::new(2000)));
    blocks.push((SeqNum::new(3000), SeqNum::new(4000)));
    blocks.push((SeqNum::new(5000), SeqNum::new(5500)));
    TcpOptions {
        timestamps: Some(Timestamps { tsval: 7, tsecr: 6 }),
        sack_blocks: blocks,
        ..TcpOptions::default()
    }
}

/// Packets for `wire_ip`.
pub fn wire_ip() -> Vec<Seed> {
    let mut v: Vec<Seed> = Vec::new();
    let ts = TcpOptions {
        timestamps: Some(Timestamps { tsval: 5, tsecr: 4 }),
        ..TcpOptions::default()
    };
    let none = TcpOptions::default();
    for (fam, s, d) in [("v4", A4, B4), ("v6", A6, B6)] {
        let mut add = |name: &str, p: Vec<u8>| v.push((format!("{fam}-{name}"), p));
        add("syn", tcp(s, d, TcpFlags::SYN, syn_options(), b""));
        add(
            "syn-ack",
            tcp(s, d, TcpFlags::SYN | TcpFlags::ACK, syn_options(), b""),
        );
        add("ack", tcp(s, d, TcpFlags::ACK, ts, b""));
        add(
            "data",
            tcp(
                s,
                d,
                TcpFlags::ACK | TcpFlags::PSH,
                ts,
                b"GET / HTTP/1.1\r\n\r\n",
            ),
        );
        add("sack", tcp(s, d, TcpFlags::ACK, sack_options(), b""));
        add("fin", tcp(s, d, TcpFlags::FIN | TcpFlags::ACK, ts, b""));
        add("rst", tcp(s, d, TcpFlags::RST, none, b""));
        add(
            "rst-ack",
            tcp(s, d, TcpFlags::RST | TcpFlags::ACK, none, b""),
        );
        add(
            "urg",
            tcp(s, d, TcpFlags::ACK | TcpFlags::URG, none, b"urgent!"),
        );
        add(
            "syn-data",
            tcp(s, d, TcpFlags::SYN, syn_options(), b"early"),
        );
        let quote = tcp(d, s, TcpFlags::SYN, syn_options(), b"");
        let icmp = |repr: &IcmpRepr<'_>| wire::emit_icmp_packet(s, d, 64, repr).unwrap();
        add(
            "echo",
            icmp(&IcmpRepr::EchoRequest {
                ident: 0x1234,
                seq: 1,
                data: b"ping",
            }),
        );
        add(
            "unreachable",
            icmp(&IcmpRepr::DestUnreachable {
                code: 1,
                next_hop_mtu: 0,
                invoking: &quote[..quote.len().min(48)],
            }),
        );
        add(
            "time-exceeded",
            icmp(&IcmpRepr::TimeExceeded {
                code: 0,
                invoking: &quote,
            }),
        );
        add(
            "param-problem",
            icmp(&IcmpRepr::ParamProblem {
                code: 0,
                invoking: &quote,
            }),
        );
        if fam == "v4" {
            add(
                "frag-needed",
                icmp(&IcmpRepr::DestUnreachable {
                    code: 4,
                    next_hop_mtu: 1400,
                    invoking: &quote[..28],
                }),
            );
        } else {
            add(
                "packet-too-big",
                icmp(&IcmpRepr::PacketTooBig {
                    mtu: 1280,
                    invoking: &quote,
                }),
            );
            add(
                "neighbour-solicitation",
                icmp(&IcmpRepr::Other {
                    msg_type: 135,
                    code: 0,
                }),
            );
        }
    }
    // IPv4 with an IP option (a 24-byte header), checksums recomputed.
    let mut p = tcp(A4, B4, TcpFlags::SYN, syn_options(), b"");
    p.splice(20..20, [1, 1, 1, 0]);
    p[0] = 0x46;
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    crate::wire::fix_checksums(&mut p);
    v.push(("v4-ip-options".into(), p));
    // IPv6 with a hop-by-hop extension header before TCP.
    let mut p = tcp(A6, B6, TcpFlags::ACK, ts, b"hop");
    let next = p[6];
    p.splice(40..40, [next, 0, 1, 4, 0, 0, 0, 0]);
    p[6] = 0;
    let len = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&len.to_be_bytes());
    crate::wire::fix_checksums(&mut p);
    v.push(("v6-hop-by-hop".into(), p));
    // Malformed: a fragment, a bad checksum, a truncated header, unknown options.
    let mut p = tcp(A4, B4, TcpFlags::ACK, ts, b"fragment");
    p[6] |= 0x20;
    crate::wire::fix_checksums(&mut p);
    v.push(("v4-fragment".into(), p));
    let mut p = tcp(A4, B4, TcpFlags::ACK, ts, b"bad sum");
    let last = p.len() - 1;
    p[last] ^= 0xff;
    v.push(("v4-bad-checksum".into(), p));
    let p = tcp(A6, B6, TcpFlags::SYN, syn_options(), b"");
    v.push(("v6-truncated".into(), p[..50].to_vec()));
    let mut p = tcp(A4, B4, TcpFlags::SYN, syn_options(), b"");
    p[40..44].copy_from_slice(&[30, 4, 0xab, 0xcd]);
    crate::wire::fix_checksums(&mut p);
    v.push(("v4-unknown-option".into(), p));
    v.push((
        "option-area".into(),
        vec![
            1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9,
        ],
    ));
    // A real exchange between two synack stacks: handshake, data both ways, close.
    for (i, p) in real_exchange().into_iter().enumerate() {
        v.push((format!("exchange-{i:02}"), p));
    }
    v
}

/// Every packet of a short transfer between two stacks, in order.
fn real_exchange() -> Vec<Vec<u8>> {
    let mut a = Stack::new(Config::deterministic(1));
    let mut b = Stack::new({
        let mut config = Config::default();
        config.secrets = synack::Secrets::Deterministic(2);
        config
    });
    a.add_address(A4);
    b.add_address(B4);
    let mut now = Instant::from_secs(1);
    let l = b.listen(SocketAddr::new(B4, 80), 8).unwrap();
    let c = a.connect(now, SocketAddr::new(B4, 80)).unwrap();
    let mut out = Vec::new();
    let mut server = None;
    let mut buf = vec![0u8; 4096];
    for round in 0..40 {
        now += std::time::Duration::from_millis(50);
        a.on_timeout(now);
        b.on_timeout(now);
        while let Some(p) = a.poll_transmit(now) {
            b.receive(now, &p);
            out.push(p);
        }
        while let Some(p) = b.poll_transmit(now) {
            a.receive(now, &p);
            out.push(p);
        }
        if server.is_none() {
            server = b.accept(l).ok();
        }
        if let Some(s) = server {
            match round {
                3 => {
                    let _ = a.send(now, c, crate::pattern::app_bytes(0, 3000));
                    let _ = b.send(now, s, b"HTTP/1.1 200 OK\r\n\r\nhello");
                }
                8 => {
                    let _ = b.recv(now, s, &mut buf);
                    let _ = a.recv(now, c, &mut buf);
                    let _ = a.close(now, c);
                }
                12 => {
                    let _ = b.recv(now, s, &mut buf);
                    let _ = b.close(now, s);
                }
                _ => {}
            }
        }
    }
    out.truncate(16);
    out
}

// ---- stack --------------------------------------------------------------------------

/// Builds a `stack` input one operation at a time (the encoding of [`crate::stack`]).
pub struct StackScript(Writer);

/// A peer segment for [`StackScript::peer`].
#[derive(Clone, Copy)]
pub struct Peer {
    /// Flow selector: an index, or `0xF0 | bits` for a new 4-tuple.
    pub sel: u8,
    /// Flags.
    pub flags: TcpFlags,
    /// Sequence choice ([`seqm`]) and its argument.
    pub seq: (u8, u32),
    /// Acknowledgment choice ([`ackm`]) and its argument.
    pub ack: (u8, u32),
    /// Window.
    pub window: u16,
    /// Options: MSS, window scale, SACK permitted, timestamps, SACK blocks.
    pub mss: Option<u16>,
    /// Window scale.
    pub ws: Option<u8>,
    /// SACK permitted.
    pub sack_ok: bool,
    /// Timestamps (TSval step).
    pub ts: Option<u8>,
    /// SACK blocks: (back from SND.NXT, length).
    pub sack: &'static [(u16, u16)],
    /// Payload length.
    pub len: u16,
}

impl Peer {
    /// An ACK of everything on flow `sel`, at the peer's next sequence number, with timestamps.
    pub fn ack(sel: u8) -> Peer {
        Peer {
            sel,
            flags: TcpFlags::ACK,
            seq: (seqm::PEER_NXT, 0),
            ack: (ackm::ALL, 0),
            window: 65535,
            mss: None,
            ws: None,
            sack_ok: false,
            ts: Some(1),
            sack: &[],
            len: 0,
        }
    }

    /// A SYN opening a new flow (`bits`: family, our port, the peer's port).
    pub fn syn(bits: u8, isn: u32) -> Peer {
        Peer {
            sel: 0xF0 | bits,
            flags: TcpFlags::SYN,
            seq: (seqm::ABSOLUTE, isn),
            ack: (7, 0),
            mss: Some(1460),
            ws: Some(7),
            sack_ok: true,
            ..Peer::ack(0)
        }
    }

    /// The same with other flags.
    pub fn flags(self, flags: TcpFlags) -> Peer {
        Peer { flags, ..self }
    }

    /// The same with `len` bytes of data.
    pub fn data(self, len: u16) -> Peer {
        Peer { len, ..self }
    }
}

impl StackScript {
    /// An input starting with the configuration bits ([`cfg`]) and MTU choice.
    pub fn new(bits: u8, mtu: u8) -> StackScript {
        let mut w = Writer::default();
        w.u8(bits).u8(mtu);
        StackScript(w)
    }

    /// The bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0 .0
    }

    fn op(&mut self, o: u8) -> &mut Writer {
        self.0.u8(o)
    }

    /// Advance the clock ([`crate::common::advance`] encoding).
    pub fn time(&mut self, k: u8) -> &mut Self {
        self.op(op::TIME).u8(k);
        if k % 8 == 4 {
            self.0.u16(1000);
        }
        self
    }

    /// A peer segment.
    pub fn peer(&mut self, p: Peer) -> &mut Self {
        let w = &mut self.0;
        w.u8(op::PEER).u8(p.sel).u8(p.flags.bits()).u8(p.seq.0);
        match p.seq.0 {
            seqm::AHEAD | seqm::BEHIND | 5 => {
                w.u16(p.seq.1 as u16);
            }
            seqm::ABSOLUTE => {
                w.u32(p.seq.1);
            }
            6 => {
                w.u8(p.seq.1 as u8);
            }
            _ => {}
        }
        w.u8(p.ack.0);
        match p.ack.0 {
            ackm::BEHIND | ackm::AHEAD => {
                w.u16(p.ack.1 as u16);
            }
            ackm::ABSOLUTE => {
                w.u32(p.ack.1);
            }
            _ => {}
        }
        w.u16(p.window);
        let bits = p.mss.map_or(0, |_| opt::MSS)
            | p.ws.map_or(0, |_| opt::WSCALE)
            | if p.sack_ok { opt::SACK_OK } else { 0 }
            | p.ts.map_or(0, |_| opt::TS)
            | if p.sack.is_empty() { 0 } else { opt::SACK };
        w.u8(bits);
        if let Some(m) = p.mss {
            w.u16(m);
        }
        if let Some(s) = p.ws {
            w.u8(s);
        }
        if let Some(t) = p.ts {
            w.u8(t);
        }
        if !p.sack.is_empty() {
            w.u8(p.sack.len() as u8 - 1);
            for &(back, len) in p.sack {
                w.u16(back).u16(len);
            }
        }
        w.u16(p.len);
        if p.flags.urg() {
            w.u16(1);
        }
        self
    }

    /// Raw bytes as a packet, checksums fixed or not.
    pub fn raw(&mut self, p: &[u8], fix: bool) -> &mut Self {
        let n = p.len().min(255);
        self.op(op::RAW).u8(n as u8).bytes(&p[..n]).u8(fix as u8);
        self
    }

    /// `connect` (the [`crate::stack`] bit encoding; extras follow for bits 4-7).
    pub fn connect(&mut self, k: u8, extra: &[u8]) -> &mut Self {
        self.op(op::CONNECT).u8(k).bytes(extra);
        self
    }

    /// `listen`.
    pub fn listen(&mut self, k: u8) -> &mut Self {
        self.op(op::LISTEN).u8(k);
        self
    }

    /// `accept` on listener `k`.
    pub fn accept(&mut self, k: u8) -> &mut Self {
        self.op(op::ACCEPT).u8(k);
        self
    }

    /// `send` of `n` bytes on connection `k`.
    pub fn send(&mut self, k: u8, n: u16) -> &mut Self {
        self.op(op::SEND).u8(k).u16(n);
        self
    }

    /// `recv` of up to `n + 1` bytes on connection `k`.
    pub fn recv(&mut self, k: u8, n: u16) -> &mut Self {
        self.op(op::RECV).u8(k).u16(n);
        self
    }

    /// `shutdown`, `close` or `abort` (`o`) on connection `k`.
    pub fn end(&mut self, o: u8, k: u8) -> &mut Self {
        self.op(o).u8(k);
        self
    }

    /// Drain up to `n + 1` packets.
    pub fn drain(&mut self, n: u8) -> &mut Self {
        self.op(op::DRAIN).u8(n);
        self
    }

    /// Loop up to `n + 1` packets back.
    pub fn loopback(&mut self, n: u8) -> &mut Self {
        self.op(op::LOOPBACK).u8(n);
        self
    }

    /// A socket option (`k` selects the connection, then the option bytes).
    pub fn sockopt(&mut self, k: u8, bytes: &[u8]) -> &mut Self {
        self.op(op::SOCKOPT).u8(k).bytes(bytes);
        self
    }

    /// An ICMP message (the bytes of [`crate::stack`]'s ICMP encoding after the op).
    pub fn icmp(&mut self, bytes: &[u8]) -> &mut Self {
        self.op(op::ICMP).bytes(bytes);
        self
    }

    /// Introspection.
    pub fn inspect(&mut self) -> &mut Self {
        self.op(op::INSPECT);
        self
    }
}

/// The passive handshake on a new flow: listen, SYN, SYN-ACK out, ACK, accept.
fn passive(s: &mut StackScript, v6: bool) {
    let fam = u8::from(v6);
    s.listen(fam | (1 << 5))
        .peer(Peer::syn(fam, 0x0100_0000))
        .drain(3)
        .peer(Peer::ack(0))
        .accept(0);
}

/// The active handshake: connect to the peer's port 80, SYN out, SYN-ACK, ACK out.
fn active(s: &mut StackScript, v6: bool) {
    let mut syn_ack = Peer::syn(0, 0x2000_0000).flags(TcpFlags::SYN | TcpFlags::ACK);
    syn_ack.sel = 0;
    syn_ack.ack = (ackm::SYN, 0);
    s.connect(u8::from(v6), &[]).drain(3).peer(syn_ack).drain(3);
}

/// Inputs for `stack`.
pub fn stack() -> Vec<Seed> {
    let mut v = Vec::new();
    let mut add = |name: &str, s: StackScript| v.push((name.to_string(), s.finish()));
    let data = |len: u16| Peer::ack(0).flags(TcpFlags::ACK | TcpFlags::PSH).data(len);
    let fin = Peer::ack(0).flags(TcpFlags::FIN | TcpFlags::ACK);

    for v6 in [false, true] {
        let fam = if v6 { "v6" } else { "v4" };
        // Server: handshake, request, response, peer closes first, we close.
        let mut s = StackScript::new(0, 0);
        passive(&mut s, v6);
        s.peer(data(500))
            .recv(0, 4095)
            .send(0, 3000)
            .drain(8)
            .peer(Peer::ack(0))
            .peer(fin)
            .drain(2)
            .recv(0, 4095)
            .recv(0, 4095)
            .end(op::CLOSE, 0)
            .drain(2)
            .peer(Peer::ack(0))
            .time(ADVANCE_61S)
            .inspect();
        add(&format!("passive-{fam}"), s);

        // Client: handshake, send, partial and full ACKs, response, we close first,
        // TIME_WAIT, expiry.
        let mut s = StackScript::new(0, 0);
        active(&mut s, v6);
        let partial = Peer {
            ack: (ackm::BEHIND, 1000),
            ..Peer::ack(0)
        };
        s.send(0, 5000)
            .drain(16)
            .peer(partial)
            .drain(4)
            .peer(Peer::ack(0))
            .peer(data(1200))
            .recv(0, 8191)
            .end(op::SHUTDOWN, 0)
            .drain(4)
            .peer(fin)
            .drain(2)
            .recv(0, 100)
            .end(op::CLOSE, 0)
            .time(ADVANCE_61S)
            .inspect();
        add(&format!("active-{fam}"), s);
    }

    // Out of order data and SACK: a segment ahead, then the hole filled.
    let mut s = StackScript::new(0, 0);
    passive(&mut s, false);
    let ahead = Peer {
        seq: (seqm::AHEAD, 1000),
        ..data(1000)
    };
    let far = Peer {
        seq: (seqm::AHEAD, 3000),
        ..data(500)
    };
    s.peer(ahead)
        .peer(far)
        .drain(4)
        .peer(Peer {
            seq: (seqm::STACK_ACK, 0),
            ..data(1000)
        })
        .drain(4)
        .recv(0, 8191)
        .peer(Peer {
            seq: (seqm::STACK_ACK, 0),
            ..data(1000)
        })
        .recv(0, 8191)
        .inspect();
    add("out-of-order-sack", s);

    // The stack's data SACKed by the peer, then retransmissions on timeouts.
    let mut s = StackScript::new(cfg::NO_DELAYED_ACK, 0);
    active(&mut s, false);
    let sacked = Peer {
        ack: (ackm::BEHIND, 6000),
        sack: &[(4000, 1000), (2000, 1000)],
        ..Peer::ack(0)
    };
    s.send(0, 8000)
        .drain(16)
        .peer(sacked)
        .peer(sacked)
        .peer(sacked)
        .drain(8)
        .time(ADVANCE_TO_DEADLINE)
        .drain(8)
        .time(ADVANCE_TO_DEADLINE)
        .drain(8)
        .peer(Peer::ack(0))
        .inspect();
    add("sack-retransmit", s);

    // SYN retransmissions, then a late SYN-ACK; later an RTO.
    let mut s = StackScript::new(0, 0);
    s.connect(0, &[])
        .drain(1)
        .time(ADVANCE_TO_DEADLINE)
        .drain(1)
        .time(ADVANCE_TO_DEADLINE)
        .drain(1);
    let mut syn_ack = Peer::syn(0, 0x3000_0000).flags(TcpFlags::SYN | TcpFlags::ACK);
    syn_ack.sel = 0;
    syn_ack.ack = (ackm::SYN, 0);
    s.peer(syn_ack)
        .drain(2)
        .send(0, 2000)
        .drain(4)
        .time(ADVANCE_TO_DEADLINE)
        .drain(4)
        .peer(Peer::ack(0));
    add("syn-retransmit", s);

    // Connection refused, and a reset of an established connection.
    let mut s = StackScript::new(0, 0);
    s.connect(0, &[]).drain(1).peer(Peer {
        flags: TcpFlags::RST | TcpFlags::ACK,
        ack: (ackm::SYN, 0),
        seq: (7, 0),
        ts: None,
        ..Peer::ack(0)
    });
    s.recv(0, 10).inspect();
    add("refused", s);
    let mut s = StackScript::new(0, 0);
    passive(&mut s, false);
    s.peer(data(100))
        .peer(Peer {
            flags: TcpFlags::RST,
            ts: None,
            ..Peer::ack(0)
        })
        .recv(0, 4095)
        .recv(0, 4095)
        .inspect();
    add("reset", s);

    // Zero window: small buffers, the peer closes its window, probes, then reopens.
    let mut s = StackScript::new(cfg::SMALL_BUFFERS, 0);
    active(&mut s, false);
    s.peer(Peer {
        window: 0,
        ..Peer::ack(0)
    })
    .send(0, 6000)
    .drain(4)
    .time(ADVANCE_TO_DEADLINE)
    .drain(2)
    .time(ADVANCE_TO_DEADLINE)
    .drain(2)
    .peer(Peer::ack(0))
    .drain(8)
    .peer(data(2900))
    .peer(data(2900))
    .drain(2)
    .recv(0, 8191)
    .drain(2);
    add("zero-window", s);

    // ICMP: echo, unreachable and fragmentation-needed quoting our segment, v6 too big.
    for v6 in [false, true] {
        let mut s = StackScript::new(0, 0);
        active(&mut s, v6);
        s.send(0, 3000).drain(4);
        // k, flow, quote length, data length, code, then the message's fields.
        s.icmp(&[0, 0, 0, 4, b'p', b'i', b'n', b'g', 0, 0, 1, 0, 1]);
        s.drain(1);
        s.icmp(&[1, 0, 8, 0, 1, 0, 0]);
        s.icmp(&[2, 0, 8, 0, 0, 0x05, 0x00]);
        s.drain(4).time(ADVANCE_TO_DEADLINE).drain(4);
        s.icmp(&[3, 0, 8, 0, 0]);
        s.icmp(&[5, 0, 0, 0, 135, 0]);
        add(&format!("icmp-{}", if v6 { "v6" } else { "v4" }), s);
    }

    // TIME_WAIT on the server side, then a new SYN on the same 4-tuple reopens it.
    let mut s = StackScript::new(0, 0);
    passive(&mut s, false);
    s.end(op::CLOSE, 0)
        .drain(2)
        .peer(Peer::ack(0))
        .peer(fin)
        .drain(2)
        .time(ADVANCE_200MS)
        .peer(Peer::syn(0, 0x0200_0000))
        .drain(2)
        .peer(Peer::ack(0))
        .accept(0)
        .inspect();
    add("time-wait-reopen", s);

    // A connection to itself: listener, connect to our own address, looped back.
    let mut s = StackScript::new(0, 0);
    s.listen(1 << 5)
        .connect(2, &[])
        .loopback(3)
        .loopback(3)
        .accept(0)
        .send(0, 2000)
        .send(1, 3000)
        .loopback(15)
        .loopback(15)
        .recv(1, 8191)
        .recv(0, 8191)
        .end(op::CLOSE, 0)
        .loopback(7)
        .end(op::CLOSE, 1)
        .loopback(7)
        .time(ADVANCE_61S);
    add("self-connect", s);

    // Keepalive and tiny limits: an idle connection probed, then given up.
    let mut s = StackScript::new(cfg::TINY_LIMITS | cfg::NEWRENO_NODELAY, 1);
    passive(&mut s, true);
    for _ in 0..6 {
        s.time(ADVANCE_TO_DEADLINE).drain(2);
    }
    s.inspect();
    add("keepalive-timeout", s);

    // The accept queue overflows (somaxconn 2): three handshakes, none accepted.
    let mut s = StackScript::new(cfg::TINY_LIMITS, 0);
    s.listen(32).listen(33);
    for (i, bits) in [0u8, 8, 1].into_iter().enumerate() {
        s.peer(Peer::syn(bits, 0x0400_0000 * (i as u32 + 1)))
            .drain(2)
            .peer(Peer::ack(i as u8));
    }
    s.time(ADVANCE_TO_DEADLINE)
        .drain(4)
        .accept(0)
        .accept(0)
        .inspect();
    add("listen-overflow", s);

    // Simultaneous open, options set before the SYN, urgent data, data on a SYN.
    let mut s = StackScript::new(cfg::NO_TIMESTAMPS | cfg::NO_SACK, 2);
    s.connect(0x20 | 0x40, &[0x02, 0x18, 4, 4]).drain(1);
    let mut simul = Peer::syn(0, 0x0500_0000);
    simul.sel = 0;
    simul.ts = None;
    s.peer(simul).drain(2).peer(Peer {
        ts: None,
        ..Peer::ack(0)
    });
    s.peer(Peer {
        flags: TcpFlags::ACK | TcpFlags::URG | TcpFlags::PSH,
        ts: None,
        len: 10,
        ..Peer::ack(0)
    })
    .recv(0, 100)
    .sockopt(0, &[0x85])
    .sockopt(0, &[0x86])
    .sockopt(0, &[0x80, 0x03, 0xe8])
    .sockopt(0, &[0x82])
    .send(0, 10)
    .drain(2);
    s.peer(Peer {
        ts: None,
        len: 20,
        ..Peer::syn(2, 0x0600_0000)
    })
    .listen(40)
    .peer(Peer {
        ts: None,
        len: 20,
        ..Peer::syn(2, 0x0600_0000)
    })
    .drain(4);
    add("simultaneous-open", s);

    // Raw packets: garbage, and real ones with their checksums recomputed.
    let mut s = StackScript::new(0, 0);
    s.listen(1 << 5);
    s.raw(&[0x45, 0, 0, 20], false);
    s.raw(&tcp(B4, A4, TcpFlags::SYN, syn_options(), b""), false);
    s.raw(&tcp(B6, A6, TcpFlags::SYN, syn_options(), b""), true);
    s.drain(4);
    add("raw", s);
    v
}

// ---- two_stacks ---------------------------------------------------------------------

/// Builds a `two_stacks` input.
pub struct TwoScript(Writer);

impl TwoScript {
    /// Configuration bits of each side and the MTU choice.
    pub fn new(a: u8, b: u8, mtu: u8) -> TwoScript {
        let mut w = Writer::default();
        w.u8(a).u8(b).u8(mtu);
        TwoScript(w)
    }

    /// The bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0 .0
    }

    /// One operation and its argument bytes.
    pub fn op(&mut self, o: u8, args: &[u8]) -> &mut Self {
        self.0.u8(o).bytes(args);
        self
    }

    /// `send` of `n` bytes on connection `k` (bit 0 the side).
    pub fn send(&mut self, k: u8, n: u16) -> &mut Self {
        self.0.u8(op2::SEND).u8(k).u16(n);
        self
    }

    /// `recv` of up to `n + 1` bytes.
    pub fn recv(&mut self, k: u8, n: u16) -> &mut Self {
        self.0.u8(op2::RECV).u8(k).u16(n);
        self
    }

    /// Run until quiet, at most `n + 1` rounds.
    pub fn settle(&mut self, n: u8) -> &mut Self {
        self.op(op2::SETTLE, &[n])
    }
}

/// Listen on side 1 (port 80), connect from side 0, settle, accept.
fn two_open(s: &mut TwoScript, v6: bool) {
    let fam = u8::from(v6);
    s.op(op2::LISTEN, &[1 | (fam << 1) | (1 << 5)])
        .op(op2::CONNECT, &[fam << 1])
        .settle(8)
        .op(op2::ACCEPT, &[0]);
}

/// Inputs for `two_stacks`.
pub fn two_stacks() -> Vec<Seed> {
    let mut v = Vec::new();
    let mut add = |name: &str, s: TwoScript| v.push((name.to_string(), s.finish()));
    for v6 in [false, true] {
        let mut s = TwoScript::new(0, 0, 0);
        two_open(&mut s, v6);
        s.send(0, 10000)
            .send(1, 3000)
            .settle(16)
            .recv(1, 16383)
            .recv(0, 16383)
            .op(op2::SHUTDOWN, &[0])
            .op(op2::SHUTDOWN, &[1])
            .settle(8)
            .recv(1, 100)
            .recv(0, 100)
            .op(op2::CLOSE, &[0])
            .op(op2::CLOSE, &[1])
            .settle(8)
            .op(op2::TIME, &[ADVANCE_61S])
            .settle(4)
            .op(op2::INSPECT, &[]);
        add(&format!("transfer-{}", if v6 { "v6" } else { "v4" }), s);
    }

    // A lossy, reordering, duplicating, corrupting link, by hand.
    let mut s = TwoScript::new(0, cfg::SMALL_BUFFERS, 0);
    two_open(&mut s, false);
    s.send(0, 12000).op(op2::PUMP, &[16 << 1]);
    let link = |a: u8| a << 1; // link 0: side 0's packets
    s.op(op2::DELIVER, &[link(act::DROP), 0])
        .op(op2::DELIVER, &[link(act::REORDER), 0])
        .op(op2::DELIVER, &[link(act::DUPLICATE), 1])
        .op(op2::DELIVER, &[link(act::CORRUPT), 2, 0, 30, 0x40])
        .op(op2::DELIVER, &[link(act::DELIVER), 0])
        .op(op2::DELIVER, &[link(act::DELIVER), 0])
        .op(op2::PUMP, &[1 | (8 << 1)])
        .op(op2::DELIVER, &[1 | link(act::DELIVER), 0])
        .recv(1, 16383)
        .settle(32)
        .recv(1, 16383)
        .op(op2::TIME, &[ADVANCE_TO_DEADLINE])
        .settle(32)
        .recv(1, 16383)
        .op(op2::INSPECT, &[]);
    add("lossy-link", s);

    // Different options each side, a bulk transfer with drops: SACK recovery.
    let mut s = TwoScript::new(
        cfg::NO_TIMESTAMPS,
        cfg::NO_DELAYED_ACK | cfg::NEWRENO_NODELAY,
        1,
    );
    two_open(&mut s, false);
    s.send(0, 16000).op(op2::PUMP, &[40 << 1]);
    for i in [1u8, 3, 5] {
        s.op(op2::DELIVER, &[act::DROP << 1, i]);
    }
    s.settle(40)
        .recv(1, 16383)
        .recv(1, 16383)
        .send(0, 16000)
        .settle(40)
        .recv(1, 16383);
    add("sack-recovery", s);

    // Abort, close with unread data (a reset), and a dead link with tiny limits.
    let mut s = TwoScript::new(cfg::TINY_LIMITS, 0, 0);
    two_open(&mut s, false);
    s.send(1, 500)
        .settle(4)
        .op(op2::CLOSE, &[0])
        .settle(4)
        .recv(1, 100)
        .op(op2::ABORT, &[1])
        .op(op2::CONNECT, &[0])
        .op(op2::PUMP, &[0])
        .op(op2::DELIVER, &[act::DROP << 1, 0]);
    for _ in 0..6 {
        s.op(op2::TIME, &[ADVANCE_TO_DEADLINE])
            .op(op2::PUMP, &[4 << 1]);
    }
    s.op(op2::INSPECT, &[]);
    add("reset-and-timeout", s);

    // Simultaneous close and options changed mid-connection.
    let mut s = TwoScript::new(0, cfg::NO_SACK | cfg::NO_WSCALE, 3);
    two_open(&mut s, true);
    s.send(0, 2000)
        .op(op2::SOCKOPT, &[0, 3, 0x02, 0x00])
        .op(op2::SOCKOPT, &[1, 0x86])
        .send(1, 2000)
        .settle(8)
        .recv(0, 4000)
        .recv(1, 4000)
        .op(op2::CLOSE, &[0])
        .op(op2::CLOSE, &[1])
        .op(op2::PUMP, &[4 << 1])
        .op(op2::PUMP, &[1 | (4 << 1)])
        .settle(8)
        .op(op2::TIME, &[ADVANCE_61S])
        .settle(2);
    add("simultaneous-close", s);
    v
}
