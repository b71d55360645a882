//! Test support: a scripted peer that injects hand-made segments into one `Stack` and
//! reads back what the stack sends, on a virtual clock (packetdrill's idea, in Rust).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use synack::{Config, ConnectionHandle, Event, Instant, Stack, TcpState};

/// The stack under test is 198.18.0.1; the scripted peer is 198.18.0.2.
pub const LOCAL_IP: &str = "198.18.0.1";
pub const PEER_IP: &str = "198.18.0.2";

/// A segment the stack sent, parsed into owned fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
    /// The urgent pointer field.
    pub urgent: u16,
}

impl Seg {
    pub fn has(&self, f: TcpFlags) -> bool {
        self.flags.contains(f)
    }
    /// Exactly these flags (PSH ignored).
    pub fn is(&self, f: TcpFlags) -> bool {
        TcpFlags::from_bits(self.flags.bits() & !TcpFlags::PSH.bits()) == f
    }
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32 + self.flags.syn() as u32 + self.flags.fin() as u32
    }
}

pub fn syn() -> TcpFlags {
    TcpFlags::SYN
}
pub fn ack() -> TcpFlags {
    TcpFlags::ACK
}
pub fn syn_ack() -> TcpFlags {
    TcpFlags::SYN | TcpFlags::ACK
}
pub fn fin_ack() -> TcpFlags {
    TcpFlags::FIN | TcpFlags::ACK
}
pub fn rst() -> TcpFlags {
    TcpFlags::RST
}
pub fn rst_ack() -> TcpFlags {
    TcpFlags::RST | TcpFlags::ACK
}

/// One stack and a scripted peer.
pub struct Harness {
    pub stack: Stack,
    pub now: Instant,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub events: Vec<Event>,
}

/// Config without timestamps, window scaling or SACK, so segments are easy to write by
/// hand; every segment is ACKed at once and sent at once (no delayed ACK, no Nagle),
/// which the tests of those two features turn back on.
pub fn plain_config() -> Config {
    let mut config = Config::deterministic(1);
    config.tcp_timestamps = false;
    config.tcp_window_scaling = false;
    config.tcp_sack = false;
    config.delayed_ack = Duration::ZERO;
    config.tcp_nodelay = true;
    config.recv_buffer = 65535;
    config
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        let mut stack = Stack::new(config);
        stack.add_address(LOCAL_IP.parse().unwrap());
        Harness {
            stack,
            now: Instant::from_secs(1),
            local: SocketAddr::new(LOCAL_IP.parse().unwrap(), 80),
            peer: SocketAddr::new(PEER_IP.parse().unwrap(), 40000),
            events: Vec::new(),
        }
    }

    pub fn plain() -> Harness {
        Harness::new(plain_config())
    }

    /// Inject a segment from the peer to `self.local`.
    pub fn inject(&mut self, flags: TcpFlags, seq: u32, ack: u32, win: u16, payload: &[u8]) {
        self.inject_opts(flags, seq, ack, win, payload, TcpOptions::default());
    }

    /// Inject a segment with URG and this urgent pointer.
    pub fn inject_urg(&mut self, seq: u32, ack: u32, payload: &[u8], urgent: u16) {
        let repr = TcpRepr {
            src_port: self.peer.port(),
            dst_port: self.local.port(),
            seq: SeqNum::new(seq),
            ack: SeqNum::new(ack),
            flags: TcpFlags::ACK | TcpFlags::URG,
            window: 65535,
            urgent,
            options: TcpOptions::default(),
            payload,
        };
        let packet =
            wire::emit_tcp_packet(self.peer.ip(), self.local.ip(), 64, &repr).expect("emit");
        self.stack.receive(self.now, &packet);
        self.drain_events();
    }

    pub fn inject_opts(
        &mut self,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
        win: u16,
        payload: &[u8],
        options: TcpOptions,
    ) {
        let repr = TcpRepr {
            src_port: self.peer.port(),
            dst_port: self.local.port(),
            seq: SeqNum::new(seq),
            ack: SeqNum::new(ack),
            flags,
            window: win,
            urgent: 0,
            options,
            payload,
        };
        let packet =
            wire::emit_tcp_packet(self.peer.ip(), self.local.ip(), 64, &repr).expect("emit");
        self.stack.receive(self.now, &packet);
        self.drain_events();
    }

    /// A SYN from the peer with an MSS option.
    pub fn inject_syn(&mut self, seq: u32) {
        let options = TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        };
        self.inject_opts(syn(), seq, 0, 65535, &[], options);
    }

    /// A SYN with timestamps.
    pub fn inject_syn_ts(&mut self, seq: u32, tsval: u32) {
        let options = TcpOptions {
            mss: Some(1460),
            timestamps: Some(Timestamps { tsval, tsecr: 0 }),
            ..TcpOptions::default()
        };
        self.inject_opts(syn(), seq, 0, 65535, &[], options);
    }

    /// Everything the stack wants to send now.
    pub fn outputs(&mut self) -> Vec<Seg> {
        let mut v = Vec::new();
        while let Some(p) = self.stack.poll_transmit(self.now) {
            let (ip, tcp) = wire::parse_tcp_packet(&p).expect("the stack emits valid packets");
            v.push(Seg {
                src: SocketAddr::new(ip.src, tcp.src_port),
                dst: SocketAddr::new(ip.dst, tcp.dst_port),
                flags: tcp.flags,
                seq: tcp.seq.get(),
                ack: tcp.ack.get(),
                win: tcp.window,
                options: tcp.options,
                payload: tcp.payload.to_vec(),
                urgent: tcp.urgent,
            });
        }
        self.drain_events();
        v
    }

    /// Exactly one segment must be pending; return it.
    pub fn expect_one(&mut self) -> Seg {
        let mut v = self.outputs();
        assert_eq!(v.len(), 1, "expected one segment, got {v:#?}");
        v.remove(0)
    }

    /// Nothing may be pending.
    pub fn expect_none(&mut self) {
        let v = self.outputs();
        assert!(v.is_empty(), "expected no segment, got {v:#?}");
    }

    /// Advance the virtual clock by `d`, firing every timer due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.stack.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.stack.on_timeout(self.now);
        }
        self.now = end;
        self.stack.on_timeout(self.now);
        self.drain_events();
    }

    /// Advance, collecting every segment sent on the way with the time it was sent.
    pub fn advance_collect(&mut self, d: Duration) -> Vec<(Instant, Seg)> {
        let end = self.now + d;
        let mut out = Vec::new();
        loop {
            for s in self.outputs() {
                out.push((self.now, s));
            }
            match self.stack.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.stack.on_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
        self.stack.on_timeout(self.now);
        for s in self.outputs() {
            out.push((self.now, s));
        }
        out
    }

    pub fn drain_events(&mut self) {
        while let Some(e) = self.stack.poll_event() {
            self.events.push(e);
        }
    }

    /// State of the connection with the peer (None: no such connection).
    pub fn state(&self) -> Option<TcpState> {
        self.stack.state_of(self.local, self.peer)
    }

    /// The (from, to) state transitions seen so far.
    pub fn transitions(&self) -> Vec<(TcpState, TcpState)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    /// Listen on port 80, take the peer's SYN (ISS of the peer = `irs`), return the SYN-ACK.
    pub fn passive_open(&mut self, irs: u32) -> Seg {
        self.stack.listen(self.local, 16).expect("listen");
        self.inject_syn(irs);
        let synack = self.expect_one();
        assert!(synack.is(syn_ack()), "{synack:?}");
        synack
    }

    /// A passive open through to ESTABLISHED and accept(); returns (handle, our ISS).
    pub fn established_passive(&mut self, irs: u32) -> (ConnectionHandle, u32) {
        let synack = self.passive_open(irs);
        self.inject(ack(), irs + 1, synack.seq + 1, 65535, &[]);
        let h = self.accept_any();
        (h, synack.seq)
    }

    /// Accept from the first listener.
    pub fn accept_any(&mut self) -> ConnectionHandle {
        for e in self.events.clone() {
            if let Event::Incoming(l) = e {
                if let Ok(h) = self.stack.accept(l) {
                    return h;
                }
            }
        }
        panic!("no connection to accept; events: {:?}", self.events)
    }

    /// An active open to the peer through to ESTABLISHED; returns (handle, our ISS).
    pub fn established_active(&mut self, irs: u32) -> (ConnectionHandle, u32) {
        let h = self
            .stack
            .connect_from(self.now, self.local, self.peer)
            .expect("connect");
        let s = self.expect_one();
        assert!(s.is(syn()));
        self.inject(syn_ack(), irs, s.seq + 1, 65535, &[]);
        let a = self.expect_one();
        assert!(a.is(ack()));
        (h, s.seq)
    }
}
