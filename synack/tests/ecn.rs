//! Explicit Congestion Notification (RFC 3168) between two stacks: what `tcp_ecn`
//! negotiates, which packets go out ECN-capable, and that a path marking CE instead of
//! dropping slows the sender down without a single retransmission.

mod common;

use std::time::Duration;

use common::{ack, plain_config, Harness};
use synack::sim::transfer::{run, TransferSpec};
use synack::wire::{self, Ecn, TcpFlags, TcpOptions};
use synack::{Config, ConnectionHandle, Instant, Stack};

const MBIT: u64 = 1_000_000;

/// A stack at `addr` with `tcp_ecn` set.
fn stack(addr: &str, tcp_ecn: u8) -> Stack {
    let mut config = Config::default();
    config.tcp_ecn = tcp_ecn;
    let mut s = Stack::new(config);
    s.add_address(addr.parse().unwrap());
    s
}

/// Two stacks and a connection between them, packets moved by hand with a 1 ms step so
/// that the test can look at (and mark) every packet.
struct Pair {
    now: Instant,
    client: Stack,
    server: Stack,
    conn: ConnectionHandle,
    accepted: Option<ConnectionHandle>,
    /// Every packet the client sent, as sent.
    client_sent: Vec<Vec<u8>>,
    /// Every packet the server sent.
    server_sent: Vec<Vec<u8>>,
}

impl Pair {
    fn new(client_ecn: u8, server_ecn: u8) -> Pair {
        Pair::with(client_ecn, server_ecn, |_, _| {})
    }

    /// [`Pair::new`] with the two configurations changed by `tune` (client, server).
    fn with(client_ecn: u8, server_ecn: u8, tune: impl FnOnce(&mut Config, &mut Config)) -> Pair {
        let (mut c, mut s) = (Config::default(), Config::default());
        (c.tcp_ecn, s.tcp_ecn) = (client_ecn, server_ecn);
        tune(&mut c, &mut s);
        let mut client = Stack::new(c);
        client.add_address("198.18.0.1".parse().unwrap());
        let mut server = Stack::new(s);
        server.add_address("198.18.0.2".parse().unwrap());
        let now = Instant::ZERO;
        let listener = server.listen("198.18.0.2:80".parse().unwrap(), 8).unwrap();
        let conn = client
            .connect(now, "198.18.0.2:80".parse().unwrap())
            .unwrap();
        let mut pair = Pair {
            now,
            client,
            server,
            conn,
            accepted: None,
            client_sent: Vec::new(),
            server_sent: Vec::new(),
        };
        pair.run(Duration::from_millis(5), |_| {});
        pair.accepted = Some(pair.server.accept(listener).unwrap());
        pair
    }

    /// Move packets for `d`; `mark` may change each client packet on its way.
    fn run(&mut self, d: Duration, mark: impl FnMut(&mut Vec<u8>)) {
        self.run_marking(d, mark, |_| {});
    }

    /// [`Pair::run`], `mark_server` changing each server packet on its way.
    fn run_marking(
        &mut self,
        d: Duration,
        mut mark: impl FnMut(&mut Vec<u8>),
        mut mark_server: impl FnMut(&mut Vec<u8>),
    ) {
        let end = self.now + d;
        while self.now < end {
            while let Some(mut p) = self.client.poll_transmit(self.now) {
                self.client_sent.push(p.clone());
                mark(&mut p);
                self.server.receive(self.now, &p);
            }
            while let Some(mut p) = self.server.poll_transmit(self.now) {
                self.server_sent.push(p.clone());
                mark_server(&mut p);
                self.client.receive(self.now, &p);
            }
            self.now += Duration::from_millis(1);
            self.client.on_timeout(self.now);
            self.server.on_timeout(self.now);
        }
    }

    fn server_conn(&self) -> ConnectionHandle {
        self.accepted.expect("accepted")
    }
}

/// (ECN field, TCP flags, payload length) of each packet.
fn shapes(packets: &[Vec<u8>]) -> Vec<(Ecn, wire::TcpFlags, usize)> {
    packets
        .iter()
        .map(|p| {
            let (ip, tcp) = wire::parse_tcp_packet(p).unwrap();
            (ip.ecn, tcp.flags, tcp.payload.len())
        })
        .collect()
}

#[test]
fn tcp_ecn_1_asks_with_ece_and_cwr_and_the_default_server_answers_with_ece_alone() {
    let pair = Pair::new(1, 2);
    let sent = shapes(&pair.client_sent);
    let syn = sent[0].1;
    assert!(syn.syn() && syn.ece() && syn.cwr(), "{syn:?}");
    let synack = shapes(&pair.server_sent)[0].1;
    assert!(synack.syn() && synack.ece() && !synack.cwr(), "{synack:?}");
    // The handshake's packets themselves are never ECN-capable.
    assert!(sent.iter().all(|(ecn, _, _)| *ecn == Ecn::NotEct));
    assert!(pair.client.info(pair.now, pair.conn).unwrap().ecn);
    assert!(pair.server.info(pair.now, pair.server_conn()).unwrap().ecn);
}

#[test]
fn ecn_is_not_used_unless_both_sides_want_it() {
    // tcp_ecn = 2 on both sides (Linux's default): nobody asks.
    let pair = Pair::new(2, 2);
    assert!(!shapes(&pair.client_sent)[0].1.ece());
    assert!(!pair.client.info(pair.now, pair.conn).unwrap().ecn);
    // A server with tcp_ecn = 0 answers a plain SYN-ACK: the client gives ECN up.
    let pair = Pair::new(1, 0);
    let synack = shapes(&pair.server_sent)[0].1;
    assert!(!synack.ece() && !synack.cwr());
    assert!(!pair.client.info(pair.now, pair.conn).unwrap().ecn);
    assert!(!pair.server.info(pair.now, pair.server_conn()).unwrap().ecn);
}

#[test]
fn new_data_goes_ect0_and_acks_stay_not_ect() {
    let mut pair = Pair::new(1, 2);
    pair.client.send(pair.now, pair.conn, &[7; 5000]).unwrap();
    pair.run(Duration::from_millis(50), |_| {});
    let data: Vec<_> = shapes(&pair.client_sent)
        .into_iter()
        .filter(|(_, _, len)| *len > 0)
        .collect();
    assert!(!data.is_empty());
    assert!(data.iter().all(|(ecn, _, _)| *ecn == Ecn::Ect0), "{data:?}");
    let acks: Vec<_> = shapes(&pair.server_sent)
        .into_iter()
        .filter(|(_, f, len)| *len == 0 && !f.syn())
        .collect();
    assert!(!acks.is_empty());
    assert!(
        acks.iter().all(|(ecn, _, _)| *ecn == Ecn::NotEct),
        "{acks:?}"
    );
}

#[test]
fn a_window_of_ce_marks_is_echoed_until_cwr_and_reduces_cwnd_once() {
    let mut pair = Pair::new(1, 2);
    let before = pair.client.info(pair.now, pair.conn).unwrap().cwnd.unwrap();
    // The first flight is marked CE, every packet of it; nothing after.
    pair.client.send(pair.now, pair.conn, &[1; 10_000]).unwrap();
    let handshake = pair.client_sent.len();
    pair.run(Duration::from_millis(1), |p| wire::set_ecn(p, Ecn::Ce));
    let marked = (pair.client_sent.len() - handshake) as u64;
    pair.client.send(pair.now, pair.conn, &[2; 20_000]).unwrap();
    pair.run(Duration::from_millis(100), |_| {});
    let client = pair.client.info(pair.now, pair.conn).unwrap();
    let server = pair.server.info(pair.now, pair.server_conn()).unwrap();
    assert!(marked > 1);
    assert_eq!(server.ce_received, marked, "data packets marked");
    assert_eq!(client.ece_reductions, 1, "one reduction for the window");
    assert_eq!(client.retransmits, 0);
    assert!(
        client.ssthresh.unwrap() < before,
        "ssthresh {:?}",
        client.ssthresh
    );
    // Exactly one data segment carried CWR, and the server's ECE stopped after it.
    let sent = shapes(&pair.client_sent);
    assert_eq!(
        sent.iter().filter(|(_, f, _)| f.cwr() && !f.syn()).count(),
        1
    );
    let last_acks = shapes(&pair.server_sent);
    assert!(!last_acks.last().unwrap().1.ece());
    assert_eq!(pair.server.recv_queue(pair.server_conn()).unwrap(), 30_000);
    assert_eq!(pair.client.stats().ecn_reductions, 1);
    assert_eq!(pair.server.stats().ecn_ce_received, marked);
}

#[test]
fn a_path_that_marks_instead_of_dropping_completes_without_retransmissions() {
    let mut spec = TransferSpec::default();
    spec.bytes = 5_000_000;
    spec.bandwidth_bps = 50 * MBIT;
    spec.rtt = Duration::from_millis(20);
    spec.ecn = true;
    spec.ce_mark = 0.01;
    // A deep queue: nothing is dropped, congestion is only signalled.
    spec.queue_bytes = Some(8 * 1024 * 1024);
    let r = run(&spec, Duration::from_secs(1), |_| {});
    println!(
        "figure: 1 % CE marks, 50 Mbit/s, 20 ms: {:.1} Mbit/s, {} marks, {} reductions, {} retransmits",
        r.goodput_bps / 1e6,
        r.ce_marked,
        r.flows[0].ecn_reductions,
        r.retransmits
    );
    assert!(r.completed && r.byte_exact);
    assert!(r.flows[0].ecn);
    assert_eq!((r.retransmits, r.packets_lost), (0, 0));
    assert!(r.ce_marked > 0);
    let reductions = r.flows[0].ecn_reductions;
    assert!(reductions > 0 && reductions <= r.ce_marked, "{reductions}");
}

#[test]
fn without_ecn_the_marking_link_marks_nothing() {
    let mut spec = TransferSpec::default();
    spec.bytes = 1_000_000;
    spec.ce_mark = 0.5;
    let r = run(&spec, Duration::from_secs(1), |_| {});
    assert!(r.completed && r.byte_exact);
    assert!(!r.flows[0].ecn);
    assert_eq!((r.ce_marked, r.flows[0].ecn_reductions), (0, 0));
}

#[test]
fn an_ece_enters_cwr_and_prr_sets_cwnd_from_what_is_in_flight() {
    // As packetdrill's cwnd-moderation-ecn-enter-cwr-no-moderation-700: 4 segments out,
    // the ACK of the first carries ECE. CUBIC's ssthresh is 7 segments; with 3 in flight
    // (below it) PRR's slow-start bound lets out max(delivered, 1) + 1 segments (Linux
    // 6.x's tcp_cwnd_reduction, SND.UNA having advanced): cwnd = 3 + 2.
    let mut h = Harness::new(plain_config());
    h.stack.listen(h.local, 16).unwrap();
    let options = TcpOptions {
        mss: Some(1000),
        ..TcpOptions::default()
    };
    let ecn_syn = TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR;
    h.inject_opts(ecn_syn, 100, 0, 65535, &[], options);
    let synack = h.expect_one();
    assert!(synack.has(TcpFlags::ECE) && !synack.has(TcpFlags::CWR));
    h.inject(ack(), 101, synack.seq + 1, 65535, &[]);
    let conn = h.accept_any();
    h.stack.send(h.now, conn, &[0; 4000]).unwrap();
    assert_eq!(h.outputs().len(), 4);
    let info = h.stack.info(h.now, conn).unwrap();
    assert_eq!((info.cwnd, info.ecn), (Some(10_000), true));
    h.inject(ack() | TcpFlags::ECE, 101, synack.seq + 1001, 65535, &[]);
    let info = h.stack.info(h.now, conn).unwrap();
    assert_eq!(info.ece_reductions, 1);
    assert_eq!((info.ssthresh, info.cwnd), (Some(7_000), Some(5_000)));
    assert_eq!(info.retransmits, 0);
}

#[test]
fn a_syn_cookie_connection_keeps_the_ecn_its_syn_ack_agreed() {
    // The server answers every SYN with a cookie (tcp_syncookies = 2); ECN rides in
    // the cookie SYN-ACK's TSval (Linux's cookie_init_timestamp, cookie_ecn_ok).
    let mut pair = Pair::with(1, 2, |_, s| s.tcp_syncookies = 2);
    assert_eq!(pair.server.stats().syncookies_sent, 1);
    let synack = shapes(&pair.server_sent)[0].1;
    assert!(synack.syn() && synack.ece() && !synack.cwr(), "{synack:?}");
    assert!(pair.client.info(pair.now, pair.conn).unwrap().ecn);
    let server = pair.server_conn();
    assert!(pair.server.info(pair.now, server).unwrap().ecn);
    // Its data goes ECT(0); a CE mark on it comes back as ECE and reduces cwnd once.
    pair.server.send(pair.now, server, &[3; 10_000]).unwrap();
    let before = pair.server_sent.len();
    pair.run_marking(
        Duration::from_millis(1),
        |_| {},
        |p| wire::set_ecn(p, Ecn::Ce),
    );
    pair.server.send(pair.now, server, &[4; 10_000]).unwrap();
    pair.run(Duration::from_millis(100), |_| {});
    let data: Vec<_> = shapes(&pair.server_sent[before..])
        .into_iter()
        .filter(|(_, _, len)| *len > 0)
        .collect();
    assert!(data.iter().all(|(ecn, _, _)| *ecn == Ecn::Ect0), "{data:?}");
    let info = pair.server.info(pair.now, server).unwrap();
    assert_eq!(info.ece_reductions, 1);
    assert_eq!(info.retransmits, 0);
    assert_eq!(pair.client.recv_queue(pair.conn).unwrap(), 20_000);
}

#[test]
fn a_syn_cookie_without_timestamps_cannot_keep_ecn() {
    // Linux's tcp_conn_request: no timestamps, nowhere to keep ECN, so the cookie
    // SYN-ACK declines it.
    let pair = Pair::with(1, 2, |c, s| {
        (c.tcp_timestamps, s.tcp_syncookies) = (false, 2)
    });
    assert_eq!(pair.server.stats().syncookies_sent, 1);
    let synack = shapes(&pair.server_sent)[0].1;
    assert!(!synack.ece(), "{synack:?}");
    assert!(!pair.client.info(pair.now, pair.conn).unwrap().ecn);
    assert!(!pair.server.info(pair.now, pair.server_conn()).unwrap().ecn);
}

#[test]
fn a_request_a_decide_first_listener_accepts_negotiates_ecn_as_its_syn_asked() {
    use synack::{Decide, ListenerOptions};
    let mut client = stack("198.18.0.1", 1);
    let mut server = stack("198.18.0.2", 2);
    let now = Instant::ZERO;
    let l = server.listen("198.18.0.2:80".parse().unwrap(), 8).unwrap();
    let mut options = ListenerOptions::default();
    options.decide = Some(Decide::new());
    server.set_listener_options(l, options).unwrap();
    let conn = client
        .connect(now, "198.18.0.2:80".parse().unwrap())
        .unwrap();
    while let Some(p) = client.poll_transmit(now) {
        server.receive(now, &p);
    }
    let req = server.take_request(l).unwrap();
    let accepted = server.accept_request(now, req.handle).unwrap();
    let mut synacks = Vec::new();
    for _ in 0..4 {
        while let Some(p) = server.poll_transmit(now) {
            synacks.push(p.clone());
            client.receive(now, &p);
        }
        while let Some(p) = client.poll_transmit(now) {
            server.receive(now, &p);
        }
    }
    let synack = shapes(&synacks)[0].1;
    assert!(synack.syn() && synack.ece() && !synack.cwr(), "{synack:?}");
    assert!(client.info(now, conn).unwrap().ecn);
    assert!(server.info(now, accepted).unwrap().ecn);
}
